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

use std::net::IpAddr;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::{HeaderName, HeaderValue};
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use bytes::Bytes;
use hookwarden_crds::{StreamStorage, WebhookEndpoint};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::secrets::Secret;

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
    pub fn for_endpoint(endpoint: &WebhookEndpoint) -> Result<Self, TargetError> {
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

/// Replaces every character outside `[A-Za-z0-9_-]` by `_`, so provider- or
/// user-chosen text can never add subject tokens (`.`) or wildcards (`*`, `>`).
pub fn sanitize_token(text: &str) -> String {
    let mut token = String::with_capacity(text.len());
    push_sanitized(&mut token, text);
    token
}

/// [`sanitize_token`] of `text`, appended to `out` (one char per char, so
/// never longer than `text`).
fn push_sanitized(out: &mut String, text: &str) {
    out.extend(text.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c
        } else {
            '_'
        }
    }));
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

/// A verified delivery, ready to store.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The de-duplication id ([`message_id`]).
    pub message_id: String,
    /// The raw body, byte for byte as received.
    pub body: Bytes,
    /// [`body_sha256`] of `body`: hashed once per request, for the audit
    /// line, the message id and the `Hookwarden-Body-Sha256` header.
    pub body_sha256: String,
    /// The provider's event type.
    pub event: Option<String>,
    /// The provider's delivery id.
    pub delivery_id: Option<String>,
    /// When the receiver got it.
    pub received_at: jiff::Timestamp,
    /// The peer address the delivery came from.
    pub source_ip: IpAddr,
    /// The request's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The request's `Content-Encoding`, if any (the body is stored as sent,
    /// still encoded, since that is what the provider signed).
    pub content_encoding: Option<String>,
    /// The W3C trace context consumers continue (see [`traceparent`]).
    pub traceparent: String,
    /// The W3C `tracestate` that goes with it, if any.
    pub tracestate: Option<String>,
    /// The sender's own `traceparent` when valid ([`checked_traceparent`]):
    /// untrusted, stored apart under
    /// [`crate::telemetry::SENDER_TRACEPARENT_HEADER`].
    pub sender_traceparent: Option<String>,
    /// The provider's request headers `spec.request.storeHeaders` lists,
    /// as stored ([`crate::provider_headers::pick`]).
    pub provider_headers: Vec<(String, String)>,
}

/// A `traceparent` value, lower-cased, when it is a valid one (a sender's,
/// or one read back from a stored message).
pub fn checked_traceparent(sent: Option<&str>) -> Option<String> {
    sent.map(str::trim)
        .filter(|v| valid_traceparent(v))
        .map(str::to_ascii_lowercase)
}

/// The W3C `traceparent` to store with a delivery: the receiver's own span
/// (`ours`) when traces are on; else the sender's valid one only when the
/// endpoint trusts it (`spec.traces`, or the process's flag); else a
/// new sampled trace rooted at the receiver. A sender's context is never
/// continued by default: it is the sender's claim, and would let anyone
/// put a delivery into a trace of their choosing.
pub fn traceparent(ours: Option<String>, sender: Option<&str>, trust_sender: bool) -> String {
    if let Some(ours) = ours {
        return ours;
    }
    if trust_sender && let Some(sender) = sender {
        return sender.to_owned();
    }
    // Written into one buffer of the final size (`format!`'s padded hex
    // went through the formatting machinery digit by digit).
    let trace_id = rand::random::<u128>().max(1).to_be_bytes();
    let parent_id = rand::random::<u64>().max(1).to_be_bytes();
    let mut traceparent = String::with_capacity(TRACEPARENT_LEN);
    traceparent.push_str("00-");
    push_hex(&mut traceparent, &trace_id);
    traceparent.push('-');
    push_hex(&mut traceparent, &parent_id);
    traceparent.push_str("-01");
    traceparent
}

/// `bytes` as lower-case hex, appended to `out`.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

/// `00-` + 32 hex digits + `-` + 16 hex digits + `-01`.
const TRACEPARENT_LEN: usize = 55;

/// `00-<32 hex trace id, not all zero>-<16 hex parent id, not all zero>-<2 hex flags>`.
fn valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [version, trace, parent, flags]
        if *version == "00" && hex(trace, 32) && nonzero(trace) && hex(parent, 16) && nonzero(parent) && hex(flags, 2))
}

/// The names of the headers [`headers`] stores, made once: a name made from
/// a `&str` per delivery was matched against NATS's standard names and
/// copied into an allocation of its own, every time.
mod names {
    use async_nats::header::HeaderName;

    pub(super) const MSG_ID: HeaderName = async_nats::header::NATS_MESSAGE_ID;
    pub(super) const ENDPOINT: HeaderName = HeaderName::from_static("Hookwarden-Endpoint");
    pub(super) const BODY_SHA256: HeaderName = HeaderName::from_static("Hookwarden-Body-Sha256");
    pub(super) const PROVIDER: HeaderName = HeaderName::from_static("Hookwarden-Provider");
    pub(super) const EVENT: HeaderName = HeaderName::from_static("Hookwarden-Event");
    pub(super) const DELIVERY_ID: HeaderName = HeaderName::from_static("Hookwarden-Delivery-Id");
    pub(super) const RECEIVED_AT: HeaderName = HeaderName::from_static("Hookwarden-Received-At");
    pub(super) const SOURCE_IP: HeaderName = HeaderName::from_static("Hookwarden-Source-Ip");
    pub(super) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    pub(super) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
    pub(super) const SENDER_TRACEPARENT: HeaderName =
        HeaderName::from_static(crate::telemetry::SENDER_TRACEPARENT_HEADER);
    pub(super) const CONTENT_TYPE: HeaderName = HeaderName::from_static("Content-Type");
    pub(super) const CONTENT_ENCODING: HeaderName = HeaderName::from_static("Content-Encoding");
}

/// The NATS headers stored with a delivery: everything a consumer needs to
/// trust and route it without re-verifying. Only the body is stored besides
/// them; signatures and secrets never are.
pub fn headers(target: &Target, delivery: &Delivery) -> HeaderMap {
    let mut map = HeaderMap::new();
    let mut headers = SafeHeaders(&mut map);
    headers.insert(names::MSG_ID, delivery.message_id.as_str());
    headers.insert(names::ENDPOINT, target.endpoint.as_str());
    // Lets a consumer recognise the same signed body under another delivery
    // id: what a replay of a preset with an unsigned id looks like.
    headers.insert(names::BODY_SHA256, delivery.body_sha256.as_str());
    headers.insert(names::PROVIDER, target.provider.as_str());
    headers.insert(names::EVENT, delivery.event.as_deref().unwrap_or("unknown"));
    if let Some(id) = &delivery.delivery_id {
        headers.insert(names::DELIVERY_ID, id.as_str());
    }
    // Formatted into the value kept, not into a copy.
    headers.insert(names::RECEIVED_AT, delivery.received_at.to_string());
    headers.insert(names::SOURCE_IP, delivery.source_ip.to_string());
    headers.insert(names::TRACEPARENT, delivery.traceparent.as_str());
    if let Some(state) = &delivery.tracestate {
        headers.insert(names::TRACESTATE, state.as_str());
    }
    if let Some(sent) = &delivery.sender_traceparent {
        headers.insert(names::SENDER_TRACEPARENT, sent.as_str());
    }
    headers.insert(
        names::CONTENT_TYPE,
        delivery
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream"),
    );
    if let Some(encoding) = &delivery.content_encoding {
        headers.insert(names::CONTENT_ENCODING, encoding.as_str());
    }
    if let Some(context) = &target.cloud_events {
        for (name, value) in cloud_event_headers(context, delivery) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    // Checked when picked: visible ASCII only, so no cleaning is needed.
    for (name, value) in &delivery.provider_headers {
        map.append(name.as_str(), value.as_str());
    }
    map
}

/// A header map that never panics on a value: async-nats panics on CR or
/// LF in a header value. Everything stored is filtered before it gets here
/// (hyper refuses such request headers; event types and ids pass
/// `verify::info_value`), so this is defence in depth: a control character
/// that still arrives becomes `_` rather than a panic or a forged header.
struct SafeHeaders<'a>(&'a mut HeaderMap);

impl SafeHeaders<'_> {
    /// `value` (borrowed: copied once; owned: kept as is) under `name`.
    fn insert<V: AsRef<str> + Into<HeaderValue>>(&mut self, name: HeaderName, value: V) {
        let text = value.as_ref();
        if text.bytes().any(|b| b.is_ascii_control()) {
            let cleaned: String = text
                .chars()
                .map(|c| if c.is_ascii_control() { '_' } else { c })
                .collect();
            self.0.insert(name, cleaned);
        } else {
            self.0.insert(name, value.into());
        }
    }
}

/// The reverse-DNS prefix of every `ce-type` (the CRD group
/// `hookwarden.dev`, reversed, as the CloudEvents spec recommends): the
/// provider defines what its event types mean, but Hookwarden names them,
/// and scoping by preset keeps two providers' `push` apart.
pub const CLOUD_EVENTS_TYPE_PREFIX: &str = "dev.hookwarden";

/// The longest sender-chosen text (event type, delivery id, content type)
/// put in a CloudEvents attribute, in bytes before encoding: the receiver
/// already drops longer event types and delivery ids (`info_value`), and the
/// headers must fit in [`crate::reload::HEADER_HEADROOM`] whatever a
/// [`Delivery`] holds.
pub const MAX_CLOUD_EVENTS_TEXT: usize = 256;

/// What the CloudEvents NATS binding (3.1.3.2 "NATS Header Values", the same
/// rule as the HTTP binding) requires percent-encoded in a header value:
/// space, `"`, `%`, and everything outside printable ASCII (controls here;
/// non-ASCII is always encoded by [`utf8_percent_encode`]). So a CR or LF a
/// sender slipped into an event type can never end a header line.
const CE_HEADER_VALUE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// A URI path segment: everything but RFC 3986's unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An attribute's string as a NATS header value (see [`CE_HEADER_VALUE`]).
fn ce_header_value(text: &str) -> String {
    utf8_percent_encode(text, CE_HEADER_VALUE).to_string()
}

/// Sender-chosen text fit for an attribute: trimmed, non-empty, at most
/// [`MAX_CLOUD_EVENTS_TEXT`] bytes; else `None` and the caller's fallback.
fn ce_text(text: Option<&str>) -> Option<&str> {
    text.map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= MAX_CLOUD_EVENTS_TEXT)
}

/// The CloudEvents v1.0 binary-mode headers of a delivery, per the NATS
/// protocol binding (every attribute as a `ce-` header, `datacontenttype`
/// included; values percent-encoded): the body is the event's `data`.
///
/// - `ce-id`: the JetStream message id, i.e. the provider's delivery id, or
///   the body's SHA-256 when it sent none (or one over
///   [`MAX_CLOUD_EVENTS_TEXT`]). CloudEvents consumers may treat the same
///   `source` and `id` as a duplicate, which is what JetStream does too.
/// - `ce-type`: `dev.hookwarden.<provider>.<event type>`; without a usable
///   event type just `dev.hookwarden.<provider>` (never `unknown`, which a
///   provider could send as a real type).
/// - `ce-time`: when the receiver got it (RFC 3339, as
///   `Hookwarden-Received-At`).
/// - `ce-datacontenttype`: the request's `Content-Type`, when it sent one.
///
/// No `ce-subject`: what an event is about is the provider's to say, inside
/// the body. Nothing here comes from a secret or a signature.
pub fn cloud_event_headers(
    context: &CloudEventsContext,
    delivery: &Delivery,
) -> Vec<(&'static str, String)> {
    let id = match ce_text(Some(&delivery.message_id)) {
        Some(id) => id.to_owned(),
        None => delivery.body_sha256.clone(),
    };
    let kind = match ce_text(delivery.event.as_deref()) {
        Some(event) => format!("{}.{event}", context.type_prefix),
        None => context.type_prefix.clone(),
    };
    let mut headers = vec![
        ("ce-specversion", "1.0".to_owned()),
        ("ce-id", ce_header_value(&id)),
        ("ce-source", ce_header_value(&context.source)),
        ("ce-type", ce_header_value(&kind)),
        (
            "ce-time",
            ce_header_value(&delivery.received_at.to_string()),
        ),
    ];
    if let Some(content_type) = ce_text(delivery.content_type.as_deref()) {
        headers.push(("ce-datacontenttype", ce_header_value(content_type)));
    }
    headers
}

/// What JetStream said when it stored a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The stream sequence of the message (of the original, for a duplicate).
    pub sequence: u64,
    /// JetStream had already stored a delivery with this message id.
    pub duplicate: bool,
}

/// Why a delivery could not be stored. Either way the provider must retry.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// JetStream did not acknowledge within the timeout (e.g. NATS is down
    /// and the client is reconnecting).
    #[error("JetStream did not acknowledge within {0:?}")]
    Timeout(Duration),
    /// JetStream refused or could not take the message.
    #[error("JetStream unavailable: {0}")]
    Unavailable(String),
    /// Body plus headers exceed the NATS server's `max_payload`. Retrying
    /// cannot help, so this must not be answered like an outage.
    #[error("too large for NATS: {0}")]
    TooLarge(String),
    /// The stream is at its `maxBytes`, or the account or server has no
    /// storage left: nothing is stored until consumers catch up or the
    /// limits are raised.
    #[error("JetStream stream full: {0}")]
    Full(String),
    /// The stream is gone and could not be created again (or may not be:
    /// `createStream: false`).
    #[error("JetStream stream missing: {0}")]
    StreamMissing(String),
}

/// Why the endpoint's stream is not usable. Each message names the stream
/// and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum EnsureStreamError {
    /// NATS or JetStream did not answer.
    #[error("NATS did not answer about JetStream stream {stream}: {detail}")]
    Unreachable {
        /// The stream's name.
        stream: String,
        /// What the client said.
        detail: String,
    },
    /// The stream does not exist and may not be created here.
    #[error(
        "JetStream stream {stream} does not exist and spec.nats.createStream is false: create it with subjects {subjects}, or set createStream to true"
    )]
    NotFound {
        /// The stream's name.
        stream: String,
        /// The subjects it must take.
        subjects: String,
    },
    /// The stream exists but cannot take the endpoint's deliveries, or
    /// cannot be given the spec's settings.
    #[error("{0}")]
    Conflict(String),
    /// JetStream refused to create, read or update the stream.
    #[error("JetStream refused stream {stream}: {detail}")]
    Rejected {
        /// The stream's name.
        stream: String,
        /// JetStream's own description.
        detail: String,
    },
}

/// What [`manage_stream`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOutcome {
    /// The stream did not exist and was created.
    Created,
    /// The stream existed with other settings and was updated.
    Updated,
    /// The stream already had the spec's settings.
    InSync,
    /// `createStream: false`: the stream exists and takes the subjects; its
    /// settings are left to whoever manages it.
    Unmanaged,
}

/// Where a stream's copies are and whether they keep up, from the
/// `cluster` section of its info: what the operator reports in
/// `StreamReady`, and what its stream audit compares between two checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The server leading the stream (the one that stores and
    /// acknowledges), when it has one.
    pub leader: Option<String>,
    /// The copies that are current: the leader, and the followers that are
    /// caught up and online.
    pub current: usize,
    /// The copies the stream has (`num_replicas`).
    pub replicas: usize,
}

impl Placement {
    /// The placement `info` describes. A server outside a cluster reports
    /// itself as the leader of its streams.
    pub fn of(info: &stream::Info) -> Self {
        let replicas = info.config.num_replicas.max(1);
        let Some(cluster) = &info.cluster else {
            return Self {
                leader: None,
                current: 0,
                replicas,
            };
        };
        let leader = cluster.leader.clone().filter(|name| !name.is_empty());
        let followers = cluster
            .replicas
            .iter()
            .filter(|peer| peer.current && !peer.offline)
            .count();
        Self {
            current: (usize::from(leader.is_some()) + followers).min(replicas),
            leader,
            replicas,
        }
    }
}

impl std::fmt::Display for Placement {
    /// E.g. `3 of 3 replicas current, leader n2`; `1 replica, on n1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.leader, self.replicas) {
            (Some(leader), 1) => write!(f, "1 replica, on {leader}"),
            (Some(leader), replicas) => write!(
                f,
                "{} of {replicas} replicas current, leader {leader}",
                self.current
            ),
            (None, 1) => f.write_str("1 replica, no leader"),
            (None, replicas) => write!(
                f,
                "{} of {replicas} replicas current, no leader",
                self.current
            ),
        }
    }
}

/// Reads the stream; `None` when it does not exist.
async fn lookup(
    jetstream: &jetstream::Context,
    target: &Target,
) -> Result<Option<stream::Config>, EnsureStreamError> {
    Ok(lookup_info(jetstream, target)
        .await?
        .map(|info| info.config))
}

/// The target stream's info (configuration and state), `None` if it does
/// not exist.
async fn lookup_info(
    jetstream: &jetstream::Context,
    target: &Target,
) -> Result<Option<stream::Info>, EnsureStreamError> {
    match jetstream.get_stream(&target.stream).await {
        Ok(stream) => Ok(Some(stream.cached_info().clone())),
        Err(err) => match err.kind() {
            GetStreamErrorKind::JetStream(js)
                if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(None)
            }
            GetStreamErrorKind::JetStream(js) => Err(EnsureStreamError::Rejected {
                stream: target.stream.clone(),
                detail: js.to_string(),
            }),
            _ => Err(EnsureStreamError::Unreachable {
                stream: target.stream.clone(),
                detail: err.to_string(),
            }),
        },
    }
}

fn create_error(target: &Target, err: &jetstream::context::CreateStreamError) -> EnsureStreamError {
    match err.kind() {
        CreateStreamErrorKind::JetStream(js) => EnsureStreamError::Rejected {
            stream: target.stream.clone(),
            detail: js.to_string(),
        },
        _ => EnsureStreamError::Unreachable {
            stream: target.stream.clone(),
            detail: err.to_string(),
        },
    }
}

fn not_found(target: &Target) -> EnsureStreamError {
    EnsureStreamError::NotFound {
        stream: target.stream.clone(),
        subjects: target.subjects(),
    }
}

fn uncovered(target: &Target, existing: &stream::Config) -> EnsureStreamError {
    EnsureStreamError::Conflict(format!(
        "JetStream stream {} takes subjects {:?}, which do not include {}: deliveries could not be stored; add the subjects to the stream or set spec.nats.stream to another name",
        target.stream,
        existing.subjects,
        target.subjects()
    ))
}

/// Makes the stream match the spec, as the operator does on every pass:
/// created when absent, updated when its limits differ, left alone (but
/// checked) with `createStream: false`. A stream is never deleted here.
/// The quarantine stream (`spec.quarantine`) is created or updated after
/// it: the operator's credentials may create streams where a receiver's may
/// not.
pub async fn manage_stream(
    jetstream: &jetstream::Context,
    target: &Target,
) -> Result<ManagedStream, EnsureStreamError> {
    let managed = manage_delivery_stream(jetstream, target).await?;
    if let Some(quarantine) = &target.quarantine {
        manage_quarantine_stream(jetstream, quarantine).await?;
    }
    Ok(managed)
}

/// What [`manage_stream`] did, and where the delivery stream is then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedStream {
    /// Created, updated, in sync, or left to whoever manages it.
    pub outcome: StreamOutcome,
    /// The stream's placement as JetStream's answer described it (a stream
    /// just created may have no leader yet).
    pub placement: Placement,
}

/// The placement after a create or update: the answer's, unless it names
/// no leader (a server outside a cluster leaves its answer's `cluster`
/// section out; a new replicated stream may still be electing), then the
/// stream's info read once more. Otherwise the first audit would find the
/// stream "moved" and start a pass for nothing.
async fn placement_after_change(
    jetstream: &jetstream::Context,
    target: &Target,
    answer: &stream::Info,
) -> Placement {
    let placement = Placement::of(answer);
    if placement.leader.is_some() {
        return placement;
    }
    match lookup_info(jetstream, target).await {
        Ok(Some(info)) => Placement::of(&info),
        _ => placement,
    }
}

/// Creates the quarantine stream, or updates its limits to the spec's.
async fn manage_quarantine_stream(
    jetstream: &jetstream::Context,
    quarantine: &crate::quarantine::QuarantineTarget,
) -> Result<(), EnsureStreamError> {
    let wanted = quarantine.stream_config();
    let failed = |detail: String| EnsureStreamError::Rejected {
        stream: quarantine.stream.clone(),
        detail,
    };
    match jetstream.get_stream(&quarantine.stream).await {
        Ok(stream) => {
            if !quarantine_in_sync(&stream.cached_info().config, &wanted) {
                jetstream
                    .update_stream(wanted)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
            }
            Ok(())
        }
        Err(err) if matches!(err.kind(), GetStreamErrorKind::JetStream(js) if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) => {
            jetstream
                .create_stream(wanted)
                .await
                .map(|_| ())
                .map_err(|e| failed(e.to_string()))
        }
        Err(err) => Err(EnsureStreamError::Unreachable {
            stream: quarantine.stream.clone(),
            detail: err.to_string(),
        }),
    }
}

fn quarantine_in_sync(existing: &stream::Config, wanted: &stream::Config) -> bool {
    existing.subjects == wanted.subjects
        && existing.max_age == wanted.max_age
        && existing.max_bytes == wanted.max_bytes
}

async fn manage_delivery_stream(
    jetstream: &jetstream::Context,
    target: &Target,
) -> Result<ManagedStream, EnsureStreamError> {
    let managed = |outcome, info: &stream::Info| ManagedStream {
        outcome,
        placement: Placement::of(info),
    };
    let Some(existing) = lookup_info(jetstream, target).await? else {
        if !target.settings.create {
            return Err(not_found(target));
        }
        return match jetstream.create_stream(target.stream_config()).await {
            Ok(stream) => Ok(ManagedStream {
                outcome: StreamOutcome::Created,
                placement: placement_after_change(jetstream, target, stream.cached_info()).await,
            }),
            Err(err) => Err(create_error(target, &err)),
        };
    };
    if !target.settings.create {
        return if target.covered_by(&existing.config) {
            Ok(managed(StreamOutcome::Unmanaged, &existing))
        } else {
            Err(uncovered(target, &existing.config))
        };
    }
    match target.plan_update(&existing.config) {
        StreamPlan::InSync => Ok(managed(StreamOutcome::InSync, &existing)),
        StreamPlan::Conflict(message) => Err(EnsureStreamError::Conflict(message)),
        StreamPlan::Update(config) => match jetstream.update_stream(*config).await {
            Ok(info) => Ok(ManagedStream {
                outcome: StreamOutcome::Updated,
                placement: placement_after_change(jetstream, target, &info).await,
            }),
            Err(err) => Err(create_error(target, &err)),
        },
    }
}

/// Whether the stream is what [`manage_stream`] would leave it, found without
/// changing anything: the operator's periodic drift check of a ready
/// endpoint. `false` when the stream is missing, has other limits, or (with
/// `createStream: false`) does not take the endpoint's subjects.
pub async fn stream_in_sync(
    jetstream: &jetstream::Context,
    target: &Target,
) -> Result<bool, EnsureStreamError> {
    Ok(check_stream(jetstream, target).await?.in_sync)
}

/// A stream's use against its limits: what a full stream (503
/// `stream_full`) is near. JetStream's "no limit" is -1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamUsage {
    /// Bytes stored.
    pub bytes: u64,
    /// Messages stored.
    pub messages: u64,
    /// `max_bytes`, -1 for none.
    pub max_bytes: i64,
    /// `max_msgs`, -1 for none.
    pub max_messages: i64,
}

impl StreamUsage {
    /// The usage in a stream's info.
    pub fn of(info: &stream::Info) -> Self {
        Self {
            bytes: info.state.bytes,
            messages: info.state.messages,
            max_bytes: info.config.max_bytes,
            max_messages: info.config.max_messages,
        }
    }
}

/// What one look at the target's stream found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamCheck {
    /// Whether the stream (and its quarantine stream) are as the target
    /// wants them ([`stream_in_sync`]).
    pub in_sync: bool,
    /// The delivery stream's use, `None` if it does not exist.
    pub usage: Option<StreamUsage>,
    /// Where its replicas are, when it is in sync.
    pub placement: Option<Placement>,
}

/// [`stream_in_sync`], with the stream's use against its limits and its
/// placement, from the same one request for the delivery stream.
pub async fn check_stream(
    jetstream: &jetstream::Context,
    target: &Target,
) -> Result<StreamCheck, EnsureStreamError> {
    let Some(info) = lookup_info(jetstream, target).await? else {
        return Ok(StreamCheck {
            in_sync: false,
            usage: None,
            placement: None,
        });
    };
    let usage = Some(StreamUsage::of(&info));
    let existing = &info.config;
    let delivery_in_sync = if target.settings.create {
        matches!(target.plan_update(existing), StreamPlan::InSync)
    } else {
        target.covered_by(existing)
    };
    let quarantine_in_sync = match &target.quarantine {
        None => true,
        Some(quarantine) => match jetstream.get_stream(&quarantine.stream).await {
            Ok(stream) => {
                quarantine_in_sync(&stream.cached_info().config, &quarantine.stream_config())
            }
            Err(_) => false,
        },
    };
    let in_sync = delivery_in_sync && quarantine_in_sync;
    Ok(StreamCheck {
        in_sync,
        usage,
        placement: in_sync.then(|| Placement::of(&info)),
    })
}

/// Why the NATS credentials could not be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "spec.nats.credentialsSecretRef {name}/{key} is not a NATS .creds file (a user JWT and NKey seed): {reason}"
)]
pub struct CredentialsError {
    /// The Secret's name.
    pub name: String,
    /// The key.
    pub key: String,
    /// What is wrong, never the content.
    pub reason: String,
}

/// How often the client PINGs a server it has heard nothing from; it gives
/// up on the connection (and reconnects to another server of the list, or
/// one the cluster advertised) after three unanswered intervals. With the
/// client's default, 60 s, a receiver whose server is frozen or cut off
/// (alive, its socket open, answering nothing) stays on it for up to three
/// minutes, answering every delivery 503 while the other nodes of the
/// cluster are fine; 3 s gives up within 9 s (`receiver/tests/it/
/// jetstream_cluster.rs` pauses the receiver's node). Idle cost: one PING
/// and PONG per connection every 3 s; under load none (any traffic from
/// the server restarts the interval).
pub const PING_INTERVAL: Duration = Duration::from_secs(3);

/// The NATS connection name of `endpoint`'s receivers:
/// `hookwarden-receiver <namespace>/<name>`.
pub fn client_name(endpoint: &WebhookEndpoint) -> String {
    format!(
        "hookwarden-receiver {}/{}",
        endpoint.metadata.namespace.as_deref().unwrap_or_default(),
        endpoint.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Client options for NATS, with the `.creds` file's JWT and seed when the
/// endpoint references one (`name`/`key` only name it in errors).
pub fn connect_options(
    credentials: Option<(&hookwarden_crds::SecretKeyRef, &Secret)>,
) -> Result<async_nats::ConnectOptions, CredentialsError> {
    let options = async_nats::ConnectOptions::new().ping_interval(PING_INTERVAL);
    let Some((reference, secret)) = credentials else {
        return Ok(options);
    };
    let failed = |reason: &str| CredentialsError {
        name: reference.name.clone(),
        key: reference.key.clone(),
        reason: reason.to_owned(),
    };
    let text = std::str::from_utf8(secret.expose()).map_err(|_| failed("not UTF-8 text"))?;
    // The JWT and the seed on their own: the client's CONNECT trace shows
    // the JWT.
    crate::logging::register_creds(text);
    // The parser's errors say which part is missing, never the content.
    let options =
        async_nats::ConnectOptions::with_credentials(text).map_err(|e| failed(&e.to_string()))?;
    Ok(options.ping_interval(PING_INTERVAL))
}

/// Publishes an endpoint's deliveries to its stream.
#[derive(Debug, Clone)]
pub struct Publisher {
    jetstream: jetstream::Context,
    target: Target,
    ack_timeout: Duration,
}

impl Publisher {
    /// A publisher that waits at most `ack_timeout` for JetStream; keep it
    /// well below the provider's own timeout (GitHub: 10 s) so the provider
    /// gets a clear 503 instead of a dropped connection.
    pub fn new(client: async_nats::Client, target: Target, ack_timeout: Duration) -> Self {
        let mut jetstream = jetstream::new(client);
        jetstream.set_timeout(ack_timeout);
        Self {
            jetstream,
            target,
            ack_timeout,
        }
    }

    /// Where this publisher stores deliveries.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Makes sure deliveries can be stored: creates the endpoint's stream
    /// unless it exists (or, with `createStream: false`, only looks it up),
    /// and checks that it takes the endpoint's subjects. An existing stream's
    /// settings are left as they are: the operator (or an administrator)
    /// manages them.
    pub async fn ensure_stream(&self) -> Result<(), EnsureStreamError> {
        let target = &self.target;
        let existing = match lookup(&self.jetstream, target).await? {
            Some(existing) => existing,
            None if !target.settings.create => return Err(not_found(target)),
            None => match self
                .jetstream
                .get_or_create_stream(target.stream_config())
                .await
            {
                // Created here, or by another replica in the meantime.
                Ok(stream) => stream.cached_info().config.clone(),
                Err(err) => return Err(create_error(target, &err)),
            },
        };
        if !target.covered_by(&existing) {
            return Err(uncovered(target, &existing));
        }
        // Refusals are evidence, not deliveries: a quarantine stream that
        // cannot be created here (the operator creates it with its own
        // credentials) is a warning, never a reason not to serve.
        if let Some(quarantine) = &target.quarantine
            && let Err(error) = self
                .jetstream
                .get_or_create_stream(quarantine.stream_config())
                .await
        {
            tracing::warn!(
                stream = quarantine.stream.as_str(),
                %error,
                "cannot create the quarantine stream; refused requests are not recorded until it exists"
            );
        }
        Ok(())
    }

    /// The JetStream context deliveries are published with.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Stores one delivery and waits for JetStream's acknowledgement. A
    /// stream that has gone missing (deleted, or lost with a NATS server's
    /// storage) is created again when the endpoint manages it
    /// (`createStream`, the default) and the delivery stored in it.
    pub async fn publish(&self, delivery: &Delivery) -> Result<Stored, PublishError> {
        let attempt = async {
            match self.publish_once(delivery).await {
                Err(Attempt::StreamNotFound) if self.target.settings.create => {
                    match self.ensure_stream().await {
                        Ok(()) => tracing::warn!(
                            stream = self.target.stream.as_str(),
                            "the JetStream stream was missing and has been created again"
                        ),
                        Err(err) => return Err(PublishError::StreamMissing(err.to_string())),
                    }
                    self.publish_once(delivery)
                        .await
                        .map_err(|attempt| attempt.into_error(&self.target))
                }
                other => other.map_err(|attempt| attempt.into_error(&self.target)),
            }
        };
        // The context timeout bounds the ack; this also bounds waiting for a
        // free in-flight slot while the client is disconnected, and the
        // stream's re-creation.
        tokio::time::timeout(self.ack_timeout, attempt)
            .await
            .unwrap_or(Err(PublishError::Timeout(self.ack_timeout)))
    }

    async fn publish_once(&self, delivery: &Delivery) -> Result<Stored, Attempt> {
        let subject = self.target.subject(delivery.event.as_deref());
        let headers = headers(&self.target, delivery);
        let ack = self
            .jetstream
            .publish_with_headers(subject, headers, delivery.body.clone())
            .await
            .map_err(|e| self.publish_error(&e))?
            .await
            .map_err(|e| self.publish_error(&e))?;
        Ok(Stored {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    fn publish_error(&self, err: &jetstream::context::PublishError) -> Attempt {
        match err.kind() {
            PublishErrorKind::StreamNotFound => Attempt::StreamNotFound,
            PublishErrorKind::TimedOut => Attempt::Failed(PublishError::Timeout(self.ack_timeout)),
            PublishErrorKind::MaxPayloadExceeded => {
                Attempt::Failed(PublishError::TooLarge(err.to_string()))
            }
            _ if is_full(err) => Attempt::Failed(PublishError::Full(err.to_string())),
            _ => Attempt::Failed(PublishError::Unavailable(err.to_string())),
        }
    }

    /// Looks the stream up: the periodic check behind `/readyz` for a stream
    /// managed elsewhere. Missing is [`EnsureStreamError::NotFound`].
    pub async fn check_stream(&self) -> Result<(), EnsureStreamError> {
        match lookup(&self.jetstream, &self.target).await? {
            Some(_) => Ok(()),
            None => Err(not_found(&self.target)),
        }
    }
}

/// How one publish attempt failed.
#[derive(Debug)]
enum Attempt {
    /// No stream takes the subject (JetStream's "no responders").
    StreamNotFound,
    Failed(PublishError),
}

impl Attempt {
    fn into_error(self, target: &Target) -> PublishError {
        match self {
            Self::StreamNotFound => PublishError::StreamMissing(format!(
                "no JetStream stream takes {}; stream {} is gone{}",
                target.subjects(),
                target.stream,
                if target.settings.create {
                    ""
                } else {
                    " and spec.nats.createStream is false"
                }
            )),
            Self::Failed(err) => err,
        }
    }
}

/// Whether JetStream refused a message for lack of room: the stream's
/// `maxBytes` or `maxMsgs` reached (with `discard: new`, as
/// [`Target::stream_config`] sets), or the account's or server's storage
/// used up.
fn is_full(err: &jetstream::context::PublishError) -> bool {
    let Some(js) =
        std::error::Error::source(err).and_then(|source| source.downcast_ref::<jetstream::Error>())
    else {
        return false;
    };
    let code = js.error_code();
    [
        jetstream::ErrorCode::STORAGE_RESOURCES_EXCEEDED,
        jetstream::ErrorCode::MEMORY_RESOURCES_EXCEEDED,
        jetstream::ErrorCode::INSUFFICIENT_RESOURCES,
    ]
    .contains(&code)
        || (code == jetstream::ErrorCode::STREAM_STORE_FAILED && js.to_string().contains("maximum"))
}

#[cfg(test)]
mod tests {
    use hookwarden_crds::{NatsSpec, Provider, WebhookEndpointSpec};

    use super::*;

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

    fn endpoint(namespace: Option<&str>, name: &str, nats: NatsSpec) -> WebhookEndpoint {
        let mut endpoint = WebhookEndpoint::new(
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
