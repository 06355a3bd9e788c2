//! A delivery in the foreground: `hookwarden replay` and `hookwarden dlq
//! redrive` send a stored event through the same [`Destination`] (same
//! signer, same client, `Hookwarden-Replay: true`) and the same
//! classification ([`outcome::decide`]) as the forwarder, but retry in the
//! process, waiting out each delay, instead of through the consumer: a
//! replay never touches the subscription's durable consumer, and reports
//! at its end what could not be delivered.
//!
//! The subscription's retry policy applies with one difference: its
//! maximum age counts from the replay's first attempt, not from when the
//! event was stored (a replayed event is old by nature; measured from its
//! storage it could never be retried).

use std::future::Future;
use std::time::{Duration, Instant};

use super::delivery::{Destination, Outgoing, Report};
use super::outcome::{self, DeadReason, Decision, Progress};
use super::plan::RetryPolicy;

/// How a replayed event ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Attempts made.
    pub attempts: u32,
    /// The last HTTP status, when the destination answered.
    pub status: Option<u16>,
    /// `None` when delivered (2xx); else why it was given up.
    pub failure: Option<Failure>,
}

/// Why a replayed event was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// As for a dead letter: refused, attempts exhausted, too old.
    pub reason: DeadReason,
    /// The last attempt's error text (bounded, never a secret).
    pub error: String,
}

/// Sends `event` (marked as a replay) until the destination answers 2xx or
/// the policy gives up, sleeping with `sleep` between attempts (the
/// policy's backoff with jitter, or a longer `Retry-After` within the
/// maximum backoff). At most `policy.max_attempts` attempts.
pub async fn deliver<S, F>(
    destination: &Destination,
    mut event: Outgoing,
    policy: &RetryPolicy,
    mut sleep: S,
) -> Replayed
where
    S: FnMut(Duration) -> F,
    F: Future<Output = ()>,
{
    event.replay = true;
    let started = Instant::now();
    let mut last: Option<Report> = None;
    for attempt in 1..=policy.max_attempts.max(1) {
        event.attempt = attempt;
        let report = destination.deliver(&event).await;
        let progress = Progress {
            attempt,
            age: started.elapsed(),
        };
        let jitter = 0.5 + rand::random::<f64>() / 2.0;
        match outcome::decide(policy, &report.attempted, progress, jitter) {
            Decision::Ack => {
                return Replayed {
                    attempts: attempt,
                    status: report.status(),
                    failure: None,
                };
            }
            Decision::DeadLetter(reason) => {
                return Replayed {
                    attempts: attempt,
                    status: report.status(),
                    failure: Some(Failure {
                        reason,
                        error: report.error.unwrap_or_default(),
                    }),
                };
            }
            Decision::Retry(delay) => {
                last = Some(report);
                sleep(delay).await;
            }
        }
    }
    // Only reached when `decide` retried the last attempt, which it never
    // does; kept total rather than trusted.
    let report = last;
    Replayed {
        attempts: policy.max_attempts.max(1),
        status: report.as_ref().and_then(Report::status),
        failure: Some(Failure {
            reason: DeadReason::AttemptsExhausted,
            error: report.and_then(|r| r.error).unwrap_or_default(),
        }),
    }
}
