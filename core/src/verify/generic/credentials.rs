//! The `generic` provider's token and HTTP Basic checks: both compared
//! through SHA-256 digests in constant time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::{constant_time_find, digest};
use crate::verify::{Rejection, single_header};

#[derive(Debug)]
pub(super) struct TokenVerifier {
    pub(super) header: String,
    pub(super) digests: Vec<[u8; 32]>,
}

impl TokenVerifier {
    pub(super) fn verify(&self, headers: &HeaderMap) -> Result<usize, Rejection> {
        let token = single_header(headers, &self.header)
            .map_err(|()| Rejection::TokenMismatch)?
            .ok_or(Rejection::TokenMissing)?;
        constant_time_find(&self.digests, &digest(token.as_bytes())).ok_or(Rejection::TokenMismatch)
    }
}

#[derive(Debug)]
pub(super) struct BasicVerifier {
    pub(super) username: [u8; 32],
    pub(super) passwords: Vec<[u8; 32]>,
}

impl BasicVerifier {
    pub(super) fn verify(&self, headers: &HeaderMap) -> Result<usize, Rejection> {
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
