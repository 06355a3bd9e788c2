//! Zoom's scheme: `x-zm-signature: v0=<hex HMAC-SHA256(secret token,
//! "v0:<x-zm-request-timestamp>:<body>")>`. The timestamp must be within
//! five minutes; the event type is the body's `event`. Zoom sends no
//! delivery id header.
//!
//! See <https://developers.zoom.us/docs/api/webhooks/#verify-with-zooms-header>.

use hmac::Hmac;
use http::HeaderMap;
use sha2::Sha256;

use super::hmac_common::{
    check_fresh, find_secret, json_body, json_info, mac, prefixed_hex, require_secrets,
    signature_header, system_clock, timestamp_header,
};
use super::{
    Clock, Handshake, Incoming, Rejection, Verdict, Verified, Verifier, VerifierError, challenge,
};
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

    /// Zoom's `endpoint.url_validation` (signed like any event) is answered
    /// with `{"plainToken": .., "encryptedToken": hex HMAC-SHA256(secret
    /// token, plainToken)}`, keyed with the secret that verified it.
    ///
    /// See <https://developers.zoom.us/docs/api/webhooks/#validate-your-webhook-endpoint>.
    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        let verified = self.verify(request.headers, request.body)?;
        if verified.event.as_deref() != Some(URL_VALIDATION) {
            return Ok(Verdict::Deliver(verified));
        }
        let json = json_body(request.body);
        let plain = challenge(
            json.as_ref()
                .and_then(|j| j.pointer("/payload/plainToken"))
                .and_then(serde_json::Value::as_str),
        )?;
        let secret = self
            .secrets
            .get(verified.secret_index)
            .ok_or(Rejection::SignatureMismatch)?;
        let encrypted = hex::encode(mac::<Hmac<Sha256>>(secret.expose(), &[plain.as_bytes()]));
        Ok(Handshake::answer(
            verified,
            "application/json",
            serde_json::json!({ "plainToken": plain, "encryptedToken": encrypted })
                .to_string()
                .into_bytes(),
        ))
    }
}

const URL_VALIDATION: &str = "endpoint.url_validation";

/// An `endpoint.url_validation` body as Zoom sends it.
pub fn url_validation_body(plain_token: &str, now_ms: i64) -> Vec<u8> {
    serde_json::json!({
        "payload": { "plainToken": plain_token },
        "event_ts": now_ms,
        "event": URL_VALIDATION,
    })
    .to_string()
    .into_bytes()
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

#[cfg(test)]
mod handshake_tests {
    use super::super::hmac_common::test_support::*;
    use super::super::{check_post, expect_handshake};
    use super::*;

    /// Zoom publishes no key/token pair; independently computed with
    /// `printf '%s' qgg8vlvZRS6UYooatFL8Aw | openssl dgst -sha256 -hmac zoom_secret_token`
    /// (the plain token of the example at
    /// <https://developers.zoom.us/docs/api/webhooks/#validate-your-webhook-endpoint>).
    const ENCRYPTED: &str = "bd48235863f4a6323ccc4963c594908b7c97f88b4a6a95278f4f093690b12726";

    #[test]
    fn url_validation_is_answered_with_the_encrypted_token() {
        let v = ZoomVerifier::with_clock(
            secrets(&["rotated-out", "zoom_secret_token"]),
            DEFAULT_TOLERANCE_SECS,
            now,
        )
        .expect("verifier");
        let body = url_validation_body("qgg8vlvZRS6UYooatFL8Aw", NOW * 1000);
        let handshake = expect_handshake(check_post(
            &v,
            &signed_headers(&sign(b"zoom_secret_token", NOW, &body)),
            &body,
        ));
        assert_eq!(handshake.verified.secret_index, 1);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&handshake.body).expect("json"),
            serde_json::json!({ "plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": ENCRYPTED })
        );
        assert_eq!(
            check_post(&v, &signed_headers(&sign(b"forged", NOW, &body)), &body),
            Err(Rejection::SignatureMismatch)
        );
        let empty = br#"{"event":"endpoint.url_validation","payload":{}}"#;
        assert_eq!(
            check_post(
                &v,
                &signed_headers(&sign(b"zoom_secret_token", NOW, empty)),
                empty
            ),
            Err(Rejection::HandshakeMalformed)
        );
    }
}
