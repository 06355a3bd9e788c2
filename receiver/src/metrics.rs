//! The receiver's Prometheus metrics ([`Metrics`]): their families, their
//! labels and the registry that renders them. Every part of the pipeline
//! counts into them and the operations port ([`crate::ops`]) renders them,
//! so they live below both: counting a request does not depend on the HTTP
//! port that serves `/metrics`.

use std::sync::Arc;

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
