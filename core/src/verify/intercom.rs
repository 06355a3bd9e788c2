//! Intercom's scheme: `X-Hub-Signature: sha1=<hex HMAC-SHA1(client secret,
//! body)>`. The event is the body's `topic`, the delivery id its `id`.
//!
//! See <https://developers.intercom.com/docs/webhooks/webhook-notifications#signed-notifications>.

use hmac::Hmac;
use http::HeaderMap;
use sha1::Sha1;

use super::hmac_common::{
    find_secret, json_body, json_info, mac, prefixed_hex, require_secrets, signature_header,
};
use super::{Rejection, Verified, Verifier, VerifierError};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-hub-signature";

/// Verifies Intercom deliveries against one or more client secrets.
#[derive(Debug)]
pub struct IntercomVerifier {
    secrets: Vec<Secret>,
}

impl IntercomVerifier {
    /// A verifier accepting a signature made with any of `secrets`.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self { secrets })
    }
}

impl Verifier for IntercomVerifier {
    fn provider(&self) -> &'static str {
        "intercom"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let signature = prefixed_hex(signature_header(headers, SIGNATURE_HEADER)?, "sha1=", 20)?;
        let secret_index = find_secret::<Hmac<Sha1>>(&self.secrets, &[body], &[signature])
            .ok_or(Rejection::SignatureMismatch)?;
        let json = json_body(body);
        Ok(Verified {
            event: json_info(json.as_ref(), "/topic"),
            delivery_id: json_info(json.as_ref(), "/id"),
            secret_index,
        })
    }
}

/// The signature header Intercom sends for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> Vec<(&'static str, String)> {
    vec![(
        SIGNATURE_HEADER,
        format!("sha1={}", hex::encode(mac::<Hmac<Sha1>>(secret, &[body]))),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::hmac_common::test_support::*;
    use super::*;

    const BODY: &[u8] =
        br#"{"type":"notification_event","topic":"conversation.user.created","id":"notif_1"}"#;
    /// Intercom publishes no fixed vector; independently computed with
    /// `printf '%s' "$BODY" | openssl dgst -sha1 -hmac ic_secret` following
    /// <https://developers.intercom.com/docs/webhooks/webhook-notifications#signed-notifications>.
    const KNOWN: &str = "sha1=b0d6c2f3d2e5e92b84b1a1d335a2329137620724";

    #[test]
    fn known_answer_topic_and_id() {
        let v = IntercomVerifier::new(secrets(&["ic_secret"])).expect("verifier");
        let verified = v
            .verify(&headers(&[(SIGNATURE_HEADER, KNOWN)]), BODY)
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("conversation.user.created".into()),
                delivery_id: Some("notif_1".into()),
                secret_index: 0,
            }
        );
        assert_eq!(sign(b"ic_secret", BODY)[0].1, KNOWN);
        // A SHA-256-length signature is malformed for SHA-1.
        let long = format!("sha1={}", "ab".repeat(32));
        assert_eq!(
            v.verify(&headers(&[(SIGNATURE_HEADER, &long)]), BODY),
            Err(Rejection::SignatureMalformed)
        );
    }

    #[test]
    fn common_behaviour() {
        body_signature_suite(&Suite {
            build: |s| Ok(Box::new(IntercomVerifier::new(s)?)),
            sign,
            signature_header: SIGNATURE_HEADER,
            body: BODY,
        });
    }
}
