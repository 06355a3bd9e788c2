//! A subscription's status, computed from what one pass observed.
//!
//! Pure, like the endpoint's ([`super::status`], whose transition-time and
//! Event rules it shares): `Ready` and the three conditions it is made of,
//! each with a reason and a message that say what to fix.

use hookwarden_crds::WebhookSubscriptionStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::consumer::ConsumerState;
use super::status::{Observed, merge};

/// The summary condition: events are being delivered.
pub const READY: &str = hookwarden_crds::READY_CONDITION;
/// The source endpoint (or stream) and every referenced Secret key exist.
pub const SOURCE_RESOLVED: &str = "SourceResolved";
/// The durable consumer and the dead-letter stream exist with the plan's
/// settings.
pub const CONSUMER_READY: &str = "ConsumerReady";
/// The requested forwarder pods are available.
pub const FORWARDER_AVAILABLE: &str = "ForwarderAvailable";

/// What the pass learned about the spec, its source and its Secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceState {
    /// The spec cannot be delivered as written (`InvalidSpec`), or the
    /// source endpoint's own NATS settings are invalid (`EndpointInvalid`).
    Invalid {
        /// The reason.
        reason: &'static str,
        /// Why, for a person to act on.
        message: String,
    },
    /// `spec.source.endpoint` names no endpoint of the namespace.
    EndpointNotFound {
        /// What to do.
        message: String,
    },
    /// A referenced Secret or key is missing, or the signing secret is not
    /// a Standard Webhooks secret.
    SecretsUnresolved {
        /// `SecretNotFound`, `SecretKeyNotFound`, `SecretValueTooLarge` or
        /// `SigningSecretInvalid`.
        reason: &'static str,
        /// Names the Secret and key, never a value.
        message: String,
    },
    /// Everything is there.
    Resolved {
        /// The stream read, for the message.
        stream: String,
        /// How many Secret keys the forwarders are given.
        keys: usize,
    },
}

/// The forwarder Deployment as observed in this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwarderState {
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.availableReplicas` of the Deployment.
    pub available: i32,
    /// `status.readyReplicas` of the Deployment.
    pub ready: i32,
}

/// What a pass observed; `consumer` is `None` when it stopped before NATS
/// (the previous consumer condition and figures are then kept).
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    /// The source and Secrets.
    pub source: &'a SourceState,
    /// The consumer, when the pass got that far.
    pub consumer: Option<&'a ConsumerState>,
    /// The forwarder Deployment, if it exists.
    pub forwarder: Option<ForwarderState>,
    /// The generated signing Secret, when the spec names none.
    pub signing_secret_name: Option<String>,
    /// The durable consumer's name, when known.
    pub consumer_name: Option<String>,
}

fn source_condition(source: &SourceState) -> Observed {
    let (status, reason, message) = match source {
        SourceState::Invalid { reason, message } => ("False", *reason, message.clone()),
        SourceState::EndpointNotFound { message } => ("False", "EndpointNotFound", message.clone()),
        SourceState::SecretsUnresolved { reason, message } => ("False", *reason, message.clone()),
        SourceState::Resolved { stream, keys } => (
            "True",
            "Resolved",
            format!("reading JetStream stream {stream}; all {keys} referenced Secret keys exist"),
        ),
    };
    Observed {
        type_: SOURCE_RESOLVED,
        status,
        reason,
        message,
    }
}

fn consumer_condition(consumer: &ConsumerState) -> Observed {
    Observed {
        type_: CONSUMER_READY,
        status: if consumer.ready { "True" } else { "False" },
        reason: consumer.reason,
        message: consumer.message.clone(),
    }
}

fn forwarder_condition(forwarder: Option<ForwarderState>) -> Observed {
    match forwarder {
        None => Observed {
            type_: FORWARDER_AVAILABLE,
            status: "False",
            reason: "NotDeployed",
            message: "the forwarder Deployment does not exist yet".to_owned(),
        },
        Some(f) => {
            let available = f.available >= f.desired;
            Observed {
                type_: FORWARDER_AVAILABLE,
                status: if available { "True" } else { "False" },
                reason: if available {
                    "ReplicasAvailable"
                } else {
                    "ReplicasUnavailable"
                },
                message: if available {
                    format!("{} of {} forwarder pods available", f.available, f.desired)
                } else {
                    format!(
                        "{} of {} forwarder pods available; see `kubectl describe deployment` and the pods' logs (a forwarder is ready once its NATS is connected and its consumer bound)",
                        f.available, f.desired
                    )
                },
            }
        }
    }
}

/// `Ready`: the first of its conditions that is not `True`, in the order a
/// user fixes them (source, consumer, pods), else delivering.
fn ready_condition(
    source: &Observed,
    consumer: Option<&Observed>,
    forwarder: &Observed,
    desired: Option<i32>,
) -> Observed {
    let failing = [Some(source), consumer, Some(forwarder)]
        .into_iter()
        .flatten()
        .find(|c| c.status != "True");
    if let Some(failing) = failing {
        return Observed {
            type_: READY,
            status: "False",
            reason: failing.reason,
            message: failing.message.clone(),
        };
    }
    if consumer.is_none() {
        return Observed {
            type_: READY,
            status: "Unknown",
            reason: "ConsumerUnknown",
            message: "the consumer was not checked yet".to_owned(),
        };
    }
    if desired == Some(0) {
        return Observed {
            type_: READY,
            status: "False",
            reason: "ScaledToZero",
            message: "spec.replicas is 0: events wait in the stream, the consumer keeping its place, until it is raised".to_owned(),
        };
    }
    Observed {
        type_: READY,
        status: "True",
        reason: "Delivering",
        message: forwarder.message.clone(),
    }
}

/// The whole status of one pass.
pub fn status(
    previous: Option<&WebhookSubscriptionStatus>,
    observation: &Observation<'_>,
    generation: Option<i64>,
    now: &Time,
) -> WebhookSubscriptionStatus {
    let before: &[Condition] = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let source = source_condition(observation.source);
    let forwarder = forwarder_condition(observation.forwarder);
    let consumer = observation.consumer.map(consumer_condition);
    // A pass that stopped before NATS keeps the consumer as last seen.
    let kept_consumer = match &consumer {
        Some(_) => None,
        None => before.iter().find(|c| c.type_ == CONSUMER_READY).cloned(),
    };
    let kept_observed = kept_consumer.as_ref().map(|c| Observed {
        type_: CONSUMER_READY,
        // Only read for `Ready`: a kept True does not make a pass that
        // stopped early ready, since the source is then not True either.
        status: if c.status == "True" { "True" } else { "False" },
        reason: "ConsumerNotChecked",
        message: c.message.clone(),
    });
    let ready = ready_condition(
        &source,
        consumer.as_ref().or(kept_observed.as_ref()),
        &forwarder,
        observation.forwarder.map(|f| f.desired),
    );
    let mut observed = vec![ready, source];
    observed.extend(consumer);
    observed.push(forwarder);
    let mut conditions = merge(before, &observed, generation, now);
    if let Some(kept) = kept_consumer {
        conditions.insert(2, kept);
    }
    let from_consumer =
        |field: fn(&ConsumerState) -> Option<i64>, kept: Option<i64>| -> Option<i64> {
            match observation.consumer {
                Some(consumer) => field(consumer),
                None => kept,
            }
        };
    WebhookSubscriptionStatus {
        observed_generation: generation,
        consumer: observation
            .consumer_name
            .clone()
            .or_else(|| previous.and_then(|s| s.consumer.clone())),
        pending: from_consumer(|c| c.pending, previous.and_then(|s| s.pending)),
        signing_secret_name: observation.signing_secret_name.clone(),
        dead_letters: from_consumer(|c| c.dead_letters, previous.and_then(|s| s.dead_letters)),
        last_error: match observation.consumer {
            Some(consumer) => consumer.last_error.clone(),
            None => previous.and_then(|s| s.last_error.clone()),
        },
        ready_replicas: observation.forwarder.map(|f| f.ready),
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::super::status::transitions;
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid time"))
    }

    fn find<'a>(status: &'a WebhookSubscriptionStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition present")
    }

    fn resolved() -> SourceState {
        SourceState::Resolved {
            stream: "HOOKWARDEN_CI_GITHUB".to_owned(),
            keys: 1,
        }
    }

    fn consumer(ready: bool) -> ConsumerState {
        ConsumerState {
            ready,
            reason: if ready {
                "ConsumerCreated"
            } else {
                "NatsUnreachable"
            },
            message: if ready {
                "created".to_owned()
            } else {
                "nats down".to_owned()
            },
            pending: Some(7),
            dead_letters: Some(2),
            last_error: Some("503: busy (after 12 attempts)".to_owned()),
        }
    }

    fn pods(desired: i32, available: i32) -> Option<ForwarderState> {
        Some(ForwarderState {
            desired,
            available,
            ready: available,
        })
    }

    fn observation<'a>(
        source: &'a SourceState,
        consumer: Option<&'a ConsumerState>,
        forwarder: Option<ForwarderState>,
    ) -> Observation<'a> {
        Observation {
            source,
            consumer,
            forwarder,
            signing_secret_name: Some("to-billing-signing".to_owned()),
            consumer_name: Some("hookwarden_ci_to-billing".to_owned()),
        }
    }

    #[test]
    fn ready_when_source_consumer_and_pods_are() {
        let source = resolved();
        let consumer = consumer(true);
        let s = status(
            None,
            &observation(&source, Some(&consumer), pods(1, 1)),
            Some(3),
            &at(100),
        );
        let types: Vec<&str> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            [READY, SOURCE_RESOLVED, CONSUMER_READY, FORWARDER_AVAILABLE]
        );
        assert!(s.conditions.iter().all(|c| c.status == "True"), "{s:?}");
        assert_eq!(find(&s, READY).reason, "Delivering");
        assert_eq!(s.pending, Some(7));
        assert_eq!(s.dead_letters, Some(2));
        assert_eq!(
            s.last_error.as_deref(),
            Some("503: busy (after 12 attempts)")
        );
        assert_eq!(s.consumer.as_deref(), Some("hookwarden_ci_to-billing"));
        assert_eq!(s.signing_secret_name.as_deref(), Some("to-billing-signing"));
        assert_eq!(s.ready_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(3));
    }

    #[test]
    fn ready_names_the_first_thing_to_fix() {
        let source = resolved();
        let down = consumer(false);
        let s = status(
            None,
            &observation(&source, Some(&down), pods(1, 0)),
            Some(1),
            &at(100),
        );
        let ready = find(&s, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "NatsUnreachable")
        );
        assert_eq!(ready.message, "nats down");

        let up = consumer(true);
        let s = status(
            None,
            &observation(&source, Some(&up), pods(2, 1)),
            Some(1),
            &at(100),
        );
        assert_eq!(find(&s, READY).reason, "ReplicasUnavailable");
        assert!(find(&s, FORWARDER_AVAILABLE).message.starts_with("1 of 2"));

        let s = status(
            None,
            &observation(&source, Some(&up), pods(0, 0)),
            Some(1),
            &at(100),
        );
        assert_eq!(find(&s, FORWARDER_AVAILABLE).status, "True");
        assert_eq!(
            (
                find(&s, READY).status.as_str(),
                find(&s, READY).reason.as_str()
            ),
            ("False", "ScaledToZero")
        );
    }

    #[test]
    fn a_missing_endpoint_keeps_the_consumer_as_last_seen() {
        let source = resolved();
        let up = consumer(true);
        let first = status(
            None,
            &observation(&source, Some(&up), pods(1, 1)),
            Some(1),
            &at(100),
        );
        let missing = SourceState::EndpointNotFound {
            message: "WebhookEndpoint \"github\" does not exist".to_owned(),
        };
        let second = status(
            Some(&first),
            &observation(&missing, None, pods(1, 1)),
            Some(1),
            &at(200),
        );
        let ready = find(&second, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "EndpointNotFound")
        );
        let source = find(&second, SOURCE_RESOLVED);
        assert_eq!(source.status, "False");
        // The consumer condition and figures are the first pass's.
        assert_eq!(find(&second, CONSUMER_READY), find(&first, CONSUMER_READY));
        assert_eq!(second.pending, Some(7));
        assert_eq!(second.dead_letters, Some(2));
        let types: Vec<&str> = second.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            [READY, SOURCE_RESOLVED, CONSUMER_READY, FORWARDER_AVAILABLE]
        );
        let changed: Vec<&str> = transitions(&first.conditions, &second.conditions)
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(changed, [READY, SOURCE_RESOLVED]);
    }

    #[test]
    fn without_any_consumer_seen_ready_is_not_true() {
        let missing = SourceState::SecretsUnresolved {
            reason: "SecretNotFound",
            message: "Secret \"billing-ca\" does not exist".to_owned(),
        };
        let s = status(None, &observation(&missing, None, None), Some(1), &at(100));
        assert_eq!(find(&s, READY).reason, "SecretNotFound");
        assert!(s.conditions.iter().all(|c| c.type_ != CONSUMER_READY));
        assert_eq!(find(&s, FORWARDER_AVAILABLE).reason, "NotDeployed");
        assert_eq!(s.pending, None);
    }
}
