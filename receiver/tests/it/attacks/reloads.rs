//! Secret rotations and configuration changes while NATS is away.
//!
//! Before, a reload that failed (NATS briefly unavailable while the stream
//! was looked up) was marked applied anyway: after a rotation during an
//! outage the old secret stayed accepted and the new one refused until some
//! later file change.

use std::time::Duration;

use hookwarden_tests::NatsServer;
use hyper::StatusCode;

use super::stored;
use crate::binary::ReceiverProcess;
use crate::{ENDPOINT, github_manifest};

const OLD: &[u8] = b"old-secret-before-the-outage";
const NEW: &[u8] = b"new-secret-during-the-outage";

async fn deliver(receiver: &ReceiverProcess, secret: &[u8], id: &str) -> StatusCode {
    super::deliver_github(receiver, secret, id, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_during_a_nats_outage_is_applied() {
    let mut nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(nats.url(), ENDPOINT, &[("gh", "secret", OLD)], &[]);
    receiver.ready().await;
    assert_eq!(deliver(&receiver, OLD, "before").await, StatusCode::OK);

    nats.stop();
    receiver.write_secret("gh", "secret", NEW);
    receiver.logged("configuration reloaded", 1).await;
    nats.restart().await.expect("NATS back");
    receiver.ready().await;
    hookwarden_tests::eventually(
        "the new secret to be accepted",
        Duration::from_secs(20),
        || async { (deliver(&receiver, NEW, "after-new").await == StatusCode::OK).then_some(()) },
    )
    .await;
    assert_eq!(
        deliver(&receiver, OLD, "after-old").await,
        StatusCode::UNAUTHORIZED,
        "the rotated-out secret is refused"
    );
    assert_eq!(stored(&nats, "HOOKWARDEN_CI_GITHUB").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_change_during_a_nats_outage_is_retried_until_it_applies() {
    let mut nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(nats.url(), ENDPOINT, &[("gh", "secret", OLD)], &[]);
    receiver.ready().await;

    nats.stop();
    // Another stream: it must be looked up (and created), which needs NATS.
    receiver.replace_manifest(&github_manifest(
        "  nats: {stream: ROTATED, subjectPrefix: rotated.github}\n",
    ));
    receiver.write_secret("gh", "secret", NEW);
    receiver.logged("cannot be loaded", 1).await;
    // The served configuration is the old one, and the receiver says so.
    let metrics = receiver.metrics().await;
    assert!(metrics.contains("hookwarden_config_stale 1"), "{metrics}");
    nats.restart().await.expect("NATS back");
    for _ in 0..300 {
        if receiver.log().contains("configuration reloaded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        receiver.log().contains("configuration reloaded"),
        "{}",
        receiver.log()
    );
    let (status, text) = receiver.ops_get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(!text.contains("config_stale"), "{text}");
    assert_eq!(deliver(&receiver, NEW, "after").await, StatusCode::OK);
    assert_eq!(
        stored(&nats, "ROTATED").await,
        1,
        "stored in the new stream"
    );
    let metrics = receiver.metrics().await;
    assert!(metrics.contains("hookwarden_config_stale 0"), "{metrics}");
}
