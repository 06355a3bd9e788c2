//! The endpoint's status, computed from what one reconcile pass observed.
//!
//! Pure: the pass hands in its observations and the previous conditions, and
//! gets the conditions to write. A condition keeps its `lastTransitionTime`
//! while its status stays the same, so an unchanged world writes an unchanged
//! status, and the status write does not itself trigger another pass.

use hookwarden_crds::WebhookEndpointStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The summary condition: deliveries to the endpoint are accepted.
pub const READY: &str = hookwarden_crds::READY_CONDITION;
/// Every referenced Secret key exists.
pub const SECRETS_RESOLVED: &str = "SecretsResolved";
/// The requested receiver pods are available.
pub const RECEIVER_AVAILABLE: &str = "ReceiverAvailable";
/// cert-manager issued the Ingress's certificate (only with `tls.issuerRef`).
pub const CERTIFICATE_READY: &str = "CertificateReady";
/// The JetStream stream exists with the spec's settings.
pub const STREAM_READY: &str = "StreamReady";
/// The endpoint's pool serves the configuration of its current generation
/// (only for an endpoint with `spec.pool`).
pub const CONFIG_APPLIED: &str = "ConfigApplied";
/// Every published list of `spec.allowedSources` was fetched, recently
/// enough (only with `allowedSources`).
pub const SOURCE_RANGES_CURRENT: &str = "SourceRangesCurrent";

/// The `SourceRangesCurrent` condition for `ranges`.
pub fn observe_source_ranges(ranges: &crate::ranges::EndpointRanges) -> Observed {
    match ranges {
        crate::ranges::EndpointRanges::Known {
            current: true,
            message,
            ..
        } => Observed {
            type_: SOURCE_RANGES_CURRENT,
            status: "True",
            reason: "Fetched",
            message: message.clone(),
        },
        crate::ranges::EndpointRanges::Known { message, .. } => Observed {
            type_: SOURCE_RANGES_CURRENT,
            status: "False",
            reason: "Stale",
            message: format!(
                "a list is older than --source-ranges-max-age; the receivers keep its last good ranges: {message}"
            ),
        },
        crate::ranges::EndpointRanges::Unavailable { message } => Observed {
            type_: SOURCE_RANGES_CURRENT,
            status: "False",
            reason: "NotFetched",
            message: message.clone(),
        },
    }
}

/// The endpoint's JetStream stream as observed in this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamState {
    /// Whether deliveries can be stored.
    pub ready: bool,
    /// `StreamCreated`, `StreamUpdated`, `StreamInSync`, `Unmanaged`,
    /// `NatsUnreachable`, `StreamNotFound`, `StreamConflict`,
    /// `StreamRejected` or `CredentialsInvalid`.
    pub reason: &'static str,
    /// For a person: names the stream and NATS, never a credential.
    pub message: String,
}

/// The `StreamReady` condition for `stream`.
pub fn observe_stream(stream: &StreamState) -> Observed {
    Observed {
        type_: STREAM_READY,
        status: flag(stream.ready),
        reason: stream.reason,
        message: stream.message.clone(),
    }
}

/// The cert-manager Certificate as observed in this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificateState {
    /// `certificates.cert-manager.io` is not served: nothing was requested.
    CertManagerNotInstalled {
        /// The Secret the Ingress would serve.
        secret: String,
    },
    /// The Certificate is applied; cert-manager's own `Ready` condition.
    Requested {
        /// The Secret cert-manager writes.
        secret: String,
        /// `Ready` of the Certificate: `None` while cert-manager has not
        /// reported yet.
        ready: Option<bool>,
        /// cert-manager's message, if any (never secret material).
        message: Option<String>,
    },
}

/// What a pass that built the children knows about how the endpoint is
/// exposed. Passes that stop early (invalid spec, missing Secret) have none
/// and keep what the previous status said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exposure {
    /// `status.url`: the public URL, `None` without an Ingress.
    pub url: Option<String>,
    /// `status.secretName`: the generated Secret, with `generateSecret`.
    pub secret_name: Option<String>,
    /// The Certificate, when `tls.issuerRef` asks for one.
    pub certificate: Option<CertificateState>,
    /// The JetStream stream.
    pub stream: Option<StreamState>,
}

/// The `CertificateReady` condition for `certificate`.
pub fn observe_certificate(certificate: &CertificateState) -> Observed {
    match certificate {
        CertificateState::CertManagerNotInstalled { secret } => Observed {
            type_: CERTIFICATE_READY,
            status: "False",
            reason: "CertManagerNotInstalled",
            message: format!(
                "spec.tls.issuerRef (or, without spec.tls, the operator's --default-issuer-name) asks for a certificate but cert-manager is not installed (CRD certificates.cert-manager.io is not served), so no Certificate was requested and the Ingress has no certificate in Secret {secret:?}; install cert-manager, or use spec.tls.secretName with an existing TLS Secret"
            ),
        },
        CertificateState::Requested {
            secret,
            ready: Some(true),
            ..
        } => Observed {
            type_: CERTIFICATE_READY,
            status: "True",
            reason: "Issued",
            message: format!("cert-manager issued the certificate into Secret {secret:?}"),
        },
        CertificateState::Requested {
            secret,
            ready,
            message,
        } => Observed {
            type_: CERTIFICATE_READY,
            status: if ready.is_some() { "False" } else { "Unknown" },
            reason: "Issuing",
            message: format!(
                "waiting for cert-manager to issue Secret {secret:?}: {}; see `kubectl describe certificate` of the same name as the Ingress",
                message.as_deref().unwrap_or("no status reported yet")
            ),
        },
    }
}

/// What the pass learned about the spec and the referenced Secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecState {
    /// The spec cannot be reconciled as written; it waits for a change.
    Invalid {
        /// Why, for a person to act on.
        message: String,
    },
    /// A referenced Secret or key is missing, or its value is too large.
    SecretsUnresolved {
        /// `SecretNotFound`, `SecretKeyNotFound` or `SecretValueTooLarge`.
        reason: &'static str,
        /// Names the Secret and key, never a value.
        message: String,
    },
    /// A published list of `allowedSources` was never fetched: nothing is
    /// rendered (without it the receivers would take any source).
    SourceRangesUnavailable {
        /// Which list, and why.
        message: String,
    },
    /// `spec.pool` names a pool that does not exist in the namespace.
    PoolNotFound {
        /// Which pool, and what to do.
        message: String,
    },
    /// Every referenced key was read.
    Resolved {
        /// How many distinct keys are referenced.
        keys: usize,
    },
}

/// The receiver Deployment as observed in this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiverState {
    /// `spec.replicas` of the endpoint.
    pub desired: i32,
    /// `status.availableReplicas` of the Deployment.
    pub available: i32,
    /// `status.readyReplicas` of the Deployment.
    pub ready: i32,
}

/// One condition as this pass sees it, before transition times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The condition type.
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// A CamelCase reason.
    pub reason: &'static str,
    /// What a person should know or do.
    pub message: String,
}

fn flag(ok: bool) -> &'static str {
    if ok { "True" } else { "False" }
}

/// The three conditions for `spec` and `receiver` (`None`: no receiver
/// Deployment exists).
pub fn observe(spec: &SpecState, receiver: Option<ReceiverState>) -> [Observed; 3] {
    let secrets = match spec {
        SpecState::Invalid { .. } => Observed {
            type_: SECRETS_RESOLVED,
            status: "Unknown",
            reason: "InvalidSpec",
            message: "Secrets are not resolved until the spec is valid".to_owned(),
        },
        SpecState::SecretsUnresolved { reason, message } => Observed {
            type_: SECRETS_RESOLVED,
            status: "False",
            reason,
            message: message.clone(),
        },
        SpecState::SourceRangesUnavailable { .. } => Observed {
            type_: SECRETS_RESOLVED,
            status: "Unknown",
            reason: "SourceRangesUnavailable",
            message: "Secrets are resolved once the source ranges are fetched".to_owned(),
        },
        SpecState::PoolNotFound { .. } => Observed {
            type_: SECRETS_RESOLVED,
            status: "Unknown",
            reason: "PoolNotFound",
            message: "Secrets are resolved once the pool exists".to_owned(),
        },
        SpecState::Resolved { keys } => Observed {
            type_: SECRETS_RESOLVED,
            status: "True",
            reason: "Resolved",
            message: format!("all {keys} referenced Secret keys exist"),
        },
    };
    let available = match receiver {
        None => Observed {
            type_: RECEIVER_AVAILABLE,
            status: "False",
            reason: "NotDeployed",
            message: "the receiver Deployment does not exist yet".to_owned(),
        },
        Some(r) => Observed {
            type_: RECEIVER_AVAILABLE,
            status: flag(r.available >= r.desired),
            reason: if r.available >= r.desired {
                "ReplicasAvailable"
            } else {
                "ReplicasUnavailable"
            },
            message: format!("{} of {} receiver pods available", r.available, r.desired),
        },
    };
    let ready = match spec {
        SpecState::Invalid { message } => Observed {
            type_: READY,
            status: "False",
            reason: "InvalidSpec",
            message: message.clone(),
        },
        SpecState::SecretsUnresolved { reason, message } => Observed {
            type_: READY,
            status: "False",
            reason,
            message: message.clone(),
        },
        SpecState::SourceRangesUnavailable { message } => Observed {
            type_: READY,
            status: "False",
            reason: "SourceRangesUnavailable",
            message: message.clone(),
        },
        SpecState::PoolNotFound { message } => Observed {
            type_: READY,
            status: "False",
            reason: "PoolNotFound",
            message: message.clone(),
        },
        SpecState::Resolved { .. } => Observed {
            type_: READY,
            status: available.status,
            reason: if available.status == "True" {
                "ReceiverAvailable"
            } else {
                "ReceiverUnavailable"
            },
            message: available.message.clone(),
        },
    };
    [ready, secrets, available]
}

/// The conditions to write: `observed`, with the previous transition time
/// kept wherever the status did not change, and `now` where it did.
pub fn merge(
    previous: &[Condition],
    observed: &[Observed],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    observed
        .iter()
        .map(|o| {
            let before = previous.iter().find(|c| c.type_ == o.type_);
            let last_transition_time = match before {
                Some(before) if before.status == o.status => before.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: o.type_.to_owned(),
                status: o.status.to_owned(),
                reason: o.reason.to_owned(),
                message: o.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Adds `blocker` (a condition Ready depends on, such as
/// `ConfigApplied`) to `conditions`, and turns a True `Ready` False with
/// its reason and message while it is not True.
pub fn gate_ready(
    conditions: &mut Vec<Condition>,
    previous: &[Condition],
    blocker: &Observed,
    generation: Option<i64>,
    now: &Time,
) {
    conditions.extend(merge(
        previous,
        std::slice::from_ref(blocker),
        generation,
        now,
    ));
    if blocker.status == "True" {
        return;
    }
    if let Some(ready) = conditions
        .iter_mut()
        .find(|c| c.type_ == READY && c.status == "True")
    {
        let gated = Observed {
            type_: READY,
            status: "False",
            reason: blocker.reason,
            message: blocker.message.clone(),
        };
        if let Some(condition) = merge(previous, &[gated], generation, now).pop() {
            *ready = condition;
        }
    }
}

/// The conditions whose status changed from `previous` (or that are new):
/// the transitions worth an Event.
pub fn transitions<'a>(previous: &[Condition], current: &'a [Condition]) -> Vec<&'a Condition> {
    current
        .iter()
        .filter(|c| {
            previous
                .iter()
                .find(|p| p.type_ == c.type_)
                .is_none_or(|p| p.status != c.status)
        })
        .collect()
}

/// The whole status of a pass that stopped before building the children:
/// URL, Secret name and `CertificateReady` stay as they were.
pub fn status(
    previous: Option<&WebhookEndpointStatus>,
    spec: &SpecState,
    receiver: Option<ReceiverState>,
    generation: Option<i64>,
    now: &Time,
) -> WebhookEndpointStatus {
    status_with(previous, spec, receiver, None, generation, now)
}

/// The whole status of one pass; `exposure` is `None` when the pass did not
/// get as far as building the children.
pub fn status_with(
    previous: Option<&WebhookEndpointStatus>,
    spec: &SpecState,
    receiver: Option<ReceiverState>,
    exposure: Option<&Exposure>,
    generation: Option<i64>,
    now: &Time,
) -> WebhookEndpointStatus {
    let before = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let mut observed = observe(spec, receiver).to_vec();
    let mut kept = Vec::new();
    match exposure.and_then(|e| e.stream.as_ref()) {
        Some(stream) => {
            let condition = observe_stream(stream);
            // Receivers without their stream answer 503 to every delivery
            // (and turn unready when NATS is down): the stream comes first.
            if !stream.ready {
                observed[0] = Observed {
                    type_: READY,
                    status: "False",
                    reason: "StreamNotReady",
                    message: condition.message.clone(),
                };
            }
            observed.push(condition);
        }
        None if exposure.is_none() => {
            kept.extend(before.iter().find(|c| c.type_ == STREAM_READY).cloned())
        }
        None => {}
    }
    match exposure {
        Some(Exposure {
            certificate: Some(certificate),
            ..
        }) => {
            let cert = observe_certificate(certificate);
            // Without its certificate the public URL does not work: Ready
            // says so rather than pointing at a healthy Deployment.
            if cert.status != "True" && observed[0].status == "True" {
                observed[0] = Observed {
                    type_: READY,
                    status: "False",
                    reason: "CertificateNotReady",
                    message: cert.message.clone(),
                };
            }
            observed.push(cert);
        }
        Some(_) => {}
        None => kept.extend(
            before
                .iter()
                .find(|c| c.type_ == CERTIFICATE_READY)
                .cloned(),
        ),
    }
    let mut conditions = merge(before, &observed, generation, now);
    conditions.extend(kept);
    WebhookEndpointStatus {
        url: match exposure {
            Some(e) => e.url.clone(),
            None => previous.and_then(|s| s.url.clone()),
        },
        secret_name: match exposure {
            Some(e) => e.secret_name.clone(),
            None => previous.and_then(|s| s.secret_name.clone()),
        },
        observed_generation: generation,
        ready_replicas: receiver.map(|r| r.ready),
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid time"))
    }

    fn find<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
        conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition present")
    }

    const RESOLVED: SpecState = SpecState::Resolved { keys: 1 };

    fn receiver(available: i32) -> Option<ReceiverState> {
        Some(ReceiverState {
            desired: 2,
            available,
            ready: available,
        })
    }

    #[test]
    fn ready_when_all_replicas_are_available() {
        let s = status(None, &RESOLVED, receiver(2), Some(4), &at(100));
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(s.ready_replicas, Some(2));
        let types: Vec<&str> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, SECRETS_RESOLVED, RECEIVER_AVAILABLE]);
        for c in &s.conditions {
            assert_eq!(c.status, "True", "{c:?}");
            assert_eq!(c.observed_generation, Some(4));
        }
    }

    #[test]
    fn not_ready_while_pods_are_missing() {
        let s = status(None, &RESOLVED, receiver(1), Some(1), &at(100));
        let ready = find(&s.conditions, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "ReceiverUnavailable")
        );
        assert_eq!(ready.message, "1 of 2 receiver pods available");
        assert_eq!(find(&s.conditions, RECEIVER_AVAILABLE).status, "False");
        assert_eq!(find(&s.conditions, SECRETS_RESOLVED).status, "True");

        let s = status(None, &RESOLVED, None, Some(1), &at(100));
        assert_eq!(
            find(&s.conditions, RECEIVER_AVAILABLE).reason,
            "NotDeployed"
        );
        assert_eq!(s.ready_replicas, None);
    }

    #[test]
    fn a_missing_secret_is_the_reason_ready_is_false() {
        let spec = SpecState::SecretsUnresolved {
            reason: "SecretNotFound",
            message: "Secret \"gh\" not found".to_owned(),
        };
        let s = status(None, &spec, None, Some(1), &at(100));
        for type_ in [READY, SECRETS_RESOLVED] {
            let c = find(&s.conditions, type_);
            assert_eq!(
                (c.status.as_str(), c.reason.as_str()),
                ("False", "SecretNotFound")
            );
            assert_eq!(c.message, "Secret \"gh\" not found");
        }
    }

    #[test]
    fn an_invalid_spec_leaves_secrets_unknown() {
        let spec = SpecState::Invalid {
            message: "name too long".to_owned(),
        };
        let s = status(None, &spec, None, Some(1), &at(100));
        assert_eq!(find(&s.conditions, READY).reason, "InvalidSpec");
        assert_eq!(find(&s.conditions, SECRETS_RESOLVED).status, "Unknown");
    }

    #[test]
    fn transition_time_is_kept_while_the_status_stays() {
        let first = status(None, &RESOLVED, receiver(1), Some(1), &at(100));
        // Same statuses, new message and generation: times stay.
        let second = status(Some(&first), &RESOLVED, receiver(0), Some(2), &at(200));
        for c in &second.conditions {
            assert_eq!(c.last_transition_time, at(100), "{c:?}");
        }
        assert_eq!(
            find(&second.conditions, READY).message,
            "0 of 2 receiver pods available"
        );
        // Ready and ReceiverAvailable flip; SecretsResolved does not.
        let third = status(Some(&second), &RESOLVED, receiver(2), Some(2), &at(300));
        assert_eq!(find(&third.conditions, READY).last_transition_time, at(300));
        assert_eq!(
            find(&third.conditions, RECEIVER_AVAILABLE).last_transition_time,
            at(300)
        );
        assert_eq!(
            find(&third.conditions, SECRETS_RESOLVED).last_transition_time,
            at(100)
        );
        let changed: Vec<&str> = transitions(&second.conditions, &third.conditions)
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(changed, [READY, RECEIVER_AVAILABLE]);
        // An unchanged world writes an unchanged status.
        let fourth = status(Some(&third), &RESOLVED, receiver(2), Some(2), &at(400));
        assert_eq!(fourth, third);
        assert!(transitions(&third.conditions, &fourth.conditions).is_empty());
    }

    #[test]
    fn zero_replicas_are_trivially_available() {
        let r = Some(ReceiverState {
            desired: 0,
            available: 0,
            ready: 0,
        });
        let s = status(None, &RESOLVED, r, Some(1), &at(1));
        assert_eq!(find(&s.conditions, READY).status, "True");
    }

    fn exposed(certificate: Option<CertificateState>) -> Exposure {
        Exposure {
            url: Some("https://hooks.example.com/".to_owned()),
            secret_name: Some("shop-webhook-secret".to_owned()),
            certificate,
            stream: None,
        }
    }

    #[test]
    fn a_stream_that_is_not_ready_makes_the_endpoint_unready_first() {
        let stream = StreamState {
            ready: false,
            reason: "NatsUnreachable",
            message: "cannot reach NATS at nats://x:4222".to_owned(),
        };
        let e = Exposure {
            stream: Some(stream),
            ..exposed(None)
        };
        // Even with receivers unavailable (they turn unready without NATS),
        // Ready names the stream.
        for r in [receiver(2), receiver(0)] {
            let s = status_with(None, &RESOLVED, r, Some(&e), Some(1), &at(1));
            let c = find(&s.conditions, STREAM_READY);
            assert_eq!(
                (c.status.as_str(), c.reason.as_str()),
                ("False", "NatsUnreachable")
            );
            let ready = find(&s.conditions, READY);
            assert_eq!(
                (ready.status.as_str(), ready.reason.as_str()),
                ("False", "StreamNotReady")
            );
            assert_eq!(ready.message, c.message);
        }

        let created = Exposure {
            stream: Some(StreamState {
                ready: true,
                reason: "StreamCreated",
                message: "created".to_owned(),
            }),
            ..exposed(None)
        };
        let s = status_with(
            None,
            &RESOLVED,
            receiver(2),
            Some(&created),
            Some(1),
            &at(1),
        );
        assert_eq!(find(&s.conditions, STREAM_READY).status, "True");
        assert_eq!(find(&s.conditions, READY).status, "True");

        // A pass that stops early keeps what the last one said.
        let spec = SpecState::SecretsUnresolved {
            reason: "SecretNotFound",
            message: "gone".to_owned(),
        };
        let later = status(Some(&s), &spec, receiver(2), Some(2), &at(2));
        assert_eq!(
            find(&later.conditions, STREAM_READY).reason,
            "StreamCreated"
        );
    }

    #[test]
    fn missing_cert_manager_is_reported_and_keeps_the_endpoint_unready() {
        let cert = CertificateState::CertManagerNotInstalled {
            secret: "shop-tls".to_owned(),
        };
        let e = exposed(Some(cert));
        let s = status_with(None, &RESOLVED, receiver(2), Some(&e), Some(1), &at(1));
        assert_eq!(s.url.as_deref(), Some("https://hooks.example.com/"));
        assert_eq!(s.secret_name.as_deref(), Some("shop-webhook-secret"));
        let c = find(&s.conditions, CERTIFICATE_READY);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "CertManagerNotInstalled")
        );
        assert!(c.message.contains("install cert-manager"), "{}", c.message);
        let ready = find(&s.conditions, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "CertificateNotReady")
        );
    }

    #[test]
    fn an_issued_certificate_is_ready_and_a_pending_one_unknown() {
        let issued = CertificateState::Requested {
            secret: "shop-tls".to_owned(),
            ready: Some(true),
            message: None,
        };
        let s = status_with(
            None,
            &RESOLVED,
            receiver(2),
            Some(&exposed(Some(issued))),
            Some(1),
            &at(1),
        );
        assert_eq!(find(&s.conditions, CERTIFICATE_READY).status, "True");
        assert_eq!(find(&s.conditions, READY).status, "True");
        let pending = CertificateState::Requested {
            secret: "shop-tls".to_owned(),
            ready: None,
            message: None,
        };
        let s2 = status_with(
            Some(&s),
            &RESOLVED,
            receiver(2),
            Some(&exposed(Some(pending))),
            Some(1),
            &at(2),
        );
        assert_eq!(find(&s2.conditions, CERTIFICATE_READY).status, "Unknown");
        // A pass that stops early keeps the URL, the Secret name and the condition.
        let spec = SpecState::SecretsUnresolved {
            reason: "SecretNotFound",
            message: "m".to_owned(),
        };
        let s3 = status(Some(&s2), &spec, None, Some(2), &at(3));
        assert_eq!(s3.url, s2.url);
        assert_eq!(s3.secret_name, s2.secret_name);
        assert_eq!(
            find(&s3.conditions, CERTIFICATE_READY),
            find(&s2.conditions, CERTIFICATE_READY)
        );
        // Without issuerRef the condition goes away.
        let s4 = status_with(
            Some(&s3),
            &RESOLVED,
            receiver(2),
            Some(&exposed(None)),
            Some(3),
            &at(4),
        );
        assert!(s4.conditions.iter().all(|c| c.type_ != CERTIFICATE_READY));
    }
}

#[cfg(test)]
mod source_range_tests {
    use super::*;
    use crate::ranges::EndpointRanges;

    #[test]
    fn source_ranges_current_stale_and_never_fetched() {
        let known = |current| EndpointRanges::Known {
            ranges: vec!["127.0.0.0/8".to_owned()],
            current,
            message: "github hooks (https://api.github.com/meta): 1 ranges".to_owned(),
        };
        let ok = observe_source_ranges(&known(true));
        assert_eq!(
            (ok.type_, ok.status, ok.reason),
            (SOURCE_RANGES_CURRENT, "True", "Fetched")
        );
        assert!(ok.message.contains("api.github.com"));
        let stale = observe_source_ranges(&known(false));
        assert_eq!((stale.status, stale.reason), ("False", "Stale"));
        let never = observe_source_ranges(&EndpointRanges::Unavailable {
            message: "never".to_owned(),
        });
        assert_eq!((never.status, never.reason), ("False", "NotFetched"));
        let [ready, secrets, _] = observe(
            &SpecState::SourceRangesUnavailable {
                message: "github hooks has never been fetched".to_owned(),
            },
            None,
        );
        assert_eq!(
            (ready.status, ready.reason),
            ("False", "SourceRangesUnavailable")
        );
        assert_eq!(secrets.status, "Unknown");
    }
}
