//! The controller of `WebhookSubscription`s, in the same process (and under
//! the same lease) as the endpoints' one.
//!
//! A pass: dereference (the source endpoint, the referenced Secrets, the
//! generated signing Secret created once), validate ([`Effective::resolve`],
//! i.e. [`hookwarden_receiver::forward::Plan::resolve`]), build
//! ([`crate::resources::forwarder`]), apply, then NATS (the dead-letter
//! stream and the durable consumer, from the plan) and the status. A
//! problem the user must fix becomes a condition and waits for a change;
//! a transient one is retried with a backoff. Passes repeat every
//! [`DEFAULT_SUBSCRIPTION_STATUS_INTERVAL`] so the lag in the status stays
//! fresh.
//!
//! A finalizer removes the durable consumer when the subscription is
//! deleted: left behind, it would keep its place in the stream (and, on an
//! interest-retention stream, every message), and a new subscription of the
//! same name would resume from it.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use hookwarden_crds::{WebhookEndpoint, WebhookSubscription};
use hookwarden_receiver::forward::PlanError;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::Instrument;

use super::consumer;
use super::runner::{self, Failures, Retried};
use super::subscription_status::{self as sub_status, ForwarderState, Observation, SourceState};
use super::{ApplyError, api, apply, secrets, stream, triggers};
use crate::FIELD_MANAGER;
use crate::ops::{Metrics, ReconcileKind, ReconcileResult};
use crate::resources::forwarder::{self, Deployed, Effective};
use crate::resources::{BuildError, Component, MANAGED_BY_SELECTOR, Owner, Settings};

/// How often a subscription is passed again to refresh its lag, dead
/// letters and last error.
pub const DEFAULT_SUBSCRIPTION_STATUS_INTERVAL: Duration = Duration::from_secs(30);

/// The finalizer that removes the durable consumer.
pub const FINALIZER: &str = "hookwarden.dev/consumer";

/// How long a subscription with a missing Secret waits before it looks
/// again; creating the Secret starts a pass at once (Secrets are watched).
const MISSING_SECRET_RETRY: Duration = Duration::from_secs(120);

/// How soon a subscription whose consumer is not ready looks again (NATS
/// may be restarting, the source stream not created yet).
const CONSUMER_RETRY: Duration = Duration::from_secs(30);

/// The longest subscription name: it is the pods' `app.kubernetes.io/instance`
/// label value.
const MAX_NAME: usize = 63;

/// Why a pass failed; retried with a backoff.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// Reading a referenced Secret failed.
    #[error(transparent)]
    Resolve(#[from] secrets::ResolveError),
    /// Applying a child failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Reading or changing an object failed.
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
    /// The generated signing Secret could not be built (no uid).
    #[error("building the generated signing Secret: {0}")]
    BuildSigning(BuildError),
}

/// What every pass of one controller shares.
struct Context {
    client: Client,
    settings: Settings,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    nats: Arc<stream::Connections>,
    /// Consecutive failed passes per subscription, for
    /// [`backoff`](super::runner::backoff).
    failures: Failures<WebhookSubscription>,
    /// How often a settled subscription is passed again.
    refresh: Duration,
}

/// What the controller of one watched namespace needs.
pub(crate) struct Scope {
    pub client: Client,
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    pub settings: Settings,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub nats: Arc<stream::Connections>,
    pub refresh: Duration,
}

/// What starts a pass: a new generation, labels, annotations, finalizers or
/// a deletion timestamp; not the status, which every pass writes.
fn subscription_changes(subscription: &WebhookSubscription) -> Option<u64> {
    let meta = &subscription.metadata;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        meta.generation,
        &meta.labels,
        &meta.annotations,
        &meta.finalizers,
        meta.deletion_timestamp.is_some(),
    )
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// What starts a pass of the owners that read an endpoint (a
/// [`triggers::changed`] hash).
pub(super) fn endpoint_changes(endpoint: &WebhookEndpoint) -> u64 {
    triggers::endpoint_changes(endpoint).unwrap_or_default()
}

/// The controller of the subscriptions in `scope.namespace` and its cache
/// of them; it runs until `shutdown` completes.
pub(crate) fn controller(
    scope: Scope,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> (Store<WebhookSubscription>, impl Future<Output = ()>) {
    let Scope {
        client,
        namespace,
        settings,
        recorder,
        metrics,
        nats,
        refresh,
    } = scope;
    let namespace = namespace.as_deref();
    let owned = watcher::Config::default().labels(MANAGED_BY_SELECTOR);
    let (store, writer) = reflector::store();
    let events = watcher::watcher(
        api::<WebhookSubscription>(&client, namespace),
        watcher::Config::default(),
    )
    .reflect(writer)
    .applied_objects()
    .predicate_filter(subscription_changes, PredicateConfig::default());
    // The endpoints, cached: a changed source endpoint (its stream, prefix
    // or NATS) re-targets the subscriptions that name it, and its NATS
    // credentials Secret is theirs too.
    let (endpoints, endpoint_writer) = reflector::store();
    let endpoint_events = triggers::changed(
        watcher::watcher(
            api::<WebhookEndpoint>(&client, namespace),
            watcher::Config::default(),
        )
        .reflect(endpoint_writer),
        endpoint_changes,
    );
    let context = Arc::new(Context {
        client: client.clone(),
        settings,
        recorder,
        metrics,
        nats,
        failures: Failures::default(),
        refresh,
    });
    let by_endpoint = store.clone();
    let by_secret = store.clone();
    let running = Controller::for_stream(events, store.clone())
        .owns_stream(triggers::changed(
            watcher::watcher(api::<Deployment>(&client, namespace), owned.clone()),
            triggers::deployment_changes,
        ))
        .owns(api::<NetworkPolicy>(&client, namespace), owned.clone())
        .owns(
            api::<PodDisruptionBudget>(&client, namespace),
            owned.clone(),
        )
        .owns(api::<Secret>(&client, namespace), owned)
        .watches_stream(endpoint_events, move |endpoint: WebhookEndpoint| {
            naming(&endpoint, &by_endpoint.state())
        })
        .watches(
            api::<Secret>(&client, namespace),
            watcher::Config::default(),
            move |secret: Secret| referencing(&secret, &by_secret.state(), &endpoints),
        );
    let running = runner::run(running, shutdown, reconcile, context);
    (store, running)
}

/// The subscriptions among `subscriptions` whose source is `endpoint`.
fn naming(
    endpoint: &WebhookEndpoint,
    subscriptions: &[Arc<WebhookSubscription>],
) -> Vec<ObjectRef<WebhookSubscription>> {
    let namespace = endpoint.namespace();
    let name = endpoint.name_any();
    subscriptions
        .iter()
        .filter(|s| {
            s.namespace() == namespace && s.spec.source.endpoint.as_deref() == Some(name.as_str())
        })
        .map(|s| ObjectRef::from_obj(&**s))
        .collect()
}

/// The subscriptions among `subscriptions` that read `secret`: by their own
/// references, as their generated signing Secret, or as the NATS
/// credentials of their source endpoint.
fn referencing(
    secret: &Secret,
    subscriptions: &[Arc<WebhookSubscription>],
    endpoints: &Store<WebhookEndpoint>,
) -> Vec<ObjectRef<WebhookSubscription>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    subscriptions
        .iter()
        .filter(|s| s.namespace() == namespace)
        .filter(|s| {
            let spec = &s.spec;
            let own = spec
                .signing
                .as_ref()
                .and_then(|signing| signing.secret_ref.as_ref())
                .into_iter()
                .chain(&spec.destination.ca_secret_ref)
                .chain(
                    spec.nats
                        .as_ref()
                        .and_then(|nats| nats.credentials_secret_ref.as_ref()),
                )
                .any(|reference| reference.name == name);
            let generated = forwarder::signing_secret_name(&s.name_any()) == name;
            let endpoint_credentials = spec.source.endpoint.as_ref().is_some_and(|endpoint| {
                let key = ObjectRef::new(endpoint).within(namespace.as_deref().unwrap_or_default());
                endpoints.get(&key).is_some_and(|endpoint| {
                    endpoint
                        .spec
                        .nats
                        .credentials_secret_ref
                        .as_ref()
                        .is_some_and(|r| r.name == name)
                })
            });
            own || generated || endpoint_credentials
        })
        .map(|s| ObjectRef::from_obj(&**s))
        .collect()
}

impl Retried<WebhookSubscription> for Context {
    fn failures(&self) -> &Failures<WebhookSubscription> {
        &self.failures
    }
}

async fn reconcile(
    subscription: Arc<WebhookSubscription>,
    ctx: Arc<Context>,
) -> Result<Action, finalizer::Error<SubscriptionError>> {
    let started = std::time::Instant::now();
    let namespace = subscription.namespace().unwrap_or_default();
    let name = subscription.name_any();
    let span = tracing::info_span!("reconcile_subscription", %namespace, %name);
    // The pass as an exported span (traces on); the log span above is not.
    let pass = tracing::info_span!(
        target: hookwarden_receiver::telemetry::TARGET,
        "hookwarden.reconcile",
        hookwarden.kind = "WebhookSubscription",
        k8s.namespace.name = namespace.as_str(),
        hookwarden.name = name.as_str(),
        hookwarden.result = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let subscriptions: Api<WebhookSubscription> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(
        &subscriptions,
        FINALIZER,
        subscription.clone(),
        |event| async {
            match event {
                finalizer::Event::Apply(subscription) => apply_pass(&subscription, &ctx).await,
                finalizer::Event::Cleanup(subscription) => cleanup(&subscription, &ctx).await,
            }
        },
    )
    .instrument(span)
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
        ReconcileKind::Subscription,
        if result.is_ok() {
            ReconcileResult::Ok
        } else {
            ReconcileResult::Error
        },
        started.elapsed(),
    );
    if result.is_ok() {
        ctx.failures.succeeded(&subscription);
    }
    result
}

fn api_error(
    action: &'static str,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> SubscriptionError {
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    move |source| SubscriptionError::Api {
        action,
        kind,
        namespace,
        name,
        source,
    }
}

/// One pass of a subscription that is not being deleted.
async fn apply_pass(
    subscription: &WebhookSubscription,
    ctx: &Context,
) -> Result<Action, SubscriptionError> {
    let namespace = subscription.namespace().unwrap_or_default();
    let name = subscription.name_any();
    let child = Component::Forwarder.child_name(&name);
    if name.len() > MAX_NAME {
        let source = SourceState::Invalid {
            reason: "InvalidSpec",
            message: format!(
                "the name {name:?} is too long: it labels the forwarder pods, and a label value has at most {MAX_NAME} characters"
            ),
        };
        return stop(ctx, subscription, &source, Action::await_change()).await;
    }

    // Dereference: the source endpoint, read afresh (the watch that
    // started this pass may be the endpoint's own).
    let endpoint = async {
        match &subscription.spec.source.endpoint {
            Some(endpoint) => Api::<WebhookEndpoint>::namespaced(ctx.client.clone(), &namespace)
                .get_opt(endpoint)
                .await
                .map_err(api_error(
                    "reading",
                    "WebhookEndpoint",
                    &namespace,
                    endpoint,
                )),
            None => Ok(None),
        }
    }
    .instrument(step!("hookwarden.reconcile.dereference"))
    .await?;
    // Validate: the one resolution the forwarder makes too.
    let resolution = step!("hookwarden.reconcile.validate")
        .in_scope(|| Effective::resolve(subscription, endpoint.as_ref(), &ctx.settings));
    let effective = match resolution {
        Ok(effective) => effective,
        Err(error) => {
            let source = match &error {
                PlanError::EndpointMissing(endpoint) => SourceState::EndpointNotFound {
                    message: format!(
                        "WebhookEndpoint {endpoint:?} (spec.source.endpoint) does not exist in namespace {namespace:?}; create it or fix the reference. Running forwarders keep their last configuration"
                    ),
                },
                PlanError::Endpoint(_) => SourceState::Invalid {
                    reason: "EndpointInvalid",
                    message: error.to_string(),
                },
                _ => SourceState::Invalid {
                    reason: "InvalidSpec",
                    message: error.to_string(),
                },
            };
            tracing::info!(%error, "subscription cannot be resolved");
            return stop(ctx, subscription, &source, Action::await_change()).await;
        }
    };
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let owner = Owner::of_subscription(subscription).map_err(SubscriptionError::BuildSigning)?;
    let keys = async {
        if effective.signing_generated {
            ensure_signing_secret(&secret_api, &owner, &namespace).await?;
        }
        Ok::<_, SubscriptionError>(
            secrets::resolve_keys(&secret_api, &namespace, effective.referenced_secrets()).await,
        )
    }
    .instrument(step!("hookwarden.reconcile.secrets"))
    .await?;
    let resolved = match keys {
        Ok(resolved) => resolved,
        Err(error) => {
            let Some(reason) = error.reason() else {
                return Err(error.into());
            };
            let source = SourceState::SecretsUnresolved {
                reason,
                message: format!("{error}. Running forwarders keep their last configuration"),
            };
            return stop(
                ctx,
                subscription,
                &source,
                Action::requeue(MISSING_SECRET_RETRY),
            )
            .await;
        }
    };
    let signing = &effective.signing;
    let signing_valid = resolved
        .get(&signing.name, &signing.key)
        .and_then(hookwarden_receiver::verify::standard_webhooks::decode_secret)
        .is_some();
    if !signing_valid {
        let source = SourceState::SecretsUnresolved {
            reason: "SigningSecretInvalid",
            message: format!(
                "key {:?} of Secret {:?} (spec.signing.secretRef) is not a Standard Webhooks secret: whsec_ followed by base64; remove spec.signing to have one generated",
                signing.key, signing.name
            ),
        };
        return stop(ctx, subscription, &source, Action::await_change()).await;
    }

    // Build.
    let built = step!("hookwarden.reconcile.build")
        .in_scope(|| forwarder::build(subscription, &effective, &resolved, &ctx.settings));
    let children = match built {
        Ok(children) => children,
        Err(error) => {
            let source = SourceState::Invalid {
                reason: "InvalidSpec",
                message: error.to_string(),
            };
            return stop(ctx, subscription, &source, Action::await_change()).await;
        }
    };
    let (previous, deployment) = async {
        // What the forwarders were given until now: where an earlier
        // consumer lives if the source moved.
        let previous = deployed(ctx, subscription, &namespace, &child).await?;
        // The Secret first (pods rolled by a new hash must find it), the
        // policy before the pods it protects.
        apply(&ctx.client, &namespace, &children.secret).await?;
        apply(&ctx.client, &namespace, &children.network_policy).await?;
        if effective.plan.ordered_per_subject {
            make_way_for_recreate(ctx, &namespace, &child).await?;
        }
        let deployment = apply(&ctx.client, &namespace, &children.deployment).await?;
        match &children.pod_disruption_budget {
            Some(budget) => {
                apply(&ctx.client, &namespace, budget).await?;
            }
            None => delete_budget(ctx, subscription, &namespace, &child).await?,
        }
        Ok::<_, SubscriptionError>((previous, deployment))
    }
    .instrument(step!("hookwarden.reconcile.apply"))
    .await?;

    // NATS.
    let consumer = consumer::keep_earlier_reason(
        consumer::reconcile(&ctx.nats, &effective, &resolved, previous.as_ref())
            .instrument(step!("hookwarden.reconcile.consumer"))
            .await,
        subscription.status.as_ref().and_then(|status| {
            status
                .conditions
                .iter()
                .find(|c| c.type_ == sub_status::CONSUMER_READY)
        }),
        subscription.metadata.generation,
    );
    let source = SourceState::Resolved {
        stream: effective.plan.stream.clone(),
        keys: effective.referenced_secrets().len(),
    };
    let forwarder = forwarder_state(subscription, &deployment);
    write_status(
        ctx,
        subscription,
        &Observation {
            source: &source,
            consumer: Some(&consumer),
            forwarder: Some(forwarder),
            signing_secret_name: effective
                .signing_generated
                .then(|| effective.signing.name.clone()),
            consumer_name: Some(effective.plan.durable.clone()),
        },
    )
    .instrument(step!("hookwarden.reconcile.status"))
    .await?;
    Ok(Action::requeue(if consumer.ready {
        ctx.refresh
    } else {
        ctx.refresh.min(CONSUMER_RETRY)
    }))
}

/// A pass that stops before applying: the status says why (the running
/// forwarders, if any, keep their last good configuration and are still
/// reported), and the pass waits as `then` says.
async fn stop(
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

fn forwarder_state(subscription: &WebhookSubscription, deployment: &Deployment) -> ForwarderState {
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
async fn make_way_for_recreate(
    ctx: &Context,
    namespace: &str,
    child: &str,
) -> Result<(), SubscriptionError> {
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), namespace);
    let live = deployments.get_opt(child).await.map_err(api_error(
        "reading",
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
            .map_err(api_error("patching", "Deployment", namespace, child))?;
    }
    Ok(())
}

async fn observe_forwarder(
    ctx: &Context,
    subscription: &WebhookSubscription,
) -> Result<Option<ForwarderState>, SubscriptionError> {
    let namespace = subscription.namespace().unwrap_or_default();
    let child = Component::Forwarder.child_name(&subscription.name_any());
    let deployment = Api::<Deployment>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&child)
        .await
        .map_err(api_error("reading", "Deployment", &namespace, &child))?;
    Ok(deployment
        .filter(|d| controlled_by(d, subscription))
        .map(|d| forwarder_state(subscription, &d)))
}

fn controlled_by<K: Resource>(child: &K, subscription: &WebhookSubscription) -> bool {
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
async fn deployed(
    ctx: &Context,
    subscription: &WebhookSubscription,
    namespace: &str,
    child: &str,
) -> Result<Option<Deployed>, SubscriptionError> {
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .get_opt(child)
        .await
        .map_err(api_error("reading", "Secret", namespace, child))?;
    Ok(secret
        .filter(|s| controlled_by(s, subscription))
        .and_then(|s| Deployed::of(&s)))
}

/// Deletes the forwarders' PodDisruptionBudget `name` if this subscription
/// controls it (scaled back to one replica).
async fn delete_budget(
    ctx: &Context,
    subscription: &WebhookSubscription,
    namespace: &str,
    name: &str,
) -> Result<(), SubscriptionError> {
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), namespace);
    let kind = "PodDisruptionBudget";
    let Some(existing) = api
        .get_metadata_opt(name)
        .await
        .map_err(api_error("reading", kind, namespace, name))?
    else {
        return Ok(());
    };
    if !controlled_by(&existing, subscription) {
        return Ok(());
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(api_error("deleting", kind, namespace, name)(source)),
    }
}

/// Creates the generated signing Secret unless it exists. Created, never
/// applied: the destination has been given its value.
async fn ensure_signing_secret(
    secrets: &Api<Secret>,
    owner: &Owner,
    namespace: &str,
) -> Result<(), SubscriptionError> {
    let name = forwarder::signing_secret_name(owner.name());
    if secrets
        .get_metadata_opt(&name)
        .await
        .map_err(api_error("reading", "Secret", namespace, &name))?
        .is_some()
    {
        return Ok(());
    }
    let secret = forwarder::signing_secret(owner, &forwarder::random_signing_secret())
        .map_err(SubscriptionError::BuildSigning)?;
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(secret = %name, "generated the signing secret");
            Ok(())
        }
        // Another pass (or replica) created it first: keep theirs.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(source) => Err(api_error("creating", "Secret", namespace, &name)(source)),
    }
}

/// The subscription is being deleted: its durable consumer goes, found
/// through the rendered Secret (still there: the garbage collector removes
/// children only once the finalizer is gone), so neither the endpoint nor
/// the user's Secrets need to exist any more. Best effort: a consumer that
/// cannot be removed (NATS down) is reported in a Warning Event naming it,
/// and the deletion goes on, since a subscription that cannot be deleted
/// while NATS is away would hold up its namespace's deletion.
async fn cleanup(
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
async fn write_status(
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
                "writing the status of",
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
async fn publish(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(yaml_spec: &str) -> Arc<WebhookSubscription> {
        Arc::new(
            hookwarden_crds::subscription_from_yaml(&format!(
                "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookSubscription\n\
                 metadata: {{name: to-billing, namespace: ci}}\nspec:\n{yaml_spec}  \
                 destination: {{url: 'http://billing.ci.svc/hooks', caSecretRef: {{name: ca, key: ca.crt}}}}\n"
            ))
            .expect("valid"),
        )
    }

    fn secret(namespace: &str, name: &str) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace},
        }))
        .expect("valid Secret")
    }

    #[test]
    fn an_endpoint_maps_to_the_subscriptions_that_name_it() {
        let github = subscription("  source: {endpoint: github}\n");
        let stream = subscription("  source: {stream: X, subjectPrefix: x}\n");
        let endpoint: WebhookEndpoint = hookwarden_crds::from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
             metadata: {name: github, namespace: ci}\nspec: {provider: github}\n",
        )
        .expect("endpoint");
        let named = naming(&endpoint, &[github, stream.clone()]);
        assert_eq!(named.len(), 1);
        let mut elsewhere = endpoint.clone();
        elsewhere.metadata.namespace = Some("other".to_owned());
        assert!(naming(&elsewhere, &[stream]).is_empty());
    }

    #[test]
    fn a_secret_maps_to_the_subscriptions_that_read_it() {
        let (endpoints, mut writer) = reflector::store::<WebhookEndpoint>();
        let endpoint: WebhookEndpoint = hookwarden_crds::from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
             metadata: {name: github, namespace: ci}\n\
             spec: {provider: github, nats: {credentialsSecretRef: {name: ci-nats, key: user.creds}}}\n",
        )
        .expect("endpoint");
        writer.apply_watcher_event(&watcher::Event::Apply(endpoint));
        let subs = [subscription("  source: {endpoint: github}\n")];
        let names = |secret: &Secret| referencing(secret, &subs, &endpoints).len();
        assert_eq!(names(&secret("ci", "ca")), 1, "the destination's CA");
        assert_eq!(names(&secret("ci", "to-billing-signing")), 1, "generated");
        assert_eq!(
            names(&secret("ci", "ci-nats")),
            1,
            "the endpoint's NATS credentials"
        );
        assert_eq!(names(&secret("ci", "unrelated")), 0);
        assert_eq!(names(&secret("other", "ca")), 0, "another namespace");
    }

    #[test]
    fn status_writes_do_not_start_a_pass_but_finalizers_do() {
        let mut subscription = (*subscription("  source: {endpoint: github}\n")).clone();
        let before = subscription_changes(&subscription);
        subscription.status = Some(Default::default());
        assert_eq!(subscription_changes(&subscription), before);
        subscription.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
        assert_ne!(subscription_changes(&subscription), before);
    }
}
