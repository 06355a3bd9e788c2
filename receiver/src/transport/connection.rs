//! One accepted connection served by hyper: HTTP/1.1 or HTTP/2, closed when
//! idle, its refused requests reported.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::limits::Limits;
use super::peers::PeerPolicy;
use super::stats::TransportStats;

/// How long a connection closed for idleness may take to finish closing.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Hyper refuses (panics on) an HTTP/1.1 read buffer below 8 KiB.
const MIN_HTTP1_BUFFER: usize = 8192;

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
pub(super) struct Connection {
    pub(super) http: Arc<auto::Builder<TokioExecutor>>,
    pub(super) router: Router,
    pub(super) peer: SocketAddr,
    /// The peer is a trusted proxy.
    pub(super) proxy: bool,
    pub(super) limits: Arc<Limits>,
    pub(super) stats: Arc<TransportStats>,
    pub(super) peers: PeerPolicy,
    pub(super) stopping: tokio::sync::watch::Receiver<bool>,
}

impl Connection {
    /// Serves HTTP/1.1 or HTTP/2 (whichever the client speaks; over TLS, the
    /// one ALPN chose) until the connection closes, sits idle too long, or
    /// the server drains. Idle means no request in progress, whatever else
    /// the peer sends (HTTP/2 pings, a partial preface, nothing at all).
    pub(super) async fn serve<I>(self, io: I)
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
pub(super) fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
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
