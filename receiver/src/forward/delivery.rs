//! One HTTP delivery of one event: sign it, POST it, classify the answer.
//!
//! [`Destination`] is the forwarder's only way to send an event, and the one
//! `hookwarden replay` and `hookwarden dlq redrive` use too
//! ([`super::replay`] sets [`Outgoing::replay`]). It never follows a
//! redirect, bounds every attempt by one timeout (connect, TLS, request,
//! response headers and the part of the body it reads), reads at most [`MAX_RESPONSE_BYTES`] of an answer, and verifies TLS with
//! the system's roots or, when the subscription names a CA
//! (`spec.destination.caSecretRef`), with that CA only.
//!
//! What the destination receives: `POST` to the URL, the stored body byte
//! for byte with its stored `Content-Type` (and `Content-Encoding`, which
//! describes the stored bytes), the Standard Webhooks headers
//! `webhook-id` (the stored `Nats-Msg-Id`), `webhook-timestamp` and
//! `webhook-signature`, `Idempotency-Key` (the same id),
//! `Hookwarden-Event-Type`, `Hookwarden-Attempt`, `Hookwarden-Replay: true`
//! for replays only, and the stored headers `spec.passHeaders` lists,
//! except those names (see [`is_reserved`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::outcome::{self, Attempted};
use super::signing::SigningKeys;
use crate::secrets::Secret;

/// The most bytes of an answer read (for the error text of a failure; a
/// 2xx body is read as far as this only so its connection can be reused).
pub const MAX_RESPONSE_BYTES: usize = 4096;

/// The most characters of an answer's body kept in an error text.
pub const MAX_ERROR_EXCERPT: usize = 200;

/// The longest error text of an attempt (the dead-letter header and the
/// audit line carry it).
pub const MAX_ERROR_TEXT: usize = 512;

/// Idle pooled connections kept per destination host.
const POOL_IDLE: usize = 32;

/// How long an idle pooled connection is kept: under the idle timeout of
/// common servers (Go's and nginx's default 60 s or more), so the forwarder
/// closes first and never writes into a connection the server is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = "hookwarden-forwarder";

/// One event to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The delivery id: `webhook-id` and `Idempotency-Key`.
    pub id: String,
    /// `Hookwarden-Event-Type`.
    pub event_type: String,
    /// The stored body, unchanged.
    pub body: Bytes,
    /// The stored `Content-Type`.
    pub content_type: Option<HeaderValue>,
    /// The stored `Content-Encoding` (it describes the stored bytes).
    pub content_encoding: Option<HeaderValue>,
    /// The stored headers `spec.passHeaders` lists.
    pub passed: Vec<(HeaderName, HeaderValue)>,
    /// `Hookwarden-Attempt`: 1 for the first.
    pub attempt: u32,
    /// Sent by `hookwarden replay`: adds `Hookwarden-Replay: true`.
    pub replay: bool,
    /// Sent as `traceparent` (and `tracestate`), replacing passed ones: the
    /// delivery attempt's span when traces are on, else the stored context.
    pub trace: Option<crate::telemetry::TraceHeaders>,
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// What the classification needs.
    pub attempted: Attempted,
    /// What went wrong, bounded (at most [`MAX_ERROR_TEXT`] bytes, no
    /// control characters, never a secret); `None` for a 2xx.
    pub error: Option<String>,
    /// How long the attempt took.
    pub elapsed: Duration,
}

impl Report {
    /// The HTTP status, when the destination answered.
    pub fn status(&self) -> Option<u16> {
        match self.attempted {
            Attempted::Answered { status, .. } => Some(status),
            _ => None,
        }
    }
}

/// Why a destination cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum DestinationSetupError {
    /// The URL does not parse (the plan checked it, so only a standalone
    /// caller can get this).
    #[error("the destination URL is not a URL")]
    Url,
    /// The CA file holds no PEM certificate.
    #[error("spec.destination.caSecretRef holds no PEM certificate")]
    NoCertificate,
    /// The CA file holds a certificate rustls does not take.
    #[error("spec.destination.caSecretRef: {0}")]
    Certificate(String),
    /// No system roots for an `https://` destination without a CA.
    #[error("no system TLS roots found: set spec.destination.caSecretRef")]
    NoSystemRoots,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// An HTTP destination, its client and the keys requests are signed with.
#[derive(Debug, Clone)]
pub struct Destination {
    url: Uri,
    timeout: Duration,
    keys: Arc<SigningKeys>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Destination {
    /// A destination at `url` (checked by the plan), answering within
    /// `timeout`, signed with `keys`, verified with `ca` only when given.
    pub fn new(
        url: &str,
        timeout: Duration,
        keys: Arc<SigningKeys>,
        ca: Option<&Secret>,
    ) -> Result<Self, DestinationSetupError> {
        let url: Uri = url.parse().map_err(|_| DestinationSetupError::Url)?;
        let https = url.scheme_str() == Some("https");
        let tls = client_tls(ca, https)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            url,
            timeout,
            keys,
            client,
        })
    }

    /// The same destination signing with other keys (a rotated secret),
    /// keeping its pooled connections.
    pub fn with_keys(&self, keys: Arc<SigningKeys>) -> Self {
        Self {
            keys,
            ..self.clone()
        }
    }

    /// The per-attempt timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Signs `event` now and POSTs it; the answer, classified.
    pub async fn deliver(&self, event: &Outgoing) -> Report {
        let started = Instant::now();
        let signed = self
            .keys
            .sign(&event.id, jiff::Timestamp::now().as_second(), &event.body);
        let request = build_request(&self.url, event, &signed);
        let (attempted, error) = match tokio::time::timeout(self.timeout, self.send(request)).await
        {
            Ok(result) => result,
            Err(_) => (
                Attempted::TimedOut,
                Some(format!("no answer within {} s", self.timeout.as_secs_f32())),
            ),
        };
        Report {
            attempted,
            error: error.map(|text| bounded_text(&text, MAX_ERROR_TEXT)),
            elapsed: started.elapsed(),
        }
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> (Attempted, Option<String>) {
        let response = match self.client.request(request).await {
            Ok(response) => response,
            Err(err) => return (Attempted::Failed, Some(error_chain(&err))),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|value| outcome::parse_retry_after(value.as_bytes(), jiff::Timestamp::now()));
        let body = read_prefix(response.into_body(), MAX_RESPONSE_BYTES).await;
        let attempted = Attempted::Answered {
            status,
            retry_after,
        };
        if (200..300).contains(&status) {
            return (attempted, None);
        }
        (attempted, Some(answer_text(status, &body)))
    }
}

/// The request of `event`, signed: see the module's documentation.
pub fn build_request(
    url: &Uri,
    event: &Outgoing,
    signed: &super::signing::Signed,
) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(event.body.clone()));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = url.clone();
    let headers = request.headers_mut();
    // Pass-through first, so nothing below can be overridden by them.
    for (name, value) in &event.passed {
        if !is_reserved(name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(trace) = &event.trace {
        // One context, replacing passed ones: a passed tracestate would not
        // go with our traceparent.
        headers.remove("tracestate");
        for (name, value) in [
            ("traceparent", Some(&trace.traceparent)),
            ("tracestate", trace.tracestate.as_ref()),
        ] {
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
    }
    let mut set = |name: &'static str, value: &str| {
        // Every value here is ours or passed `info_value`-style checks when
        // stored; one that still is no header value is left out rather than
        // failing the delivery.
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("webhook-id", &signed.id);
    set("webhook-timestamp", &signed.timestamp);
    set("webhook-signature", &signed.signature);
    set("idempotency-key", &event.id);
    set("hookwarden-event-type", &event.event_type);
    set("hookwarden-attempt", &event.attempt.to_string());
    set("user-agent", USER_AGENT);
    if event.replay {
        set("hookwarden-replay", "true");
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        event
            .content_type
            .clone()
            .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream")),
    );
    if let Some(encoding) = &event.content_encoding {
        headers.insert(http::header::CONTENT_ENCODING, encoding.clone());
    }
    request
}

/// Header names `spec.passHeaders` cannot set: the forwarder's own, the
/// body's framing and the connection's, and NATS's.
pub fn is_reserved(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("webhook-")
        || name.starts_with("nats-")
        || matches!(
            name.as_str(),
            "idempotency-key"
                | "hookwarden-event-type"
                | "hookwarden-attempt"
                | "hookwarden-replay"
                | "content-type"
                | "content-length"
                | "content-encoding"
                | "transfer-encoding"
                | "host"
                | "connection"
                | "keep-alive"
                | "te"
                | "trailer"
                | "upgrade"
                | "proxy-connection"
                | "user-agent"
        )
}

/// Reads at most `cap` bytes of `body`; the rest is left unread (the
/// connection is then not reused). Errors end the read: what was read is
/// what there is.
async fn read_prefix(mut body: hyper::body::Incoming, cap: usize) -> Vec<u8> {
    let mut read = Vec::new();
    while read.len() < cap {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = cap - read.len();
                    read.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    read
}

/// `HTTP 503 Service Unavailable: <the start of the body>`.
fn answer_text(status: u16, body: &[u8]) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let excerpt = bounded_text(&String::from_utf8_lossy(body), MAX_ERROR_EXCERPT);
    let mut text = format!("HTTP {status}");
    if !reason.is_empty() {
        text.push(' ');
        text.push_str(reason);
    }
    if !excerpt.trim().is_empty() {
        text.push_str(": ");
        text.push_str(excerpt.trim());
    }
    text
}

/// The error and its causes, `: `-separated (hyper's own text is generic:
/// the cause says "Connection refused" or which certificate check failed).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    let mut depth = 0;
    while let Some(cause) = source {
        if depth >= 8 {
            break;
        }
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
        depth += 1;
    }
    text
}

/// `text` in at most `max` bytes (cut at a character boundary, `…`
/// appended), control characters as spaces, known secrets redacted: fit
/// for a NATS header and a log line.
pub fn bounded_text(text: &str, max: usize) -> String {
    let redacted = crate::logging::registry().redact(text.as_bytes());
    let text = String::from_utf8_lossy(&redacted);
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > max.saturating_sub(3) {
            out.push('…');
            return out;
        }
        out.push(c);
    }
    out
}

/// The client TLS configuration (core's, as for keys and traces): `ca`'s
/// certificates only when given, else the system's roots (needed only for
/// `https://`).
fn client_tls(
    ca: Option<&Secret>,
    https: bool,
) -> Result<rustls::ClientConfig, DestinationSetupError> {
    let roots = match ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca.expose()) {
                let cert = cert.map_err(|e| DestinationSetupError::Certificate(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| DestinationSetupError::Certificate(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(DestinationSetupError::NoCertificate);
            }
            roots
        }
        None => {
            let roots = hookwarden_core::tls::system_root_store();
            if roots.is_empty() && https {
                return Err(DestinationSetupError::NoSystemRoots);
            }
            roots
        }
    };
    hookwarden_core::tls::client_config(Arc::new(roots))
        .map_err(|e| DestinationSetupError::Tls(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::signing::Signed;

    fn event() -> Outgoing {
        Outgoing {
            id: "d-1".into(),
            event_type: "push".into(),
            body: Bytes::from_static(b"{\"a\":1}"),
            content_type: Some(HeaderValue::from_static("application/json")),
            content_encoding: None,
            passed: vec![
                (
                    HeaderName::from_static("hookwarden-provider"),
                    HeaderValue::from_static("github"),
                ),
                (
                    HeaderName::from_static("webhook-signature"),
                    HeaderValue::from_static("v1,forged"),
                ),
                (
                    HeaderName::from_static("content-type"),
                    HeaderValue::from_static("text/evil"),
                ),
                (
                    HeaderName::from_static("traceparent"),
                    HeaderValue::from_static(
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    ),
                ),
                (
                    HeaderName::from_static("tracestate"),
                    HeaderValue::from_static("passed=1"),
                ),
            ],
            attempt: 3,
            replay: false,
            trace: Some(crate::telemetry::TraceHeaders {
                traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
                tracestate: None,
            }),
        }
    }

    fn signed() -> Signed {
        Signed {
            id: "d-1".into(),
            timestamp: "1700000000".into(),
            signature: "v1,abc v1,def".into(),
        }
    }

    #[test]
    fn the_request_carries_the_body_ids_signature_and_passed_headers_only() {
        let url: Uri = "http://billing.shop.svc:8080/hooks".parse().expect("uri");
        let request = build_request(&url, &event(), &signed());
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri(), &url);
        let get = |name: &str| {
            request
                .headers()
                .get_all(name)
                .iter()
                .map(|v| v.to_str().expect("text").to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("webhook-id"), ["d-1"]);
        assert_eq!(get("webhook-timestamp"), ["1700000000"]);
        assert_eq!(get("webhook-signature"), ["v1,abc v1,def"], "not forged");
        assert_eq!(get("idempotency-key"), ["d-1"]);
        assert_eq!(get("hookwarden-event-type"), ["push"]);
        assert_eq!(get("hookwarden-attempt"), ["3"]);
        assert_eq!(get("hookwarden-provider"), ["github"]);
        assert_eq!(get("content-type"), ["application/json"]);
        assert!(get("hookwarden-replay").is_empty());
        assert_eq!(
            get("traceparent"),
            ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
            "the attempt's context, not a passed one"
        );
        assert!(get("tracestate").is_empty(), "no passed state with it");
        let replayed = build_request(
            &url,
            &Outgoing {
                replay: true,
                content_type: None,
                ..event()
            },
            &signed(),
        );
        assert_eq!(
            replayed
                .headers()
                .get("hookwarden-replay")
                .map(|v| v.as_bytes()),
            Some(&b"true"[..])
        );
        assert_eq!(
            replayed.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/octet-stream"[..])
        );
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_and_a_real_one_is_trusted() {
        let empty = Secret::from(&b"not a PEM file\n"[..]);
        assert!(matches!(
            client_tls(Some(&empty), true),
            Err(DestinationSetupError::NoCertificate)
        ));
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        let pem = Secret::from(ca.cert.pem().into_bytes());
        assert!(client_tls(Some(&pem), true).is_ok());
        // Plain http needs no roots at all.
        assert!(client_tls(None, false).is_ok());
    }

    #[test]
    fn reserved_names_cannot_be_passed() {
        for name in [
            "Webhook-Id",
            "webhook-signature",
            "Idempotency-Key",
            "Content-Length",
            "Host",
            "Nats-Msg-Id",
            "Hookwarden-Replay",
        ] {
            assert!(is_reserved(name), "{name}");
        }
        for name in [
            "Hookwarden-Provider",
            "traceparent",
            "X-GitHub-Event",
            "ce-type",
        ] {
            assert!(!is_reserved(name), "{name}");
        }
    }

    #[test]
    fn error_texts_are_bounded_single_line() {
        let long = "é".repeat(1000);
        let text = bounded_text(&long, 100);
        assert!(text.len() <= 100, "{}", text.len());
        assert!(text.ends_with('…'));
        assert_eq!(bounded_text("a\r\nb", 100), "a  b");
        let answer = answer_text(503, b"busy\nnow");
        assert_eq!(answer, "HTTP 503 Service Unavailable: busy now");
        assert_eq!(answer_text(404, b""), "HTTP 404 Not Found");
    }
}
