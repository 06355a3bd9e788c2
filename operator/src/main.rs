//! `hookwarden-operator`: the control plane of Hookwarden.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hookwarden_operator::ops::Ops;
use hookwarden_operator::reconcile::Config;
use hookwarden_operator::resources::Settings;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Hookwarden operator: reconciles WebhookEndpoint resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install the CRD, then reconcile WebhookEndpoints until SIGTERM or
    /// Ctrl-C; passes in flight finish before the process exits.
    Run {
        /// The receiver image every receiver Deployment runs.
        #[arg(long, env = "HOOKWARDEN_RECEIVER_IMAGE", default_value = DEFAULT_RECEIVER_IMAGE)]
        receiver_image: String,
        /// The NATS URL of endpoints that do not set `spec.nats.url`.
        #[arg(
            long,
            env = "HOOKWARDEN_NATS_URL",
            default_value = "nats://nats.nats.svc:4222"
        )]
        nats_url: String,
        /// Watch only this namespace (default: all namespaces).
        #[arg(long, env = "HOOKWARDEN_WATCH_NAMESPACE")]
        namespace: Option<String>,
        /// How long to wait for the CRD to be Established, in seconds.
        #[arg(long, default_value_t = 30)]
        crd_timeout_secs: u64,
        /// Where `/healthz`, `/readyz` and `/metrics` are served (the
        /// kubelet's probes and Prometheus, not the internet).
        #[arg(
            long,
            env = "HOOKWARDEN_OPERATOR_METRICS_LISTEN",
            default_value = "0.0.0.0:8080"
        )]
        metrics_listen: SocketAddr,
    },
    /// Apply the WebhookEndpoint CRD to the cluster of the current kubeconfig
    /// (or in-cluster config) and wait until it is served.
    InstallCrd {
        /// How long to wait for the CRD to be Established, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
    },
}

/// The receiver this operator version was released with.
const DEFAULT_RECEIVER_IMAGE: &str =
    concat!("ghcr.io/hookwarden/receiver:", env!("CARGO_PKG_VERSION"));

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            receiver_image,
            nats_url,
            namespace,
            crd_timeout_secs,
            metrics_listen,
        } => {
            let config = Config {
                settings: Settings {
                    receiver_image,
                    nats_url,
                },
                namespace,
            };
            run(
                config,
                Duration::from_secs(crd_timeout_secs),
                metrics_listen,
            )
            .await
        }
        Command::InstallCrd { timeout_secs } => {
            let client = match kube::Client::try_default().await {
                Ok(client) => client,
                Err(err) => {
                    eprintln!("hookwarden-operator: no Kubernetes client configuration: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match hookwarden_operator::crd::install(client, Duration::from_secs(timeout_secs)).await
            {
                Ok(crd) => {
                    println!("installed CRD {}", crd.metadata.name.unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("hookwarden-operator: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(config: Config, crd_timeout: Duration, metrics_listen: SocketAddr) -> ExitCode {
    // Served from the start: liveness holds during a slow CRD install, and
    // readiness says what is still missing.
    let ops = Ops::default();
    match hookwarden_operator::ops::serve(metrics_listen, ops.clone()).await {
        Ok(addr) => tracing::info!(%addr, "serving /healthz, /readyz and /metrics"),
        Err(error) => {
            tracing::error!(%error, "cannot serve the operations port");
            return ExitCode::FAILURE;
        }
    }
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "no Kubernetes client configuration");
            return ExitCode::FAILURE;
        }
    };
    // The CRD ships with the operator: the version that runs is the version
    // of the schema it reconciles.
    if let Err(error) = hookwarden_operator::crd::install(client.clone(), crd_timeout).await {
        tracing::error!(%error, "cannot install the CRD");
        return ExitCode::FAILURE;
    }
    ops.readiness.set_crd_installed();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        match termination().await {
            Ok(signal) => tracing::info!(signal, "shutting down"),
            Err(error) => tracing::error!(%error, "cannot listen for signals; shutting down"),
        }
        let _ = stop.send(());
    });
    tracing::info!(
        receiver_image = %config.settings.receiver_image,
        nats_url = %config.settings.nats_url,
        namespace = config.namespace.as_deref().unwrap_or("<all>"),
        "reconciling WebhookEndpoints"
    );
    hookwarden_operator::reconcile::run_with_ops(client, config, ops, async move {
        let _ = stopped.await;
    })
    .await;
    ExitCode::SUCCESS
}

/// Waits for SIGTERM (what the kubelet sends) or SIGINT.
async fn termination() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => Ok("SIGTERM"),
        _ = int.recv() => Ok("SIGINT"),
    }
}
