//! The shared receiver pool: one process serving every endpoint whose
//! manifest is in a directory (`hookwarden-receiver serve --pool-dir`),
//! each request routed by its host and path ([`routes`]) to its endpoint's
//! own pipeline, limits and bounds ([`crate::server::PoolBounds`]).
//!
//! The directory is the operator's one Secret of the pool, mounted whole
//! ([`layout`]). It is read again every reload interval and applied per
//! endpoint ([`watch`]): a new file adds an endpoint, a changed one is
//! rebuilt and swapped in, a removed one's route is gone; a file (or one
//! of its secrets) that does not load leaves that endpoint on its last good
//! configuration, or unserved if it never loaded, while the others go on.
//! `GET /endpoints` on the operations port says each file's state
//! ([`EndpointStatus`]).

// Shared with the operator (hookwarden-core).
pub use hookwarden_core::pool::{layout, routes};
pub mod serve;
pub mod stamps;
pub mod watch;

use serde::Serialize;

use crate::metrics::{Metrics, PoolEndpointLabels};

/// The state of one endpoint file of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigState {
    /// Its current configuration is served.
    Serving,
    /// Its current configuration does not load: its last good one is
    /// served, or nothing if none ever loaded.
    Failed,
    /// It loads, but another endpoint (whose file sorts first) holds its
    /// host and path: it is not served.
    Conflict,
}

impl ConfigState {
    /// Every state.
    pub const ALL: [Self; 3] = [Self::Serving, Self::Failed, Self::Conflict];

    /// The state as `/endpoints` and the metrics say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Serving => "serving",
            Self::Failed => "failed",
            Self::Conflict => "conflict",
        }
    }
}

/// Sets the pool endpoint `endpoint`'s configuration state in
/// `hookwarden_pool_endpoint_config` (`None`: its file is gone), clearing
/// the others. Here, not in [`crate::metrics`], because the states are the
/// pool's: the metrics module stays below the pool.
pub fn set_state_metric(metrics: &Metrics, endpoint: &str, state: Option<ConfigState>) {
    for other in ConfigState::ALL {
        let labels = PoolEndpointLabels {
            endpoint: endpoint.to_owned(),
            state: other.as_str().to_owned(),
        };
        if Some(other) == state {
            metrics.pool_endpoint_config.get_or_create(&labels).set(1);
        } else {
            metrics.pool_endpoint_config.remove(&labels);
        }
    }
}

/// One endpoint file as `GET /endpoints` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointStatus {
    /// The endpoint's name (`endpoint.<name>.yaml`).
    pub name: String,
    /// Whether its configuration is served.
    pub state: ConfigState,
    /// The sha256 (hex) of the manifest file served for it; `None` when
    /// none is (it never loaded).
    pub config_sha256: Option<String>,
    /// Why it is not served as its file says (never a secret's value).
    pub error: Option<String>,
    /// Whether requests reach it: a served configuration holding its route.
    pub routed: bool,
    /// Why its stream, managed elsewhere (`createStream: false`), cannot
    /// take deliveries (looked up every `--stream-check-interval-secs`).
    pub stream_problem: Option<String>,
}
