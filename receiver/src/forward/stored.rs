//! What the forwarder reads from a stored message, and the headers of the
//! dead letter it writes: pure functions of the message's headers, body and
//! JetStream metadata.
//!
//! The stored format is the receiver's ([`crate::publish::headers`]):
//! `Nats-Msg-Id` (the delivery id), `Hookwarden-*`, `Content-Type`,
//! `traceparent` and optional `ce-*` headers; the provider's own headers,
//! its signature in particular, are never stored.

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

use super::delivery::{MAX_ERROR_TEXT, Outgoing, bounded_text, is_reserved};
use super::plan::Plan;

/// The longest delivery id used as it is; a longer stored `Nats-Msg-Id`
/// (possible only from a writer other than the receiver) is replaced by the
/// stream and sequence, so ids stay fit for headers.
pub const MAX_ID_LEN: usize = 256;

/// Header names of a dead letter, besides the original headers.
pub mod dead_letter_headers {
    /// The last HTTP status, or `none` when the destination never answered.
    pub const STATUS: &str = "Hookwarden-Dead-Letter-Status";
    /// Why the last attempt failed (bounded, never a secret).
    pub const ERROR: &str = "Hookwarden-Dead-Letter-Error";
    /// Why it is a dead letter: `refused`, `attempts_exhausted`, `too_old`.
    pub const REASON: &str = "Hookwarden-Dead-Letter-Reason";
    /// Attempts made (JetStream's delivery count).
    pub const ATTEMPTS: &str = "Hookwarden-Dead-Letter-Attempts";
    /// The stream the event was read from.
    pub const STREAM: &str = "Hookwarden-Dead-Letter-Stream";
    /// Its sequence there.
    pub const SEQUENCE: &str = "Hookwarden-Dead-Letter-Sequence";
    /// Its subject there.
    pub const SUBJECT: &str = "Hookwarden-Dead-Letter-Subject";
    /// When it was dead-lettered (RFC 3339).
    pub const TIME: &str = "Hookwarden-Dead-Letter-Time";
    /// The subscription (`<namespace>/<name>`).
    pub const SUBSCRIPTION: &str = "Hookwarden-Dead-Letter-Subscription";
}

/// A stored event as the forwarder sees it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The delivery id: the stored `Nats-Msg-Id`, else `<stream>-<sequence>`.
    pub id: String,
    /// The stored subject.
    pub subject: String,
    /// The stream it was read from.
    pub stream: String,
    /// Its sequence in that stream.
    pub sequence: u64,
    /// JetStream's delivery count: this attempt's number.
    pub attempt: u32,
    /// Time since it was stored.
    pub age: Duration,
    /// The stored headers.
    pub headers: HeaderMap,
    /// The stored body.
    pub body: Bytes,
}

/// The first value of header `name`, matched case-insensitively (NATS
/// header names are case-sensitive; writers other than the receiver may
/// spell them otherwise).
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| AsRef::<str>::as_ref(*key).eq_ignore_ascii_case(name))
        .and_then(|(_, values)| values.first())
        .map(|value| value.as_str())
}

impl StoredEvent {
    /// The event of a message read from `stream` at `sequence`, delivered
    /// `delivered` times, stored `age` ago.
    pub fn new(
        stream: &str,
        sequence: u64,
        delivered: i64,
        age: Duration,
        subject: &str,
        headers: Option<HeaderMap>,
        body: Bytes,
    ) -> Self {
        let headers = headers.unwrap_or_default();
        let id = match header(&headers, "Nats-Msg-Id").map(str::trim) {
            Some(id) if !id.is_empty() && id.len() <= MAX_ID_LEN => id.to_owned(),
            _ => format!("{stream}-{sequence}"),
        };
        Self {
            id,
            subject: subject.to_owned(),
            stream: stream.to_owned(),
            sequence,
            attempt: u32::try_from(delivered.max(1)).unwrap_or(u32::MAX),
            age,
            headers,
            body,
        }
    }

    /// The event type: the stored `Hookwarden-Event` (the provider's own
    /// name for it), else the subject's tokens after the prefix.
    pub fn event_type(&self, plan: &Plan) -> String {
        header(&self.headers, "Hookwarden-Event")
            .filter(|e| !e.is_empty())
            .or_else(|| plan.event_type(&self.subject))
            .unwrap_or("unknown")
            .to_owned()
    }

    /// What is sent to the destination.
    pub fn outgoing(&self, plan: &Plan) -> Outgoing {
        let value = |name: &str| header(&self.headers, name).and_then(|v| v.parse().ok());
        Outgoing {
            id: self.id.clone(),
            event_type: self.event_type(plan),
            body: self.body.clone(),
            content_type: value("Content-Type"),
            content_encoding: value("Content-Encoding"),
            passed: passed_headers(&self.headers, &plan.pass_headers),
            attempt: self.attempt,
            replay: false,
            trace: self.trace(),
        }
    }

    /// The stored trace context, when its `traceparent` is valid.
    pub fn trace(&self) -> Option<crate::telemetry::TraceHeaders> {
        let traceparent =
            crate::publish::checked_traceparent(header(&self.headers, "traceparent"))?;
        Some(crate::telemetry::TraceHeaders {
            traceparent,
            tracestate: header(&self.headers, "tracestate")
                .filter(|state| !state.is_empty())
                .map(str::to_owned),
        })
    }

    /// Its headers for a CEL filter: lower-cased names, first values.
    pub fn filter_headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter_map(|(name, values)| {
                values.first().map(|v| {
                    (
                        AsRef::<str>::as_ref(name).to_ascii_lowercase(),
                        v.as_str().to_owned(),
                    )
                })
            })
            .collect()
    }

    /// The dead letter's `Nats-Msg-Id`: the event's id and its place in the
    /// stream, so a message dead-lettered twice (its acknowledgement lost,
    /// then redelivered) is stored once within the dead-letter stream's
    /// duplicate window, whatever the attempt.
    pub fn dead_letter_id(&self) -> String {
        format!("{}:dead-letter:{}", self.id, self.sequence)
    }

    /// The dead letter's headers: the stored ones (but `Nats-*`, which
    /// would steer the publish) and what happened.
    pub fn dead_letter_headers(
        &self,
        subscription: &str,
        failure: &DeadLetterCause,
        now: jiff::Timestamp,
    ) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, values) in self.headers.iter() {
            let text: &str = name.as_ref();
            if text.to_ascii_lowercase().starts_with("nats-")
                || text
                    .to_ascii_lowercase()
                    .starts_with("hookwarden-dead-letter-")
            {
                continue;
            }
            for value in values {
                headers.append(name.clone(), value.clone());
            }
        }
        use dead_letter_headers as h;
        headers.insert("Nats-Msg-Id", self.dead_letter_id().as_str());
        let status = failure
            .status
            .map_or_else(|| "none".to_owned(), |s| s.to_string());
        headers.insert(h::STATUS, status.as_str());
        let error = bounded_text(failure.error.as_deref().unwrap_or(""), MAX_ERROR_TEXT);
        headers.insert(h::ERROR, error.as_str());
        headers.insert(h::REASON, failure.reason);
        headers.insert(h::ATTEMPTS, self.attempt.to_string().as_str());
        headers.insert(h::STREAM, self.stream.as_str());
        headers.insert(h::SEQUENCE, self.sequence.to_string().as_str());
        headers.insert(h::SUBJECT, self.subject.as_str());
        headers.insert(h::TIME, now.to_string().as_str());
        headers.insert(h::SUBSCRIPTION, subscription);
        headers
    }
}

/// A dead letter read back (`hookwarden dlq`): what its headers say
/// happened, and the event as it was stored, to deliver again.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// `Hookwarden-Dead-Letter-Status`: the last HTTP status, `none`.
    pub status: String,
    /// `Hookwarden-Dead-Letter-Reason`.
    pub reason: String,
    /// `Hookwarden-Dead-Letter-Error`.
    pub error: String,
    /// `Hookwarden-Dead-Letter-Attempts`.
    pub attempts: String,
    /// `Hookwarden-Dead-Letter-Time`.
    pub time: String,
    /// `Hookwarden-Dead-Letter-Subscription`.
    pub subscription: String,
    /// The event, with its original stream, sequence, subject, id and
    /// headers (the dead letter's own headers left out).
    pub event: StoredEvent,
}

impl DeadLetter {
    /// Reads a dead letter's `headers` and `body` (what
    /// [`StoredEvent::dead_letter_headers`] wrote). A header that is
    /// missing (a writer other than the forwarder) reads as `-`; the
    /// event's id is the original one when the dead letter's
    /// `Nats-Msg-Id` has the forwarder's form, else its stream place.
    pub fn read(headers: &HeaderMap, body: Bytes) -> Self {
        use dead_letter_headers as h;
        let text = |name: &str| {
            header(headers, name)
                .filter(|v| !v.is_empty())
                .unwrap_or("-")
                .to_owned()
        };
        let stream = text(h::STREAM);
        let sequence = header(headers, h::SEQUENCE)
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let subject = text(h::SUBJECT);
        let mut original = HeaderMap::new();
        for (name, values) in headers.iter() {
            let lower = AsRef::<str>::as_ref(name).to_ascii_lowercase();
            if lower.starts_with("nats-") || lower.starts_with("hookwarden-dead-letter-") {
                continue;
            }
            for value in values {
                original.append(name.clone(), value.clone());
            }
        }
        if let Some(id) = header(headers, "Nats-Msg-Id").and_then(|id| original_id(id, sequence)) {
            original.insert("Nats-Msg-Id", id);
        }
        let event = StoredEvent::new(
            &stream,
            sequence,
            1,
            Duration::ZERO,
            &subject,
            Some(original),
            body,
        );
        Self {
            status: text(h::STATUS),
            reason: text(h::REASON),
            error: text(h::ERROR),
            attempts: text(h::ATTEMPTS),
            time: text(h::TIME),
            subscription: text(h::SUBSCRIPTION),
            event,
        }
    }
}

/// The event id of a dead letter's `Nats-Msg-Id`
/// ([`StoredEvent::dead_letter_id`]: `<id>:dead-letter:<sequence>`).
pub fn original_id(dead_letter_id: &str, sequence: u64) -> Option<&str> {
    dead_letter_id
        .strip_suffix(&format!(":dead-letter:{sequence}"))
        .filter(|id| !id.is_empty())
}

/// What a dead letter records of its last attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterCause {
    /// The reason code ([`super::outcome::DeadReason::as_str`]).
    pub reason: &'static str,
    /// The last HTTP status, if any.
    pub status: Option<u16>,
    /// The last error text, if any.
    pub error: Option<String>,
}

/// The stored headers `names` (lower-cased) lists, every value: a stored
/// header of that name, else the provider's header stored as
/// `Hookwarden-Header-<name>` ([`crate::provider_headers`]), sent under the
/// provider's name. Reserved names ([`is_reserved`]) and values that are not
/// HTTP header values are left out.
pub fn passed_headers(headers: &HeaderMap, names: &[String]) -> Vec<(HeaderName, HeaderValue)> {
    let mut passed = Vec::new();
    if names.is_empty() {
        return passed;
    }
    let lower_names: Vec<String> = headers
        .iter()
        .map(|(name, _)| AsRef::<str>::as_ref(name).to_ascii_lowercase())
        .collect();
    for ((_, values), lower) in headers.iter().zip(&lower_names) {
        let wanted = if names.contains(lower) {
            lower.as_str()
        } else {
            match crate::provider_headers::original_name(lower) {
                // The receiver's own header of that name comes first.
                Some(original)
                    if names.iter().any(|n| n == original)
                        && !lower_names.iter().any(|n| n == original) =>
                {
                    original
                }
                _ => continue,
            }
        };
        if is_reserved(wanted) {
            continue;
        }
        let Ok(http_name) = HeaderName::from_bytes(wanted.as_bytes()) else {
            continue;
        };
        for value in values {
            if let Ok(value) = HeaderValue::from_str(value.as_str()) {
                passed.push((http_name.clone(), value));
            }
        }
    }
    passed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let sub = hookwarden_crds::subscription_from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookSubscription\n\
             metadata: {name: to-billing, namespace: shop}\nspec:\n\
             \x20 source: {stream: ORDERS, subjectPrefix: shop.orders}\n\
             \x20 destination: {url: 'http://billing.shop.svc/hooks'}\n\
             \x20 passHeaders: [Hookwarden-Provider, traceparent, Webhook-Id]\n",
        )
        .expect("manifest");
        Plan::resolve(&sub, None).expect("plan")
    }

    fn stored(headers: &[(&str, &str)]) -> StoredEvent {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, *value);
        }
        StoredEvent::new(
            "ORDERS",
            42,
            3,
            Duration::from_secs(5),
            "shop.orders.invoice_paid",
            Some(map),
            Bytes::from_static(b"{}"),
        )
    }

    #[test]
    fn the_id_is_the_message_id_else_the_stream_place() {
        assert_eq!(stored(&[("Nats-Msg-Id", "d-1")]).id, "d-1");
        assert_eq!(stored(&[]).id, "ORDERS-42");
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert_eq!(stored(&[("Nats-Msg-Id", &long)]).id, "ORDERS-42");
        assert_eq!(stored(&[]).attempt, 3);
    }

    #[test]
    fn the_outgoing_event_carries_the_stored_type_content_type_and_listed_headers() {
        let event = stored(&[
            ("Nats-Msg-Id", "d-1"),
            ("Hookwarden-Event", "invoice.paid"),
            ("Hookwarden-Provider", "stripe"),
            ("Hookwarden-Source-Ip", "192.0.2.1"),
            ("Content-Type", "application/json"),
            ("traceparent", "00-abc-def-01"),
            ("webhook-id", "forged"),
        ]);
        let out = event.outgoing(&plan());
        assert_eq!(out.id, "d-1");
        assert_eq!(out.event_type, "invoice.paid");
        assert_eq!(out.attempt, 3);
        assert_eq!(
            out.content_type.as_ref().map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        let mut names: Vec<&str> = out.passed.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["hookwarden-provider", "traceparent"]);
        // A provider header stored by the receiver passes under its own
        // name; the receiver's header of the same name comes first.
        let event = stored(&[
            ("Hookwarden-Header-x-github-event", "push"),
            ("Hookwarden-Header-x-unlisted", "no"),
            ("Hookwarden-Header-traceparent", "forged"),
            ("Hookwarden-Header-content-type", "text/forged"),
            ("traceparent", "00-abc-def-01"),
        ]);
        let passed = passed_headers(
            &event.headers,
            &[
                "x-github-event".into(),
                "traceparent".into(),
                "content-type".into(),
            ],
        );
        let mut passed: Vec<(&str, &[u8])> = passed
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        passed.sort_unstable();
        assert_eq!(
            passed,
            [
                ("traceparent", &b"00-abc-def-01"[..]),
                ("x-github-event", &b"push"[..])
            ]
        );
        // Without the stored type, the subject's.
        assert_eq!(stored(&[]).event_type(&plan()), "invoice_paid");
    }

    #[test]
    fn a_dead_letter_keeps_the_headers_and_says_what_happened() {
        let event = stored(&[
            ("Nats-Msg-Id", "d-1"),
            ("Nats-Expected-Stream", "X"),
            ("Hookwarden-Provider", "stripe"),
        ]);
        let now: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().expect("time");
        let headers = event.dead_letter_headers(
            "shop/to-billing",
            &DeadLetterCause {
                reason: "refused",
                status: Some(404),
                error: Some("HTTP 404 Not Found:\r\nnope".into()),
            },
            now,
        );
        let get = |name: &str| header(&headers, name).map(str::to_owned);
        assert_eq!(get("Nats-Msg-Id").as_deref(), Some("d-1:dead-letter:42"));
        assert_eq!(get("Nats-Expected-Stream"), None);
        assert_eq!(get("Hookwarden-Provider").as_deref(), Some("stripe"));
        assert_eq!(get(dead_letter_headers::STATUS).as_deref(), Some("404"));
        assert_eq!(
            get(dead_letter_headers::ERROR).as_deref(),
            Some("HTTP 404 Not Found:  nope")
        );
        assert_eq!(get(dead_letter_headers::REASON).as_deref(), Some("refused"));
        assert_eq!(get(dead_letter_headers::ATTEMPTS).as_deref(), Some("3"));
        assert_eq!(get(dead_letter_headers::STREAM).as_deref(), Some("ORDERS"));
        assert_eq!(get(dead_letter_headers::SEQUENCE).as_deref(), Some("42"));
        assert_eq!(
            get(dead_letter_headers::SUBJECT).as_deref(),
            Some("shop.orders.invoice_paid")
        );
        assert_eq!(
            get(dead_letter_headers::TIME).as_deref(),
            Some("2026-01-02T03:04:05Z")
        );
        let none = event.dead_letter_headers(
            "shop/to-billing",
            &DeadLetterCause {
                reason: "attempts_exhausted",
                status: None,
                error: None,
            },
            now,
        );
        assert_eq!(header(&none, dead_letter_headers::STATUS), Some("none"));
    }

    #[test]
    fn a_dead_letter_reads_back_as_the_event_it_was() {
        let event = stored(&[
            ("Nats-Msg-Id", "d-1"),
            ("Hookwarden-Event", "invoice.paid"),
            ("Hookwarden-Provider", "stripe"),
        ]);
        let now: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().expect("time");
        let headers = event.dead_letter_headers(
            "shop/to-billing",
            &DeadLetterCause {
                reason: "refused",
                status: Some(404),
                error: Some("HTTP 404 Not Found".into()),
            },
            now,
        );
        let dead = DeadLetter::read(&headers, Bytes::from_static(b"{}"));
        assert_eq!(dead.status, "404");
        assert_eq!(dead.reason, "refused");
        assert_eq!(dead.error, "HTTP 404 Not Found");
        assert_eq!(dead.attempts, "3");
        assert_eq!(dead.time, "2026-01-02T03:04:05Z");
        assert_eq!(dead.subscription, "shop/to-billing");
        assert_eq!(dead.event.id, "d-1");
        assert_eq!(dead.event.stream, "ORDERS");
        assert_eq!(dead.event.sequence, 42);
        assert_eq!(dead.event.subject, "shop.orders.invoice_paid");
        assert_eq!(dead.event.event_type(&plan()), "invoice.paid");
        assert!(header(&dead.event.headers, dead_letter_headers::STATUS).is_none());
        let out = dead.event.outgoing(&plan());
        let names: Vec<&str> = out.passed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["hookwarden-provider"]);

        // Not the forwarder's: read as far as it goes.
        let mut other = HeaderMap::new();
        other.insert("Nats-Msg-Id", "something-else");
        let dead = DeadLetter::read(&other, Bytes::new());
        assert_eq!(dead.status, "-");
        assert_eq!(dead.event.id, "--0");
        assert_eq!(original_id("a:dead-letter:7", 7), Some("a"));
        assert_eq!(original_id("a:dead-letter:7", 8), None);
        assert_eq!(original_id(":dead-letter:7", 7), None);
    }
}
