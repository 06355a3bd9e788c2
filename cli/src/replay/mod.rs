//! `hookwarden replay` and `hookwarden dlq`: stored events and dead letters
//! of a `WebhookSubscription`, selected and sent again through the
//! forwarder's own [`Destination`] (its signer, client and classification,
//! with `Hookwarden-Replay: true`).
//!
//! Selection reads headers only, through an ordered consumer (ephemeral,
//! no acknowledgements, deleted at the end and by the server 30 s after
//! anyway), from the start the criteria allow up to the stream's last
//! message when the command began: it never waits for new events and never
//! touches the subscription's durable consumer. Each selected event's body
//! is then fetched by sequence just before it is sent, so no more than one
//! body is held at a time, whatever `--limit`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::stream::Stream;
use bytes::Bytes;
use futures::StreamExt;
use hookwarden_receiver::forward::Plan;
use hookwarden_receiver::forward::delivery::Destination;
use hookwarden_receiver::forward::filter::Filter;
use hookwarden_receiver::forward::replay::{self, Replayed};
use hookwarden_receiver::forward::stored::{DeadLetter, StoredEvent, header};
use jiff::Timestamp;
use serde_json::json;

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

fn from_offset(at: time::OffsetDateTime) -> Timestamp {
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

/// How one selected event ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Delivered (2xx).
    Sent {
        /// Its HTTP status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// Not delivered: why.
    Failed(String),
    /// Listed only (`--dry-run`).
    Listed,
    /// Not matching `spec.filter`.
    Filtered,
}

/// What a replay or redrive did, for its summary.
#[derive(Debug, Default)]
pub struct Summary {
    /// Events selected.
    pub selected: u64,
    /// Delivered.
    pub sent: u64,
    /// Not delivered: `(sequence, id, why)`.
    pub failed: Vec<(u64, String, String)>,
    /// Not matching the subscription's CEL filter.
    pub filtered: u64,
    /// Listed by a dry run.
    pub listed: u64,
    /// Whether `--limit` cut the selection.
    pub limited: bool,
    /// Stopped by Ctrl-C (SIGINT) before the end: the sequence of the
    /// first event not sent.
    pub interrupted_at: Option<u64>,
}

impl Summary {
    fn record(&mut self, sequence: u64, id: &str, ended: &Ended) {
        match ended {
            Ended::Sent { .. } => self.sent += 1,
            Ended::Failed(why) => self.failed.push((sequence, id.to_owned(), why.clone())),
            Ended::Listed => self.listed += 1,
            Ended::Filtered => self.filtered += 1,
        }
    }

    /// The closing lines: counts, then each failure with its reason.
    pub fn lines(&self, verb: &str, limit: u64, dry_run: bool) -> Vec<String> {
        let mut lines = Vec::new();
        let mut head = if dry_run {
            format!("{verb}: {} selected, dry run: nothing sent", self.selected)
        } else {
            format!(
                "{verb}: {} selected, {} sent, {} failed",
                self.selected,
                self.sent,
                self.failed.len()
            )
        };
        if self.filtered > 0 {
            head.push_str(&format!(", {} not matching spec.filter", self.filtered));
        }
        if let Some(sequence) = self.interrupted_at {
            // A redrive deletes what it delivered: running it again sends
            // exactly the rest.
            head.push_str(&if verb == "redrive" {
                format!(" (interrupted at dead letter {sequence}: the rest was not sent and is kept; run the redrive again)")
            } else {
                format!(" (interrupted: the rest was not sent; continue with --from-seq {sequence})")
            });
        } else if self.limited {
            head.push_str(&format!(
                " (stopped at --limit {limit}: more events match; continue with --from-seq)"
            ));
        }
        lines.push(head);
        for (sequence, id, why) in &self.failed {
            lines.push(format!("  failed seq={sequence} id={id}: {why}"));
        }
        lines.into_iter().map(|l| printable(&l)).collect()
    }
}

/// How a replay sends.
#[derive(Debug)]
pub struct Sending<'a> {
    /// The subscription.
    pub plan: &'a Plan,
    /// Where to (`None`: a dry run).
    pub destination: Option<&'a Destination>,
    /// The subscription's CEL filter, when it has one.
    pub filter: Option<&'a Filter>,
    /// Set when the command is to stop ([`interrupt_on_ctrl_c`]): no event
    /// is started after it is; the one in flight finishes (its retries
    /// included).
    pub stop: Option<&'a AtomicBool>,
}

/// A flag set by the first Ctrl-C (SIGINT), so a replay stops after the
/// delivery in flight and still prints its summary; a second Ctrl-C ends
/// the process at once with status 130, as an interrupted command does.
pub fn interrupt_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        flag.store(true, Ordering::SeqCst);
        eprintln!("interrupted: finishing the delivery in flight (Ctrl-C again to quit now)");
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(INTERRUPTED_EXIT_CODE.into());
        }
    });
    stop
}

/// The exit status of an interrupted command: 128 + SIGINT, as shells
/// report it.
pub const INTERRUPTED_EXIT_CODE: u8 = 130;

/// One line of a dry run: sequence, time, subject, id, size.
pub fn listed_line(sequence: u64, time: Timestamp, subject: &str, id: &str, size: u64) -> String {
    printable(&format!("{sequence} {time} {subject} id={id} size={size}B"))
}

fn ended_line(sequence: u64, subject: &str, id: &str, ended: &Ended) -> String {
    printable(&match ended {
        Ended::Sent { status, attempts } => {
            format!("sent {sequence} {subject} id={id} status={status} attempts={attempts}")
        }
        Ended::Failed(why) => format!("FAILED {sequence} {subject} id={id}: {why}"),
        Ended::Listed => format!("listed {sequence} {subject} id={id}"),
        Ended::Filtered => {
            format!("skipped {sequence} {subject} id={id}: not matching spec.filter")
        }
    })
}

/// Sends `event` through the forwarder's destination with the
/// subscription's retry policy, in the foreground.
async fn send(destination: &Destination, plan: &Plan, event: &StoredEvent) -> Ended {
    let Replayed {
        attempts,
        status,
        failure,
    } = replay::deliver(
        destination,
        event.outgoing(plan),
        &plan.retry,
        tokio::time::sleep,
    )
    .await;
    match (failure, status) {
        (None, status) => Ended::Sent {
            status: status.unwrap_or(0),
            attempts,
        },
        (Some(failure), status) => Ended::Failed(format!(
            "{} after {attempts} attempt(s), last status {}: {}",
            failure.reason.as_str(),
            status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
            failure.error
        )),
    }
}

/// Replays what `selection` selects of the subscription's stream: lists
/// it (dry run) or sends it, one event at a time in stream order, each line
/// given to `out`.
pub async fn replay(
    stream: &mut Stream,
    sending: &Sending<'_>,
    selection: &Selection,
    out: &mut dyn FnMut(String),
) -> Result<Summary, String> {
    let plan = sending.plan;
    let name = plan.stream.clone();
    let scanned = scan(
        stream,
        selection.filter_subjects(plan),
        selection.start(),
        selection.limit,
        |c| selection.matches(plan, &name, c),
        |c| selection.past_end(c),
    )
    .await?;
    let mut summary = Summary {
        selected: scanned.kept.len() as u64,
        limited: scanned.limited,
        ..Summary::default()
    };
    let pace = plan
        .max_per_second
        .filter(|r| *r > 0)
        .map(|r| Duration::from_secs(1) / r);
    let mut last_start: Option<tokio::time::Instant> = None;
    for candidate in &scanned.kept {
        if sending.stop.is_some_and(|stop| stop.load(Ordering::SeqCst)) {
            summary.interrupted_at = Some(candidate.sequence);
            break;
        }
        let id = candidate.id(&name);
        if sending.destination.is_none() && sending.filter.is_none() {
            out(listed_line(
                candidate.sequence,
                candidate.time,
                &candidate.subject,
                &id,
                candidate.size,
            ));
            summary.record(candidate.sequence, &id, &Ended::Listed);
            continue;
        }
        let event = match stream.get_raw_message(candidate.sequence).await {
            Ok(message) => candidate.event(&name, message.payload),
            Err(err) => {
                let ended = Ended::Failed(format!("no longer readable in {name}: {err}"));
                out(ended_line(
                    candidate.sequence,
                    &candidate.subject,
                    &id,
                    &ended,
                ));
                summary.record(candidate.sequence, &id, &ended);
                continue;
            }
        };
        if let Some(filter) = sending.filter
            && filter.matches(&event.filter_headers(), &event.body) != Ok(true)
        {
            out(ended_line(
                candidate.sequence,
                &candidate.subject,
                &id,
                &Ended::Filtered,
            ));
            summary.record(candidate.sequence, &id, &Ended::Filtered);
            continue;
        }
        let Some(destination) = sending.destination else {
            out(listed_line(
                candidate.sequence,
                candidate.time,
                &candidate.subject,
                &id,
                candidate.size,
            ));
            summary.record(candidate.sequence, &id, &Ended::Listed);
            continue;
        };
        if let (Some(pace), Some(last)) = (pace, last_start) {
            tokio::time::sleep_until(last + pace).await;
        }
        last_start = Some(tokio::time::Instant::now());
        let ended = send(destination, plan, &event).await;
        out(ended_line(
            candidate.sequence,
            &candidate.subject,
            &id,
            &ended,
        ));
        summary.record(candidate.sequence, &id, &ended);
    }
    Ok(summary)
}

/// The dead letters of the subscription: their sequences in the dead-letter
/// stream, with their headers, oldest first, at most `limit`.
pub async fn dead_letters(stream: &mut Stream, plan: &Plan, limit: u64) -> Result<Scanned, String> {
    let subject = plan.dead_letter.subject.clone();
    scan(
        stream,
        vec![subject.clone()],
        DeliverPolicy::All,
        limit,
        |c| c.subject == subject,
        |_| false,
    )
    .await
}

/// A dead letter as one readable line: its sequence and time in the
/// dead-letter stream, where the event was stored, its id, attempts, last
/// status, reason and error.
pub fn dead_letter_line(candidate: &Candidate) -> String {
    let dead = DeadLetter::read(&candidate.headers, Bytes::new());
    printable(&format!(
        "{} {} {}#{} id={} attempts={} status={} reason={} error={:?}",
        candidate.sequence,
        candidate.time,
        dead.event.subject,
        dead.event.sequence,
        dead.event.id,
        dead.attempts,
        dead.status,
        dead.reason,
        dead.error,
    ))
}

/// A dead letter as JSON (`dlq list --json`).
pub fn dead_letter_json(candidate: &Candidate) -> String {
    let dead = DeadLetter::read(&candidate.headers, Bytes::new());
    json!({
        "sequence": candidate.sequence,
        "time": candidate.time.to_string(),
        "size": candidate.size,
        "id": dead.event.id,
        "stream": dead.event.stream,
        "stream_sequence": dead.event.sequence,
        "subject": dead.event.subject,
        "attempts": dead.attempts,
        "status": dead.status,
        "reason": dead.reason,
        "error": dead.error,
        "dead_lettered_at": dead.time,
        "subscription": dead.subscription,
    })
    .to_string()
}

/// Sends dead letters `chosen` again (or lists them, dry run) and deletes
/// each from the dead-letter stream once the destination answered 2xx:
/// never before, so a failed or interrupted redrive loses nothing (a
/// redrive stopped between the 2xx and the delete sends that one again
/// next time: the destination de-duplicates on `webhook-id`).
pub async fn redrive(
    stream: &mut Stream,
    plan: &Plan,
    destination: Option<&Destination>,
    chosen: &[Candidate],
    stop: Option<&AtomicBool>,
    out: &mut dyn FnMut(String),
) -> Summary {
    let mut summary = Summary {
        selected: chosen.len() as u64,
        ..Summary::default()
    };
    for candidate in chosen {
        if stop.is_some_and(|stop| stop.load(Ordering::SeqCst)) {
            summary.interrupted_at = Some(candidate.sequence);
            break;
        }
        let headers_only = DeadLetter::read(&candidate.headers, Bytes::new());
        let id = headers_only.event.id.clone();
        let subject = headers_only.event.subject.clone();
        let Some(destination) = destination else {
            out(listed_line(
                candidate.sequence,
                candidate.time,
                &subject,
                &id,
                candidate.size,
            ));
            summary.record(candidate.sequence, &id, &Ended::Listed);
            continue;
        };
        let dead = match stream.get_raw_message(candidate.sequence).await {
            Ok(message) => DeadLetter::read(&message.headers, message.payload),
            Err(err) => {
                let ended = Ended::Failed(format!("the dead letter is no longer readable: {err}"));
                out(ended_line(candidate.sequence, &subject, &id, &ended));
                summary.record(candidate.sequence, &id, &ended);
                continue;
            }
        };
        let mut ended = send(destination, plan, &dead.event).await;
        if let Ended::Sent { .. } = ended
            && let Err(err) = stream.delete_message(candidate.sequence).await
        {
            ended = Ended::Failed(format!(
                "delivered, but the dead letter could not be deleted (a later redrive sends it again): {err}"
            ));
        }
        out(ended_line(candidate.sequence, &subject, &id, &ended));
        summary.record(candidate.sequence, &id, &ended);
    }
    summary
}

/// Reads dead letters `sequences` of the subscription's dead-letter
/// stream (headers only matter; each must be under its dead-letter subject:
/// a shared stream holds other subscriptions' too).
pub async fn dead_letters_by_sequence(
    stream: &Stream,
    plan: &Plan,
    sequences: &[u64],
) -> Result<Vec<Candidate>, String> {
    let mut chosen = Vec::with_capacity(sequences.len());
    for &sequence in sequences {
        let message = stream
            .get_raw_message(sequence)
            .await
            .map_err(|e| format!("dead letter {sequence} of {}: {e}", plan.dead_letter.stream))?;
        if message.subject.as_str() != plan.dead_letter.subject {
            return Err(format!(
                "message {sequence} of {} is not a dead letter of {} (its subject is not {})",
                plan.dead_letter.stream, plan.subscription, plan.dead_letter.subject
            ));
        }
        chosen.push(Candidate {
            sequence,
            time: from_offset(message.time),
            subject: message.subject.to_string(),
            size: message.payload.len() as u64,
            headers: message.headers,
        });
    }
    Ok(chosen)
}

/// `text` with control characters (from the network: subjects, ids,
/// error texts) replaced, fit for a terminal.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let sub = hookwarden_crds::subscription_from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookSubscription\n\
             metadata: {name: to-billing, namespace: shop}\nspec:\n\
             \x20 source: {stream: ORDERS, subjectPrefix: shop.orders}\n\
             \x20 eventTypes: [paid, 'refund.*']\n\
             \x20 destination: {url: 'http://billing.shop.svc/hooks'}\n",
        )
        .expect("manifest");
        Plan::resolve(&sub, None).expect("plan")
    }

    fn candidate(sequence: u64, time: &str, subject: &str, id: Option<&str>) -> Candidate {
        let mut headers = HeaderMap::new();
        if let Some(id) = id {
            headers.insert("Nats-Msg-Id", id);
        }
        Candidate {
            sequence,
            time: time.parse().expect("time"),
            subject: subject.to_owned(),
            size: 2,
            headers,
        }
    }

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        let now: Timestamp = "2026-01-02T12:00:00Z".parse().expect("now");
        assert_eq!(
            parse_time("2026-01-01T00:00:00Z", now),
            Ok("2026-01-01T00:00:00Z".parse().expect("t"))
        );
        assert_eq!(
            parse_time("1h", now),
            Ok("2026-01-02T11:00:00Z".parse().expect("t"))
        );
        assert_eq!(
            parse_time("90m", now),
            Ok("2026-01-02T10:30:00Z".parse().expect("t"))
        );
        assert_eq!(
            parse_time("PT2H", now),
            Ok("2026-01-02T10:00:00Z".parse().expect("t"))
        );
        for bad in ["", "yesterday", "-1h", "1h ago", &"1".repeat(100)] {
            assert!(parse_time(bad, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_criterion_selects_within_the_subscription() {
        let plan = plan();
        let all = Selection {
            limit: DEFAULT_LIMIT,
            ..Selection::default()
        };
        let paid = candidate(5, "2026-01-02T10:00:00Z", "shop.orders.paid", Some("d-5"));
        let refund = candidate(6, "2026-01-02T11:00:00Z", "shop.orders.refund.full", None);
        let other = candidate(
            7,
            "2026-01-02T11:30:00Z",
            "shop.orders.created",
            Some("d-7"),
        );
        assert!(all.matches(&plan, "ORDERS", &paid));
        assert!(all.matches(&plan, "ORDERS", &refund));
        assert!(
            !all.matches(&plan, "ORDERS", &other),
            "not the subscription's"
        );
        assert_eq!(refund.id("ORDERS"), "ORDERS-6");

        let by_seq = Selection {
            from_seq: Some(6),
            to_seq: Some(6),
            ..all.clone()
        };
        assert!(!by_seq.matches(&plan, "ORDERS", &paid));
        assert!(by_seq.matches(&plan, "ORDERS", &refund));
        assert!(by_seq.past_end(&other));
        assert!(matches!(
            by_seq.start(),
            DeliverPolicy::ByStartSequence { start_sequence: 6 }
        ));

        let by_time = Selection {
            since: Some("2026-01-02T10:30:00Z".parse().expect("t")),
            until: Some("2026-01-02T11:00:00Z".parse().expect("t")),
            ..all.clone()
        };
        assert!(!by_time.matches(&plan, "ORDERS", &paid));
        assert!(by_time.matches(&plan, "ORDERS", &refund));
        assert!(by_time.past_end(&other));
        assert!(matches!(by_time.start(), DeliverPolicy::ByStartTime { .. }));

        let by_type = Selection {
            event_types: vec![plan.event_type_filter("refund.*").expect("filter")],
            ..all.clone()
        };
        assert!(!by_type.matches(&plan, "ORDERS", &paid));
        assert!(by_type.matches(&plan, "ORDERS", &refund));
        assert_eq!(by_type.filter_subjects(&plan), ["shop.orders.refund.*"]);
        // An event type the subscription does not read selects nothing.
        let outside = Selection {
            event_types: vec![plan.event_type_filter("created").expect("filter")],
            ..all.clone()
        };
        assert!(!outside.matches(&plan, "ORDERS", &other));

        let by_id = Selection {
            delivery_ids: vec!["d-5".into(), "ORDERS-6".into()],
            ..all
        };
        assert!(by_id.matches(&plan, "ORDERS", &paid));
        assert!(by_id.matches(&plan, "ORDERS", &refund));
    }

    #[test]
    fn lines_are_single_and_printable() {
        let line = listed_line(
            3,
            "2026-01-02T10:00:00Z".parse().expect("t"),
            "shop.orders.paid",
            "evil\u{1b}[2J",
            12,
        );
        assert_eq!(
            line,
            "3 2026-01-02T10:00:00Z shop.orders.paid id=evil\u{fffd}[2J size=12B"
        );
        let summary = Summary {
            selected: 3,
            sent: 2,
            failed: vec![(9, "d-9".into(), "refused after 1 attempt(s)".into())],
            ..Summary::default()
        };
        assert_eq!(
            summary.lines("replay", 1000, false),
            [
                "replay: 3 selected, 2 sent, 1 failed",
                "  failed seq=9 id=d-9: refused after 1 attempt(s)"
            ]
        );
        let listed = Summary {
            selected: 2,
            listed: 1,
            filtered: 1,
            limited: true,
            ..Summary::default()
        };
        assert_eq!(
            listed.lines("replay", 2, true),
            [
                "replay: 2 selected, dry run: nothing sent, 1 not matching spec.filter (stopped at --limit 2: more events match; continue with --from-seq)"
            ]
        );
    }
}
