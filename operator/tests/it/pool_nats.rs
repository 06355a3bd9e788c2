//! A pool's own NATS login (`spec.nats.credentialsSecretRef`): the pool's
//! pods log in with it for every member (receiver/tests/it/pool.rs proves
//! the binary does), so the operator reads it once for the pool, puts it in
//! the first config Secret, names it in the pods' arguments, and rolls the
//! pods when it changes; without it nothing is applied and the pool says
//! why. No member carries it; the operator manages the members' streams
//! with it.

use std::time::Duration;

use hookwarden_core::publish::Target;
use hookwarden_crds::{WebhookEndpoint, WebhookReceiverPool, WebhookSubscription};
use hookwarden_operator::ops::Ops;
use hookwarden_tests::{NatsServer, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;

use super::pool::{GITHUB_SECRET, apply, apply_member, apply_secret, condition, keys};
use super::reconcile::config_hash;
use super::{WAIT, start_operator, start_operator_with};

/// Not a real `.creds` file: the operator passes it on without reading it.
const CREDS: &str = "-----BEGIN NATS USER JWT-----\npool-test-jwt\n------END NATS USER JWT------\n";
const ROTATED: &str =
    "-----BEGIN NATS USER JWT-----\npool-test-rotated\n------END NATS USER JWT------\n";

/// Pool `shared` (`spec.nats` is `nats` with the login `pool-nats` /
/// `user.creds`) and its member `github` (Secret `github-webhook`).
async fn pool_with_a_member(ns: &TestNamespace, mut nats: serde_json::Value) {
    nats["credentialsSecretRef"] = serde_json::json!({"name": "pool-nats", "key": "user.creds"});
    apply::<WebhookReceiverPool>(
        ns,
        "shared",
        serde_json::json!({
            "apiVersion": "hookwarden.dev/v1alpha1",
            "kind": "WebhookReceiverPool",
            "metadata": {"name": "shared"},
            "spec": {"replicas": 2, "nats": nats},
        }),
    )
    .await;
    apply_member(
        ns,
        "github",
        "shared",
        "github",
        "github-webhook",
        ("gh.example.com", "/github"),
    )
    .await;
}

fn args(deployment: &Deployment) -> Vec<String> {
    deployment
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|pod| pod.containers.first())
        .and_then(|container| container.args.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_pools_nats_credentials_are_read_once_for_the_pool_and_roll_its_pods() {
    let ns = TestNamespace::create("pool-nats").await.expect("namespace");
    apply_secret(&ns, "github-webhook", "secret", GITHUB_SECRET).await;
    let _operator = start_operator(&ns).await;
    pool_with_a_member(&ns, serde_json::json!({})).await;

    // Without its Secret: the pool says which one, and applies nothing.
    let pools = ns.api::<WebhookReceiverPool>();
    let available =
        hookwarden_tests::eventually("the pool's missing credentials", WAIT, || async {
            let status = pools.get("shared").await.ok()?.status?;
            status
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Available" && c.reason == "SecretNotFound")
        })
        .await;
    assert_eq!(available.status, "False");
    assert!(
        available.message.contains("spec.nats.credentialsSecretRef")
            && available.message.contains("pool-nats"),
        "{}",
        available.message
    );
    // The member says whose login is missing: not a reference of its own.
    let endpoints = ns.api::<WebhookEndpoint>();
    let unresolved = hookwarden_tests::eventually(
        "the member's SecretsResolved to name the pool's login",
        WAIT,
        || async {
            let endpoint = endpoints.get("github").await.ok()?;
            condition(&endpoint, "SecretsResolved").filter(|c| c.reason == "SecretNotFound")
        },
    )
    .await;
    assert!(
        unresolved
            .message
            .starts_with("the NATS login of pool \"shared\" (its spec.nats.credentialsSecretRef)")
            && unresolved.message.contains("pool-nats"),
        "{}",
        unresolved.message
    );
    let deployments = ns.api::<Deployment>();
    assert!(
        deployments
            .get_opt("shared-pool")
            .await
            .expect("read")
            .is_none(),
        "pods that could not log in to NATS"
    );

    // Created: its watch starts the pass; the file is in the first shard,
    // named in the arguments, and no member's entry carries it.
    apply_secret(&ns, "pool-nats", "user.creds", CREDS).await;
    let deployment = hookwarden_tests::eventually("the pool Deployment", WAIT, || async {
        deployments.get_opt("shared-pool").await.ok()?
    })
    .await;
    let args = args(&deployment);
    let flag = args
        .iter()
        .position(|a| a == "--nats-credentials-secret-ref")
        .expect("the flag");
    assert_eq!(args[flag + 1], "pool-nats/user.creds");
    let secrets = ns.api::<Secret>();
    let secret = hookwarden_tests::eventually("the member in the pool Secret", WAIT, || async {
        let secret = secrets.get("shared-pool").await.ok()?;
        keys(&secret)
            .contains("endpoint.github.yaml")
            .then_some(secret)
    })
    .await;
    let data = secret.data.clone().unwrap_or_default();
    assert_eq!(
        data.get("secret.pool-nats_user.creds")
            .map(|v| v.0.as_slice()),
        Some(CREDS.as_bytes())
    );
    let manifest = String::from_utf8(data["endpoint.github.yaml"].0.clone()).expect("text");
    assert!(!manifest.contains("user.creds"), "{manifest}");
    assert!(!manifest.contains("credentialsSecretRef"), "{manifest}");

    // Rotated: the receivers read it at start, so the pods roll.
    let before = config_hash(&deployment).expect("a config hash");
    apply_secret(&ns, "pool-nats", "user.creds", ROTATED).await;
    let after = hookwarden_tests::eventually("the pods rolled for the rotation", WAIT, || async {
        let hash = config_hash(&deployments.get("shared-pool").await.ok()?)?;
        (hash != before).then_some(hash)
    })
    .await;
    assert_ne!(after, before);
    let secret = secrets.get("shared-pool").await.expect("the pool Secret");
    assert_eq!(
        secret
            .data
            .unwrap_or_default()
            .get("secret.pool-nats_user.creds")
            .map(|v| v.0.clone()),
        Some(ROTATED.as_bytes().to_vec())
    );
}

/// A pool on a NATS of its own that requires a login, and an operator
/// whose `--nats-url` is another server with no login for the pool's: each
/// member's stream is created and checked with the pool's login on the
/// pool's NATS, as the pool's pods store into it, so the member's
/// `StreamReady` turns True; and a subscription to the member reads that
/// stream there, with that login, and follows a rotation of it. (Before, the operator managed the
/// member's stream without credentials, NATS refused it and every member
/// of such a pool stayed not Ready; a subscription looked on the member's
/// own NATS.)
#[tokio::test]
async fn a_members_stream_and_subscriptions_use_the_pools_nats_and_login() {
    let ns = TestNamespace::create("pool-login")
        .await
        .expect("namespace");
    let pools_nats = NatsServer::builder()
        .require_creds()
        .start()
        .await
        .expect("nats-server in operator mode");
    let creds = pools_nats.creds().expect("creds").to_owned();
    apply_secret(&ns, "github-webhook", "secret", GITHUB_SECRET).await;
    apply_secret(&ns, "pool-nats", "user.creds", &creds).await;
    let _operator = start_operator_with(&ns, Ops::default(), |config| {
        // No status refresh within the test: what reaches the forwarder
        // comes through the watches.
        config.subscription_status_interval = Duration::from_secs(3600);
    })
    .await;
    pool_with_a_member(&ns, serde_json::json!({"url": pools_nats.url()})).await;

    let endpoints = ns.api::<WebhookEndpoint>();
    let stream_ready =
        hookwarden_tests::eventually("the member's StreamReady to be decided", WAIT, || async {
            let endpoint = endpoints.get("github").await.ok()?;
            condition(&endpoint, "StreamReady").filter(|c| c.status != "Unknown")
        })
        .await;
    assert_eq!(
        stream_ready.status, "True",
        "managed with the pool's login: {} {}",
        stream_ready.reason, stream_ready.message
    );
    // The stream is on the pool's NATS.
    let member = endpoints.get("github").await.expect("the member");
    let target = Target::for_endpoint(&(&member).into()).expect("target");
    let jetstream = async_nats::jetstream::new(pools_nats.connect().await.expect("log in"));
    let stream = jetstream
        .get_stream(&target.stream)
        .await
        .expect("the member's stream, on the pool's NATS");

    // A subscription to the member: its consumer on that stream, its
    // forwarder told the pool's NATS and login.
    apply::<WebhookSubscription>(
        &ns,
        "to-billing",
        serde_json::json!({
            "apiVersion": "hookwarden.dev/v1alpha1",
            "kind": "WebhookSubscription",
            "metadata": {"name": "to-billing"},
            "spec": {
                "source": {"endpoint": "github"},
                "destination": {"url": "http://billing.shop.svc:8080/hooks"},
            },
        }),
    )
    .await;
    let subscriptions = ns.api::<WebhookSubscription>();
    let consumer_ready = hookwarden_tests::eventually(
        "the subscription's ConsumerReady to be decided",
        WAIT,
        || async {
            let subscription = subscriptions.get("to-billing").await.ok()?;
            hookwarden_tests::condition(&subscription, "ConsumerReady")
                .filter(|c| c.status != "Unknown")
        },
    )
    .await;
    assert_eq!(
        consumer_ready.status, "True",
        "{} {}",
        consumer_ready.reason, consumer_ready.message
    );
    let subscription = subscriptions.get("to-billing").await.expect("subscription");
    let durable = subscription
        .status
        .and_then(|status| status.consumer)
        .expect("the consumer's name in the status");
    stream
        .consumer_info(&durable)
        .await
        .expect("the durable consumer, on the pool's NATS");
    let rendered = ns
        .api::<Secret>()
        .get("to-billing-forwarder")
        .await
        .expect("the forwarder's Secret")
        .data
        .unwrap_or_default();
    let text = |key: &str| {
        String::from_utf8(rendered.get(key).map(|v| v.0.clone()).unwrap_or_default()).expect("text")
    };
    assert_eq!(text("nats-url"), pools_nats.url());
    assert_eq!(text("secret.pool-nats_user.creds"), creds);
    assert!(
        text("subscription.yaml").contains("pool-nats"),
        "{}",
        text("subscription.yaml")
    );

    // The pool's login rotated (the same user, a file that differs): the
    // pool's Secret is its members' subscriptions' too, so the forwarder's
    // Secret follows.
    let rotated = format!("{creds}\n");
    apply_secret(&ns, "pool-nats", "user.creds", &rotated).await;
    let secrets = ns.api::<Secret>();
    hookwarden_tests::eventually(
        "the forwarder's Secret to carry the rotated login",
        WAIT,
        || async {
            let data = secrets.get("to-billing-forwarder").await.ok()?.data?;
            (data.get("secret.pool-nats_user.creds")?.0 == rotated.as_bytes()).then_some(())
        },
    )
    .await;
}
