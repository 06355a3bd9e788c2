//! Assembling a receiver from its manifest: the one way it is put together,
//! used by `hookwarden-receiver serve` and by every test that runs the
//! receiver in process.
//!
//! [`start`] checks everything before the port opens — flags, manifest,
//! secrets, the NATS connection, the stream, the body cap against NATS's
//! `max_payload` — so a receiver that listens can verify and store, and
//! providers never get errors a correctly configured replica would not give.
//! [`Receiver::serve`] then runs the public listener, the operations port,
//! the reload of the manifest and secrets, and the stream check, until
//! shutdown.

mod settings;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::ops;
use crate::pool::{self, serve::PoolState, watch::Pool, watch::PoolSources};
use crate::publish::EnsureStreamError;
use crate::ranges::fetch::RangeFetcher;
use crate::ranges::local::LocalRanges;
use crate::readiness::Readiness;
use crate::reload;
use crate::secrets::{self, SecretsLayout};
use crate::server::{self, AppState, PoolBounds, ServeOptions};
use crate::transport::{self, Stopped, Transport};

pub use self::settings::{
    DEFAULT_SOURCE_RANGES_REFRESH, STREAM_CHECK_INTERVAL, ServeArgs, Settings,
};

/// Why the receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The TLS flags or certificate.
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    /// The manifest, a secret, the stream or the body cap.
    #[error(transparent)]
    Load(#[from] reload::LoadError),
    /// The NATS URL is unusable, or NATS did not accept the connection
    /// (never showing the URL's credentials).
    #[error(transparent)]
    Nats(#[from] crate::nats_url::NatsConnectError),
    /// A pool's NATS `.creds` file (`--nats-credentials-secret-ref`)
    /// cannot be read from its directory.
    #[error("--nats-credentials-secret-ref: {0}")]
    PoolCredentials(crate::secrets::SecretError),
    /// The pool's directory cannot be read.
    #[error("cannot read the pool directory {}: {source}", dir.display())]
    PoolDir {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A port could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A receiver that passed every start-up check and holds its ports.
#[derive(Debug)]
pub struct Receiver {
    served: Served,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    transport: Transport,
    listener: tokio::net::TcpListener,
    ops_listener: tokio::net::TcpListener,
    ranges: Arc<LocalRanges>,
    settings: Settings,
}

/// What a receiver serves: one endpoint, or a pool of them.
#[derive(Debug)]
enum Served {
    Dedicated {
        state: AppState,
        sources: Box<reload::Sources>,
    },
    Pool {
        state: PoolState,
        pool: Box<Pool>,
    },
}

/// Checks the settings, the manifest and its secrets, connects to NATS,
/// makes sure the stream takes deliveries, and opens both ports.
pub async fn start(settings: Settings) -> Result<Receiver, StartError> {
    // First the flags and the manifest: mistakes there are the cheapest to
    // report, and are reported before NATS is contacted.
    let transport = Transport::new(&settings.mode, settings.limits.clone())?;
    let ranges = Arc::new(LocalRanges::new(
        settings
            .range_fetcher
            .clone()
            .unwrap_or_else(|| Arc::new(RangeFetcher::new())),
        settings.source_ranges_dir.clone(),
        settings.source_ranges_refresh,
    ));
    if let Some(dir) = settings.pool_dir.clone() {
        return start_pool(settings, dir, transport, ranges).await;
    }
    // Fetches the published lists the manifest names (or reads their saved
    // copies): a list that cannot be had stops the start here.
    let checked = reload::check_fetching(
        &settings.endpoint,
        &settings.secrets_dir,
        settings.key_fetcher.clone(),
        Some(&ranges),
    )
    .await?;
    let metrics =
        Arc::new(Metrics::new(Some(transport.stats())).with_source_lists(Arc::clone(&ranges) as _));

    // The URL's user and password (or token) are passed explicitly.
    let options = with_nats_events(checked.connect_options()?, Arc::clone(&metrics));
    let client = crate::nats_url::connect(&settings.nats_url, options).await?;
    // Refuses a body cap over the server's max_payload before listening.
    let (endpoint, pipeline) = checked
        .connect(
            client.clone(),
            settings.publish_timeout,
            settings.max_body_bytes,
            None,
        )
        .await?;
    reload::log_source_restriction(&endpoint, &pipeline);
    // Behind an ingress, only requests a trusted proxy received over HTTPS.
    let options = ServeOptions {
        require_forwarded_https: settings.mode.require_forwarded_https(),
        ..settings.serve.clone()
    };
    let state = AppState::new(pipeline, options, Arc::clone(&metrics));
    let readiness = Readiness::new(Some(client.clone()));
    readiness.set_config_loaded(true);

    let listener = bind(settings.listen).await?;
    let ops_listener = bind(settings.metrics_listen).await?;
    let sources = reload::Sources {
        endpoint: settings.endpoint.clone(),
        secrets_dir: settings.secrets_dir.clone(),
        nats: client,
        publish_timeout: settings.publish_timeout,
        default_body_limit: settings.max_body_bytes,
        key_fetcher: settings.key_fetcher.clone(),
        ranges: Some(Arc::clone(&ranges)),
    };
    Ok(Receiver {
        served: Served::Dedicated {
            state,
            sources: Box::new(sources),
        },
        metrics,
        readiness,
        transport,
        listener,
        ops_listener,
        ranges,
        settings,
    })
}

/// The pool's part of [`start`]: the directory must be readable and NATS
/// reachable; then every endpoint in it is loaded (one that does not load
/// is reported on `/endpoints` and not served, the others are) before the
/// ports open.
async fn start_pool(
    settings: Settings,
    dir: PathBuf,
    transport: Transport,
    ranges: Arc<LocalRanges>,
) -> Result<Receiver, StartError> {
    pool::watch::endpoint_names(&dir).map_err(|source| StartError::PoolDir {
        dir: dir.clone(),
        source,
    })?;
    let metrics =
        Arc::new(Metrics::new(Some(transport.stats())).with_source_lists(Arc::clone(&ranges) as _));
    // The pool's own credentials, read like a member's secret from the
    // directory; no member's `credentialsSecretRef` applies.
    let credentials = match &settings.nats_credentials {
        Some(reference) => Some((
            reference,
            secrets::load_one(&SecretsLayout::Pool(dir.clone()), reference)
                .map_err(StartError::PoolCredentials)?,
        )),
        None => None,
    };
    let options = crate::publish::connect_options(
        credentials
            .as_ref()
            .map(|(reference, secret)| (*reference, secret)),
    )
    .map_err(reload::LoadError::from)?
    .name("hookwarden-receiver pool");
    let client = crate::nats_url::connect(
        &settings.nats_url,
        with_nats_events(options, Arc::clone(&metrics)),
    )
    .await?;
    let options = ServeOptions {
        require_forwarded_https: settings.mode.require_forwarded_https(),
        ..settings.serve.clone()
    };
    let state = PoolState::new(PoolBounds::new(options, Arc::clone(&metrics)));
    let readiness = Readiness::new(Some(client.clone()));
    let sources = PoolSources {
        dir,
        nats: client,
        publish_timeout: settings.publish_timeout,
        default_body_limit: settings.max_body_bytes,
        key_fetcher: settings.key_fetcher.clone(),
        ranges: Some(Arc::clone(&ranges)),
    };
    let mut pool = Pool::new(
        sources,
        state.clone(),
        readiness.clone(),
        settings.reload_interval.max(Duration::from_millis(100)),
        settings
            .stream_check_interval
            .max(Duration::from_millis(100)),
    );
    pool.scan().await;
    let listener = bind(settings.listen).await?;
    let ops_listener = bind(settings.metrics_listen).await?;
    Ok(Receiver {
        served: Served::Pool {
            state,
            pool: Box::new(pool),
        },
        metrics,
        readiness,
        transport,
        listener,
        ops_listener,
        ranges,
        settings,
    })
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

impl Receiver {
    /// The public listener's address (the port, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.settings.listen)
    }

    /// The operations port's address.
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_listener
            .local_addr()
            .unwrap_or(self.settings.metrics_listen)
    }

    /// Whether the public listener terminates TLS.
    pub fn is_tls(&self) -> bool {
        self.transport.is_tls()
    }

    /// The transport's counters (handshakes, certificate reloads, idle
    /// connections closed).
    pub fn transport_stats(&self) -> Arc<transport::TransportStats> {
        self.transport.stats()
    }

    /// The request handlers' state (what is served now) of a dedicated
    /// receiver; `None` for a pool ([`Receiver::pool`]).
    pub fn state(&self) -> Option<&AppState> {
        match &self.served {
            Served::Dedicated { state, .. } => Some(state),
            Served::Pool { .. } => None,
        }
    }

    /// A pool's state (its route table and bounds); `None` for a
    /// dedicated receiver.
    pub fn pool(&self) -> Option<&PoolState> {
        match &self.served {
            Served::Dedicated { .. } => None,
            Served::Pool { state, .. } => Some(state),
        }
    }

    /// Serves until `shutdown` completes, then drains.
    pub async fn serve<F>(self, shutdown: F) -> Stopped
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Self {
            served,
            metrics,
            readiness,
            transport,
            listener,
            ops_listener,
            ranges,
            settings,
        } = self;
        let listen = listener.local_addr().unwrap_or(settings.listen);
        let metrics_listen = ops_listener.local_addr().unwrap_or(settings.metrics_listen);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let mut ops_router = ops::router(metrics, readiness.clone());
        let mut background = Vec::new();
        let reload_interval = settings.reload_interval.max(Duration::from_millis(100));
        let (router, tasks, peers) = match served {
            Served::Dedicated { state, sources } => {
                let target = state.target();
                tracing::info!(
                    endpoint = target.endpoint.as_str(),
                    listen = %listen,
                    metrics_listen = %metrics_listen,
                    path = state.path().as_str(),
                    stream = target.stream.as_str(),
                    subject_prefix = target.subject_prefix.as_str(),
                    tls_mode = settings.mode.label(),
                    require_forwarded_https = settings.mode.require_forwarded_https(),
                    "hookwarden-receiver serving"
                );
                // The published lists, fetched again now and then; a change
                // is picked up by the reload below like a changed file.
                let manifest = sources.endpoint.clone();
                background.push(tokio::spawn(refresh_ranges(
                    Arc::clone(&ranges),
                    move || vec![manifest.clone()],
                    stop_rx.clone(),
                )));
                background.push(tokio::spawn(reload::watch(
                    *sources,
                    state.clone(),
                    reload_interval,
                    readiness.clone(),
                    stop_rx.clone(),
                )));
                background.push(tokio::spawn(check_stream(
                    state.clone(),
                    readiness,
                    settings.stream_check_interval,
                )));
                let tasks = state.tasks().clone();
                let peers = server::peer_policy(&state);
                (server::router(state), tasks, peers)
            }
            Served::Pool { state, pool } => {
                tracing::info!(
                    listen = %listen,
                    metrics_listen = %metrics_listen,
                    tls_mode = settings.mode.label(),
                    require_forwarded_https = settings.mode.require_forwarded_https(),
                    max_in_flight_per_endpoint = state.bounds().in_flight_per_endpoint(),
                    "hookwarden-receiver serving a pool"
                );
                ops_router = ops_router.merge(pool::serve::endpoints_router(pool.board()));
                let dir = settings.pool_dir.clone().unwrap_or_default();
                background.push(tokio::spawn(refresh_ranges(
                    Arc::clone(&ranges),
                    move || {
                        pool::watch::endpoint_names(&dir)
                            .unwrap_or_default()
                            .iter()
                            .map(|name| dir.join(pool::layout::endpoint_file(name)))
                            .collect()
                    },
                    stop_rx.clone(),
                )));
                background.push(tokio::spawn(pool.watch(stop_rx.clone())));
                let tasks = state.bounds().tasks().clone();
                let peers = state.peer_policy();
                (pool::serve::router(state), tasks, peers)
            }
        };
        let ops_stop = stop_rx.clone();
        let ops = tokio::spawn(async move {
            let served = axum::serve(ops_listener, ops_router)
                .with_graceful_shutdown(stopped(ops_stop))
                .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "operations port failed");
            }
        });
        let stopped =
            server::serve_router(router, tasks, peers, listener, transport, stopped(stop_rx)).await;
        for task in background {
            task.abort();
        }
        ops.abort();
        stopped
    }
}

/// Fetches the lists of the manifest's `allowedSources` every refresh
/// interval, plus up to a tenth of it at random (receivers started together
/// do not fetch together), until `stop`.
async fn refresh_ranges(
    ranges: Arc<LocalRanges>,
    manifests: impl Fn() -> Vec<PathBuf>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let interval = ranges.refresh_interval();
    loop {
        let jitter_ms = u64::try_from(interval.as_millis() / 10).unwrap_or(u64::MAX);
        let jitter = Duration::from_millis(rand::random_range(0..=jitter_ms));
        tokio::select! {
            () = tokio::time::sleep(interval.saturating_add(jitter)) => {}
            _ = stop.changed() => return,
        }
        // The manifests as they are now: a reload may have changed the
        // lists, a pool its endpoints.
        for manifest in manifests() {
            let Ok(endpoint) = crate::config::load_endpoint(&manifest) else {
                continue;
            };
            if let Ok(sources) = crate::ranges::sources_of(&endpoint.spec) {
                ranges.refresh(&sources).await;
            }
        }
    }
}

/// Completes once shutdown was requested; never if the signal task is gone
/// without requesting it (that must not stop the server).
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// NATS trouble in the receiver's own words (the client library only logs
/// at INFO): a lost connection is a WARN (deliveries get 503 meanwhile), a
/// server error an ERROR; `hookwarden_nats_disconnected` follows.
fn with_nats_events(
    options: async_nats::ConnectOptions,
    metrics: Arc<Metrics>,
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
                    tracing::warn!(
                        "lost the NATS connection; deliveries are answered 503 until it is back"
                    );
                }
                async_nats::Event::ServerError(err) => {
                    tracing::error!(error = %err, "the NATS server reported an error");
                }
                async_nats::Event::LameDuckMode => {
                    tracing::warn!("the NATS server is shutting down (lame duck mode)");
                }
                async_nats::Event::SlowConsumer(_) => {
                    tracing::warn!("NATS reports this client as a slow consumer");
                }
                // Each failed reconnect attempt: the disconnect was already
                // a WARN, and `/readyz` says it meanwhile.
                async_nats::Event::ClientError(err) => {
                    tracing::debug!(error = %err, "NATS client error");
                }
                other => tracing::debug!(event = %other, "NATS event"),
            }
        }
    })
}

/// Looks an unmanaged stream (`createStream: false`) up every `interval`:
/// one deleted under a running receiver makes `/readyz` fail with the
/// reason, instead of every delivery getting 503 while the replica says it
/// is ready. A managed stream is not polled (thousands of replicas would
/// keep JetStream's API busy): the next publish that finds it gone creates
/// it again ([`crate::publish::Publisher::publish`]).
async fn check_stream(state: AppState, readiness: Readiness, interval: Duration) {
    let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let publisher = state.publisher();
        if publisher.target().settings.create {
            readiness.set_stream_problem(None);
            continue;
        }
        match publisher.check_stream().await {
            Ok(()) => readiness.set_stream_problem(None),
            Err(
                err @ (EnsureStreamError::NotFound { .. }
                | EnsureStreamError::Conflict(_)
                | EnsureStreamError::Rejected { .. }),
            ) => {
                tracing::error!(error = %err, "the JetStream stream cannot take deliveries");
                readiness.set_stream_problem(Some(err.to_string()));
            }
            // NATS itself is away: `/readyz` already says so.
            Err(err) => tracing::debug!(error = %err, "the stream check got no answer"),
        }
    }
}
