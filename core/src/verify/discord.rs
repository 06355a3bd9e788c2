//! Discord interactions: `X-Signature-Ed25519: <hex Ed25519 signature>` over
//! `<X-Signature-Timestamp><body>`, checked with the application's public
//! key (64 hex digits, from the developer portal) held in the secret file.
//!
//! Signatures are checked with `verify_strict` (no small-order keys, no
//! malleable signatures). Discord expects an answer within 3 seconds and
//! does not retry interactions, so the signed timestamp is also held to the
//! default five-minute window as a replay defence. The event is the
//! interaction `type` (named, e.g. `APPLICATION_COMMAND`), the delivery id
//! the interaction `id`, both read from the body after it verified.
//!
//! See <https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers>.

use ed25519_dalek::{Signature, VerifyingKey};
use http::HeaderMap;

use super::timestamp::system_clock;
use super::timestamp::{check_fresh, parse_unix_seconds};
use super::{
    Clock, DEFAULT_TIMESTAMP_TOLERANCE_SECS, Handshake, Incoming, Rejection, Verdict, Verified,
    Verifier, VerifierError, info_value, parse_keys, single_header,
};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-signature-ed25519";
const TIMESTAMP_HEADER: &str = "x-signature-timestamp";

/// Verifies Discord interactions against one or more application public keys.
#[derive(Debug)]
pub struct DiscordVerifier {
    keys: Vec<VerifyingKey>,
    clock: Clock,
}

impl DiscordVerifier {
    /// A verifier accepting a signature by any of the public keys (each
    /// secret file holds one key as 64 hex digits; surrounding whitespace is
    /// ignored). Invalid key material fails here, at startup.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        Self::with_clock(secrets, system_clock)
    }

    /// As [`DiscordVerifier::new`], reading the time from `clock`.
    pub fn with_clock(secrets: Vec<Secret>, clock: Clock) -> Result<Self, VerifierError> {
        let keys = parse_keys(
            &secrets,
            "discord",
            "an Ed25519 public key as 64 hex digits",
            parse_key,
        )?;
        Ok(Self { keys, clock })
    }
}

fn parse_key(secret: &Secret) -> Option<VerifyingKey> {
    let text = std::str::from_utf8(secret.expose()).ok()?.trim();
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    let key = VerifyingKey::from_bytes(&bytes).ok()?;
    // A weak (small-order) key would let anyone forge signatures.
    (!key.is_weak()).then_some(key)
}

/// The interaction type names Discord documents.
fn type_name(kind: u64) -> String {
    match kind {
        1 => "PING".to_owned(),
        2 => "APPLICATION_COMMAND".to_owned(),
        3 => "MESSAGE_COMPONENT".to_owned(),
        4 => "APPLICATION_COMMAND_AUTOCOMPLETE".to_owned(),
        5 => "MODAL_SUBMIT".to_owned(),
        other => other.to_string(),
    }
}

fn interaction(body: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(body).ok()
}

/// Whether an (already verified) interaction is Discord's PING, which is
/// answered with `{"type":1}` (the endpoint handshake).
pub fn is_ping(body: &[u8]) -> bool {
    interaction(body).and_then(|v| v.get("type").and_then(serde_json::Value::as_u64)) == Some(1)
}

/// The headers Discord sends for `body` at `timestamp`, signed with the
/// Ed25519 private key whose 32-byte seed is `seed` (what a test sender
/// holds; Discord keeps the real one).
pub fn sign(seed: &[u8; 32], timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    use ed25519_dalek::Signer;
    let key = ed25519_dalek::SigningKey::from_bytes(seed);
    let ts = timestamp.to_string();
    let mut message = ts.as_bytes().to_vec();
    message.extend_from_slice(body);
    vec![
        (SIGNATURE_HEADER, hex::encode(key.sign(&message).to_bytes())),
        (TIMESTAMP_HEADER, ts),
    ]
}

/// The public key (64 hex digits, the receiver's secret file) of `seed`.
pub fn public_key_hex(seed: &[u8; 32]) -> String {
    hex::encode(
        ed25519_dalek::SigningKey::from_bytes(seed)
            .verifying_key()
            .to_bytes(),
    )
}

impl Verifier for DiscordVerifier {
    fn provider(&self) -> &'static str {
        "discord"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let value = single_header(headers, SIGNATURE_HEADER)
            .map_err(|()| Rejection::SignatureMalformed)?
            .ok_or(Rejection::SignatureMissing)?;
        let mut bytes = [0u8; 64];
        // Fails on a non-hex digit and on any length other than 128 digits.
        hex::decode_to_slice(value, &mut bytes).map_err(|_| Rejection::SignatureMalformed)?;
        let signature = Signature::from_bytes(&bytes);

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
            if key.verify_strict(&message, &signature).is_ok() && matched.is_none() {
                matched = Some(index);
            }
        }
        let secret_index = matched.ok_or(Rejection::SignatureMismatch)?;

        let parsed = interaction(body);
        let event = parsed
            .as_ref()
            .and_then(|v| v.get("type").and_then(serde_json::Value::as_u64))
            .map(type_name);
        let delivery_id = parsed
            .as_ref()
            .and_then(|v| v.get("id").and_then(serde_json::Value::as_str))
            .and_then(info_value);
        Ok(Verified {
            event,
            delivery_id,
            secret_index,
        })
    }

    /// A PING (type 1, verified like any interaction) is answered with
    /// `{"type":1}` (PONG).
    ///
    /// See <https://discord.com/developers/docs/interactions/receiving-and-responding#receiving-an-interaction>.
    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        let verified = self.verify(request.headers, request.body)?;
        if !is_ping(request.body) {
            return Ok(Verdict::Deliver(verified));
        }
        Ok(Handshake::answer(
            verified,
            "application/json",
            br#"{"type":1}"#.to_vec(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};
    use http::HeaderValue;

    use super::*;

    /// RFC 8032 section 7.1, TEST 1: the secret key and its public key. The
    /// published signature of the empty message is checked below, so the
    /// library and the key handling are pinned to the standard.
    const RFC_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC_EMPTY_SIGNATURE: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    const TS: &str = "1700000000";
    const NOW: i64 = 1_700_000_000;
    const BODY: &str =
        r#"{"application_id":"1","id":"1180000000000000000","token":"t","type":2,"version":1}"#;

    fn now() -> i64 {
        NOW
    }
    fn ten_minutes_later() -> i64 {
        NOW + 600
    }
    fn ten_minutes_earlier() -> i64 {
        NOW - 600
    }

    fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn rfc_key() -> SigningKey {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(RFC_SECRET, &mut bytes).expect("hex");
        SigningKey::from_bytes(&bytes)
    }

    /// Test-only: what Discord sends, signed with `key`.
    fn sign(key: &SigningKey, timestamp: &str, body: &[u8]) -> String {
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(body);
        hex::encode(key.sign(&message).to_bytes())
    }

    fn public_hex(key: &SigningKey) -> Secret {
        Secret::from(format!("{}\n", hex::encode(key.verifying_key().to_bytes())).into_bytes())
    }

    fn verifier(keys: &[&SigningKey], clock: Clock) -> DiscordVerifier {
        DiscordVerifier::with_clock(keys.iter().map(|k| public_hex(k)).collect(), clock)
            .expect("valid keys")
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

    #[test]
    fn rfc_8032_vector_holds() {
        // <https://www.rfc-editor.org/rfc/rfc8032#section-7.1>, TEST 1.
        let key = rfc_key();
        assert_eq!(hex::encode(key.verifying_key().to_bytes()), RFC_PUBLIC);
        assert_eq!(hex::encode(key.sign(b"").to_bytes()), RFC_EMPTY_SIGNATURE);
        let public = parse_key(&Secret::from(RFC_PUBLIC.as_bytes())).expect("valid key");
        let mut sig = [0u8; 64];
        hex::decode_to_slice(RFC_EMPTY_SIGNATURE, &mut sig).expect("hex");
        assert!(
            public
                .verify_strict(b"", &Signature::from_bytes(&sig))
                .is_ok()
        );
    }

    #[test]
    fn accepts_a_signed_interaction() {
        let key = rfc_key();
        let sig = sign(&key, TS, BODY.as_bytes());
        let verified = verifier(&[&key], now)
            .verify(&headers(Some(&sig), Some(TS)), BODY.as_bytes())
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("APPLICATION_COMMAND".to_owned()),
                delivery_id: Some("1180000000000000000".to_owned()),
                secret_index: 0,
            }
        );
        // Uppercase hex is the same signature.
        assert!(
            verifier(&[&key], now)
                .verify(
                    &headers(Some(&sig.to_uppercase()), Some(TS)),
                    BODY.as_bytes()
                )
                .is_ok()
        );
    }

    #[test]
    fn recognises_a_ping() {
        let key = signing_key(7);
        let body = br#"{"id":"1","type":1}"#;
        let sig = sign(&key, TS, body);
        let verified = verifier(&[&key], now)
            .verify(&headers(Some(&sig), Some(TS)), body)
            .expect("verifies");
        assert_eq!(verified.event.as_deref(), Some("PING"));
        assert!(is_ping(body));
        assert!(!is_ping(BODY.as_bytes()));
        assert!(!is_ping(b"not json"));
    }

    #[test]
    fn rejects_single_byte_tampering() {
        let key = signing_key(1);
        let v = verifier(&[&key], now);
        let sig = sign(&key, TS, BODY.as_bytes());
        for i in 0..BODY.len() {
            let mut body = BODY.as_bytes().to_vec();
            body[i] ^= 0x01;
            assert_eq!(
                v.verify(&headers(Some(&sig), Some(TS)), &body),
                Err(Rejection::SignatureMismatch),
                "body byte {i}"
            );
        }
        let mut bytes = hex::decode(&sig).expect("hex");
        for i in [0, 31, 32, 63] {
            bytes[i] ^= 0x01;
            let tampered = hex::encode(&bytes);
            bytes[i] ^= 0x01;
            assert_eq!(
                v.verify(&headers(Some(&tampered), Some(TS)), BODY.as_bytes()),
                Err(Rejection::SignatureMismatch),
                "signature byte {i}"
            );
        }
        // Another (still fresh) timestamp is not what was signed.
        assert_eq!(
            v.verify(&headers(Some(&sig), Some("1700000001")), BODY.as_bytes()),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn rejects_stale_and_future_timestamps() {
        let key = signing_key(1);
        let sig = sign(&key, TS, BODY.as_bytes());
        for clock in [ten_minutes_later as Clock, ten_minutes_earlier] {
            assert_eq!(
                verifier(&[&key], clock).verify(&headers(Some(&sig), Some(TS)), BODY.as_bytes()),
                Err(Rejection::TimestampOutOfTolerance)
            );
        }
    }

    #[test]
    fn rejects_missing_and_malformed_headers() {
        let key = signing_key(1);
        let v = verifier(&[&key], now);
        let sig = sign(&key, TS, BODY.as_bytes());
        let huge = "a".repeat(100 * 1024);
        let huge_digits = "1".repeat(100 * 1024);
        let cases = [
            (headers(None, Some(TS)), Rejection::SignatureMissing),
            (
                headers(Some(&sig[..126]), Some(TS)),
                Rejection::SignatureMalformed,
            ),
            (
                headers(Some(&format!("{sig}00")), Some(TS)),
                Rejection::SignatureMalformed,
            ),
            (
                headers(Some(&format!("{}zz", &sig[..126])), Some(TS)),
                Rejection::SignatureMalformed,
            ),
            (
                headers(Some(&huge), Some(TS)),
                Rejection::SignatureMalformed,
            ),
            (headers(Some(&sig), None), Rejection::TimestampMissing),
            (
                headers(Some(&sig), Some("yesterday")),
                Rejection::TimestampMalformed,
            ),
            (
                headers(Some(&sig), Some("-1700000000")),
                Rejection::TimestampMalformed,
            ),
            (
                headers(Some(&sig), Some(&huge_digits)),
                Rejection::TimestampMalformed,
            ),
        ];
        for (index, (headers, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                v.verify(&headers, BODY.as_bytes()),
                Err(expected),
                "case {index}"
            );
        }
        let mut repeated = headers(Some(&sig), Some(TS));
        repeated.append(
            SIGNATURE_HEADER,
            HeaderValue::from_str(&sig).expect("ascii"),
        );
        assert_eq!(
            v.verify(&repeated, BODY.as_bytes()),
            Err(Rejection::SignatureMalformed)
        );
    }

    #[test]
    fn accepts_a_rotated_key_and_says_which() {
        let old = signing_key(1);
        let new = signing_key(2);
        let sig = sign(&new, TS, BODY.as_bytes());
        let verified = verifier(&[&old, &new], now)
            .verify(&headers(Some(&sig), Some(TS)), BODY.as_bytes())
            .expect("second key");
        assert_eq!(verified.secret_index, 1);
        assert_eq!(
            verifier(&[&old], now).verify(&headers(Some(&sig), Some(TS)), BODY.as_bytes()),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn invalid_key_material_is_a_startup_error_that_hides_the_key() {
        let not_hex = "zz".repeat(32);
        let short = &RFC_PUBLIC[..62];
        // The identity point: a small-order (weak) key.
        let weak = format!("01{}", "00".repeat(31));
        for bad in [not_hex.as_str(), short, weak.as_str(), ""] {
            let err = DiscordVerifier::new(vec![
                Secret::from(RFC_PUBLIC.as_bytes()),
                Secret::from(bad.as_bytes()),
            ])
            .expect_err(bad);
            assert!(
                matches!(
                    err,
                    VerifierError::InvalidKey {
                        provider: "discord",
                        index: 1,
                        ..
                    }
                ),
                "{err}"
            );
            let shown = format!("{err} {err:?}");
            assert!(bad.is_empty() || !shown.contains(bad), "{shown}");
            assert!(!shown.contains(RFC_PUBLIC), "{shown}");
        }
        assert!(matches!(
            DiscordVerifier::new(Vec::new()),
            Err(VerifierError::NoSecrets)
        ));
    }
}

#[cfg(test)]
mod handshake_tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::super::{check_post, expect_handshake};
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn now() -> i64 {
        NOW
    }

    fn headers(key: &SigningKey, body: &[u8]) -> HeaderMap {
        let ts = NOW.to_string();
        let mut message = ts.as_bytes().to_vec();
        message.extend_from_slice(body);
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            hex::encode(key.sign(&message).to_bytes())
                .parse()
                .expect("hex"),
        );
        headers.insert(TIMESTAMP_HEADER, ts.parse().expect("digits"));
        headers
    }

    #[test]
    fn a_verified_ping_is_answered_with_pong() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = hex::encode(key.verifying_key().to_bytes());
        let v = DiscordVerifier::with_clock(vec![Secret::from(public.into_bytes())], now)
            .expect("verifier");
        let ping = br#"{"id":"1","type":1,"application_id":"2","token":"t","version":1}"#;
        let handshake = expect_handshake(check_post(&v, &headers(&key, ping), ping));
        assert_eq!(handshake.body, br#"{"type":1}"#);
        assert_eq!(handshake.content_type, "application/json");
        let other = SigningKey::from_bytes(&[8; 32]);
        assert_eq!(
            check_post(&v, &headers(&other, ping), ping),
            Err(Rejection::SignatureMismatch)
        );
        let command = br#"{"id":"1","type":2}"#;
        assert!(matches!(
            check_post(&v, &headers(&key, command), command),
            Ok(Verdict::Deliver(_))
        ));
    }
}
