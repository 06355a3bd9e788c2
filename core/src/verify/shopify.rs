//! Shopify's scheme: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(app secret,
//! body)>`. The event type is `X-Shopify-Topic`; the delivery id is
//! `X-Shopify-Webhook-Id` (kept across retries), else `X-Shopify-Event-Id`.
//!
//! See <https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook>.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Hmac;
use http::HeaderMap;
use sha2::Sha256;

use super::hmac_common::{find_secret, mac, require_secrets, signature_header};
use super::{Rejection, Verified, Verifier, VerifierError, info_header};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-shopify-hmac-sha256";
const TOPIC_HEADER: &str = "x-shopify-topic";
const WEBHOOK_ID_HEADER: &str = "x-shopify-webhook-id";
const EVENT_ID_HEADER: &str = "x-shopify-event-id";

/// Verifies Shopify deliveries against one or more app secrets.
#[derive(Debug)]
pub struct ShopifyVerifier {
    secrets: Vec<Secret>,
}

impl ShopifyVerifier {
    /// A verifier accepting a signature made with any of `secrets`.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self { secrets })
    }
}

impl Verifier for ShopifyVerifier {
    fn provider(&self) -> &'static str {
        "shopify"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let value = signature_header(headers, SIGNATURE_HEADER)?;
        let signature = BASE64
            .decode(value)
            .ok()
            .filter(|s| s.len() == 32)
            .ok_or(Rejection::SignatureMalformed)?;
        let secret_index = find_secret::<Hmac<Sha256>>(&self.secrets, &[body], &[signature])
            .ok_or(Rejection::SignatureMismatch)?;
        Ok(Verified {
            event: info_header(headers, TOPIC_HEADER),
            delivery_id: info_header(headers, WEBHOOK_ID_HEADER)
                .or_else(|| info_header(headers, EVENT_ID_HEADER)),
            secret_index,
        })
    }
}

/// The signature header Shopify sends for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> Vec<(&'static str, String)> {
    vec![(
        SIGNATURE_HEADER,
        BASE64.encode(mac::<Hmac<Sha256>>(secret, &[body])),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::hmac_common::test_support::*;
    use super::*;

    const BODY: &[u8] = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;
    /// Shopify publishes no fixed vector; independently computed with
    /// `printf '%s' "$BODY" | openssl dgst -sha256 -hmac shpss_secret -binary | base64`
    /// following <https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook>.
    const KNOWN: &str = "vo+n5h/cLxNKGlgJ0Fd1aDzU0aOaajK8Hs9m0hPqWiQ=";

    #[test]
    fn known_answer_with_topic_and_ids() {
        let v = ShopifyVerifier::new(secrets(&["shpss_secret"])).expect("verifier");
        let verified = v
            .verify(
                &headers(&[
                    (SIGNATURE_HEADER, KNOWN),
                    (TOPIC_HEADER, "orders/create"),
                    (WEBHOOK_ID_HEADER, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
                    (EVENT_ID_HEADER, "98880550-7158-44d4-b7cd-2c97c8a091b5"),
                ]),
                BODY,
            )
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("orders/create".into()),
                delivery_id: Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043".into()),
                secret_index: 0,
            }
        );
        let verified = v
            .verify(
                &headers(&[(SIGNATURE_HEADER, KNOWN), (EVENT_ID_HEADER, "e-1")]),
                BODY,
            )
            .expect("verifies");
        assert_eq!(verified.delivery_id.as_deref(), Some("e-1"));
        assert_eq!(sign(b"shpss_secret", BODY)[0].1, KNOWN);
        // Hex is not what Shopify sends.
        let hex_sig = hex::encode(BASE64.decode(KNOWN).expect("base64"));
        assert_eq!(
            v.verify(&headers(&[(SIGNATURE_HEADER, &hex_sig)]), BODY),
            Err(Rejection::SignatureMalformed)
        );
    }

    #[test]
    fn common_behaviour() {
        body_signature_suite(&Suite {
            build: |s| Ok(Box::new(ShopifyVerifier::new(s)?)),
            sign,
            signature_header: SIGNATURE_HEADER,
            body: BODY,
        });
    }
}
