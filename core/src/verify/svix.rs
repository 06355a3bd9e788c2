//! Svix: the Standard Webhooks scheme with `svix-id`, `svix-timestamp` and
//! `svix-signature` headers and `whsec_<base64>` secrets. Like Svix's own
//! libraries, a delivery without `svix-signature` may carry the
//! `webhook-*` headers instead (all three from the same family).
//!
//! See <https://docs.svix.com/receiving/verifying-payloads/how-manual>.

use super::standard_webhooks::{Scheme, StandardWebhooksVerifier, sign_scheme};
use super::{Clock, VerifierError, hmac_common::system_clock};
use crate::secrets::Secret;

pub use super::standard_webhooks::DEFAULT_TOLERANCE_SECS;

/// Svix's header names.
pub const SCHEME: Scheme = Scheme {
    provider: "svix",
    id_header: "svix-id",
    timestamp_header: "svix-timestamp",
    signature_header: "svix-signature",
    also_standard_headers: true,
};

/// A Svix verifier accepting any of `secrets` within `tolerance` seconds.
pub fn verifier(
    secrets: Vec<Secret>,
    tolerance: u32,
) -> Result<StandardWebhooksVerifier, VerifierError> {
    verifier_with_clock(secrets, tolerance, system_clock)
}

/// As [`verifier`], reading the time from `clock`.
pub fn verifier_with_clock(
    secrets: Vec<Secret>,
    tolerance: u32,
    clock: Clock,
) -> Result<StandardWebhooksVerifier, VerifierError> {
    StandardWebhooksVerifier::with_clock(SCHEME, secrets, tolerance, clock)
}

/// The headers Svix sends for `body`, signed with `secret` (`whsec_<base64>`);
/// `None` when the secret is not base64.
pub fn sign(
    secret: &[u8],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<Vec<(&'static str, String)>> {
    sign_scheme(SCHEME, secret, id, timestamp, body)
}

#[cfg(test)]
mod tests {
    use super::super::Verifier;
    use super::super::hmac_common::test_support::*;
    use super::super::standard_webhooks::shared_tests::*;
    use super::*;

    #[test]
    fn svix_is_standard_webhooks_under_svix_names() {
        published_vector(SCHEME);
        round_trip_and_lists(SCHEME);
        candidate_lists(SCHEME);
        tampering(SCHEME);
        missing_and_malformed(SCHEME);
        timestamps(SCHEME);
        rotation_and_bad_keys(SCHEME);
    }

    #[test]
    fn webhook_headers_are_accepted_too_but_never_mixed() {
        let v = verifier_with_clock(secrets(&[VECTOR_SECRET]), DEFAULT_TOLERANCE_SECS, || {
            VECTOR_TIMESTAMP
        })
        .expect("verifier");
        assert_eq!(v.provider(), "svix");
        let standard = signed_headers(
            &super::super::standard_webhooks::sign(
                VECTOR_SECRET.as_bytes(),
                VECTOR_ID,
                VECTOR_TIMESTAMP,
                VECTOR_BODY.as_bytes(),
            )
            .expect("secret"),
        );
        assert_eq!(
            v.verify(&standard, VECTOR_BODY.as_bytes())
                .map(|v| v.delivery_id),
            Ok(Some(VECTOR_ID.to_owned()))
        );
        // A svix-id next to a webhook-signature is not used.
        let mut mixed = standard.clone();
        mixed.remove("webhook-id");
        mixed.insert("svix-id", VECTOR_ID.parse().expect("header value"));
        assert_eq!(
            v.verify(&mixed, VECTOR_BODY.as_bytes()),
            Err(super::super::Rejection::SignatureMalformed)
        );
        let svix = signed_headers(
            &sign(
                VECTOR_SECRET.as_bytes(),
                VECTOR_ID,
                VECTOR_TIMESTAMP,
                VECTOR_BODY.as_bytes(),
            )
            .expect("secret"),
        );
        assert!(v.verify(&svix, VECTOR_BODY.as_bytes()).is_ok());
    }
}
