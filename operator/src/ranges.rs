//! The published source ranges of every endpoint's `spec.allowedSources`:
//! fetched once per list (not per endpoint), refreshed on an interval with
//! jitter, the last good answer of each kept in the ConfigMap
//! [`CONFIGMAP_NAME`] in the operator's namespace, so a restart or a
//! provider's outage changes nothing.
//!
//! Reconciles ask [`SourceRanges::for_endpoint`] for an endpoint's ranges
//! (a list nobody fetched yet is fetched then, once for all asking); the
//! refresher ([`SourceRanges::run`]) fetches each list in use again, and
//! on a change writes the ConfigMap, records an Event with the added and
//! removed ranges on every endpoint that uses the list and has those
//! endpoints reconciled, which renders the new ranges into their
//! receivers' configuration (hot-reloaded, see
//! [`crate::resources::build_with_ranges`]). A failed, malformed or
//! implausible answer changes nothing but the list's error and age
//! (`SourceRangesCurrent`, `hookwarden_operator_source_range_list_age_seconds`).
//! What is fetched and how is [`hookwarden_core::ranges`], shared with
//! the receiver and the CLI.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookwarden_core::ranges::fetch::{RangeFetcher, unix_now};
use hookwarden_core::ranges::{self, ListSource, SavedList, texts};
use hookwarden_crds::WebhookEndpoint;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource};

use crate::FIELD_MANAGER;

/// The ConfigMap holding the last good answer of every list, one key per
/// list ([`ListSource::key`]), each a JSON [`SavedList`].
pub const CONFIGMAP_NAME: &str = "hookwarden-source-ranges";
/// How often a list is fetched again by default.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(6 * 3600);
/// How old a list may get before `SourceRangesCurrent` turns False.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// How soon a failed fetch is tried again (at most the refresh interval).
const FAILED_RETRY: Duration = Duration::from_secs(600);
/// How often the refresher looks for lists that are due.
const TICK: Duration = Duration::from_secs(5);

/// How the operator keeps the lists.
#[derive(Clone, Debug)]
pub struct RangesConfig {
    /// The operator's namespace, where [`CONFIGMAP_NAME`] is kept; `None`:
    /// in memory only (a restart fetches every list again).
    pub namespace: Option<String>,
    /// How often each list is fetched again (plus up to a tenth at random).
    pub refresh: Duration,
    /// How old a list may get before its condition warns.
    pub max_age: Duration,
    /// FOR TESTS ONLY: the fetcher, e.g. routed to a loopback list server
    /// ([`RangeFetcher::with_test_routes`]); `None`, always in the binary:
    /// the system's roots and DNS, public addresses only.
    pub fetcher: Option<Arc<RangeFetcher>>,
}

impl Default for RangesConfig {
    fn default() -> Self {
        Self {
            namespace: None,
            refresh: DEFAULT_REFRESH,
            max_age: DEFAULT_MAX_AGE,
            fetcher: None,
        }
    }
}

/// What an endpoint's lists are now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointRanges {
    /// Every list is known: their ranges together, and the condition.
    Known {
        /// The ranges, canonical, as text.
        ranges: Vec<String>,
        /// `SourceRangesCurrent`: whether every list is younger than the
        /// maximum age, and a message naming each list, its fetch time and
        /// size.
        current: bool,
        /// For people.
        message: String,
    },
    /// A list was never fetched and cannot be now.
    Unavailable {
        /// Which, and why.
        message: String,
    },
}

#[derive(Debug)]
struct List {
    source: ListSource,
    saved: Option<SavedList>,
    networks: Vec<IpNet>,
    users: HashSet<ObjectRef<WebhookEndpoint>>,
    error: Option<String>,
    /// Unix seconds when the refresher fetches it next.
    next_fetch: i64,
}

/// Every list in use, and the saved answers read from the ConfigMap.
pub struct SourceRanges {
    client: Client,
    config: RangesConfig,
    fetcher: Arc<RangeFetcher>,
    lists: Mutex<HashMap<String, List>>,
    /// Saved answers of lists no endpoint asked for yet (from the ConfigMap).
    saved: Mutex<BTreeMap<String, SavedList>>,
    /// One fetch of a list at a time.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    metrics: Arc<crate::ops::Metrics>,
}

impl std::fmt::Debug for SourceRanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceRanges")
            .field("config", &self.config)
            .field("lists", &lock(&self.lists).keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves only caches behind.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A random delay of up to a tenth of `interval`.
fn jitter(interval: Duration) -> i64 {
    let tenth = i64::try_from(interval.as_secs() / 10).unwrap_or(i64::MAX);
    rand::random_range(0..=tenth)
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

impl SourceRanges {
    /// The lists of the operator, with the saved answers of the ConfigMap
    /// (if it can be read: a failure is logged, the lists are fetched).
    pub async fn load(
        client: Client,
        config: RangesConfig,
        metrics: Arc<crate::ops::Metrics>,
    ) -> Arc<Self> {
        let fetcher = config
            .fetcher
            .clone()
            .unwrap_or_else(|| Arc::new(RangeFetcher::new()));
        let mut saved = BTreeMap::new();
        if let Some(namespace) = &config.namespace {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            match api.get_opt(CONFIGMAP_NAME).await {
                Ok(Some(map)) => {
                    for (key, json) in map.data.unwrap_or_default() {
                        match serde_json::from_str::<SavedList>(&json) {
                            Ok(list) if list.networks().is_ok() => {
                                saved.insert(key, list);
                            }
                            _ => tracing::warn!(
                                key,
                                "a saved source range list in ConfigMap {CONFIGMAP_NAME} is not usable; it is fetched again"
                            ),
                        }
                    }
                    tracing::info!(lists = saved.len(), "read the saved source range lists");
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot read ConfigMap {CONFIGMAP_NAME}; every source range list is fetched again")
                }
            }
        }
        for (key, list) in &saved {
            metrics.set_source_list_fetched(key, list.fetched_at);
        }
        Arc::new(Self {
            client,
            config,
            fetcher,
            lists: Mutex::default(),
            saved: Mutex::new(saved),
            fetching: Mutex::default(),
            metrics,
        })
    }

    /// The ranges of `endpoint`'s `allowedSources` (none: `None`), fetching
    /// a list nobody has fetched yet; registers the endpoint as a user of
    /// its lists (and no other), so a change of one reconciles it.
    pub async fn for_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
    ) -> Result<Option<EndpointRanges>, ranges::SourceError> {
        let reference = ObjectRef::from_obj(endpoint);
        let sources = ranges::sources_of(&endpoint.spec).map_err(|(_, err)| err)?;
        let keys: BTreeSet<String> = sources.iter().map(ListSource::key).collect();
        {
            let mut lists = lock(&self.lists);
            for (key, list) in lists.iter_mut() {
                if !keys.contains(key) {
                    list.users.remove(&reference);
                }
            }
        }
        if sources.is_empty() {
            return Ok(None);
        }
        let now = unix_now();
        let mut networks = Vec::new();
        let mut parts = Vec::new();
        let mut current = true;
        for source in &sources {
            let key = source.key();
            self.register(source, &reference, now);
            if self.known(&key).is_none() {
                self.fetch_first(source).await;
            }
            let lists = lock(&self.lists);
            let Some(list) = lists.get(&key) else {
                continue;
            };
            let Some(saved) = &list.saved else {
                return Ok(Some(EndpointRanges::Unavailable {
                    message: format!(
                        "{} has never been fetched: {}",
                        source.describe(),
                        list.error.as_deref().unwrap_or("not yet")
                    ),
                }));
            };
            networks.extend(list.networks.iter().copied());
            let age = now.saturating_sub(saved.fetched_at);
            let stale = age > secs(self.config.max_age);
            current &= !stale;
            let fetched = k8s_openapi::jiff::Timestamp::from_second(saved.fetched_at)
                .map_or_else(|_| saved.fetched_at.to_string(), |t| t.to_string());
            parts.push(format!(
                "{}: {} ranges, fetched {fetched}{}{}",
                source.describe(),
                list.networks.len(),
                if stale {
                    " (older than the maximum age)"
                } else {
                    ""
                },
                list.error
                    .as_deref()
                    .map(|e| format!("; the last fetch failed: {e}"))
                    .unwrap_or_default()
            ));
        }
        Ok(Some(EndpointRanges::Known {
            ranges: texts(&ranges::canonical(networks)),
            current,
            message: parts.join("; "),
        }))
    }

    /// Adds `reference` to the users of `source`'s list, creating the list
    /// (with its saved answer, if any) when it is new.
    fn register(&self, source: &ListSource, reference: &ObjectRef<WebhookEndpoint>, now: i64) {
        let key = source.key();
        let mut lists = lock(&self.lists);
        let list = lists.entry(key.clone()).or_insert_with(|| {
            let saved = lock(&self.saved).remove(&key);
            let networks = saved
                .as_ref()
                .and_then(|s| s.networks().ok())
                .unwrap_or_default();
            // A saved list is due when its age says so; a new one at once.
            let next_fetch = saved.as_ref().map_or(now, |s| {
                s.fetched_at
                    .saturating_add(secs(self.config.refresh))
                    .saturating_add(jitter(self.config.refresh))
            });
            List {
                source: source.clone(),
                saved,
                networks,
                users: HashSet::new(),
                error: None,
                next_fetch,
            }
        });
        list.users.insert(reference.clone());
    }

    fn known(&self, key: &str) -> Option<SavedList> {
        lock(&self.lists).get(key).and_then(|l| l.saved.clone())
    }

    fn lock_of(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(lock(&self.fetching).entry(key.to_owned()).or_default())
    }

    /// Fetches a list that has no answer yet, once for all who ask.
    async fn fetch_first(&self, source: &ListSource) {
        let key = source.key();
        let guard = self.lock_of(&key);
        let _guard = guard.lock().await;
        if self.known(&key).is_some() {
            return;
        }
        // Saved since the operator started (by the replica that led before,
        // or by a person restoring it)? Then it is not fetched now.
        if let Some(saved) = self.read_saved(&key).await {
            self.metrics.set_source_list_fetched(&key, saved.fetched_at);
            if let Some(list) = lock(&self.lists).get_mut(&key) {
                list.networks = saved.networks().unwrap_or_default();
                list.next_fetch = saved
                    .fetched_at
                    .saturating_add(secs(self.config.refresh))
                    .saturating_add(jitter(self.config.refresh));
                list.saved = Some(saved);
            }
            return;
        }
        self.fetch(source).await;
    }

    /// The usable saved answer of `key` in the ConfigMap, if any.
    async fn read_saved(&self, key: &str) -> Option<SavedList> {
        let namespace = self.config.namespace.as_ref()?;
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let map = api.get_opt(CONFIGMAP_NAME).await.ok()??;
        let saved: SavedList = serde_json::from_str(map.data?.get(key)?).ok()?;
        saved.networks().is_ok().then_some(saved)
    }

    /// Fetches `source`'s list (conditionally on its last good answer),
    /// keeps a good answer, saves a changed one; returns the users to
    /// reconcile and what changed.
    async fn fetch(
        &self,
        source: &ListSource,
    ) -> (
        Vec<ObjectRef<WebhookEndpoint>>,
        Option<(Vec<IpNet>, Vec<IpNet>)>,
    ) {
        let key = source.key();
        let previous = self.known(&key);
        let now = unix_now();
        let result = self.fetcher.fetch(source, previous.as_ref(), now).await;
        let (users, changes) = {
            let mut lists = lock(&self.lists);
            let Some(list) = lists.get_mut(&key) else {
                return (Vec::new(), None);
            };
            let changes = match result {
                Ok(fetched) => {
                    self.metrics
                        .set_source_list_fetched(&key, fetched.saved.fetched_at);
                    list.saved = Some(fetched.saved);
                    list.networks = fetched.networks;
                    list.error = None;
                    list.next_fetch = now
                        .saturating_add(secs(self.config.refresh))
                        .saturating_add(jitter(self.config.refresh));
                    fetched.changes
                }
                Err(error) => {
                    tracing::warn!(list = %source.describe(), %error, "cannot fetch a source range list; keeping the last good one");
                    list.error = Some(error.to_string());
                    let retry = FAILED_RETRY.min(self.config.refresh);
                    list.next_fetch = now
                        .saturating_add(secs(retry))
                        .saturating_add(jitter(retry));
                    None
                }
            };
            (list.users.iter().cloned().collect::<Vec<_>>(), changes)
        };
        if changes.is_some() {
            self.save().await;
        }
        (users, changes)
    }

    /// Writes every known list into the ConfigMap (server-side apply of the
    /// whole data: the operator owns the object). A failure is logged: the
    /// lists are in memory, and the next change writes again.
    async fn save(&self) {
        let Some(namespace) = &self.config.namespace else {
            return;
        };
        let mut data: BTreeMap<String, String> = lock(&self.saved)
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_string(v).unwrap_or_default()))
            .collect();
        for (key, list) in lock(&self.lists).iter() {
            if let Some(saved) = &list.saved {
                data.insert(
                    key.clone(),
                    serde_json::to_string(saved).unwrap_or_default(),
                );
            }
        }
        let map = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": CONFIGMAP_NAME,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
            },
            "data": data,
        });
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        if let Err(error) = api
            .patch(
                CONFIGMAP_NAME,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&map),
            )
            .await
        {
            tracing::warn!(%error, "cannot save the source range lists in ConfigMap {CONFIGMAP_NAME}");
        }
    }

    /// Fetches every list in use when it is due, until `shutdown`; sends
    /// the users of each list fetched into `reconcile` (their condition
    /// shows the fetch), and records an Event on each of them when the list
    /// changed. Lists nobody uses any more are forgotten.
    pub async fn run(
        self: Arc<Self>,
        recorder: Recorder,
        reconcile: futures::channel::mpsc::UnboundedSender<ObjectRef<WebhookEndpoint>>,
    ) {
        loop {
            tokio::time::sleep(TICK.min(self.config.refresh)).await;
            let now = unix_now();
            let due: Vec<ListSource> = {
                let mut lists = lock(&self.lists);
                lists.retain(|_, list| !list.users.is_empty());
                lists
                    .values()
                    .filter(|list| list.next_fetch <= now)
                    .map(|list| list.source.clone())
                    .collect()
            };
            for source in due {
                let guard = self.lock_of(&source.key());
                let _guard = guard.lock().await;
                let (users, changes) = self.fetch(&source).await;
                if let Some((added, removed)) = &changes {
                    tracing::info!(list = %source.describe(), added = ?texts(added), removed = ?texts(removed), "a source range list changed");
                    for user in &users {
                        record_change(&recorder, user, &source, added, removed).await;
                    }
                }
                for user in users {
                    let _ = reconcile.unbounded_send(user);
                }
            }
        }
    }
}

/// The most ranges an Event names of each kind (an Event's note is capped
/// at 1 KiB by the API server).
const EVENT_RANGES: usize = 12;

fn some(nets: &[IpNet]) -> String {
    let mut text = texts(&nets[..nets.len().min(EVENT_RANGES)]).join(", ");
    if nets.len() > EVENT_RANGES {
        text.push_str(&format!(" and {} more", nets.len() - EVENT_RANGES));
    }
    if text.is_empty() {
        text.push_str("none");
    }
    text
}

async fn record_change(
    recorder: &Recorder,
    endpoint: &ObjectRef<WebhookEndpoint>,
    source: &ListSource,
    added: &[IpNet],
    removed: &[IpNet],
) {
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(WebhookEndpoint::api_version(&()).into_owned()),
        kind: Some(WebhookEndpoint::kind(&()).into_owned()),
        name: Some(endpoint.name.clone()),
        namespace: endpoint.namespace.clone(),
        ..Default::default()
    };
    let event = Event {
        type_: EventType::Normal,
        reason: "SourceRangesChanged".to_owned(),
        note: Some(format!(
            "{} changed: added {}; removed {}",
            source.describe(),
            some(added),
            some(removed)
        )),
        action: "FetchSourceRanges".to_owned(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, &reference).await {
        tracing::debug!(%error, endpoint = %endpoint.name, "cannot record an Event");
    }
}
