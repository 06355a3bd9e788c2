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
use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use bytes::Bytes;
use hookwarden_crds::WebhookEndpoint;
use sha2::{Digest, Sha256};

/// How long JetStream keeps message ids to drop duplicates: providers
/// redeliver within seconds to minutes, and a short window keeps the
/// server's id index small.
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
        Ok(Self {
            endpoint: format!("{namespace}/{name}"),
            provider,
            subject_prefix,
            stream,
        })
    }

    /// The subject of a delivery of event type `event`.
    pub fn subject(&self, event: Option<&str>) -> String {
        format!("{}.{}", self.subject_prefix, event_token(event))
    }

    /// The stream's configuration: every subject under the prefix, on disk
    /// (deliveries must survive a NATS restart), with the duplicate window.
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![format!("{}.>", self.subject_prefix)],
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            ..stream::Config::default()
        }
    }
}

/// Replaces every character outside `[A-Za-z0-9_-]` by `_`, so provider- or
/// user-chosen text can never add subject tokens (`.`) or wildcards (`*`, `>`).
pub fn sanitize_token(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The subject token of an event type: sanitised, `unknown` when absent.
pub fn event_token(event: Option<&str>) -> String {
    match event.map(str::trim) {
        Some(event) if !event.is_empty() => sanitize_token(event),
        _ => "unknown".to_owned(),
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
/// retried body is still stored once.
pub fn message_id(delivery_id: Option<&str>, body: &[u8]) -> String {
    match delivery_id {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => body_sha256(body),
    }
}

/// Lower-case hex SHA-256 of a body.
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// A verified delivery, ready to store.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The raw body, byte for byte as received.
    pub body: Bytes,
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
    /// The W3C trace context of the delivery (see [`traceparent`]).
    pub traceparent: String,
}

/// The W3C `traceparent` to store with a delivery: the sender's, when it
/// sent a valid one (so a trace continues from the provider through to the
/// consumer), else a new sampled trace rooted at the receiver.
pub fn traceparent(sent: Option<&str>) -> String {
    if let Some(value) = sent.map(str::trim).filter(|v| valid_traceparent(v)) {
        return value.to_ascii_lowercase();
    }
    format!(
        "00-{:032x}-{:016x}-01",
        rand::random::<u128>().max(1),
        rand::random::<u64>().max(1)
    )
}

/// `00-<32 hex trace id, not all zero>-<16 hex parent id, not all zero>-<2 hex flags>`.
fn valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [version, trace, parent, flags]
        if *version == "00" && hex(trace, 32) && nonzero(trace) && hex(parent, 16) && nonzero(parent) && hex(flags, 2))
}

/// The NATS headers stored with a delivery: everything a consumer needs to
/// trust and route it without re-verifying. Only the body is stored besides
/// them; signatures and secrets never are.
pub fn headers(target: &Target, delivery: &Delivery) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "Nats-Msg-Id",
        message_id(delivery.delivery_id.as_deref(), &delivery.body).as_str(),
    );
    headers.insert("Hookwarden-Endpoint", target.endpoint.as_str());
    headers.insert("Hookwarden-Provider", target.provider.as_str());
    headers.insert(
        "Hookwarden-Event",
        delivery.event.as_deref().unwrap_or("unknown"),
    );
    if let Some(id) = &delivery.delivery_id {
        headers.insert("Hookwarden-Delivery-Id", id.as_str());
    }
    headers.insert(
        "Hookwarden-Received-At",
        delivery.received_at.to_string().as_str(),
    );
    headers.insert(
        "Hookwarden-Source-Ip",
        delivery.source_ip.to_string().as_str(),
    );
    headers.insert("traceparent", delivery.traceparent.as_str());
    headers.insert(
        "Content-Type",
        delivery
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream"),
    );
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
}

/// Why the endpoint's stream could not be ensured.
#[derive(Debug, thiserror::Error)]
#[error("cannot create or look up JetStream stream {stream}: {source}")]
pub struct EnsureStreamError {
    /// The stream's name.
    pub stream: String,
    /// What JetStream said.
    pub source: jetstream::context::CreateStreamError,
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

    /// Creates the endpoint's stream unless it exists. An existing stream is
    /// left as it is: it may be managed by the operator or an administrator.
    pub async fn ensure_stream(&self) -> Result<(), EnsureStreamError> {
        self.jetstream
            .get_or_create_stream(self.target.stream_config())
            .await
            .map(drop)
            .map_err(|source| EnsureStreamError {
                stream: self.target.stream.clone(),
                source,
            })
    }

    /// Stores one delivery and waits for JetStream's acknowledgement.
    pub async fn publish(&self, delivery: &Delivery) -> Result<Stored, PublishError> {
        let subject = self.target.subject(delivery.event.as_deref());
        let headers = headers(&self.target, delivery);
        let attempt = async {
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
        };
        // The context timeout bounds the ack; this also bounds waiting for a
        // free in-flight slot while the client is disconnected.
        tokio::time::timeout(self.ack_timeout, attempt)
            .await
            .unwrap_or(Err(PublishError::Timeout(self.ack_timeout)))
    }

    fn publish_error(&self, err: &jetstream::context::PublishError) -> PublishError {
        match err.kind() {
            PublishErrorKind::TimedOut => PublishError::Timeout(self.ack_timeout),
            PublishErrorKind::MaxPayloadExceeded => PublishError::TooLarge(err.to_string()),
            _ => PublishError::Unavailable(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use hookwarden_crds::{NatsSpec, Provider, WebhookEndpointSpec};

    use super::*;

    fn endpoint(namespace: Option<&str>, name: &str, nats: NatsSpec) -> WebhookEndpoint {
        let mut endpoint = WebhookEndpoint::new(
            name,
            WebhookEndpointSpec {
                provider: Provider::Github,
                secret_refs: Vec::new(),
                allowed_source_cidrs: Vec::new(),
                trusted_proxies: Vec::new(),
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
                logging: None,
                resources: None,
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
        assert_eq!(config.duplicate_window, Duration::from_secs(120));
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
        assert_eq!(message_id(Some("abc-1"), b"x"), "abc-1");
        // SHA-256 of the empty string.
        assert_eq!(
            message_id(None, b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(message_id(Some(""), b""), message_id(None, b""));
    }

    #[test]
    fn headers_describe_the_delivery() {
        let target =
            Target::for_endpoint(&endpoint(Some("ci"), "github", NatsSpec::default())).expect("ok");
        let delivery = Delivery {
            body: Bytes::from_static(b"{}"),
            event: Some("push".to_owned()),
            delivery_id: Some("d-1".to_owned()),
            received_at: "2026-01-02T03:04:05Z".parse().expect("timestamp"),
            source_ip: "192.0.2.7".parse().expect("ip"),
            content_type: Some("application/json".to_owned()),
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        };
        let headers = headers(&target, &delivery);
        let get = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(get("Nats-Msg-Id").as_deref(), Some("d-1"));
        assert_eq!(get("Hookwarden-Endpoint").as_deref(), Some("ci/github"));
        assert_eq!(get("Hookwarden-Provider").as_deref(), Some("github"));
        assert_eq!(get("Hookwarden-Event").as_deref(), Some("push"));
        assert_eq!(get("Hookwarden-Delivery-Id").as_deref(), Some("d-1"));
        assert_eq!(
            get("Hookwarden-Received-At").as_deref(),
            Some("2026-01-02T03:04:05Z")
        );
        assert_eq!(get("Hookwarden-Source-Ip").as_deref(), Some("192.0.2.7"));
        assert_eq!(get("Content-Type").as_deref(), Some("application/json"));
        assert_eq!(
            get("traceparent").as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );

        let anonymous = Delivery {
            delivery_id: None,
            event: None,
            content_type: None,
            ..delivery
        };
        let headers = super::headers(&target, &anonymous);
        assert_eq!(
            headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned()),
            Some(body_sha256(b"{}"))
        );
        assert!(headers.get("Hookwarden-Delivery-Id").is_none());
        assert_eq!(
            headers.get("Hookwarden-Event").map(|v| v.as_str()),
            Some("unknown")
        );
    }

    #[test]
    fn a_valid_traceparent_is_continued_and_anything_else_replaced() {
        let sent = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
        assert_eq!(traceparent(Some(sent)), sent.to_ascii_lowercase());
        for bad in [
            None,
            Some(""),
            Some("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
        ] {
            let made = traceparent(bad);
            assert!(valid_traceparent(&made), "{made}");
            assert_ne!(Some(made.as_str()), bad);
        }
        assert_ne!(
            traceparent(None),
            traceparent(None),
            "a new trace each time"
        );
    }
}
