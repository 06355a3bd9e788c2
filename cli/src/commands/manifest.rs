//! A WebhookEndpoint manifest and the secrets it names, read as the
//! receiver reads them (`send --endpoint`, `verify --endpoint`).

use std::path::{Path, PathBuf};

use hookwarden_crds::{SecretKeyRef, WebhookEndpointSpec};
use hookwarden_receiver::secrets::{Secret, SecretError};

use super::files::{ReadError, read_file};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("manifest {} is not UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("manifest {}: {source}", path.display())]
    Invalid {
        path: PathBuf,
        source: hookwarden_crds::ManifestError,
    },
    /// The manifest names no secret where one is needed to sign.
    #[error("the manifest has no {field}")]
    NoSecret { field: &'static str },
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// A manifest's spec and where its secrets are, as `<dir>/<name>/<key>`.
#[derive(Debug)]
pub struct Manifest {
    pub spec: WebhookEndpointSpec,
    pub secrets_dir: PathBuf,
}

impl Manifest {
    pub fn read(path: &Path, secrets_dir: Option<&Path>) -> Result<Self, ManifestError> {
        let text = read_file(path, "manifest")?;
        let text = String::from_utf8(text).map_err(|_| ManifestError::NotUtf8 {
            path: path.to_owned(),
        })?;
        let endpoint =
            hookwarden_crds::from_yaml(&text).map_err(|source| ManifestError::Invalid {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            spec: endpoint.spec,
            secrets_dir: secrets_dir.map(Path::to_owned).unwrap_or_default(),
        })
    }

    /// The secrets of `refs`, as the receiver loads them.
    pub fn load(&self, refs: &[SecretKeyRef]) -> Result<Vec<Secret>, SecretError> {
        hookwarden_receiver::secrets::load(&self.secrets_dir, refs)
    }

    /// The first secret of `refs` (the manifest's `field`), for signing.
    pub fn first(
        &self,
        refs: &[SecretKeyRef],
        field: &'static str,
    ) -> Result<Vec<u8>, ManifestError> {
        let first = refs.first().ok_or(ManifestError::NoSecret { field })?;
        let secrets = self.load(std::slice::from_ref(first))?;
        secrets
            .first()
            .map(|s| s.expose().to_vec())
            .ok_or(ManifestError::NoSecret { field })
    }
}
