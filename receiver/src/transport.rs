//! The receiver's listener: TLS termination (or explicitly not), HTTP/1.1 and
//! HTTP/2, and the connection limits that keep one hostile client from
//! exhausting the process.
//!
//! Webhook endpoints face the internet, so every stage of a connection is
//! bounded: the TLS handshake, reading the request headers, the header size,
//! the number of open connections and of HTTP/2 streams per connection, and
//! the drain on shutdown. The request pipeline ([`crate::server`]) bounds the
//! body itself.
//!
//! TLS uses rustls with the ring provider, chosen explicitly rather than
//! through a process-wide default, so another dependency enabling a second
//! provider cannot change (or break) what this listener offers. The
//! certificate is re-read from disk while serving, because Kubernetes
//! updates a mounted Secret (a cert-manager renewal, say) by swapping a
//! symlink under the running pod; a restart must not be needed to pick up a
//! renewed certificate.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::limits::PerSourceSlots;

/// How long a client may take to send its request line and headers. Providers
/// send them at once; a client trickling header bytes (slowloris) would
/// otherwise hold a connection, and its buffer, for as long as it likes. On
/// HTTP/1.1 this is also how long an idle keep-alive connection stays open
/// waiting for its next request.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to complete the TLS handshake. A connection
/// that opens TCP and never says hello costs a connection slot until this.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most header bytes a request may carry (HTTP/1.1 read buffer, HTTP/2
/// header list). Provider headers are a few KiB; the cap bounds the memory a
/// request takes before any of it is looked at.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The most connections served at once. At the cap the listener stops
/// accepting until a connection closes: new connections wait in the kernel's
/// accept backlog (where the client's own connect timeout applies) instead of
/// being accepted and dropped, so a burst of legitimate deliveries is delayed
/// rather than refused, and the process never holds more than this many
/// sockets and TLS sessions.
pub const MAX_CONNECTIONS: usize = 10_000;

/// The most concurrent HTTP/2 streams (requests) per connection; bounds what
/// one multiplexed client can make the receiver work on at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 100;

/// How often an idle HTTP/2 connection is pinged, and how long the answer may
/// take: a peer that vanished without closing (a NAT timeout, a dead node)
/// stops holding a connection slot.
pub const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// See [`HTTP2_KEEP_ALIVE_INTERVAL`].
pub const HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the certificate and key files are checked for changes. The
/// kubelet syncs mounted Secrets about once a minute, so a few seconds more
/// hardly matters, and reading two small files is cheap.
pub const CERT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// How long a new connection may take to send its first request after it
/// opened (and, over TLS, after the handshake): a client that connects and
/// says nothing, or sends half an HTTP/2 preface, is closed after this.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection with no request in progress stays open when its
/// peer is a client (not a trusted proxy): HTTP/1.1 keep-alive and HTTP/2
/// alike, whatever pings it answers.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// The idle timeout for connections from trusted proxies: longer than the
/// upstream keep-alive of common ingress controllers (ingress-nginx 60 s,
/// Traefik 90 s), so the receiver never closes a connection the proxy is
/// about to reuse (which would fail that delivery with a 502).
pub const PROXY_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The most connections one source (an IPv4 address, an IPv6 /64) may hold
/// at once, so one address cannot fill [`MAX_CONNECTIONS`]. Trusted proxies
/// carry many clients and are not held to it.
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 128;

/// How long a connection closed for idleness may take to finish closing.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long connections in flight may take to finish after shutdown was
/// requested: below Kubernetes' default 30 s grace period, so the process
/// exits on its own instead of being killed mid-answer.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Hyper refuses (panics on) an HTTP/1.1 read buffer below 8 KiB.
const MIN_HTTP1_BUFFER: usize = 8192;

/// Pause after a failed `accept` (out of file descriptors, say), so the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// How the receiver's listener treats TLS; `--tls-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMode {
    /// Terminate TLS in the receiver with `--tls-cert` and `--tls-key`.
    Terminate,
    /// Plain HTTP behind an ingress or proxy that terminates TLS; only
    /// requests the trusted proxy marks as HTTPS are to be accepted.
    BehindIngress,
    /// Plain HTTP, for local development only: signatures still verify, but
    /// deliveries cross the network in the clear.
    InsecureHttp,
}

/// The listener's mode, with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Terminate TLS with the PEM certificate chain and private key in these
    /// files (re-read while serving).
    Terminate { cert: PathBuf, key: PathBuf },
    /// See [`TlsMode::BehindIngress`].
    BehindIngress,
    /// See [`TlsMode::InsecureHttp`].
    InsecureHttp,
}

impl Mode {
    /// The mode from the command line: `terminate` needs both files, and the
    /// plain modes refuse them, because a certificate that is silently not
    /// used suggests TLS where there is none.
    pub fn from_flags(
        mode: TlsMode,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Self, TransportError> {
        match mode {
            TlsMode::Terminate => {
                let cert = cert.ok_or(TransportError::MissingFlag {
                    flag: "--tls-cert",
                    env: "HOOKWARDEN_TLS_CERT",
                })?;
                let key = key.ok_or(TransportError::MissingFlag {
                    flag: "--tls-key",
                    env: "HOOKWARDEN_TLS_KEY",
                })?;
                Ok(Self::Terminate { cert, key })
            }
            TlsMode::BehindIngress | TlsMode::InsecureHttp => {
                if cert.is_some() {
                    return Err(TransportError::UnusedFlag { flag: "--tls-cert" });
                }
                if key.is_some() {
                    return Err(TransportError::UnusedFlag { flag: "--tls-key" });
                }
                Ok(if mode == TlsMode::BehindIngress {
                    Self::BehindIngress
                } else {
                    Self::InsecureHttp
                })
            }
        }
    }

    /// Whether the request pipeline must accept only requests a trusted
    /// proxy marks as having arrived over HTTPS: true behind an ingress,
    /// where the receiver itself only sees plain HTTP.
    pub fn require_forwarded_https(&self) -> bool {
        matches!(self, Self::BehindIngress)
    }

    /// A short name for logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Terminate { .. } => "terminate",
            Self::BehindIngress => "behind-ingress",
            Self::InsecureHttp => "insecure-http",
        }
    }
}

/// The connection limits; [`Limits::default`] holds the constants above.
/// Tests shorten them.
#[derive(Debug, Clone)]
pub struct Limits {
    pub first_request_timeout: Duration,
    pub idle_timeout: Duration,
    pub proxy_idle_timeout: Duration,
    pub max_connections_per_source: usize,
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub max_concurrent_streams: u32,
    pub http2_keep_alive_interval: Duration,
    pub http2_keep_alive_timeout: Duration,
    pub cert_reload_interval: Duration,
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            first_request_timeout: FIRST_REQUEST_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            proxy_idle_timeout: PROXY_IDLE_TIMEOUT,
            max_connections_per_source: MAX_CONNECTIONS_PER_SOURCE,
            header_read_timeout: HEADER_READ_TIMEOUT,
            tls_handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
            max_header_bytes: MAX_HEADER_BYTES,
            max_connections: MAX_CONNECTIONS,
            max_concurrent_streams: MAX_CONCURRENT_STREAMS,
            http2_keep_alive_interval: HTTP2_KEEP_ALIVE_INTERVAL,
            http2_keep_alive_timeout: HTTP2_KEEP_ALIVE_TIMEOUT,
            cert_reload_interval: CERT_RELOAD_INTERVAL,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

/// Why the transport cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("--tls-mode terminate (the default) needs {flag} ({env}), a PEM file")]
    MissingFlag {
        flag: &'static str,
        env: &'static str,
    },
    #[error("{flag} is only used with --tls-mode terminate")]
    UnusedFlag { flag: &'static str },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} / {}: {source}", cert.display(), key.display())]
    Certificate {
        cert: PathBuf,
        key: PathBuf,
        source: CertificateError,
    },
    #[error("TLS configuration: {0}")]
    Tls(rustls::Error),
}

/// Why a certificate and key pair is unusable.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("no certificate in the certificate PEM file")]
    NoCertificate,
    #[error("certificate PEM: {0}")]
    CertificatePem(pem::Error),
    #[error("private key PEM: {0}")]
    KeyPem(pem::Error),
    #[error("certificate and key do not form a pair: {0}")]
    Pair(rustls::Error),
}

/// Counters about the transport, shared with whoever holds
/// [`Transport::stats`]. Plain atomics until the receiver exports metrics.
#[derive(Debug, Default)]
pub struct TransportStats {
    handshake_failures: AtomicU64,
    cert_reloads: AtomicU64,
    cert_reload_failures: AtomicU64,
    idle_closed: AtomicU64,
    refused_per_source: AtomicU64,
    open: AtomicU64,
}

impl TransportStats {
    /// Connections closed because they sent no request for their idle or
    /// first-request timeout.
    pub fn idle_closed(&self) -> u64 {
        self.idle_closed.load(Ordering::Relaxed)
    }

    /// Connections closed at once because their source already held
    /// [`MAX_CONNECTIONS_PER_SOURCE`].
    pub fn refused_per_source(&self) -> u64 {
        self.refused_per_source.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// TLS handshakes that failed or timed out (plain HTTP to the TLS port,
    /// old protocol versions, clients distrusting the certificate, scanners).
    pub fn handshake_failures(&self) -> u64 {
        self.handshake_failures.load(Ordering::Relaxed)
    }

    /// Times a changed certificate and key were loaded and put in service.
    pub fn cert_reloads(&self) -> u64 {
        self.cert_reloads.load(Ordering::Relaxed)
    }

    /// Times changed certificate files could not be read or did not form a
    /// valid pair, so the previous certificate stayed in service.
    pub fn cert_reload_failures(&self) -> u64 {
        self.cert_reload_failures.load(Ordering::Relaxed)
    }
}

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection finished within the drain timeout.
    Drained,
    /// Connections were still open when the drain timeout passed; they are
    /// abandoned to the runtime's shutdown.
    DrainTimedOut,
}

/// A configured listener mode with its limits; [`Transport::serve`] runs it.
#[derive(Debug)]
pub struct Transport {
    tls: Option<Tls>,
    limits: Limits,
    stats: Arc<TransportStats>,
}

#[derive(Debug)]
struct Tls {
    config: Arc<rustls::ServerConfig>,
    resolver: Arc<ReloadingCert>,
}

impl Transport {
    /// Prepares `mode`: in `terminate` mode the certificate and key are
    /// loaded now, so a receiver with an unusable certificate never listens.
    pub fn new(mode: &Mode, limits: Limits) -> Result<Self, TransportError> {
        let tls = match mode {
            Mode::Terminate { cert, key } => Some(Tls::load(cert, key)?),
            Mode::BehindIngress => None,
            Mode::InsecureHttp => {
                tracing::warn!(
                    "--tls-mode insecure-http: serving PLAIN HTTP WITHOUT TLS. For local \
                     development only; never expose this listener to a network"
                );
                None
            }
        };
        Ok(Self {
            tls,
            limits,
            stats: Arc::default(),
        })
    }

    /// The counters of this transport, readable while it serves.
    pub fn stats(&self) -> Arc<TransportStats> {
        Arc::clone(&self.stats)
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves `router` on `listener` until `shutdown` completes; then stops
    /// accepting, asks open connections to finish (HTTP/1.1 closes after the
    /// request in flight, HTTP/2 sends GOAWAY) and waits for them, at most
    /// the drain timeout. Accept errors never end serving. `peers` says
    /// which peers are trusted proxies (longer idle timeout, no per-source
    /// connection cap) and hears of requests hyper refused itself.
    pub async fn serve<F>(
        self,
        router: Router,
        listener: TcpListener,
        peers: PeerPolicy,
        shutdown: F,
    ) -> Stopped
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Self { tls, limits, stats } = self;
        let _reloader = tls.as_ref().map(|tls| {
            AbortOnDrop(tokio::spawn(watch_cert_files(
                Arc::clone(&tls.resolver),
                Arc::clone(&stats),
                limits.cert_reload_interval,
            )))
        });
        let acceptor = tls.map(|tls| TlsAcceptor::from(tls.config));
        let http = Arc::new(http_builder(&limits));
        let slots = Arc::new(Semaphore::new(
            limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
        ));
        let per_source = PerSourceSlots::new(
            limits.max_connections_per_source,
            crate::limits::DEFAULT_IPV6_PREFIX,
        );
        let limits = Arc::new(limits);
        let connections = TaskTracker::new();
        let (stop, stopping) = tokio::sync::watch::channel(false);
        tokio::pin!(shutdown);

        loop {
            // A slot first, then accept: at the cap, connections wait in the
            // kernel backlog (see MAX_CONNECTIONS).
            let slot = tokio::select! {
                () = &mut shutdown => break,
                slot = Arc::clone(&slots).acquire_owned() => match slot {
                    Ok(slot) => slot,
                    // Only a closed semaphore fails; this one is never closed.
                    Err(_closed) => break,
                },
            };
            let (tcp, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "accepting a connection failed");
                        tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                        continue;
                    }
                },
            };
            let proxy = peers.trusts(peer.ip());
            // A trusted proxy carries many clients: only other peers are held
            // to the per-source cap.
            let source_slot = if proxy {
                None
            } else {
                match per_source.try_take(peer.ip()) {
                    Some(source_slot) => Some(source_slot),
                    None => {
                        stats.refused_per_source.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(peer = %peer, "connection refused: its source holds the most connections it may");
                        drop(tcp);
                        continue;
                    }
                }
            };
            let _ = tcp.set_nodelay(true);
            let connection = Connection {
                http: Arc::clone(&http),
                router: router.clone(),
                peer,
                proxy,
                limits: Arc::clone(&limits),
                stats: Arc::clone(&stats),
                peers: peers.clone(),
                stopping: stopping.clone(),
            };
            let acceptor = acceptor.clone();
            let stats = Arc::clone(&stats);
            let handshake_timeout = limits.tls_handshake_timeout;
            connections.spawn(async move {
                // Released when the connection ends.
                let _slots = (slot, source_slot, OpenConnection::count(&stats));
                let Some(acceptor) = acceptor else {
                    return connection.serve(tcp).await;
                };
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => connection.serve(tls).await,
                    Ok(Err(err)) => {
                        stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(peer = %peer, error = %err, "TLS handshake failed");
                    }
                    Err(_elapsed) => {
                        stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(peer = %peer, "TLS handshake timed out");
                    }
                }
            });
        }

        drop(listener);
        let _ = stop.send(true);
        connections.close();
        match tokio::time::timeout(limits.drain_timeout, connections.wait()).await {
            Ok(()) => Stopped::Drained,
            Err(_elapsed) => {
                tracing::warn!(
                    drain_timeout_secs = limits.drain_timeout.as_secs_f64(),
                    connections = connections.len(),
                    "connections still open after the drain timeout; stopping anyway"
                );
                Stopped::DrainTimedOut
            }
        }
    }
}

/// What the transport asks of the application about a peer, and tells it.
#[derive(Clone)]
pub struct PeerPolicy {
    trusts: Arc<dyn Fn(IpAddr) -> bool + Send + Sync>,
    refused: Arc<dyn Fn(SocketAddr, &'static str) + Send + Sync>,
}

impl std::fmt::Debug for PeerPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerPolicy").finish_non_exhaustive()
    }
}

impl PeerPolicy {
    /// Peers for which `trusts` is true are trusted proxies; requests hyper
    /// refused before any handler saw them are reported to `refused` with
    /// their reason code.
    pub fn new(
        trusts: impl Fn(IpAddr) -> bool + Send + Sync + 'static,
        refused: impl Fn(SocketAddr, &'static str) + Send + Sync + 'static,
    ) -> Self {
        Self {
            trusts: Arc::new(trusts),
            refused: Arc::new(refused),
        }
    }

    /// No trusted proxy; refusals only counted by the transport's log.
    pub fn none() -> Self {
        Self::new(|_| false, |_, _| {})
    }

    fn trusts(&self, peer: IpAddr) -> bool {
        (self.trusts)(peer)
    }
}

/// Counts a connection as open while it lives.
struct OpenConnection(Arc<TransportStats>);

impl OpenConnection {
    fn count(stats: &Arc<TransportStats>) -> Self {
        stats.open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(stats))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Requests in progress on one connection, and since when none has been.
#[derive(Debug)]
struct Activity {
    state: std::sync::Mutex<ActivityState>,
}

#[derive(Debug)]
struct ActivityState {
    active: usize,
    served: u64,
    idle_since: Instant,
}

/// A request in progress; ends when dropped.
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: std::sync::Mutex::new(ActivityState {
                active: 0,
                served: 0,
                idle_since: Instant::now(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn begin(self: &Arc<Self>) -> Busy {
        let mut state = self.lock();
        state.active += 1;
        state.served += 1;
        Busy(Arc::clone(self))
    }

    /// When the connection is to be closed if nothing happens: `None` while
    /// a request is in progress.
    fn deadline(&self, first_request: Duration, idle: Duration) -> Option<Instant> {
        let state = self.lock();
        if state.active > 0 {
            return None;
        }
        let limit = if state.served == 0 {
            first_request
        } else {
            idle
        };
        Some(state.idle_since + limit)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.active = state.active.saturating_sub(1);
        if state.active == 0 {
            state.idle_since = Instant::now();
        }
    }
}

/// One accepted connection, before it is served.
struct Connection {
    http: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    peer: SocketAddr,
    /// The peer is a trusted proxy.
    proxy: bool,
    limits: Arc<Limits>,
    stats: Arc<TransportStats>,
    peers: PeerPolicy,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Connection {
    /// Serves HTTP/1.1 or HTTP/2 (whichever the client speaks; over TLS, the
    /// one ALPN chose) until the connection closes, sits idle too long, or
    /// the server drains. Idle means no request in progress, whatever else
    /// the peer sends (HTTP/2 pings, a partial preface, nothing at all).
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            http,
            router,
            peer,
            proxy,
            limits,
            stats,
            peers,
            mut stopping,
        } = self;
        let activity = Activity::new();
        let busy = Arc::clone(&activity);
        // The request pipeline reads the peer address like `axum::serve`
        // provides it. Router is always ready, so calling without
        // `poll_ready` is fine.
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            let request_busy = busy.begin();
            async move {
                let response = tower_service::Service::call(&mut router, request).await;
                drop(request_busy);
                response
            }
        });
        let connection = http.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        let idle = if proxy {
            limits.proxy_idle_timeout
        } else {
            limits.idle_timeout
        };
        let closing = loop {
            let deadline = activity
                .deadline(limits.first_request_timeout, idle)
                // Busy: look again after the idle time at the latest.
                .unwrap_or_else(|| Instant::now() + idle);
            tokio::select! {
                result = connection.as_mut() => {
                    report(result, peer, &peers);
                    return;
                }
                _ = stopping.wait_for(|stop| *stop) => break None,
                () = tokio::time::sleep_until(deadline) => {
                    let still_idle = activity
                        .deadline(limits.first_request_timeout, idle)
                        .is_some_and(|deadline| deadline <= Instant::now());
                    if still_idle {
                        stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(peer = %peer, "closing an idle connection");
                        break Some(CLOSE_GRACE);
                    }
                }
            }
        };
        connection.as_mut().graceful_shutdown();
        let finished = match closing {
            // Idle: nothing to finish; drop it if it does not close at once.
            Some(grace) => tokio::time::timeout(grace, connection.as_mut()).await.ok(),
            // Draining: the server bounds the wait as a whole.
            None => Some(connection.as_mut().await),
        };
        if let Some(result) = finished {
            report(result, peer, &peers);
        }
    }
}

/// Logs how a connection ended, and reports requests hyper refused itself
/// (malformed framing 400, oversized headers 431, headers too slow 408), so
/// they are counted and audited like every other refusal.
fn report(
    result: Result<(), Box<dyn std::error::Error + Send + Sync>>,
    peer: SocketAddr,
    peers: &PeerPolicy,
) {
    let Err(err) = result else {
        return;
    };
    if let Some(reason) = refusal_reason(err.as_ref()) {
        (peers.refused)(peer, reason);
    }
    tracing::debug!(peer = %peer, error = %err, "connection ended with an error");
}

/// The reason code of an error with which hyper refused a request before
/// any handler saw it; `None` for a connection that just broke.
fn refusal_reason(err: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let hyper = err.downcast_ref::<hyper::Error>()?;
    if hyper.is_parse_too_large() {
        Some("headers_too_large")
    } else if hyper.is_parse() || hyper.is_parse_status() {
        Some("http_malformed")
    } else if hyper.is_timeout() {
        Some("header_timeout")
    } else {
        None
    }
}

/// HTTP/1.1 and HTTP/2 with the limits applied.
fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(MIN_HTTP1_BUFFER))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(limits.http2_keep_alive_interval)
        .keep_alive_timeout(limits.http2_keep_alive_timeout);
    builder
}

impl Tls {
    fn load(cert: &Path, key: &Path) -> Result<Self, TransportError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TransportError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let files = CertFiles {
            cert: read(cert)?,
            key: read(key)?,
        };
        let certified =
            files
                .certified_key(&provider)
                .map_err(|source| TransportError::Certificate {
                    cert: cert.to_owned(),
                    key: key.to_owned(),
                    source,
                })?;
        let resolver = Arc::new(ReloadingCert {
            cert_path: cert.to_owned(),
            key_path: key.to_owned(),
            provider: Arc::clone(&provider),
            current: RwLock::new(Arc::new(certified)),
            loaded: RwLock::new(files),
        });
        // TLS 1.2 stays for providers and proxies that still use it; nothing
        // older (rustls has no TLS 1.0/1.1 at all).
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TransportError::Tls)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            resolver,
        })
    }
}

/// The raw contents of the certificate and key files.
#[derive(Clone, PartialEq, Eq)]
struct CertFiles {
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// Never prints the private key (the TLS configuration is `Debug`).
impl std::fmt::Debug for CertFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertFiles")
            .field("cert_bytes", &self.cert.len())
            .field("key_bytes", &self.key.len())
            .finish()
    }
}

impl CertFiles {
    /// The pair, if the files hold a certificate chain and the private key
    /// of its first certificate.
    fn certified_key(&self, provider: &CryptoProvider) -> Result<CertifiedKey, CertificateError> {
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(CertificateError::CertificatePem)?;
        if chain.is_empty() {
            return Err(CertificateError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(CertificateError::KeyPem)?;
        CertifiedKey::from_der(chain, key, provider).map_err(CertificateError::Pair)
    }
}

/// The certificate in service, swapped when the files change. Every
/// handshake asks for it, so a reload applies to the next connection while
/// established ones keep theirs.
#[derive(Debug)]
struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// What the files held when last looked at (loaded or rejected), so an
    /// unchanged file is neither parsed nor reported again.
    loaded: RwLock<CertFiles>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A poisoned lock still holds a valid pair: the writer only assigns.
        let current = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(Arc::clone(&current))
    }
}

impl ReloadingCert {
    /// Reads the files and, if they changed, swaps in the new pair when it
    /// is valid, keeping the old one (and logging why) when it is not.
    /// `read_error` remembers a failure to read the files, so one that lasts
    /// is reported once, not every interval.
    async fn reload(&self, stats: &TransportStats, read_error: &mut Option<String>) {
        // One after the other, so a lasting failure is always the same one.
        let read = async {
            let cert = tokio::fs::read(&self.cert_path)
                .await
                .map_err(|err| (&self.cert_path, err))?;
            let key = tokio::fs::read(&self.key_path)
                .await
                .map_err(|err| (&self.key_path, err))?;
            Ok::<_, (&PathBuf, std::io::Error)>(CertFiles { cert, key })
        };
        let files = match read.await {
            Ok(files) => files,
            Err((path, err)) => {
                // A Secret being swapped is atomic, so this is not a race
                // with the kubelet: the file is really gone or unreadable.
                let error = format!("{}: {err}", path.display());
                if read_error.as_ref() != Some(&error) {
                    stats.cert_reload_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        error = error.as_str(),
                        "cannot read the TLS certificate files; keeping the certificate in service"
                    );
                    *read_error = Some(error);
                }
                return;
            }
        };
        *read_error = None;
        {
            let loaded = self
                .loaded
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if *loaded == files {
                return;
            }
        }
        let result = files.certified_key(&self.provider);
        *self
            .loaded
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = files;
        match result {
            Ok(certified) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(certified);
                stats.cert_reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    cert = %self.cert_path.display(),
                    "reloaded the TLS certificate"
                );
            }
            Err(err) => {
                stats.cert_reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    cert = %self.cert_path.display(),
                    key = %self.key_path.display(),
                    error = %err,
                    "the changed TLS certificate files are unusable; keeping the certificate in service"
                );
            }
        }
    }
}

/// Checks the certificate files every `interval`, for as long as it runs.
async fn watch_cert_files(
    resolver: Arc<ReloadingCert>,
    stats: Arc<TransportStats>,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the files were just loaded.
    ticks.tick().await;
    let mut read_error = None;
    loop {
        ticks.tick().await;
        resolver.reload(&stats, &mut read_error).await;
    }
}

/// Aborts the task when serving ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
