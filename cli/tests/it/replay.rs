//! `hookwarden replay` and `hookwarden dlq list/redrive`, the built binary,
//! against events stored by a real receiver (assembled from its manifest as
//! the binary assembles it, fed signed GitHub deliveries by `hookwarden
//! send`) in a private nats-server, and dead letters written by the real
//! forwarder (`forward::app::start`, what `hookwarden-receiver forward`
//! runs) after a destination refused them; destinations are HTTP servers
//! on 127.0.0.1 written here that check the Standard Webhooks signature
//! with the receiver's own verifier.

use std::convert::Infallible;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hookwarden_receiver::forward::app::{ForwardArgs, start as start_forwarder};
use hookwarden_receiver::secrets::Secret;
use hookwarden_receiver::transport::Mode;
use hookwarden_receiver::verify::Verifier;
use hookwarden_receiver::verify::standard_webhooks::StandardWebhooksVerifier;
use hookwarden_tests::{InProcessReceiver, NatsServer};
use http_body_util::{BodyExt, Full};
use hyper::http::HeaderMap;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::hookwarden;

const WAIT: Duration = Duration::from_secs(60);
const GITHUB_SECRET: &[u8] = b"gh-Replay-s3cret-91";
const SIGNING_SECRET: &str = "whsec_cmVwbGF5LXNpZ25pbmcta2V5LWJ5dGVz";
const STREAM: &str = "HOOKWARDEN_SHOP_GITHUB";
const DEAD_LETTERS: &str = "HOOKWARDEN-DLQ_SHOP_TO-BILLING";

const ENDPOINT: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: github, namespace: shop}\n\
    spec:\n  provider: github\n  secretRefs: [{name: gh, key: secret}]\n";

fn subscription(url: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookSubscription\n\
         metadata: {{name: to-billing, namespace: shop}}\nspec:\n\
         \x20 source: {{endpoint: github}}\n\
         \x20 eventTypes: [push, issues]\n\
         \x20 destination: {{url: '{url}', timeoutSeconds: 2}}\n\
         \x20 signing: {{secretRef: {{name: billing-signing, key: secret}}}}\n\
         \x20 retry: {{maxAttempts: 3, initialBackoffSeconds: 1, maxBackoffSeconds: 1}}\n"
    )
}

// ---------------------------------------------------------------- destination

#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    verified: bool,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("text").to_owned())
            .unwrap_or_default()
    }
}

type Answer = Arc<dyn Fn(&Received, usize) -> (u16, String) + Send + Sync>;

/// An HTTP destination on 127.0.0.1: answers each request as `answer`
/// says (given the request and its 0-based number), records it and whether
/// its signature verifies with [`SIGNING_SECRET`].
struct Destination {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Destination {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Destination {
    async fn start(
        answer: impl Fn(&Received, usize) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://127.0.0.1:{}/hooks",
            listener.local_addr().expect("address").port()
        );
        let received = Arc::new(Mutex::new(Vec::new()));
        let answer: Answer = Arc::new(answer);
        let verifier = Arc::new(
            StandardWebhooksVerifier::new(vec![Secret::from(SIGNING_SECRET.as_bytes())], 300)
                .expect("verifier"),
        );
        let log = Arc::clone(&received);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (answer, verifier, log) =
                    (Arc::clone(&answer), Arc::clone(&verifier), Arc::clone(&log));
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let (answer, verifier, log) =
                            (Arc::clone(&answer), Arc::clone(&verifier), Arc::clone(&log));
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.expect("body").to_bytes();
                            let verified = verifier.verify(&parts.headers, &body).is_ok();
                            let received = Received {
                                headers: parts.headers,
                                body,
                                verified,
                            };
                            let (status, text) = {
                                let mut log = log.lock().expect("log");
                                let n = log.len();
                                log.push(received.clone());
                                answer(&received, n)
                            };
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from(text)))
                                    .expect("response"),
                            )
                        }
                    });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url,
            received,
            task,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }
}

// ---------------------------------------------------------------- the setup

/// A receiver storing GitHub deliveries of `shop/github`, and the files
/// `hookwarden replay` reads: the subscription, the endpoint, the signing
/// secret.
struct Setup {
    nats: NatsServer,
    receiver: InProcessReceiver,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn start(destination: &str) -> Self {
        let nats = NatsServer::start().await.expect("nats-server");
        let receiver = InProcessReceiver::start(
            &nats,
            ENDPOINT,
            &[("gh/secret", GITHUB_SECRET)],
            Mode::InsecureHttp,
            |_| {},
        )
        .await;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("subscription.yaml"),
            subscription(destination),
        )
        .expect("subscription");
        std::fs::write(dir.path().join("endpoint.yaml"), ENDPOINT).expect("endpoint");
        let secret = dir.path().join("secrets/billing-signing/secret");
        std::fs::create_dir_all(secret.parent().expect("dir")).expect("mkdir");
        std::fs::write(&secret, format!("{SIGNING_SECRET}\n")).expect("secret");
        std::fs::write(dir.path().join("github-secret"), GITHUB_SECRET).expect("secret");
        Self {
            nats,
            receiver,
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A GitHub delivery signed by `hookwarden send`, stored by the receiver.
    async fn send(&self, event: &str, id: &str) {
        let sent = hookwarden(vec![
            "send".into(),
            "--provider".into(),
            "github".into(),
            "--secret-file".into(),
            self.path("github-secret"),
            "--url".into(),
            self.receiver.url.clone(),
            "--event".into(),
            event.into(),
            "--delivery-id".into(),
            id.into(),
        ])
        .await;
        assert!(sent.status.success(), "{sent:?}");
    }

    /// `hookwarden <command> --subscription .. --endpoint .. --nats-url ..
    /// <args>`.
    /// Starts `hookwarden <command>` on the subscription with its secrets
    /// and `args`, in the background with its output piped, the
    /// subscription first rewritten to retry for as long as a test needs
    /// (so the delivery held by the destination stays in flight).
    fn spawn_retrying(
        &self,
        destination: &str,
        command: &[&str],
        args: &[&str],
    ) -> tokio::process::Child {
        std::fs::write(
            self.path("subscription.yaml"),
            subscription(destination).replace("maxAttempts: 3", "maxAttempts: 1000"),
        )
        .expect("subscription");
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwarden"))
            .args(command)
            .args(["--subscription", &self.path("subscription.yaml")])
            .args(["--endpoint", &self.path("endpoint.yaml")])
            .args(["--nats-url", self.nats.url()])
            .args(["--secrets-dir", &self.path("secrets")])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the command starts")
    }

    async fn run(&self, command: &[&str], args: &[&str]) -> Output {
        let mut all: Vec<String> = command.iter().map(|s| (*s).to_owned()).collect();
        all.extend([
            "--subscription".into(),
            self.path("subscription.yaml"),
            "--endpoint".into(),
            self.path("endpoint.yaml"),
            "--nats-url".into(),
            self.nats.url().to_owned(),
        ]);
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let output = hookwarden(all).await;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // Nothing printed ever shows a secret, whatever a destination
        // answered.
        for secret in [
            SIGNING_SECRET,
            "cmVwbGF5LXNpZ25pbmcta2V5LWJ5dGVz",
            "gh-Replay-s3cret",
        ] {
            assert!(
                !text.contains(secret),
                "{command:?} printed a secret:\n{text}"
            );
        }
        output
    }

    /// `replay` with the secrets dir.
    async fn replay(&self, args: &[&str]) -> Output {
        let secrets = self.path("secrets");
        let mut all = vec!["--secrets-dir", secrets.as_str()];
        all.extend_from_slice(args);
        self.run(&["replay"], &all).await
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The delivery ids of a dry run's lines (`<seq> <time> <subject> id=<id> size=<n>B`).
fn listed_ids(output: &Output) -> Vec<String> {
    assert!(output.status.success(), "{output:?}");
    stdout(output)
        .lines()
        .filter_map(|line| {
            line.split(' ')
                .find_map(|part| part.strip_prefix("id="))
                .filter(|_| !line.starts_with("replay:") && !line.starts_with("redrive:"))
                .map(str::to_owned)
        })
        .collect()
}

async fn messages_in(nats: &NatsServer, stream: &str) -> u64 {
    let client = nats.connect().await.expect("connect");
    let js = async_nats::jetstream::new(client);
    match js.get_stream(stream).await {
        Ok(mut stream) => stream.info().await.expect("info").state.messages,
        Err(_) => 0,
    }
}

async fn consumers_of(nats: &NatsServer, stream: &str) -> Vec<String> {
    let client = nats.connect().await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream(stream).await.expect("stream");
    stream
        .consumer_names()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|name| name.expect("name"))
        .collect()
}

// ---------------------------------------------------------------- replay

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_selects_signs_marks_retries_and_reports() {
    // Fails each event's first two attempts with 503, then accepts it.
    let destination = Destination::start(|received, _| {
        let id = received.header("webhook-id");
        let attempt = received.header("hookwarden-attempt");
        if id == "d-1" && attempt != "3" {
            (503, "busy".into())
        } else {
            (200, "ok".into())
        }
    })
    .await;
    let setup = Setup::start(&destination.url).await;
    setup.send("push", "d-1").await;
    // Stored times are the server's: a moment between d-1 and the rest.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let middle = jiff::Timestamp::now().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    setup.send("issues", "d-2").await;
    setup.send("push", "d-3").await;
    setup.send("release", "d-4").await; // not an event type of the subscription
    hookwarden_tests::eventually("4 stored events", WAIT, || async {
        (messages_in(&setup.nats, STREAM).await == 4).then_some(())
    })
    .await;

    // Dry runs: each criterion, nothing sent.
    let all = setup.run(&["replay"], &["--dry-run"]).await;
    assert_eq!(listed_ids(&all), ["d-1", "d-2", "d-3"], "{}", stdout(&all));
    let text = stdout(&all);
    assert!(
        text.contains(" hookwarden.shop.github.push id=d-1 size="),
        "{text}"
    );
    assert!(
        text.contains("replay: 3 selected, dry run: nothing sent"),
        "{text}"
    );
    for (args, ids) in [
        (vec!["--event-type", "issues"], vec!["d-2"]),
        (vec!["--event-type", "release"], vec![]),
        (
            vec!["--delivery-id", "d-3", "--delivery-id", "d-1"],
            vec!["d-1", "d-3"],
        ),
        (vec!["--from-seq", "2", "--to-seq", "2"], vec!["d-2"]),
        (vec!["--from-seq", "2"], vec!["d-2", "d-3"]),
        (vec!["--until", middle.as_str()], vec!["d-1"]),
        (vec!["--since", middle.as_str()], vec!["d-2", "d-3"]),
        (vec!["--since", "1h"], vec!["d-1", "d-2", "d-3"]),
        (vec!["--limit", "1"], vec!["d-1"]),
    ] {
        let mut with_dry = vec!["--dry-run"];
        with_dry.extend(args.iter().copied());
        let out = setup.run(&["replay"], &with_dry).await;
        assert_eq!(listed_ids(&out), ids, "{args:?}: {}", stdout(&out));
    }
    assert!(destination.received().is_empty(), "a dry run sends nothing");

    // The subscription's CEL filter applies too.
    std::fs::write(
        setup.dir.path().join("filtered.yaml"),
        format!(
            "{}  filter: 'headers[\"hookwarden-event\"] == \"issues\"'\n",
            subscription(&destination.url)
        ),
    )
    .expect("manifest");
    let filtered = hookwarden(vec![
        "replay".into(),
        "--dry-run".into(),
        "--subscription".into(),
        setup.path("filtered.yaml"),
        "--endpoint".into(),
        setup.path("endpoint.yaml"),
        "--nats-url".into(),
        setup.nats.url().to_owned(),
    ])
    .await;
    assert!(filtered.status.success(), "{filtered:?}");
    let text = stdout(&filtered);
    assert!(
        text.contains("skipped 1 hookwarden.shop.github.push id=d-1: not matching spec.filter"),
        "{text}"
    );
    assert!(
        text.contains(" hookwarden.shop.github.issues id=d-2 size="),
        "{text}"
    );
    assert!(
        text.contains("replay: 3 selected, dry run: nothing sent, 2 not matching spec.filter"),
        "{text}"
    );
    assert!(destination.received().is_empty(), "a dry run sends nothing");

    // Sent: retried in the foreground, signed, marked.
    let sent = setup.replay(&["--delivery-id", "d-1"]).await;
    assert!(sent.status.success(), "{sent:?}");
    let text = stdout(&sent);
    assert!(
        text.contains("sent 1 hookwarden.shop.github.push id=d-1 status=200 attempts=3"),
        "{text}"
    );
    assert!(
        text.contains("replay: 1 selected, 1 sent, 0 failed"),
        "{text}"
    );
    let received = destination.received();
    assert_eq!(received.len(), 3);
    for (n, request) in received.iter().enumerate() {
        assert!(request.verified, "a valid Standard Webhooks signature");
        assert_eq!(request.header("hookwarden-replay"), "true");
        assert_eq!(request.header("webhook-id"), "d-1");
        assert_eq!(request.header("idempotency-key"), "d-1");
        assert_eq!(request.header("hookwarden-event-type"), "push");
        assert_eq!(request.header("hookwarden-attempt"), (n + 1).to_string());
        let body: serde_json::Value =
            serde_json::from_slice(&request.body).expect("the stored JSON");
        assert!(body.is_object());
    }

    // --to: another URL, still the subscription's signature.
    let other = Destination::start(|_, _| (204, String::new())).await;
    let to = setup
        .replay(&["--event-type", "push", "--to", &other.url])
        .await;
    assert!(to.status.success(), "{to:?}");
    let ids: Vec<String> = other
        .received()
        .iter()
        .map(|r| r.header("webhook-id"))
        .collect();
    assert_eq!(ids, ["d-1", "d-3"]);
    assert!(
        other
            .received()
            .iter()
            .all(|r| r.verified && r.header("hookwarden-replay") == "true")
    );
    assert_eq!(
        destination.received().len(),
        3,
        "nothing more to the subscription's"
    );
    let insecure = setup.replay(&["--to", "http://example.com/hooks"]).await;
    assert_eq!(insecure.status.code(), Some(2), "{insecure:?}");
    assert!(
        String::from_utf8_lossy(&insecure.stderr).contains("plain http://"),
        "{insecure:?}"
    );

    // Refused: a non-zero exit and the reason; the answer echoes the
    // signing secret, which is never printed.
    let refusing =
        Destination::start(|_, _| (404, format!("no such hook; you sent {SIGNING_SECRET}"))).await;
    let failed = setup
        .replay(&["--delivery-id", "d-2", "--to", &refusing.url])
        .await;
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    let text = stdout(&failed);
    assert!(text.contains("FAILED 2 hookwarden.shop.github.issues id=d-2: refused after 1 attempt(s), last status 404: HTTP 404 Not Found: no such hook; you sent [redacted]"), "{text}");
    assert!(
        text.contains("replay: 1 selected, 0 sent, 1 failed"),
        "{text}"
    );
    assert!(text.contains("  failed seq=2 id=d-2: refused"), "{text}");
    assert_eq!(refusing.received().len(), 1, "a 404 is not retried");

    // Nothing left on the server: no consumer, the events still there.
    assert_eq!(
        consumers_of(&setup.nats, STREAM).await,
        Vec::<String>::new()
    );
    assert_eq!(messages_in(&setup.nats, STREAM).await, 4);
}

// ---------------------------------------------------------------- dead letters

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_redriven_then_deleted_only_when_delivered() {
    // Refuses everything until fixed; then d-2 still fails (503).
    let fixed = Arc::new(AtomicBool::new(false));
    let state = Arc::clone(&fixed);
    let destination = Destination::start(move |received, _| {
        if !state.load(Ordering::SeqCst) {
            (404, "gone fishing".into())
        } else if received.header("webhook-id") == "d-2" {
            (503, "still broken".into())
        } else {
            (200, "ok".into())
        }
    })
    .await;
    let setup = Setup::start(&destination.url).await;

    // No forwarder ran yet: no dead letters, said plainly.
    let none = setup.run(&["dlq", "list"], &[]).await;
    assert!(none.status.success(), "{none:?}");
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("has no dead letters"),
        "{none:?}"
    );

    // The real forwarder dead-letters what the destination refuses.
    dead_letter(&setup, &["d-1", "d-2", "d-3"]).await;

    let listed = setup.run(&["dlq", "list"], &[]).await;
    assert!(listed.status.success(), "{listed:?}");
    let text = stdout(&listed);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (n, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("{} ", n + 1)), "{line}");
        assert!(
            line.contains(&format!(
                " hookwarden.shop.github.push#{} id=d-{} attempts=1 status=404 reason=refused error=\"HTTP 404 Not Found: gone fishing\"",
                n + 1,
                n + 1
            )),
            "{line}"
        );
    }
    let json = setup
        .run(&["dlq", "list"], &["--json", "--limit", "1"])
        .await;
    let first: serde_json::Value =
        serde_json::from_str(stdout(&json).trim()).expect("one JSON line");
    assert_eq!(first["id"], "d-1");
    assert_eq!(first["status"], "404");
    assert_eq!(first["reason"], "refused");
    assert_eq!(first["stream"], STREAM);
    assert_eq!(first["stream_sequence"], 1);
    assert_eq!(first["subscription"], "shop/to-billing");

    // A dry run sends and deletes nothing.
    let secrets = setup.path("secrets");
    let dry = setup
        .run(&["dlq", "redrive"], &["--all", "--dry-run"])
        .await;
    assert_eq!(listed_ids(&dry), ["d-1", "d-2", "d-3"]);
    assert_eq!(
        destination.received().len(),
        3,
        "only the forwarder's attempts"
    );
    assert_eq!(messages_in(&setup.nats, DEAD_LETTERS).await, 3);

    fixed.store(true, Ordering::SeqCst);
    // One by sequence: delivered, then deleted.
    let one = setup
        .run(
            &["dlq", "redrive"],
            &["--secrets-dir", &secrets, "--seq", "1"],
        )
        .await;
    assert!(one.status.success(), "{one:?}");
    assert!(
        stdout(&one).contains("sent 1 hookwarden.shop.github.push id=d-1 status=200 attempts=1"),
        "{}",
        stdout(&one)
    );
    let last = destination.received().last().cloned().expect("a request");
    assert!(last.verified);
    assert_eq!(last.header("webhook-id"), "d-1");
    assert_eq!(last.header("hookwarden-replay"), "true");
    assert_eq!(messages_in(&setup.nats, DEAD_LETTERS).await, 2);

    // All: d-3 delivered and deleted; d-2 fails its 3 attempts and stays.
    let all = setup
        .run(&["dlq", "redrive"], &["--secrets-dir", &secrets, "--all"])
        .await;
    assert_eq!(all.status.code(), Some(1), "{all:?}");
    let text = stdout(&all);
    assert!(
        text.contains("redrive: 2 selected, 1 sent, 1 failed"),
        "{text}"
    );
    assert!(text.contains("failed seq=2 id=d-2: attempts_exhausted after 3 attempt(s), last status 503: HTTP 503 Service Unavailable: still broken"), "{text}");
    let remaining = setup.run(&["dlq", "list"], &[]).await;
    let text = stdout(&remaining);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("2 ") && text.contains(" id=d-2 "),
        "{text}"
    );

    // A sequence that is not one of its dead letters.
    let missing = setup
        .run(
            &["dlq", "redrive"],
            &["--secrets-dir", &secrets, "--seq", "1"],
        )
        .await;
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert_eq!(
        consumers_of(&setup.nats, DEAD_LETTERS).await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_replay_after_the_delivery_in_flight_and_prints_the_summary() {
    // The first event is refused (503, retried every second) until the
    // test has seen the replay acknowledge Ctrl-C: it is in flight then.
    let interrupted = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&interrupted);
    let destination = Destination::start(move |received, _| {
        if received.header("webhook-id") == "c-1" && !seen.load(Ordering::SeqCst) {
            (503, "busy".into())
        } else {
            (200, "ok".into())
        }
    })
    .await;
    let setup = Setup::start(&destination.url).await;
    for id in ["c-1", "c-2", "c-3"] {
        setup.send("push", id).await;
    }
    let child = setup.spawn_retrying(&destination.url, &["replay"], &[]);
    hookwarden_tests::eventually("the first replayed request", WAIT, || async {
        (!destination.received().is_empty()).then_some(())
    })
    .await;
    let output = interrupt(child, &interrupted).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(130), "{text}");
    let summary = text
        .lines()
        .find(|l| l.starts_with("replay:"))
        .unwrap_or_else(|| panic!("a summary in {text}"));
    assert!(
        summary.contains("3 selected, 1 sent, 0 failed"),
        "the delivery in flight finished: {summary}"
    );
    assert!(summary.contains("--from-seq 2"), "{summary}");
    assert!(
        destination
            .received()
            .iter()
            .all(|r| r.header("webhook-id") == "c-1"),
        "nothing started after Ctrl-C"
    );
}

/// Sends SIGINT to `child`, waits until it says on stderr that it was
/// interrupted, then sets `release` (so the delivery held in flight can
/// end) and returns what the command printed and its exit status.
async fn interrupt(mut child: tokio::process::Child, release: &AtomicBool) -> Output {
    let pid = child.id().expect("running").to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(signalled.success());
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut said = String::new();
    tokio::time::timeout(WAIT, async {
        use tokio::io::AsyncBufReadExt;
        while !said.contains("interrupted") {
            if stderr.read_line(&mut said).await.expect("stderr") == 0 {
                break;
            }
        }
    })
    .await
    .expect("the command reports the interruption");
    assert!(said.contains("interrupted"), "{said}");
    release.store(true, Ordering::SeqCst);
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the command exits")
        .expect("output")
}

/// Sends events `ids` through the real forwarder of `setup`'s subscription
/// while its destination refuses them, until each is a dead letter.
async fn dead_letter(setup: &Setup, ids: &[&str]) {
    let forwarder = start_forwarder(ForwardArgs {
        subscription: setup.dir.path().join("subscription.yaml"),
        secrets_dir: setup.dir.path().join("secrets"),
        endpoint: Some(setup.dir.path().join("endpoint.yaml")),
        nats_url: Some(setup.nats.url().to_owned()),
        metrics_listen: ([127, 0, 0, 1], 0).into(),
        reload_interval_secs: 1,
        drain_timeout_secs: 5,
    })
    .await
    .expect("the forwarder starts");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(forwarder.run(async {
        let _ = stopped.await;
    }));
    hookwarden_tests::eventually("the subscription's consumer", WAIT, || async {
        let names = consumers_of(&setup.nats, STREAM).await;
        names
            .iter()
            .any(|n| n == "hookwarden_shop_to-billing")
            .then_some(())
    })
    .await;
    let before = messages_in(&setup.nats, DEAD_LETTERS).await;
    for id in ids {
        setup.send("push", id).await;
    }
    let wanted = before + ids.len() as u64;
    hookwarden_tests::eventually(&format!("{wanted} dead letters"), WAIT, || async {
        (messages_in(&setup.nats, DEAD_LETTERS).await == wanted).then_some(())
    })
    .await;
    let _ = stop.send(());
    running.await.expect("the forwarder stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_redrive_after_the_dead_letter_in_flight_and_keeps_the_rest() {
    // Refused (404) while the forwarder runs; then the first dead letter
    // redriven (dead-lettered in whatever order the forwarder's concurrent
    // attempts ended) is busy (503, retried) until the test has seen the
    // redrive acknowledge Ctrl-C.
    let redriving = Arc::new(AtomicBool::new(false));
    let interrupted = Arc::new(AtomicBool::new(false));
    let first: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let (busy_until, seen, held) = (
        Arc::clone(&redriving),
        Arc::clone(&interrupted),
        Arc::clone(&first),
    );
    let destination = Destination::start(move |received, _| {
        if !busy_until.load(Ordering::SeqCst) {
            return (404, "not yet".into());
        }
        let id = received.header("webhook-id");
        let mut held = held.lock().expect("lock");
        if held.get_or_insert_with(|| id.clone()) == &id && !seen.load(Ordering::SeqCst) {
            (503, "busy".into())
        } else {
            (200, "ok".into())
        }
    })
    .await;
    let setup = Setup::start(&destination.url).await;
    dead_letter(&setup, &["e-1", "e-2", "e-3"]).await;
    redriving.store(true, Ordering::SeqCst);
    let received_before = destination.received().len();
    let child = setup.spawn_retrying(&destination.url, &["dlq", "redrive"], &["--all"]);
    hookwarden_tests::eventually("the first redriven request", WAIT, || async {
        (destination.received().len() > received_before).then_some(())
    })
    .await;
    let output = interrupt(child, &interrupted).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(130), "{text}");
    let summary = text
        .lines()
        .find(|l| l.starts_with("redrive:"))
        .unwrap_or_else(|| panic!("a summary in {text}"));
    assert!(
        summary.contains("3 selected, 1 sent, 0 failed")
            && summary.contains("interrupted at dead letter 2")
            && summary.contains("run the redrive again"),
        "the dead letter in flight finished, the rest was kept: {summary}"
    );
    let first = first.lock().expect("lock").clone().expect("one was held");
    assert!(
        destination.received()[received_before..]
            .iter()
            .all(|r| r.header("webhook-id") == first),
        "nothing started after Ctrl-C"
    );
    // The first was delivered and deleted; running it again sends exactly
    // the rest.
    assert_eq!(messages_in(&setup.nats, DEAD_LETTERS).await, 2);
    let again = setup
        .run(
            &["dlq", "redrive"],
            &["--secrets-dir", &setup.path("secrets"), "--all"],
        )
        .await;
    assert!(again.status.success(), "{again:?}");
    assert!(
        stdout(&again).contains("redrive: 2 selected, 2 sent, 0 failed"),
        "{again:?}"
    );
    assert_eq!(messages_in(&setup.nats, DEAD_LETTERS).await, 0);
}
