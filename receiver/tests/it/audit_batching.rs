//! The real binary's audit lines are written to stdout in batches by a
//! thread of their own (`hookwarden_receiver::log_writer`): every line
//! handed over before an answer must still reach stdout when the process
//! is stopped right after its last answer.

use std::collections::HashSet;

use crate::binary::ReceiverProcess;
use crate::{ENDPOINT, SECRET, sign};
use futures::future::join_all;
use hookwarden_tests::NatsServer;
use hyper::StatusCode;

/// Deliveries sent before the SIGTERM: their lines (~600 bytes each) are
/// more than one size-triggered batch and less than many.
const DELIVERIES: usize = 200;

/// Sent at once: lines of requests in flight together.
const CONCURRENCY: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_right_after_the_last_answer_loses_no_audit_line() {
    let nats = NatsServer::start().await.expect("nats-server");
    // A flush interval far beyond the test: lines are only written when a
    // batch fills up, or by the flush at exit this test is about.
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        ENDPOINT,
        &[("gh", "secret", SECRET.as_bytes())],
        &[("HOOKWARDEN_LOG_FLUSH_MICROS", "600000000")],
    );
    receiver.ready().await;

    let mut answered = HashSet::new();
    for group in 0..DELIVERIES / CONCURRENCY {
        let sends = (0..CONCURRENCY).map(|k| {
            let receiver = &receiver;
            async move {
                let n = group * CONCURRENCY + k;
                let id = format!("batched-{n}");
                let body = format!(r#"{{"n":{n}}}"#);
                let signature = sign(body.as_bytes());
                let headers = [
                    ("content-type", "application/json"),
                    ("x-github-event", "push"),
                    ("x-github-delivery", id.as_str()),
                    ("x-hub-signature-256", signature.as_str()),
                ];
                receiver.send("POST", &headers, body.as_bytes()).await
            }
        });
        for reply in join_all(sends).await {
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
            let id = reply.headers["x-request-id"].to_str().expect("ascii");
            answered.insert(id.to_owned());
        }
    }
    assert_eq!(answered.len(), DELIVERIES);

    // At once, as Kubernetes may stop a pod right after its last answer.
    let (status, log) = receiver.stop().await;
    assert!(status.success(), "{status}: {log}");
    let audited: Vec<String> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "hookwarden::audit")
        .filter_map(|line| line["request_id"].as_str().map(str::to_owned))
        .collect();
    let unique: HashSet<&String> = audited.iter().collect();
    assert_eq!(audited.len(), unique.len(), "one line per request");
    let missing: Vec<&String> = answered.iter().filter(|id| !unique.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {DELIVERIES} answered requests have no audit line: {missing:?}",
        missing.len()
    );
}
