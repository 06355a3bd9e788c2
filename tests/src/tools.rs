//! Where the pinned upstream tools live: `tests/tools/versions.env` names the
//! versions, `tests/tools/install.sh` builds them into
//! `$HOOKWARDEN_CACHE/bin/<tool>-<version>` (default `~/.cache/hookwarden`).

use std::path::PathBuf;

use crate::SupportError;

const VERSIONS: &str = include_str!("../tools/versions.env");

/// The pinned version of a variable in `versions.env`, e.g. `NATS_SERVER_VERSION`.
pub fn pinned_version(variable: &str) -> Option<&'static str> {
    VERSIONS.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        (name.trim() == variable).then(|| value.trim())
    })
}

/// The cache directory shared with the shell scripts.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("HOOKWARDEN_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => home_dir().join(".cache/hookwarden"),
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

/// Path of a pinned tool (`nats-server`, `nats`, `kubectl`, `helm`, ...),
/// whether or not it has been built.
pub fn tool_path(tool: &str) -> PathBuf {
    let variable = match tool {
        "nats-server" => "NATS_SERVER_VERSION",
        "nats" => "NATSCLI_VERSION",
        "etcd" => "ETCD_VERSION",
        "kwok" => "KWOK_VERSION",
        "helm" => "HELM_VERSION",
        "traefik" => "TRAEFIK_VERSION",
        "cert-manager-controller" => "CERT_MANAGER_VERSION",
        "actionlint" => "ACTIONLINT_VERSION",
        "promtool" => "PROMETHEUS_VERSION",
        "jaeger" => "JAEGER_VERSION",
        _ => "KUBERNETES_VERSION",
    };
    let version = pinned_version(variable).unwrap_or("unpinned");
    cache_dir().join("bin").join(format!("{tool}-{version}"))
}

/// Path of a pinned tool that must exist.
pub fn require_tool(tool: &str) -> Result<PathBuf, SupportError> {
    let path = tool_path(tool);
    if path.is_file() {
        Ok(path)
    } else {
        Err(SupportError::ToolMissing {
            tool: tool.to_owned(),
            path,
        })
    }
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_pinned() {
        for variable in [
            "NATS_SERVER_VERSION",
            "NATSCLI_VERSION",
            "ETCD_VERSION",
            "KUBERNETES_VERSION",
            "KWOK_VERSION",
            "HELM_VERSION",
            "TRAEFIK_VERSION",
            "CERT_MANAGER_VERSION",
            "ACTIONLINT_VERSION",
            "PROMETHEUS_VERSION",
            "JAEGER_VERSION",
        ] {
            let version = pinned_version(variable).unwrap_or_default();
            assert!(
                version.starts_with('v'),
                "{variable} is not pinned: {version:?}"
            );
        }
    }

    #[test]
    fn tool_paths_carry_the_version() {
        let path = tool_path("kube-apiserver");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert_eq!(
            name,
            format!(
                "kube-apiserver-{}",
                pinned_version("KUBERNETES_VERSION").unwrap_or_default()
            )
        );
    }
}
