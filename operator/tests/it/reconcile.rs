//! The controller against the real control plane: each test runs it
//! in-process, watching only the test's own namespace.

use hookwarden_crds::WebhookEndpoint;
use hookwarden_operator::ops::Ops;
use hookwarden_operator::resources::CONFIG_HASH_ANNOTATION;
use hookwarden_tests::{TestNamespace, condition};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};

use crate::{IMAGE, eventually, start_operator, start_operator_with};

async fn apply_secret(ns: &TestNamespace, name: &str, data: serde_json::Value) {
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": data,
    });
    ns.api::<Secret>()
        .patch(
            name,
            &PatchParams::apply("hookwarden-test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("user Secret applied");
}

async fn apply_endpoint(ns: &TestNamespace, name: &str, secret: &str) {
    let endpoint = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1",
        "kind": "WebhookEndpoint",
        "metadata": {"name": name},
        "spec": {
            "provider": "github",
            "replicas": 2,
            "secretRefs": [{"name": secret, "key": "secret"}],
        },
    });
    ns.api::<WebhookEndpoint>()
        .patch(
            name,
            &PatchParams::apply("hookwarden-test"),
            &Patch::Apply(&endpoint),
        )
        .await
        .expect("endpoint applied");
}

fn rendered_value(secret: &Secret, key: &str) -> Option<String> {
    let value = secret.data.as_ref()?.get(key)?;
    Some(String::from_utf8_lossy(&value.0).into_owned())
}

/// The pod template's config hash of `deployment`.
pub(super) fn config_hash(deployment: &Deployment) -> Option<String> {
    deployment
        .spec
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(CONFIG_HASH_ANNOTATION)
        .cloned()
}

/// Fails when any condition message or Event in the namespace contains one
/// of `values`; returns how many Events were checked.
async fn assert_no_secret_values_exposed(ns: &TestNamespace, values: &[&str]) -> usize {
    for endpoint in ns
        .api::<WebhookEndpoint>()
        .list(&ListParams::default())
        .await
        .expect("endpoints list")
    {
        for c in endpoint.status.iter().flat_map(|s| &s.conditions) {
            for value in values {
                assert!(
                    !c.message.contains(value),
                    "condition leaks a secret: {c:?}"
                );
            }
        }
    }
    let events = ns
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events list");
    for event in &events {
        let text = format!(
            "{} {}",
            event.note.as_deref().unwrap_or_default(),
            event.reason.as_deref().unwrap_or_default()
        );
        for value in values {
            assert!(!text.contains(value), "Event leaks a secret: {event:?}");
        }
    }
    events.items.len()
}

#[tokio::test]
async fn one_operator_reconciles_each_listed_namespace_and_no_other() {
    let first = TestNamespace::create("watch-a").await.expect("namespace");
    let second = TestNamespace::create("watch-b").await.expect("namespace");
    let unlisted = TestNamespace::create("watch-c").await.expect("namespace");
    let watched = vec![first.name().to_owned(), second.name().to_owned()];
    let _operator = start_operator_with(&first, Ops::default(), |config| {
        config.namespaces = watched;
    })
    .await;
    for ns in [&first, &second, &unlisted] {
        apply_secret(ns, "gh", serde_json::json!({"secret": "watch-s3cr3t"})).await;
        apply_endpoint(ns, "github", "gh").await;
    }
    for ns in [&first, &second] {
        let endpoints = ns.api::<WebhookEndpoint>();
        eventually(&format!("a status in {}", ns.name()), || async {
            let endpoint = endpoints.get("github").await.ok()?;
            condition(&endpoint, "SecretsResolved")
        })
        .await;
        let deployments = ns.api::<Deployment>();
        eventually(&format!("the Deployment in {}", ns.name()), || async {
            deployments.get_opt("github-receiver").await.ok().flatten()
        })
        .await;
    }
    // Both listed namespaces are reconciled by now; the unlisted one is not
    // watched at all, so nothing there was ever touched.
    let untouched = unlisted
        .api::<WebhookEndpoint>()
        .get("github")
        .await
        .expect("endpoint");
    assert!(untouched.status.is_none(), "{:?}", untouched.status);
    assert!(
        unlisted
            .api::<Deployment>()
            .get_opt("github-receiver")
            .await
            .expect("get")
            .is_none()
    );
}

#[tokio::test]
async fn endpoint_gets_hardened_receiver_becomes_ready_rolls_on_rotation_and_is_collected() {
    let ns = TestNamespace::create("reconcile").await.expect("namespace");
    let operator = start_operator(&ns).await;
    const FIRST: &str = "first-s3cr3t-9f2b7c";
    const SECOND: &str = "second-s3cr3t-4a8d1e";
    apply_secret(&ns, "github-webhook", serde_json::json!({"secret": FIRST})).await;
    apply_endpoint(&ns, "github", "github-webhook").await;

    let endpoints = ns.api::<WebhookEndpoint>();
    let secrets = ns.api::<Secret>();
    let deployments = ns.api::<Deployment>();
    let services = ns.api::<Service>();
    let endpoint = endpoints.get("github").await.expect("endpoint");
    let uid = endpoint.uid().expect("uid");

    // The children appear, each owned by the endpoint as its controller.
    let rendered = eventually("the rendered Secret", || async {
        secrets.get_opt("github-receiver").await.ok().flatten()
    })
    .await;
    let deployment = eventually("the Deployment", || async {
        deployments.get_opt("github-receiver").await.ok().flatten()
    })
    .await;
    let service = eventually("the Service", || async {
        services.get_opt("github-receiver").await.ok().flatten()
    })
    .await;
    for owners in [
        rendered.owner_references(),
        deployment.owner_references(),
        service.owner_references(),
    ] {
        assert_eq!(owners.len(), 1, "{owners:?}");
        assert_eq!(owners[0].uid, uid);
        assert_eq!(owners[0].kind, "WebhookEndpoint");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(owners[0].block_owner_deletion, Some(true));
    }
    assert_eq!(
        rendered_value(&rendered, "secret.github-webhook_secret").as_deref(),
        Some(FIRST)
    );
    let manifest = rendered_value(&rendered, "endpoint.yaml").expect("endpoint.yaml");
    let read = hookwarden_crds::from_yaml(&manifest).expect("the receiver can read it");
    // The spec as applied, with the operator's default forwarding headers
    // written out (the receiver never falls back on a default of its own).
    let mut expected = endpoint.spec.clone();
    expected.forwarded_headers = Some(hookwarden_crds::ForwardedHeaders::XForwardedFor);
    assert_eq!(read.spec, expected);
    assert_eq!(read.metadata.namespace.as_deref(), Some(ns.name()));

    // The hardening survived the API server's defaulting and validation.
    let pod = deployment.spec.template.spec.clone().expect("pod spec");
    assert_eq!(pod.automount_service_account_token, Some(false));
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some(IMAGE));
    let security = container.security_context.clone().expect("securityContext");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_owned()])
    );
    let args = container.args.clone().unwrap_or_default();
    assert!(
        args.windows(2)
            .any(|w| w == ["--nats-url", operator.nats().url()]),
        "{args:?}"
    );

    // The pods run on the fake node, and the endpoint reports Ready.
    let pods = ns.api::<Pod>();
    eventually("2 Running receiver pods", || async {
        let list = pods
            .list(&ListParams::default().labels("app.kubernetes.io/instance=github"))
            .await
            .ok()?;
        let running = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("kwok-node-0"))
            .count();
        (running == 2).then_some(())
    })
    .await;
    let ready = eventually("Ready=True", || async {
        let endpoint = endpoints.get("github").await.ok()?;
        let ready = condition(&endpoint, "Ready")?;
        (ready.status == "True").then_some(endpoint)
    })
    .await;
    let status = ready.status.clone().expect("status");
    assert_eq!(status.observed_generation, ready.metadata.generation);
    for type_ in ["SecretsResolved", "ReceiverAvailable"] {
        let c = condition(&ready, type_).expect("condition");
        assert_eq!(c.status, "True", "{c:?}");
    }

    // Rotating the user's Secret re-renders the config and rolls the pods.
    let first_hash = config_hash(&deployment).expect("config hash");
    apply_secret(&ns, "github-webhook", serde_json::json!({"secret": SECOND})).await;
    eventually("the rendered Secret to hold the new value", || async {
        let rendered = secrets.get("github-receiver").await.ok()?;
        (rendered_value(&rendered, "secret.github-webhook_secret")? == SECOND).then_some(())
    })
    .await;
    eventually("a new config hash on the pod template", || async {
        let deployment = deployments.get("github-receiver").await.ok()?;
        let hash = config_hash(&deployment)?;
        (hash != first_hash).then_some(())
    })
    .await;

    let events = assert_no_secret_values_exposed(&ns, &[FIRST, SECOND]).await;
    assert!(events > 0, "the operator and the Deployment record Events");

    // Deleting the endpoint lets the garbage collector remove its children.
    endpoints
        .delete("github", &DeleteParams::background())
        .await
        .expect("endpoint deleted");
    eventually("the children to be garbage-collected", || async {
        let secret = secrets.get_opt("github-receiver").await.ok()?;
        let deployment = deployments.get_opt("github-receiver").await.ok()?;
        let service = services.get_opt("github-receiver").await.ok()?;
        (secret.is_none() && deployment.is_none() && service.is_none()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn missing_secret_or_key_or_an_oversized_value_is_reported_and_nothing_is_deployed_until_fixed()
 {
    let ns = TestNamespace::create("missing").await.expect("namespace");
    let _operator = start_operator(&ns).await;
    apply_endpoint(&ns, "orphan", "not-there").await;

    let endpoints = ns.api::<WebhookEndpoint>();
    let deployments = ns.api::<Deployment>();
    let not_found = eventually("SecretsResolved=False SecretNotFound", || async {
        let endpoint = endpoints.get("orphan").await.ok()?;
        let c = condition(&endpoint, "SecretsResolved")?;
        (c.status == "False" && c.reason == "SecretNotFound").then_some(endpoint)
    })
    .await;
    let message = condition(&not_found, "SecretsResolved")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(
        message.contains("not-there") && message.contains("secret"),
        "{message}"
    );
    let ready = condition(&not_found, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "SecretNotFound")
    );
    assert!(
        deployments
            .get_opt("orphan-receiver")
            .await
            .expect("get")
            .is_none(),
        "no Deployment without its Secrets"
    );
    eventually("a SecretNotFound Event", || async {
        let events = ns.api::<Event>().list(&ListParams::default()).await.ok()?;
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("SecretNotFound"))
            .then_some(())
    })
    .await;

    // The Secret appears without the key: the watch on user Secrets
    // re-reconciles at once (long before the periodic retry).
    const VALUE: &str = "late-s3cr3t-77c1";
    apply_secret(&ns, "not-there", serde_json::json!({"other": VALUE})).await;
    eventually("SecretKeyNotFound", || async {
        let endpoint = endpoints.get("orphan").await.ok()?;
        let c = condition(&endpoint, "SecretsResolved")?;
        (c.reason == "SecretKeyNotFound" && c.message.contains("\"secret\"")).then_some(())
    })
    .await;
    assert!(
        deployments
            .get_opt("orphan-receiver")
            .await
            .expect("get")
            .is_none()
    );

    // The key holds a value no secret is that large (a file pasted into the
    // wrong key): refused before it is rendered, the value never shown.
    let pasted = format!("pasted-{}", "p".repeat(16 * 1024));
    apply_secret(&ns, "not-there", serde_json::json!({"secret": pasted})).await;
    let too_large = eventually("SecretValueTooLarge", || async {
        let endpoint = endpoints.get("orphan").await.ok()?;
        let c = condition(&endpoint, "SecretsResolved")?;
        (c.status == "False" && c.reason == "SecretValueTooLarge").then_some(c.message)
    })
    .await;
    assert!(
        too_large.contains("\"not-there\"") && too_large.contains("16 KiB"),
        "{too_large}"
    );
    assert!(!too_large.contains("pppppppp"), "{too_large}");
    assert!(
        deployments
            .get_opt("orphan-receiver")
            .await
            .expect("get")
            .is_none(),
        "nothing rendered from a value over the limit"
    );

    apply_secret(&ns, "not-there", serde_json::json!({"secret": VALUE})).await;
    eventually("the Deployment once the key exists", || async {
        deployments.get_opt("orphan-receiver").await.ok().flatten()
    })
    .await;
    eventually("SecretsResolved=True", || async {
        let endpoint = endpoints.get("orphan").await.ok()?;
        (condition(&endpoint, "SecretsResolved")?.status == "True").then_some(())
    })
    .await;
    assert_no_secret_values_exposed(&ns, &[VALUE]).await;
}
