//! Bitbucket Cloud's scheme: `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
//!
//! Note the header name: GitHub uses `X-Hub-Signature` for SHA-1, Bitbucket
//! for SHA-256. The event is `X-Event-Key` (e.g. `repo:push`); the delivery
//! id is `X-Request-UUID` ("the UUID of the request"). Bitbucket does not
//! document whether its two retries (`X-Attempt-Number`) keep that UUID; if
//! they do not, a retry is stored as a separate delivery.
//!
//! See <https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/>
//! (webhook secrets) and
//! <https://support.atlassian.com/bitbucket-cloud/docs/event-payloads/> (headers).

use hmac::Hmac;
use http::HeaderMap;
use sha2::Sha256;

use super::hmac_common::{KeyedMacs, mac, verify_sha256_body};
use super::require_secrets;
use super::{Rejection, Verified, Verifier, VerifierError, info_header};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-hub-signature";
const EVENT_HEADER: &str = "x-event-key";
const DELIVERY_HEADER: &str = "x-request-uuid";
const SCHEME_PREFIX: &str = "sha256=";

/// Verifies Bitbucket Cloud deliveries against one or more secrets.
#[derive(Debug)]
pub struct BitbucketVerifier {
    /// The secrets, keyed once (every delivery is an HMAC under each).
    keys: KeyedMacs<Hmac<Sha256>>,
}

impl BitbucketVerifier {
    /// A verifier accepting a signature made with any of `secrets` (rotation).
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self {
            keys: KeyedMacs::new(&secrets),
        })
    }
}

/// The `X-Hub-Signature` value Bitbucket sends for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!(
        "{SCHEME_PREFIX}{}",
        hex::encode(mac::<Hmac<Sha256>>(secret, &[body]))
    )
}

impl Verifier for BitbucketVerifier {
    fn provider(&self) -> &'static str {
        "bitbucket"
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

    const SECRET: &str = "bitbucket webhook secret";
    const BODY: &str = r#"{"push":{"changes":[]},"repository":{"full_name":"team/repo"}}"#;
    /// Computed independently with Python's `hmac` module:
    /// `hmac.new(SECRET, BODY, sha256).hexdigest()`. Bitbucket publishes no
    /// test vector; the scheme is documented at
    /// <https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/>.
    const EXPECTED: &str =
        "sha256=b7e305b1908748c0ee2f40101db0955db03acd7932670de0e164738e3ddb7547";
    const UUID: &str = "1b1f5ac6-2b4c-4b35-9bd5-1df04d5f4c3e";

    fn verifier(secrets: &[&str]) -> BitbucketVerifier {
        BitbucketVerifier::new(secrets.iter().map(|s| Secret::from(s.as_bytes())).collect())
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
        headers.insert(EVENT_HEADER, HeaderValue::from_static("repo:push"));
        headers.insert(DELIVERY_HEADER, HeaderValue::from_static(UUID));
        headers
    }

    #[test]
    fn sign_matches_an_independent_implementation() {
        assert_eq!(sign(SECRET.as_bytes(), BODY.as_bytes()), EXPECTED);
    }

    #[test]
    fn accepts_a_signed_delivery() {
        let verified = verifier(&[SECRET])
            .verify(&headers(Some(EXPECTED)), BODY.as_bytes())
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("repo:push".to_owned()),
                delivery_id: Some(UUID.to_owned()),
                secret_index: 0,
            }
        );
    }

    #[test]
    fn rejects_any_single_byte_change_of_the_body() {
        let v = verifier(&[SECRET]);
        for i in 0..BODY.len() {
            let mut body = BODY.as_bytes().to_vec();
            body[i] ^= 0x01;
            assert_eq!(
                v.verify(&headers(Some(EXPECTED)), &body),
                Err(Rejection::SignatureMismatch),
                "byte {i}"
            );
        }
    }

    #[test]
    fn rejects_a_changed_signature() {
        let mut tampered = EXPECTED.to_owned();
        let last = tampered.pop().expect("non-empty");
        tampered.push(if last == '0' { '1' } else { '0' });
        assert_eq!(
            verifier(&[SECRET]).verify(&headers(Some(&tampered)), BODY.as_bytes()),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn rejects_missing_malformed_and_repeated_signatures() {
        let v = verifier(&[SECRET]);
        assert_eq!(
            v.verify(&headers(None), BODY.as_bytes()),
            Err(Rejection::SignatureMissing)
        );
        let hex = &EXPECTED[7..];
        let long = format!("sha256={}", "a".repeat(100 * 1024));
        for case in [
            hex.to_owned(),
            format!("sha1={hex}"),
            format!("sha256={}zz", &hex[..62]),
            format!("sha256={hex}00"),
            "sha256=".to_owned(),
            long,
        ] {
            assert_eq!(
                v.verify(&headers(Some(&case)), BODY.as_bytes()),
                Err(Rejection::SignatureMalformed),
                "{}",
                &case[..case.len().min(80)]
            );
        }
        let mut repeated = headers(Some(EXPECTED));
        repeated.append(SIGNATURE_HEADER, HeaderValue::from_static(EXPECTED));
        assert_eq!(
            v.verify(&repeated, BODY.as_bytes()),
            Err(Rejection::SignatureMalformed)
        );
    }

    #[test]
    fn accepts_a_rotated_secret_and_says_which() {
        let verified = verifier(&["old secret", SECRET])
            .verify(&headers(Some(EXPECTED)), BODY.as_bytes())
            .expect("second secret matches");
        assert_eq!(verified.secret_index, 1);
        assert_eq!(
            verifier(&["old secret"]).verify(&headers(Some(EXPECTED)), BODY.as_bytes()),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn refuses_to_be_built_without_secrets() {
        assert!(matches!(
            BitbucketVerifier::new(Vec::new()),
            Err(VerifierError::NoSecrets)
        ));
    }
}
