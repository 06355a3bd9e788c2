//! Status reporting of an endpoint's pass: the receiver Deployment
//! observed, the status computed by [`super::status`] written by
//! server-side apply when it changed, and an Event for every condition
//! that changed.

use hookwarden_crds::WebhookEndpoint;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};

use super::context::Context;
use super::error::{ReconcileError, StatusError};
use super::status::{self, Exposure, ReceiverState, SpecState};
use crate::FIELD_MANAGER;
use crate::resources::validate::ValidateError;
use crate::resources::{self, BuildError, child_name};

/// A spec the operator cannot act on waits for the next change of it.
pub(super) async fn invalid_spec(
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
pub(super) async fn build_failed(
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

/// The receiver Deployment's state, if it exists.
pub(super) async fn observe_receiver(
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

pub(super) fn receiver_state(endpoint: &WebhookEndpoint, deployment: &Deployment) -> ReceiverState {
    let status = deployment.status.as_ref();
    ReceiverState {
        desired: resources::desired_replicas(endpoint),
        available: status.and_then(|s| s.available_replicas).unwrap_or(0),
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
    }
}

/// Writes the status by server-side apply on the status subresource, and
/// records an Event for every condition whose status changed.
pub(super) async fn write_status(
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
pub(super) async fn write_status_with(
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
    // Read once: the merge, the write and the Events compare with it.
    let previous = endpoint.status.as_ref();
    let before = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
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
        status.conditions.extend(status::merge(
            before,
            &[observed],
            endpoint.metadata.generation,
            &now,
        ));
    }
    if let Some(config_applied) = config_applied {
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
    for changed in status::transitions(before, &status.conditions) {
        record(ctx, endpoint, changed).await;
    }
    Ok(())
}

/// Records a condition transition as an Event. Events are best effort: a
/// failure is logged, never fails the pass.
pub(super) async fn record(ctx: &Context, endpoint: &WebhookEndpoint, condition: &Condition) {
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
