//! `hookwarden send` against a real receiver, in process, storing in a
//! private nats-server.

use std::process::Output;
use std::time::Duration;

use hookwarden_receiver::publish::{Publisher, Target};
use hookwarden_receiver::secrets::Secret;
use hookwarden_receiver::server::{self, AppState};
use hookwarden_receiver::transport::{Limits, Mode, Transport};
use hookwarden_receiver::verify;
use hookwarden_tests::NatsServer;
use tokio::sync::oneshot;

const SECRET: &str = "It's a Secret to Everybody";
const ENDPOINT: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: github, namespace: ci}\n\
    spec: {provider: github, secretRefs: [{name: gh, key: secret}]}\n";

/// The receiver for [`ENDPOINT`], over plain HTTP or terminating TLS as
/// `mode` says; its URL (`scheme://host:port/`) and its stop switch.
async fn start_receiver(nats: &NatsServer, mode: Mode) -> (String, oneshot::Sender<()>) {
    let endpoint = hookwarden_crds::from_yaml(ENDPOINT).expect("endpoint manifest");
    let target = Target::for_endpoint(&endpoint).expect("target");
    let verifier = verify::for_provider(
        endpoint.spec.provider,
        vec![Secret::from(SECRET.as_bytes())],
        None,
    )
    .expect("verifier");
    let client = nats.connect().await.expect("connect to NATS");
    let publisher = Publisher::new(client, target, Duration::from_secs(2));
    publisher.ensure_stream().await.expect("stream");
    let transport = Transport::new(&mode, Limits::default()).expect("transport");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let url = match mode {
        Mode::Terminate { .. } => format!("https://localhost:{port}/"),
        _ => format!("http://127.0.0.1:{port}/"),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server::serve(
        AppState::new(verifier, publisher),
        listener,
        transport,
        async {
            let _ = stopped.await;
        },
    ));
    (url, stop)
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
