//! Every operator metric the chart's alerts and dashboard read
//! (`hookwarden_operator_*`) exists, with the labels they use, on the
//! operator's `/metrics`.
//!
//! In process, not the running binary: the binary needs the control plane
//! (CRDs, watches) to export anything about endpoints, and the brief's
//! budget did not allow that heavier setup here. What is real: the operator's
//! own registry and `/metrics` router, its endpoint cache (a reflector
//! store, as the controllers fill it), and the stream check
//! (`reconcile::audit::run`) against a real nats-server with a real stream,
//! which is where the stream usage comes from. Reconcile counts are recorded
//! through the same `Metrics::record_reconcile` the controllers call.

use std::sync::Arc;
use std::time::Duration;

use hookwarden_core::publish::{Publisher, Target};
use hookwarden_crds::WebhookEndpoint;
use hookwarden_operator::ops::{self, Ops, ReconcileKind, ReconcileResult};
use hookwarden_operator::reconcile::audit::{self, StreamAudit};
use hookwarden_operator::reconcile::stream::Managed;
use hookwarden_tests::NatsServer;
use hookwarden_tests::promql::{self, Exporter};
use http_body_util::BodyExt;
use kube::runtime::reflector::{ObjectRef, store::Writer};
use kube::runtime::watcher::Event;

fn endpoint() -> WebhookEndpoint {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookEndpoint",
        "metadata": {"name": "gh", "namespace": "ci"},
        "spec": {"provider": "github", "generateSecret": true, "nats": {"maxBytes": 1048576}},
        "status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "Ready",
            "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z",
        }]},
    }))
    .expect("endpoint")
}

async fn metrics_text(ops: Ops) -> String {
    let response = ops::respond(&ops, &http::Method::GET, "/metrics");
    let body = response.into_body().collect().await.expect("body");
    String::from_utf8_lossy(&body.to_bytes()).into_owned()
}

#[tokio::test]
async fn every_operator_metric_the_chart_reads_is_exported() {
    let expressions = promql::chart_expressions().unwrap_or_else(|e| panic!("{e}"));
    let nats = NatsServer::start().await.expect("nats-server");
    let client = nats.connect().await.expect("connect");
    let endpoint = endpoint();
    let target = Target::for_endpoint(&(&endpoint).into()).expect("target");
    let publisher = Publisher::new(client.clone(), target.clone(), Duration::from_secs(5));
    publisher.ensure_stream().await.expect("stream");
    let jetstream = async_nats::jetstream::new(client);
    jetstream
        .publish(format!("{}.push", target.subject_prefix), "{}".into())
        .await
        .expect("publish")
        .await
        .expect("stored");

    let ops = Ops::default();
    let mut writer = Writer::<WebhookEndpoint>::default();
    ops.metrics.watch_endpoints(vec![writer.as_reader()]);
    writer.apply_watcher_event(&Event::Apply(endpoint.clone()));
    for kind in [ReconcileKind::Endpoint, ReconcileKind::Subscription] {
        for result in [ReconcileResult::Ok, ReconcileResult::Error] {
            ops.metrics
                .record_reconcile(kind, result, Duration::from_millis(20));
        }
    }

    // The stream check, as the controller runs it.
    let checks = Arc::new(StreamAudit::default());
    checks.watch(
        ObjectRef::from_obj(&endpoint),
        Managed {
            placement: hookwarden_core::publish::Placement::of(
                &jetstream
                    .get_stream(&target.stream)
                    .await
                    .expect("the stream")
                    .cached_info()
                    .clone(),
            ),
            jetstream,
            target: target.clone(),
        },
    );
    let (passes, _unused) = futures::channel::mpsc::unbounded();
    let audit = tokio::spawn(audit::run(
        checks,
        writer.as_reader(),
        Duration::from_millis(50),
        Arc::clone(&ops.metrics),
        passes,
    ));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics_text(ops.clone()).await;
        let exported = promql::exposition(&text);
        let problems = promql::missing(&expressions, &[Exporter::Operator], &exported);
        if problems.is_empty() {
            // The usage is the real stream's: one message, the 1 MiB limit.
            let stream = &target.stream;
            assert!(
                text.contains(&format!(
                    "hookwarden_operator_stream_messages{{endpoint=\"ci/gh\",stream=\"{stream}\"}} 1"
                )),
                "{text}"
            );
            assert!(
                text.contains(&format!(
                    "hookwarden_operator_stream_max_bytes{{endpoint=\"ci/gh\",stream=\"{stream}\"}} 1048576"
                )),
                "{text}"
            );
            audit.abort();
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the chart reads what the operator does not export:\n{}\n\n{text}",
            problems.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
