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

mod audit;
mod names;
mod options;
mod outcome;
mod pipeline;
mod state;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio_util::task::TaskTracker;

pub use self::names::{NO_ENDPOINT, request_host};
pub use self::options::{DEFAULT_MAX_BODY_READS_PER_SOURCE, DEFAULT_MAX_IN_FLIGHT, ServeOptions};
// The `--max-body-bytes` default is defined with the request rules it caps;
// named here too, with the other defaults of serving.
pub use self::outcome::RETRY_AFTER_SECS;
pub use self::state::{AppState, EndpointPipeline, PoolBounds};
pub use crate::request::DEFAULT_BODY_LIMIT;

use self::outcome::error;
use self::pipeline::process;

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

    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::{ConnectInfo, Request};
    use axum::http::{HeaderValue, StatusCode, header};
    use hookwarden_crds::PayloadLogging;

    use super::outcome::Outcome;
    use super::pipeline::admit;
    use super::state::SourceFilter;
    use super::*;
    use crate::body::BodyError;
    use crate::clientip::{ClientAddr, Networks, TrustedProxies};
    use crate::limits::{self, RateLimits, pool_share};
    use crate::metrics::Metrics;
    use crate::publish::{PublishError, Publisher};
    use crate::request::RequestRules;
    use crate::verify::{Rejection, Verifier};

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
