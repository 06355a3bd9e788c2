//! The operator's operations port: `/healthz`, `/readyz` and `/metrics`.
//!
//! Kept apart from the API server traffic so the kubelet can tell a hung
//! process (liveness) from one still installing its CRD or listing its
//! endpoints (readiness), and Prometheus can see how reconciles fare.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use hookwarden_core::publish::StreamUsage;
use hookwarden_core::ranges::age::{ListAgeCollector, ListFetchTimes};
use hookwarden_crds::WebhookEndpoint;
use http::{Method, Response, StatusCode, header};
use http_body_util::Full;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a reconcile pass ended: a fixed set, so the label never grows.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReconcileResult {
    /// The pass applied everything and wrote the status.
    Ok,
    /// The pass failed and will be retried with a backoff.
    Error,
}

impl ReconcileResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

impl EncodeLabelValue for ReconcileResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.as_str())
    }
}

/// What a periodic check of a ready endpoint's stream found: a fixed set.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StreamCheck {
    /// The stream has the spec's settings: nothing to do.
    InSync,
    /// The stream is missing or has other settings: a pass repairs it.
    Drifted,
    /// NATS did not answer: a pass reports it in `StreamReady`.
    Unreachable,
    /// The stream's leader or number of current replicas changed since
    /// the last pass: a pass reports the new placement in `StreamReady`.
    Moved,
}

impl StreamCheck {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InSync => "in_sync",
            Self::Drifted => "drifted",
            Self::Unreachable => "unreachable",
            Self::Moved => "moved",
        }
    }
}

impl EncodeLabelValue for StreamCheck {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.as_str())
    }
}

/// Labels of a periodic stream check.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamCheckLabels {
    /// `in_sync`, `drifted`, `unreachable` or `moved`.
    pub result: StreamCheck,
}

/// The kind of resource a pass reconciled: a fixed set.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReconcileKind {
    /// A `WebhookEndpoint`.
    Endpoint,
    /// A `WebhookSubscription`.
    Subscription,
    /// A `WebhookReceiverPool`.
    Pool,
}

impl ReconcileKind {
    /// The label value: the resource's kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Endpoint => "WebhookEndpoint",
            Self::Subscription => "WebhookSubscription",
            Self::Pool => "WebhookReceiverPool",
        }
    }
}

impl EncodeLabelValue for ReconcileKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.as_str())
    }
}

/// Labels of a finished reconcile pass.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `WebhookEndpoint` or `WebhookSubscription`.
    pub kind: ReconcileKind,
    /// `ok` or `error`.
    pub result: ReconcileResult,
}

/// Labels of a failed reconcile pass: its kind and the step that failed
/// (the error's variant, [`crate::reconcile::ReconcileError::step`] and
/// its pool and subscription counterparts).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// `WebhookEndpoint`, `WebhookSubscription` or `WebhookReceiverPool`.
    pub kind: ReconcileKind,
    /// What failed, e.g. `apply`, `resolve_secrets`, `write_status`.
    pub step: &'static str,
}

/// The controllers' caches of WebhookEndpoints (one per watched namespace,
/// or one for all), set once the controllers run.
type EndpointCache = Arc<OnceLock<Vec<Store<WebhookEndpoint>>>>;

/// The last stream usage the stream check saw, by endpoint
/// (`<namespace>/<name>`): the stream's name and its usage.
type StreamUsages = Arc<Mutex<BTreeMap<String, (String, StreamUsage)>>>;

/// `endpoints{ready}`, `endpoint_ready{endpoint}` and the stream usage:
/// computed at scrape time from the controller's cache, so they cost
/// nothing between scrapes, are never double-counted, and an endpoint's
/// series go away with the endpoint.
#[derive(Debug)]
struct EndpointsCollector {
    endpoints: EndpointCache,
    streams: StreamUsages,
}

/// `<namespace>/<name>`, the `endpoint` label the receivers use too.
fn endpoint_key(endpoint: &WebhookEndpoint) -> String {
    format!(
        "{}/{}",
        endpoint.metadata.namespace.as_deref().unwrap_or_default(),
        endpoint.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A stream gauge: name, help, and its value in a usage.
type StreamGauge = (&'static str, &'static str, fn(&StreamUsage) -> i64);

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The status of an endpoint's Ready condition, as a fixed label value.
fn ready_label(endpoint: &WebhookEndpoint) -> &'static str {
    let status = endpoint.status.as_ref().and_then(|status| {
        status
            .conditions
            .iter()
            .find(|condition| condition.type_ == hookwarden_crds::READY_CONDITION)
    });
    match status.map(|condition| condition.status.as_str()) {
        Some("True") => "true",
        Some("False") => "false",
        _ => "unknown",
    }
}

impl Collector for EndpointsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(stores) = self.endpoints.get() else {
            return Ok(());
        };
        let mut counts = [("true", 0_i64), ("false", 0), ("unknown", 0)];
        let mut ready = BTreeMap::new();
        for endpoint in stores.iter().flat_map(Store::state) {
            let label = ready_label(&endpoint);
            if let Some(count) = counts.iter_mut().find(|(value, _)| *value == label) {
                count.1 = count.1.saturating_add(1);
            }
            ready.insert(endpoint_key(&endpoint), i64::from(label == "true"));
        }
        let mut family = encoder.encode_descriptor(
            "endpoints",
            "WebhookEndpoints watched, by the status of their Ready condition",
            None,
            MetricType::Gauge,
        )?;
        for (ready, count) in counts {
            let gauge = ConstGauge::new(count);
            gauge.encode(family.encode_family(&[("ready", ready)])?)?;
        }
        // One series per endpoint, so an alert can name the endpoint that
        // is not Ready (the counts above cannot).
        let mut family = encoder.encode_descriptor(
            "endpoint_ready",
            "1 while the WebhookEndpoint's Ready condition is True, else 0 (by endpoint, <namespace>/<name>)",
            None,
            MetricType::Gauge,
        )?;
        for (endpoint, value) in &ready {
            ConstGauge::new(*value).encode(family.encode_family(&[("endpoint", endpoint)])?)?;
        }
        // Usage of endpoints gone from the cache is dropped here, so the
        // map never outgrows the endpoints watched.
        let mut streams = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        streams.retain(|endpoint, _| ready.contains_key(endpoint));
        let gauges: [StreamGauge; 4] = [
            (
                "stream_bytes",
                "Bytes in the endpoint's JetStream stream, as the last stream check saw them",
                |usage| gauge_value(usage.bytes),
            ),
            (
                "stream_max_bytes",
                "The endpoint's stream's max_bytes (-1: no limit), as the last stream check saw it",
                |usage| usage.max_bytes,
            ),
            (
                "stream_messages",
                "Messages in the endpoint's JetStream stream, as the last stream check saw them",
                |usage| gauge_value(usage.messages),
            ),
            (
                "stream_max_messages",
                "The endpoint's stream's max_msgs (-1: no limit), as the last stream check saw it",
                |usage| usage.max_messages,
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (endpoint, (stream, usage)) in streams.iter() {
                ConstGauge::new(value(usage))
                    .encode(family.encode_family(&[("endpoint", endpoint), ("stream", stream)])?)?;
            }
        }
        Ok(())
    }
}

/// The operator's Prometheus metrics, all prefixed `hookwarden_operator`.
///
/// No label carries an endpoint name: the operator may watch thousands of
/// endpoints, and per-endpoint series belong to the receivers.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_failures: Family<FailureLabels, Counter>,
    reconcile_seconds: Histogram,
    stream_checks: Family<StreamCheckLabels, Counter>,
    endpoints: EndpointCache,
    source_lists: SourceLists,
    streams: StreamUsages,
}

/// Each source range list's key and when it was last fetched (Unix seconds),
/// scraped as `source_range_list_age_seconds{list}`
/// ([`hookwarden_core::ranges::age`]).
#[derive(Debug, Default, Clone)]
struct SourceLists(Arc<std::sync::Mutex<std::collections::BTreeMap<String, i64>>>);

impl SourceLists {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, i64>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ListFetchTimes for SourceLists {
    fn fetch_times(&self) -> Vec<(String, i64)> {
        self.lock()
            .iter()
            .map(|(list, fetched_at)| (list.clone(), *fetched_at))
            .collect()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hookwarden_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        // 10 ms to ~40 s: a pass is a handful of server-side applies, each a
        // few milliseconds on a healthy API server, seconds on a slow one.
        let reconcile_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 13));
        registry.register(
            "reconciles",
            "Finished reconcile passes by kind (WebhookEndpoint, WebhookSubscription) and result",
            reconciles.clone(),
        );
        let reconcile_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "reconcile_failures",
            "Failed reconcile passes by kind and the step that failed (each also counts as a reconcile with result error)",
            reconcile_failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconcile passes of WebhookEndpoints and WebhookSubscriptions",
            reconcile_seconds.clone(),
        );
        let stream_checks = Family::<StreamCheckLabels, Counter>::default();
        registry.register(
            "stream_checks",
            "Periodic checks of ready endpoints' JetStream streams by result (no API request; a pass only when not in sync)",
            stream_checks.clone(),
        );
        let endpoints = EndpointCache::default();
        let streams = StreamUsages::default();
        registry.register_collector(Box::new(EndpointsCollector {
            endpoints: endpoints.clone(),
            streams: streams.clone(),
        }));
        let source_lists = SourceLists::default();
        registry.register_collector(Box::new(ListAgeCollector(Arc::new(source_lists.clone()))));
        registry.register(
            "trace_export_failed_spans",
            "Spans the OTLP endpoint refused or did not take (traces on only)",
            hookwarden_core::telemetry::export_failed_spans(),
        );
        Self {
            registry,
            reconciles,
            reconcile_failures,
            reconcile_seconds,
            stream_checks,
            endpoints,
            source_lists,
            streams,
        }
    }
}

impl Metrics {
    /// Counts one finished pass of a `kind` and observes how long it took.
    pub fn record_reconcile(&self, kind: ReconcileKind, result: ReconcileResult, took: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels { kind, result })
            .inc();
        self.reconcile_seconds.observe(took.as_secs_f64());
    }

    /// Counts a failed pass of `kind` by the `step` that failed (beside
    /// [`Metrics::record_reconcile`], which counts it as an error).
    pub fn record_reconcile_failure(&self, kind: ReconcileKind, step: &'static str) {
        self.reconcile_failures
            .get_or_create(&FailureLabels { kind, step })
            .inc();
    }

    /// Finished passes of a `kind` with `result` so far.
    pub fn reconcile_count(&self, kind: ReconcileKind, result: ReconcileResult) -> u64 {
        self.reconciles
            .get_or_create(&ResultLabels { kind, result })
            .get()
    }

    /// Periodic stream checks with `result` so far.
    pub fn stream_check_count(&self, result: StreamCheck) -> u64 {
        self.stream_checks
            .get_or_create(&StreamCheckLabels { result })
            .get()
    }

    /// Counts one periodic stream check.
    pub fn record_stream_check(&self, result: StreamCheck) {
        self.stream_checks
            .get_or_create(&StreamCheckLabels { result })
            .inc();
    }

    /// Records what the stream check saw of `endpoint`'s
    /// (`<namespace>/<name>`) stream; `None` (no stream) drops it.
    pub fn record_stream_usage(&self, endpoint: &str, stream: &str, usage: Option<StreamUsage>) {
        let mut streams = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match usage {
            Some(usage) => {
                streams.insert(endpoint.to_owned(), (stream.to_owned(), usage));
            }
            None => {
                streams.remove(endpoint);
            }
        }
    }

    /// Counts endpoints by readiness from `stores` from now on (the first
    /// stores given win: one set of controllers per process). The stores
    /// watch disjoint namespaces, so no endpoint is counted twice.
    pub fn watch_endpoints(&self, stores: Vec<Store<WebhookEndpoint>>) {
        let _ = self.endpoints.set(stores);
    }

    /// Notes that the source range list `key` was fetched at `fetched_at`
    /// (Unix seconds).
    pub fn set_source_list_fetched(&self, key: &str, fetched_at: i64) {
        self.source_lists.lock().insert(key.to_owned(), fetched_at);
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// What `/readyz` reports: ready once the CRD is installed and the
/// controller's watch of WebhookEndpoints has listed them, so a rollout does
/// not count a replica that cannot reconcile yet (or never will: a missing
/// RBAC rule keeps it unready instead of silently idle).
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    crd_installed: Arc<AtomicBool>,
    watching: Arc<AtomicBool>,
    standing_by: Arc<AtomicBool>,
}

impl Readiness {
    /// Marks the CRD as installed and Established.
    pub fn set_crd_installed(&self) {
        self.crd_installed.store(true, Ordering::Release);
    }

    /// Marks the controller's watches as started (or stopped).
    pub fn set_watching(&self, watching: bool) {
        self.watching.store(watching, Ordering::Release);
    }

    /// Marks the operator as a leader-election candidate waiting for the
    /// lease: ready without watches, since it must not hold up a rollout
    /// and takes over when the leader goes.
    pub fn set_standing_by(&self, standing_by: bool) {
        self.standing_by.store(standing_by, Ordering::Release);
    }

    /// Why the operator is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if !self.crd_installed.load(Ordering::Acquire) {
            Some("crd_not_installed")
        } else if !self.watching.load(Ordering::Acquire)
            && !self.standing_by.load(Ordering::Acquire)
        {
            Some("watches_not_started")
        } else {
            None
        }
    }
}

/// The metrics and readiness a controller reports into.
#[derive(Clone, Debug, Default)]
pub struct Ops {
    /// Reconcile counters and durations.
    pub metrics: Arc<Metrics>,
    /// What `/readyz` answers.
    pub readiness: Readiness,
}

/// `/healthz` (the process serves HTTP), `/readyz` (it reconciles) and
/// `/metrics` (OpenMetrics text) for `GET` (and `HEAD`, whose body hyper
/// leaves out); 405 for another method, 404 for another path. Three fixed
/// routes need no router, so the operator links no web framework (issue #17).
pub fn respond(ops: &Ops, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let known = matches!(path, "/healthz" | "/readyz" | "/metrics");
    if !known {
        return text(StatusCode::NOT_FOUND, String::new());
    }
    if method != Method::GET && method != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, String::new());
        response
            .headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("GET,HEAD"));
        return response;
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n".to_owned()),
        "/readyz" => match ops.readiness.not_ready_reason() {
            None => text(StatusCode::OK, "ready\n".to_owned()),
            Some(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            ),
        },
        _ => {
            let mut response = text(StatusCode::OK, ops.metrics.render());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
    }
}

/// A plain-text answer.
fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let empty = body.is_empty();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if !empty {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    response
}

/// Why the operations port could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("binding the operations port {addr}: {source}")]
pub struct BindError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// How long a connection may take to send its request headers: a client
/// that trickles them does not hold a task forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` and serves [`respond`] on it (HTTP/1.1) in a background
/// task. Binding happens here, before the CRD install, so a taken port
/// fails the start instead of leaving a pod that is never probed
/// successfully.
pub async fn serve(addr: SocketAddr, ops: Ops) -> Result<SocketAddr, BindError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| BindError { addr, source })?;
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, most likely: wait for some
                    // to close rather than spin.
                    tracing::warn!(%error, "accepting on the operations port");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let ops = ops.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: http::Request<_>| {
                    let response = respond(&ops, request.method(), request.uri().path());
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                if let Err(error) = served {
                    tracing::debug!(%error, "an operations port connection ended");
                }
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn get_text(ops: Ops, path: &str) -> (StatusCode, String) {
        let response = respond(&ops, &Method::GET, path);
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
    async fn metrics_count_reconciles_by_kind_and_result() {
        use ReconcileKind::{Endpoint, Subscription};
        let ops = Ops::default();
        ops.metrics
            .record_reconcile(Endpoint, ReconcileResult::Ok, Duration::from_millis(20));
        ops.metrics
            .record_reconcile(Endpoint, ReconcileResult::Error, Duration::from_millis(5));
        ops.metrics
            .record_reconcile(Endpoint, ReconcileResult::Error, Duration::from_millis(5));
        ops.metrics.record_reconcile(
            Subscription,
            ReconcileResult::Error,
            Duration::from_millis(5),
        );
        ops.metrics.record_reconcile_failure(Endpoint, "apply");
        ops.metrics.record_reconcile_failure(Endpoint, "apply");
        ops.metrics
            .record_reconcile_failure(Subscription, "write_status");
        ops.metrics.record_stream_check(StreamCheck::InSync);
        ops.metrics.record_stream_check(StreamCheck::Drifted);
        ops.metrics.record_stream_check(StreamCheck::InSync);
        assert_eq!(
            ops.metrics
                .reconcile_count(Endpoint, ReconcileResult::Error),
            2
        );
        assert_eq!(
            ops.metrics
                .reconcile_count(Subscription, ReconcileResult::Error),
            1
        );
        assert_eq!(
            ops.metrics
                .reconcile_count(Subscription, ReconcileResult::Ok),
            0
        );
        assert_eq!(ops.metrics.stream_check_count(StreamCheck::InSync), 2);
        let (status, text) = get_text(ops, "/metrics").await;
        assert!(
            text.contains(r#"hookwarden_operator_stream_checks_total{result="in_sync"} 2"#)
                && text.contains(r#"hookwarden_operator_stream_checks_total{result="drifted"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"hookwarden_operator_reconcile_failures_total{kind="WebhookEndpoint",step="apply"} 2"#
            ) && text.contains(
                r#"hookwarden_operator_reconcile_failures_total{kind="WebhookSubscription",step="write_status"} 1"#
            ),
            "{text}"
        );
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains(
                r#"hookwarden_operator_reconciles_total{kind="WebhookEndpoint",result="ok"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"hookwarden_operator_reconciles_total{kind="WebhookEndpoint",result="error"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains("hookwarden_operator_reconcile_duration_seconds_count 4"),
            "{text}"
        );
        assert!(
            text.contains(r#"hookwarden_operator_reconcile_duration_seconds_bucket{le="0.01"} 3"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn endpoints_are_counted_by_their_ready_condition() {
        use kube::runtime::watcher::Event;

        let endpoint = |name: &str, ready: Option<&str>| {
            let mut endpoint: WebhookEndpoint = serde_json::from_value(serde_json::json!({
                "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookEndpoint",
                "metadata": {"name": name, "namespace": "ci"},
                "spec": {"provider": "github", "generateSecret": true},
            }))
            .expect("endpoint");
            if let Some(status) = ready {
                endpoint.status = Some(
                    serde_json::from_value(serde_json::json!({"conditions": [{
                        "type": "Ready", "status": status, "reason": "Test",
                        "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }]}))
                    .expect("status"),
                );
            }
            endpoint
        };
        let ops = Ops::default();
        let (text_before, mut writer) = (
            ops.metrics.render(),
            kube::runtime::reflector::store::Writer::<WebhookEndpoint>::default(),
        );
        assert!(
            !text_before.contains("hookwarden_operator_endpoints{"),
            "{text_before}"
        );
        ops.metrics.watch_endpoints(vec![writer.as_reader()]);
        for (name, ready) in [
            ("a", Some("True")),
            ("b", Some("True")),
            ("c", Some("False")),
            ("d", None),
        ] {
            writer.apply_watcher_event(&Event::Apply(endpoint(name, ready)));
        }
        let (_, text) = get_text(ops, "/metrics").await;
        for line in [
            r#"hookwarden_operator_endpoints{ready="true"} 2"#,
            r#"hookwarden_operator_endpoints{ready="false"} 1"#,
            r#"hookwarden_operator_endpoints{ready="unknown"} 1"#,
            r#"hookwarden_operator_endpoint_ready{endpoint="ci/a"} 1"#,
            r#"hookwarden_operator_endpoint_ready{endpoint="ci/c"} 0"#,
            r#"hookwarden_operator_endpoint_ready{endpoint="ci/d"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
    }

    #[tokio::test]
    async fn stream_usage_is_exposed_while_its_endpoint_exists() {
        use kube::runtime::watcher::Event;

        let endpoint: WebhookEndpoint = serde_json::from_value(serde_json::json!({
            "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookEndpoint",
            "metadata": {"name": "gh", "namespace": "ci"},
            "spec": {"provider": "github", "generateSecret": true},
        }))
        .expect("endpoint");
        let ops = Ops::default();
        let mut writer = kube::runtime::reflector::store::Writer::<WebhookEndpoint>::default();
        ops.metrics.watch_endpoints(vec![writer.as_reader()]);
        writer.apply_watcher_event(&Event::Apply(endpoint.clone()));
        let usage = StreamUsage {
            bytes: 900,
            messages: 3,
            max_bytes: 1000,
            max_messages: -1,
        };
        ops.metrics
            .record_stream_usage("ci/gh", "ci-gh", Some(usage));
        // A deleted endpoint's last usage is not reported.
        ops.metrics
            .record_stream_usage("ci/gone", "ci-gone", Some(usage));
        let (_, text) = get_text(ops.clone(), "/metrics").await;
        for line in [
            r#"hookwarden_operator_stream_bytes{endpoint="ci/gh",stream="ci-gh"} 900"#,
            r#"hookwarden_operator_stream_max_bytes{endpoint="ci/gh",stream="ci-gh"} 1000"#,
            r#"hookwarden_operator_stream_messages{endpoint="ci/gh",stream="ci-gh"} 3"#,
            r#"hookwarden_operator_stream_max_messages{endpoint="ci/gh",stream="ci-gh"} -1"#,
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("ci/gone"), "{text}");

        writer.apply_watcher_event(&Event::Delete(endpoint));
        let (_, text) = get_text(ops, "/metrics").await;
        assert!(!text.contains("ci/gh"), "{text}");
    }

    #[tokio::test]
    async fn ready_only_with_the_crd_and_the_watches() {
        let ops = Ops::default();
        let app = ops.clone();
        assert_eq!(
            get_text(app.clone(), "/readyz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: crd_not_installed\n".to_owned()
            )
        );
        assert_eq!(get_text(app.clone(), "/healthz").await.0, StatusCode::OK);
        ops.readiness.set_crd_installed();
        assert_eq!(
            get_text(app.clone(), "/readyz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: watches_not_started\n".to_owned()
            )
        );
        ops.readiness.set_watching(true);
        assert_eq!(
            get_text(app.clone(), "/readyz").await,
            (StatusCode::OK, "ready\n".to_owned())
        );
        ops.readiness.set_watching(false);
        assert_eq!(
            get_text(app.clone(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        ops.readiness.set_standing_by(true);
        assert_eq!(get_text(app.clone(), "/readyz").await.0, StatusCode::OK);
        ops.readiness.set_standing_by(false);
        assert_eq!(
            get_text(app, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        let ops = Ops::default();
        assert_eq!(
            respond(&ops, &Method::GET, "/").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&ops, &Method::GET, "/metrics/x").status(),
            StatusCode::NOT_FOUND
        );
        let refused = respond(&ops, &Method::POST, "/metrics");
        assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            refused.headers().get(header::ALLOW).map(|v| v.as_bytes()),
            Some(&b"GET,HEAD"[..])
        );
        assert_eq!(
            respond(&ops, &Method::HEAD, "/healthz").status(),
            StatusCode::OK
        );
    }

    /// The port as the kubelet reaches it: HTTP/1.1 over TCP.
    #[tokio::test]
    async fn the_port_answers_over_http() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let ops = Ops::default();
        let addr = serve("127.0.0.1:0".parse().expect("addr"), ops)
            .await
            .expect("bound");
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: ops\r\nConnection: close\r\n\r\n")
            .await
            .expect("request");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("answer");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");
    }
}
