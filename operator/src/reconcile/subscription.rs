//! The controller of `WebhookSubscription`s, in the same process (and under
//! the same lease) as the endpoints' one.
//!
//! A pass: dereference (the source endpoint, the referenced Secrets, the
//! generated signing Secret created once), validate ([`Effective::resolve`],
//! i.e. [`hookwarden_core::forward::Plan::resolve`]), build
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

use std::sync::Arc;
use std::time::Duration;

use hookwarden_core::forward::PlanError;
use hookwarden_crds::{WebhookEndpoint, WebhookReceiverPool, WebhookSubscription};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::Instrument;

use super::consumer;
use super::error::{ApiAction, api_error};
use super::runner::{self, Failures};
use super::subscription_children::{
    cleanup, delete_budget, deployed, ensure_signing_secret, forwarder_state,
    make_way_for_recreate, stop, write_status,
};
use super::subscription_context::Context;
pub use super::subscription_context::SubscriptionError;
use super::subscription_status::{self as sub_status, Observation, SourceState};
use super::{api, apply, secrets, stream, triggers, watches};
use crate::ops::{Metrics, ReconcileKind, ReconcileResult};
use crate::resources::forwarder::{self, Effective};
use crate::resources::pool::member_stream_endpoint;
use crate::resources::{Component, Owner, Settings};

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

/// What starts a pass: what starts an owner's ([`triggers::owner_changes`])
/// and its finalizers; not the status, which every pass writes.
fn subscription_changes(subscription: &WebhookSubscription) -> Option<u64> {
    Some(triggers::hash_of((
        triggers::owner_changes(subscription),
        &subscription.metadata.finalizers,
    )))
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
    let (store, controller) = watches::owner_controller(&client, namespace, subscription_changes);
    // The endpoints, cached: a changed source endpoint (its stream, prefix
    // or NATS) re-targets the subscriptions that name it, and its NATS
    // credentials Secret is theirs too.
    let (endpoints, endpoint_events) = watches::endpoints(&client, namespace);
    // The pools, cached: a pool member's stream is read on its pool's NATS
    // with its pool's login ([`as_served`]), so a change of either
    // re-targets the subscriptions of its members, and the login's Secret
    // is theirs too.
    let (pools, pool_events) = watches::pools(&client, namespace);
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
    let by_pool = store.clone();
    let by_secret = store.clone();
    let members = endpoints.clone();
    let running = controller
        .owns(
            api::<PodDisruptionBudget>(&client, namespace),
            watches::owned(),
        )
        .watches_stream(endpoint_events, move |endpoint: WebhookEndpoint| {
            naming(&endpoint, &by_endpoint.state())
        })
        .watches_stream(pool_events, move |pool: WebhookReceiverPool| {
            reading_members_of(&pool, &by_pool.state(), &members)
        })
        .watches(
            api::<Secret>(&client, namespace),
            watcher::Config::default(),
            move |secret: Secret| referencing(&secret, &by_secret.state(), &endpoints, &pools),
        );
    let running = runner::run(running, shutdown, reconcile, context);
    (store, running)
}

/// `endpoint` as its stream is served: a pool member's lives on its pool's
/// NATS and is reached with the pool's login (as the pool's pods and the
/// operator reach it), whatever NATS the member's own spec names. A member
/// whose pool does not exist is taken as it is (it is served nowhere).
/// A change of the pool's NATS or login starts a pass
/// ([`reading_members_of`], [`referencing`]).
async fn as_served(
    ctx: &Context,
    namespace: &str,
    endpoint: WebhookEndpoint,
) -> Result<WebhookEndpoint, SubscriptionError> {
    let Some(pool_name) = endpoint.spec.pool.clone() else {
        return Ok(endpoint);
    };
    let pool = Api::<WebhookReceiverPool>::namespaced(ctx.client.clone(), namespace)
        .get_opt(&pool_name)
        .await
        .map_err(api_error(
            ApiAction::Reading,
            "WebhookReceiverPool",
            namespace,
            &pool_name,
        ))?;
    Ok(match pool {
        Some(pool) => member_stream_endpoint(&endpoint, &pool),
        None => endpoint,
    })
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

/// The source endpoint of `subscription`, if it names one and it is
/// cached.
fn source_endpoint(
    subscription: &WebhookSubscription,
    endpoints: &Store<WebhookEndpoint>,
) -> Option<Arc<WebhookEndpoint>> {
    let name = subscription.spec.source.endpoint.as_ref()?;
    let namespace = subscription.namespace().unwrap_or_default();
    endpoints.get(&ObjectRef::new(name).within(&namespace))
}

/// The subscriptions among `subscriptions` whose source endpoint is a
/// member of `pool`: they read its stream on the pool's NATS.
fn reading_members_of(
    pool: &WebhookReceiverPool,
    subscriptions: &[Arc<WebhookSubscription>],
    endpoints: &Store<WebhookEndpoint>,
) -> Vec<ObjectRef<WebhookSubscription>> {
    let namespace = pool.namespace();
    let name = pool.name_any();
    subscriptions
        .iter()
        .filter(|s| s.namespace() == namespace)
        .filter(|s| {
            source_endpoint(s, endpoints)
                .is_some_and(|endpoint| endpoint.spec.pool.as_deref() == Some(name.as_str()))
        })
        .map(|s| ObjectRef::from_obj(&**s))
        .collect()
}

/// The subscriptions among `subscriptions` that read `secret`: by their own
/// references, as their generated signing Secret, or as the NATS
/// credentials of their source endpoint (its own, or its pool's login).
fn referencing(
    secret: &Secret,
    subscriptions: &[Arc<WebhookSubscription>],
    endpoints: &Store<WebhookEndpoint>,
    pools: &Store<WebhookReceiverPool>,
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
            let source = source_endpoint(s, endpoints);
            let endpoint_credentials = source.as_ref().is_some_and(|endpoint| {
                endpoint
                    .spec
                    .nats
                    .credentials_secret_ref
                    .as_ref()
                    .is_some_and(|r| r.name == name)
            });
            let pool_login = source
                .as_ref()
                .and_then(|endpoint| endpoint.spec.pool.as_ref())
                .and_then(|pool| {
                    pools
                        .get(&ObjectRef::new(pool).within(namespace.as_deref().unwrap_or_default()))
                })
                .is_some_and(|pool| {
                    pool.spec
                        .nats
                        .credentials_secret_ref
                        .as_ref()
                        .is_some_and(|r| r.name == name)
                });
            own || generated || endpoint_credentials || pool_login
        })
        .map(|s| ObjectRef::from_obj(&**s))
        .collect()
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
        target: hookwarden_core::telemetry::TARGET,
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
    if let Err(error) = &result {
        let step = match error {
            kube::runtime::finalizer::Error::ApplyFailed(error)
            | kube::runtime::finalizer::Error::CleanupFailed(error) => error.step(),
            // Adding or removing the finalizer, or an object without a name.
            _ => "finalizer",
        };
        ctx.metrics
            .record_reconcile_failure(ReconcileKind::Subscription, step);
    }
    if result.is_ok() {
        ctx.failures.succeeded(&subscription);
    }
    result
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
    // started this pass may be the endpoint's own), as it is served.
    let endpoint = async {
        let Some(name) = &subscription.spec.source.endpoint else {
            return Ok(None);
        };
        let endpoint = Api::<WebhookEndpoint>::namespaced(ctx.client.clone(), &namespace)
            .get_opt(name)
            .await
            .map_err(api_error(
                ApiAction::Reading,
                "WebhookEndpoint",
                &namespace,
                name,
            ))?;
        match endpoint {
            Some(endpoint) => as_served(ctx, &namespace, endpoint).await.map(Some),
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
        .and_then(hookwarden_core::verify::standard_webhooks::decode_secret)
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;

    fn subscription(yaml_spec: &str) -> Arc<WebhookSubscription> {
        Arc::new(
            hookwarden_crds::subscription_from_yaml(&format!(
                "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookSubscription\n\
                 metadata: {{name: to-billing, namespace: ci}}\nspec:\n{yaml_spec}  \
                 destination: {{url: 'http://billing.ci.svc/hooks', caSecretRef: {{name: ca, key: ca.crt}}}}\n"
            ))
            .expect("valid")
            .into(),
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
        .expect("endpoint")
        .into();
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
        .expect("endpoint")
        .into();
        writer.apply_watcher_event(&watcher::Event::Apply(endpoint));
        let (pools, _) = reflector::store::<WebhookReceiverPool>();
        let subs = [subscription("  source: {endpoint: github}\n")];
        let names = |secret: &Secret| referencing(secret, &subs, &endpoints, &pools).len();
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
    fn a_pools_nats_and_login_map_to_the_subscriptions_of_its_members() {
        let (endpoints, mut endpoint_writer) = reflector::store::<WebhookEndpoint>();
        for (name, pool) in [("github", "shared"), ("stripe", "other")] {
            let member: WebhookEndpoint = hookwarden_crds::from_yaml(&format!(
                "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
                 metadata: {{name: {name}, namespace: ci}}\n\
                 spec: {{provider: github, pool: {pool}, nats: {{credentialsSecretRef: {{name: own-nats, key: user.creds}}}}}}\n",
            ))
            .expect("endpoint")
            .into();
            endpoint_writer.apply_watcher_event(&watcher::Event::Apply(member));
        }
        let pool: WebhookReceiverPool = serde_json::from_value(serde_json::json!({
            "apiVersion": "hookwarden.dev/v1alpha1",
            "kind": "WebhookReceiverPool",
            "metadata": {"name": "shared", "namespace": "ci"},
            "spec": {"nats": {"credentialsSecretRef": {"name": "pool-nats", "key": "user.creds"}}},
        }))
        .expect("pool");
        let (pools, mut pool_writer) = reflector::store::<WebhookReceiverPool>();
        pool_writer.apply_watcher_event(&watcher::Event::Apply(pool.clone()));
        let subs = [
            subscription("  source: {endpoint: github}\n"),
            subscription("  source: {endpoint: stripe}\n"),
            subscription("  source: {stream: X, subjectPrefix: x}\n"),
        ];
        assert_eq!(
            reading_members_of(&pool, &subs, &endpoints),
            vec![ObjectRef::from_obj(&*subs[0])],
            "only the subscription of the pool's member"
        );
        let mut elsewhere = pool.clone();
        elsewhere.metadata.namespace = Some("other".to_owned());
        assert!(reading_members_of(&elsewhere, &subs, &endpoints).is_empty());
        assert_eq!(
            referencing(&secret("ci", "pool-nats"), &subs, &endpoints, &pools),
            vec![ObjectRef::from_obj(&*subs[0])],
            "the pool's login is its members' subscriptions' Secret"
        );
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
