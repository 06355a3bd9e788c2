//! Reading Hookwarden manifests from YAML, as the receiver (a
//! `WebhookEndpoint`) and the forwarder (a `WebhookSubscription`) do when
//! they run standalone.
//!
//! A manifest is read as [`Manifest`], a plain type with the fields of the
//! custom resource (`metadata`, `spec`, `status`) and no kube in it, so the
//! data plane links no Kubernetes crate (issue #17). The operator's custom
//! resource types (feature `kube`) convert to and from it field by field.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{
    WebhookEndpointSpec, WebhookEndpointStatus, WebhookSubscriptionSpec, WebhookSubscriptionStatus,
};

/// The `apiVersion` of every kind of the API. The custom resources' `kube`
/// attributes repeat it as literals (an attribute cannot name a constant);
/// a test holds them to it.
pub const API_VERSION: &str = "hookwarden.dev/v1alpha1";

/// The spec of a kind that a manifest file holds.
pub trait ManifestSpec {
    /// The manifest's `kind`.
    const KIND: &'static str;
    /// What the operator observes of an object of the kind.
    type Status;
}

impl ManifestSpec for WebhookEndpointSpec {
    const KIND: &'static str = "WebhookEndpoint";
    type Status = WebhookEndpointStatus;
}

impl ManifestSpec for WebhookSubscriptionSpec {
    const KIND: &'static str = "WebhookSubscription";
    type Status = WebhookSubscriptionStatus;
}

/// One object of the API as a manifest holds it: the fields of the custom
/// resource (`apiVersion` and `kind` are checked on reading, not kept).
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(
    rename_all = "camelCase",
    bound(deserialize = "S: Deserialize<'de>, S::Status: Deserialize<'de>")
)]
pub struct Manifest<S: ManifestSpec> {
    /// The object's name, namespace, labels and annotations.
    pub metadata: ObjectMeta,
    /// What the object asks for.
    pub spec: S,
    /// What the operator observed; a manifest may carry it (`kubectl get -o
    /// yaml`), nothing reads it.
    pub status: Option<S::Status>,
}

impl<S: ManifestSpec> Manifest<S> {
    /// A manifest of `spec` named `name`, as the custom resources' `new`.
    pub fn new(name: &str, spec: S) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }
}

/// A `WebhookEndpoint` manifest, what the receiver serves.
pub type EndpointManifest = Manifest<WebhookEndpointSpec>;

/// A `WebhookSubscription` manifest, what the forwarder delivers.
pub type SubscriptionManifest = Manifest<WebhookSubscriptionSpec>;

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The YAML does not describe the expected kind (the message names the field).
    #[error("invalid {kind} manifest: {source}")]
    Invalid {
        /// The kind that was expected.
        kind: &'static str,
        /// What did not parse.
        source: serde_yaml_ng::Error,
    },
    /// The document is valid YAML for another kind or API version.
    #[error("expected apiVersion {API_VERSION} and kind {expected}, got {api_version} {kind}")]
    WrongKind {
        /// The kind that was expected.
        expected: &'static str,
        /// The document's `apiVersion`.
        api_version: String,
        /// The document's `kind`.
        kind: String,
    },
    /// The manifest has fields the API does not know. The API server would
    /// prune them silently; standalone, a misspelt `allowedSourceCidrs` would
    /// silently lift a restriction, so it is an error.
    #[error("unknown field(s) in {kind} manifest: {}", .fields.join(", "))]
    UnknownFields {
        /// The kind that was read.
        kind: &'static str,
        /// The paths of the unknown fields.
        fields: Vec<String>,
    },
}

/// Parses one `WebhookEndpoint` manifest.
pub fn from_yaml(yaml: &str) -> Result<EndpointManifest, ManifestError> {
    read(yaml)
}

/// Parses one `WebhookSubscription` manifest.
pub fn subscription_from_yaml(yaml: &str) -> Result<SubscriptionManifest, ManifestError> {
    read(yaml)
}

/// The `apiVersion` and `kind` every manifest starts with.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    api_version: String,
    kind: String,
}

/// Parses one manifest of `S`'s kind, refusing other kinds and unknown
/// fields.
fn read<S>(yaml: &str) -> Result<Manifest<S>, ManifestError>
where
    S: ManifestSpec + DeserializeOwned,
    S::Status: DeserializeOwned,
{
    let kind = S::KIND;
    let invalid = |source| ManifestError::Invalid { kind, source };
    let types: TypeMeta = serde_yaml_ng::from_str(yaml).map_err(invalid)?;
    if types.api_version != API_VERSION || types.kind != kind {
        return Err(ManifestError::WrongKind {
            expected: kind,
            api_version: types.api_version,
            kind: types.kind,
        });
    }
    let mut unknown = Vec::new();
    let object = serde_ignored::deserialize(serde_yaml_ng::Deserializer::from_str(yaml), |path| {
        let path = path.to_string();
        // Checked above; the manifest type reads them without keeping them.
        if path != "apiVersion" && path != "kind" {
            unknown.push(path);
        }
    })
    .map_err(invalid)?;
    if unknown.is_empty() {
        Ok(object)
    } else {
        Err(ManifestError::UnknownFields {
            kind,
            fields: unknown,
        })
    }
}

/// The operator's custom resources and their manifests, field by field:
/// it hands what it reconciles to the code it shares with the receiver
/// (hookwarden-core), and reads back the manifests it rendered.
#[cfg(feature = "kube")]
mod custom_resources {
    use super::Manifest;
    use crate::{
        WebhookEndpoint, WebhookEndpointSpec, WebhookSubscription, WebhookSubscriptionSpec,
    };

    macro_rules! convert {
        ($resource:ident, $spec:ident) => {
            impl From<$resource> for Manifest<$spec> {
                fn from(resource: $resource) -> Self {
                    let $resource {
                        metadata,
                        spec,
                        status,
                    } = resource;
                    Self {
                        metadata,
                        spec,
                        status,
                    }
                }
            }

            impl From<&$resource> for Manifest<$spec> {
                fn from(resource: &$resource) -> Self {
                    Self {
                        metadata: resource.metadata.clone(),
                        spec: resource.spec.clone(),
                        status: resource.status.clone(),
                    }
                }
            }

            impl From<Manifest<$spec>> for $resource {
                fn from(manifest: Manifest<$spec>) -> Self {
                    let Manifest {
                        metadata,
                        spec,
                        status,
                    } = manifest;
                    Self {
                        metadata,
                        spec,
                        status,
                    }
                }
            }
        };
    }

    convert!(WebhookEndpoint, WebhookEndpointSpec);
    convert!(WebhookSubscription, WebhookSubscriptionSpec);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Provider;

    #[test]
    fn reads_a_github_endpoint() {
        let endpoint = from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nmetadata: {name: gh, namespace: ci}\n\
             spec:\n  provider: github\n  secretRefs: [{name: gh, key: secret}]\n  allowedSourceCidrs: [192.30.252.0/22]\n",
        )
        .expect("valid manifest");
        assert_eq!(endpoint.spec.provider, Provider::Github);
        assert_eq!(endpoint.spec.secret_refs[0].key, "secret");
        assert_eq!(endpoint.spec.allowed_source_cidrs, ["192.30.252.0/22"]);
    }

    #[test]
    fn names_the_bad_field() {
        let err = from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nmetadata: {name: x}\nspec: {provider: gitbub}\n",
        )
        .expect_err("unknown provider");
        let message = err.to_string();
        assert!(message.contains("spec.provider"), "{message}");
        assert!(message.contains("gitbub"), "{message}");
    }

    #[test]
    fn names_unknown_fields() {
        let err = from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nmetadata: {name: x}\n\
             spec: {provider: github, allowedSourceCidr: [10.0.0.0/8]}\n",
        )
        .expect_err("misspelt field");
        assert_eq!(
            err.to_string(),
            "unknown field(s) in WebhookEndpoint manifest: spec.allowedSourceCidr"
        );
    }

    #[test]
    fn forwarded_headers_are_spelt_one_way_in_manifests_and_flags() {
        use crate::ForwardedHeaders;
        let manifest = |value: &str| {
            format!(
                "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nmetadata: {{name: x}}\n\
                 spec: {{provider: github, forwardedHeaders: {value}}}\n"
            )
        };
        for value in ForwardedHeaders::ALL {
            // The operator's flag parses what a manifest holds, and back.
            let endpoint = from_yaml(&manifest(value.as_str())).expect("valid manifest");
            assert_eq!(endpoint.spec.forwarded_headers, Some(value));
            assert_eq!(value.as_str().parse(), Ok(value));
            assert_eq!(value.to_string(), value.as_str());
        }
        let absent = from_yaml(&manifest("null")).expect("absent");
        assert_eq!(absent.spec.forwarded_headers, None);
        assert_eq!(ForwardedHeaders::default(), ForwardedHeaders::XForwardedFor);
        // Header names are not the values: a near miss is refused, not guessed.
        for wrong in ["X-Forwarded-For", "x-forwarded-for", "forwarded", "XRealIp"] {
            assert!(from_yaml(&manifest(wrong)).is_err(), "{wrong}");
            assert!(wrong.parse::<ForwardedHeaders>().is_err(), "{wrong}");
        }
    }

    #[test]
    fn refuses_another_kind() {
        let err = from_yaml(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec: {provider: github}\n",
        )
        .expect_err("wrong kind");
        assert!(matches!(err, ManifestError::WrongKind { .. }), "{err}");
    }

    #[test]
    fn refuses_another_api_version_of_the_kind() {
        let err = from_yaml(
            "apiVersion: hookwarden.dev/v1beta1\nkind: WebhookEndpoint\nmetadata: {name: x}\nspec: {provider: github}\n",
        )
        .expect_err("wrong version");
        assert_eq!(
            err.to_string(),
            "expected apiVersion hookwarden.dev/v1alpha1 and kind WebhookEndpoint, \
             got hookwarden.dev/v1beta1 WebhookEndpoint"
        );
        let err = subscription_from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nmetadata: {name: x}\nspec: {provider: github}\n",
        )
        .expect_err("an endpoint is not a subscription");
        assert_eq!(
            err.to_string(),
            "expected apiVersion hookwarden.dev/v1alpha1 and kind WebhookSubscription, \
             got hookwarden.dev/v1alpha1 WebhookEndpoint"
        );
    }

    #[test]
    fn keeps_the_status_a_manifest_carries() {
        let endpoint = from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nmetadata: {name: x}\n\
             spec: {provider: github}\nstatus: {url: https://hooks.example/x}\n",
        )
        .expect("a manifest with a status");
        let status = endpoint.status.expect("status kept");
        assert_eq!(status.url.as_deref(), Some("https://hooks.example/x"));
    }

    /// The manifest type and the custom resource read a document alike,
    /// and name the same kinds: what the operator renders, the receiver
    /// reads.
    #[cfg(feature = "kube")]
    #[test]
    fn manifests_are_the_custom_resources_without_kube() {
        use crate::{WebhookEndpoint, WebhookSubscription};
        use kube::Resource;

        assert_eq!(WebhookEndpoint::api_version(&()), API_VERSION);
        assert_eq!(WebhookSubscription::api_version(&()), API_VERSION);
        assert_eq!(WebhookEndpoint::kind(&()), crate::WebhookEndpointSpec::KIND);
        assert_eq!(
            WebhookSubscription::kind(&()),
            crate::WebhookSubscriptionSpec::KIND
        );

        let yaml = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
                    metadata: {name: gh, namespace: ci, labels: {team: a}}\n\
                    spec: {provider: github, replicas: 3}\nstatus: {readyReplicas: 1}\n";
        let custom_resource: WebhookEndpoint = serde_yaml_ng::from_str(yaml).expect("resource");
        let manifest = from_yaml(yaml).expect("manifest");
        // The custom resource has no PartialEq: compare both ways through
        // the manifest type.
        assert_eq!(EndpointManifest::from(custom_resource), manifest);
        let back = EndpointManifest::from(WebhookEndpoint::from(manifest.clone()));
        assert_eq!(back, manifest);

        let yaml = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookSubscription\n\
                    metadata: {name: s}\nspec: {source: {endpoint: gh}, \
                    destination: {url: https://example.com/in}}\n";
        let custom_resource: WebhookSubscription = serde_yaml_ng::from_str(yaml).expect("resource");
        let manifest = subscription_from_yaml(yaml).expect("manifest");
        assert_eq!(SubscriptionManifest::from(custom_resource), manifest);
        let back = SubscriptionManifest::from(WebhookSubscription::from(manifest.clone()));
        assert_eq!(back, manifest);
    }
}
