//! The pass of one `WebhookEndpoint`, as its named steps: validate (into a
//! [`ValidEndpoint`]), the generated Secret, the published source ranges,
//! the referenced Secrets, build, apply, the certificate, the stream and the
//! status. An endpoint a pool serves leaves after the generated Secret for
//! [`pool_member::reconcile_member`].

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use hookwarden_crds::WebhookEndpoint;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tracing::Instrument;

use super::apply::{Owned, apply};
use super::certificate::reconcile_certificate;
use super::context::Context;
use super::error::ReconcileError;
use super::report::{
    build_failed, invalid_spec, observe_receiver, receiver_state, write_status, write_status_with,
};
use super::runner::{MISSING_SECRET_RETRY, STREAM_RETRY};
use super::status::{self, CertificateState, Exposure, SpecState};
use super::{pool_member, secrets, stream};
use crate::resources;
use crate::resources::validate::ValidEndpoint;

/// How often an endpoint with a cert-manager Certificate looks again when
/// Certificates are not watched (cert-manager's CRD was not served when the
/// operator started), to repair it, to follow the issuance and to notice
/// cert-manager installed later. Any other ready endpoint waits for a
/// change: its children are watched, and the stream audit ([`audit`])
/// checks its stream.
const UNSETTLED_RETRY: Duration = Duration::from_secs(300);

/// How soon an endpoint whose published source ranges were never fetched
/// looks again (the refresher also retries the list and reconciles it).
const SOURCE_RANGES_RETRY: Duration = Duration::from_secs(60);

pub(super) async fn reconcile(
    endpoint: Arc<WebhookEndpoint>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = std::time::Instant::now();
    // A pass looks at the stream itself; a settled one has the audit watch
    // it again.
    ctx.audit.forget(&ObjectRef::from_obj(&*endpoint));
    let pass = tracing::info_span!(
        target: hookwarden_core::telemetry::TARGET,
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
    if let Err(error) = &result {
        ctx.metrics
            .record_reconcile_failure(crate::ops::ReconcileKind::Endpoint, error.step());
    }
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
    let valid =
        match step!("hookwarden.reconcile.validate").in_scope(|| ValidEndpoint::check(endpoint)) {
            Ok(valid) => valid,
            Err(invalid) => return invalid_spec(endpoint, ctx, &invalid).await,
        };
    let span =
        tracing::info_span!("reconcile", namespace = %valid.namespace(), name = %valid.name());
    reconcile_valid(&valid, ctx).instrument(span).await
}

/// The pass of a valid endpoint, as its named steps. A step that must stop
/// the pass (a spec that cannot be rendered, a Secret or source range list
/// missing) has written the status that says why, and breaks with the
/// pass's next action.
async fn reconcile_valid(
    valid: &ValidEndpoint<'_>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let secret_name = generated_secret(valid, ctx).await?;
    if let Some(pool) = &valid.endpoint().spec.pool {
        return pool_member::reconcile_member(
            valid.endpoint(),
            ctx,
            valid.namespace(),
            valid.name(),
            pool,
            secret_name,
        )
        .await;
    }
    // The generated Secret is referenced like any other from here on.
    let effective = resources::effective_endpoint(valid.endpoint(), &ctx.settings);
    let (ranges, ranges_condition) = match source_ranges(valid, ctx).await? {
        ControlFlow::Continue(ranges) => ranges,
        ControlFlow::Break(next) => return Ok(next),
    };
    let resolved = match resolve_secrets(valid, ctx, &effective).await? {
        ControlFlow::Continue(resolved) => resolved,
        ControlFlow::Break(next) => return Ok(next),
    };
    let children = match build(valid, ctx, &effective, &resolved, &ranges).await? {
        ControlFlow::Continue(children) => children,
        ControlFlow::Break(next) => return Ok(next),
    };
    let owned = Owned {
        ctx,
        endpoint: valid.endpoint(),
        namespace: valid.namespace(),
        name: valid.name(),
    };
    let deployment = apply_children(&owned, &children)
        .instrument(step!("hookwarden.reconcile.apply"))
        .await?;
    let certificate = reconcile_certificate(&owned, children.certificate.as_ref())
        .instrument(step!("hookwarden.reconcile.certificate"))
        .await?;
    let previous_stream = valid.previous(status::STREAM_READY);
    let (stream, managed) = stream::reconcile(
        &ctx.nats,
        valid.endpoint(),
        &resolved,
        &ctx.settings,
        previous_stream,
    )
    .instrument(step!("hookwarden.reconcile.stream"))
    .await;
    let next = next_action(valid, ctx, managed, certificate.as_ref());
    let exposure = Exposure {
        // With the operator's default issuer, https.
        url: valid.route(&ctx.settings).map(|route| route.url()),
        secret_name,
        certificate,
        stream: Some(stream),
    };
    let keys = resources::referenced_secrets(&effective.spec).len();
    let receiver = receiver_state(valid.endpoint(), &deployment);
    write_status_with(
        ctx,
        valid.endpoint(),
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

/// The generated verification Secret's name, created first when the spec
/// asks for one (`None` when it does not).
async fn generated_secret(
    valid: &ValidEndpoint<'_>,
    ctx: &Context,
) -> Result<Option<String>, ReconcileError> {
    if !valid.endpoint().spec.generate_secret {
        return Ok(None);
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), valid.namespace());
    ensure_generated_secret(valid, &secrets).await.map(Some)
}

/// The published lists of `allowedSources`, fetched once for every endpoint
/// that names them (validate checked the entries): their ranges (none
/// without `allowedSources`) and the `SourceRangesCurrent` they make. A
/// list never fetched stops the pass: nothing is rendered without the
/// ranges (that would let any source in), and running receivers keep their
/// configuration.
async fn source_ranges(
    valid: &ValidEndpoint<'_>,
    ctx: &Context,
) -> Result<ControlFlow<Action, (Vec<String>, Option<status::Observed>)>, ReconcileError> {
    let endpoint = valid.endpoint();
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
            return Ok(ControlFlow::Break(Action::await_change()));
        }
    };
    let ranges_condition = source_ranges.as_ref().map(status::observe_source_ranges);
    match source_ranges {
        None => Ok(ControlFlow::Continue((Vec::new(), ranges_condition))),
        Some(crate::ranges::EndpointRanges::Known { ranges, .. }) => {
            Ok(ControlFlow::Continue((ranges, ranges_condition)))
        }
        Some(crate::ranges::EndpointRanges::Unavailable { message }) => {
            tracing::info!(%message, "source ranges unavailable");
            let receiver = observe_receiver(ctx, endpoint, valid.namespace(), valid.name()).await?;
            let spec = SpecState::SourceRangesUnavailable { message };
            write_status_with(ctx, endpoint, &spec, receiver, None, ranges_condition, None).await?;
            Ok(ControlFlow::Break(Action::requeue(SOURCE_RANGES_RETRY)))
        }
    }
}

/// The values of the Secrets `effective` references. One the user must
/// create or fix stops the pass: the running receivers keep their last good
/// configuration (the Deployment is left alone), only the status says what
/// is missing.
async fn resolve_secrets(
    valid: &ValidEndpoint<'_>,
    ctx: &Context,
    effective: &WebhookEndpoint,
) -> Result<ControlFlow<Action, resources::ResolvedSecrets>, ReconcileError> {
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), valid.namespace());
    let error = match secrets::resolve(&secret_api, valid.namespace(), &effective.spec)
        .instrument(step!("hookwarden.reconcile.secrets"))
        .await
    {
        Ok(resolved) => return Ok(ControlFlow::Continue(resolved)),
        Err(error) => error,
    };
    let Some(reason) = error.reason() else {
        return Err(error.into());
    };
    tracing::info!(%error, "referenced Secrets unresolved");
    let endpoint = valid.endpoint();
    let receiver = observe_receiver(ctx, endpoint, valid.namespace(), valid.name()).await?;
    let spec = SpecState::SecretsUnresolved {
        reason,
        message: error.to_string(),
    };
    write_status(ctx, endpoint, &spec, receiver, None).await?;
    Ok(ControlFlow::Break(Action::requeue(MISSING_SECRET_RETRY)))
}

/// The children of `effective`, rendered with its Secrets and source ranges;
/// a spec that cannot be rendered stops the pass ([`build_failed`]).
async fn build(
    valid: &ValidEndpoint<'_>,
    ctx: &Context,
    effective: &WebhookEndpoint,
    resolved: &resources::ResolvedSecrets,
    ranges: &[String],
) -> Result<ControlFlow<Action, resources::Children>, ReconcileError> {
    let built = step!("hookwarden.reconcile.build").in_scope(|| {
        resources::build_with_ranges(valid, effective, resolved, &ctx.settings, ranges)
    });
    match built {
        Ok(children) => Ok(ControlFlow::Continue(children)),
        Err(error) => build_failed(
            valid.endpoint(),
            ctx,
            valid.namespace(),
            valid.name(),
            &error,
        )
        .await
        .map(ControlFlow::Break),
    }
}

/// Applies the receiver's children, each in the order that keeps the pods
/// safe, and returns the Deployment as applied.
async fn apply_children(
    owned: &Owned<'_>,
    children: &resources::Children,
) -> Result<Deployment, ReconcileError> {
    let (client, namespace) = (&owned.ctx.client, owned.namespace);
    // The Secret first: pods rolled by a new config hash must find it.
    apply(client, namespace, &children.secret).await?;
    apply(client, namespace, &children.service).await?;
    // The policy before the pods it protects.
    apply(client, namespace, &children.network_policy).await?;
    let deployment = apply(client, namespace, &children.deployment).await?;
    let caches = &owned.ctx.caches;
    owned
        .apply_or_prune(children.pod_disruption_budget.as_ref(), &caches.budgets)
        .await?;
    owned
        .apply_or_prune(children.autoscaler.as_ref(), &caches.autoscalers)
        .await?;
    owned
        .apply_or_prune(children.ingress.as_ref(), &caches.ingresses)
        .await?;
    Ok(deployment)
}

/// When the endpoint looks again. Settled: every child is watched, so the
/// pass waits for a change and the audit checks the stream. Without a
/// Certificate watch (cert-manager was not installed at start) an endpoint
/// with one looks again every UNSETTLED_RETRY, to repair it and to see
/// cert-manager's progress.
fn next_action(
    valid: &ValidEndpoint<'_>,
    ctx: &Context,
    managed: Option<stream::Managed>,
    certificate: Option<&CertificateState>,
) -> Action {
    match managed {
        None => Action::requeue(STREAM_RETRY),
        Some(managed)
            if certificate.is_none()
                || (ctx.certificates_watched
                    && matches!(certificate, Some(CertificateState::Requested { .. }))) =>
        {
            ctx.audit
                .watch(ObjectRef::from_obj(valid.endpoint()), managed);
            Action::await_change()
        }
        Some(_) => Action::requeue(UNSETTLED_RETRY),
    }
}

/// Creates the generated verification Secret unless it exists, and returns
/// its name. Created, never applied: an existing value is never replaced,
/// since the provider has been given it.
async fn ensure_generated_secret(
    valid: &ValidEndpoint<'_>,
    secrets: &Api<Secret>,
) -> Result<String, ReconcileError> {
    let (namespace, name) = (valid.namespace(), valid.name());
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
    let owner = resources::Owner::of_valid(valid).map_err(ReconcileError::BuildGenerated)?;
    let secret = resources::generated_secret(&owner, &resources::random_secret());
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
