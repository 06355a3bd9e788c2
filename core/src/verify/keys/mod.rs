//! Keys fetched from the network (AWS SNS and PayPal certificates, Google's
//! JWK Set), for the presets whose providers sign with them.
//!
//! A [`super::Verifier`] stays synchronous: before [`super::Verifier::check`]
//! the server awaits the verifier's [`super::Verifier::prefetch`], which
//! makes sure the key is in a [`KeyFetcher`]'s cache; `check` then reads it
//! from there. What is fetched is bounded on every side, because the URL
//! comes from a request that is not verified yet:
//!
//! - only URLs that pass the preset's host rule ([`url`]), over HTTPS with
//!   the system's roots, no redirects, a connect and a total timeout, a
//!   response size cap;
//! - one fetch per URL at a time (single flight), at most
//!   [`FetcherConfig::max_fetches`] per [`FetcherConfig::fetch_interval`]
//!   over all URLs, at most [`FetcherConfig::max_pending`] distinct URLs
//!   waiting;
//! - keys are kept for [`FetcherConfig::ttl`], then served stale while one
//!   refresh runs in the background, for up to [`FetcherConfig::max_stale`];
//! - a URL that failed is not tried again for
//!   [`FetcherConfig::negative_ttl`] (at most [`FetcherConfig::max_negative`]
//!   remembered).
//!
//! Anything refused by these bounds is [`KeyError::Unavailable`]: the
//! provider gets a 503 and retries, while keys already cached keep working.
//!
//! A certificate is believed only once it passed its provider's checks
//! ([`certificate`]: validity dates at the verifier's clock, subject, and
//! for PayPal the chain to the roots the fetch trusts); one that fails is
//! [`KeyError::Certificate`], remembered like any failed fetch, and checked
//! again at every use so that it is not believed past its dates while it
//! is cached.

pub mod certificate;
pub mod https;
pub mod material;
pub mod url;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use certificate::{CertificateFault, Signer};
pub use material::{Jwk, RsaDigest, RsaKey};
pub use url::KeyUrl;

/// Why a key could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The URL is not one the preset fetches from; nothing was fetched.
    #[error("the key URL is not on the provider's hosts")]
    NotAllowed,
    /// The fetch failed, timed out, returned no usable key, or was refused
    /// by the fetch bounds; retrying later may succeed.
    #[error("key unavailable: {0}")]
    Unavailable(&'static str),
    /// The fetched certificate failed its provider's checks.
    #[error(transparent)]
    Certificate(#[from] CertificateFault),
}

/// What a URL serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A PEM X.509 certificate (chain) of `signer`, checked at `now` (the
    /// verifier's clock, Unix seconds): its first certificate's RSA key.
    Certificate {
        /// Whose certificate it must be.
        signer: Signer,
        /// The time its validity is checked at.
        now: i64,
    },
    /// A JWK Set: its RSA keys.
    Jwks,
}

/// Keys fetched from one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// A signing certificate (PEM, with its intermediates) that passed its
    /// checks when fetched; [`KeyFetcher::certificate_key`] checks it again
    /// at each use.
    Certificate(Bytes),
    /// From a JWK Set.
    Jwks(Vec<Jwk>),
}

/// The fetcher's bounds and where it connects.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Bound on a whole fetch: connect, TLS, request, response.
    pub total_timeout: Duration,
    /// The largest response body read; certificates and Google's JWKS are a
    /// few KiB.
    pub max_body_bytes: usize,
    /// How long fetched keys are used without a refresh.
    pub ttl: Duration,
    /// How long after `ttl` keys are still served while a refresh runs.
    pub max_stale: Duration,
    /// How long a failed URL is not tried again.
    pub negative_ttl: Duration,
    /// How many failed URLs are remembered.
    pub max_negative: usize,
    /// How many URLs' keys are kept.
    pub max_cached: usize,
    /// At most this many fetches …
    pub max_fetches: u32,
    /// … per this interval, over all URLs.
    pub fetch_interval: Duration,
    /// At most this many distinct URLs waiting for a fetch at once.
    pub max_pending: usize,
    /// A JWK Set is fetched again for an unknown `kid` at most this often.
    pub min_refresh: Duration,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
            ttl: Duration::from_secs(3600),
            max_stale: Duration::from_secs(24 * 3600),
            negative_ttl: Duration::from_secs(60),
            max_negative: 1024,
            max_cached: 256,
            max_fetches: 20,
            fetch_interval: Duration::from_secs(60),
            max_pending: 16,
            min_refresh: Duration::from_secs(60),
        }
    }
}

#[derive(Debug)]
struct Entry {
    keys: Arc<Keys>,
    fetched: Instant,
    refreshing: bool,
}

#[derive(Debug, Default)]
struct State {
    cache: HashMap<KeyUrl, Entry>,
    /// URL → when and why it failed.
    failed: HashMap<KeyUrl, Failure>,
    /// URL → its single-flight lock.
    pending: HashMap<KeyUrl, Arc<tokio::sync::Mutex<()>>>,
    /// Fetches started in the current interval, and when it began.
    window: Option<(Instant, u32)>,
}

/// Fetches and caches keys; one per process ([`KeyFetcher::shared`]), so
/// its bounds hold over every verifier and survive configuration reloads.
#[derive(Debug)]
pub struct KeyFetcher {
    config: FetcherConfig,
    /// The system's roots and DNS, but for [`KeyFetcher::with_test_routes`].
    client: https::HttpsClient,
    state: Mutex<State>,
}

/// A failed URL: when, and why (answered again until `negative_ttl`).
#[derive(Debug, Clone)]
struct Failure {
    at: Instant,
    error: KeyError,
}

impl KeyFetcher {
    /// A fetcher with `config`: the system's roots, hosts resolved by DNS.
    pub fn new(config: FetcherConfig) -> Arc<Self> {
        Self::build(config, https::HttpsClient::new())
    }

    /// FOR TESTS ONLY: a fetcher that trusts `roots` instead of the
    /// system's and connects to `routes[host]` instead of resolving `host`,
    /// so a loopback key server can stand in for a provider's hosts.
    ///
    /// It cannot widen what is fetched: the fetcher only ever GETs a
    /// [`KeyUrl`], which only the preset's host rule ([`url`]) makes, so a
    /// route is looked up only for a URL that already passed that rule (a
    /// route for any other name is never used); the TLS name checked is
    /// still the URL's host. The receiver binary never calls this: no flag
    /// or environment variable reaches it, only
    /// `app::Settings::key_fetcher`, which tests set.
    pub fn with_test_routes(
        config: FetcherConfig,
        roots: rustls::RootCertStore,
        routes: HashMap<String, SocketAddr>,
    ) -> Arc<Self> {
        Self::build(config, https::HttpsClient::with_test_routes(roots, routes))
    }

    fn build(config: FetcherConfig, client: https::HttpsClient) -> Arc<Self> {
        Arc::new(Self {
            config,
            client,
            state: Mutex::new(State::default()),
        })
    }

    /// The process's fetcher, with the default bounds and the system's roots.
    pub fn shared() -> Arc<Self> {
        static SHARED: OnceLock<Arc<KeyFetcher>> = OnceLock::new();
        Arc::clone(SHARED.get_or_init(|| Self::new(FetcherConfig::default())))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves only caches behind.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The keys cached for `url`, fresh or stale within `max_stale`; what
    /// a synchronous `check` reads.
    pub fn cached(&self, url: &KeyUrl) -> Option<Arc<Keys>> {
        let state = self.state();
        let entry = state.cache.get(url)?;
        (entry.fetched.elapsed() <= self.config.ttl + self.config.max_stale)
            .then(|| Arc::clone(&entry.keys))
    }

    /// Makes sure `url`'s keys are cached: fresh ones as they are, stale
    /// ones while a background refresh runs, none by fetching now.
    pub async fn ensure(self: &Arc<Self>, url: &KeyUrl, kind: KeyKind) -> Result<(), KeyError> {
        let stale = {
            let state = self.state();
            match state.cache.get(url) {
                Some(entry) if entry.fetched.elapsed() <= self.config.ttl => return Ok(()),
                Some(entry)
                    if entry.fetched.elapsed() <= self.config.ttl + self.config.max_stale =>
                {
                    Some(entry.refreshing)
                }
                _ => None,
            }
        };
        match stale {
            Some(true) => Ok(()),
            Some(false) => {
                if let Some(entry) = self.state().cache.get_mut(url) {
                    entry.refreshing = true;
                }
                let fetcher = Arc::clone(self);
                let url = url.clone();
                tokio::spawn(async move {
                    let refreshed = fetcher.fetch_once(&url, kind, None).await;
                    if refreshed.is_err()
                        && let Some(entry) = fetcher.state().cache.get_mut(&url)
                    {
                        entry.refreshing = false;
                    }
                });
                Ok(())
            }
            None => self.fetch_once(&url.clone(), kind, None).await,
        }
    }

    /// As [`KeyFetcher::ensure`], and for a JWK Set that lacks `kid`, one
    /// fetch again unless the set was fetched less than
    /// [`FetcherConfig::min_refresh`] ago (a flood of made-up `kid`s causes
    /// at most one fetch per that interval).
    pub async fn ensure_kid(self: &Arc<Self>, url: &KeyUrl, kid: &str) -> Result<(), KeyError> {
        self.ensure(url, KeyKind::Jwks).await?;
        let known = self.cached(url).is_some_and(|keys| match keys.as_ref() {
            Keys::Jwks(set) => set.iter().any(|k| k.kid == kid),
            Keys::Certificate(_) => false,
        });
        if known {
            return Ok(());
        }
        let min = self.config.min_refresh;
        // The unknown kid is then refused by `check` as a mismatch.
        self.fetch_once(url, KeyKind::Jwks, Some(min))
            .await
            .or(Ok(()))
    }

    /// GETs `url` once, discarding the answer (SNS `SubscribeURL`), under
    /// the same bounds as key fetches.
    pub async fn visit(self: &Arc<Self>, url: &KeyUrl) -> Result<(), KeyError> {
        self.take_budget()?;
        self.download(url).await.map(drop)
    }

    /// Fetches `url` unless another task is fetching it (then waits for
    /// that one), it failed recently, or (with `not_within`) it was fetched
    /// within that long.
    async fn fetch_once(
        self: &Arc<Self>,
        url: &KeyUrl,
        kind: KeyKind,
        not_within: Option<Duration>,
    ) -> Result<(), KeyError> {
        let lock = {
            let mut state = self.state();
            if let Some(failed) = state.failed.get(url) {
                if failed.at.elapsed() < self.config.negative_ttl {
                    return Err(failed.recent());
                }
                state.failed.remove(url);
            }
            if !state.pending.contains_key(url) && state.pending.len() >= self.config.max_pending {
                return Err(KeyError::Unavailable("too many key fetches pending"));
            }
            Arc::clone(state.pending.entry(url.clone()).or_default())
        };
        let _guard = lock.lock().await;
        let result = self.fetch_locked(url, kind, not_within).await;
        let mut state = self.state();
        // The last waiter out removes the lock (the map holds one, each
        // waiter one, and `lock` here one).
        if Arc::strong_count(&lock) <= 2 {
            state.pending.remove(url);
        }
        result
    }

    async fn fetch_locked(
        &self,
        url: &KeyUrl,
        kind: KeyKind,
        not_within: Option<Duration>,
    ) -> Result<(), KeyError> {
        {
            let state = self.state();
            // Done by the task this one waited for?
            if let Some(entry) = state.cache.get(url) {
                let age = entry.fetched.elapsed();
                if age <= not_within.unwrap_or(Duration::ZERO)
                    || (not_within.is_none() && age <= self.config.ttl)
                {
                    return Ok(());
                }
            }
            if let Some(failed) = state
                .failed
                .get(url)
                .filter(|f| f.at.elapsed() < self.config.negative_ttl)
            {
                return Err(failed.recent());
            }
        }
        self.take_budget()?;
        let fetched = self
            .download(url)
            .await
            .and_then(|body| self.parse(url, kind, body));
        let mut state = self.state();
        match fetched {
            Ok(keys) => {
                if state.cache.len() >= self.config.max_cached && !state.cache.contains_key(url) {
                    evict_oldest(&mut state.cache, |e| e.fetched);
                }
                state.cache.insert(
                    url.clone(),
                    Entry {
                        keys: Arc::new(keys),
                        fetched: Instant::now(),
                        refreshing: false,
                    },
                );
                Ok(())
            }
            Err(err) => {
                let negative_ttl = self.config.negative_ttl;
                state.failed.retain(|_, f| f.at.elapsed() < negative_ttl);
                if state.failed.len() >= self.config.max_negative {
                    evict_oldest(&mut state.failed, |f| f.at);
                }
                state.failed.insert(
                    url.clone(),
                    Failure {
                        at: Instant::now(),
                        error: err.clone(),
                    },
                );
                Err(err)
            }
        }
    }

    /// The keys in `body`, fetched from `url` as `kind`.
    fn parse(&self, url: &KeyUrl, kind: KeyKind, body: Bytes) -> Result<Keys, KeyError> {
        match kind {
            KeyKind::Certificate { signer, now } => {
                self.check_certificate(&body, url, signer, now)?;
                Ok(Keys::Certificate(body))
            }
            KeyKind::Jwks => material::parse_jwks(&body)
                .map(Keys::Jwks)
                .ok_or(KeyError::Unavailable("no usable key")),
        }
    }

    /// `pem`'s signing key if it passes `signer`'s checks at `now`, with
    /// the roots this fetcher trusts for TLS.
    fn check_certificate(
        &self,
        pem: &[u8],
        url: &KeyUrl,
        signer: Signer,
        now: i64,
    ) -> Result<RsaKey, KeyError> {
        let roots = self
            .client
            .roots()
            .ok_or(KeyError::Unavailable("no TLS roots"))?;
        certificate::signing_key(pem, signer, url.host(), &roots.roots, now)
    }

    /// The key of `signer`'s certificate cached for `url`, checked again
    /// at `now` (a certificate may expire while it is cached); what a
    /// synchronous `check` verifies with.
    pub fn certificate_key(
        &self,
        url: &KeyUrl,
        signer: Signer,
        now: i64,
    ) -> Result<RsaKey, KeyError> {
        let keys = self
            .cached(url)
            .ok_or(KeyError::Unavailable("not cached"))?;
        let Keys::Certificate(pem) = keys.as_ref() else {
            return Err(KeyError::Unavailable("no certificate"));
        };
        self.check_certificate(pem, url, signer, now)
    }

    /// One fetch from the global budget, or `Unavailable`.
    fn take_budget(&self) -> Result<(), KeyError> {
        let mut state = self.state();
        let now = Instant::now();
        let (start, count) = match state.window {
            Some((start, count)) if now.duration_since(start) < self.config.fetch_interval => {
                (start, count)
            }
            _ => (now, 0),
        };
        if count >= self.config.max_fetches {
            return Err(KeyError::Unavailable("key fetch budget used up"));
        }
        state.window = Some((start, count + 1));
        Ok(())
    }

    /// One HTTPS GET of `url` ([`https::HttpsClient`]): the body of a
    /// `200`, at most `max_body_bytes`, within the timeouts. No redirect is
    /// followed.
    async fn download(&self, url: &KeyUrl) -> Result<Bytes, KeyError> {
        let limits = https::GetLimits {
            connect_timeout: self.config.connect_timeout,
            total_timeout: self.config.total_timeout,
            max_body_bytes: self.config.max_body_bytes,
            // Every key URL passed its preset's host rule; the receivers'
            // NetworkPolicy lets HTTPS out to public addresses only.
            public_only: false,
        };
        let answer = self
            .client
            .get(url, &[], limits)
            .await
            .map_err(KeyError::Unavailable)?;
        if answer.status != hyper::StatusCode::OK {
            return Err(KeyError::Unavailable("key host answered no 200"));
        }
        Ok(answer.body)
    }
}

impl Failure {
    /// What a request for the URL is told while the failure is remembered:
    /// a refused certificate keeps its reason, anything else is
    /// unavailable.
    fn recent(&self) -> KeyError {
        match self.error {
            KeyError::Certificate(fault) => KeyError::Certificate(fault),
            _ => KeyError::Unavailable("failed recently"),
        }
    }
}

/// Removes the entry `at` says is oldest.
fn evict_oldest<V>(map: &mut HashMap<KeyUrl, V>, at: impl Fn(&V) -> Instant) {
    if let Some(oldest) = map
        .iter()
        .min_by_key(|(_, value)| at(value))
        .map(|(url, _)| url.clone())
    {
        map.remove(&oldest);
    }
}

#[cfg(test)]
pub(crate) mod test_server {
    //! A key server on 127.0.0.1 port 0 with a test CA, and a fetcher that
    //! routes provider host names to it.

    use std::sync::atomic::{AtomicUsize, Ordering};

    use hyper::Request;
    use hyper_util::rt::TokioIo;

    pub(crate) use super::certificate::test_ca::{TestCa, pem};
    use super::*;

    /// A TLS listener on 127.0.0.1 port 0 for the names `hosts`, with a
    /// certificate from a fresh test CA, and the roots that trust it: what
    /// the key server and the source-range list server share.
    pub(crate) async fn tls_listener(
        hosts: &[&str],
    ) -> (
        tokio_rustls::TlsAcceptor,
        rustls::RootCertStore,
        tokio::net::TcpListener,
        SocketAddr,
    ) {
        tls_listener_of(&TestCa::new("key server CA"), hosts).await
    }

    /// As [`tls_listener`], with a certificate of `ca`.
    pub(crate) async fn tls_listener_of(
        ca: &TestCa,
        hosts: &[&str],
    ) -> (
        tokio_rustls::TlsAcceptor,
        rustls::RootCertStore,
        tokio::net::TcpListener,
        SocketAddr,
    ) {
        let (cert, key) = ca.tls(hosts);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der.clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        (acceptor, roots, listener, address)
    }

    /// A running test key server.
    #[derive(Debug)]
    pub(crate) struct KeyServer {
        pub(crate) address: SocketAddr,
        /// Requests answered so far.
        pub(crate) hits: Arc<AtomicUsize>,
        /// Paths requested, in order.
        pub(crate) paths: Arc<Mutex<Vec<String>>>,
        pub(crate) roots: Arc<rustls::RootCertStore>,
        hosts: Vec<String>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for KeyServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl KeyServer {
        /// Serves `files` (path → (status, body)) for the TLS names `hosts`.
        pub(crate) async fn start(hosts: &[&str], files: HashMap<String, (u16, Vec<u8>)>) -> Self {
            Self::start_of(&TestCa::new("key server CA"), hosts, files).await
        }

        /// As [`KeyServer::start`], with a TLS certificate of `ca`, which its
        /// fetchers trust (for TLS and for the signing certificates `ca`
        /// issues, as a user's fetcher trusts the system's roots).
        pub(crate) async fn start_of(
            ca: &TestCa,
            hosts: &[&str],
            files: HashMap<String, (u16, Vec<u8>)>,
        ) -> Self {
            let (acceptor, roots, listener, address) = tls_listener_of(ca, hosts).await;
            let hits = Arc::new(AtomicUsize::new(0));
            let paths = Arc::new(Mutex::new(Vec::new()));
            let files = Arc::new(files);
            let task = {
                let hits = Arc::clone(&hits);
                let paths = Arc::clone(&paths);
                tokio::spawn(async move {
                    loop {
                        let Ok((tcp, _)) = listener.accept().await else {
                            return;
                        };
                        let acceptor = acceptor.clone();
                        let hits = Arc::clone(&hits);
                        let paths = Arc::clone(&paths);
                        let files = Arc::clone(&files);
                        tokio::spawn(async move {
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let service = hyper::service::service_fn(
                                move |request: Request<hyper::body::Incoming>| {
                                    hits.fetch_add(1, Ordering::SeqCst);
                                    let target = request
                                        .uri()
                                        .path_and_query()
                                        .map(|p| p.as_str().to_owned())
                                        .unwrap_or_default();
                                    paths.lock().expect("paths").push(target.clone());
                                    let (status, body) = files
                                        .get(&target)
                                        .cloned()
                                        .unwrap_or((404, b"not found".to_vec()));
                                    async move {
                                        hyper::Response::builder()
                                            .status(status)
                                            .body(http_body_util::Full::new(Bytes::from(body)))
                                    }
                                },
                            );
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        });
                    }
                })
            };
            Self {
                address,
                hits,
                paths,
                roots: Arc::new(roots),
                hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
                task,
            }
        }

        /// A fetcher trusting the test CA and routing the server's hosts to it.
        pub(crate) fn fetcher(&self, config: FetcherConfig) -> Arc<KeyFetcher> {
            KeyFetcher::with_test_routes(
                config,
                self.roots.as_ref().clone(),
                self.hosts
                    .iter()
                    .map(|h| (h.clone(), self.address))
                    .collect(),
            )
        }

        pub(crate) fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::material::test_keys::*;
    use super::test_server::{KeyServer, TestCa, pem};
    use super::*;

    const HOST: &str = "sns.us-east-1.amazonaws.com";
    const PATH: &str = "/SimpleNotificationService-abc.pem";
    /// 2023-11-14, within the test certificates' dates.
    const NOW: i64 = 1_700_000_000;
    /// An SNS certificate, checked at `NOW`.
    const SNS: KeyKind = KeyKind::Certificate {
        signer: Signer::AwsSns,
        now: NOW,
    };

    /// An SNS signing certificate of the test signer, valid `from` to
    /// `until` (years), as SNS serves it: the leaf alone.
    fn sns_cert(from: i32, until: i32) -> String {
        let ca = TestCa::new("test SNS issuer");
        pem(&[&ca.issue(SIGNER_KEY, "sns.amazonaws.com", from, until)])
    }

    fn good_sns_cert() -> String {
        sns_cert(2020, 2100)
    }

    fn cert_url() -> KeyUrl {
        url::sns_cert_url(&format!("https://{HOST}{PATH}")).expect("url")
    }

    async fn server(status: u16, body: &[u8]) -> KeyServer {
        KeyServer::start(
            &[HOST],
            HashMap::from([(PATH.to_owned(), (status, body.to_vec()))]),
        )
        .await
    }

    #[tokio::test]
    async fn fetches_once_and_serves_from_cache() {
        let server = server(200, good_sns_cert().as_bytes()).await;
        let fetcher = server.fetcher(FetcherConfig::default());
        assert!(fetcher.cached(&cert_url()).is_none());
        fetcher.ensure(&cert_url(), SNS).await.expect("fetched");
        for _ in 0..5 {
            fetcher.ensure(&cert_url(), SNS).await.expect("cached");
        }
        assert_eq!(server.hits(), 1);
        assert!(matches!(
            fetcher.cached(&cert_url()).as_deref(),
            Some(Keys::Certificate(_))
        ));
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_fetch() {
        let server = server(200, good_sns_cert().as_bytes()).await;
        let fetcher = server.fetcher(FetcherConfig::default());
        let url = cert_url();
        let all = futures::future::join_all((0..10).map(|_| fetcher.ensure(&url, SNS))).await;
        assert!(all.iter().all(Result::is_ok), "{all:?}");
        assert_eq!(server.hits(), 1);
    }

    #[tokio::test]
    async fn failures_are_remembered_and_fetches_bounded() {
        let server = server(500, b"").await;
        let fetcher = server.fetcher(FetcherConfig::default());
        for _ in 0..5 {
            assert!(matches!(
                fetcher.ensure(&cert_url(), SNS).await,
                Err(KeyError::Unavailable(_))
            ));
        }
        assert_eq!(server.hits(), 1, "negative cache");
        // A flood of distinct URLs stops at the budget.
        let fetcher = server.fetcher(FetcherConfig {
            max_fetches: 3,
            ..FetcherConfig::default()
        });
        for i in 0..20 {
            let url =
                url::sns_cert_url(&format!("https://{HOST}/SimpleNotificationService-{i}.pem"))
                    .expect("url");
            assert!(fetcher.ensure(&url, SNS).await.is_err());
        }
        assert_eq!(server.hits(), 1 + 3);
    }

    #[tokio::test]
    async fn bad_answers_are_no_keys() {
        for (status, body) in [
            (200, &b"not a certificate"[..]),
            (404, good_sns_cert().as_bytes()),
            (302, b""),
            (200, &vec![b'a'; 100 * 1024]),
        ] {
            let server = server(status, body).await;
            let fetcher = server.fetcher(FetcherConfig::default());
            assert!(
                matches!(
                    fetcher.ensure(&cert_url(), SNS).await,
                    Err(KeyError::Unavailable(_))
                ),
                "{status}"
            );
            assert!(fetcher.cached(&cert_url()).is_none());
        }
    }

    #[tokio::test]
    async fn an_untrusted_server_is_not_believed() {
        let server = server(200, good_sns_cert().as_bytes()).await;
        // The system's roots (or none) do not include the test CA.
        let fetcher = KeyFetcher::with_test_routes(
            FetcherConfig::default(),
            rustls::RootCertStore::empty(),
            HashMap::from([(HOST.to_owned(), server.address)]),
        );
        assert!(fetcher.ensure(&cert_url(), SNS).await.is_err());
        // A certificate for another name is refused too.
        let other = KeyServer::start(
            &["sns.eu-west-1.amazonaws.com"],
            HashMap::from([(PATH.to_owned(), (200, good_sns_cert().as_bytes().to_vec()))]),
        )
        .await;
        let fetcher = KeyFetcher::with_test_routes(
            FetcherConfig::default(),
            other.roots.as_ref().clone(),
            HashMap::from([(HOST.to_owned(), other.address)]),
        );
        assert!(fetcher.ensure(&cert_url(), SNS).await.is_err());
    }

    #[tokio::test]
    async fn stale_keys_are_served_while_refreshed() {
        let server = server(200, good_sns_cert().as_bytes()).await;
        let fetcher = server.fetcher(FetcherConfig {
            ttl: Duration::ZERO,
            ..FetcherConfig::default()
        });
        fetcher.ensure(&cert_url(), SNS).await.expect("fetched");
        // Stale: answered at once, one background refresh.
        fetcher.ensure(&cert_url(), SNS).await.expect("stale");
        assert!(fetcher.cached(&cert_url()).is_some());
        for _ in 0..50 {
            if server.hits() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn unknown_kids_refresh_at_most_once_per_interval() {
        let key = signer();
        let set = serde_json::json!({"keys": [material::jwk_json(&key, "k1")]});
        let jwks = url::google_jwks_url();
        let server = KeyServer::start(
            &[jwks.host()],
            HashMap::from([(
                jwks.path_and_query().to_owned(),
                (200, set.to_string().into_bytes()),
            )]),
        )
        .await;
        let fetcher = server.fetcher(FetcherConfig::default());
        fetcher.ensure_kid(&jwks, "k1").await.expect("known");
        assert_eq!(server.hits(), 1);
        for i in 0..10 {
            fetcher
                .ensure_kid(&jwks, &format!("made-up-{i}"))
                .await
                .expect("answered from cache");
        }
        assert_eq!(server.hits(), 1, "fetched within min_refresh");
        let eager = server.fetcher(FetcherConfig {
            min_refresh: Duration::ZERO,
            ..FetcherConfig::default()
        });
        eager.ensure_kid(&jwks, "k1").await.expect("known");
        eager.ensure_kid(&jwks, "k2").await.expect("refetched");
        assert_eq!(server.hits(), 3);
    }

    #[tokio::test]
    async fn a_refused_certificate_keeps_its_reason_and_is_not_fetched_again() {
        let server = server(200, sns_cert(2010, 2020).as_bytes()).await;
        let fetcher = server.fetcher(FetcherConfig::default());
        for _ in 0..3 {
            assert_eq!(
                fetcher.ensure(&cert_url(), SNS).await,
                Err(KeyError::Certificate(CertificateFault::Expired))
            );
        }
        assert_eq!(server.hits(), 1, "negative cache");
        assert!(fetcher.cached(&cert_url()).is_none());
        assert_eq!(
            fetcher.certificate_key(&cert_url(), Signer::AwsSns, NOW),
            Err(KeyError::Unavailable("not cached"))
        );
    }

    #[tokio::test]
    async fn a_cached_certificate_is_checked_again_at_each_use() {
        let server = server(200, sns_cert(2020, 2025).as_bytes()).await;
        let fetcher = server.fetcher(FetcherConfig::default());
        fetcher
            .ensure(&cert_url(), SNS)
            .await
            .expect("valid in 2023");
        assert!(
            fetcher
                .certificate_key(&cert_url(), Signer::AwsSns, NOW)
                .is_ok()
        );
        // 2026: expired while cached.
        assert_eq!(
            fetcher.certificate_key(&cert_url(), Signer::AwsSns, 1_767_225_600),
            Err(KeyError::Certificate(CertificateFault::Expired))
        );
        // Not PayPal's, whatever the URL.
        assert!(
            fetcher
                .certificate_key(&cert_url(), Signer::Paypal, NOW)
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_paypal_certificate_must_chain_to_the_roots_the_fetch_trusts() {
        let paypal = url::paypal_cert_url(
            "https://api-m.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
        )
        .expect("url");
        let kind = KeyKind::Certificate {
            signer: Signer::Paypal,
            now: NOW,
        };
        let name = "messageverificationcerts.paypal.com";
        // The CA the fetcher trusts for TLS (as a user's trusts the
        // system's roots) issued the signing certificate: believed.
        let ca = TestCa::new("trusted CA");
        let intermediate = ca.intermediate("trusted intermediate");
        let chain = pem(&[
            &intermediate.issue(SIGNER_KEY, name, 2020, 2100),
            &intermediate.der,
        ]);
        let files = HashMap::from([(
            paypal.path_and_query().to_owned(),
            (200, chain.into_bytes()),
        )]);
        let trusted = KeyServer::start_of(&ca, &[paypal.host()], files).await;
        let fetcher = trusted.fetcher(FetcherConfig::default());
        fetcher.ensure(&paypal, kind).await.expect("trusted chain");
        assert!(
            fetcher
                .certificate_key(&paypal, Signer::Paypal, NOW)
                .is_ok()
        );
        // Served over the same trusted TLS, but issued (through an
        // intermediate it carries) by another CA.
        let other = TestCa::new("another CA").intermediate("its intermediate");
        let forged = pem(&[&other.issue(SIGNER_KEY, name, 2020, 2100), &other.der]);
        let files = HashMap::from([(
            paypal.path_and_query().to_owned(),
            (200, forged.into_bytes()),
        )]);
        let untrusted = KeyServer::start_of(&ca, &[paypal.host()], files).await;
        let fetcher = untrusted.fetcher(FetcherConfig::default());
        assert_eq!(
            fetcher.ensure(&paypal, kind).await,
            Err(KeyError::Certificate(CertificateFault::Untrusted))
        );
    }
}
