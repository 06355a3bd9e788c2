//! Zendesk's webhook signature: `X-Zendesk-Webhook-Signature: <base64
//! HMAC-SHA256(signing secret, timestamp + body)>` where `timestamp` is
//! `X-Zendesk-Webhook-Signature-Timestamp` exactly as sent (RFC 3339, e.g.
//! `2021-07-25T10:00:00Z`) and the body is the raw bytes (empty for a body-less
//! `GET`/`DELETE`). The signing secret is used as the text Zendesk shows
//! (base64-looking, but not decoded). Zendesk documents no window; a
//! timestamp more than five minutes from the receiver's clock is refused as
//! a replay. The event type and id are the `type` and `id` of an event
//! subscription's JSON body; trigger webhooks carry whatever body the admin
//! wrote, and then neither.
//!
//! Zendesk's page has shown two orders: an older revision of it said
//! `base64(HMACSHA256((BODY)(TIMESTAMP)))` and its example signature (the
//! only signature Zendesk ever published) is computed that way; the current
//! one says `base64(HMACSHA256(TIMESTAMP + BODY))` with a Node example that
//! signs `timestamp + body`, as do the implementations used against live
//! Zendesk. Both are accepted: timestamp first, else body first, so neither
//! the live signer nor the published example is refused. `sign` writes the
//! current order.
//!
//! Accepting two orders must not let one signed message pass as another:
//! a signature over `ts1 + body1` is also a body-first signature of
//! `body2 = ts1 + x` with timestamp `ts2` whenever `body1 = x + ts2`. Such
//! a `body2` starts with a timestamp's text, which no Zendesk body does
//! (event subscriptions send JSON; a trigger's body is the admin's JSON,
//! XML or form text), so the body-first order is tried only for bodies
//! that do not start with an RFC 3339 timestamp.
//!
//! See <https://developer.zendesk.com/documentation/webhooks/verifying/>.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Hmac;
use http::HeaderMap;
use sha2::Sha256;

use super::hmac_common::{
    check_fresh, find_secret, json_body, json_info, mac, require_secrets, signature_header,
    system_clock,
};
use super::timestamp::parse_rfc3339;
use super::{Clock, Rejection, Verified, Verifier, VerifierError, single_header};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-zendesk-webhook-signature";
const TIMESTAMP_HEADER: &str = "x-zendesk-webhook-signature-timestamp";

/// Five minutes, the project's default for a signed timestamp (Zendesk
/// names none).
pub const DEFAULT_TOLERANCE_SECS: u32 = 300;

/// Verifies Zendesk webhooks against one or more signing secrets.
#[derive(Debug)]
pub struct ZendeskVerifier {
    secrets: Vec<Secret>,
    tolerance: u32,
    clock: Clock,
}

impl ZendeskVerifier {
    /// A verifier accepting any of `secrets` within `tolerance` seconds.
    pub fn new(secrets: Vec<Secret>, tolerance: u32) -> Result<Self, VerifierError> {
        Self::with_clock(secrets, tolerance, system_clock)
    }

    /// As [`ZendeskVerifier::new`], reading the time from `clock`.
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

impl Verifier for ZendeskVerifier {
    fn provider(&self) -> &'static str {
        "zendesk"
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
        let timestamp = single_header(headers, TIMESTAMP_HEADER)
            .map_err(|()| Rejection::TimestampMalformed)?
            .ok_or(Rejection::TimestampMissing)?;
        check_fresh((self.clock)(), parse_rfc3339(timestamp)?, self.tolerance)?;
        let timestamp_first: [&[u8]; 2] = [timestamp.as_bytes(), body];
        let body_first: [&[u8]; 2] = [body, timestamp.as_bytes()];
        let candidates = [signature];
        let secret_index =
            find_secret::<Hmac<Sha256>>(&self.secrets, &timestamp_first, &candidates)
                .or_else(|| {
                    (!starts_with_timestamp(body)).then(|| {
                        find_secret::<Hmac<Sha256>>(&self.secrets, &body_first, &candidates)
                    })?
                })
                .ok_or(Rejection::SignatureMismatch)?;
        let json = json_body(body);
        Ok(Verified {
            event: json_info(json.as_ref(), "/type"),
            delivery_id: json_info(json.as_ref(), "/id"),
            secret_index,
        })
    }
}

/// Whether `body` starts with an RFC 3339 timestamp's text (the longest
/// Zendesk sends is `YYYY-MM-DDTHH:MM:SS.fffffffff+hh:mm`, 35 bytes): see
/// the module's note on the two signed orders.
fn starts_with_timestamp(body: &[u8]) -> bool {
    (20..=35.min(body.len()))
        .any(|len| std::str::from_utf8(&body[..len]).is_ok_and(|text| parse_rfc3339(text).is_ok()))
}

/// `timestamp` (Unix seconds) written as Zendesk sends it: RFC 3339 in UTC,
/// whole seconds, `Z` (e.g. `2021-07-25T10:00:00Z`).
pub fn timestamp_text(timestamp: i64) -> String {
    jiff::Timestamp::from_second(timestamp)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The headers Zendesk sends for `body` signed with `secret` at `timestamp`
/// (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = timestamp_text(timestamp);
    let signature = mac::<Hmac<Sha256>>(secret, &[ts.as_bytes(), body]);
    vec![
        (SIGNATURE_HEADER, BASE64.encode(signature)),
        (TIMESTAMP_HEADER, ts),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::hmac_common::test_support::*;
    use super::*;

    // The example of Zendesk's page
    // <https://developer.zendesk.com/documentation/event-connectors/webhooks/verifying/>
    // (an earlier revision): secret, body and timestamp as published.
    const DOC_SECRET: &str = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA=";
    const DOC_BODY: &str = r#"{"say": "hello"}"#;
    const DOC_TIMESTAMP: &str = "2021-07-25T10:00:00Z";
    /// That revision's published signature, computed over BODY + TIMESTAMP
    /// (`printf '%s' '{"say": "hello"}2021-07-25T10:00:00Z' | openssl dgst
    /// -sha256 -hmac "$DOC_SECRET" -binary | base64` gives it).
    const DOC_SIGNATURE_BODY_FIRST: &str = "tRDSF7URY8BLCDlaBcQ7FHu051Zk+aAB0NKMP53teMw=";
    /// The same inputs in the documented TIMESTAMP + BODY order, computed
    /// independently:
    /// `printf '%s' '2021-07-25T10:00:00Z{"say": "hello"}' | openssl dgst -sha256 -hmac "$DOC_SECRET" -binary | base64`.
    const DOC_SIGNATURE: &str = "Rry/4TtIdFyawtXXp8QdI6tlAUUQ/5kL1OTp5qo/ZIk=";
    /// 2021-07-25T10:00:00Z.
    const DOC_NOW: i64 = 1_627_207_200;

    const BODY: &[u8] = br#"{"type":"zen:event-type:ticket.created","account_id":1,"id":"cbe4028c-7239-495d-b020-f22348516046","time":"2023-11-14T22:13:20Z","zendesk_event_version":"2022-11-06","subject":"zen:ticket:1","detail":{},"event":{}}"#;

    fn doc_now() -> i64 {
        DOC_NOW
    }

    fn verifier(secrets_: &[&str]) -> ZendeskVerifier {
        ZendeskVerifier::with_clock(secrets(secrets_), DEFAULT_TOLERANCE_SECS, now)
            .expect("verifier")
    }

    #[test]
    fn the_documented_example() {
        let v = ZendeskVerifier::with_clock(
            secrets(&["other", DOC_SECRET]),
            DEFAULT_TOLERANCE_SECS,
            doc_now,
        )
        .expect("verifier");
        let at = |signature: &str| {
            v.verify(
                &headers(&[
                    (SIGNATURE_HEADER, signature),
                    (TIMESTAMP_HEADER, DOC_TIMESTAMP),
                ]),
                DOC_BODY.as_bytes(),
            )
        };
        let verified = at(DOC_SIGNATURE).expect("verifies");
        assert_eq!(verified.secret_index, 1);
        // The old revision's published example, body first, verifies too.
        let verified = at(DOC_SIGNATURE_BODY_FIRST).expect("the published example verifies");
        assert_eq!(verified.secret_index, 1);
        assert_eq!(
            sign(DOC_SECRET.as_bytes(), DOC_NOW, DOC_BODY.as_bytes()),
            vec![
                (SIGNATURE_HEADER, DOC_SIGNATURE.to_owned()),
                (TIMESTAMP_HEADER, DOC_TIMESTAMP.to_owned())
            ]
        );
    }

    /// A signature over `ts1 + body1`, where `body1` ends with a fresh
    /// timestamp's text, is not taken as the body-first signature of
    /// `ts1 + (body1 without it)` under that timestamp.
    #[test]
    fn one_signed_message_does_not_pass_as_another_in_the_other_order() {
        let v = verifier(&["s"]);
        let ts1 = timestamp_text(NOW - 10);
        let ts2 = timestamp_text(NOW);
        let body1 = format!("ticket updated at {ts2}");
        let signed = sign(b"s", NOW - 10, body1.as_bytes());
        assert!(v.verify(&signed_headers(&signed), body1.as_bytes()).is_ok());
        let body2 = format!("{ts1}ticket updated at ");
        let forged = signed_headers(&[
            (SIGNATURE_HEADER, signed[0].1.clone()),
            (TIMESTAMP_HEADER, ts2.clone()),
        ]);
        // The same bytes signed, in the other order.
        assert_eq!(format!("{body2}{ts2}"), format!("{ts1}{body1}"));
        assert_eq!(
            v.verify(&forged, body2.as_bytes()),
            Err(Rejection::SignatureMismatch)
        );
        assert!(starts_with_timestamp(b"2021-07-25T10:00:00Z{}"));
        assert!(starts_with_timestamp(
            b"2021-07-25T10:00:00.123456789+02:00 x"
        ));
        assert!(!starts_with_timestamp(br#"{"say": "hello"}"#));
        assert!(!starts_with_timestamp(b"2021-07-25"));
    }

    #[test]
    fn type_and_id_of_an_event_subscription() {
        let verified = verifier(&["s3cret"])
            .verify(&signed_headers(&sign(b"s3cret", NOW, BODY)), BODY)
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("zen:event-type:ticket.created".into()),
                delivery_id: Some("cbe4028c-7239-495d-b020-f22348516046".into()),
                secret_index: 0,
            }
        );
        // A body-less request (GET, DELETE) is signed over the timestamp.
        let verified = verifier(&["s3cret"])
            .verify(&signed_headers(&sign(b"s3cret", NOW, b"")), b"")
            .expect("verifies");
        assert_eq!((verified.event, verified.delivery_id), (None, None));
    }

    #[test]
    fn timestamps() {
        let v = verifier(&["s"]);
        let at = |ts: i64| v.verify(&signed_headers(&sign(b"s", ts, BODY)), BODY);
        assert!(at(NOW - 300).is_ok() && at(NOW + 300).is_ok());
        assert_eq!(at(NOW - 301), Err(Rejection::TimestampOutOfTolerance));
        assert_eq!(at(NOW + 301), Err(Rejection::TimestampOutOfTolerance));
        let good = signed_headers(&sign(b"s", NOW, BODY));
        // The timestamp text is signed: the same instant written otherwise
        // does not verify.
        for same_instant in ["2023-11-14T22:13:20+00:00", "2023-11-14T22:13:20.000Z"] {
            assert_eq!(
                v.verify(&with_header(&good, TIMESTAMP_HEADER, same_instant), BODY),
                Err(Rejection::SignatureMismatch),
                "{same_instant}"
            );
        }
        assert_eq!(
            v.verify(&without_header(&good, TIMESTAMP_HEADER), BODY),
            Err(Rejection::TimestampMissing)
        );
        for bad in [
            "1700000000",
            "2023-11-14 22:13:20",
            "yesterday",
            &huge_value("2023-11-14T22:13:20Z"),
        ] {
            assert_eq!(
                v.verify(&with_header(&good, TIMESTAMP_HEADER, bad), BODY),
                Err(Rejection::TimestampMalformed),
                "{}",
                &bad[..bad.len().min(30)]
            );
        }
        let mut twice = good.clone();
        twice.append(TIMESTAMP_HEADER, good[TIMESTAMP_HEADER].clone());
        assert_eq!(v.verify(&twice, BODY), Err(Rejection::TimestampMalformed));
    }

    #[test]
    fn common_behaviour() {
        body_signature_suite(&Suite {
            build: |s| {
                Ok(Box::new(ZendeskVerifier::with_clock(
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
