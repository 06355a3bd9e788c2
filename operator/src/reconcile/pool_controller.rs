//! The wiring of the pool controller: what starts a pass of a pool (its
//! own changes, its children's, its members' and the Secrets they read),
//! in the same process and under the same lease as the endpoints' one.

use std::collections::BTreeSet;
use std::sync::Arc;

use hookwarden_crds::{WebhookEndpoint, WebhookReceiverPool};
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::pool::reconcile;
use super::pool_context::{PoolContext, Served};
use super::runner::{self, Failures};
use super::{api, triggers, watches};
use crate::ops::Metrics;
use crate::resources::Settings;

/// What the pool controller of one watched namespace needs.
pub(crate) struct Scope {
    pub client: Client,
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    pub settings: Settings,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub ranges: Arc<crate::ranges::SourceRanges>,
    /// How much of the pool Secret's data the members may fill.
    pub secret_budget: usize,
}

/// The controller of the pools in `scope.namespace`; it runs until
/// `shutdown` completes.
pub(crate) fn controller(
    scope: Scope,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    let Scope {
        client,
        namespace,
        settings,
        recorder,
        metrics,
        ranges,
        secret_budget,
    } = scope;
    let namespace = namespace.as_deref();
    let (store, controller) =
        watches::owner_controller(&client, namespace, triggers::owner_changes);
    let (endpoints, endpoint_events) = watches::endpoints(&client, namespace);
    let served = Served::default();
    let context = Arc::new(PoolContext {
        client: client.clone(),
        settings,
        recorder,
        metrics,
        ranges,
        endpoints: endpoints.clone(),
        served: served.clone(),
        failures: Failures::default(),
        secret_budget,
    });
    let by_secret_endpoints = endpoints.clone();
    let by_secret_pools = store.clone();
    let controller = controller
        .owns(api::<Service>(&client, namespace), watches::owned())
        .watches_stream(endpoint_events, move |endpoint: WebhookEndpoint| {
            pools_of(&endpoint, &served)
        })
        .watches(
            api::<Secret>(&client, namespace),
            watcher::Config::default(),
            move |secret: Secret| {
                reading(
                    &secret,
                    &by_secret_endpoints.state(),
                    &by_secret_pools.state(),
                )
            },
        );
    runner::run(controller, shutdown, reconcile, context)
}

/// The pools an endpoint event concerns: the one it names, and any whose
/// last pass served it (it may have left, or been deleted).
fn pools_of(endpoint: &WebhookEndpoint, served: &Served) -> Vec<ObjectRef<WebhookReceiverPool>> {
    let namespace = endpoint.namespace().unwrap_or_default();
    let name = endpoint.name_any();
    let mut pools: Vec<ObjectRef<WebhookReceiverPool>> = endpoint
        .spec
        .pool
        .iter()
        .map(|pool| ObjectRef::new(pool).within(&namespace))
        .collect();
    let served = served
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (pool, members) in served.iter() {
        if pool.namespace.as_deref() == Some(namespace.as_str())
            && members.contains(&name)
            && !pools.contains(pool)
        {
            pools.push(pool.clone());
        }
    }
    pools
}

/// The pools that read `secret`: through a member that references it (or
/// whose generated Secret it is), or as their own NATS credentials.
fn reading(
    secret: &Secret,
    endpoints: &[Arc<WebhookEndpoint>],
    pools: &[Arc<WebhookReceiverPool>],
) -> Vec<ObjectRef<WebhookReceiverPool>> {
    let namespace = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let mut names: BTreeSet<String> = super::referencing(secret, endpoints)
        .into_iter()
        .filter_map(|reference| {
            endpoints
                .iter()
                .find(|e| e.name_any() == reference.name && e.namespace() == reference.namespace)
                .and_then(|e| e.spec.pool.clone())
        })
        .collect();
    names.extend(
        pools
            .iter()
            .filter(|pool| {
                pool.namespace().as_deref() == Some(namespace.as_str())
                    && pool
                        .spec
                        .nats
                        .credentials_secret_ref
                        .as_ref()
                        .is_some_and(|r| r.name == name)
            })
            .map(|pool| pool.name_any()),
    );
    names
        .into_iter()
        .map(|pool| ObjectRef::new(&pool).within(&namespace))
        .collect()
}
