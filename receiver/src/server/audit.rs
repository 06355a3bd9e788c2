//! The audit record of every request to the endpoint path: built by the
//! pipeline, written once as its audit line (tracing target
//! `hookwarden::audit`), which never contains the secret or the signature.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use hookwarden_crds::PayloadLogging;

use crate::verify::Verified;

use super::outcome::Outcome;
use super::state::{AppState, Snapshot};

/// What the audit line reports beyond the outcome.
#[derive(Debug, Default)]
pub(super) struct Facts {
    /// The resolved client; `None` when the forwarding headers were invalid.
    pub(super) client_ip: Option<IpAddr>,
    pub(super) body_size: Option<usize>,
    pub(super) body_sha256: Option<String>,
    pub(super) verified: Option<Verified>,
    /// The body as read, kept only for `full` payload logging.
    pub(super) body: Option<Bytes>,
}

impl Facts {
    /// The request's audit record, once its outcome is known.
    pub(super) fn ended(self, outcome: Outcome) -> AuditRecord {
        AuditRecord {
            outcome,
            facts: self,
        }
    }
}

/// How a request ended and what was learned on the way: built by the
/// request pipeline (its `handle`), written once ([`AuditRecord::emit`]).
#[derive(Debug)]
pub(super) struct AuditRecord {
    pub(super) outcome: Outcome,
    pub(super) facts: Facts,
}

impl AuditRecord {
    /// Counts the request and writes its audit line.
    pub(super) fn emit(
        &self,
        state: &AppState,
        snapshot: &Snapshot,
        parts: &axum::http::request::Parts,
        peer: SocketAddr,
        request_id: &str,
        started: Instant,
    ) {
        let Self { outcome, facts } = self;
        let verified = facts.verified.as_ref();
        let stored = match outcome {
            Outcome::Stored(stored) | Outcome::Handshake(_, Some(stored)) => Some(stored),
            _ => None,
        };
        let error = outcome.error();
        let endpoint = snapshot.publisher.target().endpoint.as_str();
        // Redacted headers (`headers`, `full`) and the body's start (`full`).
        let logged_headers = (snapshot.payload != PayloadLogging::None).then(|| {
            crate::redact::headers_json(
                &parts.headers,
                &snapshot.verifier.secret_headers(),
                &snapshot.verifier.plain_headers(),
            )
            .to_string()
        });
        // The body may be kept for the quarantine's prefix too: logged only
        // when the spec asks for it.
        let logged_body = facts
            .body
            .as_deref()
            .filter(|_| snapshot.payload == PayloadLogging::Full)
            .map(crate::redact::body_excerpt);
        state
            .metrics
            .record(endpoint, outcome.label(), outcome.reason());
        if let Outcome::RateLimited(limited) = outcome {
            state
                .metrics
                .record_rate_limited(endpoint, limited.scope.as_str());
        }
        tracing::info!(
            target: "hookwarden::audit",
            request_id,
            endpoint,
            // Formatted straight into the line, not into a `String` first.
            client_ip = facts.client_ip.map(tracing::field::display),
            peer_ip = %peer.ip().to_canonical(),
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
            headers = logged_headers.as_deref(),
            body = logged_body.as_ref().map(|b| b.text.as_str()),
            body_encoding = logged_body.as_ref().map(|b| b.encoding),
            payload_truncated = logged_body.as_ref().map(|b| b.truncated),
            "webhook delivery"
        );
    }
}
