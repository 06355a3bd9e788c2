//! `hookwarden.dev/v1alpha1`: the first, still-evolving version of the API.

use k8s_openapi::api::core::v1::ResourceRequirements;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod exposure;
mod nats;
mod presets;
mod request;
mod shared;
mod sources;
mod status;
mod verification;

pub use exposure::*;
pub use nats::*;
pub use presets::*;
pub use request::*;
pub use shared::*;
pub use sources::*;
pub use status::*;
pub use verification::*;

/// A public URL that receives webhooks from one provider, verifies every
/// delivery and hands it on durably to NATS JetStream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource),
    kube(
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
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpointSpec {
    /// The provider preset that decides how deliveries are verified.
    pub provider: Provider,

    /// Secrets that verify deliveries. Several may be listed at once so a
    /// secret can be rotated without downtime; any one of them may match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_refs: Vec<SecretKeyRef>,

    /// The checks of the `generic` provider; all configured checks must pass.
    /// Required for `generic`, refused with a preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationSpec>,

    /// How far a signed timestamp may be from the receiver's clock, in
    /// either direction, before a delivery is refused as a replay. Default
    /// 300 (five minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    #[schemars(extend("format" = "int32"))]
    pub timestamp_tolerance_seconds: Option<u32>,

    /// Source networks (CIDR, IPv4 or IPv6) allowed to deliver. Together
    /// with the ranges of `allowedSources`: a delivery from either is
    /// allowed. Both empty means no IP restriction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_source_cidrs: Vec<String>,

    /// Published source ranges allowed to deliver, fetched from where the
    /// provider publishes them (or any HTTPS URL with a JSON path) and
    /// kept current: by the operator, which writes them into the
    /// receivers' configuration; standalone, by the receiver itself. Added
    /// to `allowedSourceCidrs`. See `docs/providers.md` for each list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub allowed_sources: Vec<AllowedSource>,

    /// Networks (CIDR) of the proxies in front of the receiver, such as the
    /// ingress controller. Only a peer in these networks is believed about
    /// the original client and scheme, and only in the headers of
    /// `forwardedHeaders`; the client IP is found right to left through
    /// them. Empty means the socket peer is the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,

    /// Which forwarding headers the trusted proxies write, the only ones
    /// believed (see [`ForwardedHeaders`]; the CRD shows the enum's text).
    /// Absent: the operator's default (`--default-forwarded-headers`),
    /// standalone `XForwardedFor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_headers: Option<ForwardedHeaders>,

    /// Request rate limits. Absent: the receiver's defaults apply (see
    /// `docs/receiver.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,

    /// How many receiver pods run. Default 2, so one pod can be drained or
    /// rescheduled while the other keeps accepting deliveries.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,

    /// Where accepted deliveries are stored in NATS JetStream.
    #[serde(default)]
    pub nats: NatsSpec,

    /// Let the operator create the verification secret: a Secret
    /// `<name>-webhook-secret` (key `secret`, 32 random bytes written as 64
    /// hex digits) that the endpoint owns and uses in addition to
    /// `secretRefs`. Its name is reported in `status.secretName` so the value
    /// can be read once and pasted into the provider. It is created once and
    /// never regenerated; delete the Secret to rotate it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generate_secret: bool,

    /// The public host and path of the endpoint. Absent: no Ingress, the
    /// receiver is reachable in the cluster only (Service `<name>-receiver`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// TLS of the Ingress: a cert-manager issuer that issues the certificate,
    /// or an existing TLS Secret. Requires `ingress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Scale the receivers with CPU load between two bounds (a
    /// HorizontalPodAutoscaler); `replicas` is then ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    /// The receivers' NetworkPolicy. Absent: the defaults (deliveries from
    /// the `ingress-nginx` namespace only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,

    /// What requests the endpoint takes: HTTP methods, content types and the
    /// body size cap. Absent: `POST` only, any content type, 1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSpec>,

    /// The public URL the provider calls (scheme, host, port if not the
    /// default, and path; no query: each request's query is used as
    /// received), for presets that sign the URL (Twilio, Square). Absent:
    /// `https://<ingress.host><ingress.path>`; such a preset without
    /// `ingress` needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub public_url: Option<String>,

    /// Providers' endpoint-verification handshakes (Slack `url_verification`,
    /// Zoom `endpoint.url_validation`, Twitch `webhook_callback_verification`,
    /// Meta `hub.mode=subscribe`, Discord PING). They are answered, verified
    /// where the provider signs them, and not published unless `publish`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<HandshakeSpec>,

    /// Settings of the `aws-sns` preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSnsSpec>,

    /// Settings of the `paypal` preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paypal: Option<PaypalSpec>,

    /// Settings of the `google-pubsub` preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google: Option<GooglePubsubSpec>,

    /// Settings of the `azure-event-grid` preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureEventGridSpec>,

    /// Settings of the `microsoft-graph` preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<MicrosoftGraphSpec>,

    /// Settings of the `okta` preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub okta: Option<OktaSpec>,

    /// What the audit log records beyond each request's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingSpec>,

    /// Keep a record of every refused request in a stream of its own, so a
    /// person can see why a provider is refused and a security team can
    /// review attacks (`hookwarden quarantine list`). Absent: refusals are
    /// only logged and counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<QuarantineSpec>,

    /// How the receiver treats trace context a sender supplies (traces:
    /// `docs/operator.md#traces`). Absent: untrusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traces: Option<TracesSpec>,

    /// Compute resources of each receiver container. Absent: the operator's
    /// defaults (see `docs/operator.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// A `WebhookReceiverPool` of this namespace that serves the endpoint
    /// instead of receivers of its own. Absent: dedicated receivers. In a
    /// pool, `replicas`, `autoscaling`, `resources`, `networkPolicy`,
    /// `nats.url` and `nats.credentialsSecretRef` are the pool's; the
    /// stream, subjects, verification, limits and Ingress stay the
    /// endpoint's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub pool: Option<String>,
}

/// Two receivers: a delivery is not lost to a single pod's restart.
pub(crate) fn default_replicas() -> i32 {
    2
}
