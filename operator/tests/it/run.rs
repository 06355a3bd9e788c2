//! `hookwarden-operator run` as a process: it installs the CRD, reconciles
//! with the image and NATS URL of its flags, never logs a secret value, and
//! exits cleanly on SIGTERM. And the library's `app::run` it calls, in
//! process: ready, then stopped by its shutdown future; a typed error when
//! it cannot start.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hookwarden_crds::WebhookEndpoint;
use hookwarden_operator::app::{self, Options, RunError};
use hookwarden_tests::{TestNamespace, free_port, kubeconfig_path};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};

use crate::WAIT;

/// Kills the operator if the test fails before it stops it.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn run_reconciles_with_its_flags_and_exits_cleanly_on_sigterm() {
    let ns = TestNamespace::create("run").await.expect("namespace");
    const VALUE: &str = "run-s3cr3t-5e0c93";
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "hook"},
        "stringData": {"secret": VALUE},
    });
    ns.api::<Secret>()
        .patch(
            "hook",
            &PatchParams::apply("hookwarden-test"),
            &Patch::Apply(&secret),
        )
        .await
        .expect("Secret applied");

    let log = std::env::temp_dir().join(format!("hookwarden-operator-{}.log", ns.name()));
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_hookwarden-operator"))
        .args([
            "run",
            "--namespace",
            ns.name(),
            "--receiver-image",
            "registry.invalid/receiver:flag",
            "--nats-url",
            "nats://flag.example:4222",
        ])
        .env("KUBECONFIG", kubeconfig_path())
        .env("RUST_LOG", "hookwarden_operator=trace,info")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("operator starts");
    let mut guard = Guard(child);

    // The CRD may not be served yet when the operator starts: retry.
    let endpoint = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookEndpoint",
        "metadata": {"name": "hook"},
        "spec": {"provider": "github", "secretRefs": [{"name": "hook", "key": "secret"}]},
    });
    let endpoints = ns.api::<WebhookEndpoint>();
    let deployments = ns.api::<Deployment>();
    let deadline = tokio::time::Instant::now() + WAIT;
    let deployment = loop {
        let _ = endpoints
            .patch(
                "hook",
                &PatchParams::apply("hookwarden-test"),
                &Patch::Apply(&endpoint),
            )
            .await;
        if let Ok(Some(deployment)) = deployments.get_opt("hook-receiver").await {
            break deployment;
        }
        if let Ok(Some(status)) = guard.0.try_wait() {
            panic!(
                "operator exited early ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Deployment after {WAIT:?}; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let container = &deployment
        .spec
        .template
        .spec
        .as_ref()
        .expect("pod spec")
        .containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.invalid/receiver:flag")
    );
    let args = container.args.clone().unwrap_or_default();
    assert!(
        args.windows(2)
            .any(|w| w == ["--nats-url", "nats://flag.example:4222"]),
        "{args:?}"
    );

    let pid = guard.0.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = guard.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "operator still running 30 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "exit {status}; log:\n{text}");
    assert!(text.contains("SIGTERM"), "{text}");
    assert!(
        !text.contains(VALUE),
        "the log holds a secret value:\n{text}"
    );
    let _ = std::fs::remove_file(&log);
}

/// `GET path` over plain HTTP/1.0: the status code and the body, or `None`
/// while nothing answers.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

#[tokio::test]
async fn run_serves_health_readiness_and_reconcile_metrics() {
    let ns = TestNamespace::create("run-ops").await.expect("namespace");
    let port = free_port().expect("a free port");
    let log = std::env::temp_dir().join(format!("hookwarden-operator-{}.log", ns.name()));
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_hookwarden-operator"))
        .args([
            "run",
            "--namespace",
            ns.name(),
            "--metrics-listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("KUBECONFIG", kubeconfig_path())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("operator starts");
    let mut guard = Guard(child);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    let deadline = tokio::time::Instant::now() + WAIT;
    let mut wait_for = |path: &'static str, want: &dyn Fn(u16, &str) -> bool| loop {
        if let Some((status, body)) = http_get(port, path)
            && want(status, &body)
        {
            return body;
        }
        if let Ok(Some(status)) = guard.0.try_wait() {
            panic!("operator exited early ({status}): {}", log_text());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} not as expected after {WAIT:?}; last answer {:?}; log:\n{}",
            http_get(port, path),
            log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    wait_for("/healthz", &|status, body| status == 200 && body == "ok\n");
    wait_for("/readyz", &|status, body| {
        status == 200 && body == "ready\n"
    });
    assert_eq!(http_get(port, "/nope").map(|(status, _)| status), Some(404));

    // A reconcile pass shows up in the metrics, labelled by result only.
    let endpoint = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookEndpoint",
        "metadata": {"name": "hook"},
        "spec": {"provider": "github", "generateSecret": true},
    });
    ns.api::<WebhookEndpoint>()
        .patch(
            "hook",
            &PatchParams::apply("hookwarden-test"),
            &Patch::Apply(&endpoint),
        )
        .await
        .expect("endpoint applied");
    let text = wait_for("/metrics", &|status, body| {
        status == 200
            && body
                .contains("hookwarden_operator_reconciles_total{kind=\"WebhookEndpoint\",result=\"")
    });
    assert!(
        text.contains("# TYPE hookwarden_operator_reconcile_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("hookwarden_operator_endpoints{ready=\""),
        "{text}"
    );
    assert!(!text.contains("name=\"hook\""), "{text}");
    drop(guard);
    let _ = std::fs::remove_file(&log);
}

/// Starts `run --leader-election` in `ns` as pod `name`, its operations port
/// on `port`, its log in a temporary file.
fn start_candidate(ns: &str, name: &str, port: u16) -> (Guard, std::path::PathBuf) {
    let log = std::env::temp_dir().join(format!("hookwarden-operator-{ns}-{name}.log"));
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_hookwarden-operator"))
        .args([
            "run",
            "--namespace",
            ns,
            "--metrics-listen",
            &format!("127.0.0.1:{port}"),
            "--leader-election",
            "--leader-election-namespace",
            ns,
        ])
        .env("KUBECONFIG", kubeconfig_path())
        .env("POD_NAME", name)
        .env("RUST_LOG", "hookwarden_operator=debug,info")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("operator starts");
    (Guard(child), log)
}

#[tokio::test]
async fn with_leader_election_a_standby_replica_takes_over_from_a_killed_leader() {
    use k8s_openapi::api::coordination::v1::Lease;
    let ns = TestNamespace::create("run-leader")
        .await
        .expect("namespace");
    let leases = ns.api::<Lease>();
    let holder = || async {
        leases
            .get_opt("hookwarden-operator")
            .await
            .ok()
            .flatten()
            .and_then(|lease| lease.spec?.holder_identity)
    };
    let (mut a, log_a) = start_candidate(ns.name(), "op-a", free_port().expect("a free port"));
    let deadline = tokio::time::Instant::now() + WAIT;
    while holder().await.as_deref() != Some("op-a") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "op-a never took the lease; log:\n{}",
            std::fs::read_to_string(&log_a).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let port_b = free_port().expect("a free port");
    let (b, log_b) = start_candidate(ns.name(), "op-b", port_b);
    // The standby is ready (it must not hold up a rollout) but not leading.
    let deadline = tokio::time::Instant::now() + WAIT;
    while http_get(port_b, "/readyz").map(|(status, _)| status) != Some(200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "op-b never ready; log:\n{}",
            std::fs::read_to_string(&log_b).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(holder().await.as_deref(), Some("op-a"));

    // The leader dies without a word; the standby takes over after the
    // 15 s lease and reconciles.
    a.0.kill().expect("kill op-a");
    let _ = a.0.wait();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    while holder().await.as_deref() != Some("op-b") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "op-b never took over; log:\n{}",
            std::fs::read_to_string(&log_b).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let endpoint = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookEndpoint",
        "metadata": {"name": "hook"},
        "spec": {"provider": "github", "generateSecret": true},
    });
    ns.api::<WebhookEndpoint>()
        .patch(
            "hook",
            &PatchParams::apply("hookwarden-test"),
            &Patch::Apply(&endpoint),
        )
        .await
        .expect("endpoint applied");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !matches!(
        ns.api::<Deployment>().get_opt("hook-receiver").await,
        Ok(Some(_))
    ) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new leader does not reconcile; log:\n{}",
            std::fs::read_to_string(&log_b).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(b);
    let _ = std::fs::remove_file(&log_a);
    let _ = std::fs::remove_file(&log_b);
}

#[tokio::test]
async fn on_sigterm_the_leader_releases_its_lease() {
    use hookwarden_operator::leader::{Elector, LEASE_NAME, Timing};
    use k8s_openapi::api::coordination::v1::Lease;
    let ns = TestNamespace::create("run-release")
        .await
        .expect("namespace");
    let leases = ns.api::<Lease>();
    let (mut a, log_a) = start_candidate(ns.name(), "op-a", free_port().expect("a free port"));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let holder = leases
            .get_opt(LEASE_NAME)
            .await
            .ok()
            .flatten()
            .and_then(|lease| lease.spec?.holder_identity);
        if holder.as_deref() == Some("op-a") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "op-a never took the lease; log:\n{}",
            std::fs::read_to_string(&log_a).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = Command::new("kill")
        .args(["-TERM", &a.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = a.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "operator still running 30 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = std::fs::read_to_string(&log_a).unwrap_or_default();
    assert!(status.success(), "exit {status}; log:\n{text}");
    assert!(text.contains("released the lease"), "{text}");
    let spec = leases
        .get(LEASE_NAME)
        .await
        .expect("Lease")
        .spec
        .expect("spec");
    assert_eq!(spec.holder_identity, None, "{spec:?}");
    // The 15 s lease was renewed moments ago: without the release a new
    // candidate would be refused now.
    let next = Elector::new(
        ns.client(),
        ns.name(),
        LEASE_NAME,
        "op-b",
        Timing::default(),
    );
    assert!(next.try_acquire_or_renew().await.expect("op-b tries"));
    let _ = std::fs::remove_file(&log_a);
}

/// `app::run`'s options for a test: no leader election, the operations
/// port on `metrics_listen`.
fn app_options(metrics_listen: std::net::SocketAddr) -> Options {
    Options {
        crd_timeout: Duration::from_secs(30),
        metrics_listen,
        election: None,
    }
}

#[tokio::test]
async fn app_run_in_process_gets_ready_and_returns_ok_once_shutdown_completes() {
    let ns = TestNamespace::create("app-run").await.expect("namespace");
    let port = free_port().expect("a free port");
    let config = crate::operator_config(&ns, "nats://127.0.0.1:1");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app::run(
        ns.client(),
        config,
        app_options(([127, 0, 0, 1], port).into()),
        async move {
            let _ = stopped.await;
        },
    ));
    crate::eventually("/readyz answering 200 ready", || async move {
        let answer = tokio::task::spawn_blocking(move || http_get(port, "/readyz"))
            .await
            .ok()
            .flatten();
        (answer == Some((200, "ready\n".to_owned()))).then_some(())
    })
    .await;
    let _ = stop.send(());
    let result = tokio::time::timeout(WAIT, running)
        .await
        .expect("app::run returns once its shutdown completes")
        .expect("app::run does not panic");
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn app_run_refuses_to_start_on_a_taken_operations_port() {
    let ns = TestNamespace::create("app-run-port")
        .await
        .expect("namespace");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("its address");
    let config = crate::operator_config(&ns, "nats://127.0.0.1:1");
    let result = tokio::time::timeout(
        WAIT,
        app::run(
            ns.client(),
            config,
            app_options(addr),
            std::future::pending(),
        ),
    )
    .await
    .expect("app::run returns at once when it cannot serve");
    assert!(matches!(result, Err(RunError::Serve(_))), "{result:?}");
}
