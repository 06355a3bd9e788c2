//! `hookwarden tail`: the deliveries published on a subject, live, from
//! the stream that stores them or from core NATS.

use std::process::ExitCode;

use async_nats::SubscribeError;
use async_nats::client::FlushError;
use async_nats::jetstream::context::GetStreamError;
use futures::StreamExt;

use super::nats::{NatsArgs, NatsError, OrderedReadError, connect};
use super::output::print_unfiltered;
use super::{RuntimeError, runtime};

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// The subject (wildcards allowed), e.g. `webhooks.github.>`.
    subject: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error("stream {stream}: {source}")]
    Stream {
        stream: String,
        source: GetStreamError,
    },
    #[error(transparent)]
    Read(#[from] OrderedReadError),
    #[error("subscribe to {subject}: {source}")]
    Subscribe {
        subject: String,
        source: SubscribeError,
    },
    #[error("subscribe to {subject}: {source}")]
    Flush { subject: String, source: FlushError },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

pub fn run(args: TailArgs) -> Result<ExitCode, TailError> {
    runtime()?.block_on(tail(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn tail(args: TailArgs) -> Result<(), TailError> {
    let client = connect(&args.nats).await?;
    let jetstream = async_nats::jetstream::new(client.clone());
    match jetstream.stream_by_subject(args.subject.clone()).await {
        Ok(stream_name) => {
            // An ordered consumer from now on: what the stream stores, in order,
            // without acks or state left on the server.
            let stream =
                jetstream
                    .get_stream(&stream_name)
                    .await
                    .map_err(|source| TailError::Stream {
                        stream: stream_name.clone(),
                        source,
                    })?;
            let consumer = stream
                .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                    filter_subject: args.subject.clone(),
                    deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
                    ..Default::default()
                })
                .await
                .map_err(|source| OrderedReadError::Create {
                    stream: stream_name.clone(),
                    source,
                })?;
            let mut messages =
                consumer
                    .messages()
                    .await
                    .map_err(|source| OrderedReadError::Messages {
                        stream: stream_name.clone(),
                        source,
                    })?;
            eprintln!("tailing {} (JetStream stream {stream_name})", args.subject);
            while let Some(message) = messages.next().await {
                let message = message.map_err(|source| OrderedReadError::Message {
                    stream: stream_name.clone(),
                    source,
                })?;
                print_message(&message);
            }
        }
        Err(_) => {
            let subscribe_failed = |source| TailError::Subscribe {
                subject: args.subject.clone(),
                source,
            };
            let mut subscriber = client
                .subscribe(args.subject.clone())
                .await
                .map_err(subscribe_failed)?;
            // `subscribe` only queues the SUB; until the server has it, a
            // message published after "tailing" would not reach us.
            client.flush().await.map_err(|source| TailError::Flush {
                subject: args.subject.clone(),
                source,
            })?;
            eprintln!("tailing {} (core NATS, no stream stores it)", args.subject);
            while let Some(message) = subscriber.next().await {
                print_message(&message);
            }
        }
    }
    Ok(())
}

/// The subject, the `Hookwarden-*` headers sorted, and the payload
/// (pretty-printed when it is JSON).
fn print_message(message: &async_nats::Message) {
    let mut text = format!("--- {}\n", message.subject);
    if let Some(headers) = &message.headers {
        let mut lines: Vec<String> = headers
            .iter()
            .filter(|(name, _)| {
                name.to_string()
                    .to_ascii_lowercase()
                    .starts_with("hookwarden-")
            })
            .flat_map(|(name, values)| {
                values
                    .iter()
                    .map(move |value| format!("{name}: {}", value.as_str()))
            })
            .collect();
        lines.sort();
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
    }
    match serde_json::from_slice::<serde_json::Value>(&message.payload) {
        Ok(json) => text.push_str(&serde_json::to_string_pretty(&json).unwrap_or_default()),
        Err(_) => text.push_str(&String::from_utf8_lossy(&message.payload)),
    }
    print_unfiltered(&text);
}
