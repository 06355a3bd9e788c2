//! Nothing lost: with deliveries arriving all the time, nats-server is
//! killed (SIGKILL) and restarted with the same store. Every delivery
//! answered 2xx must be in the stream exactly once, the outage must be
//! answered 503 (never 2xx), and the receiver must recover by itself.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use common::{Receiver, start_receiver};
use hookwarden_tests::NatsServer;
use hyper::StatusCode;

/// Senders running at once, like a provider's parallel deliveries.
const SENDERS: usize = 4;
/// Upper bound on requests per sender, so the test always ends.
const MAX_PER_SENDER: usize = 400;

/// Sends uniquely identified deliveries until `stop`, recording each answer.
async fn send_until(
    receiver: Arc<Receiver>,
    sender: usize,
    stop: Arc<AtomicBool>,
) -> Vec<(String, StatusCode)> {
    let mut answers = Vec::new();
    for i in 0..MAX_PER_SENDER {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let id = format!("load-{sender}-{i}");
        let payload = format!("{{\"sender\":{sender},\"n\":{i}}}");
        let answer = receiver.deliver(payload.as_bytes(), &id, None).await;
        answers.push((id, answer.status));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_mid_load_never_acknowledges_an_unstored_delivery() {
    let mut nats = NatsServer::start().await.expect("nats-server");
    let receiver = Arc::new(start_receiver(&nats, 1024 * 1024).await);
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| tokio::spawn(send_until(Arc::clone(&receiver), sender, Arc::clone(&stop))))
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    nats.kill();
    // Long enough for publishes in flight to time out (2 s) and be answered 503.
    tokio::time::sleep(Duration::from_secs(3)).await;
    nats.restart()
        .await
        .expect("nats-server restarts with the same store");
    // Keep sending until deliveries are stored again (the receiver reconnects
    // on its own), then stop.
    let recovered = {
        let mut recovered = false;
        for _ in 0..150 {
            let probe = receiver.deliver(b"{\"probe\":true}", "probe", None).await;
            if probe.status == StatusCode::OK {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        recovered
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for sender in senders {
        answers.extend(sender.await.expect("sender"));
    }
    assert!(
        recovered,
        "the receiver stores again after NATS is back, without a restart"
    );

    let accepted: Vec<&str> = answers
        .iter()
        .filter(|(_, s)| s.is_success())
        .map(|(id, _)| id.as_str())
        .collect();
    let unavailable = answers
        .iter()
        .filter(|(_, s)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    let other: Vec<_> = answers
        .iter()
        .filter(|(_, s)| !s.is_success() && *s != StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        other.is_empty(),
        "only 2xx or 503 during an outage: {other:?}"
    );
    assert!(
        unavailable > 0,
        "the outage was answered 503 ({} answers)",
        answers.len()
    );
    assert!(
        !accepted.is_empty(),
        "deliveries were accepted around the outage"
    );

    // Every stored message, by its Nats-Msg-Id.
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let mut stream = js
        .get_stream(&receiver.target.stream)
        .await
        .expect("stream");
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut stored: HashMap<String, usize> = HashMap::new();
    for sequence in 1..=last {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            let id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            *stored.entry(id).or_default() += 1;
        }
    }
    for id in &accepted {
        assert_eq!(
            stored.get(*id),
            Some(&1),
            "acknowledged delivery {id} stored exactly once"
        );
    }
    assert!(stored.values().all(|&n| n == 1), "no delivery stored twice");
    eprintln!(
        "{} answers: {} accepted, {unavailable} answered 503; {} stored",
        answers.len(),
        accepted.len(),
        stored.len()
    );
}

/// Starts the real receiver binary (plain HTTP) and waits until it is ready.
async fn spawn_receiver(
    dir: &std::path::Path,
    nats_url: &str,
    listen: &str,
) -> tokio::process::Child {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwarden-receiver"))
        .arg("serve")
        .env("HOOKWARDEN_ENDPOINT", dir.join("endpoint.yaml"))
        .env("HOOKWARDEN_SECRETS_DIR", dir.join("secrets"))
        .env("HOOKWARDEN_NATS_URL", nats_url)
        .env("HOOKWARDEN_LISTEN", listen)
        .env("HOOKWARDEN_METRICS_LISTEN", "127.0.0.1:0")
        .env("HOOKWARDEN_TLS_MODE", "insecure-http")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("receiver starts");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "receiver not listening within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// One GitHub delivery over a fresh connection; `None` when no HTTP answer
/// came (the receiver died mid-request).
async fn post_once(listen: &str, id: &str) -> Option<StatusCode> {
    use http_body_util::Full;
    let body = format!("{{\"delivery\":\"{id}\"}}");
    let request = hyper::Request::post(format!("http://{listen}/"))
        .header("x-github-event", "push")
        .header("x-github-delivery", id)
        .header("x-hub-signature-256", common::sign(body.as_bytes()))
        .body(Full::new(bytes::Bytes::from(body)))
        .ok()?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .ok()?
        .ok()
        .map(|r| r.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_killed_mid_load_loses_nothing_it_acknowledged() {
    let nats = NatsServer::start().await.expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("endpoint.yaml"), common::ENDPOINT).expect("manifest");
    std::fs::create_dir_all(dir.path().join("secrets/gh")).expect("mkdir");
    std::fs::write(dir.path().join("secrets/gh/secret"), common::SECRET).expect("secret");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let listen = format!("127.0.0.1:{port}");

    let mut receiver = spawn_receiver(dir.path(), nats.url(), &listen).await;
    let killer = {
        let pid = receiver
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .expect("pid");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        })
    };
    // A provider delivering one event after another until the receiver dies.
    let mut acknowledged = Vec::new();
    let mut unacknowledged = Vec::new();
    for i in 0..2000 {
        let id = format!("kill-{i}");
        match post_once(&listen, &id).await {
            Some(status) if status.is_success() => acknowledged.push(id),
            _ => {
                unacknowledged.push(id);
                break;
            }
        }
    }
    killer.await.expect("killer");
    let _ = receiver.wait().await;
    assert!(
        !acknowledged.is_empty() && !unacknowledged.is_empty(),
        "killed mid-load"
    );

    // The provider retries what was not acknowledged, and also (as providers
    // do after timeouts) a few that were: each is stored once.
    let receiver = spawn_receiver(dir.path(), nats.url(), &listen).await;
    let retries: Vec<String> = unacknowledged
        .iter()
        .chain(acknowledged.iter().rev().take(3))
        .cloned()
        .collect();
    for id in &retries {
        assert_eq!(
            post_once(&listen, id).await,
            Some(StatusCode::OK),
            "retry of {id}"
        );
    }
    drop(receiver);

    let js = jetstream::new(nats.connect().await.expect("connect"));
    let mut stream = js.get_stream("HOOKWARDEN_CI_GITHUB").await.expect("stream");
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut stored: HashMap<String, usize> = HashMap::new();
    for sequence in 1..=last {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            let id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            *stored.entry(id).or_default() += 1;
        }
    }
    for id in acknowledged.iter().chain(retries.iter()) {
        assert_eq!(stored.get(id), Some(&1), "{id} stored exactly once");
    }
    assert_eq!(stored.len(), acknowledged.len() + unacknowledged.len());
}
