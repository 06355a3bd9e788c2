//! `hookwarden-receiver`: the data-plane process of Hookwarden.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { endpoint } => {
            match hookwarden_receiver::config::load_endpoint(&endpoint) {
                Ok(endpoint) => {
                    let name = endpoint.metadata.name.as_deref().unwrap_or("<unnamed>");
                    println!(
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
                    );
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("hookwarden-receiver: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
