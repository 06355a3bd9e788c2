//! `hookwarden-receiver forward`: the forwarder process, assembled from a
//! `WebhookSubscription` manifest in one place, like [`crate::app`] is for
//! `serve`.
//!
//! [`start`] checks everything before anything is read from JetStream —
//! the manifest and its plan, the signing secret, the CA, the filter, the
//! NATS connection — and opens the operations port. [`Forwarder::run`]
//! then binds the durable consumer (creating it and the dead-letter stream
//! from the [`Plan`] when missing), reads it until shutdown, rebinding
//! after anything that ends the read (the consumer deleted, NATS
//! restarted), and re-reads the signing secret and CA when their files
//! change.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hookwarden_crds::{SecretKeyRef, WebhookSubscription};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::delivery::{Destination, DestinationSetupError};
use super::filter::{Filter, FilterError};
use super::metrics::{ForwardMetrics, Outcome};
use super::ordering::Gate;
use super::outcome::{self, Decision, Progress};
use super::plan::{Plan, PlanError};
use super::signing::{SigningError, SigningKeys};
use super::stored::{DeadLetterCause, StoredEvent};
use crate::ops::{self, Readiness};
use crate::publish::{CredentialsError, subject_covers};
use crate::secrets::{self, Secret, SecretError};
use crate::{config, nats_url};

/// The NATS server when neither `--nats-url` nor `spec.nats.url` says.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// How long in-flight deliveries may finish after shutdown was requested:
/// below Kubernetes' default 30 s grace period.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// How long JetStream may take to acknowledge a dead letter.
pub const DEAD_LETTER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest pause between two attempts to bind the consumer.
const MAX_REBIND_BACKOFF: Duration = Duration::from_secs(30);

/// Messages fetched per pull request, at most (and at most `maxInFlight`).
const MAX_BATCH: usize = 256;

/// The options of `forward` (flags, or the environment).
#[derive(Debug, Clone, clap::Args)]
pub struct ForwardArgs {
    /// The WebhookSubscription manifest (YAML).
    #[arg(long, env = "HOOKWARDEN_SUBSCRIPTION")]
    pub subscription: PathBuf,
    /// Directory laid out like mounted Secrets: `<dir>/<secret name>/<key>`.
    #[arg(long, env = "HOOKWARDEN_SECRETS_DIR")]
    pub secrets_dir: PathBuf,
    /// The WebhookEndpoint manifest `spec.source.endpoint` names, when the
    /// forwarder runs standalone (the operator resolves it instead).
    #[arg(long)]
    pub endpoint: Option<PathBuf>,
    /// The NATS server. Default: `spec.nats.url`, else
    /// nats://127.0.0.1:4222.
    #[arg(long, env = "HOOKWARDEN_NATS_URL")]
    pub nats_url: Option<String>,
    /// Address of the operations port: /healthz, /readyz, /metrics.
    #[arg(
        long,
        env = "HOOKWARDEN_METRICS_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub metrics_listen: SocketAddr,
    /// Seconds between checks of the signing secret and CA files for
    /// changes.
    #[arg(long, env = "HOOKWARDEN_RELOAD_INTERVAL_SECS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub reload_interval_secs: u64,
    /// Seconds deliveries in flight may take to finish after SIGTERM;
    /// unfinished ones are redelivered later (they were never
    /// acknowledged).
    #[arg(long, env = "HOOKWARDEN_DRAIN_TIMEOUT_SECS", default_value_t = DRAIN_TIMEOUT.as_secs())]
    pub drain_timeout_secs: u64,
}

/// Why the forwarder could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The subscription manifest could not be read.
    #[error("cannot read subscription manifest {}: {source}", path.display())]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The subscription manifest is not a valid `WebhookSubscription`.
    #[error("{}: {source}", path.display())]
    Manifest {
        /// The manifest's path.
        path: PathBuf,
        /// What is wrong.
        source: hookwarden_crds::ManifestError,
    },
    /// The endpoint manifest (`--endpoint`).
    #[error(transparent)]
    Endpoint(#[from] config::ConfigError),
    /// The subscription cannot be delivered as specified.
    #[error("{}: {source}", path.display())]
    Plan {
        /// The manifest's path.
        path: PathBuf,
        /// Why.
        source: PlanError,
    },
    /// No signing secret named.
    #[error(
        "spec.signing.secretRef is required to run the forwarder standalone (the operator sets it)"
    )]
    NoSigningSecret,
    /// A secret file could not be read.
    #[error("{field}: {source}")]
    Secret {
        /// Which reference.
        field: &'static str,
        /// Why.
        source: SecretError,
    },
    /// The signing secret cannot sign.
    #[error("spec.signing.secretRef: {0}")]
    Signing(#[from] SigningError),
    /// The destination's client cannot be built.
    #[error(transparent)]
    Destination(#[from] DestinationSetupError),
    /// The CEL filter does not compile.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The NATS credentials are not a `.creds` file.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// NATS could not be reached (never showing the URL's credentials).
    #[error(transparent)]
    Nats(#[from] nats_url::NatsConnectError),
    /// The operations port could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A forwarder that passed every start-up check.
#[derive(Debug)]
pub struct Forwarder {
    shared: Arc<Shared>,
    client: async_nats::Client,
    readiness: Readiness,
    ops_listener: tokio::net::TcpListener,
    secrets: SecretFiles,
    reload_interval: Duration,
    drain_timeout: Duration,
}

/// What every delivery task shares.
#[derive(Debug)]
struct Shared {
    plan: Plan,
    destination: ArcSwap<Destination>,
    jetstream: jetstream::Context,
    metrics: Arc<ForwardMetrics>,
    filter: Option<Filter>,
    limiter: Option<DefaultDirectRateLimiter>,
    slots: Arc<Semaphore>,
}

/// The secret files the forwarder re-reads when they change.
#[derive(Debug, Clone)]
struct SecretFiles {
    dir: PathBuf,
    signing: SecretKeyRef,
    ca: Option<SecretKeyRef>,
}

impl SecretFiles {
    fn of(subscription: &WebhookSubscription, plan: &Plan, dir: &Path) -> Result<Self, StartError> {
        Ok(Self {
            dir: dir.to_owned(),
            signing: subscription
                .spec
                .signing
                .as_ref()
                .and_then(|s| s.secret_ref.clone())
                .ok_or(StartError::NoSigningSecret)?,
            ca: plan.destination.ca.clone(),
        })
    }

    fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for reference in std::iter::once(&self.signing).chain(&self.ca) {
            let path = self.dir.join(&reference.name).join(&reference.key);
            match std::fs::read(path) {
                Ok(bytes) => {
                    hash.update([1]);
                    hash.update((bytes.len() as u64).to_be_bytes());
                    hash.update(bytes);
                }
                Err(_) => hash.update([0]),
            }
        }
        hash.finalize().into()
    }

    fn keys(&self) -> Result<SigningKeys, StartError> {
        let secret = load_secret(&self.dir, &self.signing, "spec.signing.secretRef")?;
        Ok(SigningKeys::parse(&secret)?)
    }

    fn ca(&self) -> Result<Option<Secret>, StartError> {
        self.ca
            .as_ref()
            .map(|r| load_secret(&self.dir, r, "spec.destination.caSecretRef"))
            .transpose()
    }
}

fn load_secret(
    dir: &Path,
    reference: &SecretKeyRef,
    field: &'static str,
) -> Result<Secret, StartError> {
    secrets::load(dir, std::slice::from_ref(reference))
        .map_err(|source| StartError::Secret { field, source })?
        .into_iter()
        .next()
        .ok_or(StartError::Secret {
            field,
            source: SecretError::InvalidRef {
                name: reference.name.clone(),
                key: reference.key.clone(),
            },
        })
}

/// Reads the subscription manifest at `path`.
pub fn load_subscription(path: &Path) -> Result<WebhookSubscription, StartError> {
    let text = std::fs::read_to_string(path).map_err(|source| StartError::Read {
        path: path.to_owned(),
        source,
    })?;
    hookwarden_crds::subscription_from_yaml(&text).map_err(|source| StartError::Manifest {
        path: path.to_owned(),
        source,
    })
}

/// Reads the subscription manifest at `subscription` and resolves its
/// [`Plan`], with the `WebhookEndpoint` manifest at `endpoint` for a
/// `source.endpoint`: what `forward` starts from, and `hookwarden replay`
/// and `hookwarden dlq` too.
pub fn load_plan(
    subscription: &Path,
    endpoint: Option<&Path>,
) -> Result<(WebhookSubscription, Plan), StartError> {
    let manifest = load_subscription(subscription)?;
    let endpoint = endpoint.map(config::load_endpoint).transpose()?;
    let plan = Plan::resolve(&manifest, endpoint.as_ref()).map_err(|source| StartError::Plan {
        path: subscription.to_owned(),
        source,
    })?;
    Ok((manifest, plan))
}

/// The subscription's [`Destination`]: its signing keys and CA read from
/// `secrets_dir` (`<dir>/<secret name>/<key>`), delivering to the plan's
/// URL, or to `to` instead (`hookwarden replay --to`: still signed with the
/// subscription's secret, but verified with the system's roots, since the
/// subscription's CA vouches for its own destination only). The one way a
/// forwarder and a replay get theirs.
pub fn destination(
    subscription: &WebhookSubscription,
    plan: &Plan,
    secrets_dir: &Path,
    to: Option<&str>,
) -> Result<Destination, StartError> {
    let files = SecretFiles::of(subscription, plan, secrets_dir)?;
    let keys = Arc::new(files.keys()?);
    let (url, ca) = match to {
        Some(url) => (url, None),
        None => (plan.destination.url.as_str(), files.ca()?),
    };
    Ok(Destination::new(
        url,
        plan.destination.timeout,
        keys,
        ca.as_ref(),
    )?)
}

/// Checks the manifest, its plan and secrets, connects to NATS and opens
/// the operations port.
pub async fn start(args: ForwardArgs) -> Result<Forwarder, StartError> {
    let (subscription, plan) = load_plan(&args.subscription, args.endpoint.as_deref())?;
    let spec = &subscription.spec;
    let files = SecretFiles::of(&subscription, &plan, &args.secrets_dir)?;
    let destination = destination(&subscription, &plan, &args.secrets_dir, None)?;
    let filter = plan.filter.as_deref().map(Filter::compile).transpose()?;
    for name in &plan.pass_headers {
        if super::delivery::is_reserved(name) {
            tracing::warn!(
                header = name.as_str(),
                "spec.passHeaders names a header the forwarder sets itself; it is not passed"
            );
        }
    }

    let metrics = Arc::new(ForwardMetrics::new(&plan.subscription));
    let credentials_ref = spec
        .nats
        .as_ref()
        .and_then(|n| n.credentials_secret_ref.clone());
    let credentials = credentials_ref
        .as_ref()
        .map(|r| load_secret(&args.secrets_dir, r, "spec.nats.credentialsSecretRef"))
        .transpose()?;
    let options =
        crate::publish::connect_options(credentials_ref.as_ref().zip(credentials.as_ref()))?;
    let options = with_nats_events(options, Arc::clone(&metrics));
    let url = args
        .nats_url
        .clone()
        .or_else(|| spec.nats.as_ref().and_then(|n| n.url.clone()))
        .unwrap_or_else(|| DEFAULT_NATS_URL.to_owned());
    let client = nats_url::connect(&url, options).await?;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(DEAD_LETTER_TIMEOUT);

    let ops_listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: args.metrics_listen,
            source,
        })?;
    let limiter = plan
        .max_per_second
        .and_then(std::num::NonZeroU32::new)
        .map(|rate| RateLimiter::direct(Quota::per_second(rate)));
    let slots = Arc::new(Semaphore::new(plan.max_in_flight as usize));
    Ok(Forwarder {
        shared: Arc::new(Shared {
            plan,
            destination: ArcSwap::from_pointee(destination),
            jetstream: js,
            metrics,
            filter,
            limiter,
            slots,
        }),
        readiness: Readiness::new(Some(client.clone())),
        client,
        ops_listener,
        secrets: files,
        reload_interval: Duration::from_secs(args.reload_interval_secs.max(1)),
        drain_timeout: Duration::from_secs(args.drain_timeout_secs),
    })
}

impl Forwarder {
    /// The operations port's address.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_listener.local_addr().ok()
    }

    /// The resolved subscription.
    pub fn plan(&self) -> &Plan {
        &self.shared.plan
    }

    /// Forwards until `shutdown` completes, then lets deliveries in flight
    /// finish (up to the drain timeout).
    pub async fn run<F>(self, shutdown: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Self {
            shared,
            client,
            readiness,
            ops_listener,
            secrets,
            reload_interval,
            drain_timeout,
        } = self;
        let plan = &shared.plan;
        tracing::info!(
            subscription = plan.subscription.as_str(),
            stream = plan.stream.as_str(),
            consumer = plan.durable.as_str(),
            destination = crate::redact::redact_url(&plan.destination.url).as_str(),
            dead_letter_stream = plan.dead_letter.stream.as_str(),
            dead_letter_subject = plan.dead_letter.subject.as_str(),
            ordered_per_subject = plan.ordered_per_subject,
            "hookwarden forwarder starting"
        );
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutdown requested; finishing deliveries in flight");
            let _ = stop_tx.send(true);
        });
        let ops_stop = stop_rx.clone();
        let metrics: Arc<dyn ops::Exposition> = shared.metrics.clone();
        let ops_readiness = readiness.clone();
        let ops = tokio::spawn(async move {
            let served = axum::serve(ops_listener, ops::router(metrics, ops_readiness))
                .with_graceful_shutdown(stopped(ops_stop))
                .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "operations port failed");
            }
        });
        let reloading = tokio::spawn(reload_secrets(
            Arc::clone(&shared),
            secrets,
            reload_interval,
        ));

        let mut tasks = JoinSet::new();
        let mut gate = Gate::default();
        let mut backoff = Duration::from_millis(500);
        let mut stop = stop_rx.clone();
        loop {
            if *stop.borrow() {
                break;
            }
            match bind(&shared).await {
                Ok(consumer) => {
                    readiness.set_consumer_problem(None);
                    readiness.set_config_loaded(true);
                    backoff = Duration::from_millis(500);
                    let end = consume(&shared, consumer, &mut tasks, &mut gate, &mut stop).await;
                    match end {
                        Ended::Stop => break,
                        Ended::Rebind(reason) => {
                            tracing::warn!(
                                reason = reason.as_str(),
                                "reading the consumer stopped; binding it again"
                            );
                            readiness.set_consumer_problem(Some(reason));
                        }
                    }
                }
                Err(reason) => {
                    tracing::error!(
                        reason = reason.as_str(),
                        "cannot bind the subscription's consumer"
                    );
                    readiness.set_consumer_problem(Some(reason));
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stopped(stop.clone()) => break,
            }
            backoff = (backoff * 2).min(MAX_REBIND_BACKOFF);
        }

        readiness.set_config_loaded(false);
        // Events waiting behind another of their subject go back at once,
        // for another forwarder; in-flight ones get the drain timeout.
        for message in gate.drain_waiting() {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
        let drained = tokio::time::timeout(drain_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                unfinished = tasks.len(),
                "deliveries still in flight at the drain timeout; they were not acknowledged and will be redelivered"
            );
            tasks.abort_all();
        }
        reloading.abort();
        ops.abort();
        let _ = client.flush().await;
        tracing::info!("hookwarden forwarder stopped");
    }
}

/// Why reading a consumer ended.
enum Ended {
    Stop,
    Rebind(String),
}

/// What a delivery task reports when it ends.
struct Finished {
    subject: String,
    sequence: u64,
    /// Sent back for a retry: awaited back until then (ordered mode).
    retrying_until: Option<Instant>,
}

/// Creates the dead-letter stream (or adds this subscription's subject to
/// a shared one) and the durable consumer when missing; existing ones are
/// used as they are.
async fn bind(shared: &Shared) -> Result<jetstream::consumer::PullConsumer, String> {
    let plan = &shared.plan;
    let js = &shared.jetstream;
    ensure_dead_letter_stream(shared).await?;
    let stream = js.get_stream(&plan.stream).await.map_err(|e| {
        format!(
            "the source stream {} (created by the endpoint's receiver): {e}",
            plan.stream
        )
    })?;
    stream
        .get_or_create_consumer(&plan.durable, plan.consumer_config())
        .await
        .map_err(|e| format!("the consumer {}: {e}", plan.durable))
}

/// Creates the dead-letter stream from the plan when missing, or adds this
/// subscription's subject to a shared one that lacks it; an existing one is
/// used as it is.
async fn ensure_dead_letter_stream(shared: &Shared) -> Result<(), String> {
    let plan = &shared.plan;
    let js = &shared.jetstream;
    let dead_letters = js
        .get_or_create_stream(plan.dead_letter_stream_config())
        .await
        .map_err(|e| format!("the dead-letter stream {}: {e}", plan.dead_letter.stream))?;
    let config = &dead_letters.cached_info().config;
    if !config
        .subjects
        .iter()
        .any(|filter| subject_covers(filter, &plan.dead_letter.subject))
    {
        let mut config = config.clone();
        config.subjects.push(plan.dead_letter.subject.clone());
        js.update_stream(config).await.map_err(|e| {
            format!(
                "cannot add {} to the dead-letter stream {}: {e}",
                plan.dead_letter.subject, plan.dead_letter.stream
            )
        })?;
    }
    Ok(())
}

/// Reads `consumer` until shutdown or until the read ends.
async fn consume(
    shared: &Arc<Shared>,
    consumer: jetstream::consumer::PullConsumer,
    tasks: &mut JoinSet<Finished>,
    gate: &mut Gate<jetstream::Message>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let plan = &shared.plan;
    let batch = (plan.max_in_flight as usize).clamp(1, MAX_BATCH);
    let mut messages = match consumer
        .stream()
        .max_messages_per_batch(batch)
        .messages()
        .await
    {
        Ok(messages) => messages,
        Err(err) => return Ended::Rebind(format!("cannot read the consumer: {err}")),
    };
    tracing::info!(consumer = plan.durable.as_str(), "reading the consumer");
    // Waiting (ordered) messages get a progress acknowledgement well within
    // their ack wait.
    let mut tick = tokio::time::interval((plan.ack_wait() / 3).max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Unordered, a slot is taken before a message is pulled, so no more
        // are held than can be delivered. Ordered, messages may wait in the
        // gate without a slot (the consumer's max_ack_pending bounds them)
        // and each delivery takes its own: a pull holding the last slot
        // would otherwise starve the next message of a lane.
        let ordered = plan.ordered_per_subject;
        let slots = Arc::clone(&shared.slots);
        let next = async {
            let slot = if ordered {
                None
            } else {
                slots.acquire_owned().await.ok()
            };
            (slot, messages.next().await)
        };
        tokio::select! {
            biased;
            () = stopped(stop.clone()) => return Ended::Stop,
            Some(joined) = tasks.join_next() => {
                if let Ok(finished) = joined
                    && ordered
                    && let Some((_, message)) = gate.finish(
                        &finished.subject,
                        finished.sequence,
                        finished.retrying_until,
                    )
                {
                    tasks.spawn(process(Arc::clone(shared), message, None));
                }
            }
            _ = tick.tick() => {
                if plan.ordered_per_subject {
                    for (_, message) in gate.expire(Instant::now()) {
                        tasks.spawn(process(Arc::clone(shared), message, None));
                    }
                    for message in gate.waiting() {
                        let _ = message.ack_with(AckKind::Progress).await;
                    }
                    shared.metrics.ordered_waiting.set(i64::try_from(gate.waiting_len()).unwrap_or(i64::MAX));
                }
            }
            (slot, next) = next => {
                match next {
                    None => return Ended::Rebind("the consumer's message stream ended".to_owned()),
                    Some(Err(err)) => {
                        use jetstream::consumer::pull::MessagesErrorKind as Kind;
                        match err.kind() {
                            Kind::MissingHeartbeat | Kind::Pull | Kind::Other => {
                                tracing::warn!(error = %err, "reading the consumer");
                            }
                            _ => return Ended::Rebind(err.to_string()),
                        }
                    }
                    Some(Ok(message)) => {
                        if plan.ordered_per_subject {
                            let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                            let subject = message.subject.to_string();
                            if let Some(message) = gate.offer(&subject, sequence, message) {
                                tasks.spawn(process(Arc::clone(shared), message, None));
                            }
                        } else {
                            tasks.spawn(process(Arc::clone(shared), message, slot));
                        }
                    }
                }
            }
        }
    }
}

/// One event, start to end: filter, attempt, decide, acknowledge (or send
/// back, or dead-letter then acknowledge).
async fn process(
    shared: Arc<Shared>,
    message: jetstream::Message,
    slot: Option<OwnedSemaphorePermit>,
) -> Finished {
    let _slot = match slot {
        Some(slot) => Some(slot),
        None => Arc::clone(&shared.slots).acquire_owned().await.ok(),
    };
    let plan = &shared.plan;
    let event = match message.info() {
        Ok(info) => {
            shared.metrics.set_pending(info.pending);
            let published = info.published.unix_timestamp_nanos();
            let now = jiff::Timestamp::now().as_nanosecond();
            let age =
                Duration::from_nanos(u64::try_from(now.saturating_sub(published)).unwrap_or(0));
            StoredEvent::new(
                info.stream,
                info.stream_sequence,
                info.delivered,
                age,
                message.subject.as_str(),
                message.headers.clone(),
                message.payload.clone(),
            )
        }
        Err(err) => {
            // Not a JetStream message: nothing to acknowledge it with.
            tracing::error!(error = %err, "a message without JetStream metadata was skipped");
            return Finished {
                subject: message.subject.to_string(),
                sequence: 0,
                retrying_until: None,
            };
        }
    };
    let finished = |retrying_until| Finished {
        subject: event.subject.clone(),
        sequence: event.sequence,
        retrying_until,
    };

    if let Some(filter) = &shared.filter {
        match filter.matches(&event.filter_headers(), &event.body) {
            Ok(true) => {}
            outcome => {
                if let Err(error) = outcome {
                    shared.metrics.record_filter_error();
                    tracing::warn!(
                        subscription = plan.subscription.as_str(),
                        id = event.id.as_str(),
                        error = error.as_str(),
                        "the filter could not be evaluated for this event; it counts as not matching"
                    );
                }
                let _ = message.ack().await;
                shared.metrics.record(Outcome::Filtered);
                audit(plan, &event, None, "filtered", Duration::ZERO, None);
                return finished(None);
            }
        }
    }

    let progress = Progress {
        attempt: event.attempt,
        age: event.age,
    };
    if let Some(reason) = outcome::before_attempt(&plan.retry, progress) {
        let cause = DeadLetterCause {
            reason: reason.as_str(),
            status: None,
            error: Some(match reason {
                outcome::DeadReason::TooOld => format!(
                    "older than retry.maxAgeSeconds ({} s) when redelivered",
                    plan.retry.max_age.as_secs()
                ),
                _ => format!(
                    "delivered {} times, more than retry.maxAttempts ({})",
                    event.attempt, plan.retry.max_attempts
                ),
            }),
        };
        let retry = dead_letter(&shared, &message, &event, &cause, Duration::ZERO).await;
        return finished(retry);
    }

    if let Some(limiter) = &shared.limiter
        && limiter.check().is_err()
    {
        shared.metrics.record_rate_limited();
        limiter.until_ready().await;
    }
    let destination = shared.destination.load_full();
    // The attempt continues the trace stored with the event (the
    // receiver's publish span), and the destination gets its context.
    let span = crate::trace_span!(
        "hookwarden.delivery",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        hookwarden.subscription = plan.subscription.as_str(),
        messaging.destination.name = event.stream.as_str(),
        hookwarden.stream_sequence = event.sequence,
        hookwarden.attempt = event.attempt,
        http.response.status_code = tracing::field::Empty,
        hookwarden.outcome = tracing::field::Empty,
    );
    let mut outgoing = event.outgoing(plan);
    if let Some(stored) = &outgoing.trace {
        crate::telemetry::continue_stored(&span, stored);
    }
    if let Some(attempt) = crate::telemetry::trace_headers(&span) {
        outgoing.trace = Some(attempt);
    }
    shared.metrics.in_flight.inc();
    let report = destination
        .deliver(&outgoing)
        .instrument(span.clone())
        .await;
    shared.metrics.in_flight.dec();
    if let Some(status) = report.status() {
        span.record("http.response.status_code", status);
    }
    shared.metrics.observe_attempt(report.elapsed.as_secs_f64());
    let jitter = 0.5 + rand::random::<f64>() / 2.0;
    match outcome::decide(&plan.retry, &report.attempted, progress, jitter) {
        Decision::Ack => {
            span.record("hookwarden.outcome", "delivered");
            let _ = message.ack().await;
            shared.metrics.record(Outcome::Delivered);
            audit(
                plan,
                &event,
                report.status(),
                "delivered",
                report.elapsed,
                None,
            );
            finished(None)
        }
        Decision::Retry(delay) => {
            span.record("hookwarden.outcome", "retried");
            span.record("otel.status_code", "ERROR");
            let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            shared.metrics.record(Outcome::Retried);
            audit(
                plan,
                &event,
                report.status(),
                "retried",
                report.elapsed,
                report.error.as_deref(),
            );
            finished(Some(Instant::now() + delay + plan.ack_wait()))
        }
        Decision::DeadLetter(reason) => {
            span.record("hookwarden.outcome", "failed");
            span.record("otel.status_code", "ERROR");
            // The attempt's one audit line is the dead letter's (or its
            // failure's): it carries the status, duration and error.
            let cause = DeadLetterCause {
                reason: reason.as_str(),
                status: report.status(),
                error: report.error.clone(),
            };
            let retry = dead_letter(&shared, &message, &event, &cause, report.elapsed).await;
            finished(retry)
        }
    }
}

/// Stores the event in the dead-letter stream and, once JetStream
/// acknowledged that, acknowledges the original. A first publish that fails
/// (the dead-letter stream deleted while the forwarder runs) is tried once
/// more after creating the stream again from the plan. When that fails too
/// the original is sent back with a delay (nothing is lost; the next
/// delivery tries the dead letter again): the instant it is awaited back
/// until is returned. Writes the attempt's one audit line (`elapsed` is the
/// attempt's duration; zero when none was made).
async fn dead_letter(
    shared: &Shared,
    message: &jetstream::Message,
    event: &StoredEvent,
    cause: &DeadLetterCause,
    elapsed: Duration,
) -> Option<Instant> {
    let plan = &shared.plan;
    let headers = event.dead_letter_headers(&plan.subscription, cause, jiff::Timestamp::now());
    let publish = || async {
        let publish = async {
            shared
                .jetstream
                .publish_with_headers(
                    plan.dead_letter.subject.clone(),
                    headers.clone(),
                    event.body.clone(),
                )
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(DEAD_LETTER_TIMEOUT, publish).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err((err, false)),
            Err(_) => Err((
                format!(
                    "no acknowledgement within {} s",
                    DEAD_LETTER_TIMEOUT.as_secs()
                ),
                true,
            )),
        }
    };
    let mut stored = publish().await;
    // A refused publish (no stream takes the subject) is worth creating the
    // stream for; a timed-out one (NATS away) is not: trying again would
    // only hold the event past its ack wait.
    if let Err((_, false)) = stored {
        match ensure_dead_letter_stream(shared).await {
            Ok(()) => stored = publish().await,
            Err(why) => tracing::warn!(
                error = why.as_str(),
                "the dead-letter stream could not be created again"
            ),
        }
    }
    match stored {
        Ok(()) => {
            let _ = message.ack().await;
            shared.metrics.record(Outcome::DeadLettered);
            audit(
                plan,
                event,
                cause.status,
                "dead_lettered",
                elapsed,
                cause.error.as_deref(),
            );
            None
        }
        Err((error, _)) => {
            let jitter = 0.5 + rand::random::<f64>() / 2.0;
            let delay = plan.retry.delay(event.attempt, jitter);
            let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            shared.metrics.record(Outcome::DeadLetterFailed);
            audit(
                plan,
                event,
                cause.status,
                "dead_letter_failed",
                elapsed,
                cause.error.as_deref(),
            );
            tracing::error!(
                subscription = plan.subscription.as_str(),
                id = event.id.as_str(),
                dead_letter_stream = plan.dead_letter.stream.as_str(),
                dead_letter_subject = plan.dead_letter.subject.as_str(),
                error = error.as_str(),
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "the dead letter could not be stored; the event stays pending and is tried again"
            );
            Some(Instant::now() + delay + plan.ack_wait())
        }
    }
}

/// One audit line per attempt (`delivered`, `retried`, `dead_lettered`,
/// `dead_letter_failed`) and per event that ends without one (`filtered`,
/// or `dead_lettered` before an attempt): never the body, a header value or
/// a secret.
fn audit(
    plan: &Plan,
    event: &StoredEvent,
    status: Option<u16>,
    outcome: &str,
    elapsed: Duration,
    error: Option<&str>,
) {
    tracing::info!(
        target: "hookwarden::audit",
        subscription = plan.subscription.as_str(),
        id = event.id.as_str(),
        subject = event.subject.as_str(),
        sequence = event.sequence,
        attempt = event.attempt,
        status = status.map(u64::from),
        outcome,
        duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        error,
        "forward attempt"
    );
}

/// Re-reads the signing secret and the CA when their files change; a
/// broken new file is logged and the previous keys keep signing.
async fn reload_secrets(shared: Arc<Shared>, files: SecretFiles, interval: Duration) {
    let mut last = files.fingerprint();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = files.fingerprint();
        if now == last {
            continue;
        }
        last = now;
        let reloaded = (|| {
            let keys = Arc::new(files.keys()?);
            let destination = match &files.ca {
                None => shared.destination.load().with_keys(keys),
                Some(_) => Destination::new(
                    &shared.plan.destination.url,
                    shared.plan.destination.timeout,
                    keys,
                    files.ca()?.as_ref(),
                )?,
            };
            Ok::<_, StartError>(destination)
        })();
        match reloaded {
            Ok(destination) => {
                shared.destination.store(Arc::new(destination));
                tracing::info!("signing secret and CA reloaded");
            }
            Err(err) => tracing::error!(
                error = %err,
                "the changed signing secret or CA cannot be used; the previous ones stay in use"
            ),
        }
    }
}

/// Completes once shutdown was requested; never if the signal task is gone
/// without requesting it.
async fn stopped(mut stop: watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// NATS connection events in the forwarder's words, and
/// `hookwarden_forward_nats_disconnected`.
fn with_nats_events(
    options: async_nats::ConnectOptions,
    metrics: Arc<ForwardMetrics>,
) -> async_nats::ConnectOptions {
    options.event_callback(move |event| {
        let metrics = Arc::clone(&metrics);
        async move {
            match event {
                async_nats::Event::Connected => {
                    metrics.nats_disconnected.set(0);
                    tracing::info!("connected to NATS");
                }
                async_nats::Event::Disconnected => {
                    metrics.nats_disconnected.set(1);
                    tracing::warn!("lost the NATS connection; deliveries pause until it is back");
                }
                async_nats::Event::ServerError(err) => {
                    tracing::error!(error = %err, "the NATS server reported an error");
                }
                other => tracing::debug!(event = %other, "NATS event"),
            }
        }
    })
}
