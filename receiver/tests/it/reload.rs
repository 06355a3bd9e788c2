//! The real binary: /readyz and /metrics on the operations port, and a
//! rotated secret or changed manifest applied without a restart, while a
//! broken change keeps the running configuration.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use hookwarden_tests::{NatsServer, free_port};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sha2::Sha256;

/// Writes like Kubernetes updates a mounted Secret: the new content appears
/// at once (rename), never half-written.
fn replace_file(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

const MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: github, namespace: reload}\n\
    spec:\n  provider: github\n  secretRefs: [{name: gh, key: secret}]\n";

struct Http(Client<HttpConnector, Full<Bytes>>);

impl Http {
    async fn get(&self, url: &str) -> Option<(StatusCode, String)> {
        let response = self.0.get(url.parse().expect("uri")).await.ok()?;
        let status = response.status();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    }

    async fn deliver(&self, listen: &str, secret: &[u8], id: &str) -> StatusCode {
        let body = format!("{{\"delivery\":\"{id}\"}}");
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
        mac.update(body.as_bytes());
        let request = hyper::Request::post(format!("http://{listen}/"))
            .header("x-github-event", "push")
            .header("x-github-delivery", id)
            .header(
                "x-hub-signature-256",
                format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
            )
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        self.0.request(request).await.expect("response").status()
    }
}

/// Polls `check` every 200 ms for up to 20 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn secrets_and_manifest_reload_without_restart_and_ops_port_reports() {
    let nats = NatsServer::start().await.expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = dir.path().join("endpoint.yaml");
    std::fs::write(&endpoint, MANIFEST).expect("manifest");
    let secret = dir.path().join("secrets/gh/secret");
    std::fs::create_dir_all(secret.parent().expect("dir")).expect("mkdir");
    std::fs::write(&secret, b"first-secret").expect("secret");
    let listen = format!("127.0.0.1:{}", free_port().expect("a free port"));
    let ops = format!("127.0.0.1:{}", free_port().expect("a free port"));

    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwarden-receiver"))
        .arg("serve")
        .env("HOOKWARDEN_ENDPOINT", &endpoint)
        .env("HOOKWARDEN_SECRETS_DIR", dir.path().join("secrets"))
        .env("HOOKWARDEN_NATS_URL", nats.url())
        .env("HOOKWARDEN_LISTEN", &listen)
        .env("HOOKWARDEN_METRICS_LISTEN", &ops)
        .env("HOOKWARDEN_TLS_MODE", "insecure-http")
        .env("HOOKWARDEN_RELOAD_INTERVAL_SECS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("receiver starts");
    let http = Http(Client::builder(TokioExecutor::new()).build_http());

    let readyz = format!("http://{ops}/readyz");
    eventually("/readyz to answer 200", || async {
        http.get(&readyz)
            .await
            .is_some_and(|(s, _)| s == StatusCode::OK)
    })
    .await;
    assert_eq!(
        http.deliver(&listen, b"first-secret", "r-1").await,
        StatusCode::OK
    );
    assert_eq!(
        http.deliver(&listen, b"second-secret", "r-2").await,
        StatusCode::UNAUTHORIZED
    );

    // Rotation: the new secret is taken without a restart.
    replace_file(&secret, b"second-secret");
    eventually("the rotated secret to be used", || async {
        http.deliver(&listen, b"second-secret", "r-3").await == StatusCode::OK
    })
    .await;
    assert_eq!(
        http.deliver(&listen, b"first-secret", "r-4").await,
        StatusCode::UNAUTHORIZED,
        "the rotated-out secret no longer verifies"
    );

    // A broken manifest is refused; the running configuration keeps serving.
    replace_file(
        &endpoint,
        b"apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nspec: [",
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        http.deliver(&listen, b"second-secret", "r-5").await,
        StatusCode::OK
    );
    assert!(
        http.get(&readyz)
            .await
            .is_some_and(|(s, _)| s == StatusCode::OK)
    );

    // A changed manifest (another allowlist) is applied.
    replace_file(
        &endpoint,
        format!("{MANIFEST}  allowedSourceCidrs: [203.0.113.0/24]\n").as_bytes(),
    );
    eventually("the new allowlist to refuse 127.0.0.1", || async {
        http.deliver(&listen, b"second-secret", "r-6").await == StatusCode::FORBIDDEN
    })
    .await;

    let (status, metrics) = http
        .get(&format!("http://{ops}/metrics"))
        .await
        .expect("metrics");
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains(r#"hookwarden_requests_total{endpoint="reload/github",outcome="stored"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"hookwarden_refusals_total{endpoint="reload/github",reason="signature_mismatch"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookwarden_tls_handshake_failures_total 0"),
        "{metrics}"
    );

    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .expect("pid");
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("SIGTERM");
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits within 10 s of SIGTERM")
        .expect("exit status");
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{:?}\n{log}", output.status);
    assert_eq!(log.matches("configuration reloaded").count(), 2, "{log}");
    assert_eq!(log.matches("cannot be loaded").count(), 1, "{log}");
    for secret in ["first-secret", "second-secret"] {
        assert!(!log.contains(secret), "a secret leaked into the log");
    }
}
