//! Verifying that a delivery really comes from the provider.
//!
//! A [`Verifier`] sees exactly what arrived on the wire — the request headers
//! and the raw, unparsed body bytes — because every provider signs the bytes
//! it sent, and any re-serialisation (JSON parsing, charset decoding) would
//! break the signature. It is a pure function of its input and the secrets it
//! holds, so it is unit-tested without any I/O.
//!
//! A rejection carries a stable, machine-readable reason code
//! ([`Rejection::code`]): it is what the HTTP response and the audit log
//! report, so dashboards and alerts can rely on it across releases.

mod github;

pub use github::GithubVerifier;

use axum::http::HeaderMap;
use hookwarden_crds::Provider;

use crate::secrets::Secret;

/// What a successful verification learned about the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The provider's event type (e.g. GitHub's `push`), if it sent one.
    pub event: Option<String>,
    /// The provider's unique id of this delivery, if it sent one. Redeliveries
    /// of the same event keep it, which is what makes de-duplication work.
    pub delivery_id: Option<String>,
    /// Which of the configured secrets matched (its index in `secretRefs`),
    /// so operators can tell when a rotated-out secret is no longer used.
    pub secret_index: usize,
}

/// Why a delivery was refused. Each variant has a stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The signature header is absent.
    #[error("signature_missing")]
    SignatureMissing,
    /// The signature header is present but cannot be a valid signature
    /// (repeated, wrong scheme prefix, not hex, wrong length).
    #[error("signature_malformed")]
    SignatureMalformed,
    /// The signature is well-formed but no configured secret produces it.
    #[error("signature_mismatch")]
    SignatureMismatch,
}

impl Rejection {
    /// The stable, machine-readable reason code.
    pub fn code(self) -> &'static str {
        match self {
            Self::SignatureMissing => "signature_missing",
            Self::SignatureMalformed => "signature_malformed",
            Self::SignatureMismatch => "signature_mismatch",
        }
    }
}

/// Checks one delivery against a provider's signature scheme.
pub trait Verifier: Send + Sync + std::fmt::Debug {
    /// The provider preset's name as written in the manifest (e.g. `github`).
    fn provider(&self) -> &'static str;

    /// Verifies a delivery from its headers and raw body bytes.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection>;
}

/// Why no verifier could be built for an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    /// The manifest names a provider this receiver cannot verify yet.
    #[error("provider {0:?} is not supported by this receiver yet")]
    UnsupportedProvider(Provider),
    /// Without a secret nothing could ever be verified; refusing to start is
    /// better than rejecting every delivery.
    #[error("the endpoint lists no secretRefs; at least one secret is required")]
    NoSecrets,
}

/// The verifier for an endpoint's provider preset.
pub fn for_provider(
    provider: Provider,
    secrets: Vec<Secret>,
) -> Result<Box<dyn Verifier>, VerifierError> {
    match provider {
        Provider::Github => Ok(Box::new(GithubVerifier::new(secrets)?)),
        other => Err(VerifierError::UnsupportedProvider(other)),
    }
}

/// The value of a header that must occur at most once.
///
/// `Ok(None)` when absent, `Err(())` when repeated or not visible ASCII: an
/// attacker who adds a second copy of a header must not be able to choose
/// which one is used.
pub(crate) fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    first.to_str().map(Some).map_err(|_| ())
}

/// An informational header (event type, delivery id): used only if it occurs
/// exactly once, is visible ASCII, non-empty and at most 256 bytes. These
/// values end up in NATS headers and subjects, so anything odd is dropped
/// rather than passed on.
pub(crate) fn info_header(headers: &HeaderMap, name: &str) -> Option<String> {
    single_header(headers, name)
        .ok()
        .flatten()
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_owned)
}
