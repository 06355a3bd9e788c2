//! Twitch EventSub's scheme:
//! `Twitch-Eventsub-Message-Signature: sha256=<hex HMAC-SHA256(secret, id + timestamp + body)>`
//! where `id` is `Twitch-Eventsub-Message-Id` and `timestamp` is
//! `Twitch-Eventsub-Message-Timestamp` (RFC 3339), exactly as sent.
//!
//! Twitch asks receivers to reject messages whose timestamp is more than 10
//! minutes old; a timestamp as far in the future is refused too. The event is
//! `Twitch-Eventsub-Subscription-Type`; the delivery id is the message id,
//! which Twitch keeps when it resends a message.
//!
//! See <https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-the-event-message>.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

use super::require_secrets;
use super::timestamp::system_clock;
use super::timestamp::{check_fresh, parse_rfc3339};
use super::{
    Clock, Handshake, Incoming, Rejection, Verdict, Verified, Verifier, VerifierError, challenge,
    info_header, single_header,
};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "twitch-eventsub-message-signature";
const ID_HEADER: &str = "twitch-eventsub-message-id";
const TIMESTAMP_HEADER: &str = "twitch-eventsub-message-timestamp";
const TYPE_HEADER: &str = "twitch-eventsub-message-type";
const EVENT_HEADER: &str = "twitch-eventsub-subscription-type";
const SCHEME_PREFIX: &str = "sha256=";

/// Twitch's documented replay window: 10 minutes.
pub const TOLERANCE_SECS: u32 = 600;

/// What an EventSub message is, from `Twitch-Eventsub-Message-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// An event the subscription asked for.
    Notification,
    /// The challenge sent when a subscription is created (answered by
    /// echoing the challenge as `text/plain`).
    WebhookCallbackVerification,
    /// Twitch revoked the subscription.
    Revocation,
}

/// The message type of a delivery, if it has exactly one known one.
pub fn message_type(headers: &HeaderMap) -> Option<MessageType> {
    match single_header(headers, TYPE_HEADER).ok().flatten()? {
        "notification" => Some(MessageType::Notification),
        "webhook_callback_verification" => Some(MessageType::WebhookCallbackVerification),
        "revocation" => Some(MessageType::Revocation),
        _ => None,
    }
}

/// Verifies Twitch EventSub deliveries against one or more secrets.
#[derive(Debug)]
pub struct TwitchVerifier {
    secrets: Vec<Secret>,
    clock: Clock,
}

impl TwitchVerifier {
    /// A verifier accepting a signature made with any of `secrets` (rotation).
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        Self::with_clock(secrets, system_clock)
    }

    /// As [`TwitchVerifier::new`], reading the time from `clock`.
    pub fn with_clock(secrets: Vec<Secret>, clock: Clock) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self { secrets, clock })
    }
}

fn mac(secret: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?;
    mac.update(id.as_bytes());
    mac.update(timestamp.as_bytes());
    mac.update(body);
    Some(mac)
}

/// The `Twitch-Eventsub-Message-Signature` value Twitch sends.
pub fn sign(secret: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let digest = mac(secret, id, timestamp, body)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{SCHEME_PREFIX}{digest}")
}

impl Verifier for TwitchVerifier {
    fn provider(&self) -> &'static str {
        "twitch"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let value = single_header(headers, SIGNATURE_HEADER)
            .map_err(|()| Rejection::SignatureMalformed)?
            .ok_or(Rejection::SignatureMissing)?;
        let hex_digits = value
            .strip_prefix(SCHEME_PREFIX)
            .ok_or(Rejection::SignatureMalformed)?;
        let mut signature = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut signature)
            .map_err(|_| Rejection::SignatureMalformed)?;

        // The message id is signed: without it there is nothing to verify.
        let id = single_header(headers, ID_HEADER)
            .map_err(|()| Rejection::SignatureMalformed)?
            .ok_or(Rejection::SignatureMalformed)?;

        let timestamp = single_header(headers, TIMESTAMP_HEADER)
            .map_err(|()| Rejection::TimestampMalformed)?
            .ok_or(Rejection::TimestampMissing)?;
        check_fresh((self.clock)(), parse_rfc3339(timestamp)?, TOLERANCE_SECS)?;

        let mut matched = None;
        for (index, secret) in self.secrets.iter().enumerate() {
            let Some(mac) = mac(secret.expose(), id, timestamp, body) else {
                continue;
            };
            if mac.verify_slice(&signature).is_ok() && matched.is_none() {
                matched = Some(index);
            }
        }
        let secret_index = matched.ok_or(Rejection::SignatureMismatch)?;
        Ok(Verified {
            event: info_header(headers, EVENT_HEADER),
            delivery_id: info_header(headers, ID_HEADER),
            secret_index,
        })
    }

    /// A `webhook_callback_verification` message (signed like any other)
    /// is answered with its `challenge`, as `text/plain`.
    ///
    /// See <https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#responding-to-a-challenge-request>.
    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        let verified = self.verify(request.headers, request.body)?;
        if message_type(request.headers) != Some(MessageType::WebhookCallbackVerification) {
            return Ok(Verdict::Deliver(verified));
        }
        let json = serde_json::from_slice::<serde_json::Value>(request.body).ok();
        let answer = challenge(
            json.as_ref()
                .and_then(|j| j.get("challenge"))
                .and_then(serde_json::Value::as_str),
        )?;
        Ok(Handshake::answer(
            verified,
            "text/plain; charset=utf-8",
            answer.into_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const SECRET: &str = "s3cRe7-twitch-eventsub";
    const ID: &str = "befa7b53-d79d-478f-86b9-120f112b044e";
    const TIMESTAMP: &str = "2019-11-16T10:11:12.634234626Z";
    /// `TIMESTAMP` in Unix seconds.
    const SENT: i64 = 1_573_899_072;
    const BODY: &str = r#"{"subscription":{"type":"channel.follow"},"event":{"user_id":"1337"}}"#;
    /// Computed independently with Python's `hmac` module over
    /// `ID + TIMESTAMP + BODY`, as the scheme at
    /// <https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-the-event-message>
    /// describes (Twitch publishes no test vector). The id and timestamp are
    /// the examples of that page.
    const EXPECTED: &str =
        "sha256=f29c19cf078066a9d6b6c06c5a497860883177ebf0248e8c082cadfda270e6ee";

    fn at_sent() -> i64 {
        SENT
    }
    fn nine_minutes_later() -> i64 {
        SENT + 9 * 60
    }
    fn eleven_minutes_later() -> i64 {
        SENT + 11 * 60
    }
    fn eleven_minutes_earlier() -> i64 {
        SENT - 11 * 60
    }

    fn verifier(secrets: &[&str], clock: Clock) -> TwitchVerifier {
        TwitchVerifier::with_clock(
            secrets.iter().map(|s| Secret::from(s.as_bytes())).collect(),
            clock,
        )
        .expect("at least one secret")
    }

    fn headers(signature: Option<&str>, id: Option<&str>, timestamp: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (SIGNATURE_HEADER, signature),
            (ID_HEADER, id),
            (TIMESTAMP_HEADER, timestamp),
        ] {
            if let Some(value) = value {
                headers.insert(name, HeaderValue::from_str(value).expect("ascii"));
            }
        }
        headers.insert(EVENT_HEADER, HeaderValue::from_static("channel.follow"));
        headers.insert(TYPE_HEADER, HeaderValue::from_static("notification"));
        headers
    }

    fn good() -> HeaderMap {
        headers(Some(EXPECTED), Some(ID), Some(TIMESTAMP))
    }

    #[test]
    fn sign_matches_an_independent_implementation() {
        assert_eq!(
            sign(SECRET.as_bytes(), ID, TIMESTAMP, BODY.as_bytes()),
            EXPECTED
        );
    }

    #[test]
    fn accepts_a_signed_delivery() {
        let verified = verifier(&[SECRET], at_sent)
            .verify(&good(), BODY.as_bytes())
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("channel.follow".to_owned()),
                delivery_id: Some(ID.to_owned()),
                secret_index: 0,
            }
        );
        assert!(
            verifier(&[SECRET], nine_minutes_later)
                .verify(&good(), BODY.as_bytes())
                .is_ok()
        );
    }

    #[test]
    fn rejects_stale_and_future_timestamps() {
        for clock in [eleven_minutes_later as Clock, eleven_minutes_earlier] {
            assert_eq!(
                verifier(&[SECRET], clock).verify(&good(), BODY.as_bytes()),
                Err(Rejection::TimestampOutOfTolerance)
            );
        }
    }

    #[test]
    fn rejects_single_byte_changes() {
        let v = verifier(&[SECRET], at_sent);
        let mut body = BODY.as_bytes().to_vec();
        body[3] ^= 0x01;
        assert_eq!(v.verify(&good(), &body), Err(Rejection::SignatureMismatch));
        // Another id, or another (still fresh) timestamp, is not what was signed.
        let other_id = "cefa7b53-d79d-478f-86b9-120f112b044e";
        assert_eq!(
            v.verify(
                &headers(Some(EXPECTED), Some(other_id), Some(TIMESTAMP)),
                BODY.as_bytes()
            ),
            Err(Rejection::SignatureMismatch)
        );
        let other_ts = "2019-11-16T10:11:13.634234626Z";
        assert_eq!(
            v.verify(
                &headers(Some(EXPECTED), Some(ID), Some(other_ts)),
                BODY.as_bytes()
            ),
            Err(Rejection::SignatureMismatch)
        );
        let mut sig = EXPECTED.to_owned();
        let last = sig.pop().expect("non-empty");
        sig.push(if last == '0' { '1' } else { '0' });
        assert_eq!(
            v.verify(
                &headers(Some(&sig), Some(ID), Some(TIMESTAMP)),
                BODY.as_bytes()
            ),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn rejects_missing_and_malformed_headers() {
        let v = verifier(&[SECRET], at_sent);
        let body = BODY.as_bytes();
        let huge = "9".repeat(100 * 1024);
        let huge_sig = format!("sha256={huge}");
        let cases: [(HeaderMap, Rejection); 9] = [
            (
                headers(None, Some(ID), Some(TIMESTAMP)),
                Rejection::SignatureMissing,
            ),
            (
                headers(Some(&EXPECTED[7..]), Some(ID), Some(TIMESTAMP)),
                Rejection::SignatureMalformed,
            ),
            (
                headers(Some("sha256=zz"), Some(ID), Some(TIMESTAMP)),
                Rejection::SignatureMalformed,
            ),
            (
                headers(Some(&huge_sig), Some(ID), Some(TIMESTAMP)),
                Rejection::SignatureMalformed,
            ),
            (
                headers(Some(EXPECTED), None, Some(TIMESTAMP)),
                Rejection::SignatureMalformed,
            ),
            (
                headers(Some(EXPECTED), Some(ID), None),
                Rejection::TimestampMissing,
            ),
            (
                headers(Some(EXPECTED), Some(ID), Some("1573899072")),
                Rejection::TimestampMalformed,
            ),
            (
                headers(Some(EXPECTED), Some(ID), Some(&huge)),
                Rejection::TimestampMalformed,
            ),
            (
                headers(Some(EXPECTED), Some(&huge), Some(TIMESTAMP)),
                Rejection::SignatureMismatch,
            ),
        ];
        for (index, (headers, expected)) in cases.into_iter().enumerate() {
            assert_eq!(v.verify(&headers, body), Err(expected), "case {index}");
        }
        let mut repeated = good();
        repeated.append(TIMESTAMP_HEADER, HeaderValue::from_static(TIMESTAMP));
        assert_eq!(
            v.verify(&repeated, body),
            Err(Rejection::TimestampMalformed)
        );
    }

    #[test]
    fn accepts_a_rotated_secret_and_says_which() {
        let verified = verifier(&["old", SECRET], at_sent)
            .verify(&good(), BODY.as_bytes())
            .expect("second secret");
        assert_eq!(verified.secret_index, 1);
    }

    #[test]
    fn reports_the_message_type() {
        assert_eq!(message_type(&good()), Some(MessageType::Notification));
        let mut h = HeaderMap::new();
        h.insert(
            TYPE_HEADER,
            HeaderValue::from_static("webhook_callback_verification"),
        );
        assert_eq!(
            message_type(&h),
            Some(MessageType::WebhookCallbackVerification)
        );
        h.insert(TYPE_HEADER, HeaderValue::from_static("revocation"));
        assert_eq!(message_type(&h), Some(MessageType::Revocation));
        h.insert(TYPE_HEADER, HeaderValue::from_static("other"));
        assert_eq!(message_type(&h), None);
        assert_eq!(message_type(&HeaderMap::new()), None);
    }
}

#[cfg(test)]
mod handshake_tests {
    use super::super::{check_post, expect_handshake};
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn now() -> i64 {
        NOW
    }

    fn headers(secret: &[u8], kind: &str, body: &[u8]) -> HeaderMap {
        let timestamp = jiff::Timestamp::from_second(NOW).expect("time").to_string();
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (SIGNATURE_HEADER, sign(secret, "m-1", &timestamp, body)),
            (ID_HEADER, "m-1".to_owned()),
            (TIMESTAMP_HEADER, timestamp.clone()),
            (TYPE_HEADER, kind.to_owned()),
        ] {
            headers.insert(name, value.parse().expect("header value"));
        }
        headers
    }

    #[test]
    fn callback_verification_is_answered_with_the_challenge() {
        let v = TwitchVerifier::with_clock(vec![Secret::from(&b"s"[..])], now).expect("verifier");
        // The body of the example at
        // <https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#responding-to-a-challenge-request>.
        let body = br#"{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"type":"channel.follow"}}"#;
        let handshake = expect_handshake(check_post(
            &v,
            &headers(b"s", "webhook_callback_verification", body),
            body,
        ));
        assert_eq!(handshake.content_type, "text/plain; charset=utf-8");
        assert_eq!(handshake.body, b"pogchamp-kappa-360noscope-vohiyo");
        assert_eq!(handshake.verified.delivery_id.as_deref(), Some("m-1"));
        assert_eq!(
            check_post(
                &v,
                &headers(b"x", "webhook_callback_verification", body),
                body
            ),
            Err(Rejection::SignatureMismatch)
        );
        assert!(matches!(
            check_post(&v, &headers(b"s", "notification", body), body),
            Ok(Verdict::Deliver(_))
        ));
    }
}
