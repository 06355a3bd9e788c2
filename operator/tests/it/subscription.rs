//! The WebhookSubscription controller against the real control plane and a
//! real nats-server: the children are built and owned, the signing secret
//! is generated once, the durable consumer and the dead-letter stream exist
//! with the Plan's settings, the status shows lag and dead letters, a
//! change of the source endpoint's stream re-targets the consumer, a
//! missing endpoint or Secret is a condition, and deleting the
//! subscription removes its consumer (but keeps its dead letters).
//!
//! No forwarder runs here (kwok pods never start): the pod-level test of
//! `hookwarden-receiver forward` started from this Deployment spec belongs
//! with the forwarder.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer};
use hookwarden_core::forward::Plan;
use hookwarden_crds::{WebhookEndpoint, WebhookSubscription};
use hookwarden_operator::ops::Ops;
use hookwarden_tests::{TestNamespace, condition, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};

use crate::{Operator, WAIT, start_operator_with};

impl Operator {
    async fn jetstream(&self) -> jetstream::Context {
        let client = async_nats::connect(self.nats().url())
            .await
            .expect("test client connects");
        jetstream::new(client)
    }
}

/// An operator whose `--nats-url` is a fresh nats-server, refreshing each
/// subscription's status every second.
async fn start_operator(ns: &TestNamespace) -> Operator {
    start_operator_with(ns, Ops::default(), |config| {
        config.subscription_status_interval = Duration::from_secs(1);
    })
    .await
}

async fn apply_secret(ns: &TestNamespace, name: &str, data: serde_json::Value) {
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name}, "stringData": data,
    });
    ns.api::<Secret>()
        .patch(
            name,
            &PatchParams::apply("hookwarden-test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("Secret applied");
}

async fn apply_endpoint(ns: &TestNamespace, name: &str, nats: serde_json::Value) {
    let endpoint = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookEndpoint",
        "metadata": {"name": name},
        "spec": {
            "provider": "github",
            "replicas": 1,
            "secretRefs": [{"name": "gh", "key": "secret"}],
            "nats": nats,
        },
    });
    ns.api::<WebhookEndpoint>()
        .patch(
            name,
            &PatchParams::apply("hookwarden-test").force(),
            &Patch::Apply(&endpoint),
        )
        .await
        .expect("endpoint applied");
}

async fn apply_subscription(ns: &TestNamespace, name: &str, spec: serde_json::Value) {
    let subscription = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookSubscription",
        "metadata": {"name": name}, "spec": spec,
    });
    ns.api::<WebhookSubscription>()
        .patch(
            name,
            &PatchParams::apply("hookwarden-test").force(),
            &Patch::Apply(&subscription),
        )
        .await
        .expect("subscription applied");
}

/// Waits until `name`'s condition `type_` has `status` and `reason`;
/// fails with the conditions last seen.
async fn wait_condition(
    ns: &TestNamespace,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> WebhookSubscription {
    let api = ns.api::<WebhookSubscription>();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let subscription = api.get(name).await.ok();
        if let Some(subscription) = &subscription
            && condition(subscription, type_)
                .is_some_and(|c| c.status == status && c.reason == reason)
        {
            return subscription.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {name}: {type_}={status} ({reason}); last seen: {:#?}",
            subscription.and_then(|s| s.status).map(|s| s.conditions)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn plan_of(subscription: &WebhookSubscription, endpoint: &WebhookEndpoint) -> Plan {
    Plan::resolve(&subscription.into(), Some(&endpoint.into()))
        .expect("the test's subscription resolves")
}

async fn consumer_config(
    js: &jetstream::Context,
    stream: &str,
    durable: &str,
) -> Option<consumer::Config> {
    let stream = js.get_stream(stream).await.ok()?;
    stream.consumer_info(durable).await.ok().map(|i| i.config)
}

fn rendered(secret: &Secret, key: &str) -> String {
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("rendered Secret has {key}"));
    String::from_utf8_lossy(&value.0).into_owned()
}

#[tokio::test]
async fn a_subscription_becomes_a_consumer_a_forwarder_and_a_status() {
    let ns = TestNamespace::create("sub").await.expect("namespace");
    let operator = start_operator(&ns).await;
    let js = operator.jetstream().await;
    apply_secret(&ns, "gh", serde_json::json!({"secret": "gh-s3cr3t"})).await;
    apply_endpoint(&ns, "github", serde_json::json!({})).await;
    apply_subscription(
        &ns,
        "to-billing",
        serde_json::json!({
            "source": {"endpoint": "github"},
            "eventTypes": ["push", "issues"],
            "destination": {"url": "http://billing.shop.svc:8080/hooks", "timeoutSeconds": 5},
            "delivery": {"maxInFlight": 4},
            "replicas": 2,
        }),
    )
    .await;

    let subscription = wait_condition(
        &ns,
        "to-billing",
        "ConsumerReady",
        "True",
        "ConsumerCreated",
    )
    .await;
    let endpoint = ns
        .api::<WebhookEndpoint>()
        .get("github")
        .await
        .expect("endpoint");
    let plan = plan_of(&subscription, &endpoint);
    let status = subscription.status.clone().expect("status");
    assert_eq!(status.consumer.as_deref(), Some(plan.durable.as_str()));
    assert_eq!(
        status.signing_secret_name.as_deref(),
        Some("to-billing-signing")
    );
    assert_eq!(status.pending, Some(0));
    assert_eq!(status.dead_letters, Some(0));
    assert_eq!(status.observed_generation, subscription.metadata.generation);
    let source = condition(&subscription, "SourceResolved").expect("SourceResolved");
    assert_eq!(source.status, "True", "{source:?}");
    // Ready follows the forwarder pods kwok reports: unavailable until its
    // fake node has marked them ready, then delivering (which of the two
    // this first look sees depends on kwok's timing).
    let ready = condition(&subscription, "Ready").expect("Ready");
    match (ready.status.as_str(), ready.reason.as_str()) {
        ("False", "ReplicasUnavailable") => {}
        ("True", "Delivering") => assert_eq!(
            ready.message, "2 of 2 forwarder pods available",
            "{ready:?}"
        ),
        _ => panic!("Ready neither waits for the forwarders nor delivers: {ready:?}"),
    }
    assert!(
        subscription
            .finalizers()
            .contains(&"hookwarden.dev/consumer".to_owned())
    );

    // The consumer and the dead-letter stream are the Plan's.
    let config = consumer_config(&js, &plan.stream, &plan.durable)
        .await
        .expect("the durable consumer exists");
    let wanted = plan.consumer_config();
    let mut filters = config.filter_subjects.clone();
    if filters.is_empty() {
        filters.push(config.filter_subject.clone());
    }
    filters.sort();
    let mut wanted_filters = wanted.filter_subjects.clone();
    wanted_filters.sort();
    assert_eq!(filters, wanted_filters);
    assert_eq!(config.ack_policy, consumer::AckPolicy::Explicit);
    assert_eq!(config.deliver_policy, consumer::DeliverPolicy::New);
    assert_eq!(config.max_deliver, -1);
    assert_eq!(config.max_ack_pending, 4);
    assert_eq!(config.ack_wait, Duration::from_secs(20));
    let mut dead_letters = js
        .get_stream(&plan.dead_letter.stream)
        .await
        .expect("the dead-letter stream exists");
    let dlq = dead_letters.info().await.expect("info").config.clone();
    assert_eq!(
        dlq.subjects,
        std::slice::from_ref(&plan.dead_letter.subject)
    );
    assert_eq!(dlq.max_age, plan.dead_letter.max_age);

    // The children, owned by the subscription.
    let child = "to-billing-forwarder";
    let deployment = ns.api::<Deployment>().get(child).await.expect("Deployment");
    let owners = deployment.owner_references();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].kind, "WebhookSubscription");
    assert_eq!(owners[0].uid, subscription.uid().expect("uid"));
    assert_eq!(deployment.spec.replicas, Some(2));
    let args = deployment
        .spec
        .template
        .spec
        .as_ref()
        .map(|p| p.containers[0].args.clone().unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(args[0], "forward");
    let config_secret = ns
        .api::<Secret>()
        .get(child)
        .await
        .expect("rendered Secret");
    let manifest = rendered(&config_secret, "subscription.yaml");
    let resolved =
        hookwarden_crds::subscription_from_yaml(&manifest).expect("the forwarder parses it");
    assert_eq!(
        Plan::resolve(&resolved, None).expect("resolves standalone"),
        plan,
        "the forwarder's plan is the operator's"
    );
    ns.api::<NetworkPolicy>()
        .get(child)
        .await
        .expect("NetworkPolicy");
    let budget = ns
        .api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>()
        .get_opt(child)
        .await
        .expect("read PDB");
    assert!(budget.is_some(), "two replicas get a budget");

    // The signing secret: generated once, a Standard Webhooks secret, in
    // the rendered Secret, and never regenerated.
    let signing = ns
        .api::<Secret>()
        .get("to-billing-signing")
        .await
        .expect("generated signing Secret");
    let value = rendered(&signing, "secret");
    assert!(value.starts_with("whsec_"), "a whsec_ secret");
    assert_eq!(
        rendered(&config_secret, "secret.to-billing-signing_secret"),
        value
    );

    // Lag: events stored for the subscription's types count, others not.
    let subject = |event: &str| format!("{}.{event}", plan.subject_prefix);
    for event in ["push", "push", "issues", "release"] {
        js.publish(subject(event), "{}".into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    eventually("pending 3 in the status", WAIT, || async {
        let s = ns
            .api::<WebhookSubscription>()
            .get("to-billing")
            .await
            .ok()?;
        (s.status?.pending == Some(3)).then_some(())
    })
    .await;

    // Dead letters (as the forwarder writes them): counted, and the newest's
    // headers are the last error.
    for (status, error) in [("500", "Internal Server Error"), ("410", "Gone")] {
        let mut headers = HeaderMap::new();
        headers.insert("Hookwarden-Dead-Letter-Status", status);
        headers.insert("Hookwarden-Dead-Letter-Error", error);
        headers.insert("Hookwarden-Dead-Letter-Attempts", "3");
        js.publish_with_headers(plan.dead_letter.subject.clone(), headers, "{}".into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    let dead = eventually("two dead letters in the status", WAIT, || async {
        let s = ns
            .api::<WebhookSubscription>()
            .get("to-billing")
            .await
            .ok()?;
        let status = s.status?;
        (status.dead_letters == Some(2)).then_some(status)
    })
    .await;
    assert_eq!(
        dead.last_error.as_deref(),
        Some("410: Gone (after 3 attempts)")
    );

    // Scaled down: the budget goes; the signing secret stays the same.
    apply_subscription(
        &ns,
        "to-billing",
        serde_json::json!({
            "source": {"endpoint": "github"},
            "eventTypes": ["push", "issues"],
            "destination": {"url": "http://billing.shop.svc:8080/hooks", "timeoutSeconds": 5},
            "delivery": {"maxInFlight": 4},
            "replicas": 1,
        }),
    )
    .await;
    eventually("the budget removed", WAIT, || async {
        let budget = ns
            .api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>()
            .get_opt(child)
            .await
            .ok()?;
        budget.is_none().then_some(())
    })
    .await;
    let again = ns
        .api::<Secret>()
        .get("to-billing-signing")
        .await
        .expect("signing Secret");
    assert_eq!(rendered(&again, "secret"), value, "never regenerated");

    // The source endpoint moves to another stream: the consumer follows,
    // the one on the old stream goes.
    // (Subjects too: JetStream lets no two streams take the same ones.)
    apply_endpoint(
        &ns,
        "github",
        serde_json::json!({"stream": "GITHUB_MOVED", "subjectPrefix": "github.moved"}),
    )
    .await;
    eventually("the consumer on the new stream", WAIT, || async {
        consumer_config(&js, "GITHUB_MOVED", &plan.durable)
            .await
            .map(|_| ())
    })
    .await;
    eventually("the consumer on the old stream removed", WAIT, || async {
        consumer_config(&js, &plan.stream, &plan.durable)
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let moved = ns
        .api::<Secret>()
        .get(child)
        .await
        .expect("rendered Secret");
    assert!(
        rendered(&moved, "subscription.yaml").contains("GITHUB_MOVED"),
        "the forwarders are given the new stream"
    );

    // Deleted: the consumer goes, the dead letters stay.
    ns.api::<WebhookSubscription>()
        .delete("to-billing", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the subscription gone", WAIT, || async {
        ns.api::<WebhookSubscription>()
            .get_opt("to-billing")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        consumer_config(&js, "GITHUB_MOVED", &plan.durable)
            .await
            .is_none(),
        "the durable consumer was removed with its subscription"
    );
    let mut kept = js
        .get_stream(&plan.dead_letter.stream)
        .await
        .expect("the dead-letter stream is kept");
    assert_eq!(kept.info().await.expect("info").state.messages, 2);
    let events = ns
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("ConsumerDeleted")),
        "an Event says the consumer was deleted"
    );
    for event in &events {
        let note = event.note.as_deref().unwrap_or_default();
        assert!(
            !note.contains("gh-s3cr3t") && !note.contains(&value),
            "{note}"
        );
    }
}

#[tokio::test]
async fn a_missing_endpoint_or_secret_is_a_condition_that_clears() {
    let ns = TestNamespace::create("sub-missing")
        .await
        .expect("namespace");
    let operator = start_operator(&ns).await;
    apply_subscription(
        &ns,
        "orders",
        serde_json::json!({
            "source": {"endpoint": "shop"},
            "destination": {
                "url": "https://hooks.example.com/in",
                "caSecretRef": {"name": "hooks-ca", "key": "ca.crt"},
            },
            "signing": {"secretRef": {"name": "orders-signing", "key": "key"}},
        }),
    )
    .await;
    let missing =
        wait_condition(&ns, "orders", "SourceResolved", "False", "EndpointNotFound").await;
    let ready = condition(&missing, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "EndpointNotFound")
    );
    assert!(ready.message.contains("\"shop\""), "{}", ready.message);
    assert!(
        ns.api::<Deployment>()
            .get_opt("orders-forwarder")
            .await
            .expect("read")
            .is_none(),
        "nothing is deployed without a source"
    );

    // The endpoint appears: now a Secret is missing.
    apply_secret(&ns, "gh", serde_json::json!({"secret": "gh-s3cr3t"})).await;
    apply_endpoint(&ns, "shop", serde_json::json!({})).await;
    let missing = wait_condition(&ns, "orders", "SourceResolved", "False", "SecretNotFound").await;
    let message = condition(&missing, "SourceResolved").expect("c").message;
    assert!(
        message.contains("hooks-ca") || message.contains("orders-signing"),
        "{message}"
    );

    // A signing secret that is not a Standard Webhooks secret is refused.
    apply_secret(
        &ns,
        "hooks-ca",
        serde_json::json!({"ca.crt": "-----BEGIN CERTIFICATE-----"}),
    )
    .await;
    apply_secret(
        &ns,
        "orders-signing",
        serde_json::json!({"key": "not base64 !"}),
    )
    .await;
    wait_condition(
        &ns,
        "orders",
        "SourceResolved",
        "False",
        "SigningSecretInvalid",
    )
    .await;
    apply_secret(
        &ns,
        "orders-signing",
        serde_json::json!({"key": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    )
    .await;
    let resolved = wait_condition(&ns, "orders", "ConsumerReady", "True", "ConsumerCreated").await;
    assert_eq!(
        condition(&resolved, "SourceResolved").expect("c").status,
        "True"
    );
    // The user's signing secret: nothing generated.
    assert_eq!(resolved.status.and_then(|s| s.signing_secret_name), None);
    assert!(
        ns.api::<Secret>()
            .get_opt("orders-signing-signing")
            .await
            .expect("read")
            .is_none()
    );
    drop(operator);
}

/// `orderedPerSubject` turned on for a running subscription: its forwarder
/// Deployment switches to `Recreate` (no surge pod reading beside the old
/// one), through server-side apply over the API server's defaulted rolling
/// update; turned off, it rolls again.
#[tokio::test]
async fn ordered_delivery_switches_the_forwarder_to_one_pod_at_a_time() {
    let ns = TestNamespace::create("sub-order").await.expect("namespace");
    let _operator = start_operator(&ns).await;
    apply_secret(&ns, "gh", serde_json::json!({"secret": "gh-s3cr3t"})).await;
    apply_endpoint(&ns, "github", serde_json::json!({})).await;
    let spec = |ordered: bool| {
        serde_json::json!({
            "source": {"endpoint": "github"},
            "destination": {"url": "http://billing.shop.svc:8080/hooks"},
            "delivery": {"orderedPerSubject": ordered},
        })
    };
    let deployments = ns.api::<Deployment>();
    let strategy_becomes = |wanted: &'static str| {
        let deployments = deployments.clone();
        async move {
            eventually(
                &format!("the forwarder Deployment's strategy to be {wanted}"),
                WAIT,
                || async {
                    let deployment = deployments.get("to-billing-forwarder").await.ok()?;
                    let strategy = deployment.spec.strategy?;
                    (strategy.type_.as_deref() == Some(wanted)).then_some(strategy)
                },
            )
            .await
        }
    };

    apply_subscription(&ns, "to-billing", spec(false)).await;
    let rolling = strategy_becomes("RollingUpdate").await;
    assert!(rolling.rolling_update.is_some(), "{rolling:?}");

    apply_subscription(&ns, "to-billing", spec(true)).await;
    let recreate = strategy_becomes("Recreate").await;
    assert!(recreate.rolling_update.is_none(), "{recreate:?}");
    // The pass went on past the Deployment: the consumer is ready (created
    // or updated, whichever this pass found).
    let subscription = eventually("ConsumerReady=True", WAIT, || async {
        let subscription = ns
            .api::<WebhookSubscription>()
            .get("to-billing")
            .await
            .ok()?;
        condition(&subscription, "ConsumerReady")
            .is_some_and(|c| c.status == "True")
            .then_some(subscription)
    })
    .await;
    assert_eq!(subscription.spec.replicas, 1);

    apply_subscription(&ns, "to-billing", spec(false)).await;
    strategy_becomes("RollingUpdate").await;
}

/// A subscription moved to a stream that does not exist yet (the pass stops
/// there, `SourceStreamNotFound`): the consumer on the stream it read before
/// goes all the same, and the new one is created once the stream is there.
/// (The pass used to stop before removing the old consumer; the next pass
/// found the new stream recorded as the previous one, and the old consumer
/// stayed for good. CI met it when an endpoint's pass created its moved
/// stream a moment after the subscription's pass.)
#[tokio::test]
async fn a_move_to_a_stream_not_there_yet_still_removes_the_old_consumer() {
    let ns = TestNamespace::create("sub-move").await.expect("namespace");
    let operator = start_operator(&ns).await;
    let js = operator.jetstream().await;
    js.create_stream(jetstream::stream::Config {
        name: "ORDERS".to_owned(),
        subjects: vec!["orders.>".to_owned()],
        ..Default::default()
    })
    .await
    .expect("the source stream");
    let spec = |stream: &str, prefix: &str| {
        serde_json::json!({
            "source": {"stream": stream, "subjectPrefix": prefix},
            "destination": {"url": "http://billing.shop.svc:8080/hooks"},
        })
    };
    apply_subscription(&ns, "orders", spec("ORDERS", "orders")).await;
    let subscription =
        wait_condition(&ns, "orders", "ConsumerReady", "True", "ConsumerCreated").await;
    let durable = subscription
        .status
        .and_then(|status| status.consumer)
        .expect("the consumer's name");
    assert!(consumer_config(&js, "ORDERS", &durable).await.is_some());

    apply_subscription(&ns, "orders", spec("BILLING", "billing")).await;
    wait_condition(
        &ns,
        "orders",
        "ConsumerReady",
        "False",
        "SourceStreamNotFound",
    )
    .await;
    eventually("the consumer on the old stream removed", WAIT, || async {
        consumer_config(&js, "ORDERS", &durable)
            .await
            .is_none()
            .then_some(())
    })
    .await;

    js.create_stream(jetstream::stream::Config {
        name: "BILLING".to_owned(),
        subjects: vec!["billing.>".to_owned()],
        ..Default::default()
    })
    .await
    .expect("the new stream");
    eventually("the consumer on the new stream", WAIT, || async {
        consumer_config(&js, "BILLING", &durable).await.map(|_| ())
    })
    .await;
}
