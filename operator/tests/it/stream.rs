//! Stream management against a real nats-server and the real control
//! plane: the operator creates the endpoint's stream with the spec's
//! settings over the endpoint's NATS credentials, updates it when the spec
//! changes, reports an unreachable NATS, a missing unmanaged stream and a
//! foreign one as `StreamReady=False` with `Ready` following, never shows
//! the credentials, and never deletes a stream. On a three-node NATS
//! cluster, `StreamReady` says where an R3 stream is and follows a lost
//! node.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use hookwarden_crds::WebhookEndpoint;
use hookwarden_operator::ops::StreamCheck;
use hookwarden_operator::reconcile;
use hookwarden_tests::{NatsCluster, NatsServer, TestNamespace, condition, eventually};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};

use crate::{Operator, WAIT, operator_config, run_operator};

/// The operator's own `--nats-url` points nowhere: every endpoint here names
/// its NATS in `spec.nats.url`.
async fn start_operator(ns: &TestNamespace) -> Operator {
    start_operator_with(
        ns,
        reconcile::DEFAULT_STREAM_CHECK_INTERVAL,
        hookwarden_operator::ops::Ops::default(),
    )
    .await
}

/// An operator checking streams every `stream_check_interval`, counting into
/// `ops`.
async fn start_operator_with(
    ns: &TestNamespace,
    stream_check_interval: Duration,
    ops: hookwarden_operator::ops::Ops,
) -> Operator {
    let mut config = operator_config(ns, "nats://127.0.0.1:1");
    config.stream_check_interval = stream_check_interval;
    run_operator(ns, config, ops, None).await
}

/// Whether `stored` has every field of `wanted` (objects compared key by key).
fn has_fields(stored: &serde_json::Value, wanted: &serde_json::Value) -> bool {
    match (stored, wanted) {
        (serde_json::Value::Object(s), serde_json::Value::Object(w)) => w
            .iter()
            .all(|(k, v)| s.get(k).is_some_and(|s| has_fields(s, v))),
        _ => true,
    }
}

/// Applies the endpoint right after installing this branch's CRD, until the
/// API server kept every field (another worktree may install an older CRD
/// that prunes new fields).
async fn apply_endpoint(ns: &TestNamespace, name: &str, spec: serde_json::Value) {
    let endpoint = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookEndpoint",
        "metadata": {"name": name}, "spec": spec,
    });
    let raw: Api<DynamicObject> = Api::namespaced_with(
        ns.client(),
        ns.name(),
        &ApiResource::erase::<WebhookEndpoint>(&()),
    );
    for _ in 0..5 {
        hookwarden_operator::crd::install(ns.client(), Duration::from_secs(30))
            .await
            .expect("CRD installs");
        ns.api::<WebhookEndpoint>()
            .patch(
                name,
                &PatchParams::apply("hookwarden-test").force(),
                &Patch::Apply(&endpoint),
            )
            .await
            .expect("endpoint applied");
        let stored = raw.get(name).await.expect("read back");
        if has_fields(&stored.data["spec"], &spec) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the API server kept pruning fields of {spec}");
}

async fn apply_secret(ns: &TestNamespace, name: &str, key: &str, value: &str) {
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name}, "stringData": {key: value},
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

/// Waits until `StreamReady` has `status` and `reason`; returns the endpoint.
async fn stream_ready(
    ns: &TestNamespace,
    name: &str,
    status: &str,
    reason: &str,
) -> WebhookEndpoint {
    let api = ns.api::<WebhookEndpoint>();
    let what = format!("StreamReady {status}/{reason} for {name}");
    eventually(&what, WAIT, || async {
        let endpoint = api.get(name).await.ok()?;
        let c = condition(&endpoint, "StreamReady")?;
        (c.status == status && c.reason == reason).then_some(endpoint)
    })
    .await
}

async fn stream_config(js: &jetstream::Context, name: &str) -> Option<stream::Config> {
    let mut stream = js.get_stream(name).await.ok()?;
    Some(stream.info().await.ok()?.config.clone())
}

#[tokio::test]
async fn the_stream_follows_the_spec_over_the_endpoint_credentials_and_outlives_the_endpoint() {
    let ns = TestNamespace::create("stream").await.expect("namespace");
    let nats = NatsServer::builder()
        .require_creds()
        .start()
        .await
        .expect("nats-server in operator mode");
    let creds = nats.creds().expect("creds").to_owned();
    let _operator = start_operator(&ns).await;
    apply_secret(&ns, "gh", "secret", "stream-s3cr3t-1").await;
    apply_secret(&ns, "nats-user", "user.creds", &creds).await;
    let spec = |max_age: u64| {
        serde_json::json!({
            "provider": "github",
            "replicas": 1,
            "secretRefs": [{"name": "gh", "key": "secret"}],
            "nats": {
                "url": nats.url(),
                "maxAgeSeconds": max_age,
                "credentialsSecretRef": {"name": "nats-user", "key": "user.creds"},
            },
        })
    };
    apply_endpoint(&ns, "shop", spec(3600)).await;

    let created = stream_ready(&ns, "shop", "True", "StreamCreated").await;
    let message = condition(&created, "StreamReady").expect("c").message;
    let stream_name = format!("HOOKWARDEN_{}_SHOP", ns.name().to_uppercase());
    assert!(message.contains(&stream_name), "{message}");
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let config = stream_config(&js, &stream_name).await.expect("the stream");
    assert_eq!(
        config.subjects,
        [format!("hookwarden.{}.shop.>", ns.name())]
    );
    assert_eq!(config.max_age, Duration::from_secs(3600));
    assert_eq!(config.storage, stream::StorageType::File);
    // The replay window: twice the default 300 s timestamp tolerance.
    assert_eq!(config.duplicate_window, Duration::from_secs(600));
    assert_eq!(config.discard, stream::DiscardPolicy::New);
    assert_eq!(config.num_replicas, 1);

    // The receiver pod runs on the fake node; with the stream there the
    // endpoint is Ready.
    let api = ns.api::<WebhookEndpoint>();
    eventually("Ready=True", WAIT, || async {
        let endpoint = api.get("shop").await.ok()?;
        (condition(&endpoint, "Ready")?.status == "True").then_some(())
    })
    .await;

    // A changed limit updates the stream in place.
    apply_endpoint(&ns, "shop", spec(7200)).await;
    // `StreamUpdated`, or `StreamInSync` when a pass that started from a
    // cached object older than the update's status wrote it: both are true,
    // and the stream's own settings below are the proof.
    eventually("StreamReady True for generation 2", WAIT, || async {
        let endpoint = api.get("shop").await.ok()?;
        let c = condition(&endpoint, "StreamReady")?;
        (c.status == "True"
            && c.observed_generation == Some(2)
            && ["StreamUpdated", "StreamInSync"].contains(&c.reason.as_str()))
        .then_some(())
    })
    .await;
    let config = stream_config(&js, &stream_name).await.expect("the stream");
    assert_eq!(config.max_age, Duration::from_secs(7200));

    // Neither the seed nor the JWT shows in the status or an Event.
    let seed = creds
        .lines()
        .find(|l| l.starts_with("SU"))
        .expect("seed line")
        .to_owned();
    let jwt = creds
        .lines()
        .find(|l| l.starts_with("eyJ"))
        .expect("jwt line")
        .to_owned();
    let endpoint = api.get("shop").await.expect("endpoint");
    let status = serde_json::to_string(&endpoint.status).expect("status json");
    assert!(!status.contains(&seed) && !status.contains(&jwt));
    let events = ns
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events");
    assert!(!events.items.is_empty());
    for event in &events.items {
        let text = serde_json::to_string(event).expect("event json");
        assert!(!text.contains(&seed) && !text.contains(&jwt), "{text}");
    }

    // Deleting the endpoint keeps the stream and what it stored.
    js.publish(format!("hookwarden.{}.shop.push", ns.name()), "kept".into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    api.delete("shop", &DeleteParams::foreground())
        .await
        .expect("endpoint deleted");
    eventually("the endpoint to be gone", WAIT, || async {
        api.get_opt("shop").await.ok()?.is_none().then_some(())
    })
    .await;
    let mut stream = js.get_stream(&stream_name).await.expect("the stream stays");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
}

#[tokio::test]
async fn unreachable_nats_missing_and_foreign_streams_are_reported() {
    let ns = TestNamespace::create("stream-err")
        .await
        .expect("namespace");
    let nats = NatsServer::start().await.expect("nats-server");
    let _operator = start_operator(&ns).await;
    apply_secret(&ns, "gh", "secret", "stream-s3cr3t-2").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let endpoint = |url: String, nats: serde_json::Value| {
        let mut spec = serde_json::json!({
            "provider": "github",
            "replicas": 1,
            "secretRefs": [{"name": "gh", "key": "secret"}],
            "nats": nats,
        });
        spec["nats"]["url"] = url.into();
        spec
    };

    // Nothing listens there.
    let down = format!("nats://127.0.0.1:{closed}");
    apply_endpoint(&ns, "down", endpoint(down.clone(), serde_json::json!({}))).await;
    let e = stream_ready(&ns, "down", "False", "NatsUnreachable").await;
    let c = condition(&e, "StreamReady").expect("c");
    assert!(c.message.contains(&down), "{}", c.message);
    let ready = condition(&e, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "StreamNotReady")
    );

    // createStream: false and no stream: reported, not created.
    let url = nats.url().to_owned();
    apply_endpoint(
        &ns,
        "unmanaged",
        endpoint(
            url.clone(),
            serde_json::json!({"createStream": false, "stream": "ORDERS"}),
        ),
    )
    .await;
    let e = stream_ready(&ns, "unmanaged", "False", "StreamNotFound").await;
    let message = condition(&e, "StreamReady").expect("c").message;
    assert!(
        message.contains("ORDERS") && message.contains("createStream"),
        "{message}"
    );
    let js = jetstream::new(nats.connect().await.expect("connect"));
    assert!(stream_config(&js, "ORDERS").await.is_none());

    // Once someone creates it with the endpoint's subjects: Unmanaged, True.
    js.create_stream(stream::Config {
        name: "ORDERS".to_owned(),
        subjects: vec![format!("hookwarden.{}.unmanaged.>", ns.name())],
        max_age: Duration::from_secs(9),
        ..stream::Config::default()
    })
    .await
    .expect("created by its owner");
    // A spec change triggers the next pass at once.
    apply_endpoint(
        &ns,
        "unmanaged",
        endpoint(
            url.clone(),
            serde_json::json!({"createStream": false, "stream": "ORDERS", "maxAgeSeconds": 60}),
        ),
    )
    .await;
    stream_ready(&ns, "unmanaged", "True", "Unmanaged").await;
    let config = stream_config(&js, "ORDERS").await.expect("stream");
    assert_eq!(config.max_age, Duration::from_secs(9), "left alone");

    // A managed endpoint whose stream name is taken by another application.
    js.create_stream(stream::Config {
        name: "BILLING".to_owned(),
        subjects: vec!["billing.>".to_owned()],
        ..stream::Config::default()
    })
    .await
    .expect("foreign stream");
    apply_endpoint(
        &ns,
        "clash",
        endpoint(url, serde_json::json!({"stream": "BILLING"})),
    )
    .await;
    let e = stream_ready(&ns, "clash", "False", "StreamConflict").await;
    let message = condition(&e, "StreamReady").expect("c").message;
    assert!(message.contains("billing.>"), "{message}");
    let config = stream_config(&js, "BILLING").await.expect("stream");
    assert_eq!(
        config.subjects,
        ["billing.>"],
        "a foreign stream is not touched"
    );
}

fn passes(ops: &hookwarden_operator::ops::Ops) -> u64 {
    ops.metrics.reconcile_count(
        hookwarden_operator::ops::ReconcileKind::Endpoint,
        hookwarden_operator::ops::ReconcileResult::Ok,
    )
}

fn checks(ops: &hookwarden_operator::ops::Ops, result: StreamCheck) -> u64 {
    ops.metrics.stream_check_count(result)
}

#[tokio::test]
async fn a_ready_endpoint_rests_while_its_stream_is_checked_and_repaired_from_nats_drift() {
    let ns = TestNamespace::create("stream-rest")
        .await
        .expect("namespace");
    let nats = NatsServer::start().await.expect("nats-server");
    let ops = hookwarden_operator::ops::Ops::default();
    // Every second, so the test sees several checks.
    let _operator = start_operator_with(&ns, Duration::from_secs(1), ops.clone()).await;
    apply_secret(&ns, "gh", "secret", "stream-s3cr3t-3").await;
    apply_endpoint(
        &ns,
        "quiet",
        serde_json::json!({
            "provider": "github",
            "replicas": 1,
            "secretRefs": [{"name": "gh", "key": "secret"}],
            "nats": {"url": nats.url(), "maxAgeSeconds": 3600},
        }),
    )
    .await;
    let api = ns.api::<WebhookEndpoint>();
    eventually("Ready=True", WAIT, || async {
        let endpoint = api.get("quiet").await.ok()?;
        (condition(&endpoint, "Ready")?.status == "True").then_some(())
    })
    .await;

    // At rest: once the receiver pod's status has settled, no pass at all,
    // neither from the pass's own status write nor from a timer, while the
    // stream is checked every second.
    eventually("no pass for 3 s", WAIT, || async {
        let before = passes(&ops);
        tokio::time::sleep(Duration::from_secs(3)).await;
        (before > 0 && passes(&ops) == before).then_some(())
    })
    .await;
    let (passes_before, checks_before) = (passes(&ops), checks(&ops, StreamCheck::InSync));
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(passes(&ops), passes_before, "no pass at rest");
    assert!(
        checks(&ops, StreamCheck::InSync) >= checks_before + 3,
        "the stream is checked every second: {} -> {}",
        checks_before,
        checks(&ops, StreamCheck::InSync)
    );

    // Deleted on NATS, which no watch announces: the check finds it missing
    // and a pass creates it again.
    let stream_name = format!("HOOKWARDEN_{}_QUIET", ns.name().to_uppercase());
    let js = jetstream::new(nats.connect().await.expect("connect"));
    assert!(
        stream_config(&js, &stream_name).await.is_some(),
        "{stream_name}"
    );
    js.delete_stream(&stream_name)
        .await
        .expect("deleted on NATS");
    let config = eventually("the stream created again", WAIT, || async {
        stream_config(&js, &stream_name).await
    })
    .await;
    assert_eq!(config.max_age, Duration::from_secs(3600));
    assert!(checks(&ops, StreamCheck::Drifted) >= 1);

    // Edited on NATS: set back to the spec's settings.
    let mut edited = config.clone();
    edited.max_age = Duration::from_secs(7200);
    js.update_stream(edited).await.expect("edited on NATS");
    eventually("the spec's max age back", WAIT, || async {
        let config = stream_config(&js, &stream_name).await?;
        (config.max_age == Duration::from_secs(3600)).then_some(())
    })
    .await;
    assert!(checks(&ops, StreamCheck::Drifted) >= 2);
    assert!(passes(&ops) > passes_before, "the repairs were passes");
}

/// `StreamReady`'s message once it ends with `placement`, the endpoint
/// `Ready` as well.
async fn reported(
    ns: &TestNamespace,
    name: &str,
    cluster: &NatsCluster,
    stream: &str,
    current: usize,
) -> String {
    let api = ns.api::<WebhookEndpoint>();
    let what = format!("StreamReady to say {current} of 3 replicas current, with the leader");
    eventually(&what, WAIT, || async {
        let endpoint = api.get(name).await.ok()?;
        let ready = condition(&endpoint, "StreamReady")?;
        let leader = cluster.placement(stream).await?.leader?;
        let wanted = format!("; {current} of 3 replicas current, leader {leader}");
        (ready.status == "True"
            && ready.message.ends_with(&wanted)
            && condition(&endpoint, "Ready")?.status == "True")
            .then_some(ready.message)
    })
    .await
}

#[tokio::test]
async fn a_replicated_streams_placement_is_reported_and_follows_lost_nodes_and_quorum() {
    let ns = TestNamespace::create("stream-r3").await.expect("namespace");
    let mut cluster = NatsCluster::start().await.expect("three-node NATS cluster");
    let ops = hookwarden_operator::ops::Ops::default();
    // Every second, so a lost node shows in the status within seconds.
    let _operator = start_operator_with(&ns, Duration::from_secs(1), ops.clone()).await;
    apply_secret(&ns, "gh", "secret", "stream-s3cr3t-r3").await;
    apply_endpoint(
        &ns,
        "replicated",
        serde_json::json!({
            "provider": "github",
            "replicas": 1,
            "secretRefs": [{"name": "gh", "key": "secret"}],
            // Every server of the cluster, as spec.nats.url takes them.
            "nats": {"url": cluster.urls(), "replicas": 3},
        }),
    )
    .await;
    let stream_name = format!("HOOKWARDEN_{}_REPLICATED", ns.name().to_uppercase());

    let healthy = reported(&ns, "replicated", &cluster, &stream_name, 3).await;
    assert!(healthy.contains(&stream_name), "{healthy}");
    let placement = cluster
        .wait_for_stream(&stream_name, 3, WAIT)
        .await
        .expect("three current replicas");
    assert_eq!(placement.replicas, 3, "spec.nats.replicas: 3");

    // A follower lost: no Kubernetes event says so; the stream audit finds
    // the stream moved and a pass reports it. Deliveries are still stored
    // by the majority: the endpoint stays Ready.
    let leader = placement.leader.expect("a leader");
    let follower = (0..3)
        .find(|&i| cluster.name(i) != leader)
        .expect("a follower");
    cluster.kill(follower);
    let degraded = reported(&ns, "replicated", &cluster, &stream_name, 2).await;
    assert!(
        !degraded.contains(&format!("leader {}", cluster.name(follower))),
        "{degraded}"
    );
    assert!(
        checks(&ops, StreamCheck::Moved) >= 1,
        "the audit found the stream moved"
    );

    cluster
        .restart(follower)
        .await
        .expect("the follower restarts");
    let healthy = reported(&ns, "replicated", &cluster, &stream_name, 3).await;

    // Two of three lost: no quorum, so no delivery can be stored (the
    // receivers answer 503). The endpoint must not stay Ready on its last
    // good placement: the audit finds the stream moved and a pass reports
    // that it cannot store.
    let leader = healthy
        .rsplit("leader ")
        .next()
        .expect("the leader named")
        .to_owned();
    let lost: Vec<usize> = (0..3).filter(|&i| cluster.name(i) != leader).collect();
    for &i in &lost {
        cluster.kill(i);
    }
    let api = ns.api::<WebhookEndpoint>();
    let no_quorum = eventually("StreamReady=False without quorum", WAIT, || async {
        let endpoint = api.get("replicated").await.ok()?;
        let stream = condition(&endpoint, "StreamReady")?;
        (stream.status == "False" && condition(&endpoint, "Ready")?.status == "False")
            .then_some(stream)
    })
    .await;
    // nats-server 2.15 still answers about the stream: "1 of 3 replicas
    // current, leader n1" until the lone leader steps down, then "no
    // leader". A NATS that answered nothing would be NatsUnreachable.
    assert!(
        ["StreamNoQuorum", "NatsUnreachable"].contains(&no_quorum.reason.as_str()),
        "{} {}",
        no_quorum.reason,
        no_quorum.message
    );

    // Both back: quorum, a leader, and the status says so again.
    for &i in &lost {
        cluster.restart(i).await.expect("the node restarts");
    }
    reported(&ns, "replicated", &cluster, &stream_name, 3).await;
}

#[tokio::test]
async fn the_first_stream_check_after_a_start_comes_at_once_not_an_interval_later() {
    let ns = TestNamespace::create("stream-first")
        .await
        .expect("namespace");
    let nats = NatsServer::start().await.expect("nats-server");
    let ops = hookwarden_operator::ops::Ops::default();
    // An hour: a check due only at the end of its slot would never be seen
    // here, and the stream gauges the alerts read would stay absent as long.
    let _operator = start_operator_with(&ns, Duration::from_secs(3600), ops.clone()).await;
    apply_secret(&ns, "gh", "secret", "stream-s3cr3t-4").await;
    apply_endpoint(
        &ns,
        "first",
        serde_json::json!({
            "provider": "github",
            "replicas": 1,
            "secretRefs": [{"name": "gh", "key": "secret"}],
            "nats": {"url": nats.url()},
        }),
    )
    .await;
    let api = ns.api::<WebhookEndpoint>();
    eventually("Ready=True", WAIT, || async {
        let endpoint = api.get("first").await.ok()?;
        (condition(&endpoint, "Ready")?.status == "True").then_some(())
    })
    .await;
    eventually("the first stream check", WAIT, || async {
        (checks(&ops, StreamCheck::InSync) >= 1).then_some(())
    })
    .await;
}
