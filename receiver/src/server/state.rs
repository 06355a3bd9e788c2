//! What the request handlers share: the endpoint's hot-swappable
//! configuration ([`AppState`], one [`Snapshot`] per version) and, in a
//! pool, the bounds over all its endpoints ([`PoolBounds`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use hookwarden_crds::PayloadLogging;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::body::BodyBudget;
use crate::clientip::{Networks, TrustedProxies};
use crate::limits::{PerSourceSlots, RateLimits, pool_share};
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::quarantine::{Quarantine, QuarantineCeiling, Refusal};
use crate::request::RequestRules;
use crate::verify::Verifier;

use super::names::{NO_ENDPOINT, new_request_id, request_host};
use super::options::ServeOptions;
use super::outcome::Outcome;

/// What the request handlers of one endpoint share.
///
/// The endpoint's configuration sits behind an [`ArcSwap`]: a reload
/// ([`AppState::replace`]) swaps it atomically, requests in flight finish
/// with the version they started with, and new requests see the new one;
/// no connection is dropped. In a pool each endpoint has its own
/// ([`PoolBounds::endpoint`]), its bounds a share of the pool's.
#[derive(Debug, Clone)]
pub struct AppState {
    pub(super) current: Arc<ArcSwap<Snapshot>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) options: Arc<ServeOptions>,
    /// Verified deliveries being stored at once; bounds the publishes
    /// waiting for JetStream. Shared by every configuration version (in a
    /// pool: this endpoint's share).
    pub(super) in_flight: Arc<Semaphore>,
    /// In a pool: the publish slots of all its endpoints together.
    pub(super) pool_in_flight: Option<Arc<Semaphore>>,
    /// The bytes of bodies held at once (in a pool: this endpoint's share
    /// of the pool's, [`BodyBudget::share`]).
    pub(super) budget: BodyBudget,
    /// Every request's task, so a shutdown can wait for deliveries whose
    /// client already went away.
    pub(super) tasks: TaskTracker,
    /// The process's quarantine records per second (in a pool: shared by
    /// all its endpoints).
    pub(super) quarantine_ceiling: QuarantineCeiling,
}

/// One version of the endpoint's configuration.
#[derive(Debug, Clone)]
pub(super) struct Snapshot {
    pub(super) verifier: Arc<dyn Verifier>,
    pub(super) publisher: Publisher,
    pub(super) filter: SourceFilter,
    /// Methods, media types and body cap (`spec.request`).
    pub(super) request: Arc<RequestRules>,
    /// How much of each request the audit line carries (`spec.logging`).
    pub(super) payload: PayloadLogging,
    /// Bodies being read per source (keyed like the rate limits).
    pub(super) body_reads: Arc<PerSourceSlots>,
    /// Where refused requests are recorded (`spec.quarantine`).
    pub(super) quarantine: Option<Arc<Quarantine>>,
    /// Continue a sender's `traceparent` instead of only linking to it:
    /// `spec.traces.trustIncomingTraceparent` or the process's
    /// `--trust-incoming-traceparent`.
    pub(super) trust_incoming_traceparent: bool,
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
pub(super) struct SourceFilter {
    /// The one path deliveries are accepted on (`spec.ingress.path`, `/` by
    /// default): anything else is a scanner or a misconfigured provider.
    pub(super) path: Arc<str>,
    pub(super) proxies: Arc<TrustedProxies>,
    pub(super) allowed: Arc<Networks>,
    pub(super) limits: Arc<RateLimits>,
    pub(super) require_forwarded_https: bool,
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
    pub(super) in_flight: Arc<Semaphore>,
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
