//! The example consumer as a process against a real nats-server: it waits for
//! the stream, prints every stored event once as a JSON line with its headers,
//! acknowledges it, and under the same durable name resumes after a restart
//! with only what it had not acknowledged.

use std::path::Path;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::PullConsumer, stream};
use hookwarden_tests::{ManagedProcess, NatsServer};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const SUBJECT: &str = "hookwarden.shop.github.>";

fn start(nats: &NatsServer, log: &Path) -> ManagedProcess {
    ManagedProcess::spawn(
        "example consumer",
        Path::new(env!("CARGO_BIN_EXE_hookwarden-example-consumer")),
        &[
            "--nats-url".to_owned(),
            nats.url().to_owned(),
            "--subject".to_owned(),
            SUBJECT.to_owned(),
            "--durable".to_owned(),
            "worker".to_owned(),
        ],
        log,
    )
    .expect("consumer starts")
}

/// The events printed so far (the log also holds the consumer's stderr).
fn printed(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect()
}

async fn publish(js: &jetstream::Context, subject: &str, id: &str, body: &'static [u8]) {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    headers.insert("Hookwarden-Delivery-Id", id);
    headers.insert("Hookwarden-Event", "push");
    js.publish_with_headers(subject.to_owned(), headers, body.into())
        .await
        .expect("published")
        .await
        .expect("stored");
}

/// Until the durable consumer has acknowledged everything in the stream:
/// it prints before it acknowledges, so the log is then complete.
async fn drained(consumer: &mut ManagedProcess, js: &jetstream::Context) {
    consumer
        .wait_until(WAIT, || async {
            let mut stream = js.get_stream("EVENTS").await.ok()?;
            let last = stream.info().await.ok()?.state.last_sequence;
            let mut durable: PullConsumer = stream.get_consumer("worker").await.ok()?;
            let info = durable.info().await.ok()?;
            (info.ack_floor.stream_sequence == last && info.num_ack_pending == 0).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn prints_each_event_once_and_resumes_under_its_durable_name() {
    let nats = NatsServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("consumer.log");
    // Started before any receiver created the stream: it waits for it.
    let mut consumer = start(&nats, &log);
    consumer
        .wait_until(WAIT, || async {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("no stream stores")
                .then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let js = jetstream::new(nats.connect().await.expect("connect"));
    js.create_stream(stream::Config {
        name: "EVENTS".to_owned(),
        subjects: vec!["hookwarden.shop.>".to_owned()],
        duplicate_window: Duration::from_secs(120),
        ..stream::Config::default()
    })
    .await
    .expect("stream created");
    publish(&js, "hookwarden.shop.github.push", "d-1", b"{\"n\":1}").await;
    // A redelivery: JetStream stores it once.
    publish(&js, "hookwarden.shop.github.push", "d-1", b"{\"n\":1}").await;
    // Another endpoint of the same stream: not under --subject.
    publish(&js, "hookwarden.shop.stripe.charge", "s-1", b"{}").await;
    publish(&js, "hookwarden.shop.github.issues", "d-2", b"\xff\xfe").await;
    drained(&mut consumer, &js).await;

    let events = printed(&log);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0],
        serde_json::json!({
            "subject": "hookwarden.shop.github.push",
            "stream_sequence": 1,
            "headers": {"Nats-Msg-Id": "d-1", "Hookwarden-Delivery-Id": "d-1", "Hookwarden-Event": "push"},
            "body": "{\"n\":1}",
        })
    );
    assert_eq!(events[1]["subject"], "hookwarden.shop.github.issues");
    assert_eq!(events[1]["stream_sequence"], 3);
    assert_eq!(events[1]["body_base64"], "//4=");

    // Stopped, an event arrives, back under the same name: only that one.
    consumer.stop();
    publish(&js, "hookwarden.shop.github.push", "d-3", b"{\"n\":3}").await;
    let mut consumer = start(&nats, &log);
    drained(&mut consumer, &js).await;
    let ids: Vec<Value> = printed(&log)
        .iter()
        .map(|e| e["headers"]["Nats-Msg-Id"].clone())
        .collect();
    assert_eq!(ids, ["d-1", "d-2", "d-3"]);
}
