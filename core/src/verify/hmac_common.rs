//! Pieces shared by the HMAC presets (Stripe, Slack, Standard Webhooks, …):
//! bounded header parsing, timestamp windows, constant-time matching of
//! several candidate signatures against several secrets, and reading the
//! event type and delivery id from a JSON body once it is verified.

use hmac::Mac;
use hmac::digest::KeyInit;
use http::HeaderMap;

pub(crate) use super::headers::MAX_SIGNATURE_HEADER_LEN;
pub(crate) use super::require_secrets;
pub(crate) use super::timestamp::{
    check_fresh, parse_unix_seconds, system_clock, timestamp_header,
};
use super::{Rejection, single_header};
use crate::secrets::Secret;

/// At most this many candidate signatures are looked at in one header, so a
/// crafted header cannot make a delivery cost thousands of HMACs. Every
/// entry of a signature scheme the preset verifies counts, well-formed or
/// not; a header with more is refused as `signature_malformed` without any
/// HMAC being computed (no provider sends that many: Stripe, Paddle and
/// PagerDuty send two while a secret is rotated), see [`Candidates`].
pub(crate) const MAX_CANDIDATES: usize = 16;

/// The candidate signatures of one header, collected so that a candidate
/// that does not parse (wrong length, not hex or base64, empty) is skipped
/// instead of refusing the delivery: a provider may list a signature made
/// with a key or scheme variant this endpoint cannot read next to one it
/// can, and the one it can read must still verify. Only a header with no
/// well-formed candidate at all is malformed.
#[derive(Debug)]
pub(crate) struct Candidates<T> {
    well_formed: Vec<T>,
    /// Entries seen, well-formed or not: the cap counts them all.
    seen: usize,
}

impl<T> Candidates<T> {
    pub(crate) const fn new() -> Self {
        Self {
            well_formed: Vec::new(),
            seen: 0,
        }
    }

    /// Records one entry of a verified scheme, kept when it decoded
    /// (`Some`). Past [`MAX_CANDIDATES`] entries the header is refused.
    pub(crate) fn push(&mut self, decoded: Option<T>) -> Result<(), Rejection> {
        if self.seen == MAX_CANDIDATES {
            return Err(Rejection::SignatureMalformed);
        }
        self.seen += 1;
        self.well_formed.extend(decoded);
        Ok(())
    }

    /// The well-formed candidates; `signature_malformed` when there is none
    /// (no entry, or none that decoded), so such a header is told apart from
    /// one whose well-formed candidates simply do not match.
    pub(crate) fn into_well_formed(self) -> Result<Vec<T>, Rejection> {
        if self.well_formed.is_empty() {
            Err(Rejection::SignatureMalformed)
        } else {
            Ok(self.well_formed)
        }
    }
}

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
    find_keyed(
        secrets
            .iter()
            .map(|secret| <M as KeyInit>::new_from_slice(secret.expose()).ok()),
        parts,
        candidates,
    )
}

/// An endpoint's secrets as HMAC keys made ready once: keying hashes the
/// key's inner and outer pads, two of the compression rounds of every
/// delivery (of about 20 for a 1 KiB body), so a preset that verifies many
/// deliveries keeps its keys this way and clones one per delivery
/// ([`KeyedMacs::find`]). In the order of the secrets: an index found is a
/// secret's index.
pub(crate) struct KeyedMacs<M> {
    /// `None` where a secret could not be a key (never for HMAC, which
    /// takes keys of any length).
    macs: Vec<Option<M>>,
}

impl<M: Mac + KeyInit + Clone> KeyedMacs<M> {
    pub(crate) fn new(secrets: &[Secret]) -> Self {
        Self {
            macs: secrets
                .iter()
                .map(|secret| <M as KeyInit>::new_from_slice(secret.expose()).ok())
                .collect(),
        }
    }

    /// As [`find_secret`], with the keys made ready.
    pub(crate) fn find(&self, parts: &[&[u8]], candidates: &[Vec<u8>]) -> Option<usize> {
        find_keyed(self.macs.iter().cloned(), parts, candidates)
    }
}

impl<M> std::fmt::Debug for KeyedMacs<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material: only how many.
        f.debug_struct("KeyedMacs")
            .field("keys", &self.macs.len())
            .finish_non_exhaustive()
    }
}

/// [`find_secret`]'s loop, over keyed MACs in the order of the secrets.
fn find_keyed<M: Mac + Clone>(
    macs: impl Iterator<Item = Option<M>>,
    parts: &[&[u8]],
    candidates: &[Vec<u8>],
) -> Option<usize> {
    let mut matched = None;
    for (index, mac) in macs.enumerate() {
        let Some(mut mac) = mac else {
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
    keys: &KeyedMacs<hmac::Hmac<sha2::Sha256>>,
    headers: &HeaderMap,
    header: &str,
    body: &[u8],
) -> Result<usize, Rejection> {
    let signature = prefixed_hex(signature_header(headers, header)?, "sha256=", 32)?;
    keys.find(&[body], &[signature])
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
    use http::{HeaderName, HeaderValue};

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

    /// A preset whose signature header lists candidates, described for
    /// [`candidate_list_suite`].
    pub(crate) struct CandidateList<'a> {
        /// Verifies a delivery (signed at [`NOW`]) whose signature header
        /// lists `entries`, with the preset's separator and whatever else
        /// (a timestamp) the header needs.
        pub(crate) verify: &'a dyn Fn(&[&str]) -> Result<super::super::Verified, Rejection>,
        /// An entry that verifies.
        pub(crate) good: &'a str,
        /// A well-formed entry that does not match.
        pub(crate) other: &'a str,
        /// Entries of a verified scheme that do not parse.
        pub(crate) malformed: &'a [&'a str],
    }

    /// What every candidate list must do: a malformed candidate next to a
    /// good one (either order) does not refuse it; malformed alone is
    /// `signature_malformed`; malformed next to a well-formed wrong one is
    /// `signature_mismatch`; the [`MAX_CANDIDATES`]-th entry is still looked
    /// at, and a header with more entries is refused as malformed, whatever
    /// they are.
    pub(crate) fn candidate_list_suite(list: &CandidateList<'_>) {
        let verify = |entries: &[&str]| (list.verify)(entries);
        let (good, other) = (list.good, list.other);
        assert!(verify(&[good]).is_ok(), "the good entry alone");
        assert_eq!(verify(&[other]), Err(Rejection::SignatureMismatch));
        for &bad in list.malformed {
            assert!(verify(&[bad, good]).is_ok(), "{bad} first");
            assert!(verify(&[good, bad]).is_ok(), "{bad} last");
            assert!(verify(&[bad, other, good, bad]).is_ok(), "{bad} around");
            assert_eq!(verify(&[bad]), Err(Rejection::SignatureMalformed), "{bad}");
            assert_eq!(
                verify(&[bad, other]),
                Err(Rejection::SignatureMismatch),
                "{bad} then a wrong one"
            );
            assert_eq!(
                verify(&[other, bad]),
                Err(Rejection::SignatureMismatch),
                "a wrong one then {bad}"
            );
        }
        assert_eq!(verify(list.malformed), Err(Rejection::SignatureMalformed));
        let filler = list.malformed[0];
        let mut at_the_cap = vec![filler; MAX_CANDIDATES - 1];
        at_the_cap.push(good);
        assert!(verify(&at_the_cap).is_ok(), "the last entry under the cap");
        // One entry more is refused before any HMAC, even with the good one
        // first: which entries a sender meant cannot be told.
        for extra in [filler, other, good] {
            let mut over = vec![good; 1];
            over.extend(vec![extra; MAX_CANDIDATES]);
            assert_eq!(
                verify(&over),
                Err(Rejection::SignatureMalformed),
                "over the cap with {extra}"
            );
        }
    }

    #[test]
    fn candidates_skip_malformed_and_are_capped() {
        let mut c = Candidates::new();
        c.push(None).expect("malformed, skipped");
        c.push(Some(1)).expect("kept");
        assert_eq!(c.into_well_formed(), Ok(vec![1]));
        let mut c = Candidates::<u8>::new();
        c.push(None).expect("malformed, skipped");
        assert_eq!(c.into_well_formed(), Err(Rejection::SignatureMalformed));
        assert_eq!(
            Candidates::<u8>::new().into_well_formed(),
            Err(Rejection::SignatureMalformed)
        );
        // Malformed entries count towards the cap too.
        let mut c = Candidates::new();
        for _ in 0..MAX_CANDIDATES - 1 {
            c.push(None).expect("under the cap");
        }
        c.push(Some(7)).expect("the cap-th entry is looked at");
        assert_eq!(c.push(Some(8)), Err(Rejection::SignatureMalformed));
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
