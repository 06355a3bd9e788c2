//! Sending one selected event again, how it ended, and the lines and
//! summary a command prints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hookwarden_receiver::forward::Plan;
use hookwarden_receiver::forward::delivery::Destination;
use hookwarden_receiver::forward::filter::Filter;
use hookwarden_receiver::forward::replay::{self, Replayed};
use hookwarden_receiver::forward::stored::StoredEvent;
use jiff::Timestamp;

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
    pub(super) fn record(&mut self, sequence: u64, id: &str, ended: &Ended) {
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

pub(super) fn ended_line(sequence: u64, subject: &str, id: &str, ended: &Ended) -> String {
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
pub(super) async fn send(destination: &Destination, plan: &Plan, event: &StoredEvent) -> Ended {
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

/// `text` with control characters (from the network: subjects, ids,
/// error texts) replaced, fit for a terminal.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}
