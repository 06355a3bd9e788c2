//! The controller wiring: one controller per watched namespace for each of
//! endpoints, subscriptions and pools, the watches that start an endpoint's
//! pass (its children, the Secrets it references, its pool, the stream
//! audit and the source-range refresher), and readiness once every watch has
//! listed. The pass itself is [`super::reconcile`].

use std::sync::Arc;

use futures::StreamExt;
use hookwarden_crds::WebhookEndpoint;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::time::Duration;

use super::apply::api;
use super::certificate::certificates_served;
use super::context::{Caches, Config, Context};
use super::endpoint::reconcile;
use super::triggers::{naming, referencing};
use super::{audit, pool_controller, runner, stream, subscription, triggers, watches};
use crate::FIELD_MANAGER;
use crate::resources::pool::{Members, recorded_members};
use crate::resources::{self, MANAGED_BY_SELECTOR, Settings};

/// How often readiness checks whether the first list of WebhookEndpoints
/// has arrived.
pub(super) const READY_POLL: Duration = Duration::from_millis(500);

/// A metadata watch of the operator's children of kind `K`, cached in the
/// returned store; the stream is the controller's trigger.
pub(super) fn cached_watch<K>(
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
    let stream = reflector::reflector(
        writer,
        watcher(api, config)
            .default_backoff()
            .modify(super::triggers::without_managed_fields),
    )
    .touched_objects();
    (store, stream)
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
        let running = pool_controller::controller(
            pool_controller::Scope {
                client: client.clone(),
                namespace: scope_namespace,
                settings: config.settings.clone(),
                recorder: recorder.clone(),
                metrics: ops.metrics.clone(),
                ranges: ranges.clone(),
                secret_budget: config.pool_secret_budget,
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
pub(super) async fn listed_within<K>(store: &Store<K>) -> bool
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
pub(super) fn scopes(namespaces: &[String]) -> Vec<Option<String>> {
    if namespaces.is_empty() {
        return vec![None];
    }
    let unique: std::collections::BTreeSet<&String> = namespaces.iter().collect();
    unique.into_iter().cloned().map(Some).collect()
}

/// What the controller of one watched namespace shares with the others.
pub(super) struct Scope {
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
pub(super) fn controller(
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
    let owned = watches::owned();
    let (store, controller) =
        watches::owner_controller(&client, namespace, triggers::owner_changes);
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
    // The members each pool Secret recorded when last seen, by its name (a
    // Secret deleted and created again compares with what it held: at most
    // one entry per pool shard name ever seen, never one per incarnation).
    let recorded: std::sync::Mutex<std::collections::HashMap<String, Members>> =
        std::sync::Mutex::default();
    // Beside the children every owner has (its Deployment, NetworkPolicy
    // and Secrets, watched by `owner_controller`):
    let running = controller
        .owns(api::<Service>(&client, namespace), owned)
        // The optional children too: a deleted or edited one is repaired
        // at once, these three through watch caches the reconciler prunes
        // from. (Certificates only when cert-manager was installed at
        // start, above: a watch on a CRD that is not served would fail.)
        .owns_stream(ingress_events)
        .owns_stream(budget_events)
        .owns_stream(autoscaler_events)
        // A changed user Secret re-renders every endpoint in its namespace
        // that references it.
        .watches(
            api::<Secret>(&client, namespace),
            watcher::Config::default(),
            move |secret: Secret| referencing(&secret, &referenced.state()),
        )
        // A pool's status (its pods) and the members its last pass
        // recorded in its Secrets are the `Ready` and `ConfigApplied` of
        // the endpoints that name it: only what they read of the pool
        // starts their passes, and of a shard's recorded members only the
        // ones whose entry changed (triggers: not a pass of every member
        // per member that comes).
        .watches_stream(
            triggers::changed(
                watcher::watcher(
                    api::<hookwarden_crds::WebhookReceiverPool>(&client, namespace),
                    watcher::Config::default(),
                ),
                triggers::pool_changes,
            ),
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
                let now = recorded_members(secret.annotations());
                let mut seen = recorded
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let key = secret.name_any();
                let changed = triggers::member_changes(seen.get(&key), &now);
                seen.insert(key, now);
                let namespace = secret.namespace().unwrap_or_default();
                changed
                    .into_iter()
                    .map(|name| ObjectRef::new(&name).within(&namespace))
                    .collect::<Vec<_>>()
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
