//! Pieces shared by the presets whose provider sends a shared secret
//! verbatim instead of a signature (Okta's authorization header, Event
//! Grid's query parameter, Microsoft Graph's `clientState`) and by the
//! presets whose handshake is a query parameter (Dropbox, X, Graph).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Rejection;
use crate::secrets::Secret;

/// Shared secrets, kept as SHA-256 digests: a given value is hashed and
/// compared with every digest in constant time, so neither the time taken
/// nor a differing length tells an attacker how much of a guess was right.
pub(crate) struct Tokens(Vec<[u8; 32]>);

impl Tokens {
    pub(crate) fn new(secrets: &[Secret]) -> Self {
        Self(
            secrets
                .iter()
                .map(|secret| Sha256::digest(secret.expose()).into())
                .collect(),
        )
    }

    /// The index of the first secret equal to `given`; every secret is
    /// compared, so timing does not tell which one matched.
    pub(crate) fn find(&self, given: &[u8]) -> Option<usize> {
        let given = Sha256::digest(given);
        let mut matched = None;
        for (index, candidate) in self.0.iter().enumerate() {
            if bool::from(candidate.ct_eq(given.as_slice())) && matched.is_none() {
                matched = Some(index);
            }
        }
        matched
    }
}

impl std::fmt::Debug for Tokens {
    // Digests of secrets are not for logs either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} secrets)", self.0.len())
    }
}

/// The value of the query parameter `name`, URL-decoded; `Ok(None)` when
/// absent. A repeated parameter is ambiguous (which one would be answered or
/// checked?) and refused as [`Rejection::HandshakeMalformed`].
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, Rejection> {
    let mut found = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key == name && found.replace(value.into_owned()).is_some() {
            return Err(Rejection::HandshakeMalformed);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly_and_report_the_first_index() {
        let tokens = Tokens::new(&[Secret::from(&b"old"[..]), Secret::from(&b"new"[..])]);
        assert_eq!(tokens.find(b"new"), Some(1));
        assert_eq!(tokens.find(b"old"), Some(0));
        assert_eq!(tokens.find(b"ne"), None);
        assert_eq!(tokens.find(b"new "), None);
        assert_eq!(tokens.find(b""), None);
        assert_eq!(format!("{tokens:?}"), "Tokens(2 secrets)");
    }

    #[test]
    fn query_params_are_decoded_and_a_repeated_one_refused() {
        assert_eq!(
            query_param(Some("a=1&b=x%20y+z"), "b"),
            Ok(Some("x y z".to_owned()))
        );
        assert_eq!(query_param(Some("a=1"), "b"), Ok(None));
        assert_eq!(query_param(None, "b"), Ok(None));
        assert_eq!(
            query_param(Some("b=1&b=2"), "b"),
            Err(Rejection::HandshakeMalformed)
        );
    }
}
