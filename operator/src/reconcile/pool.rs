//! The pass of a `WebhookReceiverPool`. Beside it: what its passes share
//! (`pool_context`), the controller's wiring (`pool_controller`), the
//! pool's status and Events (`pool_status`), and the part of an endpoint's
//! pass that differs when `spec.pool` names a pool (`pool_member`).
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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use hookwarden_crds::{WebhookEndpoint, WebhookReceiverPool};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::error::{ApiAction, api_error};
use super::pool_context::{PoolContext, PoolError};
use super::pool_status::{PoolMembers, record_member_change, write_pool_status};
use super::{apply, secrets};
use crate::ops::{ReconcileKind, ReconcileResult};
use crate::resources::pool::{
    MemberState, Members, PoolNats, Route, ShardedData, config_shards, describe_route,
    member_changes, member_entries, pool_child_name, pool_children, pool_nats_url, pool_secret,
    pooled_endpoint, previous_entries, recorded_members, refused_members, route_of, shard_index,
    shard_of, shard_secret_name,
};
use crate::resources::validate;
use crate::resources::{self, BuildError, Owner};

/// How often a settled pool renders its members again: the published
/// source ranges of a member's `allowedSources` change without any watch
/// event of the pool's, and reach its Secret on the next pass.
const POOL_REFRESH: Duration = Duration::from_secs(300);

/// The longest Service name (an RFC 1035 label).
const MAX_SERVICE_NAME: usize = 63;

pub(super) async fn reconcile(
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
    if let Err(error) = &result {
        ctx.metrics
            .record_reconcile_failure(ReconcileKind::Pool, error.step());
    }
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
        write_pool_status(ctx, pool, None, None, Some(("InvalidSpec", message))).await?;
        return Ok(Action::await_change());
    }
    // The pool's own NATS login first: without it no pod can store a
    // delivery, so nothing is applied (pods already running keep theirs)
    // until the Secret is there; its watch starts the next pass.
    // Every Secret this pass reads, each once: members that share one
    // (and the pool's credentials) cost one read.
    let mut secret_reads =
        secrets::SecretReads::new(Api::namespaced(ctx.client.clone(), namespace), namespace);
    let credentials = match resolve_credentials(pool, &mut secret_reads).await? {
        Ok(credentials) => credentials,
        Err(refusal) => {
            let message = format!("spec.nats.credentialsSecretRef: {}", refusal.message);
            write_pool_status(ctx, pool, None, None, Some((refusal.reason, message))).await?;
            return Ok(Action::await_change());
        }
    };
    let nats = PoolNats {
        url: pool_nats_url(pool, &ctx.settings),
        credentials: pool
            .spec
            .nats
            .credentials_secret_ref
            .as_ref()
            .zip(credentials.as_deref()),
    };
    let owner = Owner::of_pool(pool)?;
    // Read once: the entries each refused member keeps, and the last
    // pass's decisions (what this pass's Events are changes of), from
    // every shard there is, also those past a lowered `configShards`.
    let existing = read_shards(ctx, &owner, namespace, name).await?;
    let previous: BTreeMap<String, ByteString> = existing
        .values()
        .flat_map(|(data, _)| data.iter().map(|(k, v)| (k.clone(), v.clone())))
        .collect();
    let decided_before: Members = existing
        .values()
        .flat_map(|(_, members)| members.clone())
        .collect();
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
    let mut data = ShardedData::new(config_shards(pool), ctx.secret_budget);
    let mut states = Members::new();
    let mut routes: BTreeMap<Route, String> = BTreeMap::new();
    let mut fetch_keys = false;
    for member in &members {
        let member_name = member.name_any();
        let shard = data.shard_of(&member_name);
        let rendered = match render_member(ctx, pool, member, &mut secret_reads).await? {
            Ok((endpoint, entries)) => match routes.get(&route_of(&endpoint)) {
                Some(holder) => Err(route_conflict(&route_of(&endpoint), holder, name)),
                None if !data.fits(shard, &entries) => Err(pool_config_full(name, shard, &data)),
                None => Ok((endpoint, entries)),
            },
            Err(refusal) => Err(refusal),
        };
        let state = match rendered {
            Ok((endpoint, entries)) => {
                routes.insert(route_of(&endpoint), member_name.clone());
                fetch_keys |= resources::fetches_keys(&endpoint.spec);
                data.insert_current(shard, entries);
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
                        !routes.contains_key(&route_of(endpoint)) && data.fits(shard, entries)
                    });
                let served = kept.is_some();
                if let Some((endpoint, entries)) = kept {
                    routes.insert(route_of(&endpoint), member_name.clone());
                    fetch_keys |= resources::fetches_keys(&endpoint.spec);
                    data.insert_kept(shard, entries);
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
    let shards = data.len();
    // The Secrets before the Deployment: pods of a raised `configShards`
    // find every Secret they mount.
    for (shard, shard_data) in data.into_shards().into_iter().enumerate() {
        let shard_members: Members = states
            .iter()
            .filter(|(member, _)| shard_of(member, shards) == shard)
            .map(|(member, state)| (member.clone(), state.clone()))
            .collect();
        let secret = pool_secret(&owner, shard, shard_data, &shard_members, nats)?;
        apply(&ctx.client, namespace, &secret).await?;
    }
    let children = pool_children(pool, &owner, &ctx.settings, fetch_keys, nats)?;
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
    // After the Deployment: its new pods no longer mount the shards past a
    // lowered `configShards`.
    for shard in existing.keys().filter(|shard| **shard >= shards) {
        delete_shard(ctx, namespace, &shard_secret_name(name, *shard)).await?;
    }
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

fn route_conflict(route: &Route, holder: &str, pool: &str) -> Refusal {
    Refusal {
        reason: "RouteConflict",
        message: format!(
            "{} is already served by endpoint {holder:?} of pool {pool:?}; give this endpoint another host or path (or remove it from the pool)",
            describe_route(route)
        ),
    }
}

fn pool_config_full(pool: &str, shard: usize, data: &ShardedData) -> Refusal {
    Refusal {
        reason: "PoolConfigFull",
        message: format!(
            "this endpoint's configuration would take Secret {:?}, shard {} of the {} of pool {pool:?}, past {} KiB (Kubernetes refuses a Secret over 1 MiB); the members created before this one are served: raise the pool's spec.configShards (at most {}; changing it restarts the pool's pods), put this endpoint in another pool, or give it a dedicated receiver",
            shard_secret_name(pool, shard),
            shard + 1,
            data.len(),
            data.budget().div_ceil(1024),
            hookwarden_crds::MAX_CONFIG_SHARDS,
        ),
    }
}

/// The value of the pool's `spec.nats.credentialsSecretRef` (`None` when
/// it names none), or why it cannot be read: the checks of a member's
/// Secrets ([`secrets::resolve_keys`]).
async fn resolve_credentials(
    pool: &WebhookReceiverPool,
    secret_reads: &mut secrets::SecretReads,
) -> Result<Result<Option<Vec<u8>>, Refusal>, PoolError> {
    let Some(reference) = &pool.spec.nats.credentials_secret_ref else {
        return Ok(Ok(None));
    };
    let key = (reference.name.clone(), reference.key.clone());
    match secret_reads.resolve_keys([key]).await {
        Ok(resolved) => Ok(Ok(resolved
            .get(&reference.name, &reference.key)
            .map(<[u8]>::to_vec))),
        Err(error) => match error.reason() {
            Some(reason) => Ok(Err(Refusal {
                reason,
                message: error.to_string(),
            })),
            None => Err(error.into()),
        },
    }
}

/// The configuration Secrets pool `pool_name` has now, by shard: their
/// data and the members they record. One list of the pool's Secrets (by
/// its children's labels), not a read per shard.
async fn read_shards(
    ctx: &PoolContext,
    owner: &Owner,
    namespace: &str,
    pool_name: &str,
) -> Result<BTreeMap<usize, (BTreeMap<String, ByteString>, Members)>, PoolError> {
    let selector = owner
        .selector_labels()
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",");
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(api_error(
            ApiAction::Listing,
            "Secret",
            namespace,
            &pool_child_name(pool_name),
        ))?;
    Ok(secrets
        .items
        .into_iter()
        .filter_map(|secret| {
            let shard = shard_index(pool_name, &secret.name_any())?;
            let members = recorded_members(secret.annotations());
            Some((shard, (secret.data.unwrap_or_default(), members)))
        })
        .collect())
}

/// Deletes a configuration Secret past the pool's `configShards`.
async fn delete_shard(ctx: &PoolContext, namespace: &str, secret: &str) -> Result<(), PoolError> {
    match Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .delete(secret, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => {
            Err(api_error(ApiAction::Deleting, "Secret", namespace, secret)(source).into())
        }
    }
}

/// A member as its pool serves it, or why its new configuration cannot be
/// served. The checks and renderings are the dedicated receiver's own;
/// its Secrets are read through the pass's `secret_reads`.
async fn render_member(
    ctx: &PoolContext,
    pool: &WebhookReceiverPool,
    member: &WebhookEndpoint,
    secret_reads: &mut secrets::SecretReads,
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
    let resolved = match secret_reads.resolve(&effective.spec).await {
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
    let Some(existing) = api.get_metadata_opt(child).await.map_err(api_error(
        ApiAction::Reading,
        kind,
        namespace,
        child,
    ))?
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
        Err(source) => Err(api_error(ApiAction::Deleting, kind, namespace, child)(source).into()),
    }
}
