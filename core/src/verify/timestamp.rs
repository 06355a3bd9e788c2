//! The one place signed timestamps are parsed and checked against the clock.
//!
//! Providers write a signed time as plain Unix seconds (Stripe, Slack,
//! Standard Webhooks, Discord, ...), as Unix milliseconds inside the body
//! (Linear) or as RFC 3339 (Twitch, Zendesk, ...). Each form has exactly one
//! parser here, with one rule: digits only, bounded length, anything else is
//! `timestamp_malformed` — never trimmed, never signed, never guessed.

use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use super::{Rejection, single_header};

/// The default replay window: five minutes either way, as Standard Webhooks
/// and most providers use.
pub const DEFAULT_TIMESTAMP_TOLERANCE_SECS: u32 = 300;

/// Seconds since the Unix epoch; injectable so tests control time. Every
/// verifier reads the time through one of these, never the system directly.
pub type Clock = fn() -> i64;

/// The system clock as a [`Clock`].
pub fn system_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Unix seconds written as plain decimal digits (no sign, no spaces), as
/// every provider sends them. At most 18 digits: an absurdly long value is
/// malformed without being parsed (and cannot overflow).
pub(crate) fn parse_unix_seconds(text: &str) -> Result<i64, Rejection> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::TimestampMalformed);
    }
    text.parse().map_err(|_| Rejection::TimestampMalformed)
}

/// An RFC 3339 timestamp (`2024-01-01T00:00:00Z`, with or without fraction
/// and offset) in Unix seconds. No RFC 3339 text comes near 64 bytes.
pub(crate) fn parse_rfc3339(text: &str) -> Result<i64, Rejection> {
    if text.is_empty() || text.len() > 64 {
        return Err(Rejection::TimestampMalformed);
    }
    text.parse::<jiff::Timestamp>()
        .map(jiff::Timestamp::as_second)
        .map_err(|_| Rejection::TimestampMalformed)
}

/// The Unix-seconds timestamp header `name`: its text (what is signed) and
/// its value. Missing, repeated or not digits are told apart.
pub(crate) fn timestamp_header<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<(&'a str, i64), Rejection> {
    let text = single_header(headers, name)
        .map_err(|()| Rejection::TimestampMalformed)?
        .ok_or(Rejection::TimestampMissing)?;
    Ok((text, parse_unix_seconds(text)?))
}

/// Refuses a timestamp more than `tolerance` seconds from `now`, either way:
/// too old is a replay, too far ahead is a badly wrong clock.
pub(crate) fn check_fresh(now: i64, timestamp: i64, tolerance: u32) -> Result<(), Rejection> {
    if now.abs_diff(timestamp) > u64::from(tolerance) {
        Err(Rejection::TimestampOutOfTolerance)
    } else {
        Ok(())
    }
}

/// As [`check_fresh`] for Unix milliseconds (Linear's `webhookTimestamp`).
pub(crate) fn check_fresh_millis(now: i64, millis: i64, tolerance: u32) -> Result<(), Rejection> {
    let now_millis = i128::from(now) * 1000;
    if (now_millis - i128::from(millis)).unsigned_abs() > u128::from(tolerance) * 1000 {
        Err(Rejection::TimestampOutOfTolerance)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_are_digits_only() {
        assert_eq!(parse_unix_seconds("12"), Ok(12));
        for bad in [
            "",
            "+12",
            "-12",
            " 12",
            "12 ",
            "1.5",
            "0x10",
            "1234567890123456789",
        ] {
            assert_eq!(
                parse_unix_seconds(bad),
                Err(Rejection::TimestampMalformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rfc3339_with_fraction_and_offset() {
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.123456789+01:00"),
            Ok(1_700_000_000)
        );
        for bad in ["", "yesterday", "1700000000", &"9".repeat(65)] {
            assert_eq!(parse_rfc3339(bad), Err(Rejection::TimestampMalformed));
        }
    }

    #[test]
    fn windows_are_inclusive_both_ways() {
        assert_eq!(check_fresh(100, 400, 300), Ok(()));
        assert_eq!(check_fresh(400, 100, 300), Ok(()));
        assert_eq!(
            check_fresh(100, 401, 300),
            Err(Rejection::TimestampOutOfTolerance)
        );
        assert_eq!(check_fresh_millis(100, 400_000, 300), Ok(()));
        assert_eq!(
            check_fresh_millis(100, 400_001, 300),
            Err(Rejection::TimestampOutOfTolerance)
        );
        assert_eq!(
            check_fresh_millis(0, i64::MIN, u32::MAX),
            Err(Rejection::TimestampOutOfTolerance)
        );
    }
}
