//! Which provider request headers an endpoint may store
//! (`spec.request.storeHeaders`): one definition for the CRD's CEL rule and
//! the Rust check of a standalone manifest.
//!
//! A stored header is kept for as long as the stream keeps the event and
//! can be passed on to any destination a subscription names, so anything
//! that carries a credential or a signature is refused: a stored signature
//! is useless to a destination (it signed the provider's request, not the
//! forwarded one) and leaks a verifier's input.

/// Lower-case fragments no storable header name may contain:
/// `Authorization`, `Proxy-Authorization`, `Cookie`, every preset's
/// signature header (`X-Hub-Signature-256`, `Stripe-Signature`,
/// `PayPal-Transmission-Sig`, ...), token and key headers
/// (`X-Gitlab-Token`, `aeg-sas-key`, `X-Api-Key`).
pub const CREDENTIAL_HEADER_FRAGMENTS: [&str; 8] = [
    "auth", "cookie", "sig", "token", "secret", "hmac", "password", "key",
];

/// Credential-bearing header names no fragment covers, lower-case:
/// Trello signs in `X-Trello-Webhook`.
pub const CREDENTIAL_HEADER_NAMES: [&str; 1] = ["x-trello-webhook"];

/// Whether `name` (any case) may carry a credential or a signature.
pub fn is_credential_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    CREDENTIAL_HEADER_FRAGMENTS
        .iter()
        .any(|fragment| lower.contains(fragment))
        || CREDENTIAL_HEADER_NAMES.contains(&lower.as_str())
}

/// The CEL rule of `spec.request.storeHeaders`: what
/// [`is_credential_header`] says, for the API server.
pub fn store_headers_rule() -> String {
    format!(
        "self.all(h, !h.matches('(?i)({})') && !h.matches('(?i)^({})$'))",
        CREDENTIAL_HEADER_FRAGMENTS.join("|"),
        CREDENTIAL_HEADER_NAMES.join("|")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_signatures_are_recognised_in_any_case() {
        for name in [
            "Authorization",
            "proxy-authorization",
            "Cookie",
            "X-Hub-Signature-256",
            "Stripe-Signature",
            "PAYPAL-TRANSMISSION-SIG",
            "X-Gitlab-Token",
            "aeg-sas-key",
            "X-Shopify-Hmac-Sha256",
            "X-Trello-Webhook",
            "webhook-signature",
        ] {
            assert!(is_credential_header(name), "{name}");
        }
        for name in [
            "X-GitHub-Event",
            "X-GitHub-Delivery",
            "User-Agent",
            "X-Request-Id",
        ] {
            assert!(!is_credential_header(name), "{name}");
        }
    }

    #[test]
    fn the_cel_rule_lists_the_same_fragments() {
        let rule = store_headers_rule();
        for fragment in CREDENTIAL_HEADER_FRAGMENTS {
            assert!(rule.contains(fragment), "{rule}");
        }
        assert!(rule.contains("x-trello-webhook"), "{rule}");
    }
}
