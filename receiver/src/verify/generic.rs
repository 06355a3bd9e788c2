//! The `generic` provider: the checks an endpoint configures in
//! `spec.verification` — a shared token in a header, HTTP Basic credentials,
//! an HMAC signature — for senders that are not a preset. All configured
//! checks must pass.
//!
//! Secrets are compared in constant time. Tokens and passwords are compared
//! through their SHA-256 digests, so not even their length is revealed by
//! the time a comparison takes.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use hookwarden_crds::{
    BasicAuthCheck, BinaryEncoding, HmacAlgorithm, HmacCheck, SignatureEncoding, TokenCheck,
};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::timestamp::{Clock, check_fresh, parse_unix_seconds, system_clock};
use super::{Rejection, Verified, Verifier, VerifierError, info_header, single_header};
use crate::secrets::Secret;

/// The configured checks of one endpoint.
#[derive(Debug)]
pub struct GenericVerifier {
    token: Option<TokenVerifier>,
    basic: Option<BasicVerifier>,
    hmac: Option<HmacVerifier>,
    event_header: Option<String>,
    delivery_id_header: Option<String>,
}

/// What [`GenericVerifier::new`] needs for each configured check: the
/// check's settings and its secrets, already loaded.
#[derive(Debug, Default)]
pub struct GenericChecks {
    /// The token check and its accepted tokens.
    pub token: Option<(TokenCheck, Vec<Secret>)>,
    /// The Basic check and its accepted passwords.
    pub basic: Option<(BasicAuthCheck, Vec<Secret>)>,
    /// The HMAC check and its accepted keys (as written in the Secret).
    pub hmac: Option<(HmacCheck, Vec<Secret>)>,
    /// Header with the event type.
    pub event_header: Option<String>,
    /// Header with the delivery id.
    pub delivery_id_header: Option<String>,
    /// Replay window for the HMAC timestamp, in seconds.
    pub timestamp_tolerance_secs: u32,
}

impl GenericVerifier {
    /// Builds the verifier. Fails when no check is configured (verification
    /// is never silently skipped), when a check has no secret, or when a key
    /// is not in its declared encoding.
    pub fn new(checks: GenericChecks) -> Result<Self, VerifierError> {
        Self::with_clock(checks, system_clock)
    }

    /// As [`GenericVerifier::new`], reading the time from `clock`.
    pub fn with_clock(checks: GenericChecks, clock: Clock) -> Result<Self, VerifierError> {
        if checks.token.is_none() && checks.basic.is_none() && checks.hmac.is_none() {
            return Err(VerifierError::NoChecks);
        }
        let token = checks
            .token
            .map(|(check, tokens)| {
                non_empty("verification.token", &tokens)?;
                Ok::<_, VerifierError>(TokenVerifier {
                    header: check.header.to_ascii_lowercase(),
                    digests: tokens.iter().map(|t| digest(t.expose())).collect(),
                })
            })
            .transpose()?;
        let basic = checks
            .basic
            .map(|(check, passwords)| {
                non_empty("verification.basicAuth", &passwords)?;
                // `user:password` is what the Authorization header encodes:
                // its base64 must not reach a log line either.
                for password in &passwords {
                    let mut pair = format!("{}:", check.username).into_bytes();
                    pair.extend_from_slice(password.expose());
                    crate::logging::register_secret(&pair);
                }
                Ok::<_, VerifierError>(BasicVerifier {
                    username: digest(check.username.as_bytes()),
                    passwords: passwords.iter().map(|p| digest(p.expose())).collect(),
                })
            })
            .transpose()?;
        let hmac = checks
            .hmac
            .map(|(check, keys)| {
                non_empty("verification.hmac", &keys)?;
                let keys = keys
                    .iter()
                    .enumerate()
                    .map(|(index, key)| decode_key(check.key_encoding, key, index))
                    .collect::<Result<Vec<_>, _>>()?;
                // A hex or base64 key is a secret once decoded too.
                for key in &keys {
                    crate::logging::register_secret(key.expose());
                }
                Ok::<_, VerifierError>(HmacVerifier {
                    algorithm: check.algorithm,
                    signature_header: check.signature_header.to_ascii_lowercase(),
                    signature_prefix: check.signature_prefix.unwrap_or_default(),
                    signature_encoding: check.signature_encoding,
                    timestamp_header: check.timestamp_header.map(|h| h.to_ascii_lowercase()),
                    id_header: check.id_header.map(|h| h.to_ascii_lowercase()),
                    keys,
                    tolerance: checks.timestamp_tolerance_secs,
                    clock,
                })
            })
            .transpose()?;
        let delivery_id_header = checks
            .delivery_id_header
            .map(|h| h.to_ascii_lowercase())
            .or_else(|| hmac.as_ref().and_then(|h| h.id_header.clone()));
        Ok(Self {
            token,
            basic,
            hmac,
            event_header: checks.event_header.map(|h| h.to_ascii_lowercase()),
            delivery_id_header,
        })
    }
}

/// [`super::require_secrets`], naming the check that has none.
fn non_empty(check: &'static str, secrets: &[Secret]) -> Result<(), VerifierError> {
    super::require_secrets(secrets).map_err(|_| VerifierError::NoSecretsFor(check))
}

fn decode_key(
    encoding: BinaryEncoding,
    key: &Secret,
    index: usize,
) -> Result<Secret, VerifierError> {
    let bad = || VerifierError::KeyEncoding {
        check: "verification.hmac",
        index,
    };
    let text = || {
        std::str::from_utf8(key.expose())
            .map(str::trim)
            .map_err(|_| bad())
    };
    let bytes = match encoding {
        BinaryEncoding::Raw => key.expose().to_vec(),
        BinaryEncoding::Hex => hex::decode(text()?).map_err(|_| bad())?,
        BinaryEncoding::Base64 => BASE64.decode(text()?).map_err(|_| bad())?,
    };
    if bytes.is_empty() {
        return Err(bad());
    }
    Ok(Secret::from(bytes))
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The index of the first candidate equal to `given`, comparing against
/// every candidate so the time taken does not reveal which one matched.
fn constant_time_find(candidates: &[[u8; 32]], given: &[u8; 32]) -> Option<usize> {
    let mut matched = None;
    for (index, candidate) in candidates.iter().enumerate() {
        if bool::from(candidate.ct_eq(given)) && matched.is_none() {
            matched = Some(index);
        }
    }
    matched
}

#[derive(Debug)]
struct TokenVerifier {
    header: String,
    digests: Vec<[u8; 32]>,
}

impl TokenVerifier {
    fn verify(&self, headers: &HeaderMap) -> Result<usize, Rejection> {
        let token = single_header(headers, &self.header)
            .map_err(|()| Rejection::TokenMismatch)?
            .ok_or(Rejection::TokenMissing)?;
        constant_time_find(&self.digests, &digest(token.as_bytes())).ok_or(Rejection::TokenMismatch)
    }
}

#[derive(Debug)]
struct BasicVerifier {
    username: [u8; 32],
    passwords: Vec<[u8; 32]>,
}

impl BasicVerifier {
    fn verify(&self, headers: &HeaderMap) -> Result<usize, Rejection> {
        let value = single_header(headers, "authorization")
            .map_err(|()| Rejection::BasicAuthMismatch)?
            .ok_or(Rejection::BasicAuthMissing)?;
        let (scheme, encoded) = value.split_once(' ').ok_or(Rejection::BasicAuthMismatch)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(Rejection::BasicAuthMissing);
        }
        let decoded = BASE64
            .decode(encoded.trim())
            .map_err(|_| Rejection::BasicAuthMismatch)?;
        let colon = decoded
            .iter()
            .position(|&b| b == b':')
            .ok_or(Rejection::BasicAuthMismatch)?;
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        // Both halves are always compared, so timing does not tell which was wrong.
        let user_ok = bool::from(self.username.ct_eq(&digest(user)));
        let password = constant_time_find(&self.passwords, &digest(password));
        match (user_ok, password) {
            (true, Some(index)) => Ok(index),
            _ => Err(Rejection::BasicAuthMismatch),
        }
    }
}

#[derive(Debug)]
struct HmacVerifier {
    algorithm: HmacAlgorithm,
    signature_header: String,
    signature_prefix: String,
    signature_encoding: SignatureEncoding,
    timestamp_header: Option<String>,
    id_header: Option<String>,
    keys: Vec<Secret>,
    tolerance: u32,
    clock: Clock,
}

impl HmacVerifier {
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<usize, Rejection> {
        let value = single_header(headers, &self.signature_header)
            .map_err(|()| Rejection::SignatureMalformed)?
            .ok_or(Rejection::SignatureMissing)?;
        let encoded = value
            .strip_prefix(self.signature_prefix.as_str())
            .ok_or(Rejection::SignatureMalformed)?;
        let signature = match self.signature_encoding {
            SignatureEncoding::Hex => hex::decode(encoded.trim()).ok(),
            SignatureEncoding::Base64 => BASE64.decode(encoded.trim()).ok(),
        }
        .ok_or(Rejection::SignatureMalformed)?;
        if signature.len() != self.output_len() {
            return Err(Rejection::SignatureMalformed);
        }

        // The id and timestamp are signed; the timestamp is also checked
        // against the clock so a captured delivery cannot be replayed later.
        let id = match &self.id_header {
            Some(name) => Some(
                single_header(headers, name)
                    .map_err(|()| Rejection::SignatureMalformed)?
                    .ok_or(Rejection::SignatureMalformed)?,
            ),
            None => None,
        };
        let timestamp = match &self.timestamp_header {
            Some(name) => {
                let text = single_header(headers, name)
                    .map_err(|()| Rejection::TimestampMalformed)?
                    .ok_or(Rejection::TimestampMissing)?;
                check_fresh((self.clock)(), parse_unix_seconds(text)?, self.tolerance)?;
                Some(text)
            }
            None => None,
        };
        let mut parts: Vec<&[u8]> = Vec::with_capacity(5);
        for field in [id, timestamp].into_iter().flatten() {
            parts.push(field.as_bytes());
            parts.push(b".");
        }
        parts.push(body);

        let mut matched = None;
        for (index, key) in self.keys.iter().enumerate() {
            let ok = match self.algorithm {
                HmacAlgorithm::Sha256 => {
                    mac_matches::<Hmac<Sha256>>(key.expose(), &parts, &signature)
                }
                HmacAlgorithm::Sha512 => {
                    mac_matches::<Hmac<Sha512>>(key.expose(), &parts, &signature)
                }
                HmacAlgorithm::Sha1 => {
                    mac_matches::<Hmac<sha1::Sha1>>(key.expose(), &parts, &signature)
                }
            };
            if ok && matched.is_none() {
                matched = Some(index);
            }
        }
        matched.ok_or(Rejection::SignatureMismatch)
    }

    fn output_len(&self) -> usize {
        match self.algorithm {
            HmacAlgorithm::Sha256 => 32,
            HmacAlgorithm::Sha512 => 64,
            HmacAlgorithm::Sha1 => 20,
        }
    }
}

/// Constant-time check of an HMAC over `parts` (`verify_slice`).
fn mac_matches<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]], signature: &[u8]) -> bool {
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
        return false;
    };
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(signature).is_ok()
}

/// The headers a sender configured as `checks` sends for `body`, each check
/// signed with its first secret: the token header, `Authorization: Basic`,
/// the HMAC signature (with `id` and `timestamp` in their headers when the
/// check signs them), and `id` in the delivery id header. The event header
/// is left to the caller.
pub fn sign(
    checks: &GenericChecks,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<Vec<(String, String)>, VerifierError> {
    let mut headers = Vec::new();
    if let Some((check, tokens)) = &checks.token {
        let token = tokens
            .first()
            .ok_or(VerifierError::NoSecretsFor("verification.token"))?;
        headers.push((
            check.header.clone(),
            String::from_utf8_lossy(token.expose()).into_owned(),
        ));
    }
    if let Some((check, passwords)) = &checks.basic {
        let password = passwords
            .first()
            .ok_or(VerifierError::NoSecretsFor("verification.basicAuth"))?;
        let mut credentials = format!("{}:", check.username).into_bytes();
        credentials.extend_from_slice(password.expose());
        headers.push((
            "Authorization".to_owned(),
            format!("Basic {}", BASE64.encode(credentials)),
        ));
    }
    if let Some((check, keys)) = &checks.hmac {
        let key = decode_key(
            check.key_encoding,
            keys.first()
                .ok_or(VerifierError::NoSecretsFor("verification.hmac"))?,
            0,
        )?;
        let ts = timestamp.to_string();
        let mut parts: Vec<&[u8]> = Vec::new();
        if let Some(name) = &check.id_header {
            headers.push((name.clone(), id.to_owned()));
            parts.extend([id.as_bytes(), b"."]);
        }
        if let Some(name) = &check.timestamp_header {
            headers.push((name.clone(), ts.clone()));
            parts.extend([ts.as_bytes(), b"."]);
        }
        parts.push(body);
        let mac = match check.algorithm {
            HmacAlgorithm::Sha256 => super::hmac_common::mac::<Hmac<Sha256>>(key.expose(), &parts),
            HmacAlgorithm::Sha512 => super::hmac_common::mac::<Hmac<Sha512>>(key.expose(), &parts),
            HmacAlgorithm::Sha1 => {
                super::hmac_common::mac::<Hmac<sha1::Sha1>>(key.expose(), &parts)
            }
        };
        let encoded = match check.signature_encoding {
            SignatureEncoding::Hex => hex::encode(mac),
            SignatureEncoding::Base64 => BASE64.encode(mac),
        };
        headers.push((
            check.signature_header.clone(),
            format!(
                "{}{encoded}",
                check.signature_prefix.as_deref().unwrap_or_default()
            ),
        ));
    }
    if let Some(name) = &checks.delivery_id_header {
        let already = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if !already {
            headers.push((name.clone(), id.to_owned()));
        }
    }
    Ok(headers)
}

impl Verifier for GenericVerifier {
    fn provider(&self) -> &'static str {
        "generic"
    }

    fn secret_headers(&self) -> Vec<&str> {
        let mut names = Vec::new();
        if let Some(token) = &self.token {
            names.push(token.header.as_str());
        }
        if self.basic.is_some() {
            names.push("authorization");
        }
        if let Some(hmac) = &self.hmac {
            names.push(hmac.signature_header.as_str());
        }
        names
    }

    /// The configured event, delivery-id, id and timestamp headers.
    fn plain_headers(&self) -> Vec<&str> {
        let mut names: Vec<&str> = [
            self.event_header.as_deref(),
            self.delivery_id_header.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(hmac) = &self.hmac {
            names.extend(hmac.timestamp_header.as_deref());
            names.extend(hmac.id_header.as_deref());
        }
        names
    }

    /// The token and Basic checks need no body: made whole, in the order
    /// [`Verifier::verify`] makes them; the HMAC's header must be present.
    fn precheck(&self, request: &super::Head<'_>) -> Result<(), Rejection> {
        let headers = request.headers;
        if let Some(token) = &self.token {
            token.verify(headers)?;
        }
        if let Some(basic) = &self.basic {
            basic.verify(headers)?;
        }
        if let Some(hmac) = &self.hmac {
            super::hmac_common::signature_header(headers, &hmac.signature_header)?;
        }
        Ok(())
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        // Cheap header checks first; every configured check must pass.
        let token = self.token.as_ref().map(|t| t.verify(headers)).transpose()?;
        let basic = self.basic.as_ref().map(|b| b.verify(headers)).transpose()?;
        let hmac = self
            .hmac
            .as_ref()
            .map(|h| h.verify(headers, body))
            .transpose()?;
        Ok(Verified {
            event: self
                .event_header
                .as_deref()
                .and_then(|h| info_header(headers, h)),
            delivery_id: self
                .delivery_id_header
                .as_deref()
                .and_then(|h| info_header(headers, h)),
            secret_index: hmac.or(token).or(basic).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::super::DEFAULT_TIMESTAMP_TOLERANCE_SECS;
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn now() -> i64 {
        NOW
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|v| Secret::from(v.as_bytes())).collect()
    }

    fn hmac_check(edit: impl FnOnce(&mut HmacCheck)) -> HmacCheck {
        let mut check = HmacCheck {
            algorithm: HmacAlgorithm::Sha256,
            key_encoding: BinaryEncoding::Raw,
            signature_header: "X-Signature".to_owned(),
            signature_prefix: None,
            signature_encoding: SignatureEncoding::Hex,
            timestamp_header: None,
            id_header: None,
            secret_refs: Vec::new(),
        };
        edit(&mut check);
        check
    }

    fn hmac_verifier(check: HmacCheck, keys: &[&str]) -> GenericVerifier {
        GenericVerifier::with_clock(
            GenericChecks {
                hmac: Some((check, secrets(keys))),
                timestamp_tolerance_secs: DEFAULT_TIMESTAMP_TOLERANCE_SECS,
                ..GenericChecks::default()
            },
            now,
        )
        .expect("verifier")
    }

    fn sign256(key: &[u8], content: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("key");
        mac.update(content);
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn no_checks_is_refused() {
        let err = GenericVerifier::new(GenericChecks::default()).expect_err("no checks");
        assert!(matches!(err, VerifierError::NoChecks), "{err}");
    }

    #[test]
    fn a_check_without_secrets_is_refused() {
        let err = GenericVerifier::new(GenericChecks {
            token: Some((
                TokenCheck {
                    header: "X-Secret".into(),
                    secret_refs: vec![],
                },
                vec![],
            )),
            ..GenericChecks::default()
        })
        .expect_err("no secrets");
        assert!(err.to_string().contains("verification.token"), "{err}");
    }

    #[test]
    fn token_right_wrong_missing_repeated_and_rotated() {
        let verifier = GenericVerifier::new(GenericChecks {
            token: Some((
                TokenCheck {
                    header: "X-Secret".into(),
                    secret_refs: vec![],
                },
                secrets(&["old", "new"]),
            )),
            ..GenericChecks::default()
        })
        .expect("verifier");
        let ok = verifier
            .verify(&headers(&[("x-secret", "new")]), b"{}")
            .expect("rotated-in token");
        assert_eq!(ok.secret_index, 1);
        assert_eq!(
            verifier
                .verify(&headers(&[("x-secret", "old")]), b"")
                .map(|v| v.secret_index),
            Ok(0)
        );
        assert_eq!(
            verifier.verify(&headers(&[("x-secret", "nope")]), b""),
            Err(Rejection::TokenMismatch)
        );
        assert_eq!(
            verifier.verify(&headers(&[("x-secret", "new!")]), b""),
            Err(Rejection::TokenMismatch)
        );
        assert_eq!(
            verifier.verify(&headers(&[]), b""),
            Err(Rejection::TokenMissing)
        );
        assert_eq!(
            verifier.verify(&headers(&[("x-secret", "nope"), ("x-secret", "new")]), b""),
            Err(Rejection::TokenMismatch),
            "a second copy of the header cannot smuggle in a guess"
        );
    }

    #[test]
    fn basic_auth() {
        let verifier = GenericVerifier::new(GenericChecks {
            basic: Some((
                BasicAuthCheck {
                    username: "hooks".into(),
                    secret_refs: vec![],
                },
                secrets(&["pw"]),
            )),
            ..GenericChecks::default()
        })
        .expect("verifier");
        let basic = |user_pass: &str| format!("Basic {}", BASE64.encode(user_pass));
        assert!(
            verifier
                .verify(&headers(&[("authorization", &basic("hooks:pw"))]), b"")
                .is_ok()
        );
        assert!(
            verifier
                .verify(&headers(&[("authorization", &basic("hooks:pw:x"))]), b"")
                .is_err()
        );
        assert_eq!(
            verifier.verify(&headers(&[("authorization", &basic("other:pw"))]), b""),
            Err(Rejection::BasicAuthMismatch)
        );
        assert_eq!(
            verifier.verify(&headers(&[("authorization", &basic("hooks:nope"))]), b""),
            Err(Rejection::BasicAuthMismatch)
        );
        assert_eq!(
            verifier.verify(&headers(&[("authorization", "Basic !!!")]), b""),
            Err(Rejection::BasicAuthMismatch)
        );
        assert_eq!(
            verifier.verify(&headers(&[("authorization", "Bearer abc")]), b""),
            Err(Rejection::BasicAuthMissing)
        );
        assert_eq!(
            verifier.verify(&headers(&[]), b""),
            Err(Rejection::BasicAuthMissing)
        );
    }

    #[test]
    fn hmac_sha256_hex_with_prefix_known_answer() {
        // The same construction GitHub documents: sha256=HMAC-SHA256(secret, body).
        let verifier = hmac_verifier(
            hmac_check(|c| c.signature_prefix = Some("sha256=".into())),
            &["It's a Secret to Everybody"],
        );
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(
            verifier
                .verify(&headers(&[("x-signature", signature)]), b"Hello, World!")
                .is_ok()
        );
        assert_eq!(
            verifier.verify(&headers(&[("x-signature", signature)]), b"Hello, World?"),
            Err(Rejection::SignatureMismatch)
        );
        let unprefixed = signature.trim_start_matches("sha256=");
        assert_eq!(
            verifier.verify(&headers(&[("x-signature", unprefixed)]), b"Hello, World!"),
            Err(Rejection::SignatureMalformed)
        );
        assert_eq!(
            verifier.verify(
                &headers(&[("x-signature", "sha256=abcd")]),
                b"Hello, World!"
            ),
            Err(Rejection::SignatureMalformed)
        );
        assert_eq!(
            verifier.verify(&headers(&[]), b"x"),
            Err(Rejection::SignatureMissing)
        );
    }

    #[test]
    fn hmac_sha512_and_sha1_base64_with_encoded_keys() {
        let key = b"\x00\x01binary-key\xff";
        let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(key).expect("key");
        mac.update(b"body");
        let sig512 = BASE64.encode(mac.finalize().into_bytes());
        let verifier = hmac_verifier(
            hmac_check(|c| {
                c.algorithm = HmacAlgorithm::Sha512;
                c.key_encoding = BinaryEncoding::Hex;
                c.signature_encoding = SignatureEncoding::Base64;
            }),
            &[&hex::encode(key)],
        );
        assert!(
            verifier
                .verify(&headers(&[("x-signature", &sig512)]), b"body")
                .is_ok()
        );

        let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key).expect("key");
        mac.update(b"body");
        let sig1 = hex::encode(mac.finalize().into_bytes());
        let verifier = hmac_verifier(
            hmac_check(|c| {
                c.algorithm = HmacAlgorithm::Sha1;
                c.key_encoding = BinaryEncoding::Base64;
            }),
            &[&BASE64.encode(key)],
        );
        assert!(
            verifier
                .verify(&headers(&[("x-signature", &sig1)]), b"body")
                .is_ok()
        );
        // A SHA-256-length signature is malformed for SHA-1.
        let wrong_len = hex::encode(sign256(key, b"body"));
        assert_eq!(
            verifier.verify(&headers(&[("x-signature", &wrong_len)]), b"body"),
            Err(Rejection::SignatureMalformed)
        );
    }

    #[test]
    fn badly_encoded_key_is_a_startup_error_without_the_key() {
        let err = GenericVerifier::new(GenericChecks {
            hmac: Some((
                hmac_check(|c| c.key_encoding = BinaryEncoding::Hex),
                secrets(&["not-hex-s3cr3t"]),
            )),
            ..GenericChecks::default()
        })
        .expect_err("bad key");
        let message = err.to_string();
        assert!(
            message.contains("verification.hmac") && !message.contains("s3cr3t"),
            "{message}"
        );
    }

    #[test]
    fn timestamp_and_id_are_signed_and_checked() {
        let verifier = hmac_verifier(
            hmac_check(|c| {
                c.timestamp_header = Some("X-Timestamp".into());
                c.id_header = Some("X-Id".into());
            }),
            &["k"],
        );
        let signed = |id: &str, ts: i64, body: &str| {
            hex::encode(sign256(b"k", format!("{id}.{ts}.{body}").as_bytes()))
        };
        let ok = verifier
            .verify(
                &headers(&[
                    ("x-signature", &signed("d1", NOW, "{}")),
                    ("x-timestamp", &NOW.to_string()),
                    ("x-id", "d1"),
                ]),
                b"{}",
            )
            .expect("fresh and signed");
        assert_eq!(
            ok.delivery_id.as_deref(),
            Some("d1"),
            "the id header doubles as delivery id"
        );

        let at = |ts: i64| {
            verifier.verify(
                &headers(&[
                    ("x-signature", &signed("d1", ts, "{}")),
                    ("x-timestamp", &ts.to_string()),
                    ("x-id", "d1"),
                ]),
                b"{}",
            )
        };
        assert!(
            at(NOW - 300).is_ok() && at(NOW + 300).is_ok(),
            "inside the window both ways"
        );
        assert_eq!(at(NOW - 301), Err(Rejection::TimestampOutOfTolerance));
        assert_eq!(at(NOW + 301), Err(Rejection::TimestampOutOfTolerance));

        // A valid signature moved to another id or timestamp does not verify.
        let sig = signed("d1", NOW, "{}");
        let moved = verifier.verify(
            &headers(&[
                ("x-signature", &sig),
                ("x-timestamp", &NOW.to_string()),
                ("x-id", "d2"),
            ]),
            b"{}",
        );
        assert_eq!(moved, Err(Rejection::SignatureMismatch));
        let no_ts = verifier.verify(&headers(&[("x-signature", &sig), ("x-id", "d1")]), b"{}");
        assert_eq!(no_ts, Err(Rejection::TimestampMissing));
        let bad_ts = verifier.verify(
            &headers(&[
                ("x-signature", &sig),
                ("x-timestamp", "yesterday"),
                ("x-id", "d1"),
            ]),
            b"{}",
        );
        assert_eq!(bad_ts, Err(Rejection::TimestampMalformed));
    }

    #[test]
    fn all_configured_checks_must_pass() {
        let verifier = GenericVerifier::with_clock(
            GenericChecks {
                token: Some((
                    TokenCheck {
                        header: "X-Secret".into(),
                        secret_refs: vec![],
                    },
                    secrets(&["t"]),
                )),
                hmac: Some((hmac_check(|_| {}), secrets(&["k"]))),
                event_header: Some("X-Event".into()),
                timestamp_tolerance_secs: 300,
                ..GenericChecks::default()
            },
            now,
        )
        .expect("verifier");
        let sig = hex::encode(sign256(b"k", b"{}"));
        let ok = verifier
            .verify(
                &headers(&[
                    ("x-secret", "t"),
                    ("x-signature", &sig),
                    ("x-event", "order.paid"),
                ]),
                b"{}",
            )
            .expect("both pass");
        assert_eq!(ok.event.as_deref(), Some("order.paid"));
        assert_eq!(
            verifier.verify(&headers(&[("x-signature", &sig)]), b"{}"),
            Err(Rejection::TokenMissing),
            "a valid signature does not excuse a missing token"
        );
        assert_eq!(
            verifier.verify(&headers(&[("x-secret", "t")]), b"{}"),
            Err(Rejection::SignatureMissing),
            "a valid token does not excuse a missing signature"
        );
    }
}
