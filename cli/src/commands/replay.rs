//! `hookwarden replay`: stored events of a WebhookSubscription delivered
//! again, signed as the forwarder signs them. What `dlq` shares with it:
//! the subscription's plan, its destination, the errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use async_nats::jetstream::context::GetStreamError;
use hookwarden_cli::replay::{DEFAULT_LIMIT, Selection, Sending, parse_time};
use hookwarden_crds::SubscriptionManifest;
use hookwarden_receiver::forward::app::StartError;
use hookwarden_receiver::forward::delivery::Destination;
use hookwarden_receiver::forward::filter::{Filter, FilterError};
use hookwarden_receiver::forward::{DestinationError, Plan, PlanError};

use super::nats::{NatsArgs, NatsError, connect};
use super::output::print_line;
use super::{RuntimeError, runtime};

#[derive(Debug, clap::Args)]
pub struct SubscriptionArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// The WebhookSubscription manifest (as the forwarder reads it).
    #[arg(long)]
    subscription: PathBuf,
    /// The WebhookEndpoint manifest its `spec.source.endpoint` names.
    #[arg(long)]
    endpoint: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    source: SubscriptionArgs,
    /// Where the subscription's secrets are, as `<dir>/<name>/<key>` (the
    /// signing secret; the CA of its destination). Not needed with --dry-run.
    #[arg(long, required_unless_present = "dry_run")]
    secrets_dir: Option<PathBuf>,
    /// Send to this URL instead of the subscription's destination (the same
    /// rule: https://, or http:// to a Service or localhost), still signed
    /// with the subscription's secret.
    #[arg(long)]
    to: Option<String>,
    /// The first stream sequence.
    #[arg(long)]
    from_seq: Option<u64>,
    /// The last stream sequence.
    #[arg(long)]
    to_seq: Option<u64>,
    /// Stored at or after: RFC 3339 (2026-01-02T03:04:05Z) or a duration
    /// before now (1h, 30m, 2d).
    #[arg(long)]
    since: Option<String>,
    /// Stored at or before: RFC 3339 or a duration before now.
    #[arg(long)]
    until: Option<String>,
    /// An event type as in `spec.eventTypes` (`push`, `invoice.*`);
    /// repeatable: any of them.
    #[arg(long = "event-type")]
    event_types: Vec<String>,
    /// A delivery id (the stored `Nats-Msg-Id`, the `webhook-id` sent);
    /// repeatable: any of them.
    #[arg(long = "delivery-id")]
    delivery_ids: Vec<String>,
    /// Events sent at most (the first ones in stream order).
    #[arg(long, default_value_t = DEFAULT_LIMIT, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    limit: u64,
    /// List what would be sent (sequence, time, subject, id, size); send
    /// nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The manifests, the plan, or the destination's secrets.
    #[error(transparent)]
    Subscription(#[from] StartError),
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error("--event-type: {0}")]
    EventType(#[source] PlanError),
    /// `--since` or `--until` (the library's message says what it takes).
    #[error("--{flag}: {message}")]
    Time { flag: &'static str, message: String },
    #[error("--to: {}", .0.to_string().replace("spec.destination.url ", ""))]
    To(#[source] DestinationError),
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("the subscription's stream {stream}: {source}")]
    Stream {
        stream: String,
        source: GetStreamError,
    },
    #[error("the dead-letter stream {stream}: {source}")]
    DeadLetterStream {
        stream: String,
        source: GetStreamError,
    },
    /// Reading or deleting stored events (the library's message names the
    /// stream).
    #[error("{0}")]
    Scan(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

pub fn run(args: ReplayArgs) -> Result<ExitCode, ReplayError> {
    runtime()?.block_on(replay(args))
}

async fn replay(args: ReplayArgs) -> Result<ExitCode, ReplayError> {
    let (subscription, plan, jetstream) = open_subscription(&args.source).await?;
    let now = jiff::Timestamp::now();
    let event_types = args
        .event_types
        .iter()
        .map(|t| plan.event_type_filter(t).map_err(ReplayError::EventType))
        .collect::<Result<Vec<_>, _>>()?;
    let time = |flag: &'static str, text: Option<&str>| {
        text.map(|t| parse_time(t, now).map_err(|message| ReplayError::Time { flag, message }))
            .transpose()
    };
    let selection = Selection {
        from_seq: args.from_seq,
        to_seq: args.to_seq,
        since: time("since", args.since.as_deref())?,
        until: time("until", args.until.as_deref())?,
        event_types,
        delivery_ids: args.delivery_ids.clone(),
        limit: args.limit,
    };
    if let Some(url) = &args.to {
        // Checked in a dry run too: it says what a real run would do.
        hookwarden_receiver::forward::check_destination_url(url).map_err(ReplayError::To)?;
    }
    let destination = match (&args.secrets_dir, args.dry_run) {
        (Some(dir), false) => Some(destination(&subscription, &plan, dir, args.to.as_deref())?),
        _ => None,
    };
    let filter = plan.filter.as_deref().map(Filter::compile).transpose()?;
    let mut stream =
        jetstream
            .get_stream(&plan.stream)
            .await
            .map_err(|source| ReplayError::Stream {
                stream: plan.stream.clone(),
                source,
            })?;
    let stop = hookwarden_cli::replay::interrupt_on_ctrl_c();
    let sending = Sending {
        plan: &plan,
        destination: destination.as_ref(),
        filter: filter.as_ref(),
        stop: Some(&stop),
    };
    let summary =
        hookwarden_cli::replay::replay(&mut stream, &sending, &selection, &mut print_line)
            .await
            .map_err(ReplayError::Scan)?;
    for line in summary.lines("replay", args.limit, destination.is_none()) {
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

/// The subscription's plan, and JetStream.
pub(super) async fn open_subscription(
    source: &SubscriptionArgs,
) -> Result<(SubscriptionManifest, Plan, async_nats::jetstream::Context), ReplayError> {
    let (subscription, plan) = hookwarden_receiver::forward::app::load_plan(
        &source.subscription,
        source.endpoint.as_deref(),
    )?;
    let client = connect(&source.nats).await?;
    Ok((subscription, plan, async_nats::jetstream::new(client)))
}

/// The forwarder's destination for the subscription (its signing secret and
/// CA from `secrets_dir`), or for `to` (checked by the caller).
pub(super) fn destination(
    subscription: &SubscriptionManifest,
    plan: &Plan,
    secrets_dir: &Path,
    to: Option<&str>,
) -> Result<Destination, ReplayError> {
    Ok(hookwarden_receiver::forward::app::destination(
        subscription,
        plan,
        secrets_dir,
        to,
    )?)
}
