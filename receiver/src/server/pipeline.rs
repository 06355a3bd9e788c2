//! One request's steps, top to bottom: the path and method, the client,
//! the cheap checks without the body, the body, the signature, the store,
//! the audit line and the answer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use hookwarden_crds::PayloadLogging;
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::body;
use crate::clientip::ClientAddr;
use crate::limits;
use crate::metrics::{EndpointLabels, Metrics};
use crate::publish::{Delivery, PublishError, body_sha256};
use crate::quarantine::Refusal;
use crate::request::RequestRules;
use crate::telemetry;
use crate::verify::{Head, Incoming, Rejection, Verdict};

use super::audit::{AuditRecord, Facts};
use super::names::new_request_id;
use super::outcome::Outcome;
use super::state::{AppState, Snapshot, SourceFilter};

/// One request, from its path to its audit line.
pub(super) async fn process(state: AppState, peer: SocketAddr, request: Request) -> Response {
    let started = Instant::now();
    let received_at = jiff::Timestamp::now();
    let _in_flight = InFlight::enter(&state.metrics);
    let request_id = new_request_id();
    let (parts, body) = request.into_parts();
    // One configuration for the whole request, even if a reload lands meanwhile.
    let snapshot = state.current.load_full();
    // Disabled (no cost beyond the callsite check) unless traces are on.
    // Attributes: no secret, header value or body, ever.
    let target = snapshot.publisher.target();
    let span = crate::trace_span!(
        "hookwarden.request",
        otel.kind = "server",
        otel.status_code = Empty,
        hookwarden.endpoint = target.endpoint.as_str(),
        hookwarden.provider = target.provider.as_str(),
        hookwarden.request_id = request_id.as_str(),
        http.request.method = parts.method.as_str(),
        url.path = parts.uri.path(),
        client.address = Empty,
        http.response.status_code = Empty,
        hookwarden.outcome = Empty,
        hookwarden.reason = Empty,
        hookwarden.body_size = Empty,
        messaging.destination.name = Empty,
        hookwarden.stream_sequence = Empty,
        hookwarden.duplicate = Empty,
    );
    telemetry::adopt_sender_context(&span, &parts.headers, snapshot.trust_incoming_traceparent);
    let record = if parts.uri.path() != &*snapshot.filter.path {
        Facts::default().ended(Outcome::NotFound)
    } else if let Err(outcome) = check_method(
        &snapshot.request,
        &parts.method,
        snapshot.verifier.answers_get(),
        snapshot.verifier.answers_options(),
        snapshot.verifier.answers_head(),
    ) {
        Facts::default().ended(outcome)
    } else {
        handle(&state, &snapshot, &parts, body, peer.ip(), received_at)
            .instrument(span.clone())
            .await
    };
    record.emit(&state, &snapshot, &parts, peer, &request_id, started);

    if !span.is_disabled() {
        record_outcome(&span, &snapshot, &record);
    }
    let AuditRecord { outcome, facts } = record;
    let reason = outcome.reason();
    let error = outcome.error();
    let mut response = outcome.into_response();
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    // 4xx only: a 503 is the store's trouble, not the sender's.
    if let (Some(quarantine), Some(reason)) = (&snapshot.quarantine, reason)
        && response.status().is_client_error()
    {
        quarantine.offer(&Refusal {
            request_id: &request_id,
            received_at,
            status: response.status().as_u16(),
            reason,
            client_ip: facts.client_ip,
            peer_ip: peer.ip(),
            head: Some(&parts),
            secret_headers: &snapshot.verifier.secret_headers(),
            plain_headers: &snapshot.verifier.plain_headers(),
            body_size: facts.body_size,
            body_sha256: facts.body_sha256.as_deref(),
            body: facts.body.as_deref(),
            error: error.as_deref(),
        });
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The request span's outcome attributes (the audit line's, less anything
/// the sender wrote: no header value, event type or delivery id).
fn record_outcome(span: &tracing::Span, snapshot: &Snapshot, record: &AuditRecord) {
    let AuditRecord { outcome, facts } = record;
    span.record("hookwarden.outcome", outcome.label());
    if let Some(reason) = outcome.reason() {
        span.record("hookwarden.reason", reason);
    }
    if let Some(ip) = facts.client_ip {
        span.record("client.address", tracing::field::display(ip.to_canonical()));
    }
    if let Some(size) = facts.body_size {
        span.record("hookwarden.body_size", size);
    }
    if let Outcome::Stored(stored) | Outcome::Handshake(_, Some(stored)) = outcome {
        span.record(
            "messaging.destination.name",
            snapshot.publisher.target().stream.as_str(),
        );
        span.record("hookwarden.stream_sequence", stored.sequence);
        span.record("hookwarden.duplicate", stored.duplicate);
    }
}

/// Counts a request as in flight until dropped.
struct InFlight(Arc<Metrics>);

impl InFlight {
    fn enter(metrics: &Arc<Metrics>) -> Self {
        metrics.in_flight.inc();
        Self(Arc::clone(metrics))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// The request pipeline: client IP, HTTPS requirement, allowlist, source
/// rate limit, media type, header precheck (all without the body), then the
/// body under a per-source bound, the signature, the global rate limit and
/// a publish slot, and the store. Returns how the request ended with what
/// was learned on the way ([`AuditRecord`]), for the audit line, the span
/// and the quarantine.
async fn handle(
    state: &AppState,
    snapshot: &Snapshot,
    parts: &axum::http::request::Parts,
    body: Body,
    peer_ip: IpAddr,
    received_at: jiff::Timestamp,
) -> AuditRecord {
    let mut facts = Facts::default();
    let filter = &snapshot.filter;
    let headers = &parts.headers;
    let resolved = {
        let _step = crate::trace_span!("hookwarden.client_ip").entered();
        filter.proxies.resolve(peer_ip, headers)
    };
    let client = match resolved {
        Ok(client) => client,
        Err(err) => return facts.ended(Outcome::ForwardedInvalid(err)),
    };
    facts.client_ip = Some(client.client_ip);
    let admitted = {
        let _step = crate::trace_span!("hookwarden.limits").entered();
        admit(filter, &client)
    };
    if let Err(outcome) = admitted {
        return facts.ended(outcome);
    }
    // A GET, OPTIONS or HEAD has no body, so its media type means nothing
    // (and Meta's GET, Event Grid's OPTIONS and Trello's HEAD handshakes
    // send none).
    if parts.method != Method::GET
        && parts.method != Method::OPTIONS
        && parts.method != Method::HEAD
        && !snapshot.request.allows_content_type(headers)
    {
        return facts.ended(Outcome::UnsupportedMediaType);
    }
    if body::declared_over(headers, snapshot.request.body_limit()) {
        return facts.ended(Outcome::TooLarge);
    }
    let head = Head {
        method: &parts.method,
        uri: &parts.uri,
        headers,
    };
    if let Err(rejection) = snapshot.verifier.precheck(&head) {
        return facts.ended(Outcome::Rejected(rejection));
    }
    let source_ip = client.client_ip;
    let Some(reading) = snapshot.body_reads.try_take(source_ip) else {
        return facts.ended(Outcome::RateLimited(limits::Limited {
            scope: limits::Scope::ConcurrentPerSource,
            retry_after_secs: 1,
        }));
    };
    let read = match body::read(
        headers,
        body,
        snapshot.request.body_limit(),
        &state.options.body_pace,
        &state.budget,
    )
    .instrument(crate::trace_span!("hookwarden.body"))
    .await
    {
        Ok(read) => read,
        Err(err) => return facts.ended(err.into()),
    };
    drop(reading);
    let body = read.bytes.clone();
    facts.body_size = Some(body.len());
    // Hashed once: the audit line, the message id and the stored header.
    let sha256 = body_sha256(&body);
    facts.body_sha256 = Some(sha256.clone());
    let keep_for_quarantine = snapshot
        .quarantine
        .as_ref()
        .is_some_and(|q| q.target().body_prefix > 0);
    if snapshot.payload == PayloadLogging::Full || keep_for_quarantine {
        facts.body = Some(body.clone());
    }

    let incoming = Incoming {
        method: &parts.method,
        uri: &parts.uri,
        headers,
        body: &body,
    };
    let verifying = crate::trace_span!("hookwarden.verify");
    // A preset whose key is fetched (SNS, PayPal, Google) gets it into its
    // cache first; `check` stays synchronous.
    if let Some(fetching) = snapshot.verifier.prefetch(&incoming) {
        match tokio::time::timeout(crate::verify::PREFETCH_TIMEOUT, fetching)
            .instrument(verifying.clone())
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(rejection)) => return facts.ended(Outcome::Rejected(rejection)),
            Err(_) => return facts.ended(Outcome::Rejected(Rejection::KeyUnavailable)),
        }
    }
    let checked = verifying.in_scope(|| snapshot.verifier.check(&incoming));
    drop(verifying);
    let (verified, handshake) = match checked {
        Ok(Verdict::Deliver(verified)) => (verified, None),
        Ok(Verdict::Handshake(handshake)) => (handshake.verified.clone(), Some(handshake)),
        Err(rejection) => return facts.ended(Outcome::Rejected(rejection)),
    };
    facts.verified = Some(verified.clone());
    if let Err(limited) = filter.limits.check_global() {
        return facts.ended(Outcome::RateLimited(limited));
    }
    // A handshake is answered, and stored only when the spec asks for it.
    if let Some(handshake) = handshake.as_ref().filter(|h| !h.publish) {
        return facts.ended(Outcome::Handshake(Box::new(handshake.clone()), None));
    }
    // Held until the delivery is stored (or refused): the publish may wait
    // for JetStream all that time.
    let Ok(_permit) = state.in_flight.try_acquire() else {
        return facts.ended(Outcome::Overloaded);
    };
    // In a pool, also one of all its endpoints' slots.
    let _pool_permit = match &state.pool_in_flight {
        Some(pool) => match pool.try_acquire() {
            Ok(permit) => Some(permit),
            Err(_) => return facts.ended(Outcome::Overloaded),
        },
        None => None,
    };
    let publisher = &snapshot.publisher;
    let publish_span = crate::trace_span!(
        "hookwarden.publish",
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.destination.name = publisher.target().stream.as_str(),
        hookwarden.stream_sequence = Empty,
        hookwarden.duplicate = Empty,
    );
    // Consumers continue the trace from the publish span: ours, never the
    // sender's unless trusted (the sender's is kept apart, as a claim).
    let sender_traceparent = crate::publish::checked_traceparent(
        headers.get("traceparent").and_then(|v| v.to_str().ok()),
    );
    let (ours, tracestate) = telemetry::trace_headers(&publish_span)
        .map_or((None, None), |h| (Some(h.traceparent), h.tracestate));
    let delivery = Delivery {
        message_id: crate::publish::message_id(verified.delivery_id.as_deref(), &sha256),
        body,
        body_sha256: sha256,
        event: verified.event,
        delivery_id: verified.delivery_id,
        received_at,
        source_ip,
        content_type: header_text(headers, &header::CONTENT_TYPE),
        content_encoding: header_text(headers, &header::CONTENT_ENCODING),
        traceparent: crate::publish::traceparent(
            ours,
            sender_traceparent.as_deref(),
            snapshot.trust_incoming_traceparent,
        ),
        tracestate,
        sender_traceparent,
        provider_headers: crate::provider_headers::pick(
            &snapshot.publisher.target().store_headers,
            headers,
        ),
    };
    drop(read);
    let publishing = Instant::now();
    let published = publisher
        .publish(&delivery)
        .instrument(publish_span.clone())
        .await;
    if let Ok(stored) = &published {
        publish_span.record("hookwarden.stream_sequence", stored.sequence);
        publish_span.record("hookwarden.duplicate", stored.duplicate);
    }
    state
        .metrics
        .publish_seconds
        .get_or_create(&EndpointLabels {
            endpoint: publisher.target().endpoint.clone(),
        })
        .observe(publishing.elapsed().as_secs_f64());
    facts.ended(match published {
        Ok(stored) => match handshake {
            Some(handshake) => Outcome::Handshake(Box::new(handshake), Some(stored)),
            None => Outcome::Stored(stored),
        },
        Err(err @ PublishError::TooLarge(_)) => Outcome::TooLargeForStore(err),
        Err(err @ PublishError::Full(_)) => Outcome::StoreFull(err),
        Err(err) => Outcome::StoreUnavailable(err),
    })
}

/// A header's value as text, if it is.
fn header_text(headers: &axum::http::HeaderMap, name: &header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The endpoint's methods (`spec.request.methods`, `POST` by default); any
/// other is answered 405 with `Allow` listing them. A `GET` delivery goes
/// through the whole pipeline like any other (empty body, verified). A
/// preset whose provider sends a `GET` handshake (Meta's `hub.mode=subscribe`)
/// also takes `GET`, whatever the list says: its verifier answers or refuses it.
/// Likewise `OPTIONS` for a preset whose provider sends the CloudEvents
/// abuse-protection handshake (Azure Event Grid), and `HEAD` for one whose
/// provider checks the URL with it before creating a webhook (Trello).
fn check_method(
    rules: &RequestRules,
    method: &Method,
    answers_get: bool,
    answers_options: bool,
    answers_head: bool,
) -> Result<(), Outcome> {
    if rules.allows_method(method)
        || (answers_get && method == Method::GET)
        || (answers_options && method == Method::OPTIONS)
        || (answers_head && method == Method::HEAD)
    {
        Ok(())
    } else {
        Err(Outcome::MethodNotAllowed(rules.allow().clone()))
    }
}

/// The checks on the client before anything is read, in order: HTTPS
/// (behind an ingress), allowlist, the source's rate limit. The rate limit
/// comes last so requests that are refused anyway do not use up a bucket.
pub(super) fn admit(filter: &SourceFilter, client: &ClientAddr) -> Result<(), Outcome> {
    if filter.require_forwarded_https && !client.forwarded_https() {
        return Err(Outcome::HttpsRequired);
    }
    if !filter.allowed.is_empty() && !filter.allowed.contains(client.client_ip) {
        return Err(Outcome::IpNotAllowed);
    }
    filter
        .limits
        .check_source(client.client_ip)
        .map_err(Outcome::RateLimited)
}
