//! Building the endpoint's pipeline from its files, and rebuilding it when
//! they change.
//!
//! Kubernetes updates a mounted Secret in place by swapping a symlink, so
//! the receiver cannot rely on file events; it polls instead: every few
//! seconds it hashes the manifest and every secret file the manifest names,
//! and when the hash changes it builds a new pipeline. A broken new
//! configuration (bad YAML, a missing or empty secret, a bad CIDR) is logged
//! and the running one keeps serving; nothing is dropped either way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hookwarden_crds::{SecretKeyRef, WebhookEndpoint, WebhookEndpointSpec};
use sha2::{Digest, Sha256};

use crate::clientip::{self, CidrError, Networks, TrustedProxies};
use crate::limits::{RateError, RateLimits};
use crate::publish::{CredentialsError, EnsureStreamError, Publisher, Target, TargetError};
use crate::ranges::local::{LocalRanges, RangesError};
use crate::ranges::{self, SourceError};
use crate::request::{BodyLimitSource, RequestError, RequestRules};
use crate::server::{AppState, EndpointPipeline};
use crate::verify::keys::KeyFetcher;
use crate::{config, secrets, verify};

/// How often the files are checked for changes by default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

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

/// Every secret the spec refers to, in any check.
pub fn secret_refs(spec: &WebhookEndpointSpec) -> Vec<&SecretKeyRef> {
    let mut refs: Vec<&SecretKeyRef> = spec.secret_refs.iter().collect();
    if let Some(verification) = &spec.verification {
        let checks = [
            verification.token.as_ref().map(|c| &c.secret_refs),
            verification.basic_auth.as_ref().map(|c| &c.secret_refs),
            verification.hmac.as_ref().map(|c| &c.secret_refs),
        ];
        refs.extend(checks.into_iter().flatten().flatten());
    }
    if let Some(handshake) = &spec.handshake {
        refs.extend(&handshake.verify_token_refs);
    }
    refs
}

/// A hash of the manifest and of every secret file it names (a missing file
/// hashes differently from an empty one), so any change, including a
/// symlink swap, is noticed.
pub fn fingerprint(endpoint: &Path, secrets_dir: &Path) -> [u8; 32] {
    fingerprint_with(endpoint, secrets_dir, None)
}

/// As [`fingerprint`], and the saved files of the manifest's
/// `allowedSources` lists and the version of the lists in memory, so a
/// changed list is a changed configuration.
pub fn fingerprint_with(
    endpoint: &Path,
    secrets_dir: &Path,
    ranges: Option<&LocalRanges>,
) -> [u8; 32] {
    fingerprint_in(
        endpoint,
        &secrets::SecretsLayout::PerSecret(secrets_dir.to_owned()),
        ranges,
    )
}

/// As [`fingerprint_with`], the secrets' files where `layout` has them.
pub fn fingerprint_in(
    endpoint: &Path,
    layout: &secrets::SecretsLayout,
    ranges: Option<&LocalRanges>,
) -> [u8; 32] {
    fingerprint_reading(endpoint, layout, ranges, &mut |path| {
        std::fs::read(path).ok()
    })
}

/// As [`fingerprint_in`], every file read through `read` (`None`: missing
/// or unreadable), so a caller can note what each file was when read
/// ([`crate::pool::stamps`]).
pub fn fingerprint_reading(
    endpoint: &Path,
    layout: &secrets::SecretsLayout,
    ranges: Option<&LocalRanges>,
    read: &mut dyn FnMut(&Path) -> Option<Vec<u8>>,
) -> [u8; 32] {
    let mut hash = Sha256::new();
    let manifest = read(endpoint);
    feed(&mut hash, manifest.as_deref());
    let parsed = manifest
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| hookwarden_crds::from_yaml(&text).ok());
    if let Some(endpoint) = parsed {
        for secret in secret_refs(&endpoint.spec) {
            let content = layout.path(secret).and_then(|path| read(&path));
            feed(&mut hash, content.as_deref());
        }
        if let (Some(ranges), Ok(sources)) = (ranges, ranges::sources_of(&endpoint.spec)) {
            for source in &sources {
                let content = ranges.file_of(source).and_then(|file| read(&file));
                feed(&mut hash, content.as_deref());
            }
        }
    }
    if let Some(ranges) = ranges {
        hash.update(ranges.version().to_be_bytes());
    }
    hash.finalize().into()
}

fn feed(hash: &mut Sha256, content: Option<&[u8]>) {
    match content {
        Some(bytes) => {
            hash.update([1]);
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        }
        None => hash.update([0]),
    }
}

/// The parts of a pipeline that need no NATS connection, so a bad manifest
/// is reported before anything is contacted.
#[derive(Debug)]
pub struct Checked {
    /// The manifest as read.
    pub endpoint: WebhookEndpoint,
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
    endpoint: &WebhookEndpoint,
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
    endpoint: WebhookEndpoint,
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
        crate::server::DEFAULT_BODY_LIMIT,
    )
    .map_err(|source| LoadError::Request {
        path: path.to_owned(),
        source,
    })?;
    let credentials = match &endpoint.spec.nats.credentials_secret_ref {
        Some(reference) => secrets::load_from(layout, std::slice::from_ref(reference))
            .map_err(LoadError::CredentialsFile)?
            .into_iter()
            .next(),
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
    ) -> Result<(WebhookEndpoint, EndpointPipeline), LoadError> {
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
) -> Result<(WebhookEndpoint, EndpointPipeline), LoadError> {
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

/// The longest wait between two attempts to load a configuration that
/// failed: a broken file is retried (and reported) at most once a minute.
pub const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(60);

/// A version of the files that could not be loaded, and when to try again.
#[derive(Debug)]
struct Failed {
    fingerprint: [u8; 32],
    attempts: u32,
    retry_at: Option<tokio::time::Instant>,
}

/// The wait after the `attempts`-th failure of one version: the poll
/// interval doubled each time, at most [`MAX_RETRY_INTERVAL`].
pub fn retry_delay(interval: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(16));
    interval.saturating_mul(factor).min(MAX_RETRY_INTERVAL)
}

/// Room for the headers stored with a body (see `publish::headers`).
pub const HEADER_HEADROOM: usize = 4096;

/// Refuses a body cap above the NATS server's `max_payload`; warns when the
/// cap fits but leaves no room for the headers stored with the body (bodies
/// near the cap are then refused with 413 at publish).
fn check_body_limit(
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
pub fn log_source_restriction(endpoint: &WebhookEndpoint, pipeline: &EndpointPipeline) {
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

/// Polls the files every `interval` until `shutdown`, and swaps a rebuilt
/// pipeline into `state` whenever they changed and the new version loads.
///
/// A version is marked applied only once it loaded. One that fails is
/// tried again when the files change; when the failure can pass on its own
/// (NATS unreachable while a changed stream is set up:
/// [`LoadError::is_retryable`]) it is also retried with backoff
/// ([`retry_delay`]). Meanwhile the previous version keeps serving, and
/// `readiness` (`/readyz`'s text) and the `hookwarden_config_stale` metric
/// say why.
pub async fn watch(
    sources: Sources,
    state: AppState,
    interval: Duration,
    readiness: crate::ops::Readiness,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let fingerprint = |sources: &Sources| {
        fingerprint_with(
            &sources.endpoint,
            &sources.secrets_dir,
            sources.ranges.as_deref(),
        )
    };
    let mut applied = fingerprint(&sources);
    // The version that failed, and when to try it again (`None`: only once
    // the files change).
    let mut current_limits = config::load_endpoint(&sources.endpoint)
        .ok()
        .map(|e| e.spec.rate_limit);
    let mut failed: Option<Failed> = None;
    let metrics = std::sync::Arc::clone(state.metrics());
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        let seen = fingerprint(&sources);
        if seen == applied {
            if failed.take().is_some() {
                // The files went back to the version being served.
                readiness.set_config_stale(None);
                metrics.config_stale.set(0);
                tracing::info!("configuration files are back to the served version");
            }
            continue;
        }
        let attempts = match &failed {
            Some(f) if f.fingerprint == seen => match f.retry_at {
                Some(at) if tokio::time::Instant::now() >= at => f.attempts + 1,
                _ => continue,
            },
            _ => 1,
        };
        let served = state.target();
        match load(&sources, Some(&served)).await {
            Ok((endpoint, mut pipeline)) => {
                if current_limits.as_ref() == Some(&endpoint.spec.rate_limit) {
                    // Unchanged limits keep their buckets.
                    pipeline.limits = None;
                }
                current_limits = Some(endpoint.spec.rate_limit.clone());
                log_source_restriction(&endpoint, &pipeline);
                state.replace(pipeline);
                applied = seen;
                failed = None;
                readiness.set_config_stale(None);
                metrics.config_stale.set(0);
                metrics.record_reload("applied");
                tracing::info!(
                    endpoint = state.endpoint().as_str(),
                    attempts,
                    "configuration reloaded"
                );
            }
            Err(err) => {
                let delay = err.is_retryable().then(|| retry_delay(interval, attempts));
                readiness.set_config_stale(Some(err.to_string()));
                metrics.config_stale.set(1);
                metrics.record_reload("failed");
                tracing::error!(
                    error = %err,
                    attempts,
                    retry_in_secs = delay.map(|d| d.as_secs_f64()),
                    "configuration changed but cannot be loaded; still serving the previous one"
                );
                failed = Some(Failed {
                    fingerprint: seen,
                    attempts,
                    retry_at: delay.map(|delay| tokio::time::Instant::now() + delay),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_minute() {
        let interval = Duration::from_secs(2);
        let delays: Vec<u64> = (1..=8)
            .map(|n| retry_delay(interval, n).as_secs())
            .collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(interval, u32::MAX), MAX_RETRY_INTERVAL);
    }

    const MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
        metadata: {name: gh}\nspec:\n  provider: generic\n  secretRefs: [{name: s, key: a}]\n  \
        verification: {hmac: {signatureHeader: X-Sig, secretRefs: [{name: h, key: b}]}}\n";

    #[test]
    fn a_body_cap_above_max_payload_is_refused_naming_both() {
        let path = Path::new("endpoint.yaml");
        let err = check_body_limit(path, 2_000_000, BodyLimitSource::Spec, 1_048_576)
            .expect_err("over max_payload");
        let text = err.to_string();
        for part in [
            "2000000",
            "1048576",
            "spec.request.maxBodyBytes",
            "endpoint.yaml",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(check_body_limit(path, 1_048_576, BodyLimitSource::Flag, 1_048_576).is_ok());
        assert!(
            check_body_limit(path, 2_000_000, BodyLimitSource::Flag, 0).is_ok(),
            "unknown max_payload"
        );
    }

    #[test]
    fn every_referenced_secret_is_listed() {
        let endpoint = hookwarden_crds::from_yaml(MANIFEST).expect("manifest");
        let refs: Vec<String> = secret_refs(&endpoint.spec)
            .iter()
            .map(|r| format!("{}/{}", r.name, r.key))
            .collect();
        assert_eq!(refs, ["s/a", "h/b"]);
    }

    #[test]
    fn the_fingerprint_follows_the_manifest_and_every_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = dir.path().join("endpoint.yaml");
        let secrets = dir.path().join("secrets");
        std::fs::create_dir_all(secrets.join("h")).expect("mkdir");
        std::fs::write(&manifest, MANIFEST).expect("write");
        let missing = fingerprint(&manifest, &secrets);
        std::fs::write(secrets.join("h/b"), "").expect("write");
        let empty = fingerprint(&manifest, &secrets);
        assert_ne!(missing, empty, "a missing file differs from an empty one");
        std::fs::write(secrets.join("h/b"), "key-1").expect("write");
        let first = fingerprint(&manifest, &secrets);
        assert_eq!(
            first,
            fingerprint(&manifest, &secrets),
            "stable while nothing changes"
        );
        std::fs::write(secrets.join("h/b"), "key-2").expect("write");
        assert_ne!(
            first,
            fingerprint(&manifest, &secrets),
            "a rotated secret is noticed"
        );
        let rotated = fingerprint(&manifest, &secrets);
        std::fs::write(&manifest, MANIFEST.replace("X-Sig", "X-Signature")).expect("write");
        assert_ne!(
            rotated,
            fingerprint(&manifest, &secrets),
            "a changed manifest is noticed"
        );
    }
}
