//! The quarantine: a record of each refused request (`spec.quarantine`), in
//! a stream of its own with a short retention, so a person can answer "why
//! is my provider refused?" and a security team can review attacks.
//!
//! A record holds metadata only — reason, status, client and peer,
//! method, path, the headers redacted as in the audit log, the body's size
//! and SHA-256 — and the body's first bytes only when `bodyPrefixBytes`
//! asks for them. Every record passes the secret registry's filter before
//! it leaves the process, like every log line.
//!
//! Recording never slows a request: the handler offers the record to a
//! bounded queue (`try_send`) behind a rate limiter, and one task per
//! configuration publishes it. A flood of refusals is counted
//! (`hookwarden_quarantine_records_total{result="dropped_rate"}`), not
//! stored. Besides each endpoint's `maxPerSecond`, the process has a
//! ceiling for all its endpoints together ([`QuarantineCeiling`]), of which
//! one endpoint of a pool takes at most a quarter: a flood on one endpoint
//! leaves records to the others, and many endpoints cannot fill NATS.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind};
use base64::Engine as _;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::metrics::{Metrics, QuarantineLabels};

// The target (stream, subject, limits) is shared with the operator.
pub use hookwarden_core::quarantine::{
    DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, DEFAULT_MAX_PER_SECOND, MAX_BODY_PREFIX, QuarantineTarget,
    names,
};

/// Records per second of a whole process (all its endpoints) when
/// `--max-quarantine-records-per-second` is absent.
pub const DEFAULT_MAX_RECORDS_PER_SECOND: u32 = 100;
/// Records waiting for NATS; beyond, they are dropped and counted.
const QUEUE: usize = 64;
/// How long one record may wait for JetStream's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// Headers kept in a record; a request with more is an attack or a bug.
const MAX_HEADERS: usize = 64;
/// Bytes of one header value kept in a record.
const MAX_HEADER_VALUE: usize = 256;
/// Bytes of the path kept in a record.
const MAX_PATH: usize = 512;

/// One refused request, as stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Record {
    /// When it was received (RFC 3339).
    pub time: String,
    /// The request's id (its `x-request-id` answer header and audit line).
    pub request_id: String,
    /// `<namespace>/<name>` of the endpoint.
    pub endpoint: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The stable reason code answered.
    pub reason: String,
    /// The client as resolved through the trusted proxies, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// The socket peer.
    pub peer_ip: String,
    /// The method, when the request got that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The path (no query: a query may carry a token), bounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The headers, redacted as in the audit log and bounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Value>,
    /// The body's size, when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_size: Option<usize>,
    /// The body's SHA-256 (hex), when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    /// The body's first bytes (base64), when `bodyPrefixBytes` asks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_prefix: Option<String>,
    /// More detail on the refusal, when there is any (never a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the handler knows of a refused request.
#[derive(Debug)]
pub struct Refusal<'a> {
    /// The request's id.
    pub request_id: &'a str,
    /// When it arrived.
    pub received_at: jiff::Timestamp,
    /// The status answered.
    pub status: u16,
    /// The reason code answered.
    pub reason: &'a str,
    /// The client through the trusted proxies.
    pub client_ip: Option<IpAddr>,
    /// The socket peer.
    pub peer_ip: IpAddr,
    /// Method, path and headers, when hyper parsed the request.
    pub head: Option<&'a axum::http::request::Parts>,
    /// The headers that carry secrets for the endpoint's verifier.
    pub secret_headers: &'a [&'a str],
    /// Headers the verifier names that are not secret.
    pub plain_headers: &'a [&'a str],
    /// The body's size, when it was read.
    pub body_size: Option<usize>,
    /// The body's SHA-256 (hex), when it was read.
    pub body_sha256: Option<&'a str>,
    /// The body, when it was read and kept for its prefix.
    pub body: Option<&'a [u8]>,
    /// More detail, never a secret.
    pub error: Option<&'a str>,
}

/// The record of `refusal` for `target` (pure).
pub fn record(target: &QuarantineTarget, refusal: &Refusal<'_>) -> Record {
    let head = refusal.head;
    Record {
        time: refusal.received_at.to_string(),
        request_id: refusal.request_id.to_owned(),
        endpoint: target.endpoint.clone(),
        status: refusal.status,
        reason: refusal.reason.to_owned(),
        client_ip: refusal.client_ip.map(|ip| ip.to_canonical().to_string()),
        peer_ip: refusal.peer_ip.to_canonical().to_string(),
        method: head.map(|h| h.method.to_string()),
        path: head.map(|h| bounded(h.uri.path(), MAX_PATH)),
        headers: head.map(|h| {
            bounded_headers(crate::redact::headers_json(
                &h.headers,
                refusal.secret_headers,
                refusal.plain_headers,
            ))
        }),
        body_size: refusal.body_size,
        body_sha256: refusal.body_sha256.map(str::to_owned),
        body_prefix: refusal.body.filter(|_| target.body_prefix > 0).map(|body| {
            let prefix = body.get(..target.body_prefix).unwrap_or(body);
            // Known secrets are cut out of the raw bytes, before the
            // encoding would hide them from the line filter.
            let redacted = crate::logging::registry().redact(prefix);
            base64::engine::general_purpose::STANDARD.encode(redacted)
        }),
        error: refusal.error.map(|e| bounded(e, MAX_PATH)),
    }
}

/// The record as stored: JSON, with every secret the process knows
/// replaced, like a log line.
pub fn encode(record: &Record) -> Vec<u8> {
    let json = serde_json::to_vec(record).unwrap_or_default();
    crate::logging::registry().redact(&json).into_owned()
}

fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn bounded_headers(headers: Value) -> Value {
    let Value::Object(map) = headers else {
        return headers;
    };
    let bound = |value: Value| match value {
        Value::String(text) => Value::String(bounded(&text, MAX_HEADER_VALUE)),
        Value::Array(values) => Value::Array(
            values
                .into_iter()
                .take(8)
                .map(|v| match v {
                    Value::String(text) => Value::String(bounded(&text, MAX_HEADER_VALUE)),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    };
    Value::Object(
        map.into_iter()
            .take(MAX_HEADERS)
            .map(|(name, value)| (name, bound(value)))
            .collect(),
    )
}

/// The records per second a process stores, all its endpoints together,
/// and the most one endpoint may take of them (a quarter in a pool,
/// [`crate::limits::pool_share`]). Shared by every endpoint's
/// [`Quarantine`] of the process.
#[derive(Debug, Clone)]
pub struct QuarantineCeiling {
    limiter: Arc<DefaultDirectRateLimiter>,
    per_endpoint: NonZeroU32,
}

impl QuarantineCeiling {
    /// A dedicated receiver's: its one endpoint may take all of it.
    pub fn whole(per_second: u32) -> Self {
        let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: Arc::new(RateLimiter::direct(Quota::per_second(per_second))),
            per_endpoint: per_second,
        }
    }

    /// A pool's: one endpoint may take a quarter of it.
    pub fn pooled(per_second: u32) -> Self {
        let whole = Self::whole(per_second);
        let share = usize::try_from(whole.per_endpoint.get())
            .map(crate::limits::pool_share)
            .ok()
            .and_then(|share| u32::try_from(share).ok())
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN);
        Self {
            per_endpoint: share,
            ..whole
        }
    }

    /// The most records per second one endpoint may store.
    pub fn per_endpoint(&self) -> NonZeroU32 {
        self.per_endpoint
    }
}

/// An endpoint's quarantine while one configuration is served: a rate
/// limiter, a bounded queue and the task that publishes from it (it ends
/// when the configuration is replaced and the last request using it is
/// done).
#[derive(Debug)]
pub struct Quarantine {
    target: QuarantineTarget,
    /// The endpoint's own: `maxPerSecond`, at most the ceiling's share.
    limiter: DefaultDirectRateLimiter,
    /// The process's, taken only by records the endpoint's own admits.
    ceiling: QuarantineCeiling,
    queue: mpsc::Sender<Vec<u8>>,
    metrics: Arc<Metrics>,
}

impl Quarantine {
    /// Starts the publishing task (needs a Tokio runtime).
    pub fn start(
        target: QuarantineTarget,
        jetstream: jetstream::Context,
        metrics: Arc<Metrics>,
        ceiling: QuarantineCeiling,
    ) -> Self {
        let (queue, records) = mpsc::channel(QUEUE);
        let quota = Quota::per_second(target.max_per_second.min(ceiling.per_endpoint()));
        tokio::spawn(publish_all(
            target.clone(),
            jetstream,
            records,
            Arc::clone(&metrics),
        ));
        Self {
            limiter: RateLimiter::direct(quota),
            ceiling,
            target,
            queue,
            metrics,
        }
    }

    /// What this quarantine records to.
    pub fn target(&self) -> &QuarantineTarget {
        &self.target
    }

    /// Offers the record of `refusal`; never waits.
    pub fn offer(&self, refusal: &Refusal<'_>) {
        // The endpoint's own limit first: what it drops never uses up the
        // ceiling the other endpoints share.
        let result = if self.limiter.check().is_err() || self.ceiling.limiter.check().is_err() {
            "dropped_rate"
        } else {
            match self.queue.try_send(encode(&record(&self.target, refusal))) {
                Ok(()) => return,
                Err(_) => "dropped_queue",
            }
        };
        self.count(result);
    }

    fn count(&self, result: &str) {
        count(&self.metrics, &self.target, result);
    }
}

fn count(metrics: &Metrics, target: &QuarantineTarget, result: &str) {
    metrics
        .quarantine
        .get_or_create(&QuarantineLabels {
            endpoint: target.endpoint.clone(),
            result: result.to_owned(),
        })
        .inc();
}

/// Publishes records until the queue closes. A missing stream is created
/// (once per record at most); a record that cannot be stored is counted as
/// `failed` and dropped: the quarantine is evidence, never a reason to hold
/// memory or slow anything.
async fn publish_all(
    target: QuarantineTarget,
    jetstream: jetstream::Context,
    mut records: mpsc::Receiver<Vec<u8>>,
    metrics: Arc<Metrics>,
) {
    while let Some(record) = records.recv().await {
        let mut result = publish_one(&jetstream, &target, record.clone()).await;
        if matches!(result, Err(Failure::StreamNotFound)) {
            if let Err(error) = jetstream.get_or_create_stream(target.stream_config()).await {
                tracing::warn!(
                    stream = target.stream.as_str(),
                    %error,
                    "cannot create the quarantine stream"
                );
            }
            result = publish_one(&jetstream, &target, record).await;
        }
        let label = match result {
            Ok(()) => "recorded",
            Err(_) => "failed",
        };
        count(&metrics, &target, label);
    }
}

enum Failure {
    StreamNotFound,
    Other,
}

async fn publish_one(
    jetstream: &jetstream::Context,
    target: &QuarantineTarget,
    record: Vec<u8>,
) -> Result<(), Failure> {
    let attempt = async {
        let ack = jetstream
            .publish(target.subject.clone(), record.into())
            .await
            .map_err(|e| failure(e.kind()))?;
        ack.await.map_err(|e| failure(e.kind())).map(|_| ())
    };
    tokio::time::timeout(PUBLISH_TIMEOUT, attempt)
        .await
        .unwrap_or(Err(Failure::Other))
}

fn failure(kind: PublishErrorKind) -> Failure {
    match kind {
        PublishErrorKind::StreamNotFound => Failure::StreamNotFound,
        _ => Failure::Other,
    }
}

#[cfg(test)]
mod tests {
    use async_nats::jetstream::stream;
    use hookwarden_crds::QuarantineSpec;

    use super::*;

    fn target(spec: QuarantineSpec) -> QuarantineTarget {
        QuarantineTarget::from_spec(&spec, "shop", "github")
    }

    fn parts(headers: &[(&str, &str)], uri: &str) -> axum::http::request::Parts {
        let mut request = axum::http::Request::post(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).expect("request").into_parts().0
    }

    #[test]
    fn names_and_defaults() {
        let target = target(QuarantineSpec::default());
        assert_eq!(target.stream, "HOOKWARDEN-QUARANTINE_SHOP_GITHUB");
        assert_eq!(target.subject, "hookwarden-quarantine.shop.github");
        assert_eq!(target.max_per_second.get(), DEFAULT_MAX_PER_SECOND);
        assert_eq!(target.body_prefix, 0);
        let config = target.stream_config();
        assert_eq!(config.max_age, DEFAULT_MAX_AGE);
        assert_eq!(config.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(config.discard, stream::DiscardPolicy::Old);
        // Standalone manifests are clamped to the CRD's ranges.
        let clamped = QuarantineTarget::from_spec(
            &QuarantineSpec {
                max_per_second: Some(0),
                body_prefix_bytes: Some(1 << 20),
                max_age_seconds: Some(1),
                max_bytes: Some(1),
            },
            "shop",
            "github",
        );
        assert_eq!(clamped.max_per_second.get(), 1);
        assert_eq!(clamped.body_prefix, MAX_BODY_PREFIX);
        assert_eq!(clamped.max_age, Duration::from_secs(60));
        assert_eq!(clamped.max_bytes, 1 << 20);
    }

    #[test]
    fn a_record_keeps_metadata_and_redacts_secret_headers_and_the_query() {
        let head = parts(
            &[
                ("x-hub-signature-256", "sha256=deadbeef"),
                ("authorization", "Bearer abc"),
                ("x-github-event", "push"),
            ],
            "/hooks?token=abc",
        );
        let refusal = Refusal {
            request_id: "r1",
            received_at: jiff::Timestamp::UNIX_EPOCH,
            status: 401,
            reason: "signature_mismatch",
            client_ip: Some("192.0.2.7".parse().expect("ip")),
            peer_ip: "10.0.0.1".parse().expect("ip"),
            head: Some(&head),
            secret_headers: &["x-hub-signature-256"],
            plain_headers: &["x-github-event"],
            body_size: Some(11),
            body_sha256: Some("00"),
            body: Some(b"{\"zen\":\"x\"}"),
            error: None,
        };
        let record = record(&target(QuarantineSpec::default()), &refusal);
        assert_eq!(record.path.as_deref(), Some("/hooks"));
        assert_eq!(record.body_size, Some(11));
        assert_eq!(record.body_prefix, None, "no body unless asked");
        let headers = record.headers.expect("headers").to_string();
        assert!(!headers.contains("deadbeef"), "{headers}");
        assert!(!headers.contains("abc"), "{headers}");
        assert!(headers.contains("push"), "{headers}");
        assert_eq!(record.client_ip.as_deref(), Some("192.0.2.7"));
    }

    #[test]
    fn a_body_prefix_is_kept_only_when_asked_and_bounded() {
        let target = target(QuarantineSpec {
            body_prefix_bytes: Some(4),
            ..QuarantineSpec::default()
        });
        let refusal = Refusal {
            request_id: "r1",
            received_at: jiff::Timestamp::UNIX_EPOCH,
            status: 401,
            reason: "signature_mismatch",
            client_ip: None,
            peer_ip: "10.0.0.1".parse().expect("ip"),
            head: None,
            secret_headers: &[],
            plain_headers: &[],
            body_size: Some(8),
            body_sha256: None,
            body: Some(b"abcdefgh"),
            error: None,
        };
        let record = record(&target, &refusal);
        assert_eq!(record.body_prefix.as_deref(), Some("YWJjZA=="));
    }

    #[test]
    fn headers_and_paths_are_bounded() {
        let long = "v".repeat(10_000);
        let mut pairs: Vec<(String, String)> = (0..200)
            .map(|i| (format!("x-h{i}"), long.clone()))
            .collect();
        pairs.push(("x-last".into(), "1".into()));
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let head = parts(&borrowed, &format!("/{}", "p".repeat(5000)));
        let refusal = Refusal {
            request_id: "r1",
            received_at: jiff::Timestamp::UNIX_EPOCH,
            status: 404,
            reason: "not_found",
            client_ip: None,
            peer_ip: "10.0.0.1".parse().expect("ip"),
            head: Some(&head),
            secret_headers: &[],
            plain_headers: &[],
            body_size: None,
            body_sha256: None,
            body: None,
            error: None,
        };
        let encoded = encode(&record(&target(QuarantineSpec::default()), &refusal));
        assert!(
            encoded.len() < MAX_HEADERS * (MAX_HEADER_VALUE + 16) + 2 * MAX_PATH + 1024,
            "{} bytes",
            encoded.len()
        );
    }
}
