//! The NATS connection of `tail`, `quarantine`, `replay` and `dlq`, and
//! the errors of reading a stream with an ordered consumer.

use std::path::PathBuf;

use async_nats::jetstream::consumer::StreamError;
use async_nats::jetstream::consumer::pull::OrderedError;
use async_nats::jetstream::stream::ConsumerError;
use hookwarden_receiver::nats_url::NatsConnectError;

use super::files::{ReadError, read_file};

#[derive(Debug, clap::Args)]
pub struct NatsArgs {
    /// The NATS server (or a comma-separated list); `user:password@` or
    /// `token@` in it (percent-encoded) log in, as with the `nats` CLI.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// A NATS `.creds` file (user JWT and NKey seed) to log in with.
    #[arg(long)]
    nats_credentials_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("NATS credentials file {} is not UTF-8", path.display())]
    CredentialsNotUtf8 { path: PathBuf },
    /// The parser's errors say which part is missing, never the content.
    #[error("NATS credentials file {} is not a .creds file: {source}", path.display())]
    NotCredentials {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Shows the URL without its credentials.
    #[error(transparent)]
    Connect(#[from] NatsConnectError),
}

/// Connects as `--nats-url` and `--nats-credentials-file` say.
pub async fn connect(args: &NatsArgs) -> Result<async_nats::Client, NatsError> {
    let options = match &args.nats_credentials_file {
        Some(path) => {
            let creds = String::from_utf8(read_file(path, "NATS credentials file")?)
                .map_err(|_| NatsError::CredentialsNotUtf8 { path: path.clone() })?;
            async_nats::ConnectOptions::with_credentials(&creds).map_err(|source| {
                NatsError::NotCredentials {
                    path: path.clone(),
                    source,
                }
            })?
        }
        None => async_nats::ConnectOptions::new(),
    };
    // The URL's credentials are passed explicitly (the client would not
    // send them), and errors show the URL without them.
    Ok(hookwarden_receiver::nats_url::connect(&args.nats_url, options).await?)
}

/// Reading a JetStream stream with an ordered consumer failed.
#[derive(Debug, thiserror::Error)]
pub enum OrderedReadError {
    #[error("consumer on {stream}: {source}")]
    Create {
        stream: String,
        source: ConsumerError,
    },
    #[error("consumer on {stream}: {source}")]
    Messages { stream: String, source: StreamError },
    #[error("stream {stream}: {source}")]
    Message {
        stream: String,
        source: OrderedError,
    },
}
