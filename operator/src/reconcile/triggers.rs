//! Which watch events of a child start a pass of its owner, and which
//! endpoints a change of a Secret or a pool they name starts.
//!
//! A receiver Deployment's status is rewritten by the controller-manager
//! many times while its ReplicaSet is created and its pods come and go
//! (observed generation, conditions and their timestamps), and each write
//! is a watch event. A pass only reads the ready and available replica
//! counts, so only a change of what [`deployment_changes`] hashes starts one.
//! Unlike a predicate over decoded objects, a deletion always passes: the
//! deleted child must be recreated, whatever its last state.
//!
//! A pool's status and its configuration Secrets are rewritten by the pool's
//! pass whenever any member comes, goes or changes. Starting a pass of every
//! member for each of those writes made a pool's passes quadratic while its
//! members arrived (28 passes and 291 API requests per endpoint for 1,000
//! members in `bench/operator-scale.sh`): only what a member reads of its
//! pool starts its pass ([`pool_changes`]), and of a Secret's recorded
//! members only those whose own entry changed ([`member_changes`]).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use hookwarden_crds::{WebhookEndpoint, WebhookReceiverPool};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::resources;
use crate::resources::pool::Members;

/// Drops `metadata.managedFields` from an object before it is cached:
/// no pass reads it (the operator writes with server-side apply, which the
/// API server resolves), and it is about as large as the rest of the
/// object, in every cache of every watched endpoint, pool, subscription and
/// child (the operator's RSS grew with it: 655 MiB at 10,000 pool members).
pub(super) fn without_managed_fields<K: Resource>(object: &mut K) {
    object.managed_fields_mut().clear();
}

/// What starts a pass of an owner, an endpoint, a pool or a subscription (a
/// predicate for its watch): a new generation (spec), labels, annotations or
/// a deletion timestamp; not its status, so the pass's own status write does
/// not start another pass.
pub fn owner_changes<K: Resource>(owner: &K) -> Option<u64> {
    let meta = owner.meta();
    Some(hash_of((
        meta.generation,
        &meta.labels,
        &meta.annotations,
        meta.deletion_timestamp.is_some(),
    )))
}

/// What a pass of the owner depends on in a receiver Deployment: its spec
/// (through `metadata.generation`), the metadata the operator sets, being
/// deleted, and the replica counts in `ReceiverAvailable`.
pub fn deployment_changes(deployment: &Deployment) -> u64 {
    let meta = &deployment.metadata;
    let status = deployment.status.as_ref();
    hash_of((
        meta.generation,
        &meta.labels,
        &meta.annotations,
        meta.owner_references.as_ref().map(|owners| {
            owners
                .iter()
                .map(|owner| (&owner.uid, owner.controller))
                .collect::<Vec<_>>()
        }),
        meta.deletion_timestamp.is_some(),
        status.and_then(|s| s.ready_replicas),
        status.and_then(|s| s.available_replicas),
    ))
}

/// What a member's pass reads of its pool object: its spec (through
/// `metadata.generation`: replicas, shards, NATS), being deleted, and the
/// pods' readiness the pool reports; not its member counts or refused list,
/// which the pool rewrites whenever any member changes.
pub fn pool_changes(pool: &WebhookReceiverPool) -> u64 {
    let status = pool.status.as_ref();
    hash_of((
        pool.metadata.generation,
        pool.metadata.deletion_timestamp.is_some(),
        status.and_then(|s| s.replicas),
        status.and_then(|s| s.ready_replicas),
        status.map(|s| {
            s.conditions
                .iter()
                .map(|c| (&c.type_, &c.status))
                .collect::<Vec<_>>()
        }),
    ))
}

/// The members whose entry differs between what a pool Secret recorded
/// `before` (`None`: never seen, so every member) and `now`: added,
/// removed or changed. Only their `ConfigApplied` can have changed.
pub fn member_changes(before: Option<&Members>, now: &Members) -> Vec<String> {
    let Some(before) = before else {
        return now.keys().cloned().collect();
    };
    let changed = now
        .iter()
        .filter(|(name, state)| before.get(*name) != Some(state))
        .map(|(name, _)| name.clone());
    let removed = before
        .keys()
        .filter(|name| !now.contains_key(*name))
        .cloned();
    changed.chain(removed).collect()
}

pub(super) fn hash_of(value: impl Hash) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// The objects of `events` whose `changes` differ from the last seen for the
/// same object (by UID), every listed object after a (re)start of the watch,
/// and every deleted one.
pub fn changed<K, S>(
    events: S,
    changes: fn(&K) -> u64,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let seen: HashMap<String, u64> = HashMap::new();
    events
        .scan(seen, move |seen, event| {
            let passed: Vec<Result<K, watcher::Error>> = match event {
                Err(error) => vec![Err(error)],
                Ok(watcher::Event::Init | watcher::Event::InitDone) => Vec::new(),
                Ok(watcher::Event::InitApply(object)) => {
                    seen.insert(uid(&object), changes(&object));
                    vec![Ok(object)]
                }
                Ok(watcher::Event::Apply(object)) => {
                    let hash = changes(&object);
                    match seen.insert(uid(&object), hash) {
                        Some(before) if before == hash => Vec::new(),
                        _ => vec![Ok(object)],
                    }
                }
                Ok(watcher::Event::Delete(object)) => {
                    seen.remove(&uid(&object));
                    vec![Ok(object)]
                }
            };
            futures::future::ready(Some(futures::stream::iter(passed)))
        })
        .flatten()
}

/// The object's UID, or its namespace and name when it has none (never from
/// the API server).
fn uid<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    meta.uid.clone().unwrap_or_else(|| {
        format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        )
    })
}

/// The endpoints among `endpoints` that reference `secret`: those in its
/// namespace with a reference to its name, whichever key.
pub(super) fn referencing(
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
pub(super) fn naming(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::endpoint;
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment(generation: i64, ready: i32, observed: i64) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("shop-receiver".to_owned()),
                namespace: Some("web".to_owned()),
                uid: Some("u-1".to_owned()),
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            status: Some(DeploymentStatus {
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                observed_generation: Some(observed),
                ..DeploymentStatus::default()
            }),
            ..Deployment::default()
        }
    }

    fn passed(events: Vec<watcher::Event<Deployment>>) -> Vec<(i64, i32)> {
        let stream = changed(
            futures::stream::iter(events.into_iter().map(Ok)),
            deployment_changes,
        );
        futures::executor::block_on(stream.collect::<Vec<_>>())
            .into_iter()
            .map(|d| {
                let d = d.expect("no error");
                let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(-1);
                (d.metadata.generation.unwrap_or(-1), ready)
            })
            .collect()
    }

    #[test]
    fn status_bookkeeping_starts_no_pass_but_replica_counts_and_specs_do() {
        use watcher::Event::{Apply, Init, InitApply, InitDone};
        assert_eq!(
            passed(vec![
                Init,
                InitApply(deployment(1, 0, 0)),
                InitDone,
                // The controller-manager observes generation 1: no pass.
                Apply(deployment(1, 0, 1)),
                // A pod became ready: a pass.
                Apply(deployment(1, 1, 1)),
                Apply(deployment(1, 1, 1)),
                // Someone edited the spec: a pass, to put it back.
                Apply(deployment(2, 1, 1)),
            ]),
            [(1, 0), (1, 1), (2, 1)]
        );
    }

    #[test]
    fn an_endpoints_status_is_not_a_change_but_its_spec_and_metadata_are() {
        let mut endpoint: WebhookEndpoint = hookwarden_crds::from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nmetadata: {name: shop, generation: 1}\nspec: {provider: github, secretRefs: [{name: gh, key: secret}]}\n",
        )
        .expect("endpoint")
        .into();
        let before = owner_changes(&endpoint);
        endpoint.status = Some(Default::default());
        assert_eq!(owner_changes(&endpoint), before, "status only");
        endpoint.metadata.annotations = Some([("touch".to_owned(), "1".to_owned())].into());
        let touched = owner_changes(&endpoint);
        assert_ne!(touched, before);
        endpoint.metadata.generation = Some(2);
        assert_ne!(owner_changes(&endpoint), touched);
    }

    #[test]
    fn a_deletion_always_passes_and_a_relist_passes_everything() {
        use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
        assert_eq!(
            passed(vec![
                Apply(deployment(1, 1, 1)),
                // Deleted in the state last seen: still a pass, to recreate it.
                Delete(deployment(1, 1, 1)),
                // Recreated with the same hashable state but after a delete.
                Apply(deployment(1, 1, 1)),
                Init,
                InitApply(deployment(1, 1, 1)),
                InitDone,
            ]),
            [(1, 1), (1, 1), (1, 1), (1, 1)]
        );
    }

    fn secret(namespace: &str, name: &str) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace},
        }))
        .expect("valid Secret")
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

    #[test]
    fn only_members_whose_recorded_entry_changed_start_a_pass() {
        use crate::resources::pool::MemberState;
        let applied = |generation| MemberState {
            generation: Some(generation),
            applied: true,
            served: true,
            ..MemberState::default()
        };
        let before: Members = [("a", applied(1)), ("b", applied(1)), ("c", applied(1))]
            .into_iter()
            .map(|(name, state)| (name.to_owned(), state))
            .collect();
        assert_eq!(
            member_changes(None, &before),
            ["a", "b", "c"],
            "never seen: every member"
        );
        assert!(
            member_changes(Some(&before), &before).is_empty(),
            "a rewrite for another member's sake starts no pass"
        );
        let mut now = before.clone();
        now.insert("d".to_owned(), applied(1)); // joined
        now.insert("b".to_owned(), applied(2)); // its new generation applied
        now.remove("c"); // left
        let mut changed = member_changes(Some(&before), &now);
        changed.sort();
        assert_eq!(changed, ["b", "c", "d"]);
    }

    #[test]
    fn a_pools_member_counts_start_no_member_pass_its_readiness_does() {
        let mut pool: WebhookReceiverPool = serde_json::from_value(serde_json::json!({
            "apiVersion": "hookwarden.dev/v1alpha1",
            "kind": "WebhookReceiverPool",
            "metadata": {"name": "shared", "namespace": "web", "generation": 1},
            "spec": {},
            "status": {"replicas": 2, "readyReplicas": 1, "endpoints": 10},
        }))
        .expect("pool");
        let first = pool_changes(&pool);
        if let Some(status) = pool.status.as_mut() {
            status.endpoints = Some(11);
        }
        assert_eq!(pool_changes(&pool), first, "another member served");
        if let Some(status) = pool.status.as_mut() {
            status.ready_replicas = Some(2);
        }
        assert_ne!(pool_changes(&pool), first, "its pods became ready");
        let ready = pool_changes(&pool);
        pool.metadata.generation = Some(2);
        assert_ne!(pool_changes(&pool), ready, "its spec changed");
    }
}
