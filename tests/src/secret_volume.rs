//! A Secret volume updated the way the kubelet updates one (its atomic
//! writer): each version of the files is written to a new hidden
//! directory `..<timestamp>`, a `..data_tmp` symlink to it is renamed over
//! `..data` (one atomic step), and each visible file is a symlink
//! `<key> -> ..data/<key>`, added or removed afterwards. A reader sees the
//! old files or the new ones, and the hidden entries besides: what a pool
//! receiver reads from its mounted Secret.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Mutex;

/// A directory of files updated like a mounted Secret; removed on drop.
#[derive(Debug)]
pub struct SecretVolume {
    dir: tempfile::TempDir,
    files: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl SecretVolume {
    /// A volume holding `files` (`key`, content).
    ///
    /// # Panics
    /// When the temporary directory cannot be written (a broken test host).
    pub fn new(files: &[(&str, &[u8])]) -> Self {
        let volume = Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            files: Mutex::new(BTreeMap::new()),
        };
        volume.update(files, &[]);
        volume
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets each of `set` (`key`, content) and removes each of `remove`,
    /// in one atomic update.
    ///
    /// # Panics
    /// When the files cannot be written.
    pub fn update(&self, set: &[(&str, &[u8])], remove: &[&str]) {
        let mut files = self.files.lock().expect("files");
        for (key, content) in set {
            files.insert((*key).to_owned(), content.to_vec());
        }
        for key in remove {
            files.remove(*key);
        }
        let files: Vec<(String, Vec<u8>, i32)> = files
            .iter()
            .map(|(key, content)| (key.clone(), content.clone(), 0o644))
            .collect();
        write_atomic(self.dir.path(), &files, None).expect("the volume updated");
    }
}

/// Writes `files` (path under the volume → content) into `dir` as the
/// kubelet lays a volume out: mode per file, group fsGroup.
fn write_files(
    dir: &Path,
    files: &[(String, Vec<u8>, i32)],
    fs_group: Option<i64>,
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (path, content, mode) in files {
        if path.split('/').any(|part| part == ".." || part.is_empty()) {
            return Err(io::Error::other(format!(
                "volume path {path:?} is not allowed"
            )));
        }
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
            // Directories readable by the pod's user, like the kubelet's.
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
        }
        let temporary = file.with_extension("hookwarden-new");
        std::fs::write(&temporary, content)?;
        std::fs::set_permissions(
            &temporary,
            std::fs::Permissions::from_mode(
                u32::try_from(*mode).map_err(io::Error::other)? & 0o777,
            ),
        )?;
        if let Some(group) = fs_group {
            let group = u32::try_from(group).map_err(io::Error::other)?;
            std::os::unix::fs::chown(&temporary, Some(0), Some(group))?;
        }
        std::fs::rename(&temporary, &file)?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Lays `files` out in `dir` as the kubelet's atomic writer does: the
/// files in a new `..<timestamp>` directory (by [`write_files`]), `..data`
/// switched to it by one rename, a symlink through `..data` for each
/// top-level name, and whatever the previous version had and this one has
/// not removed. A reader of `<dir>/<name>` sees the old version or the new
/// one, never a mix; names starting with `.` are the writer's own. The
/// pod runner lays out pods' Secret and ConfigMap volumes with it, and
/// [`SecretVolume`] a test's.
pub fn write_atomic(
    dir: &Path,
    files: &[(String, Vec<u8>, i32)],
    fs_group: Option<i64>,
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(io::Error::other)?
        .as_nanos();
    let version = format!("..{nanos}");
    write_files(&dir.join(&version), files, fs_group)?;
    let staged = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(&version, &staged)?;
    std::fs::rename(&staged, dir.join("..data"))?;
    let top: std::collections::BTreeSet<&str> = files
        .iter()
        .filter_map(|(path, _, _)| path.split('/').next())
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = if name.starts_with("..") {
            name != version && name != "..data"
        } else {
            !top.contains(name.as_str())
        };
        if stale {
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}
