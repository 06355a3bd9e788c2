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

async fn start_receiver(nats: &NatsServer) -> (String, oneshot::Sender<()>) {
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
    let transport =
        Transport::new(&Mode::InsecureHttp, Limits::default()).expect("plain HTTP transport");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
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
            .output()
            .expect("run hookwarden")
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_is_accepted_with_the_right_secret_and_refused_with_a_wrong_one() {
    let nats = NatsServer::start().await.expect("nats-server");
    let (url, _stop) = start_receiver(&nats).await;

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
