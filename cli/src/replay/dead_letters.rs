//! `hookwarden dlq`: the subscription's dead letters, listed, or sent
//! again and deleted once delivered.

use std::sync::atomic::{AtomicBool, Ordering};

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::stream::Stream;
use bytes::Bytes;
use hookwarden_receiver::forward::Plan;
use hookwarden_receiver::forward::delivery::Destination;
use hookwarden_receiver::forward::stored::DeadLetter;
use serde_json::json;

use super::selection::{Candidate, Scanned, from_offset, scan};
use super::sending::{Ended, Summary, ended_line, listed_line, printable, send};

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
