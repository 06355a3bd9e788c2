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

use axum::http::HeaderMap;
use hmac::Hmac;
use sha2::Sha256;

use super::hmac_common::{
    MAX_CANDIDATES, check_fresh, find_secret, json_body, json_info, mac, parse_unix_seconds,
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

/// The timestamp and every `h1` of the header.
fn parse_header(value: &str) -> Result<(Option<&str>, Vec<Vec<u8>>), Rejection> {
    let mut timestamp = None;
    let mut h1 = Vec::new();
    for item in value.split(';') {
        let (key, val) = item.split_once('=').ok_or(Rejection::SignatureMalformed)?;
        match key {
            // Two timestamps: which one was signed is ambiguous.
            "ts" if timestamp.is_some() => return Err(Rejection::TimestampMalformed),
            "ts" => timestamp = Some(val),
            "h1" => {
                if h1.len() == MAX_CANDIDATES {
                    return Err(Rejection::SignatureMalformed);
                }
                h1.push(prefixed_hex(val, "", 32)?);
            }
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
        let timestamp = timestamp.ok_or(Rejection::TimestampMissing)?;
        let seconds = parse_unix_seconds(timestamp)?;
        if signatures.is_empty() {
            return Err(Rejection::SignatureMalformed);
        }
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
