//! What the process decides for every endpoint it serves (flags, not
//! manifest fields), and their defaults.

use crate::body::{self, BodyPace};

/// Verified deliveries being stored at once by default: far more concurrent
/// publishes than one JetStream stream acknowledges per millisecond, few
/// enough that a stalled NATS is answered 503 quickly instead of queueing.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Bodies one source (an IPv4 address, an IPv6 /64) may be sending at once
/// by default. Providers deliver one event per request and rarely open more
/// than a few connections; behind an ingress this counts the original
/// clients, not the proxy.
pub const DEFAULT_MAX_BODY_READS_PER_SOURCE: usize = 32;

/// What the process decides for every version of the endpoint's
/// configuration: flags, not manifest fields.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Behind an ingress that terminates TLS: refuse (403 `https_required`)
    /// every request a trusted proxy does not report as HTTPS, so a
    /// plain-HTTP route to the receiver cannot carry deliveries (and their
    /// signatures) in clear text.
    pub require_forwarded_https: bool,
    /// Verified deliveries being stored at once; more get 503 `overloaded`.
    pub max_in_flight: usize,
    /// Bytes of bodies held at once, over all requests.
    pub max_buffered_body_bytes: usize,
    /// Bodies one source may be sending at once; more get 429.
    pub max_body_reads_per_source: usize,
    /// How fast a body must arrive.
    pub body_pace: BodyPace,
    /// In a pool: verified deliveries one endpoint may be storing at once
    /// (`None`: [`pool_share`](crate::limits::pool_share) of
    /// `max_in_flight`), within `max_in_flight`.
    pub max_in_flight_per_endpoint: Option<usize>,
    /// Continue the sender's `traceparent` (parent our spans on it, store it
    /// when traces are off) instead of only linking to it, for every
    /// endpoint served, whatever its `spec.traces` says: for senders that
    /// are part of the same system. Off by default: it is the sender's claim.
    pub trust_incoming_traceparent: bool,
    /// Quarantine records stored per second, all endpoints together
    /// ([`QuarantineCeiling`](crate::quarantine::QuarantineCeiling)).
    pub max_quarantine_records_per_second: u32,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            require_forwarded_https: false,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_buffered_body_bytes: body::DEFAULT_MAX_BUFFERED_BYTES,
            max_body_reads_per_source: DEFAULT_MAX_BODY_READS_PER_SOURCE,
            body_pace: BodyPace::default(),
            max_in_flight_per_endpoint: None,
            trust_incoming_traceparent: false,
            max_quarantine_records_per_second: crate::quarantine::DEFAULT_MAX_RECORDS_PER_SECOND,
        }
    }
}
