//! Where and how an endpoint's refusals are recorded (`spec.quarantine`):
//! the quarantine stream's name, subject and limits, which the receiver
//! records into and the operator creates and audits. Recording itself is
//! the receiver's `quarantine` module.

use std::num::NonZeroU32;
use std::time::Duration;

use async_nats::jetstream::stream;
use hookwarden_crds::{EndpointManifest, QuarantineSpec};

use crate::subject_token::sanitize_token;

/// Records per second and pod when `maxPerSecond` is absent.
pub const DEFAULT_MAX_PER_SECOND: u32 = 5;
/// How long records are kept when `maxAgeSeconds` is absent.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(86_400);
/// The most bytes of records kept when `maxBytes` is absent.
pub const DEFAULT_MAX_BYTES: i64 = 64 * 1024 * 1024;
/// The most body bytes a record may keep.
pub const MAX_BODY_PREFIX: usize = 1024;

/// Where and how an endpoint's refusals are recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineTarget {
    /// `<namespace>/<name>` of the endpoint.
    pub endpoint: String,
    /// `HOOKWARDEN-QUARANTINE_<NAMESPACE>_<NAME>`.
    pub stream: String,
    /// `hookwarden-quarantine.<namespace>.<name>`.
    pub subject: String,
    /// Records kept per second (per pod).
    pub max_per_second: NonZeroU32,
    /// Body bytes kept per record.
    pub body_prefix: usize,
    /// How long records are kept.
    pub max_age: Duration,
    /// The most bytes of records kept.
    pub max_bytes: i64,
}

impl QuarantineTarget {
    /// The quarantine of `endpoint`, when its spec asks for one.
    /// `namespace` and `name` are the endpoint's, as the delivery target
    /// resolved them.
    pub fn for_endpoint(endpoint: &EndpointManifest, namespace: &str, name: &str) -> Option<Self> {
        endpoint
            .spec
            .quarantine
            .as_ref()
            .map(|spec| Self::from_spec(spec, namespace, name))
    }

    pub fn from_spec(spec: &QuarantineSpec, namespace: &str, name: &str) -> Self {
        // Out-of-range numbers can only come from a standalone manifest (the
        // CRD refuses them): they are clamped to the CRD's range.
        let max_per_second = spec
            .max_per_second
            .unwrap_or(DEFAULT_MAX_PER_SECOND)
            .clamp(1, 1000);
        let (stream, subject) = names(namespace, name);
        Self {
            endpoint: format!("{namespace}/{name}"),
            stream,
            subject,
            max_per_second: NonZeroU32::new(max_per_second).unwrap_or(NonZeroU32::MIN),
            body_prefix: spec
                .body_prefix_bytes
                .map_or(0, |n| usize::try_from(n).unwrap_or(MAX_BODY_PREFIX))
                .min(MAX_BODY_PREFIX),
            max_age: spec
                .max_age_seconds
                .map_or(DEFAULT_MAX_AGE, Duration::from_secs)
                .max(Duration::from_secs(60)),
            max_bytes: spec.max_bytes.unwrap_or(DEFAULT_MAX_BYTES).max(1 << 20),
        }
    }

    /// The stream's configuration: on disk, the oldest records go first
    /// when it is full (unlike deliveries, losing an old record is fine).
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.subject.clone()],
            storage: stream::StorageType::File,
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            discard: stream::DiscardPolicy::Old,
            ..stream::Config::default()
        }
    }
}

/// The stream and subject of endpoint `<namespace>/<name>`'s records:
/// `HOOKWARDEN-QUARANTINE_<NAMESPACE>_<NAME>` (the `-` keeps it apart from
/// every delivery stream, `HOOKWARDEN_...`) and
/// `hookwarden-quarantine.<namespace>.<name>` (outside the deliveries'
/// `hookwarden.>`).
pub fn names(namespace: &str, name: &str) -> (String, String) {
    let (namespace, name) = (sanitize_token(namespace), sanitize_token(name));
    (
        format!("HOOKWARDEN-QUARANTINE_{namespace}_{name}").to_uppercase(),
        format!("hookwarden-quarantine.{namespace}.{name}"),
    )
}
