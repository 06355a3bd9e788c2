//! An endpoint's files as a receiver reads them: the `WebhookEndpoint`
//! manifest and the secrets laid out like mounted Secrets
//! (`<dir>/secrets/<secret name>/<key>`), in a private temporary directory.
//! What a standalone receiver is started from, and what the operator's pods
//! mount.

use std::path::{Path, PathBuf};

/// A manifest and its secrets on disk, removed on drop.
#[derive(Debug)]
pub struct EndpointFiles {
    dir: tempfile::TempDir,
    endpoint: PathBuf,
    secrets: PathBuf,
}

impl EndpointFiles {
    /// Writes `manifest` and each `(secret name, key, content)`.
    ///
    /// # Panics
    /// When the temporary directory cannot be written (a broken test host).
    pub fn new(manifest: &str, secrets: &[(&str, &str, &[u8])]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let endpoint = dir.path().join("endpoint.yaml");
        let secrets_dir = dir.path().join("secrets");
        std::fs::create_dir_all(&secrets_dir).expect("the secrets directory");
        let files = Self {
            endpoint,
            secrets: secrets_dir,
            dir,
        };
        files.replace_manifest(manifest);
        for (name, key, content) in secrets {
            files.write_secret(name, key, content);
        }
        files
    }

    /// The manifest's path (`--endpoint`).
    pub fn endpoint(&self) -> &Path {
        &self.endpoint
    }

    /// The secrets directory (`--secrets-dir`).
    pub fn secrets_dir(&self) -> &Path {
        &self.secrets
    }

    /// The directory holding both.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the manifest at once (write, then rename), like a Secret
    /// update.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn replace_manifest(&self, manifest: &str) {
        atomic_write(&self.endpoint, manifest.as_bytes());
    }

    /// Writes (or replaces at once) the secret `name`/`key`.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write_secret(&self, name: &str, key: &str, content: &[u8]) {
        let dir = self.secrets.join(name);
        std::fs::create_dir_all(&dir).expect("a secret's directory");
        atomic_write(&dir.join(key), content);
    }

    /// Removes the secret `name`/`key`.
    ///
    /// # Panics
    /// When it exists and cannot be removed.
    pub fn remove_secret(&self, name: &str, key: &str) {
        match std::fs::remove_file(self.secrets.join(name).join(key)) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => panic!("removing secret {name}/{key}: {err}"),
        }
    }
}

fn atomic_write(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("hookwarden-tmp");
    std::fs::write(&tmp, content).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("renaming to {}: {e}", path.display()));
}
