//! The controller: each `WebhookEndpoint` is validated, its referenced
//! Secrets are resolved, its children are built ([`crate::resources`]) and
//! server-side applied, and its status is written. An endpoint served by a
//! `WebhookReceiverPool` has no receivers of its own: [`pool`] renders it
//! into its pool's configuration, and its own pass keeps the stream, the
//! Ingress and the status ([`pool::reconcile_member`]).
//!
//! Every step has its own error type, so a failure says which step failed;
//! a problem the user must fix becomes a condition (and waits), a transient
//! one is retried with a delay.

// Before the modules: `macro_rules!` is visible only below its definition.
/// A named step of a reconcile pass: a span exported with traces (a child
/// of the pass's `hookwarden.reconcile`), never in the log lines; a
/// disabled callsite when traces are off.
macro_rules! step {
    ($name:literal) => {
        tracing::info_span!(target: hookwarden_receiver::telemetry::TARGET, $name)
    };
}

pub mod audit;
pub mod consumer;
pub mod pool;
mod runner;
pub mod secrets;
pub mod status;
pub mod stream;
pub mod subscription;
pub mod subscription_status;
pub mod triggers;
pub mod validate;

pub use subscription::DEFAULT_SUBSCRIPTION_STATUS_INTERVAL;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hookwarden_crds::WebhookEndpoint;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::FIELD_MANAGER;
use crate::resources::{self, BuildError, MANAGED_BY_SELECTOR, Settings, child_name};
use secrets::ResolveError;
use status::{CertificateState, Exposure, ReceiverState, SpecState};
use validate::ValidateError;

/// How often an endpoint with a cert-manager Certificate looks again when
/// Certificates are not watched (cert-manager's CRD was not served when the
/// operator started), to repair it, to follow the issuance and to notice
/// cert-manager installed later. Any other ready endpoint waits for a
/// change: its children are watched, and the stream audit ([`audit`])
/// checks its stream.
const UNSETTLED_RETRY: Duration = Duration::from_secs(300);

/// How often each ready endpoint's stream is checked by default.
pub const DEFAULT_STREAM_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// How long an endpoint with a missing Secret waits before it looks again.
/// Creating the Secret triggers a pass at once (Secrets are watched), so this
/// only bounds how stale the condition can get: no hot loop.
const MISSING_SECRET_RETRY: Duration = Duration::from_secs(120);
/// The delay before the first retry of a failed pass; it doubles with each
/// further failure of the same endpoint, up to [`MAX_ERROR_RETRY`].
const ERROR_RETRY: Duration = Duration::from_secs(5);
/// The longest delay between retries: an API server outage is not hammered,
/// and recovery is noticed within minutes.
const MAX_ERROR_RETRY: Duration = Duration::from_secs(300);

/// How soon an endpoint whose stream is not ready looks again (NATS may be
/// restarting); a fixed delay, not an error backoff: nothing failed in the
/// API.
const STREAM_RETRY: Duration = Duration::from_secs(30);

/// How soon an endpoint whose published source ranges were never fetched
/// looks again (the refresher also retries the list and reconciles it).
const SOURCE_RANGES_RETRY: Duration = Duration::from_secs(60);

/// How often readiness checks whether the first list of WebhookEndpoints
/// has arrived.
const READY_POLL: Duration = Duration::from_millis(500);

/// The retry delay after `failures` consecutive failed passes (1 or more).
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    ERROR_RETRY
        .saturating_mul(1 << doublings)
        .min(MAX_ERROR_RETRY)
}

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
}

/// Shared state of every reconcile pass.
struct Context {
    client: Client,
    settings: Settings,
    /// Consecutive failed passes per endpoint, for [`backoff`].
    failures: runner::Failures<WebhookEndpoint>,
    recorder: Recorder,
    /// Where every finished pass is counted and timed.
    metrics: Arc<crate::ops::Metrics>,
    /// NATS connections for stream management, one per server and
    /// credentials; shared by the controllers of every watched namespace.
    nats: Arc<stream::Connections>,
    /// The operator's optional children as its watches see them, so pruning
    /// an unwanted one needs no LIST.
    caches: Caches,
    /// The streams of the settled endpoints, checked without a pass.
    audit: Arc<audit::StreamAudit>,
    /// Whether Certificates are watched (cert-manager was installed when
    /// the operator started), so an endpoint with one needs no timer.
    certificates_watched: bool,
    /// The published source ranges, shared by every controller.
    ranges: Arc<crate::ranges::SourceRanges>,
}

/// Watch caches (metadata only) of the children that come and go with the
/// spec; the same watches trigger the owners' reconciles.
struct Caches {
    ingresses: Store<PartialObjectMeta<Ingress>>,
    budgets: Store<PartialObjectMeta<PodDisruptionBudget>>,
    autoscalers: Store<PartialObjectMeta<HorizontalPodAutoscaler>>,
}

/// A metadata watch of the operator's children of kind `K`, cached in the
/// returned store; the stream is the controller's trigger.
fn cached_watch<K>(
    api: Api<PartialObjectMeta<K>>,
    config: watcher::Config,
) -> (
    Store<PartialObjectMeta<K>>,
    impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream =
        reflector::reflector(writer, watcher(api, config).default_backoff()).touched_objects();
    (store, stream)
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why applying a child failed.
#[derive(Debug, thiserror::Error)]
#[error("applying {kind} {namespace}/{name}: {source}")]
pub struct ApplyError {
    kind: String,
    namespace: String,
    name: String,
    source: kube::Error,
}

/// Why the status could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing the status of WebhookEndpoint {namespace}/{name}: {source}")]
pub struct StatusError {
    namespace: String,
    name: String,
    source: kube::Error,
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

/// Runs the controller until `shutdown` completes; in-flight passes finish
/// first. Its metrics and readiness go nowhere: see [`run_with_ops`].
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    run_with_ops(client, config, crate::ops::Ops::default(), shutdown).await;
}

/// Runs the controller until `shutdown` completes, counting passes into
/// `ops.metrics` and marking `ops.readiness` as watching once the first list
/// of WebhookEndpoints has arrived (a watch that cannot list, e.g. for lack
/// of RBAC, leaves the operator unready rather than silently idle).
pub async fn run_with_ops(
    client: Client,
    config: Config,
    ops: crate::ops::Ops,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    use futures::FutureExt;
    // One stop for every controller; `Shared` of a `Send` future is `Sync`.
    let shutdown = shutdown.boxed().shared();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let nats = Arc::new(stream::Connections::new(config.nats_credentials));
    // Looked up once: a watch on a CRD that is not served would only fail.
    let watch_certificates = match certificates_served(&client).await {
        Ok(served) => served,
        Err(error) => {
            tracing::warn!(%error, "cannot tell whether cert-manager is installed; Certificates are not watched");
            false
        }
    };
    tracing::info!(
        watch_certificates,
        "cert-manager Certificates {}",
        if watch_certificates {
            "are watched"
        } else {
            "are not watched (CRD not served at start): endpoints with one look again every 5 minutes"
        }
    );
    let ranges = crate::ranges::SourceRanges::load(
        client.clone(),
        config.ranges.clone(),
        ops.metrics.clone(),
    )
    .await;
    let mut stores = Vec::new();
    let mut subscription_stores = Vec::new();
    let mut controllers: Vec<futures::future::BoxFuture<'static, ()>> = Vec::new();
    let mut fetched_senders = Vec::new();
    for scope in scopes(&config.namespaces) {
        let (fetched, ranges_fetched) = futures::channel::mpsc::unbounded();
        fetched_senders.push(fetched);
        let context = Scope {
            ranges: ranges.clone(),
            ranges_fetched,
            client: client.clone(),
            namespace: scope.clone(),
            settings: config.settings.clone(),
            recorder: recorder.clone(),
            metrics: ops.metrics.clone(),
            nats: nats.clone(),
            stream_check_interval: config.stream_check_interval,
            watch_certificates,
        };
        let scope_namespace = scope.clone();
        let (store, running) = controller(context, shutdown.clone());
        stores.push(store);
        controllers.push(running.boxed());
        // The subscriptions of the same namespaces, in the same process and
        // under the same lease.
        let (store, running) = subscription::controller(
            subscription::Scope {
                client: client.clone(),
                namespace: scope,
                settings: config.settings.clone(),
                recorder: recorder.clone(),
                metrics: ops.metrics.clone(),
                nats: nats.clone(),
                refresh: config.subscription_status_interval,
            },
            shutdown.clone(),
        );
        subscription_stores.push(store);
        controllers.push(running.boxed());
        let running = pool::controller(
            pool::Scope {
                client: client.clone(),
                namespace: scope_namespace,
                settings: config.settings.clone(),
                recorder: recorder.clone(),
                metrics: ops.metrics.clone(),
                ranges: ranges.clone(),
            },
            shutdown.clone(),
        );
        controllers.push(running.boxed());
    }
    // One refresher for every list in use; each controller reconciles the
    // endpoints of its namespace that use a list it fetched.
    let (fetched, mut fetched_rx) = futures::channel::mpsc::unbounded();
    let refreshing = tokio::spawn(ranges.clone().run(recorder.clone(), fetched));
    let fanning = tokio::spawn(async move {
        while let Some(endpoint) = fetched_rx.next().await {
            for sender in &fetched_senders {
                let _ = sender.unbounded_send(endpoint.clone());
            }
        }
    });
    ops.metrics.watch_endpoints(stores.clone());
    let readiness = ops.readiness.clone();
    let watching = tokio::spawn(async move {
        // Ready once every watch has listed. Asked afresh every half
        // second: next to the controller's own waiter on the same store, a
        // single long wait was observed never to wake with kube-runtime 5.0
        // (the controller logged "store is ready" while this task still
        // waited), leaving the operator unready.
        for listed in stores {
            if !listed_within(&listed).await {
                return;
            }
        }
        for listed in subscription_stores {
            if !listed_within(&listed).await {
                return;
            }
        }
        readiness.set_watching(true);
    });
    futures::future::join_all(controllers).await;
    refreshing.abort();
    fanning.abort();
    watching.abort();
    ops.readiness.set_watching(false);
}

/// Waits until `store` has had its first list; `false` when its writer
/// (the controller) is gone.
async fn listed_within<K>(store: &Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(READY_POLL, store.wait_until_ready()).await {
            Ok(Ok(())) => return true,
            Ok(Err(_)) => return false,
            Err(_) => {}
        }
    }
}

/// The namespaces to run a controller for: each of `namespaces`, or `None`
/// (all namespaces) when there are none.
fn scopes(namespaces: &[String]) -> Vec<Option<String>> {
    if namespaces.is_empty() {
        return vec![None];
    }
    let unique: std::collections::BTreeSet<&String> = namespaces.iter().collect();
    unique.into_iter().cloned().map(Some).collect()
}

/// What the controller of one watched namespace shares with the others.
struct Scope {
    client: Client,
    /// `None`: all namespaces.
    namespace: Option<String>,
    settings: Settings,
    recorder: Recorder,
    metrics: Arc<crate::ops::Metrics>,
    nats: Arc<stream::Connections>,
    stream_check_interval: Duration,
    /// Watch cert-manager Certificates (their CRD is served).
    watch_certificates: bool,
    ranges: Arc<crate::ranges::SourceRanges>,
    /// Endpoints whose source range list was fetched, to reconcile.
    ranges_fetched: futures::channel::mpsc::UnboundedReceiver<ObjectRef<WebhookEndpoint>>,
}

/// The controller of the endpoints in `scope.namespace` (all when `None`)
/// and its cache of them; it runs until `shutdown` completes.
fn controller(
    scope: Scope,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> (Store<WebhookEndpoint>, impl Future<Output = ()>) {
    let Scope {
        client,
        namespace,
        settings,
        recorder,
        metrics,
        nats,
        stream_check_interval,
        watch_certificates,
        ranges,
        ranges_fetched,
    } = scope;
    let namespace = namespace.as_deref();
    let endpoints: Api<WebhookEndpoint> = api(&client, namespace);
    let owned = watcher::Config::default().labels(MANAGED_BY_SELECTOR);
    let (store, writer) = reflector::store();
    let endpoint_events = watcher::watcher(endpoints, watcher::Config::default())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(triggers::endpoint_changes, PredicateConfig::default());
    let controller = Controller::for_stream(endpoint_events, store.clone());
    let audit = Arc::new(audit::StreamAudit::default());
    let (audit_passes, audited) = futures::channel::mpsc::unbounded();
    let auditing = audit::run(
        audit.clone(),
        store.clone(),
        stream_check_interval,
        metrics.clone(),
        audit_passes,
    );
    let (ingresses, ingress_events) = cached_watch(
        api::<PartialObjectMeta<Ingress>>(&client, namespace),
        owned.clone(),
    );
    let (budgets, budget_events) = cached_watch(
        api::<PartialObjectMeta<PodDisruptionBudget>>(&client, namespace),
        owned.clone(),
    );
    let (autoscalers, autoscaler_events) = cached_watch(
        api::<PartialObjectMeta<HorizontalPodAutoscaler>>(&client, namespace),
        owned.clone(),
    );
    let context = Arc::new(Context {
        recorder,
        client: client.clone(),
        settings,
        failures: runner::Failures::default(),
        metrics,
        nats,
        caches: Caches {
            ingresses,
            budgets,
            autoscalers,
        },
        audit,
        certificates_watched: watch_certificates,
        ranges,
    });
    // cert-manager's Certificates, when their CRD was served at start: an
    // issued or repaired one starts its endpoint's pass, so endpoints with
    // one need no timer either.
    let controller = if watch_certificates {
        let resource = resources::certificate_resource();
        let certificates: Api<DynamicObject> = match namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        controller.owns_stream_with(
            watcher::watcher(certificates, owned.clone()).touched_objects(),
            resource,
        )
    } else {
        controller
    };
    let referenced = store.clone();
    let naming_pool = store.clone();
    let naming_pool_secret = store.clone();
    let running = controller
        // Only what a pass reads of a Deployment's status starts one.
        .owns_stream(triggers::changed(
            watcher::watcher(api::<Deployment>(&client, namespace), owned.clone()),
            triggers::deployment_changes,
        ))
        .owns(api::<Service>(&client, namespace), owned.clone())
        // The optional children too: a deleted or edited one is repaired
        // at once. (Certificates only when cert-manager was installed at
        // start, above: a watch on a CRD that is not served would fail.)
        .owns(api::<NetworkPolicy>(&client, namespace), owned.clone())
        // These three through watch caches the reconciler prunes from.
        .owns_stream(ingress_events)
        .owns_stream(budget_events)
        .owns_stream(autoscaler_events)
        .owns(api::<Secret>(&client, namespace), owned)
        // A changed user Secret re-renders every endpoint in its namespace
        // that references it.
        .watches(
            api::<Secret>(&client, namespace),
            watcher::Config::default(),
            move |secret: Secret| referencing(&secret, &referenced.state()),
        )
        // A pool's status (its pods) and the members its last pass
        // recorded in its Secret are the `Ready` and `ConfigApplied` of
        // the endpoints that name it.
        .watches(
            api::<hookwarden_crds::WebhookReceiverPool>(&client, namespace),
            watcher::Config::default(),
            move |pool: hookwarden_crds::WebhookReceiverPool| {
                naming(&naming_pool.state(), pool.namespace(), &pool.name_any())
            },
        )
        .watches(
            api::<Secret>(&client, namespace),
            watcher::Config::default().labels(&format!(
                "{MANAGED_BY_SELECTOR},app.kubernetes.io/name=hookwarden-{}",
                resources::Component::Pool.as_str()
            )),
            move |secret: Secret| {
                let pool = secret
                    .labels()
                    .get("app.kubernetes.io/instance")
                    .cloned()
                    .unwrap_or_default();
                naming(&naming_pool_secret.state(), secret.namespace(), &pool)
            },
        )
        .reconcile_on(audited)
        .reconcile_on(ranges_fetched);
    let running = runner::run(running, shutdown, reconcile, context);
    // The audit runs as long as the controller it feeds.
    let running = async move {
        tokio::select! {
            () = running => {}
            () = auditing => {}
        }
    };
    (store, running)
}

/// The endpoints among `endpoints` that reference `secret`: those in its
/// namespace with a reference to its name, whichever key.
fn referencing(
    secret: &Secret,
    endpoints: &[Arc<WebhookEndpoint>],
) -> Vec<ObjectRef<WebhookEndpoint>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    endpoints
        .iter()
        .filter(|endpoint| {
            endpoint.namespace() == namespace
                && ((endpoint.spec.generate_secret
                    && resources::generated_secret_name(&endpoint.name_any()) == name)
                    || resources::referenced_secrets(&endpoint.spec)
                        .iter()
                        .any(|(secret, _)| *secret == name))
        })
        .map(|endpoint| ObjectRef::from_obj(&**endpoint))
        .collect()
}

/// The endpoints among `endpoints` of `namespace` whose `spec.pool` is
/// `pool`.
fn naming(
    endpoints: &[Arc<WebhookEndpoint>],
    namespace: Option<String>,
    pool: &str,
) -> Vec<ObjectRef<WebhookEndpoint>> {
    endpoints
        .iter()
        .filter(|e| e.namespace() == namespace && e.spec.pool.as_deref() == Some(pool))
        .map(|e| ObjectRef::from_obj(&**e))
        .collect()
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

impl runner::Retried<WebhookEndpoint> for Context {
    fn failures(&self) -> &runner::Failures<WebhookEndpoint> {
        &self.failures
    }
}

async fn reconcile(
    endpoint: Arc<WebhookEndpoint>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = std::time::Instant::now();
    // A pass looks at the stream itself; a settled one has the audit watch
    // it again.
    ctx.audit.forget(&ObjectRef::from_obj(&*endpoint));
    let pass = tracing::info_span!(
        target: hookwarden_receiver::telemetry::TARGET,
        "hookwarden.reconcile",
        hookwarden.kind = "WebhookEndpoint",
        k8s.namespace.name = endpoint.namespace().unwrap_or_default(),
        hookwarden.name = endpoint.name_any(),
        hookwarden.result = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let result = reconcile_once(&endpoint, &ctx)
        .instrument(pass.clone())
        .await;
    pass.record(
        "hookwarden.result",
        if result.is_ok() { "ok" } else { "error" },
    );
    if result.is_err() {
        pass.record("otel.status_code", "ERROR");
    }
    ctx.metrics.record_reconcile(
        crate::ops::ReconcileKind::Endpoint,
        match result {
            Ok(_) => crate::ops::ReconcileResult::Ok,
            Err(_) => crate::ops::ReconcileResult::Error,
        },
        started.elapsed(),
    );
    let action = result?;
    ctx.failures.succeeded(&endpoint);
    Ok(action)
}

async fn reconcile_once(
    endpoint: &WebhookEndpoint,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    // Being deleted: the garbage collector removes the children (first, with
    // foreground deletion). Applying them again would recreate what it just
    // deleted, and a foreground deletion would never finish.
    if endpoint.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if let Err(invalid) =
        step!("hookwarden.reconcile.validate").in_scope(|| validate::validate(endpoint))
    {
        return invalid_spec(endpoint, ctx, &invalid).await;
    }
    let namespace = endpoint.namespace().unwrap_or_default();
    let name = endpoint.name_any();
    let span = tracing::info_span!("reconcile", %namespace, %name);
    reconcile_valid(endpoint, ctx, &namespace, &name)
        .instrument(span)
        .await
}

async fn reconcile_valid(
    endpoint: &WebhookEndpoint,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Action, ReconcileError> {
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret_name = if endpoint.spec.generate_secret {
        Some(ensure_generated_secret(endpoint, &secret_api, namespace, name).await?)
    } else {
        None
    };
    if let Some(pool) = &endpoint.spec.pool {
        return pool::reconcile_member(endpoint, ctx, namespace, name, pool, secret_name).await;
    }
    // The generated Secret is referenced like any other from here on.
    let effective = resources::effective_endpoint(endpoint, &ctx.settings);
    // The published lists of allowedSources, fetched once for every
    // endpoint that names them (validate checked the entries).
    let source_ranges = match ctx
        .ranges
        .for_endpoint(endpoint)
        .instrument(step!("hookwarden.reconcile.source_ranges"))
        .await
    {
        Ok(ranges) => ranges,
        Err(error) => {
            let spec = SpecState::Invalid {
                message: format!("spec.allowedSources: {error}"),
            };
            write_status(ctx, endpoint, &spec, None, None).await?;
            return Ok(Action::await_change());
        }
    };
    let ranges_condition = source_ranges.as_ref().map(status::observe_source_ranges);
    let ranges: Vec<String> = match &source_ranges {
        None => Vec::new(),
        Some(crate::ranges::EndpointRanges::Known { ranges, .. }) => ranges.clone(),
        Some(crate::ranges::EndpointRanges::Unavailable { message }) => {
            // Nothing is rendered without the ranges (that would let any
            // source in); running receivers keep their configuration.
            tracing::info!(%message, "source ranges unavailable");
            let receiver = observe_receiver(ctx, endpoint, namespace, name).await?;
            let spec = SpecState::SourceRangesUnavailable {
                message: message.clone(),
            };
            write_status_with(ctx, endpoint, &spec, receiver, None, ranges_condition, None).await?;
            return Ok(Action::requeue(SOURCE_RANGES_RETRY));
        }
    };
    let resolved = match secrets::resolve(&secret_api, namespace, &effective.spec)
        .instrument(step!("hookwarden.reconcile.secrets"))
        .await
    {
        Ok(resolved) => resolved,
        Err(error) => {
            let Some(reason) = error.reason() else {
                return Err(error.into());
            };
            // The running receivers keep their last good configuration: the
            // Deployment is left alone, only the status says what is missing.
            tracing::info!(%error, "referenced Secrets unresolved");
            let receiver = observe_receiver(ctx, endpoint, namespace, name).await?;
            let spec = SpecState::SecretsUnresolved {
                reason,
                message: error.to_string(),
            };
            write_status(ctx, endpoint, &spec, receiver, None).await?;
            return Ok(Action::requeue(MISSING_SECRET_RETRY));
        }
    };
    let keys = resources::referenced_secrets(&effective.spec).len();
    let built = step!("hookwarden.reconcile.build")
        .in_scope(|| resources::build_with_ranges(&effective, &resolved, &ctx.settings, &ranges));
    let children = match built {
        Ok(children) => children,
        Err(error) => return build_failed(endpoint, ctx, namespace, name, &error).await,
    };
    let owned = Owned {
        ctx,
        endpoint,
        namespace,
        name,
    };
    let deployment = async {
        // The Secret first: pods rolled by a new config hash must find it.
        apply(&ctx.client, namespace, &children.secret).await?;
        apply(&ctx.client, namespace, &children.service).await?;
        // The policy before the pods it protects.
        apply(&ctx.client, namespace, &children.network_policy).await?;
        let deployment = apply(&ctx.client, namespace, &children.deployment).await?;
        let caches = &ctx.caches;
        owned
            .apply_or_prune(children.pod_disruption_budget.as_ref(), &caches.budgets)
            .await?;
        owned
            .apply_or_prune(children.autoscaler.as_ref(), &caches.autoscalers)
            .await?;
        owned
            .apply_or_prune(children.ingress.as_ref(), &caches.ingresses)
            .await?;
        Ok::<_, ReconcileError>(deployment)
    }
    .instrument(step!("hookwarden.reconcile.apply"))
    .await?;
    let certificate = reconcile_certificate(&owned, children.certificate.as_ref())
        .instrument(step!("hookwarden.reconcile.certificate"))
        .await?;
    let previous = endpoint.status.as_ref().and_then(|status| {
        status
            .conditions
            .iter()
            .find(|condition| condition.type_ == status::STREAM_READY)
    });
    let (stream, managed) =
        stream::reconcile(&ctx.nats, endpoint, &resolved, &ctx.settings, previous)
            .instrument(step!("hookwarden.reconcile.stream"))
            .await;
    // Settled: every child is watched, so the pass waits for a change and
    // the audit checks the stream. Without a Certificate watch (cert-manager
    // was not installed at start) an endpoint with one looks again every
    // UNSETTLED_RETRY, to repair it and to see cert-manager's progress.
    let next = match managed {
        None => Action::requeue(STREAM_RETRY),
        Some(managed)
            if certificate.is_none()
                || (ctx.certificates_watched
                    && matches!(certificate, Some(CertificateState::Requested { .. }))) =>
        {
            ctx.audit.watch(ObjectRef::from_obj(endpoint), managed);
            Action::await_change()
        }
        Some(_) => Action::requeue(UNSETTLED_RETRY),
    };
    let exposure = Exposure {
        // Of the effective spec: the default issuer makes it https.
        url: effective
            .spec
            .ingress
            .as_ref()
            .map(|ingress| resources::public_url(ingress, effective.spec.tls.as_ref())),
        secret_name,
        certificate,
        stream: Some(stream),
    };
    let receiver = receiver_state(endpoint, &deployment);
    write_status_with(
        ctx,
        endpoint,
        &SpecState::Resolved { keys },
        Some(receiver),
        Some(&exposure),
        ranges_condition,
        None,
    )
    .instrument(step!("hookwarden.reconcile.status"))
    .await?;
    Ok(next)
}

/// Creates the generated verification Secret unless it exists, and returns
/// its name. Created, never applied: an existing value is never replaced,
/// since the provider has been given it.
async fn ensure_generated_secret(
    endpoint: &WebhookEndpoint,
    secrets: &Api<Secret>,
    namespace: &str,
    name: &str,
) -> Result<String, ReconcileError> {
    let secret_name = resources::generated_secret_name(name);
    let failed = |source| ReconcileError::GenerateSecret {
        namespace: namespace.to_owned(),
        name: resources::generated_secret_name(name),
        source,
    };
    if secrets
        .get_metadata_opt(&secret_name)
        .await
        .map_err(failed)?
        .is_some()
    {
        return Ok(secret_name);
    }
    let owner = resources::Owner::of(endpoint).map_err(ReconcileError::BuildGenerated)?;
    let secret = resources::generated_secret(&owner, &resources::random_secret())
        .map_err(ReconcileError::BuildGenerated)?;
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(secret = %secret_name, "generated the verification secret");
            Ok(secret_name)
        }
        // Another pass (or operator replica) created it first: keep theirs.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(secret_name),
        Err(source) => Err(failed(source)),
    }
}

/// Applies or deletes the children of one endpoint that come and go with
/// its spec.
struct Owned<'a> {
    ctx: &'a Context,
    endpoint: &'a WebhookEndpoint,
    namespace: &'a str,
    name: &'a str,
}

impl Owned<'_> {
    /// The label selector of this endpoint's managed children.
    fn selector(&self) -> String {
        format!(
            "{MANAGED_BY_SELECTOR},app.kubernetes.io/instance={}",
            self.name
        )
    }

    /// Applies `wanted`, or deletes every child of kind `K` of this
    /// endpoint when it is `None`, as found in the watch cache `cache` (a
    /// child created since is announced by the same watch, and its event
    /// brings the next pass).
    async fn apply_or_prune<K>(
        &self,
        wanted: Option<&K>,
        cache: &Store<PartialObjectMeta<K>>,
    ) -> Result<(), ReconcileError>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Serialize
            + DeserializeOwned
            + Clone
            + std::fmt::Debug,
    {
        match wanted {
            Some(object) => {
                apply(&self.ctx.client, self.namespace, object).await?;
                Ok(())
            }
            None => {
                // The watch selects the managed-by label; the instance label
                // and namespace narrow it to this endpoint.
                let children = cache.state().into_iter().filter(|child| {
                    child.namespace().as_deref() == Some(self.namespace)
                        && child
                            .labels()
                            .get("app.kubernetes.io/instance")
                            .map(String::as_str)
                            == Some(self.name)
                });
                let api: Api<K> = Api::namespaced(self.ctx.client.clone(), self.namespace);
                self.delete_controlled(&api, &(), children).await
            }
        }
    }

    /// Deletes every receiver child of this endpoint (it moved into a
    /// pool): the Deployment, Service, rendered Secret and NetworkPolicy
    /// by name, the optional ones through their watch caches. Its Ingress,
    /// Certificate and generated Secret stay.
    async fn prune_dedicated(&self) -> Result<(), ReconcileError> {
        let child = child_name(self.name);
        self.prune_named(
            &Api::<Deployment>::namespaced(self.ctx.client.clone(), self.namespace),
            &child,
        )
        .await?;
        self.prune_named(
            &Api::<Service>::namespaced(self.ctx.client.clone(), self.namespace),
            &child,
        )
        .await?;
        self.prune_named(
            &Api::<Secret>::namespaced(self.ctx.client.clone(), self.namespace),
            &child,
        )
        .await?;
        self.prune_named(
            &Api::<NetworkPolicy>::namespaced(self.ctx.client.clone(), self.namespace),
            &child,
        )
        .await?;
        let caches = &self.ctx.caches;
        self.apply_or_prune(None::<&PodDisruptionBudget>, &caches.budgets)
            .await?;
        self.apply_or_prune(None::<&HorizontalPodAutoscaler>, &caches.autoscalers)
            .await
    }

    /// Deletes the child `name` in `api` when this endpoint controls it.
    async fn prune_named<K>(&self, api: &Api<K>, name: &str) -> Result<(), ReconcileError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let child = api
            .get_metadata_opt(name)
            .await
            .map_err(|source| self.prune_failed::<K>(&(), source))?;
        self.delete_controlled(api, &(), child.map(Arc::new)).await
    }

    /// Deletes the children in `api` that carry this endpoint's labels and
    /// are controlled by it, listing them first (for kinds not watched).
    async fn prune<K>(&self, api: &Api<K>, dt: &K::DynamicType) -> Result<(), ReconcileError>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let children = api
            .list_metadata(&ListParams::default().labels(&self.selector()))
            .await
            .map_err(|source| self.prune_failed::<K>(dt, source))?;
        self.delete_controlled(api, dt, children.into_iter().map(Arc::new))
            .await
    }

    fn prune_failed<K: Resource>(
        &self,
        dt: &K::DynamicType,
        source: kube::Error,
    ) -> ReconcileError {
        ReconcileError::Prune {
            kind: K::kind(dt).into_owned(),
            namespace: self.namespace.to_owned(),
            name: self.name.to_owned(),
            source,
        }
    }

    /// Deletes those of `children` controlled by this endpoint (a label
    /// alone could be copied by anyone); already gone is fine.
    async fn delete_controlled<K, C>(
        &self,
        api: &Api<K>,
        dt: &K::DynamicType,
        children: impl IntoIterator<Item = C>,
    ) -> Result<(), ReconcileError>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
        C: std::ops::Deref,
        C::Target: ResourceExt,
    {
        let uid = self.endpoint.uid();
        for child in children {
            let controlled = child
                .owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref());
            if !controlled {
                continue;
            }
            let child_name = child.name_any();
            match api.delete(&child_name, &DeleteParams::background()).await {
                Ok(_) => {
                    tracing::info!(kind = %K::kind(dt), child = %child_name, "deleted a child the spec no longer wants");
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => return Err(self.prune_failed::<K>(dt, source)),
            }
        }
        Ok(())
    }
}

/// Applies the cert-manager Certificate when wanted and cert-manager is
/// installed, and reports it; deletes a Certificate no longer wanted.
async fn reconcile_certificate(
    owned: &Owned<'_>,
    wanted: Option<&DynamicObject>,
) -> Result<Option<CertificateState>, ReconcileError> {
    // An endpoint that neither wants a Certificate nor reported one last
    // pass has none to delete: no API request for it (most endpoints).
    let reported = owned
        .endpoint
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .any(|c| c.type_ == status::CERTIFICATE_READY);
    if wanted.is_none() && !reported {
        return Ok(None);
    }
    let installed = certificates_served(&owned.ctx.client).await?;
    let resource = resources::certificate_resource();
    let api: Api<DynamicObject> =
        Api::namespaced_with(owned.ctx.client.clone(), owned.namespace, &resource);
    let secret = resources::issued_secret_name(owned.name);
    let Some(certificate) = wanted else {
        if installed {
            owned.prune(&api, &resource).await?;
        }
        return Ok(None);
    };
    if !installed {
        tracing::info!("a certificate issuer is set but cert-manager is not installed");
        return Ok(Some(CertificateState::CertManagerNotInstalled { secret }));
    }
    let applied = api
        .patch(
            &certificate.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(certificate),
        )
        .await
        .map_err(|source| ApplyError {
            kind: "Certificate".to_owned(),
            namespace: owned.namespace.to_owned(),
            name: certificate.name_any(),
            source,
        })?;
    let ready = applied
        .data
        .pointer("/status/conditions")
        .and_then(serde_json::Value::as_array)
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c.get("type").and_then(serde_json::Value::as_str) == Some("Ready"))
        });
    Ok(Some(CertificateState::Requested {
        secret,
        ready: ready
            .and_then(|c| c.get("status").and_then(serde_json::Value::as_str))
            .map(|s| s == "True"),
        message: ready
            .and_then(|c| c.get("message").and_then(serde_json::Value::as_str))
            .map(str::to_owned),
    }))
}

/// Whether cert-manager's Certificate CRD is installed and established.
async fn certificates_served(client: &Client) -> Result<bool, ReconcileError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds
        .get_opt(resources::CERTIFICATE_CRD)
        .await
        .map_err(|source| ReconcileError::Discover {
            crd: resources::CERTIFICATE_CRD,
            source,
        })?;
    Ok(crd.is_some_and(|crd| {
        crd.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    }))
}

/// A spec the operator cannot act on waits for the next change of it.
async fn invalid_spec(
    endpoint: &WebhookEndpoint,
    ctx: &Context,
    invalid: &ValidateError,
) -> Result<Action, ReconcileError> {
    let spec = SpecState::Invalid {
        message: invalid.to_string(),
    };
    write_status(ctx, endpoint, &spec, None, None).await?;
    Ok(Action::await_change())
}

/// A spec that validates but cannot be rendered (e.g. a too long reference)
/// is reported like an invalid one. Receivers of an earlier, valid spec keep
/// running untouched, and `ReceiverAvailable` still reports them.
async fn build_failed(
    endpoint: &WebhookEndpoint,
    ctx: &Context,
    namespace: &str,
    name: &str,
    error: &BuildError,
) -> Result<Action, ReconcileError> {
    tracing::info!(%error, "cannot render the receiver configuration");
    let receiver = observe_receiver(ctx, endpoint, namespace, name).await?;
    let spec = SpecState::Invalid {
        message: error.to_string(),
    };
    write_status(ctx, endpoint, &spec, receiver, None).await?;
    Ok(Action::await_change())
}

/// Server-side applies `object` as [`FIELD_MANAGER`], forcing ownership of
/// the fields it sets: the operator is the one writer of its children.
async fn apply<K>(client: &Client, namespace: &str, object: &K) -> Result<K, ApplyError>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let name = object.name_any();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| ApplyError {
        kind: K::kind(&()).into_owned(),
        namespace: namespace.to_owned(),
        name,
        source,
    })
}

/// The receiver Deployment's state, if it exists.
async fn observe_receiver(
    ctx: &Context,
    endpoint: &WebhookEndpoint,
    namespace: &str,
    name: &str,
) -> Result<Option<ReceiverState>, ReconcileError> {
    let child = child_name(name);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let deployment =
        deployments
            .get_opt(&child)
            .await
            .map_err(|source| ReconcileError::Observe {
                namespace: namespace.to_owned(),
                name: child,
                source,
            })?;
    Ok(deployment.map(|d| receiver_state(endpoint, &d)))
}

fn receiver_state(endpoint: &WebhookEndpoint, deployment: &Deployment) -> ReceiverState {
    let status = deployment.status.as_ref();
    ReceiverState {
        desired: resources::desired_replicas(endpoint),
        available: status.and_then(|s| s.available_replicas).unwrap_or(0),
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
    }
}

/// Writes the status by server-side apply on the status subresource, and
/// records an Event for every condition whose status changed.
async fn write_status(
    ctx: &Context,
    endpoint: &WebhookEndpoint,
    spec: &SpecState,
    receiver: Option<ReceiverState>,
    exposure: Option<&Exposure>,
) -> Result<(), StatusError> {
    write_status_with(ctx, endpoint, spec, receiver, exposure, None, None).await
}

/// As [`write_status`], with `SourceRangesCurrent` when the endpoint has
/// `allowedSources`, and `ConfigApplied` (which `Ready` waits for) when a
/// pool serves it.
async fn write_status_with(
    ctx: &Context,
    endpoint: &WebhookEndpoint,
    spec: &SpecState,
    receiver: Option<ReceiverState>,
    exposure: Option<&Exposure>,
    source_ranges: Option<status::Observed>,
    config_applied: Option<status::Observed>,
) -> Result<(), StatusError> {
    let namespace = endpoint.namespace().unwrap_or_default();
    let name = endpoint.name_any();
    let previous = endpoint.status.as_ref();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut status = status::status_with(
        previous,
        spec,
        receiver,
        exposure,
        endpoint.metadata.generation,
        &now,
    );
    if let Some(observed) = source_ranges {
        let before = previous
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        status.conditions.extend(status::merge(
            before,
            &[observed],
            endpoint.metadata.generation,
            &now,
        ));
    }
    if let Some(config_applied) = config_applied {
        let before = previous
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        status::gate_ready(
            &mut status.conditions,
            before,
            &config_applied,
            endpoint.metadata.generation,
            &now,
        );
    }
    if previous != Some(&status) {
        let patch = serde_json::json!({
            "apiVersion": WebhookEndpoint::api_version(&()),
            "kind": WebhookEndpoint::kind(&()),
            "status": status,
        });
        let api: Api<WebhookEndpoint> = Api::namespaced(ctx.client.clone(), &namespace);
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| StatusError {
            namespace: namespace.clone(),
            name: name.clone(),
            source,
        })?;
    }
    let before = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    for changed in status::transitions(before, &status.conditions) {
        record(ctx, endpoint, changed).await;
    }
    Ok(())
}

/// Records a condition transition as an Event. Events are best effort: a
/// failure is logged, never fails the pass.
async fn record(ctx: &Context, endpoint: &WebhookEndpoint, condition: &Condition) {
    let event = Event {
        type_: if condition.status == "False" {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: condition.reason.clone(),
        note: Some(format!(
            "{} is {}: {}",
            condition.type_, condition.status, condition.message
        )),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx
        .recorder
        .publish(&event, &endpoint.object_ref(&()))
        .await
    {
        tracing::warn!(%error, reason = %condition.reason, "could not record an Event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::endpoint;

    fn secret(namespace: &str, name: &str) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace},
        }))
        .expect("valid Secret")
    }

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        let delays: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(u32::MAX), MAX_ERROR_RETRY);
        assert_eq!(backoff(0), ERROR_RETRY);
    }

    #[test]
    fn a_secret_maps_to_the_endpoints_of_its_namespace_that_reference_it() {
        let github = Arc::new(endpoint("github"));
        let shop = Arc::new(endpoint("generic-hmac"));
        let mut elsewhere = endpoint("github");
        elsewhere.metadata.namespace = Some("other".to_owned());
        let endpoints = [github, shop, Arc::new(elsewhere)];

        let names = |secret: &Secret| -> Vec<(String, String)> {
            referencing(secret, &endpoints)
                .into_iter()
                .map(|r| (r.namespace.unwrap_or_default(), r.name))
                .collect()
        };
        // Referenced by the second entry of spec.secretRefs.
        assert_eq!(
            names(&secret("ci", "github-webhook-next")),
            [("ci".to_owned(), "github".to_owned())]
        );
        // Referenced only from verification.hmac.secretRefs.
        assert_eq!(
            names(&secret("payments", "shop-hmac")),
            [("payments".to_owned(), "shop".to_owned())]
        );
        // Same name, another namespace; and an unrelated Secret.
        assert!(names(&secret("payments", "github-webhook")).is_empty());
        assert!(names(&secret("ci", "unrelated")).is_empty());
    }

    #[test]
    fn the_generated_secret_maps_to_its_endpoint() {
        let endpoints = [Arc::new(endpoint("exposed"))];
        let refs = referencing(&secret("payments", "shop-webhook-secret"), &endpoints);
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].name, "shop");
        assert!(referencing(&secret("ci", "shop-webhook-secret"), &endpoints).is_empty());
        let mut without = endpoint("exposed");
        without.spec.generate_secret = false;
        let endpoints = [Arc::new(without)];
        assert!(referencing(&secret("payments", "shop-webhook-secret"), &endpoints).is_empty());
    }
}
