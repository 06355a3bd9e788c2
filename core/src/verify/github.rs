//! GitHub's scheme: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
//!
//! See <https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries>.

use http::HeaderMap;

use hmac::Hmac;
use sha2::Sha256;

use super::hmac_common::{KeyedMacs, verify_sha256_body};
use super::require_secrets;
use super::{Rejection, Verified, Verifier, VerifierError, info_header};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-hub-signature-256";
const EVENT_HEADER: &str = "x-github-event";
const DELIVERY_HEADER: &str = "x-github-delivery";

/// Verifies GitHub deliveries against one or more secrets.
#[derive(Debug)]
pub struct GithubVerifier {
    /// The secrets, keyed once (every delivery is an HMAC under each).
    keys: KeyedMacs<Hmac<Sha256>>,
}

impl GithubVerifier {
    /// A verifier accepting a signature made with any of `secrets`; several
    /// are allowed so a secret can be rotated without dropping deliveries.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self {
            keys: KeyedMacs::new(&secrets),
        })
    }
}

impl Verifier for GithubVerifier {
    fn provider(&self) -> &'static str {
        "github"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let secret_index = verify_sha256_body(&self.keys, headers, SIGNATURE_HEADER, body)?;

        Ok(Verified {
            event: info_header(headers, EVENT_HEADER),
            delivery_id: info_header(headers, DELIVERY_HEADER),
            secret_index,
        })
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    /// GitHub's documented known-answer example.
    const DOC_SECRET: &str = "It's a Secret to Everybody";
    const DOC_PAYLOAD: &str = "Hello, World!";
    const DOC_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn verifier(secrets: &[&str]) -> GithubVerifier {
        GithubVerifier::new(secrets.iter().map(|s| Secret::from(s.as_bytes())).collect())
            .expect("at least one secret")
    }

    fn headers(signature: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(signature) = signature {
            headers.insert(
                SIGNATURE_HEADER,
                HeaderValue::from_str(signature).expect("ascii"),
            );
        }
        headers.insert(EVENT_HEADER, HeaderValue::from_static("push"));
        headers.insert(
            DELIVERY_HEADER,
            HeaderValue::from_static("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        );
        headers
    }

    #[test]
    fn accepts_githubs_documented_example() {
        let verified = verifier(&[DOC_SECRET])
            .verify(&headers(Some(DOC_SIGNATURE)), DOC_PAYLOAD.as_bytes())
            .expect("documented signature verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("push".to_owned()),
                delivery_id: Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".to_owned()),
                secret_index: 0,
            }
        );
    }

    #[test]
    fn accepts_uppercase_hex() {
        let upper = format!("sha256={}", DOC_SIGNATURE[7..].to_uppercase());
        assert!(
            verifier(&[DOC_SECRET])
                .verify(&headers(Some(&upper)), DOC_PAYLOAD.as_bytes())
                .is_ok()
        );
    }

    #[test]
    fn rejects_a_changed_body() {
        let err = verifier(&[DOC_SECRET])
            .verify(&headers(Some(DOC_SIGNATURE)), b"Hello, World?")
            .expect_err("body changed");
        assert_eq!(err, Rejection::SignatureMismatch);
        assert_eq!(err.code(), "signature_mismatch");
    }

    #[test]
    fn rejects_a_wrong_secret() {
        let err = verifier(&["another secret"])
            .verify(&headers(Some(DOC_SIGNATURE)), DOC_PAYLOAD.as_bytes())
            .expect_err("wrong secret");
        assert_eq!(err, Rejection::SignatureMismatch);
    }

    #[test]
    fn rejects_a_missing_signature() {
        let err = verifier(&[DOC_SECRET])
            .verify(&headers(None), DOC_PAYLOAD.as_bytes())
            .expect_err("no header");
        assert_eq!(err, Rejection::SignatureMissing);
        assert_eq!(err.code(), "signature_missing");
    }

    #[test]
    fn rejects_malformed_signatures() {
        let hex = &DOC_SIGNATURE[7..];
        let cases = [
            hex.to_owned(),                     // no prefix
            format!("sha1={hex}"),              // another scheme
            format!("sha256={}zz", &hex[..62]), // not hex
            format!("sha256={}", &hex[..62]),   // too short
            format!("sha256={hex}00"),          // too long
            "sha256=".to_owned(),               // empty
            format!("sha256= {hex}"),           // stray space
        ];
        for case in cases {
            let err = verifier(&[DOC_SECRET])
                .verify(&headers(Some(&case)), DOC_PAYLOAD.as_bytes())
                .expect_err(&case);
            assert_eq!(err, Rejection::SignatureMalformed, "{case}");
            assert_eq!(err.code(), "signature_malformed");
        }
    }

    #[test]
    fn rejects_a_repeated_signature_header() {
        let mut headers = headers(Some(DOC_SIGNATURE));
        // Even when one of the copies is right, the request is ambiguous.
        headers.append(SIGNATURE_HEADER, HeaderValue::from_static(DOC_SIGNATURE));
        let err = verifier(&[DOC_SECRET])
            .verify(&headers, DOC_PAYLOAD.as_bytes())
            .expect_err("two signature headers");
        assert_eq!(err, Rejection::SignatureMalformed);
    }

    #[test]
    fn accepts_any_rotated_secret_and_says_which() {
        let verified = verifier(&["the old secret", DOC_SECRET])
            .verify(&headers(Some(DOC_SIGNATURE)), DOC_PAYLOAD.as_bytes())
            .expect("second secret matches");
        assert_eq!(verified.secret_index, 1);
        let verified = verifier(&[DOC_SECRET, "the next secret"])
            .verify(&headers(Some(DOC_SIGNATURE)), DOC_PAYLOAD.as_bytes())
            .expect("first secret matches");
        assert_eq!(verified.secret_index, 0);
    }

    #[test]
    fn event_and_delivery_are_optional() {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_static(DOC_SIGNATURE));
        let verified = verifier(&[DOC_SECRET])
            .verify(&headers, DOC_PAYLOAD.as_bytes())
            .expect("verifies");
        assert_eq!(verified.event, None);
        assert_eq!(verified.delivery_id, None);
    }

    #[test]
    fn refuses_to_be_built_without_secrets() {
        assert!(matches!(
            GithubVerifier::new(Vec::new()),
            Err(VerifierError::NoSecrets)
        ));
    }
}
