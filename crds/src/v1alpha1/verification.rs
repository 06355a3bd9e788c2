//! The checks of the `generic` provider (`spec.verification`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::SecretKeyRef;

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
