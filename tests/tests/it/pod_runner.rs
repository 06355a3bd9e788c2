//! Pods as processes (issue #12): the chart's operator and the receivers it
//! creates run from their own Deployment specs on the process node, each pod
//! a real process in a network namespace of its own whose address is its
//! loopback pod IP.
//!
//! - `helm install` puts the operator Deployment there; its pod runs
//!   `hookwarden-operator` with exactly the Deployment's arguments and
//!   environment, as its `runAsUser`, with its ServiceAccount token mounted.
//! - `kubectl apply examples/github.yaml`: the operator (that process) makes
//!   the receiver Deployment; its pods run `hookwarden-receiver` with the
//!   Deployment's arguments, all listening on `0.0.0.0:8080`/`:9090` side by
//!   side, the config Secret mounted at `/etc/hookwarden`.
//! - Ready follows the readiness probe: nats-server killed, the receivers
//!   turn unready; back, they return. (EndpointSlices cannot list them: the
//!   API refuses loopback addresses there, see docs/development.md.)
//! - A process that exits fails its pod and the ReplicaSet replaces it; a
//!   deleted pod's process is stopped.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;

use hookwarden_tests::deployed::{
    PROCESS_NODE, build_workspace_binaries, is_pod_ip, pod_pids, pod_runner_bin_dir,
};
use hookwarden_tests::tools::repo_root;
use hookwarden_tests::{NatsServer, TestNamespace, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams};

use crate::ok;

const WAIT: Duration = Duration::from_secs(120);

/// `GET path` at `ip:port` over HTTP/1.0: the status code, `None` while
/// nothing answers.
fn http_status(ip: &str, port: u16, path: &str) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect((ip, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn pod_ip(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

/// The running (not failed, not deleted) pods with `selector`.
async fn live_pods(pods: &Api<Pod>, selector: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && phase(p) != "Failed")
        .collect()
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// The command line and environment of a process (`/proc`).
fn proc_cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn proc_env(pid: u32, name: &str) -> Option<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .find_map(|entry| entry.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

fn proc_uid(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread")]
async fn deployments_run_as_processes_on_their_pod_ips() {
    let bin_dir = build_workspace_binaries().unwrap_or_else(|e| panic!("{e}"));
    let runner_bins = pod_runner_bin_dir().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        runner_bins.canonicalize().ok(),
        bin_dir.canonicalize().ok(),
        "the pod runner runs the binaries of another checkout: restart the control plane from this one"
    );
    let mut nats = NatsServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let ns = TestNamespace::create_on_process_node("pods")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let namespace = ns.name().to_owned();
    let work = tempfile::tempdir().expect("work dir");
    let helm_home = work.path().join("helm");
    let chart = repo_root().join("charts/hookwarden");
    hookwarden_operator::crd::install(ns.client(), WAIT)
        .await
        .expect("CRD installed");

    // ---- the operator, from the chart's Deployment ------------------------
    let nats_value = format!("nats.url={}", nats.url());
    let watch_value = format!("watchNamespace={namespace}");
    ok(
        &helm_home,
        "helm",
        &[
            "install",
            &namespace,
            chart.to_str().expect("UTF-8"),
            "--namespace",
            &namespace,
            "--set",
            &nats_value,
            "--set",
            &watch_value,
        ],
    );
    let fullname = format!("{namespace}-hookwarden");
    let pods = ns.api::<Pod>();
    let operator_selector = "app.kubernetes.io/name=hookwarden-operator";
    let operator = eventually("the operator pod to be Ready", WAIT, || async {
        let pods = live_pods(&pods, operator_selector).await;
        let pod = pods.first()?;
        is_ready(pod).then(|| pod.clone())
    })
    .await;
    assert_eq!(
        operator.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(PROCESS_NODE)
    );
    let operator_ip = pod_ip(&operator);
    assert!(is_pod_ip(&operator_ip), "{operator_ip}");
    // Its readiness probe's endpoint, on its own address.
    assert_eq!(http_status(&operator_ip, 8080, "/readyz"), Some(200));
    // Exactly the Deployment's container: arguments, environment, user.
    let deployment = ns
        .api::<Deployment>()
        .get(&fullname)
        .await
        .expect("operator Deployment");
    let container = deployment
        .spec
        .template
        .spec
        .as_ref()
        .expect("pod spec")
        .containers[0]
        .clone();
    let pids = pod_pids(&uid(&operator));
    assert_eq!(pids.len(), 1, "one process in the operator pod: {pids:?}");
    let cmdline = proc_cmdline(pids[0]);
    assert_eq!(
        cmdline[0],
        bin_dir.join("hookwarden-operator").display().to_string()
    );
    assert_eq!(cmdline[1..], container.args.clone().unwrap_or_default()[..]);
    assert_eq!(proc_env(pids[0], "RUST_LOG").as_deref(), Some("info"));
    assert_eq!(
        proc_env(pids[0], "POD_NAME"),
        operator.metadata.name.clone(),
        "fieldRef metadata.name"
    );
    assert_eq!(
        proc_env(pids[0], "POD_NAMESPACE").as_deref(),
        Some(namespace.as_str())
    );
    assert_eq!(proc_uid(pids[0]).as_deref(), Some("65532"), "runAsUser");

    // ---- the receivers, from the Deployment the operator made ---------------
    let secret_file = work.path().join("github-secret");
    std::fs::write(&secret_file, "an-example-secret-of-thirty-two-bytes!").expect("write");
    ok(
        &helm_home,
        "kubectl",
        &[
            "create",
            "secret",
            "generic",
            "github-webhook",
            "--namespace",
            &namespace,
            &format!("--from-file=secret={}", secret_file.display()),
        ],
    );
    // The example names GitHub's published hook ranges; without internet
    // the operator takes its saved copy (see tests/src/list_server.rs).
    hookwarden_tests::save_list_for_operator(
        ns.client(),
        &namespace,
        &hookwarden_receiver::ranges::ListSource::Github {
            service: "hooks".to_owned(),
        },
        &repo_root().join("core/src/ranges/testdata/github-meta.json"),
    )
    .await;
    let example = repo_root().join("examples/github.yaml");
    ok(
        &helm_home,
        "kubectl",
        &[
            "apply",
            "--namespace",
            &namespace,
            "-f",
            example.to_str().expect("UTF-8"),
        ],
    );
    let receiver_selector =
        "app.kubernetes.io/name=hookwarden-receiver,app.kubernetes.io/instance=github";
    let receivers = ns.api::<Deployment>();
    let replicas = eventually("the receiver Deployment", WAIT, || async {
        let deployment = receivers.get("github-receiver").await.ok()?;
        deployment.spec.replicas
    })
    .await;
    assert!(replicas >= 2, "two pods to tell apart: {replicas}");
    let ready_ips = || async {
        let pods = live_pods(&pods, receiver_selector).await;
        let ready: BTreeSet<String> = pods.iter().filter(|p| is_ready(p)).map(pod_ip).collect();
        (pods.len() == usize::try_from(replicas).unwrap_or_default() && ready.len() == pods.len())
            .then_some(ready)
    };
    let ips = eventually("every receiver pod Ready", WAIT, ready_ips).await;
    for ip in &ips {
        assert!(is_pod_ip(ip), "{ip}");
        // Every pod listens on 0.0.0.0:8080 and :9090, each on its address.
        assert_eq!(http_status(ip, 9090, "/readyz"), Some(200), "{ip}");
        assert!(http_status(ip, 8080, "/").is_some(), "{ip}");
    }
    // ---- Ready follows the readiness probe ----------------------------------
    nats.kill();
    eventually("receivers unready without NATS", WAIT, || async {
        let pods = live_pods(&pods, receiver_selector).await;
        (!pods.is_empty() && pods.iter().all(|p| !is_ready(p))).then_some(())
    })
    .await;
    nats.restart().await.unwrap_or_else(|e| panic!("{e}"));
    eventually("receivers ready again with NATS", WAIT, ready_ips).await;

    // ---- a process that exits fails its pod; the ReplicaSet replaces it -----
    let victim = live_pods(&pods, receiver_selector)
        .await
        .into_iter()
        .next()
        .expect("a receiver pod");
    let pids = pod_pids(&uid(&victim));
    assert_eq!(pids.len(), 1, "{pids:?}");
    let cmdline = proc_cmdline(pids[0]);
    assert_eq!(
        cmdline[0],
        bin_dir.join("hookwarden-receiver").display().to_string()
    );
    let receiver_container = receivers
        .get("github-receiver")
        .await
        .expect("Deployment")
        .spec
        .template
        .spec
        .expect("pod spec")
        .containers[0]
        .clone();
    assert_eq!(
        cmdline[1..],
        receiver_container.args.clone().unwrap_or_default()[..],
        "exactly the Deployment's arguments"
    );
    assert_eq!(proc_uid(pids[0]).as_deref(), Some("65532"), "runAsUser");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pids[0]).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let victim_name = victim.metadata.name.clone().expect("name");
    eventually("the killed pod to fail", WAIT, || async {
        let pod = pods.get(&victim_name).await.ok()?;
        (phase(&pod) == "Failed" && !is_ready(&pod)).then_some(())
    })
    .await;
    let replaced = eventually("a replacement, Ready", WAIT, ready_ips).await;
    assert!(
        !replaced.contains(&pod_ip(&victim)) || replaced.len() == ips.len(),
        "{replaced:?}"
    );
    assert!(
        pod_pids(&uid(&victim)).is_empty(),
        "the failed pod's network is gone"
    );

    // ---- a deleted pod's process is stopped ---------------------------------
    let doomed = live_pods(&pods, receiver_selector)
        .await
        .into_iter()
        .next()
        .expect("a receiver pod");
    let doomed_uid = uid(&doomed);
    assert_eq!(pod_pids(&doomed_uid).len(), 1);
    pods.delete(
        doomed.metadata.name.as_deref().expect("name"),
        &DeleteParams::default(),
    )
    .await
    .expect("delete pod");
    let doomed_name = doomed.metadata.name.clone().expect("name");
    eventually("the deleted pod gone with its process", WAIT, || async {
        (pods.get_opt(&doomed_name).await.ok()?.is_none() && pod_pids(&doomed_uid).is_empty())
            .then_some(())
    })
    .await;
    eventually("a replacement, Ready", WAIT, ready_ips).await;

    ok(
        &helm_home,
        "helm",
        &["uninstall", &namespace, "--namespace", &namespace],
    );
    eventually("the operator pod gone with its process", WAIT, || async {
        (pods
            .get_opt(operator.metadata.name.as_deref()?)
            .await
            .ok()?
            .is_none()
            && pod_pids(&uid(&operator)).is_empty())
        .then_some(())
    })
    .await;
}
