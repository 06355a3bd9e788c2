//! Linear's scheme: `Linear-Signature: <hex HMAC-SHA256(signing secret,
//! body)>`. The signed body carries `webhookTimestamp` (Unix milliseconds);
//! Linear asks receivers to refuse deliveries more than a minute from their
//! clock, so when it is present it must be within the window. The event
//! type is the `Linear-Event` header, the delivery id `Linear-Delivery`.
//!
//! See <https://linear.app/developers/webhooks#securing-webhooks>.

use hmac::Hmac;
use http::HeaderMap;
use sha2::Sha256;

use super::hmac_common::{
    find_secret, json_body, mac, prefixed_hex, require_secrets, signature_header, system_clock,
};
use super::timestamp::check_fresh_millis;
use super::{Clock, Rejection, Verified, Verifier, VerifierError, info_header};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "linear-signature";
const EVENT_HEADER: &str = "linear-event";
const DELIVERY_HEADER: &str = "linear-delivery";
const TIMESTAMP_FIELD: &str = "webhookTimestamp";

/// Linear's documented window: one minute.
pub const DEFAULT_TOLERANCE_SECS: u32 = 60;

/// Verifies Linear deliveries against one or more signing secrets.
#[derive(Debug)]
pub struct LinearVerifier {
    secrets: Vec<Secret>,
    tolerance: u32,
    clock: Clock,
}

impl LinearVerifier {
    /// A verifier accepting any of `secrets` within `tolerance` seconds.
    pub fn new(secrets: Vec<Secret>, tolerance: u32) -> Result<Self, VerifierError> {
        Self::with_clock(secrets, tolerance, system_clock)
    }

    /// As [`LinearVerifier::new`], reading the time from `clock`.
    pub fn with_clock(
        secrets: Vec<Secret>,
        tolerance: u32,
        clock: Clock,
    ) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self {
            secrets,
            tolerance,
            clock,
        })
    }
}

impl Verifier for LinearVerifier {
    fn provider(&self) -> &'static str {
        "linear"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let signature = prefixed_hex(signature_header(headers, SIGNATURE_HEADER)?, "", 32)?;
        let secret_index = find_secret::<Hmac<Sha256>>(&self.secrets, &[body], &[signature])
            .ok_or(Rejection::SignatureMismatch)?;
        // The timestamp is inside the (now verified) body.
        if let Some(stamp) = json_body(body)
            .as_ref()
            .and_then(|j| j.get(TIMESTAMP_FIELD))
        {
            let millis = stamp.as_i64().ok_or(Rejection::TimestampMalformed)?;
            check_fresh_millis((self.clock)(), millis, self.tolerance)?;
        }
        Ok(Verified {
            event: info_header(headers, EVENT_HEADER),
            delivery_id: info_header(headers, DELIVERY_HEADER),
            secret_index,
        })
    }
}

/// The signature header Linear sends for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> Vec<(&'static str, String)> {
    vec![(
        SIGNATURE_HEADER,
        hex::encode(mac::<Hmac<Sha256>>(secret, &[body])),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::hmac_common::test_support::*;
    use super::*;

    const BODY: &[u8] = br#"{"action":"create","type":"Issue","webhookTimestamp":1700000000000}"#;
    /// Linear publishes no fixed vector; independently computed with
    /// `printf '%s' "$BODY" | openssl dgst -sha256 -hmac lin_wh_secret` following
    /// <https://linear.app/developers/webhooks#securing-webhooks>.
    const KNOWN: &str = "91e919dc0fd99df1cae12efef1ca08b082cfa523f101b572ec14ed98863fdf35";

    fn verifier(secrets_: &[&str]) -> LinearVerifier {
        LinearVerifier::with_clock(secrets(secrets_), DEFAULT_TOLERANCE_SECS, now)
            .expect("verifier")
    }

    #[test]
    fn known_answer_with_event_and_delivery() {
        let verified = verifier(&["lin_wh_secret"])
            .verify(
                &headers(&[
                    (SIGNATURE_HEADER, KNOWN),
                    (EVENT_HEADER, "Issue"),
                    (DELIVERY_HEADER, "234d1a4e-b617-4388-90fe-adc3633d6b72"),
                ]),
                BODY,
            )
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("Issue".into()),
                delivery_id: Some("234d1a4e-b617-4388-90fe-adc3633d6b72".into()),
                secret_index: 0,
            }
        );
        assert_eq!(sign(b"lin_wh_secret", BODY)[0].1, KNOWN);
    }

    #[test]
    fn the_signed_timestamp_must_be_recent() {
        let v = verifier(&["s"]);
        let at = |millis: i64| {
            let body = format!(r#"{{"type":"Issue","webhookTimestamp":{millis}}}"#);
            v.verify(
                &signed_headers(&sign(b"s", body.as_bytes())),
                body.as_bytes(),
            )
        };
        assert!(at(NOW * 1000 - 60_000).is_ok());
        assert!(at(NOW * 1000 + 60_000).is_ok());
        assert_eq!(
            at(NOW * 1000 - 60_001),
            Err(Rejection::TimestampOutOfTolerance)
        );
        assert_eq!(
            at(NOW * 1000 + 60_001),
            Err(Rejection::TimestampOutOfTolerance)
        );
        let body = br#"{"webhookTimestamp":"yesterday"}"#;
        assert_eq!(
            v.verify(&signed_headers(&sign(b"s", body)), body),
            Err(Rejection::TimestampMalformed)
        );
    }

    #[test]
    fn common_behaviour() {
        body_signature_suite(&Suite {
            build: |s| {
                Ok(Box::new(LinearVerifier::with_clock(
                    s,
                    DEFAULT_TOLERANCE_SECS,
                    now,
                )?))
            },
            sign,
            signature_header: SIGNATURE_HEADER,
            body: BODY,
        });
    }
}
