//! Why the endpoint's pipeline could not be built from its files.

use std::path::PathBuf;

use crate::clientip::CidrError;
use crate::limits::RateError;
use crate::publish::{CredentialsError, EnsureStreamError, TargetError};
use crate::ranges::local::RangesError;
use crate::ranges::{self, SourceError};
use crate::request::{BodyLimitSource, RequestError};
use crate::{config, secrets, verify};

/// Why the endpoint's pipeline could not be built from its files.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The manifest could not be read or parsed.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The verifier (or one of its secrets) could not be built.
    #[error(transparent)]
    Verifier(#[from] verify::VerifierError),
    /// A CIDR list is invalid.
    #[error("{}: {source}", path.display())]
    Cidr {
        /// The manifest.
        path: PathBuf,
        /// Which entry, and why.
        source: CidrError,
    },
    /// An `allowedSources` entry is invalid.
    #[error("{}: {}[{index}]: {source}", path.display(), ranges::ALLOWED_SOURCES_FIELD)]
    Source {
        /// The manifest.
        path: PathBuf,
        /// Which entry.
        index: usize,
        /// Why.
        source: SourceError,
    },
    /// A published list of `allowedSources` is not available.
    #[error(transparent)]
    Ranges(#[from] RangesError),
    /// A rate limit is invalid.
    #[error("{}: {source}", path.display())]
    RateLimit {
        /// The manifest.
        path: PathBuf,
        /// Which limit, and why.
        source: RateError,
    },
    /// The NATS subject prefix or stream name is invalid.
    #[error("{}: {source}", path.display())]
    Target {
        /// The manifest.
        path: PathBuf,
        /// Which setting, and why.
        source: TargetError,
    },
    /// `spec.request` is invalid.
    #[error("{}: {source}", path.display())]
    Request {
        /// The manifest.
        path: PathBuf,
        /// Which setting, and why.
        source: RequestError,
    },
    /// The stream could not be created or looked up, or cannot take the
    /// endpoint's deliveries.
    #[error(transparent)]
    Stream(#[from] EnsureStreamError),
    /// The NATS credentials file could not be read.
    #[error("spec.nats.credentialsSecretRef: {0}")]
    CredentialsFile(secrets::SecretError),
    /// The NATS credentials file is not a `.creds` file.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The body cap is larger than the NATS server accepts in one message,
    /// so deliveries between the two would be accepted, then never stored.
    #[error(
        "{}: the body cap {limit} bytes ({}) is above the NATS server's max_payload of {max_payload} bytes; lower it or raise max_payload",
        path.display(),
        set_by.setting()
    )]
    BodyLimitOverMaxPayload {
        /// The manifest.
        path: PathBuf,
        /// The cap in bytes.
        limit: usize,
        /// Where the cap was set.
        set_by: BodyLimitSource,
        /// The NATS server's `max_payload` in bytes.
        max_payload: usize,
    },
}

impl LoadError {
    /// Whether trying again without a change to the files can succeed: the
    /// stream could not be reached or set up (NATS away, JetStream without a
    /// leader, a stream being created elsewhere). A broken file fails the
    /// same way until it changes, which starts a new attempt anyway.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Stream(_) | Self::Ranges(_))
    }
}
