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
    use hmac::digest::KeyInit;
    use hmac::{Hmac, Mac};
    use hookwarden_crds::{HmacAlgorithm, SignatureEncoding};
    use http::HeaderValue;
    use sha2::Sha512;

    use super::super::DEFAULT_TIMESTAMP_TOLERANCE_SECS;
    use super::*;

    // The clock, requests and checks the checks' own tests (`template`,
    // `signature`, `jwt`) build theirs from.
    pub(super) const NOW: i64 = 1_700_000_000;
    /// The URL a sender calls, for templates with `{url}`.
    pub(super) const PUBLIC: &str = "https://hooks.example.com/hooks/in";

    pub(super) fn now() -> i64 {
        NOW
    }

    pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        map
    }

    pub(super) fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|v| Secret::from(v.as_bytes())).collect()
    }

    pub(super) fn hmac_check(edit: impl FnOnce(&mut HmacCheck)) -> HmacCheck {
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

    pub(super) fn hmac_verifier(check: HmacCheck, keys: &[&str]) -> GenericVerifier {
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

    pub(super) fn sign256(key: &[u8], content: &[u8]) -> Vec<u8> {
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
