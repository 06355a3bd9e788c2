//! Paddle Billing's scheme: `Paddle-Signature: ts=<unix seconds>;h1=<hex>[;h1=<hex>…]`
//! where each `h1` is the hex HMAC-SHA256 of `<ts>:<body>` under the
//! notification destination's secret key (`pdl_ntfset_…`, used as raw
//! bytes); any `h1` may match (several are sent while a key is rotated).
//! The event type and id are the body's `event_type` and `event_id`.
//!
//! Paddle's official Node SDK refuses a `ts` more than five seconds old
//! (`WebhooksValidator.MAX_VALID_TIME_DIFFERENCE = 5` in
//! `@paddle/paddle-node-sdk`), which is the default here, in both directions; endpoints behind slow
//! networks or whose clocks drift can widen it with
//! `spec.timestampToleranceSeconds`.
//!
//! See <https://developer.paddle.com/webhooks/signature-verification>.

use hmac::Hmac;
use http::HeaderMap;
use sha2::Sha256;

use super::hmac_common::{
    Candidates, check_fresh, find_secret, json_body, json_info, mac, parse_unix_seconds,
    prefixed_hex, require_secrets, signature_header, system_clock,
};
use super::{Clock, Rejection, Verified, Verifier, VerifierError};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "paddle-signature";

/// The window of Paddle's SDKs: five seconds.
pub const DEFAULT_TOLERANCE_SECS: u32 = 5;

/// Verifies Paddle deliveries against one or more secret keys.
#[derive(Debug)]
pub struct PaddleVerifier {
    secrets: Vec<Secret>,
    tolerance: u32,
    clock: Clock,
}

impl PaddleVerifier {
    /// A verifier accepting any of `secrets` within `tolerance` seconds.
    pub fn new(secrets: Vec<Secret>, tolerance: u32) -> Result<Self, VerifierError> {
        Self::with_clock(secrets, tolerance, system_clock)
    }

    /// As [`PaddleVerifier::new`], reading the time from `clock`.
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

/// The timestamp and the `h1` entries of the header; an `h1` that is not
/// 64 hex digits is skipped, so it cannot get a delivery refused that
/// another `h1` verifies.
fn parse_header(value: &str) -> Result<(Option<&str>, Candidates<Vec<u8>>), Rejection> {
    let mut timestamp = None;
    let mut h1 = Candidates::new();
    for item in value.split(';') {
        let (key, val) = match item.split_once('=') {
            Some((key, val)) => (key, Some(val)),
            None => (item, None),
        };
        match (key, val) {
            // The timestamp stays strict: two of them make which one was
            // signed ambiguous, and a bare `ts` is no timestamp.
            ("ts", _) if timestamp.is_some() => return Err(Rejection::TimestampMalformed),
            ("ts", None) => return Err(Rejection::TimestampMalformed),
            ("ts", Some(val)) => timestamp = Some(val),
            ("h1", val) => h1.push(val.and_then(|val| prefixed_hex(val, "", 32).ok()))?,
            // Future schemes and stray items are not verified.
            _ => {}
        }
    }
    Ok((timestamp, h1))
}

impl Verifier for PaddleVerifier {
    fn provider(&self) -> &'static str {
        "paddle"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let (timestamp, signatures) = parse_header(signature_header(headers, SIGNATURE_HEADER)?)?;
        // A malformed timestamp is reported before the candidates, a missing
        // one after them: a header with neither is malformed as a whole.
        let seconds = timestamp.map(parse_unix_seconds).transpose()?;
        let signatures = signatures.into_well_formed()?;
        let (Some(timestamp), Some(seconds)) = (timestamp, seconds) else {
            return Err(Rejection::TimestampMissing);
        };
        check_fresh((self.clock)(), seconds, self.tolerance)?;
        let parts: [&[u8]; 3] = [timestamp.as_bytes(), b":", body];
        let secret_index = find_secret::<Hmac<Sha256>>(&self.secrets, &parts, &signatures)
            .ok_or(Rejection::SignatureMismatch)?;
        let json = json_body(body);
        Ok(Verified {
            event: json_info(json.as_ref(), "/event_type"),
            delivery_id: json_info(json.as_ref(), "/event_id"),
            secret_index,
        })
    }
}

/// The header Paddle sends for `body` signed with `secret` at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = timestamp.to_string();
    let signature = mac::<Hmac<Sha256>>(secret, &[ts.as_bytes(), b":", body]);
    vec![(
        SIGNATURE_HEADER,
        format!("ts={ts};h1={}", hex::encode(signature)),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::hmac_common::test_support::*;
    use super::*;

    const BODY: &[u8] = br#"{"event_id":"evt_01h","event_type":"transaction.completed"}"#;
    /// Paddle publishes no vector with its key and body; independently
    /// computed with `printf '1700000000:%s' "$BODY" | openssl dgst -sha256
    /// -hmac pdl_ntfset_secret` following
    /// <https://developer.paddle.com/webhooks/signature-verification>.
    const KNOWN_H1: &str = "3952900c11b21cd3073b2ac01e9395f18375e091452cc2b4e10a2777de7acbda";

    fn verifier(secrets_: &[&str]) -> PaddleVerifier {
        PaddleVerifier::with_clock(secrets(secrets_), DEFAULT_TOLERANCE_SECS, now)
            .expect("verifier")
    }

    #[test]
    fn known_answer_several_h1_and_fields() {
        let v = verifier(&["pdl_ntfset_secret"]);
        let other = hex::encode([5u8; 32]);
        for value in [
            format!("ts={NOW};h1={KNOWN_H1}"),
            format!("ts={NOW};h1={other};h1={KNOWN_H1}"),
            format!("h1={KNOWN_H1};ts={NOW};h2=ignored"),
        ] {
            let verified = v
                .verify(&headers(&[(SIGNATURE_HEADER, &value)]), BODY)
                .expect(&value);
            assert_eq!(
                verified,
                Verified {
                    event: Some("transaction.completed".into()),
                    delivery_id: Some("evt_01h".into()),
                    secret_index: 0,
                }
            );
        }
        assert_eq!(
            sign(b"pdl_ntfset_secret", NOW, BODY)[0].1,
            format!("ts={NOW};h1={KNOWN_H1}")
        );
        let moved = format!("ts={};h1={KNOWN_H1}", NOW + 1);
        assert_eq!(
            v.verify(&headers(&[(SIGNATURE_HEADER, &moved)]), BODY),
            Err(Rejection::SignatureMismatch),
            "the timestamp is signed"
        );
    }

    #[test]
    fn malformed_headers() {
        let v = verifier(&["s"]);
        let sig = hex::encode([1u8; 32]);
        for (value, expected) in [
            (format!("h1={sig}"), Rejection::TimestampMissing),
            (format!("ts=now;h1={sig}"), Rejection::TimestampMalformed),
            (
                format!("ts={NOW};ts={NOW};h1={sig}"),
                Rejection::TimestampMalformed,
            ),
            (format!("ts={NOW}"), Rejection::SignatureMalformed),
            (format!("ts={NOW},h1={sig}"), Rejection::TimestampMalformed),
            (
                format!("ts={NOW};h1={}", &sig[..60]),
                Rejection::SignatureMalformed,
            ),
            (format!("ts={NOW};h1"), Rejection::SignatureMalformed),
            (
                huge_value(&format!("ts={NOW};h1=")),
                Rejection::SignatureMalformed,
            ),
        ] {
            assert_eq!(
                v.verify(&headers(&[(SIGNATURE_HEADER, &value)]), BODY),
                Err(expected),
                "{}",
                &value[..value.len().min(60)]
            );
        }
    }

    #[test]
    fn a_malformed_h1_does_not_refuse_a_good_one() {
        let v = verifier(&["pdl_ntfset_secret"]);
        let good = format!("h1={KNOWN_H1}");
        let other = format!("h1={}", hex::encode([5u8; 32]));
        let short = format!("h1={}", &KNOWN_H1[..60]);
        let long = format!("h1={KNOWN_H1}ab");
        let not_hex = format!("h1={}xy", &KNOWN_H1[..62]);
        candidate_list_suite(&CandidateList {
            verify: &|entries| {
                let value = format!("ts={NOW};{}", entries.join(";"));
                v.verify(&headers(&[(SIGNATURE_HEADER, &value)]), BODY)
            },
            good: &good,
            other: &other,
            malformed: &[&short, &long, &not_hex, "h1=", "h1"],
        });
        // The timestamp stays strict next to a good h1.
        for value in [
            format!("ts={NOW};ts={NOW};{good}"),
            format!("ts=now;{good}"),
            format!("ts;{good}"),
            format!("ts=;{good}"),
            format!("{good};ts={NOW};ts={}", NOW + 1),
        ] {
            assert_eq!(
                v.verify(&headers(&[(SIGNATURE_HEADER, &value)]), BODY),
                Err(Rejection::TimestampMalformed),
                "{value}"
            );
        }
    }

    #[test]
    fn timestamps() {
        let v = verifier(&["s"]);
        let at = |ts: i64| v.verify(&signed_headers(&sign(b"s", ts, BODY)), BODY);
        assert!(at(NOW - 5).is_ok() && at(NOW + 5).is_ok());
        assert_eq!(at(NOW - 6), Err(Rejection::TimestampOutOfTolerance));
        assert_eq!(at(NOW + 6), Err(Rejection::TimestampOutOfTolerance));
        let wide = PaddleVerifier::with_clock(secrets(&["s"]), 300, now).expect("verifier");
        assert!(
            wide.verify(&signed_headers(&sign(b"s", NOW - 300, BODY)), BODY)
                .is_ok()
        );
    }

    #[test]
    fn common_behaviour() {
        body_signature_suite(&Suite {
            build: |s| {
                Ok(Box::new(PaddleVerifier::with_clock(
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
