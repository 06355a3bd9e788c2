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

/// What a failed API request of a pool's or subscription's pass was doing:
/// the words of its error message, and the failure metric's step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiAction {
    Reading,
    Listing,
    Creating,
    Patching,
    Deleting,
    WritingStatus,
}

impl ApiAction {
    /// The failure metric's `step` label.
    pub fn step(self) -> &'static str {
        match self {
            Self::Reading | Self::Listing => "observe",
            Self::Creating | Self::Patching => "apply",
            Self::Deleting => "prune",
            Self::WritingStatus => "write_status",
        }
    }
}

impl std::fmt::Display for ApiAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Reading => "reading",
            Self::Listing => "listing",
            Self::Creating => "creating",
            Self::Patching => "patching",
            Self::Deleting => "deleting",
            Self::WritingStatus => "writing the status of",
        })
    }
}

/// A failed API request of a pool's or subscription's pass.
#[derive(Debug, thiserror::Error)]
#[error("{action} {kind} {namespace}/{name}: {source}")]
pub struct ApiError {
    /// What was being done.
    pub action: ApiAction,
    /// The object's kind.
    pub kind: &'static str,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The API error.
    pub source: kube::Error,
}

/// An API error of `action` on `kind` `namespace/name`, for `map_err`.
pub(super) fn api_error(
    action: ApiAction,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> ApiError {
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    move |source| ApiError {
        action,
        kind,
        namespace,
        name,
        source,
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
        assert_eq!(ApiAction::WritingStatus.step(), "write_status");
        assert_eq!(ApiAction::Deleting.step(), "prune");
        assert_eq!(ApiAction::Reading.step(), "observe");
        assert_eq!(ApiAction::Listing.step(), "observe");
        assert_eq!(ApiAction::Patching.step(), "apply");
        let failed = api_error(
            ApiAction::WritingStatus,
            "WebhookReceiverPool",
            "ci",
            "shared",
        )(api());
        assert!(
            failed
                .to_string()
                .starts_with("writing the status of WebhookReceiverPool ci/shared: "),
            "{failed}"
        );
    }
}
