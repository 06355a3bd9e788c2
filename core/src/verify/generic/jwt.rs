//! The `generic` provider's JWT check: a bearer token signed with a shared
//! key, a fixed public key or keys fetched from `jwksUrl`, and its claims.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Hmac;
use hookwarden_crds::{JwtAlgorithm, JwtCheck};
use http::HeaderMap;
use sha2::Sha256;

use super::{decode_key_of, non_empty};
use crate::secrets::Secret;
use crate::verify::hmac_common::{find_secret, signature_header};
use crate::verify::timestamp::Clock;
use crate::verify::{Rejection, VerifierError, keys};

/// The keys of a JWT check, by algorithm.
#[derive(Debug)]
pub(super) enum JwtKeys {
    /// HS256 shared secrets (decoded).
    Hmac(Vec<Secret>),
    /// RS256 public keys.
    Rsa(Vec<keys::RsaKey>),
    /// ES256 public keys.
    P256(Vec<p256::ecdsa::VerifyingKey>),
    /// The keys of the JWK Set at `url` (`jwksUrl`), by the token's `kid`,
    /// read from `fetcher`'s cache (filled by [`crate::verify::Verifier::prefetch`]).
    Fetched {
        url: keys::KeyUrl,
        fetcher: std::sync::Arc<keys::KeyFetcher>,
    },
}

/// A JWT split and decoded, its signature not yet checked.
#[derive(Debug)]
pub(super) struct ParsedJwt {
    /// `<header>.<claims>` as sent: what is signed.
    pub(super) signed: String,
    pub(super) signature: Vec<u8>,
    /// The header's `kid`, read for fetched keys only.
    pub(super) kid: Option<String>,
    pub(super) claims: serde_json::Value,
}

/// The default clock leeway for `exp` and `nbf`.
pub(super) const DEFAULT_JWT_LEEWAY_SECS: u32 = 60;

#[derive(Debug)]
pub(super) struct JwtVerifier {
    pub(super) header: String,
    pub(super) bearer: bool,
    pub(super) algorithm: JwtAlgorithm,
    pub(super) keys: JwtKeys,
    pub(super) issuer: Option<String>,
    pub(super) audience: Option<String>,
    pub(super) required_claims: BTreeMap<String, String>,
    pub(super) leeway: u32,
    pub(super) clock: Clock,
}

/// The `alg` of a token signed with `algorithm`.
pub(super) fn alg_name(algorithm: JwtAlgorithm) -> &'static str {
    match algorithm {
        JwtAlgorithm::HS256 => "HS256",
        JwtAlgorithm::RS256 => "RS256",
        JwtAlgorithm::ES256 => "ES256",
    }
}

pub(super) fn p256_key_of_pem(text: &[u8]) -> Option<p256::ecdsa::VerifyingKey> {
    use p256::pkcs8::DecodePublicKey;
    let text = std::str::from_utf8(text).ok()?;
    let der = keys::material::pem_blocks(text, "PUBLIC KEY")
        .into_iter()
        .next()?;
    p256::ecdsa::VerifyingKey::from_public_key_der(&der).ok()
}

impl JwtVerifier {
    pub(super) fn new(
        check: JwtCheck,
        keys: &[Secret],
        clock: Clock,
        fetcher: Option<std::sync::Arc<keys::KeyFetcher>>,
    ) -> Result<Self, VerifierError> {
        if let Some(text) = &check.jwks_url {
            return Self::with_jwks_url(check.clone(), text, keys, clock, fetcher);
        }
        non_empty("verification.jwt", keys)?;
        let invalid = |index| VerifierError::InvalidKey {
            provider: "generic",
            index,
            expected: match check.algorithm {
                JwtAlgorithm::RS256 => {
                    "an RSA public key in PEM (-----BEGIN PUBLIC KEY-----) for verification.jwt"
                }
                _ => "a P-256 public key in PEM (-----BEGIN PUBLIC KEY-----) for verification.jwt",
            },
        };
        let keys = match check.algorithm {
            JwtAlgorithm::HS256 => {
                let keys = keys
                    .iter()
                    .enumerate()
                    .map(|(index, key)| {
                        decode_key_of("verification.jwt", check.key_encoding, key, index)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                for key in &keys {
                    crate::logging::register_secret(key.expose());
                }
                JwtKeys::Hmac(keys)
            }
            JwtAlgorithm::RS256 => JwtKeys::Rsa(
                keys.iter()
                    .enumerate()
                    .map(|(index, key)| {
                        keys::material::rsa_key_of_public_key_pem(key.expose())
                            .ok_or_else(|| invalid(index))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            JwtAlgorithm::ES256 => JwtKeys::P256(
                keys.iter()
                    .enumerate()
                    .map(|(index, key)| p256_key_of_pem(key.expose()).ok_or_else(|| invalid(index)))
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Self::assemble(check, keys, clock))
    }

    /// A check whose keys are the JWK Set at `text` (`jwksUrl`): RS256 or
    /// ES256 only, and no keys of its own (`keys`: what `secretRefs`
    /// loaded, which must be nothing).
    pub(super) fn with_jwks_url(
        check: JwtCheck,
        text: &str,
        keys: &[Secret],
        clock: Clock,
        fetcher: Option<std::sync::Arc<keys::KeyFetcher>>,
    ) -> Result<Self, VerifierError> {
        let invalid = |reason| VerifierError::Invalid {
            field: "verification.jwt.jwksUrl",
            reason,
        };
        if check.algorithm == JwtAlgorithm::HS256 {
            return Err(invalid(
                "a JWK Set holds public keys: use algorithm RS256 or ES256",
            ));
        }
        if !keys.is_empty() || !check.secret_refs.is_empty() {
            return Err(invalid(
                "the keys come from jwksUrl: give verification.jwt no secretRefs",
            ));
        }
        let url = keys::url::configured_jwks_url(text).ok_or(invalid(
            "an https URL on port 443 of a DNS name, without userinfo, fragment or dot segments",
        ))?;
        let keys = JwtKeys::Fetched {
            url,
            fetcher: fetcher.unwrap_or_else(keys::KeyFetcher::shared),
        };
        Ok(Self::assemble(check, keys, clock))
    }

    pub(super) fn assemble(check: JwtCheck, keys: JwtKeys, clock: Clock) -> Self {
        let header = check
            .header
            .unwrap_or_else(|| "Authorization".to_owned())
            .to_ascii_lowercase();
        Self {
            bearer: header == "authorization",
            header,
            algorithm: check.algorithm,
            keys,
            issuer: check.issuer,
            audience: check.audience,
            required_claims: check.required_claims,
            leeway: check.leeway_seconds.unwrap_or(DEFAULT_JWT_LEEWAY_SECS),
            clock,
        }
    }

    /// Form and `alg` first (`signature_malformed`), then the signature
    /// (`signature_mismatch`), and only for an authentic token its times
    /// (`timestamp_*`) and claims (`token_mismatch`).
    pub(super) fn verify(&self, headers: &HeaderMap) -> Result<usize, Rejection> {
        let token = self.parse(headers)?;
        let index = self.key_index(&token)?;
        self.check_claims(&token.claims)?;
        Ok(index)
    }

    /// The token's form and `alg`: what can be checked without a key.
    pub(super) fn parse(&self, headers: &HeaderMap) -> Result<ParsedJwt, Rejection> {
        // Bounded: a longer header is malformed before it is parsed.
        let value = signature_header(headers, &self.header)?;
        let token = if self.bearer {
            let (scheme, token) = value.split_once(' ').ok_or(Rejection::SignatureMalformed)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(Rejection::SignatureMalformed);
            }
            token.trim()
        } else {
            value.trim()
        };
        let mut pieces = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (pieces.next(), pieces.next(), pieces.next(), pieces.next())
        else {
            return Err(Rejection::SignatureMalformed);
        };
        let json = |piece: &str| {
            URL_SAFE_NO_PAD
                .decode(piece)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .filter(serde_json::Value::is_object)
                .ok_or(Rejection::SignatureMalformed)
        };
        let header_json = json(header)?;
        // Only the configured algorithm: a token cannot choose `none`, or
        // HS256 keyed with a public key.
        if header_json.get("alg").and_then(|a| a.as_str()) != Some(alg_name(self.algorithm)) {
            return Err(Rejection::SignatureMalformed);
        }
        // RFC 7515 §4.1.11: extensions this check does not understand must
        // not be ignored.
        if header_json.get("crit").is_some() {
            return Err(Rejection::SignatureMalformed);
        }
        // A fetched key is picked by `kid`: a token without one names none.
        let kid = match &self.keys {
            JwtKeys::Fetched { .. } => Some(
                header_json
                    .get("kid")
                    .and_then(|k| k.as_str())
                    .filter(|k| !k.is_empty() && k.len() <= 256)
                    .ok_or(Rejection::SignatureMalformed)?
                    .to_owned(),
            ),
            _ => None,
        };
        let signed = token[..header.len() + 1 + claims.len()].to_owned();
        let claims = json(claims)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Rejection::SignatureMalformed)?;
        Ok(ParsedJwt {
            signed,
            signature,
            kid,
            claims,
        })
    }

    /// The times (`timestamp_*`) and claims (`token_mismatch`) of an
    /// authentic token.
    pub(super) fn check_claims(&self, claims_json: &serde_json::Value) -> Result<(), Rejection> {
        let now = (self.clock)();
        let leeway = i64::from(self.leeway);
        let time = |name: &str| match claims_json.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                .or_else(|| {
                    value
                        .as_f64()
                        .filter(|f| f.is_finite() && f.abs() < 1e15)
                        // Whole seconds of a fractional NumericDate.
                        .map(|f| f.floor() as i64)
                })
                .map(Some)
                .ok_or(Rejection::TimestampMalformed),
        };
        // Without `exp` a captured token would be accepted forever.
        let exp = time("exp")?.ok_or(Rejection::TimestampMissing)?;
        if now > exp.saturating_add(leeway) {
            return Err(Rejection::TimestampOutOfTolerance);
        }
        if let Some(nbf) = time("nbf")?
            && now < nbf.saturating_sub(leeway)
        {
            return Err(Rejection::TimestampOutOfTolerance);
        }
        let claim = |name: &str| claims_json.get(name).and_then(|v| v.as_str());
        let issuer_ok = self
            .issuer
            .as_deref()
            .is_none_or(|issuer| claim("iss") == Some(issuer));
        let audience_ok =
            self.audience
                .as_deref()
                .is_none_or(|audience| match claims_json.get("aud") {
                    Some(serde_json::Value::String(aud)) => aud == audience,
                    Some(serde_json::Value::Array(auds)) => {
                        auds.iter().any(|a| a.as_str() == Some(audience))
                    }
                    _ => false,
                });
        let claims_ok = self
            .required_claims
            .iter()
            .all(|(name, value)| claim(name) == Some(value.as_str()));
        if issuer_ok && audience_ok && claims_ok {
            Ok(())
        } else {
            Err(Rejection::TokenMismatch)
        }
    }

    /// The index of the key that signed the token; every key is tried (the
    /// shared ones in constant time). A fetched key is the one of the
    /// token's `kid` (index 0).
    pub(super) fn key_index(&self, token: &ParsedJwt) -> Result<usize, Rejection> {
        let (signed, signature) = (token.signed.as_bytes(), token.signature.as_slice());
        match &self.keys {
            JwtKeys::Fetched { url, fetcher } => {
                let keys = fetcher.cached(url).ok_or(Rejection::KeyUnavailable)?;
                let keys::Keys::Jwks(set) = keys.as_ref() else {
                    return Err(Rejection::KeyUnavailable);
                };
                // An unknown kid after the bounded refresh: no key signs it.
                let key = set
                    .iter()
                    .find(|key| Some(key.kid.as_str()) == token.kid.as_deref())
                    .ok_or(Rejection::SignatureMismatch)?;
                let ok = match self.algorithm {
                    JwtAlgorithm::RS256 => key.verifies_rs256(signed, signature),
                    JwtAlgorithm::ES256 => {
                        if signature.len() != 64 {
                            return Err(Rejection::SignatureMalformed);
                        }
                        key.verifies_es256(signed, signature)
                    }
                    // Refused when the check was built.
                    JwtAlgorithm::HS256 => false,
                };
                ok.then_some(0)
            }
            JwtKeys::Hmac(keys) => {
                if signature.len() != 32 {
                    return Err(Rejection::SignatureMalformed);
                }
                find_secret::<Hmac<Sha256>>(keys, &[signed], &[signature.to_vec()])
            }
            JwtKeys::Rsa(keys) => keys
                .iter()
                .position(|key| key.verifies(keys::RsaDigest::Sha256, signed, signature)),
            JwtKeys::P256(keys) => {
                use p256::ecdsa::signature::Verifier as _;
                // JWS carries R || S, 32 bytes each (RFC 7518 §3.4).
                let signature = p256::ecdsa::Signature::from_slice(signature)
                    .map_err(|_| Rejection::SignatureMalformed)?;
                keys.iter()
                    .position(|key| key.verify(signed, &signature).is_ok())
            }
        }
        .ok_or(Rejection::SignatureMismatch)
    }
}

/// The HS256 JWT a sender configured as `check` sends, signed with `key`
/// (decoded) at `now`: the configured issuer, audience and required claims,
/// `iat` and `nbf` now, `exp` five minutes on, and `jti` the delivery id.
pub(super) fn sign_jwt(check: &JwtCheck, key: &[u8], now: i64, id: &str) -> String {
    let mut claims = serde_json::Map::new();
    for (name, value) in &check.required_claims {
        claims.insert(name.clone(), value.clone().into());
    }
    if let Some(issuer) = &check.issuer {
        claims.insert("iss".into(), issuer.clone().into());
    }
    if let Some(audience) = &check.audience {
        claims.insert("aud".into(), audience.clone().into());
    }
    claims.insert("iat".into(), now.into());
    claims.insert("nbf".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(300).into());
    claims.insert("jti".into(), id.into());
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(serde_json::Value::Object(claims).to_string());
    let signed = format!("{header}.{claims}");
    let mac = crate::verify::hmac_common::mac::<Hmac<Sha256>>(key, &[signed.as_bytes()]);
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac))
}
