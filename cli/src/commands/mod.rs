//! The commands of `hookwarden`, one module each, and what they share:
//! reading files and manifests, the NATS connection, the runtime, and the
//! secret filter on everything printed.

pub mod dlq;
pub mod presets;
pub mod quarantine;
pub mod ranges;
pub mod replay;
pub mod secret;
pub mod send;
pub mod tail;
pub mod verify;

mod files;
mod manifest;
mod nats;
mod output;

pub use output::redact;

/// Why a command could not do its job (as opposed to a refused request
/// or a failed delivery, which it reports with exit status 1): printed as
/// `hookwarden: <message>` through the secret filter, exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Send(#[from] send::SendError),
    #[error(transparent)]
    Verify(#[from] verify::VerifyError),
    #[error(transparent)]
    Random(#[from] secret::RandomError),
    #[error(transparent)]
    Tail(#[from] tail::TailError),
    #[error(transparent)]
    Quarantine(#[from] quarantine::QuarantineError),
    #[error(transparent)]
    Ranges(#[from] ranges::RangesError),
    #[error(transparent)]
    Replay(#[from] replay::ReplayError),
}

/// The runtime could not be built (no threads, no I/O driver).
#[derive(Debug, thiserror::Error)]
#[error("runtime: {0}")]
pub struct RuntimeError(#[source] std::io::Error);

/// The one runtime of a command: the CLI does one thing at a time.
fn runtime() -> Result<tokio::runtime::Runtime, RuntimeError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RuntimeError)
}
