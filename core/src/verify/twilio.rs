//! Twilio's scheme: `X-Twilio-Signature: <base64 HMAC-SHA1(auth token, data)>`
//! where `data` is the full URL Twilio called (scheme, host, path, query)
//! followed, for a form-encoded POST, by every POST parameter sorted by name
//! (and by value for a repeated name), each as `<name><value>` with no
//! separator. A JSON body is signed through the URL instead: Twilio adds
//! `bodySHA256=<hex SHA-256 of the body>` to the query, signs the URL alone,
//! and the hash must match the body.
//!
//! Exactly as Twilio's own `RequestValidator` (twilio-python
//! `twilio/request_validator.py`), the URL is tried twice, without a port
//! and with one (the scheme's default when none is written), because
//! Twilio's signing back end is not consistent about it. Without
//! `bodySHA256` the body is read as form parameters whatever its content
//! type, so a body can never go unsigned. Twilio signs no timestamp; the
//! delivery id is `I-Twilio-Idempotency-Token`, which Twilio keeps on
//! retries.
//!
//! See <https://www.twilio.com/docs/usage/webhooks/webhooks-security>.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Hmac;
use http::HeaderMap;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::hmac_common::{find_secret, mac, require_secrets, signature_header};
use super::public_url::PublicUrl;
use super::{Incoming, Rejection, Verdict, Verified, Verifier, VerifierError, info_header};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-twilio-signature";
const IDEMPOTENCY_HEADER: &str = "i-twilio-idempotency-token";
const BODY_HASH_PARAM: &str = "bodySHA256";

/// Verifies Twilio requests against one or more auth tokens.
#[derive(Debug)]
pub struct TwilioVerifier {
    secrets: Vec<Secret>,
    url: PublicUrl,
}

impl TwilioVerifier {
    /// A verifier for requests Twilio sends to `url`, accepting any of
    /// `secrets` (auth tokens, rotation).
    pub fn new(secrets: Vec<Secret>, url: PublicUrl) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self { secrets, url })
    }

    fn verify_query(
        &self,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Verified, Rejection> {
        let value = signature_header(headers, SIGNATURE_HEADER)?;
        let signature = decode_signature(value)?;
        let body_hash = query.and_then(body_hash_param);
        let params = if body_hash.is_some() {
            String::new()
        } else {
            sorted_params(body)
        };
        let mut secret_index = None;
        for url in self.url.without_and_with_port(query) {
            let found = find_secret::<Hmac<Sha1>>(
                &self.secrets,
                &[url.as_bytes(), params.as_bytes()],
                std::slice::from_ref(&signature),
            );
            secret_index = secret_index.or(found);
        }
        let secret_index = secret_index.ok_or(Rejection::SignatureMismatch)?;
        if let Some(expected) = body_hash {
            let actual = hex::encode(Sha256::digest(body));
            if !bool::from(actual.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(Rejection::BodyHashMismatch);
            }
        }
        Ok(Verified {
            event: None,
            delivery_id: info_header(headers, IDEMPOTENCY_HEADER),
            secret_index,
        })
    }
}

fn decode_signature(value: &str) -> Result<Vec<u8>, Rejection> {
    let bytes = BASE64
        .decode(value.trim())
        .map_err(|_| Rejection::SignatureMalformed)?;
    if bytes.len() == 20 {
        Ok(bytes)
    } else {
        Err(Rejection::SignatureMalformed)
    }
}

/// The first `bodySHA256` of the query, decoded (as Python's `parse_qs`).
fn body_hash_param(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == BODY_HASH_PARAM)
        .map(|(_, value)| value.into_owned())
}

/// The form parameters of `body`, decoded, sorted by name then value, each
/// written `<name><value>`.
fn sorted_params(body: &[u8]) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    // Byte order of UTF-8 is code point order, which is Python's `sorted`.
    pairs.sort();
    pairs
        .into_iter()
        .map(|(name, value)| name + &value)
        .collect()
}

impl Verifier for TwilioVerifier {
    fn provider(&self) -> &'static str {
        "twilio"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    /// Without the request line, the URL is taken to be the public URL
    /// without a query.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        self.verify_query(None, headers, body)
    }

    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        self.verify_query(request.uri.query(), request.headers, request.body)
            .map(Verdict::Deliver)
    }
}

/// The `X-Twilio-Signature` value Twilio sends for a request to `url` (the
/// full URL, query included) with form-encoded `body`; for a JSON body,
/// `url` must already carry `bodySHA256` (see [`url_with_body_hash`]) and
/// the body is not part of the signature.
pub fn sign(auth_token: &[u8], url: &str, body: &[u8]) -> String {
    let query = url.split_once('?').map(|(_, q)| q);
    let params = if query.and_then(body_hash_param).is_some() {
        String::new()
    } else {
        sorted_params(body)
    };
    BASE64.encode(mac::<Hmac<Sha1>>(
        auth_token,
        &[url.as_bytes(), params.as_bytes()],
    ))
}

/// `url` with Twilio's `bodySHA256=<hex SHA-256 of body>` added to its query.
pub fn url_with_body_hash(url: &str, body: &[u8]) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{separator}{BODY_HASH_PARAM}={}",
        hex::encode(Sha256::digest(body))
    )
}

#[cfg(test)]
mod tests {
    use http::{Method, Uri};

    use super::super::hmac_common::test_support::*;
    use super::*;

    // The vectors of Twilio's own library tests, twilio-python
    // `tests/unit/test_request_validator.py`.
    const TOKEN: &str = "12345";
    const BASE: &str = "https://mycompany.com/myapp.php";
    const QUERY: &str = "foo=1&bar=2";
    const PARAMS: &str = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";
    const EXPECTED: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    /// The same request signed over the URL with `:443`.
    const EXPECTED_WITH_443: &str = "kvajT1Ptam85bY51eRf/AJRuM3w=";
    /// `Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234`.
    const DUPLICATE_EXPECTED: &str = "IK+Dwps556ElfBT0I3Rgjkr1wJU=";
    const JSON_BODY: &str = "{\"property\": \"value\", \"boolean\": true}";
    const JSON_BODY_HASH: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const JSON_EXPECTED: &str = "a9nBmqA0ju/hNViExpshrM61xv4=";

    fn verifier(base: &str) -> TwilioVerifier {
        TwilioVerifier::new(
            secrets(&[TOKEN]),
            PublicUrl::parse(base).expect("public URL"),
        )
        .expect("verifier")
    }

    fn check(
        v: &TwilioVerifier,
        query: &str,
        signature: &str,
        body: &str,
    ) -> Result<Verdict, Rejection> {
        let uri: Uri = format!("/myapp.php?{query}").parse().expect("uri");
        let headers = headers(&[(SIGNATURE_HEADER, signature)]);
        v.check(&Incoming {
            method: &Method::POST,
            uri: &uri,
            headers: &headers,
            body: body.as_bytes(),
        })
    }

    #[test]
    fn twilios_published_vectors() {
        let v = verifier(BASE);
        assert!(check(&v, QUERY, EXPECTED, PARAMS).is_ok());
        // The signature over the URL with the default port is accepted too.
        assert!(check(&v, QUERY, EXPECTED_WITH_443, PARAMS).is_ok());
        // A port written in the public URL: the port-less spelling matches.
        assert!(
            check(
                &verifier("https://mycompany.com:1234/myapp.php"),
                QUERY,
                EXPECTED,
                PARAMS
            )
            .is_ok()
        );
        assert!(
            check(
                &v,
                QUERY,
                DUPLICATE_EXPECTED,
                "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234"
            )
            .is_ok()
        );
        let json_query = format!("{QUERY}&bodySHA256={JSON_BODY_HASH}");
        assert!(check(&v, &json_query, JSON_EXPECTED, JSON_BODY).is_ok());
        assert_eq!(
            sign(
                TOKEN.as_bytes(),
                &format!("{BASE}?{QUERY}"),
                PARAMS.as_bytes()
            ),
            EXPECTED
        );
        assert_eq!(
            url_with_body_hash(&format!("{BASE}?{QUERY}"), JSON_BODY.as_bytes()),
            format!("{BASE}?{json_query}")
        );
    }

    #[test]
    fn parameter_order_on_the_wire_does_not_matter_but_values_do() {
        let v = verifier(BASE);
        let reordered = "To=%2B18005551212&Digits=1234&CallSid=CA1234567890ABCDE&From=%2B14158675309&Caller=%2B14158675309";
        assert!(check(&v, QUERY, EXPECTED, reordered).is_ok());
        let changed = PARAMS.replace("Digits=1234", "Digits=1235");
        assert_eq!(
            check(&v, QUERY, EXPECTED, &changed).map(|_| ()),
            Err(Rejection::SignatureMismatch)
        );
        // The query is signed: another one does not verify.
        assert_eq!(
            check(&v, "foo=1&bar=3", EXPECTED, PARAMS).map(|_| ()),
            Err(Rejection::SignatureMismatch)
        );
        // A different public host does not verify either.
        assert_eq!(
            check(
                &verifier("https://other.com/myapp.php"),
                QUERY,
                EXPECTED,
                PARAMS
            )
            .map(|_| ()),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn a_json_body_must_match_its_signed_hash() {
        let v = verifier(BASE);
        let json_query = format!("{QUERY}&bodySHA256={JSON_BODY_HASH}");
        assert_eq!(
            check(&v, &json_query, JSON_EXPECTED, "{\"property\": \"other\"}").map(|_| ()),
            Err(Rejection::BodyHashMismatch)
        );
    }

    #[test]
    fn malformed_and_missing_signatures() {
        let v = verifier(BASE);
        assert_eq!(
            check(&v, QUERY, "not base64!", PARAMS).map(|_| ()),
            Err(Rejection::SignatureMalformed)
        );
        assert_eq!(
            check(&v, QUERY, "c2hvcnQ=", PARAMS).map(|_| ()),
            Err(Rejection::SignatureMalformed)
        );
        let uri: Uri = "/myapp.php".parse().expect("uri");
        let empty = HeaderMap::new();
        assert_eq!(
            v.check(&Incoming {
                method: &Method::POST,
                uri: &uri,
                headers: &empty,
                body: b"",
            })
            .map(|_| ()),
            Err(Rejection::SignatureMissing)
        );
    }

    #[test]
    fn the_idempotency_token_is_the_delivery_id() {
        let v = verifier(BASE);
        let uri: Uri = format!("/myapp.php?{QUERY}").parse().expect("uri");
        let headers = headers(&[(SIGNATURE_HEADER, EXPECTED), (IDEMPOTENCY_HEADER, "idem-1")]);
        let verdict = v
            .check(&Incoming {
                method: &Method::POST,
                uri: &uri,
                headers: &headers,
                body: PARAMS.as_bytes(),
            })
            .expect("verifies");
        assert!(
            matches!(verdict, Verdict::Deliver(Verified { delivery_id: Some(ref id), .. }) if id == "idem-1"),
            "{verdict:?}"
        );
    }
}
