//! What every Deployment the operator runs shares: hardened pods of the
//! receiver image (receivers and forwarders alike) that read a rendered
//! configuration Secret, probed on the metrics port, rolled when the
//! configuration's hash changes.
//!
//! Defined once, so a forwarder is never hardened less than a receiver.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ResourceRequirements;

use super::{BuildError, METRICS_PORT, NATS_URL_KEY, Owner, object, url_has_credentials};

/// The pod-template annotation that carries the configuration's hash, so a
/// changed configuration (spec or a rotated Secret value) rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "hookwarden.dev/config-hash";
/// Where the configuration Secret is mounted.
pub const CONFIG_DIR: &str = "/etc/hookwarden";
/// Where a pool's Secret is mounted whole: one file per key, re-read by
/// the pool's receivers at run time.
pub const POOL_DIR: &str = "/etc/hookwarden/pool";
/// The unprivileged user (and group) the receiver image runs as: the
/// distroless `nonroot` user, which owns nothing in the image.
pub const RECEIVER_USER: i64 = 65532;

/// The one container of a workload and how it is deployed.
pub struct Workload<'a> {
    /// The container's name.
    pub container: &'static str,
    /// The image.
    pub image: &'a str,
    /// Its arguments (the subcommand first).
    pub args: Vec<String>,
    /// Its environment (`null`: none).
    pub env: serde_json::Value,
    /// Its ports, by name.
    pub ports: serde_json::Value,
    /// The spec's resources; `None`: [`default_resources`].
    pub resources: Option<&'a ResourceRequirements>,
    /// What of the configuration Secret is mounted, and where.
    pub mount: Mount,
    /// `spec.replicas`; `None` when an autoscaler owns the field.
    pub replicas: Option<i32>,
}

/// How the configuration Secret appears in the container.
pub enum Mount {
    /// These keys at these paths under [`CONFIG_DIR`] (see [`item`]): the
    /// pods see exactly what they need, and a changed list rolls them.
    Items(Vec<serde_json::Value>),
    /// Every key of these Secrets (a pool's configuration shards), one
    /// file each, in one directory at [`POOL_DIR`] (a projected volume):
    /// the pod spec stays the same whatever keys come and go, and the
    /// kubelet updates the files in place, all sources at once (a Secret
    /// with `items` would be fixed at the pod's start).
    Projected(Vec<String>),
}

/// A mount item: `key` of the configuration Secret at `path` under
/// [`CONFIG_DIR`].
pub fn item(key: &str, path: &str) -> serde_json::Value {
    serde_json::json!({"key": key, "path": path})
}

/// Adds the NATS URL to `args` when it is plain; when it carries
/// credentials, returns the environment that reads it from the rendered
/// Secret (key [`NATS_URL_KEY`]) instead, since anyone who may read
/// Deployments (or Pods) sees their arguments. `null`: no environment.
pub fn nats_url(owner: &Owner, url: &str, args: &mut Vec<String>) -> serde_json::Value {
    if url_has_credentials(url) {
        serde_json::json!([{
            "name": "HOOKWARDEN_NATS_URL",
            "valueFrom": {"secretKeyRef": {"name": owner.child_name(), "key": NATS_URL_KEY}},
        }])
    } else {
        // A plain URL stays in the arguments, where `kubectl describe`
        // shows which NATS the pods use.
        args.extend(["--nats-url".to_owned(), url.to_owned()]);
        // null: no `env` at all in the object (it is an Option).
        serde_json::Value::Null
    }
}

/// `env` (a container's `env`, or null for none) with `extra` appended as
/// plain values.
pub fn with_env(env: serde_json::Value, extra: &[(String, String)]) -> serde_json::Value {
    if extra.is_empty() {
        return env;
    }
    let mut list = match env {
        serde_json::Value::Array(list) => list,
        _ => Vec::new(),
    };
    list.extend(
        extra
            .iter()
            .map(|(name, value)| serde_json::json!({"name": name, "value": value})),
    );
    serde_json::Value::Array(list)
}

/// The Deployment of `owner`'s workload: one container, no service-account
/// token, non-root, read-only root filesystem, no capabilities, the
/// runtime's seccomp profile, probes on `/readyz` and `/healthz` of the
/// metrics port, and the configuration Secret mounted read-only at
/// [`CONFIG_DIR`]; annotated with `config_hash`.
pub fn deployment(
    owner: &Owner,
    workload: Workload<'_>,
    config_hash: &str,
) -> Result<Deployment, BuildError> {
    // `spec.resources` replaces the defaults as a whole (like a Pod's own
    // field): half a default would be a surprise.
    let resources = match workload.resources {
        Some(resources) => {
            serde_json::to_value(resources).map_err(|source| BuildError::Object {
                kind: "Deployment",
                source,
            })?
        }
        None => default_resources(),
    };
    // 0440: owner root, group fsGroup, nobody else.
    let (mount_path, volume) = match workload.mount {
        Mount::Items(items) => (
            CONFIG_DIR,
            serde_json::json!({
                "name": "config",
                "secret": {
                    "secretName": owner.child_name(),
                    "items": items,
                    "defaultMode": 0o440,
                },
            }),
        ),
        Mount::Projected(secrets) => (
            POOL_DIR,
            serde_json::json!({
                "name": "config",
                "projected": {
                    "sources": secrets
                        .iter()
                        .map(|name| serde_json::json!({"secret": {"name": name}}))
                        .collect::<Vec<_>>(),
                    "defaultMode": 0o440,
                },
            }),
        ),
    };
    let template = serde_json::json!({
        "metadata": {
            "labels": owner.labels(),
            "annotations": {CONFIG_HASH_ANNOTATION: config_hash},
        },
        "spec": {
            // Neither the receiver nor the forwarder talks to the API server.
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": RECEIVER_USER,
                "runAsGroup": RECEIVER_USER,
                // Group-readable Secret files for the non-root user.
                "fsGroup": RECEIVER_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": workload.container,
                "image": workload.image,
                "args": workload.args,
                "env": workload.env,
                "ports": workload.ports,
                // Ready only with its configuration loaded and NATS
                // connected (and, for a forwarder, its consumer bound).
                "readinessProbe": {
                    "httpGet": {"path": "/readyz", "port": METRICS_PORT},
                    "periodSeconds": 5,
                    "failureThreshold": 3,
                },
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": METRICS_PORT},
                    "periodSeconds": 10,
                    "failureThreshold": 3,
                },
                "resources": resources,
                "securityContext": {
                    "runAsNonRoot": true,
                    "runAsUser": RECEIVER_USER,
                    "readOnlyRootFilesystem": true,
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "volumeMounts": [{
                    "name": "config",
                    "mountPath": mount_path,
                    "readOnly": true,
                }],
            }],
            "volumes": [volume],
        },
    });
    let mut spec = serde_json::json!({
        "selector": {"matchLabels": owner.selector_labels()},
        "template": template,
    });
    if let Some(replicas) = workload.replicas {
        spec["replicas"] = replicas.into();
    }
    object(
        "Deployment",
        serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": owner.child_metadata(),
            "spec": spec,
        }),
    )
}

/// Verification and forwarding handle bodies of at most a few MiB: small
/// requests, a memory limit that bounds a flood.
pub fn default_resources() -> serde_json::Value {
    serde_json::json!({
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    })
}
