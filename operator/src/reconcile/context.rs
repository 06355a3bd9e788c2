//! What every pass of the endpoint controllers shares: the operator-wide
//! [`Config`], and the [`Context`] of one watched namespace's controller.

use std::sync::Arc;
use std::time::Duration;

use hookwarden_crds::WebhookEndpoint;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use super::{audit, runner, stream};
use crate::resources::Settings;

/// How often each ready endpoint's stream is checked by default.
pub const DEFAULT_STREAM_CHECK_INTERVAL: Duration = Duration::from_secs(300);

/// What the controller needs besides the API.
#[derive(Clone, Debug)]
pub struct Config {
    /// Image, NATS URL and other operator-wide settings of the children.
    pub settings: Settings,
    /// Watch only these namespaces, one watch each; empty: all namespaces.
    pub namespaces: Vec<String>,
    /// The operator's own NATS credentials (a `.creds` file's text), for
    /// endpoints on the default NATS (`settings.nats_url`) without
    /// `spec.nats.credentialsSecretRef`.
    pub nats_credentials: Option<stream::Credentials>,
    /// How often the stream of each ready endpoint is checked for drift on
    /// NATS ([`DEFAULT_STREAM_CHECK_INTERVAL`]); the checks are spread over it.
    pub stream_check_interval: Duration,
    /// How often each subscription is passed again to refresh its lag and
    /// dead letters ([`DEFAULT_SUBSCRIPTION_STATUS_INTERVAL`]).
    pub subscription_status_interval: Duration,
    /// How the published source ranges of `allowedSources` are kept.
    pub ranges: crate::ranges::RangesConfig,
    /// How much of a pool Secret's data its members may fill
    /// ([`crate::resources::pool::POOL_SECRET_BUDGET`]; tests set less).
    pub pool_secret_budget: usize,
}

/// Shared state of every reconcile pass.
pub(super) struct Context {
    pub(super) client: Client,
    pub(super) settings: Settings,
    /// Consecutive failed passes per endpoint, for [`backoff`].
    pub(super) failures: runner::Failures<WebhookEndpoint>,
    pub(super) recorder: Recorder,
    /// Where every finished pass is counted and timed.
    pub(super) metrics: Arc<crate::ops::Metrics>,
    /// NATS connections for stream management, one per server and
    /// credentials; shared by the controllers of every watched namespace.
    pub(super) nats: Arc<stream::Connections>,
    /// The operator's optional children as its watches see them, so pruning
    /// an unwanted one needs no LIST.
    pub(super) caches: Caches,
    /// The streams of the settled endpoints, checked without a pass.
    pub(super) audit: Arc<audit::StreamAudit>,
    /// Whether Certificates are watched (cert-manager was installed when
    /// the operator started), so an endpoint with one needs no timer.
    pub(super) certificates_watched: bool,
    /// The published source ranges, shared by every controller.
    pub(super) ranges: Arc<crate::ranges::SourceRanges>,
}

/// Watch caches (metadata only) of the children that come and go with the
/// spec; the same watches trigger the owners' reconciles.
pub(super) struct Caches {
    pub(super) ingresses: Store<PartialObjectMeta<Ingress>>,
    pub(super) budgets: Store<PartialObjectMeta<PodDisruptionBudget>>,
    pub(super) autoscalers: Store<PartialObjectMeta<HorizontalPodAutoscaler>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl runner::Retried<WebhookEndpoint> for Context {
    fn failures(&self) -> &runner::Failures<WebhookEndpoint> {
        &self.failures
    }
}
