//! The real receiver (bound to port 0) in front of a real nats-server: what a
//! provider sees over HTTP, and what ends up in JetStream.

use std::convert::Infallible;
use std::time::Duration;

use crate::{sign, start_receiver, stored_messages};
use async_nats::jetstream;
use bytes::Bytes;
use hookwarden_tests::NatsServer;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::StatusCode;
use hyper::body::Frame;

#[tokio::test]
async fn a_signed_delivery_is_stored_with_its_headers() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_receiver(&nats, 1024 * 1024).await;
    let payload = br#"{"ref":"refs/heads/main"}"#;

    let answer = receiver.deliver(payload, "delivery-1", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["status"], "stored");
    assert_eq!(answer.json["duplicate"], false);
    assert!(answer.headers.contains_key("x-request-id"));
    let sequence = answer.json["sequence"].as_u64().expect("sequence");

    let js = jetstream::new(nats.connect().await.expect("connect"));
    let stream = js
        .get_stream(&receiver.target.stream)
        .await
        .expect("HOOKWARDEN_CI_GITHUB stream");
    assert_eq!(receiver.target.stream, "HOOKWARDEN_CI_GITHUB");
    let message = stream.get_raw_message(sequence).await.expect("stored");
    assert_eq!(message.subject.as_str(), "hookwarden.ci.github.push");
    assert_eq!(message.payload.as_ref(), payload);
    let header = |name: &str| {
        message
            .headers
            .get(name)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_else(|| panic!("header {name}"))
    };
    assert_eq!(header("Nats-Msg-Id"), "delivery-1");
    assert_eq!(header("Hookwarden-Endpoint"), "ci/github");
    assert_eq!(header("Hookwarden-Provider"), "github");
    assert_eq!(header("Hookwarden-Event"), "push");
    assert_eq!(header("Hookwarden-Delivery-Id"), "delivery-1");
    assert_eq!(header("Hookwarden-Source-Ip"), "127.0.0.1");
    assert_eq!(header("Content-Type"), "application/json");
    let trace = header("traceparent");
    assert!(
        trace.starts_with("00-") && trace.len() == 55,
        "a new W3C trace context: {trace}"
    );
    let received: jiff::Timestamp = header("Hookwarden-Received-At")
        .parse()
        .expect("RFC 3339 timestamp");
    let age = jiff::Timestamp::now().duration_since(received);
    assert!(age.unsigned_abs() < Duration::from_secs(60), "{age:?}");
    assert!(
        message.headers.get("X-Hub-Signature-256").is_none(),
        "the signature is not stored"
    );
    // spec.nats.cloudEvents is off by default: no CloudEvents headers.
    let names: Vec<String> = message
        .headers
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_ascii_lowercase().starts_with("ce-")),
        "{names:?}"
    );
}

#[tokio::test]
async fn cloud_events_headers_are_stored_when_the_endpoint_asks() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver =
        crate::start_github(&nats, 1024 * 1024, "  nats: {cloudEvents: true}\n", |_| {}).await;
    let payload = br#"{"ref":"refs/heads/main"}"#;
    let answer = receiver.deliver(payload, "delivery-ce-1", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let sequence = answer.json["sequence"].as_u64().expect("sequence");

    let js = jetstream::new(nats.connect().await.expect("connect"));
    let stream = js
        .get_stream(&receiver.target.stream)
        .await
        .expect("stream");
    let message = stream.get_raw_message(sequence).await.expect("stored");
    assert_eq!(message.payload.as_ref(), payload, "the body is the data");
    let header = |name: &str| {
        message
            .headers
            .get(name)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_else(|| panic!("header {name}"))
    };
    assert_eq!(header("ce-specversion"), "1.0");
    assert_eq!(header("ce-id"), "delivery-ce-1");
    assert_eq!(header("ce-id"), header("Nats-Msg-Id"));
    assert_eq!(
        header("ce-source"),
        "/namespaces/ci/webhookendpoints/github"
    );
    assert_eq!(header("ce-type"), "dev.hookwarden.github.push");
    assert_eq!(header("ce-datacontenttype"), "application/json");
    assert_eq!(header("ce-time"), header("Hookwarden-Received-At"));
    let time: jiff::Timestamp = header("ce-time").parse().expect("RFC 3339");
    let age = jiff::Timestamp::now().duration_since(time);
    assert!(age.unsigned_abs() < Duration::from_secs(60), "{age:?}");
    // The Hookwarden headers are all still there.
    assert_eq!(header("Hookwarden-Event"), "push");
    assert_eq!(header("Hookwarden-Endpoint"), "ci/github");
    // Nothing of the signature or the secret in any header.
    for (name, values) in message.headers.iter() {
        for value in values {
            let value = value.as_str();
            assert!(!value.contains(crate::SECRET), "{name}");
            assert!(!value.contains(&crate::sign(payload)[7..]), "{name}");
        }
    }
}

#[tokio::test]
async fn an_encoded_body_is_stored_as_signed_with_its_content_encoding() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_receiver(&nats, 1024 * 1024).await;
    // The provider signs the bytes it sends: the encoded body, stored as is.
    let gzipped: &[u8] = &[
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xab, 0xae, 0x05, 0x00,
    ];
    let answer = receiver
        .deliver_with(gzipped, "encoded-1", None, &[("content-encoding", "gzip")])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let sequence = answer.json["sequence"].as_u64().expect("sequence");
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let stream = js
        .get_stream(&receiver.target.stream)
        .await
        .expect("stream");
    let message = stream.get_raw_message(sequence).await.expect("stored");
    assert_eq!(message.payload.as_ref(), gzipped);
    let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(header("Content-Encoding").as_deref(), Some("gzip"));
    assert_eq!(
        header("Hookwarden-Body-Sha256").as_deref(),
        Some(hookwarden_receiver::publish::body_sha256(gzipped).as_str())
    );
}

#[tokio::test]
async fn a_redelivery_is_acknowledged_but_stored_once() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_receiver(&nats, 1024 * 1024).await;
    let first = receiver.deliver(b"{\"n\":1}", "delivery-2", None).await;
    let second = receiver.deliver(b"{\"n\":1}", "delivery-2", None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);
    assert_eq!(second.status, StatusCode::OK, "{}", second.json);
    assert_eq!(first.json["duplicate"], false);
    assert_eq!(second.json["duplicate"], true);
    assert_eq!(first.json["sequence"], second.json["sequence"]);
    assert_eq!(stored_messages(&nats, &receiver.target).await, 1);

    let other = receiver.deliver(b"{\"n\":1}", "delivery-3", None).await;
    assert_eq!(other.json["duplicate"], false, "another delivery id is new");
    assert_eq!(stored_messages(&nats, &receiver.target).await, 2);
}

#[tokio::test]
async fn a_wrong_signature_is_refused_and_not_stored() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_receiver(&nats, 1024 * 1024).await;
    let forged = sign(b"another body");
    let answer = receiver.deliver(b"{}", "delivery-4", Some(&forged)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.json,
        serde_json::json!({"error": "signature_mismatch"})
    );

    let unsigned = receiver
        .post(Full::new(Bytes::from_static(b"{}")).boxed(), &[])
        .await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unsigned.json["error"], "signature_missing");
    assert_eq!(stored_messages(&nats, &receiver.target).await, 0);
}

#[tokio::test]
async fn an_oversized_body_is_refused_declared_or_streamed() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_receiver(&nats, 1024).await;

    let at_cap = vec![b'a'; 1024];
    let answer = receiver.deliver(&at_cap, "delivery-5", None).await;
    assert_eq!(answer.status, StatusCode::OK, "a body at the cap is fine");

    let over = vec![b'a'; 1025];
    let answer = receiver.deliver(&over, "delivery-6", None).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json["error"], "body_too_large");

    // Chunked, without Content-Length: cut off while streaming.
    let chunks = (0..8).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'b'; 512]))));
    let streamed = StreamBody::new(futures::stream::iter(chunks)).boxed();
    let signature = sign(&[b'b'; 4096]);
    let answer = receiver
        .post(streamed, &[("x-hub-signature-256", &signature)])
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json["error"], "body_too_large");

    assert_eq!(stored_messages(&nats, &receiver.target).await, 1);
}

#[tokio::test]
async fn a_body_over_the_nats_max_payload_is_413_not_503() {
    // Retrying such a delivery can never succeed, so it must not get a 503.
    let nats = NatsServer::builder()
        .max_payload(2048)
        .start()
        .await
        .expect("nats-server");
    // A cap over max_payload is refused at start; at max_payload it fits,
    // but a body near the cap plus the stored headers does not.
    let receiver = start_receiver(&nats, 2048).await;
    let answer = receiver.deliver(&[b'c'; 2000], "delivery-7", None).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.json
    );
    assert_eq!(answer.json["error"], "body_too_large");
    assert_eq!(stored_messages(&nats, &receiver.target).await, 0);
}

#[tokio::test]
async fn nats_down_means_503_then_storing_resumes_after_restart() {
    let mut nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_receiver(&nats, 1024 * 1024).await;
    let before = receiver.deliver(b"{\"n\":0}", "before-outage", None).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.json);

    nats.kill();
    for attempt in 0..2 {
        let answer = receiver
            .deliver(b"{\"n\":1}", &format!("during-outage-{attempt}"), None)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            answer.json
        );
        assert_eq!(
            answer.json,
            serde_json::json!({"error": "store_unavailable"})
        );
        assert_eq!(
            answer.headers.get("retry-after").map(|v| v.as_bytes()),
            Some(&b"5"[..])
        );
    }

    nats.restart().await.expect("nats-server restarts");
    // The receiver's client reconnects on its own (backoff at most 4 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let stored = loop {
        let answer = receiver.deliver(b"{\"n\":2}", "after-outage", None).await;
        if answer.status == StatusCode::OK {
            break answer;
        }
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            answer.json
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "not storing again 30 s after NATS came back"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let sequence = stored.json["sequence"].as_u64().expect("sequence");
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let stream = js
        .get_stream(&receiver.target.stream)
        .await
        .expect("stream survives the restart");
    let message = stream.get_raw_message(sequence).await.expect("stored");
    assert_eq!(message.payload.as_ref(), b"{\"n\":2}");
    assert_eq!(
        message.headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        Some("after-outage")
    );
}

#[tokio::test]
async fn healthz_answers() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_receiver(&nats, 1024).await;
    let url = format!("{}healthz", receiver.url);
    let response = receiver
        .http
        .get(url.parse().expect("uri"))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
}

/// `spec.request.storeHeaders` changed in the manifest of the running
/// binary: the hot reload applies it to the next delivery (the newly named
/// header is stored, the one no longer named is not), without a restart.
#[tokio::test]
async fn stored_headers_follow_a_reloaded_manifest() {
    let nats = NatsServer::start().await.expect("nats-server");
    let manifest =
        |names: &str| crate::github_manifest(&format!("  request: {{storeHeaders: [{names}]}}\n"));
    let receiver = crate::binary::ReceiverProcess::spawn(
        nats.url(),
        &manifest("X-GitHub-Hook-Id"),
        &[("gh", "secret", crate::SECRET.as_bytes())],
        &[],
    );
    receiver.ready().await;
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let deliver_and_read = |id: &'static str| {
        let (receiver, js) = (&receiver, &js);
        async move {
            let body = br#"{"ref":"refs/heads/main"}"#;
            let reply = receiver
                .send(
                    "POST",
                    &[
                        ("content-type", "application/json"),
                        ("x-github-event", "push"),
                        ("x-github-delivery", id),
                        ("x-github-hook-id", "4242"),
                        ("x-github-hook-installation-target-type", "repository"),
                        ("x-hub-signature-256", &sign(body)),
                    ],
                    body,
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            let sequence = reply.json()["sequence"].as_u64().expect("sequence");
            let stream = js.get_stream("HOOKWARDEN_CI_GITHUB").await.expect("stream");
            let message = stream.get_raw_message(sequence).await.expect("stored");
            let stored = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
            (
                stored("Hookwarden-Header-x-github-hook-id"),
                stored("Hookwarden-Header-x-github-hook-installation-target-type"),
            )
        }
    };
    assert_eq!(
        deliver_and_read("before-reload").await,
        (Some("4242".to_owned()), None)
    );
    receiver.replace_manifest(&manifest("X-GitHub-Hook-Installation-Target-Type"));
    receiver.logged("configuration reloaded", 1).await;
    assert_eq!(
        deliver_and_read("after-reload").await,
        (None, Some("repository".to_owned()))
    );
    let (status, log) = receiver.stop().await;
    assert!(status.success(), "{log}");
}
