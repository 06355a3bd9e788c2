//! A consumer of Hookwarden events, as small as a real one can be.
//!
//! A durable JetStream pull consumer with explicit acknowledgement on the
//! endpoint's stream: every stored event is handed over at least once, across
//! restarts of this process (the server keeps the consumer's position under
//! its durable name). Each event is printed as one JSON line on standard
//! output — subject, stream sequence, headers, body — and acknowledged only
//! after that: a crash between the two gets the event redelivered, so real
//! handlers must be idempotent on `Hookwarden-Delivery-Id`.
//!
//! ```sh
//! cargo run -p hookwarden-example-consumer -- \
//!   --nats-url nats://127.0.0.1:4222 --subject 'hookwarden.default.github.>' --durable my-service
//! ```
//!
//! See `docs/consumers.md`.

use std::process::ExitCode;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Parser;
use futures::StreamExt;

/// Prints Hookwarden events from a durable JetStream consumer as JSON lines.
#[derive(Debug, Parser)]
#[command(name = "hookwarden-example-consumer", version, about)]
struct Args {
    /// The NATS server the receivers store events in.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The subjects to consume (wildcards allowed), e.g.
    /// `hookwarden.<namespace>.<endpoint>.>`.
    #[arg(long)]
    subject: String,
    /// The stream that stores them; default: the stream whose subjects
    /// cover `--subject`, waited for until a receiver has created it.
    #[arg(long)]
    stream: Option<String>,
    /// The durable consumer's name: the server remembers what this name has
    /// acknowledged, so a restart resumes where it stopped.
    #[arg(long)]
    durable: String,
}

/// Why the consumer stopped.
#[derive(Debug, thiserror::Error)]
enum ConsumerError {
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("cannot look up the stream for {subject}: {source}")]
    Lookup {
        subject: String,
        source: async_nats::jetstream::context::GetStreamByNameError,
    },
    #[error("cannot open stream {stream}: {source}")]
    Stream {
        stream: String,
        source: async_nats::jetstream::context::GetStreamError,
    },
    #[error("cannot create durable consumer {durable} on stream {stream}: {source}")]
    Consumer {
        stream: String,
        durable: String,
        source: async_nats::jetstream::stream::ConsumerError,
    },
    #[error("cannot pull from consumer {durable}: {source}")]
    Pull {
        durable: String,
        source: async_nats::jetstream::consumer::StreamError,
    },
    #[error("consumer {durable} failed: {source}")]
    Message {
        durable: String,
        source: async_nats::jetstream::consumer::pull::MessagesError,
    },
    #[error("cannot acknowledge stream sequence {sequence}: {source}")]
    Ack {
        sequence: u64,
        source: async_nats::Error,
    },
    #[error("cannot write to standard output: {0}")]
    Output(#[from] std::io::Error),
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tokio::select! {
        result = consume(&args) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("hookwarden-example-consumer: {err}");
                ExitCode::FAILURE
            }
        },
        () = shutdown() => {
            eprintln!("hookwarden-example-consumer: stopping; unacknowledged events will be redelivered");
            ExitCode::SUCCESS
        }
    }
}

/// SIGINT or SIGTERM.
async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

async fn consume(args: &Args) -> Result<(), ConsumerError> {
    let client = async_nats::connect(&args.nats_url)
        .await
        .map_err(|source| ConsumerError::Connect {
            url: args.nats_url.clone(),
            source,
        })?;
    let jetstream = jetstream::new(client);
    let stream_name = match &args.stream {
        Some(name) => name.clone(),
        None => find_stream(&jetstream, &args.subject).await?,
    };
    let stream =
        jetstream
            .get_stream(&stream_name)
            .await
            .map_err(|source| ConsumerError::Stream {
                stream: stream_name.clone(),
                source,
            })?;
    // Created once, then found again under its name: the server keeps its
    // position (the acknowledged sequence) across our restarts.
    let consumer = stream
        .get_or_create_consumer(
            &args.durable,
            pull::Config {
                durable_name: Some(args.durable.clone()),
                filter_subject: args.subject.clone(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                // Unacknowledged after this long: delivered again.
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .map_err(|source| ConsumerError::Consumer {
            stream: stream_name.clone(),
            durable: args.durable.clone(),
            source,
        })?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|source| ConsumerError::Pull {
            durable: args.durable.clone(),
            source,
        })?;
    eprintln!(
        "hookwarden-example-consumer: consuming {} from stream {stream_name} as {}",
        args.subject, args.durable
    );
    while let Some(message) = messages.next().await {
        let message = message.map_err(|source| ConsumerError::Message {
            durable: args.durable.clone(),
            source,
        })?;
        let sequence = message.info().map_or(0, |info| info.stream_sequence);
        // Handle first (here: print), acknowledge after: at least once.
        print_line(&event_json(&message.message, sequence))?;
        message
            .ack()
            .await
            .map_err(|source| ConsumerError::Ack { sequence, source })?;
    }
    Ok(())
}

/// The stream whose subjects cover `subject`, once a receiver has created it.
async fn find_stream(
    jetstream: &jetstream::Context,
    subject: &str,
) -> Result<String, ConsumerError> {
    use async_nats::jetstream::context::GetStreamByNameErrorKind;
    let mut told = false;
    loop {
        match jetstream.stream_by_subject(subject).await {
            Ok(name) => return Ok(name),
            Err(err) if err.kind() == GetStreamByNameErrorKind::NotFound => {
                if !told {
                    eprintln!(
                        "hookwarden-example-consumer: no stream stores {subject} yet; waiting for a receiver to create it"
                    );
                    told = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(source) => {
                return Err(ConsumerError::Lookup {
                    subject: subject.to_owned(),
                    source,
                });
            }
        }
    }
}

/// One event as JSON: subject, stream sequence, headers (one string per
/// value, a list when a header repeats), and the body as text when it is
/// UTF-8, else as base64 under `body_base64`.
fn event_json(message: &async_nats::Message, sequence: u64) -> serde_json::Value {
    let mut headers = serde_json::Map::new();
    for (name, values) in message.headers.iter().flat_map(|h| h.iter()) {
        let values: Vec<serde_json::Value> = values.iter().map(|v| v.as_str().into()).collect();
        let value = match <[_; 1]>::try_from(values) {
            Ok([one]) => one,
            Err(many) => many.into(),
        };
        headers.insert(name.to_string(), value);
    }
    let mut event = serde_json::json!({
        "subject": message.subject.as_str(),
        "stream_sequence": sequence,
        "headers": headers,
    });
    match std::str::from_utf8(&message.payload) {
        Ok(text) => event["body"] = text.into(),
        Err(_) => event["body_base64"] = BASE64.encode(&message.payload).into(),
    }
    event
}

fn print_line(event: &serde_json::Value) -> Result<(), std::io::Error> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{event}")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &'static [u8]) -> async_nats::Message {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "d1");
        headers.append("X-Twice", "a");
        headers.append("X-Twice", "b");
        async_nats::Message {
            subject: "hookwarden.ns.github.push".into(),
            reply: None,
            payload: payload.into(),
            headers: Some(headers),
            status: None,
            description: None,
            length: payload.len(),
        }
    }

    #[test]
    fn an_event_is_one_json_object_with_subject_headers_and_body() {
        let event = event_json(&message(b"{\"zen\":\"ok\"}"), 7);
        assert_eq!(
            event,
            serde_json::json!({
                "subject": "hookwarden.ns.github.push",
                "stream_sequence": 7,
                "headers": {"Nats-Msg-Id": "d1", "X-Twice": ["a", "b"]},
                "body": "{\"zen\":\"ok\"}",
            })
        );
        assert!(!event.to_string().contains('\n'), "one line");
    }

    #[test]
    fn a_binary_body_is_base64() {
        let event = event_json(&message(b"\xff\x00"), 1);
        assert_eq!(event["body_base64"], "/wA=");
        assert!(event.get("body").is_none());
    }
}
