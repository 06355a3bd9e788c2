//! The Secret `<name>-receiver`: the receiver's whole configuration, the
//! endpoint manifest plus the values of the Secrets it references.
//!
//! One rendered Secret (rather than mounting the user's Secrets directly)
//! means the pods see exactly the keys they need, the Deployment only ever
//! mounts an object the operator owns, and one hash of its data says when the
//! pods must be rolled.

use std::collections::BTreeMap;

use hookwarden_crds::WebhookEndpoint;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::{
    BuildError, NATS_URL_KEY, Owner, ResolvedSecrets, Settings, referenced_secrets,
    url_has_credentials,
};

/// The key (and file name) of the endpoint manifest the receiver reads.
pub const ENDPOINT_FILE: &str = "endpoint.yaml";

/// The longest key a Secret may have.
const MAX_KEY_LEN: usize = 253;

/// The data key holding the value of `key` in Secret `name`.
///
/// `_` cannot occur in a Secret name (a DNS subdomain) but may in a key, so
/// splitting at the first `_` after the prefix recovers both: two different
/// references never share a data key.
pub fn secret_data_key(name: &str, key: &str) -> String {
    // The pool receivers' file name too: one layout for both.
    hookwarden_core::pool::layout::secret_file(name, key)
}

/// The rendered configuration Secret of `endpoint`.
pub fn config_secret(
    endpoint: &WebhookEndpoint,
    owner: &Owner,
    secrets: &ResolvedSecrets,
    settings: &Settings,
) -> Result<Secret, BuildError> {
    let mut data: BTreeMap<String, ByteString> = BTreeMap::new();
    data.insert(
        ENDPOINT_FILE.to_owned(),
        ByteString(endpoint_manifest(endpoint)?.into_bytes()),
    );
    let nats_url = settings.nats_url(endpoint);
    if url_has_credentials(nats_url) {
        data.insert(
            NATS_URL_KEY.to_owned(),
            ByteString(nats_url.as_bytes().to_vec()),
        );
    }
    render_secrets(&mut data, referenced_secrets(&endpoint.spec), secrets)?;
    Ok(opaque_secret(owner.metadata(), Some(data), None))
}

/// An `Opaque` Secret with `data` (bytes) or `string_data`.
pub(super) fn opaque_secret(
    metadata: ObjectMeta,
    data: Option<BTreeMap<String, ByteString>>,
    string_data: Option<BTreeMap<String, String>>,
) -> Secret {
    Secret {
        metadata,
        type_: Some("Opaque".to_owned()),
        data,
        string_data,
        immutable: None,
    }
}

/// The Secret `name` that holds `value` at `key`, a value the operator
/// generated and gave to someone else (a provider, a destination): owned
/// by `owner`, but without the `managed-by` label, since the operator
/// creates it once and never re-applies or prunes it.
pub(super) fn given_secret(owner: &Owner, name: String, key: &str, value: &str) -> Secret {
    let mut metadata = owner.metadata();
    metadata.name = Some(name);
    if let Some(labels) = metadata.labels.as_mut() {
        labels.remove("app.kubernetes.io/managed-by");
    }
    opaque_secret(
        metadata,
        None,
        Some(BTreeMap::from([(key.to_owned(), value.to_owned())])),
    )
}

/// Adds the value of each of `keys` to `data` under [`secret_data_key`],
/// where the pods' volume items find them.
pub(super) fn render_secrets(
    data: &mut BTreeMap<String, ByteString>,
    keys: impl IntoIterator<Item = super::SecretKey>,
    secrets: &ResolvedSecrets,
) -> Result<(), BuildError> {
    for (name, key) in keys {
        let data_key = secret_data_key(&name, &key);
        if data_key.len() > MAX_KEY_LEN {
            return Err(BuildError::KeyTooLong {
                name,
                key,
                max: MAX_KEY_LEN - "secret._".len(),
            });
        }
        let value = secrets
            .get(&name, &key)
            .ok_or_else(|| BuildError::Unresolved {
                name: name.clone(),
                key: key.clone(),
            })?;
        data.insert(data_key, ByteString(value.to_vec()));
    }
    Ok(())
}

/// The key of the generated verification secret in its Secret.
pub const GENERATED_SECRET_KEY: &str = "secret";

/// The Secret that holds the generated verification secret of endpoint
/// `endpoint_name` (`spec.generateSecret`).
pub fn generated_secret_name(endpoint_name: &str) -> String {
    format!("{endpoint_name}-webhook-secret")
}

/// `endpoint` as the receiver must see it: with `generateSecret`, the
/// generated Secret is one more entry of `secretRefs`, so it is resolved,
/// rendered and verified like any referenced one; without
/// `trustedProxies`, the operator's default ones (the ingress controller's
/// network) apply, and without `forwardedHeaders` the operator's default
/// (what the ingress controller writes), written out so the receiver never
/// falls back on a default of its own; with `ingress` and no `tls` at all, the operator's
/// default issuer (if any) becomes `tls.issuerRef`, so the Certificate,
/// the Ingress's TLS Secret `<name>-tls` and the `https` URL follow as for
/// an issuer the endpoint names.
pub fn effective_endpoint(endpoint: &WebhookEndpoint, settings: &Settings) -> WebhookEndpoint {
    let mut effective = endpoint.clone();
    if effective.spec.ingress.is_some() && effective.spec.tls.is_none() {
        effective.spec.tls = settings.default_tls().map(|tls| tls.spec());
    }
    if effective.spec.trusted_proxies.is_empty() {
        effective
            .spec
            .trusted_proxies
            .clone_from(&settings.default_trusted_proxies);
    }
    effective
        .spec
        .forwarded_headers
        .get_or_insert(settings.default_forwarded_headers);
    if endpoint.spec.generate_secret {
        let generated = hookwarden_crds::SecretKeyRef {
            name: generated_secret_name(&endpoint.name_any()),
            key: GENERATED_SECRET_KEY.to_owned(),
        };
        if !effective.spec.secret_refs.contains(&generated) {
            effective.spec.secret_refs.push(generated);
        }
    }
    effective
}

/// The generated Secret holding `value` (hex digits), owned by the endpoint.
///
/// Its name is not `<name>-receiver` and it carries no `managed-by` label:
/// it holds user-facing data that must survive everything but the deletion
/// of the endpoint, and the operator never re-applies or prunes it.
pub fn generated_secret(owner: &Owner, value: &str) -> Secret {
    given_secret(
        owner,
        generated_secret_name(&owner.name),
        GENERATED_SECRET_KEY,
        value,
    )
}

/// A new verification secret: 32 bytes from the thread-local CSPRNG
/// (ChaCha, seeded by the OS), written as 64 hex digits so it can be pasted
/// into any provider's form.
pub fn random_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The manifest as the receiver reads it: the spec under the endpoint's name
/// and namespace (which default the NATS subject and stream), without the
/// server-side metadata that changes on every write and would roll the pods.
pub(super) fn endpoint_manifest(endpoint: &WebhookEndpoint) -> Result<String, BuildError> {
    let manifest = serde_json::json!({
        "apiVersion": WebhookEndpoint::api_version(&()),
        "kind": WebhookEndpoint::kind(&()),
        "metadata": {
            "name": endpoint.name_any(),
            "namespace": endpoint.namespace(),
        },
        "spec": endpoint.spec,
    });
    Ok(serde_yaml_ng::to_string(&manifest)?)
}

/// SHA-256 (hex) of the Secret's data, in key order, each key and value
/// length-prefixed so that no two different data maps hash alike. Put on the
/// pod template so that a changed configuration rolls the pods.
pub fn config_hash(secret: &Secret) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in secret.data.iter().flatten() {
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key.as_bytes());
        hasher.update((value.0.len() as u64).to_be_bytes());
        hasher.update(&value.0);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{build, child_name};
    use super::*;

    fn data(secret: &Secret) -> BTreeMap<String, String> {
        secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
            .collect()
    }

    #[test]
    fn holds_the_manifest_and_one_key_per_reference() {
        let endpoint = endpoint("generic-hmac");
        let children = build(&endpoint, &secrets_for(&endpoint), &settings()).expect("builds");
        let secret = &children.secret;
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        let data = data(secret);
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "endpoint.yaml",
                "secret.shop-hmac_key.v1",
                "secret.shop-token_token"
            ]
        );
        assert_eq!(data["secret.shop-hmac_key.v1"], "shop-hmac/key.v1-value");
        assert_eq!(data["secret.shop-token_token"], "shop-token/token-value");

        // The receiver reads the manifest back into the very same spec.
        let read = hookwarden_crds::from_yaml(&data["endpoint.yaml"]).expect("receiver parses");
        assert_eq!(read.spec, endpoint.spec);
        assert_eq!(read.metadata.name.as_deref(), Some("shop"));
        assert_eq!(read.metadata.namespace.as_deref(), Some("payments"));
        // Server-side metadata stays out: it would change the hash on every write.
        assert_eq!(read.metadata.uid, None);
        assert!(!data["endpoint.yaml"].contains("-value"));
        assert_eq!(
            child_name("shop"),
            secret.metadata.name.clone().unwrap_or_default()
        );
    }

    #[test]
    fn data_keys_of_different_references_differ() {
        // "a.b"/"c" and "a"/"b.c" would collide with a `.` separator.
        assert_ne!(secret_data_key("a.b", "c"), secret_data_key("a", "b.c"));
        assert_ne!(secret_data_key("a-b", "c"), secret_data_key("a", "b-c"));
    }

    #[test]
    fn an_unresolved_reference_is_an_error_not_an_empty_value() {
        let endpoint = endpoint("github");
        let mut secrets = ResolvedSecrets::default();
        secrets.insert("github-webhook", "secret", b"s3cr3t".to_vec());
        let err = build(&endpoint, &secrets, &settings()).expect_err("next key missing");
        assert!(
            matches!(&err, BuildError::Unresolved { name, key } if name == "github-webhook-next" && key == "secret"),
            "{err}"
        );
    }

    #[test]
    fn too_long_references_are_refused() {
        let mut endpoint = endpoint("github");
        endpoint.spec.secret_refs[0].name = "n".repeat(200);
        endpoint.spec.secret_refs[0].key = "k".repeat(60);
        let err = build(&endpoint, &secrets_for(&endpoint), &settings()).expect_err("too long");
        assert!(matches!(err, BuildError::KeyTooLong { .. }), "{err}");
    }

    #[test]
    fn hash_follows_the_data_and_nothing_else() {
        let endpoint = endpoint("github");
        let secrets = secrets_for(&endpoint);
        let first = build(&endpoint, &secrets, &settings()).expect("builds");
        let again = build(&endpoint, &secrets, &settings()).expect("builds");
        assert_eq!(config_hash(&first.secret), config_hash(&again.secret));
        assert_eq!(config_hash(&first.secret).len(), 64);

        let mut rotated = secrets.clone();
        rotated.insert("github-webhook", "secret", b"rotated".to_vec());
        let changed = build(&endpoint, &rotated, &settings()).expect("builds");
        assert_ne!(config_hash(&first.secret), config_hash(&changed.secret));

        let mut spec_changed = endpoint.clone();
        spec_changed
            .spec
            .allowed_source_cidrs
            .push("10.0.0.0/8".to_owned());
        let changed = build(&spec_changed, &secrets, &settings()).expect("builds");
        assert_ne!(config_hash(&first.secret), config_hash(&changed.secret));

        // A new resourceVersion or generation alone does not roll the pods.
        let mut touched = endpoint.clone();
        touched.metadata.resource_version = Some("999".to_owned());
        touched.metadata.generation = Some(9);
        let same = build(&touched, &secrets, &settings()).expect("builds");
        assert_eq!(config_hash(&first.secret), config_hash(&same.secret));
    }

    #[test]
    fn generate_secret_adds_a_reference_to_the_generated_secret() {
        let endpoint = super::super::fixtures::endpoint("exposed");
        let effective = effective_endpoint(&endpoint, &settings());
        assert_eq!(
            effective.spec.secret_refs,
            [hookwarden_crds::SecretKeyRef {
                name: "shop-webhook-secret".to_owned(),
                key: "secret".to_owned(),
            }]
        );
        // Idempotent, and nothing changes without generateSecret.
        assert_eq!(
            effective_endpoint(&effective, &settings()).spec,
            effective.spec
        );
        let github = super::super::fixtures::endpoint("github");
        let mut expected = github.spec.clone();
        // Only the default forwarding headers are written out.
        expected.forwarded_headers = Some(settings().default_forwarded_headers);
        assert_eq!(effective_endpoint(&github, &settings()).spec, expected);
    }

    #[test]
    fn the_generated_secret_is_owned_random_and_hex() {
        let endpoint = super::super::fixtures::endpoint("exposed");
        let owner = Owner::of(&endpoint).expect("owner");
        let first = random_secret();
        assert_eq!(first.len(), 64);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()), "{first}");
        assert_ne!(first, random_secret());
        let secret = generated_secret(&owner, &first);
        assert_eq!(secret.metadata.name.as_deref(), Some("shop-webhook-secret"));
        let owners = secret.metadata.owner_references.unwrap_or_default();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].name, "shop");
        let labels = secret.metadata.labels.unwrap_or_default();
        assert!(!labels.contains_key("app.kubernetes.io/managed-by"));
        let data = secret.string_data.unwrap_or_default();
        assert_eq!(data.get("secret"), Some(&first));
    }

    #[test]
    fn the_default_issuer_applies_only_to_ingresses_without_tls() {
        use hookwarden_crds::{IssuerKind, IssuerRef, TlsSpec};
        let default = IssuerRef {
            name: "letsencrypt-prod".to_owned(),
            kind: IssuerKind::ClusterIssuer,
        };
        let settings = Settings {
            default_issuer: Some(default.clone()),
            ..settings()
        };
        let mut bare = endpoint("exposed");
        bare.spec.tls = None;
        let effective = effective_endpoint(&bare, &settings);
        assert_eq!(
            effective.spec.tls,
            Some(TlsSpec {
                issuer_ref: Some(default),
                secret_name: None,
            })
        );
        // As for an explicit issuerRef: a Certificate into <name>-tls, which
        // the Ingress serves.
        let children = build(&effective, &secrets_for(&effective), &settings).expect("builds");
        let certificate =
            serde_json::to_value(children.certificate.expect("certificate")).expect("serializes");
        assert_eq!(
            certificate["spec"],
            serde_json::json!({
                "secretName": "shop-tls",
                "dnsNames": ["hooks.example.com"],
                "issuerRef": {"name": "letsencrypt-prod", "kind": "ClusterIssuer", "group": "cert-manager.io"},
            })
        );
        let tls = children
            .ingress
            .and_then(|ingress| ingress.spec)
            .and_then(|spec| spec.tls)
            .unwrap_or_default();
        assert_eq!(tls.len(), 1);
        assert_eq!(tls[0].secret_name.as_deref(), Some("shop-tls"));
        // Without the default nothing changes: plain HTTP, no Certificate.
        let plain = effective_endpoint(&bare, &super::super::fixtures::settings());
        assert_eq!(plain.spec.tls, None);
        assert!(
            build(
                &plain,
                &secrets_for(&plain),
                &super::super::fixtures::settings()
            )
            .expect("builds")
            .certificate
            .is_none()
        );

        // The endpoint's own tls wins, whichever kind.
        let own_issuer = endpoint("exposed");
        assert_eq!(
            effective_endpoint(&own_issuer, &settings).spec.tls,
            own_issuer.spec.tls
        );
        let mut own_secret = endpoint("exposed");
        own_secret.spec.tls = Some(TlsSpec {
            issuer_ref: None,
            secret_name: Some("my-cert".to_owned()),
        });
        assert_eq!(
            effective_endpoint(&own_secret, &settings).spec.tls,
            own_secret.spec.tls
        );
        // No Ingress: nothing to issue a certificate for.
        let github = endpoint("github");
        assert_eq!(effective_endpoint(&github, &settings).spec.tls, None);
    }

    #[test]
    fn default_trusted_proxies_apply_only_to_endpoints_without_their_own() {
        let settings = Settings {
            default_trusted_proxies: vec!["10.244.0.0/16".to_owned()],
            ..settings()
        };
        let github = endpoint("github");
        assert!(github.spec.trusted_proxies.is_empty(), "fixture lists none");
        assert_eq!(
            effective_endpoint(&github, &settings).spec.trusted_proxies,
            ["10.244.0.0/16"]
        );
        let mut own = github.clone();
        own.spec.trusted_proxies = vec!["192.0.2.0/24".to_owned()];
        assert_eq!(
            effective_endpoint(&own, &settings).spec.trusted_proxies,
            ["192.0.2.0/24"],
            "an endpoint's own list wins, it is not merged"
        );
    }

    #[test]
    fn default_forwarded_headers_apply_only_to_endpoints_without_their_own() {
        use hookwarden_crds::ForwardedHeaders;
        let settings = Settings {
            default_forwarded_headers: ForwardedHeaders::Forwarded,
            ..settings()
        };
        let github = endpoint("github");
        assert_eq!(github.spec.forwarded_headers, None, "fixture sets none");
        assert_eq!(
            effective_endpoint(&github, &settings)
                .spec
                .forwarded_headers,
            Some(ForwardedHeaders::Forwarded),
            "the receiver gets the operator's default written out"
        );
        let mut own = github.clone();
        own.spec.forwarded_headers = Some(ForwardedHeaders::XForwardedFor);
        assert_eq!(
            effective_endpoint(&own, &settings).spec.forwarded_headers,
            Some(ForwardedHeaders::XForwardedFor),
            "an endpoint's own setting wins"
        );
    }
}

#[cfg(test)]
mod source_range_tests {
    use super::super::fixtures::*;
    use super::super::{BuildError, build, build_with_ranges};
    use super::*;
    use crate::resources::validate::ValidEndpoint;

    fn rendered(children: &super::super::Children) -> WebhookEndpoint {
        let data = children.secret.data.as_ref().expect("data");
        let yaml = String::from_utf8(data[ENDPOINT_FILE].0.clone()).expect("utf-8");
        hookwarden_crds::from_yaml(&yaml)
            .expect("the receiver reads it")
            .into()
    }

    #[test]
    fn fetched_ranges_are_rendered_as_cidrs_without_rolling_the_pods() {
        let mut endpoint = endpoint("github");
        endpoint.spec.allowed_source_cidrs = vec!["203.0.113.0/24".to_owned()];
        endpoint.spec.allowed_sources = vec![hookwarden_crds::AllowedSource {
            provider: Some(hookwarden_crds::RangeProvider::Github),
            ..Default::default()
        }];
        let secrets = secrets_for(&endpoint);
        let valid = ValidEndpoint::check(&endpoint).expect("valid");
        let ranges = |list: &[&str]| list.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>();
        let first = build_with_ranges(
            &valid,
            &endpoint,
            &secrets,
            &settings(),
            &ranges(&["127.0.0.0/8"]),
        )
        .expect("builds");
        let manifest = rendered(&first);
        assert!(
            manifest.spec.allowed_sources.is_empty(),
            "receivers never fetch"
        );
        assert_eq!(
            manifest.spec.allowed_source_cidrs,
            ["203.0.113.0/24", "127.0.0.0/8"]
        );

        let changed = build_with_ranges(
            &valid,
            &endpoint,
            &secrets,
            &settings(),
            &ranges(&["10.0.0.0/8", "203.0.113.0/24"]),
        )
        .expect("builds");
        assert_eq!(
            rendered(&changed).spec.allowed_source_cidrs,
            ["203.0.113.0/24", "10.0.0.0/8"],
            "union without duplicates"
        );
        assert_ne!(
            first.secret.data, changed.secret.data,
            "the receivers reload"
        );
        let hash = |c: &super::super::Children| {
            c.deployment
                .spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.clone())
        };
        assert_eq!(hash(&first), hash(&changed), "the pods are not rolled");

        // Without the ranges nothing is rendered: that would let anyone in.
        assert!(matches!(
            build(&endpoint, &secrets, &settings()),
            Err(BuildError::SourceRangesMissing)
        ));
    }
}
