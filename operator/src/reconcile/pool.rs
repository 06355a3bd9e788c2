//! The controller of `WebhookReceiverPool`s, in the same process (and
//! under the same lease) as the endpoints' one, and the part of an
//! endpoint's pass that differs when `spec.pool` names a pool
//! ([`reconcile_member`]).
//!
//! A pool's pass renders its Secret from every endpoint of its namespace
//! that names it, each validated, resolved and rendered by the very
//! functions of a dedicated receiver's pass ([`validate::validate`],
//! [`secrets::resolve`], [`resources::effective_endpoint`]). A member
//! that fails keeps the entries the Secret already had for it (read once
//! per pass), or has none if it never passed; one member's mistake never
//! changes another's configuration. The pool's Deployment, Service,
//! NetworkPolicy, budget and autoscaler depend on the pool alone, so a
//! member added, changed or removed rolls nothing.
//!
//! What the pass decided about each member is recorded in the Secret's
//! annotation (each member's own pass reads it for its `ConfigApplied`
//! condition), named in the pool's `status.refused`, and its changes since
//! the last pass are Events on the pool ([`member_changes`]). The pass
//! learns what the pool refuses by deciding it itself, before the Secret
//! is written ([`render_member`]: the dedicated receiver's checks), not by
//! asking the pods' `GET /endpoints`: the operator need not reach every
//! pod (the pool's NetworkPolicy admits deliveries, not the operator), the
//! decision is the same for every replica and known before any pod loads
//! it, and a refused configuration never reaches the pods at all (they
//! keep serving the member's last accepted one). What only a pod can meet,
//! its NATS away, is the member's `StreamReady` condition.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookwarden_crds::{WebhookEndpoint, WebhookReceiverPool, WebhookReceiverPoolStatus};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::runner::{self, Failures, Retried};
use super::status::{self, Observed, ReceiverState, SpecState};
use super::{
    ApplyError, Context, Exposure, Owned, ReconcileError, api, apply, observe_receiver,
    reconcile_certificate, secrets, stream, triggers, validate, write_status, write_status_with,
};
use crate::FIELD_MANAGER;
use crate::ops::{Metrics, ReconcileKind, ReconcileResult};
use crate::resources::pool::{
    MemberChange, MemberState, Members, Route, added_size, data_size, describe_route,
    desired_pool_replicas, member_changes, member_entries, pool_child_name, pool_children,
    pool_nats_url, pool_secret, pooled_endpoint, previous_entries, recorded_members,
    refused_members, route_of,
};
use crate::resources::{self, BuildError, MANAGED_BY_SELECTOR, Owner, Settings};

/// How often a settled pool renders its members again: the published
/// source ranges of a member's `allowedSources` change without any watch
/// event of the pool's, and reach its Secret on the next pass.
const POOL_REFRESH: Duration = Duration::from_secs(300);

/// The longest Service name (an RFC 1035 label).
const MAX_SERVICE_NAME: usize = 63;

/// The condition of a pool: its requested pods are available.
pub const AVAILABLE: &str = "Available";

/// Why a pool's pass failed; retried with a backoff.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Reading a member's Secrets failed (not: one is missing).
    #[error(transparent)]
    Resolve(#[from] secrets::ResolveError),
    /// Applying a child failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A child could not be built (a pool without uid).
    #[error("building the children of the pool: {0}")]
    Build(#[from] BuildError),
    /// Reading, deleting or writing an object failed.
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
}

fn api_error(
    action: &'static str,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> PoolError {
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    move |source| PoolError::Api {
        action,
        kind,
        namespace,
        name,
        source,
    }
}

/// The member names each pool served after its last pass, so that an
/// endpoint that left a pool (or was deleted) starts a pass of the pool
/// it left.
type Served = Arc<Mutex<HashMap<ObjectRef<WebhookReceiverPool>, BTreeSet<String>>>>;

/// What every pass of one pool controller shares.
struct PoolContext {
    client: Client,
    settings: Settings,
    /// Publishes the Events of member changes on the pool.
    recorder: Recorder,
    metrics: Arc<Metrics>,
    ranges: Arc<crate::ranges::SourceRanges>,
    /// The endpoints of the watched namespaces.
    endpoints: Store<WebhookEndpoint>,
    served: Served,
    /// Consecutive failed passes per pool, for [`backoff`](super::runner::backoff).
    failures: Failures<WebhookReceiverPool>,
    /// How much of the pool Secret's data the members may fill
    /// ([`crate::resources::pool::POOL_SECRET_BUDGET`] but in tests).
    secret_budget: usize,
}

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

/// What starts a pass of a pool: a new generation, labels, annotations or
/// a deletion timestamp; not its status, which every pass writes.
fn pool_changes(pool: &WebhookReceiverPool) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = &pool.metadata;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        meta.generation,
        &meta.labels,
        &meta.annotations,
        meta.deletion_timestamp.is_some(),
    )
        .hash(&mut hasher);
    Some(hasher.finish())
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
    let owned = watcher::Config::default().labels(MANAGED_BY_SELECTOR);
    let (store, writer) = reflector::store();
    let events = watcher::watcher(
        api::<WebhookReceiverPool>(&client, namespace),
        watcher::Config::default(),
    )
    .reflect(writer)
    .applied_objects()
    .predicate_filter(pool_changes, PredicateConfig::default());
    let (endpoints, endpoint_writer) = reflector::store();
    let endpoint_events = triggers::changed(
        watcher::watcher(
            api::<WebhookEndpoint>(&client, namespace),
            watcher::Config::default(),
        )
        .reflect(endpoint_writer),
        super::subscription::endpoint_changes,
    );
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
    let controller = Controller::for_stream(events, store)
        .owns_stream(triggers::changed(
            watcher::watcher(api::<Deployment>(&client, namespace), owned.clone()),
            triggers::deployment_changes,
        ))
        .owns(api::<Service>(&client, namespace), owned.clone())
        .owns(api::<NetworkPolicy>(&client, namespace), owned.clone())
        .owns(api::<Secret>(&client, namespace), owned)
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

impl Retried<WebhookReceiverPool> for PoolContext {
    fn failures(&self) -> &Failures<WebhookReceiverPool> {
        &self.failures
    }
}

async fn reconcile(
    pool: Arc<WebhookReceiverPool>,
    ctx: Arc<PoolContext>,
) -> Result<Action, PoolError> {
    let started = std::time::Instant::now();
    let namespace = pool.namespace().unwrap_or_default();
    let name = pool.name_any();
    let span = tracing::info_span!("reconcile_pool", %namespace, %name);
    let result = reconcile_once(&pool, &ctx, &namespace, &name)
        .instrument(span)
        .await;
    ctx.metrics.record_reconcile(
        ReconcileKind::Pool,
        if result.is_ok() {
            ReconcileResult::Ok
        } else {
            ReconcileResult::Error
        },
        started.elapsed(),
    );
    if result.is_ok() {
        ctx.failures.succeeded(&pool);
    }
    result
}

/// Why a member's new configuration is not served: a condition reason
/// and a message, never a secret value.
struct Refusal {
    reason: &'static str,
    message: String,
}

async fn reconcile_once(
    pool: &WebhookReceiverPool,
    ctx: &PoolContext,
    namespace: &str,
    name: &str,
) -> Result<Action, PoolError> {
    // The garbage collector removes the children of a deleted pool.
    if pool.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let child = pool_child_name(name);
    let label = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if child.len() > MAX_SERVICE_NAME || !label {
        let message = format!(
            "the name {name:?} cannot name the pool's Service {child:?}: it must start with a letter, contain only lowercase letters, digits and '-', and be at most {} characters",
            MAX_SERVICE_NAME - "-pool".len()
        );
        write_pool_status(ctx, pool, None, None, Some(message)).await?;
        return Ok(Action::await_change());
    }
    let owner = Owner::of_pool(pool)?;
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    // Read once: the entries each refused member keeps, and the last
    // pass's decisions (what this pass's Events are changes of).
    let (previous, decided_before): (BTreeMap<String, ByteString>, Members) = secret_api
        .get_opt(&child)
        .await
        .map_err(api_error("reading", "Secret", namespace, &child))?
        .map(|secret| {
            let members = recorded_members(secret.annotations());
            (secret.data.unwrap_or_default(), members)
        })
        .unwrap_or_default();
    // Oldest first: of two members claiming one route, the later one is
    // refused, whatever their names.
    let mut members: Vec<Arc<WebhookEndpoint>> = ctx
        .endpoints
        .state()
        .into_iter()
        .filter(|endpoint| {
            endpoint.namespace().as_deref() == Some(namespace)
                && endpoint.spec.pool.as_deref() == Some(name)
                && endpoint.metadata.deletion_timestamp.is_none()
        })
        .collect();
    members.sort_by(|a, b| {
        (a.metadata.creation_timestamp.as_ref(), a.name_any())
            .cmp(&(b.metadata.creation_timestamp.as_ref(), b.name_any()))
    });
    let mut data: BTreeMap<String, ByteString> = BTreeMap::new();
    let mut states = Members::new();
    let mut routes: BTreeMap<Route, String> = BTreeMap::new();
    let mut fetch_keys = false;
    for member in &members {
        let member_name = member.name_any();
        let rendered = match render_member(ctx, pool, member, namespace).await? {
            Ok((endpoint, entries)) => match routes.get(&route_of(&endpoint)) {
                Some(holder) => Err(route_conflict(&route_of(&endpoint), holder, name)),
                None if data_size(&data) + added_size(&data, &entries) > ctx.secret_budget => {
                    Err(pool_config_full(name, ctx.secret_budget))
                }
                None => Ok((endpoint, entries)),
            },
            Err(refusal) => Err(refusal),
        };
        let state = match rendered {
            Ok((endpoint, entries)) => {
                routes.insert(route_of(&endpoint), member_name.clone());
                fetch_keys |= resources::fetches_keys(&endpoint.spec);
                // A value another member keeps from before yields to the
                // current one.
                data.extend(entries);
                MemberState {
                    generation: member.metadata.generation,
                    applied: true,
                    served: true,
                    ..MemberState::default()
                }
            }
            Err(refusal) => {
                tracing::info!(member = %member_name, reason = refusal.reason, message = %refusal.message, "a member's configuration is refused");
                let kept =
                    previous_entries(&previous, &member_name).filter(|(endpoint, entries)| {
                        !routes.contains_key(&route_of(endpoint))
                            && data_size(&data) + added_size(&data, entries) <= ctx.secret_budget
                    });
                let served = kept.is_some();
                if let Some((endpoint, entries)) = kept {
                    routes.insert(route_of(&endpoint), member_name.clone());
                    fetch_keys |= resources::fetches_keys(&endpoint.spec);
                    for (key, value) in entries {
                        data.entry(key).or_insert(value);
                    }
                }
                MemberState {
                    generation: member.metadata.generation,
                    applied: false,
                    served,
                    reason: refusal.reason.to_owned(),
                    message: refusal.message,
                }
            }
        };
        states.insert(member_name, state);
    }
    let secret = pool_secret(&owner, data, &states, pool_nats_url(pool, &ctx.settings))?;
    apply(&ctx.client, namespace, &secret).await?;
    let children = pool_children(pool, &owner, &ctx.settings, fetch_keys)?;
    apply(&ctx.client, namespace, &children.service).await?;
    apply(&ctx.client, namespace, &children.network_policy).await?;
    let deployment = apply(&ctx.client, namespace, &children.deployment).await?;
    apply_or_delete(
        ctx,
        pool,
        namespace,
        &child,
        children.pod_disruption_budget.as_ref(),
    )
    .await?;
    apply_or_delete(ctx, pool, namespace, &child, children.autoscaler.as_ref()).await?;
    let served: BTreeSet<String> = states
        .iter()
        .filter(|(_, state)| state.served)
        .map(|(member, _)| member.clone())
        .collect();
    let count = i32::try_from(served.len()).unwrap_or(i32::MAX);
    ctx.served
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(ObjectRef::from_obj(pool), served);
    // After the Secret is applied: a pass that fails before records its
    // Events again on its retry, not twice.
    for change in member_changes(&decided_before, &states) {
        record_member_change(ctx, pool, change).await;
    }
    let members = PoolMembers {
        served: count,
        refused: refused_members(&states),
    };
    write_pool_status(ctx, pool, Some(&deployment), Some(members), None).await?;
    Ok(Action::requeue(POOL_REFRESH))
}

/// Records a change of `pool`'s members as an Event on the pool. Events
/// are best effort: a failure is logged, never fails the pass.
async fn record_member_change(ctx: &PoolContext, pool: &WebhookReceiverPool, change: MemberChange) {
    let (type_, reason, note, member) = match change {
        MemberChange::Joined(member) => (
            EventType::Normal,
            "MemberJoined".to_owned(),
            format!("the pool serves endpoint {member:?}"),
            member,
        ),
        MemberChange::Left(member) => (
            EventType::Normal,
            "MemberLeft".to_owned(),
            format!("the pool no longer serves endpoint {member:?}"),
            member,
        ),
        MemberChange::Refused {
            name,
            reason,
            message,
        } => (
            EventType::Warning,
            known_reason(&reason).to_owned(),
            format!("the configuration of endpoint {name:?} is refused: {message}"),
            name,
        ),
    };
    // The member as the Event's related object: the recorder folds Events
    // of one object, reason and related object into one series (keeping the
    // first note), so without it the second member to join would only
    // count up the first one's Event.
    let related = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(WebhookEndpoint::api_version(&()).into_owned()),
        kind: Some(WebhookEndpoint::kind(&()).into_owned()),
        namespace: pool.namespace(),
        name: Some(member),
        ..Default::default()
    };
    let event = Event {
        type_,
        reason,
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: Some(related),
    };
    if let Err(error) = ctx.recorder.publish(&event, &pool.object_ref(&())).await {
        tracing::warn!(%error, reason = %event.reason, "could not record an Event");
    }
}

fn route_conflict(route: &Route, holder: &str, pool: &str) -> Refusal {
    Refusal {
        reason: "RouteConflict",
        message: format!(
            "{} is already served by endpoint {holder:?} of pool {pool:?}; give this endpoint another host or path (or remove it from the pool)",
            describe_route(route)
        ),
    }
}

fn pool_config_full(pool: &str, budget: usize) -> Refusal {
    Refusal {
        reason: "PoolConfigFull",
        message: format!(
            "the configuration of pool {pool:?} would take its Secret past {} KiB (Kubernetes refuses a Secret over 1 MiB); the members created before this one are served: put this endpoint in another pool, or give it a dedicated receiver",
            budget.div_ceil(1024)
        ),
    }
}

/// A member as its pool serves it, or why its new configuration cannot be
/// served. The checks and renderings are the dedicated receiver's own.
async fn render_member(
    ctx: &PoolContext,
    pool: &WebhookReceiverPool,
    member: &WebhookEndpoint,
    namespace: &str,
) -> Result<Result<(WebhookEndpoint, BTreeMap<String, ByteString>), Refusal>, PoolError> {
    if let Err(invalid) = validate::validate(member) {
        return Ok(Err(Refusal {
            reason: "InvalidSpec",
            message: invalid.to_string(),
        }));
    }
    let effective = pooled_endpoint(&resources::effective_endpoint(member, &ctx.settings), pool);
    let ranges = match ctx.ranges.for_endpoint(member).await {
        Err(error) => {
            return Ok(Err(Refusal {
                reason: "InvalidSpec",
                message: format!("spec.allowedSources: {error}"),
            }));
        }
        Ok(None) => Vec::new(),
        Ok(Some(crate::ranges::EndpointRanges::Known { ranges, .. })) => ranges,
        Ok(Some(crate::ranges::EndpointRanges::Unavailable { message })) => {
            return Ok(Err(Refusal {
                reason: "SourceRangesUnavailable",
                message,
            }));
        }
    };
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let resolved = match secrets::resolve(&secret_api, namespace, &effective.spec).await {
        Ok(resolved) => resolved,
        Err(error) => {
            let Some(reason) = error.reason() else {
                return Err(error.into());
            };
            return Ok(Err(Refusal {
                reason,
                message: error.to_string(),
            }));
        }
    };
    if !effective.spec.allowed_sources.is_empty() && ranges.is_empty() {
        return Ok(Err(Refusal {
            reason: "SourceRangesUnavailable",
            message: BuildError::SourceRangesMissing.to_string(),
        }));
    }
    let rendered = resources::with_source_ranges(&effective, &ranges);
    match member_entries(&rendered, &resolved) {
        Ok(entries) => Ok(Ok((rendered, entries))),
        Err(error) => Ok(Err(Refusal {
            reason: "InvalidSpec",
            message: error.to_string(),
        })),
    }
}

/// Applies `wanted`, or deletes the pool's child of kind `K` (named
/// `child`) when the spec no longer asks for it and the pool controls it.
async fn apply_or_delete<K>(
    ctx: &PoolContext,
    pool: &WebhookReceiverPool,
    namespace: &str,
    child: &str,
    wanted: Option<&K>,
) -> Result<(), PoolError>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    if let Some(object) = wanted {
        apply(&ctx.client, namespace, object).await?;
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let kind = match K::kind(&()).as_ref() {
        "PodDisruptionBudget" => "PodDisruptionBudget",
        _ => "HorizontalPodAutoscaler",
    };
    let Some(existing) = api
        .get_metadata_opt(child)
        .await
        .map_err(api_error("reading", kind, namespace, child))?
    else {
        return Ok(());
    };
    let controlled = existing
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == pool.uid().as_ref());
    if !controlled {
        return Ok(());
    }
    match api.delete(child, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(api_error("deleting", kind, namespace, child)(source)),
    }
}

/// What a pass decided about a pool's members, for its status.
struct PoolMembers {
    /// Members served.
    served: i32,
    /// Members whose current configuration is refused.
    refused: Vec<hookwarden_crds::RefusedMember>,
}

/// Writes the pool's status: its pods from `deployment` (`None`: not
/// applied, the pass stopped at `invalid`), its members.
async fn write_pool_status(
    ctx: &PoolContext,
    pool: &WebhookReceiverPool,
    deployment: Option<&Deployment>,
    members: Option<PoolMembers>,
    invalid: Option<String>,
) -> Result<(), PoolError> {
    let (endpoints, refused) = match members {
        Some(members) => (Some(members.served), members.refused),
        None => (None, Vec::new()),
    };
    let namespace = pool.namespace().unwrap_or_default();
    let name = pool.name_any();
    let counts = deployment.and_then(|d| d.status.as_ref());
    let replicas = counts.and_then(|s| s.replicas).unwrap_or(0);
    let ready = counts.and_then(|s| s.ready_replicas).unwrap_or(0);
    let available = counts.and_then(|s| s.available_replicas).unwrap_or(0);
    let desired = desired_pool_replicas(pool);
    let observed = match invalid {
        Some(message) => Observed {
            type_: AVAILABLE,
            status: "False",
            reason: "InvalidSpec",
            message,
        },
        None => Observed {
            type_: AVAILABLE,
            status: if available >= desired {
                "True"
            } else {
                "False"
            },
            reason: if available >= desired {
                "ReplicasAvailable"
            } else {
                "ReplicasUnavailable"
            },
            message: format!("{available} of {desired} pool pods available"),
        },
    };
    let previous = pool.status.as_ref();
    let before = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let status = WebhookReceiverPoolStatus {
        observed_generation: pool.metadata.generation,
        replicas: deployment.map(|_| replicas),
        ready_replicas: deployment.map(|_| ready),
        endpoints,
        refused,
        conditions: status::merge(before, &[observed], pool.metadata.generation, &now),
    };
    if previous == Some(&status) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": WebhookReceiverPool::api_version(&()),
        "kind": WebhookReceiverPool::kind(&()),
        "status": status,
    });
    Api::<WebhookReceiverPool>::namespaced(ctx.client.clone(), &namespace)
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(api_error(
            "writing the status of",
            "WebhookReceiverPool",
            &namespace,
            &name,
        ))?;
    Ok(())
}

/// The reasons a pool records for a refused member, as static condition
/// reasons (an unknown one, from a hand-edited Secret, is `Refused`).
fn known_reason(reason: &str) -> &'static str {
    [
        "InvalidSpec",
        "SecretNotFound",
        "SecretKeyNotFound",
        "SourceRangesUnavailable",
        "RouteConflict",
        "PoolConfigFull",
    ]
    .into_iter()
    .find(|known| *known == reason)
    .unwrap_or("Refused")
}

/// `ConfigApplied` of member `endpoint` of pool `pool`, from what the
/// pool's last pass recorded in its Secret (`members`).
pub fn observe_config_applied(
    endpoint: &WebhookEndpoint,
    pool: &str,
    members: &Members,
) -> Observed {
    let pending = || Observed {
        type_: status::CONFIG_APPLIED,
        status: "Unknown",
        reason: "Pending",
        message: format!(
            "waiting for pool {pool:?} to take generation {} of the configuration",
            endpoint.metadata.generation.unwrap_or_default()
        ),
    };
    match members.get(&endpoint.name_any()) {
        None => pending(),
        Some(state) if state.generation != endpoint.metadata.generation => pending(),
        Some(state) if state.applied => Observed {
            type_: status::CONFIG_APPLIED,
            status: "True",
            reason: "Applied",
            message: format!(
                "pool {pool:?} serves generation {} of the configuration",
                state.generation.unwrap_or_default()
            ),
        },
        Some(state) => Observed {
            type_: status::CONFIG_APPLIED,
            status: "False",
            reason: known_reason(&state.reason),
            message: format!(
                "{}; {}",
                state.message,
                if state.served {
                    format!("pool {pool:?} keeps serving the last configuration it accepted")
                } else {
                    format!("pool {pool:?} does not serve this endpoint")
                }
            ),
        },
    }
}

/// The part of an endpoint's pass when `spec.pool` names `pool_name`:
/// the stream, the Ingress (to the pool's Service) and the Certificate as
/// for a dedicated receiver; no receiver children of its own (those left
/// from before are removed once the pool serves the endpoint, so the
/// dedicated receivers keep delivering until then); status from the
/// pool's pods and what the pool recorded for the endpoint.
pub(super) async fn reconcile_member(
    endpoint: &WebhookEndpoint,
    ctx: &Context,
    namespace: &str,
    name: &str,
    pool_name: &str,
    secret_name: Option<String>,
) -> Result<Action, ReconcileError> {
    let observe_failed = |kind: &str, object: &str| {
        let (namespace, name) = (namespace.to_owned(), format!("{kind} {object}"));
        move |source| ReconcileError::Observe {
            namespace,
            name,
            source,
        }
    };
    let pools: Api<WebhookReceiverPool> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(pool) = pools
        .get_opt(pool_name)
        .await
        .map_err(observe_failed("WebhookReceiverPool", pool_name))?
    else {
        let spec = SpecState::PoolNotFound {
            message: format!(
                "WebhookReceiverPool {pool_name:?} (spec.pool) does not exist in namespace {namespace:?}; create it or fix the reference. Receivers this endpoint had before are left running"
            ),
        };
        let receiver = observe_receiver(ctx, endpoint, namespace, name).await?;
        write_status(ctx, endpoint, &spec, receiver, None).await?;
        return Ok(Action::await_change());
    };
    let effective = pooled_endpoint(
        &resources::effective_endpoint(endpoint, &ctx.settings),
        &pool,
    );
    let child = pool_child_name(pool_name);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let pool_pods = deployments
        .get_opt(&child)
        .await
        .map_err(observe_failed("Deployment", &child))?
        .map(|deployment| {
            let status = deployment.status.unwrap_or_default();
            ReceiverState {
                desired: desired_pool_replicas(&pool),
                available: status.available_replicas.unwrap_or(0),
                ready: status.ready_replicas.unwrap_or(0),
            }
        });
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    // What the pool's last pass decided about this endpoint.
    let members = secret_api
        .get_metadata_opt(&child)
        .await
        .map_err(observe_failed("Secret", &child))?
        .map(|secret| recorded_members(secret.annotations()))
        .unwrap_or_default();
    let config_applied = observe_config_applied(endpoint, pool_name, &members);
    let applied = config_applied.status == "True";
    let resolved = match secrets::resolve(&secret_api, namespace, &effective.spec).await {
        Ok(resolved) => resolved,
        Err(error) => {
            let Some(reason) = error.reason() else {
                return Err(error.into());
            };
            let spec = SpecState::SecretsUnresolved {
                reason,
                message: error.to_string(),
            };
            write_status_with(
                ctx,
                endpoint,
                &spec,
                pool_pods,
                None,
                None,
                Some(config_applied),
            )
            .await?;
            return Ok(Action::requeue(super::MISSING_SECRET_RETRY));
        }
    };
    let owner = match resources::Owner::of(endpoint) {
        Ok(owner) => owner,
        Err(error) => return super::build_failed(endpoint, ctx, namespace, name, &error).await,
    };
    let (ingress, certificate) = match resources::ingress(&effective, &owner, &ctx.settings)
        .and_then(|ingress| Ok((ingress, resources::certificate(&effective, &owner)?)))
    {
        Ok(built) => built,
        Err(error) => return super::build_failed(endpoint, ctx, namespace, name, &error).await,
    };
    let owned = Owned {
        ctx,
        endpoint,
        namespace,
        name,
    };
    let dedicated = observe_receiver(ctx, endpoint, namespace, name).await?;
    // Until the pool serves the endpoint, receivers it had of its own keep
    // its route.
    if applied || dedicated.is_none() {
        owned
            .apply_or_prune(ingress.as_ref(), &ctx.caches.ingresses)
            .await?;
    }
    if applied {
        owned.prune_dedicated().await?;
    }
    let certificate = reconcile_certificate(&owned, certificate.as_ref()).await?;
    let previous = endpoint.status.as_ref().and_then(|status| {
        status
            .conditions
            .iter()
            .find(|condition| condition.type_ == status::STREAM_READY)
    });
    let (stream, managed) =
        stream::reconcile(&ctx.nats, &effective, &resolved, &ctx.settings, previous).await;
    let next = match managed {
        None => Action::requeue(super::STREAM_RETRY),
        Some(managed) if applied => {
            ctx.audit.watch(ObjectRef::from_obj(endpoint), managed);
            Action::await_change()
        }
        // The pool's next pass, or its pods, bring the next pass of this
        // endpoint (both are watched).
        Some(_) => Action::await_change(),
    };
    let exposure = Exposure {
        url: effective
            .spec
            .ingress
            .as_ref()
            .map(|ingress| resources::public_url(ingress, effective.spec.tls.as_ref())),
        secret_name,
        certificate,
        stream: Some(stream),
    };
    let keys = resources::referenced_secrets(&effective.spec).len();
    write_status_with(
        ctx,
        endpoint,
        &SpecState::Resolved { keys },
        pool_pods,
        Some(&exposure),
        None,
        Some(config_applied),
    )
    .await?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::endpoint;

    fn members(state: MemberState) -> Members {
        Members::from([("github".to_owned(), state)])
    }

    #[test]
    fn config_applied_follows_what_the_pool_recorded_for_this_generation() {
        let mut github = endpoint("github");
        github.metadata.generation = Some(3);
        let pending = observe_config_applied(&github, "shared", &Members::new());
        assert_eq!((pending.status, pending.reason), ("Unknown", "Pending"));
        let applied = MemberState {
            generation: Some(3),
            applied: true,
            served: true,
            ..MemberState::default()
        };
        let now = observe_config_applied(&github, "shared", &members(applied.clone()));
        assert_eq!((now.status, now.reason), ("True", "Applied"));
        let older = MemberState {
            generation: Some(2),
            ..applied
        };
        let stale = observe_config_applied(&github, "shared", &members(older));
        assert_eq!(stale.status, "Unknown");
        let refused = MemberState {
            generation: Some(3),
            applied: false,
            served: true,
            reason: "SecretNotFound".to_owned(),
            message: "Secret \"gone\" does not exist".to_owned(),
        };
        let refused = observe_config_applied(&github, "shared", &members(refused));
        assert_eq!(
            (refused.status, refused.reason),
            ("False", "SecretNotFound")
        );
        assert!(
            refused.message.contains("keeps serving"),
            "{}",
            refused.message
        );
        let odd = MemberState {
            generation: Some(3),
            reason: "Whatever".to_owned(),
            ..MemberState::default()
        };
        let odd = observe_config_applied(&github, "shared", &members(odd));
        assert_eq!(odd.reason, "Refused");
        assert!(odd.message.contains("does not serve"), "{}", odd.message);
    }
}
