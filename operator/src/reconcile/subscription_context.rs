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

use super::error::ApiError;
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
    /// Reading, listing or changing an object failed.
    #[error(transparent)]
    Api(#[from] ApiError),
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
            Self::Api(failed) => failed.action.step(),
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
