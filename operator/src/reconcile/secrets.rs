//! Reading the values of the Secret keys an endpoint (or a subscription)
//! references.

use std::collections::BTreeMap;

use hookwarden_core::secrets::MAX_SECRET_VALUE_BYTES;
use hookwarden_crds::WebhookEndpointSpec;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::resources::{ResolvedSecrets, SecretKey, referenced_secrets};

/// Why the referenced Secrets could not be read. The messages name Secrets
/// and keys, never values: they end up in conditions, Events and logs.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// A referenced Secret does not exist (yet).
    #[error(
        "Secret {name:?} (referenced for key {key:?}) does not exist in namespace {namespace:?}; create it or fix the reference"
    )]
    SecretNotFound {
        /// The endpoint's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The first referenced key of it.
        key: String,
    },
    /// The Secret exists but lacks the referenced key.
    #[error(
        "Secret {name:?} in namespace {namespace:?} has no key {key:?}; add the key or fix the reference"
    )]
    SecretKeyNotFound {
        /// The endpoint's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The missing key.
        key: String,
    },
    /// The value is larger than a secret can be
    /// ([`MAX_SECRET_VALUE_BYTES`], the receiver's limit too). Refused
    /// before it is registered with the log filter or rendered, so a wrong
    /// reference to a large value neither stalls the operator's logging nor
    /// renders a configuration every receiver would refuse.
    #[error(
        "key {key:?} of Secret {name:?} in namespace {namespace:?} holds {size} bytes, more than the {limit_kib} KiB a webhook secret, token or CA bundle may be; check that the reference names the right key"
    )]
    SecretValueTooLarge {
        /// The endpoint's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
        /// The value's size in bytes.
        size: usize,
        /// The limit in KiB.
        limit_kib: usize,
    },
    /// The API server did not answer as expected: transient, retried.
    #[error("reading Secret {name:?} in namespace {namespace:?}: {source}")]
    Api {
        /// The endpoint's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

impl ResolveError {
    /// Every reason [`ResolveError::reason`] gives (a pool records them for
    /// its refused members and reads them back as static reasons).
    pub const REASONS: &[&'static str] =
        &["SecretNotFound", "SecretKeyNotFound", "SecretValueTooLarge"];

    /// The condition reason when the user has something to fix; `None` for
    /// transient errors, which are retried with back-off instead.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::SecretNotFound { .. } => Some("SecretNotFound"),
            Self::SecretKeyNotFound { .. } => Some("SecretKeyNotFound"),
            Self::SecretValueTooLarge { .. } => Some("SecretValueTooLarge"),
            Self::Api { .. } => None,
        }
    }

    /// The Secret that could not be read.
    pub fn secret_name(&self) -> &str {
        match self {
            Self::SecretNotFound { name, .. }
            | Self::SecretKeyNotFound { name, .. }
            | Self::SecretValueTooLarge { name, .. }
            | Self::Api { name, .. } => name,
        }
    }
}

/// Reads every key `spec` references from the Secrets in `api`'s namespace.
/// Each Secret is read once, however many of its keys are referenced.
pub async fn resolve(
    api: &Api<Secret>,
    namespace: &str,
    spec: &WebhookEndpointSpec,
) -> Result<ResolvedSecrets, ResolveError> {
    resolve_keys(api, namespace, referenced_secrets(spec)).await
}

/// Reads each of `keys` from the Secrets in `api`'s namespace, each Secret
/// once.
pub async fn resolve_keys(
    api: &Api<Secret>,
    namespace: &str,
    keys: impl IntoIterator<Item = SecretKey>,
) -> Result<ResolvedSecrets, ResolveError> {
    SecretReads::new(api.clone(), namespace)
        .resolve_keys(keys)
        .await
}

/// The Secrets of one namespace as one pass reads them: each read at most
/// once, however many references name it. A pool's pass resolves every
/// member's Secrets (and its own NATS credentials) through one, so members
/// sharing a Secret cost one read, and all of them see the same value.
pub struct SecretReads {
    api: Api<Secret>,
    namespace: String,
    read: BTreeMap<String, Option<Secret>>,
}

impl std::fmt::Debug for SecretReads {
    // The names read, never a value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretReads")
            .field("namespace", &self.namespace)
            .field("read", &self.read.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SecretReads {
    /// Nothing read yet from `api`, the Secrets of `namespace`.
    pub fn new(api: Api<Secret>, namespace: &str) -> Self {
        Self {
            api,
            namespace: namespace.to_owned(),
            read: BTreeMap::new(),
        }
    }

    /// [`resolve`] through what this pass read already.
    pub async fn resolve(
        &mut self,
        spec: &WebhookEndpointSpec,
    ) -> Result<ResolvedSecrets, ResolveError> {
        self.resolve_keys(referenced_secrets(spec)).await
    }

    /// [`resolve_keys`] through what this pass read already.
    pub async fn resolve_keys(
        &mut self,
        keys: impl IntoIterator<Item = SecretKey>,
    ) -> Result<ResolvedSecrets, ResolveError> {
        let namespace = self.namespace.clone();
        let mut resolved = ResolvedSecrets::default();
        for (name, key) in keys {
            if !self.read.contains_key(&name) {
                let secret = self
                    .api
                    .get_opt(&name)
                    .await
                    .map_err(|source| ResolveError::Api {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        source,
                    })?;
                self.read.insert(name.clone(), secret);
            }
            let Some(Some(secret)) = self.read.get(&name) else {
                return Err(ResolveError::SecretNotFound {
                    namespace,
                    name,
                    key,
                });
            };
            let Some(value) = secret.data.as_ref().and_then(|d| d.get(&key)) else {
                return Err(ResolveError::SecretKeyNotFound {
                    namespace,
                    name,
                    key,
                });
            };
            if value.0.len() > MAX_SECRET_VALUE_BYTES {
                return Err(ResolveError::SecretValueTooLarge {
                    namespace,
                    name,
                    key,
                    size: value.0.len(),
                    limit_kib: MAX_SECRET_VALUE_BYTES / 1024,
                });
            }
            resolved.insert(&name, &key, value.0.clone());
        }
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed() {
        let (namespace, name, key) = ("ns".to_owned(), "s".to_owned(), "k".to_owned());
        let errors = [
            ResolveError::SecretNotFound {
                namespace: namespace.clone(),
                name: name.clone(),
                key: key.clone(),
            },
            ResolveError::SecretKeyNotFound {
                namespace: namespace.clone(),
                name: name.clone(),
                key: key.clone(),
            },
            ResolveError::SecretValueTooLarge {
                namespace,
                name,
                key,
                size: 1,
                limit_kib: 1,
            },
        ];
        for error in &errors {
            let reason = error.reason().expect("a reason to fix");
            assert!(ResolveError::REASONS.contains(&reason), "{reason}");
        }
        assert_eq!(errors.len(), ResolveError::REASONS.len());
    }
}
