//! What a request is known by in the audit lines and the routes: its id,
//! its host, and the endpoint label of what no endpoint answered.

use axum::extract::Request;
use axum::http::header;

/// The endpoint label of what no endpoint answered (a pool's unknown
/// routes, requests refused before routing).
pub const NO_ENDPOINT: &str = "-";

/// The host a request was sent to: HTTP/2's `:authority`, else `Host`
/// (as sent; [`crate::pool::routes::normalize_host`] routes it).
pub fn request_host(request: &Request) -> Option<String> {
    request
        .uri()
        .authority()
        .map(|authority| authority.as_str().to_owned())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
}

pub(super) fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
