//! What every Deployment the operator runs shares: hardened pods of the
//! receiver image (receivers and forwarders alike) that read a rendered
//! configuration Secret, probed on the metrics port, rolled when the
//! configuration's hash changes.
//!
//! Defined once, so a forwarder is never hardened less than a receiver.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, KeyToPath,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ProjectedVolumeSource,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecretProjection, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    BuildError, METRICS_PORT, NATS_URL_KEY, Owner, match_labels, object, url_has_credentials,
};

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
    /// Its environment (`None`: no `env` at all).
    pub env: Option<Vec<EnvVar>>,
    /// Its ports, by name, as JSON: the pool's builder (resources/pool.rs)
    /// still passes them so; typed when it is.
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
    Items(Vec<KeyToPath>),
    /// Every key of these Secrets (a pool's configuration shards), one
    /// file each, in one directory at [`POOL_DIR`] (a projected volume):
    /// the pod spec stays the same whatever keys come and go, and the
    /// kubelet updates the files in place, all sources at once (a Secret
    /// with `items` would be fixed at the pod's start).
    Projected(Vec<String>),
}

/// A mount item: `key` of the configuration Secret at `path` under
/// [`CONFIG_DIR`].
pub fn item(key: &str, path: &str) -> KeyToPath {
    KeyToPath {
        key: key.to_owned(),
        path: path.to_owned(),
        ..KeyToPath::default()
    }
}

/// Adds the NATS URL to `args` when it is plain; when it carries
/// credentials, returns the environment that reads it from the rendered
/// Secret (key [`NATS_URL_KEY`]) instead, since anyone who may read
/// Deployments (or Pods) sees their arguments. `None`: no environment.
pub fn nats_url(owner: &Owner, url: &str, args: &mut Vec<String>) -> Option<Vec<EnvVar>> {
    if url_has_credentials(url) {
        Some(vec![EnvVar {
            name: "HOOKWARDEN_NATS_URL".to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: owner.child_name(),
                    key: NATS_URL_KEY.to_owned(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            value: None,
        }])
    } else {
        // A plain URL stays in the arguments, where `kubectl describe`
        // shows which NATS the pods use.
        args.extend(["--nats-url".to_owned(), url.to_owned()]);
        None
    }
}

/// `env` (a container's `env`, `None` for none) with `extra` appended as
/// plain values.
pub fn with_env(env: Option<Vec<EnvVar>>, extra: &[(String, String)]) -> Option<Vec<EnvVar>> {
    if extra.is_empty() {
        return env;
    }
    let mut list = env.unwrap_or_default();
    list.extend(extra.iter().map(|(name, value)| EnvVar {
        name: name.clone(),
        value: Some(value.clone()),
        value_from: None,
    }));
    Some(list)
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
    let ports: Vec<ContainerPort> = object("Deployment", workload.ports)?;
    // `spec.resources` replaces the defaults as a whole (like a Pod's own
    // field): half a default would be a surprise.
    let resources = workload
        .resources
        .cloned()
        .unwrap_or_else(default_resources);
    // 0440: owner root, group fsGroup, nobody else.
    let (mount_path, volume) = match workload.mount {
        Mount::Items(items) => (
            CONFIG_DIR,
            Volume {
                name: "config".to_owned(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(owner.child_name()),
                    items: Some(items),
                    default_mode: Some(0o440),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
        ),
        Mount::Projected(secrets) => (
            POOL_DIR,
            Volume {
                name: "config".to_owned(),
                projected: Some(ProjectedVolumeSource {
                    sources: Some(
                        secrets
                            .into_iter()
                            .map(|name| VolumeProjection {
                                secret: Some(SecretProjection {
                                    name,
                                    ..SecretProjection::default()
                                }),
                                ..VolumeProjection::default()
                            })
                            .collect(),
                    ),
                    default_mode: Some(0o440),
                    ..ProjectedVolumeSource::default()
                }),
                ..Volume::default()
            },
        ),
    };
    let container = Container {
        name: workload.container.to_owned(),
        image: Some(workload.image.to_owned()),
        args: Some(workload.args),
        env: workload.env,
        ports: Some(ports),
        // Ready only with its configuration loaded and NATS connected (and,
        // for a forwarder, its consumer bound).
        readiness_probe: Some(metrics_probe("/readyz", 5)),
        liveness_probe: Some(metrics_probe("/healthz", 10)),
        resources: Some(resources),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RECEIVER_USER),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "config".to_owned(),
            mount_path: mount_path.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let pod = PodSpec {
        // Neither the receiver nor the forwarder talks to the API server.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RECEIVER_USER),
            run_as_group: Some(RECEIVER_USER),
            // Group-readable Secret files for the non-root user.
            fs_group: Some(RECEIVER_USER),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..PodSecurityContext::default()
        }),
        containers: vec![container],
        volumes: Some(vec![volume]),
        ..PodSpec::default()
    };
    Ok(Deployment {
        metadata: owner.metadata(),
        spec: DeploymentSpec {
            replicas: workload.replicas,
            selector: match_labels(owner.selector_labels()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(owner.labels()),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.to_owned(),
                        config_hash.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    })
}

/// A probe of `path` on the metrics port every `period_seconds`, failing
/// after three misses.
fn metrics_probe(path: &str, period_seconds: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(METRICS_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// The container runtime's default seccomp profile.
fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}

/// Verification and forwarding handle bodies of at most a few MiB: small
/// requests, a memory limit that bounds a flood.
pub fn default_resources() -> ResourceRequirements {
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])
    };
    ResourceRequirements {
        requests: Some(quantities("50m", "64Mi")),
        limits: Some(quantities("1", "256Mi")),
        ..ResourceRequirements::default()
    }
}
