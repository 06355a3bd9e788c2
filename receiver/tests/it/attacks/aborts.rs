//! Clients that go away mid-request, and requests hyper refuses itself.
//!
//! Before, a client that reset its stream or closed its connection during
//! the publish dropped the handler: the event was stored, yet no audit line
//! and no metric existed. Requests hyper refused before any handler (bad
//! framing 400, oversized headers 431) were not counted at all.

use std::net::SocketAddr;
use std::time::Duration;

use hookwarden_tests::NatsServer;
use tokio::io::AsyncWriteExt;

use super::{audit_lines, connect_from, exchange, metric, signed_request, stored};
use crate::binary::ReceiverProcess;
use crate::{ENDPOINT, SECRET, sign};

const STREAM: &str = "HOOKWARDEN_CI_GITHUB";

/// Waits until the receiver's log has an audit line for `delivery_id`.
async fn audited(receiver: &ReceiverProcess, delivery_id: &str) -> serde_json::Value {
    hookwarden_tests::eventually(
        &format!("an audit line for {delivery_id}"),
        Duration::from_secs(15),
        || async {
            audit_lines(&receiver.log())
                .into_iter()
                .find(|line| line["delivery_id"] == delivery_id)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_during_the_publish_still_gets_its_event_stored_and_audited() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        ENDPOINT,
        &[("gh", "secret", SECRET.as_bytes())],
        &[
            ("RUST_LOG", "info"),
            ("HOOKWARDEN_PUBLISH_TIMEOUT_SECS", "10"),
        ],
    );
    receiver.ready().await;
    let to: SocketAddr = receiver.listen.parse().expect("listen address");

    // HTTP/1.1: the connection is closed while JetStream has not answered.
    let frozen = nats.freeze();
    let mut stream = connect_from([127, 0, 4, 1], to).await;
    stream
        .write_all(&signed_request("/", "abort-h1", "{\"abort\":\"h1\"}"))
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(stream);

    // HTTP/2: the client resets the stream (drops its response future).
    let (mut sender, connection) = super::h2_connect([127, 0, 4, 2], to).await;
    let body = b"{\"abort\":\"h2\"}";
    let request = hyper::Request::post(format!("http://{to}/"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", "abort-h2")
        .header("x-hub-signature-256", sign(body))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
        .expect("request");
    let pending =
        tokio::time::timeout(Duration::from_millis(500), sender.send_request(request)).await;
    assert!(pending.is_err(), "no answer while JetStream is frozen");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(frozen);

    for (id, transport) in [("abort-h1", "HTTP/1.1"), ("abort-h2", "HTTP/2")] {
        let line = audited(&receiver, id).await;
        assert_eq!(line["outcome"], "stored", "{transport}: {line}");
        assert!(line["stream_sequence"].as_u64().is_some(), "{line}");
    }
    assert_eq!(
        stored(&nats, STREAM).await,
        2,
        "both events are stored once"
    );
    let metrics = receiver.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"hookwarden_requests_total{endpoint="ci/github",outcome="stored"}"#
        ),
        2,
        "{metrics}"
    );
    connection.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_during_its_body_is_audited_and_nothing_is_stored() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        ENDPOINT,
        &[("gh", "secret", SECRET.as_bytes())],
        &[("RUST_LOG", "info")],
    );
    receiver.ready().await;
    let to: SocketAddr = receiver.listen.parse().expect("listen address");
    let body = "{\"abort\":\"mid-body\"}";
    let head = format!(
        "POST / HTTP/1.1\r\nhost: h\r\ncontent-type: application/json\r\n\
         x-github-event: push\r\nx-github-delivery: abort-body\r\n\
         x-hub-signature-256: {}\r\ncontent-length: {}\r\n\r\n",
        sign(body.as_bytes()),
        body.len()
    );
    let mut stream = connect_from([127, 0, 4, 4], to).await;
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&body.as_bytes()[..body.len() / 2])
        .await
        .expect("half the body");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
    let line = hookwarden_tests::eventually(
        "an audit line for the aborted body",
        Duration::from_secs(15),
        || async {
            audit_lines(&receiver.log())
                .into_iter()
                .find(|line| line["peer_ip"] == "127.0.4.4")
        },
    )
    .await;
    assert_eq!(line["reason"], "body_unreadable", "{line}");
    assert_eq!(stored(&nats, STREAM).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_refuses_are_counted_and_audited() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        ENDPOINT,
        &[("gh", "secret", SECRET.as_bytes())],
        &[("RUST_LOG", "info")],
    );
    receiver.ready().await;
    let to: SocketAddr = receiver.listen.parse().expect("listen address");

    let bad_chunks =
        b"POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n";
    let malformed = b"POST / HTTP/1.1\r\nhost h\r\n\r\n";
    let huge = format!(
        "POST / HTTP/1.1\r\nhost: h\r\nx-pad: {}\r\ncontent-length: 0\r\n\r\n",
        "a".repeat(80 * 1024)
    );
    let mut answers = Vec::new();
    for request in [&bad_chunks[..], &malformed[..], huge.as_bytes()] {
        let mut stream = connect_from([127, 0, 4, 3], to).await;
        answers.push(exchange(&mut stream, request, Duration::from_secs(5)).await);
    }
    assert_eq!(answers[1], Some(400), "{answers:?}");
    assert_eq!(answers[2], Some(431), "{answers:?}");

    // hyper's refusal is counted when its connection ends, which may be just
    // after the client read the answer: wait for it, boundedly.
    let refusals = |metrics: &str, reason: &str| {
        metric(
            metrics,
            &format!(r#"hookwarden_refusals_total{{endpoint="ci/github",reason="{reason}"}}"#),
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let metrics = receiver.metrics().await;
        let counted = refusals(&metrics, "http_malformed") >= 1
            && refusals(&metrics, "headers_too_large") >= 1;
        if counted || tokio::time::Instant::now() >= deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(refusals(&metrics, "http_malformed") >= 1, "{metrics}");
    assert_eq!(refusals(&metrics, "headers_too_large"), 1, "{metrics}");
    // The audit lines follow the count: the log writer hands them to
    // stdout up to 500 µs later, so they are waited for too, boundedly.
    let audited_reasons = || {
        audit_lines(&receiver.log())
            .into_iter()
            .filter(|line| line["peer_ip"] == "127.0.4.3")
            .filter_map(|line| line["reason"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let audited = loop {
        let audited = audited_reasons();
        let both = ["headers_too_large", "http_malformed"]
            .iter()
            .all(|reason| audited.iter().any(|r| r == reason));
        if both || tokio::time::Instant::now() >= deadline {
            break audited;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        audited.iter().any(|r| r == "headers_too_large"),
        "{audited:?}: {}",
        receiver.log()
    );
    assert!(
        audited.iter().any(|r| r == "http_malformed"),
        "{audited:?}: {}",
        receiver.log()
    );
}
