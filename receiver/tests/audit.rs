//! The audit log, in a test binary of its own: the test installs a log
//! subscriber for its thread, and tests running in parallel threads of the
//! same process could race with it on tracing's per-callsite interest cache.

mod common;

use common::{Answer, SECRET, sign, start_receiver};
use hookwarden_tests::NatsServer;
use hyper::StatusCode;

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
    assert_eq!(first["peer_ip"], "127.0.0.1");
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
