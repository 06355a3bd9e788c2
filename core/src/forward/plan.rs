//! What a `WebhookSubscription` means, resolved once: the stream and subject
//! filters it reads, its durable consumer, its dead-letter stream, its retry
//! policy and its destination.
//!
//! The one definition shared by the forwarder (which reads and delivers) and
//! the operator (which creates the consumer and the dead-letter stream ahead
//! of the pods and reports on them): both build the consumer's configuration
//! from [`Plan::consumer_config`], so neither can drift from the other.

use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use hookwarden_crds::{EndpointManifest, SecretKeyRef, SubscriptionManifest};

use crate::publish::{DEFAULT_NAMESPACE, Target, TargetError, subject_covers};
use crate::subject_token::sanitize_token;

/// Attempts in all when `spec.retry.maxAttempts` is absent.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 12;
/// How long an event is retried when `spec.retry.maxAgeSeconds` is absent.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(86_400);
/// The first retry delay when `spec.retry.initialBackoffSeconds` is absent.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest retry delay when `spec.retry.maxBackoffSeconds` is absent.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// The destination's answer time when `spec.destination.timeoutSeconds` is absent.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries in flight when `spec.delivery.maxInFlight` is absent.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 16;
/// How long dead letters are kept when `spec.deadLetter.maxAgeSeconds` is absent.
pub const DEFAULT_DEAD_LETTER_MAX_AGE: Duration = Duration::from_secs(14 * 86_400);
/// Most `spec.eventTypes` entries (the CRD's bound, checked again standalone).
pub const MAX_EVENT_TYPES: usize = 64;

/// A subscription, resolved and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `<namespace>/<name>`, for headers, logs and metrics.
    pub subscription: String,
    /// The stream the events are read from.
    pub stream: String,
    /// The consumer's subject filters: one per event type, or the whole
    /// prefix.
    pub filter_subjects: Vec<String>,
    /// The subject prefix; an event's type is the rest of its subject.
    pub subject_prefix: String,
    /// The durable consumer's name.
    pub durable: String,
    /// Where undeliverable events go.
    pub dead_letter: DeadLetterPlan,
    /// When to try again.
    pub retry: RetryPolicy,
    /// Where events are delivered.
    pub destination: DestinationPlan,
    /// Headers of the stored delivery passed on, lower-cased.
    pub pass_headers: Vec<String>,
    /// The CEL condition, when the spec has one.
    pub filter: Option<String>,
    /// Deliveries awaiting the destination at once (the consumer's
    /// `max_ack_pending`).
    pub max_in_flight: u32,
    /// Deliveries started per second per forwarder, when limited.
    pub max_per_second: Option<u32>,
    /// One delivery at a time per subject, in stream order.
    pub ordered_per_subject: bool,
}

/// The dead-letter stream of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterPlan {
    /// Its name.
    pub stream: String,
    /// The subject this subscription's dead letters are stored under.
    pub subject: String,
    /// How long they are kept.
    pub max_age: Duration,
}

/// When a failed delivery is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// No retry once the event is this old (since it was stored).
    pub max_age: Duration,
    /// The delay before the second attempt.
    pub initial_backoff: Duration,
    /// The longest delay.
    pub max_backoff: Duration,
    /// Whether 4xx answers other than 408 and 429 are retried.
    pub retry_client_errors: bool,
}

/// The destination of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationPlan {
    /// The URL events are POSTed to.
    pub url: String,
    /// How long to wait for an answer.
    pub timeout: Duration,
    /// PEM CA certificates replacing the system trust store.
    pub ca: Option<SecretKeyRef>,
}

/// Why a subscription cannot be delivered as specified.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// The manifest has no `metadata.name`.
    #[error("the subscription manifest has no metadata.name")]
    Unnamed,
    /// Neither or both of `source.endpoint` and `source.stream`.
    #[error("set exactly one of spec.source.endpoint and spec.source.stream")]
    Source,
    /// `source.stream` without `source.subjectPrefix` or the other way round.
    #[error("spec.source.stream and spec.source.subjectPrefix go together")]
    StreamWithoutPrefix,
    /// `source.endpoint` names an endpoint that was not given.
    #[error("spec.source.endpoint {0:?} was not found in this namespace")]
    EndpointMissing(String),
    /// The source endpoint's own NATS settings are invalid.
    #[error("the source endpoint's NATS settings: {0}")]
    Endpoint(#[from] TargetError),
    /// `source.stream` is not a valid stream name.
    #[error("spec.source.stream {0:?} is not a valid stream name (letters, digits, '_' and '-')")]
    Stream(String),
    /// `source.subjectPrefix` is not a literal subject.
    #[error(
        "spec.source.subjectPrefix {0:?} is not a valid subject prefix (dot-separated tokens of letters, digits, '_' and '-')"
    )]
    SubjectPrefix(String),
    /// An event type is not a subject filter.
    #[error(
        "spec.eventTypes entry {0:?} is not an event type: dot-separated tokens of letters, digits, '_' and '-', '*' for one token, '>' as the last token"
    )]
    EventType(String),
    /// Too many event types.
    #[error("spec.eventTypes lists {0} entries; at most {MAX_EVENT_TYPES}")]
    TooManyEventTypes(usize),
    /// The destination URL is not allowed.
    #[error("{0}")]
    Destination(#[from] DestinationError),
    /// `deadLetter.stream` is not a valid stream name.
    #[error(
        "spec.deadLetter.stream {0:?} is not a valid stream name (letters, digits, '_' and '-')"
    )]
    DeadLetterStream(String),
    /// `deadLetter.subject` is not a literal subject.
    #[error(
        "spec.deadLetter.subject {0:?} is not a valid subject (dot-separated tokens of letters, digits, '_' and '-')"
    )]
    DeadLetterSubject(String),
    /// The dead letters would be read back as events.
    #[error(
        "the dead-letter subject {subject} is read by the subscription itself ({filter}): undeliverable events would loop"
    )]
    DeadLetterLoop {
        /// The dead-letter subject.
        subject: String,
        /// The filter that covers it.
        filter: String,
    },
    /// `initialBackoffSeconds` above `maxBackoffSeconds`.
    #[error("spec.retry.initialBackoffSeconds must not exceed spec.retry.maxBackoffSeconds")]
    Backoff,
    /// A number out of the CRD's range (only a standalone manifest can have one).
    #[error("spec.{field} {value} is out of range")]
    Limit {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// A pass-through header name is not a header name.
    #[error("spec.passHeaders entry {0:?} is not a header name")]
    PassHeader(String),
    /// Per-subject order asked of several forwarder replicas: each would
    /// order only the events it reads (the CRD's CEL rule says the same).
    #[error(
        "spec.delivery.orderedPerSubject needs spec.replicas 0 or 1 (it is {0}): each forwarder replica could only order what it reads"
    )]
    OrderedReplicas(i32),
}

/// Why a destination URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DestinationError {
    /// Not an absolute http(s) URL with a host.
    #[error("spec.destination.url {0:?} is not an absolute http:// or https:// URL")]
    NotHttp(String),
    /// Plain HTTP outside the cluster or the pod.
    #[error(
        "spec.destination.url {0:?}: plain http:// is allowed only to a Service (<name>.<namespace>.svc) or to the pod itself (localhost); use https://"
    )]
    InsecureOutsideCluster(String),
    /// Credentials in the URL would be shown wherever the spec is.
    #[error("spec.destination.url must not carry credentials (user:password@)")]
    Credentials,
}

impl Plan {
    /// Resolves `subscription`; `endpoint` is the `WebhookEndpoint` its
    /// `source.endpoint` names (the caller looks it up in the same
    /// namespace; `None` when there is none).
    pub fn resolve(
        subscription: &SubscriptionManifest,
        endpoint: Option<&EndpointManifest>,
    ) -> Result<Self, PlanError> {
        let name = subscription
            .metadata
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .ok_or(PlanError::Unnamed)?;
        let namespace = subscription
            .metadata
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_NAMESPACE);
        let spec = &subscription.spec;
        let source = &spec.source;
        let (stream, subject_prefix) = match (&source.endpoint, &source.stream) {
            (Some(wanted), None) => {
                if source.subject_prefix.is_some() {
                    return Err(PlanError::StreamWithoutPrefix);
                }
                let endpoint = endpoint
                    .filter(|e| e.metadata.name.as_deref() == Some(wanted.as_str()))
                    .ok_or_else(|| PlanError::EndpointMissing(wanted.clone()))?;
                let target = Target::for_endpoint(endpoint)?;
                (target.stream, target.subject_prefix)
            }
            (None, Some(stream)) => {
                let prefix = source
                    .subject_prefix
                    .as_ref()
                    .ok_or(PlanError::StreamWithoutPrefix)?;
                if !valid_token(stream) {
                    return Err(PlanError::Stream(stream.clone()));
                }
                if !valid_literal_subject(prefix) {
                    return Err(PlanError::SubjectPrefix(prefix.clone()));
                }
                (stream.clone(), prefix.clone())
            }
            _ => return Err(PlanError::Source),
        };

        if spec.event_types.len() > MAX_EVENT_TYPES {
            return Err(PlanError::TooManyEventTypes(spec.event_types.len()));
        }
        let mut filter_subjects = Vec::with_capacity(spec.event_types.len().max(1));
        for event_type in &spec.event_types {
            if !valid_event_filter(event_type) {
                return Err(PlanError::EventType(event_type.clone()));
            }
            let filter = format!("{subject_prefix}.{event_type}");
            if !filter_subjects.contains(&filter) {
                filter_subjects.push(filter);
            }
        }
        if filter_subjects.is_empty() {
            filter_subjects.push(format!("{subject_prefix}.>"));
        }

        let dead_letter_spec = spec.dead_letter.clone().unwrap_or_default();
        let dead_letter = DeadLetterPlan {
            stream: match dead_letter_spec.stream {
                Some(stream) if valid_token(&stream) => stream,
                Some(stream) => return Err(PlanError::DeadLetterStream(stream)),
                None => default_dead_letter_stream(namespace, name),
            },
            subject: match dead_letter_spec.subject {
                Some(subject) if valid_literal_subject(&subject) => subject,
                Some(subject) => return Err(PlanError::DeadLetterSubject(subject)),
                None => default_dead_letter_subject(namespace, name),
            },
            max_age: dead_letter_spec
                .max_age_seconds
                .map_or(DEFAULT_DEAD_LETTER_MAX_AGE, Duration::from_secs),
        };
        if let Some(filter) = filter_subjects
            .iter()
            .find(|f| subject_covers(f, &dead_letter.subject))
        {
            return Err(PlanError::DeadLetterLoop {
                subject: dead_letter.subject,
                filter: filter.clone(),
            });
        }

        let retry_spec = spec.retry.clone().unwrap_or_default();
        let retry = RetryPolicy {
            max_attempts: bounded(
                "retry.maxAttempts",
                retry_spec.max_attempts,
                1..=1000,
                DEFAULT_MAX_ATTEMPTS,
            )?,
            max_age: retry_spec
                .max_age_seconds
                .map_or(DEFAULT_MAX_AGE, Duration::from_secs),
            initial_backoff: secs(bounded(
                "retry.initialBackoffSeconds",
                retry_spec.initial_backoff_seconds,
                1..=86_400,
                DEFAULT_INITIAL_BACKOFF.as_secs() as u32,
            )?),
            max_backoff: secs(bounded(
                "retry.maxBackoffSeconds",
                retry_spec.max_backoff_seconds,
                1..=86_400,
                DEFAULT_MAX_BACKOFF.as_secs() as u32,
            )?),
            retry_client_errors: retry_spec.retry_client_errors,
        };
        if retry.initial_backoff > retry.max_backoff {
            return Err(PlanError::Backoff);
        }

        check_destination_url(&spec.destination.url)?;
        let destination = DestinationPlan {
            url: spec.destination.url.clone(),
            timeout: secs(bounded(
                "destination.timeoutSeconds",
                spec.destination.timeout_seconds,
                1..=300,
                DEFAULT_TIMEOUT.as_secs() as u32,
            )?),
            ca: spec.destination.ca_secret_ref.clone(),
        };

        let mut pass_headers = Vec::with_capacity(spec.pass_headers.len());
        for header in &spec.pass_headers {
            if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(PlanError::PassHeader(header.clone()));
            }
            let lower = header.to_ascii_lowercase();
            if !pass_headers.contains(&lower) {
                pass_headers.push(lower);
            }
        }

        let delivery = spec.delivery.clone().unwrap_or_default();
        if delivery.ordered_per_subject && spec.replicas > 1 {
            return Err(PlanError::OrderedReplicas(spec.replicas));
        }
        Ok(Self {
            subscription: format!("{namespace}/{name}"),
            stream,
            filter_subjects,
            subject_prefix,
            durable: durable_name(namespace, name),
            dead_letter,
            retry,
            destination,
            pass_headers,
            filter: spec.filter.clone().filter(|f| !f.trim().is_empty()),
            max_in_flight: bounded(
                "delivery.maxInFlight",
                delivery.max_in_flight,
                1..=10_000,
                DEFAULT_MAX_IN_FLIGHT,
            )?,
            max_per_second: delivery
                .max_per_second
                .map(|rate| bounded("delivery.maxPerSecond", Some(rate), 1..=100_000, rate))
                .transpose()?,
            ordered_per_subject: delivery.ordered_per_subject,
        })
    }

    /// The durable pull consumer's configuration: explicit acks (a message
    /// is acknowledged only once the destination answered 2xx or it was
    /// dead-lettered), unlimited deliveries (the forwarder, not JetStream,
    /// decides when attempts are exhausted, so a message is never dropped
    /// silently by `max_deliver`: it always ends acknowledged in the
    /// dead-letter stream), and an ack wait longer than one attempt, so a
    /// forwarder killed mid-delivery has its message redelivered to another.
    /// New subscriptions start at new events; `hookwarden replay` sends
    /// older ones.
    pub fn consumer_config(&self) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(self.durable.clone()),
            description: Some(format!(
                "hookwarden subscription {} to {}",
                self.subscription,
                crate::redact::redact_url(&self.destination.url)
            )),
            deliver_policy: consumer::DeliverPolicy::New,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.ack_wait(),
            max_deliver: -1,
            filter_subjects: self.filter_subjects.clone(),
            max_ack_pending: i64::from(self.max_in_flight),
            ..consumer::pull::Config::default()
        }
    }

    /// How long JetStream waits for an acknowledgement before redelivering:
    /// twice the destination timeout plus a margin for signing, connecting
    /// and the dead-letter publish.
    pub fn ack_wait(&self) -> Duration {
        self.destination.timeout * 2 + Duration::from_secs(10)
    }

    /// The dead-letter stream's configuration: on disk, its subject only,
    /// kept for the dead-letter max age. Several subscriptions may share one
    /// named stream; each adds its own subject.
    pub fn dead_letter_stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.dead_letter.stream.clone(),
            subjects: vec![self.dead_letter.subject.clone()],
            storage: stream::StorageType::File,
            max_age: self.dead_letter.max_age,
            discard: stream::DiscardPolicy::Old,
            ..stream::Config::default()
        }
    }

    /// The subject filter of an event type as `spec.eventTypes` writes it
    /// (`push`, `invoice.*`, `>`): `<prefix>.<event type>`, checked the same
    /// way (`hookwarden replay --event-type`).
    pub fn event_type_filter(&self, event_type: &str) -> Result<String, PlanError> {
        if valid_event_filter(event_type) {
            Ok(format!("{}.{event_type}", self.subject_prefix))
        } else {
            Err(PlanError::EventType(event_type.to_owned()))
        }
    }

    /// Whether the subscription reads events stored under `subject`.
    pub fn selects(&self, subject: &str) -> bool {
        self.filter_subjects
            .iter()
            .any(|filter| subject_covers(filter, subject))
    }

    /// The event type of a stored subject: what follows the prefix.
    pub fn event_type<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject
            .strip_prefix(self.subject_prefix.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|rest| !rest.is_empty())
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` after attempt `attempt`
    /// (1-based) failed: `initial * 2^(attempt-1)`, capped at the maximum,
    /// then scaled by `jitter` in [0.5, 1.0] ("equal jitter": never less
    /// than half the backoff, so a flood of failures spreads out without any
    /// retry coming early). `jitter` outside that range is clamped, so
    /// callers pass a random number without care.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        let backoff = self
            .initial_backoff
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max_backoff);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.5, 1.0)
        } else {
            1.0
        };
        backoff.mul_f64(jitter)
    }
}

/// Whether `url` may be a destination: `https://` anywhere; `http://` only
/// to a cluster Service (`<name>.<namespace>.svc[.cluster.local]`) or to the
/// pod itself (`localhost`, `127.0.0.1`, `[::1]`); never with credentials.
/// The CRD's CEL rule says the same for the API server.
pub fn check_destination_url(url: &str) -> Result<(), DestinationError> {
    let not_http = || DestinationError::NotHttp(url.to_owned());
    let uri: http::Uri = url.parse().map_err(|_| not_http())?;
    let authority = uri.authority().ok_or_else(not_http)?;
    if authority.as_str().contains('@') {
        return Err(DestinationError::Credentials);
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(not_http());
    }
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if is_cluster_service(host) || is_local(host) => Ok(()),
        Some("http") => Err(DestinationError::InsecureOutsideCluster(url.to_owned())),
        _ => Err(not_http()),
    }
}

fn is_cluster_service(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let name = host
        .strip_suffix(".svc.cluster.local")
        .or_else(|| host.strip_suffix(".svc"));
    // `<service>.<namespace>` at least: a bare `svc` is not a Service.
    name.is_some_and(|name| {
        name.split('.').count() >= 2
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
    })
}

fn is_local(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// The durable consumer of subscription `<namespace>/<name>`.
pub fn durable_name(namespace: &str, name: &str) -> String {
    format!(
        "hookwarden_{}_{}",
        sanitize_token(namespace),
        sanitize_token(name)
    )
}

/// `HOOKWARDEN-DLQ_<NAMESPACE>_<NAME>`: the `-` keeps it apart from every
/// endpoint stream (`HOOKWARDEN_...`).
pub fn default_dead_letter_stream(namespace: &str, name: &str) -> String {
    format!(
        "HOOKWARDEN-DLQ_{}_{}",
        sanitize_token(namespace),
        sanitize_token(name)
    )
    .to_uppercase()
}

/// `hookwarden-dlq.<namespace>.<name>`: outside every endpoint's
/// `hookwarden.>` subjects, so no endpoint stream or subscription reads it
/// by default.
pub fn default_dead_letter_subject(namespace: &str, name: &str) -> String {
    format!(
        "hookwarden-dlq.{}.{}",
        sanitize_token(namespace),
        sanitize_token(name)
    )
}

fn valid_token(token: &str) -> bool {
    !token.is_empty() && sanitize_token(token) == token
}

fn valid_literal_subject(subject: &str) -> bool {
    subject.split('.').all(valid_token)
}

/// `push`, `pull_request`, `invoice.*`, `*`, `>`, `a.>`: tokens, `*` for
/// one token, `>` only last.
fn valid_event_filter(filter: &str) -> bool {
    let tokens: Vec<&str> = filter.split('.').collect();
    tokens.iter().enumerate().all(|(i, token)| match *token {
        "*" => true,
        ">" => i + 1 == tokens.len(),
        token => valid_token(token),
    })
}

fn bounded(
    field: &'static str,
    value: Option<u32>,
    range: std::ops::RangeInclusive<u32>,
    default: u32,
) -> Result<u32, PlanError> {
    match value {
        None => Ok(default),
        Some(value) if range.contains(&value) => Ok(value),
        Some(value) => Err(PlanError::Limit {
            field,
            value: value.to_string(),
        }),
    }
}

fn secs(seconds: u32) -> Duration {
    Duration::from_secs(u64::from(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(yaml_spec: &str) -> SubscriptionManifest {
        hookwarden_crds::subscription_from_yaml(&format!(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookSubscription\n\
             metadata: {{name: to-billing, namespace: shop}}\nspec:\n{yaml_spec}"
        ))
        .expect("valid manifest")
    }

    fn endpoint() -> EndpointManifest {
        hookwarden_crds::from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
             metadata: {name: github, namespace: shop}\nspec: {provider: github}\n",
        )
        .expect("valid endpoint")
    }

    const DESTINATION: &str = "  destination: {url: 'http://billing.shop.svc:8080/hooks'}\n";

    #[test]
    fn an_endpoint_source_reads_its_stream_by_event_type() {
        let sub = subscription(&format!(
            "  source: {{endpoint: github}}\n  eventTypes: [push, 'pull_request', 'issues.*']\n{DESTINATION}"
        ));
        let plan = Plan::resolve(&sub, Some(&endpoint())).expect("resolves");
        assert_eq!(plan.stream, "HOOKWARDEN_SHOP_GITHUB");
        assert_eq!(
            plan.filter_subjects,
            [
                "hookwarden.shop.github.push",
                "hookwarden.shop.github.pull_request",
                "hookwarden.shop.github.issues.*"
            ]
        );
        assert_eq!(plan.durable, "hookwarden_shop_to-billing");
        assert_eq!(plan.dead_letter.stream, "HOOKWARDEN-DLQ_SHOP_TO-BILLING");
        assert_eq!(plan.dead_letter.subject, "hookwarden-dlq.shop.to-billing");
        assert_eq!(plan.event_type("hookwarden.shop.github.push"), Some("push"));
        assert_eq!(plan.event_type("hookwarden.shop.githubx.push"), None);
        assert!(plan.selects("hookwarden.shop.github.issues.opened"));
        assert!(!plan.selects("hookwarden.shop.github.release"));
        assert_eq!(
            plan.event_type_filter("issues.*").as_deref(),
            Ok("hookwarden.shop.github.issues.*")
        );
        assert_eq!(
            plan.event_type_filter("a..b"),
            Err(PlanError::EventType("a..b".into()))
        );
        let config = plan.consumer_config();
        assert_eq!(
            config.durable_name.as_deref(),
            Some("hookwarden_shop_to-billing")
        );
        assert_eq!(config.ack_policy, consumer::AckPolicy::Explicit);
        assert_eq!(config.max_deliver, -1);
        assert_eq!(config.max_ack_pending, 16);
        assert!(config.ack_wait > plan.destination.timeout);
    }

    #[test]
    fn per_subject_order_is_refused_with_more_than_one_replica() {
        let ordered = "  delivery: {orderedPerSubject: true}\n";
        for (replicas, expected) in [
            (0, Ok(true)),
            (1, Ok(true)),
            (2, Err(PlanError::OrderedReplicas(2))),
        ] {
            let sub = subscription(&format!(
                "  source: {{endpoint: github}}\n{DESTINATION}{ordered}  replicas: {replicas}\n"
            ));
            assert_eq!(
                Plan::resolve(&sub, Some(&endpoint())).map(|plan| plan.ordered_per_subject),
                expected,
                "replicas {replicas}"
            );
        }
        // Unordered delivery scales out.
        let sub = subscription(&format!(
            "  source: {{endpoint: github}}\n{DESTINATION}  replicas: 5\n"
        ));
        assert!(Plan::resolve(&sub, Some(&endpoint())).is_ok());
    }

    #[test]
    fn no_event_types_reads_every_event() {
        let sub = subscription(&format!("  source: {{endpoint: github}}\n{DESTINATION}"));
        let plan = Plan::resolve(&sub, Some(&endpoint())).expect("resolves");
        assert_eq!(plan.filter_subjects, ["hookwarden.shop.github.>"]);
    }

    #[test]
    fn a_missing_or_other_endpoint_is_named() {
        let sub = subscription(&format!("  source: {{endpoint: stripe}}\n{DESTINATION}"));
        assert_eq!(
            Plan::resolve(&sub, Some(&endpoint())),
            Err(PlanError::EndpointMissing("stripe".into()))
        );
        assert_eq!(
            Plan::resolve(&sub, None),
            Err(PlanError::EndpointMissing("stripe".into()))
        );
    }

    #[test]
    fn a_stream_source_needs_its_prefix_and_valid_names() {
        let ok = subscription(&format!(
            "  source: {{stream: ORDERS, subjectPrefix: shop.orders}}\n{DESTINATION}"
        ));
        let plan = Plan::resolve(&ok, None).expect("resolves");
        assert_eq!(plan.filter_subjects, ["shop.orders.>"]);
        for (source, error) in [
            ("{stream: ORDERS}", PlanError::StreamWithoutPrefix),
            ("{}", PlanError::Source),
            (
                "{endpoint: github, stream: X, subjectPrefix: a}",
                PlanError::Source,
            ),
            (
                "{stream: 'OR.DERS', subjectPrefix: a}",
                PlanError::Stream("OR.DERS".into()),
            ),
            (
                "{stream: ORDERS, subjectPrefix: 'a.>'}",
                PlanError::SubjectPrefix("a.>".into()),
            ),
        ] {
            let sub = subscription(&format!("  source: {source}\n{DESTINATION}"));
            assert_eq!(Plan::resolve(&sub, None), Err(error), "{source}");
        }
    }

    #[test]
    fn event_types_are_filters_under_the_prefix_only() {
        for bad in ["a b", "a..b", ">.a", "", "a.>.b", "a\u{0}"] {
            let sub = subscription(&format!(
                "  source: {{endpoint: github}}\n  eventTypes: [{bad:?}]\n{DESTINATION}"
            ));
            assert_eq!(
                Plan::resolve(&sub, Some(&endpoint())),
                Err(PlanError::EventType(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn dead_letters_may_not_be_read_back() {
        let sub = subscription(&format!(
            "  source: {{stream: ALL, subjectPrefix: hookwarden-dlq}}\n{DESTINATION}"
        ));
        assert!(matches!(
            Plan::resolve(&sub, None),
            Err(PlanError::DeadLetterLoop { .. })
        ));
    }

    #[test]
    fn destinations_plain_http_only_inside_the_cluster_or_pod() {
        for ok in [
            "https://example.com/hooks",
            "https://10.0.0.1:8443/",
            "http://billing.shop.svc:8080/hooks",
            "http://billing.shop.svc.cluster.local/x",
            "http://localhost:3000/",
            "http://127.0.0.1:9/",
            "http://[::1]:8080/",
        ] {
            assert_eq!(check_destination_url(ok), Ok(()), "{ok}");
        }
        for insecure in [
            "http://example.com/",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://svc/",
            "http://billing.svc.example.com/",
            "http://127.0.0.2/",
        ] {
            assert!(
                matches!(
                    check_destination_url(insecure),
                    Err(DestinationError::InsecureOutsideCluster(_))
                ),
                "{insecure}"
            );
        }
        for bad in ["ftp://example.com/", "example.com/hooks", "/hooks", ""] {
            assert!(
                matches!(
                    check_destination_url(bad),
                    Err(DestinationError::NotHttp(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            check_destination_url("https://user:pw@example.com/"),
            Err(DestinationError::Credentials)
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_equal_jitter() {
        let policy = RetryPolicy {
            max_attempts: 10,
            max_age: DEFAULT_MAX_AGE,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            retry_client_errors: false,
        };
        assert_eq!(policy.delay(1, 1.0), Duration::from_secs(2));
        assert_eq!(policy.delay(2, 1.0), Duration::from_secs(4));
        assert_eq!(policy.delay(3, 0.5), Duration::from_secs(4));
        assert_eq!(policy.delay(6, 1.0), Duration::from_secs(60));
        assert_eq!(policy.delay(u32::MAX, 1.0), Duration::from_secs(60));
        assert_eq!(policy.delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(policy.delay(1, f64::NAN), Duration::from_secs(2));
    }

    #[test]
    fn standalone_limits_match_the_crd() {
        let sub = subscription(&format!(
            "  source: {{endpoint: github}}\n{DESTINATION}  retry: {{maxAttempts: 0}}\n"
        ));
        assert!(matches!(
            Plan::resolve(&sub, Some(&endpoint())),
            Err(PlanError::Limit {
                field: "retry.maxAttempts",
                ..
            })
        ));
        let sub = subscription(&format!(
            "  source: {{endpoint: github}}\n{DESTINATION}  retry: {{initialBackoffSeconds: 10, maxBackoffSeconds: 5}}\n"
        ));
        assert_eq!(
            Plan::resolve(&sub, Some(&endpoint())),
            Err(PlanError::Backoff)
        );
    }
}
