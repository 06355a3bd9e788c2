//! Message building: the headers of a stored delivery (its id, trace
//! context, CloudEvents attributes, the provider headers it keeps), and the
//! [`Publisher`] that connects to NATS and stores it.

use std::net::IpAddr;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::{HeaderName, HeaderValue};
use async_nats::jetstream::{self, context::PublishErrorKind};
use bytes::Bytes;
use hookwarden_crds::EndpointManifest;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::secrets::Secret;

use super::*;

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
pub(super) fn valid_traceparent(value: &str) -> bool {
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

/// An attribute's string as a NATS header value (see [`CE_HEADER_VALUE`]).
pub(super) fn ce_header_value(text: &str) -> String {
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
pub fn client_name(endpoint: &EndpointManifest) -> String {
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
