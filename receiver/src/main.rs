//! `hookwarden-receiver`: the data-plane process of Hookwarden.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hookwarden_crds::EndpointManifest;
use hookwarden_receiver::transport::{self, Stopped};
use hookwarden_receiver::{app, config, forward};

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
    /// Receive deliveries for one endpoint (or, with --pool-dir, for every
    /// endpoint of a pool, routed by host and path) over HTTPS (or,
    /// explicitly, plain HTTP behind an ingress or for local development).
    Serve(Box<app::ServeArgs>),
    /// Deliver the events a WebhookSubscription selects from JetStream to
    /// its HTTP destination, signed (Standard Webhooks), retried, and
    /// dead-lettered when they cannot be delivered.
    Forward(Box<forward::app::ForwardArgs>),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { endpoint } => check(&endpoint),
        Command::Serve(args) => run_async("hookwarden-receiver", serve(*args)),
        Command::Forward(args) => run_async("hookwarden-forwarder", forward_events(*args)),
    }
}

/// Runs `task` on a multi-threaded runtime with the receiver's logging (and
/// traces, as `service`, when configured; the last ones sent at the end).
fn run_async<E: std::fmt::Display>(
    service: &'static str,
    task: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
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
    {
        // Traces send from this runtime.
        let _runtime = runtime.enter();
        hookwarden_receiver::telemetry::init(service);
    }
    let code = match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "hookwarden-receiver stopped");
            ExitCode::FAILURE
        }
    };
    hookwarden_receiver::telemetry::shutdown();
    // Every audit line handed over is on stdout before the process exits.
    hookwarden_receiver::log_writer::flush();
    code
}

/// Starts the forwarder ([`forward::app::start`]) and forwards until
/// SIGTERM or Ctrl-C.
async fn forward_events(args: forward::app::ForwardArgs) -> Result<(), forward::app::StartError> {
    forward::app::start(args)
        .await?
        .run(shutdown_signal())
        .await;
    Ok(())
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

fn describe(endpoint: &EndpointManifest) -> String {
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

/// Why `serve` could not start.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    #[error(transparent)]
    Start(#[from] app::StartError),
}

/// Starts the receiver the one way it is assembled ([`app::start`]) and
/// serves until SIGTERM or Ctrl-C.
async fn serve(options: app::ServeArgs) -> Result<(), ServeError> {
    let receiver = app::start(options.settings()?).await?;
    match receiver.serve(shutdown_signal()).await {
        Stopped::Drained => tracing::info!("hookwarden-receiver stopped gracefully"),
        // The transport logged which connections were cut off.
        Stopped::DrainTimedOut => tracing::warn!("hookwarden-receiver stopped"),
    }
    Ok(())
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
