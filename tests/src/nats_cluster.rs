//! A private three-node nats-server cluster with JetStream per test: what a
//! replicated (R3) stream needs, on loopback, torn down on drop.
//!
//! Each node has its own file store, client port, route port and
//! monitoring port, never a fixed port: other tests run at the same time.
//! The client and monitoring ports are picked by the servers themselves.
//! The route ports cannot be: a JetStream cluster refuses to start without
//! its routes configured, so they are free ports picked just before the
//! first start (a start that loses one to another process is tried again
//! with new ones). Every node routes to all three route ports (nats-server
//! ignores the route to itself), so any node can be killed and started
//! again, on the same ports with the same store, in any order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream;
pub use hookwarden_receiver::publish::Placement;
use tempfile::TempDir;

use crate::nats::{self, Ports, port_of};
use crate::tools::require_tool;
use crate::{Frozen, ManagedProcess, SupportError, free_port};

/// How many nodes a cluster has: the smallest that keeps a quorum with one
/// node gone.
pub const NODES: usize = 3;

/// The cluster's name (`cluster.name` of every node).
pub const CLUSTER_NAME: &str = "hookwarden-test";

/// How long a node, or the whole cluster, may take to answer JetStream.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a start is tried when a route port picked for it was
/// taken by another process meanwhile.
const START_ATTEMPTS: usize = 3;

/// How long one JetStream API request of the support code may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// One node: its directory (store, ports file, configuration, log), the
/// ports it listens on once known, and its process while it runs.
#[derive(Debug)]
struct Node {
    name: String,
    dir: PathBuf,
    client_port: Option<u16>,
    route_port: Option<u16>,
    monitoring: Option<String>,
    process: Option<ManagedProcess>,
}

impl Node {
    fn url(&self) -> Option<String> {
        self.client_port
            .map(|port| format!("nats://127.0.0.1:{port}"))
    }

    fn log(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }

    /// The node's configuration file: its client port (`-1` the first
    /// time: the server picks one), its route port, a monitoring port the
    /// server picks, its store, and routes to `routes`.
    fn config(&self, routes: &[u16]) -> String {
        let route_port = self.route_port.unwrap_or_default();
        let quote = |text: &str| serde_json::Value::from(text).to_string();
        let port = |port: Option<u16>| port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        let routes: Vec<String> = routes
            .iter()
            .map(|port| quote(&format!("nats://127.0.0.1:{port}")))
            .collect();
        format!(
            "server_name: {name}\n\
             host: \"127.0.0.1\"\n\
             port: {client}\n\
             http_port: -1\n\
             jetstream {{\n  store_dir: {store}\n}}\n\
             cluster {{\n  name: {cluster}\n  listen: \"127.0.0.1:{route}\"\n  routes: [{routes}]\n}}\n",
            name = quote(&self.name),
            client = port(self.client_port),
            store = quote(&self.dir.join("jetstream").display().to_string()),
            cluster = quote(CLUSTER_NAME),
            route = route_port,
            routes = routes.join(", "),
        )
    }

    /// Starts the node routing to `routes` and waits (bounded) until it
    /// listens, then remembers its ports for the next start.
    async fn launch(&mut self, binary: &Path, routes: &[u16]) -> Result<(), SupportError> {
        let ports_dir = self.dir.join("ports");
        // A stale ports file of an earlier run must not be mistaken for this one's.
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir)
            .map_err(SupportError::io("cannot create the ports dir"))?;
        let conf = self.dir.join("nats-server.conf");
        std::fs::write(&conf, self.config(routes))
            .map_err(SupportError::io("cannot write nats-server.conf"))?;
        let args = vec![
            "--config".to_owned(),
            conf.display().to_string(),
            "--ports_file_dir".to_owned(),
            ports_dir.display().to_string(),
        ];
        let what = format!("nats-server {}", self.name);
        let mut process = ManagedProcess::spawn(&what, binary, &args, &self.log())?;
        let ports = process
            .wait_until(READY_TIMEOUT, || {
                let ports = Ports::read(&ports_dir);
                async move { ports }
            })
            .await
            .map_err(|err| match err {
                SupportError::ExitedEarly { tail, log, .. }
                    if tail.contains("address already in use") =>
                {
                    SupportError::PortInUse {
                        what,
                        port: self.client_port.or(self.route_port).unwrap_or_default(),
                        log,
                    }
                }
                other => other,
            })?;
        self.client_port = port_of(&ports.client);
        self.monitoring = ports.monitoring;
        self.process = Some(process);
        Ok(())
    }
}

/// A running three-node nats-server cluster with JetStream, each node
/// stopped on drop. Nodes are named `n1`, `n2`, `n3` and addressed by
/// index 0..3.
#[derive(Debug)]
pub struct NatsCluster {
    binary: PathBuf,
    nodes: Vec<Node>,
    // Last: removed after the processes are stopped.
    work: TempDir,
}

impl NatsCluster {
    /// Starts three nodes and waits (bounded) until JetStream answers on
    /// every one of them, that is until they formed a cluster with a meta
    /// leader.
    pub async fn start() -> Result<Self, SupportError> {
        let binary = require_tool("nats-server")?;
        let mut attempt = 1;
        loop {
            match Self::start_once(&binary).await {
                Err(SupportError::PortInUse { .. }) if attempt < START_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    async fn start_once(binary: &Path) -> Result<Self, SupportError> {
        let work = TempDir::with_prefix("hookwarden-nats-cluster-")
            .map_err(SupportError::io("cannot create a temp dir"))?;
        let mut nodes = Vec::with_capacity(NODES);
        for index in 0..NODES {
            let name = format!("n{}", index + 1);
            let dir = work.path().join(&name);
            std::fs::create_dir_all(&dir).map_err(SupportError::io("cannot create a node dir"))?;
            nodes.push(Node {
                name,
                dir,
                client_port: None,
                route_port: Some(free_port()?),
                monitoring: None,
                process: None,
            });
        }
        let mut cluster = Self {
            binary: binary.to_owned(),
            nodes,
            work,
        };
        let started = cluster.first_start().await;
        if let Err(err) = &started
            && !matches!(err, SupportError::PortInUse { .. })
        {
            // Keep the logs the error points to (a lost port is said
            // plainly, and the start is tried again in a new directory).
            cluster.work.disable_cleanup(true);
        }
        started.map(|()| cluster)
    }

    async fn first_start(&mut self) -> Result<(), SupportError> {
        for index in 0..NODES {
            self.launch(index).await?;
        }
        for index in 0..NODES {
            self.wait_jetstream(index).await?;
        }
        Ok(())
    }

    /// Starts node `index` with routes to every node.
    async fn launch(&mut self, index: usize) -> Result<(), SupportError> {
        let routes: Vec<u16> = self.nodes.iter().filter_map(|n| n.route_port).collect();
        let binary = self.binary.clone();
        self.nodes[index].launch(&binary, &routes).await
    }

    /// Waits (bounded) until JetStream answers on node `index`.
    async fn wait_jetstream(&mut self, index: usize) -> Result<(), SupportError> {
        let node = &mut self.nodes[index];
        let Some(url) = node.url() else {
            return Err(not_running(node));
        };
        let Some(process) = node.process.as_mut() else {
            return Err(not_running(node));
        };
        process
            .wait_until(READY_TIMEOUT, || {
                let url = url.clone();
                async move {
                    nats::jetstream_answers(&url, None, None)
                        .await
                        .then_some(())
                }
            })
            .await
    }

    /// The client URLs of all nodes, comma-separated, as a receiver's
    /// `--nats-url` or `spec.nats.url` takes them.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .filter_map(Node::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client URL of node `index`.
    pub fn url(&self, index: usize) -> String {
        self.nodes[index].url().unwrap_or_default()
    }

    /// The server name of node `index` (`n1`, `n2`, `n3`).
    pub fn name(&self, index: usize) -> &str {
        &self.nodes[index].name
    }

    /// The index of the node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// The log file of node `index`.
    pub fn log(&self, index: usize) -> PathBuf {
        self.nodes[index].log()
    }

    /// The process id of node `index`, while it runs.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.nodes[index]
            .process
            .as_ref()
            .and_then(ManagedProcess::pid)
    }

    /// Whether node `index` runs (it may be paused).
    pub fn is_running(&self, index: usize) -> bool {
        self.nodes[index].process.is_some()
    }

    /// A client connected to any running node.
    pub async fn connect(&self) -> Result<async_nats::Client, async_nats::ConnectError> {
        let running: Vec<String> = (0..NODES)
            .filter(|&i| self.is_running(i))
            .map(|i| self.url(i))
            .collect();
        nats::connect(running.as_slice(), None, None).await
    }

    /// Crashes node `index` (SIGKILL): its routes and client connections
    /// drop at once.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut process) = self.nodes[index].process.take() {
            process.kill();
        }
    }

    /// Starts node `index` again (stopping it first if it runs) on the
    /// same ports with the same store, and waits (bounded) until it listens. JetStream on it answers once a
    /// quorum of the cluster is up: see [`NatsCluster::wait_for_stream`].
    pub async fn restart(&mut self, index: usize) -> Result<(), SupportError> {
        if let Some(mut process) = self.nodes[index].process.take() {
            process.stop();
        }
        self.launch(index).await
    }

    /// Pauses node `index` with SIGSTOP (alive, its sockets open, answering
    /// nothing: a partition as the other nodes and its clients see it)
    /// until the returned guard is dropped or resumed.
    ///
    /// # Panics
    /// When the node is not running or does not stop within 5 s.
    pub fn pause(&self, index: usize) -> Frozen {
        Frozen::freeze(self.pid(index))
    }

    /// Where `stream` lives now, as one running node answers; `None`
    /// when no node answers within 2 s (e.g. without a quorum).
    pub async fn placement(&self, stream: &str) -> Option<Placement> {
        let attempt = async {
            let client = self.connect().await.ok()?;
            let mut context = jetstream::new(client);
            context.set_timeout(REQUEST_TIMEOUT);
            let mut found = context.get_stream(stream).await.ok()?;
            let info = found.info().await.ok()?;
            Some(Placement::of(info))
        };
        tokio::time::timeout(REQUEST_TIMEOUT * 2, attempt)
            .await
            .ok()
            .flatten()
    }

    /// The index of `stream`'s leader, when it has one.
    pub async fn leader(&self, stream: &str) -> Option<usize> {
        let leader = self.placement(stream).await?.leader?;
        self.index_of(&leader)
    }

    /// Waits until `stream` has a leader and `current` current replicas
    /// (leader included); its placement then. Bounded by `timeout`.
    pub async fn wait_for_stream(
        &self,
        stream: &str,
        current: usize,
        timeout: Duration,
    ) -> Result<Placement, SupportError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(found) = self.placement(stream).await {
                if found.leader.is_some() && found.current >= current {
                    return Ok(found);
                }
                last = Some(found);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SupportError::Setup {
                    what: format!(
                        "stream {stream} on the NATS cluster: no leader with {current} current replicas within {timeout:?}"
                    ),
                    detail: format!(
                        "last seen: {last:?}; logs in {}",
                        self.work.path().display()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The index of the node a client named `client_name` is connected to,
    /// from each running node's monitoring `/connz`.
    pub async fn node_of_client(&self, client_name: &str) -> Option<usize> {
        for (index, node) in self.nodes.iter().enumerate() {
            if node.process.is_none() {
                continue;
            }
            let Some(monitoring) = &node.monitoring else {
                continue;
            };
            let Some(connz) = http_get_json(monitoring, "/connz?limit=1024").await else {
                continue;
            };
            let connections = connz["connections"].as_array().cloned().unwrap_or_default();
            if connections
                .iter()
                .any(|connection| connection["name"].as_str() == Some(client_name))
            {
                return Some(index);
            }
        }
        None
    }
}

fn not_running(node: &Node) -> SupportError {
    SupportError::Setup {
        what: format!("nats-server {}", node.name),
        detail: "not running".to_owned(),
    }
}

/// `GET path` on the monitoring URL `base` (`http://127.0.0.1:port`), the
/// answer's JSON; `None` on any failure. Bounded: 2 s, 4 MiB.
async fn http_get_json(base: &str, path: &str) -> Option<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = base.strip_prefix("http://")?.trim_end_matches('/');
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream
            .take(4 * 1024 * 1024)
            .read_to_end(&mut answer)
            .await
            .ok()?;
        let text = String::from_utf8(answer).ok()?;
        let (_, body) = text.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    };
    tokio::time::timeout(REQUEST_TIMEOUT, attempt)
        .await
        .ok()
        .flatten()
}
