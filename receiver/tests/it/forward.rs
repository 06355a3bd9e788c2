//! The real `hookwarden-receiver forward` process, started from a
//! subscription manifest the way the operator runs it, reading a real
//! nats-server and delivering to real HTTP servers on 127.0.0.1 written
//! here: one that verifies the Standard Webhooks signature, ones that fail,
//! throttle, hang, refuse or are gone, a forwarder killed mid-delivery, a
//! dead-letter stream that is gone, and the whole path from a signed
//! provider delivery through `serve` to the destination.

use std::convert::Infallible;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use hookwarden_receiver::secrets::Secret;
use hookwarden_receiver::verify::Verifier;
use hookwarden_receiver::verify::standard_webhooks::StandardWebhooksVerifier;
use hookwarden_tests::{NatsServer, free_port};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Every wait of these tests: long enough for a slow machine, never a
/// measure of speed.
const WAIT: Duration = Duration::from_secs(60);

const SIGNING_SECRET: &str = "whsec_dGhlLWZvcndhcmRlcnMtc2lnbmluZy1rZXk=";
const STREAM: &str = "EVENTS";
const CONSUMER: &str = "hookwarden_shop_to-billing";
const DEAD_LETTER_STREAM: &str = "HOOKWARDEN-DLQ_SHOP_TO-BILLING";
const DEAD_LETTER_SUBJECT: &str = "hookwarden-dlq.shop.to-billing";

/// A subscription to [`STREAM`] delivering to `url`, `spec` lines added.
fn subscription(url: &str, spec: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookSubscription\n\
         metadata: {{name: to-billing, namespace: shop}}\nspec:\n\
         \x20 source: {{stream: {STREAM}, subjectPrefix: shop.orders}}\n\
         \x20 destination: {{url: '{url}', timeoutSeconds: 1}}\n\
         \x20 signing: {{secretRef: {{name: billing-signing, key: secret}}}}\n{spec}"
    )
}

const FAST_RETRIES: &str =
    "  retry: {initialBackoffSeconds: 1, maxBackoffSeconds: 1, maxAttempts: 4}\n";

// ---------------------------------------------------------------- destination

/// What a destination does with request number `n` (0-based).
#[derive(Debug, Clone)]
enum Reply {
    Status(u16, Vec<(&'static str, &'static str)>),
    /// Never answers (the connection stays open until the client leaves).
    Hang,
    /// Answers 200 once the test notifies it: a slow destination.
    Held(Arc<tokio::sync::Notify>),
}

#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    /// The Standard Webhooks signature verified with [`SIGNING_SECRET`].
    verified: bool,
}

impl Received {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("text").to_owned())
    }
}

type Behaviour = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

/// An HTTP destination on 127.0.0.1, port 0.
struct Destination {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Destination {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Destination {
    async fn start(behaviour: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let behaviour: Behaviour = Arc::new(behaviour);
        let verifier = Arc::new(
            StandardWebhooksVerifier::new(vec![Secret::from(SIGNING_SECRET.as_bytes())], 300)
                .expect("verifier"),
        );
        let count = Arc::new(AtomicUsize::new(0));
        let log = Arc::clone(&received);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (behaviour, verifier, count, log) = (
                    Arc::clone(&behaviour),
                    Arc::clone(&verifier),
                    Arc::clone(&count),
                    Arc::clone(&log),
                );
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let (behaviour, verifier, count, log) = (
                            Arc::clone(&behaviour),
                            Arc::clone(&verifier),
                            Arc::clone(&count),
                            Arc::clone(&log),
                        );
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.expect("body").to_bytes();
                            let verified = verifier.verify(&parts.headers, &body).is_ok();
                            log.lock().expect("log").push(Received {
                                headers: parts.headers,
                                body,
                                verified,
                            });
                            let n = count.fetch_add(1, Ordering::SeqCst);
                            match behaviour(n) {
                                Reply::Status(status, headers) => {
                                    let mut response = Response::builder().status(status);
                                    for (name, value) in headers {
                                        response = response.header(name, value);
                                    }
                                    Ok::<_, Infallible>(
                                        response
                                            .body(Full::new(Bytes::from_static(b"answer")))
                                            .expect("response"),
                                    )
                                }
                                Reply::Hang => std::future::pending().await,
                                Reply::Held(release) => {
                                    release.notified().await;
                                    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
                                }
                            }
                        }
                    });
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            port,
            received,
            task,
        }
    }

    async fn always(status: u16) -> Self {
        Self::start(move |_| Reply::Status(status, Vec::new())).await
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }

    /// Waits for at least `n` requests.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let what = format!("{n} request(s) at the destination");
        hookwarden_tests::eventually(&what, WAIT, || async {
            let received = self.received();
            (received.len() >= n).then_some(received)
        })
        .await
    }
}

// ----------------------------------------------------------------- forwarder

/// The real `forward` process, killed on drop.
struct Forwarder {
    child: tokio::process::Child,
    ops: String,
    log: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
}

fn capture(stream: impl AsyncRead + Unpin + Send + 'static, log: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = log.lock().expect("log");
            log.push_str(&line);
            log.push('\n');
        }
    });
}

impl Forwarder {
    /// Writes the manifest and the signing secret as the operator mounts
    /// them, starts `forward` and waits until it is ready.
    async fn start(nats: &NatsServer, manifest: &str) -> Self {
        Self::start_with(nats, manifest, &[]).await
    }

    async fn start_with(nats: &NatsServer, manifest: &str, args: &[&str]) -> Self {
        Self::start_with_env(nats, manifest, args, &[]).await
    }

    /// As [`Forwarder::start_with`], with `env` added to its environment.
    async fn start_with_env(
        nats: &NatsServer,
        manifest: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("subscription.yaml"), manifest).expect("manifest");
        let secret = dir.path().join("secrets/billing-signing/secret");
        std::fs::create_dir_all(secret.parent().expect("dir")).expect("mkdir");
        std::fs::write(&secret, format!("{SIGNING_SECRET}\n")).expect("secret");
        let forwarder = Self::spawn(nats, dir, args, env);
        forwarder.ready().await;
        forwarder
    }

    fn spawn(
        nats: &NatsServer,
        dir: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let ops = format!("127.0.0.1:{}", free_port().expect("a free port"));
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwarden-receiver"))
            .arg("forward")
            .args(args)
            .env(
                "HOOKWARDEN_SUBSCRIPTION",
                dir.path().join("subscription.yaml"),
            )
            .env("HOOKWARDEN_SECRETS_DIR", dir.path().join("secrets"))
            .env("HOOKWARDEN_NATS_URL", nats.url())
            .env("HOOKWARDEN_METRICS_LISTEN", &ops)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("forwarder starts");
        let log = Arc::new(Mutex::new(String::new()));
        capture(child.stdout.take().expect("stdout"), Arc::clone(&log));
        capture(child.stderr.take().expect("stderr"), Arc::clone(&log));
        Self {
            child,
            ops,
            log,
            dir,
        }
    }

    /// SIGKILL, then the same manifest and secrets started again.
    async fn kill_and_restart(mut self, nats: &NatsServer) -> Self {
        let pid = self.child.id().expect("running");
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill");
        let _ = self.child.wait().await;
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["subscription.yaml", "secrets/billing-signing/secret"] {
            let to = dir.path().join(name);
            std::fs::create_dir_all(to.parent().expect("dir")).expect("mkdir");
            std::fs::copy(self.dir.path().join(name), to).expect("copy");
        }
        let restarted = Self::spawn(nats, dir, &[], &[]);
        restarted.ready().await;
        restarted
    }

    fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Replaces the signing secret file the way a Secret update lands: a
    /// new file renamed over the old one.
    fn write_signing_secret(&self, content: &str) {
        let path = self.dir.path().join("secrets/billing-signing/secret");
        let next = path.with_extension("next");
        std::fs::write(&next, content).expect("new secret");
        std::fs::rename(&next, &path).expect("swap the secret");
    }

    /// Waits until `needle` was logged at least `count` times.
    async fn logged_times(&self, needle: &str, count: usize) {
        let what = format!("{count} log line(s) with {needle:?}");
        hookwarden_tests::eventually(&what, WAIT, || async {
            (self.log().matches(needle).count() >= count).then_some(())
        })
        .await;
    }

    /// Sends SIGTERM, as Kubernetes does to stop a pod.
    fn terminate(&self) {
        let pid = self.child.id().expect("running");
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("SIGTERM");
    }

    /// Waits for the process to exit.
    async fn exited(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the forwarder exits after SIGTERM")
            .expect("exit status")
    }

    /// The value of a metric line that starts with `series` (name and
    /// labels), 0 when absent.
    async fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find_map(|line| line.strip_prefix(series))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or(0.0)
    }

    async fn get(&self, path: &str) -> Option<(StatusCode, String)> {
        let stream = tokio::net::TcpStream::connect(&self.ops).await.ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(connection);
        let request = Request::get(path)
            .header("host", "ops")
            .body(Full::new(Bytes::new()))
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        let status = response.status();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    }

    async fn ready(&self) {
        hookwarden_tests::eventually("the forwarder's /readyz to answer 200", WAIT, || async {
            match self.get("/readyz").await {
                Some((StatusCode::OK, _)) => Some(()),
                _ => None,
            }
        })
        .await;
    }

    async fn metrics(&self) -> String {
        self.get("/metrics").await.expect("metrics").1
    }

    /// Waits until the log contains `needle`.
    async fn logged(&self, needle: &str) {
        let what = format!("a log line with {needle:?}");
        hookwarden_tests::eventually(&what, WAIT, || async {
            self.log().contains(needle).then_some(())
        })
        .await;
    }

    /// The audit lines of the forwarder.
    fn audit(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["target"] == "hookwarden::audit")
            .collect()
    }
}

// ---------------------------------------------------------------- JetStream

async fn jetstream(nats: &NatsServer) -> jetstream::Context {
    let js = jetstream::new(nats.connect().await.expect("connect"));
    js.create_stream(stream::Config {
        name: STREAM.to_owned(),
        subjects: vec!["shop.orders.>".to_owned()],
        ..Default::default()
    })
    .await
    .expect("source stream");
    js
}

/// Stores an event the way the receiver does (`publish::headers`).
async fn store(js: &jetstream::Context, id: &str, event: &str, body: &'static [u8]) -> u64 {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    headers.insert("Hookwarden-Endpoint", "shop/stripe");
    headers.insert("Hookwarden-Provider", "stripe");
    headers.insert("Hookwarden-Event", event);
    headers.insert("Hookwarden-Source-Ip", "192.0.2.7");
    headers.insert("Content-Type", "application/json");
    js.publish_with_headers(
        format!("shop.orders.{}", event.replace('.', "_")),
        headers,
        Bytes::from_static(body),
    )
    .await
    .expect("publish")
    .await
    .expect("stored")
    .sequence
}

async fn consumer_info(js: &jetstream::Context) -> consumer::Info {
    let mut consumer: consumer::PullConsumer = js
        .get_stream(STREAM)
        .await
        .expect("stream")
        .get_consumer(CONSUMER)
        .await
        .expect("the forwarder's durable consumer");
    consumer.info().await.expect("consumer info").clone()
}

/// Waits until the consumer has acknowledged every stored event (`last`
/// included) and holds none unacknowledged.
async fn all_acknowledged(js: &jetstream::Context, last: u64) {
    hookwarden_tests::eventually("every event acknowledged", WAIT, || async {
        let info = consumer_info(js).await;
        (info.ack_floor.stream_sequence >= last && info.num_ack_pending == 0).then_some(())
    })
    .await;
}

/// The dead letters stored so far.
async fn dead_letters(
    js: &jetstream::Context,
    at_least: u64,
) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let what = format!("{at_least} dead letter(s)");
    let count = hookwarden_tests::eventually(&what, WAIT, || async {
        let mut stream = js.get_stream(DEAD_LETTER_STREAM).await.ok()?;
        let messages = stream.info().await.ok()?.state.messages;
        (messages >= at_least).then_some(messages)
    })
    .await;
    let stream = js
        .get_stream(DEAD_LETTER_STREAM)
        .await
        .expect("dead-letter stream");
    let mut letters = Vec::new();
    for sequence in 1..=count {
        letters.push(stream.get_raw_message(sequence).await.expect("dead letter"));
    }
    letters
}

fn header(message: &async_nats::jetstream::message::StreamMessage, name: &str) -> String {
    message
        .headers
        .get(name)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_else(|| panic!("header {name}"))
}

// -------------------------------------------------------------------- tests

#[tokio::test]
async fn an_event_arrives_signed_with_its_ids_type_and_listed_headers_and_is_acknowledged() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    let destination = Destination::always(204).await;
    let forwarder = Forwarder::start(
        &nats,
        &subscription(
            &destination.url(),
            "  passHeaders: [hookwarden-provider, X-Not-Stored]\n",
        ),
    )
    .await;
    let body: &[u8] = br#"{"type":"invoice.paid","id":"in_1"}"#;
    let sequence = store(&js, "evt_1", "invoice.paid", body).await;

    let received = destination.wait_for(1).await;
    let request = &received[0];
    assert!(request.verified, "the Standard Webhooks signature verifies");
    assert_eq!(request.body.as_ref(), body, "the stored body, unchanged");
    assert_eq!(request.header("webhook-id").as_deref(), Some("evt_1"));
    assert_eq!(request.header("idempotency-key").as_deref(), Some("evt_1"));
    assert_eq!(
        request.header("hookwarden-event-type").as_deref(),
        Some("invoice.paid")
    );
    assert_eq!(request.header("hookwarden-attempt").as_deref(), Some("1"));
    assert_eq!(request.header("hookwarden-replay"), None);
    assert_eq!(
        request.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        request.header("hookwarden-provider").as_deref(),
        Some("stripe")
    );
    assert_eq!(
        request.header("hookwarden-source-ip"),
        None,
        "only listed headers pass"
    );
    assert_eq!(request.header("nats-msg-id"), None);

    all_acknowledged(&js, sequence).await;
    let metrics = forwarder.metrics().await;
    assert!(
        metrics.contains(
            r#"hookwarden_forward_deliveries_total{subscription="shop/to-billing",outcome="delivered"} 1"#
        ),
        "{metrics}"
    );
    let audit = forwarder.audit();
    let line = audit
        .iter()
        .find(|l| l["outcome"] == "delivered")
        .expect("an audit line");
    assert_eq!(line["id"], "evt_1");
    assert_eq!(line["status"], 204);
    assert_eq!(line["attempt"], 1);
    assert!(
        !forwarder.log().contains("in_1"),
        "the body is never logged"
    );
    assert!(
        !forwarder.log().contains("dGhlLWZvcndhcmRlcnM"),
        "nor the secret"
    );
    assert_eq!(destination.received().len(), 1, "delivered once");
}

#[tokio::test]
async fn a_destination_failing_twice_gets_the_event_on_the_third_attempt() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    let destination =
        Destination::start(|n| Reply::Status(if n < 2 { 503 } else { 200 }, Vec::new())).await;
    let forwarder = Forwarder::start(&nats, &subscription(&destination.url(), FAST_RETRIES)).await;
    let sequence = store(&js, "evt_2", "invoice.paid", b"{}").await;

    let received = destination.wait_for(3).await;
    let attempts: Vec<Option<String>> = received
        .iter()
        .map(|r| r.header("hookwarden-attempt"))
        .collect();
    assert_eq!(
        attempts,
        [Some("1".into()), Some("2".into()), Some("3".into())]
    );
    assert!(received.iter().all(|r| r.verified));
    assert!(
        received
            .iter()
            .all(|r| r.header("webhook-id").as_deref() == Some("evt_2")),
        "one id across attempts"
    );
    all_acknowledged(&js, sequence).await;
    let metrics = forwarder.metrics().await;
    assert!(
        metrics.contains(
            r#"hookwarden_forward_deliveries_total{subscription="shop/to-billing",outcome="retried"} 2"#
        ),
        "{metrics}"
    );
    // Nothing more comes once it was delivered: a later event is the next
    // request.
    let next = store(&js, "evt_3", "invoice.paid", b"{}").await;
    let received = destination.wait_for(4).await;
    assert_eq!(received[3].header("webhook-id").as_deref(), Some("evt_3"));
    all_acknowledged(&js, next).await;
    assert_eq!(destination.received().len(), 4);
}

#[tokio::test]
async fn a_429_with_retry_after_is_tried_again_later() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    let destination = Destination::start(|n| {
        if n == 0 {
            Reply::Status(429, vec![("retry-after", "1")])
        } else {
            Reply::Status(200, Vec::new())
        }
    })
    .await;
    let forwarder = Forwarder::start(&nats, &subscription(&destination.url(), FAST_RETRIES)).await;
    let sequence = store(&js, "evt_429", "invoice.paid", b"{}").await;
    let received = destination.wait_for(2).await;
    assert_eq!(
        received[1].header("hookwarden-attempt").as_deref(),
        Some("2")
    );
    all_acknowledged(&js, sequence).await;
    let retried = forwarder
        .audit()
        .into_iter()
        .find(|l| l["outcome"] == "retried")
        .expect("the retried attempt is audited");
    assert_eq!(retried["status"], 429);
}

#[tokio::test]
async fn a_hanging_destination_times_out_and_the_event_is_retried() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    let destination = Destination::start(|n| {
        if n == 0 {
            Reply::Hang
        } else {
            Reply::Status(200, Vec::new())
        }
    })
    .await;
    let forwarder = Forwarder::start(&nats, &subscription(&destination.url(), FAST_RETRIES)).await;
    let sequence = store(&js, "evt_hang", "invoice.paid", b"{}").await;
    destination.wait_for(2).await;
    all_acknowledged(&js, sequence).await;
    let timed_out = forwarder
        .audit()
        .into_iter()
        .find(|l| l["outcome"] == "retried")
        .expect("the timed-out attempt is audited");
    assert!(timed_out["status"].is_null());
    assert!(
        timed_out["error"]
            .as_str()
            .unwrap_or("")
            .contains("no answer"),
        "{timed_out}"
    );
}

#[tokio::test]
async fn a_client_error_is_dead_lettered_at_once_with_its_status() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    let destination = Destination::always(404).await;
    let forwarder = Forwarder::start(&nats, &subscription(&destination.url(), FAST_RETRIES)).await;
    let body: &[u8] = br#"{"id":"evt_404"}"#;
    let sequence = store(&js, "evt_404", "invoice.paid", body).await;

    let letters = dead_letters(&js, 1).await;
    let letter = &letters[0];
    assert_eq!(letter.subject.as_str(), DEAD_LETTER_SUBJECT);
    assert_eq!(letter.payload.as_ref(), body, "the stored body, unchanged");
    assert_eq!(header(letter, "Hookwarden-Dead-Letter-Status"), "404");
    assert_eq!(header(letter, "Hookwarden-Dead-Letter-Reason"), "refused");
    assert_eq!(header(letter, "Hookwarden-Dead-Letter-Attempts"), "1");
    assert_eq!(header(letter, "Hookwarden-Dead-Letter-Stream"), STREAM);
    assert_eq!(
        header(letter, "Hookwarden-Dead-Letter-Sequence"),
        sequence.to_string()
    );
    assert_eq!(
        header(letter, "Hookwarden-Dead-Letter-Subject"),
        "shop.orders.invoice_paid"
    );
    assert!(header(letter, "Hookwarden-Dead-Letter-Error").starts_with("HTTP 404 Not Found"));
    assert_eq!(
        header(letter, "Hookwarden-Provider"),
        "stripe",
        "original headers kept"
    );
    assert_eq!(
        header(letter, "Nats-Msg-Id"),
        format!("evt_404:dead-letter:{sequence}")
    );
    all_acknowledged(&js, sequence).await;
    assert_eq!(destination.received().len(), 1, "not retried");
    // One attempt, one audit line: the dead letter's, with the attempt's
    // status and error.
    let lines: Vec<serde_json::Value> = forwarder
        .audit()
        .into_iter()
        .filter(|l| l["id"] == "evt_404")
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["outcome"], "dead_lettered");
    assert_eq!(lines[0]["status"], 404);
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("HTTP 404"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_destination_that_is_gone_is_retried_then_dead_lettered() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    // Nothing listens there, and no other test's server can take the port.
    let gone = hookwarden_tests::RefusingPort::bind().expect("a refusing port");
    let url = format!("http://127.0.0.1:{}/hooks", gone.port());
    let _forwarder = Forwarder::start(
        &nats,
        &subscription(
            &url,
            "  retry: {initialBackoffSeconds: 1, maxBackoffSeconds: 1, maxAttempts: 3}\n",
        ),
    )
    .await;
    let sequence = store(&js, "evt_gone", "invoice.paid", b"{}").await;
    let letters = dead_letters(&js, 1).await;
    let letter = &letters[0];
    assert_eq!(header(letter, "Hookwarden-Dead-Letter-Status"), "none");
    assert_eq!(
        header(letter, "Hookwarden-Dead-Letter-Reason"),
        "attempts_exhausted"
    );
    assert_eq!(header(letter, "Hookwarden-Dead-Letter-Attempts"), "3");
    let error = header(letter, "Hookwarden-Dead-Letter-Error").to_lowercase();
    assert!(error.contains("connect"), "{error}");
    all_acknowledged(&js, sequence).await;
}

#[tokio::test]
async fn a_forwarder_killed_mid_delivery_delivers_again_after_a_restart_and_acks_nothing_before() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    // The first request is held (the destination is "processing" when the
    // forwarder dies); later ones are answered.
    let destination = Destination::start(|n| {
        if n == 0 {
            Reply::Hang
        } else {
            Reply::Status(200, Vec::new())
        }
    })
    .await;
    // A long timeout: the held request is still in flight at the kill.
    let manifest =
        subscription(&destination.url(), "").replace("timeoutSeconds: 1", "timeoutSeconds: 10");
    let forwarder = Forwarder::start(&nats, &manifest).await;
    let sequence = store(&js, "evt_kill", "invoice.paid", b"{}").await;
    destination.wait_for(1).await;

    let info = consumer_info(&js).await;
    assert_eq!(
        info.ack_floor.stream_sequence, 0,
        "not acknowledged without a 2xx"
    );
    assert_eq!(info.num_ack_pending, 1);

    let restarted = forwarder.kill_and_restart(&nats).await;
    // JetStream redelivers after the ack wait (2 × 10 s + 10 s).
    let received = hookwarden_tests::eventually(
        "the event delivered again",
        Duration::from_secs(120),
        || async {
            let received = destination.received();
            (received.len() >= 2).then_some(received)
        },
    )
    .await;
    assert_eq!(
        received[1].header("webhook-id").as_deref(),
        Some("evt_kill")
    );
    assert_eq!(
        received[1].header("hookwarden-attempt").as_deref(),
        Some("2")
    );
    assert!(received[1].verified);
    all_acknowledged(&js, sequence).await;
    drop(restarted);
}

#[tokio::test]
async fn a_dead_letter_stream_deleted_while_running_is_created_again_at_the_next_dead_letter() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    let destination = Destination::always(404).await;
    let forwarder = Forwarder::start(&nats, &subscription(&destination.url(), FAST_RETRIES)).await;
    // The forwarder created the dead-letter stream when it started; it is
    // gone now, and the forwarder does not bind again (its consumer is
    // still there).
    js.delete_stream(DEAD_LETTER_STREAM)
        .await
        .expect("delete the dead-letter stream");
    let sequence = store(&js, "evt_dlq_gone", "invoice.paid", b"{}").await;
    let letters = dead_letters(&js, 1).await;
    assert_eq!(header(&letters[0], "Hookwarden-Dead-Letter-Status"), "404");
    all_acknowledged(&js, sequence).await;
    let mut recreated = js
        .get_stream(DEAD_LETTER_STREAM)
        .await
        .expect("the dead-letter stream again");
    let config = &recreated.info().await.expect("info").config;
    assert_eq!(config.subjects, [DEAD_LETTER_SUBJECT]);
    let outcomes: Vec<serde_json::Value> = forwarder
        .audit()
        .into_iter()
        .filter(|l| l["id"] == "evt_dlq_gone")
        .map(|l| l["outcome"].clone())
        .collect();
    assert_eq!(outcomes, ["dead_lettered"]);
}

#[tokio::test]
async fn a_dead_letter_that_cannot_be_stored_leaves_the_event_pending_until_it_can() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    let destination = Destination::always(404).await;
    let forwarder = Forwarder::start(&nats, &subscription(&destination.url(), FAST_RETRIES)).await;
    // The dead-letter stream exists but is full and refuses new messages:
    // creating it again does not help.
    js.delete_stream(DEAD_LETTER_STREAM)
        .await
        .expect("delete the dead-letter stream");
    let full = stream::Config {
        name: DEAD_LETTER_STREAM.to_owned(),
        subjects: vec![DEAD_LETTER_SUBJECT.to_owned()],
        max_messages: 1,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    js.create_stream(full.clone())
        .await
        .expect("a full dead-letter stream");
    js.publish(DEAD_LETTER_SUBJECT, Bytes::from_static(b"filler"))
        .await
        .expect("publish")
        .await
        .expect("stored");
    let sequence = store(&js, "evt_dlq", "invoice.paid", b"{}").await;
    forwarder
        .logged("the dead letter could not be stored")
        .await;
    let info = consumer_info(&js).await;
    assert_eq!(
        info.ack_floor.stream_sequence, 0,
        "not acknowledged: neither delivered nor dead-lettered"
    );
    assert!(
        forwarder
            .metrics()
            .await
            .contains("outcome=\"dead_letter_failed\""),
        "counted"
    );
    assert!(
        forwarder
            .audit()
            .iter()
            .any(|l| l["id"] == "evt_dlq" && l["outcome"] == "dead_letter_failed"),
        "the attempt is audited"
    );

    // Once the dead-letter stream takes messages again, the event ends there.
    js.update_stream(stream::Config {
        max_messages: -1,
        ..full
    })
    .await
    .expect("room in the dead-letter stream");
    let letters = dead_letters(&js, 2).await;
    assert_eq!(header(&letters[1], "Hookwarden-Dead-Letter-Status"), "404");
    all_acknowledged(&js, sequence).await;
}

#[tokio::test]
async fn a_bad_manifest_or_secret_refuses_to_start_with_a_clear_error() {
    let nats = NatsServer::start().await.expect("nats-server");
    for (manifest, secret, expected) in [
        (
            subscription("http://example.com/hooks", ""),
            SIGNING_SECRET,
            "plain http:// is allowed only",
        ),
        (
            subscription("http://127.0.0.1:9/hooks", ""),
            "not base64 at all",
            "not a Standard Webhooks secret",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("subscription.yaml"), &manifest).expect("manifest");
        let path = dir.path().join("secrets/billing-signing/secret");
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, secret).expect("secret");
        let output = tokio::time::timeout(
            WAIT,
            tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwarden-receiver"))
                .arg("forward")
                .env(
                    "HOOKWARDEN_SUBSCRIPTION",
                    dir.path().join("subscription.yaml"),
                )
                .env("HOOKWARDEN_SECRETS_DIR", dir.path().join("secrets"))
                .env("HOOKWARDEN_NATS_URL", nats.url())
                .env(
                    "HOOKWARDEN_METRICS_LISTEN",
                    format!("127.0.0.1:{}", free_port().expect("a free port")),
                )
                .output(),
        )
        .await
        .expect("exits")
        .expect("runs");
        assert!(!output.status.success());
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(text.contains(expected), "{expected:?} in {text}");
        assert!(
            !text.contains("not base64 at all"),
            "the secret is not shown"
        );
    }
}

#[tokio::test]
async fn a_provider_delivery_through_serve_arrives_at_the_destination_signed_with_its_allowed_headers()
 {
    let nats = NatsServer::start().await.expect("nats-server");
    // The endpoint stores two of GitHub's headers; the subscription passes
    // one of them on, and names one the endpoint does not store.
    let endpoint_manifest =
        crate::github_manifest("  request: {storeHeaders: [X-GitHub-Event, X-GitHub-Hook-Id]}\n");
    let receiver = crate::binary::ReceiverProcess::spawn(
        nats.url(),
        &endpoint_manifest,
        &[("gh", "secret", crate::SECRET.as_bytes())],
        &[],
    );
    receiver.ready().await;
    let destination = Destination::always(200).await;
    let manifest = format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookSubscription\n\
         metadata: {{name: to-billing, namespace: ci}}\nspec:\n\
         \x20 source: {{endpoint: github}}\n\
         \x20 eventTypes: [push]\n\
         \x20 destination: {{url: '{}'}}\n\
         \x20 signing: {{secretRef: {{name: billing-signing, key: secret}}}}\n\
         \x20 passHeaders: [Hookwarden-Provider, X-GitHub-Event, X-GitHub-Delivery]\n",
        destination.url()
    );
    let endpoint = tempfile::NamedTempFile::new().expect("endpoint file");
    std::fs::write(endpoint.path(), &endpoint_manifest).expect("endpoint");
    let endpoint_path = endpoint.path().display().to_string();
    let _forwarder = Forwarder::start_with(&nats, &manifest, &["--endpoint", &endpoint_path]).await;

    let body = br#"{"ref":"refs/heads/main"}"#;
    for (event, id) in [("issues", "gh-delivery-0"), ("push", "gh-delivery-1")] {
        let reply = receiver
            .send(
                "POST",
                &[
                    ("content-type", "application/json"),
                    ("x-github-event", event),
                    ("x-github-delivery", id),
                    ("x-github-hook-id", "4242"),
                    ("x-hub-signature-256", &crate::sign(body)),
                ],
                body,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }

    let received = destination.wait_for(1).await;
    let request = &received[0];
    assert!(request.verified);
    assert_eq!(request.body.as_ref(), body);
    assert_eq!(
        request.header("webhook-id").as_deref(),
        Some("gh-delivery-1")
    );
    assert_eq!(
        request.header("hookwarden-event-type").as_deref(),
        Some("push")
    );
    assert_eq!(
        request.header("hookwarden-provider").as_deref(),
        Some("github")
    );
    assert_eq!(
        request.header("x-github-event").as_deref(),
        Some("push"),
        "a stored provider header passes under its own name"
    );
    assert_eq!(
        request.header("x-github-delivery"),
        None,
        "not stored by the endpoint: not passed"
    );
    assert_eq!(
        request.header("x-github-hook-id"),
        None,
        "stored, not listed"
    );
    assert_eq!(
        request.header("hookwarden-header-x-github-event"),
        None,
        "sent under the provider's name only"
    );
    assert_eq!(
        request.header("x-hub-signature-256"),
        None,
        "the provider's signature never leaves"
    );
    // The issues event, stored first, is not among eventTypes: the first
    // request is the push.

    // What JetStream holds: the listed headers under the prefix, no
    // signature.
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let stored = js
        .get_stream("HOOKWARDEN_CI_GITHUB")
        .await
        .expect("the endpoint's stream")
        .get_raw_message(2)
        .await
        .expect("the push");
    let stored_header = |name: &str| stored.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(
        stored_header("Hookwarden-Header-x-github-event").as_deref(),
        Some("push")
    );
    assert_eq!(
        stored_header("Hookwarden-Header-x-github-hook-id").as_deref(),
        Some("4242")
    );
    assert_eq!(stored_header("Hookwarden-Header-x-github-delivery"), None);
    assert_eq!(stored_header("Hookwarden-Header-x-hub-signature-256"), None);
}

#[tokio::test]
async fn an_endpoint_storing_a_credential_header_refuses_to_start() {
    let nats = NatsServer::start().await.expect("nats-server");
    for (store, says) in [
        ("Authorization", "may carry a credential"),
        ("X-Hub-Signature-256", "may carry a credential"),
    ] {
        let manifest = crate::github_manifest(&format!("  request: {{storeHeaders: [{store}]}}\n"));
        let receiver = crate::binary::ReceiverProcess::spawn(
            nats.url(),
            &manifest,
            &[("gh", "secret", crate::SECRET.as_bytes())],
            &[],
        );
        let (status, log) = receiver.exited().await;
        assert!(!status.success(), "{store}");
        assert!(log.contains(says), "{store}: {log}");
    }
}

#[tokio::test]
async fn the_filter_delivers_matching_events_and_acknowledges_the_rest() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    let destination = Destination::always(200).await;
    let forwarder = Forwarder::start(
        &nats,
        &subscription(
            &destination.url(),
            "  filter: 'headers[\"hookwarden-event\"] == \"invoice.paid\" && body.amount >= 100'\n",
        ),
    )
    .await;
    store(&js, "small", "invoice.paid", br#"{"amount":5}"#).await;
    store(&js, "other", "invoice.created", br#"{"amount":500}"#).await;
    store(&js, "no-amount", "invoice.paid", br#"{"total":500}"#).await;
    let last = store(&js, "big", "invoice.paid", br#"{"amount":500}"#).await;

    let received = destination.wait_for(1).await;
    assert_eq!(received[0].header("webhook-id").as_deref(), Some("big"));
    all_acknowledged(&js, last).await;
    assert_eq!(destination.received().len(), 1);
    let metrics = forwarder.metrics().await;
    assert!(
        metrics.contains(
            r#"hookwarden_forward_deliveries_total{subscription="shop/to-billing",outcome="filtered"} 3"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"hookwarden_forward_filter_errors_total{subscription="shop/to-billing"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_filter_that_does_not_compile_refuses_to_start() {
    let nats = NatsServer::start().await.expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = subscription("http://127.0.0.1:9/hooks", "  filter: 'body.amount >'\n");
    std::fs::write(dir.path().join("subscription.yaml"), manifest).expect("manifest");
    let path = dir.path().join("secrets/billing-signing/secret");
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    std::fs::write(&path, SIGNING_SECRET).expect("secret");
    let output = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwarden-receiver"))
            .arg("forward")
            .env(
                "HOOKWARDEN_SUBSCRIPTION",
                dir.path().join("subscription.yaml"),
            )
            .env("HOOKWARDEN_SECRETS_DIR", dir.path().join("secrets"))
            .env("HOOKWARDEN_NATS_URL", nats.url())
            .env(
                "HOOKWARDEN_METRICS_LISTEN",
                format!("127.0.0.1:{}", free_port().expect("a free port")),
            )
            .output(),
    )
    .await
    .expect("exits")
    .expect("runs");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("spec.filter is not a valid CEL expression"),
        "{text}"
    );
}

#[tokio::test]
async fn ordered_per_subject_holds_later_events_behind_a_retried_one() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    // The first request fails: its event is retried, and the events of the
    // same subject stored after it must wait for it.
    let destination =
        Destination::start(|n| Reply::Status(if n == 0 { 503 } else { 200 }, Vec::new())).await;
    let _forwarder = Forwarder::start(
        &nats,
        &subscription(
            &destination.url(),
            &format!("{FAST_RETRIES}  delivery: {{maxInFlight: 4, orderedPerSubject: true}}\n"),
        ),
    )
    .await;
    let mut last = 0;
    for id in ["o-1", "o-2", "o-3"] {
        last = store(&js, id, "invoice.paid", b"{}").await;
    }
    let received = destination.wait_for(4).await;
    let ids: Vec<String> = received
        .iter()
        .map(|r| r.header("webhook-id").expect("id"))
        .collect();
    assert_eq!(
        ids,
        ["o-1", "o-1", "o-2", "o-3"],
        "stream order, the retry first"
    );
    all_acknowledged(&js, last).await;
    assert_eq!(destination.received().len(), 4);
}

/// Traces: the delivery attempt is a span of the trace stored with the
/// event (its parent the stored context, as a receiver's publish span), in
/// a real Jaeger, and the destination gets a `traceparent` of that trace
/// naming the attempt.
#[tokio::test]
async fn a_delivery_attempt_continues_the_stored_trace_and_passes_it_on() {
    const STORED_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const STORED_SPAN: &str = "00f067aa0ba902b7";
    let nats = NatsServer::start().await.expect("nats-server");
    let jaeger = hookwarden_tests::Jaeger::start().await.expect("jaeger");
    let js = jetstream(&nats).await;
    let destination = Destination::always(200).await;
    let forwarder = Forwarder::start_with_env(
        &nats,
        &subscription(&destination.url(), ""),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "traced-1");
    headers.insert("Hookwarden-Event", "order.paid");
    headers.insert("Content-Type", "application/json");
    headers.insert(
        "traceparent",
        format!("00-{STORED_TRACE}-{STORED_SPAN}-01").as_str(),
    );
    let sequence = js
        .publish_with_headers("shop.orders.order_paid", headers, Bytes::from_static(b"{}"))
        .await
        .expect("publish")
        .await
        .expect("stored")
        .sequence;

    let received = destination.wait_for(1).await;
    let sent = received[0]
        .header("traceparent")
        .expect("a traceparent is sent");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(parts[1], STORED_TRACE, "the stored trace goes on");
    assert_ne!(
        parts[2], STORED_SPAN,
        "naming the attempt, not the stored span"
    );

    let spans = hookwarden_tests::eventually("the delivery span in Jaeger", WAIT, || async {
        let spans = jaeger.trace(STORED_TRACE).await.expect("query API");
        spans.into_iter().find(|s| s.name == "hookwarden.delivery")
    })
    .await;
    assert_eq!(spans.service, "hookwarden-forwarder");
    assert_eq!(spans.parent_span_id, STORED_SPAN);
    assert_eq!(
        spans.span_id, parts[2],
        "the destination got the attempt's context"
    );
    let sequence = sequence.to_string();
    for (key, want) in [
        ("hookwarden.subscription", "shop/to-billing"),
        ("messaging.destination.name", STREAM),
        ("hookwarden.stream_sequence", sequence.as_str()),
        ("hookwarden.attempt", "1"),
        ("http.response.status_code", "200"),
        ("hookwarden.outcome", "delivered"),
    ] {
        assert_eq!(
            spans.attribute(key).as_deref(),
            Some(want),
            "{key} of {spans:#?}"
        );
    }
    drop(forwarder);
}

/// A Standard Webhooks secret other than [`SIGNING_SECRET`].
const ROTATED_SECRET: &str = "whsec_bmV3LWtleS1ieXRlcw==";

fn verifies_with(secret: &str, request: &Received) -> bool {
    StandardWebhooksVerifier::new(vec![Secret::from(secret.as_bytes())], 300)
        .expect("verifier")
        .verify(&request.headers, &request.body)
        .is_ok()
}

#[tokio::test]
async fn a_signing_secret_rotated_at_run_time_signs_the_next_delivery() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    let destination = Destination::always(200).await;
    let forwarder = Forwarder::start_with(
        &nats,
        &subscription(&destination.url(), ""),
        &["--reload-interval-secs", "1"],
    )
    .await;
    store(&js, "before", "invoice.paid", b"{}").await;
    let received = destination.wait_for(1).await;
    assert!(verifies_with(SIGNING_SECRET, &received[0]));
    assert!(!verifies_with(ROTATED_SECRET, &received[0]));

    // During the rotation both secrets sign: a destination that knows
    // either verifies.
    forwarder.write_signing_secret(&format!("{ROTATED_SECRET}\n{SIGNING_SECRET}\n"));
    forwarder
        .logged_times("signing secret and CA reloaded", 1)
        .await;
    store(&js, "during", "invoice.paid", b"{}").await;
    let received = destination.wait_for(2).await;
    assert_eq!(received[1].header("webhook-id").as_deref(), Some("during"));
    assert_eq!(
        received[1]
            .header("webhook-signature")
            .expect("signature")
            .split(' ')
            .count(),
        2
    );
    assert!(verifies_with(ROTATED_SECRET, &received[1]));
    assert!(verifies_with(SIGNING_SECRET, &received[1]));

    // The old line removed: only the new secret verifies.
    forwarder.write_signing_secret(&format!("{ROTATED_SECRET}\n"));
    forwarder
        .logged_times("signing secret and CA reloaded", 2)
        .await;
    let last = store(&js, "after", "invoice.paid", b"{}").await;
    let received = destination.wait_for(3).await;
    assert_eq!(received[2].header("webhook-id").as_deref(), Some("after"));
    assert!(verifies_with(ROTATED_SECRET, &received[2]));
    assert!(!verifies_with(SIGNING_SECRET, &received[2]));
    all_acknowledged(&js, last).await;
    assert!(
        !forwarder.log().contains("bmV3LWtleS1ieXRlcw"),
        "never logged"
    );
}

#[tokio::test]
async fn nats_restarted_under_the_forwarder_loses_nothing() {
    let mut nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    // Every request is answered 503 once, then 200: each event is retried
    // once, across the restart for some.
    let destination =
        Destination::start(|n| Reply::Status(if n % 2 == 0 { 503 } else { 200 }, Vec::new())).await;
    let manifest = subscription(
        &destination.url(),
        &format!("{FAST_RETRIES}  delivery: {{maxInFlight: 1}}\n"),
    );
    let forwarder = Forwarder::start(&nats, &manifest).await;
    store(&js, "r-1", "invoice.paid", b"{}").await;
    store(&js, "r-2", "invoice.paid", b"{}").await;
    destination.wait_for(1).await;

    nats.restart().await.expect("nats-server restarts");
    forwarder.logged_times("connected to NATS", 2).await;
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let mut last = 0;
    for id in ["r-3", "r-4"] {
        last = store(&js, id, "invoice.paid", b"{}").await;
    }
    all_acknowledged(&js, last).await;
    let received = destination.received();
    for id in ["r-1", "r-2", "r-3", "r-4"] {
        let answered_ok = received
            .iter()
            .enumerate()
            .any(|(n, r)| n % 2 == 1 && r.header("webhook-id").as_deref() == Some(id));
        assert!(answered_ok, "{id} reached the destination with a 2xx");
    }
    let delivered = forwarder
        .audit()
        .into_iter()
        .filter(|l| l["outcome"] == "delivered")
        .count();
    assert!(delivered >= 4, "{delivered}");
}

#[tokio::test]
async fn sigterm_lets_a_delivery_in_flight_finish_and_acknowledges_it() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    let release = Arc::new(tokio::sync::Notify::new());
    let held = Arc::clone(&release);
    let destination = Destination::start(move |_| Reply::Held(Arc::clone(&held))).await;
    let manifest =
        subscription(&destination.url(), "").replace("timeoutSeconds: 1", "timeoutSeconds: 30");
    let mut forwarder = Forwarder::start(&nats, &manifest).await;
    let sequence = store(&js, "evt_drain", "invoice.paid", b"{}").await;
    destination.wait_for(1).await;

    // SIGTERM while the destination is still working on it.
    forwarder.terminate();
    forwarder.logged("finishing deliveries in flight").await;
    assert_eq!(consumer_info(&js).await.ack_floor.stream_sequence, 0);
    release.notify_one();
    let status = forwarder.exited().await;
    assert!(status.success(), "{status:?}");
    all_acknowledged(&js, sequence).await;
    assert!(
        forwarder
            .audit()
            .iter()
            .any(|l| l["id"] == "evt_drain" && l["outcome"] == "delivered")
    );
    assert_eq!(destination.received().len(), 1, "delivered once");
}

#[tokio::test]
async fn max_per_second_holds_deliveries_back_and_counts_them() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    let destination = Destination::always(200).await;
    let forwarder = Forwarder::start(
        &nats,
        &subscription(&destination.url(), "  delivery: {maxPerSecond: 1}\n"),
    )
    .await;
    let events = 5;
    let mut last = 0;
    for n in 0..events {
        last = store(&js, &format!("rate-{n}"), "invoice.paid", b"{}").await;
    }
    destination.wait_for(events).await;
    all_acknowledged(&js, last).await;
    // One token per second, a burst of one: the events pulled together
    // wait their turn (all but the first, unless the machine is so slow
    // that a token came back between two of them).
    let held = forwarder
        .metric(r#"hookwarden_forward_rate_limited_total{subscription="shop/to-billing"}"#)
        .await;
    assert!(held >= (events - 2) as f64, "{held}");
    assert_eq!(destination.received().len(), events);
}

#[tokio::test]
async fn an_https_destination_without_a_ca_is_verified_with_the_system_roots() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream(&nats).await;
    // The process's trust store is the file SSL_CERT_FILE names
    // (rustls-native-certs reads it instead of the platform's store): the
    // destination's test CA in one case, another CA in the other.
    let destination = hookwarden_tests::ListServer::start(&["localhost"]).await;
    destination.serve("/hooks", hookwarden_tests::ListAnswer::ok(""));
    let stranger = hookwarden_tests::ListServer::start(&["localhost"]).await;
    let roots = tempfile::tempdir().expect("tempdir");
    let trusted = roots.path().join("trusted.pem");
    std::fs::write(&trusted, destination.ca_pem()).expect("trusted CA");
    let untrusted = roots.path().join("untrusted.pem");
    std::fs::write(&untrusted, stranger.ca_pem()).expect("another CA");
    let url = format!("https://localhost:{}/hooks", destination.address().port());

    let refusing = Forwarder::start_with_env(
        &nats,
        &subscription(&url, FAST_RETRIES),
        &[],
        &[("SSL_CERT_FILE", untrusted.to_str().expect("UTF-8 path"))],
    )
    .await;
    let sequence = store(&js, "evt_tls_untrusted", "invoice.paid", b"{}").await;
    let letters = dead_letters(&js, 1).await;
    let error = header(&letters[0], "Hookwarden-Dead-Letter-Error").to_lowercase();
    assert!(error.contains("certificate"), "{error}");
    all_acknowledged(&js, sequence).await;
    assert_eq!(
        destination.hits(),
        0,
        "nothing sent to an unverified server"
    );
    drop(refusing);

    let _trusting = Forwarder::start_with_env(
        &nats,
        &subscription(&url, FAST_RETRIES),
        &[],
        &[("SSL_CERT_FILE", trusted.to_str().expect("UTF-8 path"))],
    )
    .await;
    let sequence = store(&js, "evt_tls", "invoice.paid", b"{}").await;
    all_acknowledged(&js, sequence).await;
    assert_eq!(destination.hits(), 1, "delivered once over verified TLS");
}
