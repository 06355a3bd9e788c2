//! The CRD against a real API server: installable twice, served, and its
//! schema enforced on `apply`.

use std::time::Duration;

use hookwarden_crds::WebhookEndpoint;
use hookwarden_tests::TestNamespace;
use kube::api::{Patch, PatchParams, PostParams};

/// Applies `manifest` as `name` server-side, as `kubectl apply
/// --server-side` would: the API server's answer, its refusal as text.
async fn server_side_apply<K>(
    api: &kube::Api<K>,
    name: &str,
    manifest: &serde_json::Value,
) -> Result<(), String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply("hookwarden-test"),
        &Patch::Apply(manifest),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn crd_installs_idempotently_and_enforces_its_schema() {
    let ns = TestNamespace::create("crd").await.expect("test namespace");
    for _ in 0..2 {
        hookwarden_operator::crd::install(ns.client(), Duration::from_secs(30))
            .await
            .expect("CRD installs and is established");
    }

    let api = ns.api::<WebhookEndpoint>();
    let manifest = include_str!("../../../examples/github.yaml");
    let endpoint =
        WebhookEndpoint::from(hookwarden_crds::from_yaml(manifest).expect("example parses"));
    let created = api
        .create(&PostParams::default(), &endpoint)
        .await
        .expect("valid endpoint is accepted");
    assert_eq!(created.spec, endpoint.spec);

    // The API server, not only our parser, refuses an unknown preset.
    let mut bad: serde_json::Value = serde_json::to_value(&endpoint).expect("serializes");
    bad["metadata"]["name"] = "bad".into();
    bad["spec"]["provider"] = "gitbub".into();
    let err = api
        .patch(
            "bad",
            &PatchParams::apply("hookwarden-test"),
            &Patch::Apply(&bad),
        )
        .await
        .expect_err("unknown provider is refused");
    let message = err.to_string();
    assert!(message.contains("spec.provider"), "{message}");
}

#[tokio::test]
async fn the_subscription_crd_refuses_bad_specs_through_its_cel_rules() {
    use hookwarden_crds::WebhookSubscription;
    let ns = TestNamespace::create("crd-sub")
        .await
        .expect("test namespace");
    hookwarden_operator::crd::install(ns.client(), Duration::from_secs(30))
        .await
        .expect("CRDs install");
    let api = ns.api::<WebhookSubscription>();
    let apply = |name: &'static str, spec: serde_json::Value| {
        let api = api.clone();
        async move {
            let manifest = serde_json::json!({
                "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookSubscription",
                "metadata": {"name": name}, "spec": spec,
            });
            server_side_apply(&api, name, &manifest).await
        }
    };
    let ok = serde_json::json!({"url": "http://billing.shop.svc:8080/hooks"});
    apply(
        "good",
        serde_json::json!({"source": {"endpoint": "github"}, "destination": ok,
            "retry": {"initialBackoffSeconds": 1, "maxBackoffSeconds": 60}}),
    )
    .await
    .expect("a valid subscription is accepted");
    apply(
        "ordered-one-replica",
        serde_json::json!({"source": {"endpoint": "github"}, "destination": ok,
            "delivery": {"orderedPerSubject": true}}),
    )
    .await
    .expect("ordered delivery with the default single replica is accepted");
    apply(
        "unordered-scaled",
        serde_json::json!({"source": {"endpoint": "github"}, "destination": ok, "replicas": 3}),
    )
    .await
    .expect("unordered delivery scales out");

    for (name, spec, says) in [
        (
            "ordered-replicas",
            serde_json::json!({"source": {"endpoint": "github"}, "destination": ok,
                "delivery": {"orderedPerSubject": true}, "replicas": 2}),
            "delivery.orderedPerSubject needs replicas 0 or 1",
        ),
        (
            "both-sources",
            serde_json::json!({"source": {"endpoint": "github", "stream": "X", "subjectPrefix": "x"}, "destination": ok}),
            "exactly one of source.endpoint and source.stream",
        ),
        (
            "no-source",
            serde_json::json!({"source": {}, "destination": ok}),
            "exactly one of source.endpoint and source.stream",
        ),
        (
            "stream-alone",
            serde_json::json!({"source": {"stream": "X"}, "destination": ok}),
            "source.stream and source.subjectPrefix go together",
        ),
        (
            "plain-http-outside",
            serde_json::json!({"source": {"endpoint": "github"}, "destination": {"url": "http://example.com/hooks"}}),
            "destination.url must be https://",
        ),
        (
            "metadata-service",
            serde_json::json!({"source": {"endpoint": "github"}, "destination": {"url": "http://169.254.169.254/latest"}}),
            "destination.url must be https://",
        ),
        (
            "backoff-order",
            serde_json::json!({"source": {"endpoint": "github"}, "destination": ok,
                "retry": {"initialBackoffSeconds": 60, "maxBackoffSeconds": 5}}),
            "retry.initialBackoffSeconds must not exceed retry.maxBackoffSeconds",
        ),
        (
            "nats-url-password",
            serde_json::json!({"source": {"endpoint": "github"}, "destination": ok,
                "nats": {"url": "nats://u:p@nats:4222"}}),
            "spec.nats.url must not carry credentials",
        ),
    ] {
        let refused = apply(name, spec).await.expect_err(name);
        assert!(refused.contains(says), "{name}: {refused}");
    }
}

#[tokio::test]
async fn the_endpoint_crd_refuses_bad_allowed_sources_through_its_cel_rules() {
    let ns = TestNamespace::create("crd-sources")
        .await
        .expect("test namespace");
    hookwarden_operator::crd::install(ns.client(), Duration::from_secs(30))
        .await
        .expect("CRDs install");
    let api = ns.api::<WebhookEndpoint>();
    let apply = |name: &'static str, sources: serde_json::Value| {
        let api = api.clone();
        async move {
            let manifest = serde_json::json!({
                "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookEndpoint",
                "metadata": {"name": name},
                "spec": {"provider": "github", "secretRefs": [{"name": "gh", "key": "secret"}],
                    "allowedSources": sources},
            });
            server_side_apply(&api, name, &manifest).await
        }
    };
    apply(
        "good",
        serde_json::json!([{"provider": "github"}, {"provider": "aws-sns", "region": "eu-west-1"},
            {"url": "https://lists.example.com/ranges.json", "jsonPath": "$.ranges[*]"}]),
    )
    .await
    .expect("valid sources are accepted");

    for (name, sources, says) in [
        (
            "neither",
            serde_json::json!([{}]),
            "set exactly one of provider and url",
        ),
        (
            "both",
            serde_json::json!([{"provider": "github", "url": "https://x.example/r", "jsonPath": "$"}]),
            "set exactly one of provider and url",
        ),
        (
            "url-without-path",
            serde_json::json!([{"url": "https://x.example/r.json"}]),
            "jsonPath goes with url, and url needs it",
        ),
        (
            "plain-http",
            serde_json::json!([{"url": "http://x.example/r.json", "jsonPath": "$"}]),
            "url must be https://",
        ),
        (
            "region-without-provider",
            serde_json::json!([{"url": "https://x.example/r.json", "jsonPath": "$", "region": "us"}]),
            "service and region go with provider",
        ),
        (
            "unknown-provider",
            serde_json::json!([{"provider": "gitbub"}]),
            "spec.allowedSources[0].provider",
        ),
    ] {
        let refused = apply(name, sources).await.expect_err(name);
        assert!(refused.contains(says), "{name}: {refused}");
    }
}

#[tokio::test]
async fn the_endpoint_crd_refuses_credential_headers_in_store_headers() {
    let ns = TestNamespace::create("crd-store-headers")
        .await
        .expect("test namespace");
    hookwarden_operator::crd::install(ns.client(), Duration::from_secs(30))
        .await
        .expect("CRDs install");
    let api = ns.api::<WebhookEndpoint>();
    let apply = |name: &'static str, headers: serde_json::Value| {
        let api = api.clone();
        async move {
            let manifest = serde_json::json!({
                "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookEndpoint",
                "metadata": {"name": name},
                "spec": {"provider": "github", "secretRefs": [{"name": "gh", "key": "secret"}],
                    "request": {"storeHeaders": headers}},
            });
            server_side_apply(&api, name, &manifest).await
        }
    };
    apply(
        "good",
        serde_json::json!(["X-GitHub-Event", "X-GitHub-Hook-Id"]),
    )
    .await
    .expect("plain provider headers are accepted");
    for (name, headers, says) in [
        (
            "authorization",
            serde_json::json!(["X-GitHub-Event", "authorization"]),
            "must not name a credential-bearing header",
        ),
        (
            "signature",
            serde_json::json!(["X-Hub-Signature-256"]),
            "must not name a credential-bearing header",
        ),
        (
            "cookie",
            serde_json::json!(["Cookie"]),
            "must not name a credential-bearing header",
        ),
        (
            "trello",
            serde_json::json!(["X-Trello-Webhook"]),
            "must not name a credential-bearing header",
        ),
        (
            "not-a-name",
            serde_json::json!(["X GitHub"]),
            "spec.request.storeHeaders[0]",
        ),
    ] {
        let refused = apply(name, headers).await.expect_err(name);
        assert!(refused.contains(says), "{name}: {refused}");
    }
}
