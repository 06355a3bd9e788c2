//! A stream deleted or lost under a running receiver, and NATS going away.
//!
//! Before, a deleted stream meant 503 for every delivery, forever, while
//! `/readyz` said ready; NATS trouble showed only as INFO lines of the
//! client library.

use std::time::Duration;

use async_nats::jetstream;
use hookwarden_tests::NatsServer;
use hyper::StatusCode;

use super::stored;
use crate::binary::ReceiverProcess;
use crate::{ENDPOINT, SECRET, github_manifest};

async fn deliver(receiver: &ReceiverProcess, id: &str) -> StatusCode {
    super::deliver_github(receiver, SECRET.as_bytes(), id, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stream_is_created_again_and_the_delivery_stored() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        ENDPOINT,
        &[("gh", "secret", SECRET.as_bytes())],
        // Longer than the test: only the publish can notice.
        &[("HOOKWARDEN_STREAM_CHECK_INTERVAL_SECS", "3600")],
    );
    receiver.ready().await;
    assert_eq!(deliver(&receiver, "before").await, StatusCode::OK);
    let js = jetstream::new(nats.connect().await.expect("connect"));
    js.delete_stream("HOOKWARDEN_CI_GITHUB")
        .await
        .expect("deleted");

    assert_eq!(deliver(&receiver, "after-delete").await, StatusCode::OK);
    assert_eq!(stored(&nats, "HOOKWARDEN_CI_GITHUB").await, 1);
    receiver.logged("created again", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmanaged_stream_that_disappears_makes_the_receiver_unready() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream::new(nats.connect().await.expect("connect"));
    js.create_stream(jetstream::stream::Config {
        name: "ORDERS".to_owned(),
        subjects: vec!["hookwarden.ci.github.>".to_owned()],
        ..Default::default()
    })
    .await
    .expect("stream managed elsewhere");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        &github_manifest("  nats: {stream: ORDERS, createStream: false}\n"),
        &[("gh", "secret", SECRET.as_bytes())],
        &[("HOOKWARDEN_STREAM_CHECK_INTERVAL_SECS", "1")],
    );
    receiver.ready().await;
    js.delete_stream("ORDERS").await.expect("deleted");

    hookwarden_tests::eventually(
        "/readyz to say stream_missing",
        Duration::from_secs(15),
        || async {
            let (status, text) = receiver.ops_get("/readyz").await;
            (status == StatusCode::SERVICE_UNAVAILABLE && text.contains("stream_missing"))
                .then_some(text)
        },
    )
    .await;
    let answer = deliver(&receiver, "no-stream").await;
    assert_eq!(answer, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        js.get_stream("ORDERS").await.is_err(),
        "a stream managed elsewhere is never created by the receiver"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_going_away_is_a_warning_of_our_own_and_unreadiness() {
    let mut nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        ENDPOINT,
        &[("gh", "secret", SECRET.as_bytes())],
        &[],
    );
    receiver.ready().await;
    nats.stop();
    receiver.logged("lost the NATS connection", 1).await;
    let warning = receiver
        .log()
        .lines()
        .find(|line| line.contains("lost the NATS connection"))
        .map(str::to_owned)
        .expect("the line");
    assert!(warning.contains(r#""level":"WARN""#), "{warning}");
    assert!(warning.contains("hookwarden_receiver"), "{warning}");
    let (status, text) = receiver.ops_get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("nats_disconnected"), "{text}");
    let metrics = receiver.metrics().await;
    assert!(
        metrics.contains("hookwarden_nats_disconnected 1"),
        "{metrics}"
    );
    nats.restart().await.expect("NATS back");
    receiver.ready().await;
    assert_eq!(deliver(&receiver, "after-outage").await, StatusCode::OK);
}
