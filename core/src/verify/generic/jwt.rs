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

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::super::tests::{NOW, PUBLIC, headers, now, secrets};
    use super::super::*;
    use super::*;

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
        use crate::verify::keys::material::test_keys::SIGNER_PUB;
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

        use crate::verify::keys::material::test_keys::{EC_KEY, EC_PUB};
        let der = crate::verify::keys::material::pem_blocks(EC_KEY, "PRIVATE KEY")
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
        use crate::verify::keys::material::test_keys::SIGNER_PUB;
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

        use super::*;
        use crate::verify::keys::material::test_keys::{ec_signer, other, signer};
        use crate::verify::keys::material::{ec_jwk_json, jwk_json};
        use crate::verify::keys::test_server::KeyServer;
        use crate::verify::keys::{FetcherConfig, KeyFetcher};
        use crate::verify::{Head, Incoming};

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
            crate::verify::google_pubsub::jwt(key, kid, claims)
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
                crate::verify::keys::material::rsa_sha256_sign(&other(), signed.as_bytes());
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
