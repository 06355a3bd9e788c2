//! A container's environment as the kubelet builds it (`env`, `envFrom`,
//! `$(VAR)` expansion, the downward API's fields), apart from the process
//! it is given to because volumes read the same fields.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};

use super::objects::{config_map_data, secret_data};
use super::{Context, Result};

/// `$(NAME)` becomes NAME's value when defined; `$$(NAME)` stays literal.
pub(super) fn expand_vars(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match env.iter().rev().find(|(k, _)| k == name) {
                        Some((_, value)) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

pub(super) fn field_value(pod: &Pod, ip: Option<&str>, path: &str, node: &str) -> Result<String> {
    let meta = &pod.metadata;
    let label = |map: &Option<BTreeMap<String, String>>, prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
            .and_then(|key| map.as_ref()?.get(key).cloned())
            .unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => node.to_owned(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.hostIP" => ip.unwrap_or_default().to_owned(),
        p if p.starts_with("metadata.labels['") => label(&meta.labels, "metadata.labels['"),
        p if p.starts_with("metadata.annotations['") => {
            label(&meta.annotations, "metadata.annotations['")
        }
        other => return Err(format!("fieldRef {other} is not supported").into()),
    })
}

/// The container's environment as a kubelet builds it.
pub(super) async fn environment(
    context: &Context,
    pod: &Pod,
    container: &Container,
) -> Result<Vec<(String, String)>> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let settings = &context.settings;
    let mut env: Vec<(String, String)> = vec![
        (
            "HOSTNAME".to_owned(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
        // The kubelet always sets these for the `kubernetes` Service; its
        // ClusterIP has no proxy here, the API server's loopback address does.
        (
            "KUBERNETES_SERVICE_HOST".to_owned(),
            settings.api_host.clone(),
        ),
        (
            "KUBERNETES_SERVICE_PORT".to_owned(),
            settings.api_port.clone(),
        ),
        (
            "KUBERNETES_SERVICE_PORT_HTTPS".to_owned(),
            settings.api_port.clone(),
        ),
    ];
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
        env.retain(|(k, _)| *k != name);
        env.push((name, value));
    };
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let (data, optional, what) = if let Some(secret) = &source.secret_ref {
            (
                secret_data(context, &namespace, &secret.name).await?,
                secret.optional,
                format!("Secret {}", secret.name),
            )
        } else if let Some(map) = &source.config_map_ref {
            (
                config_map_data(context, &namespace, &map.name).await?,
                map.optional,
                format!("ConfigMap {}", map.name),
            )
        } else {
            continue;
        };
        match data {
            Some(data) => {
                for (k, v) in data {
                    set(
                        &mut env,
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(&v).into_owned(),
                    );
                }
            }
            None if optional == Some(true) => {}
            None => return Err(format!("envFrom: {what} not found").into()),
        }
    }
    for EnvVar {
        name,
        value,
        value_from,
    } in container.env.iter().flatten()
    {
        let value = if let Some(value) = value {
            expand_vars(value, &env)
        } else if let Some(from) = value_from {
            if let Some(key) = &from.secret_key_ref {
                let data = secret_data(context, &namespace, &key.name).await?;
                match data.and_then(|d| d.get(&key.key).cloned()) {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if key.optional == Some(true) => continue,
                    None => {
                        return Err(format!(
                            "env {name}: key {} of Secret {} not found",
                            key.key, key.name
                        )
                        .into());
                    }
                }
            } else if let Some(key) = &from.config_map_key_ref {
                let data = config_map_data(context, &namespace, &key.name).await?;
                match data.and_then(|d| d.get(&key.key).cloned()) {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if key.optional == Some(true) => continue,
                    None => {
                        return Err(format!(
                            "env {name}: key {} of ConfigMap {} not found",
                            key.key, key.name
                        )
                        .into());
                    }
                }
            } else if let Some(field) = &from.field_ref {
                // status.podIP is not known yet: the pod runner allocates it
                // later; nothing of ours asks for it.
                field_value(pod, None, &field.field_path, &settings.node)?
            } else {
                return Err(format!("env {name}: resourceFieldRef is not supported").into());
            }
        } else {
            String::new()
        };
        set(&mut env, name.clone(), value);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_variables_as_the_kubelet_does() {
        let env = vec![
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "two".to_owned()),
        ];
        assert_eq!(
            expand_vars("--a=$(A) $(B)$(C) $$(A) $", &env),
            "--a=1 two$(C) $(A) $"
        );
    }
}
