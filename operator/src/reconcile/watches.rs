//! The watches each owner's controller (endpoints, subscriptions, pools)
//! starts from, defined once: its own objects, cached, of which only what
//! its pass reads starts one; the children every owner has; and, for the
//! owners that read endpoints, the endpoints cached. Each controller adds
//! the children and watches that are its own ([`super::controller`],
//! [`super::subscription`], [`super::pool_controller`]); [`super::runner`]
//! runs them all the same way.

use std::fmt::Debug;

use futures::Stream;
use hookwarden_crds::{WebhookEndpoint, WebhookReceiverPool};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::apply::api;
use super::triggers;
use crate::resources::MANAGED_BY_SELECTOR;

/// The watch of the operator's own children: those labelled as managed by
/// it, so a user's objects of the same kinds never start a pass.
pub(super) fn owned() -> watcher::Config {
    watcher::Config::default().labels(MANAGED_BY_SELECTOR)
}

/// A controller of the `K`s in `namespace` (all when `None`) and its cache
/// of them. A pass of one starts when what `changes` hashes of it changes
/// (not its status, which every pass writes), and when one of the children
/// every owner has changes: its Deployment (only what a pass reads of it,
/// [`triggers::deployment_changes`]), its NetworkPolicy or its Secrets.
pub(super) fn owner_controller<K>(
    client: &Client,
    namespace: Option<&str>,
    changes: fn(&K) -> Option<u64>,
) -> (Store<K>, Controller<K>)
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let events = watcher::watcher(api::<K>(client, namespace), watcher::Config::default())
        .modify(triggers::without_managed_fields)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(changes, PredicateConfig::default());
    let controller = Controller::for_stream(events, store.clone())
        .owns_stream(triggers::changed(
            watcher::watcher(api::<Deployment>(client, namespace), owned()),
            triggers::deployment_changes,
        ))
        .owns(api::<NetworkPolicy>(client, namespace), owned())
        .owns(api::<Secret>(client, namespace), owned());
    (store, controller)
}

/// The `K`s of `namespace`, cached, and the events of those whose
/// `changes` changed (or that were deleted): what an owner reads of
/// objects it does not own, and what of them starts its passes.
fn cached_changes<K>(
    client: &Client,
    namespace: Option<&str>,
    changes: fn(&K) -> u64,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let events = triggers::changed(
        watcher::watcher(api::<K>(client, namespace), watcher::Config::default())
            .modify(triggers::without_managed_fields)
            .reflect(writer),
        changes,
    );
    (store, events)
}

/// The endpoints of `namespace`, cached, and the events of those whose
/// [`triggers::owner_changes`] changed (or that were deleted): what
/// starts a pass of the owners that read an endpoint (its pool, the
/// subscriptions that name it).
pub(super) fn endpoints(
    client: &Client,
    namespace: Option<&str>,
) -> (
    Store<WebhookEndpoint>,
    impl Stream<Item = Result<WebhookEndpoint, watcher::Error>> + Send + 'static,
) {
    cached_changes(client, namespace, endpoint_changes)
}

/// [`triggers::owner_changes`] as the hash [`triggers::changed`] takes.
fn endpoint_changes(endpoint: &WebhookEndpoint) -> u64 {
    triggers::owner_changes(endpoint).unwrap_or_default()
}

/// The pools of `namespace`, cached, and the events of those whose NATS
/// (`spec.nats`: its URL and login) changed, or that were deleted: where
/// and how their members' streams are read, so what starts a pass of the
/// subscriptions that read a member.
pub(super) fn pools(
    client: &Client,
    namespace: Option<&str>,
) -> (
    Store<WebhookReceiverPool>,
    impl Stream<Item = Result<WebhookReceiverPool, watcher::Error>> + Send + 'static,
) {
    cached_changes(client, namespace, pool_nats_changes)
}

/// A pool's NATS URL and login reference, as the hash [`triggers::changed`]
/// takes.
fn pool_nats_changes(pool: &WebhookReceiverPool) -> u64 {
    let nats = &pool.spec.nats;
    triggers::hash_of((
        &nats.url,
        nats.credentials_secret_ref
            .as_ref()
            .map(|login| (&login.name, &login.key)),
    ))
}
