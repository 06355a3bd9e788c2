//! The CRD against a real API server: installable twice, served, and its
//! schema enforced on `apply`.

use std::time::Duration;

use hookwarden_crds::WebhookEndpoint;
use hookwarden_tests::TestNamespace;
use kube::api::{Patch, PatchParams, PostParams};

#[tokio::test]
async fn crd_installs_idempotently_and_enforces_its_schema() {
    let ns = TestNamespace::create("crd").await.expect("test namespace");
    for _ in 0..2 {
        hookwarden_operator::crd::install(ns.client(), Duration::from_secs(30))
            .await
            .expect("CRD installs and is established");
    }

    let api = ns.api::<WebhookEndpoint>();
    let manifest = include_str!("../../examples/github.yaml");
    let endpoint = hookwarden_crds::from_yaml(manifest).expect("example parses");
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
