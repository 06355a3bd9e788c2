//! Slack's scheme: `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret,
//! "v0:<X-Slack-Request-Timestamp>:<body>")>`, timestamp within five
//! minutes. Events API bodies are JSON: the event type is `event.type`
//! (or the top-level `type`, e.g. `url_verification`), the delivery id is
//! `event_id`.
//!
//! See <https://api.slack.com/authentication/verifying-requests-from-slack>.

use hmac::Hmac;
use http::HeaderMap;
use sha2::Sha256;

use super::hmac_common::{
    check_fresh, find_secret, json_body, json_info, mac, require_secrets, signature_header,
    system_clock, timestamp_header,
};
use super::{
    Clock, Handshake, Incoming, Rejection, Verdict, Verified, Verifier, VerifierError, challenge,
};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-slack-signature";
const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
const VERSION: &str = "v0";

/// Slack's documented replay window: five minutes.
pub const DEFAULT_TOLERANCE_SECS: u32 = 300;

/// Verifies Slack requests against one or more signing secrets.
#[derive(Debug)]
pub struct SlackVerifier {
    secrets: Vec<Secret>,
    tolerance: u32,
    clock: Clock,
}

impl SlackVerifier {
    /// A verifier accepting any of `secrets` within `tolerance` seconds.
    pub fn new(secrets: Vec<Secret>, tolerance: u32) -> Result<Self, VerifierError> {
        Self::with_clock(secrets, tolerance, system_clock)
    }

    /// As [`SlackVerifier::new`], reading the time from `clock`.
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

impl Verifier for SlackVerifier {
    fn provider(&self) -> &'static str {
        "slack"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let value = signature_header(headers, SIGNATURE_HEADER)?;
        let mut signature = vec![0u8; 32];
        let digits = value
            .strip_prefix("v0=")
            .ok_or(Rejection::SignatureMalformed)?;
        hex::decode_to_slice(digits, &mut signature).map_err(|_| Rejection::SignatureMalformed)?;
        let (timestamp, seconds) = timestamp_header(headers, TIMESTAMP_HEADER)?;
        check_fresh((self.clock)(), seconds, self.tolerance)?;
        let parts: [&[u8]; 5] = [VERSION.as_bytes(), b":", timestamp.as_bytes(), b":", body];
        let secret_index = find_secret::<Hmac<Sha256>>(&self.secrets, &parts, &[signature])
            .ok_or(Rejection::SignatureMismatch)?;
        let json = json_body(body);
        Ok(Verified {
            event: json_info(json.as_ref(), "/event/type")
                .or_else(|| json_info(json.as_ref(), "/type")),
            delivery_id: json_info(json.as_ref(), "/event_id"),
            secret_index,
        })
    }

    /// Slack's `url_verification` (signed like any request) is answered
    /// with `{"challenge": <challenge>}`.
    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        let verified = self.verify(request.headers, request.body)?;
        let json = json_body(request.body);
        let field = |pointer| {
            json.as_ref()
                .and_then(|j| j.pointer(pointer))
                .and_then(serde_json::Value::as_str)
        };
        if field("/type") != Some("url_verification") {
            return Ok(Verdict::Deliver(verified));
        }
        let answer = challenge(field("/challenge"))?;
        Ok(Handshake::answer(
            verified,
            "application/json",
            serde_json::json!({ "challenge": answer })
                .to_string()
                .into_bytes(),
        ))
    }
}

/// A `url_verification` body as Slack sends it.
pub fn url_verification_body(challenge: &str) -> Vec<u8> {
    serde_json::json!({
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        "challenge": challenge,
        "type": "url_verification",
    })
    .to_string()
    .into_bytes()
}

/// The headers Slack sends for `body` signed with `secret` at `timestamp`.
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

    /// Slack's published example, from
    /// <https://api.slack.com/authentication/verifying-requests-from-slack>.
    const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const DOC_TIMESTAMP: i64 = 1_531_420_618;
    const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const DOC_SIGNATURE: &str =
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    const BODY: &[u8] =
        br#"{"type":"event_callback","event_id":"Ev01","event":{"type":"app_mention"}}"#;

    fn doc_clock() -> i64 {
        DOC_TIMESTAMP + 10
    }

    fn verifier(secrets_: &[&str]) -> SlackVerifier {
        SlackVerifier::with_clock(secrets(secrets_), DEFAULT_TOLERANCE_SECS, now).expect("verifier")
    }

    fn signed_at(ts: i64) -> HeaderMap {
        signed_headers(&sign(b"s", ts, BODY))
    }

    #[test]
    fn slacks_published_example() {
        let v =
            SlackVerifier::with_clock(secrets(&[DOC_SECRET]), DEFAULT_TOLERANCE_SECS, doc_clock)
                .expect("verifier");
        let doc_headers = headers(&[
            (SIGNATURE_HEADER, DOC_SIGNATURE),
            (TIMESTAMP_HEADER, &DOC_TIMESTAMP.to_string()),
        ]);
        let verified = v
            .verify(&doc_headers, DOC_BODY.as_bytes())
            .expect("documented example verifies");
        assert_eq!(
            (verified.event, verified.delivery_id, verified.secret_index),
            (None, None, 0),
            "a form-encoded slash command has no JSON fields"
        );
        assert_eq!(
            sign(DOC_SECRET.as_bytes(), DOC_TIMESTAMP, DOC_BODY.as_bytes())[0].1,
            DOC_SIGNATURE
        );
        // The published example is years old: with the real clock it is a replay.
        let real =
            SlackVerifier::new(secrets(&[DOC_SECRET]), DEFAULT_TOLERANCE_SECS).expect("verifier");
        assert_eq!(
            real.verify(&doc_headers, DOC_BODY.as_bytes()),
            Err(Rejection::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn round_trip_reads_the_event() {
        let verified = verifier(&["s"])
            .verify(&signed_at(NOW), BODY)
            .expect("verifies");
        assert_eq!(verified.event.as_deref(), Some("app_mention"));
        assert_eq!(verified.delivery_id.as_deref(), Some("Ev01"));
        let challenge = br#"{"type":"url_verification","challenge":"x"}"#;
        let verified = verifier(&["s"])
            .verify(&signed_headers(&sign(b"s", NOW, challenge)), challenge)
            .expect("verifies");
        assert_eq!(verified.event.as_deref(), Some("url_verification"));
    }

    #[test]
    fn tampering_is_refused() {
        let v = verifier(&["s"]);
        let good = signed_at(NOW);
        assert_eq!(
            v.verify(&good, &tamper(BODY)),
            Err(Rejection::SignatureMismatch)
        );
        let sig = good[SIGNATURE_HEADER].to_str().expect("ascii").to_owned();
        let flipped = flip_char(&sig, sig.len() - 1);
        assert_eq!(
            v.verify(&with_header(&good, SIGNATURE_HEADER, &flipped), BODY),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            v.verify(
                &with_header(&good, TIMESTAMP_HEADER, &(NOW + 1).to_string()),
                BODY
            ),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers() {
        let v = verifier(&["s"]);
        let good = signed_at(NOW);
        let sig = good[SIGNATURE_HEADER].to_str().expect("ascii").to_owned();
        assert_eq!(
            v.verify(&without_header(&good, SIGNATURE_HEADER), BODY),
            Err(Rejection::SignatureMissing)
        );
        assert_eq!(
            v.verify(&without_header(&good, TIMESTAMP_HEADER), BODY),
            Err(Rejection::TimestampMissing)
        );
        for bad in ["soon", "-1", "1.5", ""] {
            assert_eq!(
                v.verify(&with_header(&good, TIMESTAMP_HEADER, bad), BODY),
                Err(Rejection::TimestampMalformed),
                "{bad}"
            );
        }
        for bad in [
            sig.replacen("v0=", "v1=", 1),
            sig[3..].to_owned(),
            sig[..sig.len() - 2].to_owned(),
            format!("{sig}00"),
            huge_value("v0="),
        ] {
            assert_eq!(
                v.verify(&with_header(&good, SIGNATURE_HEADER, &bad), BODY),
                Err(Rejection::SignatureMalformed)
            );
        }
        assert_eq!(
            v.verify(
                &with_header(&good, TIMESTAMP_HEADER, &huge_value("1")),
                BODY
            ),
            Err(Rejection::TimestampMalformed)
        );
    }

    #[test]
    fn stale_and_future_timestamps() {
        let v = verifier(&["s"]);
        assert!(v.verify(&signed_at(NOW - 300), BODY).is_ok());
        assert!(v.verify(&signed_at(NOW + 300), BODY).is_ok());
        assert_eq!(
            v.verify(&signed_at(NOW - 301), BODY),
            Err(Rejection::TimestampOutOfTolerance)
        );
        assert_eq!(
            v.verify(&signed_at(NOW + 301), BODY),
            Err(Rejection::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn rotation() {
        let verified = verifier(&["old", "s"])
            .verify(&signed_at(NOW), BODY)
            .expect("second secret");
        assert_eq!(verified.secret_index, 1);
        assert_eq!(
            verifier(&["old"]).verify(&signed_at(NOW), BODY),
            Err(Rejection::SignatureMismatch)
        );
    }
}

#[cfg(test)]
mod handshake_tests {
    use super::super::hmac_common::test_support::*;
    use super::super::{check_post, expect_handshake};
    use super::*;

    fn verifier() -> SlackVerifier {
        SlackVerifier::with_clock(secrets(&["s"]), DEFAULT_TOLERANCE_SECS, now).expect("verifier")
    }

    #[test]
    fn url_verification_is_answered_with_its_challenge() {
        // The challenge of the example at
        // <https://api.slack.com/events/url_verification>.
        let challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P";
        let body = url_verification_body(challenge);
        let handshake = expect_handshake(check_post(
            &verifier(),
            &signed_headers(&sign(b"s", NOW, &body)),
            &body,
        ));
        assert_eq!(handshake.content_type, "application/json");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&handshake.body).expect("json"),
            serde_json::json!({ "challenge": challenge })
        );
        // Unsigned or forged: refused like any request.
        assert_eq!(
            check_post(
                &verifier(),
                &signed_headers(&sign(b"other", NOW, &body)),
                &body
            ),
            Err(Rejection::SignatureMismatch)
        );
        let no_challenge = br#"{"type":"url_verification"}"#;
        assert_eq!(
            check_post(
                &verifier(),
                &signed_headers(&sign(b"s", NOW, no_challenge)),
                no_challenge
            ),
            Err(Rejection::HandshakeMalformed)
        );
        // An ordinary event is a delivery.
        let event = br#"{"type":"event_callback","event":{"type":"app_mention"}}"#;
        assert!(matches!(
            check_post(&verifier(), &signed_headers(&sign(b"s", NOW, event)), event),
            Ok(Verdict::Deliver(_))
        ));
    }
}
