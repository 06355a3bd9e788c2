//! How the receivers may talk and scale: the NetworkPolicy, the
//! PodDisruptionBudget and the HorizontalPodAutoscaler of an endpoint.

use hookwarden_crds::{Provider, WebhookEndpoint, WebhookEndpointSpec};
use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{BuildError, HTTP_PORT, METRICS_PORT, Owner, Settings, match_labels};

/// The NATS client port when the URL names none.
const NATS_DEFAULT_PORT: u16 = 4222;

/// How many receiver pods the endpoint asks for at least: the autoscaler's
/// minimum when autoscaling, else `replicas`.
pub fn desired_replicas(endpoint: &WebhookEndpoint) -> i32 {
    endpoint
        .spec
        .autoscaling
        .as_ref()
        .map_or(endpoint.spec.replicas, |a| a.min_replicas)
}

/// The ports of a NATS URL's servers (`nats://host:port`, several
/// separated by commas, as for a cluster), each once, in order; 4222 for a
/// server without one. Only ports are used: NATS may live anywhere, so
/// egress is restricted by port, not by destination. A receiver given a
/// cluster's servers must reach every one of them, not only the first.
pub fn nats_ports(url: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for server in url.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let port = server_port(server);
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    if ports.is_empty() {
        ports.push(NATS_DEFAULT_PORT);
    }
    ports
}

/// The port of one `nats://host:port` server, or 4222.
fn server_port(server: &str) -> u16 {
    explicit_port(server).unwrap_or(NATS_DEFAULT_PORT)
}

/// The port a URL names, if it names one.
fn explicit_port(url: &str) -> Option<u16> {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    // An IPv6 literal is bracketed: the port follows the `]`.
    let after_host = host_port.rsplit_once(']').map_or(host_port, |(_, p)| p);
    after_host
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
}

/// The egress rule to the OTLP endpoints the operator passes on to its
/// workloads (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
/// in `workload_env`): their ports, to any destination, as for NATS (the
/// collector may run anywhere); `None` when traces are not passed on.
pub fn otlp_egress(workload_env: &[(String, String)]) -> Option<NetworkPolicyEgressRule> {
    let mut ports = Vec::new();
    for (name, url) in workload_env {
        if name != "OTEL_EXPORTER_OTLP_ENDPOINT" && name != "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" {
            continue;
        }
        let url = url.trim();
        let port = explicit_port(url).unwrap_or(if url.starts_with("https://") { 443 } else { 80 });
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    (!ports.is_empty()).then(|| tcp_egress(ports))
}

/// A port of a NetworkPolicy rule.
pub(super) fn policy_port(protocol: &str, port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(port)),
        end_port: None,
    }
}

/// Egress to TCP `ports`, to any destination.
fn tcp_egress(ports: Vec<u16>) -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        ports: Some(
            ports
                .into_iter()
                .map(|port| policy_port("TCP", i32::from(port)))
                .collect(),
        ),
        to: None,
    }
}

/// DNS (53, UDP and TCP) to any destination: where the cluster's DNS runs
/// is not known to the operator.
pub(super) fn dns_egress() -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        ports: Some(vec![policy_port("UDP", 53), policy_port("TCP", 53)]),
        to: None,
    }
}

/// The ports of every server of `nats_url` ([`nats_ports`]), to any
/// destination.
pub(super) fn nats_egress(nats_url: &str) -> NetworkPolicyEgressRule {
    tcp_egress(nats_ports(nats_url))
}

/// The pods of namespace `namespace`.
pub(super) fn namespace_peer(namespace: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(match_labels(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_owned(),
            namespace.to_owned(),
        )]))),
        ..NetworkPolicyPeer::default()
    }
}

/// The addresses of `cidr` but those of `except`.
pub(super) fn ip_block(cidr: &str, except: &[&str]) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: Some(except.iter().map(|&range| range.to_owned()).collect()),
        }),
        ..NetworkPolicyPeer::default()
    }
}

/// Metrics (TCP [`METRICS_PORT`]) from the pods of the owner's own
/// namespace (an empty pod selector).
pub(super) fn metrics_ingress() -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector::default()),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![policy_port("TCP", METRICS_PORT)]),
    }
}

/// The NetworkPolicy of `owner`'s pods, both directions restricted to
/// `ingress` and `egress`.
pub(super) fn network_policy_for(
    owner: &Owner,
    ingress: Vec<NetworkPolicyIngressRule>,
    egress: Vec<NetworkPolicyEgressRule>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: owner.metadata(),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(match_labels(owner.selector_labels())),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    }
}

/// Whether the endpoint fetches keys over HTTPS: the presets that always
/// do (AWS SNS and PayPal certificates, Google's JWKS), Azure Event Grid
/// with Entra tokens and Microsoft Graph with `validationTokens` (Entra's
/// JWKS), and a `generic` JWT check with `jwksUrl`.
pub fn fetches_keys(spec: &WebhookEndpointSpec) -> bool {
    match spec.provider {
        Provider::AwsSns | Provider::Paypal | Provider::GooglePubsub => true,
        Provider::AzureEventGrid => spec.azure.as_ref().is_some_and(|a| a.entra.is_some()),
        Provider::MicrosoftGraph => spec
            .graph
            .as_ref()
            .is_some_and(|g| g.validation_tokens.is_some()),
        Provider::Generic => spec
            .verification
            .as_ref()
            .and_then(|v| v.jwt.as_ref())
            .is_some_and(|jwt| jwt.jwks_url.is_some()),
        _ => false,
    }
}

/// HTTPS (TCP 443) to public addresses only: the providers' key hosts are
/// on the internet, and nothing in the cluster, the node's networks or the
/// link-local metadata service should be reachable through this rule.
fn key_fetch_egress() -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: Some(vec![
            ip_block(
                "0.0.0.0/0",
                &[
                    "10.0.0.0/8",
                    "100.64.0.0/10",
                    "127.0.0.0/8",
                    "169.254.0.0/16",
                    "172.16.0.0/12",
                    "192.168.0.0/16",
                ],
            ),
            ip_block("::/0", &["fc00::/7", "fe80::/10", "::1/128"]),
        ]),
        ports: Some(vec![policy_port("TCP", 443)]),
    }
}

/// The NetworkPolicy of the receiver pods.
///
/// Ingress: deliveries (port 8080) only from the ingress controller's
/// namespace; probes and metrics (port 9090) only from pods in the
/// endpoint's own namespace (a Prometheus elsewhere needs an extra policy;
/// kubelet probes are not subject to NetworkPolicy). Egress: DNS (53 UDP and
/// TCP) and the NATS port, to any destination, since where DNS and NATS run
/// is not known to the operator; for presets that fetch keys, HTTPS to
/// public addresses too; with traces passed on, the OTLP endpoint's port.
pub fn network_policy(
    endpoint: &WebhookEndpoint,
    owner: &Owner,
    settings: &Settings,
) -> Result<NetworkPolicy, BuildError> {
    network_policy_of(
        owner,
        &endpoint
            .spec
            .network_policy
            .clone()
            .unwrap_or_default()
            .ingress_namespace,
        settings.nats_url(endpoint),
        fetches_keys(&endpoint.spec),
        &settings.workload_env,
    )
}

/// The NetworkPolicy of `owner`'s receiver pods (an endpoint's or a
/// pool's): deliveries from `ingress_namespace`, NATS at the ports of
/// `nats_url`, HTTPS to public addresses when `fetch_keys`, and the OTLP
/// endpoint's port when `workload_env` passes traces on.
pub fn network_policy_of(
    owner: &Owner,
    ingress_namespace: &str,
    nats_url: &str,
    fetch_keys: bool,
    workload_env: &[(String, String)],
) -> Result<NetworkPolicy, BuildError> {
    let mut egress = vec![dns_egress(), nats_egress(nats_url)];
    if fetch_keys {
        egress.push(key_fetch_egress());
    }
    egress.extend(otlp_egress(workload_env));
    let deliveries = NetworkPolicyIngressRule {
        from: Some(vec![namespace_peer(ingress_namespace)]),
        ports: Some(vec![policy_port("TCP", HTTP_PORT)]),
    };
    Ok(network_policy_for(
        owner,
        vec![deliveries, metrics_ingress()],
        egress,
    ))
}

/// A PodDisruptionBudget (at most one receiver down at a time in a drain),
/// or `None` when fewer than two receivers run: a budget for one pod would
/// block node drains forever.
pub fn pod_disruption_budget(
    endpoint: &WebhookEndpoint,
    owner: &Owner,
) -> Result<Option<PodDisruptionBudget>, BuildError> {
    pod_disruption_budget_of(owner, desired_replicas(endpoint))
}

/// The PodDisruptionBudget of `owner`'s pods when `desired` of them run
/// (none below two).
pub fn pod_disruption_budget_of(
    owner: &Owner,
    desired: i32,
) -> Result<Option<PodDisruptionBudget>, BuildError> {
    Ok((desired > 1).then(|| pod_disruption_budget_for(owner)))
}

/// At most one of `owner`'s pods down at a time in a drain.
pub(super) fn pod_disruption_budget_for(owner: &Owner) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: owner.metadata(),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(match_labels(owner.selector_labels())),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

/// The HorizontalPodAutoscaler of the receiver Deployment, or `None`
/// without `spec.autoscaling` (the Deployment's `replicas` then rules).
pub fn autoscaler(
    endpoint: &WebhookEndpoint,
    owner: &Owner,
) -> Result<Option<HorizontalPodAutoscaler>, BuildError> {
    autoscaler_of(owner, endpoint.spec.autoscaling.as_ref())
}

/// The HorizontalPodAutoscaler of `owner`'s Deployment, or `None` without
/// `scaling`.
pub fn autoscaler_of(
    owner: &Owner,
    scaling: Option<&hookwarden_crds::AutoscalingSpec>,
) -> Result<Option<HorizontalPodAutoscaler>, BuildError> {
    Ok(scaling.map(|scaling| HorizontalPodAutoscaler {
        metadata: owner.metadata(),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: owner.child_name(),
            },
            min_replicas: Some(scaling.min_replicas),
            max_replicas: scaling.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(scaling.target_cpu_utilization_percentage),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: None,
        },
        status: None,
    }))
}

#[cfg(test)]
mod tests {
    use hookwarden_crds::NetworkPolicySpec;

    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn the_nats_ports_come_from_the_url() {
        assert_eq!(nats_ports("nats://nats.nats.svc:4222"), [4222]);
        assert_eq!(nats_ports("nats://nats.messaging.svc:4333"), [4333]);
        assert_eq!(nats_ports("nats://user:pw@nats:5000/"), [5000]);
        assert_eq!(nats_ports("tls://[fd00::1]:7422,nats://b:1"), [7422, 1]);
        assert_eq!(nats_ports("nats://[fd00::1]"), [4222]);
        assert_eq!(nats_ports("nats.svc"), [4222]);
        assert_eq!(nats_ports("nats://host:notaport"), [4222]);
        assert_eq!(nats_ports(" , "), [4222]);
    }

    #[test]
    fn a_cluster_url_lets_out_every_servers_port_once() {
        let mut endpoint = endpoint("github");
        endpoint.spec.nats.url = Some(
            "nats://n1.nats.svc:4222, nats://n2.nats.svc:4222,nats://n3.nats.svc:4333".to_owned(),
        );
        let owner = Owner::of(&endpoint).expect("owner");
        let policy = network_policy(&endpoint, &owner, &settings()).expect("builds");
        let json = serde_json::to_value(&policy).expect("serializes");
        assert_eq!(
            json["spec"]["egress"][1],
            serde_json::json!({"ports": [
                {"protocol": "TCP", "port": 4222},
                {"protocol": "TCP", "port": 4333},
            ]})
        );
    }

    #[test]
    fn network_policy_admits_the_ingress_namespace_and_lets_out_dns_and_nats() {
        let endpoint = endpoint("exposed");
        let owner = Owner::of(&endpoint).expect("owner");
        let policy = network_policy(&endpoint, &owner, &settings()).expect("builds");
        let json = serde_json::to_value(&policy).expect("serializes");
        let expected: serde_json::Value = serde_yaml_ng::from_str(
            r#"
podSelector:
  matchLabels:
    app.kubernetes.io/name: hookwarden-receiver
    app.kubernetes.io/instance: shop
policyTypes: [Ingress, Egress]
ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: traefik}}}]
    ports: [{protocol: TCP, port: 8080}]
  - from: [{podSelector: {}}]
    ports: [{protocol: TCP, port: 9090}]
egress:
  - ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
  - ports: [{protocol: TCP, port: 4333}]
"#,
        )
        .expect("expected YAML");
        assert_eq!(json["spec"], expected);
    }

    #[test]
    fn network_policy_defaults_to_ingress_nginx_and_the_operator_nats_url() {
        let endpoint = endpoint("github");
        let owner = Owner::of(&endpoint).expect("owner");
        let policy = network_policy(&endpoint, &owner, &settings()).expect("builds");
        let json = serde_json::to_value(&policy).expect("serializes");
        assert_eq!(
            json["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "ingress-nginx"
        );
        assert_eq!(json["spec"]["egress"][1]["ports"][0]["port"], 4222);
    }

    #[test]
    fn only_presets_that_fetch_keys_may_reach_https() {
        let github = endpoint("github");
        let owner = Owner::of(&github).expect("owner");
        let policy = network_policy(&github, &owner, &settings()).expect("builds");
        let json = serde_json::to_value(&policy).expect("serializes");
        assert_eq!(json["spec"]["egress"].as_array().map(Vec::len), Some(2));
        for provider in [Provider::AwsSns, Provider::Paypal, Provider::GooglePubsub] {
            let mut endpoint = endpoint("github");
            endpoint.spec.provider = provider;
            let policy = network_policy(&endpoint, &owner, &settings()).expect("builds");
            let json = serde_json::to_value(&policy).expect("serializes");
            let egress = &json["spec"]["egress"];
            assert_eq!(egress.as_array().map(Vec::len), Some(3), "{provider:?}");
            assert_eq!(
                egress[2]["ports"],
                serde_json::json!([{"protocol": "TCP", "port": 443}])
            );
            assert_eq!(egress[2]["to"][0]["ipBlock"]["cidr"], "0.0.0.0/0");
            let except = egress[2]["to"][0]["ipBlock"]["except"].to_string();
            assert!(except.contains("10.0.0.0/8") && except.contains("169.254.0.0/16"));
        }
    }

    #[test]
    fn settings_that_fetch_keys_reach_https_and_others_do_not() {
        use hookwarden_crds::{
            AzureEventGridSpec, EntraTokenSpec, GraphValidationTokensSpec, JwtAlgorithm, JwtCheck,
            MicrosoftGraphSpec, VerificationSpec,
        };
        let egress_len = |endpoint: &WebhookEndpoint| {
            let owner = Owner::of(endpoint).expect("owner");
            let policy = network_policy(endpoint, &owner, &settings()).expect("builds");
            let json = serde_json::to_value(&policy).expect("serializes");
            json["spec"]["egress"].as_array().map(Vec::len)
        };
        let entra = EntraTokenSpec {
            tenant_id: "84bd8158-6d4d-4958-8b9f-9d6445542f95".into(),
            audience: "api://hooks".into(),
        };
        // Event Grid: only with Entra tokens.
        let mut grid = endpoint("github");
        grid.spec.provider = Provider::AzureEventGrid;
        assert_eq!(
            egress_len(&grid),
            Some(2),
            "the ?code= secret fetches nothing"
        );
        grid.spec.azure = Some(AzureEventGridSpec {
            entra: None,
            ..AzureEventGridSpec::default()
        });
        assert_eq!(egress_len(&grid), Some(2));
        grid.spec.azure = Some(AzureEventGridSpec {
            entra: Some(entra.clone()),
            ..AzureEventGridSpec::default()
        });
        assert_eq!(egress_len(&grid), Some(3));
        // Graph: only with validationTokens.
        let mut graph = endpoint("github");
        graph.spec.provider = Provider::MicrosoftGraph;
        assert_eq!(egress_len(&graph), Some(2));
        graph.spec.graph = Some(MicrosoftGraphSpec {
            validation_tokens: Some(GraphValidationTokensSpec {
                tenant_id: entra.tenant_id.clone(),
                app_id: "8e460676-ae3f-4b1e-8790-ee0fb5d6148f".into(),
            }),
        });
        assert_eq!(egress_len(&graph), Some(3));
        // Generic: only a JWT check with jwksUrl.
        let jwt = |jwks_url: Option<&str>| JwtCheck {
            header: None,
            algorithm: JwtAlgorithm::RS256,
            key_encoding: Default::default(),
            issuer: None,
            audience: None,
            required_claims: Default::default(),
            leeway_seconds: None,
            secret_refs: Vec::new(),
            jwks_url: jwks_url.map(str::to_owned),
        };
        let mut generic = endpoint("github");
        generic.spec.provider = Provider::Generic;
        generic.spec.verification = Some(VerificationSpec {
            jwt: Some(jwt(None)),
            ..Default::default()
        });
        assert_eq!(egress_len(&generic), Some(2), "a fixed PEM key");
        generic.spec.verification = Some(VerificationSpec {
            jwt: Some(jwt(Some("https://issuer.example.com/jwks"))),
            ..Default::default()
        });
        assert_eq!(egress_len(&generic), Some(3));
        // Settings of another preset do not open anything.
        let mut github = endpoint("github");
        github.spec.azure = grid.spec.azure.clone();
        github.spec.graph = graph.spec.graph.clone();
        assert_eq!(egress_len(&github), Some(2));
    }

    #[test]
    fn a_budget_only_for_more_than_one_replica() {
        let mut endpoint = endpoint("github");
        let owner = Owner::of(&endpoint).expect("owner");
        let pdb = pod_disruption_budget(&endpoint, &owner)
            .expect("builds")
            .expect("two replicas");
        let json = serde_json::to_value(&pdb).expect("serializes");
        assert_eq!(json["spec"]["maxUnavailable"], 1);
        assert_eq!(
            json["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"],
            "github"
        );
        endpoint.spec.replicas = 1;
        assert!(
            pod_disruption_budget(&endpoint, &owner)
                .expect("builds")
                .is_none()
        );
    }

    #[test]
    fn autoscaling_builds_an_hpa_on_cpu() {
        let endpoint = endpoint("exposed");
        let owner = Owner::of(&endpoint).expect("owner");
        let hpa = autoscaler(&endpoint, &owner)
            .expect("builds")
            .expect("wanted");
        let json = serde_json::to_value(&hpa).expect("serializes");
        let expected: serde_json::Value = serde_yaml_ng::from_str(
            r#"
scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: shop-receiver}
minReplicas: 3
maxReplicas: 10
metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 70}
"#,
        )
        .expect("expected YAML");
        assert_eq!(json["spec"], expected);
        assert_eq!(desired_replicas(&endpoint), 3);
        assert!(
            autoscaler(&fixtures_github(), &owner)
                .expect("builds")
                .is_none()
        );
    }

    fn fixtures_github() -> WebhookEndpoint {
        endpoint("github")
    }

    #[test]
    fn ingress_namespace_default_is_ingress_nginx() {
        assert_eq!(
            NetworkPolicySpec::default().ingress_namespace,
            "ingress-nginx"
        );
    }

    #[test]
    fn traces_passed_on_open_the_otlp_port() {
        let endpoint = endpoint("github");
        let owner = Owner::of(&endpoint).expect("owner");
        let traced = Settings {
            workload_env: vec![
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
                    "http://collector.obs.svc:4318".to_owned(),
                ),
                ("OTEL_TRACES_SAMPLER".to_owned(), "always_on".to_owned()),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".to_owned(),
                    "https://traces.example.com/v1/traces".to_owned(),
                ),
            ],
            ..settings()
        };
        let policy = network_policy(&endpoint, &owner, &traced).expect("builds");
        let json = serde_json::to_value(&policy).expect("json");
        let egress = json["spec"]["egress"].as_array().expect("egress");
        assert_eq!(
            egress.last().map(|rule| rule["ports"].clone()),
            Some(serde_json::json!([
                {"protocol": "TCP", "port": 4318},
                {"protocol": "TCP", "port": 443},
            ]))
        );
        assert_eq!(otlp_egress(&[]), None);
    }
}
