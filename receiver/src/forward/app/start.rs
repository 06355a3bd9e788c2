//! Starting a forwarder: its flags, the checks before anything is read
//! from JetStream, and what its tasks share.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_nats::jetstream;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hookwarden_crds::{SecretKeyRef, SubscriptionManifest};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::forward::delivery::{Destination, DestinationSetupError};
use crate::forward::filter::{Filter, FilterError};
use crate::forward::metrics::ForwardMetrics;
use crate::forward::plan::{Plan, PlanError};
use crate::forward::signing::{SigningError, SigningKeys};
use crate::publish::CredentialsError;
use crate::readiness::Readiness;
use crate::secrets::{self, Secret, SecretError, SecretsLayout};
use crate::{config, nats_url};

/// The NATS server when neither `--nats-url` nor `spec.nats.url` says.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// How long in-flight deliveries may finish after shutdown was requested:
/// below Kubernetes' default 30 s grace period.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// How long JetStream may take to acknowledge a dead letter.
pub const DEAD_LETTER_TIMEOUT: Duration = Duration::from_secs(5);

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
    pub(super) shared: Arc<Shared>,
    pub(super) client: async_nats::Client,
    pub(super) readiness: Readiness,
    pub(super) ops_listener: tokio::net::TcpListener,
    pub(super) secrets: SecretFiles,
    pub(super) reload_interval: Duration,
    pub(super) drain_timeout: Duration,
}

/// What every delivery task shares.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) plan: Plan,
    pub(super) destination: ArcSwap<Destination>,
    pub(super) jetstream: jetstream::Context,
    pub(super) metrics: Arc<ForwardMetrics>,
    pub(super) filter: Option<Filter>,
    pub(super) limiter: Option<DefaultDirectRateLimiter>,
    pub(super) slots: Arc<Semaphore>,
}

/// The secret files the forwarder re-reads when they change.
#[derive(Debug, Clone)]
pub(super) struct SecretFiles {
    pub(super) dir: PathBuf,
    pub(super) signing: SecretKeyRef,
    pub(super) ca: Option<SecretKeyRef>,
}

impl SecretFiles {
    pub(super) fn of(
        subscription: &SubscriptionManifest,
        plan: &Plan,
        dir: &Path,
    ) -> Result<Self, StartError> {
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

    pub(super) fn fingerprint(&self) -> [u8; 32] {
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

    pub(super) fn keys(&self) -> Result<SigningKeys, StartError> {
        let secret = load_secret(&self.dir, &self.signing, "spec.signing.secretRef")?;
        Ok(SigningKeys::parse(&secret)?)
    }

    pub(super) fn ca(&self) -> Result<Option<Secret>, StartError> {
        self.ca
            .as_ref()
            .map(|r| load_secret(&self.dir, r, "spec.destination.caSecretRef"))
            .transpose()
    }
}

pub(super) fn load_secret(
    dir: &Path,
    reference: &SecretKeyRef,
    field: &'static str,
) -> Result<Secret, StartError> {
    secrets::load_one(&SecretsLayout::PerSecret(dir.to_owned()), reference)
        .map_err(|source| StartError::Secret { field, source })
}

/// Reads the subscription manifest at `path`.
pub fn load_subscription(path: &Path) -> Result<SubscriptionManifest, StartError> {
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
) -> Result<(SubscriptionManifest, Plan), StartError> {
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
    subscription: &SubscriptionManifest,
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
        if crate::forward::delivery::is_reserved(name) {
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
