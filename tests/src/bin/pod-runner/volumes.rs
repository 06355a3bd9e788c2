//! A pod's volumes as the kubelet lays them out (Secret, ConfigMap,
//! projected and emptyDir, written by [`write_atomic`]) and kept current
//! while it runs (Secret and ConfigMap ones, and projected ones of those
//! only). Its own module: the refresh runs as a task of its own beside
//! the process, and both it and the start follow the same rules of which
//! volumes are refreshed.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hookwarden_tests::write_atomic;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{KeyToPath, Pod, ServiceAccount};
use kube::Api;
use kube::api::PostParams;

use super::env::field_value;
use super::objects::{config_map_data, secret_data};
use super::{Context, Result, VOLUME_REFRESH, log, pod_name};

/// Whether `projected` is made of Secrets and ConfigMaps only (a pool's
/// configuration shards): such a volume is refreshed like a Secret volume.
/// One with a token or the downward API is written at the start only.
fn objects_only(projected: &k8s_openapi::api::core::v1::ProjectedVolumeSource) -> bool {
    projected.sources.iter().flatten().all(|source| {
        source.service_account_token.is_none()
            && source.downward_api.is_none()
            && source.cluster_trust_bundle.is_none()
            && (source.secret.is_some() || source.config_map.is_some())
    })
}

/// The files of a Secret or ConfigMap volume, or of a projected volume of
/// those ([`objects_only`]), from their objects now; `None` for the other
/// kinds of volume. A missing object is an error unless its source is
/// optional (then: no files).
async fn object_volume_files(
    context: &Context,
    namespace: &str,
    volume: &k8s_openapi::api::core::v1::Volume,
) -> Result<Option<Vec<(String, Vec<u8>, i32)>>> {
    if let Some(source) = &volume.secret {
        let name = source.secret_name.clone().unwrap_or_default();
        let data = match secret_data(context, namespace, &name).await? {
            Some(data) => data,
            None if source.optional == Some(true) => BTreeMap::new(),
            None => {
                return Err(format!("Secret {name} of volume {} not found", volume.name).into());
            }
        };
        return select_items(
            &data,
            source.items.as_ref(),
            source.default_mode.unwrap_or(0o644),
            &format!("Secret {name}"),
        )
        .map(Some);
    }
    if let Some(source) = &volume.config_map {
        let name = source.name.clone();
        let data = match config_map_data(context, namespace, &name).await? {
            Some(data) => data,
            None if source.optional == Some(true) => BTreeMap::new(),
            None => {
                return Err(format!("ConfigMap {name} of volume {} not found", volume.name).into());
            }
        };
        return select_items(
            &data,
            source.items.as_ref(),
            source.default_mode.unwrap_or(0o644),
            &format!("ConfigMap {name}"),
        )
        .map(Some);
    }
    if let Some(projected) = volume.projected.as_ref().filter(|p| objects_only(p)) {
        let default_mode = projected.default_mode.unwrap_or(0o644);
        // By path: as the kubelet's projection, a later source's file of
        // the same path replaces an earlier one's.
        let mut files: BTreeMap<String, (Vec<u8>, i32)> = BTreeMap::new();
        for source in projected.sources.iter().flatten() {
            let (data, items, what, optional) = if let Some(secret) = &source.secret {
                (
                    secret_data(context, namespace, &secret.name).await?,
                    secret.items.as_ref(),
                    format!("Secret {}", secret.name),
                    secret.optional,
                )
            } else if let Some(map) = &source.config_map {
                (
                    config_map_data(context, namespace, &map.name).await?,
                    map.items.as_ref(),
                    format!("ConfigMap {}", map.name),
                    map.optional,
                )
            } else {
                continue;
            };
            let data = match data {
                Some(data) => data,
                None if optional == Some(true) => BTreeMap::new(),
                None => return Err(format!("{what} of volume {} not found", volume.name).into()),
            };
            for (path, value, mode) in select_items(&data, items, default_mode, &what)? {
                files.insert(path, (value, mode));
            }
        }
        return Ok(Some(
            files
                .into_iter()
                .map(|(path, (value, mode))| (path, value, mode))
                .collect(),
        ));
    }
    Ok(None)
}

/// Keeps the Secret and ConfigMap volumes of `pod` current while its
/// directory exists: each is written again ([`write_atomic`]) when its
/// object's data changed. A failed read keeps the files as they are, as
/// the kubelet does, and is tried again at the next round.
pub(super) async fn refresh_volumes(
    context: Arc<Context>,
    pod: Pod,
    pod_dir: PathBuf,
    fs_group: Option<i64>,
) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let volumes: Vec<_> = pod
        .spec
        .iter()
        .flat_map(|spec| spec.volumes.iter().flatten())
        .filter(|volume| {
            volume.secret.is_some()
                || volume.config_map.is_some()
                || volume.projected.as_ref().is_some_and(objects_only)
        })
        .cloned()
        .collect();
    let mut written: HashMap<String, Vec<(String, Vec<u8>, i32)>> = HashMap::new();
    while pod_dir.exists() {
        tokio::time::sleep(VOLUME_REFRESH).await;
        for volume in &volumes {
            let dir = pod_dir.join("volumes").join(&volume.name);
            if !dir.exists() {
                // Not mounted by the container.
                continue;
            }
            let files = match object_volume_files(&context, &namespace, volume).await {
                Ok(Some(files)) => files,
                Ok(None) => continue,
                Err(error) => {
                    log(format!(
                        "{}: volume {} not refreshed: {error}",
                        pod_name(&pod),
                        volume.name
                    ));
                    continue;
                }
            };
            if written.get(&volume.name) == Some(&files) {
                continue;
            }
            // The first round only learns what the start wrote.
            let first = !written.contains_key(&volume.name);
            let unchanged = first && same_files(&dir, &files);
            if !unchanged {
                match write_atomic(&dir, &files, fs_group) {
                    Ok(()) => log(format!(
                        "{}: volume {} updated",
                        pod_name(&pod),
                        volume.name
                    )),
                    Err(error) => {
                        log(format!(
                            "{}: volume {} not refreshed: {error}",
                            pod_name(&pod),
                            volume.name
                        ));
                        continue;
                    }
                }
            }
            written.insert(volume.name.clone(), files);
        }
    }
}

/// Whether `dir` holds exactly `files` (contents; the modes are the
/// volume's and do not change while the pod runs).
fn same_files(dir: &Path, files: &[(String, Vec<u8>, i32)]) -> bool {
    let listed = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with(".."))
                .count()
        })
        .unwrap_or(0);
    let top: std::collections::BTreeSet<&str> = files
        .iter()
        .filter_map(|(path, _, _)| path.split('/').next())
        .collect();
    listed == top.len()
        && files
            .iter()
            .all(|(path, content, _)| std::fs::read(dir.join(path)).is_ok_and(|c| &c == content))
}

fn select_items(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    what: &str,
) -> Result<Vec<(String, Vec<u8>, i32)>> {
    match items {
        Some(items) => items
            .iter()
            .map(|item| {
                let value = data
                    .get(&item.key)
                    .ok_or_else(|| format!("{what} has no key {}", item.key))?;
                Ok((
                    item.path.clone(),
                    value.clone(),
                    item.mode.unwrap_or(default_mode),
                ))
            })
            .collect(),
        None => Ok(data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), default_mode))
            .collect()),
    }
}

/// Every volume the container mounts, laid out under the pod's directory:
/// (source, mount path, read-only).
pub(super) async fn materialise_volumes(
    context: &Context,
    pod: &Pod,
    pod_dir: &Path,
    fs_group: Option<i64>,
) -> Result<Vec<(PathBuf, String, bool)>> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let container = spec.containers.first().ok_or("no container")?;
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .ok_or_else(|| format!("volumeMount {} names no volume", mount.name))?;
        let dir = pod_dir.join("volumes").join(&volume.name);
        if let Some(files) = object_volume_files(context, &namespace, volume).await? {
            write_atomic(&dir, &files, fs_group)?;
        } else if let Some(projected) = &volume.projected {
            let default_mode = projected.default_mode.unwrap_or(0o644);
            let mut files = Vec::new();
            for source in projected.sources.iter().flatten() {
                if let Some(token) = &source.service_account_token {
                    let account = spec
                        .service_account_name
                        .clone()
                        .unwrap_or_else(|| "default".to_owned());
                    let request = TokenRequest {
                        spec: Some(TokenRequestSpec {
                            audiences: token.audience.clone().map(|a| vec![a]),
                            expiration_seconds: token.expiration_seconds,
                            bound_object_ref: Some(
                                k8s_openapi::api::authentication::v1::BoundObjectReference {
                                    api_version: Some("v1".to_owned()),
                                    kind: Some("Pod".to_owned()),
                                    name: pod.metadata.name.clone(),
                                    uid: pod.metadata.uid.clone(),
                                },
                            ),
                            ..TokenRequestSpec::default()
                        }),
                        ..TokenRequest::default()
                    };
                    let issued: TokenRequest =
                        Api::<ServiceAccount>::namespaced(context.client.clone(), &namespace)
                            .create_subresource("token", &account, &PostParams::default(), &request)
                            .await?;
                    let value = issued
                        .status
                        .and_then(|s| s.token)
                        .ok_or("TokenRequest returned no token")?;
                    files.push((token.path.clone(), value.into_bytes(), default_mode));
                }
                if let Some(source) = &source.config_map {
                    let data = config_map_data(context, &namespace, &source.name)
                        .await?
                        .unwrap_or_default();
                    files.extend(select_items(
                        &data,
                        source.items.as_ref(),
                        default_mode,
                        &format!("ConfigMap {}", source.name),
                    )?);
                }
                if let Some(source) = &source.secret {
                    let data = secret_data(context, &namespace, &source.name)
                        .await?
                        .unwrap_or_default();
                    files.extend(select_items(
                        &data,
                        source.items.as_ref(),
                        default_mode,
                        &format!("Secret {}", source.name),
                    )?);
                }
                if let Some(downward) = &source.downward_api {
                    for item in downward.items.iter().flatten() {
                        let field = item
                            .field_ref
                            .as_ref()
                            .ok_or("downwardAPI item without fieldRef")?;
                        let value =
                            field_value(pod, None, &field.field_path, &context.settings.node)?;
                        files.push((
                            item.path.clone(),
                            value.into_bytes(),
                            item.mode.unwrap_or(default_mode),
                        ));
                    }
                }
            }
            write_atomic(&dir, &files, fs_group)?;
        } else if volume.empty_dir.is_some() {
            std::fs::create_dir_all(&dir)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
        } else {
            return Err(format!(
                "volume {} is of a kind the pod runner does not support",
                volume.name
            )
            .into());
        }
        let source = match &mount.sub_path {
            Some(sub) if !sub.is_empty() => dir.join(sub),
            _ => dir,
        };
        mounts.push((
            source,
            mount.mount_path.clone(),
            mount.read_only.unwrap_or(false),
        ));
    }
    Ok(mounts)
}
