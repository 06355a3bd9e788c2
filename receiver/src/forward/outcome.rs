//! What to do with an event after an attempt: acknowledge it, try again
//! later, or move it to the dead letters. Pure functions of the attempt's
//! result, the retry policy, the attempt count and the event's age, so every
//! rule is unit-tested without a destination or a NATS server.
//!
//! The rules:
//! - 2xx: delivered, acknowledged.
//! - 408, 429, 5xx (and any status above 599), timeouts, connection and TLS
//!   failures: tried again after [`RetryPolicy::delay`] (with jitter), or
//!   after the destination's `Retry-After` on a 429 or 503 when that is
//!   longer, never longer than the policy's maximum backoff.
//! - Any other 4xx: final, dead-lettered at once, unless
//!   `retry.retryClientErrors`.
//! - 3xx: redirects are never followed (a destination that moved is a
//!   misconfiguration, and following one could send a signed event to
//!   another host), so a 3xx is treated like a refusing 4xx: dead-lettered
//!   at once unless `retry.retryClientErrors`.
//! - A retry that would be attempt `maxAttempts + 1`, or of an event older
//!   than `retry.maxAgeSeconds` (since it was stored), is a dead letter.

use std::time::Duration;

use super::plan::RetryPolicy;

/// The longest `Retry-After` header value looked at; anything longer is
/// ignored (a delta-seconds fits in 10 digits, an HTTP-date in 29 bytes).
pub const MAX_RETRY_AFTER_LEN: usize = 64;

/// How an attempt ended, as far as the classification cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempted {
    /// The destination answered with this status.
    Answered {
        /// The HTTP status code.
        status: u16,
        /// Its `Retry-After`, parsed, when it sent one we could read.
        retry_after: Option<Duration>,
    },
    /// No answer within the timeout (connect, headers and body together).
    TimedOut,
    /// No answer at all: refused, reset, DNS, TLS, a broken response.
    Failed,
}

/// Why an event went to the dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// The destination refused it for good (a 4xx or 3xx not retried).
    Refused,
    /// It was tried `maxAttempts` times.
    AttemptsExhausted,
    /// It is older than `retry.maxAgeSeconds`.
    TooOld,
}

impl DeadReason {
    /// A stable code for headers, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::AttemptsExhausted => "attempts_exhausted",
            Self::TooOld => "too_old",
        }
    }
}

/// What to do with the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Delivered: acknowledge it.
    Ack,
    /// Not delivered: negative acknowledgement with this delay, so
    /// JetStream redelivers it then (nothing waits in the forwarder).
    Retry(Duration),
    /// Not deliverable: store it in the dead-letter stream, then
    /// acknowledge it.
    DeadLetter(DeadReason),
}

/// What is known of the event when deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// This attempt's number, 1-based: JetStream's delivery count of the
    /// message (redeliveries after a forwarder stopped count too).
    pub attempt: u32,
    /// Time since the event was stored.
    pub age: Duration,
}

/// Whether a (re)delivered event is still to be tried at all, before any
/// attempt: one delivered more often than `maxAttempts` (a dead-letter
/// publish failed, or forwarders stopped mid-attempt), or redelivered older
/// than `maxAgeSeconds`, goes straight to the dead letters. The first
/// delivery of an old event (a consumer that lagged) is still tried once.
pub fn before_attempt(policy: &RetryPolicy, progress: Progress) -> Option<DeadReason> {
    if progress.attempt > policy.max_attempts {
        Some(DeadReason::AttemptsExhausted)
    } else if progress.attempt > 1 && progress.age >= policy.max_age {
        Some(DeadReason::TooOld)
    } else {
        None
    }
}

/// The decision after an attempt. `jitter` is a random number in
/// [0.5, 1.0] ([`RetryPolicy::delay`]).
pub fn decide(
    policy: &RetryPolicy,
    attempted: &Attempted,
    progress: Progress,
    jitter: f64,
) -> Decision {
    let retry_after = match attempted {
        Attempted::Answered { status, .. } if (200..300).contains(status) => return Decision::Ack,
        Attempted::Answered {
            status,
            retry_after,
        } => {
            if !retryable_status(*status, policy.retry_client_errors) {
                return Decision::DeadLetter(DeadReason::Refused);
            }
            // Only these two define Retry-After as "come back later".
            if matches!(status, 429 | 503) {
                *retry_after
            } else {
                None
            }
        }
        Attempted::TimedOut | Attempted::Failed => None,
    };
    if progress.attempt >= policy.max_attempts {
        return Decision::DeadLetter(DeadReason::AttemptsExhausted);
    }
    if progress.age >= policy.max_age {
        return Decision::DeadLetter(DeadReason::TooOld);
    }
    let backoff = policy.delay(progress.attempt, jitter);
    let delay = match retry_after {
        // Never earlier than the destination asked nor than the backoff,
        // never later than the longest backoff: a destination cannot park
        // an event for a year with one header.
        Some(asked) => asked.max(backoff).min(policy.max_backoff),
        None => backoff,
    };
    Decision::Retry(delay)
}

/// Whether a non-2xx status is worth another attempt.
pub fn retryable_status(status: u16, retry_client_errors: bool) -> bool {
    match status {
        408 | 429 => true,
        300..=499 => retry_client_errors,
        // 1xx cannot end an exchange; anything else is the server's trouble.
        _ => true,
    }
}

/// A `Retry-After` value: delta-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`) relative to `now`. A date in the past
/// is zero; anything unreadable or longer than [`MAX_RETRY_AFTER_LEN`] is
/// `None`. Callers cap the result ([`decide`]); the parse itself never
/// overflows.
pub fn parse_retry_after(value: &[u8], now: jiff::Timestamp) -> Option<Duration> {
    if value.len() > MAX_RETRY_AFTER_LEN {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than fit are "very long": the cap applies.
        return Some(Duration::from_secs(text.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(text)
        .ok()?;
    let seconds = at.as_second().saturating_sub(now.as_second());
    Some(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            max_age: Duration::from_secs(3600),
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            retry_client_errors: false,
        }
    }

    fn at(attempt: u32) -> Progress {
        Progress {
            attempt,
            age: Duration::from_secs(10),
        }
    }

    fn answered(status: u16) -> Attempted {
        Attempted::Answered {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn two_hundreds_are_delivered_whatever_the_attempt() {
        for status in [200, 201, 202, 204, 299] {
            assert_eq!(
                decide(&policy(), &answered(status), at(1), 1.0),
                Decision::Ack
            );
            // Even past the limits: the destination has it.
            let late = Progress {
                attempt: 99,
                age: Duration::from_secs(99_999),
            };
            assert_eq!(
                decide(&policy(), &answered(status), late, 1.0),
                Decision::Ack
            );
        }
    }

    #[test]
    fn server_errors_timeouts_and_failures_are_retried_with_backoff() {
        for attempted in [
            answered(500),
            answered(502),
            answered(503),
            answered(504),
            answered(408),
            answered(429),
            answered(600),
            Attempted::TimedOut,
            Attempted::Failed,
        ] {
            assert_eq!(
                decide(&policy(), &attempted, at(1), 1.0),
                Decision::Retry(Duration::from_secs(2)),
                "{attempted:?}"
            );
            assert_eq!(
                decide(&policy(), &attempted, at(3), 0.5),
                Decision::Retry(Duration::from_secs(4)),
                "{attempted:?}"
            );
        }
    }

    #[test]
    fn client_errors_and_redirects_are_final_unless_configured() {
        for status in [301, 302, 307, 400, 401, 403, 404, 410, 413, 422] {
            assert_eq!(
                decide(&policy(), &answered(status), at(1), 1.0),
                Decision::DeadLetter(DeadReason::Refused),
                "{status}"
            );
            let retrying = RetryPolicy {
                retry_client_errors: true,
                ..policy()
            };
            assert_eq!(
                decide(&retrying, &answered(status), at(1), 1.0),
                Decision::Retry(Duration::from_secs(2)),
                "{status}"
            );
        }
    }

    #[test]
    fn the_last_attempt_and_old_events_end_in_the_dead_letters() {
        assert_eq!(
            decide(&policy(), &answered(500), at(5), 1.0),
            Decision::DeadLetter(DeadReason::AttemptsExhausted)
        );
        assert_eq!(
            decide(&policy(), &Attempted::Failed, at(4), 1.0),
            Decision::Retry(Duration::from_secs(16))
        );
        let old = Progress {
            attempt: 2,
            age: Duration::from_secs(3600),
        };
        assert_eq!(
            decide(&policy(), &Attempted::TimedOut, old, 1.0),
            Decision::DeadLetter(DeadReason::TooOld)
        );
        let one_attempt = RetryPolicy {
            max_attempts: 1,
            ..policy()
        };
        assert_eq!(
            decide(&one_attempt, &answered(503), at(1), 1.0),
            Decision::DeadLetter(DeadReason::AttemptsExhausted)
        );
    }

    #[test]
    fn before_an_attempt_only_exhausted_or_old_redeliveries_are_skipped() {
        assert_eq!(before_attempt(&policy(), at(1)), None);
        assert_eq!(before_attempt(&policy(), at(5)), None);
        assert_eq!(
            before_attempt(&policy(), at(6)),
            Some(DeadReason::AttemptsExhausted)
        );
        let old = |attempt| Progress {
            attempt,
            age: Duration::from_secs(7200),
        };
        assert_eq!(before_attempt(&policy(), old(1)), None, "tried once");
        assert_eq!(before_attempt(&policy(), old(2)), Some(DeadReason::TooOld));
    }

    #[test]
    fn retry_after_is_honoured_on_429_and_503_within_the_cap() {
        let asked = |status, seconds| Attempted::Answered {
            status,
            retry_after: Some(Duration::from_secs(seconds)),
        };
        assert_eq!(
            decide(&policy(), &asked(429, 30), at(1), 1.0),
            Decision::Retry(Duration::from_secs(30))
        );
        assert_eq!(
            decide(&policy(), &asked(503, 30), at(1), 1.0),
            Decision::Retry(Duration::from_secs(30))
        );
        // Capped at the maximum backoff.
        assert_eq!(
            decide(&policy(), &asked(429, 86_400 * 365), at(1), 1.0),
            Decision::Retry(Duration::from_secs(60))
        );
        // Never earlier than the backoff.
        assert_eq!(
            decide(&policy(), &asked(429, 0), at(3), 1.0),
            Decision::Retry(Duration::from_secs(8))
        );
        // Other statuses do not define it.
        assert_eq!(
            decide(&policy(), &asked(500, 30), at(1), 1.0),
            Decision::Retry(Duration::from_secs(2))
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates_boundedly() {
        let now: jiff::Timestamp = "2015-10-21T07:27:00Z".parse().expect("time");
        assert_eq!(
            parse_retry_after(b"120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(b" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(b"99999999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse_retry_after(b"Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after(b"Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past"
        );
        for bad in [
            &b""[..],
            b"-5",
            b"1.5",
            b"soon",
            b"\xff\xfe",
            &[b'1'; MAX_RETRY_AFTER_LEN + 1],
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }
}
