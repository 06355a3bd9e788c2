//! A pool's own NATS login (`spec.nats.credentialsSecretRef`): the pool's
//! pods log in with it for every member (receiver/tests/it/pool.rs proves
//! the binary does), so the operator reads it once for the pool, puts it in
//! the first config Secret, names it in the pods' arguments, and rolls the
//! pods when it changes; without it nothing is applied and the pool says
//! why. No member carries it.

use hookwarden_crds::WebhookReceiverPool;
use hookwarden_tests::TestNamespace;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;

use super::pool::{GITHUB_SECRET, apply, apply_member, apply_secret, keys};
use super::reconcile::config_hash;
use super::{WAIT, start_operator};

/// Not a real `.creds` file: the operator passes it on without reading it.
const CREDS: &str = "-----BEGIN NATS USER JWT-----\npool-test-jwt\n------END NATS USER JWT------\n";
const ROTATED: &str =
    "-----BEGIN NATS USER JWT-----\npool-test-rotated\n------END NATS USER JWT------\n";

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
    apply::<WebhookReceiverPool>(
        &ns,
        "shared",
        serde_json::json!({
            "apiVersion": "hookwarden.dev/v1alpha1",
            "kind": "WebhookReceiverPool",
            "metadata": {"name": "shared"},
            "spec": {"replicas": 2, "nats": {"credentialsSecretRef": {"name": "pool-nats", "key": "user.creds"}}},
        }),
    )
    .await;
    apply_member(
        &ns,
        "github",
        "shared",
        "github",
        "github-webhook",
        ("gh.example.com", "/github"),
    )
    .await;

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
