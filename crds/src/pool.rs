//! `WebhookReceiverPool` (`hookwarden.dev/v1alpha1`): one receiver
//! Deployment that serves many endpoints of its namespace, routed by host
//! and path.
//!
//! An endpoint joins a pool by naming it in `spec.pool`. The operator
//! renders every member's configuration into one Secret the pool's pods
//! mount whole and re-read at run time, so endpoints come and go without a
//! restart. Each member keeps its own verifier, secrets, limits, stream
//! and status; the pool owns the pods, their NATS connection and their
//! scaling.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{AutoscalingSpec, NatsSpec, NetworkPolicySpec};

/// Shared receiver pods for the endpoints of this namespace whose
/// `spec.pool` names this pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource),
    kube(
        group = "hookwarden.dev",
        version = "v1alpha1",
        kind = "WebhookReceiverPool",
        plural = "webhookreceiverpools",
        shortname = "whp",
        namespaced,
        status = "WebhookReceiverPoolStatus",
        printcolumn = r#"{"name":"Endpoints","type":"integer","jsonPath":".status.endpoints"}"#,
        printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Available\")].status"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WebhookReceiverPoolSpec {
    /// How many pool pods run. Default 2, so one pod can be drained or
    /// rescheduled while the other keeps accepting deliveries.
    #[serde(default = "crate::v1alpha1::default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,

    /// Compute resources of each pool container. Absent: the operator's
    /// defaults for a receiver (see `docs/operator.md`); a pool serving
    /// many endpoints usually wants more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Scale the pool with CPU load between two bounds (a
    /// HorizontalPodAutoscaler); `replicas` is then ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    /// The pool's NATS connection: `url` (default: the operator's
    /// `--nats-url`) and `credentialsSecretRef`. The other fields are the
    /// endpoints' own (`spec.nats` of each member: stream, subject prefix,
    /// stream replicas...) and are ignored here.
    #[serde(default)]
    pub nats: NatsSpec,

    /// The pool's NetworkPolicy. Absent: the defaults (deliveries from the
    /// `ingress-nginx` namespace only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,

    /// The most requests of one endpoint handled at once by one pool pod,
    /// so that one endpoint's flood cannot take every connection of the
    /// pod. Absent: the receiver's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    #[schemars(extend("format" = "int32"))]
    pub max_in_flight_per_endpoint: Option<u32>,

    /// How many Secrets hold the members' configuration (Kubernetes refuses
    /// a Secret over 1 MiB, about 1,000 small members). Each member lives
    /// in one of them, chosen by a hash of its name, so members never move
    /// between Secrets when others come and go. The pods mount them all as
    /// one directory; changing this number restarts the pool's pods (their
    /// volume lists the Secrets), adding or removing a member never does.
    #[serde(default = "default_config_shards")]
    #[schemars(range(min = 1, max = 64))]
    pub config_shards: i32,
}

/// The most Secrets a pool's configuration can be spread over
/// (`spec.configShards`), 64 MiB in all.
pub const MAX_CONFIG_SHARDS: i32 = 64;

fn default_config_shards() -> i32 {
    1
}

/// A member endpoint whose current configuration a pool refused.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusedMember {
    /// The endpoint's name.
    pub name: String,
    /// Why, as its `ConfigApplied` condition's reason (`RouteConflict`,
    /// `SecretNotFound`, `InvalidSpec`...).
    pub reason: String,
    /// Whether the pool keeps serving the last configuration it accepted.
    pub served: bool,
}

/// What the operator observed of a pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookReceiverPoolStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pool pods the Deployment runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pool pods that pass their readiness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Endpoints whose configuration the pool serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<i32>,
    /// Member endpoints whose current configuration the pool refused (each
    /// says why in its own `ConfigApplied` condition), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedMember>,
    /// `Available`: the requested pool pods are available.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[cfg(all(test, feature = "kube"))]
mod tests {
    use kube::CustomResourceExt;

    #[test]
    fn the_schema_bounds_config_shards_by_the_constant() {
        let crd = serde_json::to_value(super::WebhookReceiverPool::crd()).expect("serializes");
        let shards = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["configShards"];
        assert_eq!(
            shards["maximum"].as_f64(),
            Some(f64::from(super::MAX_CONFIG_SHARDS))
        );
        assert_eq!(shards["default"], 1);
    }
}
