//! Every metric the chart's alerts and dashboard read from receivers and
//! forwarders (`charts/hookwarden/rules/`, `charts/hookwarden/dashboards/`)
//! exists, with the labels they use, on the `/metrics` of the real
//! processes: `hookwarden-receiver serve` taking real deliveries (stored,
//! forged, rate-limited, quarantined, reloaded) into a real nats-server,
//! and `hookwarden-receiver forward` delivering them from the receiver's
//! own stream to an HTTP server on loopback. The operator's metrics are
//! checked in operator/tests/it/dashboards.rs; cert-manager's and
//! kube-state-metrics' are listed by name in `promql::EXTERNAL`.

use std::process::Stdio;
use std::time::Duration;

use crate::binary::ReceiverProcess;
use hmac::{Hmac, Mac};
use hookwarden_tests::NatsServer;
use hookwarden_tests::promql::{self, Exporter};
use hyper::StatusCode;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &[u8] = b"tok-SECRET-d4sh";
const HMAC_KEY: &[u8] = b"hmac-SECRET-d4sh";
const WAIT: Duration = Duration::from_secs(30);

fn manifest(extra: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: acme, namespace: edge}}\n\
         spec:\n  provider: generic\n  verification:\n    \
         token: {{header: X-Hw-Check, secretRefs: [{{name: acme, key: token}}]}}\n    \
         hmac: {{signatureHeader: X-Hw-Mac, signaturePrefix: \"sha256=\", secretRefs: [{{name: acme, key: hmac}}]}}\n  \
         quarantine: {{}}\n  \
         rateLimit:\n    perSourceIp: {{requestsPerSecond: 1, burst: 3}}\n{extra}"
    )
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_KEY).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// An HTTP/1.1 destination on loopback answering 204 to every request.
async fn destination() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Read the head and the body it announces, then answer.
                let mut seen = Vec::new();
                let mut buf = [0_u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if seen.len() >= head_end + 4 + length {
                            break;
                        }
                    }
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    port
}

async fn metrics_of(ops: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(ops).await.ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: ops\r\nconnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    text.starts_with("HTTP/1.1 200").then_some(text)
}

#[tokio::test]
async fn every_metric_the_chart_reads_from_receivers_and_forwarders_is_exported() {
    let expressions = promql::chart_expressions().unwrap_or_else(|e| panic!("{e}"));
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        &manifest(""),
        &[("acme", "token", TOKEN), ("acme", "hmac", HMAC_KEY)],
        &[],
    );
    receiver.ready().await;
    let token = std::str::from_utf8(TOKEN).expect("ascii");

    // The forwarder, reading the receiver's stream as a subscription would;
    // started first, since a new subscription delivers only new events.
    let port = destination().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("subscription.yaml"),
        format!(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookSubscription\n\
             metadata: {{name: to-billing, namespace: edge}}\nspec:\n  \
             source: {{stream: HOOKWARDEN_EDGE_ACME, subjectPrefix: hookwarden.edge.acme}}\n  \
             destination: {{url: 'http://127.0.0.1:{port}/hooks', timeoutSeconds: 2}}\n  \
             signing: {{secretRef: {{name: signing, key: secret}}}}\n"
        ),
    )
    .expect("subscription");
    let secret = dir.path().join("secrets/signing/secret");
    std::fs::create_dir_all(secret.parent().expect("dir")).expect("mkdir");
    std::fs::write(&secret, "whsec_dGhlLWRhc2hib2FyZHMtc2lnbmluZy1rZXktMTIz\n").expect("secret");
    let forwarder_ops = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        listener.local_addr().expect("addr").to_string()
    };
    let log_path = dir.path().join("forward.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let _forwarder = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwarden-receiver"))
        .arg("forward")
        .env(
            "HOOKWARDEN_SUBSCRIPTION",
            dir.path().join("subscription.yaml"),
        )
        .env("HOOKWARDEN_SECRETS_DIR", dir.path().join("secrets"))
        .env("HOOKWARDEN_NATS_URL", nats.url())
        .env("HOOKWARDEN_METRICS_LISTEN", &forwarder_ops)
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("forwarder starts");

    let ready = tokio::time::Instant::now() + WAIT;
    while metrics_of(&forwarder_ops).await.is_none() {
        assert!(
            tokio::time::Instant::now() < ready,
            "the forwarder did not start: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Stored deliveries (publish latency), a forged one (a refusal and a
    // quarantine record), then more than the burst (rate limited).
    let mut statuses = Vec::new();
    for i in 0..8 {
        let body = format!(r#"{{"order":{i}}}"#);
        let signature = if i == 1 {
            "sha256=00".to_owned()
        } else {
            sign(body.as_bytes())
        };
        let id = format!("order-{i}");
        let reply = receiver
            .send(
                "POST",
                &[
                    ("content-type", "application/json"),
                    ("x-hw-check", token),
                    ("x-hw-mac", &signature),
                    ("x-request-id", &id),
                ],
                body.as_bytes(),
            )
            .await;
        statuses.push(reply.status);
    }
    assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
    assert!(statuses.contains(&StatusCode::UNAUTHORIZED), "{statuses:?}");
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // A reload (config_reloads).
    receiver.replace_manifest(&manifest("  request: {maxBodyBytes: 65536}\n"));

    // Wait until each process shows what the chart reads (series appear
    // with the first event of their kind), then check once more and report
    // every gap.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut exported = promql::exposition(&receiver.metrics().await);
        let forwarder_text = metrics_of(&forwarder_ops).await.unwrap_or_default();
        for (name, labels) in promql::exposition(&forwarder_text) {
            exported.entry(name).or_default().extend(labels);
        }
        let problems = promql::missing(
            &expressions,
            &[Exporter::Receiver, Exporter::Forwarder],
            &exported,
        );
        if problems.is_empty() {
            // Sanity: the check saw the real series.
            assert!(exported.contains_key("hookwarden_publish_seconds_bucket"));
            assert!(exported.contains_key("hookwarden_forward_deliveries_total"));
            assert!(exported.contains_key("hookwarden_forward_pending"));
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the chart reads what the receiver and forwarder do not export:\n{}\n\nreceiver:\n{}\nforwarder:\n{forwarder_text}\nforwarder log:\n{}",
            problems.join("\n"),
            receiver.metrics().await,
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
