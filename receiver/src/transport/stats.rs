//! Counters about the transport.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters about the transport, shared with whoever holds
/// [`Transport::stats`]. Plain atomics until the receiver exports metrics.
///
/// [`Transport::stats`]: super::listener::Transport::stats
#[derive(Debug, Default)]
pub struct TransportStats {
    pub(super) handshake_failures: AtomicU64,
    pub(super) cert_reloads: AtomicU64,
    pub(super) cert_reload_failures: AtomicU64,
    pub(super) idle_closed: AtomicU64,
    pub(super) refused_per_source: AtomicU64,
    pub(super) open: AtomicU64,
}

impl TransportStats {
    /// Connections closed because they sent no request for their idle or
    /// first-request timeout.
    pub fn idle_closed(&self) -> u64 {
        self.idle_closed.load(Ordering::Relaxed)
    }

    /// Connections closed at once because their source already held
    /// [`MAX_CONNECTIONS_PER_SOURCE`](super::limits::MAX_CONNECTIONS_PER_SOURCE).
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

/// Counts a connection as open while it lives.
pub(super) struct OpenConnection(Arc<TransportStats>);

impl OpenConnection {
    pub(super) fn count(stats: &Arc<TransportStats>) -> Self {
        stats.open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(stats))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}
