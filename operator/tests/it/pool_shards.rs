//! A pool's configuration spread over `spec.configShards` Secrets: each
//! member in the shard its name hashes to, each shard with its own budget,
//! all mounted as one projected volume (issue #15: Kubernetes refuses a
//! Secret over 1 MiB, about 1,000 small members).

use hookwarden_crds::{WebhookEndpoint, WebhookReceiverPool};
use hookwarden_operator::resources::pool::{data_size, shard_of, shard_secret_name};
use hookwarden_tests::TestNamespace;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;

use super::pool::{
    GITHUB_SECRET, apply, apply_member, apply_secret, condition, keys, members, pool_event,
    pool_refused, wait_ready,
};
use super::{WAIT, start_operator};

async fn apply_sharded_pool(ns: &TestNamespace, name: &str, shards: i32) {
    apply::<WebhookReceiverPool>(
        ns,
        name,
        serde_json::json!({
            "apiVersion": "hookwarden.dev/v1alpha1",
            "kind": "WebhookReceiverPool",
            "metadata": {"name": name},
            "spec": {"replicas": 2, "configShards": shards},
        }),
    )
    .await;
}

async fn member(ns: &TestNamespace, name: &str) {
    apply_member(
        ns,
        name,
        "shared",
        "github",
        &format!("{name}-webhook"),
        (&format!("{name}.example.com"), "/github"),
    )
    .await;
}

/// Three members of one pool of 3 shards whose budget holds one member
/// each: the two in different shards are both served (more than one
/// Secret's budget in all), each from its own Secret, and the third,
/// hashed to an occupied shard, is refused `PoolConfigFull` naming that
/// Secret and `spec.configShards`; the oldest members keep theirs. The
/// pods mount the 3 Secrets as one projected volume. Lowered to one shard,
/// the Secrets past it are deleted.
#[tokio::test]
async fn members_spread_over_shards_each_with_its_own_budget() {
    let ns = TestNamespace::create("pool-shards")
        .await
        .expect("namespace");
    // Names of one length (members of one size): `a` and `b` in different
    // shards of 3, `c` in `b`'s.
    let names: Vec<String> = (0..100).map(|n| format!("m{n:02}")).collect();
    let a = names[0].clone();
    let b = names
        .iter()
        .find(|n| shard_of(n, 3) != shard_of(&a, 3))
        .expect("a name in another shard")
        .clone();
    let c = names
        .iter()
        .find(|n| **n != b && shard_of(n, 3) == shard_of(&b, 3))
        .expect("a name in b's shard")
        .clone();
    for name in [&a, &b, &c] {
        apply_secret(&ns, &format!("{name}-webhook"), "secret", GITHUB_SECRET).await;
    }
    // One member's size, measured with the default budget.
    let operator = start_operator(&ns).await;
    apply_sharded_pool(&ns, "shared", 3).await;
    member(&ns, &a).await;
    wait_ready(&ns, &a).await;
    let secrets = ns.api::<Secret>();
    let shard_a = shard_secret_name("shared", shard_of(&a, 3));
    let one = secrets.get(&shard_a).await.expect("a's shard");
    let one = data_size(&one.data.unwrap_or_default());
    operator.stop().await;
    // Room for one member and a half in each shard.
    let budget = one + one / 2;
    let _operator =
        super::start_operator_with(&ns, hookwarden_operator::ops::Ops::default(), |config| {
            config.pool_secret_budget = budget;
        })
        .await;
    member(&ns, &b).await;
    wait_ready(&ns, &b).await;
    // Members are ordered by creation time, whose unit is a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    member(&ns, &c).await;
    let endpoints = ns.api::<WebhookEndpoint>();
    let refused = hookwarden_tests::eventually("c refused", WAIT, || async {
        let endpoint = endpoints.get(&c).await.ok()?;
        let applied = condition(&endpoint, "ConfigApplied")?;
        (applied.status == "False").then_some(applied)
    })
    .await;
    let shard_b = shard_secret_name("shared", shard_of(&b, 3));
    assert_eq!(refused.reason, "PoolConfigFull", "{refused:?}");
    assert!(
        refused.message.contains(&format!("{shard_b:?}"))
            && refused.message.contains("spec.configShards"),
        "names the full shard and what to raise: {refused:?}"
    );
    let status = pool_refused(&ns, "shared", |r| !r.is_empty()).await;
    assert_eq!(
        status,
        [hookwarden_crds::RefusedMember {
            name: c.clone(),
            reason: "PoolConfigFull".to_owned(),
            served: false,
        }]
    );
    pool_event(&ns, "shared", "PoolConfigFull", &c).await;
    for name in [&a, &b] {
        wait_ready(&ns, name).await;
    }
    let in_a = secrets.get(&shard_a).await.expect("a's shard");
    let in_b = secrets.get(&shard_b).await.expect("b's shard");
    assert_eq!(
        keys(&in_a),
        [
            format!("endpoint.{a}.yaml"),
            format!("secret.{a}-webhook_secret")
        ]
        .into(),
        "a member's files all in its shard"
    );
    assert_eq!(
        keys(&in_b),
        [
            format!("endpoint.{b}.yaml"),
            format!("secret.{b}-webhook_secret")
        ]
        .into()
    );
    assert!(
        data_size(&in_a.data.clone().unwrap_or_default())
            + data_size(&in_b.data.clone().unwrap_or_default())
            > budget,
        "the pool serves more than one Secret's budget"
    );
    let recorded = members(&in_b);
    assert!(
        recorded[&b].applied && !recorded[&c].applied,
        "{recorded:?}"
    );
    assert!(!recorded.contains_key(&a), "each shard records its own");
    let deployment = ns
        .api::<Deployment>()
        .get("shared-pool")
        .await
        .expect("Deployment");
    let template = serde_json::to_value(&deployment.spec.template).expect("serializes");
    assert_eq!(
        template["spec"]["volumes"][0]["projected"]["sources"],
        serde_json::json!([
            {"secret": {"name": "shared-pool"}},
            {"secret": {"name": "shared-pool-1"}},
            {"secret": {"name": "shared-pool-2"}},
        ])
    );

    // One shard: the oldest member is served from it, the others are
    // refused, and the Secrets past it are deleted.
    apply_sharded_pool(&ns, "shared", 1).await;
    for gone in ["shared-pool-1", "shared-pool-2"] {
        hookwarden_tests::eventually(&format!("{gone} deleted"), WAIT, || async {
            secrets.get_opt(gone).await.ok()?.is_none().then_some(())
        })
        .await;
    }
    let status = pool_refused(&ns, "shared", |r| r.len() == 2).await;
    assert!(
        status.iter().all(|r| r.reason == "PoolConfigFull"),
        "{status:?}"
    );
    wait_ready(&ns, &a).await;
    let only = secrets.get("shared-pool").await.expect("the one shard");
    assert!(keys(&only).contains(&format!("endpoint.{a}.yaml")));
}
