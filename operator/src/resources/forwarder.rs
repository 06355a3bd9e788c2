//! The children of a `WebhookSubscription`: the rendered configuration
//! Secret `<name>-forwarder`, the forwarder Deployment, its NetworkPolicy,
//! a PodDisruptionBudget with more than one replica, and the generated
//! signing Secret `<name>-signing`.
//!
//! What the subscription means (stream, filters, consumer, dead letters,
//! destination rule) is [`Plan::resolve`]'s, the one resolution the
//! forwarder uses too; this module only adds what the operator decides: the
//! NATS server and credentials, the signing secret, and the objects.

use std::collections::{BTreeMap, BTreeSet};

use hookwarden_core::forward::{Plan, PlanError};
use hookwarden_crds::{
    EndpointManifest, SecretKeyRef, SigningSpec, SubscriptionNatsSpec, SubscriptionSource,
    WebhookEndpoint, WebhookSubscription,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyEgressRule};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::{Resource, ResourceExt};

use super::pod::{self, CONFIG_DIR, Mount, Workload, item};
use super::policy::{
    dns_egress, ip_block, metrics_ingress, namespace_peer, nats_egress, network_policy_for,
    otlp_egress, pod_disruption_budget_for, policy_port,
};
use super::secret::{given_secret, opaque_secret, render_secrets};
use super::{
    BuildError, METRICS_PORT, NATS_URL_KEY, Owner, ResolvedSecrets, SecretKey, Settings,
    secret_data_key,
};

/// The key (and file name) of the resolved subscription manifest the
/// forwarder reads.
pub const SUBSCRIPTION_FILE: &str = "subscription.yaml";
/// The key of the signing secret in the generated `<name>-signing` Secret.
pub const SIGNING_SECRET_KEY: &str = "secret";

/// The Secret holding the generated signing secret of subscription
/// `subscription_name`, when `spec.signing.secretRef` is absent.
pub fn signing_secret_name(subscription_name: &str) -> String {
    format!("{subscription_name}-signing")
}

/// A subscription with everything the operator decides resolved: its
/// [`Plan`], the NATS it reads from, and the Secret keys the forwarder
/// needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    /// The one resolution of the subscription's meaning.
    pub plan: Plan,
    /// The NATS server: `spec.nats.url`, else the source endpoint's, else
    /// the operator's `--nats-url`.
    pub nats_url: String,
    /// The signing secret: `spec.signing.secretRef`, else the generated one.
    pub signing: SecretKeyRef,
    /// Whether [`Effective::signing`] is the generated `<name>-signing`.
    pub signing_generated: bool,
    /// `spec.destination.caSecretRef`.
    pub ca: Option<SecretKeyRef>,
    /// The NATS credentials: `spec.nats.credentialsSecretRef`, else, when
    /// the subscription reads the source endpoint's NATS (no `spec.nats.url`),
    /// the endpoint's `spec.nats.credentialsSecretRef`.
    pub credentials: Option<SecretKeyRef>,
    /// Whether the NATS server is the operator's `--nats-url` (whose own
    /// credentials may then manage the consumer, as for endpoint streams).
    pub default_nats: bool,
}

impl Effective {
    /// Resolves `subscription`; `endpoint` is the `WebhookEndpoint` of this
    /// namespace that `spec.source.endpoint` names, if it exists.
    pub fn resolve(
        subscription: &WebhookSubscription,
        endpoint: Option<&WebhookEndpoint>,
        settings: &Settings,
    ) -> Result<Self, PlanError> {
        let plan = Plan::resolve(
            &subscription.into(),
            endpoint.map(EndpointManifest::from).as_ref(),
        )?;
        let spec = &subscription.spec;
        let own = spec.nats.clone().unwrap_or_default();
        // `Plan::resolve` succeeded, so with `source.endpoint` the endpoint
        // is the one named.
        let source = endpoint.filter(|_| spec.source.endpoint.is_some());
        let (nats_url, default_nats) = match (&own.url, source) {
            (Some(url), _) => (url.clone(), false),
            (None, Some(endpoint)) => (
                settings.nats_url(endpoint).to_owned(),
                endpoint.spec.nats.url.is_none(),
            ),
            (None, None) => (settings.nats_url.clone(), true),
        };
        // The endpoint's credentials only for the endpoint's NATS: they
        // were given for that server.
        let credentials = own.credentials_secret_ref.clone().or_else(|| {
            source
                .filter(|_| own.url.is_none())
                .and_then(|endpoint| endpoint.spec.nats.credentials_secret_ref.clone())
        });
        let (signing, signing_generated) =
            match spec.signing.as_ref().and_then(|s| s.secret_ref.clone()) {
                Some(reference) => (reference, false),
                None => (
                    SecretKeyRef {
                        name: signing_secret_name(&subscription.name_any()),
                        key: SIGNING_SECRET_KEY.to_owned(),
                    },
                    true,
                ),
            };
        Ok(Self {
            plan,
            nats_url,
            signing,
            signing_generated,
            ca: spec.destination.ca_secret_ref.clone(),
            credentials,
            default_nats,
        })
    }

    /// Every Secret key the forwarder reads, each once: the signing secret,
    /// the destination's CA and the NATS credentials.
    pub fn referenced_secrets(&self) -> BTreeSet<SecretKey> {
        std::iter::once(&self.signing)
            .chain(&self.ca)
            .chain(&self.credentials)
            .map(|r| (r.name.clone(), r.key.clone()))
            .collect()
    }
}

/// The manifest the forwarder reads: the subscription as the operator
/// resolved it. The source is the stream and subject prefix (never an
/// endpoint: the forwarder cannot read the API), the signing secret and the
/// NATS credentials are always the effective ones, and the NATS URL is left
/// to `--nats-url` (or `HOOKWARDEN_NATS_URL`), as for receivers.
///
/// `replicas` and `resources` are the Deployment's, not the forwarder's:
/// they are left at their defaults here so that scaling does not change the
/// configuration hash and roll the pods.
pub fn rendered_subscription(
    subscription: &WebhookSubscription,
    effective: &Effective,
) -> WebhookSubscription {
    let mut spec = subscription.spec.clone();
    spec.source = SubscriptionSource {
        endpoint: None,
        stream: Some(effective.plan.stream.clone()),
        subject_prefix: Some(effective.plan.subject_prefix.clone()),
    };
    spec.signing = Some(SigningSpec {
        secret_ref: Some(effective.signing.clone()),
    });
    spec.nats = effective
        .credentials
        .clone()
        .map(|credentials| SubscriptionNatsSpec {
            url: None,
            credentials_secret_ref: Some(credentials),
        });
    spec.replicas = 1;
    spec.resources = None;
    let mut rendered = WebhookSubscription::new(&subscription.name_any(), spec);
    rendered.metadata.namespace = subscription.namespace();
    rendered
}

fn subscription_manifest(rendered: &WebhookSubscription) -> Result<String, BuildError> {
    // Name, namespace and spec only: server-side metadata changes on every
    // write and would roll the pods.
    let manifest = serde_json::json!({
        "apiVersion": WebhookSubscription::api_version(&()),
        "kind": WebhookSubscription::kind(&()),
        "metadata": {
            "name": rendered.name_any(),
            "namespace": rendered.namespace(),
        },
        "spec": rendered.spec,
    });
    Ok(serde_yaml_ng::to_string(&manifest)?)
}

/// The rendered configuration Secret: `subscription.yaml`, the values of
/// the referenced keys (`secret.<name>_<key>`, as for receivers) and the
/// NATS URL (`nats-url`).
///
/// The URL is kept here even when it is plain (the Deployment then passes
/// it as an argument and mounts nothing of it): this Secret is the record
/// of what the forwarders were given, and [`Deployed::of`] reads it back to
/// remove the durable consumer where it was created, after the endpoint,
/// the user's Secrets or the spec have changed or gone.
pub fn config_secret(
    subscription: &WebhookSubscription,
    owner: &Owner,
    effective: &Effective,
    secrets: &ResolvedSecrets,
) -> Result<Secret, BuildError> {
    let mut data: BTreeMap<String, ByteString> = BTreeMap::new();
    let rendered = rendered_subscription(subscription, effective);
    data.insert(
        SUBSCRIPTION_FILE.to_owned(),
        ByteString(subscription_manifest(&rendered)?.into_bytes()),
    );
    data.insert(
        NATS_URL_KEY.to_owned(),
        ByteString(effective.nats_url.as_bytes().to_vec()),
    );
    render_secrets(&mut data, effective.referenced_secrets(), secrets)?;
    Ok(opaque_secret(owner.metadata(), Some(data), None))
}

/// The forwarder Deployment: `hookwarden-receiver forward` of the receiver
/// image, hardened exactly like the receivers ([`pod::deployment`]).
pub fn deployment(
    subscription: &WebhookSubscription,
    owner: &Owner,
    effective: &Effective,
    settings: &Settings,
    config_hash: &str,
) -> Result<Deployment, BuildError> {
    let mut items = vec![item(SUBSCRIPTION_FILE, SUBSCRIPTION_FILE)];
    items.extend(effective.referenced_secrets().iter().map(|(secret, key)| {
        item(
            &secret_data_key(secret, key),
            &format!("secrets/{secret}/{key}"),
        )
    }));
    let mut args = vec![
        "forward".to_owned(),
        "--subscription".to_owned(),
        format!("{CONFIG_DIR}/{SUBSCRIPTION_FILE}"),
        "--secrets-dir".to_owned(),
        format!("{CONFIG_DIR}/secrets"),
    ];
    let env = pod::with_env(
        pod::nats_url(owner, &effective.nats_url, &mut args),
        &settings.workload_env,
    );
    args.extend([
        "--metrics-listen".to_owned(),
        format!("0.0.0.0:{METRICS_PORT}"),
    ]);
    let mut deployment = pod::deployment(
        owner,
        Workload {
            container: "forwarder",
            image: &settings.receiver_image,
            args,
            env,
            // Nothing connects to a forwarder but the kubelet's probes and
            // Prometheus.
            ports: serde_json::json!([
                {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
            ]),
            resources: subscription.spec.resources.as_ref(),
            mount: Mount::Items(items),
            replicas: Some(subscription.spec.replicas),
        },
        config_hash,
    )?;
    deployment.spec.strategy = Some(DeploymentStrategy {
        type_: Some(rollout_strategy(effective.plan.ordered_per_subject).to_owned()),
        rolling_update: None,
    });
    Ok(deployment)
}

/// The forwarder Deployment's `spec.strategy.type`. Ordered delivery is
/// `Recreate`: one pod at a time during a rollout too (a surge pod, or a new
/// pod beside an old one still draining, would deliver a subject's events
/// out of order). Always set, never left to the API server's default: the
/// operator then owns the field, so turning ordering off again takes it
/// back to `RollingUpdate` (an omitted field would keep whatever other
/// writer last set it).
pub fn rollout_strategy(ordered_per_subject: bool) -> &'static str {
    if ordered_per_subject {
        "Recreate"
    } else {
        "RollingUpdate"
    }
}

/// Where a destination URL leads, for the NetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationReach {
    /// A Service of the cluster (`<service>.<namespace>.svc`): its
    /// namespace.
    Service {
        /// The Service's namespace.
        namespace: String,
    },
    /// The pod itself (a sidecar): loopback is not subject to policies.
    Pod,
    /// Anywhere else, over HTTPS on `port`.
    Address {
        /// The URL's port, or 443.
        port: u16,
    },
}

/// Where `url` (a destination [`Plan::resolve`] accepted) leads.
pub fn destination_reach(url: &str) -> DestinationReach {
    let uri: Option<http::Uri> = url.parse().ok();
    let host = uri
        .as_ref()
        .and_then(|u| u.host())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]" | "::1") {
        return DestinationReach::Pod;
    }
    let service = host
        .strip_suffix(".svc.cluster.local")
        .or_else(|| host.strip_suffix(".svc"));
    if let Some(namespace) = service.and_then(|name| name.rsplit('.').next())
        && !namespace.is_empty()
        && service.is_some_and(|name| name.contains('.'))
    {
        return DestinationReach::Service {
            namespace: namespace.to_owned(),
        };
    }
    DestinationReach::Address {
        port: uri.as_ref().and_then(|u| u.port_u16()).unwrap_or(443),
    }
}

/// The NetworkPolicy of the forwarder pods.
///
/// Ingress: the metrics port only, from pods of the subscription's
/// namespace (probes come from the kubelet, which policies do not filter).
/// Egress: DNS, the NATS ports (every server of a cluster), and the destination: for a Service URL, any
/// port of pods in the Service's namespace (a policy sees the pod's port
/// after the Service's translation, which the URL's port does not tell);
/// for an HTTPS URL elsewhere, its port on any address but the link-local
/// ranges (the cloud metadata service); nothing for `localhost`; with
/// traces passed on, the OTLP endpoint's port.
pub fn network_policy(owner: &Owner, effective: &Effective, settings: &Settings) -> NetworkPolicy {
    // Every server of a NATS cluster (`nats://a:4222,nats://b:4222`).
    let mut egress = vec![dns_egress(), nats_egress(&effective.nats_url)];
    match destination_reach(&effective.plan.destination.url) {
        DestinationReach::Service { namespace } => egress.push(NetworkPolicyEgressRule {
            to: Some(vec![namespace_peer(&namespace)]),
            ports: None,
        }),
        DestinationReach::Address { port } => egress.push(NetworkPolicyEgressRule {
            to: Some(vec![
                ip_block("0.0.0.0/0", &["169.254.0.0/16"]),
                ip_block("::/0", &["fe80::/10"]),
            ]),
            ports: Some(vec![policy_port("TCP", i32::from(port))]),
        }),
        DestinationReach::Pod => {}
    }
    egress.extend(otlp_egress(&settings.workload_env));
    network_policy_for(owner, vec![metrics_ingress()], egress)
}

/// At most one forwarder down in a drain, or `None` for fewer than two (a
/// budget for one pod would block node drains forever).
pub fn pod_disruption_budget(
    subscription: &WebhookSubscription,
    owner: &Owner,
) -> Option<PodDisruptionBudget> {
    (subscription.spec.replicas > 1).then(|| pod_disruption_budget_for(owner))
}

/// A new Standard Webhooks signing secret: `whsec_` and the base64 of 32
/// bytes from the thread-local CSPRNG (ChaCha, seeded by the OS), the form
/// every Standard Webhooks library reads.
pub fn random_signing_secret() -> String {
    use base64::Engine;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    )
}

/// The generated signing Secret holding `value`, owned by the subscription.
///
/// Like an endpoint's generated secret it carries no `managed-by` label:
/// the destination has been given its value, so the operator creates it
/// once and never re-applies or prunes it; it goes with the subscription.
pub fn signing_secret(owner: &Owner, value: &str) -> Secret {
    given_secret(
        owner,
        signing_secret_name(owner.name()),
        SIGNING_SECRET_KEY,
        value,
    )
}

/// Everything the operator applies for one subscription (the generated
/// signing Secret apart: it is created once, never applied).
pub struct ForwarderChildren {
    /// The rendered forwarder configuration, mounted into the pods.
    pub secret: Secret,
    /// The forwarder pods.
    pub deployment: Deployment,
    /// Whom the forwarders may reach.
    pub network_policy: NetworkPolicy,
    /// With more than one replica.
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
}

impl std::fmt::Debug for ForwarderChildren {
    // The Secret's data holds secret values: name the objects only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwarderChildren")
            .field("secret", &self.secret.metadata.name)
            .field("deployment", &self.deployment.metadata.name)
            .field("network_policy", &self.network_policy.metadata.name)
            .field(
                "pod_disruption_budget",
                &self.pod_disruption_budget.is_some(),
            )
            .finish()
    }
}

/// Builds every child of `subscription` from its resolution and the values
/// of the Secret keys it references.
pub fn build(
    subscription: &WebhookSubscription,
    effective: &Effective,
    secrets: &ResolvedSecrets,
    settings: &Settings,
) -> Result<ForwarderChildren, BuildError> {
    let owner = Owner::of_subscription(subscription)?;
    let secret = config_secret(subscription, &owner, effective, secrets)?;
    let hash = super::config_hash(&secret);
    Ok(ForwarderChildren {
        deployment: deployment(subscription, &owner, effective, settings, &hash)?,
        network_policy: network_policy(&owner, effective, settings),
        pod_disruption_budget: pod_disruption_budget(subscription, &owner),
        secret,
    })
}

/// What a rendered configuration Secret says was deployed: where the
/// durable consumer lives and how to reach it. Read back to remove the
/// consumer when the subscription is deleted or moves to another stream.
#[derive(Clone)]
pub struct Deployed {
    /// The plan of the rendered subscription.
    pub plan: Plan,
    /// The NATS server the forwarders were given.
    pub nats_url: String,
    /// The credentials they were given, and their reference (for errors).
    pub credentials: Option<(SecretKeyRef, hookwarden_core::secrets::Secret)>,
}

impl std::fmt::Debug for Deployed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployed")
            .field("stream", &self.plan.stream)
            .field("durable", &self.plan.durable)
            .field(
                "nats_url",
                &hookwarden_core::redact::redact_url(&self.nats_url),
            )
            .field("credentials", &self.credentials.as_ref().map(|(r, _)| r))
            .finish()
    }
}

impl Deployed {
    /// Reads `secret` (a rendered configuration Secret); `None` when it is
    /// not one this operator could have written.
    pub fn of(secret: &Secret) -> Option<Self> {
        let data = secret.data.as_ref()?;
        let manifest = std::str::from_utf8(&data.get(SUBSCRIPTION_FILE)?.0).ok()?;
        let rendered = hookwarden_crds::subscription_from_yaml(manifest).ok()?;
        let plan = Plan::resolve(&rendered, None).ok()?;
        let nats_url = String::from_utf8(data.get(NATS_URL_KEY)?.0.clone()).ok()?;
        let credentials = rendered
            .spec
            .nats
            .and_then(|nats| nats.credentials_secret_ref)
            .and_then(|reference| {
                let value = data.get(&secret_data_key(&reference.name, &reference.key))?;
                Some((
                    reference,
                    hookwarden_core::secrets::Secret::from(value.0.clone()),
                ))
            });
        Some(Self {
            plan,
            nats_url,
            credentials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn subscription(name: &str) -> WebhookSubscription {
        let yaml = match name {
            "to-billing" => include_str!("testdata/subscription.yaml"),
            "from-stream" => include_str!("testdata/subscription-stream.yaml"),
            other => panic!("no fixture {other}"),
        };
        hookwarden_crds::subscription_from_yaml(yaml)
            .expect("fixture parses")
            .into()
    }

    fn effective(subscription: &WebhookSubscription) -> Effective {
        let endpoint = endpoint("github");
        Effective::resolve(subscription, Some(&endpoint), &settings()).expect("resolves")
    }

    fn secrets(effective: &Effective) -> ResolvedSecrets {
        let mut secrets = ResolvedSecrets::default();
        for (name, key) in effective.referenced_secrets() {
            secrets.insert(&name, &key, format!("{name}/{key}-value").into_bytes());
        }
        secrets
    }

    fn children(subscription: &WebhookSubscription) -> ForwarderChildren {
        let effective = effective(subscription);
        build(subscription, &effective, &secrets(&effective), &settings()).expect("builds")
    }

    fn children_of(subscription: &WebhookSubscription) -> ForwarderChildren {
        children(subscription)
    }

    fn data(secret: &Secret) -> BTreeMap<String, String> {
        secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
            .collect()
    }

    #[test]
    fn an_endpoint_source_takes_the_endpoints_stream_nats_and_credentials() {
        let mut endpoint = endpoint("github");
        endpoint.spec.nats.url = Some("nats://nats.ci.svc:4333".to_owned());
        endpoint.spec.nats.credentials_secret_ref = Some(SecretKeyRef {
            name: "ci-nats".to_owned(),
            key: "user.creds".to_owned(),
        });
        let sub = subscription("to-billing");
        let effective = Effective::resolve(&sub, Some(&endpoint), &settings()).expect("resolves");
        assert_eq!(effective.plan.stream, "HOOKWARDEN_CI_GITHUB");
        assert_eq!(effective.nats_url, "nats://nats.ci.svc:4333");
        assert!(!effective.default_nats);
        assert_eq!(
            effective.credentials.as_ref().map(|c| c.name.as_str()),
            Some("ci-nats")
        );
        assert!(effective.signing_generated);
        assert_eq!(effective.signing.name, "to-billing-signing");
        assert_eq!(effective.signing.key, "secret");

        // Its own NATS URL: the endpoint's credentials are not for it.
        let mut own = sub.clone();
        own.spec.nats = Some(SubscriptionNatsSpec {
            url: Some("nats://other.nats.svc:4222".to_owned()),
            credentials_secret_ref: None,
        });
        let effective = Effective::resolve(&own, Some(&endpoint), &settings()).expect("resolves");
        assert_eq!(effective.nats_url, "nats://other.nats.svc:4222");
        assert_eq!(effective.credentials, None);

        // Without any: the operator's NATS.
        let plain = endpoint_github();
        let effective = Effective::resolve(&sub, Some(&plain), &settings()).expect("resolves");
        assert_eq!(effective.nats_url, "nats://nats.nats.svc:4222");
        assert!(effective.default_nats);
        assert_eq!(effective.credentials, None);
    }

    fn endpoint_github() -> WebhookEndpoint {
        endpoint("github")
    }

    #[test]
    fn a_missing_endpoint_is_a_plan_error() {
        let sub = subscription("to-billing");
        assert_eq!(
            Effective::resolve(&sub, None, &settings()),
            Err(PlanError::EndpointMissing("github".to_owned()))
        );
    }

    #[test]
    fn the_rendered_subscription_resolves_to_the_same_plan_without_the_endpoint() {
        for name in ["to-billing", "from-stream"] {
            let sub = subscription(name);
            let effective = effective(&sub);
            let children = children(&sub);
            let data = data(&children.secret);
            let rendered = hookwarden_crds::subscription_from_yaml(&data[SUBSCRIPTION_FILE])
                .expect("the forwarder parses it");
            assert_eq!(rendered.spec.source.endpoint, None, "{name}");
            assert_eq!(
                Plan::resolve(&rendered, None).as_ref(),
                Ok(&effective.plan),
                "{name}: the forwarder's plan is the operator's"
            );
            assert_eq!(
                rendered.spec.signing.and_then(|s| s.secret_ref).as_ref(),
                Some(&effective.signing)
            );
            assert!(rendered.spec.nats.iter().all(|n| n.url.is_none()));
            assert_eq!(rendered.metadata.uid, None, "no server-side metadata");
        }
    }

    #[test]
    fn the_config_secret_holds_the_manifest_the_url_and_each_referenced_key() {
        let sub = subscription("to-billing");
        let children = children(&sub);
        let secret = &children.secret;
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some("to-billing-forwarder")
        );
        let data = data(secret);
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "nats-url",
                "secret.billing-ca_ca.crt",
                "secret.to-billing-signing_secret",
                "subscription.yaml",
            ]
        );
        assert_eq!(data["nats-url"], "nats://nats.nats.svc:4222");
        assert_eq!(
            data["secret.to-billing-signing_secret"],
            "to-billing-signing/secret-value"
        );
        assert!(!data[SUBSCRIPTION_FILE].contains("-value"));
        // Scaling does not roll the pods.
        let mut scaled = sub.clone();
        scaled.spec.replicas = 5;
        assert_eq!(
            super::super::config_hash(&children.secret),
            super::super::config_hash(&children_of(&scaled).secret)
        );
        let debug = format!("{children:?}");
        assert!(!debug.contains("-value"), "{debug}");
    }

    #[test]
    fn the_deployment_runs_forward_hardened_like_the_receivers() {
        let sub = subscription("to-billing");
        let children = children(&sub);
        let expected: serde_json::Value =
            serde_yaml_ng::from_str(include_str!("testdata/forwarder-deployment.yaml"))
                .expect("expected YAML");
        let json = serde_json::to_value(&children.deployment).expect("serializes");
        let mut spec = json["spec"].clone();
        // The hash is checked below; the fixture does not pin it.
        spec["template"]["metadata"]["annotations"][pod::CONFIG_HASH_ANNOTATION] = "HASH".into();
        assert_eq!(spec, expected["spec"]);
        assert_eq!(json["metadata"], expected["metadata"]);
        assert_eq!(
            json["spec"]["template"]["metadata"]["annotations"][pod::CONFIG_HASH_ANNOTATION],
            super::super::config_hash(&children.secret)
        );
        // Every mounted item names a key the rendered Secret has.
        let data = data(&children.secret);
        for item in spec["template"]["spec"]["volumes"][0]["secret"]["items"]
            .as_array()
            .expect("items")
        {
            let key = item["key"].as_str().expect("key");
            assert!(data.contains_key(key), "{key}");
        }
    }

    #[test]
    fn a_nats_url_with_credentials_reaches_the_forwarders_only_through_the_secret() {
        let mut sub = subscription("from-stream");
        sub.spec.nats = Some(SubscriptionNatsSpec {
            url: Some("nats://app:hunter2@nats.ci.svc:4222".to_owned()),
            credentials_secret_ref: None,
        });
        let children = children(&sub);
        let deployment = serde_json::to_string(&children.deployment).expect("serializes");
        assert!(!deployment.contains("hunter2"), "{deployment}");
        let json = serde_json::to_value(&children.deployment).expect("serializes");
        let container = &json["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["env"],
            serde_json::json!([{"name": "HOOKWARDEN_NATS_URL", "valueFrom": {"secretKeyRef": {
                "name": "orders-forwarder", "key": "nats-url"}}}])
        );
        assert_eq!(
            data(&children.secret)["nats-url"],
            "nats://app:hunter2@nats.ci.svc:4222"
        );
    }

    #[test]
    fn network_policy_lets_out_dns_nats_and_the_destination_only() {
        let sub = subscription("to-billing");
        let children = children(&sub);
        let json = serde_json::to_value(&children.network_policy).expect("serializes");
        let expected: serde_json::Value = serde_yaml_ng::from_str(
            r#"
podSelector:
  matchLabels:
    app.kubernetes.io/name: hookwarden-forwarder
    app.kubernetes.io/instance: to-billing
policyTypes: [Ingress, Egress]
ingress:
  - from: [{podSelector: {}}]
    ports: [{protocol: TCP, port: 9090}]
egress:
  - ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
  - ports: [{protocol: TCP, port: 4222}]
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: billing}}}]
"#,
        )
        .expect("expected YAML");
        assert_eq!(json["spec"], expected);

        let https = subscription("from-stream");
        let json = serde_json::to_value(&children_of(&https).network_policy).expect("serializes");
        assert_eq!(
            json["spec"]["egress"][2],
            serde_json::json!({
                "to": [
                    {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}},
                    {"ipBlock": {"cidr": "::/0", "except": ["fe80::/10"]}},
                ],
                "ports": [{"protocol": "TCP", "port": 8443}],
            })
        );
    }

    #[test]
    fn destinations_are_reached_by_namespace_port_or_not_at_all() {
        for (url, reach) in [
            (
                "http://billing.shop.svc:8080/hooks",
                DestinationReach::Service {
                    namespace: "shop".to_owned(),
                },
            ),
            (
                "https://api.sub.shop.svc.cluster.local/x",
                DestinationReach::Service {
                    namespace: "shop".to_owned(),
                },
            ),
            ("http://localhost:3000/", DestinationReach::Pod),
            ("http://[::1]:3000/", DestinationReach::Pod),
            (
                "https://hooks.example.com/in",
                DestinationReach::Address { port: 443 },
            ),
            (
                "https://10.0.0.1:8443/",
                DestinationReach::Address { port: 8443 },
            ),
            // Not a Service name: a bare `svc` host.
            ("https://svc/", DestinationReach::Address { port: 443 }),
        ] {
            assert_eq!(destination_reach(url), reach, "{url}");
        }
    }

    #[test]
    fn ordered_delivery_never_runs_two_pods_even_in_a_rollout() {
        let mut sub = subscription("to-billing");
        let strategy = |sub: &WebhookSubscription| {
            children(sub)
                .deployment
                .spec
                .strategy
                .and_then(|strategy| strategy.type_)
        };
        assert_eq!(strategy(&sub).as_deref(), Some("RollingUpdate"));
        sub.spec
            .delivery
            .get_or_insert_default()
            .ordered_per_subject = true;
        assert_eq!(strategy(&sub).as_deref(), Some("Recreate"));
    }

    #[test]
    fn a_budget_only_for_more_than_one_replica() {
        let mut sub = subscription("to-billing");
        let owner = Owner::of_subscription(&sub).expect("owner");
        assert!(pod_disruption_budget(&sub, &owner).is_none());
        sub.spec.replicas = 2;
        let pdb = pod_disruption_budget(&sub, &owner).expect("two replicas");
        let json = serde_json::to_value(&pdb).expect("serializes");
        assert_eq!(json["metadata"]["name"], "to-billing-forwarder");
        assert_eq!(json["spec"]["maxUnavailable"], 1);
        assert_eq!(
            json["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
            "hookwarden-forwarder"
        );
    }

    #[test]
    fn the_generated_signing_secret_is_a_standard_webhooks_secret() {
        let first = random_signing_secret();
        let key = hookwarden_core::verify::standard_webhooks::decode_secret(first.as_bytes())
            .expect("base64");
        assert!(first.starts_with("whsec_"), "{first}");
        assert_eq!(key.len(), 32);
        assert_ne!(first, random_signing_secret());
        let sub = subscription("to-billing");
        let owner = Owner::of_subscription(&sub).expect("owner");
        let secret = signing_secret(&owner, &first);
        assert_eq!(secret.metadata.name.as_deref(), Some("to-billing-signing"));
        let owners = secret.metadata.owner_references.unwrap_or_default();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "WebhookSubscription");
        assert_eq!(owners[0].controller, Some(true));
        let labels = secret.metadata.labels.unwrap_or_default();
        assert!(!labels.contains_key("app.kubernetes.io/managed-by"));
        assert_eq!(
            secret.string_data.unwrap_or_default().get("secret"),
            Some(&first)
        );
    }

    #[test]
    fn every_child_is_owned_by_the_subscription() {
        let mut sub = subscription("to-billing");
        sub.spec.replicas = 2;
        let children = children(&sub);
        for meta in [
            &children.secret.metadata,
            &children.deployment.metadata,
            &children.network_policy.metadata,
            &children
                .pod_disruption_budget
                .as_ref()
                .expect("pdb")
                .metadata,
        ] {
            assert_eq!(meta.name.as_deref(), Some("to-billing-forwarder"));
            assert_eq!(meta.namespace.as_deref(), Some("ci"));
            assert_eq!(
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get("app.kubernetes.io/managed-by"))
                    .map(String::as_str),
                Some("hookwarden-operator")
            );
            let owners = meta.owner_references.as_deref().unwrap_or_default();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].kind, "WebhookSubscription");
            assert_eq!(owners[0].name, "to-billing");
            assert_eq!(owners[0].uid, "5d1c9a57-2f2b-4c61-8f0e-6a3f0d7c2b10");
            assert_eq!(owners[0].controller, Some(true));
            assert_eq!(owners[0].block_owner_deletion, Some(true));
        }
    }

    #[test]
    fn the_deployed_record_reads_back_where_the_consumer_lives() {
        let mut endpoint = endpoint("github");
        endpoint.spec.nats.credentials_secret_ref = Some(SecretKeyRef {
            name: "ci-nats".to_owned(),
            key: "user.creds".to_owned(),
        });
        let sub = subscription("to-billing");
        let effective = Effective::resolve(&sub, Some(&endpoint), &settings()).expect("resolves");
        let children = build(&sub, &effective, &secrets(&effective), &settings()).expect("builds");
        let deployed = Deployed::of(&children.secret).expect("a rendered Secret");
        assert_eq!(deployed.plan, effective.plan);
        assert_eq!(deployed.nats_url, "nats://nats.nats.svc:4222");
        let (reference, value) = deployed.credentials.as_ref().expect("credentials");
        assert_eq!(reference.name, "ci-nats");
        assert_eq!(value.expose(), b"ci-nats/user.creds-value");
        let debug = format!("{deployed:?}");
        assert!(!debug.contains("-value"), "{debug}");
        assert!(Deployed::of(&Secret::default()).is_none());
    }
}
