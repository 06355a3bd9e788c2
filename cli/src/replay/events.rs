//! `hookwarden replay`: stored events of the subscription's stream, listed
//! or sent again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::stream::Stream;

use super::selection::{Selection, scan};
use super::sending::{Ended, Sending, Summary, ended_line, listed_line, send};

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
