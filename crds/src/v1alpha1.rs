//! `hookwarden.dev/v1alpha1`: the first, still-evolving version of the API.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A public URL that receives webhooks from one provider, verifies every
/// delivery and hands it on durably to NATS JetStream.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "hookwarden.dev",
    version = "v1alpha1",
    kind = "WebhookEndpoint",
    plural = "webhookendpoints",
    shortname = "whe",
    namespaced,
    status = "WebhookEndpointStatus",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpointSpec {
    /// The provider preset that decides how deliveries are verified.
    pub provider: Provider,

    /// Secrets that verify deliveries. Several may be listed at once so a
    /// secret can be rotated without downtime; any one of them may match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_refs: Vec<SecretKeyRef>,

    /// Source networks (CIDR, IPv4 or IPv6) allowed to deliver. Empty means
    /// no IP restriction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_source_cidrs: Vec<String>,

    /// Networks (CIDR) of the proxies in front of the receiver, such as the
    /// ingress controller. Only a peer in these networks is believed about
    /// the original client (`X-Forwarded-For`, `Forwarded`) and scheme
    /// (`X-Forwarded-Proto`); the client IP is found right to left through
    /// them. Empty means the socket peer is the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,

    /// Request rate limits. Absent: the receiver's defaults apply (see
    /// `docs/receiver.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,

    /// Where accepted deliveries are stored in NATS JetStream.
    #[serde(default)]
    pub nats: NatsSpec,
}

/// Signature schemes of the providers Hookwarden verifies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// GitHub: `X-Hub-Signature-256`, HMAC-SHA256 of the body.
    Github,
    /// Stripe: `Stripe-Signature` with timestamp and `v1` signatures.
    Stripe,
    /// Slack: `v0` signing with `X-Slack-Request-Timestamp`.
    Slack,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks,
    /// A generic HMAC-SHA256 of the body in a configurable header.
    GenericHmac,
}

/// A key of a Secret in the endpoint's namespace (standalone: the file
/// `<secrets-dir>/<name>/<key>`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

/// Request rate limits of an endpoint; a request over a limit is answered
/// 429 with `Retry-After`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// The limit for all clients together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<Rate>,
    /// The limit for each client IP on its own, so a flood from one source
    /// cannot starve the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_source_ip: Option<Rate>,
}

/// A token-bucket rate: a sustained rate and a burst on top of it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    /// Sustained requests per second.
    #[schemars(range(min = 1))]
    pub requests_per_second: u32,
    /// Requests allowed at once above the sustained rate; defaults to the
    /// sustained rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub burst: Option<u32>,
}

/// JetStream settings of an endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatsSpec {
    /// Subject prefix; deliveries go to `<prefix>.<event type>`. Defaults to
    /// `hookwarden.<namespace>.<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_prefix: Option<String>,
    /// JetStream stream that stores the deliveries. Defaults to one stream per
    /// endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

/// What the operator observed of an endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpointStatus {
    /// The public URL to give the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and the conditions it is made of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
