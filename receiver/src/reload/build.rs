//! Building the pipeline from one version of the files: checked without
//! NATS first, then connected.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hookwarden_crds::EndpointManifest;

use crate::clientip::{self, Networks, TrustedProxies};
use crate::limits::RateLimits;
use crate::publish::{Publisher, Target};
use crate::ranges;
use crate::ranges::local::{LocalRanges, RangesError};
use crate::request::{BodyLimitSource, RequestRules};
use crate::server::EndpointPipeline;
use crate::verify::keys::KeyFetcher;
use crate::{config, secrets, verify};

use super::error::LoadError;

/// Where the endpoint's files are, and how to store its deliveries.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The `WebhookEndpoint` manifest.
    pub endpoint: PathBuf,
    /// `<dir>/<secret name>/<key>`.
    pub secrets_dir: PathBuf,
    /// A connected NATS client, shared by every version of the pipeline.
    pub nats: async_nats::Client,
    /// How long to wait for JetStream's acknowledgement.
    pub publish_timeout: Duration,
    /// `--max-body-bytes`: the body cap when the manifest sets none.
    pub default_body_limit: usize,
    /// The fetched-key presets' key fetcher (`app::Settings::key_fetcher`;
    /// `None`: the process's), kept across reloads so its cache is too.
    pub key_fetcher: Option<Arc<KeyFetcher>>,
    /// The published lists of `spec.allowedSources`, kept across reloads.
    pub ranges: Option<Arc<LocalRanges>>,
}

/// The parts of a pipeline that need no NATS connection, so a bad manifest
/// is reported before anything is contacted.
#[derive(Debug)]
pub struct Checked {
    /// The manifest as read.
    pub endpoint: EndpointManifest,
    /// Where it was read from, for messages.
    path: PathBuf,
    /// Stream and subjects.
    pub target: Target,
    /// Everything else of the pipeline, still without a publisher.
    verifier: Box<dyn verify::Verifier>,
    proxies: Networks,
    allowed: Networks,
    limits: RateLimits,
    /// Its body cap still the default's until [`Checked::connect`].
    request: RequestRules,
    /// The `.creds` file of `spec.nats.credentialsSecretRef`.
    credentials: Option<secrets::Secret>,
}

/// Reads and checks the manifest and its secrets.
pub fn check(endpoint_path: &Path, secrets_dir: &Path) -> Result<Checked, LoadError> {
    check_with_fetcher(endpoint_path, secrets_dir, None, None)
}

/// As [`check`], after fetching (or reading the saved copies of) the lists
/// of the manifest's `allowedSources` into `ranges`: what a receiver does
/// at start and on every reload.
pub async fn check_fetching(
    endpoint_path: &Path,
    secrets_dir: &Path,
    key_fetcher: Option<Arc<KeyFetcher>>,
    ranges: Option<&LocalRanges>,
) -> Result<Checked, LoadError> {
    if let Some(ranges) = ranges {
        let endpoint = config::load_endpoint(endpoint_path)?;
        prepare_ranges(&endpoint, endpoint_path, ranges).await?;
    }
    check_with_fetcher(endpoint_path, secrets_dir, key_fetcher, ranges)
}

/// Fetches (or reads the saved copies of) the lists of `endpoint`'s
/// `allowedSources` (read from `path`) into `ranges`.
pub async fn prepare_ranges(
    endpoint: &EndpointManifest,
    path: &Path,
    ranges: &LocalRanges,
) -> Result<(), LoadError> {
    let sources =
        ranges::sources_of(&endpoint.spec).map_err(|(index, source)| LoadError::Source {
            path: path.to_owned(),
            index,
            source,
        })?;
    ranges.prepare(&sources).await?;
    Ok(())
}

/// As [`check`], the fetched-key presets fetching through `key_fetcher`
/// (`None`: the process's), the ranges of `allowedSources` read from
/// `ranges` (prepared; `None`: a manifest with `allowedSources` does not
/// load).
pub fn check_with_fetcher(
    endpoint_path: &Path,
    secrets_dir: &Path,
    key_fetcher: Option<Arc<KeyFetcher>>,
    ranges: Option<&LocalRanges>,
) -> Result<Checked, LoadError> {
    let endpoint = config::load_endpoint(endpoint_path)?;
    check_endpoint(
        endpoint,
        endpoint_path,
        &secrets::SecretsLayout::PerSecret(secrets_dir.to_owned()),
        key_fetcher,
        ranges,
    )
}

/// As [`check_with_fetcher`], for the manifest `endpoint` already read
/// from `path`, its secrets where `layout` has them.
pub fn check_endpoint(
    endpoint: EndpointManifest,
    path: &Path,
    layout: &secrets::SecretsLayout,
    key_fetcher: Option<Arc<KeyFetcher>>,
    ranges: Option<&LocalRanges>,
) -> Result<Checked, LoadError> {
    let target = Target::for_endpoint(&endpoint).map_err(|source| LoadError::Target {
        path: path.to_owned(),
        source,
    })?;
    let verifier = verify::for_endpoint_with_fetcher(
        &endpoint.spec,
        |refs| secrets::load_from(layout, refs),
        key_fetcher,
    )?;
    let cidr = |source| LoadError::Cidr {
        path: path.to_owned(),
        source,
    };
    let mut allowed = Networks::parse(
        clientip::ALLOWED_SOURCE_CIDRS_FIELD,
        &endpoint.spec.allowed_source_cidrs,
    )
    .map_err(cidr)?;
    let sources =
        ranges::sources_of(&endpoint.spec).map_err(|(index, source)| LoadError::Source {
            path: path.to_owned(),
            index,
            source,
        })?;
    if let Some(first) = sources.first() {
        let local = ranges.ok_or_else(|| RangesError::NotPrepared(first.describe()))?;
        allowed = allowed.with(local.networks(&sources)?);
    }
    let proxies = Networks::parse(
        clientip::TRUSTED_PROXIES_FIELD,
        &endpoint.spec.trusted_proxies,
    )
    .map_err(cidr)?;
    let limits = RateLimits::from_spec(endpoint.spec.rate_limit.as_ref()).map_err(|source| {
        LoadError::RateLimit {
            path: path.to_owned(),
            source,
        }
    })?;
    let request = RequestRules::from_spec(
        endpoint.spec.request.as_ref(),
        crate::request::DEFAULT_BODY_LIMIT,
    )
    .map_err(|source| LoadError::Request {
        path: path.to_owned(),
        source,
    })?;
    let credentials = match &endpoint.spec.nats.credentials_secret_ref {
        Some(reference) => {
            Some(secrets::load_one(layout, reference).map_err(LoadError::CredentialsFile)?)
        }
        None => None,
    };
    Ok(Checked {
        endpoint,
        request,
        path: path.to_owned(),
        target,
        verifier,
        proxies,
        allowed,
        limits,
        credentials,
    })
}

impl Checked {
    /// How to connect to NATS: with the endpoint's `.creds` file when it
    /// references one. Read once at start: the operator rolls the pods when
    /// the credentials change, a standalone receiver must be restarted.
    /// The connection is named after the endpoint
    /// ([`crate::publish::client_name`]), so NATS's own views of its
    /// clients (`/connz`, `nats server report connections`) say which
    /// endpoint's receiver a connection is.
    pub fn connect_options(&self) -> Result<async_nats::ConnectOptions, LoadError> {
        let reference = self.endpoint.spec.nats.credentials_secret_ref.as_ref();
        let credentials = reference.zip(self.credentials.as_ref());
        Ok(crate::publish::connect_options(credentials)?
            .name(crate::publish::client_name(&self.endpoint)))
    }

    /// The pipeline, once the endpoint's stream exists and its body cap
    /// (`spec.request.maxBodyBytes`, else `default_body_limit`) fits in the
    /// NATS server's `max_payload`: a pipeline that is returned can take
    /// deliveries. A stream already known to exist (`served` is the target
    /// being served, unchanged) is not looked up again, so a reload that
    /// only rotates a secret applies while NATS is away.
    pub async fn connect(
        self,
        nats: async_nats::Client,
        publish_timeout: Duration,
        default_body_limit: usize,
        served: Option<&Target>,
    ) -> Result<(EndpointManifest, EndpointPipeline), LoadError> {
        let request = self.request.with_default_body_limit(default_body_limit);
        check_body_limit(
            &self.path,
            request.body_limit(),
            request.body_limit_source(),
            nats.server_info().max_payload,
        )?;
        let known = served == Some(&self.target);
        let publisher = Publisher::new(nats, self.target, publish_timeout);
        if !known {
            publisher.ensure_stream().await?;
        }
        // The Ingress forwards the path the provider called; standalone the
        // same setting names the public path.
        let path = self
            .endpoint
            .spec
            .ingress
            .as_ref()
            .map_or_else(|| "/".to_owned(), |ingress| ingress.path.clone());
        let pipeline = EndpointPipeline {
            path,
            verifier: self.verifier,
            publisher,
            proxies: TrustedProxies::new(
                self.proxies,
                self.endpoint.spec.forwarded_headers.unwrap_or_default(),
            ),
            allowed: self.allowed,
            limits: Some(self.limits),
            request,
            payload: self
                .endpoint
                .spec
                .logging
                .as_ref()
                .map(|l| l.payload)
                .unwrap_or_default(),
            trust_incoming_traceparent: self
                .endpoint
                .spec
                .traces
                .as_ref()
                .is_some_and(|t| t.trust_incoming_traceparent),
        };
        Ok((self.endpoint, pipeline))
    }
}

/// Builds the whole pipeline from the files; `served` is the target being
/// served (its stream is not looked up again when unchanged).
pub async fn load(
    sources: &Sources,
    served: Option<&Target>,
) -> Result<(EndpointManifest, EndpointPipeline), LoadError> {
    check_fetching(
        &sources.endpoint,
        &sources.secrets_dir,
        sources.key_fetcher.clone(),
        sources.ranges.as_deref(),
    )
    .await?
    .connect(
        sources.nats.clone(),
        sources.publish_timeout,
        sources.default_body_limit,
        served,
    )
    .await
}

/// Room for the headers stored with a body (see `publish::headers`).
pub const HEADER_HEADROOM: usize = 4096;

/// Refuses a body cap above the NATS server's `max_payload`; warns when the
/// cap fits but leaves no room for the headers stored with the body (bodies
/// near the cap are then refused with 413 at publish).
pub(super) fn check_body_limit(
    path: &Path,
    limit: usize,
    source: BodyLimitSource,
    max_payload: usize,
) -> Result<(), LoadError> {
    if max_payload == 0 {
        // Not connected yet: the server's limit is unknown (publishing
        // still refuses an oversized message with 413).
        return Ok(());
    }
    if limit > max_payload {
        return Err(LoadError::BodyLimitOverMaxPayload {
            path: path.to_owned(),
            limit,
            set_by: source,
            max_payload,
        });
    }
    if max_payload < limit.saturating_add(HEADER_HEADROOM) {
        tracing::warn!(
            max_payload,
            body_limit = limit,
            setting = source.setting(),
            "the NATS server's max_payload is below the body cap plus headers; \
             bodies near the cap will be refused with 413"
        );
    }
    Ok(())
}

/// Says once per loaded version whether the endpoint restricts source IPs,
/// so an operator who expected a restriction notices its absence.
pub fn log_source_restriction(endpoint: &EndpointManifest, pipeline: &EndpointPipeline) {
    let name = pipeline.publisher.target().endpoint.as_str();
    if pipeline.allowed.is_empty() {
        tracing::warn!(
            endpoint = name,
            "spec.allowedSourceCidrs is empty: no IP restriction"
        );
    } else {
        tracing::info!(
            endpoint = name,
            allowed = %pipeline.allowed,
            published_lists = endpoint.spec.allowed_sources.len(),
            trusted_proxies = ?endpoint.spec.trusted_proxies,
            "accepting deliveries only from the allowed source networks"
        );
    }
}
