//! How the receivers are exposed and scaled: Ingress, TLS, autoscaling,
//! NetworkPolicy and the forwarding headers of the proxies in front.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::default_replicas;

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
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(not(feature = "kube"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("has(self.issuerRef) != has(self.secretName)").message("set exactly one of tls.issuerRef and tls.secretName")))]
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
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(not(feature = "kube"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed autoscaling.maxReplicas")))]
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
