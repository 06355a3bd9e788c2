//! The operations port: `/healthz`, `/readyz` and `/metrics`, served apart
//! from the public webhook listener so probes and scrapes are never exposed
//! to the internet and never compete with deliveries for rate limits.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Exposition;
use crate::readiness::Readiness;

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
    use crate::metrics::Metrics;

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
