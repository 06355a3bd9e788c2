//! A subscription's JetStream side: its dead-letter stream and its durable
//! consumer, created and updated from the [`Plan`] (the definition the
//! forwarder uses too), observed for the status (lag, dead letters, the
//! last error), and removed when the subscription is deleted or moves to
//! another stream.
//!
//! The source stream is the endpoint's (or the user's): it is read, never
//! created or changed here. The dead-letter stream is never deleted: it
//! holds the only copy of events nobody received.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use hookwarden_core::forward::Plan;
use hookwarden_core::redact::redact_url;
use hookwarden_core::secrets::Secret;

use super::stream::Connections;
use crate::resources::ResolvedSecrets;
use crate::resources::forwarder::{Deployed, Effective};

/// How long each JetStream request may take.
const JETSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// The headers the forwarder writes on a dead letter.
pub const DEAD_LETTER_STATUS: &str = "Hookwarden-Dead-Letter-Status";
/// The error of the last attempt.
pub const DEAD_LETTER_ERROR: &str = "Hookwarden-Dead-Letter-Error";
/// How many attempts were made.
pub const DEAD_LETTER_ATTEMPTS: &str = "Hookwarden-Dead-Letter-Attempts";

/// The longest `status.lastError`: the headers are the forwarder's, bounded
/// here again so a status stays small whatever a destination answered.
const MAX_LAST_ERROR: usize = 1024;

/// What a pass found of the consumer and the dead letters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerState {
    /// Whether the consumer exists with the plan's settings.
    pub ready: bool,
    /// `ConsumerCreated`, `ConsumerUpdated`, `ConsumerInSync`, or why not:
    /// `NatsUnreachable`, `NatsUnauthorized`, `CredentialsInvalid`,
    /// `SourceStreamNotFound`, `DeadLetterStreamRejected`,
    /// `ConsumerConflict`, `ConsumerRejected`.
    pub reason: &'static str,
    /// For a person: names the stream, consumer and NATS, never a
    /// credential.
    pub message: String,
    /// The consumer's pending plus unacknowledged messages.
    pub pending: Option<i64>,
    /// Messages in the dead-letter stream under the subscription's subject.
    pub dead_letters: Option<i64>,
    /// The newest dead letter's status and error.
    pub last_error: Option<String>,
}

fn failed(reason: &'static str, message: String) -> ConsumerState {
    ConsumerState {
        ready: false,
        reason,
        message,
        ..ConsumerState::default()
    }
}

/// A consumer found in sync on a later pass of the same generation keeps
/// the condition of the pass that created or updated it, so the condition
/// keeps saying how the consumer got there and the status is not rewritten
/// on every refresh.
pub fn keep_earlier_reason(
    state: ConsumerState,
    previous: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    generation: Option<i64>,
) -> ConsumerState {
    let Some(previous) = previous.filter(|p| {
        state.reason == "ConsumerInSync"
            && p.status == "True"
            && p.observed_generation == generation
    }) else {
        return state;
    };
    let reason = match previous.reason.as_str() {
        "ConsumerCreated" => "ConsumerCreated",
        "ConsumerUpdated" => "ConsumerUpdated",
        _ => return state,
    };
    ConsumerState {
        reason,
        message: previous.message.clone(),
        ..state
    }
}

/// What to do with an existing consumer.
#[derive(Clone, Debug, PartialEq)]
pub enum ConsumerPlan {
    /// It has the wanted settings.
    InSync,
    /// It differs in settings JetStream can change.
    Update,
    /// It differs in settings JetStream cannot change.
    Conflict(String),
}

/// The subject filters of a consumer, however the server stored them (a
/// single `filter_subjects` entry may come back as `filter_subject`).
fn filters(config: &consumer::Config) -> Vec<String> {
    let mut filters = if config.filter_subjects.is_empty() && !config.filter_subject.is_empty() {
        vec![config.filter_subject.clone()]
    } else {
        config.filter_subjects.clone()
    };
    filters.sort();
    filters
}

/// Compares an existing consumer with the wanted one: the deliver and ack
/// policies cannot change (the consumer must be recreated, which loses its
/// place, so that is the user's decision); filters, ack wait, deliveries,
/// pending acks and description can.
pub fn consumer_plan(existing: &consumer::Config, wanted: &consumer::pull::Config) -> ConsumerPlan {
    if existing.deliver_policy != wanted.deliver_policy
        || existing.ack_policy != wanted.ack_policy
        || existing.deliver_subject.is_some()
    {
        return ConsumerPlan::Conflict(format!(
            "it is {} with deliver policy {:?} and ack policy {:?}; a subscription's is a pull consumer with deliver policy {:?} and ack policy {:?}, which JetStream cannot change in place",
            if existing.deliver_subject.is_some() {
                "a push consumer"
            } else {
                "a pull consumer"
            },
            existing.deliver_policy,
            existing.ack_policy,
            wanted.deliver_policy,
            wanted.ack_policy,
        ));
    }
    let mut wanted_filters = wanted.filter_subjects.clone();
    wanted_filters.sort();
    if filters(existing) != wanted_filters
        || existing.ack_wait != wanted.ack_wait
        || existing.max_deliver != wanted.max_deliver
        || existing.max_ack_pending != wanted.max_ack_pending
        || existing.description != wanted.description
    {
        ConsumerPlan::Update
    } else {
        ConsumerPlan::InSync
    }
}

/// What to do with an existing dead-letter stream: add the subscription's
/// subject when it lacks it (several subscriptions may share one named
/// stream), and follow the spec's max age only when the stream is this
/// subscription's alone. `None`: nothing to change.
pub fn dead_letter_update(existing: &stream::Config, plan: &Plan) -> Option<stream::Config> {
    let subject = &plan.dead_letter.subject;
    let mut updated = existing.clone();
    if !existing.subjects.contains(subject) {
        updated.subjects.push(subject.clone());
    }
    if updated.subjects == [subject.clone()] {
        updated.max_age = plan.dead_letter.max_age;
    }
    (updated != *existing).then_some(updated)
}

/// `status.lastError` from a dead letter's headers: `HTTP <status>: <error>
/// (after <n> attempts)`, bounded.
pub fn last_error(
    status: Option<&str>,
    error: Option<&str>,
    attempts: Option<&str>,
) -> Option<String> {
    if status.is_none() && error.is_none() {
        return None;
    }
    let mut text = match (status, error) {
        (Some(status), Some(error)) => format!("{status}: {error}"),
        (Some(status), None) => status.to_owned(),
        (None, Some(error)) => error.to_owned(),
        (None, None) => String::new(),
    };
    if let Some(attempts) = attempts {
        text.push_str(&format!(" (after {attempts} attempts)"));
    }
    if text.len() > MAX_LAST_ERROR {
        let mut end = MAX_LAST_ERROR;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    Some(text)
}

fn credentials(
    effective: &Effective,
    resolved: &ResolvedSecrets,
) -> Option<(hookwarden_crds::SecretKeyRef, Secret)> {
    let reference = effective.credentials.as_ref()?;
    let value = resolved.get(&reference.name, &reference.key)?;
    Some((reference.clone(), Secret::from(value)))
}

async fn jetstream_of(
    connections: &Connections,
    url: &str,
    credentials: Option<(hookwarden_crds::SecretKeyRef, Secret)>,
    default_nats: bool,
) -> Result<jetstream::Context, ConsumerState> {
    let client = connections
        .client(
            url,
            credentials,
            default_nats,
            "the forwarders cannot read events",
        )
        .await
        .map_err(|failure| failed(failure.reason, failure.message))?;
    let mut context = jetstream::new(client);
    context.set_timeout(JETSTREAM_TIMEOUT);
    Ok(context)
}

/// Removes the consumer a previous deployment left on another stream or
/// server (`previous`), then brings the dead-letter stream and the durable
/// consumer in line with the plan and observes lag and dead letters. Never
/// an error: NATS trouble is a condition, not a failed pass.
///
/// The old consumer goes first, whatever becomes of the new one: the
/// forwarders' Secret, applied before this, already names the new source
/// and is the only record of the old one. A pass that stopped at the new
/// source (its stream not created yet by the endpoint's pass) would
/// otherwise leave the old consumer for good, the next pass finding the
/// new source recorded as the previous one.
pub async fn reconcile(
    connections: &Connections,
    effective: &Effective,
    resolved: &ResolvedSecrets,
    previous: Option<&Deployed>,
) -> ConsumerState {
    if let Some(previous) = previous {
        retire(connections, effective, previous).await;
    }
    let plan = &effective.plan;
    let shown = redact_url(&effective.nats_url);
    let jetstream = match jetstream_of(
        connections,
        &effective.nats_url,
        credentials(effective, resolved),
        effective.default_nats,
    )
    .await
    {
        Ok(jetstream) => jetstream,
        Err(state) => return state,
    };
    let dead_letters = match ensure_dead_letter_stream(&jetstream, plan).await {
        Ok(stream) => stream,
        Err(state) => return state,
    };
    let source = match jetstream.get_stream_no_info::<&str>(&plan.stream).await {
        Ok(source) => source,
        Err(error) => {
            return failed(
                "NatsUnreachable",
                format!(
                    "reading JetStream stream {} on {shown}: {error}",
                    plan.stream
                ),
            );
        }
    };
    let (reason, what, info) = match ensure_consumer(&source, plan).await {
        Ok(done) => done,
        Err(state) => {
            return ConsumerState {
                message: format!("{} (NATS {shown})", state.message),
                ..state
            };
        }
    };
    let (count, last) = observe_dead_letters(&dead_letters, plan).await;
    ConsumerState {
        ready: true,
        reason,
        message: format!(
            "durable consumer {} on JetStream stream {} ({}) on {shown} {what}; dead letters go to {} in stream {}",
            plan.durable,
            plan.stream,
            plan.filter_subjects.join(", "),
            plan.dead_letter.subject,
            plan.dead_letter.stream,
        ),
        pending: Some(
            i64::try_from(info.num_pending)
                .unwrap_or(i64::MAX)
                .saturating_add(i64::try_from(info.num_ack_pending).unwrap_or(i64::MAX)),
        ),
        dead_letters: count,
        last_error: last,
    }
}

async fn ensure_dead_letter_stream(
    jetstream: &jetstream::Context,
    plan: &Plan,
) -> Result<stream::Stream, ConsumerState> {
    let name = &plan.dead_letter.stream;
    let rejected = |detail: String| {
        failed(
            "DeadLetterStreamRejected",
            format!(
                "JetStream refused the dead-letter stream {name} (subject {}): {detail}; set spec.deadLetter.stream or .subject to ones no other stream takes",
                plan.dead_letter.subject
            ),
        )
    };
    match jetstream.get_stream(name).await {
        Ok(mut stream) => {
            let existing = stream.cached_info().config.clone();
            if let Some(updated) = dead_letter_update(&existing, plan) {
                jetstream
                    .update_stream(updated)
                    .await
                    .map_err(|e| rejected(e.to_string()))?;
                tracing::info!(stream = %name, "dead-letter stream updated");
                let _ = stream.info().await;
            }
            Ok(stream)
        }
        Err(error)
            if matches!(
                error.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(js)
                    if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            let stream = jetstream
                .create_stream(plan.dead_letter_stream_config())
                .await
                .map_err(|e| rejected(e.to_string()))?;
            tracing::info!(stream = %name, "dead-letter stream created");
            Ok(stream)
        }
        Err(error) => Err(failed(
            "NatsUnreachable",
            format!("reading the dead-letter stream {name}: {error}"),
        )),
    }
}

async fn ensure_consumer(
    source: &stream::Stream<()>,
    plan: &Plan,
) -> Result<(&'static str, &'static str, consumer::Info), ConsumerState> {
    let wanted = plan.consumer_config();
    let durable = &plan.durable;
    let stream = &plan.stream;
    let rejected = |detail: String| {
        failed(
            "ConsumerRejected",
            format!("JetStream refused durable consumer {durable} on stream {stream}: {detail}"),
        )
    };
    match source.consumer_info(durable).await {
        Ok(existing) => match consumer_plan(&existing.config, &wanted) {
            ConsumerPlan::InSync => Ok((
                "ConsumerInSync",
                "has the subscription's settings",
                existing,
            )),
            ConsumerPlan::Conflict(why) => Err(failed(
                "ConsumerConflict",
                format!(
                    "durable consumer {durable} on stream {stream} exists but {why}; delete it (nats consumer rm {stream} {durable}) and the operator creates it anew, from new events on"
                ),
            )),
            ConsumerPlan::Update => {
                let mut consumer: consumer::PullConsumer = source
                    .update_consumer(wanted)
                    .await
                    .map_err(|e| rejected(e.to_string()))?;
                let info = consumer
                    .info()
                    .await
                    .map_err(|e| rejected(e.to_string()))?
                    .clone();
                tracing::info!(%durable, %stream, "consumer updated");
                Ok((
                    "ConsumerUpdated",
                    "updated to the subscription's settings",
                    info,
                ))
            }
        },
        Err(error) => {
            use jetstream::context::ConsumerInfoErrorKind as Kind;
            match error.kind() {
                Kind::NotFound => {}
                Kind::StreamNotFound => {
                    return Err(failed(
                        "SourceStreamNotFound",
                        format!(
                            "JetStream stream {stream} does not exist: the source endpoint's pass creates it (see its StreamReady condition), or create it for spec.source.stream"
                        ),
                    ));
                }
                Kind::TimedOut | Kind::NoResponders | Kind::Request | Kind::Offline => {
                    return Err(failed(
                        "NatsUnreachable",
                        format!("reading durable consumer {durable} on stream {stream}: {error}"),
                    ));
                }
                Kind::InvalidName | Kind::JetStream(_) => return Err(rejected(error.to_string())),
            }
            let mut consumer: consumer::PullConsumer = source
                .create_consumer(wanted)
                .await
                .map_err(|e| rejected(e.to_string()))?;
            let info = consumer
                .info()
                .await
                .map_err(|e| rejected(e.to_string()))?
                .clone();
            tracing::info!(%durable, %stream, "consumer created");
            Ok(("ConsumerCreated", "created", info))
        }
    }
}

/// How many dead letters the subscription has and why the newest failed;
/// `None`s when JetStream does not say (the status keeps nothing stale).
async fn observe_dead_letters(
    dead_letters: &stream::Stream,
    plan: &Plan,
) -> (Option<i64>, Option<String>) {
    use futures::TryStreamExt;
    let subject = &plan.dead_letter.subject;
    let count = match dead_letters.info_with_subjects(subject).await {
        Ok(info) => {
            let counts: Result<Vec<(String, usize)>, _> = info.try_collect().await;
            counts.ok().map(|counts| {
                counts
                    .iter()
                    .filter(|(s, _)| s == subject)
                    .map(|(_, n)| i64::try_from(*n).unwrap_or(i64::MAX))
                    .fold(0_i64, i64::saturating_add)
            })
        }
        Err(error) => {
            tracing::debug!(%error, "cannot count dead letters");
            None
        }
    };
    if count == Some(0) {
        return (count, None);
    }
    let last = match dead_letters.get_last_raw_message_by_subject(subject).await {
        Ok(message) => {
            let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
            last_error(
                header(DEAD_LETTER_STATUS).as_deref(),
                header(DEAD_LETTER_ERROR).as_deref(),
                header(DEAD_LETTER_ATTEMPTS).as_deref(),
            )
        }
        Err(error) => {
            tracing::debug!(%error, "cannot read the newest dead letter");
            None
        }
    };
    (count, last)
}

/// Removes the consumer `previous` left behind when the subscription now
/// reads another stream or server; best effort (logged): the forwarders no
/// longer read it either way.
async fn retire(connections: &Connections, effective: &Effective, previous: &Deployed) {
    if previous.plan.stream == effective.plan.stream && previous.nats_url == effective.nats_url {
        return;
    }
    match remove(
        connections,
        previous,
        effective.default_nats && previous.nats_url == effective.nats_url,
    )
    .await
    {
        Ok(true) => tracing::info!(
            stream = %previous.plan.stream,
            durable = %previous.plan.durable,
            "removed the consumer of the previous source stream"
        ),
        Ok(false) => {}
        Err(error) => tracing::warn!(
            stream = %previous.plan.stream,
            durable = %previous.plan.durable,
            %error,
            "cannot remove the consumer of the previous source stream"
        ),
    }
}

/// Deletes the durable consumer `deployed` describes, over the server and
/// credentials it was given (the operator's own for its default NATS when
/// `default_nats`). `Ok(false)`: it (or its stream) was already gone.
pub async fn remove(
    connections: &Connections,
    deployed: &Deployed,
    default_nats: bool,
) -> Result<bool, String> {
    let jetstream = jetstream_of(
        connections,
        &deployed.nats_url,
        deployed.credentials.clone(),
        default_nats,
    )
    .await
    .map_err(|state| state.message)?;
    match jetstream
        .delete_consumer_from_stream(&deployed.plan.durable, &deployed.plan.stream)
        .await
    {
        Ok(_) => Ok(true),
        Err(error) => match error.kind() {
            jetstream::stream::ConsumerErrorKind::JetStream(js)
                if js.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND
                    || js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(false)
            }
            _ => Err(format!(
                "deleting durable consumer {} on stream {} ({}): {error}",
                deployed.plan.durable,
                deployed.plan.stream,
                redact_url(&deployed.nats_url)
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let sub = hookwarden_crds::subscription_from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookSubscription\n\
             metadata: {name: to-billing, namespace: shop}\nspec:\n  \
             source: {stream: ORDERS, subjectPrefix: shop.orders}\n  \
             eventTypes: [created, paid]\n  \
             destination: {url: 'http://billing.shop.svc:8080/hooks'}\n",
        )
        .expect("valid");
        Plan::resolve(&sub, None).expect("resolves")
    }

    /// The consumer as the server reports it after creating it from the plan.
    fn stored(plan: &Plan) -> consumer::Config {
        let wanted = plan.consumer_config();
        consumer::Config {
            durable_name: wanted.durable_name.clone(),
            description: wanted.description.clone(),
            deliver_policy: wanted.deliver_policy,
            ack_policy: wanted.ack_policy,
            ack_wait: wanted.ack_wait,
            max_deliver: wanted.max_deliver,
            filter_subjects: wanted.filter_subjects.iter().rev().cloned().collect(),
            max_ack_pending: wanted.max_ack_pending,
            ..consumer::Config::default()
        }
    }

    #[test]
    fn a_consumer_like_the_plans_is_in_sync_whatever_the_filter_order() {
        let plan = plan();
        assert_eq!(
            consumer_plan(&stored(&plan), &plan.consumer_config()),
            ConsumerPlan::InSync
        );
    }

    #[test]
    fn a_single_filter_may_come_back_as_filter_subject() {
        let sub = hookwarden_crds::subscription_from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookSubscription\n\
             metadata: {name: all, namespace: shop}\nspec:\n  \
             source: {stream: ORDERS, subjectPrefix: shop.orders}\n  \
             destination: {url: 'https://example.com/'}\n",
        )
        .expect("valid");
        let plan = Plan::resolve(&sub, None).expect("resolves");
        let mut existing = stored(&plan);
        existing.filter_subject = existing.filter_subjects.remove(0);
        assert_eq!(
            consumer_plan(&existing, &plan.consumer_config()),
            ConsumerPlan::InSync
        );
    }

    #[test]
    fn changeable_settings_are_updated_and_fixed_ones_are_conflicts() {
        let plan = plan();
        let wanted = plan.consumer_config();
        let mut other_filters = stored(&plan);
        other_filters.filter_subjects = vec!["shop.orders.created".to_owned()];
        let mut other_wait = stored(&plan);
        other_wait.ack_wait = Duration::from_secs(1);
        let mut other_pending = stored(&plan);
        other_pending.max_ack_pending = 1;
        let mut limited = stored(&plan);
        limited.max_deliver = 5;
        for existing in [other_filters, other_wait, other_pending, limited] {
            assert_eq!(consumer_plan(&existing, &wanted), ConsumerPlan::Update);
        }
        let mut from_start = stored(&plan);
        from_start.deliver_policy = consumer::DeliverPolicy::All;
        let mut no_acks = stored(&plan);
        no_acks.ack_policy = consumer::AckPolicy::None;
        let mut push = stored(&plan);
        push.deliver_subject = Some("inbox".to_owned());
        for existing in [from_start, no_acks, push] {
            assert!(
                matches!(consumer_plan(&existing, &wanted), ConsumerPlan::Conflict(_)),
                "{existing:?}"
            );
        }
    }

    #[test]
    fn a_dead_letter_stream_gains_the_subject_and_its_own_max_age_only() {
        let plan = plan();
        let created = plan.dead_letter_stream_config();
        assert_eq!(dead_letter_update(&created, &plan), None);

        let mut aged = created.clone();
        aged.max_age = Duration::from_secs(60);
        let updated = dead_letter_update(&aged, &plan).expect("own stream: follows the spec");
        assert_eq!(updated.max_age, plan.dead_letter.max_age);

        // Shared with another subscription: the subject is added, the
        // stream's own max age kept.
        let mut shared = created.clone();
        shared.subjects = vec!["hookwarden-dlq.shop.other".to_owned()];
        shared.max_age = Duration::from_secs(60);
        let updated = dead_letter_update(&shared, &plan).expect("subject added");
        assert_eq!(
            updated.subjects,
            [
                "hookwarden-dlq.shop.other",
                "hookwarden-dlq.shop.to-billing"
            ]
        );
        assert_eq!(updated.max_age, Duration::from_secs(60));
        assert_eq!(dead_letter_update(&updated, &plan), None);
    }

    #[test]
    fn in_sync_keeps_how_the_consumer_got_there_for_the_same_generation() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let created = Condition {
            type_: "ConsumerReady".to_owned(),
            status: "True".to_owned(),
            reason: "ConsumerCreated".to_owned(),
            message: "created".to_owned(),
            observed_generation: Some(2),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        };
        let in_sync = || ConsumerState {
            ready: true,
            reason: "ConsumerInSync",
            message: "in sync".to_owned(),
            pending: Some(4),
            ..ConsumerState::default()
        };
        let kept = keep_earlier_reason(in_sync(), Some(&created), Some(2));
        assert_eq!(
            (kept.reason, kept.message.as_str()),
            ("ConsumerCreated", "created")
        );
        assert_eq!(kept.pending, Some(4), "the figures are this pass's");
        assert_eq!(
            keep_earlier_reason(in_sync(), Some(&created), Some(3)).reason,
            "ConsumerInSync"
        );
        let mut down = created.clone();
        down.status = "False".to_owned();
        assert_eq!(
            keep_earlier_reason(in_sync(), Some(&down), Some(2)).reason,
            "ConsumerInSync"
        );
    }

    #[test]
    fn the_last_error_is_read_from_the_headers_and_bounded() {
        assert_eq!(
            last_error(Some("503"), Some("Service Unavailable"), Some("12")).as_deref(),
            Some("503: Service Unavailable (after 12 attempts)")
        );
        assert_eq!(
            last_error(None, Some("connection refused"), None).as_deref(),
            Some("connection refused")
        );
        assert_eq!(last_error(None, None, Some("3")), None);
        let long = "é".repeat(2000);
        let bounded = last_error(Some("500"), Some(&long), None).expect("some");
        assert!(
            bounded.len() <= MAX_LAST_ERROR + '…'.len_utf8(),
            "{}",
            bounded.len()
        );
        assert!(bounded.ends_with('…'));
    }
}
