//! The steps of a `WebhookSubscription`'s pass that act on its children
//! and its status: stopping before the apply with a condition, making way
//! for a `Recreate` rollout, observing the forwarder, the generated
//! signing Secret, the PodDisruptionBudget no longer wanted, the consumer's
//! removal when the subscription goes, and the status itself.

use hookwarden_crds::WebhookSubscription;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};

use super::consumer;
use super::error::{ApiAction, api_error};
use super::subscription_context::{Context, SubscriptionError};
use super::subscription_status::{self as sub_status, ForwarderState, Observation, SourceState};
use crate::FIELD_MANAGER;
use crate::resources::forwarder::{self, Deployed};
use crate::resources::{Component, Owner};

/// A pass that stops before applying: the status says why (the running
/// forwarders, if any, keep their last good configuration and are still
/// reported), and the pass waits as `then` says.
pub(super) async fn stop(
    ctx: &Context,
    subscription: &WebhookSubscription,
    source: &SourceState,
    then: Action,
) -> Result<Action, SubscriptionError> {
    let forwarder = observe_forwarder(ctx, subscription).await?;
    write_status(
        ctx,
        subscription,
        &Observation {
            source,
            consumer: None,
            forwarder,
            signing_secret_name: subscription
                .status
                .as_ref()
                .and_then(|s| s.signing_secret_name.clone()),
            consumer_name: None,
        },
    )
    .await?;
    Ok(then)
}

pub(super) fn forwarder_state(
    subscription: &WebhookSubscription,
    deployment: &Deployment,
) -> ForwarderState {
    let status = deployment.status.as_ref();
    ForwarderState {
        desired: subscription.spec.replicas,
        available: status.and_then(|s| s.available_replicas).unwrap_or(0),
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
    }
}

/// Turns an existing forwarder Deployment's rolling update into
/// `Recreate` before the apply that says so: the API server refuses
/// `Recreate` beside the `rollingUpdate` parameters it defaulted when the
/// Deployment was created, and server-side apply cannot remove fields it
/// does not own. One merge patch sets the type and removes them together
/// (changing the strategy alone rolls no pod); nothing when there is no
/// Deployment yet or it already recreates.
pub(super) async fn make_way_for_recreate(
    ctx: &Context,
    namespace: &str,
    child: &str,
) -> Result<(), SubscriptionError> {
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), namespace);
    let live = deployments.get_opt(child).await.map_err(api_error(
        ApiAction::Reading,
        "Deployment",
        namespace,
        child,
    ))?;
    let rolling = live
        .and_then(|d| d.spec.strategy)
        .is_some_and(|strategy| strategy.rolling_update.is_some());
    if rolling {
        let patch = serde_json::json!({
            "spec": {"strategy": {"type": "Recreate", "rollingUpdate": null}},
        });
        deployments
            .patch(child, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_error(
                ApiAction::Patching,
                "Deployment",
                namespace,
                child,
            ))?;
    }
    Ok(())
}

pub(super) async fn observe_forwarder(
    ctx: &Context,
    subscription: &WebhookSubscription,
) -> Result<Option<ForwarderState>, SubscriptionError> {
    let namespace = subscription.namespace().unwrap_or_default();
    let child = Component::Forwarder.child_name(&subscription.name_any());
    let deployment = Api::<Deployment>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&child)
        .await
        .map_err(api_error(
            ApiAction::Reading,
            "Deployment",
            &namespace,
            &child,
        ))?;
    Ok(deployment
        .filter(|d| controlled_by(d, subscription))
        .map(|d| forwarder_state(subscription, &d)))
}

pub(super) fn controlled_by<K: Resource>(child: &K, subscription: &WebhookSubscription) -> bool {
    let uid = subscription.uid();
    child
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
}

/// What the rendered Secret of this subscription says was deployed, if it
/// exists and is this subscription's.
pub(super) async fn deployed(
    ctx: &Context,
    subscription: &WebhookSubscription,
    namespace: &str,
    child: &str,
) -> Result<Option<Deployed>, SubscriptionError> {
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .get_opt(child)
        .await
        .map_err(api_error(ApiAction::Reading, "Secret", namespace, child))?;
    Ok(secret
        .filter(|s| controlled_by(s, subscription))
        .and_then(|s| Deployed::of(&s)))
}

/// Deletes the forwarders' PodDisruptionBudget `name` if this subscription
/// controls it (scaled back to one replica).
pub(super) async fn delete_budget(
    ctx: &Context,
    subscription: &WebhookSubscription,
    namespace: &str,
    name: &str,
) -> Result<(), SubscriptionError> {
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), namespace);
    let kind = "PodDisruptionBudget";
    let Some(existing) = api.get_metadata_opt(name).await.map_err(api_error(
        ApiAction::Reading,
        kind,
        namespace,
        name,
    ))?
    else {
        return Ok(());
    };
    if !controlled_by(&existing, subscription) {
        return Ok(());
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(api_error(ApiAction::Deleting, kind, namespace, name)(source).into()),
    }
}

/// Creates the generated signing Secret unless it exists. Created, never
/// applied: the destination has been given its value.
pub(super) async fn ensure_signing_secret(
    secrets: &Api<Secret>,
    owner: &Owner,
    namespace: &str,
) -> Result<(), SubscriptionError> {
    let name = forwarder::signing_secret_name(owner.name());
    if secrets
        .get_metadata_opt(&name)
        .await
        .map_err(api_error(ApiAction::Reading, "Secret", namespace, &name))?
        .is_some()
    {
        return Ok(());
    }
    let secret = forwarder::signing_secret(owner, &forwarder::random_signing_secret());
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(secret = %name, "generated the signing secret");
            Ok(())
        }
        // Another pass (or replica) created it first: keep theirs.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(source) => {
            Err(api_error(ApiAction::Creating, "Secret", namespace, &name)(source).into())
        }
    }
}

/// The subscription is being deleted: its durable consumer goes, found
/// through the rendered Secret (still there: the garbage collector removes
/// children only once the finalizer is gone), so neither the endpoint nor
/// the user's Secrets need to exist any more. Best effort: a consumer that
/// cannot be removed (NATS down) is reported in a Warning Event naming it,
/// and the deletion goes on, since a subscription that cannot be deleted
/// while NATS is away would hold up its namespace's deletion.
pub(super) async fn cleanup(
    subscription: &WebhookSubscription,
    ctx: &Context,
) -> Result<Action, SubscriptionError> {
    let namespace = subscription.namespace().unwrap_or_default();
    let child = Component::Forwarder.child_name(&subscription.name_any());
    let Some(deployed) = deployed(ctx, subscription, &namespace, &child).await? else {
        return Ok(Action::await_change());
    };
    let default_nats = deployed.credentials.is_none() && deployed.nats_url == ctx.settings.nats_url;
    let (type_, reason, note) = match consumer::remove(&ctx.nats, &deployed, default_nats).await {
        Ok(removed) => (
            EventType::Normal,
            "ConsumerDeleted",
            format!(
                "durable consumer {} on stream {} {}",
                deployed.plan.durable,
                deployed.plan.stream,
                if removed {
                    "deleted"
                } else {
                    "was already gone"
                }
            ),
        ),
        Err(error) => (
            EventType::Warning,
            "ConsumerNotDeleted",
            format!("{error}; delete it by hand (nats consumer rm); the dead letters are kept"),
        ),
    };
    tracing::info!(reason, %note, "subscription deleted");
    publish(ctx, subscription, type_, reason, note).await;
    Ok(Action::await_change())
}

/// Writes the status by server-side apply on the status subresource when
/// it changed, and records an Event for every condition whose status
/// changed.
pub(super) async fn write_status(
    ctx: &Context,
    subscription: &WebhookSubscription,
    observation: &Observation<'_>,
) -> Result<(), SubscriptionError> {
    let namespace = subscription.namespace().unwrap_or_default();
    let name = subscription.name_any();
    let previous = subscription.status.as_ref();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let status = sub_status::status(
        previous,
        observation,
        subscription.metadata.generation,
        &now,
    );
    if previous != Some(&status) {
        let patch = serde_json::json!({
            "apiVersion": WebhookSubscription::api_version(&()),
            "kind": WebhookSubscription::kind(&()),
            "status": status,
        });
        Api::<WebhookSubscription>::namespaced(ctx.client.clone(), &namespace)
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(api_error(
                ApiAction::WritingStatus,
                "WebhookSubscription",
                &namespace,
                &name,
            ))?;
    }
    let before: &[Condition] = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    for changed in super::status::transitions(before, &status.conditions) {
        let type_ = if changed.status == "False" {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let note = format!(
            "{} is {}: {}",
            changed.type_, changed.status, changed.message
        );
        publish(ctx, subscription, type_, &changed.reason, note).await;
    }
    Ok(())
}

/// Records an Event; best effort: a failure is logged, never fails the pass.
pub(super) async fn publish(
    ctx: &Context,
    subscription: &WebhookSubscription,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx
        .recorder
        .publish(&event, &subscription.object_ref(&()))
        .await
    {
        tracing::warn!(%error, reason, "could not record an Event");
    }
}
