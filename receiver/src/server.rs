//! The HTTP edge: read the body (capped), verify, store, answer.
//!
//! The listener itself (TLS, HTTP versions, connection limits) is
//! [`crate::transport`].
//!
//! The answer tells the provider exactly what happened, because providers
//! retry on non-2xx: 200 only once JetStream acknowledged storing the
//! delivery, 401 for a delivery that does not verify (retrying cannot help),
//! 413 for an oversized body, 503 with `Retry-After` when the store is
//! unavailable (retrying will help). Every request to the endpoint path
//! produces one structured audit line (tracing target `hookwarden::audit`),
//! which never contains the secret or the signature.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

use crate::publish::{Delivery, PublishError, Publisher, Stored, body_sha256};
use crate::transport::{Stopped, Transport};
use crate::verify::{Rejection, Verified, Verifier};

/// The default cap on a delivery's body. GitHub caps payloads at 25 MB but
/// almost all are far smaller; the cap bounds the memory a single request
/// can take before it is verified.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// How long a client may take to send its body. Providers send small bodies
/// at once; a client trickling bytes (slowloris) must not hold a connection
/// and a buffer indefinitely. GitHub itself gives up after 10 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Seconds a provider is asked to wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

/// What the request handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    verifier: Box<dyn Verifier>,
    publisher: Publisher,
    body_limit: usize,
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
        Self {
            inner: Arc::new(Inner {
                verifier,
                publisher,
                body_limit,
                body_timeout: DEFAULT_BODY_TIMEOUT,
            }),
        }
    }
}

/// The receiver's routes: `POST /` takes deliveries, `GET /healthz` says the
/// process serves HTTP.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", post(ingest))
        .route("/healthz", get(healthz))
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
    Rejected(Rejection),
    TooLarge,
    /// Within the body cap, but over the NATS server's `max_payload`.
    TooLargeForStore(PublishError),
    TimedOut,
    Unreadable,
    StoreUnavailable(PublishError),
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
            Self::Rejected(_) => "rejected",
            Self::TooLarge | Self::TooLargeForStore(_) => "too_large",
            Self::TimedOut => "timed_out",
            Self::Unreadable => "bad_request",
            Self::StoreUnavailable(_) => "store_unavailable",
        }
    }

    /// The stable reason code reported to the client and the audit log.
    fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Stored(_) => None,
            Self::Rejected(rejection) => Some(rejection.code()),
            Self::TooLarge | Self::TooLargeForStore(_) => Some("body_too_large"),
            Self::TimedOut => Some("body_timeout"),
            Self::Unreadable => Some("body_unreadable"),
            Self::StoreUnavailable(_) => Some("store_unavailable"),
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
            Self::Rejected(_) => error(StatusCode::UNAUTHORIZED, reason),
            Self::TooLarge | Self::TooLargeForStore(_) => {
                error(StatusCode::PAYLOAD_TOO_LARGE, reason)
            }
            Self::TimedOut => error(StatusCode::REQUEST_TIMEOUT, reason),
            Self::Unreadable => error(StatusCode::BAD_REQUEST, reason),
            Self::StoreUnavailable(_) => {
                let mut response = error(StatusCode::SERVICE_UNAVAILABLE, reason);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
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
    body_size: Option<usize>,
    body_sha256: Option<String>,
    verified: Option<Verified>,
}

async fn ingest(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let received_at = jiff::Timestamp::now();
    let request_id = format!("{:032x}", rand::random::<u128>());
    let (parts, body) = request.into_parts();
    let mut facts = Facts::default();
    let outcome = handle(
        &state.inner,
        &parts.headers,
        body,
        peer.ip(),
        received_at,
        &mut facts,
    )
    .await;

    let verified = facts.verified.as_ref();
    let stored = match &outcome {
        Outcome::Stored(stored) => Some(stored),
        _ => None,
    };
    let error = match &outcome {
        Outcome::StoreUnavailable(err) | Outcome::TooLargeForStore(err) => Some(err.to_string()),
        _ => None,
    };
    tracing::info!(
        target: "hookwarden::audit",
        request_id = request_id.as_str(),
        endpoint = state.inner.publisher.target().endpoint.as_str(),
        client_ip = %peer.ip(),
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
        "webhook delivery"
    );

    let mut response = outcome.into_response();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

async fn handle(
    inner: &Inner,
    headers: &HeaderMap,
    body: Body,
    source_ip: IpAddr,
    received_at: jiff::Timestamp,
    facts: &mut Facts,
) -> Outcome {
    let body = match read_capped(headers, body, inner.body_limit, inner.body_timeout).await {
        Ok(body) => body,
        Err(outcome) => return outcome,
    };
    facts.body_size = Some(body.len());
    facts.body_sha256 = Some(body_sha256(&body));

    let verified = match inner.verifier.verify(headers, &body) {
        Ok(verified) => verified,
        Err(rejection) => return Outcome::Rejected(rejection),
    };
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
    };
    facts.verified = Some(verified);
    match inner.publisher.publish(&delivery).await {
        Ok(stored) => Outcome::Stored(stored),
        Err(err @ PublishError::TooLarge(_)) => Outcome::TooLargeForStore(err),
        Err(err) => Outcome::StoreUnavailable(err),
    }
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

    use super::*;

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
