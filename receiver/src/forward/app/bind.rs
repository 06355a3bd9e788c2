//! Binding the durable consumer and the dead-letter stream, created from
//! the plan when missing.

use async_nats::jetstream;

use crate::publish::subject_covers;

use super::start::Shared;

/// Creates the dead-letter stream (or adds this subscription's subject to
/// a shared one) and the durable consumer when missing; existing ones are
/// used as they are.
pub(super) async fn bind(shared: &Shared) -> Result<jetstream::consumer::PullConsumer, String> {
    let plan = &shared.plan;
    let js = &shared.jetstream;
    ensure_dead_letter_stream(shared).await?;
    let stream = js.get_stream(&plan.stream).await.map_err(|e| {
        format!(
            "the source stream {} (created by the endpoint's receiver): {e}",
            plan.stream
        )
    })?;
    stream
        .get_or_create_consumer(&plan.durable, plan.consumer_config())
        .await
        .map_err(|e| format!("the consumer {}: {e}", plan.durable))
}

/// Creates the dead-letter stream from the plan when missing, or adds this
/// subscription's subject to a shared one that lacks it; an existing one is
/// used as it is.
pub(super) async fn ensure_dead_letter_stream(shared: &Shared) -> Result<(), String> {
    let plan = &shared.plan;
    let js = &shared.jetstream;
    let dead_letters = js
        .get_or_create_stream(plan.dead_letter_stream_config())
        .await
        .map_err(|e| format!("the dead-letter stream {}: {e}", plan.dead_letter.stream))?;
    let config = &dead_letters.cached_info().config;
    if !config
        .subjects
        .iter()
        .any(|filter| subject_covers(filter, &plan.dead_letter.subject))
    {
        let mut config = config.clone();
        config.subjects.push(plan.dead_letter.subject.clone());
        js.update_stream(config).await.map_err(|e| {
            format!(
                "cannot add {} to the dead-letter stream {}: {e}",
                plan.dead_letter.subject, plan.dead_letter.stream
            )
        })?;
    }
    Ok(())
}
