//! Pure builders: a `WebhookEndpoint` plus the values of the Secrets it
//! references become the objects that run its receiver.
//!
//! Nothing here does I/O, so every object the operator applies is checked by
//! unit tests from YAML fixtures, and the reconciler only has to fetch, apply
//! and report.
//!
//! Objects are k8s-openapi's typed structs, built directly, so a misspelt
//! field is a compile error rather than a field dropped when JSON is read
//! into the type. JSON remains for cert-manager's Certificate (no Rust
//! type: the operator must run without cert-manager) and in `pool.rs`.
//! An endpoint's children are built from what validation found
//! ([`ValidEndpoint`]: its name, namespace and TLS source), not by checking
//! its spec again.

mod deployment;
pub mod forwarder;
mod ingress;
mod pod;
mod policy;
pub mod pool;
pub mod pool_members;
mod secret;
mod service;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};

use hookwarden_crds::{WebhookEndpoint, WebhookEndpointSpec};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::DynamicObject;
use kube::{Resource, ResourceExt};

use validate::{ValidEndpoint, ValidateError};

pub use deployment::deployment;
pub use ingress::{
    CERT_MANAGER_GROUP, CERTIFICATE_CRD, Route, TlsSource, certificate, certificate_of,
    certificate_resource, ingress, ingress_of, issued_secret_name, public_url,
};
pub use pod::{CONFIG_DIR, CONFIG_HASH_ANNOTATION, POOL_DIR, RECEIVER_USER};
pub use policy::{
    autoscaler, autoscaler_of, desired_replicas, fetches_keys, nats_ports, network_policy,
    network_policy_of, pod_disruption_budget, pod_disruption_budget_of,
};
pub use secret::{
    ENDPOINT_FILE, GENERATED_SECRET_KEY, config_hash, config_secret, effective_endpoint,
    generated_secret, generated_secret_name, random_secret, secret_data_key,
};
pub use service::service;

/// The port the receiver serves webhooks on inside the pod.
pub const HTTP_PORT: i32 = 8080;
/// The port of the receiver's `/healthz`, `/readyz` and `/metrics`.
pub const METRICS_PORT: i32 = 9090;
/// `app.kubernetes.io/managed-by` of every child, so the operator can watch
/// only its own objects.
pub const MANAGED_BY: &str = "hookwarden-operator";
/// The label selector that matches every child the operator manages.
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=hookwarden-operator";

/// Operator-wide settings that are not part of an endpoint's spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The receiver image every Deployment runs; one operator version ships
    /// with the receiver version it was tested with.
    pub receiver_image: String,
    /// The NATS URL for endpoints that do not set `spec.nats.url`.
    pub nats_url: String,
    /// The trusted proxies (CIDRs) of endpoints that list none: the ingress
    /// controller's pod network, set once per cluster. Receivers run behind
    /// an ingress and refuse (403 `https_required`) every request that no
    /// trusted proxy reports as HTTPS, so without this every endpoint would
    /// have to repeat its cluster's pod CIDR.
    pub default_trusted_proxies: Vec<String>,
    /// The forwarding headers of endpoints that set no
    /// `spec.forwardedHeaders`: what the cluster's ingress controller writes.
    pub default_forwarded_headers: hookwarden_crds::ForwardedHeaders,
    /// The IngressClass of endpoints whose `spec.ingress` names none;
    /// `None`: the cluster's default IngressClass.
    pub default_ingress_class: Option<String>,
    /// The cert-manager issuer of endpoints with `spec.ingress` and no
    /// `spec.tls` at all: they get a Certificate from it as if they named it
    /// in `spec.tls.issuerRef`. `None`: such endpoints are served over
    /// plain HTTP by the Ingress.
    pub default_issuer: Option<hookwarden_crds::IssuerRef>,
    /// Environment variables (name, value) set on every receiver and
    /// forwarder container: the tracing variables the operator passes on
    /// (`--workload-tracing-env`), so its workloads export where it does.
    pub workload_env: Vec<(String, String)>,
}

impl Settings {
    /// The NATS URL the receivers of `endpoint` connect to: its own
    /// `spec.nats.url`, else the operator's.
    pub fn nats_url<'a>(&'a self, endpoint: &'a WebhookEndpoint) -> &'a str {
        endpoint.spec.nats.url.as_deref().unwrap_or(&self.nats_url)
    }

    /// The TLS of an endpoint with `spec.ingress` and no `spec.tls`: a
    /// Certificate from the default issuer, if the operator has one.
    pub fn default_tls(&self) -> Option<TlsSource> {
        self.default_issuer.clone().map(TlsSource::Issuer)
    }
}

/// The key of the rendered Secret that holds the NATS URL when it carries
/// credentials: then the receiver reads it from the environment, filled
/// from this key, instead of from its arguments, which anyone who may read
/// Deployments (or Pods) sees.
pub const NATS_URL_KEY: &str = "nats-url";

/// Whether `url` names a user, password or token for any of its servers.
pub fn url_has_credentials(url: &str) -> bool {
    hookwarden_core::redact::redact_url(url) != url
}

/// A referenced Secret key: `(secret name, key)`.
pub type SecretKey = (String, String);

/// The values of the referenced Secret keys, read from the API.
///
/// `Debug` prints the keys only: this value travels through code that logs,
/// and secret values must never reach a log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ResolvedSecrets(BTreeMap<SecretKey, Vec<u8>>);

impl ResolvedSecrets {
    /// Records the value of `key` in Secret `name`, and keeps it out of
    /// every log line from now on, whoever writes it.
    pub fn insert(&mut self, name: &str, key: &str, value: Vec<u8>) {
        hookwarden_core::logging::register_secret(&value);
        self.0.insert((name.to_owned(), key.to_owned()), value);
    }

    /// The value of `key` in Secret `name`, if it was resolved.
    pub fn get(&self, name: &str, key: &str) -> Option<&[u8]> {
        self.0
            .get(&(name.to_owned(), key.to_owned()))
            .map(Vec::as_slice)
    }
}

impl std::fmt::Debug for ResolvedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.0.keys().map(|(name, key)| format!("{name}/{key}")))
            .finish()
    }
}

/// Every Secret key the spec references, each once: the top-level
/// `secretRefs`, those of the generic checks (which default to the
/// top-level ones, so both sets are always rendered), the verify tokens of
/// handshakes and the NATS credentials. Each is resolved, rendered into the
/// configuration Secret and mounted at `secrets/<name>/<key>`, where the
/// receiver reads it.
pub fn referenced_secrets(spec: &WebhookEndpointSpec) -> BTreeSet<SecretKey> {
    let mut refs: Vec<&hookwarden_crds::SecretKeyRef> = spec.secret_refs.iter().collect();
    refs.extend(&spec.nats.credentials_secret_ref);
    if let Some(verification) = &spec.verification {
        if let Some(token) = &verification.token {
            refs.extend(&token.secret_refs);
        }
        if let Some(basic) = &verification.basic_auth {
            refs.extend(&basic.secret_refs);
        }
        if let Some(hmac) = &verification.hmac {
            refs.extend(&hmac.secret_refs);
        }
    }
    if let Some(handshake) = &spec.handshake {
        refs.extend(&handshake.verify_token_refs);
    }
    refs.into_iter()
        .map(|r| (r.name.clone(), r.key.clone()))
        .collect()
}

/// Why the children of an endpoint could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The endpoint has `allowedSources` but no fetched ranges were given.
    #[error("spec.allowedSources has no fetched ranges to render")]
    SourceRangesMissing,
    /// Only namespaced objects read from the API server can own children.
    #[error("the object has no namespace")]
    MissingNamespace,
    /// An owner reference needs the endpoint's uid.
    #[error("the object has no uid (was it read from the API server?)")]
    MissingUid,
    /// A referenced key was not resolved (the resolver and the builder disagree).
    #[error("the value of key {key:?} of Secret {name:?} was not resolved")]
    Unresolved {
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
    },
    /// Secret keys are at most 253 characters; the rendered key combines the
    /// Secret's name and key.
    #[error(
        "Secret {name:?} key {key:?}: the names together are too long to render (at most {max} characters)"
    )]
    KeyTooLong {
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
        /// The longest rendered key the API server accepts.
        max: usize,
    },
    /// The endpoint manifest could not be written as YAML.
    #[error("rendering endpoint.yaml: {0}")]
    Manifest(#[from] serde_yaml_ng::Error),
    /// The endpoint is invalid ([`build`] validates it first).
    #[error(transparent)]
    Invalid(#[from] ValidateError),
    /// A child object did not fit its Kubernetes type.
    #[error("building the {kind}: {source}")]
    Object {
        /// The child's kind.
        kind: &'static str,
        /// What did not fit.
        source: serde_json::Error,
    },
}

/// Everything the operator applies for one endpoint.
pub struct Children {
    /// The rendered receiver configuration, mounted into the pods.
    pub secret: Secret,
    /// The receiver pods.
    pub deployment: Deployment,
    /// The in-cluster address of the receivers.
    pub service: Service,
    /// Who may reach the receivers and whom they may reach.
    pub network_policy: NetworkPolicy,
    /// The public route, when `spec.ingress` is set.
    pub ingress: Option<Ingress>,
    /// The cert-manager Certificate, when `spec.tls.issuerRef` is set (or
    /// the default issuer fills it in).
    pub certificate: Option<DynamicObject>,
    /// At most one receiver down in a drain, when more than one runs.
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
    /// CPU-based scaling, when `spec.autoscaling` is set.
    pub autoscaler: Option<HorizontalPodAutoscaler>,
}

impl std::fmt::Debug for Children {
    // The Secret's data holds secret values: name the objects only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Children")
            .field("secret", &self.secret.metadata.name)
            .field("deployment", &self.deployment.metadata.name)
            .field("service", &self.service.metadata.name)
            .field("network_policy", &self.network_policy.metadata.name)
            .field("ingress", &self.ingress.is_some())
            .field("certificate", &self.certificate.is_some())
            .field(
                "pod_disruption_budget",
                &self.pod_disruption_budget.is_some(),
            )
            .field("autoscaler", &self.autoscaler.is_some())
            .finish()
    }
}

/// Validates `endpoint` ([`ValidEndpoint::check`]) and builds every child
/// of it as it is (no operator defaults, no `allowedSources`), as
/// [`build_with_ranges`]: for tests and tools that start from a manifest.
pub fn build(
    endpoint: &WebhookEndpoint,
    secrets: &ResolvedSecrets,
    settings: &Settings,
) -> Result<Children, BuildError> {
    let valid = ValidEndpoint::check(endpoint)?;
    build_with_ranges(&valid, endpoint, secrets, settings, &[])
}

/// Builds every child of the endpoint `valid`; the optional ones are
/// `None` when the spec does not ask for them (and the reconciler deletes
/// them). `effective` is its endpoint with the operator's defaults
/// ([`effective_endpoint`]); `ranges` the fetched ranges of its
/// `allowedSources` (required when it has any), written into the rendered
/// manifest's `allowedSourceCidrs` ([`with_source_ranges`]). Names, the
/// namespace and the TLS source are those validation found.
///
/// The config hash that rolls the pods is of the configuration *without*
/// the fetched ranges: a provider's changed list reaches the running
/// receivers through their hot reload of the mounted Secret, without
/// restarting every receiver of every endpoint that uses the list.
pub fn build_with_ranges(
    valid: &ValidEndpoint<'_>,
    effective: &WebhookEndpoint,
    secrets: &ResolvedSecrets,
    settings: &Settings,
    ranges: &[String],
) -> Result<Children, BuildError> {
    if !effective.spec.allowed_sources.is_empty() && ranges.is_empty() {
        // Rendering without them would lift the restriction.
        return Err(BuildError::SourceRangesMissing);
    }
    let owner = Owner::of_valid(valid)?;
    let hash = config_hash(&config_secret(effective, &owner, secrets, settings)?);
    let rendered = with_source_ranges(effective, ranges);
    let secret = config_secret(&rendered, &owner, secrets, settings)?;
    let endpoint = &rendered;
    let deployment = deployment(endpoint, &owner, settings, &hash)?;
    let service = service(&owner)?;
    let route = valid.route(settings);
    let certificate = match &route {
        Some(route) => certificate_of(route, &owner)?,
        None => None,
    };
    Ok(Children {
        network_policy: network_policy(endpoint, &owner, settings)?,
        ingress: route
            .map(|route| ingress_of(&route, endpoint.spec.pool.as_deref(), &owner, settings)),
        certificate,
        pod_disruption_budget: pod_disruption_budget(endpoint, &owner)?,
        autoscaler: autoscaler(endpoint, &owner)?,
        secret,
        deployment,
        service,
    })
}

/// `endpoint` as its receivers must see it with the fetched `ranges` of
/// its `allowedSources`: those added to `allowedSourceCidrs` (after the
/// spec's own, without duplicates) and `allowedSources` removed, so the
/// receivers never fetch (their NetworkPolicy would not let them) and the
/// allowlist is concrete CIDRs. Without `allowedSources`, unchanged.
pub fn with_source_ranges(endpoint: &WebhookEndpoint, ranges: &[String]) -> WebhookEndpoint {
    let mut rendered = endpoint.clone();
    if rendered.spec.allowed_sources.is_empty() {
        return rendered;
    }
    rendered.spec.allowed_sources.clear();
    for range in ranges {
        if !rendered.spec.allowed_source_cidrs.contains(range) {
            rendered.spec.allowed_source_cidrs.push(range.clone());
        }
    }
    rendered
}

/// The name of every child of endpoint `endpoint_name`.
pub fn child_name(endpoint_name: &str) -> String {
    Component::Receiver.child_name(endpoint_name)
}

/// Which of the operator's workloads a child belongs to: it names the
/// children (`<name>-receiver`, `<name>-forwarder`) and their pods'
/// `app.kubernetes.io/name`, so an endpoint and a subscription of the same
/// name never select each other's pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// The receivers of a `WebhookEndpoint`.
    Receiver,
    /// The forwarders of a `WebhookSubscription`.
    Forwarder,
    /// The shared receivers of a `WebhookReceiverPool`.
    Pool,
}

impl Component {
    /// `receiver` or `forwarder`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receiver => "receiver",
            Self::Forwarder => "forwarder",
            Self::Pool => "pool",
        }
    }

    /// The name of every child of owner `owner_name`.
    pub fn child_name(self, owner_name: &str) -> String {
        format!("{owner_name}-{}", self.as_str())
    }

    /// The labels that select the pods of owner `owner_name`.
    pub fn selector_labels(self, owner_name: &str) -> BTreeMap<String, String> {
        [
            (
                "app.kubernetes.io/name",
                format!("hookwarden-{}", self.as_str()),
            ),
            ("app.kubernetes.io/instance", owner_name.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The labels of every child: the selector labels plus `managed-by`.
    pub fn labels(self, owner_name: &str) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels(owner_name);
        labels.insert(
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGED_BY.to_owned(),
        );
        labels
    }
}

/// What every child needs to know about the endpoint (or subscription) that
/// owns it.
#[derive(Clone, Debug)]
pub struct Owner {
    name: String,
    namespace: String,
    reference: OwnerReference,
    component: Component,
}

impl Owner {
    /// The owner data of `endpoint`; it must have been read from the API
    /// server (namespace and uid set).
    pub fn of(endpoint: &WebhookEndpoint) -> Result<Self, BuildError> {
        Self::of_object(endpoint, Component::Receiver)
    }

    /// The owner data of the endpoint `valid`, with the name and namespace
    /// validation found; it must have been read from the API server (uid
    /// set).
    pub fn of_valid(valid: &ValidEndpoint<'_>) -> Result<Self, BuildError> {
        Ok(Self {
            name: valid.name().to_owned(),
            namespace: valid.namespace().to_owned(),
            reference: controller_reference(valid.endpoint())?,
            component: Component::Receiver,
        })
    }

    /// The owner data of the forwarders' children of `subscription`.
    pub fn of_subscription(
        subscription: &hookwarden_crds::WebhookSubscription,
    ) -> Result<Self, BuildError> {
        Self::of_object(subscription, Component::Forwarder)
    }

    /// The owner data of the children of `pool`.
    pub fn of_pool(pool: &hookwarden_crds::WebhookReceiverPool) -> Result<Self, BuildError> {
        Self::of_object(pool, Component::Pool)
    }

    fn of_object<K: Resource<DynamicType = ()>>(
        object: &K,
        component: Component,
    ) -> Result<Self, BuildError> {
        let namespace = object.namespace().ok_or(BuildError::MissingNamespace)?;
        Ok(Self {
            name: object.name_any(),
            namespace,
            reference: controller_reference(object)?,
            component,
        })
    }

    /// The owner's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the owner's children.
    pub fn child_name(&self) -> String {
        self.component.child_name(&self.name)
    }

    /// The labels that select the owner's pods.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        self.component.selector_labels(&self.name)
    }

    /// The labels of the owner's children.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.component.labels(&self.name)
    }

    /// The metadata of each of the owner's children: its name, namespace,
    /// labels and the owner reference.
    pub fn metadata(&self) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.child_name()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: Some(vec![self.reference.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// [`Owner::metadata`] as JSON, for the pool's builders
    /// (resources/pool.rs), which still build their objects as JSON.
    fn child_metadata(&self) -> serde_json::Value {
        serde_json::json!(self.metadata())
    }
}

/// The reference of each child to `object`, its owner.
fn controller_reference<K: Resource<DynamicType = ()>>(
    object: &K,
) -> Result<OwnerReference, BuildError> {
    // controller=true and blockOwnerDeletion=true: the garbage collector
    // removes the children with their owner, and the Controller maps
    // child events back to it.
    let mut reference = object
        .controller_owner_ref(&())
        .ok_or(BuildError::MissingUid)?;
    // kube sets `controller` only; blocking keeps a foreground deletion of
    // the owner waiting until its children are gone.
    reference.block_owner_deletion = Some(true);
    Ok(reference)
}

/// A selector of exactly `labels`.
fn match_labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        match_expressions: None,
    }
}

/// The labels that select an endpoint's receiver pods.
pub fn selector_labels(endpoint_name: &str) -> BTreeMap<String, String> {
    Component::Receiver.selector_labels(endpoint_name)
}

/// The labels of every child: the selector labels plus `managed-by`.
pub fn labels(endpoint_name: &str) -> BTreeMap<String, String> {
    Component::Receiver.labels(endpoint_name)
}

/// `value` as a `T`: for the objects with no Rust type here (cert-manager's
/// Certificate) and the pool's builders, which still build JSON.
fn object<T: serde::de::DeserializeOwned>(
    kind: &'static str,
    value: serde_json::Value,
) -> Result<T, BuildError> {
    serde_json::from_value(value).map_err(|source| BuildError::Object { kind, source })
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// The fixture `testdata/<name>.yaml`.
    pub fn endpoint(name: &str) -> WebhookEndpoint {
        let yaml = match name {
            "github" => include_str!("testdata/github.yaml"),
            "generic-hmac" => include_str!("testdata/generic-hmac.yaml"),
            "exposed" => include_str!("testdata/exposed.yaml"),
            other => panic!("no fixture {other}"),
        };
        hookwarden_crds::from_yaml(yaml)
            .expect("fixture parses")
            .into()
    }

    /// Every referenced key of `endpoint`, with the value `<name>/<key>-value`.
    pub fn secrets_for(endpoint: &WebhookEndpoint) -> ResolvedSecrets {
        let mut secrets = ResolvedSecrets::default();
        for (name, key) in referenced_secrets(&endpoint.spec) {
            secrets.insert(&name, &key, format!("{name}/{key}-value").into_bytes());
        }
        secrets
    }

    pub fn settings() -> Settings {
        Settings {
            receiver_image: "ghcr.io/hookwarden/receiver:test".to_owned(),
            nats_url: "nats://nats.nats.svc:4222".to_owned(),
            default_trusted_proxies: Vec::new(),
            default_forwarded_headers: hookwarden_crds::ForwardedHeaders::XForwardedFor,
            default_ingress_class: None,
            default_issuer: None,
            workload_env: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn referenced_secrets_include_check_refs_once() {
        let refs = referenced_secrets(&endpoint("generic-hmac").spec);
        let refs: Vec<(&str, &str)> = refs.iter().map(|(n, k)| (n.as_str(), k.as_str())).collect();
        assert_eq!(refs, [("shop-hmac", "key.v1"), ("shop-token", "token")]);
    }

    #[test]
    fn referenced_secrets_include_handshake_verify_tokens() {
        let mut spec = endpoint("github").spec;
        spec.handshake = Some(hookwarden_crds::HandshakeSpec {
            publish: false,
            verify_token_refs: vec![hookwarden_crds::SecretKeyRef {
                name: "meta-app".to_owned(),
                key: "verify-token".to_owned(),
            }],
        });
        let refs = referenced_secrets(&spec);
        assert!(
            refs.contains(&("meta-app".to_owned(), "verify-token".to_owned())),
            "{refs:?}"
        );
    }

    #[test]
    fn debug_of_resolved_secrets_hides_values() {
        let mut secrets = ResolvedSecrets::default();
        secrets.insert("gh", "secret", b"hunter2-very-secret".to_vec());
        let debug = format!("{secrets:?}");
        assert!(debug.contains("gh/secret"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn every_child_is_owned_by_the_endpoint_as_controller() {
        let endpoint = endpoint("github");
        let children = build(&endpoint, &secrets_for(&endpoint), &settings()).expect("builds");
        let debug = format!("{children:?}");
        assert!(!debug.contains("-value"), "{debug}");
        let endpoint_exposed = endpoint_exposed();
        let exposed = build(
            &endpoint_exposed,
            &secrets_for(&endpoint_exposed),
            &settings(),
        )
        .expect("builds");
        let certificate = exposed.certificate.as_ref().expect("certificate");
        for (meta, endpoint) in [
            (&children.secret.metadata, "github"),
            (&children.deployment.metadata, "github"),
            (&children.service.metadata, "github"),
            (&children.network_policy.metadata, "github"),
            (
                &children
                    .pod_disruption_budget
                    .as_ref()
                    .expect("pdb")
                    .metadata,
                "github",
            ),
            (&exposed.ingress.as_ref().expect("ingress").metadata, "shop"),
            (&certificate.metadata, "shop"),
            (&exposed.autoscaler.as_ref().expect("hpa").metadata, "shop"),
        ] {
            if endpoint == "shop" {
                assert_eq!(meta.name.as_deref(), Some("shop-receiver"));
                assert_eq!(meta.labels.as_ref(), Some(&labels("shop")));
                let owners = meta.owner_references.as_deref().unwrap_or_default();
                assert_eq!(owners.len(), 1);
                assert_eq!(owners[0].name, "shop");
                assert_eq!(owners[0].controller, Some(true));
                continue;
            }
            assert_eq!(meta.name.as_deref(), Some("github-receiver"));
            assert_eq!(meta.namespace.as_deref(), Some("ci"));
            assert_eq!(meta.labels.as_ref(), Some(&labels("github")));
            let owners = meta.owner_references.as_deref().unwrap_or_default();
            assert_eq!(owners.len(), 1);
            let owner = &owners[0];
            assert_eq!(owner.api_version, "hookwarden.dev/v1alpha1");
            assert_eq!(owner.kind, "WebhookEndpoint");
            assert_eq!(owner.name, "github");
            assert_eq!(owner.uid, "0b7e0c1e-5f3a-4d7e-9a51-3c1f2f0e9a11");
            assert_eq!(owner.controller, Some(true));
            assert_eq!(owner.block_owner_deletion, Some(true));
        }
    }

    fn endpoint_exposed() -> WebhookEndpoint {
        endpoint("exposed")
    }

    #[test]
    fn an_endpoint_without_uid_or_namespace_cannot_own_children() {
        let mut endpoint = endpoint("github");
        endpoint.metadata.uid = None;
        let err = build(&endpoint, &secrets_for(&endpoint), &settings()).expect_err("no uid");
        assert!(matches!(err, BuildError::MissingUid), "{err}");
        endpoint.metadata.namespace = None;
        let err = build(&endpoint, &secrets_for(&endpoint), &settings()).expect_err("no ns");
        assert!(
            matches!(err, BuildError::Invalid(ValidateError::MissingNamespace)),
            "validation finds it: {err}"
        );
    }
}
