//! Loading one endpoint file of a pool: read, checked, connected; and the
//! fingerprint of its files.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hookwarden_crds::EndpointManifest;
use sha2::{Digest, Sha256};

use crate::config::ConfigError;
use crate::pool::layout;
use crate::pool::routes::Route;
use crate::pool::stamps::{StampingReader, Stamps};
use crate::publish::Target;
use crate::ranges::local::LocalRanges;
use crate::reload::{self, LoadError};
use crate::secrets::SecretsLayout;
use crate::server::EndpointPipeline;
use crate::verify::keys::KeyFetcher;

/// Why one endpoint file of a pool could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PoolLoadError {
    /// The manifest, a secret, the stream: as for a dedicated receiver.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The manifest names another endpoint than its file: the operator
    /// never writes that, and serving it would mix two endpoints' names.
    #[error("{}: metadata.name is {found:?}, not {expected:?} as the file name says", path.display())]
    NameMismatch {
        /// The file.
        path: PathBuf,
        /// The name its file gives.
        expected: String,
        /// The name in the manifest.
        found: String,
    },
    /// The manifest and its secrets check; the endpoint could not be
    /// connected to its stream (NATS away, the stream refused).
    #[error("{source}")]
    Connect {
        /// Where the endpoint is reached.
        route: Route,
        /// Why.
        #[source]
        source: LoadError,
    },
}

impl PoolLoadError {
    /// Whether trying again without a change to the files can succeed
    /// ([`LoadError::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Load(err) | Self::Connect { source: err, .. } if err.is_retryable())
    }

    /// The route of an endpoint configured but waiting for its stream: a
    /// retry, with no change to its files, may serve it.
    pub(super) fn waiting_route(&self) -> Option<&Route> {
        match self {
            Self::Connect { route, source } if source.is_retryable() => Some(route),
            _ => None,
        }
    }
}

/// Where a pool's files are, and how its endpoints store deliveries.
#[derive(Debug, Clone)]
pub struct PoolSources {
    /// The directory (`--pool-dir`).
    pub dir: PathBuf,
    /// The pool's NATS connection, shared by every endpoint.
    pub nats: async_nats::Client,
    /// How long to wait for JetStream's acknowledgement.
    pub publish_timeout: Duration,
    /// `--max-body-bytes`: the body cap of a manifest that sets none.
    pub default_body_limit: usize,
    /// The fetched-key presets' key fetcher (`None`: the process's).
    pub key_fetcher: Option<Arc<KeyFetcher>>,
    /// The published lists of `spec.allowedSources`, shared.
    pub ranges: Option<Arc<LocalRanges>>,
}

impl PoolSources {
    fn layout(&self) -> SecretsLayout {
        SecretsLayout::Pool(self.dir.clone())
    }
}

/// One endpoint's configuration as loaded.
#[derive(Debug)]
pub(super) struct Loaded {
    pub(super) endpoint: EndpointManifest,
    pub(super) pipeline: EndpointPipeline,
    pub(super) sha256: String,
}

/// Loads the endpoint `name` of the pool; `served` is the target it is
/// served with now (its stream is not looked up again when unchanged).
pub(super) async fn load(
    sources: &PoolSources,
    name: &str,
    served: Option<&Target>,
) -> Result<Loaded, PoolLoadError> {
    let path = sources.dir.join(layout::endpoint_file(name));
    let read_error = |source| {
        LoadError::from(ConfigError::Read {
            path: path.clone(),
            source,
        })
    };
    let bytes = std::fs::read(&path).map_err(read_error)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let text = String::from_utf8(bytes)
        .map_err(|err| read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, err)))?;
    let mut endpoint = hookwarden_crds::from_yaml(&text).map_err(|source| {
        LoadError::from(ConfigError::Manifest {
            path: path.clone(),
            source,
        })
    })?;
    let found = endpoint.metadata.name.clone().unwrap_or_default();
    if found != name {
        return Err(PoolLoadError::NameMismatch {
            path,
            expected: name.to_owned(),
            found,
        });
    }
    // The pool's NATS connection serves every endpoint: an endpoint's own
    // credentials do not apply (nor are they mounted).
    endpoint.spec.nats.credentials_secret_ref = None;
    if let Some(ranges) = &sources.ranges {
        reload::prepare_ranges(&endpoint, &path, ranges).await?;
    }
    let checked = reload::check_endpoint(
        endpoint,
        &path,
        &sources.layout(),
        sources.key_fetcher.clone(),
        sources.ranges.as_deref(),
    )?;
    let route = Route::of(checked.endpoint.spec.ingress.as_ref());
    let (endpoint, pipeline) = checked
        .connect(
            sources.nats.clone(),
            sources.publish_timeout,
            sources.default_body_limit,
            served,
        )
        .await
        .map_err(|source| PoolLoadError::Connect { route, source })?;
    Ok(Loaded {
        endpoint,
        pipeline,
        sha256,
    })
}

/// The fingerprint of the endpoint `name`'s files, and their stamps if a
/// later change to any of them is sure to show in them.
pub(super) fn fingerprint(
    sources: &PoolSources,
    name: &str,
    ranges_version: Option<u64>,
) -> ([u8; 32], Option<Stamps>) {
    let path = sources.dir.join(layout::endpoint_file(name));
    let mut reader = StampingReader::default();
    let fingerprint = reload::fingerprint_reading(
        &path,
        &sources.layout(),
        sources.ranges.as_deref(),
        &mut |file| reader.read(file),
    );
    (fingerprint, reader.finish(ranges_version))
}
