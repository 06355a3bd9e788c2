//! GitLab's scheme: the webhook's secret token, sent as is in
//! `X-Gitlab-Token`. It is compared with each configured secret through
//! their SHA-256 digests, in constant time, so neither the token nor its
//! length leaks through timing. The event type is `X-Gitlab-Event`; the
//! delivery id is `Idempotency-Key` (kept across retries), else
//! `X-Gitlab-Event-UUID`.
//!
//! See <https://docs.gitlab.com/user/project/integrations/webhooks/#validate-payloads-by-using-a-secret-token>
//! and <https://docs.gitlab.com/user/project/integrations/webhooks/#delivery-headers>.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::hmac_common::require_secrets;
use super::{Rejection, Verified, Verifier, VerifierError, info_header, single_header};
use crate::secrets::Secret;

const TOKEN_HEADER: &str = "x-gitlab-token";
const EVENT_HEADER: &str = "x-gitlab-event";
const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const EVENT_UUID_HEADER: &str = "x-gitlab-event-uuid";

/// Verifies GitLab deliveries by their secret token.
#[derive(Debug)]
pub struct GitlabVerifier {
    digests: Vec<[u8; 32]>,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl GitlabVerifier {
    /// A verifier accepting any of `secrets` as the token.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self {
            digests: secrets.iter().map(|s| digest(s.expose())).collect(),
        })
    }
}

impl Verifier for GitlabVerifier {
    fn provider(&self) -> &'static str {
        "gitlab"
    }

    fn verify(&self, headers: &HeaderMap, _body: &[u8]) -> Result<Verified, Rejection> {
        let token = single_header(headers, TOKEN_HEADER)
            .map_err(|()| Rejection::TokenMismatch)?
            .ok_or(Rejection::TokenMissing)?;
        let given = digest(token.as_bytes());
        // Every secret is compared, so timing does not tell which matched.
        let mut matched = None;
        for (index, candidate) in self.digests.iter().enumerate() {
            if bool::from(candidate.ct_eq(&given)) && matched.is_none() {
                matched = Some(index);
            }
        }
        let secret_index = matched.ok_or(Rejection::TokenMismatch)?;
        Ok(Verified {
            event: info_header(headers, EVENT_HEADER),
            delivery_id: info_header(headers, IDEMPOTENCY_HEADER)
                .or_else(|| info_header(headers, EVENT_UUID_HEADER)),
            secret_index,
        })
    }
}

/// The token header GitLab sends with `secret` configured.
pub fn sign(secret: &[u8]) -> Vec<(&'static str, String)> {
    vec![(TOKEN_HEADER, String::from_utf8_lossy(secret).into_owned())]
}

#[cfg(test)]
mod tests {
    use super::super::hmac_common::test_support::*;
    use super::*;

    fn verifier(tokens: &[&str]) -> GitlabVerifier {
        GitlabVerifier::new(secrets(tokens)).expect("verifier")
    }

    #[test]
    fn the_token_with_event_and_delivery() {
        let verified = verifier(&["glpat-ish-token"])
            .verify(
                &headers(&[
                    (TOKEN_HEADER, "glpat-ish-token"),
                    (EVENT_HEADER, "Push Hook"),
                    (IDEMPOTENCY_HEADER, "f0ab3b8e-5d6a-4f5c-9c3e-1b2a3c4d5e6f"),
                    (EVENT_UUID_HEADER, "13792a34-cac6-4fda-95a8-c58e00a3954e"),
                ]),
                b"{}",
            )
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("Push Hook".into()),
                delivery_id: Some("f0ab3b8e-5d6a-4f5c-9c3e-1b2a3c4d5e6f".into()),
                secret_index: 0,
            }
        );
        let verified = verifier(&["t"])
            .verify(
                &headers(&[(TOKEN_HEADER, "t"), (EVENT_UUID_HEADER, "uuid-1")]),
                b"{}",
            )
            .expect("verifies");
        assert_eq!(verified.delivery_id.as_deref(), Some("uuid-1"));
        assert!(
            verifier(&["t"])
                .verify(&signed_headers(&sign(b"t")), b"")
                .is_ok()
        );
    }

    #[test]
    fn wrong_missing_repeated_and_huge_tokens() {
        let v = verifier(&["token"]);
        for wrong in ["tokem", "token ", "Token", "", "tok", &huge_value("token")] {
            assert_eq!(
                v.verify(&headers(&[(TOKEN_HEADER, wrong)]), b""),
                Err(Rejection::TokenMismatch),
                "{}",
                &wrong[..wrong.len().min(20)]
            );
        }
        assert_eq!(v.verify(&headers(&[]), b""), Err(Rejection::TokenMissing));
        assert_eq!(
            v.verify(
                &headers(&[(TOKEN_HEADER, "nope"), (TOKEN_HEADER, "token")]),
                b""
            ),
            Err(Rejection::TokenMismatch),
            "a second copy cannot smuggle in a guess"
        );
    }

    #[test]
    fn rotation() {
        let v = verifier(&["old", "new"]);
        assert_eq!(
            v.verify(&headers(&[(TOKEN_HEADER, "new")]), b"")
                .map(|v| v.secret_index),
            Ok(1)
        );
        assert_eq!(
            v.verify(&headers(&[(TOKEN_HEADER, "old")]), b"")
                .map(|v| v.secret_index),
            Ok(0)
        );
        assert!(matches!(
            GitlabVerifier::new(Vec::new()),
            Err(VerifierError::NoSecrets)
        ));
    }
}
