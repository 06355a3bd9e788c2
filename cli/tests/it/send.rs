//! `hookwarden send` against a real receiver, in process, storing in a
//! private nats-server.

use std::process::Output;
use std::time::Duration;

use hookwarden_receiver::publish::Target;
use hookwarden_receiver::transport::Mode;
use hookwarden_tests::{InProcessReceiver, NatsServer};

const SECRET: &str = "It's a Secret to Everybody";
const ENDPOINT: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: github, namespace: ci}\n\
    spec: {provider: github, secretRefs: [{name: gh, key: secret}]}\n";

/// The receiver for [`ENDPOINT`], started as its binary starts, over plain
/// HTTP or terminating TLS as `mode` says; its URL (`scheme://host:port/`)
/// and the running receiver (stopped on drop).
async fn start_receiver(nats: &NatsServer, mode: Mode) -> (String, InProcessReceiver) {
    let receiver = InProcessReceiver::start(
        nats,
        ENDPOINT,
        &[("gh/secret", SECRET.as_bytes())],
        mode,
        |_| {},
    )
    .await;
    (receiver.url.clone(), receiver)
}

async fn send(url: &str, secret: &str) -> Output {
    send_with(url, secret, &[]).await
}

async fn send_with(url: &str, secret: &str, extra: &[&str]) -> Output {
    let extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secret");
    std::fs::write(&path, secret).expect("secret");
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookwarden"))
            .args([
                "send",
                "--provider",
                "github",
                "--event",
                "push",
                "--url",
                &url,
            ])
            .arg("--secret-file")
            .arg(&path)
            .args(&extra)
            .output()
            .expect("run hookwarden")
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_is_accepted_with_the_right_secret_and_refused_with_a_wrong_one() {
    let nats = NatsServer::start().await.expect("nats-server");
    let (url, _stop) = start_receiver(&nats, Mode::InsecureHttp).await;

    let accepted = send(&url, SECRET).await;
    let text = String::from_utf8_lossy(&accepted.stdout).into_owned();
    assert_eq!(accepted.status.code(), Some(0), "{accepted:?}");
    assert!(text.starts_with("200 OK\n"), "{text}");

    let refused = send(&url, "not the secret").await;
    let text = String::from_utf8_lossy(&refused.stdout).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(text.starts_with("401"), "{text}");
    assert!(text.contains("signature_mismatch"), "{text}");
    assert!(!text.contains("not the secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_over_https_trusts_the_cacert_and_refuses_an_unknown_certificate() {
    let nats = NatsServer::start().await.expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.pem()).expect("cert");
    std::fs::write(&key_path, signing_key.serialize_pem()).expect("key");
    let mode = Mode::Terminate {
        cert: cert_path.clone(),
        key: key_path,
    };
    let (url, _stop) = start_receiver(&nats, mode).await;

    let cacert = cert_path.display().to_string();
    let trusted = send_with(&url, SECRET, &["--cacert", &cacert]).await;
    assert_eq!(trusted.status.code(), Some(0), "{trusted:?}");
    assert!(String::from_utf8_lossy(&trusted.stdout).starts_with("200 OK\n"));

    let unknown = send(&url, SECRET).await;
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("TLS handshake"),
        "{unknown:?}"
    );

    let insecure = send_with(&url, SECRET, &["--insecure"]).await;
    assert_eq!(insecure.status.code(), Some(0), "{insecure:?}");
}

/// `--connect-to`: the TCP connection goes to the given address, while the
/// TLS server name, the certificate check and Host are the URL's host, which
/// resolves nowhere (as an ingress controller is tried before DNS points at
/// it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_connects_to_another_address_with_the_urls_host_as_server_name() {
    let nats = NatsServer::start().await.expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let host = "hooks.hookwarden.invalid";
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec![host.to_owned()]).expect("certificate");
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.pem()).expect("cert");
    std::fs::write(&key_path, signing_key.serialize_pem()).expect("key");
    let mode = Mode::Terminate {
        cert: cert_path.clone(),
        key: key_path,
    };
    let (url, _stop) = start_receiver(&nats, mode).await;
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();
    let cacert = cert_path.display().to_string();
    let address = format!("127.0.0.1:{port}");
    let public = format!("https://{host}:{port}/");

    let sent = send_with(
        &public,
        SECRET,
        &["--cacert", &cacert, "--connect-to", &address],
    )
    .await;
    assert_eq!(sent.status.code(), Some(0), "{sent:?}");
    assert!(String::from_utf8_lossy(&sent.stdout).starts_with("200 OK\n"));

    // Without it the host is looked up, and is nowhere.
    let unresolved = send_with(&public, SECRET, &["--cacert", &cacert]).await;
    assert_eq!(unresolved.status.code(), Some(2), "{unresolved:?}");
    // The certificate is still checked against the URL's host.
    let wrong_name = send_with(
        &format!("https://localhost:{port}/"),
        SECRET,
        &["--cacert", &cacert, "--connect-to", &address],
    )
    .await;
    assert_eq!(wrong_name.status.code(), Some(2), "{wrong_name:?}");
    assert!(
        String::from_utf8_lossy(&wrong_name.stderr).contains("TLS handshake"),
        "{wrong_name:?}"
    );
}

/// A `hookwarden tail` process, killed on drop (also when a test fails).
struct Tail(std::process::Child);

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `hookwarden tail` on `subject`, its stdout lines on a channel once it
/// reports (on stderr) that it is subscribed.
fn start_tail(nats_url: &str, subject: &str) -> (Tail, std::sync::mpsc::Receiver<String>, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookwarden"))
        .args(["tail", "--nats-url", nats_url, subject])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hookwarden tail");
    let mut ready = String::new();
    let stderr = child.stderr.take().expect("stderr");
    let stdout = child.stdout.take().expect("stdout");
    let child = Tail(child);
    std::io::BufReader::new(stderr)
        .read_line(&mut ready)
        .expect("tail reports it is subscribed");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (child, received, ready)
}

/// Lines from `tail` until one equals `last`, within 10 s.
fn lines_until(received: &std::sync::mpsc::Receiver<String>, last: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(line) = received.recv_timeout(Duration::from_secs(10)) {
        let done = line == last;
        seen.push(line);
        if done {
            return seen;
        }
    }
    panic!("tail printed {seen:?}, never {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_stored_deliveries_and_core_messages_live() {
    let nats = NatsServer::start().await.expect("nats-server");
    let (url, _stop) = start_receiver(&nats, Mode::InsecureHttp).await;
    let endpoint = hookwarden_crds::from_yaml(ENDPOINT).expect("endpoint manifest");
    let prefix = Target::for_endpoint(&endpoint)
        .expect("target")
        .subject_prefix;

    let (tail, received, ready) = start_tail(nats.url(), &format!("{prefix}.>"));
    assert!(ready.contains("JetStream stream"), "{ready}");
    let sent = send(&url, SECRET).await;
    assert_eq!(sent.status.code(), Some(0), "{sent:?}");
    let lines = lines_until(&received, "{}");
    assert_eq!(lines[0], format!("--- {prefix}.push"), "{lines:?}");
    assert!(
        lines.contains(&"Hookwarden-Event: push".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"Hookwarden-Provider: github".to_owned()),
        "{lines:?}"
    );
    drop(tail);

    let (tail, received, ready) = start_tail(nats.url(), "elsewhere.>");
    assert!(ready.contains("core NATS"), "{ready}");
    let client = nats.connect().await.expect("connect");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Hookwarden-Event", "ping");
    headers.insert("Other", "not shown");
    client
        .publish_with_headers("elsewhere.a", headers, r#"{"a":1}"#.into())
        .await
        .expect("publish");
    client.flush().await.expect("flush");
    let lines = lines_until(&received, "}");
    assert_eq!(
        lines,
        [
            "--- elsewhere.a",
            "Hookwarden-Event: ping",
            "{",
            "  \"a\": 1",
            "}"
        ]
    );
    drop(tail);
}
