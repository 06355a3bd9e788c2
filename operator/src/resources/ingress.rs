//! The Ingress `<name>-receiver` that publishes the endpoint's host and path,
//! and the cert-manager `Certificate` that gives it TLS when an issuer is
//! referenced.
//!
//! TLS ends at the ingress controller: the receiver runs with
//! `--tls-mode behind-ingress` and learns the client's address and scheme
//! from the forwarded headers of the proxies in `spec.trustedProxies`
//! (the ingress controller's pod CIDR, which only the cluster's operator
//! knows; the operator does not guess it).

use hookwarden_crds::{IngressSpec, IssuerKind, IssuerRef, TlsSpec, WebhookEndpoint};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec as KubeIngressSpec, IngressTLS, ServiceBackendPort,
};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use super::{BuildError, Component, Owner, Settings, child_name, object};

/// The API group of cert-manager's resources.
pub const CERT_MANAGER_GROUP: &str = "cert-manager.io";
/// The CRD whose presence says cert-manager is installed.
pub const CERTIFICATE_CRD: &str = "certificates.cert-manager.io";

/// cert-manager's `Certificate` (`cert-manager.io/v1`), which has no Rust
/// type here: the operator must not depend on cert-manager being installed.
pub fn certificate_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        CERT_MANAGER_GROUP,
        "v1",
        "Certificate",
    ))
}

/// The TLS Secret cert-manager issues for endpoint `endpoint_name`.
pub fn issued_secret_name(endpoint_name: &str) -> String {
    format!("{endpoint_name}-tls")
}

/// Where the Ingress's certificate comes from: the one source `spec.tls`
/// names (validation refuses none or both).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSource {
    /// cert-manager issues `<name>-tls` from this issuer.
    Issuer(IssuerRef),
    /// The user's own TLS Secret.
    Secret(String),
}

impl TlsSource {
    /// The source `tls` names; `None` unless it names exactly one.
    pub fn of(tls: &TlsSpec) -> Option<Self> {
        match (&tls.issuer_ref, &tls.secret_name) {
            (Some(issuer), None) => Some(Self::Issuer(issuer.clone())),
            (None, Some(secret)) => Some(Self::Secret(secret.clone())),
            _ => None,
        }
    }

    /// The `spec.tls` that names this source.
    pub fn spec(&self) -> TlsSpec {
        match self {
            Self::Issuer(issuer) => TlsSpec {
                issuer_ref: Some(issuer.clone()),
                secret_name: None,
            },
            Self::Secret(name) => TlsSpec {
                issuer_ref: None,
                secret_name: Some(name.clone()),
            },
        }
    }

    /// The Secret the Ingress of endpoint `endpoint_name` serves: the
    /// issued one or the user's own.
    pub fn secret_name(&self, endpoint_name: &str) -> String {
        match self {
            Self::Issuer(_) => issued_secret_name(endpoint_name),
            Self::Secret(name) => name.clone(),
        }
    }
}

/// The public route of an endpoint: its `spec.ingress`, and where the
/// Ingress's certificate comes from (`None`: plain HTTP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route<'a> {
    /// `spec.ingress`.
    pub ingress: &'a IngressSpec,
    /// The TLS of the Ingress.
    pub tls: Option<TlsSource>,
}

impl<'a> Route<'a> {
    /// The route of `endpoint` as written, `None` without `spec.ingress`;
    /// a `spec.tls` that names no single source gives no TLS. For the
    /// builders' callers that hold no validated endpoint (a pool's
    /// members); the endpoint's own pass uses `ValidEndpoint::route`.
    pub fn of(endpoint: &'a WebhookEndpoint) -> Option<Self> {
        Some(Self {
            ingress: endpoint.spec.ingress.as_ref()?,
            tls: endpoint.spec.tls.as_ref().and_then(TlsSource::of),
        })
    }

    /// The public URL: `https` with TLS.
    pub fn url(&self) -> String {
        url(self.ingress, self.tls.is_some())
    }
}

/// The public URL of the endpoint, when it has an Ingress: `https` with TLS.
pub fn public_url(spec: &IngressSpec, tls: Option<&TlsSpec>) -> String {
    url(spec, tls.is_some())
}

fn url(spec: &IngressSpec, https: bool) -> String {
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{}{}", spec.host, spec.path)
}

/// The Ingress of `endpoint`, or `None` without `spec.ingress`
/// ([`ingress_of`] of its [`Route::of`]).
pub fn ingress(
    endpoint: &WebhookEndpoint,
    owner: &Owner,
    settings: &Settings,
) -> Result<Option<Ingress>, BuildError> {
    Ok(Route::of(endpoint)
        .map(|route| ingress_of(&route, endpoint.spec.pool.as_deref(), owner, settings)))
}

/// The Ingress of `route`, to the Service of `pool` when the endpoint is
/// pooled, else to its own. Its class is `spec.ingress.className`, else
/// the operator's default class, else none (the cluster's default
/// IngressClass).
pub fn ingress_of(
    route: &Route<'_>,
    pool: Option<&str>,
    owner: &Owner,
    settings: &Settings,
) -> Ingress {
    let spec = route.ingress;
    let mut metadata = owner.metadata();
    if !spec.annotations.is_empty() {
        metadata.annotations = Some(spec.annotations.clone());
    }
    let path = HTTPIngressPath {
        path: Some(spec.path.clone()),
        path_type: "Prefix".to_owned(),
        backend: IngressBackend {
            service: Some(IngressServiceBackend {
                // A pooled endpoint's route leads to its pool's Service.
                name: match pool {
                    Some(pool) => Component::Pool.child_name(pool),
                    None => child_name(&owner.name),
                },
                port: Some(ServiceBackendPort {
                    number: Some(80),
                    name: None,
                }),
            }),
            resource: None,
        },
    };
    let tls = route.tls.as_ref().map(|tls| {
        vec![IngressTLS {
            hosts: Some(vec![spec.host.clone()]),
            secret_name: Some(tls.secret_name(&owner.name)),
        }]
    });
    Ingress {
        metadata,
        spec: Some(KubeIngressSpec {
            ingress_class_name: spec
                .class_name
                .clone()
                .or_else(|| settings.default_ingress_class.clone()),
            rules: Some(vec![IngressRule {
                host: Some(spec.host.clone()),
                http: Some(HTTPIngressRuleValue { paths: vec![path] }),
            }]),
            tls,
            default_backend: None,
        }),
        status: None,
    }
}

/// The cert-manager Certificate of `endpoint`, or `None` unless both
/// `spec.ingress` and `spec.tls.issuerRef` are set ([`certificate_of`] of
/// its [`Route::of`]).
pub fn certificate(
    endpoint: &WebhookEndpoint,
    owner: &Owner,
) -> Result<Option<DynamicObject>, BuildError> {
    Route::of(endpoint).map_or(Ok(None), |route| certificate_of(&route, owner))
}

/// The cert-manager Certificate of `route`, or `None` unless its TLS comes
/// from an issuer.
pub fn certificate_of(
    route: &Route<'_>,
    owner: &Owner,
) -> Result<Option<DynamicObject>, BuildError> {
    let Some(TlsSource::Issuer(issuer)) = &route.tls else {
        return Ok(None);
    };
    let kind = match issuer.kind {
        IssuerKind::Issuer => "Issuer",
        IssuerKind::ClusterIssuer => "ClusterIssuer",
    };
    // JSON, not a typed struct: k8s-openapi has no cert-manager types, and
    // the operator must not depend on a crate of them (cert-manager may
    // not be installed).
    object(
        "Certificate",
        serde_json::json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": owner.metadata(),
            "spec": {
                "secretName": issued_secret_name(&owner.name),
                "dnsNames": [route.ingress.host],
                "issuerRef": {"name": issuer.name, "kind": kind, "group": CERT_MANAGER_GROUP},
            },
        }),
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn routes_the_host_and_path_to_the_service_with_the_issued_certificate() {
        let endpoint = endpoint("exposed");
        let owner = Owner::of(&endpoint).expect("owner");
        let ingress = ingress(&endpoint, &owner, &settings())
            .expect("builds")
            .expect("wanted");
        let json = serde_json::to_value(&ingress).expect("serializes");
        assert_eq!(json["metadata"]["name"], "shop-receiver");
        assert_eq!(
            json["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"],
            "2m"
        );
        assert_eq!(json["spec"]["ingressClassName"], "nginx");
        let rule = &json["spec"]["rules"][0];
        assert_eq!(rule["host"], "hooks.example.com");
        let path = &rule["http"]["paths"][0];
        assert_eq!(path["path"], "/shop");
        assert_eq!(path["pathType"], "Prefix");
        assert_eq!(path["backend"]["service"]["name"], "shop-receiver");
        assert_eq!(path["backend"]["service"]["port"]["number"], 80);
        assert_eq!(
            json["spec"]["tls"],
            serde_json::json!([{"hosts": ["hooks.example.com"], "secretName": "shop-tls"}])
        );
        assert_eq!(
            public_url(
                endpoint.spec.ingress.as_ref().expect("ingress"),
                endpoint.spec.tls.as_ref()
            ),
            "https://hooks.example.com/shop"
        );
    }

    #[test]
    fn the_default_ingress_class_applies_only_without_a_class_name() {
        let settings = Settings {
            default_ingress_class: Some("traefik".to_owned()),
            ..settings()
        };
        let class = |endpoint: &WebhookEndpoint, settings: &Settings| {
            let owner = Owner::of(endpoint).expect("owner");
            let ingress = ingress(endpoint, &owner, settings)
                .expect("builds")
                .expect("wanted");
            ingress.spec.and_then(|spec| spec.ingress_class_name)
        };
        let own = endpoint("exposed");
        assert_eq!(
            class(&own, &settings).as_deref(),
            Some("nginx"),
            "the endpoint's className wins"
        );
        let mut unnamed = endpoint("exposed");
        if let Some(spec) = unnamed.spec.ingress.as_mut() {
            spec.class_name = None;
        }
        assert_eq!(class(&unnamed, &settings).as_deref(), Some("traefik"));
        assert_eq!(
            class(&unnamed, &super::super::fixtures::settings()),
            None,
            "no default: the cluster's default IngressClass"
        );
        let github = endpoint("github");
        let owner = Owner::of(&github).expect("owner");
        assert!(
            ingress(&github, &owner, &settings)
                .expect("builds")
                .is_none(),
            "a default class asks for no Ingress"
        );
    }

    #[test]
    fn a_certificate_is_requested_from_the_referenced_issuer() {
        let endpoint = endpoint("exposed");
        let owner = Owner::of(&endpoint).expect("owner");
        let cert = certificate(&endpoint, &owner)
            .expect("builds")
            .expect("wanted");
        let json = serde_json::to_value(&cert).expect("serializes");
        assert_eq!(json["apiVersion"], "cert-manager.io/v1");
        assert_eq!(json["kind"], "Certificate");
        assert_eq!(json["metadata"]["ownerReferences"][0]["name"], "shop");
        assert_eq!(
            json["spec"],
            serde_json::json!({
                "secretName": "shop-tls",
                "dnsNames": ["hooks.example.com"],
                "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"},
            })
        );
    }

    #[test]
    fn an_existing_tls_secret_needs_no_certificate() {
        let mut endpoint = endpoint("exposed");
        endpoint.spec.tls = Some(TlsSpec {
            issuer_ref: None,
            secret_name: Some("my-cert".to_owned()),
        });
        let owner = Owner::of(&endpoint).expect("owner");
        assert!(certificate(&endpoint, &owner).expect("builds").is_none());
        let ingress = ingress(&endpoint, &owner, &settings())
            .expect("builds")
            .expect("wanted");
        let tls = ingress.spec.and_then(|s| s.tls).unwrap_or_default();
        assert_eq!(tls[0].secret_name.as_deref(), Some("my-cert"));
    }

    #[test]
    fn no_ingress_without_spec_ingress_and_plain_http_without_tls() {
        let endpoint = endpoint("github");
        let owner = Owner::of(&endpoint).expect("owner");
        assert!(
            ingress(&endpoint, &owner, &settings())
                .expect("builds")
                .is_none()
        );
        assert!(certificate(&endpoint, &owner).expect("builds").is_none());

        let mut exposed = super::super::fixtures::endpoint("exposed");
        exposed.spec.tls = None;
        let owner = Owner::of(&exposed).expect("owner");
        let ingress = ingress(&exposed, &owner, &settings())
            .expect("builds")
            .expect("wanted");
        assert!(ingress.spec.and_then(|s| s.tls).is_none());
        assert!(certificate(&exposed, &owner).expect("builds").is_none());
    }
}
