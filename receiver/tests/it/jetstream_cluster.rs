//! Nothing acknowledged is lost when a JetStream cluster loses nodes. The
//! real `hookwarden-receiver serve` binary stores into an R3 stream on a
//! three-node nats-server cluster (given all three URLs, as `--nats-url`
//! and `spec.nats.url` take them) while senders deliver all the time; then
//! one fault each: a follower killed, the stream leader killed (a leader
//! election mid-load), two of three killed (no quorum) and brought back,
//! the node the receiver is connected to paused (SIGSTOP: a partition as
//! its clients and peers see it) and resumed.
//!
//! Each asserts: every delivery answered 2xx is in the stream exactly once
//! (counted by `Nats-Msg-Id` once the cluster has recovered), no delivery
//! is stored twice (senders retry refused ones with the same id, as
//! providers do), every other answer is 503 with `Retry-After`, and the
//! receiver stores again by itself. Without a quorum nothing new is
//! acknowledged, while a redelivery of an event stored before is answered
//! as the duplicate it is. How long deliveries were refused is
//! printed (first to last refusal, from the fault) as an observation for
//! docs/benchmarks.md, never asserted: speed is not a test's business.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use hookwarden_tests::{NatsCluster, Placement};
use hyper::StatusCode;

use crate::binary::ReceiverProcess;

/// The GitHub endpoint with an R3 stream. Every sender is 127.0.0.1: the
/// per-source rate limit is raised above the load (its default, 100/s,
/// would answer part of it 429, which is not what these tests look at).
const MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: github, namespace: ci}\n\
    spec:\n  provider: github\n  secretRefs: [{name: gh, key: secret}]\n  nats: {replicas: 3}\n\
    \x20 rateLimit: {perSourceIp: {requestsPerSecond: 5000}}\n";

/// Senders delivering at once, like a provider's parallel deliveries.
const SENDERS: usize = 4;
/// Upper bound on requests per sender, so the load always ends.
const MAX_REQUESTS_PER_SENDER: usize = 3_000;
/// A sender's pause between requests, and before retrying a refused
/// delivery (faster than `Retry-After` asks, to see when it ends).
const PACE: Duration = Duration::from_millis(20);
/// How long the cluster may take to settle: a leader and every replica
/// current, after a start or a repair.
const SETTLE: Duration = Duration::from_secs(30);
/// How long the receiver may take to store again after a fault or a repair.
const RECOVER: Duration = Duration::from_secs(40);

/// One cluster at a time: the tests share two cores with everything else,
/// and three nodes per test already keep them busy; leader elections under
/// starvation would measure the machine, not the cluster.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The stream the manifest's endpoint stores in.
fn stream_name() -> String {
    let endpoint = hookwarden_crds::from_yaml(MANIFEST).expect("manifest");
    hookwarden_receiver::publish::Target::for_endpoint(&endpoint)
        .expect("target")
        .stream
}

/// One answer to one request.
#[derive(Debug, Clone)]
struct Answer {
    id: String,
    status: StatusCode,
    retry_after: bool,
    /// The receiver's `"duplicate"`: JetStream answered from its
    /// deduplication window, the event was stored by an earlier attempt.
    duplicate: bool,
    /// The receiver's `"sequence"` of a stored answer (JSON null otherwise).
    sequence: serde_json::Value,
    /// When the request was sent and answered, from the test's start.
    sent: Duration,
    answered: Duration,
}

/// A cluster, the receiver storing into its R3 stream, and the load.
struct Setup {
    cluster: NatsCluster,
    receiver: Arc<ReceiverProcess>,
    stream: String,
    start: Instant,
}

impl Setup {
    async fn start() -> Self {
        let cluster = NatsCluster::start().await.expect("nats-server cluster");
        let receiver = ReceiverProcess::spawn(
            &cluster.urls(),
            MANIFEST,
            &[("gh", "secret", crate::SECRET.as_bytes())],
            &[],
        );
        receiver.ready().await;
        let stream = stream_name();
        let placement = cluster
            .wait_for_stream(&stream, 3, SETTLE)
            .await
            .expect("the R3 stream has a leader and three current replicas");
        assert_eq!(
            placement.replicas, 3,
            "spec.nats.replicas: 3 makes an R3 stream"
        );
        let serving = hookwarden_tests::eventually(
            "the receiver's NATS connection in a node's /connz",
            Duration::from_secs(10),
            || cluster.node_of_client(RECEIVER_CLIENT_NAME),
        )
        .await;
        eprintln!(
            "the receiver is connected to {}; the stream's leader is {:?}",
            cluster.name(serving),
            placement.leader
        );
        Self {
            cluster,
            receiver: Arc::new(receiver),
            stream,
            start: Instant::now(),
        }
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Starts the senders; stop them with [`Load::finish`].
    fn load(&self, case: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let senders = (0..SENDERS)
            .map(|sender| {
                tokio::spawn(send_until(
                    Arc::clone(&self.receiver),
                    format!("{case}-{sender}"),
                    self.start,
                    Arc::clone(&stop),
                    Arc::clone(&answers),
                ))
            })
            .collect();
        Load {
            stop,
            senders,
            answers,
            start: self.start,
        }
    }

    /// Waits (bounded) until a fresh delivery is stored: the receiver
    /// recovered by itself. When it was.
    async fn stores_again(&self, probe: &str) -> Duration {
        let deadline = Instant::now() + RECOVER;
        let mut attempt = 0;
        loop {
            let reply = deliver(&self.receiver, &format!("{probe}-{attempt}")).await;
            if reply.status.is_success() {
                return self.now();
            }
            assert!(
                Instant::now() < deadline,
                "the receiver stores again within {RECOVER:?} ({probe}); last answer {}",
                reply.status
            );
            attempt += 1;
            tokio::time::sleep(PACE).await;
        }
    }

    /// Every message of the stream by `Nats-Msg-Id`, read once the
    /// cluster has settled, one sequence at a time from the stream leader
    /// (no consumer: creating one needs the meta leader, which may itself
    /// be in an election after the fault). Bounded by [`SETTLE`].
    async fn stored(&self) -> HashMap<String, usize> {
        let placement = self
            .cluster
            .wait_for_stream(&self.stream, 3, SETTLE)
            .await
            .expect("the stream settles after the fault");
        let deadline = Instant::now() + SETTLE;
        let client = self.cluster.connect().await.expect("connect");
        let js = jetstream::new(client);
        let (first, last) = loop {
            let attempt = async {
                let mut stream = js.get_stream(&self.stream).await.ok()?;
                let state = stream.info().await.ok()?.state.clone();
                Some((state.first_sequence, state.last_sequence))
            };
            if let Some(range) = attempt.await {
                break range;
            }
            assert!(Instant::now() < deadline, "the stream's info in time");
            tokio::time::sleep(PACE).await;
        };
        let stream = js.get_stream(&self.stream).await.expect("stream");
        let mut stored: HashMap<String, usize> = HashMap::new();
        for sequence in first.max(1)..=last {
            let message = loop {
                match stream.get_raw_message(sequence).await {
                    Ok(message) => break message,
                    Err(error) => {
                        assert!(
                            Instant::now() < deadline,
                            "message {sequence} read in time: {error}"
                        );
                        tokio::time::sleep(PACE).await;
                    }
                }
            };
            let id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            *stored.entry(id).or_default() += 1;
        }
        eprintln!(
            "stream {}: sequences {first}..={last}, placement {placement:?}",
            self.stream
        );
        stored
    }
}

/// The running senders and their answers so far.
struct Load {
    stop: Arc<AtomicBool>,
    senders: Vec<tokio::task::JoinHandle<()>>,
    answers: Arc<Mutex<Vec<Answer>>>,
    start: Instant,
}

impl Load {
    /// Waits (bounded by [`RECOVER`]) until the load itself, not only a
    /// probe, has a delivery sent after `fault` answered 2xx: the senders'
    /// requests in flight at a fault may each wait out the receiver's
    /// publish timeout before their retry can be stored. Then stops the
    /// senders and returns every answer.
    async fn finish_once_stored_after(self, fault: Duration) -> Vec<Answer> {
        self.until_an_answer(|a| a.sent > fault && a.status.is_success())
            .await;
        eprintln!(
            "the load stopped at +{} ms after the fault",
            self.start.elapsed().saturating_sub(fault).as_millis()
        );
        self.stop.store(true, Ordering::Relaxed);
        for sender in self.senders {
            sender.await.expect("sender");
        }
        std::mem::take(&mut *self.answers.lock().expect("answers"))
    }

    /// One delivery answered 2xx before `time`.
    fn accepted_before(&self, time: Duration) -> Option<Answer> {
        self.answers
            .lock()
            .expect("answers")
            .iter()
            .find(|a| a.answered < time && a.status.is_success())
            .cloned()
    }

    /// Waits until an answer is `wanted`, or [`RECOVER`] has passed (the
    /// assertions on the answers then say what is missing).
    async fn until_an_answer(&self, wanted: impl Fn(&Answer) -> bool) {
        let deadline = Instant::now() + RECOVER;
        while Instant::now() < deadline {
            if self.answers.lock().expect("answers").iter().any(&wanted) {
                return;
            }
            tokio::time::sleep(PACE).await;
        }
    }
}

/// A signed GitHub delivery of `id`.
async fn deliver(receiver: &ReceiverProcess, id: &str) -> crate::binary::Reply {
    let body = format!("{{\"delivery\":\"{id}\"}}");
    let signature = crate::sign(body.as_bytes());
    receiver
        .send(
            "POST",
            &[
                ("content-type", "application/json"),
                ("x-github-event", "push"),
                ("x-github-delivery", id),
                ("x-hub-signature-256", &signature),
            ],
            body.as_bytes(),
        )
        .await
}

/// Delivers `<prefix>-0`, `<prefix>-1`, ... until `stop`; a refused
/// delivery is sent again with the same id until it is accepted (or the
/// load ends), as a provider retries.
async fn send_until(
    receiver: Arc<ReceiverProcess>,
    prefix: String,
    start: Instant,
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
) {
    let mut next = 0;
    for _ in 0..MAX_REQUESTS_PER_SENDER {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let id = format!("{prefix}-{next}");
        let sent = start.elapsed();
        let reply = deliver(&receiver, &id).await;
        let stored: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        let answer = Answer {
            id,
            status: reply.status,
            retry_after: reply.headers.contains_key("retry-after"),
            duplicate: stored["duplicate"] == true,
            sequence: stored["sequence"].clone(),
            sent,
            answered: start.elapsed(),
        };
        if answer.status.is_success() {
            next += 1;
        }
        answers.lock().expect("answers").push(answer);
        tokio::time::sleep(PACE).await;
    }
}

/// What the answers say, checked: only 2xx or 503 with `Retry-After`;
/// every 2xx-answered delivery stored exactly once; nothing stored twice.
/// The refusal window is printed and returned.
fn check(case: &str, fault: Duration, answers: &[Answer], stored: &HashMap<String, usize>) {
    let odd: Vec<&Answer> = answers
        .iter()
        .filter(|a| {
            !a.status.is_success()
                && (a.status != StatusCode::SERVICE_UNAVAILABLE || !a.retry_after)
        })
        .collect();
    assert!(
        odd.is_empty(),
        "{case}: only 2xx, or 503 with Retry-After; {} others, the first: {:?}",
        odd.len(),
        &odd[..odd.len().min(5)]
    );
    let accepted: Vec<&Answer> = answers.iter().filter(|a| a.status.is_success()).collect();
    let lost: Vec<&str> = accepted
        .iter()
        .filter(|a| stored.get(&a.id) != Some(&1))
        .map(|a| a.id.as_str())
        .collect();
    assert!(
        lost.is_empty(),
        "{case}: deliveries answered 2xx but not stored exactly once: {lost:?}"
    );
    let twice: Vec<(&String, &usize)> = stored.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "{case}: stored more than once: {twice:?}");
    assert!(
        accepted.iter().any(|a| a.sent > fault),
        "{case}: deliveries are accepted after the fault"
    );

    let refused: Vec<&Answer> = answers.iter().filter(|a| !a.status.is_success()).collect();
    let after = |time: Duration| time.saturating_sub(fault).as_millis();
    let window = match (
        refused.iter().map(|a| a.sent).min(),
        refused.iter().map(|a| a.answered).min(),
        refused.iter().map(|a| a.answered).max(),
    ) {
        (Some(first_sent), Some(first), Some(last)) => format!(
            "refusals answered from +{} ms to +{} ms after the fault ({} ms; the first refused request was sent at +{} ms)",
            after(first),
            after(last),
            last.saturating_sub(first).as_millis(),
            after(first_sent)
        ),
        _ => "never refused".to_owned(),
    };
    eprintln!(
        "OBSERVED {case}: {} requests, {} answered 2xx, {} answered 503; {window}; {} deliveries stored",
        answers.len(),
        accepted.len(),
        refused.len(),
        stored.len()
    );
}

/// Lets the load run for `time` before (or after) a fault.
async fn under_load(time: Duration) {
    tokio::time::sleep(time).await;
}

fn leader_and_followers(cluster: &NatsCluster, placement: &Placement) -> (usize, Vec<usize>) {
    let leader = placement
        .leader
        .as_deref()
        .and_then(|name| cluster.index_of(name))
        .expect("a leader");
    let followers = (0..3).filter(|&i| i != leader).collect();
    (leader, followers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_follower_loses_nothing() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut setup = Setup::start().await;
    let placement = setup
        .cluster
        .placement(&setup.stream)
        .await
        .expect("placement");
    let (_, followers) = leader_and_followers(&setup.cluster, &placement);
    let load = setup.load("follower");
    under_load(Duration::from_millis(700)).await;

    let fault = setup.now();
    setup.cluster.kill(followers[0]);
    under_load(Duration::from_secs(2)).await;
    setup.stores_again("follower-probe").await;
    setup
        .cluster
        .restart(followers[0])
        .await
        .expect("the follower restarts");
    under_load(Duration::from_millis(700)).await;

    let answers = load.finish_once_stored_after(fault).await;
    let stored = setup.stored().await;
    check("kill a follower", fault, &answers, &stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_stream_leader_loses_nothing() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut setup = Setup::start().await;
    let placement = setup
        .cluster
        .placement(&setup.stream)
        .await
        .expect("placement");
    let (leader, _) = leader_and_followers(&setup.cluster, &placement);
    let load = setup.load("leader");
    under_load(Duration::from_millis(700)).await;

    let fault = setup.now();
    setup.cluster.kill(leader);
    let recovered = setup.stores_again("leader-probe").await;
    let elected = setup
        .cluster
        .wait_for_stream(&setup.stream, 2, SETTLE)
        .await
        .expect("a new leader");
    assert_ne!(
        elected.leader.as_deref(),
        Some(setup.cluster.name(leader)),
        "another node leads the stream"
    );
    eprintln!(
        "leader {} killed; {:?} leads; storing again +{} ms after the kill",
        setup.cluster.name(leader),
        elected.leader,
        recovered.saturating_sub(fault).as_millis()
    );
    setup
        .cluster
        .restart(leader)
        .await
        .expect("the old leader restarts");
    under_load(Duration::from_millis(700)).await;

    let answers = load.finish_once_stored_after(fault).await;
    let stored = setup.stored().await;
    check("kill the stream leader", fault, &answers, &stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_nothing_is_acknowledged_and_storing_resumes() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut setup = Setup::start().await;
    let placement = setup
        .cluster
        .placement(&setup.stream)
        .await
        .expect("placement");
    // The leader stays: it must not acknowledge what it cannot replicate.
    let (_, followers) = leader_and_followers(&setup.cluster, &placement);
    let load = setup.load("quorum");
    under_load(Duration::from_millis(700)).await;

    let fault = setup.now();
    setup.cluster.kill(followers[0]);
    setup.cluster.kill(followers[1]);
    let lost_quorum = setup.now();
    under_load(Duration::from_secs(5)).await;
    // When the receiver's own node was killed, its requests in flight wait
    // out the publish timeout (3 s), and so do their retries to the leader
    // alone: the quorum stays away until one delivery sent without it has
    // been answered.
    load.until_an_answer(|a| a.sent > lost_quorum).await;
    // A provider's redelivery of an event stored before the loss is
    // answered 2xx even now, from the leader's deduplication window, with
    // the sequence the event was stored at: stored is stored.
    let stored_before = load
        .accepted_before(fault)
        .expect("deliveries were stored before the fault");
    let redelivered = deliver(&setup.receiver, &stored_before.id).await;
    let again: serde_json::Value = serde_json::from_slice(&redelivered.body).unwrap_or_default();
    assert!(
        redelivered.status.is_success() && again["duplicate"] == true,
        "a redelivery of {} (stored before the quorum was lost) is answered as a duplicate: {} {again}",
        stored_before.id,
        redelivered.status
    );
    assert_eq!(
        again["sequence"], stored_before.sequence,
        "the redelivery names the sequence its event was stored at"
    );
    let repair = setup.now();
    for &follower in &followers {
        setup
            .cluster
            .restart(follower)
            .await
            .expect("the follower restarts");
    }
    setup.stores_again("quorum-probe").await;
    under_load(Duration::from_millis(700)).await;

    let answers = load.finish_once_stored_after(fault).await;
    // Sent after the quorum was gone and answered before it could be back:
    // each must be refused.
    let outage: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.sent > lost_quorum && a.answered < repair)
        .collect();
    assert!(
        !outage.is_empty(),
        "deliveries were sent while there was no quorum"
    );
    // The one 2xx a leader without followers may give: a retry of a
    // delivery whose first attempt was committed before the quorum went
    // (its answer lost with the receiver's node), answered from the
    // stream's deduplication window, which holds only applied, that is
    // committed, messages (in-flight ids get an error). Nothing new is
    // acknowledged: a 2xx here must say `duplicate` and be for an id first
    // sent while there was a quorum.
    let sent_before_the_loss = |id: &str| {
        answers
            .iter()
            .any(|earlier| earlier.id == id && earlier.sent < lost_quorum)
    };
    let acknowledged_anew: Vec<&&Answer> = outage
        .iter()
        .filter(|a| a.status.is_success() && !(a.duplicate && sent_before_the_loss(&a.id)))
        .collect();
    assert!(
        acknowledged_anew.is_empty(),
        "nothing new is acknowledged without a quorum: {acknowledged_anew:?}"
    );
    let redelivered = outage.iter().filter(|a| a.status.is_success()).count();
    eprintln!(
        "without a quorum: {} deliveries answered, {redelivered} of them a duplicate of one stored before",
        outage.len()
    );
    let stored = setup.stored().await;
    check("kill two of three", fault, &answers, &stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_under_the_receiver_loses_nothing() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let setup = Setup::start().await;
    let placement = setup
        .cluster
        .placement(&setup.stream)
        .await
        .expect("placement");
    let serving = hookwarden_tests::eventually(
        "the receiver's NATS connection in a node's /connz",
        Duration::from_secs(10),
        || setup.cluster.node_of_client(RECEIVER_CLIENT_NAME),
    )
    .await;
    let load = setup.load("pause");
    under_load(Duration::from_millis(700)).await;

    let fault = setup.now();
    let paused = setup.cluster.pause(serving);
    let recovered = setup.stores_again("pause-probe").await;
    eprintln!(
        "paused {} (the receiver's node; stream leader {:?}); storing again +{} ms after the pause",
        setup.cluster.name(serving),
        placement.leader,
        recovered.saturating_sub(fault).as_millis()
    );
    under_load(Duration::from_millis(700)).await;
    paused.resume();
    under_load(Duration::from_millis(700)).await;

    let answers = load.finish_once_stored_after(fault).await;
    let stored = setup.stored().await;
    check("pause the receiver's node", fault, &answers, &stored);
}

/// The name the receiver gives its NATS connection (`publish::client_name`).
const RECEIVER_CLIENT_NAME: &str = "hookwarden-receiver ci/github";

/// What the operator reports in `StreamReady` and its stream audit
/// compares, read from the real cluster: the leader, and how many replicas
/// are current, following a follower lost and back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_placement_the_operator_reports_follows_the_cluster() {
    use hookwarden_receiver::publish::{StreamOutcome, Target, check_stream, manage_stream};
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = NatsCluster::start().await.expect("nats-server cluster");
    let endpoint = hookwarden_crds::from_yaml(MANIFEST).expect("manifest");
    let target = Target::for_endpoint(&endpoint).expect("target");
    let js = jetstream::new(cluster.connect().await.expect("connect"));

    let managed = manage_stream(&js, &target).await.expect("stream created");
    assert_eq!(managed.outcome, StreamOutcome::Created);
    assert_eq!(managed.placement.replicas, 3);
    eprintln!("OBSERVED placement: created as \"{}\"", managed.placement);
    let settled = cluster
        .wait_for_stream(&target.stream, 3, SETTLE)
        .await
        .expect("three current replicas");
    let leader = settled.leader.clone().expect("a leader");
    assert!(cluster.index_of(&leader).is_some(), "{leader} is a node");
    let found = check_stream(&js, &target)
        .await
        .expect("answered")
        .placement
        .expect("in sync");
    assert_eq!(
        found.to_string(),
        format!("3 of 3 replicas current, leader {leader}")
    );

    let follower = (0..3)
        .find(|&i| cluster.name(i) != leader)
        .expect("a follower");
    cluster.kill(follower);
    let lost = Instant::now();
    let degraded = hookwarden_tests::eventually(
        "the stream to report 2 of 3 replicas current",
        SETTLE,
        || async {
            check_stream(&js, &target)
                .await
                .ok()
                .and_then(|check| check.placement)
                .filter(|p| p.current == 2 && p.leader.is_some())
        },
    )
    .await;
    eprintln!(
        "OBSERVED placement: {} killed, reported \"{degraded}\" after {} ms",
        cluster.name(follower),
        lost.elapsed().as_millis()
    );
    assert!(
        degraded
            .to_string()
            .starts_with("2 of 3 replicas current, leader "),
        "{degraded}"
    );
    assert_ne!(degraded.leader.as_deref(), Some(cluster.name(follower)));

    cluster
        .restart(follower)
        .await
        .expect("the follower restarts");
    let back = Instant::now();
    let healed = hookwarden_tests::eventually(
        "the stream to report 3 of 3 replicas current",
        SETTLE,
        || async {
            check_stream(&js, &target)
                .await
                .ok()
                .and_then(|check| check.placement)
                .filter(|p| p.current == 3)
        },
    )
    .await;
    eprintln!(
        "OBSERVED placement: {} back, reported \"{healed}\" after {} ms",
        cluster.name(follower),
        back.elapsed().as_millis()
    );
}

/// Outside a cluster the server leads its streams; the placement reported
/// when the stream is created is the one every later check finds, so the
/// operator's audit does not take a new stream for a moved one.
#[tokio::test]
async fn a_single_servers_stream_is_placed_on_it_from_the_start() {
    use hookwarden_receiver::publish::{StreamOutcome, Target, check_stream, manage_stream};
    let nats = hookwarden_tests::NatsServer::start()
        .await
        .expect("nats-server");
    let endpoint = hookwarden_crds::from_yaml(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {name: github, namespace: ci}\nspec: {provider: github}\n",
    )
    .expect("manifest");
    let target = Target::for_endpoint(&endpoint).expect("target");
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let managed = manage_stream(&js, &target).await.expect("stream created");
    assert_eq!(managed.outcome, StreamOutcome::Created);
    assert_eq!(
        managed.placement.to_string(),
        "1 replica, on hookwarden-test"
    );
    let found = check_stream(&js, &target)
        .await
        .expect("answered")
        .placement
        .expect("in sync");
    assert_eq!(found, managed.placement);
}
