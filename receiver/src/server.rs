//! The HTTP edge: find the client, filter it (HTTPS, allowlist, rate
//! limits), read the body (capped, paced, budgeted), verify, store, answer.
//!
//! The listener itself (TLS, HTTP versions, connection limits) is
//! [`crate::transport`]; reading the body is [`crate::body`].
//!
//! The answer tells the provider exactly what happened, because providers
//! retry on non-2xx: 200 only once JetStream acknowledged storing the
//! delivery, 401 for a delivery that does not verify (retrying cannot help),
//! 413 for an oversized body, 503 with `Retry-After` when the store is
//! unavailable or full (retrying will help), 429 with `Retry-After` over a
//! rate limit, 403 for a source outside the allowlist, 405 and 415 for a
//! method or media type the endpoint does not take ([`crate::request`]).
//!
//! Cheap checks come first and refuse without reading the body: the path and
//! method, the client (HTTPS, allowlist, its own rate limit), the media type,
//! a declared length over the cap, and the verifier's header precheck (a signature header is there and well
//! formed). Only then is the body read, under a per-source bound on
//! concurrent body reads. Only a *verified* delivery takes one of the
//! `--max-in-flight` publish slots and a token of the global rate limit, so
//! neither can be used up by forgeries.
//!
//! Each request runs as its own task ([`AppState::tasks`]): when the client
//! goes away mid-request (a reset, a closed connection), the handler is not
//! dropped with its connection; the delivery is still read, verified, stored
//! (or refused) and audited. Every request to the endpoint path produces one
//! structured audit line (tracing target `hookwarden::audit`), which never
//! contains the secret or the signature.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hookwarden_crds::PayloadLogging;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::body::{self, BodyBudget, BodyError, BodyPace};
use crate::clientip::{ClientAddr, ForwardedError, Networks, TrustedProxies};
use crate::limits::{self, PerSourceSlots, RateLimits};
use crate::ops::{EndpointLabels, Metrics};
use crate::publish::{Delivery, PublishError, Publisher, Stored, body_sha256};
use crate::quarantine::{Quarantine, QuarantineCeiling, Refusal};
use crate::request::RequestRules;
use crate::telemetry;
use crate::verify::{Handshake, Head, Incoming, Rejection, Verdict, Verified, Verifier};

/// The default cap on a delivery's body. GitHub caps payloads at 25 MB but
/// almost all are far smaller; the cap bounds the memory a single request
/// can take before it is verified.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Verified deliveries being stored at once by default: far more concurrent
/// publishes than one JetStream stream acknowledges per millisecond, few
/// enough that a stalled NATS is answered 503 quickly instead of queueing.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Bodies one source (an IPv4 address, an IPv6 /64) may be sending at once
/// by default. Providers deliver one event per request and rarely open more
/// than a few connections; behind an ingress this counts the original
/// clients, not the proxy.
pub const DEFAULT_MAX_BODY_READS_PER_SOURCE: usize = 32;

/// Seconds a provider is asked to wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

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
    /// (`None`: [`pool_share`] of `max_in_flight`), within `max_in_flight`.
    pub max_in_flight_per_endpoint: Option<usize>,
    /// Continue the sender's `traceparent` (parent our spans on it, store it
    /// when traces are off) instead of only linking to it, for every
    /// endpoint served, whatever its `spec.traces` says: for senders that
    /// are part of the same system. Off by default: it is the sender's claim.
    pub trust_incoming_traceparent: bool,
    /// Quarantine records stored per second, all endpoints together
    /// ([`QuarantineCeiling`]).
    pub max_quarantine_records_per_second: u32,
}

/// One endpoint's share of a pool-wide bound by default: a quarter of it,
/// at least 1, so a flooded or stalled endpoint leaves three quarters to
/// the others.
pub fn pool_share(whole: usize) -> usize {
    (whole / 4).max(1)
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

/// What the request handlers of one endpoint share.
///
/// The endpoint's configuration sits behind an [`ArcSwap`]: a reload
/// ([`AppState::replace`]) swaps it atomically, requests in flight finish
/// with the version they started with, and new requests see the new one;
/// no connection is dropped. In a pool each endpoint has its own
/// ([`PoolBounds::endpoint`]), its bounds a share of the pool's.
#[derive(Debug, Clone)]
pub struct AppState {
    current: Arc<ArcSwap<Snapshot>>,
    metrics: Arc<Metrics>,
    options: Arc<ServeOptions>,
    /// Verified deliveries being stored at once; bounds the publishes
    /// waiting for JetStream. Shared by every configuration version (in a
    /// pool: this endpoint's share).
    in_flight: Arc<Semaphore>,
    /// In a pool: the publish slots of all its endpoints together.
    pool_in_flight: Option<Arc<Semaphore>>,
    /// The bytes of bodies held at once (in a pool: this endpoint's share
    /// of the pool's, [`BodyBudget::share`]).
    budget: BodyBudget,
    /// Every request's task, so a shutdown can wait for deliveries whose
    /// client already went away.
    tasks: TaskTracker,
    /// The process's quarantine records per second (in a pool: shared by
    /// all its endpoints).
    quarantine_ceiling: QuarantineCeiling,
}

/// One version of the endpoint's configuration.
#[derive(Debug, Clone)]
struct Snapshot {
    verifier: Arc<dyn Verifier>,
    publisher: Publisher,
    filter: SourceFilter,
    /// Methods, media types and body cap (`spec.request`).
    request: Arc<RequestRules>,
    /// How much of each request the audit line carries (`spec.logging`).
    payload: PayloadLogging,
    /// Bodies being read per source (keyed like the rate limits).
    body_reads: Arc<PerSourceSlots>,
    /// Where refused requests are recorded (`spec.quarantine`).
    quarantine: Option<Arc<Quarantine>>,
    /// Continue a sender's `traceparent` instead of only linking to it:
    /// `spec.traces.trustIncomingTraceparent` or the process's
    /// `--trust-incoming-traceparent`.
    trust_incoming_traceparent: bool,
}

/// Everything built from one version of an endpoint's manifest and secrets:
/// what [`crate::reload::Checked::connect`] returns, and the only way a
/// configuration reaches the server ([`AppState::new`], [`AppState::replace`]).
#[derive(Debug)]
pub struct EndpointPipeline {
    /// Checks signatures (the secrets are inside).
    pub verifier: Box<dyn Verifier>,
    /// Stores deliveries (its target names stream and subjects).
    pub publisher: Publisher,
    /// The path deliveries are accepted on (`spec.ingress.path`, `/` by default).
    pub path: String,
    /// `spec.trustedProxies`.
    pub proxies: TrustedProxies,
    /// `spec.allowedSourceCidrs` and the ranges of `spec.allowedSources`.
    pub allowed: Networks,
    /// `spec.rateLimit`; `None` keeps the current limiters and their buckets
    /// (a reload that did not change the limits must not refill them).
    pub limits: Option<RateLimits>,
    /// `spec.request`, its body cap already resolved against
    /// `--max-body-bytes`.
    pub request: RequestRules,
    /// `spec.logging.payload`.
    pub payload: PayloadLogging,
    /// `spec.traces.trustIncomingTraceparent`.
    pub trust_incoming_traceparent: bool,
}

/// Who may deliver: checked before the body is read.
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

impl Snapshot {
    /// The one place a pipeline becomes a served configuration. Limits of
    /// `None` keep `previous`'s limiters (and per-source body-read counts).
    fn build(
        pipeline: EndpointPipeline,
        options: &ServeOptions,
        previous: Option<&Snapshot>,
        metrics: &Arc<Metrics>,
        ceiling: &QuarantineCeiling,
    ) -> Self {
        // The same quarantine keeps its rate limiter and queue across a
        // reload that did not change it.
        let quarantine =
            pipeline
                .publisher
                .target()
                .quarantine
                .clone()
                .map(
                    |target| match previous.and_then(|p| p.quarantine.as_ref()) {
                        Some(kept) if *kept.target() == target => Arc::clone(kept),
                        _ => Arc::new(Quarantine::start(
                            target,
                            pipeline.publisher.jetstream().clone(),
                            Arc::clone(metrics),
                            ceiling.clone(),
                        )),
                    },
                );
        let (limits, body_reads) = match (pipeline.limits, previous) {
            (None, Some(previous)) => (
                Arc::clone(&previous.filter.limits),
                Arc::clone(&previous.body_reads),
            ),
            (limits, _) => {
                let limits = limits.unwrap_or_default();
                let body_reads =
                    PerSourceSlots::new(options.max_body_reads_per_source, limits.ipv6_prefix());
                (Arc::new(limits), body_reads)
            }
        };
        Self {
            verifier: Arc::from(pipeline.verifier),
            publisher: pipeline.publisher,
            filter: SourceFilter {
                path: Arc::from(pipeline.path),
                proxies: Arc::new(pipeline.proxies),
                allowed: Arc::new(pipeline.allowed),
                limits,
                require_forwarded_https: options.require_forwarded_https,
            },
            request: Arc::new(pipeline.request),
            payload: pipeline.payload,
            body_reads,
            quarantine,
            trust_incoming_traceparent: pipeline.trust_incoming_traceparent
                || options.trust_incoming_traceparent,
        }
    }
}

impl AppState {
    /// Serves `pipeline` (the endpoint as loaded from its manifest) with the
    /// process's `options`, counting into `metrics`.
    pub fn new(pipeline: EndpointPipeline, options: ServeOptions, metrics: Arc<Metrics>) -> Self {
        let quarantine_ceiling =
            QuarantineCeiling::whole(options.max_quarantine_records_per_second);
        let snapshot = Snapshot::build(pipeline, &options, None, &metrics, &quarantine_ceiling);
        Self {
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
            metrics,
            in_flight: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            pool_in_flight: None,
            budget: BodyBudget::new(options.max_buffered_body_bytes),
            options: Arc::new(options),
            tasks: TaskTracker::new(),
            quarantine_ceiling,
        }
    }

    /// Swaps in a newly built configuration (a hot reload).
    pub fn replace(&self, pipeline: EndpointPipeline) {
        let current = self.current.load_full();
        let snapshot = Snapshot::build(
            pipeline,
            &self.options,
            Some(&current),
            &self.metrics,
            &self.quarantine_ceiling,
        );
        self.current.store(Arc::new(snapshot));
    }

    /// The endpoint (`<namespace>/<name>`) currently served.
    pub fn endpoint(&self) -> String {
        self.current.load().publisher.target().endpoint.clone()
    }

    /// Where deliveries are stored now.
    pub fn target(&self) -> crate::publish::Target {
        self.current.load().publisher.target().clone()
    }

    /// The publisher of the configuration served now.
    pub fn publisher(&self) -> Publisher {
        self.current.load().publisher.clone()
    }

    /// The path deliveries are accepted on now.
    pub fn path(&self) -> String {
        self.current.load().filter.path.to_string()
    }

    /// Whether the allowlist admits a client at `ip` now (no allowlist
    /// admits everyone).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let current = self.current.load();
        current.filter.allowed.is_empty() || current.filter.allowed.contains(ip)
    }

    /// Whether `peer` is one of the trusted proxies now: the transport does
    /// not hold a proxy, which carries many clients, to one client's limits.
    pub fn trusts_proxy(&self, peer: IpAddr) -> bool {
        self.current.load().filter.proxies.trusts(peer)
    }

    /// The metrics requests are counted into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The tasks of requests being handled (a client that went away does not
    /// end its request's task).
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Bytes of request bodies held right now.
    pub fn buffered_body_bytes(&self) -> usize {
        self.budget.held()
    }

    /// Counts and audits a request that hyper refused before any handler
    /// saw it (malformed framing, oversized or too slow headers): its client
    /// and path are unknown, its peer is not.
    pub fn refused_by_transport(&self, peer: SocketAddr, reason: &'static str) {
        let endpoint = self.endpoint();
        self.metrics.record(&endpoint, "bad_request", Some(reason));
        if let Some(quarantine) = &self.current.load().quarantine {
            quarantine.offer(&Refusal {
                request_id: "",
                received_at: jiff::Timestamp::now(),
                status: StatusCode::BAD_REQUEST.as_u16(),
                reason,
                client_ip: None,
                peer_ip: peer.ip(),
                head: None,
                secret_headers: &[],
                plain_headers: &[],
                body_size: None,
                body_sha256: None,
                body: None,
                error: None,
            });
        }
        tracing::info!(
            target: "hookwarden::audit",
            endpoint = endpoint.as_str(),
            peer_ip = %peer.ip().to_canonical(),
            outcome = "bad_request",
            reason,
            "webhook delivery"
        );
    }
}

/// The bounds of a pool over all its endpoints, and what their handlers
/// share: the metrics, the request tasks (a shutdown waits for all of
/// them), the process's options.
#[derive(Debug, Clone)]
pub struct PoolBounds {
    metrics: Arc<Metrics>,
    options: Arc<ServeOptions>,
    in_flight: Arc<Semaphore>,
    budget: BodyBudget,
    tasks: TaskTracker,
    /// Shared by every endpoint's quarantine; one takes a quarter at most.
    quarantine_ceiling: QuarantineCeiling,
}

impl PoolBounds {
    /// The pool's bounds from the process's `options`.
    pub fn new(options: ServeOptions, metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            in_flight: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            budget: BodyBudget::new(options.max_buffered_body_bytes),
            quarantine_ceiling: QuarantineCeiling::pooled(
                options.max_quarantine_records_per_second,
            ),
            options: Arc::new(options),
            tasks: TaskTracker::new(),
        }
    }

    /// Publish slots one endpoint may hold at once.
    pub fn in_flight_per_endpoint(&self) -> usize {
        self.options
            .max_in_flight_per_endpoint
            .unwrap_or_else(|| pool_share(self.options.max_in_flight))
            .clamp(1, self.options.max_in_flight.max(1))
    }

    /// Serves `pipeline` as one endpoint of the pool: its own publish slots
    /// and share of the body budget ([`pool_share`]), within the pool's.
    pub fn endpoint(&self, pipeline: EndpointPipeline) -> AppState {
        let snapshot = Snapshot::build(
            pipeline,
            &self.options,
            None,
            &self.metrics,
            &self.quarantine_ceiling,
        );
        AppState {
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
            metrics: Arc::clone(&self.metrics),
            options: Arc::clone(&self.options),
            in_flight: Arc::new(Semaphore::new(self.in_flight_per_endpoint())),
            pool_in_flight: Some(Arc::clone(&self.in_flight)),
            budget: self.budget.share(pool_share(self.budget.capacity())),
            tasks: self.tasks.clone(),
            quarantine_ceiling: self.quarantine_ceiling.clone(),
        }
    }

    /// The metrics requests are counted into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The tasks of every endpoint's requests.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Counts and audits a request that hyper refused before any handler
    /// saw it: no endpoint can be named.
    pub fn refused_by_transport(&self, peer: SocketAddr, reason: &'static str) {
        self.metrics
            .record(NO_ENDPOINT, "bad_request", Some(reason));
        tracing::info!(
            target: "hookwarden::audit",
            endpoint = NO_ENDPOINT,
            peer_ip = %peer.ip().to_canonical(),
            outcome = "bad_request",
            reason,
            "webhook delivery"
        );
    }

    /// Answers a request no endpoint of the pool serves (its host and path
    /// are nobody's): 404 `unknown_endpoint`, counted and audited under the
    /// endpoint [`NO_ENDPOINT`].
    pub fn unknown_endpoint(&self, peer: SocketAddr, request: &Request) -> Response {
        self.unrouted(NO_ENDPOINT, Outcome::UnknownEndpoint, peer, request)
    }

    /// Answers a request for the pool's endpoint `endpoint`, configured but
    /// not yet able to store (its stream could not be created: NATS away):
    /// 503 `store_unavailable` with `Retry-After`, as a dedicated receiver
    /// answers with NATS away, so the sender retries rather than giving up
    /// on a 404. Counted and audited under `endpoint`.
    pub fn endpoint_unavailable(
        &self,
        endpoint: &str,
        peer: SocketAddr,
        request: &Request,
    ) -> Response {
        self.unrouted(endpoint, Outcome::StreamNotReady, peer, request)
    }

    /// A request answered without an endpoint's pipeline, neither read nor
    /// verified.
    fn unrouted(
        &self,
        endpoint: &str,
        outcome: Outcome,
        peer: SocketAddr,
        request: &Request,
    ) -> Response {
        let request_id = new_request_id();
        self.metrics
            .record(endpoint, outcome.label(), outcome.reason());
        let host = request_host(request);
        tracing::info!(
            target: "hookwarden::audit",
            request_id,
            endpoint,
            peer_ip = %peer.ip().to_canonical(),
            method = %request.method(),
            host = host.as_deref(),
            path = request.uri().path(),
            outcome = outcome.label(),
            reason = outcome.reason(),
            "webhook delivery"
        );
        let mut response = outcome.into_response();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-request-id", value);
        }
        response
    }
}

/// The endpoint label of what no endpoint answered (a pool's unknown
/// routes, requests refused before routing).
pub const NO_ENDPOINT: &str = "-";

/// The host a request was sent to: HTTP/2's `:authority`, else `Host`
/// (as sent; [`crate::pool::routes::normalize_host`] routes it).
pub fn request_host(request: &Request) -> Option<String> {
    request
        .uri()
        .authority()
        .map(|authority| authority.as_str().to_owned())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
}

fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The receiver's routes: every request reaches `ingest`, which checks the
/// configured path and method against the current configuration (it may be
/// reloaded) and audits what it refuses; `GET /healthz` says the process
/// serves HTTP.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .fallback(ingest)
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, axum::Json(json!({"status": "ok"})))
}

/// How one request ended.
#[derive(Debug)]
enum Outcome {
    Stored(Stored),
    /// A verified provider handshake, answered; stored too when published.
    Handshake(Box<Handshake>, Option<Stored>),
    Rejected(Rejection),
    TooLarge,
    /// Within the body cap, but over the NATS server's `max_payload`.
    TooLargeForStore(PublishError),
    TimedOut,
    Unreadable,
    StoreUnavailable(PublishError),
    /// In a pool: the endpoint is configured but its stream could not be
    /// created yet (NATS away); retrying later helps.
    StreamNotReady,
    /// The stream (or the account) has no room; retrying later helps.
    StoreFull(PublishError),
    /// A trusted proxy sent forwarding headers that cannot be understood.
    ForwardedInvalid(ForwardedError),
    /// Behind-ingress mode and the client did not use HTTPS.
    HttpsRequired,
    /// The client is outside `spec.allowedSourceCidrs` and the ranges of
    /// `spec.allowedSources`.
    IpNotAllowed,
    RateLimited(limits::Limited),
    /// The publish slots or the body budget are all taken.
    Overloaded,
    /// Not the endpoint's path.
    NotFound,
    /// In a pool: no endpoint serves the request's host and path.
    UnknownEndpoint,
    /// Not one of the endpoint's methods; carries the `Allow` header.
    MethodNotAllowed(HeaderValue),
    /// `spec.request.contentTypes` does not list the request's media type.
    UnsupportedMediaType,
}

impl From<BodyError> for Outcome {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge => Self::TooLarge,
            BodyError::TimedOut => Self::TimedOut,
            BodyError::Unreadable => Self::Unreadable,
            BodyError::OverBudget => Self::Overloaded,
        }
    }
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
            Self::StoreUnavailable(_) | Self::StreamNotReady | Self::StoreFull(_) => {
                "store_unavailable"
            }
            Self::ForwardedInvalid(_) => "bad_request",
            Self::HttpsRequired | Self::IpNotAllowed => "forbidden",
            Self::RateLimited(_) => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::NotFound
            | Self::UnknownEndpoint
            | Self::MethodNotAllowed(_)
            | Self::UnsupportedMediaType => "bad_request",
        }
    }

    /// More detail than the reason, for the audit line (never a secret).
    fn error(&self) -> Option<String> {
        match self {
            Self::StoreUnavailable(err) | Self::TooLargeForStore(err) | Self::StoreFull(err) => {
                Some(err.to_string())
            }
            Self::ForwardedInvalid(err) => Some(err.to_string()),
            Self::RateLimited(limited) => Some(format!("{} limit", limited.scope.as_str())),
            _ => None,
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
            Self::StoreUnavailable(_) | Self::StreamNotReady => Some("store_unavailable"),
            Self::StoreFull(_) => Some("stream_full"),
            Self::ForwardedInvalid(_) => Some(ForwardedError::CODE),
            Self::HttpsRequired => Some("https_required"),
            Self::IpNotAllowed => Some("ip_not_allowed"),
            Self::RateLimited(_) => Some("rate_limited"),
            Self::Overloaded => Some("overloaded"),
            Self::NotFound => Some("not_found"),
            Self::UnknownEndpoint => Some("unknown_endpoint"),
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
                // Built by the verifier from constants and checked values; one
                // that is not a valid header is left out rather than failing.
                for (name, value) in handshake.headers {
                    if let (Ok(name), Ok(value)) = (
                        header::HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(&value),
                    ) {
                        headers.insert(name, value);
                    }
                }
                response
            }
            // The key could not be fetched: not the sender's fault, and
            // a retry (which the providers make on a 5xx) may succeed.
            Self::Rejected(Rejection::KeyUnavailable) => {
                let mut response = error(StatusCode::SERVICE_UNAVAILABLE, reason);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                response
            }
            Self::Rejected(_) => error(StatusCode::UNAUTHORIZED, reason),
            Self::TooLarge | Self::TooLargeForStore(_) => {
                error(StatusCode::PAYLOAD_TOO_LARGE, reason)
            }
            Self::TimedOut => error(StatusCode::REQUEST_TIMEOUT, reason),
            Self::Unreadable => error(StatusCode::BAD_REQUEST, reason),
            Self::StoreUnavailable(_)
            | Self::StreamNotReady
            | Self::StoreFull(_)
            | Self::Overloaded => {
                let mut response = error(StatusCode::SERVICE_UNAVAILABLE, reason);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                response
            }
            Self::ForwardedInvalid(_) => error(StatusCode::BAD_REQUEST, reason),
            Self::NotFound | Self::UnknownEndpoint => error(StatusCode::NOT_FOUND, reason),
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

/// Hands the request to a task of its own and answers with what it decides.
/// If the client goes away, this future is dropped but the task is not: the
/// delivery is still stored (or refused) and audited.
async fn ingest(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    ingest_into(state, peer, request).await
}

/// As the endpoint's router does: `request` to the endpoint `state`, in a
/// task of its own (a pool's router, once it found the endpoint).
pub async fn ingest_into(state: AppState, peer: SocketAddr, request: Request) -> Response {
    // Boxed: the request's state machine is kilobytes, and tokio moves a
    // task's future (and its stage, when the output is read) by value, about
    // a dozen copies per request; a box is moved as a pointer.
    let task = state
        .tasks
        .clone()
        .spawn(Box::pin(process(state.clone(), peer, request)));
    match task.await {
        Ok(response) => response,
        // Only a panic ends the task early; the audit line was not written.
        Err(err) => {
            tracing::error!(error = %err, "a request's task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
        }
    }
}

/// One request, from its path to its audit line.
async fn process(state: AppState, peer: SocketAddr, request: Request) -> Response {
    let started = Instant::now();
    let received_at = jiff::Timestamp::now();
    let _in_flight = InFlight::enter(&state.metrics);
    let request_id = new_request_id();
    let (parts, body) = request.into_parts();
    let mut facts = Facts::default();
    // One configuration for the whole request, even if a reload lands meanwhile.
    let snapshot = state.current.load_full();
    // Disabled (no cost beyond the callsite check) unless traces are on.
    // Attributes: no secret, header value or body, ever.
    let target = snapshot.publisher.target();
    let span = crate::trace_span!(
        "hookwarden.request",
        otel.kind = "server",
        otel.status_code = Empty,
        hookwarden.endpoint = target.endpoint.as_str(),
        hookwarden.provider = target.provider.as_str(),
        hookwarden.request_id = request_id.as_str(),
        http.request.method = parts.method.as_str(),
        url.path = parts.uri.path(),
        client.address = Empty,
        http.response.status_code = Empty,
        hookwarden.outcome = Empty,
        hookwarden.reason = Empty,
        hookwarden.body_size = Empty,
        messaging.destination.name = Empty,
        hookwarden.stream_sequence = Empty,
        hookwarden.duplicate = Empty,
    );
    telemetry::adopt_sender_context(&span, &parts.headers, snapshot.trust_incoming_traceparent);
    let outcome = if parts.uri.path() != &*snapshot.filter.path {
        Outcome::NotFound
    } else if let Err(outcome) = check_method(
        &snapshot.request,
        &parts.method,
        snapshot.verifier.answers_get(),
        snapshot.verifier.answers_options(),
        snapshot.verifier.answers_head(),
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
        .instrument(span.clone())
        .await
    };
    audit(
        &state,
        &snapshot,
        &parts,
        peer,
        &outcome,
        &facts,
        &request_id,
        started,
    );

    if !span.is_disabled() {
        record_outcome(&span, &snapshot, &outcome, &facts);
    }
    let reason = outcome.reason();
    let error = outcome.error();
    let mut response = outcome.into_response();
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    // 4xx only: a 503 is the store's trouble, not the sender's.
    if let (Some(quarantine), Some(reason)) = (&snapshot.quarantine, reason)
        && response.status().is_client_error()
    {
        quarantine.offer(&Refusal {
            request_id: &request_id,
            received_at,
            status: response.status().as_u16(),
            reason,
            client_ip: facts.client_ip,
            peer_ip: peer.ip(),
            head: Some(&parts),
            secret_headers: &snapshot.verifier.secret_headers(),
            plain_headers: &snapshot.verifier.plain_headers(),
            body_size: facts.body_size,
            body_sha256: facts.body_sha256.as_deref(),
            body: facts.body.as_deref(),
            error: error.as_deref(),
        });
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The request span's outcome attributes (the audit line's, less anything
/// the sender wrote: no header value, event type or delivery id).
fn record_outcome(span: &tracing::Span, snapshot: &Snapshot, outcome: &Outcome, facts: &Facts) {
    span.record("hookwarden.outcome", outcome.label());
    if let Some(reason) = outcome.reason() {
        span.record("hookwarden.reason", reason);
    }
    if let Some(ip) = facts.client_ip {
        span.record("client.address", tracing::field::display(ip.to_canonical()));
    }
    if let Some(size) = facts.body_size {
        span.record("hookwarden.body_size", size);
    }
    if let Outcome::Stored(stored) | Outcome::Handshake(_, Some(stored)) = outcome {
        span.record(
            "messaging.destination.name",
            snapshot.publisher.target().stream.as_str(),
        );
        span.record("hookwarden.stream_sequence", stored.sequence);
        span.record("hookwarden.duplicate", stored.duplicate);
    }
}

/// Counts the request and writes its audit line.
#[allow(clippy::too_many_arguments)]
fn audit(
    state: &AppState,
    snapshot: &Snapshot,
    parts: &axum::http::request::Parts,
    peer: SocketAddr,
    outcome: &Outcome,
    facts: &Facts,
    request_id: &str,
    started: Instant,
) {
    let verified = facts.verified.as_ref();
    let stored = match outcome {
        Outcome::Stored(stored) | Outcome::Handshake(_, Some(stored)) => Some(stored),
        _ => None,
    };
    let error = outcome.error();
    let endpoint = snapshot.publisher.target().endpoint.as_str();
    // Redacted headers (`headers`, `full`) and the body's start (`full`).
    let logged_headers = (snapshot.payload != PayloadLogging::None).then(|| {
        crate::redact::headers_json(
            &parts.headers,
            &snapshot.verifier.secret_headers(),
            &snapshot.verifier.plain_headers(),
        )
        .to_string()
    });
    // The body may be kept for the quarantine's prefix too: logged only
    // when the spec asks for it.
    let logged_body = facts
        .body
        .as_deref()
        .filter(|_| snapshot.payload == PayloadLogging::Full)
        .map(crate::redact::body_excerpt);
    state
        .metrics
        .record(endpoint, outcome.label(), outcome.reason());
    if let Outcome::RateLimited(limited) = outcome {
        state
            .metrics
            .record_rate_limited(endpoint, limited.scope.as_str());
    }
    tracing::info!(
        target: "hookwarden::audit",
        request_id,
        endpoint,
        // Formatted straight into the line, not into a `String` first.
        client_ip = facts.client_ip.map(tracing::field::display),
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
}

/// Counts a request as in flight until dropped.
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

/// The request pipeline: client IP, HTTPS requirement, allowlist, source
/// rate limit, media type, header precheck (all without the body), then the
/// body under a per-source bound, the signature, the global rate limit and
/// a publish slot, and the store.
async fn handle(
    state: &AppState,
    snapshot: &Snapshot,
    parts: &axum::http::request::Parts,
    body: Body,
    peer_ip: IpAddr,
    received_at: jiff::Timestamp,
    facts: &mut Facts,
) -> Outcome {
    let filter = &snapshot.filter;
    let headers = &parts.headers;
    let resolved = {
        let _step = crate::trace_span!("hookwarden.client_ip").entered();
        filter.proxies.resolve(peer_ip, headers)
    };
    let client = match resolved {
        Ok(client) => client,
        Err(err) => return Outcome::ForwardedInvalid(err),
    };
    facts.client_ip = Some(client.client_ip);
    let admitted = {
        let _step = crate::trace_span!("hookwarden.limits").entered();
        admit(filter, &client)
    };
    if let Err(outcome) = admitted {
        return outcome;
    }
    // A GET, OPTIONS or HEAD has no body, so its media type means nothing
    // (and Meta's GET, Event Grid's OPTIONS and Trello's HEAD handshakes
    // send none).
    if parts.method != Method::GET
        && parts.method != Method::OPTIONS
        && parts.method != Method::HEAD
        && !snapshot.request.allows_content_type(headers)
    {
        return Outcome::UnsupportedMediaType;
    }
    if body::declared_over(headers, snapshot.request.body_limit()) {
        return Outcome::TooLarge;
    }
    let head = Head {
        method: &parts.method,
        uri: &parts.uri,
        headers,
    };
    if let Err(rejection) = snapshot.verifier.precheck(&head) {
        return Outcome::Rejected(rejection);
    }
    let source_ip = client.client_ip;
    let Some(reading) = snapshot.body_reads.try_take(source_ip) else {
        return Outcome::RateLimited(limits::Limited {
            scope: limits::Scope::ConcurrentPerSource,
            retry_after_secs: 1,
        });
    };
    let read = match body::read(
        headers,
        body,
        snapshot.request.body_limit(),
        &state.options.body_pace,
        &state.budget,
    )
    .instrument(crate::trace_span!("hookwarden.body"))
    .await
    {
        Ok(read) => read,
        Err(err) => return err.into(),
    };
    drop(reading);
    let body = read.bytes.clone();
    facts.body_size = Some(body.len());
    // Hashed once: the audit line, the message id and the stored header.
    let sha256 = body_sha256(&body);
    facts.body_sha256 = Some(sha256.clone());
    let keep_for_quarantine = snapshot
        .quarantine
        .as_ref()
        .is_some_and(|q| q.target().body_prefix > 0);
    if snapshot.payload == PayloadLogging::Full || keep_for_quarantine {
        facts.body = Some(body.clone());
    }

    let incoming = Incoming {
        method: &parts.method,
        uri: &parts.uri,
        headers,
        body: &body,
    };
    let verifying = crate::trace_span!("hookwarden.verify");
    // A preset whose key is fetched (SNS, PayPal, Google) gets it into its
    // cache first; `check` stays synchronous.
    if let Some(fetching) = snapshot.verifier.prefetch(&incoming) {
        match tokio::time::timeout(crate::verify::PREFETCH_TIMEOUT, fetching)
            .instrument(verifying.clone())
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(rejection)) => return Outcome::Rejected(rejection),
            Err(_) => return Outcome::Rejected(Rejection::KeyUnavailable),
        }
    }
    let checked = verifying.in_scope(|| snapshot.verifier.check(&incoming));
    drop(verifying);
    let (verified, handshake) = match checked {
        Ok(Verdict::Deliver(verified)) => (verified, None),
        Ok(Verdict::Handshake(handshake)) => (handshake.verified.clone(), Some(handshake)),
        Err(rejection) => return Outcome::Rejected(rejection),
    };
    facts.verified = Some(verified.clone());
    if let Err(limited) = filter.limits.check_global() {
        return Outcome::RateLimited(limited);
    }
    // A handshake is answered, and stored only when the spec asks for it.
    if let Some(handshake) = handshake.as_ref().filter(|h| !h.publish) {
        return Outcome::Handshake(Box::new(handshake.clone()), None);
    }
    // Held until the delivery is stored (or refused): the publish may wait
    // for JetStream all that time.
    let Ok(_permit) = state.in_flight.try_acquire() else {
        return Outcome::Overloaded;
    };
    // In a pool, also one of all its endpoints' slots.
    let _pool_permit = match &state.pool_in_flight {
        Some(pool) => match pool.try_acquire() {
            Ok(permit) => Some(permit),
            Err(_) => return Outcome::Overloaded,
        },
        None => None,
    };
    let publisher = &snapshot.publisher;
    let publish_span = crate::trace_span!(
        "hookwarden.publish",
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.destination.name = publisher.target().stream.as_str(),
        hookwarden.stream_sequence = Empty,
        hookwarden.duplicate = Empty,
    );
    // Consumers continue the trace from the publish span: ours, never the
    // sender's unless trusted (the sender's is kept apart, as a claim).
    let sender_traceparent = crate::publish::checked_traceparent(
        headers.get("traceparent").and_then(|v| v.to_str().ok()),
    );
    let (ours, tracestate) = telemetry::trace_headers(&publish_span)
        .map_or((None, None), |h| (Some(h.traceparent), h.tracestate));
    let delivery = Delivery {
        message_id: crate::publish::message_id(verified.delivery_id.as_deref(), &sha256),
        body,
        body_sha256: sha256,
        event: verified.event,
        delivery_id: verified.delivery_id,
        received_at,
        source_ip,
        content_type: header_text(headers, &header::CONTENT_TYPE),
        content_encoding: header_text(headers, &header::CONTENT_ENCODING),
        traceparent: crate::publish::traceparent(
            ours,
            sender_traceparent.as_deref(),
            snapshot.trust_incoming_traceparent,
        ),
        tracestate,
        sender_traceparent,
        provider_headers: crate::provider_headers::pick(
            &snapshot.publisher.target().store_headers,
            headers,
        ),
    };
    drop(read);
    let publishing = Instant::now();
    let published = publisher
        .publish(&delivery)
        .instrument(publish_span.clone())
        .await;
    if let Ok(stored) = &published {
        publish_span.record("hookwarden.stream_sequence", stored.sequence);
        publish_span.record("hookwarden.duplicate", stored.duplicate);
    }
    state
        .metrics
        .publish_seconds
        .get_or_create(&EndpointLabels {
            endpoint: publisher.target().endpoint.clone(),
        })
        .observe(publishing.elapsed().as_secs_f64());
    match published {
        Ok(stored) => match handshake {
            Some(handshake) => Outcome::Handshake(Box::new(handshake), Some(stored)),
            None => Outcome::Stored(stored),
        },
        Err(err @ PublishError::TooLarge(_)) => Outcome::TooLargeForStore(err),
        Err(err @ PublishError::Full(_)) => Outcome::StoreFull(err),
        Err(err) => Outcome::StoreUnavailable(err),
    }
}

/// A header's value as text, if it is.
fn header_text(headers: &axum::http::HeaderMap, name: &header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The endpoint's methods (`spec.request.methods`, `POST` by default); any
/// other is answered 405 with `Allow` listing them. A `GET` delivery goes
/// through the whole pipeline like any other (empty body, verified). A
/// preset whose provider sends a `GET` handshake (Meta's `hub.mode=subscribe`)
/// also takes `GET`, whatever the list says: its verifier answers or refuses it.
/// Likewise `OPTIONS` for a preset whose provider sends the CloudEvents
/// abuse-protection handshake (Azure Event Grid), and `HEAD` for one whose
/// provider checks the URL with it before creating a webhook (Trello).
fn check_method(
    rules: &RequestRules,
    method: &Method,
    answers_get: bool,
    answers_options: bool,
    answers_head: bool,
) -> Result<(), Outcome> {
    if rules.allows_method(method)
        || (answers_get && method == Method::GET)
        || (answers_options && method == Method::OPTIONS)
        || (answers_head && method == Method::HEAD)
    {
        Ok(())
    } else {
        Err(Outcome::MethodNotAllowed(rules.allow().clone()))
    }
}

/// The checks on the client before anything is read, in order: HTTPS
/// (behind an ingress), allowlist, the source's rate limit. The rate limit
/// comes last so requests that are refused anyway do not use up a bucket.
fn admit(filter: &SourceFilter, client: &ClientAddr) -> Result<(), Outcome> {
    if filter.require_forwarded_https && !client.forwarded_https() {
        return Err(Outcome::HttpsRequired);
    }
    if !filter.allowed.is_empty() && !filter.allowed.contains(client.client_ip) {
        return Err(Outcome::IpNotAllowed);
    }
    filter
        .limits
        .check_source(client.client_ip)
        .map_err(Outcome::RateLimited)
}

/// How long request tasks that outlived their connection may still take at
/// shutdown, once every connection drained (a publish waits at most
/// `--publish-timeout-secs`, 3 s by default). With the transport's 20 s it
/// stays within Kubernetes' default 30 s grace period.
pub const TASK_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves on `listener` through `transport` (TLS or plain, with its
/// connection limits) until `shutdown` completes, then finishes the requests
/// in flight (so an accepted delivery still gets its answer, and one whose
/// client went away is still stored and audited), for at most the
/// transport's drain timeout plus [`TASK_DRAIN_TIMEOUT`]. Taking a bound
/// listener lets tests bind port 0 and run the real server.
pub async fn serve<F>(
    state: AppState,
    listener: tokio::net::TcpListener,
    transport: crate::transport::Transport,
    shutdown: F,
) -> crate::transport::Stopped
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let tasks = state.tasks().clone();
    let proxies = peer_policy(&state);
    serve_router(router(state), tasks, proxies, listener, transport, shutdown).await
}

/// What the transport asks about peers (the endpoint's trusted proxies) and
/// tells of requests it refused.
pub fn peer_policy(state: &AppState) -> crate::transport::PeerPolicy {
    let trusting = state.clone();
    let refusing = state.clone();
    crate::transport::PeerPolicy::new(
        move |peer| trusting.trusts_proxy(peer),
        move |peer, reason| refusing.refused_by_transport(peer, reason),
    )
}

/// As [`serve`], for any router whose requests run in `tasks` (a pool's:
/// [`crate::pool::serve::router`]), the transport asking `proxies` about
/// peers.
pub async fn serve_router<F>(
    router: Router,
    tasks: TaskTracker,
    proxies: crate::transport::PeerPolicy,
    listener: tokio::net::TcpListener,
    transport: crate::transport::Transport,
    shutdown: F,
) -> crate::transport::Stopped
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let stopped = transport.serve(router, listener, proxies, shutdown).await;
    tasks.close();
    if stopped == crate::transport::Stopped::DrainTimedOut {
        // The drain's bound is spent; what still runs is abandoned.
        return stopped;
    }
    if tokio::time::timeout(TASK_DRAIN_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            tasks = tasks.len(),
            "requests still running after the drain; stopping anyway"
        );
        return crate::transport::Stopped::DrainTimedOut;
    }
    stopped
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn an_unavailable_key_is_a_503_to_retry_and_a_foreign_key_url_a_401() {
        let response = Outcome::Rejected(Rejection::KeyUnavailable).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        for rejection in [Rejection::KeyUrlNotAllowed, Rejection::SenderNotAllowed] {
            assert_eq!(
                Outcome::Rejected(rejection).into_response().status(),
                StatusCode::UNAUTHORIZED
            );
        }
    }

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
        AppState::new(
            pipeline(verifier, Publisher::new(client, target, ack_timeout)),
            ServeOptions::default(),
            Arc::new(Metrics::default()),
        )
    }

    fn pipeline(verifier: Box<dyn Verifier>, publisher: Publisher) -> EndpointPipeline {
        EndpointPipeline {
            path: "/".to_owned(),
            verifier,
            publisher,
            proxies: TrustedProxies::default(),
            allowed: Networks::default(),
            limits: None,
            request: RequestRules::default(),
            payload: PayloadLogging::None,
            trust_incoming_traceparent: false,
        }
    }

    /// The offline state with `change` applied to its pipeline.
    async fn offline_with(
        options: ServeOptions,
        metrics: Arc<Metrics>,
        change: impl FnOnce(&mut EndpointPipeline),
    ) -> AppState {
        let state = offline_state_waiting(Duration::from_millis(100)).await;
        let snapshot = state.current.load_full();
        let verifier = crate::verify::for_provider(
            hookwarden_crds::Provider::Github,
            vec![crate::secrets::Secret::from(&b"secret"[..])],
            None,
        )
        .expect("verifier");
        let mut pipeline = pipeline(verifier, snapshot.publisher.clone());
        change(&mut pipeline);
        AppState::new(pipeline, options, metrics)
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

        let publisher = state.current.load().publisher.clone();
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
            trust_incoming_traceparent: false,
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
        let waiting = offline_state_waiting(Duration::from_secs(2)).await;
        let publisher = waiting.current.load().publisher.clone();
        let verifier = crate::verify::for_provider(
            hookwarden_crds::Provider::Github,
            vec![crate::secrets::Secret::from(&b"secret"[..])],
            None,
        )
        .expect("verifier");
        let state = AppState::new(
            pipeline(verifier, publisher),
            ServeOptions {
                max_in_flight: 1,
                ..ServeOptions::default()
            },
            Arc::new(Metrics::default()),
        );
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
            offline_with(ServeOptions::default(), Arc::clone(&metrics), |p| {
                p.path = "/hooks/github".to_owned();
            })
            .await,
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
        let state = offline_with(ServeOptions::default(), Arc::clone(&metrics), |_| {}).await;
        let publisher = state.current.load().publisher.clone();
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
            trust_incoming_traceparent: false,
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
    async fn an_options_handshake_reaches_a_preset_that_answers_it() {
        // Event Grid's CloudEvents handshake is an OPTIONS without a body or
        // media type; the endpoint takes POST of JSON only.
        let metrics = Arc::new(Metrics::default());
        let state = offline_with(ServeOptions::default(), Arc::clone(&metrics), |_| {}).await;
        let publisher = state.current.load().publisher.clone();
        let spec = hookwarden_crds::RequestSpec {
            methods: Vec::new(),
            content_types: vec!["application/json".to_owned()],
            max_body_bytes: None,
            store_headers: Vec::new(),
        };
        state.replace(EndpointPipeline {
            path: "/".to_owned(),
            verifier: crate::verify::for_provider(
                hookwarden_crds::Provider::AzureEventGrid,
                vec![crate::secrets::Secret::from(&b"secret"[..])],
                None,
            )
            .expect("verifier"),
            publisher,
            proxies: TrustedProxies::default(),
            allowed: Networks::default(),
            limits: None,
            request: RequestRules::from_spec(Some(&spec), DEFAULT_BODY_LIMIT).expect("rules"),
            payload: PayloadLogging::None,
            trust_incoming_traceparent: false,
        });
        let app = router(state);
        let send = |method: &str, query: &str| {
            let mut request = Request::builder().method(method).uri(format!("/?{query}"));
            for (name, value) in crate::verify::azure_event_grid::options_headers() {
                request = request.header(name, value);
            }
            let mut request = request.body(Body::empty()).expect("request");
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
            app.clone().oneshot(request)
        };
        let query = crate::verify::azure_event_grid::secret_query("secret");
        let response = send("OPTIONS", &query).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers().get("webhook-allowed-origin"),
            Some(&HeaderValue::from_static("eventgrid.azure.net"))
        );
        assert_eq!(
            response.headers().get("webhook-allowed-rate"),
            Some(&HeaderValue::from_static("*"))
        );
        let refused = send("OPTIONS", "code=wrong").await.expect("response");
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert!(refused.headers().get("webhook-allowed-origin").is_none());
        // Other methods are still refused; GET is not Event Grid's.
        let get = send("GET", &query).await.expect("response");
        assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
        let text = metrics.render();
        assert!(
            text.contains(r#"hookwarden_requests_total{endpoint="ci/gh",outcome="handshake"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_head_handshake_reaches_a_preset_that_answers_it() {
        // Trello checks the callback URL with a HEAD, unsigned, before it
        // creates a webhook; the endpoint takes POST of JSON only.
        let metrics = Arc::new(Metrics::default());
        let state = offline_with(ServeOptions::default(), Arc::clone(&metrics), |_| {}).await;
        let publisher = state.current.load().publisher.clone();
        let spec = hookwarden_crds::RequestSpec {
            methods: Vec::new(),
            content_types: vec!["application/json".to_owned()],
            max_body_bytes: None,
            store_headers: Vec::new(),
        };
        let pipeline = |provider| EndpointPipeline {
            path: "/".to_owned(),
            verifier: crate::verify::for_preset(
                provider,
                vec![crate::secrets::Secret::from(&b"secret"[..])],
                None,
                crate::verify::PresetOptions::for_tests("https://hooks.example.com/"),
            )
            .expect("verifier"),
            publisher: publisher.clone(),
            proxies: TrustedProxies::default(),
            allowed: Networks::default(),
            limits: None,
            request: RequestRules::from_spec(Some(&spec), DEFAULT_BODY_LIMIT).expect("rules"),
            payload: PayloadLogging::None,
            trust_incoming_traceparent: false,
        };
        state.replace(pipeline(hookwarden_crds::Provider::Trello));
        let send = |app: Router, method: &str| {
            let mut request = Request::builder()
                .method(method)
                .uri("/")
                .body(Body::empty())
                .expect("request");
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
            app.oneshot(request)
        };
        let response = send(router(state.clone()), "HEAD").await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let answer = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert!(answer.is_empty(), "a HEAD answer has no body: {answer:?}");
        // A POST still needs its signature; other methods are still refused.
        let post = send(router(state.clone()), "POST").await.expect("response");
        assert_eq!(post.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let get = send(router(state.clone()), "GET").await.expect("response");
        assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
        // A preset that does not answer HEAD refuses it before anything else.
        state.replace(pipeline(hookwarden_crds::Provider::Square));
        let square = send(router(state.clone()), "HEAD").await.expect("response");
        assert_eq!(square.status(), StatusCode::METHOD_NOT_ALLOWED);
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
            store_headers: Vec::new(),
        };
        let rules = RequestRules::from_spec(Some(&spec), DEFAULT_BODY_LIMIT).expect("rules");
        let app = router(
            offline_with(ServeOptions::default(), Arc::new(Metrics::default()), |p| {
                p.request = rules;
            })
            .await,
        );
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
        let app = router(offline_with(ServeOptions::default(), Arc::clone(&metrics), |_| {}).await);
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

    #[tokio::test]
    async fn a_pool_endpoint_over_its_share_of_slots_leaves_the_others_theirs() {
        // A's one slot waits on a store that never acknowledges: A's next
        // delivery is refused at once, B's still goes to the store.
        let waiting = offline_state_waiting(Duration::from_secs(2)).await;
        let publisher = waiting.current.load().publisher.clone();
        let verifier = || {
            crate::verify::for_provider(
                hookwarden_crds::Provider::Github,
                vec![crate::secrets::Secret::from(&b"secret"[..])],
                None,
            )
            .expect("verifier")
        };
        let bounds = PoolBounds::new(
            ServeOptions {
                max_in_flight: 8,
                max_in_flight_per_endpoint: Some(1),
                ..ServeOptions::default()
            },
            Arc::new(Metrics::default()),
        );
        assert_eq!(bounds.in_flight_per_endpoint(), 1);
        let a = bounds.endpoint(pipeline(verifier(), publisher.clone()));
        let b = bounds.endpoint(pipeline(verifier(), publisher));
        let first = tokio::spawn(router(a.clone()).oneshot(signed_request(b"secret", "{}")));
        for _ in 0..500 {
            if a.in_flight.available_permits() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(a.in_flight.available_permits(), 0, "A's slot is taken");
        assert_eq!(
            bounds.in_flight.available_permits(),
            7,
            "and one of the pool's"
        );
        let second = router(a)
            .oneshot(signed_request(b"secret", "{}"))
            .await
            .expect("response");
        let body = second.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body.as_ref(), br#"{"error":"overloaded"}"#);
        let other = router(b)
            .oneshot(signed_request(b"secret", "{}"))
            .await
            .expect("response");
        let body = other.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(
            body.as_ref(),
            br#"{"error":"store_unavailable"}"#,
            "B reached its store (offline here), not A's bound"
        );
        first.await.expect("task").expect("response");
    }

    #[test]
    fn a_pool_share_is_a_quarter_and_at_least_one() {
        assert_eq!(pool_share(256), 64);
        assert_eq!(pool_share(3), 1);
        assert_eq!(pool_share(0), 1);
        let bounds = PoolBounds::new(
            ServeOptions {
                max_in_flight: 4,
                max_in_flight_per_endpoint: Some(100),
                ..ServeOptions::default()
            },
            Arc::new(Metrics::default()),
        );
        assert_eq!(bounds.in_flight_per_endpoint(), 4, "never above the pool's");
    }

    #[test]
    fn body_errors_have_their_status_and_reason() {
        for (err, status, reason) in [
            (
                BodyError::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
            ),
            (
                BodyError::TimedOut,
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
            ),
            (
                BodyError::Unreadable,
                StatusCode::BAD_REQUEST,
                "body_unreadable",
            ),
            (
                BodyError::OverBudget,
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
            ),
        ] {
            let outcome = Outcome::from(err);
            assert_eq!(outcome.reason(), Some(reason));
            assert_eq!(outcome.into_response().status(), status);
        }
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
        // A full stream has its own reason, and is retried like an outage.
        let full = Outcome::StoreFull(PublishError::Full("maximum bytes exceeded".to_owned()));
        assert_eq!(full.reason(), Some("stream_full"));
        let response = full.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }
}
