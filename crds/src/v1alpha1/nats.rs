//! JetStream settings (`spec.nats`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::SecretKeyRef;

/// JetStream settings of an endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(not(feature = "kube"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
// On the object, not on the string: the API server quotes a refused string
// in its answer ("Invalid value: ..."), an object only as "object".
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("!has(self.url) || !self.url.contains('@')").message("spec.nats.url must not carry credentials (user:password@ or token@): anyone who can read the endpoint would see them; give a NATS .creds file in a Secret named by spec.nats.credentialsSecretRef")))]
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
