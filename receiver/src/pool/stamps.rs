//! Telling that an endpoint's files are as last read without reading them,
//! so a pool's scan that finds nothing changed costs a few `stat` calls per
//! endpoint instead of reading, hashing and parsing every manifest
//! (docs/benchmarks.md, "Receiver pool at scale").
//!
//! Each file read for an endpoint's fingerprint is opened, its metadata
//! taken from the open file (`fstat`), then read from it: the stamp and
//! the bytes are of the same inode. The next scan `stat`s each path again
//! (following symlinks) and trusts the fingerprint only if every stamp is
//! the same: device, inode, length, modification and change times.
//!
//! - The kubelet's atomic writer never edits a file in place: it writes a
//!   new hidden directory and swaps the `..data` symlink, so a changed file
//!   is another inode behind the same path.
//! - A file replaced by a rename (`mv new old`) is another inode.
//! - A file edited in place keeps its inode; its change time (`ctime`, set
//!   by the kernel on every write or metadata change, and which no user can
//!   set back, unlike `mtime`) moves. But file systems keep times at a
//!   granularity (1 s, 2 s, or the kernel's clock tick), so a write in the
//!   same tick as the read could leave every field as it was. Hence a stamp
//!   is kept only if its change time is at least [`SETTLED`] older than the
//!   moment before the file was opened: any later write gets a change time
//!   after it. A file changed within the last [`SETTLED`] is read again at
//!   every scan until it settles (the same rule as Git's "racily clean"
//!   index entries).
//!
//! A missing file is stamped as missing (its appearing is a change); a
//! file that cannot be opened or `stat`ed for another reason is never
//! trusted (read again every scan, as before stamps).

use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How much older than a read a file's change time must be for its stamp
/// to be trusted: above the coarsest timestamp granularity of a Linux file
/// system in use (FAT's 2 s) and the kernel's clock tick.
pub const SETTLED: Duration = Duration::from_secs(3);

/// What a file was when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    Missing,
    Present {
        dev: u64,
        ino: u64,
        len: u64,
        mtime: (i64, i64),
        ctime: (i64, i64),
    },
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self::Present {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The file at `path` now; `None` when that cannot be told.
    fn now(path: &Path) -> Option<Self> {
        match std::fs::metadata(path) {
            Ok(meta) => Some(Self::of(&meta)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Some(Self::Missing),
            Err(_) => None,
        }
    }

    /// Whether a write after `before` is sure to change this stamp.
    fn settled(&self, before: SystemTime) -> bool {
        match self {
            Self::Missing => true,
            Self::Present { ctime, .. } => {
                let Some(limit) = before
                    .checked_sub(SETTLED)
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                else {
                    return false;
                };
                let limit = (
                    i64::try_from(limit.as_secs()).unwrap_or(i64::MAX),
                    i64::from(limit.subsec_nanos()),
                );
                *ctime < limit
            }
        }
    }
}

/// The files an endpoint's fingerprint was computed from, as they were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamps {
    files: Vec<(PathBuf, Stamp)>,
    ranges_version: Option<u64>,
}

impl Stamps {
    /// Whether every file is as stamped and the lists' version the same:
    /// the fingerprint computed with them still holds.
    pub fn unchanged(&self, ranges_version: Option<u64>) -> bool {
        self.ranges_version == ranges_version
            && self
                .files
                .iter()
                .all(|(path, stamp)| Stamp::now(path) == Some(*stamp))
    }
}

/// Reads files and stamps them, for [`crate::reload::fingerprint_reading`].
#[derive(Debug)]
pub struct StampingReader {
    files: Vec<(PathBuf, Stamp)>,
    trusted: bool,
}

impl Default for StampingReader {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            trusted: true,
        }
    }
}

impl StampingReader {
    /// The content of `path` (`None`: missing or unreadable), its stamp
    /// noted.
    pub fn read(&mut self, path: &Path) -> Option<Vec<u8>> {
        self.read_after(path, SystemTime::now())
    }

    /// As [`StampingReader::read`], `before` the moment before opening.
    fn read_after(&mut self, path: &Path, before: SystemTime) -> Option<Vec<u8>> {
        let mut file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(err) => {
                if err.kind() == std::io::ErrorKind::NotFound {
                    self.files.push((path.to_owned(), Stamp::Missing));
                } else {
                    self.trusted = false;
                }
                return None;
            }
        };
        let stamp = match file.metadata() {
            Ok(meta) => Stamp::of(&meta),
            Err(_) => {
                self.trusted = false;
                return std::fs::read(path).ok();
            }
        };
        self.trusted &= stamp.settled(before);
        self.files.push((path.to_owned(), stamp));
        let mut bytes = Vec::new();
        match file.read_to_end(&mut bytes) {
            Ok(_) => Some(bytes),
            Err(_) => {
                self.trusted = false;
                None
            }
        }
    }

    /// The stamps of what was read, if each is sure to change with a later
    /// write.
    pub fn finish(self, ranges_version: Option<u64>) -> Option<Stamps> {
        self.trusted.then_some(Stamps {
            files: self.files,
            ranges_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `paths` as if the moment were `before`.
    fn stamped(paths: &[&Path], before: SystemTime) -> (Vec<Option<Vec<u8>>>, Option<Stamps>) {
        let mut reader = StampingReader::default();
        let read = paths.iter().map(|p| reader.read_after(p, before)).collect();
        (read, reader.finish(None))
    }

    #[test]
    fn a_file_just_written_is_not_trusted_and_read_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("endpoint.a.yaml");
        std::fs::write(&path, b"one").expect("write");
        let (read, stamps) = stamped(&[&path], SystemTime::now());
        assert_eq!(read, [Some(b"one".to_vec())]);
        assert_eq!(stamps, None, "changed within SETTLED: read again next scan");
    }

    #[test]
    fn a_settled_file_is_trusted_until_any_field_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = dir.path().join("endpoint.a.yaml");
        let secret = dir.path().join("secret.gh_secret");
        std::fs::write(&manifest, b"one").expect("write");
        // As read SETTLED after the write: its stamp is trusted.
        let later = SystemTime::now() + SETTLED + Duration::from_secs(1);
        let (read, stamps) = stamped(&[&manifest, &secret], later);
        assert_eq!(read, [Some(b"one".to_vec()), None]);
        let stamps = stamps.expect("settled and missing files are trusted");
        assert!(stamps.unchanged(None));
        assert!(!stamps.unchanged(Some(1)), "the lists' version changed");

        // The same length, written in place: the change time moves even
        // within the same second (or the stamp was not trusted at all).
        std::fs::write(&manifest, b"two").expect("write in place");
        assert!(!stamps.unchanged(None), "edited in place");

        let (_, stamps) = stamped(&[&manifest, &secret], later + SETTLED);
        let stamps = stamps.expect("trusted");
        std::fs::write(&secret, b"").expect("write");
        assert!(!stamps.unchanged(None), "a missing file appeared");

        let (_, stamps) = stamped(&[&manifest], later + SETTLED);
        let stamps = stamps.expect("trusted");
        let renamed = dir.path().join(".new");
        std::fs::write(&renamed, b"two").expect("write");
        std::fs::rename(&renamed, &manifest).expect("rename over");
        assert!(!stamps.unchanged(None), "replaced by a rename");
    }

    #[test]
    fn a_change_in_the_same_second_is_not_settled() {
        let before = SystemTime::now();
        let since = before.duration_since(UNIX_EPOCH).expect("after 1970");
        let stamp = Stamp::Present {
            dev: 1,
            ino: 1,
            len: 3,
            mtime: (0, 0),
            ctime: (
                i64::try_from(since.as_secs()).expect("fits"),
                i64::from(since.subsec_nanos()),
            ),
        };
        assert!(!stamp.settled(before), "changed at the read");
        assert!(!stamp.settled(before + SETTLED), "exactly SETTLED before");
        assert!(stamp.settled(before + SETTLED + Duration::from_nanos(1)));
        assert!(Stamp::Missing.settled(before));
    }
}
