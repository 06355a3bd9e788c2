//! The real receiver (bound to port 0) in front of a real nats-server: what a
//! provider sees over HTTP, and what ends up in JetStream.

use std::convert::Infallible;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use hookwarden_receiver::publish::{Publisher, Target};
use hookwarden_receiver::secrets::Secret;
use hookwarden_receiver::server::{self, AppState};
use hookwarden_receiver::verify;
use hookwarden_tests::NatsServer;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;
use tokio::sync::oneshot;

const SECRET: &str = "It's a Secret to Everybody";
const ENDPOINT: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: github, namespace: ci}\n\
    spec: {provider: github, secretRefs: [{name: gh, key: secret}]}\n";
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

type Body = BoxBody<Bytes, Infallible>;

/// A receiver serving on a port of its own, stopped on drop.
struct Receiver {
    url: String,
    target: Target,
    stop: Option<oneshot::Sender<()>>,
    http: Client<HttpConnector, Body>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start_receiver(nats: &NatsServer, body_limit: usize) -> Receiver {
    let endpoint = hookwarden_crds::from_yaml(ENDPOINT).expect("endpoint manifest");
    let target = Target::for_endpoint(&endpoint).expect("target");
    let verifier = verify::for_provider(
        endpoint.spec.provider,
        vec![Secret::from(SECRET.as_bytes())],
    )
    .expect("verifier");
    let client = nats.connect().await.expect("connect to NATS");
    let publisher = Publisher::new(client, target.clone(), PUBLISH_TIMEOUT);
    publisher.ensure_stream().await.expect("stream");
    let state = AppState::with_body_limit(verifier, publisher, body_limit);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server::serve(state, listener, async {
        let _ = stopped.await;
    }));
    Receiver {
        url,
        target,
        stop: Some(stop),
        http: Client::builder(TokioExecutor::new()).build_http(),
    }
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

struct Answer {
    status: StatusCode,
    headers: hyper::HeaderMap,
    json: serde_json::Value,
}

impl Receiver {
    async fn post(&self, body: Body, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::post(&self.url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body).expect("request");
        let response = tokio::time::timeout(Duration::from_secs(15), self.http.request(request))
            .await
            .expect("the receiver answers in time")
            .expect("HTTP response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("JSON answer ({e}): {}", String::from_utf8_lossy(&bytes)));
        Answer {
            status,
            headers,
            json,
        }
    }

    /// A GitHub delivery signed with `signature` (or correctly when `None`).
    async fn deliver(&self, payload: &[u8], delivery: &str, signature: Option<&str>) -> Answer {
        let signature = signature.map_or_else(|| sign(payload), str::to_owned);
        self.post(
            Full::new(Bytes::copy_from_slice(payload)).boxed(),
            &[
                ("content-type", "application/json"),
                ("x-github-event", "push"),
                ("x-github-delivery", delivery),
                ("x-hub-signature-256", &signature),
            ],
        )
        .await
    }
}

async fn stored_messages(nats: &NatsServer, target: &Target) -> u64 {
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let mut stream = js.get_stream(&target.stream).await.expect("stream");
    stream.info().await.expect("stream info").state.messages
}

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
    let received: jiff::Timestamp = header("Hookwarden-Received-At")
        .parse()
        .expect("RFC 3339 timestamp");
    let age = jiff::Timestamp::now().duration_since(received);
    assert!(age.unsigned_abs() < Duration::from_secs(60), "{age:?}");
    assert!(
        message.headers.get("X-Hub-Signature-256").is_none(),
        "the signature is not stored"
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

/// Collects what the JSON log layer writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn every_request_gets_one_audit_line_without_secrets() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(captured.clone())
        .finish();
    // The test runtime is single-threaded, so the server's tasks log here too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_receiver(&nats, 1024 * 1024).await;
    let payload = b"{\"audit\":true}";
    let stored = receiver.deliver(payload, "delivery-audit", None).await;
    assert_eq!(stored.status, StatusCode::OK);
    let forged = "sha256=0000000000000000000000000000000000000000000000000000000000000000";
    let rejected = receiver
        .deliver(payload, "delivery-forged", Some(forged))
        .await;
    assert_eq!(rejected.status, StatusCode::UNAUTHORIZED);

    let text = String::from_utf8(captured.0.lock().expect("log buffer").clone()).expect("utf-8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON log line"))
        .filter(|line: &serde_json::Value| line["target"] == "hookwarden::audit")
        .collect();
    assert_eq!(lines.len(), 2, "{text}");

    let request_id = |answer: &Answer| {
        answer.headers["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned()
    };
    let first = &lines[0];
    assert_eq!(first["request_id"], request_id(&stored));
    assert_eq!(first["endpoint"], "ci/github");
    assert_eq!(first["client_ip"], "127.0.0.1");
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/");
    assert_eq!(first["body_size"], payload.len());
    assert_eq!(
        first["body_sha256"],
        hookwarden_receiver::publish::body_sha256(payload)
    );
    assert_eq!(first["outcome"], "stored");
    assert_eq!(first["delivery_id"], "delivery-audit");
    assert_eq!(first["stream_sequence"], stored.json["sequence"]);
    assert!(first["latency_ms"].is_u64(), "{first}");
    assert!(first.get("reason").is_none(), "{first}");

    let second = &lines[1];
    assert_eq!(second["request_id"], request_id(&rejected));
    assert_eq!(second["outcome"], "rejected");
    assert_eq!(second["reason"], "signature_mismatch");

    let signature = sign(payload);
    for secret_material in [SECRET, &signature[7..], &forged[7..]] {
        assert!(!text.contains(secret_material), "{secret_material} logged");
    }
}
