//! `bench-bare-server`: the benchmark's lower bound. The receiver's own
//! listener (`hookwarden_receiver::transport`: rustls with the ring
//! provider, HTTP/1.1 and HTTP/2, the same limits) serving an axum router
//! that reads the whole body and answers 200, with nothing in between: no
//! client IP, limits, verification or publish.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use clap::Parser;
use hookwarden_receiver::transport::{
    Limits, Mode, PeerPolicy, TlsMode, Transport, TransportError,
};

#[derive(Debug, Parser)]
#[command(about = "A bare axum+rustls server: read the body, answer 200")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// PEM certificate chain (leaf first).
    #[arg(long)]
    tls_cert: PathBuf,
    /// PEM private key.
    #[arg(long)]
    tls_key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

async fn accept(body: Bytes) -> &'static str {
    // The length is used so the read cannot be optimised away.
    if body.is_empty() {
        "{\"status\":\"empty\"}"
    } else {
        "{\"status\":\"ok\"}"
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let mode = Mode::from_flags(TlsMode::Terminate, Some(args.tls_cert), Some(args.tls_key))?;
    let transport = Transport::new(&mode, Limits::default())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: args.listen,
            source,
        })?;
    let router = Router::new().route("/", post(accept));
    let shutdown = async {
        // Without a handler the server just runs until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    transport
        // Every peer counts as a proxy: the baseline has no per-source caps.
        .serve(
            router,
            listener,
            PeerPolicy::new(|_| true, |_, _| {}),
            shutdown,
        )
        .await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-bare-server: error: {err}");
            ExitCode::FAILURE
        }
    }
}
