//! Reading Hookwarden manifests from YAML, as the receiver (a
//! `WebhookEndpoint`) and the forwarder (a `WebhookSubscription`) do when
//! they run standalone.

use kube::Resource;
use serde::de::DeserializeOwned;

use crate::{WebhookEndpoint, WebhookSubscription};

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
    #[error(
        "expected apiVersion hookwarden.dev/v1alpha1 and kind {expected}, got {api_version} {kind}"
    )]
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
pub fn from_yaml(yaml: &str) -> Result<WebhookEndpoint, ManifestError> {
    read(yaml, "WebhookEndpoint")
}

/// Parses one `WebhookSubscription` manifest.
pub fn subscription_from_yaml(yaml: &str) -> Result<WebhookSubscription, ManifestError> {
    read(yaml, "WebhookSubscription")
}

/// Parses one manifest of `kind`, refusing other kinds and unknown fields.
fn read<K>(yaml: &str, kind: &'static str) -> Result<K, ManifestError>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    debug_assert_eq!(K::kind(&()), kind);
    let invalid = |source| ManifestError::Invalid { kind, source };
    let types: kube::core::TypeMeta = serde_yaml_ng::from_str(yaml).map_err(invalid)?;
    if types.api_version != K::api_version(&()) || types.kind != kind {
        return Err(ManifestError::WrongKind {
            expected: kind,
            api_version: types.api_version,
            kind: types.kind,
        });
    }
    let mut unknown = Vec::new();
    let object = serde_ignored::deserialize(serde_yaml_ng::Deserializer::from_str(yaml), |path| {
        let path = path.to_string();
        // Checked above; the derived type reads them without keeping them.
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
}
