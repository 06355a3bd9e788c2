//! What the transport asks of the application about a peer, and tells it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// What the transport asks of the application about a peer, and tells it.
#[derive(Clone)]
pub struct PeerPolicy {
    pub(super) trusts: Arc<dyn Fn(IpAddr) -> bool + Send + Sync>,
    pub(super) refused: Arc<dyn Fn(SocketAddr, &'static str) + Send + Sync>,
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

    pub(super) fn trusts(&self, peer: IpAddr) -> bool {
        (self.trusts)(peer)
    }
}
