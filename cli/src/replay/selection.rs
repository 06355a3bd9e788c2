//! Which stored events (or dead letters) a command selects, and the scan
//! of a stream's headers that finds them.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::stream::Stream;
use bytes::Bytes;
use futures::StreamExt;
use hookwarden_receiver::forward::Plan;
use hookwarden_receiver::forward::stored::{StoredEvent, header};
use jiff::Timestamp;

/// `--limit` when not given: events (or dead letters) sent or listed by one
/// command at most.
pub const DEFAULT_LIMIT: u64 = 1000;

/// How long a scan waits for the next message it was told is there; past
/// it, the messages were removed meanwhile (max age, a purge) and the scan
/// ends with what it has.
pub const SCAN_IDLE: Duration = Duration::from_secs(30);

/// The longest text of `--since`/`--until` looked at.
const MAX_TIME_TEXT: usize = 64;

/// Which stored events a replay selects, besides the subscription's own
/// subject filters (always applied).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// The first stream sequence.
    pub from_seq: Option<u64>,
    /// The last stream sequence.
    pub to_seq: Option<u64>,
    /// Stored at or after.
    pub since: Option<Timestamp>,
    /// Stored at or before.
    pub until: Option<Timestamp>,
    /// Subject filters of `--event-type` ([`Plan::event_type_filter`]); any
    /// of them.
    pub event_types: Vec<String>,
    /// Delivery ids (`Nats-Msg-Id`); any of them.
    pub delivery_ids: Vec<String>,
    /// Events selected at most.
    pub limit: u64,
}

/// A message found by a scan, before its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its sequence in the stream scanned.
    pub sequence: u64,
    /// When it was stored.
    pub time: Timestamp,
    /// Its subject.
    pub subject: String,
    /// Its body's size (`Nats-Msg-Size` of a headers-only read).
    pub size: u64,
    /// Its headers.
    pub headers: HeaderMap,
}

impl Selection {
    /// Where the scan starts: the sequence, else the time, else the first
    /// message.
    pub fn start(&self) -> DeliverPolicy {
        match (self.from_seq, self.since) {
            (Some(start_sequence), _) => DeliverPolicy::ByStartSequence { start_sequence },
            (None, Some(since)) => DeliverPolicy::ByStartTime {
                start_time: to_offset(since),
            },
            (None, None) => DeliverPolicy::All,
        }
    }

    /// The subject filters of the scan: the event types asked for, else the
    /// subscription's.
    pub fn filter_subjects(&self, plan: &Plan) -> Vec<String> {
        if self.event_types.is_empty() {
            plan.filter_subjects.clone()
        } else {
            self.event_types.clone()
        }
    }

    /// Whether nothing from `candidate` on can be selected: past the last
    /// sequence or time (both only grow along a stream).
    pub fn past_end(&self, candidate: &Candidate) -> bool {
        self.to_seq.is_some_and(|to| candidate.sequence > to)
            || self.until.is_some_and(|until| candidate.time > until)
    }

    /// Whether `candidate` (of `stream`) is selected: read by the
    /// subscription, and matching every criterion given.
    pub fn matches(&self, plan: &Plan, stream: &str, candidate: &Candidate) -> bool {
        let subject = candidate.subject.as_str();
        plan.selects(subject)
            && (self.event_types.is_empty()
                || self
                    .event_types
                    .iter()
                    .any(|filter| hookwarden_receiver::publish::subject_covers(filter, subject)))
            && self.from_seq.is_none_or(|from| candidate.sequence >= from)
            && self.since.is_none_or(|since| candidate.time >= since)
            && !self.past_end(candidate)
            && (self.delivery_ids.is_empty() || self.delivery_ids.contains(&candidate.id(stream)))
    }
}

impl Candidate {
    /// Its delivery id, as the forwarder sends it (`webhook-id`).
    pub fn id(&self, stream: &str) -> String {
        self.event(stream, Bytes::new()).id
    }

    /// The stored event, with `body`.
    pub fn event(&self, stream: &str, body: Bytes) -> StoredEvent {
        StoredEvent::new(
            stream,
            self.sequence,
            1,
            Duration::ZERO,
            &self.subject,
            Some(self.headers.clone()),
            body,
        )
    }
}

/// `--since`/`--until`: an RFC 3339 time (`2026-01-02T03:04:05Z`), or a
/// duration before `now` (`90m`, `1h`, `2d 4h`, `PT1H`), read by jiff.
pub fn parse_time(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let bad = || {
        format!(
            "{text:?} is neither an RFC 3339 time (2026-01-02T03:04:05Z) nor a duration before now (1h, 30m, 2d)"
        )
    };
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_TIME_TEXT {
        return Err(bad());
    }
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let ago: jiff::SignedDuration = text.parse().map_err(|_| bad())?;
    if ago.is_negative() {
        return Err(bad());
    }
    now.checked_sub(ago).map_err(|_| bad())
}

fn to_offset(at: Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(at.as_nanosecond())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

pub(super) fn from_offset(at: time::OffsetDateTime) -> Timestamp {
    Timestamp::from_nanosecond(at.unix_timestamp_nanos()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scanned {
    /// The messages kept, in stream order.
    pub kept: Vec<Candidate>,
    /// Messages read.
    pub read: u64,
    /// Whether `--limit` ended it before the end of what could match.
    pub limited: bool,
}

/// Reads the headers of `stream`'s messages under `filter_subjects` from
/// `start`, up to its last message when the scan began, keeping those
/// `keep` accepts, at most `limit`; `stop` ends it early.
pub async fn scan(
    stream: &mut Stream,
    filter_subjects: Vec<String>,
    start: DeliverPolicy,
    limit: u64,
    mut keep: impl FnMut(&Candidate) -> bool,
    mut stop: impl FnMut(&Candidate) -> bool,
) -> Result<Scanned, String> {
    let name = stream.cached_info().config.name.clone();
    let last_sequence = stream
        .info()
        .await
        .map_err(|e| format!("stream {name}: {e}"))?
        .state
        .last_sequence;
    let mut scanned = Scanned::default();
    if last_sequence == 0 || filter_subjects.is_empty() {
        return Ok(scanned);
    }
    let (filter_subject, filter_subjects) = match <[String; 1]>::try_from(filter_subjects) {
        Ok([one]) => (one, Vec::new()),
        Err(many) => (String::new(), many),
    };
    let mut consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject,
            filter_subjects,
            deliver_policy: start,
            headers_only: true,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("a reading consumer on {name}: {e}"))?;
    let info = consumer
        .info()
        .await
        .map_err(|e| format!("consumer on {name}: {e}"))?;
    let (consumer_name, pending) = (info.name.clone(), info.num_pending);
    if pending > 0 {
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| format!("consumer on {name}: {e}"))?;
        loop {
            let Ok(next) = tokio::time::timeout(SCAN_IDLE, messages.next()).await else {
                break;
            };
            let Some(message) = next else { break };
            let message = message.map_err(|e| format!("stream {name}: {e}"))?;
            let Ok(info) = message.info() else { continue };
            let candidate = Candidate {
                sequence: info.stream_sequence,
                time: from_offset(info.published),
                subject: message.subject.to_string(),
                size: message
                    .headers
                    .as_ref()
                    .and_then(|h| header(h, "Nats-Msg-Size"))
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0),
                headers: message.headers.clone().unwrap_or_default(),
            };
            let last = info.pending == 0 || candidate.sequence >= last_sequence;
            scanned.read += 1;
            if stop(&candidate) {
                break;
            }
            if keep(&candidate) {
                if scanned.kept.len() as u64 >= limit {
                    scanned.limited = true;
                    break;
                }
                scanned.kept.push(candidate);
            }
            if last {
                break;
            }
        }
    }
    // An ordered consumer is removed by the server once idle; removing it
    // now leaves nothing behind at once (it may have been replaced by
    // another after a gap: that one goes the idle way).
    let _ = stream.delete_consumer(&consumer_name).await;
    Ok(scanned)
}
