//! A standalone receiver's own lists (in a cluster the operator fetches
//! them and writes the ranges into the manifest; its receivers have no
//! `allowedSources` left).
//!
//! The lists are kept in memory and, with `--source-ranges-dir`, in one
//! text file per list (`<dir>/<key>.txt`, one CIDR per line: the format
//! `hookwarden ranges fetch` writes). A list is taken, in this order:
//!
//! 1. from memory, unless its file changed since (another process, such as
//!    a cron job running `hookwarden ranges fetch`, wrote a newer list);
//! 2. from its file, when it is younger than the refresh interval (a
//!    restart does not fetch again);
//! 3. from the provider;
//! 4. from its file, however old, when the provider cannot be reached (with
//!    a warning);
//!
//! and otherwise the configuration does not load: at start the receiver
//! refuses to start, on a reload the previous configuration keeps serving.
//! A file or answer that is malformed or implausible is never taken.
//!
//! [`LocalRanges::refresh`] fetches every list again (the receiver does it
//! every `--source-ranges-refresh-secs`, with jitter); a change bumps
//! [`LocalRanges::version`], which the reload loop watches like the
//! manifest's files, so a new list is applied by the ordinary hot reload.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;

use super::fetch::{FetchError, RangeFetcher, unix_now};
use super::{ListSource, SavedList, formats, plausibility, texts};

/// Why the lists of a manifest are not all there.
#[derive(Debug, thiserror::Error)]
pub enum RangesError {
    /// A list could not be fetched and there is no saved copy.
    #[error(
        "spec.allowedSources: {list} cannot be fetched ({error}) and no saved copy exists{hint}"
    )]
    Unavailable {
        /// What the list is.
        list: String,
        /// Why the fetch failed.
        error: FetchError,
        /// Where a copy would have been looked for.
        hint: String,
    },
    /// The lists were not prepared ([`LocalRanges::prepare`]) or there is
    /// no fetcher at all (`check` of a manifest with `allowedSources`).
    #[error("spec.allowedSources: {0} has not been fetched")]
    NotPrepared(String),
}

#[derive(Debug, Clone)]
struct Kept {
    saved: SavedList,
    networks: Vec<IpNet>,
}

/// The lists of a standalone receiver.
#[derive(Debug)]
pub struct LocalRanges {
    fetcher: Arc<RangeFetcher>,
    dir: Option<PathBuf>,
    refresh: Duration,
    lists: Mutex<HashMap<String, Kept>>,
    version: AtomicU64,
}

impl LocalRanges {
    /// Lists fetched by `fetcher`, kept in `dir` (if any), refreshed every
    /// `refresh`.
    pub fn new(fetcher: Arc<RangeFetcher>, dir: Option<PathBuf>, refresh: Duration) -> Self {
        Self {
            fetcher,
            dir,
            refresh,
            lists: Mutex::default(),
            version: AtomicU64::new(0),
        }
    }

    fn lists(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts the changes of any list's ranges.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// How often the lists are fetched again.
    pub fn refresh_interval(&self) -> Duration {
        self.refresh
    }

    /// The file of `source`, with a directory.
    pub fn file_of(&self, source: &ListSource) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|dir| dir.join(format!("{}.txt", source.key())))
    }

    /// The ranges of `sources`, all prepared, together.
    pub fn networks(&self, sources: &[ListSource]) -> Result<Vec<IpNet>, RangesError> {
        let lists = self.lists();
        let mut nets = Vec::new();
        for source in sources {
            let kept = lists
                .get(&source.key())
                .ok_or_else(|| RangesError::NotPrepared(source.describe()))?;
            nets.extend(kept.networks.iter().copied());
        }
        Ok(super::canonical(nets))
    }

    /// Makes sure every list of `sources` is known (see the module's
    /// order).
    pub async fn prepare(&self, sources: &[ListSource]) -> Result<(), RangesError> {
        for source in sources {
            let key = source.key();
            let file = self.file_of(source).and_then(|path| read_file(&path));
            let known = self.lists().get(&key).cloned();
            match (known, file) {
                (Some(kept), Some(file))
                    if file.networks != kept.networks
                        && file.saved.fetched_at >= kept.saved.fetched_at =>
                {
                    tracing::info!(list = %source.describe(), "taking the newer saved copy of a source range list");
                    self.keep(&key, file);
                }
                (Some(_), _) => {}
                (None, Some(file))
                    if unix_now().saturating_sub(file.saved.fetched_at)
                        < i64::try_from(self.refresh.as_secs()).unwrap_or(i64::MAX) =>
                {
                    self.keep(&key, file);
                }
                (None, file) => match self.fetcher.fetch(source, None, unix_now()).await {
                    Ok(fetched) => {
                        self.save(source, &fetched.saved, &fetched.networks);
                        self.keep(
                            &key,
                            Kept {
                                saved: fetched.saved,
                                networks: fetched.networks,
                            },
                        );
                    }
                    Err(error) => match file {
                        Some(file) => {
                            tracing::warn!(list = %source.describe(), %error, fetched_at = file.saved.fetched_at, "cannot fetch a source range list; using its saved copy");
                            self.keep(&key, file);
                        }
                        None => {
                            return Err(RangesError::Unavailable {
                                list: source.describe(),
                                error,
                                hint: match self.file_of(source) {
                                    Some(path) => format!(" at {}", path.display()),
                                    None => " (no --source-ranges-dir)".to_owned(),
                                },
                            });
                        }
                    },
                },
            }
        }
        Ok(())
    }

    /// Fetches every list of `sources` again, conditionally; a good, changed
    /// list replaces the kept one (and its file). Failures are logged and
    /// change nothing. Returns whether any list changed.
    pub async fn refresh(&self, sources: &[ListSource]) -> bool {
        let mut changed = false;
        for source in sources {
            let key = source.key();
            let previous = self.lists().get(&key).map(|kept| kept.saved.clone());
            match self
                .fetcher
                .fetch(source, previous.as_ref(), unix_now())
                .await
            {
                Ok(fetched) => {
                    if let Some((added, removed)) = &fetched.changes {
                        tracing::info!(
                            list = %source.describe(),
                            added = ?texts(added),
                            removed = ?texts(removed),
                            "a source range list changed"
                        );
                        self.save(source, &fetched.saved, &fetched.networks);
                        changed = true;
                    }
                    self.keep(
                        &key,
                        Kept {
                            saved: fetched.saved,
                            networks: fetched.networks,
                        },
                    );
                }
                Err(error) => {
                    tracing::warn!(list = %source.describe(), %error, "cannot refresh a source range list; keeping the last good one");
                }
            }
        }
        changed
    }

    fn keep(&self, key: &str, kept: Kept) {
        let mut lists = self.lists();
        let changed = lists
            .get(key)
            .is_none_or(|before| before.networks != kept.networks);
        lists.insert(key.to_owned(), kept);
        if changed {
            self.version.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Writes the list's file (atomically: a temporary file renamed), if
    /// there is a directory. A failure is logged: the list is in memory.
    fn save(&self, source: &ListSource, saved: &SavedList, networks: &[IpNet]) {
        let Some(path) = self.file_of(source) else {
            return;
        };
        if let Err(error) = write_file(&path, &saved.source, networks) {
            tracing::warn!(path = %path.display(), %error, "cannot save a source range list");
        }
    }
}

impl super::age::ListFetchTimes for LocalRanges {
    fn fetch_times(&self) -> Vec<(String, i64)> {
        self.lists()
            .iter()
            .map(|(key, kept)| (key.clone(), kept.saved.fetched_at))
            .collect()
    }
}

/// Writes `networks` as a list file: comments saying what it is, then one
/// CIDR per line. Atomically, through `<path>.tmp`.
pub fn write_file(path: &Path, source: &str, networks: &[IpNet]) -> std::io::Result<()> {
    let mut text = format!(
        "# source ranges of {source}\n# fetched at {} (Unix seconds) by hookwarden; one CIDR per line\n",
        unix_now()
    );
    for net in networks {
        text.push_str(&net.to_string());
        text.push('\n');
    }
    let tmp = path.with_extension("txt.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The largest list file read.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The ranges of a list file: at most 4 MiB, strict, plausible.
pub fn read_list_file(path: &Path) -> Result<Vec<IpNet>, String> {
    let metadata = std::fs::metadata(path).map_err(|err| err.to_string())?;
    if metadata.len() > MAX_FILE_BYTES {
        return Err("larger than 4 MiB".to_owned());
    }
    let body = std::fs::read(path).map_err(|err| err.to_string())?;
    let nets = formats::text_lines(&body)
        .map(super::canonical)
        .map_err(|err| err.to_string())?;
    plausibility::check(&nets, None).map_err(|err| err.to_string())?;
    Ok(nets)
}

/// A list file, if it exists and [`read_list_file`] takes it; its time is
/// its modification time.
fn read_file(path: &Path) -> Option<Kept> {
    let metadata = std::fs::metadata(path).ok()?;
    let modified = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    match read_list_file(path) {
        Ok(networks) => Some(Kept {
            saved: SavedList {
                source: path.display().to_string(),
                cidrs: texts(&networks),
                fetched_at: modified,
                changed_at: modified,
                etag: None,
                last_modified: None,
            },
            networks,
        }),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "a saved source range list is not usable; ignored");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fetch::test_server::{Canned, ListServer};
    use super::*;

    fn github() -> ListSource {
        ListSource::Github {
            service: "hooks".to_owned(),
        }
    }

    fn meta(hooks: &[&str]) -> Vec<u8> {
        serde_json::json!({ "hooks": hooks })
            .to_string()
            .into_bytes()
    }

    #[tokio::test]
    async fn fetched_then_refreshed_and_kept_through_failures() {
        let server = ListServer::start(&["api.github.com"]).await;
        let dir = tempfile::tempdir().expect("dir");
        let local = LocalRanges::new(
            Arc::new(server.fetcher(Duration::from_secs(2))),
            Some(dir.path().to_owned()),
            Duration::from_secs(3600),
        );
        let sources = [github()];
        assert!(matches!(
            local.networks(&sources),
            Err(RangesError::NotPrepared(_))
        ));
        // Nothing served yet, no file: unavailable, naming the list.
        let err = local.prepare(&sources).await.expect_err("no list");
        assert!(err.to_string().contains("github hooks"), "{err}");

        server.serve("/meta", Canned::ok(meta(&["127.0.0.0/8"])));
        local.prepare(&sources).await.expect("fetched");
        assert_eq!(
            texts(&local.networks(&sources).expect("known")),
            ["127.0.0.0/8"]
        );
        let saved = std::fs::read_to_string(dir.path().join("github-hooks.txt")).expect("file");
        assert!(saved.lines().any(|l| l == "127.0.0.0/8"), "{saved}");
        let version = local.version();

        server.serve("/meta", Canned::ok(meta(&["10.0.0.0/8"])));
        assert!(local.refresh(&sources).await);
        assert_eq!(
            texts(&local.networks(&sources).expect("known")),
            ["10.0.0.0/8"]
        );
        assert!(local.version() > version);

        for bad in [
            Canned {
                status: 503,
                ..Canned::ok(Vec::new())
            },
            Canned::ok(meta(&["0.0.0.0/0"])),
            Canned::ok(b"<html>".to_vec()),
        ] {
            server.serve("/meta", bad);
            assert!(!local.refresh(&sources).await);
            assert_eq!(
                texts(&local.networks(&sources).expect("kept")),
                ["10.0.0.0/8"]
            );
        }

        // A restart: the fresh file is taken without a fetch, even with
        // the provider down.
        let restarted = LocalRanges::new(
            Arc::new(server.fetcher(Duration::from_secs(2))),
            Some(dir.path().to_owned()),
            Duration::from_secs(3600),
        );
        restarted.prepare(&sources).await.expect("from the file");
        assert_eq!(
            texts(&restarted.networks(&sources).expect("known")),
            ["10.0.0.0/8"]
        );

        // Another writer replaces the file: taken on the next prepare.
        write_file(
            &dir.path().join("github-hooks.txt"),
            "test",
            &["192.0.2.0/24".parse().expect("net")],
        )
        .expect("write");
        restarted.prepare(&sources).await.expect("newer file");
        assert_eq!(
            texts(&restarted.networks(&sources).expect("known")),
            ["192.0.2.0/24"]
        );
        // An implausible file is not.
        std::fs::write(dir.path().join("github-hooks.txt"), "0.0.0.0/0\n").expect("write");
        restarted.prepare(&sources).await.expect("kept");
        assert_eq!(
            texts(&restarted.networks(&sources).expect("known")),
            ["192.0.2.0/24"]
        );
    }

    #[tokio::test]
    async fn a_stale_file_is_used_when_the_provider_is_down() {
        let server = ListServer::start(&["api.github.com"]).await;
        let dir = tempfile::tempdir().expect("dir");
        write_file(
            &dir.path().join("github-hooks.txt"),
            "test",
            &["127.0.0.0/8".parse().expect("net")],
        )
        .expect("write");
        // A refresh interval of zero: every file is stale.
        let local = LocalRanges::new(
            Arc::new(server.fetcher(Duration::from_secs(2))),
            Some(dir.path().to_owned()),
            Duration::ZERO,
        );
        local.prepare(&[github()]).await.expect("stale copy");
        assert_eq!(
            texts(&local.networks(&[github()]).expect("known")),
            ["127.0.0.0/8"]
        );
    }
}
