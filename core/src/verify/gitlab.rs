//! GitLab's scheme: the webhook's secret token, sent as is in
//! `X-Gitlab-Token`. It is compared with each configured secret through
//! their SHA-256 digests, in constant time, so neither the token nor its
//! length leaks through timing. The event type is `X-Gitlab-Event`; the
//! delivery id is `Idempotency-Key` (kept across retries), else
//! `X-Gitlab-Event-UUID`.
//!
//! Newer GitLab versions can also sign deliveries with a *signing token*
//! (`whsec_<base64>`): the Standard Webhooks headers `webhook-id` (the
//! `Idempotency-Key`), `webhook-timestamp` and `webhook-signature: v1,<base64
//! HMAC-SHA256 of "<id>.<ts>.<body>">`. A secret written `whsec_<base64>` is
//! taken as a signing token, any other secret as a secret token. When
//! signing tokens are configured a valid signature is required; when secret
//! tokens are configured a valid token is required (GitLab sends both when
//! both are set).
//!
//! See <https://docs.gitlab.com/user/project/integrations/webhooks/#validate-payloads-by-using-a-secret-token>,
//! <https://docs.gitlab.com/user/project/integrations/webhooks/#delivery-headers>
//! and <https://gitlab.com/gitlab-org/gitlab/-/merge_requests/230944>.

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::hmac_common::{require_secrets, system_clock};
use super::standard_webhooks::{self, Scheme, StandardWebhooksVerifier};
use super::{Clock, Rejection, Verified, Verifier, VerifierError, info_header, single_header};
use crate::secrets::Secret;

const TOKEN_HEADER: &str = "x-gitlab-token";
const EVENT_HEADER: &str = "x-gitlab-event";
const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const EVENT_UUID_HEADER: &str = "x-gitlab-event-uuid";

/// The signing token's headers: those of Standard Webhooks.
const SIGNING_SCHEME: Scheme = Scheme {
    provider: "gitlab",
    ..standard_webhooks::SCHEME
};

/// The signing token's replay window, as Standard Webhooks.
pub const DEFAULT_TOLERANCE_SECS: u32 = standard_webhooks::DEFAULT_TOLERANCE_SECS;

/// Verifies GitLab deliveries by their secret token and/or signing token.
#[derive(Debug)]
pub struct GitlabVerifier {
    /// Digests of the secret tokens, with their index in `secretRefs`.
    tokens: Vec<(usize, [u8; 32])>,
    /// The signing tokens' verifier, with their indexes in `secretRefs`.
    signing: Option<(StandardWebhooksVerifier, Vec<usize>)>,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Whether a secret is a signing token (`whsec_…`) rather than a secret token.
fn is_signing_token(secret: &Secret) -> bool {
    secret.expose().starts_with(b"whsec_")
}

impl GitlabVerifier {
    /// A verifier accepting any of the secret tokens among `secrets` and
    /// signatures by any of the signing tokens within `tolerance` seconds.
    pub fn new(secrets: Vec<Secret>, tolerance: u32) -> Result<Self, VerifierError> {
        Self::with_clock(secrets, tolerance, system_clock)
    }

    /// As [`GitlabVerifier::new`], reading the time from `clock`.
    pub fn with_clock(
        secrets: Vec<Secret>,
        tolerance: u32,
        clock: Clock,
    ) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        let tokens = secrets
            .iter()
            .enumerate()
            .filter(|(_, s)| !is_signing_token(s))
            .map(|(index, s)| (index, digest(s.expose())))
            .collect();
        let (indexes, signing): (Vec<usize>, Vec<Secret>) = secrets
            .into_iter()
            .enumerate()
            .filter(|(_, s)| is_signing_token(s))
            .unzip();
        let signing = if signing.is_empty() {
            None
        } else {
            let verifier =
                StandardWebhooksVerifier::with_clock(SIGNING_SCHEME, signing, tolerance, clock)
                    .map_err(|err| match err {
                        // Report the index in `secretRefs`, not among the signing tokens.
                        VerifierError::KeyEncoding { check, index } => VerifierError::KeyEncoding {
                            check,
                            index: indexes.get(index).copied().unwrap_or(index),
                        },
                        other => other,
                    })?;
            Some((verifier, indexes))
        };
        Ok(Self { tokens, signing })
    }

    fn verify_token(&self, headers: &HeaderMap) -> Result<usize, Rejection> {
        let token = single_header(headers, TOKEN_HEADER)
            .map_err(|()| Rejection::TokenMismatch)?
            .ok_or(Rejection::TokenMissing)?;
        let given = digest(token.as_bytes());
        // Every secret is compared, so timing does not tell which matched.
        let mut matched = None;
        for (index, candidate) in &self.tokens {
            if bool::from(candidate.ct_eq(&given)) && matched.is_none() {
                matched = Some(*index);
            }
        }
        matched.ok_or(Rejection::TokenMismatch)
    }
}

impl Verifier for GitlabVerifier {
    fn provider(&self) -> &'static str {
        "gitlab"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![TOKEN_HEADER]
    }

    /// The secret token is checked whole (it needs no body); with signing
    /// tokens, their signature header must be there.
    fn precheck(&self, request: &super::Head<'_>) -> Result<(), Rejection> {
        if let Some((verifier, _)) = &self.signing {
            verifier.precheck(request)?;
        }
        if !self.tokens.is_empty() {
            self.verify_token(request.headers)?;
        }
        Ok(())
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        // Every configured kind of secret must be satisfied.
        let signed = match &self.signing {
            Some((verifier, indexes)) => {
                let verified = verifier.verify(headers, body)?;
                Some(
                    indexes
                        .get(verified.secret_index)
                        .copied()
                        .unwrap_or_default(),
                )
            }
            None => None,
        };
        let token = if self.tokens.is_empty() {
            None
        } else {
            Some(self.verify_token(headers)?)
        };
        let secret_index = signed.or(token).unwrap_or_default();
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

/// The headers GitLab sends for `body` with the signing token `secret`
/// (`whsec_<base64>`); `None` when it is not base64.
pub fn sign_with_signing_token(
    secret: &[u8],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<Vec<(&'static str, String)>> {
    let mut headers = standard_webhooks::sign_scheme(SIGNING_SCHEME, secret, id, timestamp, body)?;
    headers.push((IDEMPOTENCY_HEADER, id.to_owned()));
    Some(headers)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::super::hmac_common::test_support::*;
    use super::*;

    fn verifier(tokens: &[&str]) -> GitlabVerifier {
        GitlabVerifier::with_clock(secrets(tokens), DEFAULT_TOLERANCE_SECS, now).expect("verifier")
    }

    const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BODY: &[u8] = br#"{"object_kind":"push"}"#;

    fn signed(secret: &str, ts: i64) -> HeaderMap {
        let mut pairs =
            sign_with_signing_token(secret.as_bytes(), "idem-1", ts, BODY).expect("base64 secret");
        pairs.push((EVENT_HEADER, "Push Hook".to_owned()));
        signed_headers(&pairs)
    }

    #[test]
    fn signing_token() {
        let v = verifier(&[SIGNING]);
        let verified = v.verify(&signed(SIGNING, NOW), BODY).expect("signed");
        assert_eq!(
            verified,
            Verified {
                event: Some("Push Hook".into()),
                delivery_id: Some("idem-1".into()),
                secret_index: 0,
            }
        );
        assert_eq!(
            v.verify(&signed(SIGNING, NOW), &tamper(BODY)),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            v.verify(&signed(SIGNING, NOW - 301), BODY),
            Err(Rejection::TimestampOutOfTolerance)
        );
        assert_eq!(
            v.verify(&headers(&[(TOKEN_HEADER, SIGNING)]), BODY),
            Err(Rejection::SignatureMissing),
            "with a signing token configured, the plain token header is not enough"
        );
        let other = "whsec_b3RoZXIta2V5LWJ5dGVz";
        let rotated = verifier(&["plain-old", other, SIGNING]);
        let with_token = with_header(&signed(SIGNING, NOW), TOKEN_HEADER, "plain-old");
        assert_eq!(
            rotated.verify(&with_token, BODY).map(|v| v.secret_index),
            Ok(2),
            "the index is the one in secretRefs"
        );
        assert_eq!(
            rotated.verify(&signed(SIGNING, NOW), BODY),
            Err(Rejection::TokenMissing),
            "a configured secret token is still required"
        );
        let err = GitlabVerifier::new(secrets(&["plain", "whsec_!!"]), 300).expect_err("bad key");
        assert!(err.to_string().contains("secretRefs[1]"), "{err}");
    }

    #[test]
    fn a_malformed_signature_entry_does_not_refuse_a_good_one() {
        let v = verifier(&[SIGNING]);
        let good = signed(SIGNING, NOW);
        let name = SIGNING_SCHEME.signature_header;
        let sig = good[name].to_str().expect("ascii").to_owned();
        let other = format!("v1,{}", BASE64.encode([9u8; 32]));
        for listed in [
            format!("v1,!!! {sig}"),
            format!("{sig} v1a,AAAA"),
            format!("v1,AAAA {other} {sig} v1"),
        ] {
            assert!(
                v.verify(&with_header(&good, name, &listed), BODY).is_ok(),
                "{listed}"
            );
        }
        assert_eq!(
            v.verify(&with_header(&good, name, "v1,!!! v1a,AAAA v1"), BODY),
            Err(Rejection::SignatureMalformed)
        );
        assert_eq!(
            v.verify(&with_header(&good, name, &format!("v1,!!! {other}")), BODY),
            Err(Rejection::SignatureMismatch)
        );
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
            GitlabVerifier::new(Vec::new(), 300),
            Err(VerifierError::NoSecrets)
        ));
    }
}
