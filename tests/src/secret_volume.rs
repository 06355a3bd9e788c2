//! A Secret volume updated the way the kubelet updates one (its atomic
//! writer): each version of the files is written to a new hidden
//! directory `..<timestamp>`, a `..data_tmp` symlink to it is renamed over
//! `..data` (one atomic step), and each visible file is a symlink
//! `<key> -> ..data/<key>`, added or removed afterwards. A reader sees the
//! old files or the new ones, and the hidden entries besides: what a pool
//! receiver reads from its mounted Secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A directory of files updated like a mounted Secret; removed on drop.
#[derive(Debug)]
pub struct SecretVolume {
    dir: tempfile::TempDir,
    files: Mutex<BTreeMap<String, Vec<u8>>>,
    versions: Mutex<u32>,
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
            versions: Mutex::new(0),
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
        let mut versions = self.versions.lock().expect("versions");
        *versions += 1;
        let version = format!("..2026_12_06_00_00_00.{:04}", *versions);
        let root = self.dir.path();
        let data = root.join(&version);
        std::fs::create_dir(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
        for (key, content) in files.iter() {
            std::fs::write(data.join(key), content).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
        let old = std::fs::read_link(root.join("..data")).ok();
        let tmp = root.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).expect("..data_tmp");
        std::fs::rename(&tmp, root.join("..data")).expect("..data swapped");
        // The visible names: new ones linked, gone ones unlinked.
        for entry in std::fs::read_dir(root).expect("the volume") {
            let name = entry.expect("an entry").file_name();
            let name = name.to_string_lossy();
            if !name.starts_with('.') && !files.contains_key(name.as_ref()) {
                std::fs::remove_file(root.join(name.as_ref())).expect("a removed key");
            }
        }
        for key in files.keys() {
            let link = root.join(key);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(PathBuf::from("..data").join(key), &link)
                    .expect("a key's link");
            }
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(root.join(old)).expect("the old version");
        }
    }
}
