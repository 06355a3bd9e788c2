//! Stripe's scheme: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]`
//! where each `v1` is the hex HMAC-SHA256 of `<t>.<body>` under the
//! endpoint's signing secret (`whsec_…`, used as raw bytes, prefix
//! included). Any `v1` may match (Stripe sends several while a secret is
//! rolled); other schemes are ignored. The event type and id are the `type`
//! and `id` of the JSON body.
//!
//! See <https://docs.stripe.com/webhooks#verify-manually>.

use hmac::Hmac;
use http::HeaderMap;
use sha2::Sha256;

use super::hmac_common::{
    Candidates, check_fresh, find_secret, json_body, json_info, mac, parse_unix_seconds,
    require_secrets, signature_header, system_clock,
};
use super::{Clock, Rejection, Verified, Verifier, VerifierError};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "stripe-signature";

/// Stripe's libraries refuse events older than five minutes by default.
pub const DEFAULT_TOLERANCE_SECS: u32 = 300;

/// Verifies Stripe deliveries against one or more signing secrets.
#[derive(Debug)]
pub struct StripeVerifier {
    secrets: Vec<Secret>,
    tolerance: u32,
    clock: Clock,
}

impl StripeVerifier {
    /// A verifier accepting any of `secrets` within `tolerance` seconds.
    pub fn new(secrets: Vec<Secret>, tolerance: u32) -> Result<Self, VerifierError> {
        Self::with_clock(secrets, tolerance, system_clock)
    }

    /// As [`StripeVerifier::new`], reading the time from `clock`.
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

/// The `Stripe-Signature` header, parsed.
#[derive(Debug)]
struct Header<'a> {
    timestamp: Option<&'a str>,
    /// The `v1` entries; one that is not 64 hex digits is skipped, so it
    /// cannot get a delivery refused that another `v1` verifies.
    v1: Candidates<Vec<u8>>,
}

fn parse_header(value: &str) -> Result<Header<'_>, Rejection> {
    let mut header = Header {
        timestamp: None,
        v1: Candidates::new(),
    };
    for item in value.split(',') {
        let (key, val) = match item.split_once('=') {
            Some((key, val)) => (key, Some(val)),
            None => (item, None),
        };
        match (key, val) {
            // The timestamp stays strict: two of them make which one was
            // signed ambiguous, and a bare `t` is no timestamp.
            ("t", _) if header.timestamp.is_some() => return Err(Rejection::TimestampMalformed),
            ("t", None) => return Err(Rejection::TimestampMalformed),
            ("t", Some(val)) => header.timestamp = Some(val),
            ("v1", val) => header.v1.push(val.and_then(|val| {
                let mut signature = vec![0u8; 32];
                // Fails on a non-hex digit and on any other length.
                hex::decode_to_slice(val, &mut signature).ok()?;
                Some(signature)
            }))?,
            // v0 (test-mode legacy), future schemes and stray items are not
            // verified.
            _ => {}
        }
    }
    Ok(header)
}

impl Verifier for StripeVerifier {
    fn provider(&self) -> &'static str {
        "stripe"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let header = parse_header(signature_header(headers, SIGNATURE_HEADER)?)?;
        // A malformed timestamp is reported before the candidates, a missing
        // one after them: a header with neither is malformed as a whole.
        let seconds = header.timestamp.map(parse_unix_seconds).transpose()?;
        let v1 = header.v1.into_well_formed()?;
        let (Some(timestamp), Some(seconds)) = (header.timestamp, seconds) else {
            return Err(Rejection::TimestampMissing);
        };
        check_fresh((self.clock)(), seconds, self.tolerance)?;
        let parts: [&[u8]; 3] = [timestamp.as_bytes(), b".", body];
        let secret_index = find_secret::<Hmac<Sha256>>(&self.secrets, &parts, &v1)
            .ok_or(Rejection::SignatureMismatch)?;
        let json = json_body(body);
        Ok(Verified {
            event: json_info(json.as_ref(), "/type"),
            delivery_id: json_info(json.as_ref(), "/id"),
            secret_index,
        })
    }
}

/// The headers Stripe sends for `body` signed with `secret` at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = timestamp.to_string();
    let signature = mac::<Hmac<Sha256>>(secret, &[ts.as_bytes(), b".", body]);
    vec![(
        SIGNATURE_HEADER,
        format!("t={ts},v1={}", hex::encode(signature)),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::hmac_common::MAX_CANDIDATES;
    use super::super::hmac_common::test_support::*;
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}"#;
    /// Independently computed known answer:
    /// `printf '1700000000.%s' "$BODY" | openssl dgst -sha256 -hmac whsec_test_secret`.
    /// Stripe publishes no fixed vector; the construction is documented at
    /// <https://docs.stripe.com/webhooks#verify-manually>.
    const KNOWN_V1: &str = "67da5088c63e080c71bd2bb0cb5c03d85a8fc6a21ce3aaf484df809654745b92";

    fn verifier(secrets_: &[&str]) -> StripeVerifier {
        StripeVerifier::with_clock(secrets(secrets_), DEFAULT_TOLERANCE_SECS, now)
            .expect("verifier")
    }

    fn header_at(ts: i64) -> HeaderMap {
        signed_headers(&sign(SECRET.as_bytes(), ts, BODY))
    }

    #[test]
    fn known_answer_and_fields_from_the_body() {
        let value = format!("t={NOW},v1={KNOWN_V1}");
        let verified = verifier(&[SECRET])
            .verify(&headers(&[(SIGNATURE_HEADER, &value)]), BODY)
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("payment_intent.succeeded".into()),
                delivery_id: Some("evt_1".into()),
                secret_index: 0,
            }
        );
        assert_eq!(sign(SECRET.as_bytes(), NOW, BODY)[0].1, value);
    }

    #[test]
    fn any_v1_may_match_and_v0_is_ignored() {
        let good = &sign(SECRET.as_bytes(), NOW, BODY)[0].1;
        let good_v1 = good.rsplit_once("v1=").expect("v1").1;
        let other = hex::encode([7u8; 32]);
        let value = format!("t={NOW},v1={other},v0={other},v1={good_v1}");
        assert!(
            verifier(&[SECRET])
                .verify(&headers(&[(SIGNATURE_HEADER, &value)]), BODY)
                .is_ok()
        );
        let only_v0 = format!("t={NOW},v0={good_v1}");
        assert_eq!(
            verifier(&[SECRET]).verify(&headers(&[(SIGNATURE_HEADER, &only_v0)]), BODY),
            Err(Rejection::SignatureMalformed)
        );
    }

    #[test]
    fn tampering_is_refused() {
        let v = verifier(&[SECRET]);
        assert_eq!(
            v.verify(&header_at(NOW), &tamper(BODY)),
            Err(Rejection::SignatureMismatch)
        );
        let value = &sign(SECRET.as_bytes(), NOW, BODY)[0].1;
        let last = value.len() - 1;
        let flipped = flip_char(value, last);
        assert_eq!(
            v.verify(&headers(&[(SIGNATURE_HEADER, &flipped)]), BODY),
            Err(Rejection::SignatureMismatch)
        );
        // Same signature, timestamp moved by one second.
        let moved = value.replacen(&NOW.to_string(), &(NOW + 1).to_string(), 1);
        assert_eq!(
            v.verify(&headers(&[(SIGNATURE_HEADER, &moved)]), BODY),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            verifier(&["whsec_other"]).verify(&header_at(NOW), BODY),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers() {
        let v = verifier(&[SECRET]);
        assert_eq!(
            v.verify(&headers(&[]), BODY),
            Err(Rejection::SignatureMissing)
        );
        let sig = hex::encode([1u8; 32]);
        let cases = [
            (format!("v1={sig}"), Rejection::TimestampMissing),
            (format!("t=abc,v1={sig}"), Rejection::TimestampMalformed),
            (
                format!("t={NOW},t={NOW},v1={sig}"),
                Rejection::TimestampMalformed,
            ),
            (format!("t={NOW}"), Rejection::SignatureMalformed),
            (
                format!("t={NOW},v1={}", &sig[..62]),
                Rejection::SignatureMalformed,
            ),
            (format!("t={NOW},v1={sig}zz"), Rejection::SignatureMalformed),
            (format!("t={NOW},v1"), Rejection::SignatureMalformed),
            (
                huge_value(&format!("t={NOW},v1=")),
                Rejection::SignatureMalformed,
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(
                v.verify(&headers(&[(SIGNATURE_HEADER, &value)]), BODY),
                Err(expected),
                "{}",
                &value[..value.len().min(80)]
            );
        }
        let many = format!("t={NOW}{}", format!(",v1={sig}").repeat(MAX_CANDIDATES + 1));
        assert_eq!(
            v.verify(&headers(&[(SIGNATURE_HEADER, &many)]), BODY),
            Err(Rejection::SignatureMalformed)
        );
        let mut twice = header_at(NOW);
        twice.append(SIGNATURE_HEADER, twice[SIGNATURE_HEADER].clone());
        assert_eq!(v.verify(&twice, BODY), Err(Rejection::SignatureMalformed));
    }

    #[test]
    fn a_malformed_v1_does_not_refuse_a_good_one() {
        let v = verifier(&[SECRET]);
        let good = format!("v1={KNOWN_V1}");
        let other = format!("v1={}", hex::encode([7u8; 32]));
        let short = format!("v1={}", &KNOWN_V1[..62]);
        let long = format!("v1={KNOWN_V1}00");
        let not_hex = format!("v1={}zz", &KNOWN_V1[..62]);
        candidate_list_suite(&CandidateList {
            verify: &|entries| {
                let value = format!("t={NOW},{}", entries.join(","));
                v.verify(&headers(&[(SIGNATURE_HEADER, &value)]), BODY)
            },
            good: &good,
            other: &other,
            malformed: &[&short, &long, &not_hex, "v1=", "v1"],
        });
        // The timestamp stays strict next to a good v1.
        for value in [
            format!("t={NOW},t={NOW},{good}"),
            format!("t=abc,{good}"),
            format!("t,{good}"),
            format!("t=,{good}"),
            format!("{good},t={NOW},t={}", NOW + 1),
        ] {
            assert_eq!(
                v.verify(&headers(&[(SIGNATURE_HEADER, &value)]), BODY),
                Err(Rejection::TimestampMalformed),
                "{value}"
            );
        }
    }

    #[test]
    fn stale_and_future_timestamps() {
        let v = verifier(&[SECRET]);
        assert!(v.verify(&header_at(NOW - 300), BODY).is_ok());
        assert!(v.verify(&header_at(NOW + 300), BODY).is_ok());
        assert_eq!(
            v.verify(&header_at(NOW - 301), BODY),
            Err(Rejection::TimestampOutOfTolerance)
        );
        assert_eq!(
            v.verify(&header_at(NOW + 301), BODY),
            Err(Rejection::TimestampOutOfTolerance)
        );
        let narrow = StripeVerifier::with_clock(secrets(&[SECRET]), 10, now).expect("verifier");
        assert_eq!(
            narrow.verify(&header_at(NOW - 11), BODY),
            Err(Rejection::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn rotation_and_non_json_bodies() {
        let verified = verifier(&["whsec_old", SECRET])
            .verify(&header_at(NOW), BODY)
            .expect("second secret");
        assert_eq!(verified.secret_index, 1);
        let body = b"not json";
        let verified = verifier(&[SECRET])
            .verify(&signed_headers(&sign(SECRET.as_bytes(), NOW, body)), body)
            .expect("verifies");
        assert_eq!((verified.event, verified.delivery_id), (None, None));
        assert!(matches!(
            StripeVerifier::new(Vec::new(), 300),
            Err(VerifierError::NoSecrets)
        ));
    }
}
