//! SendGrid's signed Event Webhook: `X-Twilio-Email-Event-Webhook-Signature`
//! holds a base64 DER ECDSA P-256 / SHA-256 signature over
//! `<X-Twilio-Email-Event-Webhook-Timestamp><body>`, checked with the
//! verification key SendGrid shows for the webhook: base64 DER
//! SubjectPublicKeyInfo, as the secret file holds it (a PEM armour is not
//! expected; surrounding whitespace is ignored).
//!
//! The signed timestamp is held to the default five-minute window. A
//! delivery is a batch of events with no id of its own, so the event is
//! `batch` and there is no delivery id.
//!
//! See <https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features>.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderMap;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;

use super::timestamp::system_clock;
use super::timestamp::{check_fresh, parse_unix_seconds};
use super::{
    Clock, DEFAULT_TIMESTAMP_TOLERANCE_SECS, Rejection, Verified, Verifier, VerifierError,
    parse_keys, single_header,
};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";
/// A DER ECDSA P-256 signature is at most 72 bytes: 96 base64 characters.
const MAX_SIGNATURE_CHARS: usize = 96;

/// Verifies SendGrid Event Webhook deliveries against one or more public keys.
#[derive(Debug)]
pub struct SendgridVerifier {
    keys: Vec<VerifyingKey>,
    clock: Clock,
}

impl SendgridVerifier {
    /// A verifier accepting a signature by any of the public keys; invalid
    /// key material fails here, at startup.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        Self::with_clock(secrets, system_clock)
    }

    /// As [`SendgridVerifier::new`], reading the time from `clock`.
    pub fn with_clock(secrets: Vec<Secret>, clock: Clock) -> Result<Self, VerifierError> {
        let keys = parse_keys(
            &secrets,
            "sendgrid",
            "a P-256 public key as base64 DER (SubjectPublicKeyInfo)",
            parse_key,
        )?;
        Ok(Self { keys, clock })
    }
}

fn parse_key(secret: &Secret) -> Option<VerifyingKey> {
    let text = std::str::from_utf8(secret.expose()).ok()?.trim();
    let der = BASE64.decode(text).ok()?;
    VerifyingKey::from_public_key_der(&der).ok()
}

/// A P-256 private key from DER: PKCS#8 (`openssl genpkey`) or SEC1
/// (`openssl ecparam -genkey`).
fn private_key(der: &[u8]) -> Option<p256::ecdsa::SigningKey> {
    use p256::pkcs8::DecodePrivateKey;
    p256::SecretKey::from_pkcs8_der(der)
        .or_else(|_| p256::SecretKey::from_sec1_der(der))
        .ok()
        .map(p256::ecdsa::SigningKey::from)
}

/// The headers SendGrid sends for `body` at `timestamp`, signed with the
/// P-256 private key `der` (PKCS#8 or SEC1 DER); `None` when `der` is not
/// such a key.
pub fn sign(der: &[u8], timestamp: i64, body: &[u8]) -> Option<Vec<(&'static str, String)>> {
    use p256::ecdsa::signature::Signer;
    let key = private_key(der)?;
    let ts = timestamp.to_string();
    let mut message = ts.as_bytes().to_vec();
    message.extend_from_slice(body);
    let signature: Signature = key.sign(&message);
    Some(vec![
        (
            SIGNATURE_HEADER,
            BASE64.encode(signature.to_der().as_bytes()),
        ),
        (TIMESTAMP_HEADER, ts),
    ])
}

/// The verification key (base64 DER SubjectPublicKeyInfo, the receiver's
/// secret file) of the private key `der`.
pub fn public_key_base64(der: &[u8]) -> Option<String> {
    // SubjectPublicKeyInfo { id-ecPublicKey, prime256v1 } + the
    // uncompressed point: a fixed 26-byte prefix (RFC 5480).
    const SPKI_PREFIX: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";
    let key = private_key(der)?;
    let mut spki = hex::decode(SPKI_PREFIX).ok()?;
    spki.extend_from_slice(key.verifying_key().to_encoded_point(false).as_bytes());
    Some(BASE64.encode(spki))
}

impl Verifier for SendgridVerifier {
    fn provider(&self) -> &'static str {
        "sendgrid"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let value = single_header(headers, SIGNATURE_HEADER)
            .map_err(|()| Rejection::SignatureMalformed)?
            .ok_or(Rejection::SignatureMissing)?;
        if value.len() > MAX_SIGNATURE_CHARS {
            return Err(Rejection::SignatureMalformed);
        }
        let der = BASE64
            .decode(value.trim())
            .map_err(|_| Rejection::SignatureMalformed)?;
        let signature = Signature::from_der(&der).map_err(|_| Rejection::SignatureMalformed)?;

        let timestamp = single_header(headers, TIMESTAMP_HEADER)
            .map_err(|()| Rejection::TimestampMalformed)?
            .ok_or(Rejection::TimestampMissing)?;
        check_fresh(
            (self.clock)(),
            parse_unix_seconds(timestamp)?,
            DEFAULT_TIMESTAMP_TOLERANCE_SECS,
        )?;

        let mut message = Vec::with_capacity(timestamp.len() + body.len());
        message.extend_from_slice(timestamp.as_bytes());
        message.extend_from_slice(body);
        let mut matched = None;
        for (index, key) in self.keys.iter().enumerate() {
            if key.verify(&message, &signature).is_ok() && matched.is_none() {
                matched = Some(index);
            }
        }
        let secret_index = matched.ok_or(Rejection::SignatureMismatch)?;
        Ok(Verified {
            event: Some("batch".to_owned()),
            delivery_id: None,
            secret_index,
        })
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;

    use super::*;

    /// The test vector of SendGrid's official Go library,
    /// <https://github.com/sendgrid/sendgrid-go/blob/main/helpers/eventwebhook/eventwebhook_test.go>:
    /// its public key, signature and timestamp; the payload is what its
    /// `json.Marshal` of the test map produces (keys sorted).
    const SDK_PUBLIC_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    const SDK_SIGNATURE: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
    const SDK_TIMESTAMP: &str = "1588788367";
    const SDK_NOW: i64 = 1_588_788_367;
    const SDK_PAYLOAD: &str =
        r#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;

    fn sdk_now() -> i64 {
        SDK_NOW
    }
    fn ten_minutes_later() -> i64 {
        SDK_NOW + 600
    }
    fn ten_minutes_earlier() -> i64 {
        SDK_NOW - 600
    }

    fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).expect("valid scalar")
    }

    /// SubjectPublicKeyInfo DER of a P-256 key: the fixed algorithm
    /// identifier (id-ecPublicKey, prime256v1) and the uncompressed point,
    /// base64 as SendGrid shows it.
    fn public_b64(key: &SigningKey) -> Secret {
        let mut der =
            hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").expect("hex");
        der.extend_from_slice(key.verifying_key().to_encoded_point(false).as_bytes());
        Secret::from(format!("{}\n", BASE64.encode(der)).into_bytes())
    }

    /// Test-only: the signature header SendGrid would send.
    fn sign(key: &SigningKey, timestamp: &str, body: &[u8]) -> String {
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(body);
        let signature: Signature = key.sign(&message);
        BASE64.encode(signature.to_der().as_bytes())
    }

    fn sdk_verifier(clock: Clock) -> SendgridVerifier {
        SendgridVerifier::with_clock(vec![Secret::from(SDK_PUBLIC_KEY.as_bytes())], clock)
            .expect("valid key")
    }

    fn headers(signature: Option<&str>, timestamp: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = signature {
            headers.insert(
                SIGNATURE_HEADER,
                HeaderValue::from_str(value).expect("ascii"),
            );
        }
        if let Some(value) = timestamp {
            headers.insert(
                TIMESTAMP_HEADER,
                HeaderValue::from_str(value).expect("ascii"),
            );
        }
        headers
    }

    fn sdk_headers() -> HeaderMap {
        headers(Some(SDK_SIGNATURE), Some(SDK_TIMESTAMP))
    }

    #[test]
    fn accepts_the_official_sdk_vector() {
        let verified = sdk_verifier(sdk_now)
            .verify(&sdk_headers(), SDK_PAYLOAD.as_bytes())
            .expect("SDK vector verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("batch".to_owned()),
                delivery_id: None,
                secret_index: 0,
            }
        );
    }

    /// SendGrid's signers (Go, Java) do not normalise `s`, so a "high-S"
    /// signature is as valid as its low-S twin and must be accepted: this is
    /// the SDK signature with `s` replaced by `n - s` (checked with Python's
    /// `cryptography` package).
    const SDK_SIGNATURE_HIGH_S: &str = "MEYCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIhANrDCfMQ5Qzm2JuXRflrTF6xy6WXAGg0ny9o9GIqbJVU";

    #[test]
    fn accepts_a_high_s_signature() {
        assert!(
            sdk_verifier(sdk_now)
                .verify(
                    &headers(Some(SDK_SIGNATURE_HIGH_S), Some(SDK_TIMESTAMP)),
                    SDK_PAYLOAD.as_bytes()
                )
                .is_ok()
        );
    }

    #[test]
    fn rejects_the_sdk_vector_tampered() {
        let v = sdk_verifier(sdk_now);
        for i in 0..SDK_PAYLOAD.len() {
            let mut body = SDK_PAYLOAD.as_bytes().to_vec();
            body[i] ^= 0x01;
            assert_eq!(
                v.verify(&sdk_headers(), &body),
                Err(Rejection::SignatureMismatch),
                "body byte {i}"
            );
        }
        // A changed byte of r or s (well inside the DER) still parses.
        let mut der = BASE64.decode(SDK_SIGNATURE).expect("base64");
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let tampered = BASE64.encode(&der);
        assert_eq!(
            v.verify(
                &headers(Some(&tampered), Some(SDK_TIMESTAMP)),
                SDK_PAYLOAD.as_bytes()
            ),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            v.verify(
                &headers(Some(SDK_SIGNATURE), Some("1588788368")),
                SDK_PAYLOAD.as_bytes()
            ),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn sign_then_verify_round_trip() {
        let key = signing_key(3);
        let sig = sign(&key, SDK_TIMESTAMP, b"[]");
        let v = SendgridVerifier::with_clock(vec![public_b64(&key)], sdk_now).expect("valid");
        assert!(
            v.verify(&headers(Some(&sig), Some(SDK_TIMESTAMP)), b"[]")
                .is_ok()
        );
        assert_eq!(
            v.verify(&headers(Some(&sig), Some(SDK_TIMESTAMP)), b"[ ]"),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn rejects_stale_and_future_timestamps() {
        for clock in [ten_minutes_later as Clock, ten_minutes_earlier] {
            assert_eq!(
                sdk_verifier(clock).verify(&sdk_headers(), SDK_PAYLOAD.as_bytes()),
                Err(Rejection::TimestampOutOfTolerance)
            );
        }
    }

    #[test]
    fn rejects_missing_and_malformed_headers() {
        let v = sdk_verifier(sdk_now);
        let huge = "A".repeat(100 * 1024);
        let raw_not_der = BASE64.encode([7u8; 64]);
        let cases = [
            (
                headers(None, Some(SDK_TIMESTAMP)),
                Rejection::SignatureMissing,
            ),
            (
                headers(Some("not base64!"), Some(SDK_TIMESTAMP)),
                Rejection::SignatureMalformed,
            ),
            (
                headers(Some(&raw_not_der), Some(SDK_TIMESTAMP)),
                Rejection::SignatureMalformed,
            ),
            (
                headers(Some(&SDK_SIGNATURE[..40]), Some(SDK_TIMESTAMP)),
                Rejection::SignatureMalformed,
            ),
            (
                headers(Some(&huge), Some(SDK_TIMESTAMP)),
                Rejection::SignatureMalformed,
            ),
            (
                headers(Some(SDK_SIGNATURE), None),
                Rejection::TimestampMissing,
            ),
            (
                headers(Some(SDK_SIGNATURE), Some("invalid timestamp")),
                Rejection::TimestampMalformed,
            ),
            (
                headers(Some(SDK_SIGNATURE), Some(&"9".repeat(100 * 1024))),
                Rejection::TimestampMalformed,
            ),
        ];
        for (index, (headers, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                v.verify(&headers, SDK_PAYLOAD.as_bytes()),
                Err(expected),
                "case {index}"
            );
        }
        let mut repeated = sdk_headers();
        repeated.append(SIGNATURE_HEADER, HeaderValue::from_static(SDK_SIGNATURE));
        assert_eq!(
            v.verify(&repeated, SDK_PAYLOAD.as_bytes()),
            Err(Rejection::SignatureMalformed)
        );
    }

    #[test]
    fn accepts_a_rotated_key_and_says_which() {
        let v = SendgridVerifier::with_clock(
            vec![
                public_b64(&signing_key(9)),
                Secret::from(SDK_PUBLIC_KEY.as_bytes()),
            ],
            sdk_now,
        )
        .expect("valid keys");
        let verified = v
            .verify(&sdk_headers(), SDK_PAYLOAD.as_bytes())
            .expect("second key");
        assert_eq!(verified.secret_index, 1);
    }

    #[test]
    fn invalid_key_material_is_a_startup_error_that_hides_the_key() {
        // SendGrid's SDK test corrupts the key the same way.
        let corrupted = format!("{SDK_PUBLIC_KEY}corrupting the public key");
        let truncated = &SDK_PUBLIC_KEY[..60];
        for bad in [corrupted.as_str(), truncated, "not base64!", ""] {
            let err = SendgridVerifier::new(vec![
                Secret::from(SDK_PUBLIC_KEY.as_bytes()),
                Secret::from(bad.as_bytes()),
            ])
            .expect_err(bad);
            assert!(
                matches!(
                    err,
                    VerifierError::InvalidKey {
                        provider: "sendgrid",
                        index: 1,
                        ..
                    }
                ),
                "{err}"
            );
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(&SDK_PUBLIC_KEY[..20]), "{shown}");
        }
    }
}

#[cfg(test)]
mod signing_tests {
    use super::*;

    /// A key made with `openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`, as PKCS#8 and SEC1 DER, and the
    /// SubjectPublicKeyInfo `openssl pkey -pubout` printed for it.
    const PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgoiwTVKttlFY6DOPfeyL09KaIYAGtGjg19jV0nZOILnGhRANCAARZf2t164c2o4Mee1n4U9J5i19RKru93lGb99Actxr3psAc4NZirCjNp1TZUkw3FD+v8qutCf8+gD0prlWVxQBT";
    const SEC1: &str = "MHcCAQEEIKIsE1SrbZRWOgzj33si9PSmiGABrRo4NfY1dJ2TiC5xoAoGCCqGSM49AwEHoUQDQgAEWX9rdeuHNqODHntZ+FPSeYtfUSq7vd5Rm/fQHLca96bAHODWYqwozadU2VJMNxQ/r/KrrQn/PoA9Ka5VlcUAUw==";
    const OPENSSL_PUBLIC: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEWX9rdeuHNqODHntZ+FPSeYtfUSq7vd5Rm/fQHLca96bAHODWYqwozadU2VJMNxQ/r/KrrQn/PoA9Ka5VlcUAUw==";

    fn now() -> i64 {
        1_700_000_000
    }

    #[test]
    fn what_sign_produces_verifies_with_the_matching_public_key() {
        let body = br#"[{"event":"delivered","sg_event_id":"e1"}]"#;
        for der in [PKCS8, SEC1] {
            let der = BASE64.decode(der).expect("base64");
            assert_eq!(public_key_base64(&der).as_deref(), Some(OPENSSL_PUBLIC));
            let verifier =
                SendgridVerifier::with_clock(vec![Secret::from(OPENSSL_PUBLIC.as_bytes())], now)
                    .expect("verifier");
            let mut headers = HeaderMap::new();
            for (name, value) in sign(&der, now(), body).expect("a P-256 key") {
                headers.insert(name, value.parse().expect("header value"));
            }
            assert!(verifier.verify(&headers, body).is_ok());
            assert_eq!(
                verifier.verify(&headers, b"[]").map(|_| ()),
                Err(Rejection::SignatureMismatch)
            );
        }
        assert!(sign(b"not a key", now(), body).is_none());
    }
}
