//! Nothing lost: with deliveries arriving all the time, nats-server is
//! killed (SIGKILL) and restarted with the same store. Every delivery
//! answered 2xx must be in the stream exactly once, the outage must be
//! answered 503 (never 2xx), and the receiver must recover by itself.
//! Also: a full stream (limits with `discard: new`) and a frozen
//! nats-server (SIGSTOP: publishes time out, the in-flight cap answers
//! `overloaded`) are answered 503 with `Retry-After`, never 2xx.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::{Answer, Receiver, start_github, start_receiver};
use async_nats::jetstream;
use async_nats::jetstream::stream::DiscardPolicy;
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
    for i in 0..MAX_PER_SENDER * crate::soak_scale() {
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

    // One outage in `make test`; `bench/soak.sh` repeats it under the same
    // unbroken load.
    let outages = crate::soak_scale();
    let mut recoveries = 0;
    for outage in 0..outages {
        tokio::time::sleep(Duration::from_millis(300)).await;
        nats.kill();
        // Long enough for publishes in flight to time out (2 s) and be answered 503.
        tokio::time::sleep(Duration::from_secs(3)).await;
        nats.restart()
            .await
            .expect("nats-server restarts with the same store");
        // Keep sending until deliveries are stored again (the receiver
        // reconnects on its own).
        for _ in 0..150 {
            let probe = receiver
                .deliver(b"{\"probe\":true}", &format!("probe-{outage}"), None)
                .await;
            if probe.status == StatusCode::OK {
                recoveries += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for sender in senders {
        answers.extend(sender.await.expect("sender"));
    }
    assert_eq!(
        recoveries, outages,
        "the receiver stores again after each NATS outage, without a restart"
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
        "nats killed {outages} time(s): {} answers: {} accepted, {unavailable} answered 503; {} stored",
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
        .header("x-hub-signature-256", crate::sign(body.as_bytes()))
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
    std::fs::write(dir.path().join("endpoint.yaml"), crate::ENDPOINT).expect("manifest");
    std::fs::create_dir_all(dir.path().join("secrets/gh")).expect("mkdir");
    std::fs::write(dir.path().join("secrets/gh/secret"), crate::SECRET).expect("secret");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let listen = format!("127.0.0.1:{port}");

    // One kill in `make test`; `bench/soak.sh` kills and restarts it again
    // and again, each time while a provider is delivering.
    let kills = crate::soak_scale();
    let mut acknowledged = Vec::new();
    let mut unacknowledged = Vec::new();
    let mut retries = Vec::new();
    let mut receiver = spawn_receiver(dir.path(), nats.url(), &listen).await;
    for kill in 0..kills {
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
        let mut acknowledged_now = Vec::new();
        let mut unacknowledged_now = Vec::new();
        for i in 0..2000 {
            let id = format!("kill-{kill}-{i}");
            match post_once(&listen, &id).await {
                Some(status) if status.is_success() => acknowledged_now.push(id),
                _ => {
                    unacknowledged_now.push(id);
                    break;
                }
            }
        }
        killer.await.expect("killer");
        let _ = receiver.wait().await;
        assert!(
            !acknowledged_now.is_empty() && !unacknowledged_now.is_empty(),
            "kill {kill}: killed mid-load"
        );

        // Restarted. The provider retries what was not acknowledged, and also
        // (as providers do after timeouts) a few that were: each is stored once.
        receiver = spawn_receiver(dir.path(), nats.url(), &listen).await;
        let retries_now: Vec<String> = unacknowledged_now
            .iter()
            .chain(acknowledged_now.iter().rev().take(3))
            .cloned()
            .collect();
        for id in &retries_now {
            assert_eq!(
                post_once(&listen, id).await,
                Some(StatusCode::OK),
                "retry of {id}"
            );
        }
        acknowledged.extend(acknowledged_now);
        unacknowledged.extend(unacknowledged_now);
        retries.extend(retries_now);
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
    eprintln!(
        "receiver killed {kills} time(s): {} acknowledged, {} retried, {} stored",
        acknowledged.len(),
        retries.len(),
        stored.len()
    );
}

/// Every message of `stream`, counted by its `Nats-Msg-Id`.
async fn stored_ids(nats: &NatsServer, stream: &str) -> HashMap<String, usize> {
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let mut stream = js.get_stream(stream).await.expect("stream");
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
    stored
}

/// A refusal the provider must retry: 503, a `Retry-After`, and the reason.
fn assert_retry_later(id: &str, answer: &Answer, reasons: &[&str]) {
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{id}: {}",
        answer.json
    );
    assert!(
        answer
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|secs| secs > 0),
        "{id}: 503 without a Retry-After in seconds"
    );
    let reason = answer.json["error"].as_str().unwrap_or_default();
    assert!(
        reasons.contains(&reason),
        "{id}: reason {reason:?}, expected one of {reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_is_answered_503_and_stores_only_what_was_acknowledged() {
    // Stream limits an administrator set, with `discard: new`: JetStream
    // refuses what does not fit. By count, then by size.
    for (max_messages, max_bytes) in [(5_i64, -1_i64), (-1, 6 * 1024)] {
        let nats = NatsServer::start().await.expect("nats-server");
        let endpoint = hookwarden_crds::from_yaml(crate::ENDPOINT).expect("manifest");
        let target = hookwarden_receiver::publish::Target::for_endpoint(&endpoint).expect("target");
        let js = jetstream::new(nats.connect().await.expect("connect"));
        let mut config = target.stream_config();
        config.max_messages = max_messages;
        config.max_bytes = max_bytes;
        config.discard = DiscardPolicy::New;
        js.create_stream(config).await.expect("limited stream");
        // The receiver only creates the stream if absent: the limits stay.
        let receiver = Arc::new(start_receiver(&nats, 1024 * 1024).await);

        // Four senders at once, 10 deliveries each, of about 1 KiB.
        let senders: Vec<_> = (0..4)
            .map(|sender| {
                let receiver = Arc::clone(&receiver);
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    for i in 0..10 {
                        let id = format!("full-{sender}-{i}");
                        let payload =
                            format!("{{\"id\":\"{id}\",\"pad\":\"{}\"}}", "x".repeat(1000));
                        let answer = receiver.deliver(payload.as_bytes(), &id, None).await;
                        answers.push((id, answer));
                    }
                    answers
                })
            })
            .collect();
        let mut answers = Vec::new();
        for sender in senders {
            answers.extend(sender.await.expect("sender"));
        }

        let accepted: Vec<&str> = answers
            .iter()
            .filter(|(_, a)| a.status.is_success())
            .map(|(id, _)| id.as_str())
            .collect();
        let refused: Vec<&str> = answers
            .iter()
            .filter(|(_, a)| !a.status.is_success())
            .map(|(id, _)| id.as_str())
            .collect();
        // A full stream has a reason of its own, still retried like an outage.
        for (id, answer) in answers.iter().filter(|(_, a)| !a.status.is_success()) {
            assert_retry_later(id, answer, &["stream_full"]);
        }
        let metrics = receiver.metrics();
        assert!(
            metrics.contains(&format!(
                "hookwarden_refusals_total{{endpoint=\"ci/github\",reason=\"stream_full\"}} {}",
                refused.len()
            )),
            "{metrics}"
        );
        assert!(
            !accepted.is_empty() && !refused.is_empty(),
            "limits {max_messages}/{max_bytes}: {} accepted, {} refused",
            accepted.len(),
            refused.len()
        );
        if max_messages > 0 {
            assert_eq!(
                accepted.len() as i64,
                max_messages,
                "the stream took exactly its limit"
            );
        }

        let stored = stored_ids(&nats, &target.stream).await;
        for id in &accepted {
            assert_eq!(
                stored.get(*id),
                Some(&1),
                "acknowledged {id} stored exactly once"
            );
        }
        for id in &refused {
            assert_eq!(stored.get(*id), None, "refused {id} is not stored");
        }
        assert_eq!(
            stored.len(),
            accepted.len(),
            "nothing else stored: {stored:?}"
        );
        eprintln!(
            "limits {max_messages} messages / {max_bytes} bytes: {} answers, {} accepted and stored, {} answered 503",
            answers.len(),
            accepted.len(),
            refused.len()
        );
    }
}

/// Deliveries in flight at most; what comes beyond is answered `overloaded`.
const MAX_IN_FLIGHT: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_nats_server_is_answered_503_within_the_in_flight_cap_and_recovers() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = Arc::new(
        start_github(&nats, 1024 * 1024, "", |settings| {
            settings.serve.max_in_flight = MAX_IN_FLIGHT;
        })
        .await,
    );
    let before = receiver.deliver(b"{\"before\":true}", "before", None).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.json);

    // The process is alive and its socket open, but nothing is answered:
    // every publish waits for its timeout (2 s).
    let frozen = nats.freeze();
    // More senders than in-flight slots: while MAX_IN_FLIGHT deliveries
    // wait for JetStream, the others must be turned away at once. Each
    // sender stops once both kinds of refusal were seen (or after 40).
    let seen_timeout = Arc::new(AtomicBool::new(false));
    let seen_overload = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..MAX_IN_FLIGHT + 3)
        .map(|sender| {
            let receiver = Arc::clone(&receiver);
            let (seen_timeout, seen_overload) =
                (Arc::clone(&seen_timeout), Arc::clone(&seen_overload));
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0..40 {
                    if seen_timeout.load(Ordering::Relaxed) && seen_overload.load(Ordering::Relaxed)
                    {
                        break;
                    }
                    let id = format!("frozen-{sender}-{i}");
                    let answer = receiver.deliver(b"{\"frozen\":true}", &id, None).await;
                    match answer.json["error"].as_str() {
                        Some("store_unavailable") => seen_timeout.store(true, Ordering::Relaxed),
                        Some("overloaded") => seen_overload.store(true, Ordering::Relaxed),
                        _ => {}
                    }
                    answers.push((id, answer));
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for sender in senders {
        answers.extend(sender.await.expect("sender"));
    }
    for (id, answer) in &answers {
        assert_retry_later(id, answer, &["store_unavailable", "overloaded"]);
    }
    let count = |reason: &str| {
        answers
            .iter()
            .filter(|(_, a)| a.json["error"] == reason)
            .count()
    };
    let (timed_out, overloaded) = (count("store_unavailable"), count("overloaded"));
    assert!(timed_out > 0, "publishes to a frozen server time out");
    assert!(
        overloaded > 0,
        "beyond {MAX_IN_FLIGHT} deliveries in flight the receiver refuses at once"
    );

    // Resumed: the same receiver stores again, without a restart.
    drop(frozen);
    let mut recovered = None;
    for attempt in 0..150 {
        let probe = receiver
            .deliver(b"{\"probe\":true}", &format!("thawed-{attempt}"), None)
            .await;
        if probe.status == StatusCode::OK {
            recovered = Some(format!("thawed-{attempt}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = recovered.expect("the receiver stores again once NATS answers");
    // Publishes that timed out may still have reached the stream (their
    // bytes were in the socket); a 503 means "retry", and the retry is
    // de-duplicated. What was acknowledged is stored exactly once.
    let stored = stored_ids(&nats, &receiver.target.stream).await;
    for id in ["before", recovered.as_str()] {
        assert_eq!(stored.get(id), Some(&1), "{id} stored exactly once");
    }
    let retried = answers
        .iter()
        .find(|(_, a)| a.json["error"] == "store_unavailable")
        .map(|(id, _)| id.clone())
        .expect("a timed-out delivery");
    let retry = receiver.deliver(b"{\"frozen\":true}", &retried, None).await;
    assert_eq!(
        retry.status,
        StatusCode::OK,
        "the provider's retry of {retried}"
    );
    let stored = stored_ids(&nats, &receiver.target.stream).await;
    assert_eq!(
        stored.get(&retried),
        Some(&1),
        "{retried} stored once after its retry"
    );
    eprintln!(
        "frozen: {} answers, {timed_out} timed out, {overloaded} overloaded; recovered with {recovered}",
        answers.len()
    );
}
