//! Traces (OpenTelemetry, OTLP over HTTP/protobuf): the one place the
//! receiver, the forwarder and the operator set them up, with the process's
//! subscriber that carries them and the log lines ([`init`]).
//!
//! Off unless an OTLP endpoint is configured with the standard variables
//! (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`;
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn them off
//! again). Off means no exporter, no OpenTelemetry layer and no thread: the
//! spans of [`TARGET`] are then disabled `tracing` callsites, which cost one
//! cached interest check each. On, the SDK reads the rest of the standard
//! variables itself: `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`
//! (default `parentbased_always_on`), `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`.
//!
//! Only spans of [`TARGET`] are exported (never log events, never other
//! crates' spans), and those are kept out of the log lines. Their
//! attributes carry no secret, header value or body by construction; every
//! exported string still passes through the process's secret registry
//! ([`crate::logging::registry`]), as every log line does.
//!
//! A sender's `traceparent` is untrusted: [`sender_context`] parses it into
//! a span link, never a parent unless the operator of the receiver says so
//! (`spec.traces.trustIncomingTraceparent`, or `--trust-incoming-traceparent`
//! for every endpoint of the process).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterFn, Targets};

use crate::logging::{Redacting, SecretRegistry};

/// The `tracing` target of every exported span. Spans of this target are
/// created with `tracing::info_span!(target: TARGET, ...)`.
pub const TARGET: &str = "hookwarden::trace";

/// A span of [`TARGET`] (`tracing::info_span!` arguments after the
/// target): the only way the receiver and the forwarder make the spans they
/// export. With the `bench-no-spans` feature (a baseline for `make bench`
/// and `bench/profile.sh`, never shipped) no span code runs at all, so what
/// the spans cost when traces are off can be measured against nothing.
#[macro_export]
macro_rules! trace_span {
    ($($args:tt)+) => {
        if cfg!(feature = "bench-no-spans") {
            ::tracing::Span::none()
        } else {
            ::tracing::info_span!(target: $crate::telemetry::TARGET, $($args)+)
        }
    };
}

/// The header a delivery's untrusted sender `traceparent` is stored under
/// (when it parses), next to the receiver's own `traceparent`.
pub const SENDER_TRACEPARENT_HEADER: &str = "Hookwarden-Sender-Traceparent";

/// How long the last spans may take to leave at shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer read from the OTLP endpoint (it answers with a small
/// protobuf status).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why traces could not be set up (the process runs on without them).
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// Traces need a Tokio runtime to send from.
    #[error("traces need a running Tokio runtime")]
    NoRuntime,
    /// rustls refused the client configuration.
    #[error("the OTLP client's TLS configuration")]
    Tls,
    /// The exporter refused its configuration (an endpoint that is no URL,
    /// say).
    #[error("the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Whether the environment asks for traces: an OTLP traces endpoint is set
/// and the SDK is not disabled.
pub fn enabled_by_env() -> bool {
    enabled(|name| std::env::var(name).ok())
}

fn enabled(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let is =
        |name: &str, value: &str| var(name).is_some_and(|v| v.trim().eq_ignore_ascii_case(value));
    !is("OTEL_SDK_DISABLED", "true")
        && !is("OTEL_TRACES_EXPORTER", "none")
        && (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

/// The tracer provider of this process, kept for [`shutdown`].
static PROVIDER: OnceLock<Mutex<Option<SdkTracerProvider>>> = OnceLock::new();

/// The OpenTelemetry layer for this process's subscriber when the
/// environment asks for traces ([`enabled_by_env`]), else `None`. Must be
/// called inside the Tokio runtime the exports are sent from;
/// `default_service` names the service unless `OTEL_SERVICE_NAME` or
/// `OTEL_RESOURCE_ATTRIBUTES` does. Call [`shutdown`] before the runtime
/// stops, so the last spans are sent.
pub fn layer_from_env<S>(
    default_service: &'static str,
) -> Result<Option<Box<dyn Layer<S> + Send + Sync>>, TracingError>
where
    S: tracing::Subscriber + Send + Sync + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    if !enabled_by_env() {
        return Ok(None);
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| TracingError::NoRuntime)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(OtlpClient::new(runtime)?)
        .build()?;
    let exporter = RedactingExporter {
        inner: exporter,
        registry: Arc::clone(crate::logging::registry()),
        health: ExportHealth::default(),
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(default_service))
        .build();
    let tracer = provider.tracer("hookwarden");
    *PROVIDER
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(provider);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_filter(Targets::new().with_target(TARGET, tracing::Level::TRACE));
    Ok(Some(Box::new(layer)))
}

/// The process's logs and traces: one JSON object per line on stdout, for
/// log collectors, filtered by `RUST_LOG` (default `info`), every line
/// redacted with the registry of this process ([`crate::logging`]) and
/// written in batches ([`crate::log_writer`]: call
/// [`crate::log_writer::flush`] before the process exits); panics are
/// redacted too. Traces as well when the environment asks for them (service
/// `service` by default): call it inside the runtime, and [`shutdown`]
/// before it stops.
pub fn init(service: &'static str) {
    // JSON fields (a span's, listed in a line inside it); each line as
    // tracing-subscriber's flattened JSON writes it, by a faster formatter.
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .event_format(crate::log_format::JsonLines::default())
        .with_writer(Redacting::new(
            Arc::clone(crate::logging::registry()),
            crate::log_writer::BatchedStdout,
        ))
        .boxed();
    init_subscriber(logs, service);
    crate::logging::redact_panics();
}

/// Installs the process's subscriber: `logs` (the log lines, filtered by
/// [`log_filter`]) and, when the environment asks for them, traces as
/// `default_service` ([`layer_from_env`]; if they cannot be set up, that is
/// logged and the process runs without). Call it inside the runtime, and
/// [`shutdown`] before the runtime stops.
pub fn init_subscriber(
    logs: Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>,
    default_service: &'static str,
) {
    use tracing_subscriber::util::SubscriberInitExt as _;
    let (subscriber, error) = subscriber(logs, default_service);
    subscriber.init();
    if let Some(error) = error {
        tracing::warn!(%error, "traces are off: they could not be set up");
    }
}

/// The process's subscriber: `logs` through [`log_filter`], and traces as
/// `default_service` when the environment asks for them
/// ([`layer_from_env`]); the error, if they could not be set up.
fn subscriber(
    logs: Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>,
    default_service: &'static str,
) -> (
    Box<dyn tracing::Subscriber + Send + Sync>,
    Option<TracingError>,
) {
    use tracing_subscriber::layer::SubscriberExt as _;
    let subscriber = tracing_subscriber::registry().with(logs.with_filter(log_filter()));
    // Not `.with(traces)` of an `Option`: a `None` layer counts as one that
    // wants every callsite, so with traces off every span at the log level
    // (ours included) would still be built, recorded and dropped.
    match layer_from_env(default_service) {
        Ok(Some(traces)) => (Box::new(subscriber.with(traces)), None),
        Ok(None) => (Box::new(subscriber), None),
        Err(error) => (Box::new(subscriber), Some(error)),
    }
}

/// The filter of the log lines: everything `RUST_LOG` lets through
/// (default `info`) but the spans of [`TARGET`], which are for export only
/// (so log lines look the same with traces on or off).
pub fn log_filter<S>() -> impl tracing_subscriber::layer::Filter<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::filter::FilterExt as _;
    let env = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    env.and(FilterFn::new(|meta| meta.target() != TARGET))
}

/// Sends the spans still buffered and stops the exporter (at most
/// [`SHUTDOWN_TIMEOUT`]); nothing when traces are off. Call it outside the
/// runtime's tasks but while the runtime still runs: the exports are sent
/// on it.
pub fn shutdown() {
    let provider = PROVIDER.get().and_then(|provider| {
        provider
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    });
    if let Some(provider) = provider
        && let Err(error) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT)
    {
        tracing::warn!(%error, "could not send the last spans");
    }
}

/// The process's resource: what the SDK reads from the environment, with
/// `default_service` as `service.name` unless the environment names one.
fn resource(default_service: &'static str) -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder()
            .with_service_name(default_service)
            .build()
    }
}

/// The span context of a sender's `traceparent` (and `tracestate`), when it
/// parses: untrusted, for a link (or, when explicitly trusted, a parent).
pub fn sender_context(headers: &http::HeaderMap) -> Option<SpanContext> {
    let carrier = HeaderCarrier(headers);
    let context = TraceContextPropagator::new().extract(&carrier);
    let span = context.span().span_context().clone();
    span.is_valid().then_some(span)
}

/// The W3C trace context naming a span, as stored with a message or sent
/// with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeaders {
    /// `traceparent`.
    pub traceparent: String,
    /// `tracestate`, when not empty.
    pub tracestate: Option<String>,
}

/// The trace context naming `span`; `None` when it is disabled (traces
/// off).
pub fn trace_headers(span: &tracing::Span) -> Option<TraceHeaders> {
    if span.is_disabled() {
        return None;
    }
    let mut fields = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut fields);
    Some(TraceHeaders {
        traceparent: fields.remove("traceparent")?,
        tracestate: fields.remove("tracestate").filter(|v| !v.is_empty()),
    })
}

/// Links `span` to the sender's context in `headers` ([`sender_context`]),
/// or makes it the parent when `trust` says so. Nothing when the span is
/// disabled: with traces off the headers are not even parsed (every request
/// would pay for it).
pub fn adopt_sender_context(span: &tracing::Span, headers: &http::HeaderMap, trust: bool) {
    if span.is_disabled() {
        return;
    }
    let Some(sender) = sender_context(headers) else {
        return;
    };
    if trust {
        let parent = opentelemetry::Context::new().with_remote_span_context(sender);
        // Fails only when the span was already started by the layer.
        let _ = span.set_parent(parent);
    } else {
        span.add_link_with_attributes(
            sender,
            vec![KeyValue::new("hookwarden.link", "sender_traceparent")],
        );
    }
}

/// Makes a stored context the parent of `span` (the forwarder continues
/// the trace a receiver stored). Call it before anything else uses the span.
pub fn continue_stored(span: &tracing::Span, stored: &TraceHeaders) {
    if span.is_disabled() {
        return;
    }
    let mut fields = HashMap::new();
    fields.insert("traceparent".to_owned(), stored.traceparent.clone());
    if let Some(state) = &stored.tracestate {
        fields.insert("tracestate".to_owned(), state.clone());
    }
    let context = TraceContextPropagator::new().extract(&fields);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

struct HeaderCarrier<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The exporter's HTTP client: hyper with our rustls (ring, system roots),
/// each request run on the process's runtime (the SDK's batch thread has
/// none), bounded by the exporter's timeout and [`MAX_ANSWER_BYTES`].
#[derive(Debug)]
struct OtlpClient {
    runtime: tokio::runtime::Handle,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl OtlpClient {
    fn new(runtime: tokio::runtime::Handle) -> Result<Self, TracingError> {
        // Without system roots (logged) an `http://` endpoint still works.
        let tls = crate::tls::client_tls(None)
            .or_else(|| crate::tls::client_tls(Some(Arc::new(rustls::RootCertStore::empty()))))
            .ok_or(TracingError::Tls)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self { runtime, client })
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let response = client.request(request.map(Full::new)).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES).collect().await?;
            Ok::<_, HttpError>(Response::from_parts(parts, body.to_bytes()))
        });
        sent.await?
    }
}

/// Hands spans on with every string (names, attribute values, event and
/// link attributes, status text) passed through the secret registry: the
/// spans' attributes carry no secret by construction, and this keeps it so
/// if one ever slips in.
#[derive(Debug)]
struct RedactingExporter<E> {
    inner: E,
    registry: Arc<SecretRegistry>,
    health: ExportHealth,
}

/// How often a failing export is logged again while it keeps failing.
const EXPORT_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Spans that could not be exported (the OTLP endpoint refused them or
/// did not answer): counted in `hookwarden_trace_export_failed_spans_total`
/// of every process that exports, so a silent trace backend shows on the
/// dashboards.
pub fn export_failed_spans() -> prometheus_client::metrics::counter::Counter {
    static FAILED: OnceLock<prometheus_client::metrics::counter::Counter> = OnceLock::new();
    FAILED.get_or_init(Default::default).clone()
}

/// Whether exports fail, so that a failure is logged when it starts, again
/// at most every [`EXPORT_WARNING_INTERVAL`] while it lasts (with the spans
/// lost meanwhile), and once when exports work again: never a line per
/// batch, and never silence.
#[derive(Debug, Default)]
struct ExportHealth {
    state: Mutex<ExportState>,
}

#[derive(Debug, Default)]
struct ExportState {
    /// When the failure was last logged; `None` while exports work.
    warned_at: Option<std::time::Instant>,
    /// Spans lost since that line.
    lost_since_warning: u64,
}

impl ExportHealth {
    fn record(&self, result: &OTelSdkResult, spans: u64, now: std::time::Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(()) => {
                if state.warned_at.take().is_some() {
                    tracing::info!(
                        lost_spans = state.lost_since_warning,
                        "traces are exported again"
                    );
                }
                state.lost_since_warning = 0;
            }
            Err(error) => {
                export_failed_spans().inc_by(spans);
                state.lost_since_warning += spans;
                let due = state
                    .warned_at
                    .is_none_or(|at| now.duration_since(at) >= EXPORT_WARNING_INTERVAL);
                if due {
                    tracing::warn!(
                        %error,
                        lost_spans = state.lost_since_warning,
                        "traces could not be exported: the OTLP endpoint failed; its spans are dropped (the deliveries are not affected)"
                    );
                    state.warned_at = Some(now);
                    state.lost_since_warning = 0;
                }
            }
        }
    }
}

impl<E> RedactingExporter<E> {
    fn redact_text(&self, text: &str) -> Option<String> {
        match self.registry.redact(text.as_bytes()) {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(redacted) => {
                Some(String::from_utf8_lossy(&redacted).into_owned())
            }
        }
    }

    fn redact_values(&self, attributes: &mut [KeyValue]) {
        for attribute in attributes {
            if let Value::String(text) = &attribute.value
                && let Some(redacted) = self.redact_text(text.as_str())
            {
                attribute.value = Value::from(redacted);
            }
        }
    }

    fn redact(&self, mut span: SpanData) -> SpanData {
        if let Some(name) = self.redact_text(&span.name) {
            span.name = name.into();
        }
        self.redact_values(&mut span.attributes);
        for event in &mut span.events.events {
            if let Some(name) = self.redact_text(&event.name) {
                event.name = name.into();
            }
            self.redact_values(&mut event.attributes);
        }
        for link in &mut span.links.links {
            self.redact_values(&mut link.attributes);
        }
        if let opentelemetry::trace::Status::Error { description } = &span.status
            && let Some(redacted) = self.redact_text(description)
        {
            span.status = opentelemetry::trace::Status::error(redacted);
        }
        span
    }
}

impl<E: SpanExporter> SpanExporter for RedactingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let batch = batch.into_iter().map(|span| self.redact(span)).collect();
        let result = self.inner.export(batch).await;
        self.health
            .record(&result, spans, std::time::Instant::now());
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With traces off, the spans of [`TARGET`] are disabled: not built,
    /// recorded or dropped (the interest check is all a request pays).
    #[test]
    fn with_traces_off_no_span_of_ours_is_built() {
        if enabled_by_env() {
            return; // this process's environment turns traces on
        }
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .boxed();
        let (subscriber, error) = subscriber(logs, "test");
        assert!(error.is_none());
        tracing::subscriber::with_default(subscriber, || {
            assert!(crate::trace_span!("hookwarden.test").is_disabled());
        });
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn traces_are_on_only_with_an_endpoint_and_not_disabled() {
        assert!(!enabled(env(&[])));
        assert!(!enabled(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(enabled(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318"
        )])));
        assert!(enabled(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces"
        )])));
        for off in [
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert!(!enabled(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                off
            ])));
        }
    }

    #[test]
    fn only_a_valid_sender_traceparent_gives_a_context() {
        let mut headers = http::HeaderMap::new();
        assert!(sender_context(&headers).is_none());
        for bad in [
            "junk",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        ] {
            headers.insert("traceparent", http::HeaderValue::from_static(bad));
            assert!(sender_context(&headers).is_none(), "{bad}");
        }
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let context = sender_context(&headers).expect("valid");
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(context.is_remote());
    }

    #[test]
    fn export_failures_are_counted_and_logged_when_they_start_then_at_most_once_a_minute() {
        let health = ExportHealth::default();
        let failed = || -> OTelSdkResult {
            Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                "connection refused".into(),
            ))
        };
        let start = std::time::Instant::now();
        let before = export_failed_spans().get();
        health.record(&failed(), 3, start);
        let first = health.state.lock().expect("state").warned_at;
        assert_eq!(first, Some(start), "the first failure is logged");
        health.record(&failed(), 2, start + Duration::from_secs(5));
        {
            let state = health.state.lock().expect("state");
            assert_eq!(state.warned_at, Some(start), "not again within a minute");
            assert_eq!(state.lost_since_warning, 2);
        }
        let later = start + EXPORT_WARNING_INTERVAL + Duration::from_secs(1);
        health.record(&failed(), 1, later);
        assert_eq!(health.state.lock().expect("state").warned_at, Some(later));
        // Other tests of this process may export too: at least ours.
        assert!(export_failed_spans().get() >= before + 6);
        health.record(&Ok(()), 4, later + Duration::from_secs(1));
        let state = health.state.lock().expect("state");
        assert_eq!(state.warned_at, None, "recovered");
        assert_eq!(state.lost_since_warning, 0);
    }

    #[test]
    fn a_disabled_span_has_no_trace_headers() {
        assert!(trace_headers(&tracing::Span::none()).is_none());
    }
}
