//! Bad setup gets a clear error that says what failed and where its log is,
//! and leaves no stray process behind.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use hookwarden_tests::tools::{pinned_version, repo_root};
use hookwarden_tests::{NatsServer, SupportError};

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Processes whose command line mentions `needle`, other than ourselves.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[tokio::test]
async fn nats_on_a_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let err = NatsServer::builder()
        .port(port)
        .start()
        .await
        .expect_err("port is taken");
    let message = err.to_string();
    assert!(
        matches!(err, SupportError::PortInUse { port: p, .. } if p == port),
        "{message}"
    );
    assert!(
        message.contains("already in use") && message.contains("log: "),
        "{message}"
    );
}

#[tokio::test]
async fn nats_that_never_gets_ready_is_stopped_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("nats-server");
    let pid_file = dir.path().join("pid");
    // Runs, but never writes a ports file nor answers JetStream requests.
    write_script(
        &fake,
        &format!("echo $$ > {}\nexec sleep 600", pid_file.display()),
    );
    let err = NatsServer::builder()
        .binary(&fake)
        .ready_timeout(Duration::from_millis(500))
        .start()
        .await
        .expect_err("never ready");
    let message = err.to_string();
    assert!(matches!(err, SupportError::NotReady { .. }), "{message}");
    assert!(
        message.contains("did not become ready within 500 ms") && message.contains("log: "),
        "{message}"
    );
    let pid = std::fs::read_to_string(&pid_file).expect("fake wrote its pid");
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the process was stopped and reaped"
    );
}

#[test]
fn install_without_go_says_so() {
    let cache = tempfile::tempdir().expect("tempdir");
    let output = Command::new("bash")
        .arg(repo_root().join("tests/tools/install.sh"))
        .arg("nats-server")
        .env("PATH", "/usr/bin:/bin")
        .env("HOOKWARDEN_CACHE", cache.path())
        .output()
        .expect("run install.sh");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("Go is not installed"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn failed_build_names_the_tool_and_its_log() {
    let work = tempfile::tempdir().expect("tempdir");
    let tools = work.path().join("tools");
    let wrapper = tools.join("go/nats-server");
    std::fs::create_dir_all(&wrapper).expect("mkdir");
    let source = repo_root().join("tests/tools");
    for file in ["install.sh", "lib.sh", "versions.env"] {
        std::fs::copy(source.join(file), tools.join(file)).expect("copy script");
    }
    std::fs::copy(source.join("go/nats-server/go.mod"), wrapper.join("go.mod"))
        .expect("copy go.mod");
    // No go.sum: a read-only build cannot verify its dependencies and fails.
    let cache = work.path().join("cache");
    let output = Command::new("bash")
        .arg(tools.join("install.sh"))
        .arg("nats-server")
        .env("HOOKWARDEN_CACHE", &cache)
        .output()
        .expect("run install.sh");
    let err = stderr(&output);
    assert!(!output.status.success(), "{err}");
    let version = pinned_version("NATS_SERVER_VERSION").expect("pinned");
    let log = cache.join("logs/build-nats-server.log");
    assert!(
        err.contains(&format!(
            "building nats-server {version} failed; full log: {}",
            log.display()
        )),
        "{err}"
    );
    assert!(log.is_file(), "the log it names exists");
    assert!(
        !cache.join(format!("bin/nats-server-{version}")).exists(),
        "no half-built binary is left"
    );
}

#[test]
fn cluster_on_a_port_in_use_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let output = Command::new("bash")
        .arg(repo_root().join("tests/tools/cluster.sh"))
        .arg("up")
        .env("HOOKWARDEN_CLUSTER_DIR", dir.path())
        .env("HOOKWARDEN_APISERVER_PORT", port.to_string())
        .output()
        .expect("run cluster.sh");
    let err = stderr(&output);
    assert!(!output.status.success(), "{err}");
    assert!(
        err.contains(&format!("port {port} for kube-apiserver is already in use")),
        "{err}"
    );
    assert!(processes_mentioning(&dir.path().display().to_string()).is_empty());
}

#[test]
fn cluster_component_not_ready_in_time_is_stopped_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let cluster = dir.path().join("cluster");
    std::fs::create_dir_all(cache.join("bin")).expect("mkdir");
    // Stand-ins for every tool: they run, but etcd never answers its health check.
    let kubernetes = pinned_version("KUBERNETES_VERSION").expect("pinned");
    for (tool, version) in [
        ("etcd", pinned_version("ETCD_VERSION").expect("pinned")),
        ("kube-apiserver", kubernetes),
        ("kube-controller-manager", kubernetes),
        ("kube-scheduler", kubernetes),
        ("kubectl", kubernetes),
        ("kwok", pinned_version("KWOK_VERSION").expect("pinned")),
    ] {
        write_script(&cache.join(format!("bin/{tool}-{version}")), "sleep 600");
    }
    let output = Command::new("bash")
        .arg(repo_root().join("tests/tools/cluster.sh"))
        .arg("up")
        .env("HOOKWARDEN_CACHE", &cache)
        .env("HOOKWARDEN_CLUSTER_DIR", &cluster)
        .env("HOOKWARDEN_START_TIMEOUT", "2")
        .output()
        .expect("run cluster.sh");
    let err = stderr(&output);
    assert!(!output.status.success(), "{err}");
    let log = cluster.join("logs/etcd.log");
    assert!(
        err.contains(&format!(
            "etcd did not become ready within 2s; log: {}",
            log.display()
        )),
        "{err}"
    );
    let strays = processes_mentioning(&dir.path().display().to_string());
    assert!(strays.is_empty(), "stray processes: {strays:?}");
}
