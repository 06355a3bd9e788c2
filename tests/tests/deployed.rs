//! The journey as deployed (issue #12): the path a provider's request really
//! takes. provider (`hookwarden send`) → Traefik v3 (TLS with a certificate
//! cert-manager issued from the test CA, host and path routing,
//! `X-Forwarded-*`) → Service → receiver pods started from their own
//! Deployment specs (processes on the process node, see
//! `tests/src/bin/pod-runner.rs`) → JetStream → the example consumer.
//!
//! 1. cert-manager's controller for the test's namespace with a self-signed
//!    CA Issuer; `helm install` with the ingress class `traefik`, that issuer
//!    and Traefik's address as the receivers' trusted proxy; the operator
//!    runs as the chart's pod.
//! 2. Secrets, then every manifest of `examples/`, each on its own host and
//!    path (as a user sets `spec.ingress` before applying).
//! 3. Each becomes Ready with its certificate; Traefik routes its host and
//!    path to the ready pods.
//! 4. `hookwarden send --endpoint … --connect-to <Traefik>` with the
//!    endpoint's host (SNI and Host), trusting only the test CA: each delivery
//!    is stored once and the consumer prints it with its subject and headers
//!    (`Hookwarden-Source-Ip` is the sender's loopback address as Traefik
//!    saw it); out-of-allowlist, forged and redelivered deliveries are
//!    refused or deduplicated through the proxy and never stored twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use hookwarden_crds::WebhookEndpoint;
use hookwarden_tests::deployed::{
    CertManager, build_workspace_binaries, is_pod_ip, pod_runner_bin_dir, recorded_port,
};
use hookwarden_tests::tools::{repo_root, require_tool};
use hookwarden_tests::{ManagedProcess, NatsServer, TestNamespace, eventually, kubeconfig_path};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(180);
/// Where Traefik reaches pods from (the process node's address): the
/// receivers' trusted proxy.
const PROXY: &str = "127.1.0.1/32";
/// The sender's address, as Traefik sees it.
const SENDER: &str = "127.0.0.1";

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

fn ok(helm_home: &Path, name: &str, args: &[&str]) -> String {
    let path = require_tool(name).unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(&path)
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .env("HELM_CONFIG_HOME", helm_home)
        .env("HELM_CACHE_HOME", helm_home)
        .env("HELM_DATA_HOME", helm_home)
        .output()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", path.display()));
    let out = text(&output);
    assert!(output.status.success(), "{name} {args:?} failed:\n{out}");
    out
}

fn condition(endpoint: &WebhookEndpoint, type_: &str) -> Option<String> {
    endpoint
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

/// Traefik's view (its API on the admin entry point): the servers of the
/// service it routes `host` to, once it has such a router.
fn traefik_servers(admin: u16, host: &str) -> Option<Vec<String>> {
    let get = |path: &str| -> Option<Value> {
        let output = Command::new("curl")
            .args(["-fsS", "--max-time", "5"])
            .arg(format!("http://127.0.0.1:{admin}{path}"))
            .output()
            .ok()?;
        serde_json::from_slice(&output.stdout).ok()
    };
    let routers = get("/api/http/routers")?;
    let router = routers.as_array()?.iter().find(|r| {
        r["rule"].as_str().is_some_and(|rule| {
            rule.contains(&format!("Host(`{host}`)")) || rule.contains(&format!("Host(\"{host}\")"))
        }) && r["status"] == "enabled"
    })?;
    let service = router["service"].as_str()?;
    let service = if service.contains('@') {
        service.to_owned()
    } else {
        format!("{service}@kubernetes")
    };
    let service = get(&format!("/api/http/services/{service}"))?;
    Some(
        service["loadBalancer"]["servers"]
            .as_array()?
            .iter()
            .filter_map(|s| s["url"].as_str().map(str::to_owned))
            .collect(),
    )
}

/// The pod IPs of the ready receiver pods of `endpoint`.
async fn ready_pod_ips(pods: &Api<Pod>, endpoint: &str) -> Vec<String> {
    let selector =
        format!("app.kubernetes.io/name=hookwarden-receiver,app.kubernetes.io/instance={endpoint}");
    let mut ips: Vec<String> = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| p.status.and_then(|s| s.pod_ip))
        .collect();
    ips.sort();
    ips
}

/// One example as this test applies it.
struct Example {
    name: String,
    manifest: PathBuf,
    endpoint: WebhookEndpoint,
    host: String,
    path: String,
}

/// `hookwarden send --endpoint` through Traefik: exit code and output.
async fn send(
    cli: &Path,
    example: &Example,
    secrets: &Path,
    traefik: u16,
    ca: &Path,
    extra: &[&str],
) -> (i32, String) {
    let url = format!("https://{}:{traefik}{}", example.host, example.path);
    let output = tokio::process::Command::new(cli)
        .args(["send", "--endpoint"])
        .arg(&example.manifest)
        .arg("--secrets-dir")
        .arg(secrets)
        .args([
            "--url",
            &url,
            "--connect-to",
            &format!("127.0.0.1:{traefik}"),
        ])
        .arg("--cacert")
        .arg(ca)
        .args(extra)
        .output()
        .await
        .expect("hookwarden send runs");
    (output.status.code().unwrap_or(-1), text(&output))
}

fn consumed(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["subject"].is_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_take_the_path_of_a_deployed_cluster() {
    let started = std::time::Instant::now();
    let step = |what: &str| eprintln!("deployed: {what} at {:.1?}", started.elapsed());
    let bin_dir = build_workspace_binaries().unwrap_or_else(|e| panic!("{e}"));
    let runner_bins = pod_runner_bin_dir().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        runner_bins.canonicalize().ok(),
        bin_dir.canonicalize().ok(),
        "the pod runner runs the binaries of another checkout: restart the control plane from this one"
    );
    let cli = bin_dir.join("hookwarden");
    let consumer_bin = bin_dir.join("hookwarden-example-consumer");
    let traefik = recorded_port("TRAEFIK_HTTPS_PORT").unwrap_or_else(|e| panic!("{e}"));
    let admin = recorded_port("TRAEFIK_ADMIN_PORT").unwrap_or_else(|e| panic!("{e}"));
    let nats = NatsServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let ns = TestNamespace::create_on_process_node("deployed")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let namespace = ns.name().to_owned();
    let work = tempfile::tempdir().expect("work dir");
    let work = work.path();
    let helm_home = work.join("helm");

    // cert-manager for this namespace, its CA Issuer, and the CA: the only
    // certificate the senders trust besides the system's.
    let cert_manager = CertManager::start(&namespace)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ca = work.join("ca.crt");
    std::fs::write(&ca, cert_manager.ca_pem()).expect("write CA");

    step("1. helm install");
    hookwarden_operator::crd::install(ns.client(), WAIT)
        .await
        .expect("CRD installed");
    let chart = repo_root().join("charts/hookwarden");
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
            &format!("nats.url={}", nats.url()),
            "--set",
            &format!("watchNamespace={namespace}"),
            "--set",
            "ingress.className=traefik",
            "--set",
            &format!("certManager.issuer.name={}", CertManager::ISSUER),
            "--set",
            "certManager.issuer.kind=Issuer",
            "--set",
            &format!("receivers.trustedProxies={{{PROXY}}}"),
        ],
    );

    step("2. secrets and examples");
    let secrets = work.join("secrets");
    let generate = |secret: &str, key: &str, format: &str| {
        let output = Command::new(&cli)
            .args(["secret", "generate", "--format", format])
            .output()
            .expect("hookwarden secret generate");
        assert!(output.status.success(), "{}", text(&output));
        let dir = secrets.join(secret);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let value = String::from_utf8(output.stdout).expect("UTF-8");
        std::fs::write(dir.join(key), value.trim_end()).expect("write secret");
    };
    for (secret, key, format) in [
        ("github-webhook", "secret", "hex"),
        ("stripe-webhook", "secret", "hex"),
        ("slack-signing", "current", "hex"),
        ("slack-signing", "previous", "hex"),
        ("orders-webhook", "secret", "whsec"),
        ("acme-webhook", "token", "hex"),
        ("acme-webhook", "hmac", "hex"),
        ("twilio", "auth-token", "hex"),
        ("meta-app", "app-secret", "hex"),
        ("meta-app", "verify-token", "hex"),
    ] {
        generate(secret, key, format);
    }
    for entry in std::fs::read_dir(&secrets).expect("secrets") {
        let dir = entry.expect("entry").path();
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        let mut args = vec![
            "create".to_owned(),
            "secret".to_owned(),
            "generic".to_owned(),
            name,
            "--namespace".to_owned(),
            namespace.clone(),
        ];
        for key in std::fs::read_dir(&dir).expect("keys") {
            let key = key.expect("key").path();
            args.push(format!(
                "--from-file={}={}",
                key.file_name().and_then(|n| n.to_str()).expect("key name"),
                key.display()
            ));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&helm_home, "kubectl", &args);
    }

    // Every example on its own host and path behind the ingress, with the
    // chart's issuer and trusted proxy (what the docs tell a user to set).
    let manifests = work.join("manifests");
    std::fs::create_dir_all(&manifests).expect("mkdir");
    let mut examples = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("examples")).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let mut manifest: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&path).expect("read")).expect("YAML");
        // Endpoints only: a subscription has no ingress.
        if manifest["kind"] != "WebhookEndpoint" {
            continue;
        }
        let name = manifest["metadata"]["name"]
            .as_str()
            .expect("named")
            .to_owned();
        let host = format!("{name}.hooks.hookwarden.test");
        let route = format!("/in/{name}");
        let spec = manifest["spec"].as_object_mut().expect("spec");
        spec.insert(
            "ingress".to_owned(),
            serde_json::json!({"host": host, "path": route}),
        );
        spec.remove("tls");
        spec.remove("trustedProxies");
        manifest["metadata"]["namespace"] = namespace.clone().into();
        let file = manifests.join(format!("{name}.yaml"));
        std::fs::write(&file, serde_yaml_ng::to_string(&manifest).expect("YAML")).expect("write");
        ok(
            &helm_home,
            "kubectl",
            &["apply", "-f", file.to_str().expect("UTF-8")],
        );
        let endpoint = hookwarden_crds::from_yaml(&std::fs::read_to_string(&file).expect("read"))
            .expect("a WebhookEndpoint");
        examples.push(Example {
            name,
            manifest: file,
            endpoint,
            host,
            path: route,
        });
    }
    assert_eq!(examples.len(), 8, "every example");

    step("3. Ready with certificates, routed by Traefik");
    let endpoints = ns.api::<WebhookEndpoint>();
    let pods = ns.api::<Pod>();
    for example in &examples {
        let name = &example.name;
        eventually(
            &format!("{name} Ready with its certificate"),
            WAIT,
            || async {
                let endpoint = endpoints.get(name).await.ok()?;
                (condition(&endpoint, "Ready").as_deref() == Some("True")
                    && condition(&endpoint, "CertificateReady").as_deref() == Some("True"))
                .then_some(())
            },
        )
        .await;
        ns.api::<Secret>()
            .get(&format!("{name}-tls"))
            .await
            .unwrap_or_else(|e| panic!("{name}-tls issued: {e}"));
        // Traefik routes the host to the endpoint's Service (its ClusterIP,
        // which the pod runner serves from the ready pods, as kube-proxy
        // would: EndpointSlices cannot list loopback pod IPs), and there are
        // ready pods behind it.
        let service = ns
            .api::<k8s_openapi::api::core::v1::Service>()
            .get(&format!("{name}-receiver"))
            .await
            .expect("receiver Service");
        let cluster_ip = service.spec.and_then(|s| s.cluster_ip).expect("ClusterIP");
        eventually(
            &format!("Traefik to route {name} to its Service"),
            WAIT,
            || async {
                let ips = ready_pod_ips(&pods, name).await;
                let servers = traefik_servers(admin, &example.host)?;
                (!ips.is_empty()
                    && ips.iter().all(|ip| is_pod_ip(ip))
                    && servers == [format!("http://{cluster_ip}:80")])
                .then_some(())
            },
        )
        .await;
    }
    // The generated secret, for sending to github-generated.
    let generated = ns
        .api::<Secret>()
        .get("github-generated-webhook-secret")
        .await
        .expect("generated secret");
    let dir = secrets.join("github-generated-webhook-secret");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("secret"),
        &generated
            .data
            .as_ref()
            .and_then(|d| d.get("secret"))
            .expect("secret")
            .0,
    )
    .expect("write");

    step("4. deliveries through Traefik");
    let client = nats.connect().await.expect("NATS");
    let jetstream = async_nats::jetstream::new(client);
    let mut consumers: BTreeMap<String, (ManagedProcess, PathBuf, String)> = BTreeMap::new();
    // Out of their allowlists: GitHub's ranges, acme's documentation range.
    let refused_by_allowlist = ["github", "acme"];
    for example in &examples {
        let name = &example.name;
        let mut endpoint = example.endpoint.clone();
        endpoint.metadata.namespace = Some(namespace.clone());
        let target = hookwarden_receiver::publish::Target::for_endpoint(&endpoint).expect("target");
        let id = format!("deployed-{name}-1");
        // The generated secret is no secretRef: named as a file.
        let generated_file = secrets.join("github-generated-webhook-secret/secret");
        let generated_file = generated_file.to_str().expect("UTF-8");
        let mut extra = vec!["--event", "created", "--delivery-id", &id];
        if name == "github-generated" {
            extra.extend(["--secret-file", generated_file]);
        }
        // Traefik loads an issued certificate's Secret a moment after
        // cert-manager reports it Ready; until then it serves its default
        // certificate, the handshake fails and nothing is sent. Wait for
        // the issued one (bounded).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let (code, out) = loop {
            let (code, out) = send(&cli, example, &secrets, traefik, &ca, &extra).await;
            if !out.contains("invalid peer certificate") || tokio::time::Instant::now() >= deadline
            {
                break (code, out);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let stream_name = target.stream.clone();
        let mut stream = jetstream.get_stream(&stream_name).await.expect("stream");
        let stored = stream.info().await.expect("info").state.messages;
        if refused_by_allowlist.contains(&name.as_str()) {
            assert_eq!(code, 1, "{name}: {out}");
            assert!(
                out.contains("403") && out.contains("ip_not_allowed"),
                "{name}: {out}"
            );
            assert_eq!(stored, 0, "{name}: refused, never stored");
            continue;
        }
        assert_eq!(code, 0, "{name}: {out}");
        assert!(out.starts_with("200"), "{name}: {out}");
        assert_eq!(stored, 1, "{name}: a 2xx means stored");
        let log = work.join(format!("{name}-consumer.log"));
        let process = ManagedProcess::spawn(
            &format!("consumer {name}"),
            &consumer_bin,
            &[
                "--nats-url".to_owned(),
                nats.url().to_owned(),
                "--subject".to_owned(),
                target.subjects(),
                "--durable".to_owned(),
                "deployed".to_owned(),
            ],
            &log,
        )
        .expect("consumer starts");
        consumers.insert(name.clone(), (process, log, stream_name));
    }

    // Forged (another secret) and redelivered, through the proxy.
    let stripe = examples
        .iter()
        .find(|e| e.name == "stripe")
        .expect("stripe");
    let forged_secrets = work.join("forged");
    std::fs::create_dir_all(forged_secrets.join("stripe-webhook")).expect("mkdir");
    std::fs::write(
        forged_secrets.join("stripe-webhook/secret"),
        "0123456789abcdef0123456789abcdef",
    )
    .expect("write");
    let (code, out) = send(
        &cli,
        stripe,
        &forged_secrets,
        traefik,
        &ca,
        &["--event", "charge.refunded", "--delivery-id", "evt_forged"],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("401") && out.contains("signature_mismatch"),
        "{out}"
    );
    let (code, out) = send(
        &cli,
        stripe,
        &secrets,
        traefik,
        &ca,
        &["--event", "created", "--delivery-id", "deployed-stripe-1"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("\"duplicate\": true"),
        "a redelivery is answered as stored: {out}"
    );
    // A captured delivery replayed after its tolerance (signed an hour ago,
    // correctly, under a new id): refused through the proxy.
    let an_hour_ago = (jiff::Timestamp::now().as_second() - 3600).to_string();
    let (code, out) = send(
        &cli,
        stripe,
        &secrets,
        traefik,
        &ca,
        &[
            "--event",
            "created",
            "--delivery-id",
            "deployed-stripe-stale",
            "--timestamp",
            &an_hour_ago,
        ],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("401") && out.contains("timestamp_out_of_tolerance"),
        "{out}"
    );

    step("4. consumers");
    for (name, (process, log, stream_name)) in &mut consumers {
        let mut stream = jetstream
            .get_stream(stream_name.as_str())
            .await
            .expect("stream");
        let info = stream.info().await.expect("info").clone();
        assert_eq!(
            info.state.messages, 1,
            "{name}: stored once, forged, redelivered and replayed not again"
        );
        let last = info.state.last_sequence;
        let stream = stream.clone();
        process
            .wait_until(WAIT, || {
                let stream = stream.clone();
                async move {
                    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
                        stream.get_consumer("deployed").await.ok()?;
                    let info = consumer.info().await.ok()?;
                    (info.ack_floor.stream_sequence == last && info.num_ack_pending == 0)
                        .then_some(())
                }
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let events = consumed(log);
        assert_eq!(events.len(), 1, "{name}: exactly once: {events:?}");
        let event = &events[0];
        let headers = &event["headers"];
        let id = format!("deployed-{name}-1");
        // The provider's delivery id de-duplicates; Meta sends none, so the
        // body's digest does.
        if name == "whatsapp" {
            assert_eq!(
                headers["Nats-Msg-Id"], headers["Hookwarden-Body-Sha256"],
                "{name}: {event}"
            );
        } else {
            assert_eq!(headers["Nats-Msg-Id"], id, "{name}: {event}");
            assert_eq!(headers["Hookwarden-Delivery-Id"], id, "{name}: {event}");
        }
        // Twilio names no event type: its deliveries are `unknown`.
        let expected_event = if name == "twilio-sms" {
            "unknown"
        } else {
            "created"
        };
        assert_eq!(
            headers["Hookwarden-Event"], expected_event,
            "{name}: {event}"
        );
        assert_eq!(
            headers["Hookwarden-Endpoint"],
            format!("{namespace}/{name}"),
            "{event}"
        );
        assert_eq!(
            headers["Hookwarden-Source-Ip"], SENDER,
            "{name}: the sender as Traefik saw it: {event}"
        );
        let subject = event["subject"].as_str().expect("subject");
        let example = examples.iter().find(|e| &e.name == name).expect("example");
        let mut endpoint = example.endpoint.clone();
        endpoint.metadata.namespace = Some(namespace.clone());
        let target = hookwarden_receiver::publish::Target::for_endpoint(&endpoint).expect("target");
        assert!(
            hookwarden_receiver::publish::subject_covers(&target.subjects(), subject),
            "{name}: {subject}"
        );
    }
    step("done");
}

/// What the continuous sender saw: delivery id → exit code of `hookwarden
/// send` (0: a 2xx, 1: another status, 2: no answer), and the phase it was
/// sent in.
#[derive(Debug, Default)]
struct Answers {
    sent: Vec<(String, i32, String)>,
}

/// Waits until the receiver Deployment of `endpoint` runs `replicas` pods of
/// its current template, all ready, and nothing else (old pods gone).
async fn rolled_out(ns: &TestNamespace, endpoint: &str, replicas: i32) {
    let deployments = ns.api::<k8s_openapi::api::apps::v1::Deployment>();
    let pods = ns.api::<Pod>();
    let child = format!("{endpoint}-receiver");
    eventually(
        &format!("{child} rolled out with {replicas} ready pods"),
        WAIT,
        || async {
            let deployment = deployments.get(&child).await.ok()?;
            let status = deployment.status?;
            let generation = deployment.metadata.generation?;
            let done = status.observed_generation? >= generation
                && status.replicas? == replicas
                && status.updated_replicas? == replicas
                && status.ready_replicas? == replicas;
            // Old pods still terminating would still be running.
            let selector = format!(
                "app.kubernetes.io/name=hookwarden-receiver,app.kubernetes.io/instance={endpoint}"
            );
            let live = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Failed"))
                .count();
            (done && live == usize::try_from(replicas).ok()?).then_some(())
        },
    )
    .await;
}

/// Day 2 under continuous bounded load (issue #12): scale 2 → 4 → 2, delete a
/// pod, rotate the secret (both listed, then the old one removed: each a
/// rolling update of the spec), restart the operator. For every change: no
/// delivery answered 2xx and not stored, none stored twice; the non-2xx
/// answers during each change are reported (the goal is zero).
#[tokio::test(flavor = "multi_thread")]
async fn day_two_operations_under_load_lose_and_duplicate_nothing() {
    let bin_dir = build_workspace_binaries().unwrap_or_else(|e| panic!("{e}"));
    let runner_bins = pod_runner_bin_dir().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        runner_bins.canonicalize().ok(),
        bin_dir.canonicalize().ok(),
        "the pod runner runs the binaries of another checkout"
    );
    let cli = bin_dir.join("hookwarden");
    let traefik = recorded_port("TRAEFIK_HTTPS_PORT").unwrap_or_else(|e| panic!("{e}"));
    let admin = recorded_port("TRAEFIK_ADMIN_PORT").unwrap_or_else(|e| panic!("{e}"));
    let nats = NatsServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let ns = TestNamespace::create_on_process_node("day2")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let namespace = ns.name().to_owned();
    let work = tempfile::tempdir().expect("work dir");
    let work = work.path().to_owned();
    let helm_home = work.join("helm");
    let cert_manager = CertManager::start(&namespace)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ca = work.join("ca.crt");
    std::fs::write(&ca, cert_manager.ca_pem()).expect("write CA");
    hookwarden_operator::crd::install(ns.client(), WAIT)
        .await
        .expect("CRD installed");
    let chart = repo_root().join("charts/hookwarden");
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
            &format!("nats.url={}", nats.url()),
            "--set",
            &format!("watchNamespace={namespace}"),
            "--set",
            "ingress.className=traefik",
            "--set",
            &format!("certManager.issuer.name={}", CertManager::ISSUER),
            "--set",
            "certManager.issuer.kind=Issuer",
            "--set",
            &format!("receivers.trustedProxies={{{PROXY}}}"),
        ],
    );
    // Stripe, on its own host and path, with the old and the next secret.
    let secrets = work.join("secrets");
    let secret_of = |name: &str| {
        let output = Command::new(&cli)
            .args(["secret", "generate", "--format", "hex"])
            .output()
            .expect("secret generate");
        let value = String::from_utf8(output.stdout)
            .expect("UTF-8")
            .trim()
            .to_owned();
        let file = work.join(name);
        std::fs::write(&file, &value).expect("write");
        (value, file)
    };
    let (old_value, old_file) = secret_of("old");
    let (new_value, new_file) = secret_of("new");
    std::fs::create_dir_all(secrets.join("stripe-webhook")).expect("mkdir");
    std::fs::write(secrets.join("stripe-webhook/secret"), &old_value).expect("write");
    for (name, file) in [("stripe-webhook", &old_file), ("stripe-next", &new_file)] {
        ok(
            &helm_home,
            "kubectl",
            &[
                "create",
                "secret",
                "generic",
                name,
                "--namespace",
                &namespace,
                &format!("--from-file=secret={}", file.display()),
            ],
        );
    }
    let host = "stripe.day2.hookwarden.test";
    let mut manifest: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo_root().join("examples/stripe.yaml")).expect("read"),
    )
    .expect("YAML");
    manifest["metadata"]["namespace"] = namespace.clone().into();
    let spec = manifest["spec"].as_object_mut().expect("spec");
    spec.insert(
        "ingress".to_owned(),
        serde_json::json!({"host": host, "path": "/in/stripe"}),
    );
    spec.remove("tls");
    spec.remove("trustedProxies");
    // The load is one sender; the per-source rate limit is not under test.
    spec.remove("rateLimit");
    let manifest_file = work.join("stripe.yaml");
    std::fs::write(
        &manifest_file,
        serde_yaml_ng::to_string(&manifest).expect("YAML"),
    )
    .expect("write");
    ok(
        &helm_home,
        "kubectl",
        &["apply", "-f", manifest_file.to_str().expect("UTF-8")],
    );
    let endpoint =
        hookwarden_crds::from_yaml(&std::fs::read_to_string(&manifest_file).expect("read"))
            .expect("endpoint");
    let example = Example {
        name: "stripe".to_owned(),
        manifest: manifest_file.clone(),
        endpoint: endpoint.clone(),
        host: host.to_owned(),
        path: "/in/stripe".to_owned(),
    };
    rolled_out(&ns, "stripe", 2).await;
    let endpoints = ns.api::<WebhookEndpoint>();
    eventually("stripe Ready with its certificate", WAIT, || async {
        let endpoint = endpoints.get("stripe").await.ok()?;
        (condition(&endpoint, "Ready").as_deref() == Some("True")
            && condition(&endpoint, "CertificateReady").as_deref() == Some("True"))
        .then_some(())
    })
    .await;
    eventually("Traefik to route stripe", WAIT, || async {
        traefik_servers(admin, host).filter(|s| !s.is_empty())
    })
    .await;

    // The continuous sender: one delivery at a time, each with a new id,
    // until told to stop (bounded by a count, too).
    let answers = std::sync::Arc::new(std::sync::Mutex::new(Answers::default()));
    let phase = std::sync::Arc::new(std::sync::Mutex::new("steady".to_owned()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (answers, phase, stop) = (answers.clone(), phase.clone(), stop.clone());
        let (cli, secrets, ca) = (cli.clone(), secrets.clone(), ca.clone());
        tokio::spawn(async move {
            for n in 0..5000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let id = format!("evt_load_{n}");
                let current = phase.lock().map(|p| p.clone()).unwrap_or_default();
                let (code, _) = send(
                    &cli,
                    &example,
                    &secrets,
                    traefik,
                    &ca,
                    &["--event", "charge.succeeded", "--delivery-id", &id],
                )
                .await;
                if let Ok(mut answers) = answers.lock() {
                    answers.sent.push((id, code, current));
                }
            }
        })
    };
    let set_phase = |name: &str| {
        if let Ok(mut p) = phase.lock() {
            *p = name.to_owned();
        }
    };
    let sent_count = || answers.lock().map(|a| a.sent.len()).unwrap_or_default();
    // Some deliveries between changes, so each phase has traffic.
    let settle = |from: usize| {
        let sent_count = &sent_count;
        async move {
            eventually("ten more deliveries", WAIT, || async {
                (sent_count() >= from + 10).then_some(())
            })
            .await;
        }
    };
    settle(0).await;

    let patch = |body: String| {
        ok(
            &helm_home,
            "kubectl",
            &[
                "patch",
                "whe",
                "stripe",
                "--namespace",
                &namespace,
                "--type=merge",
                "-p",
                &body,
            ],
        );
    };
    set_phase("scale 2->4");
    patch(r#"{"spec": {"replicas": 4}}"#.to_owned());
    rolled_out(&ns, "stripe", 4).await;
    settle(sent_count()).await;
    set_phase("scale 4->2");
    patch(r#"{"spec": {"replicas": 2}}"#.to_owned());
    rolled_out(&ns, "stripe", 2).await;
    settle(sent_count()).await;

    set_phase("delete a pod");
    let pods = ns.api::<Pod>();
    let victim = pods
        .list(&ListParams::default().labels("app.kubernetes.io/instance=stripe"))
        .await
        .expect("pods")
        .items
        .into_iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .expect("a stripe pod");
    pods.delete(
        victim.metadata.name.as_deref().expect("name"),
        &kube::api::DeleteParams::default(),
    )
    .await
    .expect("delete");
    rolled_out(&ns, "stripe", 2).await;
    settle(sent_count()).await;

    set_phase("rotate: both listed");
    patch(
        r#"{"spec": {"secretRefs": [{"name": "stripe-webhook", "key": "secret"}, {"name": "stripe-next", "key": "secret"}]}}"#
            .to_owned(),
    );
    let deployments = ns.api::<k8s_openapi::api::apps::v1::Deployment>();
    let hash = || async {
        deployments
            .get("stripe-receiver")
            .await
            .ok()?
            .spec
            .template
            .metadata?
            .annotations?
            .get("hookwarden.dev/config-hash")
            .cloned()
    };
    let first_hash = hash().await;
    eventually("the rotation rolled out", WAIT, || async {
        (hash().await != first_hash).then_some(())
    })
    .await;
    rolled_out(&ns, "stripe", 2).await;
    // The provider switches to the new secret, atomically.
    let switch = secrets.join("stripe-webhook/secret.new");
    std::fs::write(&switch, &new_value).expect("write");
    std::fs::rename(&switch, secrets.join("stripe-webhook/secret")).expect("rename");
    settle(sent_count()).await;
    set_phase("rotate: old removed");
    let second_hash = hash().await;
    patch(r#"{"spec": {"secretRefs": [{"name": "stripe-next", "key": "secret"}]}}"#.to_owned());
    eventually("the old secret's removal rolled out", WAIT, || async {
        (hash().await != second_hash).then_some(())
    })
    .await;
    rolled_out(&ns, "stripe", 2).await;
    settle(sent_count()).await;

    set_phase("restart the operator");
    let operator = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=hookwarden-operator"))
        .await
        .expect("pods")
        .items
        .into_iter()
        .next()
        .expect("the operator pod");
    pods.delete(
        operator.metadata.name.as_deref().expect("name"),
        &kube::api::DeleteParams::default(),
    )
    .await
    .expect("delete");
    eventually("a new operator pod Ready", WAIT, || async {
        let pods = pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=hookwarden-operator"))
            .await
            .ok()?
            .items;
        pods.iter()
            .any(|p| {
                p.metadata.uid != operator.metadata.uid
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .then_some(())
    })
    .await;
    settle(sent_count()).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.await.expect("sender");

    // What JetStream holds, by delivery id.
    let client = nats.connect().await.expect("NATS");
    let jetstream = async_nats::jetstream::new(client);
    let mut endpoint = endpoint;
    endpoint.metadata.namespace = Some(namespace.clone());
    let target = hookwarden_receiver::publish::Target::for_endpoint(&endpoint).expect("target");
    let mut stream = jetstream.get_stream(&target.stream).await.expect("stream");
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut stored: BTreeMap<String, u32> = BTreeMap::new();
    for sequence in 1..=last {
        let message = stream.get_raw_message(sequence).await.expect("message");
        let id = message
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned())
            .expect("Nats-Msg-Id");
        *stored.entry(id).or_default() += 1;
    }
    let answers = answers.lock().expect("answers");
    let mut report: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut lost = Vec::new();
    for (id, code, phase) in &answers.sent {
        let entry = report.entry(phase.clone()).or_default();
        if *code == 0 {
            entry.0 += 1;
            if !stored.contains_key(id) {
                lost.push(id.clone());
            }
        } else {
            entry.1 += 1;
        }
    }
    eprintln!("day 2: per phase (2xx, non-2xx): {report:?}");
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(lost.is_empty(), "answered 2xx but not stored: {lost:?}");
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    assert!(
        stored
            .keys()
            .all(|id| answers.sent.iter().any(|(sent, _, _)| sent == id)),
        "only what was sent is stored"
    );
    assert!(
        answers.sent.len() >= 70,
        "deliveries throughout every change: {}",
        answers.sent.len()
    );
}
