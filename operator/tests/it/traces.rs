//! Traces of the operator binary: with `OTEL_EXPORTER_OTLP_ENDPOINT` set to
//! a real Jaeger v2 (the pinned build), each reconcile pass of a
//! WebhookEndpoint and of a WebhookSubscription is a `hookwarden.reconcile`
//! span with its named steps as children, found through Jaeger's query API;
//! neither the endpoint's webhook secret nor the subscription's generated
//! signing secret is in any exported span.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hookwarden_crds::{WebhookEndpoint, WebhookSubscription};
use hookwarden_tests::{Jaeger, NatsServer, TestNamespace, TraceSpan, kubeconfig_path};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};

use crate::WAIT;

const WEBHOOK_SECRET: &str = "op-trace-secret-Vb72";

/// The steps of a pass that configures a receiver, in order.
const ENDPOINT_STEPS: &[&str] = &[
    "hookwarden.reconcile.validate",
    "hookwarden.reconcile.source_ranges",
    "hookwarden.reconcile.secrets",
    "hookwarden.reconcile.build",
    "hookwarden.reconcile.apply",
    "hookwarden.reconcile.stream",
    "hookwarden.reconcile.status",
];

/// The steps of a pass that configures a forwarder, in order.
const SUBSCRIPTION_STEPS: &[&str] = &[
    "hookwarden.reconcile.dereference",
    "hookwarden.reconcile.validate",
    "hookwarden.reconcile.secrets",
    "hookwarden.reconcile.build",
    "hookwarden.reconcile.apply",
    "hookwarden.reconcile.consumer",
    "hookwarden.reconcile.status",
];

/// Kills the operator if the test fails before it is stopped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A successful pass of a `kind` in `namespace` with every one of `steps`
/// as its child, once Jaeger holds one.
fn complete_pass(
    spans: &[TraceSpan],
    namespace: &str,
    kind: &str,
    steps: &[&str],
) -> Option<(TraceSpan, Vec<TraceSpan>)> {
    spans
        .iter()
        .filter(|s| {
            s.name == "hookwarden.reconcile"
                && s.attribute("k8s.namespace.name").as_deref() == Some(namespace)
                && s.attribute("hookwarden.kind").as_deref() == Some(kind)
                && s.attribute("hookwarden.result").as_deref() == Some("ok")
        })
        .find_map(|pass| {
            let children: Vec<TraceSpan> = spans
                .iter()
                .filter(|s| s.trace_id == pass.trace_id && s.parent_span_id == pass.span_id)
                .cloned()
                .collect();
            steps
                .iter()
                .all(|step| children.iter().any(|c| c.name == *step))
                .then(|| (pass.clone(), children))
        })
}

#[tokio::test]
async fn a_reconcile_pass_is_a_span_with_its_named_steps() {
    let nats = NatsServer::start().await.expect("nats-server");
    let jaeger = Jaeger::start().await.expect("jaeger");
    let ns = TestNamespace::create("traces").await.expect("namespace");
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "gh"},
        "stringData": {"secret": WEBHOOK_SECRET},
    });
    ns.api::<Secret>()
        .patch(
            "gh",
            &PatchParams::apply("hookwarden-test"),
            &Patch::Apply(&secret),
        )
        .await
        .expect("Secret applied");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("operator.log");
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_hookwarden-operator"))
        .args(["run", "--namespace", ns.name()])
        .args([
            "--metrics-listen",
            &format!(
                "127.0.0.1:{}",
                hookwarden_tests::free_port().expect("a free port")
            ),
        ])
        .args(["--nats-url", nats.url()])
        .env("KUBECONFIG", kubeconfig_path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("operator starts");
    let mut guard = Guard(child);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();

    let endpoint = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookEndpoint",
        "metadata": {"name": "hook"},
        "spec": {"provider": "github", "secretRefs": [{"name": "gh", "key": "secret"}]},
    });
    let endpoints = ns.api::<WebhookEndpoint>();
    // The operator installs the CRD itself: apply until it is served, then
    // wait for a whole pass in Jaeger.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (pass, children, spans) = loop {
        if let Ok(Some(status)) = guard.0.try_wait() {
            panic!("the operator exited ({status}):\n{}", read_log());
        }
        let _ = endpoints
            .patch(
                "hook",
                &PatchParams::apply("hookwarden-test").force(),
                &Patch::Apply(&endpoint),
            )
            .await;
        let spans = jaeger
            .service_spans("hookwarden-operator")
            .await
            .expect("query API");
        if let Some((pass, children)) =
            complete_pass(&spans, ns.name(), "WebhookEndpoint", ENDPOINT_STEPS)
        {
            break (pass, children, spans);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no complete reconcile pass in Jaeger within {WAIT:?}; spans: {spans:#?}\nlog:\n{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(pass.parent_span_id, "", "a pass is a root: {pass:#?}");
    assert_eq!(pass.attribute("hookwarden.name").as_deref(), Some("hook"));
    assert_eq!(
        pass.attribute("hookwarden.kind").as_deref(),
        Some("WebhookEndpoint")
    );
    assert_steps_once(&children, ENDPOINT_STEPS);
    let exported = format!("{spans:?}");
    assert!(
        !exported.contains(WEBHOOK_SECRET),
        "the webhook secret was exported"
    );

    // A subscription of that endpoint: its pass has its own steps.
    let subscription = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookSubscription",
        "metadata": {"name": "to-billing"},
        "spec": {
            "source": {"endpoint": "hook"},
            "destination": {"url": format!("http://billing.{}.svc:8080/hooks", ns.name())},
        },
    });
    ns.api::<WebhookSubscription>()
        .patch(
            "to-billing",
            &PatchParams::apply("hookwarden-test").force(),
            &Patch::Apply(&subscription),
        )
        .await
        .expect("subscription applied");
    let (pass, children, spans) =
        hookwarden_tests::eventually("a complete subscription pass in Jaeger", WAIT, || async {
            let spans = jaeger.service_spans("hookwarden-operator").await.ok()?;
            let (pass, children) =
                complete_pass(&spans, ns.name(), "WebhookSubscription", SUBSCRIPTION_STEPS)?;
            Some((pass, children, spans))
        })
        .await;
    assert_eq!(pass.parent_span_id, "", "a pass is a root: {pass:#?}");
    assert_eq!(
        pass.attribute("hookwarden.name").as_deref(),
        Some("to-billing")
    );
    assert_steps_once(&children, SUBSCRIPTION_STEPS);
    let generated = ns
        .api::<Secret>()
        .get("to-billing-signing")
        .await
        .expect("the generated signing Secret");
    let signing = generated
        .data
        .and_then(|data| data.get("secret").cloned())
        .map(|value| String::from_utf8_lossy(&value.0).into_owned())
        .expect("a signing secret");
    let key = signing.trim_start_matches("whsec_");
    assert!(key.len() > 20, "{signing}");
    let exported = format!("{spans:?}");
    assert!(
        !exported.contains(key),
        "the generated signing secret was exported"
    );
    let _ = guard.0.kill();
    let _ = guard.0.wait();
}

/// Each of `steps` is a child of the pass exactly once.
fn assert_steps_once(children: &[TraceSpan], steps: &[&str]) {
    let names: Vec<&str> = children.iter().map(|c| c.name.as_str()).collect();
    for step in steps {
        assert_eq!(
            names.iter().filter(|n| *n == step).count(),
            1,
            "{step} once in {names:?}"
        );
    }
}
