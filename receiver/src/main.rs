//! `hookwarden-receiver`: the data-plane process of Hookwarden.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hookwarden_crds::WebhookEndpoint;
use hookwarden_receiver::ops::{self, Metrics, Readiness};
use hookwarden_receiver::server::{self, AppState};
use hookwarden_receiver::transport::{self, Limits, Mode, Stopped, TlsMode, Transport};
use hookwarden_receiver::{config, reload};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Hookwarden receiver: verifies webhook deliveries and stores them in NATS JetStream"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a WebhookEndpoint manifest and print what it configures.
    Check {
        /// The WebhookEndpoint manifest (YAML), the same file `kubectl apply` takes.
        #[arg(long, env = "HOOKWARDEN_ENDPOINT")]
        endpoint: PathBuf,
    },
    /// Receive deliveries for one endpoint over HTTPS (or, explicitly, plain
    /// HTTP behind an ingress or for local development).
    Serve(ServeArgs),
}

/// The options of `serve` (flags, or the environment).
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The WebhookEndpoint manifest (YAML).
    #[arg(long, env = "HOOKWARDEN_ENDPOINT")]
    endpoint: PathBuf,
    /// Directory laid out like mounted Secrets: `<dir>/<secret name>/<key>`.
    #[arg(long, env = "HOOKWARDEN_SECRETS_DIR")]
    secrets_dir: PathBuf,
    /// The NATS server to store deliveries in.
    #[arg(
        long,
        env = "HOOKWARDEN_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// Address to listen on.
    #[arg(long, env = "HOOKWARDEN_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Seconds to wait for JetStream to acknowledge a delivery before
    /// answering 503.
    #[arg(long, env = "HOOKWARDEN_PUBLISH_TIMEOUT_SECS", default_value_t = 3)]
    publish_timeout_secs: u64,
    /// Largest accepted body in bytes; larger deliveries get 413. The
    /// process default: a manifest's `spec.request.maxBodyBytes` wins.
    #[arg(long, env = "HOOKWARDEN_MAX_BODY_BYTES", default_value_t = server::DEFAULT_BODY_LIMIT)]
    max_body_bytes: usize,
    /// `terminate`: serve HTTPS with --tls-cert/--tls-key (re-read when
    /// the files change). `behind-ingress`: plain HTTP behind a proxy that
    /// terminates TLS. `insecure-http`: plain HTTP for local development
    /// only.
    #[arg(
        long,
        env = "HOOKWARDEN_TLS_MODE",
        value_enum,
        default_value = "terminate"
    )]
    tls_mode: TlsMode,
    /// PEM certificate chain (leaf first) for --tls-mode terminate.
    #[arg(long, env = "HOOKWARDEN_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate for --tls-mode terminate.
    #[arg(long, env = "HOOKWARDEN_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Address of the operations port: /healthz, /readyz, /metrics. Kept
    /// apart from the public listener (in a pod: 0.0.0.0:9090).
    #[arg(
        long,
        env = "HOOKWARDEN_METRICS_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    metrics_listen: SocketAddr,
    /// Deliveries read, verified or stored at once; more get 503
    /// `overloaded` (bounds memory: each body is up to --max-body-bytes).
    #[arg(long, env = "HOOKWARDEN_MAX_IN_FLIGHT", default_value_t = server::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Seconds between checks of the manifest and secret files for
    /// changes (applied without dropping connections).
    #[arg(long, env = "HOOKWARDEN_RELOAD_INTERVAL_SECS", default_value_t = 2)]
    reload_interval_secs: u64,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { endpoint } => check(&endpoint),
        Command::Serve(args) => {
            hookwarden_receiver::logging::init();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!("hookwarden-receiver: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = %err, "hookwarden-receiver stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check(path: &Path) -> ExitCode {
    match config::load_endpoint(path) {
        Ok(endpoint) => {
            println!("{}", describe(&endpoint));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("hookwarden-receiver: {err}");
            ExitCode::FAILURE
        }
    }
}

fn describe(endpoint: &WebhookEndpoint) -> String {
    let name = endpoint.metadata.name.as_deref().unwrap_or("<unnamed>");
    format!(
        "{name}: provider {:?}, {} secret(s), {}",
        endpoint.spec.provider,
        endpoint.spec.secret_refs.len(),
        if endpoint.spec.allowed_source_cidrs.is_empty() {
            "no IP restriction".to_owned()
        } else {
            format!(
                "{} allowed source network(s)",
                endpoint.spec.allowed_source_cidrs.len()
            )
        }
    )
}

/// Why `serve` could not start or stopped.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    #[error(transparent)]
    Load(#[from] reload::LoadError),
    #[error(transparent)]
    Nats(#[from] hookwarden_receiver::nats_url::NatsConnectError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Everything is checked before the port opens: a receiver that listens
/// must be able to verify and store, or providers would get errors for
/// deliveries that a correctly configured replica would accept.
async fn serve(options: ServeArgs) -> Result<(), ServeError> {
    let publish_timeout = Duration::from_secs(options.publish_timeout_secs);
    // First the flags and the manifest: mistakes there are the cheapest to
    // report, and are reported before NATS is contacted.
    let mode = Mode::from_flags(options.tls_mode, options.tls_cert, options.tls_key)?;
    let transport = Transport::new(&mode, Limits::default())?;
    let checked = reload::check(&options.endpoint, &options.secrets_dir)?;

    // The URL's user and password (or token) are passed explicitly.
    let client =
        hookwarden_receiver::nats_url::connect(&options.nats_url, checked.connect_options()?)
            .await?;
    // Refuses a body cap over the server's max_payload before listening.
    let (endpoint, pipeline) = checked
        .connect(client.clone(), publish_timeout, options.max_body_bytes)
        .await?;
    let target = pipeline.publisher.target().clone();
    reload::log_source_restriction(&endpoint, &pipeline);

    let metrics = Arc::new(Metrics::new(Some(transport.stats())));
    let readiness = Readiness::new(Some(client.clone()));
    // Behind an ingress, only requests a trusted proxy received over HTTPS.
    let require_forwarded_https = mode.require_forwarded_https();
    let state = AppState::new(pipeline.verifier, pipeline.publisher)
        .with_request_rules(pipeline.request)
        .with_payload_logging(pipeline.payload)
        .with_trusted_proxies(pipeline.proxies)
        .with_allowed_sources(pipeline.allowed)
        .with_metrics(Arc::clone(&metrics))
        .with_max_in_flight(options.max_in_flight)
        .require_forwarded_https(require_forwarded_https);
    let state = match pipeline.limits {
        Some(limits) => state.with_rate_limits(limits),
        None => state,
    };
    readiness.set_config_loaded(true);

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: options.listen,
            source,
        })?;
    let ops_listener = tokio::net::TcpListener::bind(options.metrics_listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: options.metrics_listen,
            source,
        })?;
    tracing::info!(
        endpoint = target.endpoint.as_str(),
        listen = %options.listen,
        metrics_listen = %options.metrics_listen,
        stream = target.stream.as_str(),
        subject_prefix = target.subject_prefix.as_str(),
        tls_mode = mode.label(),
        require_forwarded_https,
        "hookwarden-receiver serving"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    tokio::spawn(reload::watch(
        reload::Sources {
            endpoint: options.endpoint.clone(),
            secrets_dir: options.secrets_dir.clone(),
            nats: client,
            publish_timeout,
            default_body_limit: options.max_body_bytes,
        },
        state.clone(),
        Duration::from_secs(options.reload_interval_secs.max(1)),
        stop_rx.clone(),
    ));
    let ops_stop = stop_rx.clone();
    tokio::spawn(async move {
        let served = axum::serve(ops_listener, ops::router(metrics, readiness))
            .with_graceful_shutdown(stopped(ops_stop))
            .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "operations port failed");
        }
    });
    match server::serve(state, listener, transport, stopped(stop_rx)).await {
        Stopped::Drained => tracing::info!("hookwarden-receiver stopped gracefully"),
        // The transport logged which connections were cut off.
        Stopped::DrainTimedOut => tracing::warn!("hookwarden-receiver stopped"),
    }
    Ok(())
}

/// Completes once shutdown was requested; never if the signal task is gone
/// without requesting it (that must not stop the server).
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Completes on SIGTERM (how Kubernetes stops a pod) or Ctrl-C. If a handler
/// cannot be installed, that signal is simply not waited for.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing requests in flight");
}
