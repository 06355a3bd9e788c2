//! `WebhookSubscription` (`hookwarden.dev/v1alpha1`): deliver the events an
//! endpoint stored to an HTTP service, with retries and a dead-letter stream.
//!
//! The operator reconciles a subscription into a durable JetStream consumer
//! and a forwarder Deployment (`hookwarden-receiver forward`); the forwarder
//! reads the same manifest from a file when it runs standalone, like the
//! receiver does with a `WebhookEndpoint`.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SecretKeyRef;

/// Delivers the verified events of one endpoint (or one stream) to an HTTP
/// destination: signed with Standard Webhooks, at least once, retried with
/// backoff, and moved to a dead-letter stream when retries are exhausted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(not(feature = "kube"), derive(JsonSchema))]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource),
    kube(
        group = "hookwarden.dev",
        version = "v1alpha1",
        kind = "WebhookSubscription",
        plural = "webhooksubscriptions",
        shortname = "whs",
        namespaced,
        status = "WebhookSubscriptionStatus",
        printcolumn = r#"{"name":"Destination","type":"string","jsonPath":".spec.destination.url"}"#,
        printcolumn = r#"{"name":"Lag","type":"integer","jsonPath":".status.pending"}"#,
        printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase")]
// Per-subject order is kept inside one forwarder process: two replicas would
// each order only what they read. The same rule is `PlanError::OrderedReplicas`.
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("!has(self.delivery) || !has(self.delivery.orderedPerSubject) || !self.delivery.orderedPerSubject || !has(self.replicas) || self.replicas <= 1").message("delivery.orderedPerSubject needs replicas 0 or 1: each forwarder replica could only order what it reads")))]
pub struct WebhookSubscriptionSpec {
    /// Where the events come from: an endpoint of this namespace, or a
    /// stream and subject prefix written by something else.
    pub source: SubscriptionSource,

    /// The event types to deliver: subject tokens after the source's subject
    /// prefix (`push`, `pull_request`; NATS wildcards `*` and a trailing `>`
    /// allowed). Empty: every event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub event_types: Vec<String>,

    /// A CEL expression over `headers` (a map of the stored message's
    /// headers, names lower-cased) and `body` (the JSON body, or `null` when
    /// the body is not JSON); an event is delivered only when it evaluates
    /// to `true`. Events it skips are acknowledged and counted, never
    /// dead-lettered. Absent: every event of `eventTypes` is delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub filter: Option<String>,

    /// Where events are delivered.
    pub destination: Destination,

    /// How the forwarded requests are signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<SigningSpec>,

    /// Headers of the stored message passed on to the destination, matched
    /// case-insensitively: what the receiver stored beside the body
    /// (`Hookwarden-Provider`, `Hookwarden-Delivery-Id`,
    /// `Hookwarden-Source-Ip`, `Hookwarden-Received-At`, `traceparent`, the
    /// `ce-*` headers; see docs/receiver.md), or a provider request header
    /// the source endpoint stores (`spec.request.storeHeaders`, e.g.
    /// `X-GitHub-Event`), sent under the provider's name. Only those the
    /// endpoint lists are stored, never a credential or signature header, so
    /// the provider's signature never leaves the receiver's trust boundary;
    /// the event type and delivery id always travel as
    /// `Hookwarden-Event-Type` and `webhook-id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub pass_headers: Vec<String>,

    /// When and how often a failed delivery is tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,

    /// Where events go when retries are exhausted or the destination refused
    /// them for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterSpec>,

    /// Flow control: how much is delivered at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,

    /// How many forwarder pods run. Default 1; more share the one durable
    /// consumer (each event still goes to one of them at a time). At most 1
    /// with `delivery.orderedPerSubject`.
    #[serde(default = "default_forwarder_replicas")]
    #[schemars(range(min = 0, max = 20))]
    pub replicas: i32,

    /// Resource requests and limits of the forwarder container. Absent:
    /// small defaults that suit most destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// The NATS server and credentials. Absent: those of the source
    /// endpoint, else the operator's `--nats-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<SubscriptionNatsSpec>,
}

fn default_forwarder_replicas() -> i32 {
    1
}

/// Where a subscription's events come from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(not(feature = "kube"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("has(self.endpoint) != has(self.stream)").message("set exactly one of source.endpoint and source.stream")))]
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("has(self.stream) == has(self.subjectPrefix)").message("source.stream and source.subjectPrefix go together")))]
pub struct SubscriptionSource {
    /// A `WebhookEndpoint` in this namespace: its stream and subject prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// A JetStream stream, for events stored by something other than an
    /// endpoint of this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The subject prefix of the events in `stream`; event types are the
    /// tokens after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_prefix: Option<String>,
}

/// The HTTP destination of a subscription.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(not(feature = "kube"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
// The one rule, also enforced by the forwarder (hookwarden_receiver::forward):
// plain HTTP only inside the cluster or the pod, HTTPS anywhere.
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("self.url.startsWith('https://') || self.url.matches('^http://([a-z0-9]([-a-z0-9]*[a-z0-9])?[.])+svc([.]cluster[.]local)?(:[0-9]+)?(/.*)?$') || self.url.matches('^http://(localhost|127[.]0[.]0[.]1|\\\\[::1\\\\])(:[0-9]+)?(/.*)?$')").message("destination.url must be https://, or http:// to a Service (<name>.<namespace>.svc) or to the pod itself (localhost)")))]
pub struct Destination {
    /// The URL events are POSTed to: `https://` anywhere, or `http://` to a
    /// Service of the cluster (`http://billing.shop.svc:8080/hooks`) or to
    /// the pod itself (a sidecar on `localhost`). Redirects are not followed.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// A Secret key holding PEM CA certificates that verify the
    /// destination's certificate instead of the system's trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Seconds to wait for the destination's answer. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 300))]
    #[schemars(extend("format" = "int32"))]
    pub timeout_seconds: Option<u32>,
}

/// The secret the forwarded requests are signed with (Standard Webhooks:
/// `webhook-id`, `webhook-timestamp`, `webhook-signature`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningSpec {
    /// A Secret key holding a Standard Webhooks secret (`whsec_` and
    /// base64). Absent: the operator generates one in the Secret
    /// `<name>-signing` (key `secret`) and names it in the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

/// Retries of a failed delivery. They are JetStream redeliveries with a
/// delay (exponential, with jitter), so nothing waits in memory.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(not(feature = "kube"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("!has(self.initialBackoffSeconds) || !has(self.maxBackoffSeconds) || self.initialBackoffSeconds <= self.maxBackoffSeconds").message("retry.initialBackoffSeconds must not exceed retry.maxBackoffSeconds")))]
pub struct RetrySpec {
    /// Attempts in all, the first included. Default 12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    #[schemars(extend("format" = "int32"))]
    pub max_attempts: Option<u32>,
    /// An event older than this (since it was stored) is not tried again.
    /// Default 86400 (one day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("format" = "int64"))]
    pub max_age_seconds: Option<u64>,
    /// Delay before the second attempt; it doubles with each attempt, with
    /// jitter. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    #[schemars(extend("format" = "int32"))]
    pub initial_backoff_seconds: Option<u32>,
    /// The longest delay between two attempts. Default 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    #[schemars(extend("format" = "int32"))]
    pub max_backoff_seconds: Option<u32>,
    /// Also retry 4xx answers. By default a 4xx other than 408 and 429 is
    /// final: the event goes to the dead letters at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry_client_errors: bool,
}

/// Where events go when they cannot be delivered.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterSpec {
    /// The stream that keeps dead letters. Default: one per subscription,
    /// named like endpoint streams from the namespace and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The subject dead letters are stored under. Default
    /// `hookwarden-dlq.<namespace>.<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// How long dead letters are kept, in seconds. Default 1209600 (14
    /// days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("format" = "int64"))]
    pub max_age_seconds: Option<u64>,
}

/// How much of a subscription is in flight at once.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliverySpec {
    /// Deliveries waiting for the destination at once, over all forwarder
    /// pods (the consumer's `max_ack_pending`). Default 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    #[schemars(extend("format" = "int32"))]
    pub max_in_flight: Option<u32>,
    /// The most deliveries started per second, per forwarder pod. Absent:
    /// no rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    #[schemars(extend("format" = "int32"))]
    pub max_per_second: Option<u32>,
    /// Deliver the events of one subject (one event type) in the order
    /// they were stored: the next waits until the previous one was
    /// delivered or dead-lettered. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ordered_per_subject: bool,
}

/// The NATS server of a subscription.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(not(feature = "kube"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("!has(self.url) || !self.url.contains('@')").message("spec.nats.url must not carry credentials; use spec.nats.credentialsSecretRef")))]
pub struct SubscriptionNatsSpec {
    /// The NATS server, e.g. `nats://nats.nats.svc:4222`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A Secret key holding a NATS `.creds` file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretKeyRef>,
}

/// What the operator observed of a subscription.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSubscriptionStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The durable JetStream consumer the forwarders read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// Events stored but not yet delivered or dead-lettered (the consumer's
    /// pending plus unacknowledged messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<i64>,
    /// The Secret holding the generated signing secret (key `secret`), when
    /// `spec.signing.secretRef` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_name: Option<String>,
    /// Events in the dead-letter stream under this subscription's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<i64>,
    /// Why the most recent dead letter was not delivered (its status and
    /// error, as its headers record them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Forwarder pods that pass their readiness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// `Ready` and the conditions it is made of: `SourceResolved`,
    /// `ConsumerReady` and `ForwarderAvailable`, each with a reason and a
    /// message that say what to fix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
