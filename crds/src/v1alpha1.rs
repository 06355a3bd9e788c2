//! `hookwarden.dev/v1alpha1`: the first, still-evolving version of the API.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
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

/// One published list of source ranges: exactly one of `provider` (a list
/// Hookwarden knows) or `url` with `jsonPath` (any other).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.provider) != has(self.url)").message("allowedSources: set exactly one of provider and url"))]
#[x_kube(validation = Rule::new("has(self.url) == has(self.jsonPath)").message("allowedSources: jsonPath goes with url, and url needs it"))]
#[x_kube(validation = Rule::new("!has(self.url) || self.url.startsWith('https://')").message("allowedSources: url must be https://"))]
#[x_kube(validation = Rule::new("has(self.provider) || (!has(self.service) && !has(self.region))").message("allowedSources: service and region go with provider"))]
pub struct AllowedSource {
    /// A provider's published list (see `docs/providers.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<RangeProvider>,
    /// Which of the provider's lists: `github` the key of its `meta` API
    /// (default `hooks`); `paddle` `live` (default) or `sandbox`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub service: Option<String>,
    /// Which region's list: `aws-sns` an AWS region of `ip-ranges.json`
    /// (default: every region); `pagerduty` `us` (default) or `eu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub region: Option<String>,
    /// A list no preset knows: an `https` URL (port 443, a public DNS name)
    /// serving JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 2048))]
    pub url: Option<String>,
    /// Where the ranges are in the JSON at `url`: `$` the document, `.name`
    /// a member, `[*]` every element of an array, e.g. `$.hooks` or
    /// `$.prefixes[*].ip_prefix`; it must end at strings (CIDRs or
    /// addresses) or arrays of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub json_path: Option<String>,
}

/// The providers whose published source ranges Hookwarden reads (their
/// documents and fields: `docs/providers.md`). A set of its own, not
/// that of `spec.provider`: not every verified provider publishes
/// ranges, and ranges are useful for senders that are not presets.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RangeProvider {
    /// GitHub: `https://api.github.com/meta`, the key `service` names
    /// (default `hooks`).
    Github,
    /// Bitbucket Cloud: `https://ip-ranges.atlassian.com/`, the items of
    /// product `bitbucket` with direction `egress`.
    Bitbucket,
    /// Stripe webhooks: `https://stripe.com/files/ips/ips_webhooks.json`.
    Stripe,
    /// PagerDuty webhooks: the JSON safelist of the US (default) or EU
    /// service region at `developer.pagerduty.com`.
    Pagerduty,
    /// Zoom: `https://assets.zoom.us/docs/ipranges/Zoom.txt`, every range
    /// Zoom publishes (there is no webhook-only list).
    Zoom,
    /// Paddle Billing: `https://api.paddle.com/ips` (`sandbox`:
    /// `https://sandbox-api.paddle.com/ips`).
    Paddle,
    /// Amazon SNS: `https://ip-ranges.amazonaws.com/ip-ranges.json`, the
    /// prefixes of service `AMAZON` (of `region`, if given). AWS publishes
    /// no SNS-only subset: this is all of AWS.
    AwsSns,
}

impl RangeProvider {
    /// Every value, in the order of the enum (and of docs/providers.md); a
    /// test checks it against the CRD schema's list.
    pub const ALL: &'static [RangeProvider] = &[
        Self::Github,
        Self::Bitbucket,
        Self::Stripe,
        Self::Pagerduty,
        Self::Zoom,
        Self::Paddle,
        Self::AwsSns,
    ];

    /// The name written in a manifest (`aws-sns`, ...).
    pub fn manifest_name(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Bitbucket => "bitbucket",
            Self::Stripe => "stripe",
            Self::Pagerduty => "pagerduty",
            Self::Zoom => "zoom",
            Self::Paddle => "paddle",
            Self::AwsSns => "aws-sns",
        }
    }

    /// The provider a manifest name stands for.
    pub fn from_manifest_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|provider| provider.manifest_name() == name)
    }
}

impl std::fmt::Display for RangeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.manifest_name())
    }
}

/// The `aws-sns` preset: which SNS topics may deliver.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSnsSpec {
    /// The ARNs of the topics whose messages are accepted (at least one:
    /// anyone can subscribe any URL to their own topic). A correctly signed
    /// message of another topic is refused `sender_not_allowed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub topic_arns: Vec<String>,
    /// Confirm a verified `SubscriptionConfirmation` of an accepted topic by
    /// visiting its `SubscribeURL` (SNS hosts only). Default false: the
    /// confirmation is stored (event `SubscriptionConfirmation`) for a
    /// person to confirm.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_confirm_subscriptions: bool,
}

/// The `paypal` preset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaypalSpec {
    /// The ID PayPal gave this webhook (Developer Dashboard, or the
    /// Webhooks API), part of what PayPal signs.
    #[schemars(length(min = 1, max = 50))]
    pub webhook_id: String,
}

/// The `google-pubsub` preset: whose push tokens are accepted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GooglePubsubSpec {
    /// The token's expected `aud`, as set on the push subscription. Absent:
    /// the endpoint's public URL (`publicUrl`, else from `ingress`), Pub/Sub's
    /// default audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub audience: Option<String>,
    /// The service account the subscription pushes as (`email` claim, which
    /// must also be `email_verified`).
    #[schemars(length(min = 3, max = 320))]
    pub service_account_email: String,
}

/// The `okta` preset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OktaSpec {
    /// The header the event hook sends its secret in (the hook's
    /// "Authentication field"). Absent: `Authorization`, Okta's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub auth_header: Option<String>,
}

/// The `azure-event-grid` preset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureEventGridSpec {
    /// A static header of the subscription's delivery properties (marked
    /// secret in Event Grid) that carries the shared secret instead of the
    /// `?code=` query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub secret_header: Option<String>,

    /// Require a Microsoft Entra ID bearer token (`Authorization: Bearer`)
    /// on every request, handshakes included: the event subscription's
    /// "Use Microsoft Entra authentication" with this tenant and app. The
    /// token is verified with the tenant's published keys and must have
    /// been issued to Azure Event Grid. With `secretRefs` as well, the
    /// `?code=` secret is required too; without any, the token alone
    /// authenticates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entra: Option<EntraTokenSpec>,
}

/// Which Microsoft Entra ID tokens are accepted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntraTokenSpec {
    /// The tenant (directory) id of the app, a GUID
    /// (`azureActiveDirectoryTenantId` of the subscription): the token's
    /// issuer and where its keys are fetched from.
    #[schemars(length(min = 36, max = 36))]
    pub tenant_id: String,
    /// The token's expected `aud`: the app id or app id URI exactly as the
    /// subscription names it (`azureActiveDirectoryApplicationIdOrUri`;
    /// v1.0 tokens carry what was asked for, v2.0 tokens the app id).
    #[schemars(length(min = 1, max = 2048))]
    pub audience: String,
}

/// The `microsoft-graph` preset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MicrosoftGraphSpec {
    /// Also verify rich notifications' `validationTokens`: every token of
    /// a delivery must be signed by the tenant's Microsoft Entra keys, be
    /// issued by the tenant to Microsoft Graph Change Tracking, for this
    /// app, and not be expired; a delivery without them is refused. Only
    /// for subscriptions with `includeResourceData` (basic notifications
    /// carry no tokens). Absent: `clientState` alone authenticates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_tokens: Option<GraphValidationTokensSpec>,
}

/// Whose Graph validation tokens are accepted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GraphValidationTokensSpec {
    /// The tenant (directory) id the subscription was made in, a GUID.
    #[schemars(length(min = 36, max = 36))]
    pub tenant_id: String,
    /// The application (client) id of the app that made the
    /// subscription: the tokens' `aud`.
    #[schemars(length(min = 1, max = 256))]
    pub app_id: String,
}

/// What requests an endpoint takes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestSpec {
    /// The accepted HTTP methods; any other is answered 405
    /// `method_not_allowed`. Default `[POST]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub methods: Vec<HttpMethod>,
    /// The accepted media types (without parameters, e.g.
    /// `application/json`); any other is answered 415
    /// `unsupported_media_type`. Empty: any content type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub content_types: Vec<String>,
    /// The largest body accepted, in bytes; a larger one is answered 413
    /// `body_too_large` before more is read. Default 1048576 (1 MiB). It must
    /// not exceed the NATS server's `max_payload`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 67108864))]
    #[schemars(extend("format" = "int32"))]
    pub max_body_bytes: Option<u32>,
    /// Request headers of the provider stored with each event (e.g.
    /// `X-GitHub-Event`), as NATS headers `Hookwarden-Header-<name>` with the
    /// name lower-cased, so a subscription's `passHeaders` can send them on
    /// under their own names. Names are matched case-insensitively; a value
    /// longer than 1024 bytes or not visible ASCII is not stored, and at most
    /// 8 values of one header are. Credential-bearing headers are refused:
    /// any name containing `auth`, `cookie`, `sig`, `token`, `secret`,
    /// `hmac`, `password` or `key` (`Authorization`, `Cookie`, every
    /// preset's signature header, API keys), Trello's `X-Trello-Webhook`,
    /// and the headers the endpoint itself reads a secret or signature from
    /// (`okta.authHeader`, `azure.secretHeader`, `spec.verification`'s).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            length(min = 1, max = 64),
            regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
        )
    )]
    #[x_kube(validation = Rule::new(crate::store_headers_rule()).message("request.storeHeaders must not name a credential-bearing header (Authorization, Cookie, a signature, token, secret or key header): it would be stored and could be passed on"))]
    pub store_headers: Vec<String>,
}

/// HTTP methods a webhook may be delivered with.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// `POST`, what nearly every provider sends.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `GET`, for senders that put the event in the query string.
    Get,
    /// `DELETE`.
    Delete,
}

/// How providers' endpoint-verification handshakes are handled.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandshakeSpec {
    /// Also publish verified handshake requests to NATS (subject event
    /// `handshake`). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publish: bool,
    /// The verify tokens a Meta `hub.mode=subscribe` GET must carry in
    /// `hub.verify_token` (several during a rotation). Required for Meta's
    /// subscription handshake; without it that GET is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_token_refs: Vec<SecretKeyRef>,
}

/// What the audit log records of each request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggingSpec {
    /// How much of the request the audit line carries. Default `none`.
    #[serde(default)]
    pub payload: PayloadLogging,
}

/// How much of a request the audit line carries beyond its metadata.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PayloadLogging {
    /// Metadata only (sizes, SHA-256 of the body, outcome, ids).
    #[default]
    None,
    /// Also the request headers, with every header that carries a secret or
    /// a signature redacted.
    Headers,
    /// Also the headers (redacted) and the body, up to 4 KiB.
    Full,
}

/// Trace context from senders.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TracesSpec {
    /// Continue a sender's `traceparent`: the request's spans become its
    /// children and, with traces off, it is stored as the message's
    /// `traceparent`. Only for senders inside your own system: anyone can
    /// send one, to attach a delivery to a trace of their choosing or to
    /// force sampling. Default false: it is only recorded, as a span link
    /// and as `Hookwarden-Sender-Traceparent`.
    #[serde(default)]
    pub trust_incoming_traceparent: bool,
}

/// Records of refused requests: metadata only (reason, client, method,
/// path, redacted headers, body size and SHA-256), and the body's first bytes
/// only when `bodyPrefixBytes` asks for them. Stored in the stream
/// `HOOKWARDEN-QUARANTINE_<NAMESPACE>_<NAME>` under
/// `hookwarden-quarantine.<namespace>.<name>`, apart from the deliveries.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuarantineSpec {
    /// Records kept per second and receiver pod; refusals beyond it are
    /// counted, not recorded, so a flood cannot fill NATS or slow deliveries.
    /// Default 5. At most the receiver's share of its ceiling for all its
    /// endpoints (`--max-quarantine-records-per-second`, default 100; in a
    /// pool a quarter of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    #[schemars(extend("format" = "int32"))]
    pub max_per_second: Option<u32>,
    /// How many bytes of a refused body to keep (base64), after the secrets
    /// the receiver knows are redacted. Default 0: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1024))]
    #[schemars(extend("format" = "int32"))]
    pub body_prefix_bytes: Option<u32>,
    /// How long records are kept, in seconds. Default 86400 (one day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 2592000))]
    #[schemars(extend("format" = "int64"))]
    pub max_age_seconds: Option<u64>,
    /// The most bytes of records kept; the oldest go first. Default
    /// 67108864 (64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1048576))]
    pub max_bytes: Option<i64>,
}

/// How the endpoint is exposed by an Ingress (`networking.k8s.io/v1`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// The public host name, e.g. `hooks.example.com`.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// The path prefix that reaches the receiver. Default `/`.
    #[serde(default = "default_path")]
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
    /// The IngressClass to use. Absent: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Annotations copied onto the Ingress, e.g. for the ingress
    /// controller's body size or timeouts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Everything below the host reaches the receiver unless a path is given.
fn default_path() -> String {
    "/".to_owned()
}

/// Where the Ingress's certificate comes from: exactly one of `issuerRef`
/// (cert-manager issues `<name>-tls`) or `secretName` (an existing
/// `kubernetes.io/tls` Secret).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.issuerRef) != has(self.secretName)").message("set exactly one of tls.issuerRef and tls.secretName"))]
pub struct TlsSpec {
    /// A cert-manager Issuer or ClusterIssuer that issues the certificate
    /// into the Secret `<name>-tls`. Requires cert-manager's CRDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
    /// An existing TLS Secret in the endpoint's namespace, managed by you.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// A cert-manager issuer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// The issuer's name.
    pub name: String,
    /// `Issuer` (in the endpoint's namespace) or `ClusterIssuer`. Default
    /// `Issuer`.
    #[serde(default)]
    pub kind: IssuerKind,
}

/// The kinds of cert-manager issuers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum IssuerKind {
    /// A namespaced issuer, in the endpoint's namespace.
    #[default]
    Issuer,
    /// A cluster-wide issuer.
    ClusterIssuer,
}

/// Bounds of a HorizontalPodAutoscaler (`autoscaling/v2`) on CPU.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed autoscaling.maxReplicas"))]
pub struct AutoscalingSpec {
    /// The fewest receiver pods. Default 2.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 100))]
    pub min_replicas: i32,
    /// The most receiver pods.
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// The average CPU use, in percent of the request, the autoscaler aims
    /// for. Default 80.
    #[serde(
        default = "default_target_cpu",
        rename = "targetCPUUtilizationPercentage"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

/// Scale out before pods saturate; verification is CPU-bound.
fn default_target_cpu() -> i32 {
    80
}

/// The receivers' NetworkPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// The namespace of the ingress controller, the only one allowed to
    /// send deliveries to the receivers. Default `ingress-nginx`.
    #[serde(default = "default_ingress_namespace")]
    pub ingress_namespace: String,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self {
            ingress_namespace: default_ingress_namespace(),
        }
    }
}

/// The namespace the ingress-nginx chart installs into.
fn default_ingress_namespace() -> String {
    "ingress-nginx".to_owned()
}

/// Two receivers: a delivery is not lost to a single pod's restart.
pub(crate) fn default_replicas() -> i32 {
    2
}

/// Which forwarding headers the trusted proxies (`trustedProxies`) write:
/// the only ones believed about the client's address and scheme.
/// `XForwardedFor`: `X-Forwarded-For` (walked right to left) and
/// `X-Forwarded-Proto` (its last value), as ingress-nginx, Envoy, Traefik,
/// HAProxy and cloud load balancers write them. `Forwarded`: RFC 7239
/// `Forwarded` (`for=` walked right to left, `proto=` of the client's
/// element). Every other forwarding header, and `X-Real-IP` always, is the
/// client's own and ignored: proxies pass the kinds they do not write
/// through untouched. Absent: the operator's default
/// (`--default-forwarded-headers`); standalone `XForwardedFor`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ForwardedHeaders {
    /// `X-Forwarded-For` (the client, walked right to left) and
    /// `X-Forwarded-Proto` (the scheme, its last value), replaced or
    /// appended to by the proxy: ingress-nginx, Envoy, Traefik, HAProxy and
    /// cloud load balancers.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded`: the client from `for=`, walked right to left,
    /// the scheme from the client's element's `proto=`.
    Forwarded,
}

impl ForwardedHeaders {
    /// Every value, as written in a manifest.
    pub const ALL: [Self; 2] = [Self::XForwardedFor, Self::Forwarded];

    /// The value as written in a manifest, e.g. `XForwardedFor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::XForwardedFor => "XForwardedFor",
            Self::Forwarded => "Forwarded",
        }
    }
}

impl std::fmt::Display for ForwardedHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value that is not one of [`ForwardedHeaders::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not XForwardedFor or Forwarded")]
pub struct UnknownForwardedHeaders(pub String);

impl std::str::FromStr for ForwardedHeaders {
    type Err = UnknownForwardedHeaders;

    /// The manifest's spelling, exactly (as the API server checks it).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|value| value.as_str() == text)
            .ok_or_else(|| UnknownForwardedHeaders(text.to_owned()))
    }
}

/// Signature schemes of the providers Hookwarden verifies. Each preset
/// verifies exactly as its provider signs; see `docs/providers.md`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// GitHub: `X-Hub-Signature-256`, HMAC-SHA256 of the body.
    Github,
    /// GitLab: `X-Gitlab-Token` (and the newer signing token).
    Gitlab,
    /// Bitbucket Cloud: `X-Hub-Signature`, HMAC-SHA256 of the body.
    Bitbucket,
    /// Stripe: `Stripe-Signature` with timestamp and `v1` signatures.
    Stripe,
    /// Slack: `v0` signing with `X-Slack-Request-Timestamp`.
    Slack,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks,
    /// Svix: Standard Webhooks with `svix-*` headers.
    Svix,
    /// Shopify: `X-Shopify-Hmac-Sha256`, base64 HMAC-SHA256 of the body.
    Shopify,
    /// Twilio: `X-Twilio-Signature` over the full URL and parameters.
    Twilio,
    /// Paddle Billing: `Paddle-Signature` with `ts` and `h1`.
    Paddle,
    /// Square: `x-square-hmacsha256-signature` over notification URL and body.
    Square,
    /// Zoom: `x-zm-signature` `v0` with `x-zm-request-timestamp`.
    Zoom,
    /// Twitch EventSub: `Twitch-Eventsub-Message-Signature`.
    Twitch,
    /// Discord interactions: Ed25519 `X-Signature-Ed25519`.
    Discord,
    /// SendGrid Event Webhook: ECDSA P-256 signature.
    Sendgrid,
    /// Mailgun: signature fields in the body.
    Mailgun,
    /// Linear: `Linear-Signature`, HMAC-SHA256 of the body.
    Linear,
    /// Intercom: `X-Hub-Signature`, HMAC-SHA1 of the body.
    Intercom,
    /// PagerDuty v3: `X-PagerDuty-Signature` with several `v1=`.
    Pagerduty,
    /// Meta (WhatsApp, Messenger, Instagram): `X-Hub-Signature-256`.
    Meta,
    /// Adyen: HMAC over the notification fields (hex key).
    Adyen,
    /// HubSpot: `X-HubSpot-Signature-v3`, HMAC-SHA256 of method, URL, body
    /// and timestamp (needs `publicUrl` or `ingress`).
    Hubspot,
    /// Zendesk: `X-Zendesk-Webhook-Signature`, HMAC-SHA256 of timestamp and
    /// body.
    Zendesk,
    /// Xero: `x-xero-signature`, HMAC-SHA256 of the body; answers Intent to
    /// Receive.
    Xero,
    /// DocuSign Connect: `X-DocuSign-Signature-<n>`, HMAC-SHA256 of the body,
    /// one per account key.
    Docusign,
    /// Dropbox: `X-Dropbox-Signature`, hex HMAC-SHA256 of the body; answers
    /// the `?challenge=` GET.
    Dropbox,
    /// X (Twitter) Account Activity: `x-twitter-webhooks-signature`, base64
    /// HMAC-SHA256 of the body; answers the `?crc_token=` GET (CRC).
    Twitter,
    /// Trello: `X-Trello-Webhook`, base64 HMAC-SHA1 of the body and the
    /// callback URL (needs `publicUrl` or `ingress`); answers the `HEAD`
    /// Trello sends when a webhook is created.
    Trello,
    /// Okta event hooks: a shared secret in the `Authorization` header;
    /// answers the `X-Okta-Verification-Challenge` GET.
    Okta,
    /// Azure Event Grid webhooks: a shared secret in the `code` query
    /// parameter; answers the subscription validation event and the
    /// CloudEvents `OPTIONS` handshake.
    AzureEventGrid,
    /// Microsoft Graph change notifications: every notification's
    /// `clientState`; answers the `?validationToken=` POST.
    MicrosoftGraph,
    /// Amazon SNS: signed messages verified with AWS's certificate
    /// (fetched from SNS hosts only); needs `aws.topicArns`, no secrets.
    AwsSns,
    /// PayPal: `PAYPAL-TRANSMISSION-SIG` verified with PayPal's certificate
    /// (fetched from PayPal's API hosts only); needs `paypal.webhookId`, no
    /// secrets.
    Paypal,
    /// Google Cloud Pub/Sub push: an OIDC token (`Authorization: Bearer`)
    /// verified with Google's published keys; needs
    /// `google.serviceAccountEmail`, no secrets.
    GooglePubsub,
    /// Clerk: Standard Webhooks through Svix (`svix-*` headers, `whsec_`
    /// signing secret).
    Clerk,
    /// Resend: Standard Webhooks through Svix (`svix-*` headers, `whsec_`
    /// signing secret).
    Resend,
    /// OpenAI: Standard Webhooks (`webhook-*` headers, `whsec_` secret).
    Openai,
    /// Replicate: Standard Webhooks (`webhook-*` headers, `whsec_` secret).
    Replicate,
    /// Brex: Standard Webhooks (`webhook-*` headers, base64 secret).
    Brex,
    /// Polar: Standard Webhooks (`webhook-*` headers) keyed with the
    /// secret's own bytes, as Polar's SDKs do.
    Polar,
    /// Checks configured in `spec.verification`: a shared token, HTTP Basic
    /// credentials and/or an HMAC signature, for any sender that is not a
    /// preset.
    Generic,
}

impl Provider {
    /// Every provider, in the order of the enum (and of docs/providers.md).
    /// A test checks it against the CRD schema's list, so a new variant
    /// cannot be left out; the receiver's preset registry maps each one
    /// with an exhaustive match.
    pub const ALL: &'static [Provider] = &[
        Self::Github,
        Self::Gitlab,
        Self::Bitbucket,
        Self::Stripe,
        Self::Slack,
        Self::StandardWebhooks,
        Self::Svix,
        Self::Shopify,
        Self::Twilio,
        Self::Paddle,
        Self::Square,
        Self::Zoom,
        Self::Twitch,
        Self::Discord,
        Self::Sendgrid,
        Self::Mailgun,
        Self::Linear,
        Self::Intercom,
        Self::Pagerduty,
        Self::Meta,
        Self::Adyen,
        Self::Hubspot,
        Self::Zendesk,
        Self::Xero,
        Self::Docusign,
        Self::Dropbox,
        Self::Twitter,
        Self::Trello,
        Self::Okta,
        Self::AzureEventGrid,
        Self::MicrosoftGraph,
        Self::AwsSns,
        Self::Paypal,
        Self::GooglePubsub,
        Self::Clerk,
        Self::Resend,
        Self::Openai,
        Self::Replicate,
        Self::Brex,
        Self::Polar,
        Self::Generic,
    ];

    /// The name written in a manifest (`standard-webhooks`, ...): serde's
    /// kebab-case name, without a serde round trip (the drift test checks
    /// that the two agree for every provider).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Bitbucket => "bitbucket",
            Self::Stripe => "stripe",
            Self::Slack => "slack",
            Self::StandardWebhooks => "standard-webhooks",
            Self::Svix => "svix",
            Self::Shopify => "shopify",
            Self::Twilio => "twilio",
            Self::Paddle => "paddle",
            Self::Square => "square",
            Self::Zoom => "zoom",
            Self::Twitch => "twitch",
            Self::Discord => "discord",
            Self::Sendgrid => "sendgrid",
            Self::Mailgun => "mailgun",
            Self::Linear => "linear",
            Self::Intercom => "intercom",
            Self::Pagerduty => "pagerduty",
            Self::Meta => "meta",
            Self::Adyen => "adyen",
            Self::Hubspot => "hubspot",
            Self::Zendesk => "zendesk",
            Self::Xero => "xero",
            Self::Docusign => "docusign",
            Self::Dropbox => "dropbox",
            Self::Twitter => "twitter",
            Self::Trello => "trello",
            Self::Okta => "okta",
            Self::AzureEventGrid => "azure-event-grid",
            Self::MicrosoftGraph => "microsoft-graph",
            Self::AwsSns => "aws-sns",
            Self::Paypal => "paypal",
            Self::GooglePubsub => "google-pubsub",
            Self::Clerk => "clerk",
            Self::Resend => "resend",
            Self::Openai => "openai",
            Self::Replicate => "replicate",
            Self::Brex => "brex",
            Self::Polar => "polar",
            Self::Generic => "generic",
        }
    }

    /// The name written in a manifest, owned; [`Provider::as_str`] borrows it.
    pub fn manifest_name(self) -> String {
        self.as_str().to_owned()
    }

    /// The provider a manifest name stands for.
    pub fn from_manifest_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|provider| provider.as_str() == name)
    }
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

/// The checks of the `generic` provider. All configured checks must pass;
/// at least one must be configured (verification is never skipped).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSpec {
    /// A shared secret token sent verbatim in a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenCheck>,
    /// HTTP Basic credentials (`Authorization: Basic ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuthCheck>,
    /// An HMAC signature of the raw body (optionally with a delivery id and
    /// a timestamp) in a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac: Option<HmacCheck>,
    /// A JSON Web Token in a header (by default `Authorization: Bearer`).
    /// It authenticates the sender, not the body: the body is not signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtCheck>,
    /// Header that carries the event type, used in the NATS subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_header: Option<String>,
    /// Header that carries the sender's unique delivery id, used to
    /// de-duplicate retries. Defaults to `hmac.idHeader` when that is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id_header: Option<String>,
}

/// A shared token in a header, compared in constant time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenCheck {
    /// The header that carries the token, e.g. `X-Secret`.
    pub header: String,
    /// The accepted tokens (several during a rotation). Default: `spec.secretRefs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_refs: Vec<SecretKeyRef>,
}

/// HTTP Basic credentials, compared in constant time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuthCheck {
    /// The expected user name.
    pub username: String,
    /// The accepted passwords (several during a rotation). Default: `spec.secretRefs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_refs: Vec<SecretKeyRef>,
}

/// A generic HMAC signature. The signed content is `signedContent` when set;
/// else the raw body, preceded by `<id>.` when `idHeader` is set and by
/// `<timestamp>.` when there is a timestamp (`timestampHeader` or
/// `keyValue.timestampKey`), in that order: `<id>.<timestamp>.<body>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HmacCheck {
    /// The hash function. Default `sha256`; `sha1` only for legacy senders.
    #[serde(default)]
    pub algorithm: HmacAlgorithm,
    /// How the secret's bytes are written in the Secret. Default `raw`.
    #[serde(default)]
    pub key_encoding: BinaryEncoding,
    /// The header that carries the signature, e.g. `X-Signature`.
    pub signature_header: String,
    /// A prefix before the encoded signature, e.g. `sha256=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_prefix: Option<String>,
    /// How the signature is encoded. Default `hex`.
    #[serde(default)]
    pub signature_encoding: SignatureEncoding,
    /// A header with the signing time in Unix seconds; signed, and checked
    /// against `timestampToleranceSeconds` to refuse replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// A header with the delivery id; signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_header: Option<String>,
    /// What is signed, as a template: literal text kept byte for byte, and
    /// the placeholders `{method}`, `{url}` (the public URL with the
    /// request's query; needs `spec.publicUrl` or `spec.ingress`),
    /// `{pathAndQuery}` (the request target as received), `{timestamp}`
    /// (needs `timestampHeader`), `{id}` (needs `idHeader`),
    /// `{header:<Name>}` and `{body}` (required). `{{` and `}}` are a
    /// literal brace; there are no other escapes (write a newline as YAML's
    /// `"\n"`). Example: `"{timestamp}.{body}"`. Absent:
    /// `[<id>.][<timestamp>.]<body>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub signed_content: Option<String>,
    /// The signature header is a list of key-value pairs, e.g. Stripe's
    /// `t=<timestamp>,v1=<sig>,v1=<sig>`: any signature may match (senders
    /// send several while rotating), unknown keys are ignored. Absent: the
    /// header holds one signature (after `signaturePrefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_value: Option<KeyValueSignature>,
    /// The accepted keys (several during a rotation). Default: `spec.secretRefs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_refs: Vec<SecretKeyRef>,
}

/// A signature header of key-value pairs, e.g. Stripe's
/// `t=1700000000,v1=5257a8...,v1=...`, or Standard Webhooks'
/// `v1,<base64> v1,<base64>` (pairs separated by a space, key and value by
/// a comma).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyValueSignature {
    /// The key of each signature. Default `v1`. At most 16 are looked at; a
    /// badly encoded one is skipped as long as another is well formed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub signature_key: Option<String>,
    /// The key of the signed timestamp (Unix seconds), e.g. `t`: then it is
    /// what `{timestamp}` signs and the replay window checks, and
    /// `timestampHeader` must not be set. Absent: no timestamp in this header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub timestamp_key: Option<String>,
    /// What separates two pairs. Default `,`; spaces around a pair are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8))]
    pub pair_separator: Option<String>,
    /// What separates a key from its value. Default `=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8))]
    pub key_separator: Option<String>,
}

/// A JSON Web Token (RFC 7519) in compact form, checked with a fixed key:
/// its `alg` must be `algorithm` (no other, never `none`), its signature
/// must verify, `exp` must be present and not past, `nbf` (if present) not
/// ahead, each by at most `leewaySeconds`, and the claims below must match.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtCheck {
    /// The header with the token. Default `Authorization`, where it follows
    /// `Bearer `; any other header holds the bare token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The one accepted signature algorithm.
    pub algorithm: JwtAlgorithm,
    /// How an `HS256` key is written in its Secret. Default `raw`.
    #[serde(default)]
    pub key_encoding: BinaryEncoding,
    /// The required `iss` claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The required audience: the `aud` claim, or one of its entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Further claims that must be present with exactly these string values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_claims: BTreeMap<String, String>,
    /// Clock leeway for `exp` and `nbf`, in seconds. Default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    #[schemars(extend("format" = "int32"))]
    pub leeway_seconds: Option<u32>,
    /// The keys (several during a rotation): for `HS256` the shared secret,
    /// for `RS256` and `ES256` a PEM public key (`-----BEGIN PUBLIC
    /// KEY-----`; RSA of at least 2048 bits, or P-256). Default:
    /// `spec.secretRefs`. Not with `jwksUrl`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_refs: Vec<SecretKeyRef>,
    /// For `RS256` and `ES256`: fetch the keys from this JWK Set instead
    /// of `secretRefs`, and pick the one the token's `kid` names (a token
    /// without `kid` is refused). `https` on port 443 to a DNS name, no
    /// userinfo; fetched when first needed, cached for an hour (and served
    /// stale for up to a day while it cannot be refreshed), fetched again
    /// for an unknown `kid` at most once a minute. Only this URL is ever
    /// fetched: the token's `iss`, `jku` or `x5u` are not followed, and
    /// there is no OpenID discovery. The receivers' NetworkPolicy then
    /// lets HTTPS out to public addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 2048))]
    pub jwks_url: Option<String>,
}

/// JWT signature algorithms, as a token's `alg` names them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256, verified with a public key.
    RS256,
    /// ECDSA P-256 with SHA-256, verified with a public key.
    ES256,
}

/// Hash functions for HMAC signatures.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    /// HMAC-SHA256.
    #[default]
    Sha256,
    /// HMAC-SHA512.
    Sha512,
    /// HMAC-SHA1, for legacy senders only.
    Sha1,
}

/// How a key is written in its Secret.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BinaryEncoding {
    /// The bytes as they are.
    #[default]
    Raw,
    /// Hexadecimal digits.
    Hex,
    /// Standard base64.
    Base64,
}

/// How a signature is written in its header.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    /// Hexadecimal digits (either case).
    #[default]
    Hex,
    /// Standard base64.
    Base64,
}

/// Request rate limits of an endpoint; a request over a limit is answered
/// 429 with `Retry-After`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// The limit for all verified deliveries together, per receiver pod.
    /// Checked once a delivery is verified, so forged requests cannot use it
    /// up. Default 2000 requests/s with a burst of 4000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<Rate>,
    /// The limit for each client source on its own (an IPv4 address, or an
    /// IPv6 network of `ipv6PrefixLength` bits), checked before the body is
    /// read, so a flood from one source cannot starve the others. Default
    /// 100 requests/s with a burst of 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_source_ip: Option<Rate>,
    /// The IPv6 prefix length that counts as one source for `perSourceIp`
    /// and the per-source connection and body-read caps: one IPv6 host
    /// usually owns a whole /64. Default 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 16, max = 128))]
    #[schemars(extend("format" = "int32"))]
    pub ipv6_prefix_length: Option<u8>,
}

/// A token-bucket rate: a sustained rate and a burst on top of it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    /// Sustained requests per second.
    #[schemars(range(min = 1))]
    #[schemars(extend("format" = "int32"))]
    pub requests_per_second: u32,
    /// Requests allowed at once above the sustained rate; defaults to the
    /// sustained rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("format" = "int32"))]
    pub burst: Option<u32>,
}

/// JetStream settings of an endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
// On the object, not on the string: the API server quotes a refused string
// in its answer ("Invalid value: ..."), an object only as "object".
#[x_kube(validation = Rule::new("!has(self.url) || !self.url.contains('@')").message("spec.nats.url must not carry credentials (user:password@ or token@): anyone who can read the endpoint would see them; give a NATS .creds file in a Secret named by spec.nats.credentialsSecretRef"))]
pub struct NatsSpec {
    /// The NATS server the receivers connect to, e.g.
    /// `nats://nats.nats.svc:4222`, or the servers of a NATS cluster
    /// separated by commas (`nats://n1:4222,nats://n2:4222,nats://n3:4222`):
    /// receivers connect to one and move to another when it fails. Defaults
    /// to the operator's `--nats-url`, so the endpoints of a cluster share
    /// one NATS without repeating it.
    /// No credentials here (`user:password@`, `token@`): anyone who may read
    /// the endpoint would see them; use `credentialsSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Subject prefix; deliveries go to `<prefix>.<event type>`. Defaults to
    /// `hookwarden.<namespace>.<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_prefix: Option<String>,
    /// JetStream stream that stores the deliveries. Defaults to one stream per
    /// endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Where the stream keeps messages. Default `file`, so stored deliveries
    /// survive a NATS restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StreamStorage>,
    /// How long the stream keeps a delivery, in seconds. Absent: forever
    /// (until `maxBytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("format" = "int64"))]
    pub max_age_seconds: Option<u64>,
    /// The most bytes the stream keeps; the oldest deliveries go first.
    /// Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_bytes: Option<i64>,
    /// How long JetStream remembers delivery ids to drop a provider's
    /// retries, in seconds. Default 120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 604800))]
    #[schemars(extend("format" = "int32"))]
    pub duplicate_window_seconds: Option<u32>,
    /// Copies of the stream in a NATS cluster (1 to 5). Default 1. With 3,
    /// the stream keeps taking deliveries when one NATS node is lost
    /// (a delivery is acknowledged only once a majority stored it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5))]
    #[schemars(extend("format" = "int32"))]
    pub replicas: Option<u32>,
    /// Create the stream when it does not exist (and, by the operator, keep
    /// its settings as specified). Default true; false when the stream is
    /// managed elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_stream: Option<bool>,
    /// A Secret key holding NATS credentials (a `.creds` file with the
    /// user JWT and NKey seed). Absent: no authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretKeyRef>,
    /// Also write CloudEvents v1.0 binary-mode headers on every stored
    /// message, as the CloudEvents NATS protocol binding maps them:
    /// `ce-specversion`, `ce-id` (the `Nats-Msg-Id`), `ce-source`
    /// (`/namespaces/<namespace>/webhookendpoints/<name>`), `ce-type`
    /// (`dev.hookwarden.<provider>.<event type>`), `ce-time` (time of
    /// receipt) and `ce-datacontenttype`. A CloudEvents SDK then reads each
    /// stored delivery as an event whose data is the body, unchanged; the
    /// Hookwarden headers stay. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cloud_events: bool,
}

/// Where a JetStream stream keeps messages.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamStorage {
    /// On disk: stored deliveries survive a NATS restart.
    #[default]
    File,
    /// In memory: faster, lost when NATS restarts.
    Memory,
}

/// What the operator observed of an endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpointStatus {
    /// The public URL to give the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The Secret holding the generated verification secret (key
    /// `secret`), when `spec.generateSecret` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Receiver pods that pass their readiness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// `Ready` and the conditions it is made of: `SecretsResolved` (every
    /// referenced Secret key exists) and `ReceiverAvailable` (the requested
    /// receiver pods are available), plus `CertificateReady` when
    /// `tls.issuerRef` is set. Each has a reason and a message that say what
    /// to fix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
