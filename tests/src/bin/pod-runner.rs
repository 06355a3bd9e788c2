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

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, KeyToPath, Node, Pod, Probe, Secret, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Api, Client, Config};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use hookwarden_tests::write_atomic;

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

/// Our images and the workspace binary each runs (the image's entrypoint).
const IMAGES: [(&str, &str); 2] = [
    ("ghcr.io/hookwarden/receiver", "hookwarden-receiver"),
    ("ghcr.io/hookwarden/operator", "hookwarden-operator"),
];
/// How often the Secret and ConfigMap volumes of running pods are
/// compared with their objects. The kubelet's sync period is a minute
/// (plus its cache's TTL); shorter here, so tests of hot reloads wait
/// seconds, not minutes.
const VOLUME_REFRESH: Duration = Duration::from_secs(2);
/// The PATH of our distroless images.
const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn log(message: impl AsRef<str>) {
    eprintln!(
        "{} pod-runner: {}",
        jiff::Timestamp::now(),
        message.as_ref()
    );
}

/// RFC 3339 time, to the second, for Pod status fields.
fn rfc3339_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
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

/// Pod IPs of the node's CIDR, handed out round robin (a freed address is
/// reused last, so no late packet of an old pod reaches a new one).
#[derive(Debug)]
struct Addresses {
    base: u32,
    size: u32,
    next: u32,
    used: std::collections::BTreeSet<u32>,
}

impl Addresses {
    fn allocate(&mut self) -> Option<Ipv4Addr> {
        // .0 is the network, .1 the node; the last is broadcast.
        for _ in 0..self.size {
            let offset = self.next;
            self.next = if self.next + 1 >= self.size - 1 {
                2
            } else {
                self.next + 1
            };
            if offset >= 2 && !self.used.contains(&offset) {
                self.used.insert(offset);
                return Some(Ipv4Addr::from(self.base + offset));
            }
        }
        None
    }

    fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&(u32::from(ip) - self.base));
    }
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
                        tasks.spawn(run_pod(context.clone(), receiver));
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

fn pod_api(context: &Context, pod: &Pod) -> Api<Pod> {
    Api::namespaced(
        context.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

/// The lifecycle of one pod: from the first sight of it until it is gone.
async fn run_pod(context: Arc<Context>, mut updates: watch::Receiver<Option<Pod>>) {
    let Some(pod) = updates.borrow().clone() else {
        return;
    };
    let name = pod_name(&pod);
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    let result = match phase.as_deref() {
        None | Some("Pending") if pod.metadata.deletion_timestamp.is_none() => {
            run_new_pod(&context, pod, &mut updates).await
        }
        Some("Running") if pod.metadata.deletion_timestamp.is_none() => {
            // Running without a process of ours: an earlier runner's.
            let result = set_failed(&context, &pod, "RunnerRestarted", None).await;
            match result {
                Ok(()) => wait_and_remove(&context, &mut updates).await,
                Err(e) => Err(e),
            }
        }
        _ => wait_and_remove(&context, &mut updates).await,
    };
    if let Err(error) = result {
        log(format!("{name}: {error}"));
    }
}

/// For a pod without a process: once it is being deleted, remove it.
async fn wait_and_remove(
    context: &Context,
    updates: &mut watch::Receiver<Option<Pod>>,
) -> Result<()> {
    loop {
        let current = updates.borrow_and_update().clone();
        let Some(pod) = current else { return Ok(()) };
        if pod.metadata.deletion_timestamp.is_some() {
            return remove(context, &pod).await;
        }
        if updates.changed().await.is_err() {
            return Ok(());
        }
    }
}

/// The kubelet's last word: the pod's containers are gone, delete it now.
async fn remove(context: &Context, pod: &Pod) -> Result<()> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pod_api(context, pod)
        .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

async fn set_failed(
    context: &Context,
    pod: &Pod,
    reason: &str,
    message: Option<&str>,
) -> Result<()> {
    let now = rfc3339_now();
    let containers: Vec<_> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            json!({"name": c.name, "image": c.image, "imageID": "", "ready": false, "restartCount": 0,
                   "state": {"terminated": {"exitCode": 1, "reason": reason, "message": message, "finishedAt": now}}})
        })
        .collect();
    let status = json!({"status": {
        "phase": "Failed",
        "reason": reason,
        "message": message,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": reason, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "False", "reason": reason, "lastTransitionTime": now},
        ],
        "containerStatuses": containers,
    }});
    patch_status(context, pod, &status).await
}

async fn patch_status(context: &Context, pod: &Pod, status: &serde_json::Value) -> Result<()> {
    pod_api(context, pod)
        .patch_status(
            pod.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(status),
        )
        .await?;
    Ok(())
}

/// What a pod runs: the workspace binary for its image.
fn binary_for(settings: &Settings, image: &str) -> Option<PathBuf> {
    let repository = image.split('@').next().unwrap_or(image);
    let repository = match repository.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => repository,
    };
    IMAGES
        .iter()
        .find(|(image, _)| *image == repository)
        .map(|(_, binary)| settings.bin_dir.join(binary))
}

/// A started pod's process and network.
struct Running {
    child: tokio::process::Child,
    ip: Ipv4Addr,
    netns: String,
    pod_dir: PathBuf,
    /// Refreshes the pod's Secret and ConfigMap volumes while it runs.
    _refresh: AbortOnDrop,
    _files_refresh: AbortOnDrop,
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_new_pod(
    context: &Arc<Context>,
    pod: Pod,
    updates: &mut watch::Receiver<Option<Pod>>,
) -> Result<()> {
    let name = pod_name(&pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let [container] = spec.containers.as_slice() else {
        set_failed(
            context,
            &pod,
            "Unsupported",
            Some("the pod runner runs pods of exactly one container"),
        )
        .await?;
        return wait_and_remove(context, updates).await;
    };
    let Some(binary) = binary_for(
        &context.settings,
        container.image.as_deref().unwrap_or_default(),
    ) else {
        let message = format!("image {:?} is not one of ours", container.image);
        set_failed(context, &pod, "UnsupportedImage", Some(&message)).await?;
        return wait_and_remove(context, updates).await;
    };
    let running = match start(context, &pod, container, &binary).await {
        Ok(running) => running,
        Err(error) => {
            log(format!("{name}: cannot start: {error}"));
            set_failed(context, &pod, "StartError", Some(&error.to_string())).await?;
            return wait_and_remove(context, updates).await;
        }
    };
    log(format!(
        "{name}: running {} as {} (pid {:?})",
        binary.display(),
        running.ip,
        running.child.id()
    ));
    supervise(context, pod, container.clone(), running, updates).await
}

async fn start(
    context: &Arc<Context>,
    pod: &Pod,
    container: &Container,
    binary: &Path,
) -> Result<Running> {
    let settings = &context.settings;
    let uid = pod.metadata.uid.clone().ok_or("pod without uid")?;
    let pod_dir = settings.state_dir.join("pods").join(&uid);
    std::fs::create_dir_all(&pod_dir)?;
    let spec = pod.spec.clone().unwrap_or_default();
    let pod_security = spec.security_context.clone().unwrap_or_default();
    let container_security = container.security_context.clone().unwrap_or_default();
    let run_as_user = container_security.run_as_user.or(pod_security.run_as_user);
    let run_as_group = container_security
        .run_as_group
        .or(pod_security.run_as_group)
        .or(run_as_user);
    let fs_group = pod_security.fs_group;

    let env = environment(context, pod, container).await?;
    let volumes = materialise_volumes(context, pod, &pod_dir, fs_group).await?;
    let refresh = AbortOnDrop(tokio::spawn(refresh_volumes(
        context.clone(),
        pod.clone(),
        pod_dir.clone(),
        fs_group,
    )));

    let ip = context
        .addresses
        .lock()
        .map_err(|_| "address lock poisoned")?
        .allocate()
        .ok_or("the node's pod CIDR is full")?;
    let netns = format!("hw-{}", &uid[..uid.len().min(23)]);
    let status = tokio::process::Command::new(&settings.podnet)
        .args(["add", &netns, &ip.to_string()])
        .env("NODE_IP", settings.node_ip.to_string())
        .status()
        .await?;
    if !status.success() {
        release(context, ip);
        return Err(format!(
            "{} add {netns} {ip} failed: {status}",
            settings.podnet.display()
        )
        .into());
    }

    // Its /etc/hosts (as the kubelet and the cluster DNS would have it)
    // and its image's CA bundle, each bind-mounted from `files/<n>`.
    let files_dir = pod_dir.join("files");
    let files = cluster_dns::files(
        pod,
        ip,
        &*context.names.lock().map_err(|_| "names lock poisoned")?,
    );
    let written = std::fs::create_dir_all(&files_dir).and_then(|()| {
        files.iter().enumerate().try_for_each(|(i, (_, content))| {
            cluster_dns::update(&files_dir.join(i.to_string()), "", content)
        })
    });
    if let Err(error) = written {
        teardown(context, &netns, ip, &pod_dir).await;
        return Err(error.into());
    }
    let files_refresh = AbortOnDrop(tokio::spawn(cluster_dns::keep_current(
        context.clone(),
        pod.clone(),
        ip,
        files_dir.clone(),
        files.clone(),
    )));

    // The container's command line: `command` replaces the image's
    // entrypoint (our binary), `args` its arguments; $(VAR) from the env.
    let expand = |s: &String| expand_vars(s, &env);
    let mut argv: Vec<String> = match &container.command {
        Some(command) if !command.is_empty() => {
            let mut command: Vec<String> = command.iter().map(expand).collect();
            let entrypoint = format!(
                "/usr/local/bin/{}",
                binary
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
            );
            if command[0] == entrypoint {
                command[0] = binary.display().to_string();
            }
            command
        }
        _ => vec![binary.display().to_string()],
    };
    argv.extend(container.args.iter().flatten().map(expand));

    // In the pod's network namespace, a private mount namespace: bind the
    // volumes at their mount paths, then become the pod's user and exec.
    let mut script = String::from("set -e\n");
    for (i, (target, _)) in files.iter().enumerate() {
        writeln!(
            script,
            "mount --bind {} {}",
            shell_quote(&files_dir.join(i.to_string()).display().to_string()),
            shell_quote(target)
        )?;
    }
    for (source, target, read_only) in &volumes {
        let (source, target) = (
            shell_quote(&source.display().to_string()),
            shell_quote(target),
        );
        writeln!(script, "mkdir -p {target} 2>/dev/null || true")?;
        writeln!(script, "mount --bind {source} {target}")?;
        if *read_only {
            writeln!(script, "mount -o remount,bind,ro {target}")?;
        }
    }
    let mut exec = vec!["exec".to_owned()];
    if let Some(user) = run_as_user {
        exec.extend([
            "setpriv".to_owned(),
            format!("--reuid={user}"),
            format!("--regid={}", run_as_group.unwrap_or(user)),
        ]);
        match fs_group {
            Some(group) => exec.push(format!("--groups={group}")),
            None => exec.push("--clear-groups".to_owned()),
        }
        exec.push("--".to_owned());
    }
    exec.push("\"$@\"".to_owned());
    script.push_str(&exec.join(" "));
    script.push('\n');
    let script_path = pod_dir.join("start.sh");
    std::fs::write(&script_path, script)?;

    let log_path = settings.state_dir.join("logs").join(format!(
        "{}_{}_{}.log",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        container.name
    ));
    let out = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let err = out.try_clone()?;
    let mut command = tokio::process::Command::new("nsenter");
    command
        .arg(format!("--net=/run/netns/{netns}"))
        .args([
            "--",
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
        ])
        .arg(&script_path)
        .args(&argv)
        .env_clear()
        .env("PATH", IMAGE_PATH)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(container.working_dir.as_deref().unwrap_or("/"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    command.as_std_mut().process_group(0);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            teardown(context, &netns, ip, &pod_dir).await;
            return Err(error.into());
        }
    };
    Ok(Running {
        child,
        ip,
        netns,
        pod_dir,
        _refresh: refresh,
        _files_refresh: files_refresh,
    })
}

fn release(context: &Context, ip: Ipv4Addr) {
    if let Ok(mut addresses) = context.addresses.lock() {
        addresses.release(ip);
    }
}

async fn teardown(context: &Context, netns: &str, ip: Ipv4Addr, pod_dir: &Path) {
    let _ = tokio::process::Command::new(&context.settings.podnet)
        .args(["del", netns, &ip.to_string()])
        .status()
        .await;
    release(context, ip);
    let _ = std::fs::remove_dir_all(pod_dir);
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `$(NAME)` becomes NAME's value when defined; `$$(NAME)` stays literal.
fn expand_vars(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match env.iter().rev().find(|(k, _)| k == name) {
                        Some((_, value)) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

async fn secret_data(
    context: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
    let secret = Api::<Secret>::namespaced(context.client.clone(), namespace)
        .get_opt(name)
        .await?;
    Ok(secret.map(|s| {
        let mut data: BTreeMap<String, Vec<u8>> = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in s.string_data.unwrap_or_default() {
            data.insert(k, v.into_bytes());
        }
        data
    }))
}

async fn config_map_data(
    context: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
    let map = Api::<ConfigMap>::namespaced(context.client.clone(), namespace)
        .get_opt(name)
        .await?;
    Ok(map.map(|m| {
        let mut data: BTreeMap<String, Vec<u8>> = m
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        for (k, v) in m.binary_data.unwrap_or_default() {
            data.insert(k, v.0);
        }
        data
    }))
}

fn field_value(pod: &Pod, ip: Option<&str>, path: &str, node: &str) -> Result<String> {
    let meta = &pod.metadata;
    let label = |map: &Option<BTreeMap<String, String>>, prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
            .and_then(|key| map.as_ref()?.get(key).cloned())
            .unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => node.to_owned(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.hostIP" => ip.unwrap_or_default().to_owned(),
        p if p.starts_with("metadata.labels['") => label(&meta.labels, "metadata.labels['"),
        p if p.starts_with("metadata.annotations['") => {
            label(&meta.annotations, "metadata.annotations['")
        }
        other => return Err(format!("fieldRef {other} is not supported").into()),
    })
}

/// The container's environment as a kubelet builds it.
async fn environment(
    context: &Context,
    pod: &Pod,
    container: &Container,
) -> Result<Vec<(String, String)>> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let settings = &context.settings;
    let mut env: Vec<(String, String)> = vec![
        (
            "HOSTNAME".to_owned(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
        // The kubelet always sets these for the `kubernetes` Service; its
        // ClusterIP has no proxy here, the API server's loopback address does.
        (
            "KUBERNETES_SERVICE_HOST".to_owned(),
            settings.api_host.clone(),
        ),
        (
            "KUBERNETES_SERVICE_PORT".to_owned(),
            settings.api_port.clone(),
        ),
        (
            "KUBERNETES_SERVICE_PORT_HTTPS".to_owned(),
            settings.api_port.clone(),
        ),
    ];
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
        env.retain(|(k, _)| *k != name);
        env.push((name, value));
    };
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let (data, optional, what) = if let Some(secret) = &source.secret_ref {
            (
                secret_data(context, &namespace, &secret.name).await?,
                secret.optional,
                format!("Secret {}", secret.name),
            )
        } else if let Some(map) = &source.config_map_ref {
            (
                config_map_data(context, &namespace, &map.name).await?,
                map.optional,
                format!("ConfigMap {}", map.name),
            )
        } else {
            continue;
        };
        match data {
            Some(data) => {
                for (k, v) in data {
                    set(
                        &mut env,
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(&v).into_owned(),
                    );
                }
            }
            None if optional == Some(true) => {}
            None => return Err(format!("envFrom: {what} not found").into()),
        }
    }
    for EnvVar {
        name,
        value,
        value_from,
    } in container.env.iter().flatten()
    {
        let value = if let Some(value) = value {
            expand_vars(value, &env)
        } else if let Some(from) = value_from {
            if let Some(key) = &from.secret_key_ref {
                let data = secret_data(context, &namespace, &key.name).await?;
                match data.and_then(|d| d.get(&key.key).cloned()) {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if key.optional == Some(true) => continue,
                    None => {
                        return Err(format!(
                            "env {name}: key {} of Secret {} not found",
                            key.key, key.name
                        )
                        .into());
                    }
                }
            } else if let Some(key) = &from.config_map_key_ref {
                let data = config_map_data(context, &namespace, &key.name).await?;
                match data.and_then(|d| d.get(&key.key).cloned()) {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if key.optional == Some(true) => continue,
                    None => {
                        return Err(format!(
                            "env {name}: key {} of ConfigMap {} not found",
                            key.key, key.name
                        )
                        .into());
                    }
                }
            } else if let Some(field) = &from.field_ref {
                // status.podIP is not known yet: the pod runner allocates it
                // later; nothing of ours asks for it.
                field_value(pod, None, &field.field_path, &settings.node)?
            } else {
                return Err(format!("env {name}: resourceFieldRef is not supported").into());
            }
        } else {
            String::new()
        };
        set(&mut env, name.clone(), value);
    }
    Ok(env)
}

/// Whether `projected` is made of Secrets and ConfigMaps only (a pool's
/// configuration shards): such a volume is refreshed like a Secret volume.
/// One with a token or the downward API is written at the start only.
fn objects_only(projected: &k8s_openapi::api::core::v1::ProjectedVolumeSource) -> bool {
    projected.sources.iter().flatten().all(|source| {
        source.service_account_token.is_none()
            && source.downward_api.is_none()
            && source.cluster_trust_bundle.is_none()
            && (source.secret.is_some() || source.config_map.is_some())
    })
}

/// The files of a Secret or ConfigMap volume, or of a projected volume of
/// those ([`objects_only`]), from their objects now; `None` for the other
/// kinds of volume. A missing object is an error unless its source is
/// optional (then: no files).
async fn object_volume_files(
    context: &Context,
    namespace: &str,
    volume: &k8s_openapi::api::core::v1::Volume,
) -> Result<Option<Vec<(String, Vec<u8>, i32)>>> {
    if let Some(source) = &volume.secret {
        let name = source.secret_name.clone().unwrap_or_default();
        let data = match secret_data(context, namespace, &name).await? {
            Some(data) => data,
            None if source.optional == Some(true) => BTreeMap::new(),
            None => {
                return Err(format!("Secret {name} of volume {} not found", volume.name).into());
            }
        };
        return select_items(
            &data,
            source.items.as_ref(),
            source.default_mode.unwrap_or(0o644),
            &format!("Secret {name}"),
        )
        .map(Some);
    }
    if let Some(source) = &volume.config_map {
        let name = source.name.clone();
        let data = match config_map_data(context, namespace, &name).await? {
            Some(data) => data,
            None if source.optional == Some(true) => BTreeMap::new(),
            None => {
                return Err(format!("ConfigMap {name} of volume {} not found", volume.name).into());
            }
        };
        return select_items(
            &data,
            source.items.as_ref(),
            source.default_mode.unwrap_or(0o644),
            &format!("ConfigMap {name}"),
        )
        .map(Some);
    }
    if let Some(projected) = volume.projected.as_ref().filter(|p| objects_only(p)) {
        let default_mode = projected.default_mode.unwrap_or(0o644);
        // By path: as the kubelet's projection, a later source's file of
        // the same path replaces an earlier one's.
        let mut files: BTreeMap<String, (Vec<u8>, i32)> = BTreeMap::new();
        for source in projected.sources.iter().flatten() {
            let (data, items, what, optional) = if let Some(secret) = &source.secret {
                (
                    secret_data(context, namespace, &secret.name).await?,
                    secret.items.as_ref(),
                    format!("Secret {}", secret.name),
                    secret.optional,
                )
            } else if let Some(map) = &source.config_map {
                (
                    config_map_data(context, namespace, &map.name).await?,
                    map.items.as_ref(),
                    format!("ConfigMap {}", map.name),
                    map.optional,
                )
            } else {
                continue;
            };
            let data = match data {
                Some(data) => data,
                None if optional == Some(true) => BTreeMap::new(),
                None => return Err(format!("{what} of volume {} not found", volume.name).into()),
            };
            for (path, value, mode) in select_items(&data, items, default_mode, &what)? {
                files.insert(path, (value, mode));
            }
        }
        return Ok(Some(
            files
                .into_iter()
                .map(|(path, (value, mode))| (path, value, mode))
                .collect(),
        ));
    }
    Ok(None)
}

/// Keeps the Secret and ConfigMap volumes of `pod` current while its
/// directory exists: each is written again ([`write_atomic`]) when its
/// object's data changed. A failed read keeps the files as they are, as
/// the kubelet does, and is tried again at the next round.
async fn refresh_volumes(context: Arc<Context>, pod: Pod, pod_dir: PathBuf, fs_group: Option<i64>) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let volumes: Vec<_> = pod
        .spec
        .iter()
        .flat_map(|spec| spec.volumes.iter().flatten())
        .filter(|volume| {
            volume.secret.is_some()
                || volume.config_map.is_some()
                || volume.projected.as_ref().is_some_and(objects_only)
        })
        .cloned()
        .collect();
    let mut written: HashMap<String, Vec<(String, Vec<u8>, i32)>> = HashMap::new();
    while pod_dir.exists() {
        tokio::time::sleep(VOLUME_REFRESH).await;
        for volume in &volumes {
            let dir = pod_dir.join("volumes").join(&volume.name);
            if !dir.exists() {
                // Not mounted by the container.
                continue;
            }
            let files = match object_volume_files(&context, &namespace, volume).await {
                Ok(Some(files)) => files,
                Ok(None) => continue,
                Err(error) => {
                    log(format!(
                        "{}: volume {} not refreshed: {error}",
                        pod_name(&pod),
                        volume.name
                    ));
                    continue;
                }
            };
            if written.get(&volume.name) == Some(&files) {
                continue;
            }
            // The first round only learns what the start wrote.
            let first = !written.contains_key(&volume.name);
            let unchanged = first && same_files(&dir, &files);
            if !unchanged {
                match write_atomic(&dir, &files, fs_group) {
                    Ok(()) => log(format!(
                        "{}: volume {} updated",
                        pod_name(&pod),
                        volume.name
                    )),
                    Err(error) => {
                        log(format!(
                            "{}: volume {} not refreshed: {error}",
                            pod_name(&pod),
                            volume.name
                        ));
                        continue;
                    }
                }
            }
            written.insert(volume.name.clone(), files);
        }
    }
}

/// Whether `dir` holds exactly `files` (contents; the modes are the
/// volume's and do not change while the pod runs).
fn same_files(dir: &Path, files: &[(String, Vec<u8>, i32)]) -> bool {
    let listed = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with(".."))
                .count()
        })
        .unwrap_or(0);
    let top: std::collections::BTreeSet<&str> = files
        .iter()
        .filter_map(|(path, _, _)| path.split('/').next())
        .collect();
    listed == top.len()
        && files
            .iter()
            .all(|(path, content, _)| std::fs::read(dir.join(path)).is_ok_and(|c| &c == content))
}

fn select_items(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    what: &str,
) -> Result<Vec<(String, Vec<u8>, i32)>> {
    match items {
        Some(items) => items
            .iter()
            .map(|item| {
                let value = data
                    .get(&item.key)
                    .ok_or_else(|| format!("{what} has no key {}", item.key))?;
                Ok((
                    item.path.clone(),
                    value.clone(),
                    item.mode.unwrap_or(default_mode),
                ))
            })
            .collect(),
        None => Ok(data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), default_mode))
            .collect()),
    }
}

/// Every volume the container mounts, laid out under the pod's directory:
/// (source, mount path, read-only).
async fn materialise_volumes(
    context: &Context,
    pod: &Pod,
    pod_dir: &Path,
    fs_group: Option<i64>,
) -> Result<Vec<(PathBuf, String, bool)>> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let container = spec.containers.first().ok_or("no container")?;
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .ok_or_else(|| format!("volumeMount {} names no volume", mount.name))?;
        let dir = pod_dir.join("volumes").join(&volume.name);
        if let Some(files) = object_volume_files(context, &namespace, volume).await? {
            write_atomic(&dir, &files, fs_group)?;
        } else if let Some(projected) = &volume.projected {
            let default_mode = projected.default_mode.unwrap_or(0o644);
            let mut files = Vec::new();
            for source in projected.sources.iter().flatten() {
                if let Some(token) = &source.service_account_token {
                    let account = spec
                        .service_account_name
                        .clone()
                        .unwrap_or_else(|| "default".to_owned());
                    let request = TokenRequest {
                        spec: Some(TokenRequestSpec {
                            audiences: token.audience.clone().map(|a| vec![a]),
                            expiration_seconds: token.expiration_seconds,
                            bound_object_ref: Some(
                                k8s_openapi::api::authentication::v1::BoundObjectReference {
                                    api_version: Some("v1".to_owned()),
                                    kind: Some("Pod".to_owned()),
                                    name: pod.metadata.name.clone(),
                                    uid: pod.metadata.uid.clone(),
                                },
                            ),
                            ..TokenRequestSpec::default()
                        }),
                        ..TokenRequest::default()
                    };
                    let issued: TokenRequest =
                        Api::<ServiceAccount>::namespaced(context.client.clone(), &namespace)
                            .create_subresource("token", &account, &PostParams::default(), &request)
                            .await?;
                    let value = issued
                        .status
                        .and_then(|s| s.token)
                        .ok_or("TokenRequest returned no token")?;
                    files.push((token.path.clone(), value.into_bytes(), default_mode));
                }
                if let Some(source) = &source.config_map {
                    let data = config_map_data(context, &namespace, &source.name)
                        .await?
                        .unwrap_or_default();
                    files.extend(select_items(
                        &data,
                        source.items.as_ref(),
                        default_mode,
                        &format!("ConfigMap {}", source.name),
                    )?);
                }
                if let Some(source) = &source.secret {
                    let data = secret_data(context, &namespace, &source.name)
                        .await?
                        .unwrap_or_default();
                    files.extend(select_items(
                        &data,
                        source.items.as_ref(),
                        default_mode,
                        &format!("Secret {}", source.name),
                    )?);
                }
                if let Some(downward) = &source.downward_api {
                    for item in downward.items.iter().flatten() {
                        let field = item
                            .field_ref
                            .as_ref()
                            .ok_or("downwardAPI item without fieldRef")?;
                        let value =
                            field_value(pod, None, &field.field_path, &context.settings.node)?;
                        files.push((
                            item.path.clone(),
                            value.into_bytes(),
                            item.mode.unwrap_or(default_mode),
                        ));
                    }
                }
            }
            write_atomic(&dir, &files, fs_group)?;
        } else if volume.empty_dir.is_some() {
            std::fs::create_dir_all(&dir)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
        } else {
            return Err(format!(
                "volume {} is of a kind the pod runner does not support",
                volume.name
            )
            .into());
        }
        let source = match &mount.sub_path {
            Some(sub) if !sub.is_empty() => dir.join(sub),
            _ => dir,
        };
        mounts.push((
            source,
            mount.mount_path.clone(),
            mount.read_only.unwrap_or(false),
        ));
    }
    Ok(mounts)
}

/// One probe against the pod IP: Ok(true) passed.
async fn probe(probe: &Probe, container: &Container, ip: Ipv4Addr) -> bool {
    let timeout =
        Duration::from_secs(u64::try_from(probe.timeout_seconds.unwrap_or(1).max(1)).unwrap_or(1));
    let port_of = |port: &IntOrString| -> Option<u16> {
        match port {
            IntOrString::Int(n) => u16::try_from(*n).ok(),
            IntOrString::String(name) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        }
    };
    let attempt = async {
        if let Some(get) = &probe.http_get {
            let port = port_of(&get.port)?;
            let host = get.host.clone().unwrap_or_else(|| ip.to_string());
            let mut stream = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .ok()?;
            let path = get.path.clone().unwrap_or_else(|| "/".to_owned());
            let request = format!(
                "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/hookwarden\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut response = Vec::new();
            let _ = stream.take(4096).read_to_end(&mut response).await;
            let text = String::from_utf8_lossy(&response);
            let code: u16 = text.split(' ').nth(1)?.parse().ok()?;
            Some((200..400).contains(&code))
        } else if let Some(tcp) = &probe.tcp_socket {
            let port = port_of(&tcp.port)?;
            Some(tokio::net::TcpStream::connect((ip, port)).await.is_ok())
        } else {
            // exec and grpc probes are not supported: never passes.
            Some(false)
        }
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}

fn running_status(
    container: &Container,
    ip: Ipv4Addr,
    node_ip: Ipv4Addr,
    ready: bool,
    started: &str,
    now: &str,
) -> serde_json::Value {
    let status = if ready { "True" } else { "False" };
    json!({"status": {
        "phase": "Running",
        "hostIP": node_ip.to_string(),
        "hostIPs": [{"ip": node_ip.to_string()}],
        "podIP": ip.to_string(),
        "podIPs": [{"ip": ip.to_string()}],
        "startTime": started,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": started},
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
            {"type": "ContainersReady", "status": status, "lastTransitionTime": now},
            {"type": "Ready", "status": status, "lastTransitionTime": now},
        ],
        "containerStatuses": [{
            "name": container.name, "image": container.image, "imageID": "", "ready": ready,
            "restartCount": 0, "started": true, "state": {"running": {"startedAt": started}},
        }],
    }})
}

async fn supervise(
    context: &Arc<Context>,
    mut pod: Pod,
    container: Container,
    mut running: Running,
    updates: &mut watch::Receiver<Option<Pod>>,
) -> Result<()> {
    let name = pod_name(&pod);
    let settings = &context.settings;
    let started = rfc3339_now();
    patch_status(
        context,
        &pod,
        &running_status(
            &container,
            running.ip,
            settings.node_ip,
            false,
            &started,
            &started,
        ),
    )
    .await?;
    let readiness = container.readiness_probe.clone();
    let liveness = container.liveness_probe.clone();
    let period = |p: &Option<Probe>| {
        Duration::from_secs(
            u64::try_from(
                p.as_ref()
                    .and_then(|p| p.period_seconds)
                    .unwrap_or(10)
                    .max(1),
            )
            .unwrap_or(10),
        )
    };
    let mut readiness_tick = tokio::time::interval(period(&readiness));
    let mut liveness_tick = tokio::time::interval(period(&liveness));
    let delay = |p: &Option<Probe>| {
        Duration::from_secs(
            u64::try_from(
                p.as_ref()
                    .and_then(|p| p.initial_delay_seconds)
                    .unwrap_or(0),
            )
            .unwrap_or(0),
        )
    };
    let readiness_from = tokio::time::Instant::now() + delay(&readiness);
    let liveness_from = tokio::time::Instant::now() + delay(&liveness);
    // No readiness probe: ready once running, as the kubelet says.
    let mut ready = false;
    let (mut passes, mut failures, mut live_failures) = (0, 0, 0);
    if readiness.is_none() {
        ready = true;
        context.set_endpoint(&pod, &container, Some(running.ip));
        patch_status(
            context,
            &pod,
            &running_status(
                &container,
                running.ip,
                settings.node_ip,
                true,
                &started,
                &rfc3339_now(),
            ),
        )
        .await?;
    }
    let exit = loop {
        tokio::select! {
            status = running.child.wait() => break status.ok(),
            _ = readiness_tick.tick(), if readiness.is_some() && tokio::time::Instant::now() >= readiness_from => {
                let Some(probe_spec) = &readiness else { continue };
                let ok = probe(probe_spec, &container, running.ip).await;
                let (now_ready, changed) = if ok {
                    passes += 1;
                    failures = 0;
                    let wanted = probe_spec.success_threshold.unwrap_or(1).max(1);
                    (ready || passes >= wanted, !ready && passes >= wanted)
                } else {
                    failures += 1;
                    passes = 0;
                    let allowed = probe_spec.failure_threshold.unwrap_or(3).max(1);
                    (ready && failures < allowed, ready && failures >= allowed)
                };
                if changed {
                    ready = now_ready;
                    log(format!("{name}: ready={ready}"));
                    context.set_endpoint(&pod, &container, ready.then_some(running.ip));
                    if let Err(error) = patch_status(context, &pod, &running_status(&container, running.ip, settings.node_ip, ready, &started, &rfc3339_now())).await {
                        log(format!("{name}: status: {error}"));
                        ready = !ready; // try again at the next probe
                    }
                }
            }
            _ = liveness_tick.tick(), if liveness.is_some() && tokio::time::Instant::now() >= liveness_from => {
                let Some(probe_spec) = &liveness else { continue };
                if probe(probe_spec, &container, running.ip).await {
                    live_failures = 0;
                } else {
                    live_failures += 1;
                    if live_failures >= probe_spec.failure_threshold.unwrap_or(3).max(1) {
                        log(format!("{name}: liveness probe failed {live_failures} times: killing"));
                        signal_group(&running.child, Signal::SIGKILL);
                    }
                }
            }
            changed = updates.changed() => {
                let current = if changed.is_ok() { updates.borrow_and_update().clone() } else { None };
                match current {
                    Some(latest) if latest.metadata.deletion_timestamp.is_none() => pod = latest,
                    Some(latest) => {
                        // Terminating: no new connections, as kube-proxy
                        // stops sending to a pod the moment it terminates.
                        context.set_endpoint(&pod, &container, None);
                        let grace = latest.metadata.deletion_grace_period_seconds.unwrap_or(30);
                        log(format!("{name}: deleted: stopping (grace {grace}s)"));
                        stop(&mut running.child, Duration::from_secs(u64::try_from(grace.max(0)).unwrap_or(30))).await;
                        teardown(context, &running.netns, running.ip, &running.pod_dir).await;
                        return remove(context, &latest).await;
                    }
                    None => {
                        // Gone from the API (or the runner is stopping).
                        context.set_endpoint(&pod, &container, None);
                        stop(&mut running.child, Duration::from_secs(10)).await;
                        teardown(context, &running.netns, running.ip, &running.pod_dir).await;
                        return Ok(());
                    }
                }
            }
        }
    };
    context.set_endpoint(&pod, &container, None);
    let code = exit.and_then(|s| s.code()).unwrap_or(-1);
    log(format!("{name}: process exited ({exit:?}): pod Failed"));
    teardown(context, &running.netns, running.ip, &running.pod_dir).await;
    let message = format!("the process exited with {exit:?}");
    let now = rfc3339_now();
    let status = json!({"status": {
        "phase": "Failed",
        "reason": "Error",
        "message": message,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "PodFailed", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "False", "reason": "PodFailed", "lastTransitionTime": now},
        ],
        "containerStatuses": [{
            "name": container.name, "image": container.image, "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "reason": "Error", "startedAt": started, "finishedAt": now}},
        }],
    }});
    patch_status(context, &pod, &status).await?;
    wait_and_remove(context, updates).await
}

fn signal_group(child: &tokio::process::Child, signal: Signal) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = kill(Pid::from_raw(-pid), signal);
    }
}

/// SIGTERM, up to `grace` to exit, then SIGKILL.
async fn stop(child: &mut tokio::process::Child, grace: Duration) {
    signal_group(child, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(child, Signal::SIGKILL);
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    }
}

/// The Services of the cluster, as kube-proxy would serve them: their
/// ClusterIPs are loopback addresses here (`--service-cluster-ip-range
/// 127.2.0.0/16`), so a listener on each ClusterIP and port forwards every
/// connection (TCP, bytes untouched) to one ready pod of the Service's
/// selector, round robin; the EndpointSlices that kube-proxy would read
/// cannot hold loopback pod IPs (the API refuses them), so the ready pods
/// come from the runner itself, which knows each pod's readiness first hand.
/// A Service without a selector is served when its
/// [`service_proxy::BACKENDS_ANNOTATION`] names backends (a test's own
/// server on the host, where a user would write an EndpointSlice).
mod service_proxy {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub(super) async fn run(context: Arc<Context>) {
        let services: Api<Service> = Api::all(context.client.clone());
        let mut events = watcher(services, watcher::Config::default()).boxed();
        // uid → (resourceVersion-independent key of what is served, listeners)
        let mut served: HashMap<String, (String, Vec<tokio::task::JoinHandle<()>>)> =
            HashMap::new();
        while let Some(event) = events.next().await {
            let (service, present) = match event {
                Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => (s, true),
                Ok(watcher::Event::Delete(s)) => (s, false),
                Ok(_) => continue,
                Err(error) => {
                    log(format!("service watch: {error}"));
                    continue;
                }
            };
            let Some(uid) = service.metadata.uid.clone() else {
                continue;
            };
            let key = if present { serving_key(&service) } else { None };
            if served.get(&uid).map(|(k, _)| Some(k)) == Some(key.as_ref()) {
                continue;
            }
            if let Some((_, listeners)) = served.remove(&uid) {
                listeners.iter().for_each(tokio::task::JoinHandle::abort);
            }
            if let Some(key) = key {
                let listeners = listen(&context, &service).await;
                served.insert(uid, (key, listeners));
            }
        }
    }

    /// The annotation naming the backends (`ip:port`, comma-separated) of
    /// a Service without a selector: the stand-in for the EndpointSlice a
    /// user writes for a backend outside the pod network, which the API
    /// refuses when its addresses are loopback ones (a test's server).
    pub(super) const BACKENDS_ANNOTATION: &str = "hookwarden.dev/pod-runner-backends";

    /// The backends a selector-less Service's annotation names.
    fn annotated_backends(service: &Service) -> Vec<std::net::SocketAddrV4> {
        service
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(BACKENDS_ANNOTATION))
            .map(|list| {
                list.split(',')
                    .filter_map(|b| b.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What a Service asks to be served: ClusterIP, ports, and its
    /// selector or annotated backends.
    fn serving_key(service: &Service) -> Option<String> {
        let spec = service.spec.as_ref()?;
        let ip: Ipv4Addr = spec.cluster_ip.as_ref()?.parse().ok()?;
        let selected = spec.selector.as_ref().is_some_and(|s| !s.is_empty());
        let backends = annotated_backends(service);
        if !ip.is_loopback() || (!selected && backends.is_empty()) {
            return None;
        }
        serde_json::to_string(&(ip, &spec.ports, &spec.selector, backends)).ok()
    }

    async fn listen(context: &Arc<Context>, service: &Service) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        let Some(spec) = service.spec.clone() else {
            return handles;
        };
        let Some(ip) = spec
            .cluster_ip
            .as_ref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            return handles;
        };
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let selector = spec.selector.clone().unwrap_or_default();
        let backends = Arc::new(annotated_backends(service));
        for port in spec.ports.iter().flatten() {
            if port.protocol.as_deref().is_some_and(|p| p != "TCP") {
                continue;
            }
            let Ok(number) = u16::try_from(port.port) else {
                continue;
            };
            let listener = match tokio::net::TcpListener::bind((ip, number)).await {
                Ok(listener) => listener,
                Err(error) => {
                    log(format!(
                        "service {namespace}/{:?}: cannot listen on {ip}:{number}: {error}",
                        service.metadata.name
                    ));
                    continue;
                }
            };
            let target = port
                .target_port
                .clone()
                .unwrap_or(IntOrString::Int(port.port));
            let (context, namespace, selector, backends) = (
                context.clone(),
                namespace.clone(),
                selector.clone(),
                backends.clone(),
            );
            let next = Arc::new(AtomicUsize::new(0));
            handles.push(tokio::spawn(async move {
                loop {
                    let Ok((inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    let backend = if selector.is_empty() {
                        // Annotated backends: the target port is theirs.
                        backends
                            .get(next.fetch_add(1, Ordering::Relaxed) % backends.len().max(1))
                            .map(|b| (*b.ip(), b.port()))
                    } else {
                        pick(&context, &namespace, &selector, &target, &next)
                    };
                    tokio::spawn(async move {
                        let Some(backend) = backend else { return };
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await else {
                            return;
                        };
                        let mut inbound = inbound;
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    });
                }
            }));
        }
        handles
    }

    /// One ready pod of the selector (round robin) and its target port.
    fn pick(
        context: &Context,
        namespace: &str,
        selector: &BTreeMap<String, String>,
        target: &IntOrString,
        next: &AtomicUsize,
    ) -> Option<(Ipv4Addr, u16)> {
        let endpoints = context.endpoints.lock().ok()?;
        let mut ready: Vec<(Ipv4Addr, u16)> = endpoints
            .values()
            .filter(|e| {
                e.namespace == namespace && selector.iter().all(|(k, v)| e.labels.get(k) == Some(v))
            })
            .filter_map(|e| {
                let port = match target {
                    IntOrString::Int(n) => u16::try_from(*n).ok()?,
                    IntOrString::String(name) => *e.ports.get(name)?,
                };
                Some((e.ip, port))
            })
            .collect();
        if ready.is_empty() {
            return None;
        }
        ready.sort();
        Some(ready[next.fetch_add(1, Ordering::Relaxed) % ready.len()])
    }
}

/// Name resolution for the pods, as a cluster's DNS gives it: kwok's node
/// has no CoreDNS, and a pod's process resolves names through its
/// `/etc/hosts` (glibc's `files` source), so each pod gets one of its own,
/// bind-mounted over `/etc/hosts` in its mount namespace and kept current:
///
/// - what the kubelet writes: `localhost`, the pod's IP and hostname, then
///   the pod's `spec.hostAliases`;
/// - what CoreDNS would answer for the cluster's Services:
///   `<service>.<namespace>.svc.cluster.local`, `<service>.<namespace>.svc`,
///   `<service>.<namespace>` and, in the pod's own namespace, `<service>`
///   (the names a pod's search path makes work) → the ClusterIP;
/// - what CoreDNS would forward upstream, for names outside the cluster
///   (a provider's key host, say): ConfigMaps labelled
///   `hookwarden.dev/pod-runner=upstream-hosts` hold `/etc/hosts` lines
///   under the key `hosts`. A
///   test puts one in its own namespace, so its entries go with it. This is
///   the stand-in of a cluster's upstream resolver, as CoreDNS's `hosts`
///   plugin would serve it; it never changes what a Service name means.
///
/// A Service's name stays known after the Service is deleted (a lookup of
/// a gone Service is nobody's test), so the file only grows while Services
/// come and go, and growing is an append: a lookup never reads a file cut
/// short. It is rewritten in place only when an address or an upstream
/// entry changed.
///
/// The same way, a pod's image CA bundle (`/etc/ssl/certs/ca-certificates.crt`,
/// where our distroless images keep it) is the host's plus the PEM
/// certificates of ConfigMaps labelled `hookwarden.dev/pod-runner=image-ca`
/// (key `ca.crt`): the stand-in for an image built with a private CA, so a
/// pod trusts a test's HTTPS server (a provider's key host) as it trusts
/// the public ones, with nothing in its spec changed.
mod cluster_dns {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use std::io::Write as _;

    /// The label of the ConfigMaps the runner reads, and its values:
    /// [`UPSTREAM_HOSTS`] (`/etc/hosts` lines under the key `hosts`) or
    /// [`IMAGE_CA`] (a PEM certificate under the key `ca.crt`).
    pub(super) const LABEL: &str = "hookwarden.dev/pod-runner";
    pub(super) const UPSTREAM_HOSTS: &str = "upstream-hosts";
    pub(super) const IMAGE_CA: &str = "image-ca";
    /// Where our distroless images (and Debian's) keep their CA bundle,
    /// the first file `rustls-native-certs` (openssl-probe) looks for.
    pub(super) const IMAGE_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
    const CLUSTER_DOMAIN: &str = "cluster.local";

    /// What the cluster's DNS knows.
    #[derive(Debug, Default)]
    pub(super) struct Names {
        /// Services in the order they were first seen: (namespace, name, ClusterIP).
        services: Vec<(String, String, Ipv4Addr)>,
        /// ConfigMap uid → its `/etc/hosts` lines, in the order seen.
        upstream: Vec<(String, String)>,
        /// ConfigMap uid → a CA certificate (PEM), in the order seen.
        image_cas: Vec<(String, String)>,
        /// The host's CA bundle, what an image ships.
        host_bundle: Option<String>,
    }

    impl Names {
        pub(super) fn service(&mut self, service: &Service) {
            let (Some(namespace), Some(name)) = (
                service.metadata.namespace.clone(),
                service.metadata.name.clone(),
            ) else {
                return;
            };
            let Some(ip) = service
                .spec
                .as_ref()
                .and_then(|s| s.cluster_ip.as_ref())
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            else {
                return;
            };
            match self
                .services
                .iter_mut()
                .find(|(ns, n, _)| *ns == namespace && *n == name)
            {
                Some(entry) => entry.2 = ip,
                None => self.services.push((namespace, name, ip)),
            }
        }

        pub(super) fn upstream(&mut self, uid: String, hosts: Option<String>) {
            set_entry(&mut self.upstream, uid, hosts);
        }

        pub(super) fn image_ca(&mut self, uid: String, pem: Option<String>) {
            set_entry(&mut self.image_cas, uid, pem);
        }

        /// The CA bundle of a pod's image: the host's, then the test CAs.
        pub(super) fn ca_bundle(&self) -> Option<String> {
            let mut bundle = self.host_bundle.clone()?;
            for (_, pem) in &self.image_cas {
                if !bundle.ends_with('\n') {
                    bundle.push('\n');
                }
                bundle.push_str(pem);
            }
            Some(bundle)
        }
    }

    /// Sets (`Some`), replaces or removes (`None`) `uid`'s entry, keeping
    /// the order the entries were first seen in.
    fn set_entry(entries: &mut Vec<(String, String)>, uid: String, value: Option<String>) {
        match (entries.iter().position(|(u, _)| *u == uid), value) {
            (Some(i), Some(value)) => entries[i].1 = value,
            (Some(i), None) => {
                entries.remove(i);
            }
            (None, Some(value)) => entries.push((uid, value)),
            (None, None) => {}
        }
    }

    /// Keeps `names` current from the API: every Service with a ClusterIP,
    /// every ConfigMap labelled [`LABEL`].
    pub(super) async fn run(context: Arc<Context>) {
        let services: Api<Service> = Api::all(context.client.clone());
        let maps: Api<ConfigMap> = Api::all(context.client.clone());
        let mut services = watcher(services, watcher::Config::default()).boxed();
        let mut maps = watcher(maps, watcher::Config::default().labels(LABEL)).boxed();
        if let Ok(mut names) = context.names.lock() {
            names.host_bundle = std::fs::read_to_string(IMAGE_CA_BUNDLE).ok();
        }
        loop {
            tokio::select! {
                event = services.next() => match event {
                    Some(Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))) => {
                        if let Ok(mut names) = context.names.lock() {
                            names.service(&s);
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => log(format!("cluster DNS: service watch: {error}")),
                    None => return,
                },
                event = maps.next() => {
                    let (map, present) = match event {
                        Some(Ok(watcher::Event::Apply(m) | watcher::Event::InitApply(m))) => (m, true),
                        Some(Ok(watcher::Event::Delete(m))) => (m, false),
                        Some(Ok(_)) => continue,
                        Some(Err(error)) => {
                            log(format!("cluster DNS: ConfigMap watch: {error}"));
                            continue;
                        }
                        None => return,
                    };
                    let Some(uid) = map.metadata.uid.clone() else { continue };
                    let kind = map.metadata.labels.as_ref().and_then(|l| l.get(LABEL)).cloned();
                    let value = |key: &str| {
                        present
                            .then(|| map.data.as_ref().and_then(|d| d.get(key)).cloned())
                            .flatten()
                    };
                    let Ok(mut names) = context.names.lock() else { return };
                    match kind.as_deref() {
                        Some(UPSTREAM_HOSTS) => names.upstream(uid, value("hosts")),
                        Some(IMAGE_CA) => names.image_ca(uid, value("ca.crt")),
                        _ => {}
                    }
                }
            }
        }
    }

    /// The pod's `/etc/hosts`: the kubelet's part, then the cluster DNS's.
    pub(super) fn hosts_file(pod: &Pod, ip: Ipv4Addr, names: &Names) -> String {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let hostname = spec
            .and_then(|s| s.hostname.as_deref())
            .or(pod.metadata.name.as_deref())
            .unwrap_or_default();
        let mut out = String::from(
            "# Kubernetes-managed hosts file (the hookwarden pod runner's).\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n",
        );
        let _ = writeln!(out, "{ip}\t{hostname}");
        let aliases = spec.and_then(|s| s.host_aliases.as_ref());
        if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
            out.push_str("\n# Entries added by HostAliases.\n");
            for alias in aliases {
                let hostnames = alias.hostnames.clone().unwrap_or_default();
                if !hostnames.is_empty() {
                    let _ = writeln!(out, "{}\t{}", alias.ip, hostnames.join(" "));
                }
            }
        }
        let _ = writeln!(
            out,
            "\n# The cluster DNS's upstream (ConfigMaps labelled {LABEL}={UPSTREAM_HOSTS})."
        );
        for (_, hosts) in &names.upstream {
            for line in hosts.lines().map(str::trim) {
                if !line.is_empty() && !line.starts_with('#') {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out.push_str("\n# The cluster's Services.\n");
        for (service_namespace, name, ip) in &names.services {
            let _ = write!(
                out,
                "{ip}\t{name}.{service_namespace}.svc.{CLUSTER_DOMAIN} \
                 {name}.{service_namespace}.svc {name}.{service_namespace}"
            );
            if service_namespace == namespace {
                let _ = write!(out, " {name}");
            }
            out.push('\n');
        }
        out
    }

    /// The files a pod's mount namespace gets from the runner: its
    /// `/etc/hosts` and, when the host has one, its image's CA bundle, as
    /// (where the pod sees it, its content now).
    pub(super) fn files(pod: &Pod, ip: Ipv4Addr, names: &Names) -> Vec<(&'static str, String)> {
        let mut files = vec![("/etc/hosts", hosts_file(pod, ip, names))];
        if let Some(bundle) = names.ca_bundle() {
            files.push((IMAGE_CA_BUNDLE, bundle));
        }
        files
    }

    /// Keeps each of `written` (the pod's files, at `dir/<n>` as written at
    /// its start) current, until the pod's directory is gone.
    pub(super) async fn keep_current(
        context: Arc<Context>,
        pod: Pod,
        ip: Ipv4Addr,
        dir: PathBuf,
        mut written: Vec<(&'static str, String)>,
    ) {
        loop {
            tokio::time::sleep(VOLUME_REFRESH).await;
            if !dir.exists() {
                return;
            }
            let wanted = match context.names.lock() {
                Ok(names) => files(&pod, ip, &names),
                Err(_) => return,
            };
            for (i, (target, content)) in wanted.into_iter().enumerate() {
                let Some((_, old)) = written.get_mut(i).filter(|(t, _)| *t == target) else {
                    continue;
                };
                if *old == content {
                    continue;
                }
                match update(&dir.join(i.to_string()), old, &content) {
                    Ok(()) => *old = content,
                    Err(error) => log(format!("{}: {target} not updated: {error}", pod_name(&pod))),
                }
            }
        }
    }

    /// In place (the file is bind-mounted; a new file would not be seen):
    /// an append when the new text only adds to the old, else a rewrite.
    pub(super) fn update(path: &Path, old: &str, new: &str) -> std::io::Result<()> {
        match new.strip_prefix(old).filter(|_| !old.is_empty()) {
            Some(added) => std::fs::OpenOptions::new()
                .append(true)
                .open(path)?
                .write_all(added.as_bytes()),
            None => {
                std::fs::write(path, new)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(namespace: &str, name: &str, ip: &str) -> k8s_openapi::api::core::v1::Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": namespace, "name": name},
            "spec": {"clusterIP": ip},
        }))
        .expect("service")
    }

    #[test]
    fn hosts_name_services_aliases_and_upstream_entries() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"namespace": "shop", "name": "forwarder-7d9"},
            "spec": {
                "containers": [],
                "hostAliases": [{"ip": "127.3.0.9", "hostnames": ["legacy.example"]}],
            },
        }))
        .expect("pod");
        let mut names = cluster_dns::Names::default();
        names.service(&service("shop", "billing", "127.2.0.7"));
        names.service(&service("other", "ledger", "127.2.0.8"));
        names.service(&service("shop", "headless", "None"));
        names.upstream(
            "uid-1".to_owned(),
            Some(
                "# a comment
127.3.1.1 sns.us-east-1.amazonaws.com
"
                .to_owned(),
            ),
        );
        let hosts = cluster_dns::hosts_file(&pod, Ipv4Addr::new(127, 1, 9, 5), &names);
        let lines: Vec<&str> = hosts.lines().collect();
        assert!(lines.contains(&"127.0.0.1\tlocalhost"), "{hosts}");
        assert!(lines.contains(&"127.1.9.5\tforwarder-7d9"), "{hosts}");
        assert!(lines.contains(&"127.3.0.9\tlegacy.example"), "{hosts}");
        assert!(
            lines.contains(&"127.3.1.1 sns.us-east-1.amazonaws.com"),
            "{hosts}"
        );
        assert!(!hosts.contains("a comment"), "{hosts}");
        // Own namespace: the short name too; another's: qualified only.
        assert!(
            lines.contains(
                &"127.2.0.7\tbilling.shop.svc.cluster.local billing.shop.svc billing.shop billing"
            ),
            "{hosts}"
        );
        assert!(
            lines.contains(
                &"127.2.0.8\tledger.other.svc.cluster.local ledger.other.svc ledger.other"
            ),
            "{hosts}"
        );
        assert!(!hosts.contains("headless"), "{hosts}");

        // A new Service appends; a moved one or a changed upstream rewrites.
        let before = hosts;
        names.service(&service("shop", "orders", "127.2.0.9"));
        let grown = cluster_dns::hosts_file(&pod, Ipv4Addr::new(127, 1, 9, 5), &names);
        assert!(grown.starts_with(&before));
        names.service(&service("shop", "billing", "127.2.0.10"));
        let moved = cluster_dns::hosts_file(&pod, Ipv4Addr::new(127, 1, 9, 5), &names);
        assert!(!moved.starts_with(&grown) && moved.contains("127.2.0.10\tbilling.shop"));
        names.upstream("uid-1".to_owned(), None);
        let gone = cluster_dns::hosts_file(&pod, Ipv4Addr::new(127, 1, 9, 5), &names);
        assert!(!gone.contains("sns.us-east-1"), "{gone}");

        // Without a host bundle no image bundle is mounted; with one, the
        // test CAs follow it.
        assert_eq!(names.ca_bundle(), None);
        let files = cluster_dns::files(&pod, Ipv4Addr::new(127, 1, 9, 5), &names);
        assert_eq!(files.len(), 1);
    }

    #[test]
    fn hosts_are_updated_in_place() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("hosts");
        cluster_dns::update(&path, "", "a\n").expect("first");
        let inode = std::fs::metadata(&path).expect("meta").ino();
        cluster_dns::update(&path, "a\n", "a\nb\n").expect("append");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a\nb\n");
        cluster_dns::update(&path, "a\nb\n", "c\n").expect("rewrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "c\n");
        // The same file: a bind mount of it sees every change.
        assert_eq!(std::fs::metadata(&path).expect("meta").ino(), inode);
    }

    #[test]
    fn expands_variables_as_the_kubelet_does() {
        let env = vec![
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "two".to_owned()),
        ];
        assert_eq!(
            expand_vars("--a=$(A) $(B)$(C) $$(A) $", &env),
            "--a=1 two$(C) $(A) $"
        );
    }

    #[test]
    fn images_map_to_our_binaries() {
        let settings = Settings {
            node: "n".to_owned(),
            bin_dir: PathBuf::from("/bin-dir"),
            state_dir: PathBuf::new(),
            podnet: PathBuf::new(),
            node_ip: Ipv4Addr::LOCALHOST,
            api_host: String::new(),
            api_port: String::new(),
        };
        assert_eq!(
            binary_for(&settings, "ghcr.io/hookwarden/receiver:0.1.0"),
            Some(PathBuf::from("/bin-dir/hookwarden-receiver"))
        );
        assert_eq!(
            binary_for(&settings, "ghcr.io/hookwarden/operator@sha256:00"),
            Some(PathBuf::from("/bin-dir/hookwarden-operator"))
        );
        assert_eq!(binary_for(&settings, "docker.io/library/nginx:1"), None);
    }

    #[test]
    fn addresses_skip_network_node_and_broadcast_and_reuse_last() {
        let mut addresses = Addresses {
            base: u32::from(Ipv4Addr::new(127, 1, 0, 0)),
            size: 8,
            next: 2,
            used: Default::default(),
        };
        let all: Vec<Ipv4Addr> = std::iter::from_fn(|| addresses.allocate()).collect();
        assert_eq!(
            all,
            (2..7)
                .map(|n| Ipv4Addr::new(127, 1, 0, n))
                .collect::<Vec<_>>()
        );
        addresses.release(Ipv4Addr::new(127, 1, 0, 3));
        assert_eq!(addresses.allocate(), Some(Ipv4Addr::new(127, 1, 0, 3)));
    }
}
