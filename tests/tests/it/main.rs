//! The cross-component tests: one test binary (one link of the workspace's
//! crates), a module per subject — the chart, the alert rules, the tools,
//! the control plane, the pod runner, the user journey, the product as
//! deployed. What several modules need is here, once: a tool's output as
//! text, helm and kubectl with a private helm home, the example consumer's
//! log.

mod alerts;
mod chart;
mod contract;
mod control_plane;
mod deployed;
mod journey;
mod nats;
mod nginx;
mod pod_runner;
mod setup_errors;
mod tools;
mod workflows;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use hookwarden_tests::kubeconfig_path;
use hookwarden_tests::tools::require_tool;
use serde_json::Value;

/// What a tool printed, standard output then standard error.
fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// The pinned `helm` or `kubectl` as the control plane's admin, with helm's
/// homes in `helm_home` (never the user's repositories and caches).
fn tool(helm_home: &Path, name: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let path = require_tool(name).unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(&path)
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .env("HELM_CONFIG_HOME", helm_home)
        .env("HELM_CACHE_HOME", helm_home)
        .env("HELM_DATA_HOME", helm_home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", path.display()));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("tool finishes")
}

/// Like [`tool`], and it must succeed; returns its output.
fn ok(helm_home: &Path, name: &str, args: &[&str]) -> String {
    let output = tool(helm_home, name, args, None);
    let out = text(&output);
    assert!(output.status.success(), "{name} {args:?} failed:\n{out}");
    out
}

/// The events the example consumer logged (one JSON object per line;
/// lines that are not events are skipped).
fn consumed(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["subject"].is_string())
        .collect()
}
