//! Provider request headers stored with an event
//! (`spec.request.storeHeaders`): which may be, how they are stored, and how
//! the forwarder finds them again.
//!
//! Each listed header the request carries is stored as the NATS header
//! `Hookwarden-Header-<name>`, the name lower-cased. The prefix keeps the
//! provider's headers apart from the receiver's own (`Hookwarden-Event`,
//! `Nats-Msg-Id`, `traceparent`), so a provider can never set one of those,
//! and a consumer sees at a glance which headers the provider sent. A
//! subscription's `passHeaders` names the provider's header (`X-GitHub-Event`)
//! and the forwarder sends it under that name ([`original_name`]).
//!
//! Credential-bearing names are refused ([`hookwarden_crds::is_credential_header`],
//! the same rule the CRD's CEL applies), and so are the headers this
//! endpoint reads a secret or signature from under a configured name.
//! Values are never logged.

use hookwarden_crds::{EndpointManifest, is_credential_header};
use http::HeaderName;

/// The NATS header prefix of a stored provider header.
pub const STORED_HEADER_PREFIX: &str = "Hookwarden-Header-";

/// Most names in `spec.request.storeHeaders` (the CRD's bound).
pub const MAX_STORE_HEADERS: usize = 16;

/// The longest name in `spec.request.storeHeaders` (the CRD's bound).
pub const MAX_STORE_HEADER_NAME: usize = 64;

/// The longest value stored; a longer one is not stored at all (a cut
/// value would be a different value).
pub const MAX_STORED_HEADER_VALUE: usize = 1024;

/// Most values of one header stored (repeated headers).
pub const MAX_STORED_HEADER_VALUES: usize = 8;

/// Why `spec.request.storeHeaders` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreHeaderError {
    /// Too many names.
    #[error("spec.request.storeHeaders lists {0} headers; at most {MAX_STORE_HEADERS}")]
    TooMany(usize),
    /// Not an HTTP header name, or too long.
    #[error(
        "spec.request.storeHeaders entry {0:?} is not a header name (at most {MAX_STORE_HEADER_NAME} characters)"
    )]
    NotAName(String),
    /// A credential or signature header.
    #[error(
        "spec.request.storeHeaders entry {0:?} may carry a credential or signature (Authorization, Cookie, a signature, token, secret or key header); it is never stored"
    )]
    Credential(String),
    /// A header this endpoint reads a secret or signature from.
    #[error(
        "spec.request.storeHeaders entry {name:?} is the header {field} reads a secret or signature from; it is never stored"
    )]
    EndpointSecret {
        /// The entry.
        name: String,
        /// The field naming it.
        field: &'static str,
    },
}

/// The checked, lower-cased `spec.request.storeHeaders` of `endpoint`,
/// without repeats.
pub fn allowlist(endpoint: &EndpointManifest) -> Result<Vec<HeaderName>, StoreHeaderError> {
    let spec = &endpoint.spec;
    let names = spec
        .request
        .as_ref()
        .map(|r| r.store_headers.as_slice())
        .unwrap_or_default();
    if names.len() > MAX_STORE_HEADERS {
        return Err(StoreHeaderError::TooMany(names.len()));
    }
    let verification = spec.verification.as_ref();
    let secret_headers: [(&'static str, Option<&str>); 5] = [
        (
            "spec.okta.authHeader",
            spec.okta.as_ref().and_then(|o| o.auth_header.as_deref()),
        ),
        (
            "spec.azure.secretHeader",
            spec.azure.as_ref().and_then(|a| a.secret_header.as_deref()),
        ),
        (
            "spec.verification.token.header",
            verification.and_then(|v| v.token.as_ref().map(|t| t.header.as_str())),
        ),
        (
            "spec.verification.hmac.signatureHeader",
            verification.and_then(|v| v.hmac.as_ref().map(|h| h.signature_header.as_str())),
        ),
        (
            "spec.verification.jwt.header",
            verification.and_then(|v| v.jwt.as_ref().and_then(|j| j.header.as_deref())),
        ),
    ];
    let mut allowed: Vec<HeaderName> = Vec::with_capacity(names.len());
    for name in names {
        let header = HeaderName::from_bytes(name.as_bytes())
            .ok()
            .filter(|_| name.len() <= MAX_STORE_HEADER_NAME)
            .ok_or_else(|| StoreHeaderError::NotAName(name.clone()))?;
        if is_credential_header(name) {
            return Err(StoreHeaderError::Credential(name.clone()));
        }
        if let Some((field, _)) = secret_headers
            .iter()
            .find(|(_, h)| h.is_some_and(|h| h.eq_ignore_ascii_case(name)))
        {
            return Err(StoreHeaderError::EndpointSecret {
                name: name.clone(),
                field,
            });
        }
        if !allowed.contains(&header) {
            allowed.push(header);
        }
    }
    Ok(allowed)
}

/// The NATS headers to store of a request's `headers`: each allowed one it
/// carries, as `Hookwarden-Header-<name>`, every value (up to
/// [`MAX_STORED_HEADER_VALUES`]) that is visible ASCII and at most
/// [`MAX_STORED_HEADER_VALUE`] bytes.
pub fn pick(allowlist: &[HeaderName], headers: &http::HeaderMap) -> Vec<(String, String)> {
    let mut stored = Vec::new();
    for name in allowlist {
        let values = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| {
                v.len() <= MAX_STORED_HEADER_VALUE && !v.bytes().any(|b| b.is_ascii_control())
            })
            .take(MAX_STORED_HEADER_VALUES);
        for value in values {
            stored.push((stored_name(name.as_str()), value.to_owned()));
        }
    }
    stored
}

/// `Hookwarden-Header-<name>`, the name lower-cased.
pub fn stored_name(name: &str) -> String {
    format!("{STORED_HEADER_PREFIX}{}", name.to_ascii_lowercase())
}

/// The provider's header name of a stored one (`Hookwarden-Header-x-github-event`
/// → `x-github-event`), any case of the prefix; `None` for other headers.
pub fn original_name(stored: &str) -> Option<&str> {
    let prefix = stored.get(..STORED_HEADER_PREFIX.len())?;
    prefix
        .eq_ignore_ascii_case(STORED_HEADER_PREFIX)
        .then(|| &stored[STORED_HEADER_PREFIX.len()..])
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(spec: &str) -> EndpointManifest {
        hookwarden_crds::from_yaml(&format!(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
             metadata: {{name: gh, namespace: ci}}\nspec:\n{spec}"
        ))
        .expect("valid endpoint")
    }

    #[test]
    fn listed_headers_are_stored_under_the_prefix_bounded() {
        let allowed = allowlist(&endpoint(
            "  provider: github\n  request: {storeHeaders: [X-GitHub-Event, x-github-event, X-Many]}\n",
        ))
        .expect("allowed");
        assert_eq!(allowed.len(), 2, "repeats collapse");
        let mut headers = http::HeaderMap::new();
        headers.insert("x-github-event", "push".parse().expect("value"));
        headers.insert("x-hub-signature-256", "sha256=00".parse().expect("value"));
        headers.insert("x-other", "no".parse().expect("value"));
        for _ in 0..MAX_STORED_HEADER_VALUES + 2 {
            headers.append("x-many", "v".parse().expect("value"));
        }
        let long = "x".repeat(MAX_STORED_HEADER_VALUE + 1);
        headers.append("x-many", long.parse().expect("value"));
        let stored = pick(&allowed, &headers);
        assert_eq!(
            stored[0],
            ("Hookwarden-Header-x-github-event".into(), "push".into())
        );
        assert_eq!(stored.len(), 1 + MAX_STORED_HEADER_VALUES);
        assert!(
            stored
                .iter()
                .all(|(_, v)| v.len() <= MAX_STORED_HEADER_VALUE)
        );
        assert_eq!(
            original_name("hookwarden-header-x-github-event"),
            Some("x-github-event")
        );
        assert_eq!(original_name("Hookwarden-Event"), None);
        assert_eq!(original_name("Hookwarden-Header-"), None);
    }

    /// The CRD's CEL rule, evaluated by a CEL engine (cel-rust, the
    /// filter's) for each name alone, agrees with the Rust check. The API
    /// server's own run of it is operator/tests/crd.rs.
    #[test]
    fn the_crds_cel_rule_agrees_with_the_rust_check() {
        let rule = cel::Program::compile(&hookwarden_crds::store_headers_rule()).expect("compiles");
        for name in [
            "X-GitHub-Event",
            "X-GitHub-Hook-Id",
            "User-Agent",
            "Authorization",
            "proxy-authorization",
            "Cookie",
            "X-Hub-Signature-256",
            "PAYPAL-TRANSMISSION-SIG",
            "X-Gitlab-Token",
            "aeg-sas-key",
            "X-TRELLO-WEBHOOK",
            "X-Trello-Webhook-Id",
        ] {
            let mut context = cel::Context::default();
            context
                .add_variable("self", vec![name.to_owned()])
                .expect("variable");
            let allowed = rule.execute(&context).expect("evaluates");
            assert_eq!(
                allowed,
                cel::Value::Bool(!is_credential_header(name)),
                "{name}"
            );
        }
    }

    #[test]
    fn credentials_and_the_endpoints_own_secret_headers_are_refused() {
        for (spec, error) in [
            (
                "  provider: github\n  request: {storeHeaders: [Authorization]}\n",
                StoreHeaderError::Credential("Authorization".into()),
            ),
            (
                "  provider: github\n  request: {storeHeaders: [X-Hub-Signature-256]}\n",
                StoreHeaderError::Credential("X-Hub-Signature-256".into()),
            ),
            (
                "  provider: github\n  request: {storeHeaders: ['Bad Name']}\n",
                StoreHeaderError::NotAName("Bad Name".into()),
            ),
            (
                "  provider: okta\n  okta: {authHeader: X-Okta-Check}\n  request: {storeHeaders: [x-okta-check]}\n",
                StoreHeaderError::EndpointSecret {
                    name: "x-okta-check".into(),
                    field: "spec.okta.authHeader",
                },
            ),
            (
                "  provider: generic\n  verification: {token: {header: X-Pass}}\n  request: {storeHeaders: [X-Pass]}\n",
                StoreHeaderError::EndpointSecret {
                    name: "X-Pass".into(),
                    field: "spec.verification.token.header",
                },
            ),
        ] {
            assert_eq!(allowlist(&endpoint(spec)), Err(error), "{spec}");
        }
        let many: Vec<String> = (0..=MAX_STORE_HEADERS).map(|i| format!("X-H{i}")).collect();
        assert_eq!(
            allowlist(&endpoint(&format!(
                "  provider: github\n  request: {{storeHeaders: [{}]}}\n",
                many.join(", ")
            ))),
            Err(StoreHeaderError::TooMany(MAX_STORE_HEADERS + 1))
        );
    }
}
