//! The HTTP edge: find the client, filter it (HTTPS, allowlist, rate
//! limits), read the body (capped), verify, store, answer.
//!
//! The listener itself (TLS, HTTP versions, connection limits) is
//! [`crate::transport`].
//!
//! The answer tells the provider exactly what happened, because providers
//! retry on non-2xx: 200 only once JetStream acknowledged storing the
//! delivery, 401 for a delivery that does not verify (retrying cannot help),
//! 413 for an oversized body, 503 with `Retry-After` when the store is
//! unavailable (retrying will help), 429 with `Retry-After` over a rate
//! limit, 403 for a source outside the allowlist, 405 and 415 for a method
//! or media type the endpoint does not take ([`crate::request`]). The source
//! and request-shape checks come before the body is read, so a refused
//! client costs no body buffer. Every request to the endpoint path
//! produces one structured audit line (tracing target `hookwarden::audit`),
//! which never contains the secret or the signature.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hookwarden_crds::PayloadLogging;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::clientip::{ClientAddr, ForwardedError, Networks, TrustedProxies};
use crate::limits::{self, RateLimits};
use crate::ops::{EndpointLabels, Metrics};
use crate::publish::{Delivery, PublishError, Publisher, Stored, body_sha256};
use crate::request::RequestRules;
use crate::transport::{Stopped, Transport};
use crate::verify::{Handshake, Incoming, Rejection, Verdict, Verified, Verifier};

/// The default cap on a delivery's body. GitHub caps payloads at 25 MB but
/// almost all are far smaller; the cap bounds the memory a single request
/// can take before it is verified.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// How long a client may take to send its body. Providers send small bodies
/// at once; a client trickling bytes (slowloris) must not hold a connection
/// and a buffer indefinitely. GitHub itself gives up after 10 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Deliveries past the filters at once by default: with the default 1 MiB
/// body cap, at most 256 MiB of bodies in memory, and far more concurrent
/// publishes than one JetStream stream acknowledges per millisecond.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Seconds a provider is asked to wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

/// What the request handlers share.
///
/// The endpoint's configuration sits behind an [`ArcSwap`]: a reload
/// ([`AppState::replace`]) swaps it atomically, requests in flight finish
/// with the version they started with, and new requests see the new one;
/// no connection is dropped.
#[derive(Debug, Clone)]
pub struct AppState {
    current: Arc<ArcSwap<Snapshot>>,
    metrics: Arc<Metrics>,
    /// Deliveries being read, verified or stored at once; bounds the memory
    /// held by bodies (each up to the body cap) and the publishes waiting for
    /// JetStream. Shared by every configuration version.
    in_flight: Arc<Semaphore>,
}

/// One version of the endpoint's configuration.
#[derive(Debug, Clone)]
struct Snapshot {
    inner: Arc<Inner>,
    filter: SourceFilter,
    /// Methods, media types and body cap (`spec.request`).
    request: Arc<RequestRules>,
    /// How much of each request the audit line carries (`spec.logging`).
    payload: PayloadLogging,
}

/// Everything built from one version of an endpoint's manifest and secrets,
/// for [`AppState::replace`].
#[derive(Debug)]
pub struct EndpointPipeline {
    /// Checks signatures (the secrets are inside).
    pub verifier: Box<dyn Verifier>,
    /// Stores deliveries (its target names stream and subjects).
    pub publisher: Publisher,
    /// The path deliveries are accepted on.
    pub path: String,
    /// `spec.trustedProxies`.
    pub proxies: TrustedProxies,
    /// `spec.allowedSourceCidrs`.
    pub allowed: Networks,
    /// `spec.rateLimit`; `None` keeps the current limiters and their buckets
    /// (a reload that did not change the limits must not refill them).
    pub limits: Option<RateLimits>,
    /// `spec.request`, its body cap already resolved against
    /// `--max-body-bytes`.
    pub request: RequestRules,
    /// `spec.logging.payload`.
    pub payload: PayloadLogging,
}

/// Who may deliver: checked before the body is read. Each part sits behind
/// its own `Arc` so the builder methods of [`AppState`] can replace one.
#[derive(Debug, Clone)]
struct SourceFilter {
    /// The one path deliveries are accepted on (`spec.ingress.path`, `/` by
    /// default): anything else is a scanner or a misconfigured provider.
    path: Arc<str>,
    proxies: Arc<TrustedProxies>,
    allowed: Arc<Networks>,
    limits: Arc<RateLimits>,
    require_forwarded_https: bool,
}

impl Default for SourceFilter {
    /// No trusted proxies, no IP restriction, the default rate limits, and
    /// no HTTPS requirement.
    fn default() -> Self {
        Self {
            path: Arc::from("/"),
            proxies: Arc::default(),
            allowed: Arc::default(),
            limits: Arc::new(RateLimits::default()),
            require_forwarded_https: false,
        }
    }
}

#[derive(Debug)]
struct Inner {
    verifier: Box<dyn Verifier>,
    publisher: Publisher,
    body_timeout: Duration,
}

impl AppState {
    /// Handlers verifying with `verifier` and storing through `publisher`,
    /// with the [`DEFAULT_BODY_LIMIT`].
    pub fn new(verifier: Box<dyn Verifier>, publisher: Publisher) -> Self {
        Self::with_body_limit(verifier, publisher, DEFAULT_BODY_LIMIT)
    }

    /// As [`AppState::new`], with a body cap of `body_limit` bytes.
    pub fn with_body_limit(
        verifier: Box<dyn Verifier>,
        publisher: Publisher,
        body_limit: usize,
    ) -> Self {
        let snapshot = Snapshot {
            inner: Arc::new(Inner {
                verifier,
                publisher,
                body_timeout: DEFAULT_BODY_TIMEOUT,
            }),
            filter: SourceFilter::default(),
            request: Arc::new(RequestRules::posts(body_limit)),
            payload: PayloadLogging::None,
        };
        Self {
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
            metrics: Arc::new(Metrics::default()),
            in_flight: Arc::new(Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
        }
    }

    /// A builder step: a changed copy of the current configuration.
    fn modified(self, change: impl FnOnce(&mut Snapshot)) -> Self {
        let mut snapshot = Snapshot::clone(&self.current.load());
        change(&mut snapshot);
        self.current.store(Arc::new(snapshot));
        self
    }

    /// Swaps in a newly built configuration (a hot reload). The body
    /// timeout and HTTPS requirement come from the command line and stay.
    pub fn replace(&self, pipeline: EndpointPipeline) {
        let current = self.current.load_full();
        let filter = SourceFilter {
            path: Arc::from(pipeline.path),
            proxies: Arc::new(pipeline.proxies),
            allowed: Arc::new(pipeline.allowed),
            limits: pipeline
                .limits
                .map_or_else(|| Arc::clone(&current.filter.limits), Arc::new),
            require_forwarded_https: current.filter.require_forwarded_https,
        };
        let inner = Inner {
            verifier: pipeline.verifier,
            publisher: pipeline.publisher,
            body_timeout: current.inner.body_timeout,
        };
        self.current.store(Arc::new(Snapshot {
            inner: Arc::new(inner),
            filter,
            request: Arc::new(pipeline.request),
            payload: pipeline.payload,
        }));
    }

    /// The endpoint (`<namespace>/<name>`) currently served.
    pub fn endpoint(&self) -> String {
        self.current
            .load()
            .inner
            .publisher
            .target()
            .endpoint
            .clone()
    }

    /// Allows at most `max` deliveries past the filters at once; more get
    /// 503 `overloaded` with `Retry-After` instead of queueing without bound.
    #[must_use]
    pub fn with_max_in_flight(mut self, max: usize) -> Self {
        self.in_flight = Arc::new(Semaphore::new(max.max(1)));
        self
    }

    /// Counts requests, refusals and publish latency into `metrics` (shared
    /// with the operations port).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Accepts deliveries on `path` instead of `/`.
    #[must_use]
    pub fn with_path(self, path: &str) -> Self {
        self.modified(|s| s.filter.path = Arc::from(path))
    }

    /// Believes the forwarding headers `proxies` names (`X-Forwarded-For`
    /// with `X-Forwarded-Proto`, or `Forwarded`) of peers in `proxies`; by
    /// default no peer is trusted and the socket peer is the client.
    #[must_use]
    pub fn with_trusted_proxies(self, proxies: TrustedProxies) -> Self {
        self.modified(|s| s.filter.proxies = Arc::new(proxies))
    }

    /// Accepts deliveries only from clients in `allowed` (403
    /// `ip_not_allowed` otherwise); empty, the default, accepts any client.
    #[must_use]
    pub fn with_allowed_sources(self, allowed: Networks) -> Self {
        self.modified(|s| s.filter.allowed = Arc::new(allowed))
    }

    /// Replaces the default rate limits
    /// ([`crate::limits::DEFAULT_PER_SOURCE_IP`], no global limit).
    #[must_use]
    pub fn with_rate_limits(self, limits: RateLimits) -> Self {
        self.modified(|s| s.filter.limits = Arc::new(limits))
    }

    /// Takes the methods, media types and body cap of `rules` (by default
    /// `POST`, any media type, the body cap given at construction).
    #[must_use]
    pub fn with_request_rules(self, rules: RequestRules) -> Self {
        self.modified(|s| s.request = Arc::new(rules))
    }

    /// Logs this much of each request in its audit line (by default
    /// [`PayloadLogging::None`]: metadata only).
    #[must_use]
    pub fn with_payload_logging(self, payload: PayloadLogging) -> Self {
        self.modified(|s| s.payload = payload)
    }

    /// Behind an ingress that terminates TLS: refuses (403 `https_required`)
    /// every request that a trusted proxy does not report as HTTPS, so a
    /// plain-HTTP route to the receiver cannot carry deliveries (and their
    /// signatures) in clear text. Off by default.
    #[must_use]
    pub fn require_forwarded_https(self, required: bool) -> Self {
        self.modified(|s| s.filter.require_forwarded_https = required)
    }
}

/// The receiver's routes: `POST /` takes deliveries, `GET /healthz` says the
/// process serves HTTP.
pub fn router(state: AppState) -> Router {
    // Every other request reaches `ingest`, which checks the configured path
    // and method against the current configuration (it may be reloaded), and
    // audits what it refuses.
    Router::new()
        .route("/healthz", get(healthz))
        .fallback(ingest)
        .with_state(state)
}

/// Serves on `listener` through `transport` (TLS or plain, with its
/// connection limits) until `shutdown` completes, then finishes the requests
/// in flight (so an accepted delivery still gets its answer), for at most the
/// transport's drain timeout. Taking a bound listener lets tests bind port 0
/// and run the real server.
pub async fn serve<F>(
    state: AppState,
    listener: tokio::net::TcpListener,
    transport: Transport,
    shutdown: F,
) -> Stopped
where
    F: Future<Output = ()> + Send + 'static,
{
    transport.serve(router(state), listener, shutdown).await
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, axum::Json(json!({"status": "ok"})))
}

/// How one request ended.
#[derive(Debug)]
enum Outcome {
    Stored(Stored),
    /// A verified provider handshake, answered; stored too when published.
    Handshake(Handshake, Option<Stored>),
    Rejected(Rejection),
    TooLarge,
    /// Within the body cap, but over the NATS server's `max_payload`.
    TooLargeForStore(PublishError),
    TimedOut,
    Unreadable,
    StoreUnavailable(PublishError),
    /// A trusted proxy sent forwarding headers that cannot be understood.
    ForwardedInvalid(ForwardedError),
    /// Behind-ingress mode and the client did not use HTTPS.
    HttpsRequired,
    /// The client is outside `spec.allowedSourceCidrs`.
    IpNotAllowed,
    RateLimited(limits::Limited),
    /// Already `max_in_flight` deliveries are being read or stored.
    Overloaded,
    /// Not the endpoint's path.
    NotFound,
    /// Not one of the endpoint's methods; carries the `Allow` header.
    MethodNotAllowed(HeaderValue),
    /// `spec.request.contentTypes` does not list the request's media type.
    UnsupportedMediaType,
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Self::Stored(Stored {
                duplicate: false, ..
            }) => "stored",
            Self::Stored(Stored {
                duplicate: true, ..
            }) => "duplicate",
            Self::Handshake(..) => "handshake",
            Self::Rejected(_) => "rejected",
            Self::TooLarge | Self::TooLargeForStore(_) => "too_large",
            Self::TimedOut => "timed_out",
            Self::Unreadable => "bad_request",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::ForwardedInvalid(_) => "bad_request",
            Self::HttpsRequired | Self::IpNotAllowed => "forbidden",
            Self::RateLimited(_) => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::NotFound | Self::MethodNotAllowed(_) | Self::UnsupportedMediaType => {
                "bad_request"
            }
        }
    }

    /// The stable reason code reported to the client and the audit log.
    fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Stored(_) | Self::Handshake(..) => None,
            Self::Rejected(rejection) => Some(rejection.code()),
            Self::TooLarge | Self::TooLargeForStore(_) => Some("body_too_large"),
            Self::TimedOut => Some("body_timeout"),
            Self::Unreadable => Some("body_unreadable"),
            Self::StoreUnavailable(_) => Some("store_unavailable"),
            Self::ForwardedInvalid(_) => Some(ForwardedError::CODE),
            Self::HttpsRequired => Some("https_required"),
            Self::IpNotAllowed => Some("ip_not_allowed"),
            Self::RateLimited(_) => Some("rate_limited"),
            Self::Overloaded => Some("overloaded"),
            Self::NotFound => Some("not_found"),
            Self::MethodNotAllowed(_) => Some("method_not_allowed"),
            Self::UnsupportedMediaType => Some("unsupported_media_type"),
        }
    }

    fn into_response(self) -> Response {
        let reason = self.reason().unwrap_or_default();
        match self {
            Self::Stored(stored) => (
                StatusCode::OK,
                axum::Json(json!({
                    "status": "stored",
                    "sequence": stored.sequence,
                    "duplicate": stored.duplicate,
                })),
            )
                .into_response(),
            Self::Handshake(handshake, _) => {
                let mut response = (StatusCode::OK, handshake.body).into_response();
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(handshake.content_type),
                );
                // The challenge is echoed: never let a browser sniff it as HTML.
                headers.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                response
            }
            Self::Rejected(_) => error(StatusCode::UNAUTHORIZED, reason),
            Self::TooLarge | Self::TooLargeForStore(_) => {
                error(StatusCode::PAYLOAD_TOO_LARGE, reason)
            }
            Self::TimedOut => error(StatusCode::REQUEST_TIMEOUT, reason),
            Self::Unreadable => error(StatusCode::BAD_REQUEST, reason),
            Self::StoreUnavailable(_) | Self::Overloaded => {
                let mut response = error(StatusCode::SERVICE_UNAVAILABLE, reason);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                response
            }
            Self::ForwardedInvalid(_) => error(StatusCode::BAD_REQUEST, reason),
            Self::NotFound => error(StatusCode::NOT_FOUND, reason),
            Self::MethodNotAllowed(allow) => {
                let mut response = error(StatusCode::METHOD_NOT_ALLOWED, reason);
                response.headers_mut().insert(header::ALLOW, allow);
                response
            }
            Self::UnsupportedMediaType => error(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason),
            Self::HttpsRequired | Self::IpNotAllowed => error(StatusCode::FORBIDDEN, reason),
            Self::RateLimited(limited) => {
                let mut response = error(StatusCode::TOO_MANY_REQUESTS, reason);
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(limited.retry_after_secs),
                );
                response
            }
        }
    }
}

fn error(status: StatusCode, reason: &str) -> Response {
    (status, axum::Json(json!({ "error": reason }))).into_response()
}

/// What the audit line reports beyond the outcome.
#[derive(Debug, Default)]
struct Facts {
    /// The resolved client; `None` when the forwarding headers were invalid.
    client_ip: Option<IpAddr>,
    body_size: Option<usize>,
    body_sha256: Option<String>,
    verified: Option<Verified>,
    /// The body as read, kept only for `full` payload logging.
    body: Option<Bytes>,
}

async fn ingest(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let received_at = jiff::Timestamp::now();
    let _in_flight = InFlight::enter(&state.metrics);
    let request_id = format!("{:032x}", rand::random::<u128>());
    let (parts, body) = request.into_parts();
    let mut facts = Facts::default();
    // One configuration for the whole request, even if a reload lands meanwhile.
    let snapshot = state.current.load_full();
    let outcome = if parts.uri.path() != &*snapshot.filter.path {
        Outcome::NotFound
    } else if let Err(outcome) = check_method(
        &snapshot.request,
        &parts.method,
        snapshot.inner.verifier.answers_get(),
    ) {
        outcome
    } else {
        handle(
            &state,
            &snapshot,
            &parts,
            body,
            peer.ip(),
            received_at,
            &mut facts,
        )
        .await
    };

    let verified = facts.verified.as_ref();
    let stored = match &outcome {
        Outcome::Stored(stored) | Outcome::Handshake(_, Some(stored)) => Some(stored),
        _ => None,
    };
    let error = match &outcome {
        Outcome::StoreUnavailable(err) | Outcome::TooLargeForStore(err) => Some(err.to_string()),
        Outcome::ForwardedInvalid(err) => Some(err.to_string()),
        Outcome::RateLimited(limited) => Some(format!("{} limit", limited.scope.as_str())),
        _ => None,
    };
    let client_ip = facts.client_ip.map(|ip| ip.to_string());
    let endpoint = snapshot.inner.publisher.target().endpoint.as_str();
    // Redacted headers (`headers`, `full`) and the body's start (`full`).
    let logged_headers = (snapshot.payload != PayloadLogging::None).then(|| {
        crate::redact::headers_json(&parts.headers, &snapshot.inner.verifier.secret_headers())
            .to_string()
    });
    let logged_body = facts.body.as_deref().map(crate::redact::body_excerpt);
    state
        .metrics
        .record(endpoint, outcome.label(), outcome.reason());
    if let Outcome::RateLimited(limited) = &outcome {
        state
            .metrics
            .record_rate_limited(endpoint, limited.scope.as_str());
    }
    tracing::info!(
        target: "hookwarden::audit",
        request_id = request_id.as_str(),
        endpoint,
        client_ip = client_ip.as_deref(),
        peer_ip = %peer.ip().to_canonical(),
        method = %parts.method,
        path = parts.uri.path(),
        body_size = facts.body_size,
        body_sha256 = facts.body_sha256.as_deref(),
        outcome = outcome.label(),
        reason = outcome.reason(),
        event = verified.and_then(|v| v.event.as_deref()),
        delivery_id = verified.and_then(|v| v.delivery_id.as_deref()),
        secret_index = verified.map(|v| v.secret_index),
        stream_sequence = stored.map(|s| s.sequence),
        duplicate = stored.map(|s| s.duplicate),
        error = error.as_deref(),
        latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        headers = logged_headers.as_deref(),
        body = logged_body.as_ref().map(|b| b.text.as_str()),
        body_encoding = logged_body.as_ref().map(|b| b.encoding),
        payload_truncated = logged_body.as_ref().map(|b| b.truncated),
        "webhook delivery"
    );

    let mut response = outcome.into_response();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Counts a request as in flight until dropped, which also covers a handler
/// dropped mid-way because its client went away.
struct InFlight(Arc<Metrics>);

impl InFlight {
    fn enter(metrics: &Arc<Metrics>) -> Self {
        metrics.in_flight.inc();
        Self(Arc::clone(metrics))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// The request pipeline: client IP, HTTPS requirement, allowlist, rate
/// limit, body, signature, store. Everything before the body is cheap and
/// refuses without reading it.
async fn handle(
    state: &AppState,
    snapshot: &Snapshot,
    parts: &axum::http::request::Parts,
    body: Body,
    peer_ip: IpAddr,
    received_at: jiff::Timestamp,
    facts: &mut Facts,
) -> Outcome {
    let (inner, filter) = (&snapshot.inner, &snapshot.filter);
    let headers = &parts.headers;
    let client = match filter.proxies.resolve(peer_ip, headers) {
        Ok(client) => client,
        Err(err) => return Outcome::ForwardedInvalid(err),
    };
    facts.client_ip = Some(client.client_ip);
    if let Err(outcome) = admit(filter, &client) {
        return outcome;
    }
    // A GET has no body, so its media type means nothing (and Meta's GET
    // handshake sends none).
    if parts.method != Method::GET && !snapshot.request.allows_content_type(headers) {
        return Outcome::UnsupportedMediaType;
    }
    let source_ip = client.client_ip;
    // Held until the delivery is stored (or refused): the body is in memory
    // and a publish may be waiting all that time.
    let Ok(_permit) = state.in_flight.try_acquire() else {
        return Outcome::Overloaded;
    };

    let limit = snapshot.request.body_limit();
    let body = match read_capped(headers, body, limit, inner.body_timeout).await {
        Ok(body) => body,
        Err(outcome) => return outcome,
    };
    facts.body_size = Some(body.len());
    facts.body_sha256 = Some(body_sha256(&body));
    if snapshot.payload == PayloadLogging::Full {
        facts.body = Some(body.clone());
    }

    let incoming = Incoming {
        method: &parts.method,
        uri: &parts.uri,
        headers,
        body: &body,
    };
    let (verified, handshake) = match inner.verifier.check(&incoming) {
        Ok(Verdict::Deliver(verified)) => (verified, None),
        Ok(Verdict::Handshake(handshake)) => (handshake.verified.clone(), Some(handshake)),
        Err(rejection) => return Outcome::Rejected(rejection),
    };
    // A handshake is answered, and stored only when the spec asks for it.
    if let Some(handshake) = handshake.as_ref().filter(|h| !h.publish) {
        facts.verified = Some(verified);
        return Outcome::Handshake(handshake.clone(), None);
    }
    let delivery = Delivery {
        body,
        event: verified.event.clone(),
        delivery_id: verified.delivery_id.clone(),
        received_at,
        source_ip,
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        traceparent: crate::publish::traceparent(
            headers.get("traceparent").and_then(|v| v.to_str().ok()),
        ),
    };
    facts.verified = Some(verified);
    let publishing = Instant::now();
    let published = inner.publisher.publish(&delivery).await;
    state
        .metrics
        .publish_seconds
        .get_or_create(&EndpointLabels {
            endpoint: inner.publisher.target().endpoint.clone(),
        })
        .observe(publishing.elapsed().as_secs_f64());
    match published {
        Ok(stored) => match handshake {
            Some(handshake) => Outcome::Handshake(handshake, Some(stored)),
            None => Outcome::Stored(stored),
        },
        Err(err @ PublishError::TooLarge(_)) => Outcome::TooLargeForStore(err),
        Err(err) => Outcome::StoreUnavailable(err),
    }
}

/// The endpoint's methods (`spec.request.methods`, `POST` by default); any
/// other is answered 405 with `Allow` listing them. A `GET` delivery goes
/// through the whole pipeline like any other (empty body, verified). A
/// preset whose provider sends a `GET` handshake (Meta's `hub.mode=subscribe`)
/// also takes `GET`, whatever the list says: its verifier answers or refuses it.
fn check_method(rules: &RequestRules, method: &Method, answers_get: bool) -> Result<(), Outcome> {
    if rules.allows_method(method) || (answers_get && method == Method::GET) {
        Ok(())
    } else {
        Err(Outcome::MethodNotAllowed(rules.allow().clone()))
    }
}

/// The checks on the client before anything is read, in order: HTTPS
/// (behind an ingress), allowlist, rate limit. The rate limit comes last so
/// requests that are refused anyway do not use up a bucket.
fn admit(filter: &SourceFilter, client: &ClientAddr) -> Result<(), Outcome> {
    if filter.require_forwarded_https && !client.forwarded_https() {
        return Err(Outcome::HttpsRequired);
    }
    if !filter.allowed.is_empty() && !filter.allowed.contains(client.client_ip) {
        return Err(Outcome::IpNotAllowed);
    }
    filter
        .limits
        .check(client.client_ip)
        .map_err(Outcome::RateLimited)
}

/// Reads the whole body, but never more than `limit` bytes and for no longer
/// than `timeout`: a declared `Content-Length` over the cap is refused before
/// reading anything, and a body without one (chunked) is cut off as soon as
/// it passes the cap.
async fn read_capped(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Outcome> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(Outcome::TooLarge);
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_elapsed) => Err(Outcome::TimedOut),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => Err(Outcome::TooLarge),
        Ok(Err(_)) => Err(Outcome::Unreadable),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::BodyExt as _;
    use tower::ServiceExt;

    use super::*;

    /// A state whose NATS client never connects: enough for requests that
    /// are refused before anything is published.
    async fn offline_state() -> AppState {
        offline_state_waiting(Duration::from_millis(100)).await
    }

    /// As [`offline_state`], each publish waiting `ack_timeout` for nothing.
    async fn offline_state_waiting(ack_timeout: Duration) -> AppState {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect("nats://127.0.0.1:1")
            .await
            .expect("client without a connection");
        let endpoint = hookwarden_crds::from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nmetadata: {name: gh, namespace: ci}\nspec: {provider: github}\n",
        )
        .expect("manifest");
        let target = crate::publish::Target::for_endpoint(&endpoint).expect("target");
        let verifier = crate::verify::for_provider(
            hookwarden_crds::Provider::Github,
            vec![crate::secrets::Secret::from(&b"secret"[..])],
            None,
        )
        .expect("verifier");
        AppState::new(verifier, Publisher::new(client, target, ack_timeout))
    }

    fn signed_request(secret: &[u8], body: &'static str) -> Request {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let mut request = Request::post("/")
            .header("x-hub-signature-256", signature)
            .body(Body::from(body))
            .expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        request
    }

    #[tokio::test]
    async fn a_replaced_configuration_serves_the_next_request() {
        let state = offline_state().await;
        let app = router(state.clone());
        let before = app
            .clone()
            .oneshot(signed_request(b"rotated", "{}"))
            .await
            .expect("response");
        assert_eq!(before.status(), StatusCode::UNAUTHORIZED, "old secret only");

        let publisher = state.current.load().inner.publisher.clone();
        state.replace(EndpointPipeline {
            path: "/".to_owned(),
            verifier: crate::verify::for_provider(
                hookwarden_crds::Provider::Github,
                vec![crate::secrets::Secret::from(&b"rotated"[..])],
                None,
            )
            .expect("verifier"),
            publisher,
            proxies: TrustedProxies::default(),
            allowed: Networks::default(),
            limits: None,
            request: RequestRules::default(),
            payload: PayloadLogging::None,
        });
        // Verified now; the offline store then answers 503, never 2xx.
        let after = app
            .oneshot(signed_request(b"rotated", "{}"))
            .await
            .expect("response");
        assert_eq!(after.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn deliveries_beyond_max_in_flight_get_503_overloaded() {
        // One delivery waits on a store that never acknowledges; the next
        // one finds no room and is refused at once instead of queueing.
        let state = offline_state_waiting(Duration::from_secs(2))
            .await
            .with_max_in_flight(1);
        let app = router(state.clone());
        let first = tokio::spawn(app.clone().oneshot(signed_request(b"secret", "{}")));
        for _ in 0..500 {
            if state.in_flight.available_permits() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            state.in_flight.available_permits(),
            0,
            "the first delivery is in flight"
        );
        let second = app
            .oneshot(signed_request(b"secret", "{}"))
            .await
            .expect("response");
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(second.headers().contains_key(header::RETRY_AFTER));
        let body = second.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body.as_ref(), br#"{"error":"overloaded"}"#);
        let first = first.await.expect("task").expect("response");
        assert_eq!(
            first.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "never stored, never 2xx"
        );
        assert_eq!(
            state.in_flight.available_permits(),
            1,
            "the permit is returned"
        );
    }

    #[tokio::test]
    async fn only_post_on_the_endpoint_path_reaches_the_pipeline() {
        let metrics = Arc::new(Metrics::default());
        let app = router(
            offline_state()
                .await
                .with_path("/hooks/github")
                .with_metrics(Arc::clone(&metrics)),
        );
        let send = |method: &str, path: &str| {
            let mut request = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::from("{}"))
                .expect("request");
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
            app.clone().oneshot(request)
        };
        let wrong_path = send("POST", "/").await.expect("response");
        assert_eq!(wrong_path.status(), StatusCode::NOT_FOUND);
        let wrong_method = send("GET", "/hooks/github").await.expect("response");
        assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            wrong_method.headers().get(header::ALLOW),
            Some(&HeaderValue::from_static("POST"))
        );
        let right = send("POST", "/hooks/github").await.expect("response");
        assert_eq!(right.status(), StatusCode::UNAUTHORIZED, "verified next");
        let text = metrics.render();
        for reason in ["not_found", "method_not_allowed", "signature_missing"] {
            assert!(
                text.contains(&format!("reason=\"{reason}\"")),
                "{reason} audited: {text}"
            );
        }
    }

    #[tokio::test]
    async fn a_handshake_is_answered_without_the_store_and_counted() {
        // The store is offline: a handshake that is not published is still
        // answered, and counted as outcome `handshake`.
        let metrics = Arc::new(Metrics::default());
        let state = offline_state().await.with_metrics(Arc::clone(&metrics));
        let publisher = state.current.load().inner.publisher.clone();
        state.replace(EndpointPipeline {
            path: "/".to_owned(),
            verifier: crate::verify::for_provider(
                hookwarden_crds::Provider::Slack,
                vec![crate::secrets::Secret::from(&b"secret"[..])],
                None,
            )
            .expect("verifier"),
            publisher,
            proxies: TrustedProxies::default(),
            allowed: Networks::default(),
            limits: None,
            request: RequestRules::default(),
            payload: PayloadLogging::None,
        });
        let body = crate::verify::slack::url_verification_body("c-1");
        let mut request = Request::post("/");
        for (name, value) in
            crate::verify::slack::sign(b"secret", jiff::Timestamp::now().as_second(), &body)
        {
            request = request.header(name, value);
        }
        let mut request = request.body(Body::from(body)).expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let response = router(state).oneshot(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers().get(header::X_CONTENT_TYPE_OPTIONS),
            Some(&HeaderValue::from_static("nosniff"))
        );
        let answer = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(answer.as_ref(), br#"{"challenge":"c-1"}"#);
        let text = metrics.render();
        assert!(
            text.contains(r#"hookwarden_requests_total{endpoint="ci/gh",outcome="handshake"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn configured_methods_and_media_types_are_enforced_before_the_body() {
        let spec = hookwarden_crds::RequestSpec {
            methods: vec![
                hookwarden_crds::HttpMethod::Get,
                hookwarden_crds::HttpMethod::Post,
            ],
            content_types: vec!["application/json".to_owned()],
            max_body_bytes: None,
        };
        let app = router(offline_state().await.with_request_rules(
            RequestRules::from_spec(Some(&spec), DEFAULT_BODY_LIMIT).expect("rules"),
        ));
        let send = |method: &str, content_type: Option<&str>| {
            let mut request = Request::builder().method(method).uri("/");
            if let Some(content_type) = content_type {
                request = request.header(header::CONTENT_TYPE, content_type);
            }
            let mut request = request.body(Body::from("{}")).expect("request");
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
            app.clone().oneshot(request)
        };
        let put = send("PUT", Some("application/json"))
            .await
            .expect("response");
        assert_eq!(put.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            put.headers().get(header::ALLOW),
            Some(&HeaderValue::from_static("GET, POST"))
        );
        // A GET is a delivery like any other: without a signature, refused.
        let get = send("GET", Some("application/json"))
            .await
            .expect("response");
        assert_eq!(get.status(), StatusCode::UNAUTHORIZED);
        for content_type in [Some("text/plain"), None] {
            let refused = send("POST", content_type).await.expect("response");
            assert_eq!(
                refused.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type:?}"
            );
            let body = refused
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            assert_eq!(body.as_ref(), br#"{"error":"unsupported_media_type"}"#);
        }
        let json = send("POST", Some("Application/JSON; charset=utf-8"))
            .await
            .expect("response");
        assert_eq!(json.status(), StatusCode::UNAUTHORIZED, "verified next");
    }

    #[tokio::test]
    async fn every_request_is_counted_and_leaves_in_flight_at_zero() {
        let metrics = Arc::new(Metrics::default());
        let app = router(offline_state().await.with_metrics(Arc::clone(&metrics)));
        for _ in 0..3 {
            let mut request = Request::post("/").body(Body::from("{}")).expect("request");
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
            let response = app.clone().oneshot(request).await.expect("response");
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        let text = metrics.render();
        assert!(
            text.contains(
                r#"hookwarden_refusals_total{endpoint="ci/gh",reason="signature_missing"} 3"#
            ),
            "{text}"
        );
        assert!(text.contains("hookwarden_requests_in_flight 0\n"), "{text}");
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn declared(len: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        headers
    }

    fn chunked(chunks: usize, size: usize) -> Body {
        Body::from_stream(futures::stream::iter(
            (0..chunks).map(move |_| Ok::<_, Infallible>(vec![b'x'; size])),
        ))
    }

    #[tokio::test]
    async fn reads_a_body_up_to_the_cap() {
        let body = read_capped(&declared(8), Body::from("12345678"), 8, TIMEOUT)
            .await
            .expect("at the cap");
        assert_eq!(body.as_ref(), b"12345678");
        let body = read_capped(&HeaderMap::new(), chunked(4, 2), 8, TIMEOUT)
            .await
            .expect("chunked, at the cap");
        assert_eq!(body.len(), 8);
    }

    #[tokio::test]
    async fn refuses_a_declared_length_over_the_cap_without_reading() {
        // The body would be fine; the declaration alone is refused.
        let outcome = read_capped(&declared(9), Body::empty(), 8, TIMEOUT).await;
        assert!(matches!(outcome, Err(Outcome::TooLarge)), "{outcome:?}");
    }

    #[tokio::test]
    async fn cuts_off_a_chunked_body_over_the_cap() {
        let outcome = read_capped(&HeaderMap::new(), chunked(5, 2), 8, TIMEOUT).await;
        assert!(matches!(outcome, Err(Outcome::TooLarge)), "{outcome:?}");
    }

    #[tokio::test]
    async fn gives_up_on_a_body_that_never_ends() {
        let stalled = Body::from_stream(futures::stream::pending::<Result<Vec<u8>, Infallible>>());
        let outcome = read_capped(&HeaderMap::new(), stalled, 8, Duration::from_millis(50)).await;
        assert!(matches!(outcome, Err(Outcome::TimedOut)), "{outcome:?}");
        assert_eq!(
            Outcome::TimedOut.into_response().status(),
            StatusCode::REQUEST_TIMEOUT
        );
    }

    #[test]
    fn source_refusals_have_their_status_and_reason() {
        let limited = Outcome::RateLimited(limits::Limited {
            scope: crate::limits::Scope::PerSourceIp,
            retry_after_secs: 3,
        })
        .into_response();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            limited.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static("3"))
        );
        assert_eq!(
            Outcome::IpNotAllowed.into_response().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(Outcome::IpNotAllowed.reason(), Some("ip_not_allowed"));
        assert_eq!(
            Outcome::HttpsRequired.into_response().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(Outcome::HttpsRequired.reason(), Some("https_required"));
    }

    #[test]
    fn admission_checks_https_then_allowlist_then_rate() {
        let values = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        // One request an hour: the second is refused whatever the timing.
        let quota = governor::Quota::with_period(Duration::from_secs(3600)).expect("non-zero");
        let filter = SourceFilter {
            path: Arc::from("/"),
            proxies: Arc::default(),
            allowed: Arc::new(
                Networks::parse("spec.allowedSourceCidrs", &values(&["10.0.0.0/8"])).expect("cidr"),
            ),
            limits: Arc::new(RateLimits::with_clock(
                Some(quota),
                None,
                10,
                governor::clock::DefaultClock::default(),
            )),
            require_forwarded_https: true,
        };
        let client = |ip: &str, proto: Option<&str>| ClientAddr {
            client_ip: ip.parse().expect("ip"),
            peer_ip: ip.parse().expect("ip"),
            forwarded_proto: proto.map(str::to_owned),
        };
        let https = Some("https");
        assert!(matches!(
            admit(&filter, &client("10.0.0.1", None)),
            Err(Outcome::HttpsRequired)
        ));
        assert!(matches!(
            admit(&filter, &client("192.0.2.1", https)),
            Err(Outcome::IpNotAllowed)
        ));
        // Refusals before the rate limit did not use up 10.0.0.1's bucket.
        assert!(admit(&filter, &client("10.0.0.1", https)).is_ok());
        assert!(matches!(
            admit(&filter, &client("10.0.0.1", https)),
            Err(Outcome::RateLimited(_))
        ));
    }

    #[test]
    fn store_failures_ask_the_provider_to_retry() {
        let response = Outcome::StoreUnavailable(PublishError::Timeout(Duration::from_secs(2)))
            .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static("5"))
        );
    }
}
