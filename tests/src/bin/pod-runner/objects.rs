//! The data of a Secret or a ConfigMap a pod names, read from the API as
//! the kubelet reads it (`data` with `stringData`, `data` with
//! `binaryData`): one reading for the environment and the volumes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

use super::{Context, Result};

pub(super) async fn secret_data(
    context: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
    let secret = Api::<Secret>::namespaced(context.client.clone(), namespace)
        .get_opt(name)
        .await?;
    Ok(secret.map(|s| {
        let mut data: BTreeMap<String, Vec<u8>> = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in s.string_data.unwrap_or_default() {
            data.insert(k, v.into_bytes());
        }
        data
    }))
}

pub(super) async fn config_map_data(
    context: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
    let map = Api::<ConfigMap>::namespaced(context.client.clone(), namespace)
        .get_opt(name)
        .await?;
    Ok(map.map(|m| {
        let mut data: BTreeMap<String, Vec<u8>> = m
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        for (k, v) in m.binary_data.unwrap_or_default() {
            data.insert(k, v.0);
        }
        data
    }))
}
