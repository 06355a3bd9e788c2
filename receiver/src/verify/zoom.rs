//! Zoom's scheme: `x-zm-signature: v0=<hex HMAC-SHA256(secret token,
//! "v0:<x-zm-request-timestamp>:<body>")>`. The timestamp must be within
//! five minutes; the event type is the body's `event`. Zoom sends no
//! delivery id header.
//!
//! See <https://developers.zoom.us/docs/api/webhooks/#verify-with-zooms-header>.

use axum::http::HeaderMap;
use hmac::Hmac;
use sha2::Sha256;

use super::hmac_common::{
    check_fresh, find_secret, json_body, json_info, mac, prefixed_hex, require_secrets,
    signature_header, system_clock, timestamp_header,
};
use super::{Clock, Rejection, Verified, Verifier, VerifierError};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-zm-signature";
const TIMESTAMP_HEADER: &str = "x-zm-request-timestamp";

/// Five minutes, as for Slack's identical construction.
pub const DEFAULT_TOLERANCE_SECS: u32 = 300;

/// Verifies Zoom deliveries against one or more secret tokens.
#[derive(Debug)]
pub struct ZoomVerifier {
    secrets: Vec<Secret>,
    tolerance: u32,
    clock: Clock,
}

impl ZoomVerifier {
    /// A verifier accepting any of `secrets` within `tolerance` seconds.
    pub fn new(secrets: Vec<Secret>, tolerance: u32) -> Result<Self, VerifierError> {
        Self::with_clock(secrets, tolerance, system_clock)
    }

    /// As [`ZoomVerifier::new`], reading the time from `clock`.
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

impl Verifier for ZoomVerifier {
    fn provider(&self) -> &'static str {
        "zoom"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let signature = prefixed_hex(signature_header(headers, SIGNATURE_HEADER)?, "v0=", 32)?;
        let (timestamp, seconds) = timestamp_header(headers, TIMESTAMP_HEADER)?;
        check_fresh((self.clock)(), seconds, self.tolerance)?;
        let parts: [&[u8]; 4] = [b"v0:", timestamp.as_bytes(), b":", body];
        let secret_index = find_secret::<Hmac<Sha256>>(&self.secrets, &parts, &[signature])
            .ok_or(Rejection::SignatureMismatch)?;
        Ok(Verified {
            event: json_info(json_body(body).as_ref(), "/event"),
            delivery_id: None,
            secret_index,
        })
    }
}

/// The headers Zoom sends for `body` signed with `secret` at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = timestamp.to_string();
    let signature = mac::<Hmac<Sha256>>(secret, &[b"v0:", ts.as_bytes(), b":", body]);
    vec![
        (SIGNATURE_HEADER, format!("v0={}", hex::encode(signature))),
        (TIMESTAMP_HEADER, ts),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::hmac_common::test_support::*;
    use super::*;

    const BODY: &[u8] = br#"{"event":"meeting.started","payload":{}}"#;
    /// Zoom publishes no fixed vector; independently computed with
    /// `printf 'v0:1700000000:%s' "$BODY" | openssl dgst -sha256 -hmac zoom_secret`
    /// following <https://developers.zoom.us/docs/api/webhooks/#verify-with-zooms-header>.
    const KNOWN: &str = "v0=d13886e7d0cf71d67e3fba53de02a14ec5777de6fb3b269e1b14b431436b1eac";

    fn verifier(secrets_: &[&str]) -> ZoomVerifier {
        ZoomVerifier::with_clock(secrets(secrets_), DEFAULT_TOLERANCE_SECS, now).expect("verifier")
    }

    #[test]
    fn known_answer_and_event() {
        let verified = verifier(&["zoom_secret"])
            .verify(
                &headers(&[(SIGNATURE_HEADER, KNOWN), (TIMESTAMP_HEADER, "1700000000")]),
                BODY,
            )
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("meeting.started".into()),
                delivery_id: None,
                secret_index: 0,
            }
        );
        assert_eq!(sign(b"zoom_secret", NOW, BODY)[0].1, KNOWN);
    }

    #[test]
    fn timestamps() {
        let v = verifier(&["s"]);
        let at = |ts: i64| v.verify(&signed_headers(&sign(b"s", ts, BODY)), BODY);
        assert!(at(NOW - 300).is_ok() && at(NOW + 300).is_ok());
        assert_eq!(at(NOW - 301), Err(Rejection::TimestampOutOfTolerance));
        assert_eq!(at(NOW + 301), Err(Rejection::TimestampOutOfTolerance));
        let good = signed_headers(&sign(b"s", NOW, BODY));
        assert_eq!(
            v.verify(
                &with_header(&good, TIMESTAMP_HEADER, &(NOW + 1).to_string()),
                BODY
            ),
            Err(Rejection::SignatureMismatch),
            "the timestamp is signed"
        );
        assert_eq!(
            v.verify(&without_header(&good, TIMESTAMP_HEADER), BODY),
            Err(Rejection::TimestampMissing)
        );
        for bad in ["x", &huge_value("1")] {
            assert_eq!(
                v.verify(&with_header(&good, TIMESTAMP_HEADER, bad), BODY),
                Err(Rejection::TimestampMalformed)
            );
        }
    }

    #[test]
    fn common_behaviour() {
        body_signature_suite(&Suite {
            build: |s| {
                Ok(Box::new(ZoomVerifier::with_clock(
                    s,
                    DEFAULT_TOLERANCE_SECS,
                    now,
                )?))
            },
            sign: |secret, body| sign(secret, NOW, body),
            signature_header: SIGNATURE_HEADER,
            body: BODY,
        });
    }
}
