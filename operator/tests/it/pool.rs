//! `WebhookReceiverPool` against the real control plane: the pool's
//! children, its Secret of members, the status of pooled endpoints, and
//! the pool's own status and Events on its members.
//! Each test runs the controllers in-process, watching only its own
//! namespace; pods run on the fake (kwok) node.

use std::collections::BTreeSet;

use hookwarden_crds::{WebhookEndpoint, WebhookReceiverPool};
use hookwarden_operator::resources::pool::{Members, recorded_members};
use hookwarden_tests::TestNamespace;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};

use super::{WAIT, start_operator};

pub(super) const GITHUB_SECRET: &str = "pool-test-github-secret-value";
const STRIPE_SECRET: &str = "whsec_cG9vbC10ZXN0LXN0cmlwZS1zZWNyZXQ=";

pub(super) async fn apply<K>(ns: &TestNamespace, name: &str, object: serde_json::Value)
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    ns.api::<K>()
        .patch(
            name,
            &PatchParams::apply("hookwarden-test").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("{name} applied: {e}"));
}

pub(super) async fn apply_secret(ns: &TestNamespace, name: &str, key: &str, value: &str) {
    apply::<Secret>(
        ns,
        name,
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {key: value},
        }),
    )
    .await;
}

async fn apply_pool(ns: &TestNamespace, name: &str) {
    apply::<WebhookReceiverPool>(
        ns,
        name,
        serde_json::json!({
            "apiVersion": "hookwarden.dev/v1alpha1",
            "kind": "WebhookReceiverPool",
            "metadata": {"name": name},
            "spec": {"replicas": 2},
        }),
    )
    .await;
}

/// A pooled endpoint of `provider` verified with `secret` (key `secret`),
/// routed by `host` and `path`.
pub(super) async fn apply_member(
    ns: &TestNamespace,
    name: &str,
    pool: &str,
    provider: &str,
    secret: &str,
    (host, path): (&str, &str),
) {
    apply::<WebhookEndpoint>(
        ns,
        name,
        serde_json::json!({
            "apiVersion": "hookwarden.dev/v1alpha1",
            "kind": "WebhookEndpoint",
            "metadata": {"name": name},
            "spec": {
                "provider": provider,
                "pool": pool,
                "secretRefs": [{"name": secret, "key": "secret"}],
                "ingress": {"host": host, "path": path},
            },
        }),
    )
    .await;
}

pub(super) fn condition(endpoint: &WebhookEndpoint, type_: &str) -> Option<Condition> {
    endpoint
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

pub(super) fn keys(secret: &Secret) -> BTreeSet<String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect()
}

pub(super) fn members(secret: &Secret) -> Members {
    recorded_members(secret.annotations())
}

pub(super) async fn wait_ready(ns: &TestNamespace, name: &str) -> WebhookEndpoint {
    let endpoints = ns.api::<WebhookEndpoint>();
    hookwarden_tests::eventually(&format!("{name} Ready"), WAIT, || async {
        let endpoint = endpoints.get(name).await.ok()?;
        (condition(&endpoint, "Ready")?.status == "True").then_some(endpoint)
    })
    .await
}

/// An Event on pool `pool` with `reason` whose note names `member`, once
/// there is one.
pub(super) async fn pool_event(
    ns: &TestNamespace,
    pool: &str,
    reason: &str,
    member: &str,
) -> Event {
    let what = format!("a {reason} Event on pool {pool} naming {member}");
    hookwarden_tests::eventually(&what, WAIT, || async {
        let events = ns.api::<Event>().list(&ListParams::default()).await.ok()?;
        events.items.into_iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(pool)
                && e.regarding.as_ref().and_then(|r| r.kind.as_deref())
                    == Some("WebhookReceiverPool")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains(&format!("{member:?}")))
        })
    })
    .await
}

/// The pool's `status.refused` once `ready` says it is as awaited.
pub(super) async fn pool_refused(
    ns: &TestNamespace,
    pool: &str,
    ready: impl Fn(&[hookwarden_crds::RefusedMember]) -> bool,
) -> Vec<hookwarden_crds::RefusedMember> {
    let pools = ns.api::<WebhookReceiverPool>();
    hookwarden_tests::eventually(&format!("pool {pool}'s refused members"), WAIT, || async {
        let refused = pools.get(pool).await.ok()?.status?.refused;
        ready(&refused).then_some(refused)
    })
    .await
}

fn pod_template(deployment: &Deployment) -> serde_json::Value {
    serde_json::to_value(&deployment.spec.template).expect("serializes")
}

#[tokio::test]
async fn a_pool_serves_its_endpoints_from_one_secret_and_members_come_and_go_without_a_rollout() {
    let ns = TestNamespace::create("pool").await.expect("namespace");
    let _operator = start_operator(&ns).await;
    apply_secret(&ns, "github-webhook", "secret", GITHUB_SECRET).await;
    apply_secret(&ns, "stripe-webhook", "secret", STRIPE_SECRET).await;
    apply_pool(&ns, "shared").await;
    apply_member(
        &ns,
        "github",
        "shared",
        "github",
        "github-webhook",
        ("hooks.example.com", "/github"),
    )
    .await;
    apply_member(
        &ns,
        "stripe",
        "shared",
        "stripe",
        "stripe-webhook",
        ("hooks.example.com", "/stripe"),
    )
    .await;
    // A second endpoint of the same Secret: its key is rendered once.
    apply_member(
        &ns,
        "ci",
        "shared",
        "github",
        "github-webhook",
        ("ci.example.com", "/github"),
    )
    .await;

    let secrets = ns.api::<Secret>();
    let expected: BTreeSet<String> = [
        "endpoint.ci.yaml",
        "endpoint.github.yaml",
        "endpoint.stripe.yaml",
        "secret.github-webhook_secret",
        "secret.stripe-webhook_secret",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let secret =
        hookwarden_tests::eventually("the pool Secret with three members", WAIT, || async {
            let secret = secrets.get("shared-pool").await.ok()?;
            (keys(&secret) == expected).then_some(secret)
        })
        .await;
    let data = secret.data.clone().unwrap_or_default();
    let manifest = String::from_utf8_lossy(&data["endpoint.github.yaml"].0).into_owned();
    let read = hookwarden_crds::from_yaml(&manifest).expect("the receiver reads it back");
    assert_eq!(read.metadata.name.as_deref(), Some("github"));
    assert_eq!(read.spec.pool.as_deref(), Some("shared"));
    assert!(
        !manifest.contains(GITHUB_SECRET),
        "values stay out of the manifest"
    );
    assert_eq!(
        data["secret.github-webhook_secret"].0,
        GITHUB_SECRET.as_bytes()
    );
    let owner = &secret.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("WebhookReceiverPool", "shared")
    );

    // The pool's children, hardened like a receiver's.
    let deployments = ns.api::<Deployment>();
    let deployment = hookwarden_tests::eventually("the pool Deployment", WAIT, || async {
        deployments.get("shared-pool").await.ok()
    })
    .await;
    let pod = deployment.spec.template.spec.clone().expect("pod spec");
    assert_eq!(pod.automount_service_account_token, Some(false));
    let container = &pod.containers[0];
    let security = container.security_context.clone().expect("securityContext");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    let args = container.args.clone().unwrap_or_default();
    assert!(
        args.windows(2)
            .any(|w| w == ["--pool-dir", "/etc/hookwarden/pool"]),
        "{args:?}"
    );
    assert!(!args.iter().any(|a| a == "--endpoint"), "{args:?}");
    let volume = &pod.volumes.clone().unwrap_or_default()[0];
    let projected = volume.projected.clone().expect("projected volume");
    let sources = projected.sources.unwrap_or_default();
    assert_eq!(sources.len(), 1, "one config Secret by default");
    let source = sources[0].secret.clone().expect("a Secret source");
    assert_eq!(source.name, "shared-pool");
    assert_eq!(source.items, None, "mounted whole");
    ns.api::<Service>()
        .get("shared-pool")
        .await
        .expect("pool Service");
    ns.api::<NetworkPolicy>()
        .get("shared-pool")
        .await
        .expect("pool NetworkPolicy");
    ns.api::<PodDisruptionBudget>()
        .get("shared-pool")
        .await
        .expect("pool budget");

    // Members are Ready with their URLs; none has receivers of its own, and
    // each Ingress leads to the pool's Service.
    for (name, url) in [
        ("github", "http://hooks.example.com/github"),
        ("stripe", "http://hooks.example.com/stripe"),
        ("ci", "http://ci.example.com/github"),
    ] {
        let endpoint = wait_ready(&ns, name).await;
        assert_eq!(
            endpoint.status.as_ref().and_then(|s| s.url.as_deref()),
            Some(url)
        );
        let applied = condition(&endpoint, "ConfigApplied").expect("ConfigApplied");
        assert_eq!(
            (applied.status.as_str(), applied.reason.as_str()),
            ("True", "Applied")
        );
        assert!(
            deployments
                .get_opt(&format!("{name}-receiver"))
                .await
                .expect("get")
                .is_none()
        );
        assert!(
            secrets
                .get_opt(&format!("{name}-receiver"))
                .await
                .expect("get")
                .is_none()
        );
        let ingress = ns
            .api::<Ingress>()
            .get(&format!("{name}-receiver"))
            .await
            .expect("Ingress");
        let backend = serde_json::to_value(&ingress.spec).expect("serializes");
        assert_eq!(
            backend["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
            "shared-pool"
        );
    }
    let pools = ns.api::<WebhookReceiverPool>();
    hookwarden_tests::eventually("the pool's status", WAIT, || async {
        let status = pools.get("shared").await.ok()?.status?;
        let available = status.conditions.iter().find(|c| c.type_ == "Available")?;
        (status.endpoints == Some(3)
            && status.ready_replicas == Some(2)
            && available.status == "True")
            .then_some(())
    })
    .await;

    // A fourth member changes the Secret, not the pod template.
    let template = pod_template(&deployments.get("shared-pool").await.expect("get"));
    apply_member(
        &ns,
        "late",
        "shared",
        "github",
        "github-webhook",
        ("late.example.com", "/"),
    )
    .await;
    hookwarden_tests::eventually("the fourth member in the Secret", WAIT, || async {
        let secret = secrets.get("shared-pool").await.ok()?;
        keys(&secret).contains("endpoint.late.yaml").then_some(())
    })
    .await;
    wait_ready(&ns, "late").await;
    // And its removal too.
    ns.api::<WebhookEndpoint>()
        .delete("stripe", &DeleteParams::background())
        .await
        .expect("deleted");
    hookwarden_tests::eventually("the removed member out of the Secret", WAIT, || async {
        let secret = secrets.get("shared-pool").await.ok()?;
        let keys = keys(&secret);
        (!keys.contains("endpoint.stripe.yaml") && !keys.contains("secret.stripe-webhook_secret"))
            .then_some(())
    })
    .await;
    let after = deployments.get("shared-pool").await.expect("get");
    assert_eq!(pod_template(&after), template, "no rollout for members");
}

#[tokio::test]
async fn a_broken_member_keeps_its_last_good_entry_and_says_so() {
    let ns = TestNamespace::create("pool-broken")
        .await
        .expect("namespace");
    let _operator = start_operator(&ns).await;
    apply_secret(&ns, "github-webhook", "secret", GITHUB_SECRET).await;
    apply_pool(&ns, "shared").await;
    apply_member(
        &ns,
        "github",
        "shared",
        "github",
        "github-webhook",
        ("hooks.example.com", "/github"),
    )
    .await;
    apply_member(
        &ns,
        "other",
        "shared",
        "github",
        "github-webhook",
        ("hooks.example.com", "/other"),
    )
    .await;
    wait_ready(&ns, "github").await;
    let secrets = ns.api::<Secret>();
    let good = secrets.get("shared-pool").await.expect("pool Secret");
    let good_manifest = good.data.clone().unwrap_or_default()["endpoint.github.yaml"].clone();

    // The member now names a Secret that does not exist.
    apply_member(
        &ns,
        "github",
        "shared",
        "github",
        "missing",
        ("hooks.example.com", "/github"),
    )
    .await;
    let endpoints = ns.api::<WebhookEndpoint>();
    let refused = hookwarden_tests::eventually("ConfigApplied False", WAIT, || async {
        let endpoint = endpoints.get("github").await.ok()?;
        let applied = condition(&endpoint, "ConfigApplied")?;
        (applied.status == "False" && applied.observed_generation == endpoint.metadata.generation)
            .then_some(endpoint)
    })
    .await;
    let applied = condition(&refused, "ConfigApplied").expect("condition");
    assert_eq!(applied.reason, "SecretNotFound", "{applied:?}");
    assert!(applied.message.contains("keeps serving"), "{applied:?}");
    assert_eq!(condition(&refused, "Ready").expect("Ready").status, "False");
    let secret = secrets.get("shared-pool").await.expect("pool Secret");
    let data = secret.data.clone().unwrap_or_default();
    assert_eq!(
        data["endpoint.github.yaml"], good_manifest,
        "the last good config stays"
    );
    assert!(data.contains_key("secret.github-webhook_secret"));
    let recorded = members(&secret);
    assert!(recorded["github"].served && !recorded["github"].applied);
    // The other member is untouched and still Ready.
    assert!(recorded["other"].applied);
    assert_eq!(
        condition(&endpoints.get("other").await.expect("get"), "Ready")
            .expect("Ready")
            .status,
        "True"
    );
    // The pool names it as refused, still served, and says so once.
    let refused = pool_refused(&ns, "shared", |r| !r.is_empty()).await;
    assert_eq!(
        refused,
        [hookwarden_crds::RefusedMember {
            name: "github".to_owned(),
            reason: "SecretNotFound".to_owned(),
            served: true,
        }]
    );
    let warning = pool_event(&ns, "shared", "SecretNotFound", "github").await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"), "{warning:?}");
    // No condition, annotation or Event shows a secret value.
    let annotation = serde_json::to_string(&secret.metadata.annotations).expect("serializes");
    assert!(!annotation.contains(GITHUB_SECRET));
    assert!(!applied.message.contains(GITHUB_SECRET));
    assert!(!format!("{warning:?}").contains(GITHUB_SECRET));

    // Fixed: served again with this generation.
    apply_member(
        &ns,
        "github",
        "shared",
        "github",
        "github-webhook",
        ("hooks.example.com", "/github"),
    )
    .await;
    let fixed = hookwarden_tests::eventually("ConfigApplied True again", WAIT, || async {
        let endpoint = endpoints.get("github").await.ok()?;
        let applied = condition(&endpoint, "ConfigApplied")?;
        (applied.status == "True" && applied.observed_generation == endpoint.metadata.generation)
            .then_some(endpoint)
    })
    .await;
    assert_eq!(condition(&fixed, "Ready").expect("Ready").status, "True");
    pool_refused(&ns, "shared", <[_]>::is_empty).await;
}

#[tokio::test]
async fn a_route_another_member_holds_is_refused_and_a_missing_pool_is_reported() {
    let ns = TestNamespace::create("pool-route")
        .await
        .expect("namespace");
    let _operator = start_operator(&ns).await;
    apply_secret(&ns, "github-webhook", "secret", GITHUB_SECRET).await;
    apply_pool(&ns, "shared").await;
    apply_member(
        &ns,
        "first",
        "shared",
        "github",
        "github-webhook",
        ("hooks.example.com", "/github"),
    )
    .await;
    wait_ready(&ns, "first").await;
    // The same route: the later one is refused. (Hosts compare without
    // case; an Ingress host must be lower-case, so that is a unit test.)
    apply_member(
        &ns,
        "second",
        "shared",
        "github",
        "github-webhook",
        ("hooks.example.com", "/github"),
    )
    .await;
    let endpoints = ns.api::<WebhookEndpoint>();
    let second = hookwarden_tests::eventually("second refused", WAIT, || async {
        let endpoint = endpoints.get("second").await.ok()?;
        let applied = condition(&endpoint, "ConfigApplied")?;
        (applied.status == "False").then_some(applied)
    })
    .await;
    assert_eq!(second.reason, "RouteConflict", "{second:?}");
    assert!(second.message.contains("\"first\""), "{second:?}");
    assert!(second.message.contains("does not serve"), "{second:?}");
    let secret = ns
        .api::<Secret>()
        .get("shared-pool")
        .await
        .expect("pool Secret");
    assert!(!keys(&secret).contains("endpoint.second.yaml"));
    assert_eq!(
        condition(&endpoints.get("first").await.expect("get"), "Ready")
            .expect("Ready")
            .status,
        "True"
    );
    // The pool says so too: its status names the refused member, and
    // Events on it tell who joined and whose route conflicts.
    let refused = pool_refused(&ns, "shared", |r| !r.is_empty()).await;
    assert_eq!(
        refused,
        [hookwarden_crds::RefusedMember {
            name: "second".to_owned(),
            reason: "RouteConflict".to_owned(),
            served: false,
        }]
    );
    let joined = pool_event(&ns, "shared", "MemberJoined", "first").await;
    assert_eq!(joined.type_.as_deref(), Some("Normal"), "{joined:?}");
    let conflict = pool_event(&ns, "shared", "RouteConflict", "second").await;
    assert_eq!(conflict.type_.as_deref(), Some("Warning"), "{conflict:?}");
    assert!(
        conflict
            .note
            .as_deref()
            .is_some_and(|n| n.contains("\"first\"")),
        "names the holder: {conflict:?}"
    );

    // The holder leaves: the other member takes the route, nobody is
    // refused any more.
    endpoints
        .delete("first", &DeleteParams::default())
        .await
        .expect("first deleted");
    pool_event(&ns, "shared", "MemberLeft", "first").await;
    pool_event(&ns, "shared", "MemberJoined", "second").await;
    pool_refused(&ns, "shared", <[_]>::is_empty).await;
    wait_ready(&ns, "second").await;

    // A pool that does not exist.
    apply_member(
        &ns,
        "lost",
        "nowhere",
        "github",
        "github-webhook",
        ("lost.example.com", "/"),
    )
    .await;
    let lost = hookwarden_tests::eventually("PoolNotFound", WAIT, || async {
        let endpoint = endpoints.get("lost").await.ok()?;
        let ready = condition(&endpoint, "Ready")?;
        (ready.reason == "PoolNotFound").then_some(ready)
    })
    .await;
    assert_eq!(lost.status, "False");
    assert!(lost.message.contains("\"nowhere\""), "{lost:?}");
    assert!(
        ns.api::<Deployment>()
            .get_opt("lost-receiver")
            .await
            .expect("get")
            .is_none(),
        "no receivers of its own"
    );
}

#[tokio::test]
async fn an_endpoint_that_joins_a_pool_loses_its_own_receivers() {
    let ns = TestNamespace::create("pool-join").await.expect("namespace");
    let _operator = start_operator(&ns).await;
    apply_secret(&ns, "github-webhook", "secret", GITHUB_SECRET).await;
    apply::<WebhookEndpoint>(
        &ns,
        "github",
        serde_json::json!({
            "apiVersion": "hookwarden.dev/v1alpha1",
            "kind": "WebhookEndpoint",
            "metadata": {"name": "github"},
            "spec": {
                "provider": "github",
                "secretRefs": [{"name": "github-webhook", "key": "secret"}],
                "ingress": {"host": "hooks.example.com", "path": "/github"},
            },
        }),
    )
    .await;
    wait_ready(&ns, "github").await;
    let deployments = ns.api::<Deployment>();
    assert!(
        deployments
            .get_opt("github-receiver")
            .await
            .expect("get")
            .is_some()
    );
    apply_pool(&ns, "shared").await;
    apply_member(
        &ns,
        "github",
        "shared",
        "github",
        "github-webhook",
        ("hooks.example.com", "/github"),
    )
    .await;
    hookwarden_tests::eventually("the dedicated receivers gone", WAIT, || async {
        let gone = deployments.get_opt("github-receiver").await.ok()?.is_none()
            && ns
                .api::<Service>()
                .get_opt("github-receiver")
                .await
                .ok()?
                .is_none()
            && ns
                .api::<Secret>()
                .get_opt("github-receiver")
                .await
                .ok()?
                .is_none()
            && ns
                .api::<NetworkPolicy>()
                .get_opt("github-receiver")
                .await
                .ok()?
                .is_none()
            && ns
                .api::<PodDisruptionBudget>()
                .get_opt("github-receiver")
                .await
                .ok()?
                .is_none();
        gone.then_some(())
    })
    .await;
    let endpoint = wait_ready(&ns, "github").await;
    assert_eq!(
        condition(&endpoint, "ConfigApplied")
            .expect("condition")
            .status,
        "True"
    );
    let ingress = ns
        .api::<Ingress>()
        .get("github-receiver")
        .await
        .expect("Ingress kept");
    let spec = serde_json::to_value(&ingress.spec).expect("serializes");
    assert_eq!(
        spec["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "shared-pool"
    );
}

/// A pool's members share one Secret, and the API server refuses a Secret
/// over 1 MiB. The member that would take the data past the budget
/// (`POOL_SECRET_BUDGET`; here set, from what two members really take, to
/// room for two and not three) is refused `PoolConfigFull`, on its own
/// condition, in the pool's status and in a Warning Event; the members
/// created before it keep being served and the pool keeps taking changes.
/// Once another member leaves, it fits and is served.
#[tokio::test]
async fn a_member_that_would_overfill_the_pool_secret_is_refused_and_the_others_served() {
    use hookwarden_operator::resources::pool::data_size;
    let ns = TestNamespace::create("pool-full").await.expect("namespace");
    // Two members, measured with the default budget.
    let operator = start_operator(&ns).await;
    apply_pool(&ns, "shared").await;
    for member in ["one", "two", "three"] {
        apply_secret(&ns, &format!("{member}-webhook"), "secret", GITHUB_SECRET).await;
    }
    for member in ["one", "two"] {
        apply_member(
            &ns,
            member,
            "shared",
            "github",
            &format!("{member}-webhook"),
            (&format!("{member}.example.com"), "/github"),
        )
        .await;
        wait_ready(&ns, member).await;
    }
    let two = ns
        .api::<Secret>()
        .get("shared-pool")
        .await
        .expect("pool Secret");
    let two = data_size(&two.data.unwrap_or_default());
    operator.stop().await;
    // Room for the two and half a third.
    let budget = two + two / 4;
    let _operator =
        super::start_operator_with(&ns, hookwarden_operator::ops::Ops::default(), |config| {
            config.pool_secret_budget = budget;
        })
        .await;
    // Members are ordered by creation time, whose unit is a second (ties
    // by name): "three" must be created in a later second than "two".
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    apply_member(
        &ns,
        "three",
        "shared",
        "github",
        "three-webhook",
        ("three.example.com", "/github"),
    )
    .await;
    let endpoints = ns.api::<WebhookEndpoint>();
    let refused = hookwarden_tests::eventually("three refused", WAIT, || async {
        let endpoint = endpoints.get("three").await.ok()?;
        let applied = condition(&endpoint, "ConfigApplied")?;
        (applied.status == "False").then_some(applied)
    })
    .await;
    assert_eq!(refused.reason, "PoolConfigFull", "{refused:?}");
    assert!(refused.message.contains("1 MiB"), "{refused:?}");
    assert!(
        refused
            .message
            .contains(&format!("{} KiB", budget.div_ceil(1024))),
        "{refused:?}"
    );
    let status = pool_refused(&ns, "shared", |r| !r.is_empty()).await;
    assert_eq!(
        status,
        [hookwarden_crds::RefusedMember {
            name: "three".to_owned(),
            reason: "PoolConfigFull".to_owned(),
            served: false,
        }]
    );
    let secret = ns
        .api::<Secret>()
        .get("shared-pool")
        .await
        .expect("pool Secret");
    let served = keys(&secret);
    assert!(served.contains("endpoint.one.yaml") && served.contains("endpoint.two.yaml"));
    assert!(!served.contains("endpoint.three.yaml"), "{served:?}");
    let full = pool_event(&ns, "shared", "PoolConfigFull", "three").await;
    assert_eq!(full.type_.as_deref(), Some("Warning"), "{full:?}");
    for member in ["one", "two"] {
        wait_ready(&ns, member).await;
    }

    // One leaves: the third fits now and is served.
    endpoints
        .delete("one", &DeleteParams::default())
        .await
        .expect("one deleted");
    wait_ready(&ns, "three").await;
    pool_refused(&ns, "shared", <[_]>::is_empty).await;
    let secret = ns
        .api::<Secret>()
        .get("shared-pool")
        .await
        .expect("pool Secret");
    assert!(keys(&secret).contains("endpoint.three.yaml"));
}
