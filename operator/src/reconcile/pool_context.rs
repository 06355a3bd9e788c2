//! What every pass of a `WebhookReceiverPool` shares: the controller's
//! context, the errors a pass can fail with, and how an API error becomes
//! one. Its own module, so the pass ([`super::pool`]), its status and
//! Events ([`super::pool_status`]) and the controller's wiring
//! ([`super::pool_controller`]) use it without importing each other.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use hookwarden_crds::{WebhookEndpoint, WebhookReceiverPool};
use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};

use super::error::ApiError;
use super::runner::{Failures, Retried};
use super::{ApplyError, secrets};
use crate::ops::Metrics;
use crate::resources::{BuildError, Settings};

/// Why a pool's pass failed; retried with a backoff.
#[derive(Debug, thiserror::Error)]
pub(super) enum PoolError {
    /// Reading a member's Secrets failed (not: one is missing).
    #[error(transparent)]
    Resolve(#[from] secrets::ResolveError),
    /// Applying a child failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A child could not be built (a pool without uid).
    #[error("building the children of the pool: {0}")]
    Build(#[from] BuildError),
    /// Reading, listing or changing an object failed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl PoolError {
    /// The step that failed, for the failure metric's `step` label.
    pub(super) fn step(&self) -> &'static str {
        match self {
            Self::Resolve(_) => "resolve_secrets",
            Self::Apply(_) => "apply",
            Self::Build(_) => "build",
            Self::Api(failed) => failed.action.step(),
        }
    }
}

/// The member names each pool served after its last pass, so that an
/// endpoint that left a pool (or was deleted) starts a pass of the pool
/// it left.
pub(super) type Served = Arc<Mutex<HashMap<ObjectRef<WebhookReceiverPool>, BTreeSet<String>>>>;

/// What every pass of one pool controller shares.
pub(super) struct PoolContext {
    pub(super) client: Client,
    pub(super) settings: Settings,
    /// Publishes the Events of member changes on the pool.
    pub(super) recorder: Recorder,
    pub(super) metrics: Arc<Metrics>,
    pub(super) ranges: Arc<crate::ranges::SourceRanges>,
    /// The endpoints of the watched namespaces.
    pub(super) endpoints: Store<WebhookEndpoint>,
    pub(super) served: Served,
    /// Consecutive failed passes per pool, for [`backoff`](super::runner::backoff).
    pub(super) failures: Failures<WebhookReceiverPool>,
    /// How much of the pool Secret's data the members may fill
    /// ([`crate::resources::pool::POOL_SECRET_BUDGET`] but in tests).
    pub(super) secret_budget: usize,
}

impl Retried<WebhookReceiverPool> for PoolContext {
    fn failures(&self) -> &Failures<WebhookReceiverPool> {
        &self.failures
    }
}
