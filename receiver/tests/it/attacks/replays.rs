//! Replays of captured deliveries, at every age.
//!
//! Before, the default duplicate window (120 s) was shorter than the default
//! timestamp tolerance (300 s): a captured delivery replayed between the
//! two was verified again and stored a second time.

use std::time::Duration;

use async_nats::jetstream;
use hookwarden_tests::NatsServer;
use hyper::StatusCode;

use super::stored;
use crate::binary::ReceiverProcess;

const KEY: &[u8] = b"standard-webhooks-replay-key-32b";

/// A Standard Webhooks endpoint: the id and the timestamp are signed.
fn manifest(extra: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: sw, namespace: replay}}\n\
         spec:\n  provider: standard-webhooks\n  secretRefs: [{{name: sw, key: k}}]\n{extra}"
    )
}

fn secret() -> Vec<u8> {
    use base64::Engine as _;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(KEY)
    )
    .into_bytes()
}

async fn replay(receiver: &ReceiverProcess, id: &str, timestamp: i64, body: &[u8]) -> StatusCode {
    let headers =
        hookwarden_receiver::verify::standard_webhooks::sign(&secret(), id, timestamp, body)
            .expect("a whsec key");
    let mut headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    headers.push(("content-type", "application/json"));
    receiver.send("POST", &headers, body).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_duplicate_window_covers_every_age_a_replay_still_verifies() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        &manifest("  timestampToleranceSeconds: 300\n"),
        &[("sw", "k", &secret())],
        &[],
    );
    receiver.ready().await;
    // A signed timestamp is accepted 300 s either side, so a delivery stored
    // now can be replayed for up to 600 s: JetStream must remember its id
    // that long.
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let mut stream = js.get_stream("HOOKWARDEN_REPLAY_SW").await.expect("stream");
    let window = stream.info().await.expect("info").config.duplicate_window;
    assert!(
        window >= Duration::from_secs(600),
        "duplicate window {window:?} shorter than twice the tolerance"
    );

    // A captured delivery, replayed at every age its timestamp allows (the
    // provider's clock up to 299 s ahead or behind), is stored once.
    let now = jiff::Timestamp::now().as_second();
    let body = br#"{"type":"invoice.paid"}"#;
    for skew in [0, -299, 299, -1, 1] {
        let status = replay(&receiver, "msg_replayed", now + skew, body).await;
        assert_eq!(status, StatusCode::OK, "timestamp {skew:+} s");
    }
    for skew in [-301, 301, -3600] {
        let status = replay(&receiver, "msg_replayed", now + skew, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "timestamp {skew:+} s");
    }
    assert_eq!(stored(&nats, "HOOKWARDEN_REPLAY_SW").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_window_shorter_than_the_replay_window_is_refused_at_start() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        &manifest("  timestampToleranceSeconds: 300\n  nats: {duplicateWindowSeconds: 120}\n"),
        &[("sw", "k", &secret())],
        &[],
    );
    let (status, log) = receiver.exited().await;
    assert!(!status.success(), "{log}");
    assert!(log.contains("duplicateWindowSeconds (120)"), "{log}");
    assert!(log.contains("timestampToleranceSeconds"), "{log}");
}
