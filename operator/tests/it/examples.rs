//! Every manifest in `examples/` is accepted by the real API server with the
//! generated CRDs (schema and CEL rules), exactly as `kubectl apply` would
//! send it, and reads back as the spec the receiver (or, for a
//! `WebhookSubscription`, the operator and the forwarder) would parse.

use std::time::Duration;

use hookwarden_crds::{WebhookEndpoint, WebhookSubscription};
use hookwarden_tests::TestNamespace;
use hookwarden_tests::tools::repo_root;
use kube::api::{Patch, PatchParams};

#[tokio::test]
async fn every_example_applies_to_the_api_server() {
    let ns = TestNamespace::create("examples")
        .await
        .expect("test namespace");
    hookwarden_operator::crd::install(ns.client(), Duration::from_secs(30))
        .await
        .expect("CRD installed");
    let endpoints = ns.api::<WebhookEndpoint>();
    let subscriptions = ns.api::<WebhookSubscription>();
    let mut applied = 0;
    let mut applied_subscriptions = 0;
    let dir = repo_root().join("examples");
    for entry in std::fs::read_dir(&dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read example");
        // The file itself, not a re-serialisation: what kubectl would send.
        let raw: serde_json::Value =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let params = PatchParams::apply("hookwarden-examples");
        if raw["kind"] == "WebhookSubscription" {
            let parsed = hookwarden_crds::subscription_from_yaml(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = parsed.metadata.name.clone().expect("named");
            let stored = subscriptions
                .patch(&name, &params, &Patch::Apply(&raw))
                .await
                .unwrap_or_else(|e| panic!("{} refused: {e}", path.display()));
            assert_eq!(stored.spec, parsed.spec, "{} round-trips", path.display());
            applied_subscriptions += 1;
            continue;
        }
        let parsed =
            hookwarden_crds::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = parsed.metadata.name.clone().expect("named");
        let stored = endpoints
            .patch(&name, &params, &Patch::Apply(&raw))
            .await
            .unwrap_or_else(|e| panic!("{} refused: {e}", path.display()));
        assert_eq!(stored.spec, parsed.spec, "{} round-trips", path.display());
        applied += 1;
    }
    assert!(applied >= 6, "only {applied} examples");
    assert!(applied_subscriptions >= 1, "no subscription example");
}
