//! The receiver's configuration: a `WebhookEndpoint` manifest, the same file
//! that `kubectl apply` takes, read from disk.

use std::path::{Path, PathBuf};

use hookwarden_crds::{EndpointManifest, ManifestError};

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The manifest file could not be read.
    #[error("cannot read endpoint manifest {}: {source}", path.display())]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is not a valid `WebhookEndpoint`.
    #[error("{}: {source}", path.display())]
    Manifest {
        /// The manifest's path.
        path: PathBuf,
        /// What is wrong with it, naming the field.
        source: ManifestError,
    },
}

/// Reads and parses the endpoint manifest at `path`.
pub fn load_endpoint(path: &Path) -> Result<EndpointManifest, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    hookwarden_crds::from_yaml(&text).map_err(|source| ConfigError::Manifest {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_names_the_path() {
        let err = load_endpoint(Path::new("/nonexistent/endpoint.yaml")).expect_err("missing file");
        assert!(
            err.to_string().contains("/nonexistent/endpoint.yaml"),
            "{err}"
        );
    }
}
