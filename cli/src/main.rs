//! `hookwarden`: send signed test deliveries, verify saved requests,
//! generate secrets, tail what is stored, show quarantined requests, fetch
//! source ranges, replay stored events and dead letters. See `docs/cli.md`.
//!
//! This file parses the command line and dispatches; each command is a
//! module of `commands/` with its arguments and its error type.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use commands::{dlq, presets, quarantine, ranges, replay, secret, send, tail, verify};

/// Hookwarden's command-line tool.
#[derive(Debug, Parser)]
#[command(name = "hookwarden", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send a delivery signed exactly as the provider would sign it.
    Send(send::SendArgs),
    /// Secrets for webhook endpoints.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Verify a saved raw HTTP/1.1 request with a provider preset.
    Verify(verify::VerifyArgs),
    /// Print the deliveries published on a NATS subject, live.
    Tail(tail::TailArgs),
    /// List the provider presets: what each verifies, what its secret file
    /// holds, its replay defence and handshake.
    Presets(presets::PresetsArgs),
    /// The records of refused requests of an endpoint with
    /// `spec.quarantine`: why each was refused, from where.
    #[command(subcommand)]
    Quarantine(quarantine::QuarantineCommand),
    /// Providers' published source ranges.
    #[command(subcommand)]
    Ranges(ranges::RangesCommand),
    /// Deliver stored events of a WebhookSubscription again, signed as the
    /// forwarder signs them and marked `Hookwarden-Replay: true`, to its
    /// destination or to --to; --dry-run lists them.
    Replay(Box<replay::ReplayArgs>),
    /// The dead letters of a WebhookSubscription: list them, or deliver
    /// them again and delete each one delivered.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<ExitCode, commands::Error> = match cli.command {
        Command::Send(args) => send::run(args).map_err(Into::into),
        Command::Secret(command) => secret::run(command).map_err(Into::into),
        Command::Verify(args) => verify::run(args).map_err(Into::into),
        Command::Tail(args) => tail::run(args).map_err(Into::into),
        Command::Presets(args) => Ok(presets::run(args)),
        Command::Quarantine(command) => quarantine::run(command).map_err(Into::into),
        Command::Ranges(command) => ranges::run(command).map_err(Into::into),
        Command::Replay(args) => replay::run(*args).map_err(Into::into),
        Command::Dlq(command) => dlq::run(command).map_err(Into::into),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            // Through the filter: an error may quote what a server answered.
            eprintln!("hookwarden: {}", commands::redact(&error.to_string()));
            ExitCode::from(2)
        }
    }
}
