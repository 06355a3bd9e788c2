//! The pinned upstream tools are the versions `tests/tools/versions.env`
//! names, stamped as upstream stamps its release builds.

use std::process::Command;

use hookwarden_tests::tools::{pinned_version, require_tool};

fn output_of(tool: &str, args: &[&str]) -> String {
    let path = require_tool(tool).unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(&path).args(args).output().expect("tool runs");
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

fn pinned(variable: &str) -> &'static str {
    pinned_version(variable).expect("pinned in versions.env")
}

/// Prometheus v3.X.Y is the Go module version v0.3XX.Y (v0.316.0 is 3.16.0).
fn prometheus_release() -> String {
    let module = pinned("PROMETHEUS_VERSION");
    let (minor, patch) = module
        .trim_start_matches("v0.")
        .split_once('.')
        .expect("v0.<3XX>.<patch>");
    let (major, minor) = minor.split_at(1);
    format!("{major}.{minor}.{patch}")
}

#[test]
fn every_tool_reports_its_pinned_version() {
    let kubernetes = pinned("KUBERNETES_VERSION");
    let cases = [
        (
            "nats-server",
            vec!["--version"],
            format!("nats-server: {}", pinned("NATS_SERVER_VERSION")),
        ),
        (
            "nats",
            vec!["--version"],
            pinned("NATSCLI_VERSION").to_owned(),
        ),
        (
            "etcd",
            vec!["--version"],
            format!(
                "etcd Version: {}",
                pinned("ETCD_VERSION").trim_start_matches('v')
            ),
        ),
        (
            "kube-apiserver",
            vec!["--version"],
            format!("Kubernetes {kubernetes}"),
        ),
        (
            "kube-controller-manager",
            vec!["--version"],
            format!("Kubernetes {kubernetes}"),
        ),
        (
            "kube-scheduler",
            vec!["--version"],
            format!("Kubernetes {kubernetes}"),
        ),
        (
            "kubectl",
            vec!["version", "--client"],
            format!("Client Version: {kubernetes}"),
        ),
        (
            "kwok",
            vec!["--version"],
            format!("kwok version {}", pinned("KWOK_VERSION")),
        ),
        (
            "helm",
            vec!["version"],
            format!("Version:\"{}\"", pinned("HELM_VERSION")),
        ),
        (
            "traefik",
            vec!["version"],
            pinned("TRAEFIK_VERSION").to_owned(),
        ),
        (
            "actionlint",
            vec!["--version"],
            pinned("ACTIONLINT_VERSION").to_owned(),
        ),
        (
            "promtool",
            vec!["--version"],
            format!("promtool, version {}", prometheus_release()),
        ),
    ];
    for (tool, args, expected) in cases {
        let output = output_of(tool, &args);
        assert!(
            output.contains(&expected),
            "{tool}: expected {expected:?} in {output:?}"
        );
    }
}

#[test]
fn helm_assumes_the_kubernetes_minor_of_our_control_plane() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chart = dir.path().join("probe");
    std::fs::create_dir_all(chart.join("templates")).expect("mkdir");
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: probe\nversion: 0.1.0\n",
    )
    .expect("write");
    std::fs::write(
        chart.join("templates/kube.yaml"),
        "kube: {{ .Capabilities.KubeVersion.Minor }}\n",
    )
    .expect("write");
    let rendered = output_of("helm", &["template", &chart.display().to_string()]);
    let minor = pinned("KUBERNETES_VERSION")
        .split('.')
        .nth(1)
        .expect("v1.<minor>.<patch>");
    assert!(rendered.contains(&format!("kube: {minor}")), "{rendered}");
}

/// cert-manager's controller has no version flag: it logs its version first
/// thing, before it reads the kubeconfig (which here does not exist).
#[test]
fn cert_manager_controller_reports_its_pinned_version() {
    let path = require_tool("cert-manager-controller").unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(&path)
        .args([
            "--kubeconfig",
            &dir.path().join("none").display().to_string(),
            "--leader-elect=false",
            "--metrics-listen-address=127.0.0.1:0",
        ])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "no cluster, no start: {text}");
    let version = format!("version=\"{}\"", pinned("CERT_MANAGER_VERSION"));
    assert!(
        text.contains("starting cert-manager controller") && text.contains(&version),
        "expected {version} in {text}"
    );
}
