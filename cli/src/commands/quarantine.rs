//! `hookwarden quarantine`: an endpoint's records of refused requests,
//! read with an ordered consumer (no state left on the server).

use std::process::ExitCode;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use async_nats::jetstream::context::GetStreamError;
use async_nats::jetstream::stream::InfoError;
use clap::Subcommand;
use futures::StreamExt;

use super::nats::{NatsArgs, NatsError, OrderedReadError, connect};
use super::output::print_unfiltered;
use super::{RuntimeError, runtime};

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// Print the newest records, oldest first, and exit.
    List {
        #[command(flatten)]
        source: QuarantineSource,
        /// How many records at most.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        last: u64,
    },
    /// Print records as they arrive, until interrupted.
    Tail {
        #[command(flatten)]
        source: QuarantineSource,
    },
}

#[derive(Debug, clap::Args)]
pub struct QuarantineSource {
    #[command(flatten)]
    nats: NatsArgs,
    /// Print each record as its JSON instead of one readable line.
    #[arg(long)]
    json: bool,
    /// The endpoint, `<namespace>/<name>`.
    endpoint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// Not `<namespace>/<name>` (the library's message says so).
    #[error("{0}")]
    Endpoint(String),
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error("quarantine stream {stream}: {source} (is spec.quarantine set on {endpoint}?)")]
    NoStream {
        stream: String,
        endpoint: String,
        source: GetStreamError,
    },
    #[error("quarantine stream {stream}: {source}")]
    Info { stream: String, source: InfoError },
    #[error(transparent)]
    Read(#[from] OrderedReadError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

pub fn run(command: QuarantineCommand) -> Result<ExitCode, QuarantineError> {
    runtime()?.block_on(records(command))?;
    Ok(ExitCode::SUCCESS)
}

/// The newest `--last` records, or from now on.
async fn records(command: QuarantineCommand) -> Result<(), QuarantineError> {
    let (source, last) = match &command {
        QuarantineCommand::List { source, last } => (source, Some(*last)),
        QuarantineCommand::Tail { source } => (source, None),
    };
    let (stream_name, subject) =
        hookwarden_cli::quarantine::names(&source.endpoint).map_err(QuarantineError::Endpoint)?;
    let client = connect(&source.nats).await?;
    let jetstream = async_nats::jetstream::new(client);
    let mut stream =
        jetstream
            .get_stream(&stream_name)
            .await
            .map_err(|e| QuarantineError::NoStream {
                stream: stream_name.clone(),
                endpoint: source.endpoint.clone(),
                source: e,
            })?;
    let state = stream
        .info()
        .await
        .map_err(|source| QuarantineError::Info {
            stream: stream_name.clone(),
            source,
        })?
        .state
        .clone();
    let deliver_policy = match last {
        Some(_) if state.messages == 0 => return Ok(()),
        Some(last) => DeliverPolicy::ByStartSequence {
            start_sequence: state
                .last_sequence
                .saturating_sub(last - 1)
                .max(state.first_sequence),
        },
        None => DeliverPolicy::New,
    };
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: subject,
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|source| OrderedReadError::Create {
            stream: stream_name.clone(),
            source,
        })?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|source| OrderedReadError::Messages {
            stream: stream_name.clone(),
            source,
        })?;
    if last.is_none() {
        eprintln!(
            "tailing the quarantine of {} (stream {stream_name})",
            source.endpoint
        );
    }
    while let Some(message) = messages.next().await {
        let message = message.map_err(|source| OrderedReadError::Message {
            stream: stream_name.clone(),
            source,
        })?;
        if source.json {
            print_unfiltered(&String::from_utf8_lossy(&message.payload));
        } else {
            print_unfiltered(&hookwarden_cli::quarantine::line(&message.payload));
        }
        // Listing ends at the record that was newest when it began, or
        // when nothing is left (records may expire meanwhile).
        let (sequence, pending) = message
            .info()
            .map(|info| (info.stream_sequence, info.pending))
            .unwrap_or((u64::MAX, 0));
        if last.is_some() && (sequence >= state.last_sequence || pending == 0) {
            break;
        }
    }
    Ok(())
}
