//! Reading a pool's directory and applying it endpoint by endpoint.
//!
//! Every reload interval the directory is listed and each endpoint file
//! fingerprinted with the secret files it names
//! ([`crate::reload::fingerprint_reading`]), unless every one of those files
//! is as when last fingerprinted ([`super::stamps`]: a few `stat` calls, no
//! read); the endpoints whose fingerprint
//! changed are loaded again, all at once so a slow one (its stream being
//! set up while NATS is away) does not hold the others back. A version that
//! loads is swapped into that endpoint's own state
//! ([`crate::server::AppState::replace`]: connections and requests in
//! flight are untouched); one that does not is reported and the endpoint
//! keeps its last good version. Then the route table is rebuilt from the
//! served endpoints and swapped in whole.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use hookwarden_crds::RateLimitSpec;

use super::layout;
use super::routes::{Conflict, Route, RouteTable};
use super::serve::{PoolState, Routed, StatusBoard};
use super::stamps::Stamps;
use super::{ConfigState, EndpointStatus, set_state_metric};
use crate::publish::EnsureStreamError;
use crate::readiness::Readiness;
use crate::reload;
use crate::server::AppState;

mod load;

pub use self::load::{PoolLoadError, PoolSources};

use self::load::{Loaded, fingerprint, load};

/// How many endpoints a scan loads at once (each may create or look up its
/// stream in JetStream). All at once, 10,000 stream requests timed out by
/// the thousands; one at a time, a NATS outage would hold a scan for one
/// request timeout per endpoint. 256 keeps an operator-rendered pool (a few
/// hundred members fit its Secret) to one round, and 10,000 to 40. Not yet
/// measured at 10,000 (`bench/pool-scale.sh`).
const LOAD_CONCURRENCY: usize = 256;

/// The version of an endpoint being served.
#[derive(Debug)]
struct Served {
    state: AppState,
    route: Route,
    sha256: String,
    /// Unchanged limits keep their buckets across a reload.
    rate_limit: Option<RateLimitSpec>,
}

/// A version of an endpoint's files that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failed {
    fingerprint: [u8; 32],
    attempts: u32,
    retry_at: Option<tokio::time::Instant>,
    error: String,
}

/// What the pool knows of one endpoint file.
#[derive(Debug, Default)]
struct Entry {
    served: Option<Served>,
    /// The fingerprint of the files `served` was loaded from.
    applied: Option<[u8; 32]>,
    failed: Option<Failed>,
    /// Why its stream, managed elsewhere, cannot take deliveries.
    stream_problem: Option<String>,
    /// The files of its last fingerprint as they were, and that
    /// fingerprint: while they are unchanged it is not computed again.
    stamped: Option<(Stamps, [u8; 32])>,
    /// The route of a never served endpoint whose configuration checks but
    /// whose stream could not be set up yet: answered 503 meanwhile.
    waiting: Option<Route>,
}

/// Whether an endpoint whose files fingerprint `seen` now is to be loaded
/// at `now`, and as which attempt: a new or changed version at once, a
/// version that failed again only when its retry is due.
fn attempt_due(
    applied: Option<[u8; 32]>,
    failed: Option<&Failed>,
    seen: [u8; 32],
    now: tokio::time::Instant,
) -> Option<u32> {
    if applied == Some(seen) {
        return None;
    }
    match failed {
        Some(failed) if failed.fingerprint == seen => match failed.retry_at {
            Some(at) if now >= at => Some(failed.attempts.saturating_add(1)),
            _ => None,
        },
        _ => Some(1),
    }
}

/// The status of every endpoint file: `routes` held, `conflicts` not.
fn statuses<'a>(
    entries: impl Iterator<Item = (&'a String, &'a Entry)>,
    conflicts: &[Conflict],
) -> Vec<EndpointStatus> {
    entries
        .map(|(name, entry)| {
            let conflict = conflicts.iter().find(|c| &c.endpoint == name);
            let served = entry.served.as_ref();
            let (state, error) = match (&entry.failed, conflict) {
                (Some(failed), _) => (ConfigState::Failed, Some(failed.error.clone())),
                (None, Some(conflict)) => (
                    ConfigState::Conflict,
                    Some(format!(
                        "its host and path are served by endpoint {}",
                        conflict.held_by
                    )),
                ),
                (None, None) => (ConfigState::Serving, None),
            };
            EndpointStatus {
                name: name.clone(),
                state,
                config_sha256: served.map(|s| s.sha256.clone()),
                error,
                routed: served.is_some() && conflict.is_none(),
                stream_problem: entry.stream_problem.clone(),
            }
        })
        .collect()
}

fn redact(text: &str) -> String {
    String::from_utf8_lossy(&crate::logging::registry().redact(text.as_bytes())).into_owned()
}

/// The endpoint files in `dir`, by name.
pub fn endpoint_names(dir: &Path) -> std::io::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str().and_then(layout::endpoint_name) {
            names.insert(name.to_owned());
        }
    }
    Ok(names)
}

/// A pool's endpoints as loaded from its directory, applied to what is
/// served ([`PoolState`]) and reported ([`StatusBoard`]).
#[derive(Debug)]
pub struct Pool {
    sources: PoolSources,
    state: PoolState,
    board: StatusBoard,
    readiness: Readiness,
    entries: BTreeMap<String, Entry>,
    interval: Duration,
    stream_check_interval: Duration,
    next_stream_check: tokio::time::Instant,
    /// Whether a scan published the routes and statuses yet.
    published: bool,
}

impl Pool {
    /// A pool that serves nothing until [`Pool::scan`], reading its files
    /// every `interval` once [`Pool::watch`]ing, and looking up the streams
    /// managed elsewhere (`createStream: false`) every
    /// `stream_check_interval`.
    pub fn new(
        sources: PoolSources,
        state: PoolState,
        readiness: Readiness,
        interval: Duration,
        stream_check_interval: Duration,
    ) -> Self {
        Self {
            sources,
            state,
            board: StatusBoard::default(),
            readiness,
            entries: BTreeMap::new(),
            interval,
            stream_check_interval,
            next_stream_check: tokio::time::Instant::now() + stream_check_interval,
            published: false,
        }
    }

    /// What `GET /endpoints` shows.
    pub fn board(&self) -> StatusBoard {
        self.board.clone()
    }

    /// Reads the directory once and applies it. An unreadable directory
    /// makes the pool unready (`/readyz`) and changes nothing served.
    pub async fn scan(&mut self) {
        let names = match endpoint_names(&self.sources.dir) {
            Ok(names) => names,
            Err(err) => {
                tracing::error!(
                    dir = %self.sources.dir.display(),
                    error = %err,
                    "cannot read the pool's directory; serving what was loaded before"
                );
                self.readiness.set_config_loaded(false);
                return;
            }
        };
        self.readiness.set_config_loaded(true);
        let metrics = Arc::clone(self.state.bounds().metrics());
        // Whether what is served or reported changes: an idle scan (the
        // usual one) neither rebuilds the route table nor the statuses.
        let mut changed = !self.published;
        let gone: Vec<String> = self
            .entries
            .keys()
            .filter(|name| !names.contains(*name))
            .cloned()
            .collect();
        for name in gone {
            changed = true;
            self.entries.remove(&name);
            set_state_metric(&metrics, &name, None);
            tracing::info!(endpoint = name.as_str(), "endpoint removed from the pool");
        }
        let now = tokio::time::Instant::now();
        let ranges_version = self.sources.ranges.as_ref().map(|r| r.version());
        let mut due = Vec::new();
        for name in &names {
            let entry = self.entries.entry(name.clone()).or_default();
            let seen = match &entry.stamped {
                Some((stamps, fingerprint)) if stamps.unchanged(ranges_version) => *fingerprint,
                _ => {
                    let (fingerprint, stamps) = fingerprint(&self.sources, name, ranges_version);
                    entry.stamped = stamps.map(|stamps| (stamps, fingerprint));
                    fingerprint
                }
            };
            if entry.applied == Some(seen) && entry.failed.take().is_some() {
                changed = true;
                tracing::info!(
                    endpoint = name.as_str(),
                    "the endpoint's files are back to the served version"
                );
            }
            if let Some(attempts) = attempt_due(entry.applied, entry.failed.as_ref(), seen, now) {
                let target = entry.served.as_ref().map(|s| s.state.target());
                due.push((name.clone(), seen, attempts, target));
            }
        }
        changed |= !due.is_empty();
        let sources = &self.sources;
        // At most LOAD_CONCURRENCY at once (results in `due`'s order): a
        // pool starting with 10,000 endpoints sent 10,000 stream requests
        // to JetStream together, and 4,462 of them timed out
        // (docs/benchmarks.md, "Receiver pool at scale").
        // (Collected first: a stream over the `map` closure itself is not
        // `Send` for every lifetime, as the spawned watch needs.)
        let loads: Vec<_> = due
            .iter()
            .map(|(name, _, _, target)| load(sources, name, target.as_ref()))
            .collect();
        let loaded: Vec<_> = futures::stream::iter(loads)
            .buffered(LOAD_CONCURRENCY)
            .collect()
            .await;
        for ((name, seen, attempts, _), result) in due.into_iter().zip(loaded) {
            let Some(entry) = self.entries.get_mut(&name) else {
                continue;
            };
            apply(
                &self.state,
                self.interval,
                &name,
                entry,
                (seen, attempts),
                result,
            );
        }
        if tokio::time::Instant::now() >= self.next_stream_check {
            self.check_streams().await;
            self.next_stream_check = tokio::time::Instant::now() + self.stream_check_interval;
            changed = true;
        }
        if changed {
            self.publish_routes();
            self.published = true;
        }
    }

    /// Looks up the stream of every served endpoint whose stream is managed
    /// elsewhere (`createStream: false`), all at once: one deleted under the
    /// pool is reported on `/endpoints` (deliveries to that endpoint get 503
    /// meanwhile). A managed stream is not polled: the next publish that
    /// finds it gone creates it again. The pool's readiness is not touched:
    /// one endpoint's stream is not the others' trouble.
    async fn check_streams(&mut self) {
        let unmanaged: Vec<(String, crate::publish::Publisher)> = self
            .entries
            .iter()
            .filter_map(|(name, entry)| {
                let publisher = entry.served.as_ref()?.state.publisher();
                (!publisher.target().settings.create).then(|| (name.clone(), publisher))
            })
            .collect();
        let checks = futures::future::join_all(
            unmanaged
                .iter()
                .map(|(_, publisher)| publisher.check_stream()),
        )
        .await;
        for ((name, _), checked) in unmanaged.iter().zip(checks) {
            let Some(entry) = self.entries.get_mut(name) else {
                continue;
            };
            match checked {
                Ok(()) => entry.stream_problem = None,
                Err(
                    err @ (EnsureStreamError::NotFound { .. }
                    | EnsureStreamError::Conflict(_)
                    | EnsureStreamError::Rejected { .. }),
                ) => {
                    tracing::error!(
                        endpoint = name.as_str(),
                        error = %err,
                        "the endpoint's JetStream stream cannot take deliveries"
                    );
                    entry.stream_problem = Some(err.to_string());
                }
                // NATS itself is away: `/readyz` says so.
                Err(err) => tracing::debug!(error = %err, "the stream check got no answer"),
            }
        }
    }

    /// Rebuilds the route table from the served endpoints, serves it, and
    /// publishes every file's status.
    fn publish_routes(&self) {
        let served: BTreeMap<String, (Route, Routed)> = self
            .entries
            .iter()
            .filter_map(|(name, entry)| {
                let served = entry.served.as_ref()?;
                let routed = Routed::Endpoint(served.state.clone());
                Some((name.clone(), (served.route.clone(), routed)))
            })
            .collect();
        let (mut table, conflicts) = RouteTable::build(served);
        // After the served ones: a waiting endpoint never takes a route
        // another endpoint serves.
        for (name, entry) in &self.entries {
            if let (None, Some(route)) = (&entry.served, &entry.waiting) {
                table.insert_if_free(route, Routed::Unavailable(name.clone()));
            }
        }
        for conflict in &conflicts {
            tracing::warn!(
                endpoint = conflict.endpoint.as_str(),
                held_by = conflict.held_by.as_str(),
                "endpoint not served: another endpoint serves its host and path"
            );
        }
        self.state.set_routes(table);
        let statuses = statuses(self.entries.iter(), &conflicts);
        let metrics = self.state.bounds().metrics();
        for status in &statuses {
            set_state_metric(metrics, &status.name, Some(status.state));
        }
        self.board.set(statuses);
    }

    /// Scans every interval until `shutdown`.
    pub async fn watch(mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => return,
            }
            self.scan().await;
        }
    }
}

/// Applies the result of loading the endpoint `name` (its files seen as
/// `seen`, the `attempts`-th try of that version) to its `entry`.
fn apply(
    pool: &PoolState,
    interval: Duration,
    name: &str,
    entry: &mut Entry,
    (seen, attempts): ([u8; 32], u32),
    result: Result<Loaded, PoolLoadError>,
) {
    let metrics = pool.bounds().metrics();
    match result {
        Ok(Loaded {
            endpoint,
            mut pipeline,
            sha256,
        }) => {
            reload::log_source_restriction(&endpoint, &pipeline);
            let route = Route::of(endpoint.spec.ingress.as_ref());
            let rate_limit = endpoint.spec.rate_limit.clone();
            let state = match entry.served.take() {
                Some(served) => {
                    if served.rate_limit == rate_limit {
                        pipeline.limits = None;
                    }
                    served.state.replace(pipeline);
                    served.state
                }
                None => pool.bounds().endpoint(pipeline),
            };
            entry.served = Some(Served {
                state,
                route,
                sha256,
                rate_limit,
            });
            entry.applied = Some(seen);
            entry.failed = None;
            entry.waiting = None;
            metrics.record_reload("applied");
            tracing::info!(endpoint = name, attempts, "endpoint configuration loaded");
        }
        Err(err) => {
            let delay = err
                .is_retryable()
                .then(|| reload::retry_delay(interval, attempts));
            metrics.record_reload("failed");
            tracing::error!(
                endpoint = name,
                error = %err,
                attempts,
                retry_in_secs = delay.map(|d| d.as_secs_f64()),
                serving_previous = entry.served.is_some(),
                "endpoint configuration cannot be loaded; its last good one (if any) is served"
            );
            entry.waiting = err.waiting_route().cloned();
            entry.failed = Some(Failed {
                fingerprint: seen,
                attempts,
                retry_at: delay.map(|delay| tokio::time::Instant::now() + delay),
                // The registry of this process's secrets withholds any
                // that found its way into a message (defence in depth).
                error: redact(&err.to_string()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_loaded_once_and_a_failed_one_only_when_due() {
        let now = tokio::time::Instant::now();
        let (one, two) = ([1; 32], [2; 32]);
        assert_eq!(attempt_due(None, None, one, now), Some(1), "new file");
        assert_eq!(attempt_due(Some(one), None, one, now), None, "unchanged");
        assert_eq!(attempt_due(Some(one), None, two, now), Some(1), "changed");
        let failed = |retry_at| Failed {
            fingerprint: two,
            attempts: 3,
            retry_at,
            error: "broken".to_owned(),
        };
        assert_eq!(
            attempt_due(Some(one), Some(&failed(None)), two, now),
            None,
            "a broken file waits for a change"
        );
        assert_eq!(
            attempt_due(Some(one), Some(&failed(Some(now))), two, now),
            Some(4),
            "a retryable failure is tried again when due"
        );
        assert_eq!(
            attempt_due(
                Some(one),
                Some(&failed(Some(now + Duration::from_secs(5)))),
                two,
                now
            ),
            None
        );
        assert_eq!(
            attempt_due(Some(one), Some(&failed(None)), [3; 32], now),
            Some(1),
            "a new version of a broken file is tried at once"
        );
    }

    #[test]
    fn statuses_say_served_failed_and_conflicting_files() {
        let failed = Failed {
            fingerprint: [0; 32],
            attempts: 1,
            retry_at: None,
            error: "endpoint.b.yaml: bad".to_owned(),
        };
        let entries: BTreeMap<String, Entry> = [(
            "b".to_owned(),
            Entry {
                failed: Some(failed),
                ..Entry::default()
            },
        )]
        .into_iter()
        .collect();
        let conflicts = [Conflict {
            endpoint: "c".to_owned(),
            held_by: "a".to_owned(),
        }];
        let statuses = statuses(entries.iter(), &conflicts);
        assert_eq!(
            statuses,
            [EndpointStatus {
                name: "b".to_owned(),
                state: ConfigState::Failed,
                config_sha256: None,
                error: Some("endpoint.b.yaml: bad".to_owned()),
                routed: false,
                stream_problem: None,
            }]
        );
    }
}
