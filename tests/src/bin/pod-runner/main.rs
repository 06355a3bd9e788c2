//! `hookwarden-pod-runner`: the kubelet of the local control plane's process
//! node (`tests/tools/cluster.sh` starts it as root, `cluster.sh down` stops
//! it). kwok runs no containers; for the pods bound to this node whose image
//! is one of ours it runs the matching workspace binary instead:
//!
//! - exactly the container's `command`/`args` (`$(VAR)` expanded as the
//!   kubelet does) and environment (`value`, `secretKeyRef`,
//!   `configMapKeyRef`, `fieldRef`, `envFrom`), plus what a kubelet adds
//!   (`HOSTNAME`, `KUBERNETES_SERVICE_HOST`/`PORT`: here the API server's
//!   loopback address, which the pod reaches);
//! - in a network namespace of its own whose only address is the pod IP, a
//!   loopback address from the node's `spec.podCIDR` (`podnet.sh`), so two
//!   pods can both listen on `0.0.0.0:8080`;
//! - in a private mount namespace (`unshare --mount`) where its Secret,
//!   ConfigMap, projected (ServiceAccount token, `kube-root-ca.crt`,
//!   namespace) and emptyDir volumes are bind-mounted at the container's
//!   mount paths, files owned by `root:<fsGroup>` with the volume's modes,
//!   laid out as the kubelet's atomic writer does (the files in a
//!   `..<timestamp>` directory, `..data` a symlink to it, each top-level
//!   name a symlink through `..data`); Secret and ConfigMap volumes, and
//!   projected volumes of those only (all sources in one directory), are
//!   refreshed in place when their objects change (a new directory, then
//!   one rename of the `..data` symlink), every [`VOLUME_REFRESH`], without
//!   restarting the process, as the kubelet's sync does (subPath mounts,
//!   like the kubelet's, are not refreshed);
//! - as the container's (else the pod's) `runAsUser`/`runAsGroup`, with the
//!   pod's `fsGroup` as supplementary group (`setpriv`);
//! - with an `/etc/hosts` of its own standing in for the cluster's DNS (the
//!   kubelet's entries, `hostAliases`, every Service's names and the
//!   upstream names tests publish in labelled ConfigMaps; see
//!   [`cluster_dns`]), so `http://<service>.<namespace>.svc` works in a pod,
//!   and an image CA bundle that also trusts the test CAs published the same
//!   way.
//!
//! The pod's `Ready` condition follows the readiness probe the pod declares
//! (httpGet or tcpSocket against the pod IP), so EndpointSlices list only
//! ready pods; a failing liveness probe kills the process. A process that
//! exits makes the pod `Failed` (its ReplicaSet replaces it). A pod being
//! deleted gets SIGTERM, up to its grace period, SIGKILL, and is then
//! removed. Pods of other images are marked `Failed` (nothing to run).
//!
//! Usage: `hookwarden-pod-runner --kubeconfig PATH --node NAME --state-dir DIR
//! --podnet PATH [--bin-dir DIR]` (default bin dir: this binary's own).
//!
//! One concern a module, so each reads on its own: the watch of the node's
//! pods and what the parts share (this file); a pod's life from first sight
//! to removal (`lifecycle`); its start, the spec turned into a process
//! (`process`), with its environment (`env`), the Secrets and ConfigMaps
//! both read (`objects`) and its volumes (`volumes`); its probes
//! (`probes`); the status it reports (`status`); its pod IP (`addresses`);
//! and the cluster around it: Services (`service_proxy`) and names
//! (`cluster_dns`).

mod addresses;
mod cluster_dns;
mod env;
mod lifecycle;
mod objects;
mod probes;
mod process;
mod service_proxy;
mod status;
mod volumes;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Node, Pod};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Api, Client, Config};
use tokio::sync::watch;

use addresses::Addresses;

type Error = Box<dyn std::error::Error + Send + Sync>;

type Result<T, E = Error> = std::result::Result<T, E>;

/// How often the Secret and ConfigMap volumes of running pods are
/// compared with their objects. The kubelet's sync period is a minute
/// (plus its cache's TTL); shorter here, so tests of hot reloads wait
/// seconds, not minutes.
const VOLUME_REFRESH: Duration = Duration::from_secs(2);

fn log(message: impl AsRef<str>) {
    eprintln!(
        "{} pod-runner: {}",
        jiff::Timestamp::now(),
        message.as_ref()
    );
}

#[derive(Debug, Clone)]
struct Settings {
    node: String,
    bin_dir: PathBuf,
    state_dir: PathBuf,
    podnet: PathBuf,
    node_ip: Ipv4Addr,
    /// The API server as pods reach it (KUBERNETES_SERVICE_HOST/PORT).
    api_host: String,
    api_port: String,
}

struct Context {
    client: Client,
    settings: Settings,
    addresses: Mutex<Addresses>,
    /// The ready pods, by uid: what the service proxy forwards to.
    endpoints: Mutex<HashMap<String, Endpoint>>,
    /// What the cluster's DNS would answer: each pod's `/etc/hosts`.
    names: Mutex<cluster_dns::Names>,
}

/// A ready pod as the service proxy sees it.
#[derive(Debug, Clone)]
struct Endpoint {
    namespace: String,
    labels: BTreeMap<String, String>,
    ip: Ipv4Addr,
    /// Container port names → numbers (for named targetPorts).
    ports: BTreeMap<String, u16>,
}

impl Context {
    fn set_endpoint(&self, pod: &Pod, container: &Container, ip: Option<Ipv4Addr>) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let Ok(mut endpoints) = self.endpoints.lock() else {
            return;
        };
        match ip {
            Some(ip) => {
                let ports = container
                    .ports
                    .iter()
                    .flatten()
                    .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.container_port).ok()?)))
                    .collect();
                endpoints.insert(
                    uid,
                    Endpoint {
                        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                        labels: pod.metadata.labels.clone().unwrap_or_default(),
                        ip,
                        ports,
                    },
                );
            }
            None => {
                endpoints.remove(&uid);
            }
        }
    }
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        log(format!("error: {error}"));
        std::process::exit(1);
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

async fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let need = |name: &str| flag(&args, name).ok_or_else(|| format!("{name} is required"));
    let kubeconfig_path = PathBuf::from(need("--kubeconfig")?);
    let node_name = need("--node")?;
    let state_dir = PathBuf::from(need("--state-dir")?);
    let podnet = PathBuf::from(need("--podnet")?);
    let bin_dir = match flag(&args, "--bin-dir") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()?
            .parent()
            .ok_or("no directory of the runner")?
            .to_owned(),
    };
    let kubeconfig = Kubeconfig::read_from(&kubeconfig_path)?;
    let server = kubeconfig
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .ok_or("the kubeconfig names no server")?;
    let (api_host, api_port) = server
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.to_owned()))
        .ok_or("the server URL has no port")?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config)?;

    let node = Api::<Node>::all(client.clone()).get(&node_name).await?;
    let cidr = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.clone())
        .ok_or("the node has no spec.podCIDR")?;
    let (network, prefix) = cidr.split_once('/').ok_or("podCIDR is not a CIDR")?;
    let network: Ipv4Addr = network.parse()?;
    let prefix: u32 = prefix.parse()?;
    if !network.is_loopback() || !(8..=30).contains(&prefix) {
        return Err(format!("podCIDR {cidr} is not inside 127.0.0.0/8").into());
    }
    let size = 1u32 << (32 - prefix);
    let settings = Settings {
        node: node_name.clone(),
        bin_dir,
        state_dir,
        podnet,
        node_ip: Ipv4Addr::from(u32::from(network) + 1),
        api_host,
        api_port,
    };
    std::fs::create_dir_all(settings.state_dir.join("pods"))?;
    std::fs::create_dir_all(settings.state_dir.join("logs"))?;
    let context = Arc::new(Context {
        client: client.clone(),
        settings,
        addresses: Mutex::new(Addresses {
            base: u32::from(network),
            size,
            next: 2,
            used: Default::default(),
        }),
        endpoints: Mutex::new(HashMap::new()),
        names: Mutex::default(),
    });
    let proxy = tokio::spawn(service_proxy::run(context.clone()));
    let dns = tokio::spawn(cluster_dns::run(context.clone()));
    log(format!(
        "running pods of node {node_name} (pod CIDR {cidr}) with binaries from {}",
        context.settings.bin_dir.display()
    ));

    let pods: Api<Pod> = Api::all(client);
    let watch_config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
    let mut events = watcher(pods, watch_config).boxed();
    let mut workers: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            event = events.next() => {
                let Some(event) = event else { break };
                let pods = match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => vec![(pod, true)],
                    Ok(watcher::Event::Delete(pod)) => vec![(pod, false)],
                    Ok(_) => vec![],
                    Err(error) => {
                        log(format!("watch: {error}"));
                        vec![]
                    }
                };
                for (pod, present) in pods {
                    let Some(uid) = pod.metadata.uid.clone() else { continue };
                    if let Some(sender) = workers.get(&uid) {
                        let _ = sender.send(present.then_some(pod));
                    } else if present {
                        let (sender, receiver) = watch::channel(Some(pod));
                        workers.insert(uid, sender);
                        tasks.spawn(lifecycle::run_pod(context.clone(), receiver));
                    }
                }
                workers.retain(|_, sender| !sender.is_closed());
            }
        }
    }
    proxy.abort();
    dns.abort();
    log("stopping every pod process");
    for sender in workers.values() {
        let _ = sender.send(None);
    }
    // Each worker stops its process (SIGTERM, then SIGKILL) and its network.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::timeout_at(deadline, tasks.join_next())
        .await
        .ok()
        .flatten()
        .is_some()
    {}
    log("stopped");
    Ok(())
}

fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}
