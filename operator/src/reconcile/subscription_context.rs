//! What every pass of a `WebhookSubscription` shares: the controller's
//! context, the errors a pass can fail with, and how an API error becomes
//! one. Its own module, so the pass ([`super::subscription`]) and the
//! children's steps ([`super::subscription_children`]) both use it without
//! importing each other.

use std::sync::Arc;
use std::time::Duration;

use hookwarden_crds::WebhookSubscription;
use kube::Client;
use kube::runtime::events::Recorder;

use super::runner::{Failures, Retried};
use super::{ApplyError, secrets, stream};
use crate::ops::Metrics;
use crate::resources::{BuildError, Settings};

/// Why a pass failed; retried with a backoff.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// Reading a referenced Secret failed.
    #[error(transparent)]
    Resolve(#[from] secrets::ResolveError),
    /// Applying a child failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Reading or changing an object failed.
    #[error("{action} {kind} {namespace}/{name}: {source}")]
    Api {
        /// What was being done.
        action: &'static str,
        /// The object's kind.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// The generated signing Secret could not be built (no uid).
    #[error("building the generated signing Secret: {0}")]
    BuildSigning(BuildError),
}

impl SubscriptionError {
    /// The step that failed, for the failure metric's `step` label.
    pub fn step(&self) -> &'static str {
        match self {
            Self::Resolve(_) => "resolve_secrets",
            Self::Apply(_) => "apply",
            Self::Api { action, .. } => super::error::api_step(action),
            Self::BuildSigning(_) => "generate_secret",
        }
    }
}

/// What every pass of one controller shares.
pub(super) struct Context {
    pub(super) client: Client,
    pub(super) settings: Settings,
    pub(super) recorder: Recorder,
    pub(super) metrics: Arc<Metrics>,
    pub(super) nats: Arc<stream::Connections>,
    /// Consecutive failed passes per subscription, for
    /// [`backoff`](super::runner::backoff).
    pub(super) failures: Failures<WebhookSubscription>,
    /// How often a settled subscription is passed again.
    pub(super) refresh: Duration,
}

impl Retried<WebhookSubscription> for Context {
    fn failures(&self) -> &Failures<WebhookSubscription> {
        &self.failures
    }
}

/// An API error of `action` on `kind` `namespace/name` as a pass error.
pub(super) fn api_error(
    action: &'static str,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> SubscriptionError {
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    move |source| SubscriptionError::Api {
        action,
        kind,
        namespace,
        name,
        source,
    }
}
