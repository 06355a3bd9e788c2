//! Signing a request as a `generic` endpoint's configuration asks, for
//! `hookwarden send` and the tests.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Hmac;
use hookwarden_crds::{HmacAlgorithm, JwtAlgorithm, SignatureEncoding};
use sha2::{Sha256, Sha512};

use super::jwt::sign_jwt;
use super::signature::KeyValue;
use super::template::{Part, default_template, parse_template};
use super::{GenericChecks, decode_key, decode_key_of};
use crate::verify::VerifierError;

/// What a `generic` sender signs: the delivery and the request it makes.
#[derive(Debug, Clone, Copy)]
pub struct SignRequest<'a> {
    /// The delivery id (id header, delivery id header).
    pub id: &'a str,
    /// The event type (event header).
    pub event: &'a str,
    /// Unix seconds of the signature.
    pub timestamp: i64,
    /// The HTTP method.
    pub method: &'a str,
    /// The public URL called, query included (`{url}`; `{pathAndQuery}` is
    /// its path and query).
    pub url: &'a str,
    /// The raw body.
    pub body: &'a [u8],
}

/// The path and query of an absolute `url` (`/` when it has no path).
pub(super) fn path_and_query(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    match rest.find(['/', '?']) {
        Some(at) if rest.as_bytes()[at] == b'/' => rest[at..].to_owned(),
        Some(at) => format!("/{}", &rest[at..]),
        None => "/".to_owned(),
    }
}

/// The headers a sender configured as `checks` sends for `request`, each
/// check signed with its first secret: the token header, `Authorization:
/// Basic`, the HMAC signature (with the id, timestamp and any other signed
/// header it needs; a signed header the sender has no value for carries
/// the delivery id), the event in the event header and the id in the
/// delivery id header.
pub fn sign(
    checks: &GenericChecks,
    request: &SignRequest<'_>,
) -> Result<Vec<(String, String)>, VerifierError> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let has = |headers: &[(String, String)], name: &str| {
        headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if let Some(name) = &checks.event_header {
        headers.push((name.clone(), request.event.to_owned()));
    }
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
        let content = match &check.signed_content {
            Some(text) => parse_template(text)?,
            None => default_template(check),
        };
        let ts = request.timestamp.to_string();
        if let Some(name) = &check.id_header {
            headers.push((name.clone(), request.id.to_owned()));
        }
        if let Some(name) = &check.timestamp_header {
            headers.push((name.clone(), ts.clone()));
        }
        for part in &content {
            if let Part::Header(name) = part
                && !has(&headers, name)
            {
                headers.push((name.clone(), request.id.to_owned()));
            }
        }
        let target = path_and_query(request.url);
        let mut signed: Vec<u8> = Vec::new();
        for part in &content {
            match part {
                Part::Literal(text) => signed.extend_from_slice(text),
                Part::Method => signed.extend_from_slice(request.method.as_bytes()),
                Part::Url => signed.extend_from_slice(request.url.as_bytes()),
                Part::PathAndQuery => signed.extend_from_slice(target.as_bytes()),
                Part::Timestamp => signed.extend_from_slice(ts.as_bytes()),
                Part::Id => signed.extend_from_slice(request.id.as_bytes()),
                Part::Header(name) => {
                    if let Some((_, value)) =
                        headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
                    {
                        signed.extend_from_slice(value.as_bytes());
                    }
                }
                Part::Body => signed.extend_from_slice(request.body),
            }
        }
        let parts: [&[u8]; 1] = [&signed];
        let mac = match check.algorithm {
            HmacAlgorithm::Sha256 => {
                crate::verify::hmac_common::mac::<Hmac<Sha256>>(key.expose(), &parts)
            }
            HmacAlgorithm::Sha512 => {
                crate::verify::hmac_common::mac::<Hmac<Sha512>>(key.expose(), &parts)
            }
            HmacAlgorithm::Sha1 => {
                crate::verify::hmac_common::mac::<Hmac<sha1::Sha1>>(key.expose(), &parts)
            }
        };
        let encoded = match check.signature_encoding {
            SignatureEncoding::Hex => hex::encode(mac),
            SignatureEncoding::Base64 => BASE64.encode(mac),
        };
        let signature = format!(
            "{}{encoded}",
            check.signature_prefix.as_deref().unwrap_or_default()
        );
        let value = match check.key_value.as_ref().map(KeyValue::new).transpose()? {
            Some(kv) => {
                let pair = |key: &str, value: &str| format!("{key}{}{value}", kv.key_separator);
                let mut pairs = Vec::with_capacity(2);
                if let Some(key) = &kv.timestamp_key {
                    pairs.push(pair(key, &ts));
                }
                pairs.push(pair(&kv.signature_key, &signature));
                pairs.join(&kv.pair_separator)
            }
            None => signature,
        };
        headers.push((check.signature_header.clone(), value));
    }
    if let Some((check, keys)) = &checks.jwt {
        if check.algorithm != JwtAlgorithm::HS256 {
            return Err(VerifierError::Invalid {
                field: "verification.jwt.algorithm",
                reason: "only HS256 tokens can be signed from a manifest: for RS256 and ES256 it holds the public key",
            });
        }
        let key = decode_key_of(
            "verification.jwt",
            check.key_encoding,
            keys.first()
                .ok_or(VerifierError::NoSecretsFor("verification.jwt"))?,
            0,
        )?;
        let token = sign_jwt(check, key.expose(), request.timestamp, request.id);
        let header = check
            .header
            .clone()
            .unwrap_or_else(|| "Authorization".to_owned());
        let value = if header.eq_ignore_ascii_case("authorization") {
            format!("Bearer {token}")
        } else {
            token
        };
        headers.push((header, value));
    }
    if let Some(name) = &checks.delivery_id_header
        && !has(&headers, name)
    {
        headers.push((name.clone(), request.id.to_owned()));
    }
    Ok(headers)
}
