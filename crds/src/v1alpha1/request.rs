//! What requests an endpoint takes and what it records of them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::SecretKeyRef;

/// What requests an endpoint takes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(not(feature = "kube"), derive(JsonSchema))]
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
    #[cfg_attr(feature = "kube", x_kube(validation = Rule::new(crate::store_headers_rule()).message("request.storeHeaders must not name a credential-bearing header (Authorization, Cookie, a signature, token, secret or key header): it would be stored and could be passed on")))]
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
