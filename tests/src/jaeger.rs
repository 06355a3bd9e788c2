//! A private Jaeger v2 per test: the trace backend the tracing tests send
//! to (OTLP over HTTP) and read back from (its query API), spans kept in
//! memory, every port a free loopback one, stopped on drop.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tempfile::TempDir;

use crate::tools::require_tool;
use crate::{ManagedProcess, SupportError, free_port};

/// How long Jaeger may take to answer on its ports.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One span as the query API (`/api/v3`, OTLP JSON) returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSpan {
    /// The service (`service.name` of the span's resource).
    pub service: String,
    /// The span's name, e.g. `hookwarden.request`.
    pub name: String,
    /// Lower-case hex.
    pub trace_id: String,
    /// Lower-case hex.
    pub span_id: String,
    /// Lower-case hex; empty for a root span.
    pub parent_span_id: String,
    /// `SPAN_KIND_SERVER`, ...
    pub kind: String,
    /// Attribute values as JSON (`{"stringValue": ...}` unwrapped to the value).
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// The `(trace id, span id)` of each link, lower-case hex.
    pub links: Vec<(String, String)>,
}

impl TraceSpan {
    /// An attribute as text (strings as they are, numbers and booleans
    /// printed), `None` when absent.
    pub fn attribute(&self, key: &str) -> Option<String> {
        self.attributes.get(key).map(|value| match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        })
    }
}

/// A running Jaeger v2 (`jaeger --config`), stopped on drop.
#[derive(Debug)]
pub struct Jaeger {
    process: ManagedProcess,
    otlp_http: String,
    query: String,
    http: Client<HttpConnector, Empty<Bytes>>,
    // Last: removed after the process is stopped.
    work: TempDir,
}

impl Jaeger {
    /// Starts the pinned Jaeger with an OTLP/HTTP receiver, in-memory
    /// storage and the query API, and waits until both answer.
    pub async fn start() -> Result<Self, SupportError> {
        let binary = require_tool("jaeger")?;
        let work = TempDir::with_prefix("hookwarden-jaeger-")
            .map_err(SupportError::io("cannot create a temp dir"))?;
        let (otlp, query, query_grpc) = (free_port()?, free_port()?, free_port()?);
        // Only what the tests need: no UI file, no sampling endpoints, and
        // the collector's own metrics off (they would take port 8888).
        let config = format!(
            "service:\n  extensions: [jaeger_storage, jaeger_query]\n  pipelines:\n    traces:\n      \
             receivers: [otlp]\n      processors: []\n      exporters: [jaeger_storage_exporter]\n  \
             telemetry:\n    metrics:\n      level: none\n    logs:\n      level: info\n\
             extensions:\n  jaeger_query:\n    storage:\n      traces: memstore\n    \
             http:\n      endpoint: 127.0.0.1:{query}\n    grpc:\n      endpoint: 127.0.0.1:{query_grpc}\n  \
             jaeger_storage:\n    backends:\n      memstore:\n        memory:\n          max_traces: 10000\n\
             receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{otlp}\n\
             exporters:\n  jaeger_storage_exporter:\n    trace_storage: memstore\n"
        );
        let config_path = work.path().join("jaeger.yaml");
        std::fs::write(&config_path, config)
            .map_err(SupportError::io("cannot write jaeger.yaml"))?;
        let log = work.path().join("jaeger.log");
        let mut process = ManagedProcess::spawn(
            "jaeger",
            &binary,
            &["--config".to_owned(), config_path.display().to_string()],
            &log,
        )?;
        let http = Client::builder(TokioExecutor::new()).build_http();
        let jaeger_query = format!("http://127.0.0.1:{query}");
        let services = format!("{jaeger_query}/api/v3/services");
        let otlp_addr = format!("127.0.0.1:{otlp}");
        process
            .wait_until(READY_TIMEOUT, || {
                let http = http.clone();
                let services = services.clone();
                let otlp_addr = otlp_addr.clone();
                async move {
                    let uri = services.parse().ok()?;
                    let answer = http.get(uri).await.ok()?;
                    let listening = tokio::net::TcpStream::connect(&otlp_addr).await.is_ok();
                    (answer.status().is_success() && listening).then_some(())
                }
            })
            .await?;
        Ok(Self {
            process,
            otlp_http: format!("http://127.0.0.1:{otlp}"),
            query: jaeger_query,
            http,
            work,
        })
    }

    /// The OTLP/HTTP endpoint, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn otlp_endpoint(&self) -> &str {
        &self.otlp_http
    }

    /// The query API's base URL.
    pub fn query_url(&self) -> &str {
        &self.query
    }

    /// Jaeger's log file.
    pub fn log(&self) -> PathBuf {
        self.work.path().join("jaeger.log")
    }

    /// The last lines of Jaeger's log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    async fn get_json(&self, path: &str) -> Result<Option<serde_json::Value>, SupportError> {
        let url = format!("{}{path}", self.query);
        let failed = |detail: String| SupportError::Setup {
            what: format!("GET {url}"),
            detail,
        };
        let uri = url.parse().map_err(|e| failed(format!("{e}")))?;
        let answer = self
            .http
            .get(uri)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = answer.status();
        let body = answer
            .into_body()
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?
            .to_bytes();
        if status == hyper::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(failed(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| failed(e.to_string()))
    }

    /// The services that have sent spans.
    pub async fn services(&self) -> Result<Vec<String>, SupportError> {
        let answer = self.get_json("/api/v3/services").await?;
        Ok(answer
            .as_ref()
            .and_then(|a| a["services"].as_array())
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The spans of every trace of `service` stored so far whose spans
    /// started in the last hour (the query API's search by service).
    pub async fn service_spans(&self, service: &str) -> Result<Vec<TraceSpan>, SupportError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let rfc3339 = |secs: u64| {
            jiff::Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX))
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        let path = format!(
            "/api/v3/traces?query.service_name={service}&query.start_time_min={}&query.start_time_max={}&query.num_traces=1000",
            rfc3339(now.saturating_sub(3600)),
            rfc3339(now + 60),
        );
        let answer = self.get_json(&path).await?;
        Ok(answer.as_ref().map(spans).unwrap_or_default())
    }

    /// The spans of trace `trace_id` (hex) stored so far; empty when the
    /// trace is unknown.
    pub async fn trace(&self, trace_id: &str) -> Result<Vec<TraceSpan>, SupportError> {
        let answer = self.get_json(&format!("/api/v3/traces/{trace_id}")).await?;
        Ok(answer.as_ref().map(spans).unwrap_or_default())
    }
}

/// The spans of an `/api/v3/traces` answer (`{"result": {"resourceSpans": ...}}`).
fn spans(answer: &serde_json::Value) -> Vec<TraceSpan> {
    let mut found = Vec::new();
    let empty = Vec::new();
    let resources = answer["result"]["resourceSpans"]
        .as_array()
        .unwrap_or(&empty);
    for resource in resources {
        let service = attributes(&resource["resource"]["attributes"])
            .get("service.name")
            .and_then(|name| name.as_str().map(str::to_owned))
            .unwrap_or_default();
        for scope in resource["scopeSpans"].as_array().unwrap_or(&empty) {
            for span in scope["spans"].as_array().unwrap_or(&empty) {
                let text = |key: &str| span[key].as_str().unwrap_or_default().to_ascii_lowercase();
                found.push(TraceSpan {
                    service: service.clone(),
                    name: span["name"].as_str().unwrap_or_default().to_owned(),
                    trace_id: text("traceId"),
                    span_id: text("spanId"),
                    parent_span_id: text("parentSpanId"),
                    kind: span["kind"].to_string().trim_matches('"').to_owned(),
                    attributes: attributes(&span["attributes"]),
                    links: span["links"]
                        .as_array()
                        .unwrap_or(&empty)
                        .iter()
                        .map(|link| {
                            let text = |key: &str| {
                                link[key].as_str().unwrap_or_default().to_ascii_lowercase()
                            };
                            (text("traceId"), text("spanId"))
                        })
                        .collect(),
                });
            }
        }
    }
    found
}

/// OTLP JSON attributes (`[{"key": k, "value": {"stringValue": v}}]`) as
/// key → value.
fn attributes(list: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|attribute| {
            let key = attribute["key"].as_str()?.to_owned();
            let value = attribute["value"].as_object()?.values().next()?.clone();
            Some((key, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_s_spans_are_read_with_their_attributes_and_links() {
        let answer = serde_json::json!({"result": {"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
            "scopeSpans": [{"spans": [{
                "traceId": "AB", "spanId": "01", "parentSpanId": "", "name": "root",
                "kind": "SPAN_KIND_SERVER",
                "attributes": [
                    {"key": "n", "value": {"intValue": "7"}},
                    {"key": "s", "value": {"stringValue": "x"}}
                ],
                "links": [{"traceId": "CD", "spanId": "02"}]
            }]}]
        }]}});
        let spans = spans(&answer);
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(span.service, "svc");
        assert_eq!(span.trace_id, "ab");
        assert_eq!(span.kind, "SPAN_KIND_SERVER");
        assert_eq!(span.attribute("n").as_deref(), Some("7"));
        assert_eq!(span.attribute("s").as_deref(), Some("x"));
        assert_eq!(span.links, [("cd".to_owned(), "02".to_owned())]);
    }
}
