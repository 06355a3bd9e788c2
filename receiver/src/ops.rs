//! The operations port: `/healthz`, `/readyz` and `/metrics`, served apart
//! from the public webhook listener so probes and scrapes are never exposed
//! to the internet and never compete with deliveries for rate limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::ranges::age::{ListAgeCollector, ListFetchTimes};

use crate::transport::TransportStats;

/// Labels of a request outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `<namespace>/<name>` of the endpoint.
    pub endpoint: String,
    /// `stored`, `duplicate`, `rejected`, `too_large`, ...
    pub outcome: String,
}

/// Labels of a refusal.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `<namespace>/<name>` of the endpoint.
    pub endpoint: String,
    /// The stable reason code, e.g. `signature_mismatch`.
    pub reason: String,
}

/// Labels of a rate-limited request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    /// `<namespace>/<name>` of the endpoint.
    pub endpoint: String,
    /// Which limit refused it: `per_source_ip` or `global`.
    pub scope: String,
}

/// Labels of a quarantine record's fate.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuarantineLabels {
    /// `<namespace>/<name>` of the endpoint.
    pub endpoint: String,
    /// `recorded`, `dropped_rate`, `dropped_queue` or `failed`.
    pub result: String,
}

/// Labels of a pool endpoint's configuration state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolEndpointLabels {
    /// The endpoint's name (its file in the pool's directory).
    pub endpoint: String,
    /// `serving`, `failed` or `conflict`.
    pub state: String,
}

/// Labels naming only the endpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// `<namespace>/<name>` of the endpoint.
    pub endpoint: String,
}

/// The receiver's Prometheus metrics. Label values are bounded: endpoint
/// names come from configuration and reasons from a fixed set of codes,
/// never from request input.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by endpoint and outcome.
    pub requests: Family<OutcomeLabels, Counter>,
    /// Refusals by endpoint and reason code.
    pub refusals: Family<ReasonLabels, Counter>,
    /// Rate-limited requests by endpoint and the limit that refused them.
    pub rate_limited: Family<ScopeLabels, Counter>,
    /// Time from publish to JetStream's acknowledgement.
    pub publish_seconds: Family<EndpointLabels, Histogram>,
    /// Requests being handled right now.
    pub in_flight: Gauge,
    /// 1 while the configuration on disk differs from the one served
    /// because it could not be loaded.
    pub config_stale: Gauge,
    /// Configuration reloads by result (`applied`, `failed`).
    pub config_reloads: Family<ResultLabels, Counter>,
    /// 1 while NATS is disconnected.
    pub nats_disconnected: Gauge,
    /// Records of refused requests by endpoint and fate (`spec.quarantine`).
    pub quarantine: Family<QuarantineLabels, Counter>,
    /// In a pool: 1 for each endpoint file's configuration state.
    pub pool_endpoint_config: Family<PoolEndpointLabels, Gauge>,
}

/// Labels of an attempt's result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// What happened, e.g. `applied` or `failed`.
    pub result: String,
}

/// Exposes the transport's own counters (kept as atomics in the transport,
/// read at scrape time).
#[derive(Debug)]
struct TransportCollector(Arc<TransportStats>);

impl Collector for TransportCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counters = [
            (
                "tls_handshake_failures",
                "Failed TLS handshakes on the webhook listener (plain HTTP, old protocols, scanners)",
                self.0.handshake_failures(),
            ),
            (
                "tls_certificate_reloads",
                "TLS certificates reloaded from disk",
                self.0.cert_reloads(),
            ),
            (
                "tls_certificate_reload_failures",
                "TLS certificate reloads refused (unreadable, unparsable or mismatched files)",
                self.0.cert_reload_failures(),
            ),
            (
                "connections_idle_closed",
                "Connections closed for sending no request within the first-request or idle timeout",
                self.0.idle_closed(),
            ),
            (
                "connections_refused_per_source",
                "Connections refused because their source already held the most it may",
                self.0.refused_per_source(),
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let open = prometheus_client::metrics::gauge::ConstGauge::new(
            i64::try_from(self.0.open()).unwrap_or(i64::MAX),
        );
        let metric = encoder.encode_descriptor(
            "connections_open",
            "Connections open on the webhook listener",
            None,
            open.metric_type(),
        )?;
        open.encode(metric)?;
        Ok(())
    }
}

fn publish_histogram() -> Histogram {
    // 0.25 ms to ~4 s: a loopback JetStream ack takes well under a
    // millisecond with memory storage and a few with file storage.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.000_25, 2.0, 15,
    ))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Metrics {
    /// Adds `source_range_list_age_seconds{list}` for the published lists
    /// a standalone receiver keeps itself ([`crate::ranges::local`]).
    #[must_use]
    pub fn with_source_lists(mut self, lists: Arc<dyn ListFetchTimes>) -> Self {
        self.registry
            .register_collector(Box::new(ListAgeCollector(lists)));
        self
    }

    /// The metrics, including the transport's counters when given.
    pub fn new(transport: Option<Arc<TransportStats>>) -> Self {
        let mut registry = Registry::with_prefix("hookwarden");
        let requests = Family::<OutcomeLabels, Counter>::default();
        let refusals = Family::<ReasonLabels, Counter>::default();
        let rate_limited = Family::<ScopeLabels, Counter>::default();
        let publish_seconds = Family::<EndpointLabels, Histogram>::new_with_constructor(
            publish_histogram as fn() -> Histogram,
        );
        let in_flight = Gauge::default();
        let config_stale = Gauge::default();
        let config_reloads = Family::<ResultLabels, Counter>::default();
        let nats_disconnected = Gauge::default();
        let quarantine = Family::<QuarantineLabels, Counter>::default();
        let pool_endpoint_config = Family::<PoolEndpointLabels, Gauge>::default();
        registry.register(
            "requests",
            "Webhook requests by endpoint and outcome",
            requests.clone(),
        );
        registry.register(
            "refusals",
            "Refused webhook requests by endpoint and reason code",
            refusals.clone(),
        );
        registry.register(
            "rate_limited",
            "Rate-limited webhook requests by endpoint and limit (per_source_ip, global)",
            rate_limited.clone(),
        );
        registry.register(
            "publish_seconds",
            "Time from JetStream publish to its acknowledgement",
            publish_seconds.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Webhook requests being handled",
            in_flight.clone(),
        );
        registry.register(
            "config_stale",
            "1 while the configuration on disk could not be loaded and an older one is served",
            config_stale.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads by result (applied, failed)",
            config_reloads.clone(),
        );
        registry.register(
            "nats_disconnected",
            "1 while the NATS connection is down",
            nats_disconnected.clone(),
        );
        registry.register(
            "quarantine_records",
            "Records of refused requests by endpoint and result (recorded, dropped_rate, dropped_queue, failed)",
            quarantine.clone(),
        );
        registry.register(
            "pool_endpoint_config",
            "In a pool: 1 for the state of each endpoint's configuration (serving, failed: its last good one is served if any, conflict: its route is another's)",
            pool_endpoint_config.clone(),
        );
        registry.register(
            "trace_export_failed_spans",
            "Spans the OTLP endpoint refused or did not take (traces on only); deliveries are not affected",
            crate::telemetry::export_failed_spans(),
        );
        if let Some(stats) = transport {
            registry.register_collector(Box::new(TransportCollector(stats)));
        }
        Self {
            quarantine,
            pool_endpoint_config,
            registry,
            requests,
            refusals,
            rate_limited,
            publish_seconds,
            in_flight,
            config_stale,
            config_reloads,
            nats_disconnected,
        }
    }

    /// Counts one finished request; `reason` is set for refusals.
    pub fn record(&self, endpoint: &str, outcome: &str, reason: Option<&str>) {
        self.requests
            .get_or_create(&OutcomeLabels {
                endpoint: endpoint.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        if let Some(reason) = reason {
            self.refusals
                .get_or_create(&ReasonLabels {
                    endpoint: endpoint.to_owned(),
                    reason: reason.to_owned(),
                })
                .inc();
        }
    }

    /// Counts one request refused by the `scope` rate limit
    /// ([`crate::limits::Scope::as_str`]).
    pub fn record_rate_limited(&self, endpoint: &str, scope: &str) {
        self.rate_limited
            .get_or_create(&ScopeLabels {
                endpoint: endpoint.to_owned(),
                scope: scope.to_owned(),
            })
            .inc();
    }

    /// Counts one configuration reload attempt (`applied` or `failed`).
    pub fn record_reload(&self, result: &str) {
        self.config_reloads
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Sets the pool endpoint `endpoint`'s configuration state (`None`:
    /// its file is gone), clearing the others.
    pub fn set_pool_endpoint_state(&self, endpoint: &str, state: Option<&str>) {
        for other in crate::pool::ConfigState::ALL {
            let labels = PoolEndpointLabels {
                endpoint: endpoint.to_owned(),
                state: other.as_str().to_owned(),
            };
            if Some(other.as_str()) == state {
                self.pool_endpoint_config.get_or_create(&labels).set(1);
            } else {
                self.pool_endpoint_config.remove(&labels);
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Something `/metrics` can show: the receiver's [`Metrics`], or the
/// forwarder's ([`crate::forward::metrics::ForwardMetrics`]).
pub trait Exposition: std::fmt::Debug + Send + Sync {
    /// The Prometheus text exposition of every metric.
    fn render(&self) -> String;
}

impl Exposition for Metrics {
    fn render(&self) -> String {
        Metrics::render(self)
    }
}

/// What `/readyz` reports: ready only when the configuration is loaded (with
/// its secrets), NATS is connected and the endpoint's stream exists, so a
/// load balancer sends deliveries only to a replica that can store them.
///
/// A configuration on disk that could not be loaded (a broken rotation, or
/// NATS away while it was tried) is *reported* but does not make the
/// replica unready: it still serves the previous configuration, and failing
/// readiness on every replica at once for one bad Secret would turn a
/// rotation mistake into an outage. The metric `hookwarden_config_stale`
/// and `/readyz`'s text say it.
#[derive(Debug, Clone)]
pub struct Readiness {
    config_loaded: Arc<AtomicBool>,
    nats: Option<async_nats::Client>,
    /// Why the served configuration is not the one on disk.
    stale: Arc<std::sync::Mutex<Option<String>>>,
    /// Why the endpoint's stream cannot take deliveries.
    stream: Arc<std::sync::Mutex<Option<String>>>,
    /// Why the forwarder's consumer cannot be read.
    consumer: Arc<std::sync::Mutex<Option<String>>>,
}

impl Readiness {
    /// Not ready until [`Readiness::set_config_loaded`] and a connected client.
    pub fn new(nats: Option<async_nats::Client>) -> Self {
        Self {
            config_loaded: Arc::new(AtomicBool::new(false)),
            nats,
            stale: Arc::default(),
            stream: Arc::default(),
            consumer: Arc::default(),
        }
    }

    /// Marks the configuration (manifest and secrets) as loaded or not.
    pub fn set_config_loaded(&self, loaded: bool) {
        self.config_loaded.store(loaded, Ordering::Release);
    }

    /// Records why the configuration on disk is not served (`None`: it is).
    pub fn set_config_stale(&self, reason: Option<String>) {
        *lock(&self.stale) = reason;
    }

    /// Records why the stream cannot take deliveries (`None`: it can).
    pub fn set_stream_problem(&self, problem: Option<String>) {
        *lock(&self.stream) = problem;
    }

    /// Records why the forwarder's consumer cannot be read (`None`: it
    /// can).
    pub fn set_consumer_problem(&self, problem: Option<String>) {
        *lock(&self.consumer) = problem;
    }

    /// Why the served configuration is not the one on disk, if it is not.
    pub fn config_stale(&self) -> Option<String> {
        lock(&self.stale).clone()
    }

    /// Why the receiver is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if !self.config_loaded.load(Ordering::Acquire) {
            return Some("config_not_loaded");
        }
        match &self.nats {
            Some(client)
                if client.connection_state() == async_nats::connection::State::Connected => {}
            _ => return Some("nats_disconnected"),
        }
        if lock(&self.stream).is_some() {
            return Some("stream_missing");
        }
        if lock(&self.consumer).is_some() {
            return Some("consumer_unavailable");
        }
        None
    }

    /// The `/readyz` answer: status and text.
    fn answer(&self) -> (StatusCode, String) {
        match self.not_ready_reason() {
            None => match self.config_stale() {
                None => (StatusCode::OK, "ready\n".to_owned()),
                Some(stale) => (
                    StatusCode::OK,
                    format!("ready; config_stale: serving the previous configuration: {stale}\n"),
                ),
            },
            Some("stream_missing") => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not ready: stream_missing: {}\n",
                    lock(&self.stream).clone().unwrap_or_default()
                ),
            ),
            Some("consumer_unavailable") => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not ready: consumer_unavailable: {}\n",
                    lock(&self.consumer).clone().unwrap_or_default()
                ),
            ),
            Some(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            ),
        }
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Clone)]
struct OpsState {
    metrics: Arc<dyn Exposition>,
    readiness: Readiness,
}

/// `/healthz` (the process serves HTTP), `/readyz` (it can take deliveries)
/// and `/metrics` (Prometheus text format).
pub fn router(metrics: Arc<dyn Exposition>, readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(OpsState { metrics, readiness })
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    state.readiness.answer()
}

async fn metrics_text(State(state): State<OpsState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get_text(router: Router, path: &str) -> (StatusCode, String) {
        let response = router
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn metrics_count_outcomes_and_reasons() {
        let metrics = Arc::new(Metrics::default());
        metrics.record("ci/github", "stored", None);
        metrics.record("ci/github", "rejected", Some("signature_mismatch"));
        metrics.record("ci/github", "rejected", Some("signature_mismatch"));
        metrics.record_rate_limited("ci/github", "per_source_ip");
        metrics.record_rate_limited("ci/github", "per_source_ip");
        metrics.record_rate_limited("ci/github", "global");
        let (status, text) = get_text(router(metrics, Readiness::new(None)), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains(r#"hookwarden_requests_total{endpoint="ci/github",outcome="stored"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"hookwarden_refusals_total{endpoint="ci/github",reason="signature_mismatch"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains("hookwarden_requests_in_flight 0"), "{text}");
        for (scope, count) in [("per_source_ip", 2), ("global", 1)] {
            let line = format!(
                "hookwarden_rate_limited_total{{endpoint=\"ci/github\",scope=\"{scope}\"}} {count}"
            );
            assert!(text.contains(&line), "{line} in {text}");
        }
    }

    #[tokio::test]
    async fn not_ready_until_config_and_nats() {
        let readiness = Readiness::new(None);
        let app = router(Arc::new(Metrics::default()), readiness.clone());
        let (status, text) = get_text(app.clone(), "/readyz").await;
        assert_eq!(
            (status, text.as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: config_not_loaded\n"
            )
        );
        readiness.set_config_loaded(true);
        let (status, text) = get_text(app.clone(), "/readyz").await;
        assert_eq!(
            (status, text.as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: nats_disconnected\n"
            )
        );
        assert_eq!(get_text(app, "/healthz").await.0, StatusCode::OK);
    }
}
