//! Why a pass of an endpoint fails, by step: each is retried with
//! [`backoff`](super::runner::backoff).

use super::secrets::ResolveError;
use crate::resources::BuildError;

/// Why applying a child failed.
#[derive(Debug, thiserror::Error)]
#[error("applying {kind} {namespace}/{name}: {source}")]
pub struct ApplyError {
    pub(super) kind: String,
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) source: kube::Error,
}

/// Why the status could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing the status of WebhookEndpoint {namespace}/{name}: {source}")]
pub struct StatusError {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) source: kube::Error,
}

/// Why a reconcile pass failed; retried with [`backoff`].
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Reading the referenced Secrets failed.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// Applying a child failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Creating the generated verification Secret failed.
    #[error("creating the generated Secret {namespace}/{name}: {source}")]
    GenerateSecret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// The generated Secret could not be built (an endpoint without uid).
    #[error("building the generated Secret: {0}")]
    BuildGenerated(BuildError),
    /// Looking for cert-manager's CRD failed (not: it is absent).
    #[error("looking for CRD {crd}: {source}")]
    Discover {
        /// The CRD's name.
        crd: &'static str,
        /// The API error.
        source: kube::Error,
    },
    /// Listing or deleting children the spec no longer wants failed.
    #[error("removing unwanted {kind} children of {namespace}/{name}: {source}")]
    Prune {
        /// The children's kind.
        kind: String,
        /// The endpoint's namespace.
        namespace: String,
        /// The endpoint's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Reading the receiver Deployment failed.
    #[error("reading Deployment {namespace}/{name}: {source}")]
    Observe {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Writing the status failed.
    #[error(transparent)]
    Status(#[from] StatusError),
}

impl ReconcileError {
    /// The step that failed, for the failure metric's `step` label.
    pub fn step(&self) -> &'static str {
        match self {
            Self::Resolve(_) => "resolve_secrets",
            Self::Apply(_) => "apply",
            Self::GenerateSecret { .. } | Self::BuildGenerated(_) => "generate_secret",
            Self::Discover { .. } => "discover",
            Self::Prune { .. } => "prune",
            Self::Observe { .. } => "observe",
            Self::Status(_) => "write_status",
        }
    }
}

/// The step of a failed API request by its action (`reading`, `deleting`,
/// `writing the status of`...), for the pool's and subscription's errors,
/// whose API failures carry the action instead of a variant each.
pub(super) fn api_step(action: &str) -> &'static str {
    match action {
        "writing the status of" => "write_status",
        "deleting" => "prune",
        "creating" | "patching" => "apply",
        _ => "observe",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("gone", "NotFound")
                .with_code(404)
                .boxed(),
        )
    }

    #[test]
    fn each_failure_names_its_step() {
        let status = ReconcileError::Status(StatusError {
            namespace: "ci".to_owned(),
            name: "shop".to_owned(),
            source: api(),
        });
        assert_eq!(status.step(), "write_status");
        let prune = ReconcileError::Prune {
            kind: "Ingress".to_owned(),
            namespace: "ci".to_owned(),
            name: "shop".to_owned(),
            source: api(),
        };
        assert_eq!(prune.step(), "prune");
        assert_eq!(api_step("writing the status of"), "write_status");
        assert_eq!(api_step("deleting"), "prune");
        assert_eq!(api_step("reading"), "observe");
        assert_eq!(api_step("patching"), "apply");
    }
}
