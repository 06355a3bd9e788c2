//! The audit log: the test installs a log subscriber for its thread, while
//! the other tests of this binary run in other threads of the same process
//! (see [`capture_beside_other_tests`]). Also a secret scan of the real
//! binary: after a mixed workload, no form of any secret is in its
//! stdout/stderr, its `/metrics` or any answer.

use crate::{Answer, SECRET, sign, start_receiver};
use hookwarden_tests::{NatsServer, free_port};
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

/// A second registered dispatcher, interested in nothing, to hold while a
/// thread-local capture is installed (create it first). Why: tracing caches
/// each callsite's interest for the whole process, and while exactly one
/// dispatcher is registered it computes that interest from the default
/// subscriber of whichever thread reaches the callsite first
/// (tokio-rs/tracing#3611): another test's thread, with no subscriber,
/// would cache `never` for the audit line and the capture would miss it.
/// With two registered, the interest is the union of both; alone, its level
/// hint (`OFF`) enables nothing.
fn capture_beside_other_tests() -> tracing::Dispatch {
    use tracing_subscriber::layer::SubscriberExt;
    tracing::Dispatch::new(
        tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::OFF),
    )
}

#[tokio::test]
async fn every_request_gets_one_audit_line_without_secrets() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(captured.clone())
        .finish();
    let _anchor = capture_beside_other_tests();
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

/// A receiver binary serving `manifest` over plain HTTP, its stdout and
/// stderr captured to files.
struct Binary {
    child: tokio::process::Child,
    listen: String,
    metrics: String,
    stdout: std::path::PathBuf,
    stderr: std::path::PathBuf,
}

impl Binary {
    /// Starts the binary with `secrets` (`name/key`, value) and waits until
    /// it listens.
    async fn start(
        dir: &std::path::Path,
        nats: &NatsServer,
        manifest: &str,
        secrets: &[(&str, &[u8])],
    ) -> Self {
        std::fs::write(dir.join("endpoint.yaml"), manifest).expect("manifest");
        for (path, value) in secrets {
            let file = dir.join("secrets").join(path);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(file, value).expect("secret");
        }
        let listen = format!("127.0.0.1:{}", free_port().expect("a free port"));
        let metrics = format!("127.0.0.1:{}", free_port().expect("a free port"));
        let stdout = dir.join("stdout.log");
        let stderr = dir.join("stderr.log");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwarden-receiver"))
            .arg("serve")
            .env("HOOKWARDEN_ENDPOINT", dir.join("endpoint.yaml"))
            .env("HOOKWARDEN_SECRETS_DIR", dir.join("secrets"))
            .env("HOOKWARDEN_NATS_URL", nats.url())
            .env("HOOKWARDEN_LISTEN", &listen)
            .env("HOOKWARDEN_METRICS_LISTEN", &metrics)
            .env("HOOKWARDEN_TLS_MODE", "insecure-http")
            // Everything the receiver and its libraries log, not only info.
            .env("RUST_LOG", "trace")
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .kill_on_drop(true)
            .spawn()
            .expect("receiver starts");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while tokio::net::TcpStream::connect(&listen).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "receiver not listening within 20 s: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self {
            child,
            listen,
            metrics,
            stdout,
            stderr,
        }
    }

    /// Sends one request; returns its status and everything the client
    /// sees of the answer (header values and body).
    async fn send(&self, headers: &[(&str, String)], body: &[u8]) -> (StatusCode, String) {
        use http_body_util::{BodyExt, Full};
        let mut request = hyper::Request::post(format!("http://{}/", self.listen));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(bytes::Bytes::copy_from_slice(body)))
            .expect("request");
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<bytes::Bytes>>();
        let response = client.request(request).await.expect("response");
        let status = response.status();
        let mut seen = String::new();
        for (name, value) in response.headers() {
            seen.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        seen.push_str(&String::from_utf8_lossy(&body));
        (status, seen)
    }

    async fn metrics_text(&self) -> String {
        use http_body_util::{BodyExt, Empty};
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Empty<bytes::Bytes>>();
        let response = client
            .get(
                format!("http://{}/metrics", self.metrics)
                    .parse()
                    .expect("uri"),
            )
            .await
            .expect("metrics");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    }

    /// Stops the binary (SIGTERM, then waits) and returns stdout and stderr.
    async fn stop(mut self) -> String {
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
        let stdout = std::fs::read_to_string(&self.stdout).expect("stdout");
        let stderr = std::fs::read_to_string(&self.stderr).expect("stderr");
        format!("{stdout}\n{stderr}")
    }
}

/// Every form a secret could leak in: raw, hex (both cases), base64
/// (standard and URL-safe, with and without padding).
fn leak_forms(secret: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    vec![
        String::from_utf8_lossy(secret).into_owned(),
        hex::encode(secret),
        hex::encode_upper(secret),
        STANDARD.encode(secret),
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
    ]
}

fn assert_no_secret(place: &str, text: &str, secrets: &[&[u8]]) {
    for secret in secrets {
        for form in leak_forms(secret) {
            assert!(
                !text.contains(&form),
                "{place} contains a secret (as {form:?})"
            );
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// What a request is, its headers, and the status it must get.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, StatusCode);

fn audit_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "hookwarden::audit")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_metrics_or_answers_under_a_mixed_workload() {
    use hookwarden_receiver::verify::stripe;

    let nats = NatsServer::start().await.expect("nats-server");

    // Stripe: two signing secrets (a rotation), a signed timestamp.
    const CURRENT: &[u8] = b"whsec_current_7Qm2xK9pLs4v";
    const OLD: &[u8] = b"whsec_old_Zr8nB3tYw6cJ";
    const WRONG: &[u8] = b"whsec_attacker_guess_1";
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = Binary::start(
        dir.path(),
        &nats,
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {name: pay, namespace: scan}\n\
         spec: {provider: stripe, secretRefs: [{name: stripe, key: current}, {name: stripe, key: old}]}\n",
        &[("stripe/current", CURRENT), ("stripe/old", OLD)],
    )
    .await;
    let now = unix_now();
    let body = br#"{"id":"evt_scan_1","type":"charge.succeeded"}"#;
    let signed = |secret: &[u8], ts: i64| -> Vec<(&str, String)> {
        let mut headers: Vec<(&str, String)> = stripe::sign(secret, ts, body);
        headers.push(("content-type", "application/json".to_owned()));
        headers
    };
    let cases: Vec<Case> = vec![
        ("good", signed(CURRENT, now), StatusCode::OK),
        ("good, rotated-out secret", signed(OLD, now), StatusCode::OK),
        (
            "stale",
            signed(CURRENT, now - 3600),
            StatusCode::UNAUTHORIZED,
        ),
        ("wrong secret", signed(WRONG, now), StatusCode::UNAUTHORIZED),
        (
            "forged",
            vec![(
                "stripe-signature",
                format!("t={now},v1={}", "ab".repeat(32)),
            )],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "malformed",
            vec![("stripe-signature", "t=x,v1=zz".to_owned())],
            StatusCode::UNAUTHORIZED,
        ),
        ("unsigned", Vec::new(), StatusCode::UNAUTHORIZED),
    ];
    let mut answers = String::new();
    for (what, headers, expected) in &cases {
        let (status, seen) = binary.send(headers, body).await;
        assert_eq!(status, *expected, "{what}: {seen}");
        answers.push_str(&seen);
    }
    let metrics = binary.metrics_text().await;
    let log = binary.stop().await;
    assert_eq!(
        audit_lines(&log).len(),
        cases.len(),
        "one audit line per request:\n{log}"
    );
    let secrets: [&[u8]; 2] = [CURRENT, OLD];
    assert_no_secret("the stripe receiver's log", &log, &secrets);
    assert_no_secret("the stripe receiver's /metrics", &metrics, &secrets);
    assert_no_secret("the stripe receiver's answers", &answers, &secrets);

    // Generic: a shared token and HTTP Basic, both sent by the client
    // itself, so a receiver that logged request headers would leak them.
    const TOKEN: &[u8] = b"tok_Hq4Lw9Xe2Rb7";
    const PASSWORD: &[u8] = b"pw_Jd3Ks8Vn1Tc6";
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = Binary::start(
        dir.path(),
        &nats,
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {name: generic, namespace: scan}\n\
         spec:\n  provider: generic\n  secretRefs: [{name: basic, key: password}]\n  \
         verification:\n    token: {header: X-Token, secretRefs: [{name: token, key: value}]}\n    \
         basicAuth: {username: hook}\n",
        &[("basic/password", PASSWORD), ("token/value", TOKEN)],
    )
    .await;
    let basic = |user: &str, password: &[u8]| {
        use base64::Engine as _;
        let mut credentials = format!("{user}:").into_bytes();
        credentials.extend_from_slice(password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    };
    let token = String::from_utf8_lossy(TOKEN).into_owned();
    let cases: Vec<Case> = vec![
        (
            "good",
            vec![
                ("x-token", token.clone()),
                ("authorization", basic("hook", PASSWORD)),
            ],
            StatusCode::OK,
        ),
        (
            "wrong password",
            vec![
                ("x-token", token.clone()),
                ("authorization", basic("hook", b"guess")),
            ],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong user",
            vec![
                ("x-token", token.clone()),
                ("authorization", basic("root", PASSWORD)),
            ],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong token",
            vec![
                ("x-token", "tok_guess".to_owned()),
                ("authorization", basic("hook", PASSWORD)),
            ],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no credentials",
            vec![("x-token", token.clone())],
            StatusCode::UNAUTHORIZED,
        ),
    ];
    let mut answers = String::new();
    for (what, headers, expected) in &cases {
        let (status, seen) = binary.send(headers, b"{}").await;
        assert_eq!(status, *expected, "{what}: {seen}");
        answers.push_str(&seen);
    }
    let metrics = binary.metrics_text().await;
    let log = binary.stop().await;
    assert_eq!(
        audit_lines(&log).len(),
        cases.len(),
        "one audit line per request:\n{log}"
    );
    let mut credentials = b"hook:".to_vec();
    credentials.extend_from_slice(PASSWORD);
    let secrets: [&[u8]; 3] = [TOKEN, PASSWORD, &credentials];
    assert_no_secret("the generic receiver's log", &log, &secrets);
    assert_no_secret("the generic receiver's /metrics", &metrics, &secrets);
    assert_no_secret("the generic receiver's answers", &answers, &secrets);
}
