//! What the operator observes of an endpoint.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The type of the summary condition of a `WebhookEndpoint` and of a
/// `WebhookSubscription` (`kubectl wait --for=condition=Ready`): the
/// operator writes it and its metrics read it. The printer columns repeat
/// it as a literal (an attribute cannot name a constant).
pub const READY_CONDITION: &str = "Ready";

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
