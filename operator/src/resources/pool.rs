//! The children of a `WebhookReceiverPool`: one receiver Deployment
//! (`hookwarden-receiver serve --pool-dir`), its Service, NetworkPolicy,
//! PodDisruptionBudget and HorizontalPodAutoscaler, and the Secrets
//! holding the configuration of every member endpoint: `spec.configShards`
//! of them ([`shard_secret_name`]: `<pool>-pool`, `<pool>-pool-1`...).
//!
//! The Secrets are mounted as one projected volume at [`POOL_DIR`], so the
//! pod template never names an endpoint: members come and go by a change
//! of a Secret's data, which the kubelet swaps in place and the receivers
//! re-read, without a rollout. A member's files all go to one Secret, its
//! shard ([`shard_of`]: a hash of its name, so it stays there whatever the
//! other members do); each shard has its own budget ([`ShardedData`]).
//! Their keys (the files the receivers see):
//! - [`endpoint_file`]: a member's manifest, rendered exactly as a dedicated
//!   receiver's `endpoint.yaml`;
//! - [`secret_data_key`]: the value of each Secret key a member references
//!   (in the shard of every member that references it, with one value);
//! - [`NATS_URL_KEY`]: the pool's NATS URL when it carries credentials
//!   (in the first shard only);
//! - [`secret_data_key`] of the pool's own `spec.nats.credentialsSecretRef`:
//!   its NATS `.creds` file (in the first shard only; no member names it).
//!
//! What the operator decided about each member (served with this
//! generation, or refused and why) is the annotation [`MEMBERS_ANNOTATION`]
//! of its shard, where each member's own pass reads it for its
//! `ConfigApplied` condition. Its messages name Secrets and fields, never a
//! value.

use std::collections::{BTreeMap, BTreeSet};

use hookwarden_crds::{SecretKeyRef, WebhookEndpoint, WebhookReceiverPool};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use super::pod::{self, Mount, POOL_DIR, Workload};
use super::secret::{endpoint_manifest, render_secrets};
use super::{
    BuildError, Component, HTTP_PORT, METRICS_PORT, NATS_URL_KEY, Owner, ResolvedSecrets, Settings,
    autoscaler_of, network_policy_of, object, pod_disruption_budget_of, referenced_secrets,
    secret_data_key, service, url_has_credentials,
};

pub use super::pool_members::{
    MEMBERS_ANNOTATION, MEMBERS_ANNOTATION_BUDGET, MemberChange, MemberState, Members,
    member_changes, members_annotation, recorded_members, refused_members,
};
pub use hookwarden_core::pool::layout::endpoint_file;
pub use hookwarden_core::pool::routes::Route;

/// The name of every child of pool `pool_name`, the Secret included.
pub fn pool_child_name(pool_name: &str) -> String {
    Component::Pool.child_name(pool_name)
}

/// How many Secrets hold `pool`'s configuration (`spec.configShards`,
/// within its bounds should the schema have been bypassed).
pub fn config_shards(pool: &WebhookReceiverPool) -> usize {
    usize::try_from(
        pool.spec
            .config_shards
            .clamp(1, hookwarden_crds::MAX_CONFIG_SHARDS),
    )
    .unwrap_or(1)
}

/// The name of shard `shard` of pool `pool_name`'s configuration Secrets:
/// the first keeps the name of the pool's other children (and of the one
/// Secret of a pool before shards), the others add their number.
pub fn shard_secret_name(pool_name: &str, shard: usize) -> String {
    match shard {
        0 => pool_child_name(pool_name),
        n => format!("{}-{n}", pool_child_name(pool_name)),
    }
}

/// Which shard `secret_name` is of pool `pool_name`'s configuration, if
/// it is one of them (below [`hookwarden_crds::MAX_CONFIG_SHARDS`]).
pub fn shard_index(pool_name: &str, secret_name: &str) -> Option<usize> {
    let first = pool_child_name(pool_name);
    if secret_name == first {
        return Some(0);
    }
    let number = secret_name.strip_prefix(&first)?.strip_prefix('-')?;
    // No leading zero or sign: one name per shard.
    if number.starts_with('0') || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let shard: usize = number.parse().ok()?;
    let max = usize::try_from(hookwarden_crds::MAX_CONFIG_SHARDS).unwrap_or(usize::MAX);
    (shard > 0 && shard < max).then_some(shard)
}

/// The shard of `shards` that holds member `name`'s files: the first 8
/// bytes of the SHA-256 of its name, modulo `shards`. A stable hash (not
/// the standard library's, which may change between builds), so every
/// operator version and replica puts a member in the same shard, and it
/// moves only when the number of shards changes.
pub fn shard_of(name: &str, shards: usize) -> usize {
    let digest = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let shards = u64::try_from(shards.max(1)).unwrap_or(u64::MAX);
    usize::try_from(u64::from_be_bytes(first) % shards).unwrap_or(0)
}

/// The NATS URL of `pool`'s receivers: its own `spec.nats.url`, else the
/// operator's.
pub fn pool_nats_url<'a>(pool: &'a WebhookReceiverPool, settings: &'a Settings) -> &'a str {
    pool.spec.nats.url.as_deref().unwrap_or(&settings.nats_url)
}

/// How `pool`'s receivers log in to NATS: its URL ([`pool_nats_url`]) and,
/// when the pool names one, its `.creds` file as the pool's pass resolved
/// it. One connection per pod carries every member's deliveries, so these
/// are the pool's, never a member's.
#[derive(Clone, Copy)]
pub struct PoolNats<'a> {
    /// The server(s).
    pub url: &'a str,
    /// `spec.nats.credentialsSecretRef` and its value.
    pub credentials: Option<(&'a SecretKeyRef, &'a [u8])>,
}

impl std::fmt::Debug for PoolNats<'_> {
    // Never the URL's password or the value of the `.creds` file.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolNats")
            .field("credentials", &self.credentials.map(|(r, _)| r))
            .finish_non_exhaustive()
    }
}

impl PoolNats<'_> {
    /// The pod template's config hash: the receivers read the URL and the
    /// `.creds` file at start only, so a change of either must roll the
    /// pods. Without credentials it is the URL's hash alone, as before
    /// pools could have them (an operator upgrade rolls no pool).
    fn config_hash(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.url.as_bytes());
        if let Some((_, value)) = self.credentials {
            hash.update([0]);
            hash.update(Sha256::digest(value));
        }
        hex::encode(hash.finalize())
    }
}

/// How many pool pods `pool` asks for at least: the autoscaler's minimum
/// when autoscaling, else `replicas`.
pub fn desired_pool_replicas(pool: &WebhookReceiverPool) -> i32 {
    pool.spec
        .autoscaling
        .as_ref()
        .map_or(pool.spec.replicas, |a| a.min_replicas)
}

/// `effective` (an endpoint as [`super::effective_endpoint`] renders it) as
/// a member of `pool`: the pool's NATS server replaces the endpoint's own,
/// and the endpoint's credentials are dropped (not read, not rendered),
/// since one connection per pool pod, logged in with the pool's
/// ([`PoolNats`]), carries every member's deliveries; the stream, subjects
/// and stream settings stay.
pub fn pooled_endpoint(effective: &WebhookEndpoint, pool: &WebhookReceiverPool) -> WebhookEndpoint {
    let mut pooled = effective.clone();
    pooled.spec.nats.url.clone_from(&pool.spec.nats.url);
    pooled.spec.nats.credentials_secret_ref = None;
    pooled
}

/// The member `member` as the operator manages its stream and a
/// subscription reads it: [`pooled_endpoint`] (on the pool's NATS) with the
/// pool's own login (`spec.nats.credentialsSecretRef`), as the pool's pods
/// store into it. Never rendered into the pool's Secret: the pods log in
/// once for every member (`--nats-credentials-secret-ref`).
pub fn member_stream_endpoint(
    member: &WebhookEndpoint,
    pool: &WebhookReceiverPool,
) -> WebhookEndpoint {
    let mut served = pooled_endpoint(member, pool);
    served
        .spec
        .nats
        .credentials_secret_ref
        .clone_from(&pool.spec.nats.credentials_secret_ref);
    served
}

/// Where `endpoint` is reached inside its pool, as the pool's receivers
/// route: the host (lower-case, without port) and exact path of its
/// Ingress; without one, `/` on any host.
pub fn route_of(endpoint: &WebhookEndpoint) -> Route {
    Route::of(endpoint.spec.ingress.as_ref())
}

/// `route` for a person.
pub fn describe_route(route: &Route) -> String {
    match &route.host {
        Some(host) => format!("host {host:?} path {:?}", route.path),
        None => format!("path {:?} (any host)", route.path),
    }
}

/// The pool Secret's entries of one member: its manifest under
/// [`endpoint_file`] and each referenced Secret key under
/// [`secret_data_key`]. `endpoint` is the member as rendered (effective,
/// pooled, with its fetched source ranges); `secrets` holds its keys.
pub fn member_entries(
    endpoint: &WebhookEndpoint,
    secrets: &ResolvedSecrets,
) -> Result<BTreeMap<String, ByteString>, BuildError> {
    let mut entries = BTreeMap::new();
    entries.insert(
        endpoint_file(&endpoint.name_any()),
        ByteString(endpoint_manifest(endpoint)?.into_bytes()),
    );
    render_secrets(&mut entries, referenced_secrets(&endpoint.spec), secrets)?;
    Ok(entries)
}

/// How much of a pool Secret's data the members may fill, in bytes (keys
/// and values). The API server refuses a Secret over 1 MiB; the rest is
/// headroom for the members annotation and the object's metadata. A member
/// that would take the data past it is refused (`PoolConfigFull`) and the
/// members before it keep being served, so one more member never stops
/// its pool from taking changes.
pub const POOL_SECRET_BUDGET: usize = 900 * 1024;

/// The bytes `entries` would add to `data`: the keys `data` lacks, with
/// their values (a Secret key two members reference is stored once).
pub fn added_size(
    data: &BTreeMap<String, ByteString>,
    entries: &BTreeMap<String, ByteString>,
) -> usize {
    entries
        .iter()
        .filter(|(key, _)| !data.contains_key(*key))
        .map(|(key, value)| key.len() + value.0.len())
        .sum()
}

/// The bytes of `data` (keys and values).
pub fn data_size(data: &BTreeMap<String, ByteString>) -> usize {
    data.iter()
        .map(|(key, value)| key.len() + value.0.len())
        .sum()
}

/// The data of a pool's configuration Secrets as a pass fills them, member
/// after member: each shard with its size kept as it grows (a pass places
/// thousands of members; summing a shard again for each would be
/// quadratic) and its own budget.
#[derive(Debug)]
pub struct ShardedData {
    shards: Vec<BTreeMap<String, ByteString>>,
    sizes: Vec<usize>,
    budget: usize,
    /// The value of each key as a member served with its current
    /// configuration has it: where a refused member keeps an older value
    /// of the same Secret key, in another shard, the current one wins in
    /// every shard (the pods see one file per key).
    current: BTreeMap<String, ByteString>,
}

impl ShardedData {
    /// `shards` empty shards of at most `budget` bytes each.
    pub fn new(shards: usize, budget: usize) -> Self {
        let shards = shards.max(1);
        Self {
            shards: vec![BTreeMap::new(); shards],
            sizes: vec![0; shards],
            budget,
            current: BTreeMap::new(),
        }
    }

    /// How many shards there are.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always false: there is at least one shard.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The shard of member `name`.
    pub fn shard_of(&self, name: &str) -> usize {
        shard_of(name, self.shards.len())
    }

    /// The budget of each shard, in bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Whether `entries` fit in shard `shard` as it is.
    pub fn fits(&self, shard: usize, entries: &BTreeMap<String, ByteString>) -> bool {
        self.sizes[shard] + added_size(&self.shards[shard], entries) <= self.budget
    }

    /// Adds a member's current `entries` to `shard`: a value another member
    /// keeps from before yields to them.
    pub fn insert_current(&mut self, shard: usize, entries: BTreeMap<String, ByteString>) {
        for (key, value) in entries {
            self.current.insert(key.clone(), value.clone());
            self.insert(shard, key, value, true);
        }
    }

    /// Adds the `entries` a refused member keeps from before to `shard`: a
    /// value already there stays.
    pub fn insert_kept(&mut self, shard: usize, entries: BTreeMap<String, ByteString>) {
        for (key, value) in entries {
            self.insert(shard, key, value, false);
        }
    }

    fn insert(&mut self, shard: usize, key: String, value: ByteString, replace: bool) {
        let size = key.len() + value.0.len();
        match self.shards[shard].get_mut(&key) {
            Some(existing) if replace => {
                self.sizes[shard] = self.sizes[shard] - existing.0.len() + value.0.len();
                *existing = value;
            }
            Some(_) => {}
            None => {
                self.sizes[shard] += size;
                self.shards[shard].insert(key, value);
            }
        }
    }

    /// The data of each shard, in order, every key with its current value.
    pub fn into_shards(self) -> Vec<BTreeMap<String, ByteString>> {
        let current = self.current;
        self.shards
            .into_iter()
            .map(|mut data| {
                for (key, value) in &mut data {
                    if let Some(newer) = current.get(key) {
                        value.clone_from(newer);
                    }
                }
                data
            })
            .collect()
    }
}

/// The entries member `name` had in the pool Secret's `previous` data, and
/// the manifest they serve: what the pool keeps serving while the member's
/// new configuration is refused. `None` when it had none (or they cannot
/// be read back, which only a hand-edited Secret would cause).
pub fn previous_entries(
    previous: &BTreeMap<String, ByteString>,
    name: &str,
) -> Option<(WebhookEndpoint, BTreeMap<String, ByteString>)> {
    let file = endpoint_file(name);
    let manifest = previous.get(&file)?;
    let endpoint = hookwarden_crds::from_yaml(std::str::from_utf8(&manifest.0).ok()?).ok()?;
    let mut entries = BTreeMap::from([(file, manifest.clone())]);
    for (secret, key) in referenced_secrets(&endpoint.spec) {
        let data_key = secret_data_key(&secret, &key);
        entries.insert(data_key.clone(), previous.get(&data_key)?.clone());
    }
    Some((endpoint.into(), entries))
}

/// Shard `shard` of the pool's configuration Secrets: `data` (its
/// members' entries, and in the first shard [`NATS_URL_KEY`] when the
/// pool's URL carries credentials and the pool's `.creds` file when it
/// names one) and its `members` recorded in [`MEMBERS_ANNOTATION`].
pub fn pool_secret(
    owner: &Owner,
    shard: usize,
    mut data: BTreeMap<String, ByteString>,
    members: &Members,
    nats: PoolNats<'_>,
) -> Result<Secret, BuildError> {
    if shard == 0 && url_has_credentials(nats.url) {
        data.insert(
            NATS_URL_KEY.to_owned(),
            ByteString(nats.url.as_bytes().to_vec()),
        );
    }
    if let (0, Some((reference, value))) = (shard, nats.credentials) {
        data.insert(
            secret_data_key(&reference.name, &reference.key),
            ByteString(value.to_vec()),
        );
    }
    let mut metadata = owner.child_metadata();
    metadata["name"] = shard_secret_name(&owner.name, shard).into();
    metadata["annotations"] = serde_json::json!({
        MEMBERS_ANNOTATION: members_annotation(members)
            .map_err(|source| BuildError::Object { kind: "Secret", source })?,
    });
    object(
        "Secret",
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": "Opaque",
            "data": data,
        }),
    )
}

/// The names of the members whose manifest is in `data`.
pub fn served_members(data: &BTreeMap<String, ByteString>) -> BTreeSet<String> {
    data.keys()
        .filter_map(|key| hookwarden_core::pool::layout::endpoint_name(key))
        .map(str::to_owned)
        .collect()
}

/// Everything the operator applies for a pool besides its Secret.
#[derive(Debug)]
pub struct PoolChildren {
    /// The pool pods.
    pub deployment: Deployment,
    /// Their in-cluster address, every member's Ingress backend.
    pub service: Service,
    /// Who may reach the pool pods and whom they may reach.
    pub network_policy: NetworkPolicy,
    /// At most one pool pod down in a drain, when more than one runs.
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
    /// CPU-based scaling, when `spec.autoscaling` is set.
    pub autoscaler: Option<HorizontalPodAutoscaler>,
}

/// The children of `pool`. `fetch_keys`: some member fetches keys over
/// HTTPS (the NetworkPolicy then lets HTTPS out to public addresses).
///
/// The pod template depends on the pool's spec, its NATS login and the
/// operator's settings only, never on its members: adding, changing or
/// removing an endpoint changes the Secret and rolls nothing. Its config
/// hash is of the pool's NATS URL and `.creds` file
/// ([`PoolNats::config_hash`]), which reach the pods through the first
/// Secret when they carry credentials.
pub fn pool_children(
    pool: &WebhookReceiverPool,
    owner: &Owner,
    settings: &Settings,
    fetch_keys: bool,
    nats: PoolNats<'_>,
) -> Result<PoolChildren, BuildError> {
    let nats_url = nats.url;
    let mut args = vec![
        "serve".to_owned(),
        "--pool-dir".to_owned(),
        POOL_DIR.to_owned(),
    ];
    let env = pod::with_env(
        pod::nats_url(owner, nats_url, &mut args),
        &settings.workload_env,
    );
    args.extend([
        "--listen".to_owned(),
        format!("0.0.0.0:{HTTP_PORT}"),
        // TLS ends at the ingress controller in front of the Service.
        "--tls-mode".to_owned(),
        "behind-ingress".to_owned(),
        "--metrics-listen".to_owned(),
        format!("0.0.0.0:{METRICS_PORT}"),
    ]);
    if let Some(max) = pool.spec.max_in_flight_per_endpoint {
        args.extend(["--max-in-flight-per-endpoint".to_owned(), max.to_string()]);
    }
    if let Some((reference, _)) = nats.credentials {
        args.extend([
            "--nats-credentials-secret-ref".to_owned(),
            format!("{}/{}", reference.name, reference.key),
        ]);
    }
    let hash = nats.config_hash();
    let deployment = pod::deployment(
        owner,
        Workload {
            container: "receiver",
            image: &settings.receiver_image,
            args,
            env,
            ports: serde_json::json!([
                {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
                {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
            ]),
            resources: pool.spec.resources.as_ref(),
            mount: Mount::Projected(
                (0..config_shards(pool))
                    .map(|shard| shard_secret_name(&owner.name, shard))
                    .collect(),
            ),
            // With autoscaling the HorizontalPodAutoscaler owns `replicas`.
            replicas: pool
                .spec
                .autoscaling
                .is_none()
                .then_some(pool.spec.replicas),
        },
        &hash,
    )?;
    let ingress_namespace = pool
        .spec
        .network_policy
        .clone()
        .unwrap_or_default()
        .ingress_namespace;
    Ok(PoolChildren {
        deployment,
        service: service(owner)?,
        network_policy: network_policy_of(
            owner,
            &ingress_namespace,
            nats_url,
            fetch_keys,
            &settings.workload_env,
        )?,
        pod_disruption_budget: pod_disruption_budget_of(owner, desired_pool_replicas(pool))?,
        autoscaler: autoscaler_of(owner, pool.spec.autoscaling.as_ref())?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{CONFIG_HASH_ANNOTATION, effective_endpoint};
    use super::*;

    #[test]
    fn a_key_two_members_share_is_counted_once() {
        let entry = |key: &str, len: usize| (key.to_owned(), ByteString(vec![b'x'; len]));
        let data = BTreeMap::from([entry("endpoint.a.yaml", 100), entry("secret.gh_secret", 64)]);
        assert_eq!(data_size(&data), 15 + 100 + 16 + 64);
        let b = BTreeMap::from([entry("endpoint.b.yaml", 120), entry("secret.gh_secret", 64)]);
        assert_eq!(
            added_size(&data, &b),
            15 + 120,
            "the shared secret is there already"
        );
    }

    fn pool(yaml: &str) -> WebhookReceiverPool {
        let mut pool: WebhookReceiverPool = serde_yaml_ng::from_str(yaml).expect("pool parses");
        pool.metadata.namespace = Some("ci".to_owned());
        pool.metadata.uid = Some("6f1d2f8e-0000-4000-8000-000000000001".to_owned());
        pool
    }

    fn shared() -> WebhookReceiverPool {
        pool(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookReceiverPool\nmetadata: {name: shared}\nspec: {}\n",
        )
    }

    #[test]
    fn the_deployment_mounts_the_whole_secret_and_names_no_endpoint() {
        let pool = shared();
        let owner = Owner::of_pool(&pool).expect("owner");
        let children = pool_children(
            &pool,
            &owner,
            &settings(),
            false,
            nats_of(&pool, &settings()),
        )
        .expect("builds");
        let deployment = &children.deployment;
        assert_eq!(deployment.metadata.name.as_deref(), Some("shared-pool"));
        assert_eq!(deployment.spec.replicas, Some(2));
        let pod = deployment.spec.template.spec.as_ref().expect("pod spec");
        assert_eq!(pod.automount_service_account_token, Some(false));
        let container = &pod.containers[0];
        assert_eq!(
            container.args.as_deref().unwrap_or_default(),
            [
                "serve",
                "--pool-dir",
                "/etc/hookwarden/pool",
                "--nats-url",
                "nats://nats.nats.svc:4222",
                "--listen",
                "0.0.0.0:8080",
                "--tls-mode",
                "behind-ingress",
                "--metrics-listen",
                "0.0.0.0:9090",
            ]
        );
        let mounts = container.volume_mounts.as_deref().unwrap_or_default();
        assert_eq!(mounts[0].mount_path, "/etc/hookwarden/pool");
        let volume = &pod.volumes.as_deref().unwrap_or_default()[0];
        let projected = volume.projected.as_ref().expect("a projected volume");
        let sources = projected.sources.as_deref().unwrap_or_default();
        assert_eq!(sources.len(), 1, "spec.configShards defaults to 1");
        let source = sources[0].secret.as_ref().expect("a Secret source");
        assert_eq!(source.name, "shared-pool");
        assert_eq!(source.items, None, "mounted whole");
        assert_eq!(projected.default_mode, Some(0o440));
        let mut sharded = pool.clone();
        sharded.spec.config_shards = 3;
        let children = pool_children(
            &sharded,
            &owner,
            &settings(),
            false,
            nats_of(&sharded, &settings()),
        )
        .expect("builds");
        let pod = children.deployment.spec.template.spec.expect("pod spec");
        let volume = &pod.volumes.unwrap_or_default()[0];
        let names: Vec<String> = volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
            .filter_map(|source| source.secret.as_ref().map(|s| s.name.clone()))
            .collect();
        assert_eq!(names, ["shared-pool", "shared-pool-1", "shared-pool-2"]);
        let annotations = deployment
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default();
        assert_eq!(
            annotations.get(CONFIG_HASH_ANNOTATION),
            Some(&hex::encode(Sha256::digest(b"nats://nats.nats.svc:4222")))
        );
        let labels = deployment.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels["app.kubernetes.io/name"], "hookwarden-pool");
        assert_eq!(labels["app.kubernetes.io/instance"], "shared");
        assert!(children.pod_disruption_budget.is_some());
        assert!(children.autoscaler.is_none());
    }

    #[test]
    fn members_render_like_a_dedicated_receiver_and_keep_their_last_good_entries() {
        let endpoint = endpoint("github");
        let effective = pooled_endpoint(&effective_endpoint(&endpoint, &settings()), &shared());
        let entries = member_entries(&effective, &secrets_for(&effective)).expect("renders");
        let keys: Vec<&str> = entries.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "endpoint.github.yaml",
                "secret.github-webhook-next_secret",
                "secret.github-webhook_secret",
            ]
        );
        let (read, kept) = previous_entries(&entries, "github").expect("readable");
        assert_eq!(kept, entries);
        assert_eq!(read.spec, effective.spec);
        assert_eq!(
            served_members(&entries),
            BTreeSet::from(["github".to_owned()])
        );
        assert!(previous_entries(&entries, "other").is_none());
    }

    #[test]
    fn routes_compare_hosts_without_case() {
        let mut one = endpoint("exposed");
        let mut two = one.clone();
        if let Some(ingress) = two.spec.ingress.as_mut() {
            ingress.host = ingress.host.to_ascii_uppercase();
        }
        assert_eq!(route_of(&one), route_of(&two));
        one.spec.ingress = None;
        assert_eq!(route_of(&one), Route::new(None, "/"));
        assert_eq!(describe_route(&route_of(&one)), "path \"/\" (any host)");
    }

    #[test]
    fn a_nats_url_with_credentials_stays_out_of_the_pod_spec() {
        let pool = shared();
        let owner = Owner::of_pool(&pool).expect("owner");
        let with_password = Settings {
            nats_url: "nats://app:hunter2@nats.nats.svc:4222".to_owned(),
            ..settings()
        };
        let nats = nats_of(&pool, &with_password);
        let children = pool_children(&pool, &owner, &with_password, false, nats).expect("builds");
        let json = serde_json::to_string(&children.deployment).expect("serializes");
        assert!(!json.contains("hunter2"), "{json}");
        let secret =
            pool_secret(&owner, 0, BTreeMap::new(), &Members::new(), nats).expect("builds");
        assert!(secret.data.unwrap_or_default().contains_key(NATS_URL_KEY));
        let second =
            pool_secret(&owner, 1, BTreeMap::new(), &Members::new(), nats).expect("builds");
        assert_eq!(second.metadata.name.as_deref(), Some("shared-pool-1"));
        assert!(
            !second.data.unwrap_or_default().contains_key(NATS_URL_KEY),
            "one file per key in the pods' directory: the URL is in the first shard only"
        );
    }

    /// `pool`'s NATS without credentials.
    fn nats_of<'a>(pool: &'a WebhookReceiverPool, settings: &'a Settings) -> PoolNats<'a> {
        PoolNats {
            url: pool_nats_url(pool, settings),
            credentials: None,
        }
    }

    #[test]
    fn the_pools_creds_file_is_in_the_first_shard_named_in_the_args_and_rolls_the_pods() {
        let mut pool = shared();
        let reference = SecretKeyRef {
            name: "nats".to_owned(),
            key: "user.creds".to_owned(),
        };
        pool.spec.nats.credentials_secret_ref = Some(reference.clone());
        let owner = Owner::of_pool(&pool).expect("owner");
        let settings = settings();
        let without = nats_of(&pool, &settings);
        let with = |value: &'static [u8]| PoolNats {
            credentials: Some((&reference, value)),
            ..without
        };
        let hash = |nats| {
            let children = pool_children(&pool, &owner, &settings, false, nats).expect("builds");
            let template = children.deployment.spec.template;
            let annotations = template.metadata.expect("metadata").annotations;
            annotations.unwrap_or_default()[CONFIG_HASH_ANNOTATION].clone()
        };
        assert_eq!(
            hash(without),
            hex::encode(Sha256::digest(without.url.as_bytes())),
            "a pool without credentials keeps the hash it had before they existed"
        );
        assert_ne!(hash(with(b"first")), hash(without));
        assert_ne!(
            hash(with(b"first")),
            hash(with(b"rotated")),
            "the receivers read the .creds file at start: a rotation must roll them"
        );

        let children =
            pool_children(&pool, &owner, &settings, false, with(b"first")).expect("builds");
        let json = serde_json::to_string(&children.deployment).expect("serializes");
        assert!(
            json.contains(r#""--nats-credentials-secret-ref","nats/user.creds""#),
            "{json}"
        );
        assert!(
            !json.contains("first"),
            "the value stays in the Secret: {json}"
        );
        assert!(format!("{:?}", with(b"first")).contains("user.creds"));
        assert!(!format!("{:?}", with(b"first")).contains("first"));

        let first = pool_secret(&owner, 0, BTreeMap::new(), &Members::new(), with(b"first"))
            .expect("builds");
        assert_eq!(
            first.data.unwrap_or_default().get("secret.nats_user.creds"),
            Some(&ByteString(b"first".to_vec()))
        );
        let second = pool_secret(&owner, 1, BTreeMap::new(), &Members::new(), with(b"first"))
            .expect("builds");
        assert!(second.data.unwrap_or_default().is_empty());
    }

    #[test]
    fn a_member_carries_no_nats_credentials_of_its_own() {
        let mut endpoint = endpoint("github");
        endpoint.spec.nats.credentials_secret_ref = Some(SecretKeyRef {
            name: "own-nats".to_owned(),
            key: "user.creds".to_owned(),
        });
        let mut pool = shared();
        pool.spec.nats.credentials_secret_ref = Some(SecretKeyRef {
            name: "pool-nats".to_owned(),
            key: "user.creds".to_owned(),
        });
        let effective = pooled_endpoint(&effective_endpoint(&endpoint, &settings()), &pool);
        assert_eq!(effective.spec.nats.credentials_secret_ref, None);
        let entries = member_entries(&effective, &secrets_for(&effective)).expect("renders");
        assert!(
            entries.keys().all(|key| !key.contains("nats")),
            "neither the member's nor the pool's creds in the member's entries: {entries:?}"
        );
        // The operator manages the member's stream with the pool's login.
        let managed = member_stream_endpoint(&effective, &pool);
        assert_eq!(
            managed.spec.nats.credentials_secret_ref,
            pool.spec.nats.credentials_secret_ref
        );
        assert_eq!(managed.spec.nats.url, effective.spec.nats.url);
    }

    #[test]
    fn shards_are_named_and_recognised_one_way() {
        assert_eq!(shard_secret_name("shared", 0), "shared-pool");
        assert_eq!(shard_secret_name("shared", 7), "shared-pool-7");
        for shard in 0..64 {
            assert_eq!(
                shard_index("shared", &shard_secret_name("shared", shard)),
                Some(shard)
            );
        }
        for other in [
            "shared-pool-0",
            "shared-pool-01",
            "shared-pool-64",
            "shared-pool-+1",
            "shared-pool-",
            "shared-pool-pool",
            "other-pool",
            "shared-pool-1-x",
        ] {
            assert_eq!(shard_index("shared", other), None, "{other}");
        }
    }

    #[test]
    fn a_member_keeps_its_shard_and_members_spread() {
        // Pinned: a member's shard is part of the deployed state (its files
        // are in that Secret); a new hash would move every member.
        assert_eq!(shard_of("github", 1), 0);
        let pinned: Vec<usize> = ["github", "stripe", "endpoint-0", "endpoint-1"]
            .iter()
            .map(|name| shard_of(name, 8))
            .collect();
        // The first 8 bytes of SHA-256, big-endian, modulo 8 (as Python's
        // `int.from_bytes(hashlib.sha256(name).digest()[:8], "big") % 8`).
        assert_eq!(pinned, [7, 0, 4, 4]);
        let mut counts = [0usize; 8];
        for n in 0..8000 {
            counts[shard_of(&format!("endpoint-{n}"), 8)] += 1;
        }
        assert!(
            counts.iter().all(|count| (800..1200).contains(count)),
            "{counts:?}"
        );
    }

    #[test]
    fn each_shard_has_its_budget_and_current_values_win_everywhere() {
        let entry =
            |key: &str, value: &str| (key.to_owned(), ByteString(value.as_bytes().to_vec()));
        let mut data = ShardedData::new(2, 40);
        let a = BTreeMap::from([
            entry("endpoint.a.yaml", "aaaa"),
            entry("secret.gh_k", "new"),
        ]);
        assert!(data.fits(0, &a));
        data.insert_current(0, a);
        assert_eq!(data.sizes, [15 + 4 + 11 + 3, 0]);
        let b = BTreeMap::from([entry("endpoint.b.yaml", "bbbb")]);
        assert!(!data.fits(0, &b), "shard 0 is full");
        assert!(data.fits(1, &b), "shard 1 has its own budget");
        let kept = BTreeMap::from([entry("endpoint.c.yaml", "c"), entry("secret.gh_k", "old")]);
        data.insert_kept(1, kept);
        let shards = data.into_shards();
        assert_eq!(
            shards[1]["secret.gh_k"].0, b"new",
            "the current value, in both shards"
        );
        assert_eq!(shards[0]["secret.gh_k"].0, b"new");
    }
}
