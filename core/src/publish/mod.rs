//! Handing verified deliveries to NATS JetStream.
//!
//! A delivery is only acknowledged to the provider (HTTP 2xx) after JetStream
//! has acknowledged storing it, so a delivery is never lost silently: either
//! it is stored, or the provider is told to retry. Retries and the
//! provider's own redeliveries are de-duplicated by JetStream through the
//! `Nats-Msg-Id` header (the provider's delivery id) within the stream's
//! duplicate window.
//!
//! Subject, stream name, message id and headers are computed by pure
//! functions, unit-tested here; [`Publisher`] is the thin I/O edge.
//!
//! This module is the target and its naming (what the operator shares:
//! [`Target`], stream and subject names, settings); [`manage`] creates,
//! updates and checks streams; [`message`] builds a delivery's headers and
//! holds the [`Publisher`]. Both are re-exported here, so every item keeps
//! its `publish::` path.

use std::time::Duration;

use async_nats::jetstream::stream;
use hookwarden_crds::{EndpointManifest, StreamStorage};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::subject_token::push_sanitized;
// Its path before it moved below `publish` and `quarantine`.
pub use crate::subject_token::sanitize_token;

/// The shortest duplicate window JetStream is given by default
/// (`spec.nats.duplicateWindowSeconds`): providers redeliver within seconds
/// to minutes. The default is longer when the endpoint's replay window is
/// (see [`StreamSettings::from_spec`]).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The namespace of an endpoint read from a file without one, as `kubectl`
/// assumes.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Where an endpoint's deliveries go, derived once from its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `<namespace>/<name>`, for headers and logs.
    pub endpoint: String,
    /// The provider preset name (e.g. `github`).
    pub provider: String,
    /// Subject prefix; deliveries go to `<prefix>.<event>`.
    pub subject_prefix: String,
    /// The JetStream stream that stores them.
    pub stream: String,
    /// The stream's settings from `spec.nats`.
    pub settings: StreamSettings,
    /// The CloudEvents attributes fixed by the endpoint, when
    /// `spec.nats.cloudEvents` asks for binary-mode headers; `None` when off.
    pub cloud_events: Option<CloudEventsContext>,
    /// Where refused requests are recorded, when `spec.quarantine` asks.
    pub quarantine: Option<crate::quarantine::QuarantineTarget>,
    /// The provider request headers stored with each delivery
    /// (`spec.request.storeHeaders`, checked, lower-cased).
    pub store_headers: Vec<http::HeaderName>,
}

/// The reverse-DNS prefix of every `ce-type` (the CRD group
/// `hookwarden.dev`, reversed, as the CloudEvents spec recommends): the
/// provider defines what its event types mean, but Hookwarden names them,
/// and scoping by preset keeps two providers' `push` apart.
pub const CLOUD_EVENTS_TYPE_PREFIX: &str = "dev.hookwarden";

/// A URI path segment: everything but RFC 3986's unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What every CloudEvent of one endpoint shares (see
/// [`cloud_event_headers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEventsContext {
    /// `ce-source`: `/namespaces/<namespace>/webhookendpoints/<name>`, a
    /// URI reference shaped like the endpoint's Kubernetes resource path
    /// (without the API version, so it survives a CRD version change),
    /// unique within a cluster.
    pub source: String,
    /// `ce-type` before the event: `dev.hookwarden.<provider>`.
    pub type_prefix: String,
}

impl CloudEventsContext {
    /// The context of the endpoint `name` in `namespace` with preset
    /// `provider`.
    pub fn new(namespace: &str, name: &str, provider: &str) -> Self {
        // Kubernetes names are already URI-safe; a standalone manifest's
        // need not be, and a name must stay one path segment.
        let segment = |text: &str| utf8_percent_encode(text, PATH_SEGMENT).to_string();
        Self {
            source: format!(
                "/namespaces/{}/webhookendpoints/{}",
                segment(namespace),
                segment(name)
            ),
            type_prefix: format!("{CLOUD_EVENTS_TYPE_PREFIX}.{provider}"),
        }
    }
}

/// The stream settings of `spec.nats`, with their defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// `storage`; default file.
    pub storage: stream::StorageType,
    /// `maxAgeSeconds`; `None`: kept forever.
    pub max_age: Option<Duration>,
    /// `maxBytes`; `None`: no limit.
    pub max_bytes: Option<i64>,
    /// `duplicateWindowSeconds`; default the endpoint's replay window (at
    /// least [`DUPLICATE_WINDOW`]), never shorter than it.
    pub duplicate_window: Duration,
    /// `replicas`; default 1.
    pub replicas: usize,
    /// `createStream`; default true.
    pub create: bool,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            storage: stream::StorageType::File,
            max_age: None,
            max_bytes: None,
            duplicate_window: DUPLICATE_WINDOW,
            replicas: 1,
            create: true,
        }
    }
}

impl StreamSettings {
    /// The settings of `spec.nats`, checked against the endpoint's replay
    /// window ([`crate::verify::replay_window_secs`]): a captured delivery
    /// replayed while its signed timestamp is still accepted must find its
    /// message id remembered, or it would be stored again. So the duplicate
    /// window defaults to the replay window (at least [`DUPLICATE_WINDOW`]),
    /// and a managed stream whose window or max age is shorter is refused.
    /// A stream managed elsewhere (`createStream: false`) is not held to it.
    pub fn from_spec(
        nats: &hookwarden_crds::NatsSpec,
        replay_window_secs: u32,
    ) -> Result<Self, TargetError> {
        let max_age = nats.max_age_seconds.map(Duration::from_secs);
        let create = nats.create_stream.unwrap_or(true);
        let replay = Duration::from_secs(replay_window_secs.into());
        let duplicate_window = match (nats.duplicate_window_seconds, max_age) {
            (Some(window), Some(age)) if Duration::from_secs(window.into()) > age => {
                return Err(TargetError::DuplicateWindow {
                    window,
                    max_age: age.as_secs(),
                });
            }
            (Some(window), _) => Duration::from_secs(window.into()),
            (None, Some(age)) if !create => DUPLICATE_WINDOW.max(replay).min(age),
            (None, _) => DUPLICATE_WINDOW.max(replay),
        };
        if create {
            if duplicate_window < replay {
                return Err(TargetError::DuplicateWindowBelowReplay {
                    window: duplicate_window.as_secs(),
                    replay: replay_window_secs,
                });
            }
            if let Some(age) = max_age.filter(|age| *age < duplicate_window) {
                return Err(TargetError::MaxAgeBelowReplay {
                    max_age: age.as_secs(),
                    replay: replay_window_secs,
                });
            }
        }
        if let Some(bytes) = nats.max_bytes.filter(|b| *b < 1) {
            return Err(TargetError::Limit {
                field: "maxBytes",
                value: bytes.to_string(),
            });
        }
        let replicas = nats.replicas.unwrap_or(1);
        if !(1..=5).contains(&replicas) {
            return Err(TargetError::Limit {
                field: "replicas",
                value: replicas.to_string(),
            });
        }
        Ok(Self {
            storage: match nats.storage.unwrap_or_default() {
                StreamStorage::File => stream::StorageType::File,
                StreamStorage::Memory => stream::StorageType::Memory,
            },
            max_age,
            max_bytes: nats.max_bytes,
            duplicate_window,
            replicas: usize::try_from(replicas).unwrap_or(1),
            create,
        })
    }
}

/// Why an endpoint's NATS settings cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// The manifest has no `metadata.name`.
    #[error("the endpoint manifest has no metadata.name")]
    Unnamed,
    /// `spec.nats.subjectPrefix` is not a valid literal NATS subject.
    #[error(
        "spec.nats.subjectPrefix {0:?} is not a valid subject prefix (dot-separated tokens of letters, digits, '_' and '-')"
    )]
    SubjectPrefix(String),
    /// `spec.nats.stream` is not a valid JetStream stream name.
    #[error("spec.nats.stream {0:?} is not a valid stream name (letters, digits, '_' and '-')")]
    Stream(String),
    /// JetStream refuses a duplicate window longer than the stream's max age.
    #[error(
        "spec.nats.duplicateWindowSeconds ({window}) is longer than spec.nats.maxAgeSeconds ({max_age}); JetStream refuses that: shorten the window or lengthen the max age"
    )]
    DuplicateWindow {
        /// The window, in seconds.
        window: u32,
        /// The max age, in seconds.
        max_age: u64,
    },
    /// The duplicate window is shorter than the replay window, so a captured
    /// delivery replayed late inside its tolerance would be stored again.
    #[error(
        "spec.nats.duplicateWindowSeconds ({window}) is shorter than the endpoint's replay window ({replay} s: twice the timestamp tolerance, since a signed timestamp is accepted that far either side of the receiver's clock); a replayed delivery would be stored again: lengthen the window or lower spec.timestampToleranceSeconds"
    )]
    DuplicateWindowBelowReplay {
        /// The window, in seconds.
        window: u64,
        /// The replay window, in seconds.
        replay: u32,
    },
    /// The stream forgets deliveries before their replay window ends.
    #[error(
        "spec.nats.maxAgeSeconds ({max_age}) is shorter than the endpoint's replay window ({replay} s: twice the timestamp tolerance); a replayed delivery would be stored again once the original expired: lengthen the max age or lower spec.timestampToleranceSeconds"
    )]
    MaxAgeBelowReplay {
        /// The max age, in seconds.
        max_age: u64,
        /// The replay window, in seconds.
        replay: u32,
    },
    /// A stream limit is out of range (the CRD's schema refuses these; a
    /// standalone manifest is not checked by an API server).
    #[error("spec.nats.{field} {value} is out of range")]
    Limit {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// `spec.request.storeHeaders` names a header that may not be stored.
    #[error(transparent)]
    StoreHeader(#[from] crate::provider_headers::StoreHeaderError),
}

impl Target {
    /// The target of an endpoint, validating what the manifest overrides.
    pub fn for_endpoint(endpoint: &EndpointManifest) -> Result<Self, TargetError> {
        let name = endpoint
            .metadata
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .ok_or(TargetError::Unnamed)?;
        let namespace = endpoint
            .metadata
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_NAMESPACE);
        let nats = &endpoint.spec.nats;
        let subject_prefix = match &nats.subject_prefix {
            Some(prefix) if valid_subject_prefix(prefix) => prefix.clone(),
            Some(prefix) => return Err(TargetError::SubjectPrefix(prefix.clone())),
            None => default_subject_prefix(namespace, name),
        };
        let stream = match &nats.stream {
            Some(stream) if valid_token(stream) => stream.clone(),
            Some(stream) => return Err(TargetError::Stream(stream.clone())),
            None => default_stream_name(namespace, name),
        };
        let provider = serde_json::to_value(endpoint.spec.provider)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", endpoint.spec.provider));
        let cloud_events = nats
            .cloud_events
            .then(|| CloudEventsContext::new(namespace, name, &provider));
        Ok(Self {
            endpoint: format!("{namespace}/{name}"),
            quarantine: crate::quarantine::QuarantineTarget::for_endpoint(
                endpoint, namespace, name,
            ),
            cloud_events,
            store_headers: crate::provider_headers::allowlist(endpoint)?,
            provider,
            subject_prefix,
            stream,
            settings: StreamSettings::from_spec(
                nats,
                crate::verify::replay_window_secs(&endpoint.spec),
            )?,
        })
    }

    /// The subject of a delivery of event type `event`.
    pub fn subject(&self, event: Option<&str>) -> String {
        // One allocation per delivery, of the size needed.
        let token_len = event.map_or(0, str::len).max("unknown".len());
        let mut subject = String::with_capacity(self.subject_prefix.len() + 1 + token_len);
        subject.push_str(&self.subject_prefix);
        subject.push('.');
        push_event_token(&mut subject, event);
        subject
    }

    /// The subject filter of every delivery: `<prefix>.>`.
    pub fn subjects(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }

    /// The stream's configuration: every subject under the prefix, with the
    /// settings of `spec.nats` (by default on disk, so deliveries survive a
    /// NATS restart, one replica, no age or size limit, a 120 s duplicate
    /// window). The one definition of the stream, used by the receiver and
    /// the operator alike.
    pub fn stream_config(&self) -> stream::Config {
        let settings = &self.settings;
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.subjects()],
            storage: settings.storage,
            // Zero and -1 are JetStream's "unlimited".
            max_age: settings.max_age.unwrap_or(Duration::ZERO),
            max_bytes: settings.max_bytes.unwrap_or(-1),
            // A full stream refuses new deliveries (503 `stream_full`, the
            // provider retries) instead of deleting acknowledged ones that
            // no consumer may have read yet.
            discard: stream::DiscardPolicy::New,
            duplicate_window: settings.duplicate_window,
            num_replicas: settings.replicas,
            ..stream::Config::default()
        }
    }

    /// Whether an existing stream's subject filters take every delivery of
    /// this target.
    pub fn covered_by(&self, existing: &stream::Config) -> bool {
        let wanted = self.subjects();
        existing.subjects.iter().any(|f| subject_covers(f, &wanted))
    }

    /// What to do with the existing stream of this name so that it has the
    /// spec's settings. Subjects beyond ours are kept (an administrator may
    /// have added them); a stream that does not take our subjects, or whose
    /// storage differs (JetStream cannot change it), is a conflict.
    pub fn plan_update(&self, existing: &stream::Config) -> StreamPlan {
        if !self.covered_by(existing) {
            return StreamPlan::Conflict(format!(
                "JetStream stream {} exists with subjects {:?}, which do not include {}: another application may own it; set spec.nats.stream to another name, or add the subjects to it",
                self.stream,
                existing.subjects,
                self.subjects()
            ));
        }
        let wanted = self.stream_config();
        if existing.storage != wanted.storage {
            return StreamPlan::Conflict(format!(
                "JetStream stream {} keeps messages in {} storage but spec.nats.storage asks for {}; JetStream cannot change the storage of a stream: set spec.nats.storage back, or delete the stream (and the deliveries it holds) so it is created anew",
                self.stream,
                storage_name(existing.storage),
                storage_name(wanted.storage)
            ));
        }
        // JetStream reports "unlimited" as -1 (bytes) and 0 (age).
        let max_bytes = |b: i64| if b <= 0 { -1 } else { b };
        if existing.max_age == wanted.max_age
            && max_bytes(existing.max_bytes) == wanted.max_bytes
            && existing.duplicate_window == wanted.duplicate_window
            && existing.num_replicas.max(1) == wanted.num_replicas
            && existing.discard == wanted.discard
        {
            return StreamPlan::InSync;
        }
        StreamPlan::Update(Box::new(stream::Config {
            max_age: wanted.max_age,
            max_bytes: wanted.max_bytes,
            duplicate_window: wanted.duplicate_window,
            num_replicas: wanted.num_replicas,
            discard: wanted.discard,
            ..existing.clone()
        }))
    }
}

/// What [`Target::plan_update`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamPlan {
    /// The stream has the spec's settings.
    InSync,
    /// The stream's new configuration.
    Update(Box<stream::Config>),
    /// The stream cannot be made to match; the message says why and what to do.
    Conflict(String),
}

fn storage_name(storage: stream::StorageType) -> &'static str {
    match storage {
        stream::StorageType::File => "file",
        stream::StorageType::Memory => "memory",
    }
}

/// Whether subject filter `filter` matches every subject `subject` (itself
/// a filter, e.g. `a.b.>`) matches: `>` takes one or more remaining tokens,
/// `*` exactly one literal token.
pub fn subject_covers(filter: &str, subject: &str) -> bool {
    let mut filter = filter.split('.');
    let mut subject = subject.split('.');
    loop {
        match (filter.next(), subject.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(s)) if s != ">" => {}
            (Some(f), Some(s)) if f == s => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The subject token of an event type: sanitised, `unknown` when absent.
pub fn event_token(event: Option<&str>) -> String {
    let mut token = String::new();
    push_event_token(&mut token, event);
    token
}

/// [`event_token`] of `event`, appended to `out`.
fn push_event_token(out: &mut String, event: Option<&str>) {
    match event.map(str::trim) {
        Some(event) if !event.is_empty() => push_sanitized(out, event),
        _ => out.push_str("unknown"),
    }
}

/// `hookwarden.<namespace>.<name>` with both parts made single tokens
/// (Kubernetes names may contain dots).
pub fn default_subject_prefix(namespace: &str, name: &str) -> String {
    format!(
        "hookwarden.{}.{}",
        sanitize_token(namespace),
        sanitize_token(name)
    )
}

/// `HOOKWARDEN_<NAMESPACE>_<NAME>`, upper-cased; stream names may not
/// contain dots, wildcards or path separators.
pub fn default_stream_name(namespace: &str, name: &str) -> String {
    format!(
        "HOOKWARDEN_{}_{}",
        sanitize_token(namespace),
        sanitize_token(name)
    )
    .to_uppercase()
}

fn valid_token(token: &str) -> bool {
    !token.is_empty() && sanitize_token(token) == token
}

fn valid_subject_prefix(prefix: &str) -> bool {
    prefix.split('.').all(valid_token)
}

/// The JetStream de-duplication id: the provider's delivery id, which
/// redeliveries keep; without one, the body's SHA-256, so an identical
/// retried body is still stored once (`body_sha256`: [`body_sha256`] of the
/// body, computed once per request).
pub fn message_id(delivery_id: Option<&str>, body_sha256: &str) -> String {
    match delivery_id {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => body_sha256.to_owned(),
    }
}

/// Lower-case hex SHA-256 of a body.
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

pub mod manage;
pub mod message;

pub use manage::*;
pub use message::*;

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hookwarden_crds::{NatsSpec, Provider, WebhookEndpointSpec};

    use super::message::{ce_header_value, valid_traceparent};
    use super::*;
    use crate::secrets::Secret;

    /// A stream's info as nats-server answers `$JS.API.STREAM.INFO`, with
    /// `cluster` as given.
    fn info(replicas: usize, cluster: serde_json::Value) -> stream::Info {
        let config = stream::Config {
            name: "S".to_owned(),
            subjects: vec!["s.>".to_owned()],
            num_replicas: replicas,
            ..Default::default()
        };
        serde_json::from_value(serde_json::json!({
            "config": serde_json::to_value(config).expect("config"),
            "created": "2026-01-01T00:00:00Z",
            "state": {
                "messages": 0, "bytes": 0, "first_seq": 0,
                "first_ts": "0001-01-01T00:00:00Z", "last_seq": 0,
                "last_ts": "0001-01-01T00:00:00Z", "consumer_count": 0
            },
            "cluster": cluster,
        }))
        .expect("stream info")
    }

    #[test]
    fn placement_counts_the_leader_and_the_current_online_followers() {
        let peer = |name: &str, current: bool, offline: bool| serde_json::json!({"name": name, "current": current, "active": 1_000_000, "offline": offline});
        let healthy = Placement::of(&info(
            3,
            serde_json::json!({"name": "c", "leader": "n2",
                "replicas": [peer("n1", true, false), peer("n3", true, false)]}),
        ));
        assert_eq!(
            healthy,
            Placement {
                leader: Some("n2".to_owned()),
                current: 3,
                replicas: 3
            }
        );
        assert_eq!(healthy.to_string(), "3 of 3 replicas current, leader n2");

        let one_down = Placement::of(&info(
            3,
            serde_json::json!({"name": "c", "leader": "n1",
                "replicas": [peer("n2", false, true), peer("n3", true, false)]}),
        ));
        assert_eq!(one_down.to_string(), "2 of 3 replicas current, leader n1");
        let lagging = Placement::of(&info(
            3,
            serde_json::json!({"name": "c", "leader": "n1",
                "replicas": [peer("n2", false, false), peer("n3", true, true)]}),
        ));
        assert_eq!(lagging.current, 1, "behind or offline is not current");

        let leaderless = Placement::of(&info(
            3,
            serde_json::json!({"name": "c", "leader": "",
                "replicas": [peer("n1", true, false)]}),
        ));
        assert_eq!(leaderless.leader, None);
        assert_eq!(leaderless.to_string(), "1 of 3 replicas current, no leader");

        // A server outside a cluster leads its own streams.
        let single = Placement::of(&info(1, serde_json::json!({"leader": "nats-0"})));
        assert_eq!(single.to_string(), "1 replica, on nats-0");
        let unknown = Placement::of(&info(1, serde_json::Value::Null));
        assert_eq!(unknown.to_string(), "1 replica, no leader");
    }

    fn endpoint(namespace: Option<&str>, name: &str, nats: NatsSpec) -> EndpointManifest {
        let mut endpoint = EndpointManifest::new(
            name,
            WebhookEndpointSpec {
                provider: Provider::Github,
                secret_refs: Vec::new(),
                allowed_source_cidrs: Vec::new(),
                allowed_sources: Vec::new(),
                trusted_proxies: Vec::new(),
                forwarded_headers: None,
                rate_limit: None,
                verification: None,
                timestamp_tolerance_seconds: None,
                replicas: 2,
                nats,
                generate_secret: false,
                ingress: None,
                tls: None,
                autoscaling: None,
                network_policy: None,
                request: None,
                public_url: None,
                handshake: None,
                aws: None,
                paypal: None,
                google: None,
                azure: None,
                graph: None,
                okta: None,
                logging: None,
                quarantine: None,
                traces: None,
                resources: None,
                pool: None,
            },
        );
        endpoint.metadata.namespace = namespace.map(str::to_owned);
        endpoint
    }

    #[test]
    fn default_subject_and_stream() {
        let target =
            Target::for_endpoint(&endpoint(Some("ci"), "github", NatsSpec::default())).expect("ok");
        assert_eq!(target.endpoint, "ci/github");
        assert_eq!(target.provider, "github");
        assert_eq!(target.subject(Some("push")), "hookwarden.ci.github.push");
        assert_eq!(target.stream, "HOOKWARDEN_CI_GITHUB");
        let config = target.stream_config();
        assert_eq!(config.subjects, ["hookwarden.ci.github.>"]);
        assert_eq!(config.storage, stream::StorageType::File);
        // Twice the default 300 s tolerance (see replay_window_secs).
        assert_eq!(config.duplicate_window, Duration::from_secs(600));
    }

    #[test]
    fn default_stream_settings() {
        let target =
            Target::for_endpoint(&endpoint(Some("ci"), "github", NatsSpec::default())).expect("ok");
        let config = target.stream_config();
        assert_eq!(config.storage, stream::StorageType::File);
        assert_eq!(config.duplicate_window, Duration::from_secs(600));
        assert_eq!(
            config.discard,
            stream::DiscardPolicy::New,
            "never drops stored deliveries"
        );
        assert_eq!(config.num_replicas, 1);
        assert_eq!(config.max_age, Duration::ZERO, "kept forever");
        assert_eq!(config.max_bytes, -1, "no size limit");
        assert!(target.settings.create);
    }

    #[test]
    fn spec_stream_settings_are_applied() {
        let nats = NatsSpec {
            storage: Some(hookwarden_crds::StreamStorage::Memory),
            max_age_seconds: Some(86_400),
            max_bytes: Some(1 << 30),
            duplicate_window_seconds: Some(600),
            replicas: Some(3),
            create_stream: Some(false),
            ..NatsSpec::default()
        };
        let target = Target::for_endpoint(&endpoint(Some("ci"), "github", nats)).expect("ok");
        let config = target.stream_config();
        assert_eq!(config.storage, stream::StorageType::Memory);
        assert_eq!(config.max_age, Duration::from_secs(86_400));
        assert_eq!(config.max_bytes, 1 << 30);
        assert_eq!(config.duplicate_window, Duration::from_secs(600));
        assert_eq!(config.num_replicas, 3);
        assert!(!target.settings.create);
    }

    #[test]
    fn the_duplicate_window_covers_the_replay_window_and_fits_in_the_max_age() {
        let with_tolerance = |tolerance: u32, nats: NatsSpec| {
            let mut endpoint = endpoint(None, "x", nats);
            endpoint.spec.timestamp_tolerance_seconds = Some(tolerance);
            Target::for_endpoint(&endpoint)
        };
        // The default window follows the tolerance, never below 120 s.
        let target = with_tolerance(30, NatsSpec::default()).expect("ok");
        assert_eq!(target.settings.duplicate_window, Duration::from_secs(120));
        let target = with_tolerance(900, NatsSpec::default()).expect("ok");
        assert_eq!(target.settings.duplicate_window, Duration::from_secs(1800));
        // A shorter window, or a max age the replay window outlives, would
        // store a late replay again: refused, naming the settings.
        let short = NatsSpec {
            duplicate_window_seconds: Some(599),
            ..NatsSpec::default()
        };
        let err = with_tolerance(300, short.clone()).expect_err("window < 2 x tolerance");
        assert_eq!(
            err,
            TargetError::DuplicateWindowBelowReplay {
                window: 599,
                replay: 600
            }
        );
        assert!(
            err.to_string().contains("timestampToleranceSeconds"),
            "{err}"
        );
        assert!(
            with_tolerance(299, short).is_ok(),
            "598 s of replay fit in 599"
        );
        let young = NatsSpec {
            max_age_seconds: Some(60),
            ..NatsSpec::default()
        };
        let err = with_tolerance(300, young.clone()).expect_err("max age < replay window");
        assert_eq!(
            err,
            TargetError::MaxAgeBelowReplay {
                max_age: 60,
                replay: 600
            }
        );
        assert!(err.to_string().contains("maxAgeSeconds"), "{err}");
        // A stream managed elsewhere is not held to it: its window fits in
        // its max age, as JetStream requires.
        let unmanaged = NatsSpec {
            create_stream: Some(false),
            ..young
        };
        let target = with_tolerance(300, unmanaged).expect("unmanaged");
        assert_eq!(target.settings.duplicate_window, Duration::from_secs(60));
        // Twitch's window is fixed (10 minutes), whatever the spec says.
        let mut twitch = endpoint(None, "x", NatsSpec::default());
        twitch.spec.provider = Provider::Twitch;
        twitch.spec.timestamp_tolerance_seconds = Some(10);
        let target = Target::for_endpoint(&twitch).expect("twitch");
        assert_eq!(target.settings.duplicate_window, Duration::from_secs(1200));

        let nats = NatsSpec {
            max_age_seconds: Some(60),
            duplicate_window_seconds: Some(61),
            ..NatsSpec::default()
        };
        let err = Target::for_endpoint(&endpoint(None, "x", nats)).expect_err("refused");
        assert_eq!(
            err,
            TargetError::DuplicateWindow {
                window: 61,
                max_age: 60
            }
        );
        assert!(err.to_string().contains("duplicateWindowSeconds"), "{err}");
        for (nats, field) in [
            (
                NatsSpec {
                    max_bytes: Some(0),
                    ..NatsSpec::default()
                },
                "maxBytes",
            ),
            (
                NatsSpec {
                    replicas: Some(6),
                    ..NatsSpec::default()
                },
                "replicas",
            ),
        ] {
            let err = Target::for_endpoint(&endpoint(None, "x", nats)).expect_err("refused");
            assert!(
                matches!(err, TargetError::Limit { field: f, .. } if f == field),
                "{err}"
            );
        }
    }

    #[test]
    fn subject_filters_cover_the_endpoint_subjects() {
        for filter in ["a.b.>", "a.>", ">", "a.*.>", "*.b.>"] {
            assert!(subject_covers(filter, "a.b.>"), "{filter}");
        }
        for filter in ["a.b", "a.b.*", "a.c.>", "a.b.c.>", "b.>", "a.b.*.>", ""] {
            assert!(!subject_covers(filter, "a.b.>"), "{filter}");
        }
    }

    #[test]
    fn an_existing_stream_is_planned_to_the_spec() {
        let nats = NatsSpec {
            max_age_seconds: Some(3600),
            ..NatsSpec::default()
        };
        let target = Target::for_endpoint(&endpoint(Some("ci"), "github", nats)).expect("ok");
        let wanted = target.stream_config();
        assert_eq!(target.plan_update(&wanted), StreamPlan::InSync);

        // As JetStream reports an unlimited size: 0 and -1 are the same.
        let reported = stream::Config {
            max_bytes: 0,
            ..wanted.clone()
        };
        assert_eq!(target.plan_update(&reported), StreamPlan::InSync);

        // Other limits, and an extra subject someone added: the limits are
        // changed, the subjects kept.
        let older = stream::Config {
            max_age: Duration::from_secs(60),
            subjects: vec!["hookwarden.ci.github.>".to_owned(), "extra.>".to_owned()],
            ..wanted.clone()
        };
        let StreamPlan::Update(updated) = target.plan_update(&older) else {
            panic!("an update");
        };
        assert_eq!(updated.max_age, Duration::from_secs(3600));
        assert_eq!(updated.subjects, older.subjects);

        let foreign = stream::Config {
            subjects: vec!["orders.>".to_owned()],
            ..wanted.clone()
        };
        let StreamPlan::Conflict(message) = target.plan_update(&foreign) else {
            panic!("a conflict");
        };
        assert!(
            message.contains("orders.>") && message.contains("hookwarden.ci.github.>"),
            "{message}"
        );

        let memory = stream::Config {
            storage: stream::StorageType::Memory,
            ..wanted
        };
        let StreamPlan::Conflict(message) = target.plan_update(&memory) else {
            panic!("a conflict");
        };
        assert!(message.contains("cannot change the storage"), "{message}");
    }

    #[test]
    fn credentials_must_be_a_creds_file_and_errors_never_show_it() {
        let reference = hookwarden_crds::SecretKeyRef {
            name: "nats".to_owned(),
            key: "user.creds".to_owned(),
        };
        assert!(connect_options(None).is_ok());
        let secret = Secret::from(b"not-a-creds-file-s3cr3t".as_slice());
        let err = connect_options(Some((&reference, &secret))).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("nats/user.creds"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }

    #[test]
    fn names_with_dots_stay_single_tokens() {
        let target = Target::for_endpoint(&endpoint(None, "hooks.example-1", NatsSpec::default()))
            .expect("ok");
        assert_eq!(target.endpoint, "default/hooks.example-1");
        assert_eq!(
            target.subject(None),
            "hookwarden.default.hooks_example-1.unknown"
        );
        assert_eq!(target.stream, "HOOKWARDEN_DEFAULT_HOOKS_EXAMPLE-1");
    }

    #[test]
    fn spec_overrides_prefix_and_stream() {
        let nats = NatsSpec {
            url: None,
            subject_prefix: Some("webhooks.gh".to_owned()),
            stream: Some("GITHUB".to_owned()),
            ..NatsSpec::default()
        };
        let target = Target::for_endpoint(&endpoint(Some("ci"), "github", nats)).expect("ok");
        assert_eq!(
            target.subject(Some("pull_request")),
            "webhooks.gh.pull_request"
        );
        assert_eq!(target.stream_config().subjects, ["webhooks.gh.>"]);
        assert_eq!(target.stream, "GITHUB");
    }

    #[test]
    fn refuses_invalid_overrides() {
        for prefix in ["a.*", "a.>", "a..b", ".a", "a b", ""] {
            let nats = NatsSpec {
                url: None,
                subject_prefix: Some(prefix.to_owned()),
                stream: None,
                ..NatsSpec::default()
            };
            assert_eq!(
                Target::for_endpoint(&endpoint(None, "x", nats)),
                Err(TargetError::SubjectPrefix(prefix.to_owned())),
                "{prefix:?}"
            );
        }
        let nats = NatsSpec {
            url: None,
            subject_prefix: None,
            stream: Some("A.B".to_owned()),
            ..NatsSpec::default()
        };
        assert_eq!(
            Target::for_endpoint(&endpoint(None, "x", nats)),
            Err(TargetError::Stream("A.B".to_owned()))
        );
    }

    #[test]
    fn event_tokens_cannot_inject_subject_syntax() {
        assert_eq!(event_token(Some("push")), "push");
        assert_eq!(event_token(Some("check_run")), "check_run");
        assert_eq!(event_token(Some("a.b.>")), "a_b__");
        assert_eq!(event_token(Some("*")), "_");
        assert_eq!(event_token(Some("ünï")), "_n_");
        assert_eq!(event_token(Some("")), "unknown");
        assert_eq!(event_token(None), "unknown");
    }

    #[test]
    fn message_id_is_the_delivery_id_or_the_body_hash() {
        assert_eq!(message_id(Some("abc-1"), &body_sha256(b"x")), "abc-1");
        // SHA-256 of the empty string.
        assert_eq!(
            message_id(None, &body_sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            message_id(Some(""), &body_sha256(b"")),
            message_id(None, &body_sha256(b""))
        );
    }

    #[test]
    fn headers_describe_the_delivery() {
        let target =
            Target::for_endpoint(&endpoint(Some("ci"), "github", NatsSpec::default())).expect("ok");
        let delivery = Delivery {
            message_id: "d-1".to_owned(),
            body: Bytes::from_static(b"{}"),
            body_sha256: body_sha256(b"{}"),
            event: Some("push".to_owned()),
            delivery_id: Some("d-1".to_owned()),
            received_at: "2026-01-02T03:04:05Z".parse().expect("timestamp"),
            source_ip: "192.0.2.7".parse().expect("ip"),
            content_type: Some("application/json".to_owned()),
            content_encoding: Some("gzip".to_owned()),
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
            tracestate: Some("hw=1".to_owned()),
            sender_traceparent: Some(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
            ),
            provider_headers: Vec::new(),
        };
        let headers = headers(&target, &delivery);
        let get = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(get("Nats-Msg-Id").as_deref(), Some("d-1"));
        assert_eq!(get("Hookwarden-Endpoint").as_deref(), Some("ci/github"));
        assert_eq!(
            get("Hookwarden-Body-Sha256").as_deref(),
            Some(body_sha256(b"{}").as_str())
        );
        assert_eq!(get("Hookwarden-Provider").as_deref(), Some("github"));
        assert_eq!(get("Hookwarden-Event").as_deref(), Some("push"));
        assert_eq!(get("Hookwarden-Delivery-Id").as_deref(), Some("d-1"));
        assert_eq!(
            get("Hookwarden-Received-At").as_deref(),
            Some("2026-01-02T03:04:05Z")
        );
        assert_eq!(get("Hookwarden-Source-Ip").as_deref(), Some("192.0.2.7"));
        assert_eq!(get("Content-Type").as_deref(), Some("application/json"));
        assert_eq!(get("Content-Encoding").as_deref(), Some("gzip"));
        assert_eq!(
            get("traceparent").as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(get("tracestate").as_deref(), Some("hw=1"));
        assert_eq!(
            get("Hookwarden-Sender-Traceparent").as_deref(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            "the sender's, apart from ours"
        );

        let anonymous = Delivery {
            message_id: message_id(None, &body_sha256(b"{}")),
            delivery_id: None,
            event: None,
            content_type: None,
            content_encoding: None,
            ..delivery
        };
        let headers = super::headers(&target, &anonymous);
        assert_eq!(
            headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned()),
            Some(body_sha256(b"{}"))
        );
        assert!(headers.get("Hookwarden-Delivery-Id").is_none());
        assert!(headers.get("Content-Encoding").is_none());
        assert_eq!(
            headers.get("Hookwarden-Event").map(|v| v.as_str()),
            Some("unknown")
        );
    }

    #[test]
    fn a_control_character_in_a_value_never_panics_nor_forges_a_header() {
        let target =
            Target::for_endpoint(&endpoint(Some("ci"), "github", NatsSpec::default())).expect("ok");
        let delivery = Delivery {
            event: Some("push\r\nX-Forged: 1".to_owned()),
            delivery_id: Some("d-1\n".to_owned()),
            content_type: Some("text/plain\u{7}".to_owned()),
            ..push_delivery()
        };
        let headers = headers(&target, &delivery);
        assert_eq!(
            headers
                .get("Hookwarden-Event")
                .map(|v| v.as_str().to_owned()),
            Some("push__X-Forged: 1".to_owned())
        );
        assert!(headers.get("X-Forged").is_none());
        assert_eq!(
            headers
                .get("Hookwarden-Delivery-Id")
                .map(|v| v.as_str().to_owned()),
            Some("d-1_".to_owned())
        );
    }

    fn push_delivery() -> Delivery {
        Delivery {
            message_id: "d-1".to_owned(),
            body: Bytes::from_static(b"{}"),
            body_sha256: body_sha256(b"{}"),
            event: Some("push".to_owned()),
            delivery_id: Some("d-1".to_owned()),
            received_at: "2026-01-02T03:04:05Z".parse().expect("timestamp"),
            source_ip: "192.0.2.7".parse().expect("ip"),
            content_type: Some("application/json".to_owned()),
            content_encoding: None,
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
            tracestate: None,
            sender_traceparent: None,
            provider_headers: Vec::new(),
        }
    }

    fn owned(headers: &[(&'static str, String)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect()
    }

    #[test]
    fn cloud_event_headers_map_every_attribute() {
        let context = CloudEventsContext::new("ci", "github", "github");
        let headers = owned(&cloud_event_headers(&context, &push_delivery()));
        let expected: Vec<(String, String)> = [
            ("ce-specversion", "1.0"),
            ("ce-id", "d-1"),
            ("ce-source", "/namespaces/ci/webhookendpoints/github"),
            ("ce-type", "dev.hookwarden.github.push"),
            ("ce-time", "2026-01-02T03:04:05Z"),
            ("ce-datacontenttype", "application/json"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(headers, expected);
        // Sub-second receipt times keep their precision, still RFC 3339.
        let precise = Delivery {
            received_at: "2026-01-02T03:04:05.25Z".parse().expect("timestamp"),
            ..push_delivery()
        };
        let time = cloud_event_headers(&context, &precise)
            .into_iter()
            .find(|(name, _)| *name == "ce-time")
            .map(|(_, value)| value);
        assert_eq!(time.as_deref(), Some("2026-01-02T03:04:05.25Z"));
    }

    #[test]
    fn cloud_event_headers_fall_back_without_sender_metadata() {
        let context = CloudEventsContext::new("ci", "stripe", "stripe");
        let anonymous = Delivery {
            message_id: message_id(None, &body_sha256(b"{}")),
            delivery_id: None,
            event: None,
            content_type: None,
            ..push_delivery()
        };
        let headers = cloud_event_headers(&context, &anonymous);
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        // The body hash, as Nats-Msg-Id: the same id JetStream de-duplicates.
        assert_eq!(get("ce-id"), Some(body_sha256(b"{}").as_str()));
        assert_eq!(get("ce-type"), Some("dev.hookwarden.stripe"));
        assert_eq!(get("ce-datacontenttype"), None, "no content type sent");
        // An empty or over-long event type is no type; an over-long id is
        // replaced by the body hash.
        for event in ["", "   ", &"x".repeat(MAX_CLOUD_EVENTS_TEXT + 1)] {
            let odd = Delivery {
                event: Some(event.to_owned()),
                message_id: "y".repeat(MAX_CLOUD_EVENTS_TEXT + 1),
                content_type: Some("a/".repeat(MAX_CLOUD_EVENTS_TEXT)),
                ..push_delivery()
            };
            let headers = cloud_event_headers(&context, &odd);
            let get = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(get("ce-type").as_deref(), Some("dev.hookwarden.stripe"));
            assert_eq!(get("ce-id"), Some(body_sha256(b"{}")));
            assert_eq!(get("ce-datacontenttype"), None);
        }
        let longest = Delivery {
            event: Some("e".repeat(MAX_CLOUD_EVENTS_TEXT)),
            ..push_delivery()
        };
        let headers = cloud_event_headers(&context, &longest);
        assert!(
            headers
                .iter()
                .any(|(n, v)| *n == "ce-type" && v.ends_with(&"e".repeat(MAX_CLOUD_EVENTS_TEXT))),
            "{headers:?}"
        );
    }

    #[test]
    fn cloud_event_values_are_percent_encoded_as_the_binding_requires() {
        // The binding's own example (NATS binding 3.1.3.2): "Euro € 😀".
        assert_eq!(
            ce_header_value("Euro \u{20AC} \u{1F600}"),
            "Euro%20%E2%82%AC%20%F0%9F%98%80"
        );
        assert_eq!(ce_header_value("a\"b%c"), "a%22b%25c");
        assert_eq!(ce_header_value("tab\there\x7f"), "tab%09here%7F");
        // Printable ASCII other than space, '"' and '%' is left alone.
        let printable: String = (0x21u8..=0x7e)
            .filter(|b| !matches!(b, b'"' | b'%'))
            .map(char::from)
            .collect();
        assert_eq!(ce_header_value(&printable), printable);

        // A sender's CR LF cannot start a header of its own (the verifiers
        // already drop such event types; this holds without them).
        let target = Target {
            cloud_events: Some(CloudEventsContext::new("ci", "gitlab", "gitlab")),
            ..Target::for_endpoint(&endpoint(Some("ci"), "gitlab", NatsSpec::default()))
                .expect("ok")
        };
        let hostile = Delivery {
            event: Some("Push Hook\r\nce-type: evil".to_owned()),
            content_type: Some("application/json; charset=\"utf-8\"".to_owned()),
            ..push_delivery()
        };
        let headers = cloud_event_headers(target.cloud_events.as_ref().expect("on"), &hostile);
        for (name, value) in &headers {
            assert!(
                value.bytes().all(|b| (0x21..=0x7e).contains(&b)),
                "{name}: {value}"
            );
        }
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("ce-type"),
            Some("dev.hookwarden.gitlab.Push%20Hook%0D%0Ace-type:%20evil")
        );
        assert_eq!(
            get("ce-datacontenttype"),
            Some("application/json;%20charset=%22utf-8%22")
        );
        // What the verifiers let through (visible ASCII and spaces) is
        // stored encoded, beside the Hookwarden header that keeps it as sent.
        let gitlab = Delivery {
            event: Some("Push Hook".to_owned()),
            ..push_delivery()
        };
        let map = super::headers(&target, &gitlab);
        assert_eq!(
            map.get("ce-type").map(|v| v.as_str()),
            Some("dev.hookwarden.gitlab.Push%20Hook")
        );
        assert_eq!(
            map.get("Hookwarden-Event").map(|v| v.as_str()),
            Some("Push Hook")
        );
    }

    #[test]
    fn cloud_events_are_opt_in_and_the_source_names_the_endpoint() {
        let off =
            Target::for_endpoint(&endpoint(Some("ci"), "github", NatsSpec::default())).expect("ok");
        assert_eq!(off.cloud_events, None);
        let headers = super::headers(&off, &push_delivery());
        for name in ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time"] {
            assert!(headers.get(name).is_none(), "{name} without the option");
        }

        let nats = NatsSpec {
            cloud_events: true,
            ..NatsSpec::default()
        };
        let on =
            Target::for_endpoint(&endpoint(None, "hooks.example-1", nats.clone())).expect("ok");
        let context = on.cloud_events.clone().expect("on");
        assert_eq!(
            context.source,
            "/namespaces/default/webhookendpoints/hooks.example-1"
        );
        assert_eq!(context.type_prefix, "dev.hookwarden.github");
        let headers = super::headers(&on, &push_delivery());
        assert_eq!(
            headers.get("ce-specversion").map(|v| v.as_str()),
            Some("1.0")
        );
        // The Hookwarden headers stay.
        assert_eq!(
            headers.get("Hookwarden-Event").map(|v| v.as_str()),
            Some("push")
        );
        // A name that is no Kubernetes name stays one path segment.
        let odd = CloudEventsContext::new("a b", "x/y", "generic");
        assert_eq!(odd.source, "/namespaces/a%20b/webhookendpoints/x%2Fy");
        let mut dotted = endpoint(Some("ci"), "x", nats);
        dotted.spec.provider = Provider::AzureEventGrid;
        let context = Target::for_endpoint(&dotted)
            .expect("ok")
            .cloud_events
            .expect("on");
        assert_eq!(context.type_prefix, "dev.hookwarden.azure-event-grid");
    }

    #[test]
    fn the_sender_s_traceparent_is_continued_only_when_trusted() {
        let sent = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
        let valid = checked_traceparent(Some(sent));
        assert_eq!(valid.as_deref(), Some(sent.to_ascii_lowercase().as_str()));
        for bad in [
            None,
            Some(""),
            Some("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
        ] {
            assert_eq!(checked_traceparent(bad), None, "{bad:?}");
        }
        let ours = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(
            traceparent(Some(ours.to_owned()), valid.as_deref(), true),
            ours
        );
        assert_eq!(
            traceparent(None, valid.as_deref(), true).as_str(),
            valid.as_deref().expect("valid")
        );
        let made = traceparent(None, valid.as_deref(), false);
        assert!(valid_traceparent(&made), "{made}");
        assert_ne!(
            Some(made.as_str()),
            valid.as_deref(),
            "untrusted: a new trace"
        );
        assert_ne!(
            traceparent(None, None, false),
            traceparent(None, None, false),
            "a new trace each time"
        );
    }
}
