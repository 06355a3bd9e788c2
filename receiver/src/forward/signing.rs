//! The Standard Webhooks signature of forwarded requests.
//!
//! The secret file (`spec.signing.secretRef`) holds one `whsec_<base64>`
//! secret per line; blank lines are ignored. Every request is signed with
//! each of them, and the signatures are sent space-separated in one
//! `webhook-signature` header, as the Standard Webhooks specification
//! allows: a destination that knows any one of the secrets verifies the
//! request. That is how a secret is rotated without a failed delivery:
//! add the new secret as a second line, give it to the destination, then
//! remove the old line. The signature itself is the receiver's one Standard
//! Webhooks signer ([`crate::verify::standard_webhooks::sign`]).

use crate::secrets::Secret;
use crate::verify::standard_webhooks;

/// The most secrets one file may hold (two during a rotation; a few more
/// are tolerated, each costs one HMAC per request).
pub const MAX_SIGNING_SECRETS: usize = 4;

/// Why the signing secret file cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// No secret in the file.
    #[error("the signing secret file holds no secret")]
    Empty,
    /// A line is not a Standard Webhooks secret.
    #[error(
        "line {line} of the signing secret file is not a Standard Webhooks secret (whsec_ and base64)"
    )]
    NotBase64 {
        /// The 1-based line number (never its content).
        line: usize,
    },
    /// Too many secrets.
    #[error("the signing secret file holds {0} secrets; at most {MAX_SIGNING_SECRETS}")]
    TooMany(usize),
}

/// The secrets requests are signed with, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeys {
    /// Each line as written (the signer decodes it).
    secrets: Vec<Secret>,
}

/// The three Standard Webhooks headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`: Unix seconds.
    pub timestamp: String,
    /// `webhook-signature`: `v1,<base64>` per secret, space-separated.
    pub signature: String,
}

impl SigningKeys {
    /// The secrets of a signing secret file's content.
    pub fn parse(file: &Secret) -> Result<Self, SigningError> {
        let mut secrets = Vec::new();
        for (index, line) in file.expose().split(|b| *b == b'\n').enumerate() {
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            if standard_webhooks::decode_secret(line).is_none() {
                return Err(SigningError::NotBase64 { line: index + 1 });
            }
            // Each line on its own is a secret a log line must not show.
            crate::logging::register_secret(line);
            secrets.push(Secret::from(line));
        }
        match secrets.len() {
            0 => Err(SigningError::Empty),
            n if n > MAX_SIGNING_SECRETS => Err(SigningError::TooMany(n)),
            _ => Ok(Self { secrets }),
        }
    }

    /// How many secrets sign each request.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Never: [`SigningKeys::parse`] refuses an empty file.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The headers of `body` sent as message `id` at `timestamp`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> Signed {
        let signatures: Vec<String> = self
            .secrets
            .iter()
            .filter_map(|secret| standard_webhooks::sign(secret.expose(), id, timestamp, body))
            .filter_map(|headers| {
                headers
                    .into_iter()
                    .find(|(name, _)| *name == standard_webhooks::SCHEME.signature_header)
                    .map(|(_, value)| value)
            })
            .collect();
        Signed {
            id: id.to_owned(),
            timestamp: timestamp.to_string(),
            signature: signatures.join(" "),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;
    use crate::verify::Verifier;
    use crate::verify::standard_webhooks::StandardWebhooksVerifier;

    const OLD: &str = "whsec_b2xkLWtleS1ieXRlcw==";
    const NEW: &str = "whsec_bmV3LWtleS1ieXRlcw==";

    fn headers(signed: &Signed) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("webhook-id", signed.id.parse().expect("id"));
        map.insert("webhook-timestamp", signed.timestamp.parse().expect("ts"));
        map.insert(
            "webhook-signature",
            signed.signature.parse().expect("signature"),
        );
        map
    }

    fn verifies(secret: &str, signed: &Signed, body: &[u8]) -> bool {
        let verifier = StandardWebhooksVerifier::new(vec![Secret::from(secret.as_bytes())], 300)
            .expect("verifier");
        verifier.verify(&headers(signed), body).is_ok()
    }

    #[test]
    fn signs_so_the_standard_webhooks_verifier_accepts_it() {
        let keys =
            SigningKeys::parse(&Secret::from(format!("{NEW}\n").into_bytes())).expect("one secret");
        assert_eq!(keys.len(), 1);
        let now = jiff::Timestamp::now().as_second();
        let signed = keys.sign("msg-1", now, b"{\"a\":1}");
        assert_eq!(signed.id, "msg-1");
        assert!(signed.signature.starts_with("v1,"), "{}", signed.signature);
        assert!(verifies(NEW, &signed, b"{\"a\":1}"));
        assert!(!verifies(OLD, &signed, b"{\"a\":1}"));
        assert!(!verifies(NEW, &signed, b"{\"a\":2}"));
    }

    #[test]
    fn every_line_signs_so_either_secret_verifies_during_a_rotation() {
        let keys = SigningKeys::parse(&Secret::from(format!("{NEW}\n\n  {OLD}  \n").into_bytes()))
            .expect("two secrets");
        assert_eq!(keys.len(), 2);
        let now = jiff::Timestamp::now().as_second();
        let signed = keys.sign("msg-2", now, b"body");
        assert_eq!(
            signed.signature.split(' ').count(),
            2,
            "{}",
            signed.signature
        );
        assert!(verifies(NEW, &signed, b"body"));
        assert!(verifies(OLD, &signed, b"body"));
    }

    #[test]
    fn bad_files_are_refused_without_showing_them() {
        assert_eq!(
            SigningKeys::parse(&Secret::from(&b"\n \n"[..])),
            Err(SigningError::Empty)
        );
        let err = SigningKeys::parse(&Secret::from(
            format!("{NEW}\nwhsec_not base64 hunter2\n").into_bytes(),
        ))
        .expect_err("not base64");
        assert_eq!(err, SigningError::NotBase64 { line: 2 });
        assert!(!err.to_string().contains("hunter2"));
        let many = [NEW; MAX_SIGNING_SECRETS + 1].join("\n");
        assert_eq!(
            SigningKeys::parse(&Secret::from(many.into_bytes())),
            Err(SigningError::TooMany(MAX_SIGNING_SECRETS + 1))
        );
    }
}
