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
    // provider's clock up to 290 s ahead or behind), is stored once. Each
    // age is taken from the clock as the request is signed, 10 s inside or
    // outside the tolerance: a loaded machine's delay between signing and
    // checking cannot move an age across the edge.
    let body = br#"{"type":"invoice.paid"}"#;
    let signed_at = |skew: i64| jiff::Timestamp::now().as_second() + skew;
    for skew in [0, -290, 290, -1, 1] {
        let status = replay(&receiver, "msg_replayed", signed_at(skew), body).await;
        assert_eq!(status, StatusCode::OK, "timestamp {skew:+} s");
    }
    for skew in [-310, 310, -3600] {
        let status = replay(&receiver, "msg_replayed", signed_at(skew), body).await;
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

const SNS_HOST: &str = "sns.us-east-1.amazonaws.com";
const SNS_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:orders";
const SNS_CERT_PATH: &str = "/SimpleNotificationService-replay.pem";

/// A captured SNS notification (same `MessageId`, a `Timestamp` signed by
/// AWS's key) replayed at every age, against the shipped binary, which
/// fetches the certificate from a loopback key server for the SNS host
/// (`ReceiverProcess::spawn_resolving`, the test CA through
/// `SSL_CERT_FILE`). SNS keeps `Timestamp` across its retries, so the
/// window is an hour either side: within it the message is stored once
/// (`MessageId` de-duplicated, the stream's duplicate window covering twice
/// the tolerance), outside it refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_sns_message_is_stored_once_at_every_age() {
    let nats = NatsServer::start().await.expect("nats-server");
    let ca = hookwarden_tests::TestCa::new("test CA");
    let [_, _, high, low] = std::process::id().to_be_bytes();
    // Outside the pod range (127.1.0.0/16); one address per test process.
    let address = std::net::SocketAddr::from(([127, 3, high, low.max(1)], 443));
    let server = hookwarden_tests::ListServer::start_at(&ca, &[SNS_HOST], address).await;
    server.serve(
        SNS_CERT_PATH,
        hookwarden_tests::ListAnswer::ok(ca.issue(
            crate::SIGNER_KEY,
            "sns.amazonaws.com",
            2020,
            2100,
        )),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, format!("{} {SNS_HOST}\n", address.ip())).expect("hosts");
    let roots = dir.path().join("roots.pem");
    std::fs::write(&roots, ca.pem()).expect("roots");
    let receiver = ReceiverProcess::spawn_resolving(
        &hosts,
        nats.url(),
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {name: sns, namespace: replay}\n\
         spec:\n  provider: aws-sns\n  aws: {topicArns: ['arn:aws:sns:us-east-1:123456789012:orders']}\n",
        &[("SSL_CERT_FILE", roots.to_str().expect("UTF-8 path"))],
    );
    receiver.ready().await;
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let mut stream = js
        .get_stream("HOOKWARDEN_REPLAY_SNS")
        .await
        .expect("stream");
    let window = stream.info().await.expect("info").config.duplicate_window;
    let tolerance = u64::from(hookwarden_receiver::verify::aws_sns::DEFAULT_TOLERANCE_SECS);
    assert!(
        window >= Duration::from_secs(2 * tolerance),
        "duplicate window {window:?} shorter than twice the tolerance"
    );
    let cert_url = format!("https://{SNS_HOST}{SNS_CERT_PATH}");
    let tolerance = i64::from(hookwarden_receiver::verify::aws_sns::DEFAULT_TOLERANCE_SECS);
    let send = |skew: i64| {
        // Read per message: the receiver's clock moves on during the test.
        let at = jiff::Timestamp::now().as_second() + skew;
        let body = crate::sns_notification(&cert_url, SNS_TOPIC, "sns-replayed", at);
        let receiver = &receiver;
        async move {
            receiver
                .send(
                    "POST",
                    &[("content-type", "text/plain; charset=UTF-8")],
                    &body,
                )
                .await
        }
    };
    // Ages are kept 30 s off the window's edges: the receiver reads its
    // clock a moment after the message is signed.
    let margin = 30;
    // Within the window: stored the first time, a duplicate after.
    for (n, skew) in [0, 0, -(tolerance - margin), tolerance - margin, -1]
        .into_iter()
        .enumerate()
    {
        let reply = send(skew).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{skew:+} s: {}",
            receiver.log()
        );
        assert_eq!(reply.json()["duplicate"], n > 0, "{skew:+} s");
    }
    // Outside it: refused, whatever the age.
    for skew in [-(tolerance + margin), tolerance + margin, -24 * 3600] {
        let reply = send(skew).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{skew:+} s");
        assert_eq!(
            reply.json()["error"],
            "timestamp_out_of_tolerance",
            "{skew:+} s"
        );
    }
    assert_eq!(stored(&nats, "HOOKWARDEN_REPLAY_SNS").await, 1);
    assert_eq!(server.hits(), 1, "the certificate fetched once");
}
