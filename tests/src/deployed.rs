//! The "as deployed" part of the local control plane (`tests/tools/cluster.sh`
//! as root): the process node `hookwarden-proc-0`, whose pods the pod runner
//! (`src/bin/pod-runner.rs`) runs as real processes, each with its own
//! loopback pod IP from `127.1.0.0/16`.
//!
//! [`TestNamespace::create_on_process_node`] makes a namespace whose pods all
//! land there (the `PodNodeSelector` and `PodTolerationRestriction` admission
//! plugins add the node selector and toleration): Deployments, the chart and
//! the operator's receivers run unchanged.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::SupportError;
use crate::cluster::kubeconfig_path;
use crate::tools::cache_dir;

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
