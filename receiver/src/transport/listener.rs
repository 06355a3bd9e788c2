//! The accept loop: TLS handshake, connection limits, drain on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::limits::PerSourceSlots;

use super::connection::{Connection, http_builder};
use super::limits::Limits;
use super::mode::{Mode, TransportError};
use super::peers::PeerPolicy;
use super::stats::{OpenConnection, TransportStats};
use super::tls::{AbortOnDrop, Tls, watch_cert_files};

/// Pause after a failed `accept` (out of file descriptors, say), so the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

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
