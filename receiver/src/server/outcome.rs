//! How one request ended, and what that means to the sender (status,
//! reason, headers) and to the log (label, reason, detail).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::body::BodyError;
use crate::clientip::ForwardedError;
use crate::limits;
use crate::publish::{PublishError, Stored};
use crate::verify::{Handshake, Rejection};

/// Seconds a provider is asked to wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

/// How one request ended.
#[derive(Debug)]
pub(super) enum Outcome {
    Stored(Stored),
    /// A verified provider handshake, answered; stored too when published.
    Handshake(Box<Handshake>, Option<Stored>),
    Rejected(Rejection),
    TooLarge,
    /// Within the body cap, but over the NATS server's `max_payload`.
    TooLargeForStore(PublishError),
    TimedOut,
    Unreadable,
    StoreUnavailable(PublishError),
    /// In a pool: the endpoint is configured but its stream could not be
    /// created yet (NATS away); retrying later helps.
    StreamNotReady,
    /// The stream (or the account) has no room; retrying later helps.
    StoreFull(PublishError),
    /// A trusted proxy sent forwarding headers that cannot be understood.
    ForwardedInvalid(ForwardedError),
    /// Behind-ingress mode and the client did not use HTTPS.
    HttpsRequired,
    /// The client is outside `spec.allowedSourceCidrs` and the ranges of
    /// `spec.allowedSources`.
    IpNotAllowed,
    RateLimited(limits::Limited),
    /// The publish slots or the body budget are all taken.
    Overloaded,
    /// Not the endpoint's path.
    NotFound,
    /// In a pool: no endpoint serves the request's host and path.
    UnknownEndpoint,
    /// Not one of the endpoint's methods; carries the `Allow` header.
    MethodNotAllowed(HeaderValue),
    /// `spec.request.contentTypes` does not list the request's media type.
    UnsupportedMediaType,
}

impl From<BodyError> for Outcome {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge => Self::TooLarge,
            BodyError::TimedOut => Self::TimedOut,
            BodyError::Unreadable => Self::Unreadable,
            BodyError::OverBudget => Self::Overloaded,
        }
    }
}

impl Outcome {
    pub(super) fn label(&self) -> &'static str {
        match self {
            Self::Stored(Stored {
                duplicate: false, ..
            }) => "stored",
            Self::Stored(Stored {
                duplicate: true, ..
            }) => "duplicate",
            Self::Handshake(..) => "handshake",
            Self::Rejected(_) => "rejected",
            Self::TooLarge | Self::TooLargeForStore(_) => "too_large",
            Self::TimedOut => "timed_out",
            Self::Unreadable => "bad_request",
            Self::StoreUnavailable(_) | Self::StreamNotReady | Self::StoreFull(_) => {
                "store_unavailable"
            }
            Self::ForwardedInvalid(_) => "bad_request",
            Self::HttpsRequired | Self::IpNotAllowed => "forbidden",
            Self::RateLimited(_) => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::NotFound
            | Self::UnknownEndpoint
            | Self::MethodNotAllowed(_)
            | Self::UnsupportedMediaType => "bad_request",
        }
    }

    /// More detail than the reason, for the audit line (never a secret).
    pub(super) fn error(&self) -> Option<String> {
        match self {
            Self::StoreUnavailable(err) | Self::TooLargeForStore(err) | Self::StoreFull(err) => {
                Some(err.to_string())
            }
            Self::ForwardedInvalid(err) => Some(err.to_string()),
            Self::RateLimited(limited) => Some(format!("{} limit", limited.scope.as_str())),
            _ => None,
        }
    }

    /// The stable reason code reported to the client and the audit log.
    pub(super) fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Stored(_) | Self::Handshake(..) => None,
            Self::Rejected(rejection) => Some(rejection.code()),
            Self::TooLarge | Self::TooLargeForStore(_) => Some("body_too_large"),
            Self::TimedOut => Some("body_timeout"),
            Self::Unreadable => Some("body_unreadable"),
            Self::StoreUnavailable(_) | Self::StreamNotReady => Some("store_unavailable"),
            Self::StoreFull(_) => Some("stream_full"),
            Self::ForwardedInvalid(_) => Some(ForwardedError::CODE),
            Self::HttpsRequired => Some("https_required"),
            Self::IpNotAllowed => Some("ip_not_allowed"),
            Self::RateLimited(_) => Some("rate_limited"),
            Self::Overloaded => Some("overloaded"),
            Self::NotFound => Some("not_found"),
            Self::UnknownEndpoint => Some("unknown_endpoint"),
            Self::MethodNotAllowed(_) => Some("method_not_allowed"),
            Self::UnsupportedMediaType => Some("unsupported_media_type"),
        }
    }

    pub(super) fn into_response(self) -> Response {
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
            Self::Handshake(handshake, _) => {
                let mut response = (StatusCode::OK, handshake.body).into_response();
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(handshake.content_type),
                );
                // The challenge is echoed: never let a browser sniff it as HTML.
                headers.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                // Built by the verifier from constants and checked values; one
                // that is not a valid header is left out rather than failing.
                for (name, value) in handshake.headers {
                    if let (Ok(name), Ok(value)) = (
                        header::HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(&value),
                    ) {
                        headers.insert(name, value);
                    }
                }
                response
            }
            // The key could not be fetched: not the sender's fault, and
            // a retry (which the providers make on a 5xx) may succeed.
            Self::Rejected(Rejection::KeyUnavailable) => {
                let mut response = error(StatusCode::SERVICE_UNAVAILABLE, reason);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                response
            }
            Self::Rejected(_) => error(StatusCode::UNAUTHORIZED, reason),
            Self::TooLarge | Self::TooLargeForStore(_) => {
                error(StatusCode::PAYLOAD_TOO_LARGE, reason)
            }
            Self::TimedOut => error(StatusCode::REQUEST_TIMEOUT, reason),
            Self::Unreadable => error(StatusCode::BAD_REQUEST, reason),
            Self::StoreUnavailable(_)
            | Self::StreamNotReady
            | Self::StoreFull(_)
            | Self::Overloaded => {
                let mut response = error(StatusCode::SERVICE_UNAVAILABLE, reason);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                response
            }
            Self::ForwardedInvalid(_) => error(StatusCode::BAD_REQUEST, reason),
            Self::NotFound | Self::UnknownEndpoint => error(StatusCode::NOT_FOUND, reason),
            Self::MethodNotAllowed(allow) => {
                let mut response = error(StatusCode::METHOD_NOT_ALLOWED, reason);
                response.headers_mut().insert(header::ALLOW, allow);
                response
            }
            Self::UnsupportedMediaType => error(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason),
            Self::HttpsRequired | Self::IpNotAllowed => error(StatusCode::FORBIDDEN, reason),
            Self::RateLimited(limited) => {
                let mut response = error(StatusCode::TOO_MANY_REQUESTS, reason);
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(limited.retry_after_secs),
                );
                response
            }
        }
    }
}

pub(super) fn error(status: StatusCode, reason: &str) -> Response {
    (status, axum::Json(json!({ "error": reason }))).into_response()
}
