//! The "as deployed" part of the local control plane (`tests/tools/cluster.sh`
//! as root): the process node `hookwarden-proc-0`, whose pods the pod runner
//! (`src/bin/pod-runner/`) runs as real processes, each with its own
//! loopback pod IP from `127.1.0.0/16`.
//!
//! [`TestNamespace::create_on_process_node`] makes a namespace whose pods all
//! land there (the `PodNodeSelector` and `PodTolerationRestriction` admission
//! plugins add the node selector and toleration): Deployments, the chart and
//! the operator's receivers run unchanged.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cluster::{TestNamespace, kubeconfig_path};
use crate::tools::cache_dir;
use crate::{SupportError, free_port};

/// The node whose pods run as processes.
pub const PROCESS_NODE: &str = "hookwarden-proc-0";
/// The node's label (and taint) that namespaces select it by.
pub const PROCESS_NODE_SELECTOR: &str = "hookwarden.dev/pods=processes";
/// The toleration every pod of such a namespace gets.
pub const PROCESS_NODE_TOLERATION: &str = r#"[{"key":"hookwarden.dev/pods","operator":"Equal","value":"processes","effect":"NoSchedule"}]"#;

/// The node's pod CIDR (`tests/tools/cluster/node.yaml`) holds `ip`.
pub fn is_pod_ip(ip: &str) -> bool {
    ip.parse::<Ipv4Addr>()
        .is_ok_and(|ip| ip.octets()[0] == 127 && ip.octets()[1] == 1 && ip.octets()[3] != 0)
}

/// The process node's own address, the first of its pod CIDR
/// (`127.1.0.1` by default; `HOOKWARDEN_POD_CIDR` of `tests/tools/cluster.sh`
/// moves it): everything on the host reaches pods from it (the pod runner's
/// service proxy, its probes, Traefik through a Service), so it is the
/// receivers' trusted proxy.
pub fn process_node_address() -> Result<Ipv4Addr, SupportError> {
    let cidr = kubectl_stdin(
        &[
            "get",
            "node",
            PROCESS_NODE,
            "-o",
            "jsonpath={.spec.podCIDR}",
        ],
        "",
    )?;
    let network = cidr
        .trim()
        .split_once('/')
        .and_then(|(network, _)| network.parse::<Ipv4Addr>().ok())
        .filter(|ip| is_pod_ip(&Ipv4Addr::from(u32::from(*ip) + 1).to_string()))
        .ok_or_else(|| SupportError::Setup {
            what: format!("the pod CIDR of node {PROCESS_NODE}"),
            detail: format!("{cidr:?} is not a network inside 127.1.0.0/16"),
        })?;
    Ok(Ipv4Addr::from(u32::from(network) + 1))
}

/// The state directory of the control plane (`$HOOKWARDEN_CLUSTER_DIR`, else
/// the kubeconfig's directory).
pub fn cluster_dir() -> PathBuf {
    match std::env::var_os("HOOKWARDEN_CLUSTER_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => kubeconfig_path()
            .parent()
            .map_or_else(|| cache_dir().join("cluster"), Path::to_owned),
    }
}

// The process node's namespaces are made here, beside the node they
// select, so that `cluster` (the control plane) needs nothing of this module.
impl TestNamespace {
    /// Like [`TestNamespace::create`], for pods that run as processes: every
    /// pod of the namespace is scheduled onto the process node
    /// ([`PROCESS_NODE`]), where the pod runner runs it.
    /// Fails when the pod runner is not running.
    pub async fn create_on_process_node(prefix: &str) -> Result<Self, SupportError> {
        pod_runner_bin_dir()?;
        let annotations = [
            (
                "scheduler.alpha.kubernetes.io/node-selector".to_owned(),
                PROCESS_NODE_SELECTOR.to_owned(),
            ),
            (
                "scheduler.alpha.kubernetes.io/defaultTolerations".to_owned(),
                PROCESS_NODE_TOLERATION.to_owned(),
            ),
        ];
        Self::create_with(prefix, Some(annotations.into())).await
    }
}

/// The directory of the binaries the pod runner runs, once it is running;
/// an error that says how to get one otherwise.
pub fn pod_runner_bin_dir() -> Result<PathBuf, SupportError> {
    let run = cluster_dir().join("run");
    let unavailable = |detail: String| SupportError::Setup {
        what: "the pod runner of the process node".to_owned(),
        detail: format!(
            "{detail}; it starts with the control plane when that runs as root \
             (`make cluster-up`, tests/tools/cluster.sh)"
        ),
    };
    let pid = std::fs::read_to_string(run.join("pod-runner.pid"))
        .map_err(|e| unavailable(format!("no {}: {e}", run.join("pod-runner.pid").display())))?;
    let binary = std::fs::read_to_string(run.join("pod-runner.bin"))
        .map_err(|e| unavailable(format!("no {}: {e}", run.join("pod-runner.bin").display())))?;
    if !Path::new(&format!("/proc/{}", pid.trim())).exists() {
        return Err(unavailable(format!("pid {} is not running", pid.trim())));
    }
    Path::new(binary.trim())
        .parent()
        .map(Path::to_owned)
        .ok_or_else(|| unavailable(format!("{binary:?} has no directory")))
}

/// The network namespace the pod runner made for the pod with `uid`.
pub fn pod_netns(uid: &str) -> String {
    format!("hw-{}", &uid[..uid.len().min(23)])
}

/// The PIDs of the processes in the network namespace of the pod with `uid`
/// (`ip netns pids`): empty once the pod's process is gone.
pub fn pod_pids(uid: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", &pod_netns(uid)])
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The workspace binaries (operator, receiver, CLI, example consumer, pod
/// runner) built and up to date in the target directory of the running test:
/// runs `cargo test --workspace --locked --no-run`, which within `make test`
/// (and after `cluster.sh up`, which runs it too) has nothing left to do.
/// Returns that directory.
pub fn build_workspace_binaries() -> Result<PathBuf, SupportError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    // What cargo set for this test, not for a build: build scripts that track
    // such variables would otherwise rebuild half the tree each time.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
            "OUT_DIR",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name.as_ref());
        }
    }
    let output = command
        .current_dir(crate::tools::repo_root())
        .args(["test", "--workspace", "--locked", "--no-run"])
        .output()
        .map_err(SupportError::io("cargo does not run"))?;
    if !output.status.success() {
        return Err(SupportError::Setup {
            what: "cargo test --workspace --no-run".to_owned(),
            detail: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    // target/<profile>/deps/<test>-<hash> → target/<profile>/
    let exe = std::env::current_exe().map_err(SupportError::io("no test executable"))?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_owned)
        .ok_or_else(|| SupportError::Setup {
            what: "the target directory".to_owned(),
            detail: format!("{} has no grandparent", exe.display()),
        })
}

/// A port the control plane recorded in `run/ports.env`, e.g.
/// `TRAEFIK_HTTPS_PORT`.
pub fn recorded_port(variable: &str) -> Result<u16, SupportError> {
    let path = cluster_dir().join("run/ports.env");
    let text = std::fs::read_to_string(&path)
        .map_err(SupportError::io(format!("cannot read {}", path.display())))?;
    text.lines()
        .find_map(|line| {
            let (name, value) = line.split_once('=')?;
            (name == variable).then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| SupportError::Setup {
            what: format!("{variable} in {}", path.display()),
            detail: "not recorded: the control plane was started without the as-deployed \
                     components (tests/tools/cluster.sh up, as root)"
                .to_owned(),
        })
}

/// cert-manager's controller for one test namespace (`--namespace`: it
/// sees nothing else, so it never meets another test's Certificates, such as
/// the operator tests' stand-in ones), stopped on drop. In the namespace: a
/// self-signed Issuer makes a CA (`Certificate` `hookwarden-test-ca`), and
/// the Issuer [`CertManager::ISSUER`] signs with it.
#[derive(Debug)]
pub struct CertManager {
    process: crate::ManagedProcess,
    ca: Vec<u8>,
    // Last: removed after the process is stopped.
    _work: tempfile::TempDir,
}

impl CertManager {
    /// The CA Issuer the chart's `certManager.issuer` names (kind `Issuer`).
    pub const ISSUER: &'static str = "hookwarden-ca";

    /// Starts the controller for `namespace` and waits until the CA Issuer
    /// is Ready.
    pub async fn start(namespace: &str) -> Result<Self, SupportError> {
        let binary = crate::tools::require_tool("cert-manager-controller")?;
        let work = tempfile::TempDir::with_prefix("hookwarden-cert-manager-")
            .map_err(SupportError::io("cannot create a temp dir"))?;
        let health = free_port()?;
        let args = [
            "--kubeconfig".to_owned(),
            kubeconfig_path().display().to_string(),
            format!("--namespace={namespace}"),
            "--leader-elect=false".to_owned(),
            "--enable-certificate-owner-ref".to_owned(),
            format!("--metrics-listen-address=127.0.0.1:{}", free_port()?),
            format!("--internal-healthz-listen-address=127.0.0.1:{health}"),
        ];
        let log = work.path().join("cert-manager-controller.log");
        let mut process =
            crate::ManagedProcess::spawn("cert-manager's controller", &binary, &args, &log)?;
        process
            .wait_until(std::time::Duration::from_secs(60), || async move {
                let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", health))
                    .await
                    .ok()?;
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                stream
                    .write_all(b"GET /livez HTTP/1.0\r\nHost: localhost\r\n\r\n")
                    .await
                    .ok()?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer).await.ok()?;
                answer.starts_with("HTTP/1.0 200").then_some(())
            })
            .await?;
        let issuers = format!(
            r#"apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {{name: hookwarden-selfsigned, namespace: {namespace}}}
spec: {{selfSigned: {{}}}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {{name: hookwarden-test-ca, namespace: {namespace}}}
spec:
  isCA: true
  commonName: hookwarden-test-ca
  secretName: hookwarden-test-ca
  privateKey: {{algorithm: ECDSA, size: 256}}
  issuerRef: {{name: hookwarden-selfsigned, kind: Issuer, group: cert-manager.io}}
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {{name: {issuer}, namespace: {namespace}}}
spec: {{ca: {{secretName: hookwarden-test-ca}}}}
"#,
            issuer = Self::ISSUER
        );
        kubectl_stdin(&["apply", "-f", "-"], &issuers)?;
        let client = crate::shared_client().await?;
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(client, namespace);
        let ca = process
            .wait_until(std::time::Duration::from_secs(60), || {
                let secrets = secrets.clone();
                async move {
                    let secret = secrets.get_opt("hookwarden-test-ca").await.ok()??;
                    Some(secret.data?.get("ca.crt")?.0.clone())
                }
            })
            .await?;
        process
            .wait_until(std::time::Duration::from_secs(60), || async {
                let output = kubectl_stdin(
                    &[
                        "get",
                        "issuer",
                        Self::ISSUER,
                        "--namespace",
                        namespace,
                        "-o",
                        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                    ],
                    "",
                )
                .ok()?;
                (output.trim() == "True").then_some(())
            })
            .await?;
        Ok(Self {
            process,
            ca,
            _work: work,
        })
    }

    /// The CA certificate (PEM) the Issuer signs with: what senders trust.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca
    }

    /// The controller's log, for a failing test's message.
    pub fn log(&self) -> &Path {
        self.process.log()
    }
}

/// The pinned kubectl as the admin, `input` on its standard input; its
/// standard output when it succeeds.
pub fn kubectl_stdin(args: &[&str], input: &str) -> Result<String, SupportError> {
    use std::io::Write;
    let kubectl = crate::tools::require_tool("kubectl")?;
    let mut child = Command::new(&kubectl)
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|source| SupportError::Spawn {
            what: "kubectl".to_owned(),
            binary: kubectl.clone(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(SupportError::io("writing to kubectl"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(SupportError::io("waiting for kubectl"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(SupportError::Setup {
            what: format!("kubectl {args:?}"),
            detail: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}
