//! Webhook secrets, read from files laid out like mounted Kubernetes
//! Secrets: `<secrets-dir>/<secret name>/<key>` for a dedicated receiver,
//! or the flat files of a pool's one Secret, `<pool-dir>/secret.<secret
//! name>_<key>` ([`SecretsLayout`], [`crate::pool::layout`]).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use hookwarden_crds::SecretKeyRef;

/// The largest secret value taken, in bytes: 16 KiB. A webhook secret, a
/// token or a NATS `.creds` file is a few hundred bytes to 2 KiB, a
/// destination's private CA bundle a few certificates (about 10 fit); a
/// value past that is a mistake (a wrong key referenced, a file pasted in).
/// Every secret is built into the log filter's automata in about a dozen
/// forms while the filter's lock is held, so a large value stalls every log
/// line of the process while it is added (a 360 KiB value held the
/// operator's for minutes). The operator refuses such a value with the same
/// limit before it renders anything.
pub const MAX_SECRET_VALUE_BYTES: usize = 16 * 1024;

/// Secret bytes. `Debug` never shows them, so a secret cannot leak through a
/// log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The secret bytes, for computing a signature. Never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for Secret {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why the endpoint's secrets could not be loaded. Errors name the reference
/// and the file, never the secret's content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The reference's name or key cannot be a file name in the secrets
    /// directory (it would escape it, or is not a valid Kubernetes name).
    #[error("secretRef {name}/{key} is not a valid Secret name and key")]
    InvalidRef {
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
    },
    /// The secret file could not be read.
    #[error("cannot read secretRef {name}/{key} from {}: {source}", path.display())]
    Read {
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The secret file is empty; an empty HMAC key would make signatures
    /// anyone can forge.
    #[error("secretRef {name}/{key} ({}) is empty", path.display())]
    Empty {
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
    },
    /// The secret file is larger than [`MAX_SECRET_VALUE_BYTES`].
    #[error(
        "secretRef {name}/{key} ({}) is larger than {} KiB; a webhook secret, token or CA bundle is a few KiB: check that the reference names the right key",
        path.display(),
        MAX_SECRET_VALUE_BYTES / 1024
    )]
    TooLarge {
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
    },
    /// The secret file holds only whitespace (what `echo > file` or an
    /// editor's lone newline writes). As a key it is as guessable as an
    /// empty one, and it is almost always a mistake, never a chosen secret.
    #[error("secretRef {name}/{key} ({}) holds only whitespace", path.display())]
    Blank {
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
    },
}

/// Where the file of a secret reference is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsLayout {
    /// `<dir>/<secret name>/<key>`: each Secret mounted as a directory (a
    /// dedicated receiver's `--secrets-dir`).
    PerSecret(PathBuf),
    /// `<dir>/secret.<secret name>_<key>`: the keys of a pool's one Secret
    /// (`--pool-dir`, named by [`crate::pool::layout::secret_file`]).
    Pool(PathBuf),
}

impl SecretsLayout {
    /// The file of `secret_ref`, or `None` when its name or key could point
    /// elsewhere (outside the directory, or at another file's name).
    pub fn path(&self, secret_ref: &SecretKeyRef) -> Option<PathBuf> {
        let SecretKeyRef { name, key } = secret_ref;
        if !valid_component(name) || !valid_component(key) {
            return None;
        }
        Some(match self {
            Self::PerSecret(dir) => dir.join(name).join(key),
            Self::Pool(dir) => dir.join(crate::pool::layout::secret_file(name, key)),
        })
    }
}

/// Reads every reference from `<dir>/<name>/<key>`, in order (the order is
/// the secret index a verification reports).
///
/// The bytes are taken exactly as stored, like Kubernetes mounts them; a
/// trailing newline is part of the secret.
pub fn load(dir: &Path, refs: &[SecretKeyRef]) -> Result<Vec<Secret>, SecretError> {
    load_from(&SecretsLayout::PerSecret(dir.to_owned()), refs)
}

/// As [`load`], from the files of `layout`.
pub fn load_from(
    layout: &SecretsLayout,
    refs: &[SecretKeyRef],
) -> Result<Vec<Secret>, SecretError> {
    refs.iter().map(|r| load_one(layout, r)).collect()
}

/// One reference from the files of `layout` (a `.creds` file, a CA
/// bundle): the checks of [`load_from`].
pub fn load_one(layout: &SecretsLayout, secret_ref: &SecretKeyRef) -> Result<Secret, SecretError> {
    let SecretKeyRef { name, key } = secret_ref;
    let Some(path) = layout.path(secret_ref) else {
        return Err(SecretError::InvalidRef {
            name: name.clone(),
            key: key.clone(),
        });
    };
    let bytes = read_bounded(&path).map_err(|source| SecretError::Read {
        name: name.clone(),
        key: key.clone(),
        path: path.clone(),
        source,
    })?;
    if bytes.len() > MAX_SECRET_VALUE_BYTES {
        return Err(SecretError::TooLarge {
            name: name.clone(),
            key: key.clone(),
            path,
        });
    }
    if bytes.is_empty() {
        return Err(SecretError::Empty {
            name: name.clone(),
            key: key.clone(),
            path,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(SecretError::Blank {
            name: name.clone(),
            key: key.clone(),
            path,
        });
    }
    // From now on no log line shows it, whoever writes it.
    crate::logging::register_secret(&bytes);
    Ok(Secret(bytes))
}

/// At most one byte more than [`MAX_SECRET_VALUE_BYTES`] of the file at
/// `path`: enough to tell a value over the limit without reading all of it.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_SECRET_VALUE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A Secret name or key as Kubernetes allows them (`[-._a-zA-Z0-9]+`), and
/// never `.` or `..`, so a reference cannot point outside the directory.
fn valid_component(text: &str) -> bool {
    !text.is_empty()
        && text != "."
        && text != ".."
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_ref(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.to_owned(),
            key: key.to_owned(),
        }
    }

    fn write(dir: &Path, name: &str, key: &str, content: &[u8]) {
        std::fs::create_dir_all(dir.join(name)).expect("mkdir");
        std::fs::write(dir.join(name).join(key), content).expect("write");
    }

    #[test]
    fn loads_every_ref_in_order_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "github-webhook", "secret", b"new\n");
        write(dir.path(), "github-webhook", "previous", b"old");
        let secrets = load(
            dir.path(),
            &[
                secret_ref("github-webhook", "secret"),
                secret_ref("github-webhook", "previous"),
            ],
        )
        .expect("loads");
        assert_eq!(secrets.len(), 2);
        assert_eq!(secrets[0].expose(), b"new\n");
        assert_eq!(secrets[1].expose(), b"old");
    }

    #[test]
    fn a_missing_file_names_the_ref_and_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load(dir.path(), &[secret_ref("gh", "secret")]).expect_err("missing");
        let message = err.to_string();
        assert!(matches!(err, SecretError::Read { .. }), "{message}");
        assert!(message.contains("gh/secret"), "{message}");
        assert!(
            message.contains(&dir.path().join("gh").join("secret").display().to_string()),
            "{message}"
        );
    }

    #[test]
    fn a_value_at_the_limit_is_read_whole_and_one_byte_more_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "gh",
            "secret",
            &vec![b'k'; MAX_SECRET_VALUE_BYTES],
        );
        write(
            dir.path(),
            "gh",
            "pasted",
            &vec![b'k'; MAX_SECRET_VALUE_BYTES + 1],
        );
        // Read, not loaded: loading registers the value with the process's
        // log filter, which every other test of this binary then searches.
        let read = read_bounded(&dir.path().join("gh").join("secret")).expect("read");
        assert_eq!(read.len(), MAX_SECRET_VALUE_BYTES);
        let err = load(dir.path(), &[secret_ref("gh", "pasted")]).expect_err("over the limit");
        assert!(matches!(err, SecretError::TooLarge { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("gh/pasted") && message.contains("16 KiB"),
            "{message}"
        );
        assert!(!message.contains("kkkk"), "{message}");
    }

    #[test]
    fn an_empty_secret_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "gh", "secret", b"");
        let err = load(dir.path(), &[secret_ref("gh", "secret")]).expect_err("empty");
        assert!(matches!(err, SecretError::Empty { .. }), "{err}");
        assert!(err.to_string().contains("gh/secret"), "{err}");
    }

    #[test]
    fn a_secret_of_only_whitespace_is_an_error_that_does_not_show_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        for blank in [&b"\n"[..], b" ", b"\r\n", b" \t \n\n"] {
            write(dir.path(), "gh", "secret", blank);
            let err = load(dir.path(), &[secret_ref("gh", "secret")]).expect_err("blank");
            assert!(matches!(err, SecretError::Blank { .. }), "{err}");
            assert!(err.to_string().contains("gh/secret"), "{err}");
            assert!(err.to_string().contains("only whitespace"), "{err}");
        }
        // Whitespace around real content is part of the secret, byte for byte.
        write(dir.path(), "gh", "secret", b" s3cret\n");
        let secrets = load(dir.path(), &[secret_ref("gh", "secret")]).expect("loads");
        assert_eq!(secrets[0].expose(), b" s3cret\n");
    }

    #[test]
    fn refs_cannot_escape_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, key) in [
            ("..", "passwd"),
            ("gh", "../x"),
            ("/etc", "passwd"),
            ("", "k"),
        ] {
            let err = load(dir.path(), &[secret_ref(name, key)]).expect_err("invalid");
            assert!(matches!(err, SecretError::InvalidRef { .. }), "{err}");
        }
    }

    #[test]
    fn a_pool_reads_the_flat_files_of_its_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret.gh_secret"), b"s3cret").expect("write");
        let layout = SecretsLayout::Pool(dir.path().to_owned());
        let secrets = load_from(&layout, &[secret_ref("gh", "secret")]).expect("loads");
        assert_eq!(secrets[0].expose(), b"s3cret");
        let err = load_from(&layout, &[secret_ref("gh", "other")]).expect_err("missing");
        assert!(err.to_string().contains("secret.gh_other"), "{err}");
        for (name, key) in [("..", "x"), ("gh", "../x"), ("gh", "a/b")] {
            let err = load_from(&layout, &[secret_ref(name, key)]).expect_err("invalid");
            assert!(matches!(err, SecretError::InvalidRef { .. }), "{err}");
        }
    }

    #[test]
    fn errors_and_debug_never_show_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "gh", "secret", b"hunter2");
        let secrets = load(dir.path(), &[secret_ref("gh", "secret")]).expect("loads");
        assert_eq!(format!("{secrets:?}"), "[[redacted]]");
        let err = load(
            dir.path(),
            &[secret_ref("gh", "secret"), secret_ref("gh", "absent")],
        )
        .expect_err("second missing");
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }
}
