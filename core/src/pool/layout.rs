//! The files of a pool's directory: the one place their names are defined.
//!
//! The operator renders a pool's configuration into `spec.configShards`
//! Secrets and mounts them whole as one projected volume; their keys
//! become the files of the directory:
//!
//! - `endpoint.<endpoint name>.yaml`: an endpoint's manifest, as a dedicated
//!   receiver's `endpoint.yaml`;
//! - `secret.<secret name>_<key>`: one key of a Secret an endpoint refers to
//!   (a Secret name has no `_`, so the first `_` separates the two);
//! - `nats-url`: the pool's NATS URL when it carries credentials.
//!
//! The kubelet swaps the files in place through hidden entries (`..data`,
//! `..2026_12_06...`): names starting with `.` are never endpoints.

/// The prefix of an endpoint's manifest file.
const ENDPOINT_PREFIX: &str = "endpoint.";
/// The suffix of an endpoint's manifest file.
const ENDPOINT_SUFFIX: &str = ".yaml";

/// The file of the endpoint `name`'s manifest.
pub fn endpoint_file(name: &str) -> String {
    format!("{ENDPOINT_PREFIX}{name}{ENDPOINT_SUFFIX}")
}

/// The file of the key `key` of the Secret `name`.
pub fn secret_file(name: &str, key: &str) -> String {
    format!("secret.{name}_{key}")
}

/// The endpoint whose manifest `file` is, or `None` for any other file
/// (a secret, the NATS URL, the kubelet's hidden entries, a name that is not
/// a Kubernetes object name).
pub fn endpoint_name(file: &str) -> Option<&str> {
    if file.starts_with('.') {
        return None;
    }
    let name = file
        .strip_prefix(ENDPOINT_PREFIX)?
        .strip_suffix(ENDPOINT_SUFFIX)?;
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(endpoint_file("github"), "endpoint.github.yaml");
        assert_eq!(endpoint_name(&endpoint_file("github")), Some("github"));
        assert_eq!(endpoint_name(&endpoint_file("a.b-c")), Some("a.b-c"));
        assert_eq!(secret_file("gh", "secret"), "secret.gh_secret");
    }

    #[test]
    fn only_endpoint_files_are_endpoints() {
        for file in [
            "secret.gh_secret",
            "nats-url",
            "..data",
            "..2026_12_06_10_00_00.123",
            ".endpoint.x.yaml",
            "endpoint..yaml",
            "endpoint.x.yml",
            "endpoint.X.yaml",
            "endpoint.a/b.yaml",
            "endpoint.a_b.yaml",
        ] {
            assert_eq!(endpoint_name(file), None, "{file}");
        }
    }
}
