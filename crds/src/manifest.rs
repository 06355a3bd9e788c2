//! Reading a `WebhookEndpoint` manifest from YAML, as the receiver does when it
//! runs standalone.

use crate::WebhookEndpoint;

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The YAML does not describe a `WebhookEndpoint` (the message names the field).
    #[error("invalid WebhookEndpoint manifest: {0}")]
    Invalid(#[from] serde_yaml_ng::Error),
    /// The document is valid YAML for another kind or API version.
    #[error(
        "expected apiVersion hookwarden.dev/v1alpha1 and kind WebhookEndpoint, got {api_version} {kind}"
    )]
    WrongKind {
        /// The document's `apiVersion`.
        api_version: String,
        /// The document's `kind`.
        kind: String,
    },
    /// The manifest has fields the API does not know. The API server would
    /// prune them silently; standalone, a misspelt `allowedSourceCidrs` would
    /// silently lift a restriction, so it is an error.
    #[error("unknown field(s) in WebhookEndpoint manifest: {}", .0.join(", "))]
    UnknownFields(Vec<String>),
}

/// Parses one `WebhookEndpoint` manifest.
pub fn from_yaml(yaml: &str) -> Result<WebhookEndpoint, ManifestError> {
    let types: kube::core::TypeMeta = serde_yaml_ng::from_str(yaml)?;
    if types.api_version != "hookwarden.dev/v1alpha1" || types.kind != "WebhookEndpoint" {
        return Err(ManifestError::WrongKind {
            api_version: types.api_version,
            kind: types.kind,
        });
    }
    let mut unknown = Vec::new();
    let endpoint =
        serde_ignored::deserialize(serde_yaml_ng::Deserializer::from_str(yaml), |path| {
            let path = path.to_string();
            // Checked above; the derived type reads them without keeping them.
            if path != "apiVersion" && path != "kind" {
                unknown.push(path);
            }
        })?;
    if unknown.is_empty() {
        Ok(endpoint)
    } else {
        Err(ManifestError::UnknownFields(unknown))
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
