//! What a pool's pass reports: the pool's status (its pods, its members)
//! and the Events of its members' changes.

use hookwarden_crds::{WebhookEndpoint, WebhookReceiverPool, WebhookReceiverPoolStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};

use super::error::{ApiAction, api_error};
use super::pool_context::{PoolContext, PoolError};
use super::secrets::ResolveError;
use super::status::{self, Observed};
use crate::FIELD_MANAGER;
use crate::resources::pool::{MemberChange, desired_pool_replicas};

/// The condition of a pool: its requested pods are available.
pub const AVAILABLE: &str = "Available";

/// Records a change of `pool`'s members as an Event on the pool. Events
/// are best effort: a failure is logged, never fails the pass.
pub(super) async fn record_member_change(
    ctx: &PoolContext,
    pool: &WebhookReceiverPool,
    change: MemberChange,
) {
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

/// What a pass decided about a pool's members, for its status.
pub(super) struct PoolMembers {
    /// Members served.
    pub(super) served: i32,
    /// Members whose current configuration is refused.
    pub(super) refused: Vec<hookwarden_crds::RefusedMember>,
}

/// Writes the pool's status: its pods from `deployment` (`None`: not
/// applied, the pass stopped at `stopped`, a reason and message for the
/// user), its members.
pub(super) async fn write_pool_status(
    ctx: &PoolContext,
    pool: &WebhookReceiverPool,
    deployment: Option<&Deployment>,
    members: Option<PoolMembers>,
    stopped: Option<(&'static str, String)>,
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
    let observed = match stopped {
        Some((reason, message)) => Observed {
            type_: AVAILABLE,
            status: "False",
            reason,
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
            ApiAction::WritingStatus,
            "WebhookReceiverPool",
            &namespace,
            &name,
        ))?;
    Ok(())
}

/// The reasons a pool records for a refused member, as static condition
/// reasons (an unknown one, from a hand-edited Secret, is `Refused`).
pub(super) fn known_reason(reason: &str) -> &'static str {
    [
        "InvalidSpec",
        "SourceRangesUnavailable",
        "RouteConflict",
        "PoolConfigFull",
    ]
    .into_iter()
    .chain(ResolveError::REASONS.iter().copied())
    .find(|known| *known == reason)
    .unwrap_or("Refused")
}
