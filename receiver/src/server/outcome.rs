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

/// What an outcome means: the status the sender gets, the label the audit
/// line and the metrics count it under, and the stable reason code both
/// carry (none for a success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Meaning {
    pub(super) status: StatusCode,
    pub(super) label: &'static str,
    pub(super) reason: Option<&'static str>,
}

impl Meaning {
    const fn new(status: StatusCode, label: &'static str, reason: Option<&'static str>) -> Self {
        Self {
            status,
            label,
            reason,
        }
    }
}

impl Outcome {
    /// The one table from outcome to status, label and reason.
    pub(super) fn meaning(&self) -> Meaning {
        use StatusCode as S;
        let refused = |status, label, reason| Meaning::new(status, label, Some(reason));
        match self {
            Self::Stored(Stored {
                duplicate: false, ..
            }) => Meaning::new(S::OK, "stored", None),
            Self::Stored(Stored {
                duplicate: true, ..
            }) => Meaning::new(S::OK, "duplicate", None),
            Self::Handshake(..) => Meaning::new(S::OK, "handshake", None),
            // The key could not be fetched: not the sender's fault, and
            // a retry (which the providers make on a 5xx) may succeed.
            Self::Rejected(rejection @ Rejection::KeyUnavailable) => {
                refused(S::SERVICE_UNAVAILABLE, "rejected", rejection.code())
            }
            Self::Rejected(rejection) => refused(S::UNAUTHORIZED, "rejected", rejection.code()),
            Self::TooLarge | Self::TooLargeForStore(_) => {
                refused(S::PAYLOAD_TOO_LARGE, "too_large", "body_too_large")
            }
            Self::TimedOut => refused(S::REQUEST_TIMEOUT, "timed_out", "body_timeout"),
            Self::Unreadable => refused(S::BAD_REQUEST, "bad_request", "body_unreadable"),
            Self::StoreUnavailable(_) | Self::StreamNotReady => refused(
                S::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "store_unavailable",
            ),
            Self::StoreFull(_) => {
                refused(S::SERVICE_UNAVAILABLE, "store_unavailable", "stream_full")
            }
            Self::ForwardedInvalid(_) => {
                refused(S::BAD_REQUEST, "bad_request", ForwardedError::CODE)
            }
            Self::HttpsRequired => refused(S::FORBIDDEN, "forbidden", "https_required"),
            Self::IpNotAllowed => refused(S::FORBIDDEN, "forbidden", "ip_not_allowed"),
            Self::RateLimited(_) => refused(S::TOO_MANY_REQUESTS, "rate_limited", "rate_limited"),
            Self::Overloaded => refused(S::SERVICE_UNAVAILABLE, "overloaded", "overloaded"),
            Self::NotFound => refused(S::NOT_FOUND, "bad_request", "not_found"),
            Self::UnknownEndpoint => refused(S::NOT_FOUND, "bad_request", "unknown_endpoint"),
            Self::MethodNotAllowed(_) => {
                refused(S::METHOD_NOT_ALLOWED, "bad_request", "method_not_allowed")
            }
            Self::UnsupportedMediaType => refused(
                S::UNSUPPORTED_MEDIA_TYPE,
                "bad_request",
                "unsupported_media_type",
            ),
        }
    }

    pub(super) fn label(&self) -> &'static str {
        self.meaning().label
    }

    /// The stable reason code reported to the client and the audit log.
    pub(super) fn reason(&self) -> Option<&'static str> {
        self.meaning().reason
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

    /// The answer: the table's status and reason, and the headers and body
    /// some outcomes carry. Every 503 asks the sender to retry later.
    pub(super) fn into_response(self) -> Response {
        let Meaning { status, reason, .. } = self.meaning();
        let reason = reason.unwrap_or_default();
        match self {
            Self::Stored(stored) => (
                status,
                axum::Json(json!({
                    "status": "stored",
                    "sequence": stored.sequence,
                    "duplicate": stored.duplicate,
                })),
            )
                .into_response(),
            Self::Handshake(handshake, _) => {
                let mut response = (status, handshake.body).into_response();
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
            Self::MethodNotAllowed(allow) => {
                let mut response = error(status, reason);
                response.headers_mut().insert(header::ALLOW, allow);
                response
            }
            Self::RateLimited(limited) => {
                let mut response = error(status, reason);
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(limited.retry_after_secs),
                );
                response
            }
            _ => {
                let mut response = error(status, reason);
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                }
                response
            }
        }
    }
}

pub(super) fn error(status: StatusCode, reason: &str) -> Response {
    (status, axum::Json(json!({ "error": reason }))).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The answer follows the table, whatever headers or body the outcome
    /// adds; every 503 asks the sender to retry; a success has no reason.
    #[test]
    fn every_answer_has_its_tables_status_and_every_503_a_retry_after() {
        let timeout = || PublishError::Timeout(Duration::from_secs(2));
        let outcomes = [
            Outcome::Stored(Stored {
                sequence: 1,
                duplicate: false,
            }),
            Outcome::Stored(Stored {
                sequence: 1,
                duplicate: true,
            }),
            Outcome::Rejected(Rejection::KeyUnavailable),
            Outcome::Rejected(Rejection::KeyUrlNotAllowed),
            Outcome::TooLarge,
            Outcome::TooLargeForStore(timeout()),
            Outcome::TimedOut,
            Outcome::Unreadable,
            Outcome::StoreUnavailable(timeout()),
            Outcome::StreamNotReady,
            Outcome::StoreFull(timeout()),
            Outcome::ForwardedInvalid(ForwardedError {
                header: "forwarded",
                reason: "malformed",
            }),
            Outcome::HttpsRequired,
            Outcome::IpNotAllowed,
            Outcome::RateLimited(limits::Limited {
                scope: limits::Scope::PerSourceIp,
                retry_after_secs: 3,
            }),
            Outcome::Overloaded,
            Outcome::NotFound,
            Outcome::UnknownEndpoint,
            Outcome::MethodNotAllowed(HeaderValue::from_static("POST")),
            Outcome::UnsupportedMediaType,
        ];
        for outcome in outcomes {
            let meaning = outcome.meaning();
            assert_eq!(meaning.reason.is_none(), meaning.status.is_success());
            let response = outcome.into_response();
            assert_eq!(response.status(), meaning.status, "{}", meaning.label);
            if meaning.status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(
                    response.headers().get(header::RETRY_AFTER),
                    Some(&HeaderValue::from(RETRY_AFTER_SECS)),
                    "{:?}",
                    meaning.reason
                );
            }
        }
    }
}
