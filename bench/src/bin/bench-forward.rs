//! `bench-forward`: the pieces of `make bench`'s forwarding row (issue #14).
//!
//! - `prepare`: from the subscription manifest the forwarder will read, the
//!   stream, the forwarder's durable consumer and a baseline consumer, both
//!   from the one [`Plan::consumer_config`] (so they differ in name only),
//!   then `--count` stored events (1 KiB JSON bodies with the receiver's
//!   headers, each its own `Nats-Msg-Id`) published with PubAcks. The
//!   consumers exist before the events: the plan delivers new events only.
//! - `read`: the baseline, a plain JetStream consumer as a team would write
//!   one: pull (the forwarder's batch size), acknowledge each, until
//!   `--count`; the rate from the first message to the last acknowledgement.
//! - `sink`: a bare HTTP/1.1 destination on loopback (axum, no TLS, no
//!   verification) answering 204 to every POST; it exits after `--count`
//!   requests and prints the rate from the first request to the last.
//!
//! Each prints one JSON line: `{"events": N, "seconds": S, "rate": R}`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use clap::{Parser, Subcommand};
use futures::StreamExt as _;
use hookwarden_receiver::forward::Plan;

#[derive(Debug, Parser)]
#[command(about = "Stream, baseline consumer and bare HTTP sink of the forwarding benchmark")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the stream and both consumers, then store `--count` events.
    Prepare {
        #[arg(long)]
        nats_url: String,
        /// The subscription manifest the forwarder reads (source: stream and
        /// subjectPrefix).
        #[arg(long)]
        subscription: PathBuf,
        /// The baseline consumer's durable name.
        #[arg(long)]
        baseline: String,
        #[arg(long)]
        count: u64,
    },
    /// Read `--count` events with a plain pull consumer, acknowledging each.
    Read {
        #[arg(long)]
        nats_url: String,
        #[arg(long)]
        subscription: PathBuf,
        #[arg(long)]
        baseline: String,
        #[arg(long)]
        count: u64,
    },
    /// Answer 204 to POSTs on `--listen` until `--count` arrived.
    Sink {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        count: u64,
        /// Give up after this many seconds (the row then fails).
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the subscription manifest: {0}")]
    Manifest(String),
    #[error("NATS: {0}")]
    Nats(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{got} of {wanted} events within {seconds} s")]
    Short { got: u64, wanted: u64, seconds: u64 },
}

fn nats(error: impl std::fmt::Display) -> Error {
    Error::Nats(error.to_string())
}

fn plan(path: &PathBuf) -> Result<Plan, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    let subscription = hookwarden_crds::subscription_from_yaml(&text)
        .map_err(|e| Error::Manifest(e.to_string()))?;
    Plan::resolve(&subscription, None).map_err(|e| Error::Manifest(e.to_string()))
}

fn report(events: u64, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    };
    println!(
        "{}",
        serde_json::json!({"events": events, "seconds": seconds, "rate": rate})
    );
}

/// The forwarder's batch: `maxInFlight`, at most 256 (its `MAX_BATCH`).
fn batch(plan: &Plan) -> usize {
    (plan.max_in_flight as usize).clamp(1, 256)
}

async fn prepare(nats_url: &str, plan: &Plan, baseline: &str, count: u64) -> Result<(), Error> {
    let client = async_nats::connect(nats_url).await.map_err(nats)?;
    let js = jetstream::new(client);
    let events = js
        .get_or_create_stream(stream::Config {
            name: plan.stream.clone(),
            subjects: vec![format!("{}.>", plan.subject_prefix)],
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    events
        .get_or_create_consumer(&plan.durable, plan.consumer_config())
        .await
        .map_err(nats)?;
    let mut config = plan.consumer_config();
    config.durable_name = Some(baseline.to_owned());
    events
        .get_or_create_consumer(baseline, config)
        .await
        .map_err(nats)?;
    // A GitHub-sized push body: 1 KiB of JSON.
    let filler = "x".repeat(960);
    let subject = format!("{}.push", plan.subject_prefix);
    let mut pending = futures::stream::FuturesUnordered::new();
    for n in 0..count {
        let body = format!("{{\"delivery\":\"bench-{n:010}\",\"padding\":\"{filler}\"}}");
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("bench-{n:010}").as_str());
        headers.insert("Hookwarden-Delivery-Id", format!("bench-{n:010}").as_str());
        headers.insert("Hookwarden-Event", "push");
        headers.insert("Hookwarden-Provider", "github");
        headers.insert("Content-Type", "application/json");
        let ack = js
            .publish_with_headers(subject.clone(), headers, body.into())
            .await
            .map_err(nats)?;
        pending.push(ack.into_future());
        // A bounded window of PubAcks outstanding.
        while pending.len() >= 256 {
            if let Some(result) = pending.next().await {
                result.map_err(nats)?;
            }
        }
    }
    while let Some(result) = pending.next().await {
        result.map_err(nats)?;
    }
    Ok(())
}

async fn read(nats_url: &str, plan: &Plan, baseline: &str, count: u64) -> Result<(), Error> {
    let client = async_nats::connect(nats_url).await.map_err(nats)?;
    let js = jetstream::new(client);
    let consumer: jetstream::consumer::PullConsumer = js
        .get_stream(&plan.stream)
        .await
        .map_err(nats)?
        .get_consumer(baseline)
        .await
        .map_err(nats)?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(batch(plan))
        .messages()
        .await
        .map_err(nats)?;
    let mut first = None;
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while got < count {
        let message = match tokio::time::timeout_at(deadline, messages.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(e))) => return Err(nats(e)),
            Ok(None) | Err(_) => {
                return Err(Error::Short {
                    got,
                    wanted: count,
                    seconds: 600,
                });
            }
        };
        first.get_or_insert_with(Instant::now);
        message.ack().await.map_err(nats)?;
        got += 1;
    }
    // The last acknowledgement has left the client.
    js_flush(&js).await?;
    report(got, first.map(|t| t.elapsed()).unwrap_or_default());
    Ok(())
}

async fn js_flush(js: &jetstream::Context) -> Result<(), Error> {
    js.client().flush().await.map_err(nats)
}

struct Sink {
    count: AtomicU64,
    wanted: u64,
    first: Mutex<Option<Instant>>,
    done: tokio::sync::Notify,
}

async fn sink(listen: SocketAddr, count: u64, timeout: u64) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Listen {
            addr: listen,
            source,
        })?;
    let state = Arc::new(Sink {
        count: AtomicU64::new(0),
        wanted: count,
        first: Mutex::new(None),
        done: tokio::sync::Notify::new(),
    });
    let counter = Arc::clone(&state);
    let router = Router::new().fallback(post(move |body: Bytes| {
        let state = Arc::clone(&counter);
        async move {
            if let Ok(mut first) = state.first.lock() {
                first.get_or_insert_with(Instant::now);
            }
            // The length is used so the read cannot be optimised away.
            let n = state
                .count
                .fetch_add(u64::from(!body.is_empty()), Ordering::SeqCst)
                + 1;
            if n == state.wanted {
                state.done.notify_one();
            }
            StatusCode::NO_CONTENT
        }
    }));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let finished = tokio::time::timeout(Duration::from_secs(timeout), state.done.notified()).await;
    let elapsed = state
        .first
        .lock()
        .ok()
        .and_then(|first| first.map(|t| t.elapsed()))
        .unwrap_or_default();
    server.abort();
    let got = state.count.load(Ordering::SeqCst);
    if finished.is_err() {
        return Err(Error::Short {
            got,
            wanted: count,
            seconds: timeout,
        });
    }
    report(got, elapsed);
    Ok(())
}

async fn run(args: Args) -> Result<(), Error> {
    match args.command {
        Command::Prepare {
            nats_url,
            subscription,
            baseline,
            count,
        } => prepare(&nats_url, &plan(&subscription)?, &baseline, count).await,
        Command::Read {
            nats_url,
            subscription,
            baseline,
            count,
        } => read(&nats_url, &plan(&subscription)?, &baseline, count).await,
        Command::Sink {
            listen,
            count,
            timeout,
        } => sink(listen, count, timeout).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-forward: error: {err}");
            ExitCode::FAILURE
        }
    }
}
