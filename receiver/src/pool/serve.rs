//! Serving a pool: the public router finds each request's endpoint by its
//! host and path, then hands it to that endpoint's pipeline exactly as a
//! dedicated receiver runs it ([`crate::server::ingest_into`]); the
//! operations port adds `GET /endpoints`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::EndpointStatus;
use super::routes::RouteTable;
use crate::server::{self, AppState, PoolBounds};
use crate::transport::PeerPolicy;

/// What a route of the pool leads to.
#[derive(Debug, Clone)]
pub enum Routed {
    /// The endpoint's pipeline.
    Endpoint(AppState),
    /// The endpoint named, configured but whose stream could not be created
    /// yet: 503, never a 2xx before JetStream can store.
    Unavailable(String),
}

/// What a pool's handlers share: its bounds and the route table served now
/// (swapped whole by a reload, so a request sees one table).
#[derive(Debug, Clone)]
pub struct PoolState {
    bounds: PoolBounds,
    routes: Arc<ArcSwap<RouteTable<Routed>>>,
}

impl PoolState {
    /// A pool serving no endpoint yet, within `bounds`.
    pub fn new(bounds: PoolBounds) -> Self {
        Self {
            bounds,
            routes: Arc::new(ArcSwap::from_pointee(RouteTable::default())),
        }
    }

    /// The pool's bounds (and metrics, tasks).
    pub fn bounds(&self) -> &PoolBounds {
        &self.bounds
    }

    /// Serves `routes` from the next request on.
    pub fn set_routes(&self, routes: RouteTable<Routed>) {
        self.routes.store(Arc::new(routes));
    }

    /// What serves `path` on `host`, if anything.
    pub fn endpoint_for(&self, host: Option<&str>, path: &str) -> Option<Routed> {
        self.routes.load().lookup(host, path).cloned()
    }

    /// Whether any endpoint served trusts `peer` as its proxy: the
    /// transport does not hold a proxy to one client's connection limit.
    pub fn trusts_proxy(&self, peer: IpAddr) -> bool {
        self.routes
            .load()
            .served()
            .any(|routed| matches!(routed, Routed::Endpoint(e) if e.trusts_proxy(peer)))
    }

    /// What the transport asks about peers and tells of refused requests.
    pub fn peer_policy(&self) -> PeerPolicy {
        let trusting = self.clone();
        let refusing = self.bounds.clone();
        PeerPolicy::new(
            move |peer| trusting.trusts_proxy(peer),
            move |peer: SocketAddr, reason| refusing.refused_by_transport(peer, reason),
        )
    }
}

/// The pool's public routes: `GET /healthz`, and every other request to
/// the endpoint its host and path name (404 `unknown_endpoint` if none,
/// 503 `store_unavailable` if that endpoint cannot store yet).
pub fn router(pool: PoolState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { (StatusCode::OK, axum::Json(json!({"status": "ok"}))) }),
        )
        .fallback(ingest)
        .with_state(pool)
}

async fn ingest(
    State(pool): State<PoolState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let host = server::request_host(&request);
    match pool.endpoint_for(host.as_deref(), request.uri().path()) {
        Some(Routed::Endpoint(endpoint)) => server::ingest_into(endpoint, peer, request).await,
        Some(Routed::Unavailable(name)) => pool.bounds.endpoint_unavailable(&name, peer, &request),
        None => pool.bounds.unknown_endpoint(peer, &request),
    }
}

/// The state of every endpoint file, as the last scan left it.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<ArcSwap<Vec<EndpointStatus>>>);

impl StatusBoard {
    /// Publishes `statuses` (sorted by name).
    pub fn set(&self, statuses: Vec<EndpointStatus>) {
        self.0.store(Arc::new(statuses));
    }

    /// The statuses published last.
    pub fn get(&self) -> Arc<Vec<EndpointStatus>> {
        self.0.load_full()
    }
}

/// `GET /endpoints` on the operations port: every endpoint file, its state,
/// the sha256 of the manifest it serves and its last error.
pub fn endpoints_router(board: StatusBoard) -> Router {
    Router::new()
        .route("/endpoints", get(endpoints))
        .with_state(board)
}

async fn endpoints(State(board): State<StatusBoard>) -> impl IntoResponse {
    axum::Json(json!({ "endpoints": *board.get() }))
}
