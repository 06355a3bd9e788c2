//! The `hookwarden-receiver serve` binary: configured from flags and
//! environment, stores a delivery, and stops cleanly on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use hmac::{Hmac, Mac};
use hookwarden_tests::{NatsServer, free_port};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sha2::Sha256;

const SECRET: &[u8] = b"rotate-me-2";

#[tokio::test]
async fn serve_stores_a_delivery_and_stops_on_sigterm() {
    let nats = NatsServer::start().await.expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = dir.path().join("endpoint.yaml");
    std::fs::write(
        &endpoint,
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {name: github, namespace: cli}\n\
         spec:\n  provider: github\n  secretRefs: [{name: gh, key: old}, {name: gh, key: new}]\n",
    )
    .expect("manifest");
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(secrets.join("gh")).expect("mkdir");
    std::fs::write(secrets.join("gh").join("old"), b"rotated-out").expect("secret");
    std::fs::write(secrets.join("gh").join("new"), SECRET).expect("secret");
    let listen = format!("127.0.0.1:{}", free_port().expect("a free port"));

    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwarden-receiver"))
        // Tests run in parallel: never the fixed default operations port.
        .env("HOOKWARDEN_METRICS_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .env("HOOKWARDEN_ENDPOINT", &endpoint)
        .env("HOOKWARDEN_SECRETS_DIR", &secrets)
        .env("HOOKWARDEN_NATS_URL", nats.url())
        .env("HOOKWARDEN_LISTEN", &listen)
        .env("HOOKWARDEN_MAX_BODY_BYTES", "1000")
        .env("HOOKWARDEN_TLS_MODE", "insecure-http")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("receiver starts");

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let health = client
            .get(format!("http://{listen}/healthz").parse().expect("uri"))
            .await;
        if health.is_ok_and(|r| r.status() == hyper::StatusCode::OK) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "receiver not serving within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let body = b"{\"zen\":\"Keep it logically awesome.\"}";
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let request = hyper::Request::post(format!("http://{listen}/"))
        .header("x-github-event", "ping")
        .header("x-github-delivery", "cli-1")
        .header("x-hub-signature-256", signature)
        .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
        .expect("request");
    let response = client.request(request).await.expect("response");
    assert_eq!(response.status(), hyper::StatusCode::OK);

    let oversized = hyper::Request::post(format!("http://{listen}/"))
        .body(http_body_util::Full::new(bytes::Bytes::from(vec![
            b'x';
            1001
        ])))
        .expect("request");
    let response = client.request(oversized).await.expect("response");
    assert_eq!(
        response.status(),
        hyper::StatusCode::PAYLOAD_TOO_LARGE,
        "HOOKWARDEN_MAX_BODY_BYTES applies"
    );

    let js = async_nats::jetstream::new(nats.connect().await.expect("connect"));
    let stream = js
        .get_stream("HOOKWARDEN_CLI_GITHUB")
        .await
        .expect("the receiver created its stream");
    let message = stream.get_raw_message(1).await.expect("stored");
    assert_eq!(message.subject.as_str(), "hookwarden.cli.github.ping");
    assert_eq!(message.payload.as_ref(), body);

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

    let audit: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|line: &serde_json::Value| line["target"] == "hookwarden::audit")
        .collect();
    assert_eq!(audit.len(), 2, "{log}");
    assert_eq!(audit[0]["outcome"], "stored");
    assert_eq!(audit[1]["outcome"], "too_large");
    assert_eq!(
        audit[0]["secret_index"], 1,
        "the second (new) secret matched"
    );
    assert_eq!(audit[0]["endpoint"], "cli/github");
    assert!(log.contains("stopped gracefully"), "{log}");
    assert!(
        log.lines()
            .any(|line| line.contains(r#""level":"WARN""#) && line.contains("PLAIN HTTP")),
        "insecure-http warns at startup: {log}"
    );
}

#[tokio::test]
async fn serve_refuses_to_start_without_its_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = dir.path().join("endpoint.yaml");
    std::fs::write(
        &endpoint,
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {name: github}\nspec: {provider: github, secretRefs: [{name: gh, key: secret}]}\n",
    )
    .expect("manifest");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwarden-receiver"))
        .env("HOOKWARDEN_METRICS_LISTEN", "127.0.0.1:0")
        .args(["serve", "--endpoint"])
        .arg(&endpoint)
        .arg("--secrets-dir")
        .arg(dir.path())
        .args([
            "--nats-url",
            "nats://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
            "--tls-mode",
            "insecure-http",
        ])
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(log.contains("gh/secret"), "{log}");
}

/// Runs `serve` (plain HTTP) for a GitHub endpoint whose spec has `more`
/// besides its secret reference (the secret file exists), against
/// `nats_url`, until it exits; returns whether it succeeded and what it
/// wrote to stdout and stderr.
async fn serve_github_until_exit(more: &str, nats_url: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("gh")).expect("secret dir");
    std::fs::write(dir.path().join("gh").join("secret"), SECRET).expect("secret");
    let endpoint = dir.path().join("endpoint.yaml");
    std::fs::write(
        &endpoint,
        format!(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
             metadata: {{name: github}}\nspec: {{provider: github, secretRefs: [{{name: gh, key: secret}}]{more}}}\n"
        ),
    )
    .expect("manifest");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwarden-receiver"))
        .env("HOOKWARDEN_METRICS_LISTEN", "127.0.0.1:0")
        .env("HOOKWARDEN_NATS_URL", nats_url)
        .args(["serve", "--endpoint"])
        .arg(&endpoint)
        .arg("--secrets-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--tls-mode", "insecure-http"])
        .output()
        .await
        .expect("runs");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), log)
}

#[tokio::test]
async fn an_unreachable_nats_is_reported_without_the_password_in_its_url() {
    let (ok, log) =
        serve_github_until_exit("", "nats://hookwarden:n4ts-pa55word@127.0.0.1:1").await;
    assert!(!ok);
    assert!(
        log.contains("cannot connect to NATS at nats://***@127.0.0.1:1"),
        "{log}"
    );
    assert!(!log.contains("n4ts-pa55word"), "the password leaked: {log}");
}

#[tokio::test]
async fn serve_refuses_to_start_with_an_invalid_cidr_naming_the_field() {
    // NATS is unreachable: the CIDR must be refused before connecting.
    let (ok, log) = serve_github_until_exit(
        ",\n allowedSourceCidrs: [10.0.0.0/8], trustedProxies: [10.0.0.0/8, 192.168.1.0/33]",
        "nats://127.0.0.1:1",
    )
    .await;
    assert!(!ok);
    assert!(
        log.contains(r#"spec.trustedProxies[1]: invalid CIDR \"192.168.1.0/33\""#),
        "{log}"
    );
}

#[tokio::test]
async fn serve_terminates_tls_by_default_and_needs_a_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwarden-receiver"))
        .env("HOOKWARDEN_METRICS_LISTEN", "127.0.0.1:0")
        .args(["serve", "--endpoint"])
        .arg(dir.path().join("endpoint.yaml"))
        .arg("--secrets-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("HOOKWARDEN_TLS_MODE")
        .env_remove("HOOKWARDEN_TLS_CERT")
        .env_remove("HOOKWARDEN_TLS_KEY")
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(log.contains("--tls-cert"), "{log}");
}

#[tokio::test]
async fn serve_terminates_tls_with_the_certificate_from_the_environment() {
    use std::sync::Arc;

    use hyper_util::rt::TokioIo;

    let nats = NatsServer::start().await.expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = dir.path().join("endpoint.yaml");
    std::fs::write(
        &endpoint,
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {name: github, namespace: tls}\n\
         spec: {provider: github, secretRefs: [{name: gh, key: secret}]}\n",
    )
    .expect("manifest");
    std::fs::create_dir_all(dir.path().join("gh")).expect("mkdir");
    std::fs::write(dir.path().join("gh").join("secret"), SECRET).expect("secret");
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).expect("cert");
    std::fs::write(dir.path().join("tls.key"), signing_key.serialize_pem()).expect("key");
    let listen = format!("127.0.0.1:{}", free_port().expect("a free port"));

    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwarden-receiver"))
        // Tests run in parallel: never the fixed default operations port.
        .env("HOOKWARDEN_METRICS_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .env("HOOKWARDEN_ENDPOINT", &endpoint)
        .env("HOOKWARDEN_SECRETS_DIR", dir.path())
        .env("HOOKWARDEN_NATS_URL", nats.url())
        .env("HOOKWARDEN_LISTEN", &listen)
        .env("HOOKWARDEN_TLS_MODE", "terminate")
        .env("HOOKWARDEN_TLS_CERT", dir.path().join("tls.crt"))
        .env("HOOKWARDEN_TLS_KEY", dir.path().join("tls.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("receiver starts");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).expect("trust anchor");
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let tls = loop {
        if let Ok(tcp) = tokio::net::TcpStream::connect(&listen).await {
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            if let Ok(tls) = tokio_rustls::TlsConnector::from(Arc::clone(&config))
                .connect(name, tcp)
                .await
            {
                break tls;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "receiver not serving HTTPS within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    let healthz = hyper::Request::get("/healthz")
        .header("host", "localhost")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let response = sender.send_request(healthz).await.expect("response");
    assert_eq!(response.status(), hyper::StatusCode::OK);

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
    assert!(log.contains(r#""tls_mode":"terminate""#), "{log}");
    assert!(log.contains(r#""require_forwarded_https":false"#), "{log}");
}
