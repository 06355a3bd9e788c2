//! The `generic` provider: the checks an endpoint configures in
//! `spec.verification` — a shared token in a header, HTTP Basic credentials,
//! an HMAC signature — for senders that are not a preset. All configured
//! checks must pass.
//!
//! What the HMAC signs is a `signedContent` template, parsed once at startup
//! into parts ([`template`]); without one it is the historical
//! `[<id>.][<timestamp>.]<body>`, expressed as the same parts so there is
//! one code path.
//!
//! Secrets are compared in constant time. Tokens and passwords are compared
//! through their SHA-256 digests, so not even their length is revealed by
//! the time a comparison takes.
//!
//! This module is the verifier built of its checks, one module each:
//! [`credentials`] (token, HTTP Basic), [`signature`] (HMAC) and [`jwt`];
//! [`mod@sign`] signs as a configured sender would.

mod credentials;
mod jwt;
mod sign;
mod signature;
mod template;

pub use sign::{SignRequest, sign};
pub use template::TemplateError;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hookwarden_crds::{BasicAuthCheck, BinaryEncoding, HmacCheck, JwtCheck, TokenCheck};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::hmac_common::signature_header;
use super::public_url::PublicUrl;
use super::timestamp::{Clock, system_clock};
use super::{Incoming, Rejection, Verdict, Verified, Verifier, VerifierError, info_header};
use crate::secrets::Secret;
use credentials::{BasicVerifier, TokenVerifier};
use jwt::{JwtKeys, JwtVerifier};
use signature::{HmacVerifier, KeyValue, RequestLine};
use template::{default_template, parse_template, validate_template};

/// The configured checks of one endpoint.
#[derive(Debug)]
pub struct GenericVerifier {
    token: Option<TokenVerifier>,
    basic: Option<BasicVerifier>,
    hmac: Option<HmacVerifier>,
    jwt: Option<JwtVerifier>,
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
    /// The JWT check and its keys (as written in the Secret).
    pub jwt: Option<(JwtCheck, Vec<Secret>)>,
    /// Header with the event type.
    pub event_header: Option<String>,
    /// Header with the delivery id.
    pub delivery_id_header: Option<String>,
    /// Replay window for the HMAC timestamp, in seconds.
    pub timestamp_tolerance_secs: u32,
    /// Where a JWT check with `jwksUrl` fetches its keys; `None`: the
    /// process's fetcher.
    pub fetcher: Option<std::sync::Arc<super::keys::KeyFetcher>>,
    /// The URL the sender calls, for a `signedContent` with `{url}`.
    pub public_url: Option<PublicUrl>,
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
        if checks.token.is_none()
            && checks.basic.is_none()
            && checks.hmac.is_none()
            && checks.jwt.is_none()
        {
            return Err(VerifierError::NoChecks);
        }
        let jwt = checks
            .jwt
            .map(|(check, keys)| JwtVerifier::new(check, &keys, clock, checks.fetcher.clone()))
            .transpose()?;
        if checks.basic.is_some() && jwt.as_ref().is_some_and(|j| j.header == "authorization") {
            return Err(VerifierError::Invalid {
                field: "verification.jwt.header",
                reason: "basicAuth already reads the Authorization header: give the token another header",
            });
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
                let content = match &check.signed_content {
                    Some(text) => parse_template(text)?,
                    None => default_template(&check),
                };
                validate_template(&content, &check, checks.public_url.is_some())?;
                let key_value = check.key_value.as_ref().map(KeyValue::new).transpose()?;
                if check.timestamp_header.is_some()
                    && key_value.as_ref().is_some_and(|kv| kv.timestamp_key.is_some())
                {
                    return Err(VerifierError::Invalid {
                        field: "verification.hmac.keyValue.timestampKey",
                        reason: "the timestamp is either in timestampHeader or in the signature header, not both",
                    });
                }
                Ok::<_, VerifierError>(HmacVerifier {
                    key_value,
                    algorithm: check.algorithm,
                    signature_header: check.signature_header.to_ascii_lowercase(),
                    signature_prefix: check.signature_prefix.unwrap_or_default(),
                    signature_encoding: check.signature_encoding,
                    timestamp_header: check.timestamp_header.map(|h| h.to_ascii_lowercase()),
                    id_header: check.id_header.map(|h| h.to_ascii_lowercase()),
                    content,
                    public_url: checks.public_url.clone(),
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
            jwt,
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
    decode_key_of("verification.hmac", encoding, key, index)
}

fn decode_key_of(
    check: &'static str,
    encoding: BinaryEncoding,
    key: &Secret,
    index: usize,
) -> Result<Secret, VerifierError> {
    let bad = || VerifierError::KeyEncoding { check, index };
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

impl GenericVerifier {
    fn verify_request(
        &self,
        line: &RequestLine<'_>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Verified, Rejection> {
        // Cheap header checks first; every configured check must pass.
        let token = self.token.as_ref().map(|t| t.verify(headers)).transpose()?;
        let basic = self.basic.as_ref().map(|b| b.verify(headers)).transpose()?;
        let jwt = self.jwt.as_ref().map(|j| j.verify(headers)).transpose()?;
        let hmac = self
            .hmac
            .as_ref()
            .map(|h| h.verify(line, headers, body))
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
            secret_index: hmac.or(jwt).or(token).or(basic).unwrap_or_default(),
        })
    }
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
        if let Some(jwt) = &self.jwt {
            names.push(jwt.header.as_str());
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

    /// The token, Basic and JWT checks need no body: made whole, in the order
    /// [`Verifier::verify`] makes them; the HMAC's header must be present.
    fn precheck(&self, request: &super::Head<'_>) -> Result<(), Rejection> {
        let headers = request.headers;
        if let Some(token) = &self.token {
            token.verify(headers)?;
        }
        if let Some(basic) = &self.basic {
            basic.verify(headers)?;
        }
        if let Some(jwt) = &self.jwt {
            // Fetched keys may not be cached yet: the form only, the
            // signature after the prefetch.
            if matches!(jwt.keys, JwtKeys::Fetched { .. }) {
                jwt.parse(headers)?;
            } else {
                jwt.verify(headers)?;
            }
        }
        if let Some(hmac) = &self.hmac {
            signature_header(headers, &hmac.signature_header)?;
        }
        Ok(())
    }

    /// With `jwksUrl`: makes sure the key of the token's `kid` is cached
    /// (one refetch for an unknown `kid` at most per the fetcher's
    /// interval). A malformed token is refused by `check` without a fetch.
    fn prefetch(&self, request: &Incoming<'_>) -> Option<super::Prefetch> {
        let jwt = self.jwt.as_ref()?;
        let JwtKeys::Fetched { url, fetcher } = &jwt.keys else {
            return None;
        };
        let kid = jwt.parse(request.headers).ok()?.kid?;
        let (url, fetcher) = (url.clone(), std::sync::Arc::clone(fetcher));
        Some(Box::pin(async move {
            fetcher
                .ensure_kid(&url, &kid)
                .await
                .map_err(|_| Rejection::KeyUnavailable)
        }))
    }

    /// Without the request line, the request is taken to be a `POST` to the
    /// public URL (its path, `/` without one) without a query.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let path = self
            .hmac
            .as_ref()
            .and_then(|h| h.public_url.as_ref())
            .map_or("/", PublicUrl::path);
        let line = RequestLine {
            method: "POST",
            path_and_query: if path.is_empty() { "/" } else { path },
            query: None,
        };
        self.verify_request(&line, headers, body)
    }

    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        let line = RequestLine {
            method: request.method.as_str(),
            path_and_query: request
                .uri
                .path_and_query()
                .map_or("/", |target| target.as_str()),
            query: request.uri.query(),
        };
        self.verify_request(&line, request.headers, request.body)
            .map(Verdict::Deliver)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::digest::KeyInit;
    use hmac::{Hmac, Mac};
    use hookwarden_crds::{HmacAlgorithm, JwtAlgorithm, KeyValueSignature, SignatureEncoding};
    use http::HeaderValue;
    use sha2::Sha512;

    use super::super::DEFAULT_TIMESTAMP_TOLERANCE_SECS;
    use super::sign::path_and_query;
    use super::template::Part;
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn now() -> i64 {
        NOW
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
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
            signed_content: None,
            key_value: None,
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

    // --- signedContent templates ---

    const TEMPLATE_KEY: &str = "template-key";
    const PUBLIC: &str = "https://hooks.example.com/hooks/in";
    const TARGET: &str = "/hooks/in?a=1&b=%20";
    const TEMPLATE_BODY: &[u8] = br#"{"a":1}"#;

    fn template_verifier(
        edit: impl FnOnce(&mut HmacCheck),
        public_url: Option<&str>,
    ) -> Result<GenericVerifier, VerifierError> {
        GenericVerifier::with_clock(
            GenericChecks {
                hmac: Some((hmac_check(edit), secrets(&[TEMPLATE_KEY]))),
                timestamp_tolerance_secs: DEFAULT_TIMESTAMP_TOLERANCE_SECS,
                public_url: public_url.map(|u| PublicUrl::parse(u).expect("url")),
                ..GenericChecks::default()
            },
            now,
        )
    }

    fn check_request(
        verifier: &GenericVerifier,
        method: &str,
        target: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Verified, Rejection> {
        let method: http::Method = method.parse().expect("method");
        let uri: http::Uri = target.parse().expect("uri");
        match verifier.check(&Incoming {
            method: &method,
            uri: &uri,
            headers,
            body,
        })? {
            Verdict::Deliver(verified) => Ok(verified),
            Verdict::Handshake(h) => panic!("no handshake: {h:?}"),
        }
    }

    #[test]
    fn templates_parse_into_parts_with_literal_braces() {
        assert_eq!(
            parse_template("{{x}}:{method}\n{header:X-Request-Id}{body}").expect("valid"),
            vec![
                Part::Literal(b"{x}:".to_vec()),
                Part::Method,
                Part::Literal(b"\n".to_vec()),
                Part::Header("x-request-id".to_owned()),
                Part::Body,
            ]
        );
        assert_eq!(
            parse_template("{url}{pathAndQuery}{timestamp}{id}").expect("valid"),
            vec![Part::Url, Part::PathAndQuery, Part::Timestamp, Part::Id]
        );
        for (text, error) in [
            (
                "{body}.{bdoy}",
                TemplateError::UnknownPlaceholder("bdoy".into()),
            ),
            ("{body", TemplateError::Unclosed(0)),
            ("{bo{dy}", TemplateError::Unclosed(0)),
            ("{body}}", TemplateError::LoneBrace(6)),
            ("{header:X Y}", TemplateError::BadHeaderName("X Y".into())),
            ("{header:}", TemplateError::BadHeaderName(String::new())),
        ] {
            assert_eq!(parse_template(text), Err(error), "{text}");
        }
        let message = TemplateError::UnknownPlaceholder("bdoy".into()).to_string();
        assert!(
            message.contains("{bdoy}") && message.contains("{pathAndQuery}"),
            "{message}"
        );
    }

    #[test]
    fn unusable_templates_are_startup_errors() {
        let error = |edit: fn(&mut HmacCheck), url: Option<&str>| {
            template_verifier(edit, url)
                .expect_err("refused")
                .to_string()
        };
        let message = error(|c| c.signed_content = Some("{method}.{nope}".into()), None);
        assert!(
            message.starts_with("verification.hmac.signedContent: unknown placeholder {nope}"),
            "{message}"
        );
        assert!(error(|c| c.signed_content = Some("{method}".into()), None).contains("{body}"));
        let message = error(
            |c| c.signed_content = Some("{timestamp}.{body}".into()),
            None,
        );
        assert!(message.contains("timestampHeader"), "{message}");
        let message = error(|c| c.signed_content = Some("{id}.{body}".into()), None);
        assert!(message.contains("idHeader"), "{message}");
        let message = error(|c| c.signed_content = Some("{url}.{body}".into()), None);
        assert!(message.contains("spec.publicUrl"), "{message}");
        let message = error(
            |c| {
                c.signed_content = Some("{body}".into());
                c.timestamp_header = Some("X-Timestamp".into());
            },
            None,
        );
        assert!(
            message.contains(
                "timestampHeader (or keyValue.timestampKey) is set, so it must be signed"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_template_signs_the_request_line_timestamp_and_a_header() {
        // printf 'POST\nhttps://hooks.example.com/hooks/in?a=1&b=%%20\n1700000000\nreq-1\n{"a":1}' \
        //   | openssl dgst -sha256 -hmac 'template-key' -hex
        const KNOWN: &str = "412065c95c363582aed30ca36ab64376cca27d0fc373668d2e5f71331ad06cd3";
        let verifier = template_verifier(
            |c| {
                c.signed_content =
                    Some("{method}\n{url}\n{timestamp}\n{header:X-Request-Id}\n{body}".into());
                c.timestamp_header = Some("X-Timestamp".into());
            },
            Some(PUBLIC),
        )
        .expect("verifier");
        let good = headers(&[
            ("x-signature", KNOWN),
            ("x-timestamp", "1700000000"),
            ("x-request-id", "req-1"),
        ]);
        let at = |method: &str, target: &str, headers: &HeaderMap, body: &[u8]| {
            check_request(&verifier, method, target, headers, body)
        };
        assert!(at("POST", TARGET, &good, TEMPLATE_BODY).is_ok());
        let mismatch = Err(Rejection::SignatureMismatch);
        assert_eq!(at("PUT", TARGET, &good, TEMPLATE_BODY), mismatch);
        assert_eq!(
            at("POST", "/hooks/in?a=1&b=%21", &good, TEMPLATE_BODY),
            mismatch
        );
        assert_eq!(at("POST", TARGET, &good, br#"{"a":2}"#), mismatch);
        let other_id = headers(&[
            ("x-signature", KNOWN),
            ("x-timestamp", "1700000000"),
            ("x-request-id", "req-2"),
        ]);
        assert_eq!(at("POST", TARGET, &other_id, TEMPLATE_BODY), mismatch);
        let no_id = headers(&[("x-signature", KNOWN), ("x-timestamp", "1700000000")]);
        assert_eq!(
            at("POST", TARGET, &no_id, TEMPLATE_BODY),
            Err(Rejection::SignatureMalformed)
        );
        let mut twice = good.clone();
        twice.append("x-request-id", HeaderValue::from_static("req-1"));
        assert_eq!(
            at("POST", TARGET, &twice, TEMPLATE_BODY),
            Err(Rejection::SignatureMalformed)
        );
        // The window still holds for a templated timestamp.
        let stale = headers(&[
            ("x-signature", KNOWN),
            ("x-timestamp", &(NOW - 301).to_string()),
            ("x-request-id", "req-1"),
        ]);
        assert_eq!(
            at("POST", TARGET, &stale, TEMPLATE_BODY),
            Err(Rejection::TimestampOutOfTolerance)
        );
        let wrong_key = GenericVerifier::with_clock(
            GenericChecks {
                hmac: Some((
                    hmac_check(|c| {
                        c.signed_content = Some(
                            "{method}\n{url}\n{timestamp}\n{header:X-Request-Id}\n{body}".into(),
                        );
                        c.timestamp_header = Some("X-Timestamp".into());
                    }),
                    secrets(&["other-key"]),
                )),
                timestamp_tolerance_secs: DEFAULT_TIMESTAMP_TOLERANCE_SECS,
                public_url: Some(PublicUrl::parse(PUBLIC).expect("url")),
                ..GenericChecks::default()
            },
            now,
        )
        .expect("verifier");
        assert_eq!(
            check_request(&wrong_key, "POST", TARGET, &good, TEMPLATE_BODY),
            mismatch
        );
    }

    #[test]
    fn literal_text_and_the_request_target_are_signed_byte_for_byte() {
        // printf '{x}:POST /hooks/in?a=1&b=%%20:{"a":1}' | openssl dgst -sha256 -hmac 'template-key' -hex
        const KNOWN: &str = "496d9fc6155e57c13278007d41c5dd3d574c755af28a9c3652c5ada21bc57d1f";
        let verifier = template_verifier(
            |c| c.signed_content = Some("{{x}}:{method} {pathAndQuery}:{body}".into()),
            None,
        )
        .expect("no public URL needed");
        let good = headers(&[("x-signature", KNOWN)]);
        assert!(check_request(&verifier, "POST", TARGET, &good, TEMPLATE_BODY).is_ok());
        assert_eq!(
            check_request(
                &verifier,
                "POST",
                "/hooks/in?a=1&b=%20&c",
                &good,
                TEMPLATE_BODY
            ),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn the_signer_signs_what_a_template_asks_for() {
        let check = hmac_check(|c| {
            c.signed_content =
                Some("{id}|{method}|{url}|{pathAndQuery}|{timestamp}|{header:X-Event}|{header:X-Trace}|{body}".into());
            c.timestamp_header = Some("X-Timestamp".into());
            c.id_header = Some("X-Id".into());
        });
        let checks = GenericChecks {
            hmac: Some((check, secrets(&[TEMPLATE_KEY]))),
            event_header: Some("X-Event".into()),
            timestamp_tolerance_secs: DEFAULT_TIMESTAMP_TOLERANCE_SECS,
            public_url: Some(PublicUrl::parse(PUBLIC).expect("url")),
            ..GenericChecks::default()
        };
        let signed = sign(
            &checks,
            &SignRequest {
                id: "d-1",
                event: "order.paid",
                timestamp: NOW,
                method: "POST",
                url: &format!("https://hooks.example.com{TARGET}"),
                body: TEMPLATE_BODY,
            },
        )
        .expect("signed");
        let mut map = HeaderMap::new();
        for (name, value) in &signed {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        assert_eq!(
            map["x-trace"], "d-1",
            "an unknown signed header carries the id"
        );
        let verifier = GenericVerifier::with_clock(checks, now).expect("verifier");
        let ok = check_request(&verifier, "POST", TARGET, &map, TEMPLATE_BODY).expect("verifies");
        assert_eq!(ok.event.as_deref(), Some("order.paid"));
        assert_eq!(ok.delivery_id.as_deref(), Some("d-1"));
        assert_eq!(
            check_request(&verifier, "POST", "/hooks/in", &map, TEMPLATE_BODY),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(path_and_query("https://h.example.com"), "/");
        assert_eq!(path_and_query("https://h.example.com?x=1"), "/?x=1");
        assert_eq!(path_and_query("http://h:1/a/b?x"), "/a/b?x");
    }

    // --- key-value signature headers ---

    /// The Stripe preset's independently computed known answer
    /// (`core/src/verify/stripe.rs`):
    /// `printf '1700000000.%s' "$BODY" | openssl dgst -sha256 -hmac whsec_test_secret`.
    const STRIPE_SECRET: &str = "whsec_test_secret";
    const STRIPE_BODY: &[u8] =
        br#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}"#;
    const STRIPE_V1: &str = "67da5088c63e080c71bd2bb0cb5c03d85a8fc6a21ce3aaf484df809654745b92";

    fn stripe_like(keys: &[&str]) -> GenericVerifier {
        hmac_verifier(
            hmac_check(|c| {
                c.signature_header = "Stripe-Signature".into();
                c.key_value = Some(KeyValueSignature {
                    timestamp_key: Some("t".into()),
                    ..KeyValueSignature::default()
                });
            }),
            keys,
        )
    }

    #[test]
    fn a_stripe_style_header_verifies_any_of_its_signatures() {
        let v = stripe_like(&[STRIPE_SECRET]);
        let at =
            |value: &str, body: &[u8]| v.verify(&headers(&[("stripe-signature", value)]), body);
        assert!(at(&format!("t={NOW},v1={STRIPE_V1}"), STRIPE_BODY).is_ok());
        assert!(
            at(&format!("t={NOW}, v1={STRIPE_V1}"), STRIPE_BODY).is_ok(),
            "spaces around a pair are ignored"
        );
        let other = hex::encode([7u8; 32]);
        let several = format!("t={NOW},v1=zz,v1={other},v0={other},junk,v1={STRIPE_V1}");
        assert_eq!(
            at(&several, STRIPE_BODY).map(|v| v.secret_index),
            Ok(0),
            "a malformed candidate next to a valid one does not refuse the header"
        );
        assert_eq!(
            stripe_like(&["old", STRIPE_SECRET])
                .verify(&headers(&[("stripe-signature", &several)]), STRIPE_BODY)
                .map(|v| v.secret_index),
            Ok(1)
        );
        let mismatch = Err(Rejection::SignatureMismatch);
        assert_eq!(
            stripe_like(&["wrong"]).verify(
                &headers(&[("stripe-signature", &format!("t={NOW},v1={STRIPE_V1}"))]),
                STRIPE_BODY
            ),
            mismatch
        );
        let mut tampered = STRIPE_BODY.to_vec();
        tampered[5] ^= 1;
        assert_eq!(at(&format!("t={NOW},v1={STRIPE_V1}"), &tampered), mismatch);
        assert_eq!(
            at(&format!("t={},v1={STRIPE_V1}", NOW + 1), STRIPE_BODY),
            mismatch,
            "the timestamp is signed"
        );
        // Replay: the signed timestamp is outside the window.
        assert_eq!(
            at(&format!("t={},v1={STRIPE_V1}", NOW - 301), STRIPE_BODY),
            Err(Rejection::TimestampOutOfTolerance)
        );
        let malformed = Err(Rejection::SignatureMalformed);
        assert_eq!(
            at(&format!("t={NOW},v1=zz,v1=abcd"), STRIPE_BODY),
            malformed
        );
        assert_eq!(
            at(&format!("t={NOW},v0={STRIPE_V1}"), STRIPE_BODY),
            malformed
        );
        assert_eq!(at("", STRIPE_BODY), malformed);
        let seventeen = format!("t={NOW}{}", format!(",v1={other}").repeat(17));
        assert_eq!(at(&seventeen, STRIPE_BODY), malformed);
        assert_eq!(
            at(&format!("t={NOW},t={NOW},v1={STRIPE_V1}"), STRIPE_BODY),
            Err(Rejection::TimestampMalformed)
        );
        assert_eq!(
            at(&format!("v1={STRIPE_V1}"), STRIPE_BODY),
            Err(Rejection::TimestampMissing)
        );
        assert_eq!(
            at(&format!("t=soon,v1={STRIPE_V1}"), STRIPE_BODY),
            Err(Rejection::TimestampMalformed)
        );
        assert_eq!(
            v.verify(&headers(&[]), STRIPE_BODY),
            Err(Rejection::SignatureMissing)
        );
    }

    fn vector_now() -> i64 {
        super::super::standard_webhooks::shared_tests::VECTOR_TIMESTAMP
    }

    #[test]
    fn the_standard_webhooks_vector_as_a_key_value_header() {
        use super::super::standard_webhooks::shared_tests::{
            VECTOR_BODY, VECTOR_ID, VECTOR_SECRET, VECTOR_SIGNATURE, VECTOR_TIMESTAMP,
        };
        let key = VECTOR_SECRET.trim_start_matches("whsec_");
        let verifier = GenericVerifier::with_clock(
            GenericChecks {
                hmac: Some((
                    hmac_check(|c| {
                        c.key_encoding = BinaryEncoding::Base64;
                        c.signature_header = "webhook-signature".into();
                        c.signature_encoding = SignatureEncoding::Base64;
                        c.id_header = Some("webhook-id".into());
                        c.timestamp_header = Some("webhook-timestamp".into());
                        c.key_value = Some(KeyValueSignature {
                            pair_separator: Some(" ".into()),
                            key_separator: Some(",".into()),
                            ..KeyValueSignature::default()
                        });
                    }),
                    secrets(&[key]),
                )),
                timestamp_tolerance_secs: DEFAULT_TIMESTAMP_TOLERANCE_SECS,
                ..GenericChecks::default()
            },
            vector_now,
        )
        .expect("verifier");
        let ts = VECTOR_TIMESTAMP.to_string();
        let with = |signature: &str| {
            headers(&[
                ("webhook-id", VECTOR_ID),
                ("webhook-timestamp", &ts),
                ("webhook-signature", signature),
            ])
        };
        assert!(
            verifier
                .verify(&with(VECTOR_SIGNATURE), VECTOR_BODY.as_bytes())
                .is_ok()
        );
        let rotated = format!("v1,bm90LWEtc2lnbmF0dXJl v2,xyz {VECTOR_SIGNATURE}");
        assert!(
            verifier
                .verify(&with(&rotated), VECTOR_BODY.as_bytes())
                .is_ok()
        );
        assert_eq!(
            verifier.verify(&with(VECTOR_SIGNATURE), b"{\"test\": 2432232315}"),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn key_value_settings_that_cannot_work_are_startup_errors() {
        let refused = |edit: fn(&mut HmacCheck)| {
            GenericVerifier::new(GenericChecks {
                hmac: Some((hmac_check(edit), secrets(&["k"]))),
                ..GenericChecks::default()
            })
            .expect_err("refused")
            .to_string()
        };
        let message = refused(|c| {
            c.timestamp_header = Some("X-Timestamp".into());
            c.key_value = Some(KeyValueSignature {
                timestamp_key: Some("t".into()),
                ..KeyValueSignature::default()
            });
        });
        assert!(message.contains("not both"), "{message}");
        let message = refused(|c| {
            c.key_value = Some(KeyValueSignature {
                pair_separator: Some("=".into()),
                ..KeyValueSignature::default()
            });
        });
        assert!(message.contains("different"), "{message}");
        let message = refused(|c| {
            c.key_value = Some(KeyValueSignature {
                timestamp_key: Some("v1".into()),
                ..KeyValueSignature::default()
            });
        });
        assert!(
            message.contains("timestampKey and signatureKey"),
            "{message}"
        );
    }

    #[test]
    fn the_signer_writes_a_key_value_header() {
        let check = hmac_check(|c| {
            c.signature_header = "Stripe-Signature".into();
            c.key_value = Some(KeyValueSignature {
                timestamp_key: Some("t".into()),
                ..KeyValueSignature::default()
            });
        });
        let checks = GenericChecks {
            hmac: Some((check, secrets(&[STRIPE_SECRET]))),
            timestamp_tolerance_secs: DEFAULT_TIMESTAMP_TOLERANCE_SECS,
            ..GenericChecks::default()
        };
        let signed = sign(
            &checks,
            &SignRequest {
                id: "evt_1",
                event: "x",
                timestamp: NOW,
                method: "POST",
                url: PUBLIC,
                body: STRIPE_BODY,
            },
        )
        .expect("signed");
        assert_eq!(
            signed,
            vec![(
                "Stripe-Signature".to_owned(),
                format!("t={NOW},v1={STRIPE_V1}")
            )]
        );
    }

    // --- JWT ---

    /// RFC 7515 Appendix A.1: the HS256 JWS, its key (the JWK's `k`,
    /// re-encoded as standard base64) and its `exp` of 1300819380.
    const RFC7515_KEY: &str =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ+EstJQLr/T+1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow==";
    const RFC7515_JWS: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    /// Signed with `keys/testdata/signer_key.pem`, independently of this code:
    /// `H=$(printf '%s' '{"alg":"RS256","typ":"JWT"}' | base64 -w0 | tr '+/' '-_' | tr -d =)`,
    /// `C=$(printf '%s' '{"iss":"https://issuer.example.com","aud":"hookwarden","exp":1700000600,"nbf":1699999990,"sub":"sender-1"}' | base64 -w0 | tr '+/' '-_' | tr -d =)`,
    /// `printf '%s.%s' "$H" "$C" | openssl dgst -sha256 -sign signer_key.pem -binary | base64 -w0 | tr '+/' '-_' | tr -d =`.
    const RS256_JWT: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlLmNvbSIsImF1ZCI6Imhvb2t3YXJkZW4iLCJleHAiOjE3MDAwMDA2MDAsIm5iZiI6MTY5OTk5OTk5MCwic3ViIjoic2VuZGVyLTEifQ.MkgQuHOyNB5WawbGOF9o8EH0thPFeIlh7LNhW3WGpx3QlbVDAk6YEQm5sRktDRl0E17KxxRM60LOZ9gSCFNuOHHSedMVlafoFW7GZIa8s7zkhIBi_7Bqsl26DaMy5dfJsk-1Al53V04UTSWjzUOImUSYg0Zy80oS9D_Q1WDVWdz_o2-ezQuKO5MAzZ3lY_mEEnSLkwppVaqOgdpQgmOrDGna_Vu6bGuFxoAAHqZ7ncnVeBw0JyB_Ct2rxxVBJamjTJJ8uQXJ9ng8bAh46GPBeGp9ydzfvp1CuMxUX4CgSrJMtIOrzujfU15G6pQ_N5ODFstHfSLEBK4TAAZBfPPs-g";

    fn jwt_check(algorithm: JwtAlgorithm, edit: impl FnOnce(&mut JwtCheck)) -> JwtCheck {
        let mut check = JwtCheck {
            header: None,
            algorithm,
            key_encoding: BinaryEncoding::Raw,
            issuer: None,
            audience: None,
            required_claims: BTreeMap::new(),
            leeway_seconds: None,
            secret_refs: Vec::new(),
            jwks_url: None,
        };
        edit(&mut check);
        check
    }

    fn jwt_verifier(
        check: JwtCheck,
        keys: &[&str],
        clock: Clock,
    ) -> Result<GenericVerifier, VerifierError> {
        GenericVerifier::with_clock(
            GenericChecks {
                jwt: Some((check, secrets(keys))),
                ..GenericChecks::default()
            },
            clock,
        )
    }

    fn bearer(token: &str) -> HeaderMap {
        headers(&[("authorization", &format!("Bearer {token}"))])
    }

    fn before_rfc_exp() -> i64 {
        1_300_819_000
    }

    fn after_rfc_exp() -> i64 {
        1_300_819_380 + 61
    }

    #[test]
    fn the_rfc7515_hs256_token_verifies_and_its_claims_are_checked() {
        let build = |edit: fn(&mut JwtCheck), keys: &[&str], clock: Clock| {
            jwt_verifier(
                jwt_check(JwtAlgorithm::HS256, |c| {
                    c.key_encoding = BinaryEncoding::Base64;
                    edit(c);
                }),
                keys,
                clock,
            )
            .expect("verifier")
        };
        let v = build(|_| {}, &[RFC7515_KEY], before_rfc_exp);
        assert_eq!(
            v.verify(&bearer(RFC7515_JWS), b"").map(|v| v.secret_index),
            Ok(0)
        );
        assert_eq!(
            build(|_| {}, &["b3RoZXI=", RFC7515_KEY], before_rfc_exp)
                .verify(&bearer(RFC7515_JWS), b"")
                .map(|v| v.secret_index),
            Ok(1),
            "rotation"
        );
        assert_eq!(
            build(|_| {}, &["b3RoZXI="], before_rfc_exp).verify(&bearer(RFC7515_JWS), b""),
            Err(Rejection::SignatureMismatch)
        );
        let tampered = format!("{}A", &RFC7515_JWS[..RFC7515_JWS.len() - 1]);
        assert_eq!(
            v.verify(&bearer(&tampered), b""),
            Err(Rejection::SignatureMismatch)
        );
        // Replay of an expired token, past the leeway.
        assert_eq!(
            build(|_| {}, &[RFC7515_KEY], after_rfc_exp).verify(&bearer(RFC7515_JWS), b""),
            Err(Rejection::TimestampOutOfTolerance)
        );
        let with_claims = build(
            |c| {
                c.issuer = Some("joe".into());
                c.required_claims.insert("iss".into(), "joe".into());
            },
            &[RFC7515_KEY],
            before_rfc_exp,
        );
        assert!(with_claims.verify(&bearer(RFC7515_JWS), b"").is_ok());
        for edit in [
            (|c: &mut JwtCheck| c.issuer = Some("bob".into())) as fn(&mut JwtCheck),
            |c| c.audience = Some("hookwarden".into()),
            |c| {
                c.required_claims.insert("sub".into(), "x".into());
            },
        ] {
            assert_eq!(
                build(edit, &[RFC7515_KEY], before_rfc_exp).verify(&bearer(RFC7515_JWS), b""),
                Err(Rejection::TokenMismatch)
            );
        }
        // Malformed: missing, other scheme, not three parts, another alg.
        assert_eq!(
            v.verify(&headers(&[]), b""),
            Err(Rejection::SignatureMissing)
        );
        let malformed = Err(Rejection::SignatureMalformed);
        assert_eq!(
            v.verify(&headers(&[("authorization", "Basic abc")]), b""),
            malformed
        );
        assert_eq!(v.verify(&bearer("a.b"), b""), malformed);
        assert_eq!(
            v.verify(&bearer(&format!("{RFC7515_JWS}.x")), b""),
            malformed
        );
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            RFC7515_JWS.split('.').nth(1).expect("claims")
        );
        assert_eq!(v.verify(&bearer(&none), b""), malformed);
        let mut twice = bearer(RFC7515_JWS);
        twice.append(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {RFC7515_JWS}")).expect("value"),
        );
        assert_eq!(v.verify(&twice, b""), malformed);
    }

    #[test]
    fn an_rs256_token_verifies_with_a_fixed_public_key() {
        use super::super::keys::material::test_keys::SIGNER_PUB;
        let build = |edit: fn(&mut JwtCheck), clock: Clock| {
            jwt_verifier(
                jwt_check(JwtAlgorithm::RS256, |c| {
                    c.issuer = Some("https://issuer.example.com".into());
                    c.audience = Some("hookwarden".into());
                    edit(c);
                }),
                &[SIGNER_PUB],
                clock,
            )
            .expect("verifier")
        };
        let v = build(|_| {}, now);
        assert!(v.verify(&bearer(RS256_JWT), b"").is_ok());
        let mut pieces: Vec<String> = RS256_JWT.split('.').map(str::to_owned).collect();
        pieces[1] = URL_SAFE_NO_PAD.encode(
            r#"{"iss":"https://issuer.example.com","aud":"hookwarden","exp":1800000600,"sub":"sender-1"}"#,
        );
        assert_eq!(
            v.verify(&bearer(&pieces.join(".")), b""),
            Err(Rejection::SignatureMismatch),
            "claims changed under the signature"
        );
        fn early() -> i64 {
            NOW - 100
        }
        assert_eq!(
            build(|_| {}, early).verify(&bearer(RS256_JWT), b""),
            Err(Rejection::TimestampOutOfTolerance),
            "nbf ahead by more than the leeway"
        );
        assert_eq!(
            build(|c| c.audience = Some("other".into()), now).verify(&bearer(RS256_JWT), b""),
            Err(Rejection::TokenMismatch)
        );
        // The RS256 token offered to an HS256 check keyed with the public
        // key's text: refused for its alg, never HMAC-checked.
        let confused = jwt_verifier(jwt_check(JwtAlgorithm::HS256, |_| {}), &[SIGNER_PUB], now)
            .expect("verifier");
        assert_eq!(
            confused.verify(&bearer(RS256_JWT), b""),
            Err(Rejection::SignatureMalformed)
        );
    }

    #[test]
    fn an_es256_token_in_its_own_header() {
        use p256::ecdsa::signature::Signer as _;
        use p256::pkcs8::DecodePrivateKey as _;

        use super::super::keys::material::test_keys::{EC_KEY, EC_PUB};
        let der = super::super::keys::material::pem_blocks(EC_KEY, "PRIVATE KEY")
            .into_iter()
            .next()
            .expect("pem");
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(&der).expect("key");
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256"}"#),
            URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{}}}"#, NOW + 60))
        );
        let signature: p256::ecdsa::Signature = key.sign(signed.as_bytes());
        let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        let v = jwt_verifier(
            jwt_check(JwtAlgorithm::ES256, |c| c.header = Some("X-Token".into())),
            &[EC_PUB],
            now,
        )
        .expect("verifier");
        assert!(v.verify(&headers(&[("x-token", &token)]), b"").is_ok());
        let mut bad = signature.to_bytes().to_vec();
        bad[10] ^= 1;
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bad));
        assert_eq!(
            v.verify(&headers(&[("x-token", &forged)]), b""),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            v.verify(&headers(&[("x-token", &format!("{signed}.AAAA"))]), b""),
            Err(Rejection::SignatureMalformed)
        );
        // No exp: a captured token would never expire.
        let no_exp = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256"}"#),
            URL_SAFE_NO_PAD.encode("{}")
        );
        let signature: p256::ecdsa::Signature = key.sign(no_exp.as_bytes());
        let no_exp = format!("{no_exp}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        assert_eq!(
            v.verify(&headers(&[("x-token", &no_exp)]), b""),
            Err(Rejection::TimestampMissing)
        );
    }

    #[test]
    fn jwt_startup_errors() {
        use super::super::keys::material::test_keys::SIGNER_PUB;
        let message = jwt_verifier(jwt_check(JwtAlgorithm::ES256, |_| {}), &[SIGNER_PUB], now)
            .expect_err("an RSA key is no P-256 key")
            .to_string();
        assert!(
            message.contains("P-256") && message.contains("secretRefs[0]"),
            "{message}"
        );
        let message = jwt_verifier(jwt_check(JwtAlgorithm::RS256, |_| {}), &["not a key"], now)
            .expect_err("not PEM")
            .to_string();
        assert!(message.contains("RSA public key"), "{message}");
        let err = GenericVerifier::new(GenericChecks {
            basic: Some((
                BasicAuthCheck {
                    username: "u".into(),
                    secret_refs: vec![],
                },
                secrets(&["pw"]),
            )),
            jwt: Some((jwt_check(JwtAlgorithm::HS256, |_| {}), secrets(&["k"]))),
            ..GenericChecks::default()
        })
        .expect_err("both read Authorization");
        assert!(err.to_string().contains("verification.jwt.header"), "{err}");
    }

    #[test]
    fn the_signer_signs_an_hs256_token() {
        let check = jwt_check(JwtAlgorithm::HS256, |c| {
            c.issuer = Some("sender".into());
            c.audience = Some("hookwarden".into());
            c.required_claims.insert("tenant".into(), "t-1".into());
        });
        let checks = GenericChecks {
            jwt: Some((check.clone(), secrets(&["jwt-key"]))),
            ..GenericChecks::default()
        };
        let request = SignRequest {
            id: "d-1",
            event: "x",
            timestamp: NOW,
            method: "POST",
            url: PUBLIC,
            body: b"{}",
        };
        let signed = sign(&checks, &request).expect("signed");
        let map = headers(
            &signed
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        );
        let v = jwt_verifier(check.clone(), &["jwt-key"], now).expect("verifier");
        assert!(v.verify(&map, b"{}").is_ok());
        assert_eq!(
            jwt_verifier(check, &["other"], now)
                .expect("verifier")
                .verify(&map, b"{}"),
            Err(Rejection::SignatureMismatch)
        );
        let rs = GenericChecks {
            jwt: Some((jwt_check(JwtAlgorithm::RS256, |_| {}), secrets(&["pem"]))),
            ..GenericChecks::default()
        };
        assert!(sign(&rs, &request).is_err(), "no private key to sign with");
    }

    mod jwks {
        use std::collections::HashMap;
        use std::sync::Arc;

        use p256::ecdsa::signature::Signer as _;

        use super::super::super::keys::material::test_keys::{ec_signer, other, signer};
        use super::super::super::keys::material::{ec_jwk_json, jwk_json};
        use super::super::super::keys::test_server::KeyServer;
        use super::super::super::keys::{FetcherConfig, KeyFetcher};
        use super::super::super::{Head, Incoming};
        use super::*;

        const HOST: &str = "issuer.example.com";
        const PATH: &str = "/.well-known/jwks.json";
        const URL: &str = "https://issuer.example.com/.well-known/jwks.json";

        async fn server() -> (KeyServer, Arc<KeyFetcher>) {
            let set = serde_json::json!({"keys": [
                jwk_json(&signer(), "rsa-1"),
                ec_jwk_json(ec_signer().verifying_key(), "ec-1"),
            ]});
            let server = KeyServer::start(
                &[HOST, "evil.example.net"],
                HashMap::from([(PATH.to_owned(), (200, set.to_string().into_bytes()))]),
            )
            .await;
            let fetcher = server.fetcher(FetcherConfig::default());
            (server, fetcher)
        }

        fn verifier(
            algorithm: JwtAlgorithm,
            url: &str,
            fetcher: &Arc<KeyFetcher>,
        ) -> Result<GenericVerifier, VerifierError> {
            GenericVerifier::with_clock(
                GenericChecks {
                    jwt: Some((
                        jwt_check(algorithm, |c| {
                            c.jwks_url = Some(url.to_owned());
                            c.issuer = Some("https://issuer.example.com/".into());
                            c.audience = Some("hookwarden".into());
                        }),
                        Vec::new(),
                    )),
                    fetcher: Some(Arc::clone(fetcher)),
                    ..GenericChecks::default()
                },
                now,
            )
        }

        fn claims() -> serde_json::Value {
            serde_json::json!({
                "iss": "https://issuer.example.com/",
                "aud": "hookwarden",
                "exp": NOW + 300,
                "nbf": NOW - 10,
                "sub": "sender-1",
            })
        }

        fn rs256(
            key: &ring::signature::RsaKeyPair,
            kid: &str,
            claims: &serde_json::Value,
        ) -> String {
            super::super::super::google_pubsub::jwt(key, kid, claims)
        }

        fn es256(kid: Option<&str>, claims: &serde_json::Value) -> String {
            let header = match kid {
                Some(kid) => serde_json::json!({"alg": "ES256", "kid": kid}),
                None => serde_json::json!({"alg": "ES256"}),
            };
            let signed = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature: p256::ecdsa::Signature = ec_signer().sign(signed.as_bytes());
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
        }

        /// As the server does: precheck, prefetch, check.
        async fn receive(v: &GenericVerifier, token: &str) -> Result<(), Rejection> {
            let headers = bearer(token);
            let uri = http::Uri::from_static("/in");
            let method = http::Method::POST;
            v.precheck(&Head {
                method: &method,
                uri: &uri,
                headers: &headers,
            })?;
            let request = Incoming {
                method: &method,
                uri: &uri,
                headers: &headers,
                body: b"{}",
            };
            if let Some(fetching) = v.prefetch(&request) {
                fetching.await?;
            }
            v.check(&request).map(|_| ())
        }

        #[tokio::test]
        async fn rs256_tokens_verify_with_the_fetched_set() {
            let (server, fetcher) = server().await;
            let v = verifier(JwtAlgorithm::RS256, URL, &fetcher).expect("verifier");
            assert_eq!(server.hits(), 0, "nothing fetched at startup");
            receive(&v, &rs256(&signer(), "rsa-1", &claims()))
                .await
                .expect("verified");
            receive(&v, &rs256(&signer(), "rsa-1", &claims()))
                .await
                .expect("from the cache");
            assert_eq!(server.hits(), 1);
            assert_eq!(server.paths.lock().expect("paths").as_slice(), [PATH]);

            // Another key under the known kid; the EC key's kid for an RS256
            // token.
            assert_eq!(
                receive(&v, &rs256(&other(), "rsa-1", &claims())).await,
                Err(Rejection::SignatureMismatch)
            );
            assert_eq!(
                receive(&v, &rs256(&signer(), "ec-1", &claims())).await,
                Err(Rejection::SignatureMismatch)
            );
            // Tampered claims under the signature.
            let good = rs256(&signer(), "rsa-1", &claims());
            let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
            let mut forged = claims();
            forged["sub"] = "admin".into();
            parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
            assert_eq!(
                receive(&v, &parts.join(".")).await,
                Err(Rejection::SignatureMismatch)
            );
            // Authentic, but expired, for another audience, of another issuer.
            for (name, value, rejection) in [
                (
                    "exp",
                    serde_json::json!(NOW - 61),
                    Rejection::TimestampOutOfTolerance,
                ),
                ("aud", serde_json::json!("other"), Rejection::TokenMismatch),
                (
                    "iss",
                    serde_json::json!("https://evil.example.net/"),
                    Rejection::TokenMismatch,
                ),
            ] {
                let mut c = claims();
                c[name] = value;
                assert_eq!(
                    receive(&v, &rs256(&signer(), "rsa-1", &c)).await,
                    Err(rejection),
                    "{name}"
                );
            }
            assert_eq!(server.hits(), 1);
            // Unknown kids: one refetch, then refused without more fetches.
            for kid in ["new-1", "new-2", "new-3"] {
                assert_eq!(
                    receive(&v, &rs256(&other(), kid, &claims())).await,
                    Err(Rejection::SignatureMismatch),
                    "{kid}"
                );
            }
            assert_eq!(server.hits(), 1, "within the fetcher's min_refresh");
            let eager = server.fetcher(FetcherConfig {
                min_refresh: std::time::Duration::ZERO,
                ..FetcherConfig::default()
            });
            let v = verifier(JwtAlgorithm::RS256, URL, &eager).expect("verifier");
            receive(&v, &rs256(&signer(), "rsa-1", &claims()))
                .await
                .expect("verified");
            assert_eq!(
                receive(&v, &rs256(&other(), "new-4", &claims())).await,
                Err(Rejection::SignatureMismatch)
            );
            assert_eq!(server.hits(), 3, "one fetch, one refetch for the kid");
        }

        #[tokio::test]
        async fn es256_tokens_and_malformed_ones() {
            let (server, fetcher) = server().await;
            let v = verifier(JwtAlgorithm::ES256, URL, &fetcher).expect("verifier");
            // Malformed: refused by the precheck, nothing fetched.
            for bad in [
                es256(None, &claims()),
                rs256(&signer(), "rsa-1", &claims()),
                "a.b".to_owned(),
            ] {
                assert_eq!(
                    receive(&v, &bad).await,
                    Err(Rejection::SignatureMalformed),
                    "{bad}"
                );
            }
            assert_eq!(server.hits(), 0);
            receive(&v, &es256(Some("ec-1"), &claims()))
                .await
                .expect("verified");
            assert_eq!(
                receive(&v, &es256(Some("rsa-1"), &claims())).await,
                Err(Rejection::SignatureMismatch),
                "an RSA key never verifies ES256"
            );
            let mut expired = claims();
            expired["exp"] = (NOW - 100).into();
            assert_eq!(
                receive(&v, &es256(Some("ec-1"), &expired)).await,
                Err(Rejection::TimestampOutOfTolerance)
            );
            let token = es256(Some("ec-1"), &claims());
            let short = format!("{}.AAAA", &token[..token.rfind('.').expect("dot")]);
            assert_eq!(
                receive(&v, &short).await,
                Err(Rejection::SignatureMalformed)
            );
            assert_eq!(server.hits(), 1);
        }

        #[tokio::test]
        async fn the_key_server_down_is_key_unavailable() {
            let (server, _) = server().await;
            let fetcher = KeyFetcher::with_test_routes(
                FetcherConfig::default(),
                rustls::RootCertStore::empty(),
                HashMap::from([(HOST.to_owned(), server.address)]),
            );
            let v = verifier(JwtAlgorithm::RS256, URL, &fetcher).expect("verifier");
            assert_eq!(
                receive(&v, &rs256(&signer(), "rsa-1", &claims())).await,
                Err(Rejection::KeyUnavailable),
                "an untrusted server is no key server"
            );
        }

        #[tokio::test]
        async fn jwks_urls_and_settings_are_checked_at_startup() {
            let (server, fetcher) = server().await;
            for bad in [
                "http://issuer.example.com/.well-known/jwks.json",
                "https://issuer.example.com:8443/.well-known/jwks.json",
                "https://user@issuer.example.com/.well-known/jwks.json",
                "https://127.0.0.1/.well-known/jwks.json",
                "https://localhost/.well-known/jwks.json",
            ] {
                let err = verifier(JwtAlgorithm::RS256, bad, &fetcher).expect_err(bad);
                assert!(err.to_string().contains("jwksUrl"), "{err}");
            }
            let err = verifier(JwtAlgorithm::HS256, URL, &fetcher).expect_err("HS256");
            assert!(err.to_string().contains("RS256 or ES256"), "{err}");
            let err = GenericVerifier::with_clock(
                GenericChecks {
                    jwt: Some((
                        jwt_check(JwtAlgorithm::RS256, |c| c.jwks_url = Some(URL.into())),
                        secrets(&["-----BEGIN PUBLIC KEY-----"]),
                    )),
                    fetcher: Some(Arc::clone(&fetcher)),
                    ..GenericChecks::default()
                },
                now,
            )
            .expect_err("keys of its own");
            assert!(err.to_string().contains("secretRefs"), "{err}");
            // The token cannot point elsewhere: a `jku` is not followed.
            let v = verifier(JwtAlgorithm::RS256, URL, &fetcher).expect("verifier");
            let header = serde_json::json!({"alg": "RS256", "kid": "evil",
                "jku": "https://evil.example.net/.well-known/jwks.json"});
            let signed = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims().to_string())
            );
            let signature =
                super::super::super::keys::material::rsa_sha256_sign(&other(), signed.as_bytes());
            let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature));
            assert_eq!(receive(&v, &token).await, Err(Rejection::SignatureMismatch));
            assert!(
                server
                    .paths
                    .lock()
                    .expect("paths")
                    .iter()
                    .all(|p| p == PATH),
                "only the configured URL"
            );
            assert_eq!(v.secret_headers(), vec!["authorization"]);
        }
    }
}
