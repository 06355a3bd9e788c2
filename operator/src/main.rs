//! `hookwarden-operator`: the control plane of Hookwarden.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

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
    /// Apply the WebhookEndpoint CRD to the cluster of the current kubeconfig
    /// (or in-cluster config) and wait until it is served.
    InstallCrd {
        /// How long to wait for the CRD to be Established, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    match cli.command {
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
