//! One event, start to end: filter, attempt, decide, acknowledge, or
//! dead-letter; and its audit lines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument as _;

use crate::forward::metrics::Outcome;
use crate::forward::outcome::{self, Decision, Progress};
use crate::forward::plan::Plan;
use crate::forward::stored::{DeadLetterCause, StoredEvent};

use super::bind::ensure_dead_letter_stream;
use super::start::{DEAD_LETTER_TIMEOUT, Shared};

/// What a delivery task reports when it ends.
pub(super) struct Finished {
    pub(super) subject: String,
    pub(super) sequence: u64,
    /// Sent back for a retry: awaited back until then (ordered mode).
    pub(super) retrying_until: Option<Instant>,
}

/// One event, start to end: filter, attempt, decide, acknowledge (or send
/// back, or dead-letter then acknowledge).
pub(super) async fn process(
    shared: Arc<Shared>,
    message: jetstream::Message,
    slot: Option<OwnedSemaphorePermit>,
) -> Finished {
    let _slot = match slot {
        Some(slot) => Some(slot),
        None => Arc::clone(&shared.slots).acquire_owned().await.ok(),
    };
    let plan = &shared.plan;
    let event = match message.info() {
        Ok(info) => {
            shared.metrics.set_pending(info.pending);
            let published = info.published.unix_timestamp_nanos();
            let now = jiff::Timestamp::now().as_nanosecond();
            let age =
                Duration::from_nanos(u64::try_from(now.saturating_sub(published)).unwrap_or(0));
            StoredEvent::new(
                info.stream,
                info.stream_sequence,
                info.delivered,
                age,
                message.subject.as_str(),
                message.headers.clone(),
                message.payload.clone(),
            )
        }
        Err(err) => {
            // Not a JetStream message: nothing to acknowledge it with.
            tracing::error!(error = %err, "a message without JetStream metadata was skipped");
            return Finished {
                subject: message.subject.to_string(),
                sequence: 0,
                retrying_until: None,
            };
        }
    };
    let finished = |retrying_until| Finished {
        subject: event.subject.clone(),
        sequence: event.sequence,
        retrying_until,
    };

    if let Some(filter) = &shared.filter {
        match filter.matches(&event.filter_headers(), &event.body) {
            Ok(true) => {}
            outcome => {
                if let Err(error) = outcome {
                    shared.metrics.record_filter_error();
                    tracing::warn!(
                        subscription = plan.subscription.as_str(),
                        id = event.id.as_str(),
                        error = error.as_str(),
                        "the filter could not be evaluated for this event; it counts as not matching"
                    );
                }
                let _ = message.ack().await;
                shared.metrics.record(Outcome::Filtered);
                audit(plan, &event, None, "filtered", Duration::ZERO, None);
                return finished(None);
            }
        }
    }

    let progress = Progress {
        attempt: event.attempt,
        age: event.age,
    };
    if let Some(reason) = outcome::before_attempt(&plan.retry, progress) {
        let cause = DeadLetterCause {
            reason: reason.as_str(),
            status: None,
            error: Some(match reason {
                outcome::DeadReason::TooOld => format!(
                    "older than retry.maxAgeSeconds ({} s) when redelivered",
                    plan.retry.max_age.as_secs()
                ),
                _ => format!(
                    "delivered {} times, more than retry.maxAttempts ({})",
                    event.attempt, plan.retry.max_attempts
                ),
            }),
        };
        let retry = dead_letter(&shared, &message, &event, &cause, Duration::ZERO).await;
        return finished(retry);
    }

    if let Some(limiter) = &shared.limiter
        && limiter.check().is_err()
    {
        shared.metrics.record_rate_limited();
        limiter.until_ready().await;
    }
    let destination = shared.destination.load_full();
    // The attempt continues the trace stored with the event (the
    // receiver's publish span), and the destination gets its context.
    let span = crate::trace_span!(
        "hookwarden.delivery",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        hookwarden.subscription = plan.subscription.as_str(),
        messaging.destination.name = event.stream.as_str(),
        hookwarden.stream_sequence = event.sequence,
        hookwarden.attempt = event.attempt,
        http.response.status_code = tracing::field::Empty,
        hookwarden.outcome = tracing::field::Empty,
    );
    let mut outgoing = event.outgoing(plan);
    if let Some(stored) = &outgoing.trace {
        crate::telemetry::continue_stored(&span, stored);
    }
    if let Some(attempt) = crate::telemetry::trace_headers(&span) {
        outgoing.trace = Some(attempt);
    }
    shared.metrics.in_flight.inc();
    let report = destination
        .deliver(&outgoing)
        .instrument(span.clone())
        .await;
    shared.metrics.in_flight.dec();
    if let Some(status) = report.status() {
        span.record("http.response.status_code", status);
    }
    shared.metrics.observe_attempt(report.elapsed.as_secs_f64());
    let jitter = 0.5 + rand::random::<f64>() / 2.0;
    match outcome::decide(&plan.retry, &report.attempted, progress, jitter) {
        Decision::Ack => {
            span.record("hookwarden.outcome", "delivered");
            let _ = message.ack().await;
            shared.metrics.record(Outcome::Delivered);
            audit(
                plan,
                &event,
                report.status(),
                "delivered",
                report.elapsed,
                None,
            );
            finished(None)
        }
        Decision::Retry(delay) => {
            span.record("hookwarden.outcome", "retried");
            span.record("otel.status_code", "ERROR");
            let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            shared.metrics.record(Outcome::Retried);
            audit(
                plan,
                &event,
                report.status(),
                "retried",
                report.elapsed,
                report.error.as_deref(),
            );
            finished(Some(Instant::now() + delay + plan.ack_wait()))
        }
        Decision::DeadLetter(reason) => {
            span.record("hookwarden.outcome", "failed");
            span.record("otel.status_code", "ERROR");
            // The attempt's one audit line is the dead letter's (or its
            // failure's): it carries the status, duration and error.
            let cause = DeadLetterCause {
                reason: reason.as_str(),
                status: report.status(),
                error: report.error.clone(),
            };
            let retry = dead_letter(&shared, &message, &event, &cause, report.elapsed).await;
            finished(retry)
        }
    }
}

/// Stores the event in the dead-letter stream and, once JetStream
/// acknowledged that, acknowledges the original. A first publish that fails
/// (the dead-letter stream deleted while the forwarder runs) is tried once
/// more after creating the stream again from the plan. When that fails too
/// the original is sent back with a delay (nothing is lost; the next
/// delivery tries the dead letter again): the instant it is awaited back
/// until is returned. Writes the attempt's one audit line (`elapsed` is the
/// attempt's duration; zero when none was made).
async fn dead_letter(
    shared: &Shared,
    message: &jetstream::Message,
    event: &StoredEvent,
    cause: &DeadLetterCause,
    elapsed: Duration,
) -> Option<Instant> {
    let plan = &shared.plan;
    let headers = event.dead_letter_headers(&plan.subscription, cause, jiff::Timestamp::now());
    let publish = || async {
        let publish = async {
            shared
                .jetstream
                .publish_with_headers(
                    plan.dead_letter.subject.clone(),
                    headers.clone(),
                    event.body.clone(),
                )
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(DEAD_LETTER_TIMEOUT, publish).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err((err, false)),
            Err(_) => Err((
                format!(
                    "no acknowledgement within {} s",
                    DEAD_LETTER_TIMEOUT.as_secs()
                ),
                true,
            )),
        }
    };
    let mut stored = publish().await;
    // A refused publish (no stream takes the subject) is worth creating the
    // stream for; a timed-out one (NATS away) is not: trying again would
    // only hold the event past its ack wait.
    if let Err((_, false)) = stored {
        match ensure_dead_letter_stream(shared).await {
            Ok(()) => stored = publish().await,
            Err(why) => tracing::warn!(
                error = why.as_str(),
                "the dead-letter stream could not be created again"
            ),
        }
    }
    match stored {
        Ok(()) => {
            let _ = message.ack().await;
            shared.metrics.record(Outcome::DeadLettered);
            audit(
                plan,
                event,
                cause.status,
                "dead_lettered",
                elapsed,
                cause.error.as_deref(),
            );
            None
        }
        Err((error, _)) => {
            let jitter = 0.5 + rand::random::<f64>() / 2.0;
            let delay = plan.retry.delay(event.attempt, jitter);
            let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            shared.metrics.record(Outcome::DeadLetterFailed);
            audit(
                plan,
                event,
                cause.status,
                "dead_letter_failed",
                elapsed,
                cause.error.as_deref(),
            );
            tracing::error!(
                subscription = plan.subscription.as_str(),
                id = event.id.as_str(),
                dead_letter_stream = plan.dead_letter.stream.as_str(),
                dead_letter_subject = plan.dead_letter.subject.as_str(),
                error = error.as_str(),
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "the dead letter could not be stored; the event stays pending and is tried again"
            );
            Some(Instant::now() + delay + plan.ack_wait())
        }
    }
}

/// One audit line per attempt (`delivered`, `retried`, `dead_lettered`,
/// `dead_letter_failed`) and per event that ends without one (`filtered`,
/// or `dead_lettered` before an attempt): never the body, a header value or
/// a secret.
fn audit(
    plan: &Plan,
    event: &StoredEvent,
    status: Option<u16>,
    outcome: &str,
    elapsed: Duration,
    error: Option<&str>,
) {
    tracing::info!(
        target: "hookwarden::audit",
        subscription = plan.subscription.as_str(),
        id = event.id.as_str(),
        subject = event.subject.as_str(),
        sequence = event.sequence,
        attempt = event.attempt,
        status = status.map(u64::from),
        outcome,
        duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        error,
        "forward attempt"
    );
}
