//! Pieces shared by the HMAC presets (Stripe, Slack, Standard Webhooks, …):
//! bounded header parsing, timestamp windows, constant-time matching of
//! several candidate signatures against several secrets, and reading the
//! event type and delivery id from a JSON body once it is verified.

use axum::http::HeaderMap;
use hmac::Mac;
use hmac::digest::KeyInit;

pub(crate) use super::require_secrets;
pub(crate) use super::timestamp::{
    check_fresh, parse_unix_seconds, system_clock, timestamp_header,
};
use super::{Rejection, single_header};
use crate::secrets::Secret;

/// No provider's signature header comes near this; anything longer is
/// refused as malformed before it is parsed.
pub(crate) const MAX_SIGNATURE_HEADER_LEN: usize = 4096;

/// At most this many candidate signatures are looked at in one header, so a
/// crafted header cannot make a delivery cost thousands of HMACs.
pub(crate) const MAX_CANDIDATES: usize = 16;

/// The signature header's value: missing, repeated, not visible ASCII or
/// absurdly long are told apart from a mismatch.
pub(crate) fn signature_header<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<&'a str, Rejection> {
    let value = single_header(headers, name)
        .map_err(|()| Rejection::SignatureMalformed)?
        .ok_or(Rejection::SignatureMissing)?;
    if value.len() > MAX_SIGNATURE_HEADER_LEN {
        return Err(Rejection::SignatureMalformed);
    }
    Ok(value)
}

/// The MAC of the concatenated `parts` under `key`.
pub(crate) fn mac<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match <M as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// The index of the first secret whose MAC over `parts` equals any of the
/// `candidates`. Every secret is tried against every candidate, each
/// comparison in constant time (`verify_slice`), so the time taken reveals
/// neither which secret nor which candidate matched.
pub(crate) fn find_secret<M: Mac + KeyInit + Clone>(
    secrets: &[Secret],
    parts: &[&[u8]],
    candidates: &[Vec<u8>],
) -> Option<usize> {
    let mut matched = None;
    for (index, secret) in secrets.iter().enumerate() {
        let Ok(mut mac) = <M as KeyInit>::new_from_slice(secret.expose()) else {
            continue;
        };
        for part in parts {
            mac.update(part);
        }
        for candidate in candidates {
            if mac.clone().verify_slice(candidate).is_ok() && matched.is_none() {
                matched = Some(index);
            }
        }
    }
    matched
}

/// `<prefix><hex>` decoded to exactly `len` bytes.
pub(crate) fn prefixed_hex(value: &str, prefix: &str, len: usize) -> Result<Vec<u8>, Rejection> {
    let digits = value
        .strip_prefix(prefix)
        .ok_or(Rejection::SignatureMalformed)?;
    let mut bytes = vec![0u8; len];
    // Fails on a non-hex digit and on any other length.
    hex::decode_to_slice(digits, &mut bytes).map_err(|_| Rejection::SignatureMalformed)?;
    Ok(bytes)
}

/// The scheme GitHub, Bitbucket Cloud and Meta share:
/// `<header>: sha256=<hex HMAC-SHA256(secret, body)>`. Returns the index of
/// the matching secret; every secret is tried, constant-time each, so timing
/// does not tell which one matched.
pub(crate) fn verify_sha256_body(
    secrets: &[Secret],
    headers: &HeaderMap,
    header: &str,
    body: &[u8],
) -> Result<usize, Rejection> {
    let signature = prefixed_hex(signature_header(headers, header)?, "sha256=", 32)?;
    find_secret::<hmac::Hmac<sha2::Sha256>>(secrets, &[body], &[signature])
        .ok_or(Rejection::SignatureMismatch)
}

/// The body as JSON, read only after the signature is verified; a body that
/// is not JSON simply has no event type or id.
pub(crate) fn json_body(body: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(body).ok()
}

/// A string at `pointer` in a verified JSON body, kept only when it is as
/// harmless as an [`super::info_header`] value: non-empty, at most 256 bytes,
/// visible ASCII (it ends up in NATS headers and subjects).
pub(crate) fn json_info(value: Option<&serde_json::Value>, pointer: &str) -> Option<String> {
    value?
        .pointer(pointer)?
        .as_str()
        .map(str::trim)
        .filter(|v| {
            !v.is_empty() && v.len() <= 256 && v.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        })
        .map(str::to_owned)
}

#[cfg(test)]
pub(crate) mod test_support {
    use axum::http::{HeaderName, HeaderValue};

    use super::super::VerifierError;
    use super::*;

    /// A fixed "now" for tests.
    pub(crate) const NOW: i64 = 1_700_000_000;

    pub(crate) fn now() -> i64 {
        NOW
    }

    pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        map
    }

    /// Headers as a preset's `sign` returns them.
    pub(crate) fn signed_headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        headers(&borrowed)
    }

    /// `pairs` with the value of `name` replaced.
    pub(crate) fn with_header(map: &HeaderMap, name: &'static str, value: &str) -> HeaderMap {
        let mut map = map.clone();
        map.insert(name, HeaderValue::from_str(value).expect("header value"));
        map
    }

    /// `pairs` without `name`.
    pub(crate) fn without_header(map: &HeaderMap, name: &'static str) -> HeaderMap {
        let mut map = map.clone();
        map.remove(name);
        map
    }

    pub(crate) fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|v| Secret::from(v.as_bytes())).collect()
    }

    /// A 100 KB header value of visible ASCII.
    pub(crate) fn huge_value(prefix: &str) -> String {
        let mut value = prefix.to_owned();
        value.push_str(&"a".repeat(100 * 1024));
        value
    }

    /// `text` with the character at `index` changed to another one of the
    /// same class (hex stays hex, base64 stays base64, digits stay digits).
    pub(crate) fn flip_char(text: &str, index: usize) -> String {
        let mut bytes = text.as_bytes().to_vec();
        bytes[index] = match bytes[index] {
            b'0' => b'1',
            b'a' => b'b',
            b'A' => b'B',
            b if b.is_ascii_digit() => b'0',
            b if b.is_ascii_lowercase() => b'a',
            _ => b'A',
        };
        String::from_utf8(bytes).expect("ascii")
    }

    /// `body` with one byte changed.
    pub(crate) fn tamper(body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        let last = body.len() - 1;
        body[last] ^= 0x01;
        body
    }

    /// Builds a preset's verifier from its secrets.
    pub(crate) type BuildFn =
        fn(Vec<Secret>) -> Result<Box<dyn super::super::Verifier>, VerifierError>;

    /// The headers a provider sends for (secret, body).
    pub(crate) type SignFn = fn(&[u8], &[u8]) -> Vec<(&'static str, String)>;

    /// A preset that signs the body alone, described for [`body_signature_suite`].
    pub(crate) struct Suite {
        pub(crate) build: BuildFn,
        pub(crate) sign: SignFn,
        pub(crate) signature_header: &'static str,
        pub(crate) body: &'static [u8],
    }

    /// What every preset must do: round trip, rotation, wrong secret,
    /// single-byte tampering of body and signature, missing, repeated,
    /// garbage and 100 KB signature headers.
    pub(crate) fn body_signature_suite(suite: &Suite) {
        let build = |s: &[&str]| (suite.build)(secrets(s)).expect("verifier");
        let body = suite.body;
        let good = signed_headers(&(suite.sign)(b"s3cret", body));
        let verified = build(&["s3cret"]).verify(&good, body).expect("round trip");
        assert_eq!(verified.secret_index, 0);
        let verified = build(&["old", "s3cret"])
            .verify(&good, body)
            .expect("rotated");
        assert_eq!(verified.secret_index, 1);
        let v = build(&["s3cret"]);
        assert_eq!(
            build(&["other"]).verify(&good, body),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            v.verify(&good, &tamper(body)),
            Err(Rejection::SignatureMismatch)
        );
        let name = suite.signature_header;
        let sig = good[name].to_str().expect("ascii").to_owned();
        assert_eq!(
            v.verify(
                &with_header(&good, name, &flip_char(&sig, sig.len() - 5)),
                body
            ),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            v.verify(&without_header(&good, name), body),
            Err(Rejection::SignatureMissing)
        );
        let mut twice = good.clone();
        twice.append(name, good[name].clone());
        assert_eq!(v.verify(&twice, body), Err(Rejection::SignatureMalformed));
        for bad in ["x", "", &huge_value(&sig)] {
            assert_eq!(
                v.verify(&with_header(&good, name, bad), body),
                Err(Rejection::SignatureMalformed),
                "{}",
                &bad[..bad.len().min(40)]
            );
        }
        assert!(matches!(
            (suite.build)(Vec::new()),
            Err(VerifierError::NoSecrets)
        ));
    }

    #[test]
    fn helpers_behave() {
        assert_eq!(flip_char("a0Z", 0), "b0Z");
        assert_eq!(flip_char("a0Z", 1), "a1Z");
        let body = serde_json::json!({"a": {"b": "x y"}, "c": "\u{1}", "d": 5});
        assert_eq!(json_info(Some(&body), "/a/b").as_deref(), Some("x y"));
        assert_eq!(json_info(Some(&body), "/c"), None);
        assert_eq!(json_info(Some(&body), "/d"), None);
        assert_eq!(json_info(None, "/a"), None);
    }
}
