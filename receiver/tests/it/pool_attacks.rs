//! The shared receiver pool's promises under attack and outage, against the
//! real `hookwarden-receiver serve --pool-dir` binary on a directory laid
//! out and updated like the pool's mounted Secret ([`SecretVolume`]), in
//! front of a real nats-server:
//!
//! - endpoints added or changed while NATS is down never answer 2xx (a new
//!   one answers 503, not 404: it is configured), and store once NATS is
//!   back, without a restart;
//! - one endpoint's slow or aborting clients leave the others storing, and
//!   leave no stored event and no slot taken behind them;
//! - a delivery replayed to another endpoint of the pool is refused (its
//!   secret differs); delivery ids are de-duplicated per endpoint stream;
//! - a removed endpoint answers 404 once its file is gone, its
//!   configuration series with it, and its old secret does not come back
//!   with a new endpoint of the same name.
//!
//! (Its own test binary until the receiver's tests are merged into one;
//! the raw-TCP helpers mirror `attacks/main.rs`'s.)

use std::net::SocketAddr;
use std::time::Duration;

use crate::binary::{PlainMode, ReceiverProcess, Reply, WAIT, request};
use async_nats::jetstream;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use hookwarden_receiver::pool::layout::{endpoint_file, secret_file};
use hookwarden_receiver::publish::Target;
use hookwarden_tests::{NatsServer, SecretVolume, eventually};
use http_body_util::Full;
use hyper::StatusCode;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HOST: &str = "hooks.example.com";
const ALPHA_SECRET: &[u8] = b"alpha-pool-SECRET-0001";
const ALPHA_ROTATED: &[u8] = b"alpha-pool-ROTATED-0002";
const BETA_SECRET: &[u8] = b"beta-pool-SECRET-0003";

/// A GitHub endpoint `name` of the pool on `/<name>`, verified with the
/// Secret `<name>`'s key `secret`.
fn github(name: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: {name}, namespace: pool}}\n\
         spec:\n  provider: github\n  secretRefs: [{{name: {name}, key: secret}}]\n  \
         ingress: {{host: {HOST}, path: /{name}}}\n"
    )
}

/// The pool files of the endpoint `name` verified with `secret`.
fn endpoint_files(name: &str, secret: &[u8]) -> [(String, Vec<u8>); 2] {
    [
        (endpoint_file(name), github(name).into_bytes()),
        (secret_file(name, "secret"), secret.to_vec()),
    ]
}

fn as_files(files: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    files
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
        .collect()
}

fn stream_of(name: &str) -> String {
    Target::for_endpoint(&hookwarden_crds::from_yaml(&github(name)).expect("manifest"))
        .expect("target")
        .stream
}

fn hub_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The GitHub delivery `id` with `body` to the endpoint `name`'s route,
/// signed with `secret`.
fn delivery(
    listen: &str,
    name: &str,
    secret: &[u8],
    id: &str,
    body: &[u8],
) -> hyper::Request<Full<Bytes>> {
    let signature = hub_signature(secret, body);
    request(
        listen,
        "POST",
        &format!("/{name}"),
        &[
            ("host", HOST),
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("x-github-delivery", id),
            ("x-hub-signature-256", signature.as_str()),
        ],
        body,
    )
}

/// Sends a fresh delivery to `name` signed with `secret`.
async fn deliver(pool: &ReceiverProcess, name: &str, secret: &[u8], id: &str) -> Reply {
    let body = format!(r#"{{"id":"{id}"}}"#);
    pool.send_request(delivery(&pool.listen, name, secret, id, body.as_bytes()))
        .await
}

/// The messages the stream `stream` holds.
async fn stored(nats: &NatsServer, stream: &str) -> u64 {
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let mut stream = js.get_stream(stream).await.expect("the endpoint's stream");
    stream.info().await.expect("stream info").state.messages
}

/// `/endpoints`, by name.
async fn endpoints(pool: &ReceiverProcess) -> serde_json::Map<String, serde_json::Value> {
    let (status, text) = pool.ops_get("/endpoints").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    json["endpoints"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| (e["name"].as_str().expect("name").to_owned(), e.clone()))
        .collect()
}

/// The value of the metric line starting with `prefix` (name and labels);
/// `None` when the series is absent.
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(prefix)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// A TCP connection to `to` from the loopback address `source`.
async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    socket.connect(to).await.expect("connect")
}

/// The status of the first HTTP/1.1 answer in `answer`.
fn status_of(answer: &[u8]) -> Option<u16> {
    String::from_utf8_lossy(answer)
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

/// The head of a GitHub delivery to `name` declaring `body` whole, signed
/// for it with `secret`, as raw HTTP/1.1 (the body is the caller's to send).
fn raw_head(name: &str, secret: &[u8], id: &str, body: &[u8]) -> String {
    format!(
        "POST /{name} HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\n\
         x-github-event: push\r\nx-github-delivery: {id}\r\nx-hub-signature-256: {}\r\n\
         content-length: {}\r\n\r\n",
        hub_signature(secret, body),
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_changes_while_nats_is_down_never_answer_2xx_and_store_once_it_is_back() {
    let mut nats = NatsServer::start().await.expect("nats-server");
    let alpha = endpoint_files("alpha", ALPHA_SECRET);
    let volume = SecretVolume::new(&as_files(&alpha));
    let pool = ReceiverProcess::spawn_pool(PlainMode::InsecureHttp, nats.url(), volume.path(), &[]);
    pool.ready().await;
    let pid = pool.pid();
    assert_eq!(
        deliver(&pool, "alpha", ALPHA_SECRET, "before").await.status,
        StatusCode::OK
    );

    nats.stop();
    // Alpha's secret rotated and beta added, both while NATS is away.
    let beta = endpoint_files("beta", BETA_SECRET);
    volume.update(
        &as_files(&beta)
            .into_iter()
            .chain([(secret_file("alpha", "secret").as_str(), ALPHA_ROTATED)])
            .collect::<Vec<_>>(),
        &[],
    );
    // The rotation applies without NATS (alpha's stream is known): the new
    // secret verifies, and the delivery is refused unstored.
    let answers = std::sync::Mutex::new(Vec::new());
    let mut attempt = 0;
    eventually(
        "alpha's rotated secret verified, answered 503",
        WAIT,
        || {
            attempt += 1;
            let id = format!("down-alpha-{attempt}");
            let (pool, answers) = (&pool, &answers);
            async move {
                let status = deliver(pool, "alpha", ALPHA_ROTATED, &id).await.status;
                answers.lock().expect("answers").push(status);
                (status == StatusCode::SERVICE_UNAVAILABLE).then_some(())
            }
        },
    )
    .await;
    // Beta cannot create its stream: it is reported, never served unstored,
    // but it is configured: 503 with Retry-After tells the sender to come
    // back (a 404 `unknown_endpoint` would tell it the URL is wrong).
    let entry = eventually("beta reported as failed", WAIT, || async {
        endpoints(&pool)
            .await
            .remove("beta")
            .filter(|e| e["state"] == "failed")
    })
    .await;
    assert_eq!(entry["routed"], false, "{entry}");
    for n in 0..3 {
        let reply = deliver(&pool, "beta", BETA_SECRET, &format!("down-beta-{n}")).await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            reply.body
        );
        assert_eq!(
            reply.json()["error"],
            "store_unavailable",
            "{:?}",
            reply.body
        );
        assert!(
            reply.headers.contains_key("retry-after"),
            "{:?}",
            reply.headers
        );
        answers.lock().expect("answers").push(reply.status);
    }
    let answers = answers.into_inner().expect("answers");
    assert!(
        answers.iter().all(|s| !s.is_success()),
        "never a 2xx while NATS is down: {answers:?}"
    );
    // The old secret is gone even though NATS is.
    assert_eq!(
        deliver(&pool, "alpha", ALPHA_SECRET, "old-secret")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    nats.restart()
        .await
        .expect("nats-server restarts with the same store");
    // Both store again, the same process all along.
    for (name, secret) in [("alpha", ALPHA_ROTATED), ("beta", BETA_SECRET)] {
        let what = format!("{name} storing after NATS is back");
        let mut attempt = 0;
        eventually(&what, WAIT, || {
            attempt += 1;
            let id = format!("back-{name}-{attempt}");
            let pool = &pool;
            async move {
                let reply = deliver(pool, name, secret, &id).await;
                assert!(
                    !reply.status.is_success() || reply.json()["status"] == "stored",
                    "{:?}",
                    reply.body
                );
                reply.status.is_success().then_some(())
            }
        })
        .await;
    }
    // At least those answered 2xx (a publish that timed out with NATS away
    // may still land once it is back: 503 is "not known to be stored").
    assert!(stored(&nats, &stream_of("alpha")).await >= 2);
    assert!(stored(&nats, &stream_of("beta")).await >= 1);
    let listed = endpoints(&pool).await;
    for name in ["alpha", "beta"] {
        assert_eq!(listed[name]["state"], "serving", "{listed:?}");
    }
    assert_eq!(pool.pid(), pid, "never restarted");
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_aborting_clients_leave_no_event_no_slot_and_the_others_storing() {
    let nats = NatsServer::start().await.expect("nats-server");
    let files: Vec<(String, Vec<u8>)> = endpoint_files("alpha", ALPHA_SECRET)
        .into_iter()
        .chain(endpoint_files("beta", BETA_SECRET))
        .collect();
    let volume = SecretVolume::new(&as_files(&files));
    // One slot per endpoint and four body reads per source: a slot or a
    // read left taken by an aborted request shows at once.
    let pool = ReceiverProcess::spawn_pool(
        PlainMode::InsecureHttp,
        nats.url(),
        volume.path(),
        &[
            ("RUST_LOG", "warn"),
            ("HOOKWARDEN_MAX_IN_FLIGHT_PER_ENDPOINT", "1"),
            ("HOOKWARDEN_MAX_BODY_READS_PER_SOURCE", "4"),
            ("HOOKWARDEN_PUBLISH_TIMEOUT_SECS", "10"),
        ],
    );
    pool.ready().await;
    let to: SocketAddr = pool.listen.parse().expect("listen address");
    let body = vec![b'x'; 1000];

    // Slow headers and slow bodies on alpha's route, from ten addresses.
    let slow: Vec<_> = (0..40u8)
        .map(|n| {
            let head = raw_head("alpha", ALPHA_SECRET, &format!("slow-{n}"), &body);
            tokio::spawn(async move {
                let mut stream = connect_from([127, 0, 3, 1 + n % 10], to).await;
                // Half of them trickle the head, half the body.
                let (first, rest) = if n % 2 == 0 {
                    head.as_bytes().split_at(20)
                } else {
                    (head.as_bytes(), &b"{"[..])
                };
                let _ = stream.write_all(first).await;
                for byte in rest.iter().take(8) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if stream.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Meanwhile beta stores every delivery.
    for n in 0..10 {
        let reply = deliver(&pool, "beta", BETA_SECRET, &format!("beta-{n}")).await;
        assert_eq!(reply.status, StatusCode::OK, "beta {n}: {:?}", reply.body);
    }
    for task in slow {
        task.await.expect("slow client");
    }

    // Aborted mid-body, signed for the whole body, from one address: more
    // aborts than that address may read bodies at once.
    for n in 0..12 {
        let mut stream = connect_from([127, 0, 3, 20], to).await;
        let head = raw_head("alpha", ALPHA_SECRET, &format!("aborted-{n}"), &body);
        stream.write_all(head.as_bytes()).await.expect("head");
        stream.write_all(&body[..500]).await.expect("half the body");
        drop(stream);
    }
    // Aborted while its event is being stored: NATS frozen, the client gone.
    let frozen = nats.freeze();
    let mut stream = connect_from([127, 0, 3, 21], to).await;
    let head = raw_head("alpha", ALPHA_SECRET, "gone-during-publish", &body);
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&body).await.expect("body");
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(stream);
    frozen.resume();

    // No request is left in flight, and alpha's one slot and the aborting
    // address's body reads are free: its next deliveries are stored.
    eventually("no request in flight", WAIT, || async {
        (metric(&pool.metrics().await, "hookwarden_requests_in_flight") == Some(0.0)).then_some(())
    })
    .await;
    for n in 0..6 {
        let mut stream = connect_from([127, 0, 3, 20], to).await;
        let id = format!("after-{n}");
        let head = raw_head("alpha", ALPHA_SECRET, &id, &body);
        stream.write_all(head.as_bytes()).await.expect("head");
        stream.write_all(&body).await.expect("body");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(WAIT, stream.read_buf(&mut answer)).await;
        assert_eq!(status_of(&answer), Some(200), "alpha after the aborts, {n}");
    }
    // Only the whole deliveries were stored: the one whose client left
    // during the publish, and the six after.
    let alpha_stream = stream_of("alpha");
    assert_eq!(stored(&nats, &alpha_stream).await, 7);
    assert_eq!(stored(&nats, &stream_of("beta")).await, 10);
    let metrics = pool.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"hookwarden_refusals_total{endpoint="pool/beta",reason="overloaded"}"#
        ),
        None,
        "{metrics}"
    );
    pool.stop().await;
}

#[tokio::test]
async fn a_replay_to_another_endpoint_is_refused_and_ids_are_deduplicated_per_endpoint() {
    let nats = NatsServer::start().await.expect("nats-server");
    let files: Vec<(String, Vec<u8>)> = endpoint_files("alpha", ALPHA_SECRET)
        .into_iter()
        .chain(endpoint_files("beta", BETA_SECRET))
        .collect();
    let volume = SecretVolume::new(&as_files(&files));
    let pool = ReceiverProcess::spawn_pool(PlainMode::InsecureHttp, nats.url(), volume.path(), &[]);
    pool.ready().await;
    let listen = pool.listen.clone();
    let body = br#"{"action":"completed"}"#;
    let id = "0f5e2c1a-5b7d-11f0-8e2b-replayed";

    let first = pool
        .send_request(delivery(&listen, "alpha", ALPHA_SECRET, id, body))
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json()["duplicate"], false);
    // Alpha's signed request, byte for byte, on beta's route: refused.
    let replayed = pool
        .send_request(delivery(&listen, "beta", ALPHA_SECRET, id, body))
        .await;
    assert_eq!(replayed.status, StatusCode::UNAUTHORIZED);
    assert_eq!(replayed.json()["error"], "signature_mismatch");
    // The same id, signed by beta's own sender: beta's event, stored in
    // beta's stream, not taken for alpha's duplicate.
    let own = pool
        .send_request(delivery(&listen, "beta", BETA_SECRET, id, body))
        .await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.json()["duplicate"], false, "{:?}", own.body);
    // Replays on each endpoint's own route: duplicates of its own event.
    for (name, secret) in [("alpha", ALPHA_SECRET), ("beta", BETA_SECRET)] {
        let again = pool
            .send_request(delivery(&listen, name, secret, id, body))
            .await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.json()["duplicate"], true, "{name}: {:?}", again.body);
    }
    for name in ["alpha", "beta"] {
        assert_eq!(stored(&nats, &stream_of(name)).await, 1, "{name}");
    }
    let metrics = pool.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"hookwarden_refusals_total{endpoint="pool/beta",reason="signature_mismatch"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    pool.stop().await;
}

#[tokio::test]
async fn a_removed_endpoint_answers_404_its_series_go_and_its_old_secret_does_not_come_back() {
    let nats = NatsServer::start().await.expect("nats-server");
    let files: Vec<(String, Vec<u8>)> = endpoint_files("alpha", ALPHA_SECRET)
        .into_iter()
        .chain(endpoint_files("beta", BETA_SECRET))
        .collect();
    let volume = SecretVolume::new(&as_files(&files));
    let pool = ReceiverProcess::spawn_pool(PlainMode::InsecureHttp, nats.url(), volume.path(), &[]);
    pool.ready().await;
    assert_eq!(
        deliver(&pool, "beta", BETA_SECRET, "kept").await.status,
        StatusCode::OK
    );
    let series = r#"hookwarden_pool_endpoint_config{endpoint="beta",state="serving"}"#;
    assert_eq!(metric(&pool.metrics().await, series), Some(1.0));

    volume.update(
        &[],
        &[&endpoint_file("beta"), &secret_file("beta", "secret")],
    );
    eventually("beta gone from /endpoints", WAIT, || async {
        (!endpoints(&pool).await.contains_key("beta")).then_some(())
    })
    .await;
    // The route table is swapped before /endpoints: from now on, 404.
    let reply = deliver(&pool, "beta", BETA_SECRET, "after-removal").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["error"], "unknown_endpoint");
    let metrics = pool.metrics().await;
    assert!(
        !metrics.contains(r#"hookwarden_pool_endpoint_config{endpoint="beta""#),
        "its configuration series is gone: {metrics}"
    );
    // Counters keep what beta did (Prometheus counters are not withdrawn
    // while the process lives; a rate over them falls to 0).
    assert_eq!(
        metric(
            &metrics,
            r#"hookwarden_requests_total{endpoint="pool/beta",outcome="stored"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        deliver(&pool, "alpha", ALPHA_SECRET, "alpha-unmoved")
            .await
            .status,
        StatusCode::OK
    );

    // A new endpoint of the same name with another secret: the removed
    // one's secret verifies nothing.
    let renewed = endpoint_files("beta", b"beta-pool-RENEWED-0004");
    volume.update(&as_files(&renewed), &[]);
    eventually("beta back", WAIT, || async {
        endpoints(&pool)
            .await
            .remove("beta")
            .filter(|e| e["state"] == "serving")
    })
    .await;
    assert_eq!(
        deliver(&pool, "beta", BETA_SECRET, "old-secret")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        deliver(&pool, "beta", b"beta-pool-RENEWED-0004", "new-secret")
            .await
            .status,
        StatusCode::OK
    );
    pool.stop().await;
}
