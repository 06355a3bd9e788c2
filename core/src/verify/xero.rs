//! Xero's webhook signature: `x-xero-signature: <base64 HMAC-SHA256(webhook
//! key, body)>`, the webhook key used as the text Xero shows (base64-looking,
//! not decoded). Xero signs no timestamp and sends no delivery id. The event
//! type is the first event's `<eventCategory>.<eventType>` (e.g.
//! `INVOICE.UPDATE`); Xero batches events, and a batch is stored as one
//! delivery.
//!
//! Xero's "Intent to Receive" check, made when a subscription is created,
//! re-enabled or moved, posts `{"events": [], "firstEventSequence": 0,
//! "lastEventSequence": 0, "entropy": ...}` several times, some correctly
//! signed and some not: a correctly signed one must get `200` and every
//! other one `401`. Every [`Rejection`] is answered `401` by the receiver;
//! a correctly signed delivery without events is answered as a handshake,
//! `200` with an empty body (Xero asks for no body) and not stored.
//!
//! See <https://developer.xero.com/documentation/guides/webhooks/configuring-your-server/>.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Hmac;
use http::HeaderMap;
use sha2::Sha256;

use super::hmac_common::{
    find_secret, json_body, json_info, mac, require_secrets, signature_header,
};
use super::{
    Handshake, Incoming, Rejection, Verdict, Verified, Verifier, VerifierError, info_value,
};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-xero-signature";

/// Verifies Xero webhooks against one or more webhook keys.
#[derive(Debug)]
pub struct XeroVerifier {
    secrets: Vec<Secret>,
}

impl XeroVerifier {
    /// A verifier accepting a signature made with any of `secrets`.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self { secrets })
    }
}

/// The first event's `<eventCategory>.<eventType>`.
fn event(json: Option<&serde_json::Value>) -> Option<String> {
    let category = json_info(json, "/events/0/eventCategory")?;
    let kind = json_info(json, "/events/0/eventType")?;
    info_value(&format!("{category}.{kind}"))
}

impl Verifier for XeroVerifier {
    fn provider(&self) -> &'static str {
        "xero"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let value = signature_header(headers, SIGNATURE_HEADER)?;
        let signature = BASE64
            .decode(value.trim())
            .ok()
            .filter(|s| s.len() == 32)
            .ok_or(Rejection::SignatureMalformed)?;
        let secret_index = find_secret::<Hmac<Sha256>>(&self.secrets, &[body], &[signature])
            .ok_or(Rejection::SignatureMismatch)?;
        Ok(Verified {
            event: event(json_body(body).as_ref()),
            delivery_id: None,
            secret_index,
        })
    }

    /// A correctly signed body whose `events` is an empty array is an
    /// Intent to Receive check: `200`, no body, nothing stored.
    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        let verified = self.verify(request.headers, request.body)?;
        let no_events = json_body(request.body)
            .as_ref()
            .and_then(|json| json.get("events"))
            .and_then(serde_json::Value::as_array)
            .is_some_and(Vec::is_empty);
        if no_events {
            Ok(Handshake::answer(verified, "text/plain", Vec::new()))
        } else {
            Ok(Verdict::Deliver(verified))
        }
    }
}

/// An Intent to Receive body as Xero sends it.
pub fn intent_to_receive_body(entropy: &str) -> Vec<u8> {
    serde_json::json!({
        "events": [],
        "firstEventSequence": 0,
        "lastEventSequence": 0,
        "entropy": entropy,
    })
    .to_string()
    .into_bytes()
}

/// The header Xero sends for `body` signed with the webhook `key`.
pub fn sign(key: &[u8], body: &[u8]) -> Vec<(&'static str, String)> {
    vec![(
        SIGNATURE_HEADER,
        BASE64.encode(mac::<Hmac<Sha256>>(key, &[body])),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::hmac_common::test_support::*;
    use super::super::{check_post, expect_handshake};
    use super::*;

    /// A made-up webhook key in the form Xero shows (64 bytes, base64).
    const KEY: &str =
        "aG9va3dhcmRlbi10ZXN0LXhlcm8td2ViaG9vay1rZXktbm90LWEtcmVhbC1vbmUtMDEyMzQ1Njc4OWFiY2RlZg==";
    /// Xero's documented Intent to Receive payload, as one line.
    const ITR: &str =
        r#"{"events":[],"lastEventSequence":0,"firstEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}"#;
    /// Xero publishes no signature for it; independently computed with
    /// `printf '%s' "$ITR" | openssl dgst -sha256 -hmac "$KEY" -binary | base64`,
    /// following <https://developer.xero.com/documentation/guides/webhooks/configuring-your-server/>.
    const ITR_SIGNATURE: &str = "CesUzR+zXVj64vooZVYvaD6Ot1dzpS6dAM514HmW4KQ=";
    const BODY: &[u8] = br#"{"events":[{"resourceUrl":"https://api.xero.com/api.xro/2.0/Invoices/717f2bfc-c6d4-41fd-b238-3f2f0c0cf777","resourceId":"717f2bfc-c6d4-41fd-b238-3f2f0c0cf777","eventDateUtc":"2017-06-21T01:15:39.902","eventType":"UPDATE","eventCategory":"INVOICE","tenantId":"c2cc9b6e-9458-4c7d-93cc-f02b81b0594f","tenantType":"ORGANISATION"}],"lastEventSequence":1,"firstEventSequence":1,"entropy":"S0m3r4Nd0mt3xt"}"#;

    fn verifier(secrets_: &[&str]) -> XeroVerifier {
        XeroVerifier::new(secrets(secrets_)).expect("verifier")
    }

    #[test]
    fn intent_to_receive_signed_correctly_gets_an_empty_200() {
        let v = verifier(&["old", KEY]);
        let good = headers(&[(SIGNATURE_HEADER, ITR_SIGNATURE)]);
        let handshake = expect_handshake(check_post(&v, &good, ITR.as_bytes()));
        assert!(handshake.body.is_empty());
        assert_eq!(handshake.verified.secret_index, 1);
        assert_eq!(sign(KEY.as_bytes(), ITR.as_bytes())[0].1, ITR_SIGNATURE);
        let built = intent_to_receive_body("S0m3r4Nd0mt3xt");
        expect_handshake(check_post(
            &v,
            &signed_headers(&sign(KEY.as_bytes(), &built)),
            &built,
        ));
    }

    #[test]
    fn intent_to_receive_signed_incorrectly_is_refused() {
        // What Xero's check sends: the key's signature of another payload,
        // another key's signature, a garbled one, none.
        let v = verifier(&[KEY]);
        let other_body = intent_to_receive_body("0th3rt3xt");
        let refused = |headers: HeaderMap| check_post(&v, &headers, ITR.as_bytes()).map(|_| ());
        for (headers, expected) in [
            (
                signed_headers(&sign(KEY.as_bytes(), &other_body)),
                Rejection::SignatureMismatch,
            ),
            (
                signed_headers(&sign(b"another key", ITR.as_bytes())),
                Rejection::SignatureMismatch,
            ),
            (
                headers(&[(SIGNATURE_HEADER, "invalid")]),
                Rejection::SignatureMalformed,
            ),
            (HeaderMap::new(), Rejection::SignatureMissing),
        ] {
            assert_eq!(refused(headers), Err(expected));
        }
    }

    #[test]
    fn events_are_delivered_with_their_type() {
        let verdict = check_post(
            &verifier(&[KEY]),
            &signed_headers(&sign(KEY.as_bytes(), BODY)),
            BODY,
        );
        assert_eq!(
            verdict,
            Ok(Verdict::Deliver(Verified {
                event: Some("INVOICE.UPDATE".into()),
                delivery_id: None,
                secret_index: 0,
            }))
        );
        // Not JSON, or `events` not an array: a delivery without a type.
        for body in [&b"not json"[..], br#"{"events":{}}"#] {
            assert!(matches!(
                check_post(
                    &verifier(&[KEY]),
                    &signed_headers(&sign(KEY.as_bytes(), body)),
                    body
                ),
                Ok(Verdict::Deliver(Verified { event: None, .. }))
            ));
        }
    }

    #[test]
    fn common_behaviour() {
        body_signature_suite(&Suite {
            build: |s| Ok(Box::new(XeroVerifier::new(s)?)),
            sign,
            signature_header: SIGNATURE_HEADER,
            body: BODY,
        });
    }
}
