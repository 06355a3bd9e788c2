//! `hookwarden dlq`: a subscription's dead letters, listed or redriven
//! (delivered again, each deleted once its destination answered 2xx).

use std::path::PathBuf;
use std::process::ExitCode;

use async_nats::jetstream::context::GetStreamErrorKind;
use clap::Subcommand;
use hookwarden_cli::replay::DEFAULT_LIMIT;
use hookwarden_receiver::forward::Plan;

use super::output::print_line;
use super::replay::{ReplayError, SubscriptionArgs, destination, open_subscription};
use super::runtime;

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Print the subscription's dead letters, oldest first: sequence, time,
    /// where the event was stored, id, attempts, last status, reason, error.
    List {
        #[command(flatten)]
        source: SubscriptionArgs,
        /// Print each as JSON.
        #[arg(long)]
        json: bool,
        /// Dead letters printed at most.
        #[arg(long, default_value_t = DEFAULT_LIMIT, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        limit: u64,
    },
    /// Deliver dead letters again to the subscription's destination (marked
    /// as replays) and delete each from the dead-letter stream once the
    /// destination answered 2xx.
    Redrive(Box<RedriveArgs>),
}

#[derive(Debug, clap::Args)]
pub struct RedriveArgs {
    #[command(flatten)]
    source: SubscriptionArgs,
    /// Where the subscription's secrets are, as `<dir>/<name>/<key>`.
    #[arg(long, required_unless_present = "dry_run")]
    secrets_dir: Option<PathBuf>,
    /// A dead letter's sequence in the dead-letter stream (as `dlq list`
    /// shows it); repeatable.
    #[arg(long = "seq", required_unless_present = "all", conflicts_with = "all")]
    sequences: Vec<u64>,
    /// Every dead letter of the subscription (up to --limit).
    #[arg(long)]
    all: bool,
    /// Dead letters redriven at most with --all.
    #[arg(long, default_value_t = DEFAULT_LIMIT, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    limit: u64,
    /// List what would be sent; send and delete nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(command: DlqCommand) -> Result<ExitCode, ReplayError> {
    runtime()?.block_on(async {
        match command {
            DlqCommand::List {
                source,
                json,
                limit,
            } => list(&source, json, limit).await,
            DlqCommand::Redrive(args) => redrive(&args).await,
        }
    })
}

async fn list(source: &SubscriptionArgs, json: bool, limit: u64) -> Result<ExitCode, ReplayError> {
    let (_, plan, jetstream) = open_subscription(source).await?;
    let Some(mut stream) = dead_letter_stream(&jetstream, &plan).await? else {
        return Ok(ExitCode::SUCCESS);
    };
    let scanned = hookwarden_cli::replay::dead_letters(&mut stream, &plan, limit)
        .await
        .map_err(ReplayError::Scan)?;
    for candidate in &scanned.kept {
        print_line(if json {
            hookwarden_cli::replay::dead_letter_json(candidate)
        } else {
            hookwarden_cli::replay::dead_letter_line(candidate)
        });
    }
    if scanned.limited {
        eprintln!("(stopped at --limit {limit}: there are more dead letters)");
    }
    Ok(ExitCode::SUCCESS)
}

async fn redrive(args: &RedriveArgs) -> Result<ExitCode, ReplayError> {
    let (subscription, plan, jetstream) = open_subscription(&args.source).await?;
    let destination = match (&args.secrets_dir, args.dry_run) {
        (Some(dir), false) => Some(destination(&subscription, &plan, dir, None)?),
        _ => None,
    };
    let Some(mut stream) = dead_letter_stream(&jetstream, &plan).await? else {
        return Ok(if args.sequences.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    };
    let chosen = if args.all {
        hookwarden_cli::replay::dead_letters(&mut stream, &plan, args.limit)
            .await
            .map_err(ReplayError::Scan)?
            .kept
    } else {
        hookwarden_cli::replay::dead_letters_by_sequence(&stream, &plan, &args.sequences)
            .await
            .map_err(ReplayError::Scan)?
    };
    let stop = hookwarden_cli::replay::interrupt_on_ctrl_c();
    let summary = hookwarden_cli::replay::redrive(
        &mut stream,
        &plan,
        destination.as_ref(),
        &chosen,
        Some(&stop),
        &mut print_line,
    )
    .await;
    for line in summary.lines("redrive", args.limit, destination.is_none()) {
        print_line(line);
    }
    Ok(if summary.interrupted_at.is_some() {
        ExitCode::from(hookwarden_cli::replay::INTERRUPTED_EXIT_CODE)
    } else if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The subscription's dead-letter stream; `None` (said on stderr) when it
/// does not exist yet: no forwarder ran, so there are no dead letters.
async fn dead_letter_stream(
    jetstream: &async_nats::jetstream::Context,
    plan: &Plan,
) -> Result<Option<async_nats::jetstream::stream::Stream>, ReplayError> {
    match jetstream.get_stream(&plan.dead_letter.stream).await {
        Ok(stream) => Ok(Some(stream)),
        Err(err)
            if matches!(err.kind(), GetStreamErrorKind::JetStream(js)
                if js.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            eprintln!(
                "no dead-letter stream {} yet: {} has no dead letters",
                plan.dead_letter.stream, plan.subscription
            );
            Ok(None)
        }
        Err(source) => Err(ReplayError::DeadLetterStream {
            stream: plan.dead_letter.stream.clone(),
            source,
        }),
    }
}
