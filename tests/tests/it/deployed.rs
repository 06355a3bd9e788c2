//! The journey as deployed (issue #12): the path a provider's request really
//! takes. provider (`hookwarden send`) → Traefik v3 (TLS with a certificate
//! cert-manager issued from the test CA, host and path routing,
//! `X-Forwarded-*`) → Service → receiver pods started from their own
//! Deployment specs (processes on the process node, see
//! `tests/src/bin/pod-runner/`) → JetStream → the example consumer.
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
//!
//! The subscription example runs too: its forwarder pod from its own
//! Deployment, Ready, the subscription Ready with nothing pending. Issue #14
//! as a user runs it, delivery to a destination and dead letters included,
//! is [`subscriptions_deliver_through_their_deployed_forwarders`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures::StreamExt as _;

use hookwarden_crds::WebhookEndpoint;
use hookwarden_tests::deployed::{
    CertManager, build_workspace_binaries, is_pod_ip, pod_runner_bin_dir, process_node_address,
    recorded_port,
};
use hookwarden_tests::tools::repo_root;
use hookwarden_tests::{ManagedProcess, NatsServer, TestNamespace, condition_is_true, eventually};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

use crate::{consumed, ok, text};

const WAIT: Duration = Duration::from_secs(180);
/// The sender's address, as Traefik sees it.
const SENDER: &str = "127.0.0.1";

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
    endpoint: hookwarden_crds::EndpointManifest,
    host: String,
    path: String,
}

/// `helm install` of the chart into `namespace`, watching it, with Traefik
/// as ingress class, the test CA Issuer and Traefik's address as the
/// receivers' trusted proxy: what docs/development.md tells a user to set.
fn install_chart(helm_home: &Path, namespace: &str, nats_url: &str) {
    // Where Traefik reaches pods from: the process node's address.
    let proxy = process_node_address().unwrap_or_else(|e| panic!("{e}"));
    let chart = repo_root().join("charts/hookwarden");
    ok(
        helm_home,
        "helm",
        &[
            "install",
            namespace,
            chart.to_str().expect("UTF-8"),
            "--namespace",
            namespace,
            "--set",
            &format!("nats.url={nats_url}"),
            "--set",
            &format!("watchNamespace={namespace}"),
            "--set",
            "ingress.className=traefik",
            "--set",
            &format!("certManager.issuer.name={}", CertManager::ISSUER),
            "--set",
            "certManager.issuer.kind=Issuer",
            "--set",
            &format!("receivers.trustedProxies={{{proxy}/32}}"),
            // Each endpoint's stream checked about every 10 s instead of
            // spread over 5 minutes, so the operator's stream gauges (which
            // the chart's alerts read) are there within a test's time.
            "--set",
            "nats.streamCheckIntervalSeconds=10",
        ],
    );
}

/// What each test of this module starts from: the workspace binaries (the
/// pod runner must run this checkout's), Traefik's ports, a nats-server of
/// its own, a namespace on the process node, a work directory with a helm
/// home, and cert-manager's controller for the namespace with its CA
/// written to `ca` (the only certificate the senders trust besides the
/// system's). Everything is stopped or removed when it is dropped.
struct Deployed {
    // Declared in the order they are dropped (as the tests' bindings
    // were): the namespace before the nats-server its pods use,
    // cert-manager's controller and the work directory last.
    ca: PathBuf,
    helm_home: PathBuf,
    work: PathBuf,
    namespace: String,
    ns: TestNamespace,
    nats: NatsServer,
    admin: u16,
    traefik: u16,
    cli: PathBuf,
    bin_dir: PathBuf,
    _cert_manager: CertManager,
    _work: tempfile::TempDir,
}

impl Deployed {
    /// The CRDs installed, and the chart with [`install_chart`], the
    /// receivers storing on this test's nats-server: what a user does first.
    async fn helm_install(&self) {
        hookwarden_operator::crd::install(self.ns.client(), WAIT)
            .await
            .expect("CRDs installed");
        install_chart(&self.helm_home, &self.namespace, self.nats.url());
    }

    async fn start(prefix: &str) -> Self {
        let bin_dir = build_workspace_binaries().unwrap_or_else(|e| panic!("{e}"));
        let runner_bins = pod_runner_bin_dir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            runner_bins.canonicalize().ok(),
            bin_dir.canonicalize().ok(),
            "the pod runner runs the binaries of another checkout: restart the control plane from this one"
        );
        let traefik = recorded_port("TRAEFIK_HTTPS_PORT").unwrap_or_else(|e| panic!("{e}"));
        let admin = recorded_port("TRAEFIK_ADMIN_PORT").unwrap_or_else(|e| panic!("{e}"));
        let nats = NatsServer::start().await.unwrap_or_else(|e| panic!("{e}"));
        let ns = TestNamespace::create_on_process_node(prefix)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let namespace = ns.name().to_owned();
        let work_dir = tempfile::tempdir().expect("work dir");
        let work = work_dir.path().to_owned();
        let cert_manager = CertManager::start(&namespace)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ca = work.join("ca.crt");
        std::fs::write(&ca, cert_manager.ca_pem()).expect("write CA");
        Self {
            cli: bin_dir.join("hookwarden"),
            bin_dir,
            traefik,
            admin,
            nats,
            ns,
            namespace,
            helm_home: work.join("helm"),
            work,
            ca,
            _cert_manager: cert_manager,
            _work: work_dir,
        }
    }
}

/// Waits until endpoint `name` is Ready with its certificate.
async fn ready_with_certificate(endpoints: &Api<WebhookEndpoint>, name: &str) {
    eventually(
        &format!("{name} Ready with its certificate"),
        WAIT,
        || async {
            let endpoint = endpoints.get(name).await.ok()?;
            (condition_is_true(&endpoint, "Ready")
                && condition_is_true(&endpoint, "CertificateReady"))
            .then_some(())
        },
    )
    .await;
}

/// Waits until endpoint `name` is Ready with its certificate and Traefik
/// routes `host` (to any server: Traefik admin's view of its router).
async fn ready_and_routed(endpoints: &Api<WebhookEndpoint>, admin: u16, name: &str, host: &str) {
    ready_with_certificate(endpoints, name).await;
    eventually(&format!("Traefik to route {name}"), WAIT, || async {
        traefik_servers(admin, host).filter(|s| !s.is_empty())
    })
    .await;
}

/// `kubectl apply` of `examples/<name>.yaml` into `namespace` on its own
/// host and path behind the ingress (as a user sets `spec.ingress`), without
/// its TLS, trusted proxies (the chart's) and per-source rate limit (a test
/// sends from one address).
fn apply_endpoint_on_host(
    helm_home: &Path,
    namespace: &str,
    work: &Path,
    name: &str,
    host: &str,
    path: &str,
) -> Example {
    let mut manifest: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo_root().join(format!("examples/{name}.yaml"))).expect("read"),
    )
    .expect("YAML");
    manifest["metadata"]["namespace"] = namespace.into();
    let spec = manifest["spec"].as_object_mut().expect("spec");
    spec.insert(
        "ingress".to_owned(),
        serde_json::json!({"host": host, "path": path}),
    );
    spec.remove("tls");
    spec.remove("trustedProxies");
    spec.remove("rateLimit");
    let manifest_file = work.join(format!("{name}.yaml"));
    std::fs::write(
        &manifest_file,
        serde_yaml_ng::to_string(&manifest).expect("YAML"),
    )
    .expect("write");
    ok(
        helm_home,
        "kubectl",
        &["apply", "-f", manifest_file.to_str().expect("UTF-8")],
    );
    let endpoint =
        hookwarden_crds::from_yaml(&std::fs::read_to_string(&manifest_file).expect("read"))
            .expect("endpoint");
    Example {
        name: name.to_owned(),
        manifest: manifest_file,
        endpoint,
        host: host.to_owned(),
        path: path.to_owned(),
    }
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

/// [`send`] to a pool member once it is routed. Ready says the pool's
/// Secret holds the member's configuration; the pods load it at their next
/// read of the mounted directory, and Traefik serves a newly issued
/// certificate a moment after cert-manager reports it: until both, 404
/// `unknown_endpoint` or a refused handshake, and nothing is stored. Sent
/// again until neither (for at most a minute); the last answer.
async fn send_once_routed(
    cli: &Path,
    example: &Example,
    secrets: &Path,
    traefik: u16,
    ca: &Path,
    extra: &[&str],
) -> (i32, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (code, out) = send(cli, example, secrets, traefik, ca, extra).await;
        let not_yet = out.contains("invalid peer certificate") || out.starts_with("404");
        if !not_yet || tokio::time::Instant::now() >= deadline {
            return (code, out);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_take_the_path_of_a_deployed_cluster() {
    let started = std::time::Instant::now();
    let step = |what: &str| eprintln!("deployed: {what} at {:.1?}", started.elapsed());
    let deployed = Deployed::start("deployed").await;
    let consumer_bin = deployed.bin_dir.join("hookwarden-example-consumer");

    step("1. helm install");
    deployed.helm_install().await;
    // examples/github.yaml names GitHub's published hook ranges; there is
    // no internet here, so the operator finds GitHub's list where it keeps
    // the last good one (its ConfigMap in the release namespace), as after
    // a restart during an outage of api.github.com.
    hookwarden_tests::save_list_for_operator(
        deployed.ns.client(),
        &deployed.namespace,
        &hookwarden_receiver::ranges::ListSource::Github {
            service: "hooks".to_owned(),
        },
        &repo_root().join("core/src/ranges/testdata/github-meta.json"),
    )
    .await;

    step("2. secrets and examples");
    let secrets = deployed.work.join("secrets");
    let generate = |secret: &str, key: &str, format: &str| {
        let output = Command::new(&deployed.cli)
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
            deployed.namespace.clone(),
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
        ok(&deployed.helm_home, "kubectl", &args);
    }

    // Every example on its own host and path behind the ingress, with the
    // chart's issuer and trusted proxy (what the docs tell a user to set).
    let manifests = deployed.work.join("manifests");
    std::fs::create_dir_all(&manifests).expect("mkdir");
    let mut examples = Vec::new();
    let mut subscription_files = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("examples")).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let mut manifest: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&path).expect("read")).expect("YAML");
        // A subscription has no ingress: applied as it is, after the
        // endpoints (its source).
        if manifest["kind"] == "WebhookSubscription" {
            manifest["metadata"]["namespace"] = deployed.namespace.clone().into();
            let name = manifest["metadata"]["name"].as_str().expect("named");
            let file = manifests.join(format!("{name}.yaml"));
            std::fs::write(&file, serde_yaml_ng::to_string(&manifest).expect("YAML"))
                .expect("write");
            subscription_files.push((name.to_owned(), file));
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
        manifest["metadata"]["namespace"] = deployed.namespace.clone().into();
        let file = manifests.join(format!("{name}.yaml"));
        std::fs::write(&file, serde_yaml_ng::to_string(&manifest).expect("YAML")).expect("write");
        ok(
            &deployed.helm_home,
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
    assert_eq!(subscription_files.len(), 1, "every subscription example");
    for (_, file) in &subscription_files {
        ok(
            &deployed.helm_home,
            "kubectl",
            &["apply", "-f", file.to_str().expect("UTF-8")],
        );
    }

    step("3. Ready with certificates, routed by Traefik");
    let endpoints = deployed.ns.api::<WebhookEndpoint>();
    let pods = deployed.ns.api::<Pod>();
    for example in &examples {
        let name = &example.name;
        ready_with_certificate(&endpoints, name).await;
        deployed
            .ns
            .api::<Secret>()
            .get(&format!("{name}-tls"))
            .await
            .unwrap_or_else(|e| panic!("{name}-tls issued: {e}"));
        // Traefik routes the host to the endpoint's Service (its ClusterIP,
        // which the pod runner serves from the ready pods, as kube-proxy
        // would: EndpointSlices cannot list loopback pod IPs), and there are
        // ready pods behind it.
        let service = deployed
            .ns
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
                let servers = traefik_servers(deployed.admin, &example.host)?;
                (!ips.is_empty()
                    && ips.iter().all(|ip| is_pod_ip(ip))
                    && servers == [format!("http://{cluster_ip}:80")])
                .then_some(())
            },
        )
        .await;
    }
    // The generated secret, for sending to github-generated.
    let generated = deployed
        .ns
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

    // Each subscription example: its forwarder pod runs from its
    // Deployment (Ready: its /readyz at the pod IP says the consumer is
    // bound) and the subscription is Ready with nothing pending (its source,
    // github, stores nothing from this sender: out of its allowlist).
    let subscriptions = deployed.ns.api::<hookwarden_crds::WebhookSubscription>();
    for (name, _) in &subscription_files {
        eventually(&format!("{name}'s forwarder pod Ready"), WAIT, || async {
            (!ready_forwarder_pods(&pods, name).await.is_empty()).then_some(())
        })
        .await;
        eventually(&format!("{name} Ready, nothing pending"), WAIT, || async {
            let subscription = subscriptions.get(name).await.ok()?;
            (condition_is_true(&subscription, "Ready")
                && subscription.status.as_ref()?.pending == Some(0))
            .then_some(())
        })
        .await;
    }

    step("4. deliveries through Traefik");
    let client = deployed.nats.connect().await.expect("NATS");
    let jetstream = async_nats::jetstream::new(client);
    let mut consumers: BTreeMap<String, (ManagedProcess, PathBuf, String)> = BTreeMap::new();
    // Out of their allowlists: GitHub's ranges, acme's documentation range.
    let refused_by_allowlist = ["github", "acme"];
    for example in &examples {
        let name = &example.name;
        let mut endpoint = example.endpoint.clone();
        endpoint.metadata.namespace = Some(deployed.namespace.clone());
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
            let (code, out) = send(
                &deployed.cli,
                example,
                &secrets,
                deployed.traefik,
                &deployed.ca,
                &extra,
            )
            .await;
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
        let log = deployed.work.join(format!("{name}-consumer.log"));
        let process = ManagedProcess::spawn(
            &format!("consumer {name}"),
            &consumer_bin,
            &[
                "--nats-url".to_owned(),
                deployed.nats.url().to_owned(),
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
    let forged_secrets = deployed.work.join("forged");
    std::fs::create_dir_all(forged_secrets.join("stripe-webhook")).expect("mkdir");
    std::fs::write(
        forged_secrets.join("stripe-webhook/secret"),
        "0123456789abcdef0123456789abcdef",
    )
    .expect("write");
    let (code, out) = send(
        &deployed.cli,
        stripe,
        &forged_secrets,
        deployed.traefik,
        &deployed.ca,
        &["--event", "charge.refunded", "--delivery-id", "evt_forged"],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("401") && out.contains("signature_mismatch"),
        "{out}"
    );
    let (code, out) = send(
        &deployed.cli,
        stripe,
        &secrets,
        deployed.traefik,
        &deployed.ca,
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
        &deployed.cli,
        stripe,
        &secrets,
        deployed.traefik,
        &deployed.ca,
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
            format!("{namespace}/{name}", namespace = deployed.namespace),
            "{event}"
        );
        assert_eq!(
            headers["Hookwarden-Source-Ip"], SENDER,
            "{name}: the sender as Traefik saw it: {event}"
        );
        let subject = event["subject"].as_str().expect("subject");
        let example = examples.iter().find(|e| &e.name == name).expect("example");
        let mut endpoint = example.endpoint.clone();
        endpoint.metadata.namespace = Some(deployed.namespace.clone());
        let target = hookwarden_receiver::publish::Target::for_endpoint(&endpoint).expect("target");
        assert!(
            hookwarden_receiver::publish::subject_covers(&target.subjects(), subject),
            "{name}: {subject}"
        );
    }

    step("5. the operator pod's own /metrics has what the chart's alerts and dashboard read");
    operator_exports_what_the_chart_reads(&deployed.ns).await;
    step("done");
}

/// Every operator metric the chart's alerts and dashboard read
/// (`hookwarden_operator_*`) is on the `/metrics` of the operator as the
/// chart runs it (its pod, run by the pod runner from the chart's
/// Deployment, on its operations port 8080), with the labels they use:
/// once it has reconciled endpoints and a subscription and checked their
/// streams (the chart is installed with a 10 s stream check interval for
/// that; waited for, boundedly). The in-process test
/// (`operator/tests/it/dashboards.rs`) drives every series on purpose;
/// this one reads what a running operator really exports.
async fn operator_exports_what_the_chart_reads(ns: &TestNamespace) {
    use hookwarden_tests::promql::{self, Exporter};
    let expressions = promql::chart_expressions().unwrap_or_else(|e| panic!("{e}"));
    let pods = ns.api::<Pod>();
    let selector = "app.kubernetes.io/name=hookwarden-operator";
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ip = pods
            .list(&ListParams::default().labels(selector))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .find_map(|p| p.status.and_then(|s| s.pod_ip).filter(|ip| is_pod_ip(ip)));
        let text = ip
            .and_then(|ip| {
                Command::new("curl")
                    .args(["-fsS", "--max-time", "5"])
                    .arg(format!("http://{ip}:8080/metrics"))
                    .output()
                    .ok()
            })
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default();
        let exported = promql::exposition(&text);
        let problems = promql::missing(&expressions, &[Exporter::Operator], &exported);
        if problems.is_empty() && !text.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the chart reads what the running operator does not export:\n{}\n\n{text}",
            problems.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
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
    workload_rolled_out(ns, "receiver", endpoint, replicas).await;
}

/// The Deployment `<owner>-<component>` rolled out with `replicas` ready
/// pods and no others left (`component`: `receiver`, `pool`).
async fn workload_rolled_out(ns: &TestNamespace, component: &str, owner: &str, replicas: i32) {
    let deployments = ns.api::<k8s_openapi::api::apps::v1::Deployment>();
    let pods = ns.api::<Pod>();
    let child = format!("{owner}-{component}");
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
                "app.kubernetes.io/name=hookwarden-{component},app.kubernetes.io/instance={owner}"
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
    let deployed = Deployed::start("day2").await;
    deployed.helm_install().await;
    // Stripe, on its own host and path, with the old and the next secret.
    let secrets = deployed.work.join("secrets");
    let secret_of = |name: &str| {
        let output = Command::new(&deployed.cli)
            .args(["secret", "generate", "--format", "hex"])
            .output()
            .expect("secret generate");
        let value = String::from_utf8(output.stdout)
            .expect("UTF-8")
            .trim()
            .to_owned();
        let file = deployed.work.join(name);
        std::fs::write(&file, &value).expect("write");
        (value, file)
    };
    let (old_value, old_file) = secret_of("old");
    let (new_value, new_file) = secret_of("new");
    std::fs::create_dir_all(secrets.join("stripe-webhook")).expect("mkdir");
    std::fs::write(secrets.join("stripe-webhook/secret"), &old_value).expect("write");
    for (name, file) in [("stripe-webhook", &old_file), ("stripe-next", &new_file)] {
        ok(
            &deployed.helm_home,
            "kubectl",
            &[
                "create",
                "secret",
                "generic",
                name,
                "--namespace",
                &deployed.namespace,
                &format!("--from-file=secret={}", file.display()),
            ],
        );
    }
    let example = apply_endpoint_on_host(
        &deployed.helm_home,
        &deployed.namespace,
        &deployed.work,
        "stripe",
        "stripe.day2.hookwarden.test",
        "/in/stripe",
    );
    let host = example.host.clone();
    let endpoint = example.endpoint.clone();
    rolled_out(&deployed.ns, "stripe", 2).await;
    let endpoints = deployed.ns.api::<WebhookEndpoint>();
    ready_and_routed(&endpoints, deployed.admin, "stripe", &host).await;

    // The continuous sender: one delivery at a time, each with a new id,
    // until told to stop (bounded by a count, too).
    let answers = std::sync::Arc::new(std::sync::Mutex::new(Answers::default()));
    let phase = std::sync::Arc::new(std::sync::Mutex::new("steady".to_owned()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (answers, phase, stop) = (answers.clone(), phase.clone(), stop.clone());
        let (cli, secrets, ca) = (deployed.cli.clone(), secrets.clone(), deployed.ca.clone());
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
                    deployed.traefik,
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
            &deployed.helm_home,
            "kubectl",
            &[
                "patch",
                "whe",
                "stripe",
                "--namespace",
                &deployed.namespace,
                "--type=merge",
                "-p",
                &body,
            ],
        );
    };
    set_phase("scale 2->4");
    patch(r#"{"spec": {"replicas": 4}}"#.to_owned());
    rolled_out(&deployed.ns, "stripe", 4).await;
    settle(sent_count()).await;
    set_phase("scale 4->2");
    patch(r#"{"spec": {"replicas": 2}}"#.to_owned());
    rolled_out(&deployed.ns, "stripe", 2).await;
    settle(sent_count()).await;

    set_phase("delete a pod");
    let pods = deployed.ns.api::<Pod>();
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
    rolled_out(&deployed.ns, "stripe", 2).await;
    settle(sent_count()).await;

    set_phase("rotate: both listed");
    let deployments = deployed.ns.api::<k8s_openapi::api::apps::v1::Deployment>();
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
    // Read before the patch: the operator may roll the new hash out before
    // a read after it, and a wait for a change from the new hash never ends
    // (a CI run on 2026-12-07 timed out so: the new pods had started).
    let first_hash = hash().await;
    patch(
        r#"{"spec": {"secretRefs": [{"name": "stripe-webhook", "key": "secret"}, {"name": "stripe-next", "key": "secret"}]}}"#
            .to_owned(),
    );
    eventually("the rotation rolled out", WAIT, || async {
        (hash().await != first_hash).then_some(())
    })
    .await;
    rolled_out(&deployed.ns, "stripe", 2).await;
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
    rolled_out(&deployed.ns, "stripe", 2).await;
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
    let client = deployed.nats.connect().await.expect("NATS");
    let jetstream = async_nats::jetstream::new(client);
    let mut endpoint = endpoint;
    endpoint.metadata.namespace = Some(deployed.namespace.clone());
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

// ------------------------------------------------------------- forwarding

/// A request the destination received.
#[derive(Debug, Clone)]
struct Arrived {
    path: String,
    /// Names lower-cased; the first value of each.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A destination of the forwarding test: a server on 127.0.0.1 (port 0),
/// HTTPS with a certificate cert-manager issued for `127.0.0.1` from the
/// test CA, or plain HTTP. `/billing` and `/ledger` answer 204, every other
/// path 404. Stopped on drop.
///
/// Why 127.0.0.1: a pod's `127.0.0.1` is the host's in the process node's
/// network (`tests/tools/cluster/podnet.sh`), the way pods reach NATS and the
/// API server here. HTTPS with the subscription's `caSecretRef` is the
/// destination kind a user points at something that is not a Service; plain
/// HTTP is reached as `http://<service>.<namespace>.svc.cluster.local`
/// through a Service (the pod runner's cluster DNS and service proxy).
struct Destination {
    port: u16,
    arrived: std::sync::Arc<std::sync::Mutex<Vec<Arrived>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Destination {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Destination {
    /// HTTPS with this certificate chain and key.
    async fn start(certificate_pem: &[u8], key_pem: &[u8]) -> Self {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(certificate_pem)
            .collect::<Result<_, _>>()
            .expect("tls.crt is PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem).expect("tls.key is PEM");
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate and key");
        Self::serve(Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(
            config,
        ))))
        .await
    }

    /// Plain HTTP, as a Service inside the cluster is mostly reached.
    async fn start_plain() -> Self {
        Self::serve(None).await
    }

    async fn serve(acceptor: Option<tokio_rustls::TlsAcceptor>) -> Self {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let arrived = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = arrived.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, log) = (acceptor.clone(), log.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let log = log.clone();
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes().to_vec())
                                    .unwrap_or_default();
                                let mut headers = BTreeMap::new();
                                for (name, value) in &parts.headers {
                                    headers.entry(name.as_str().to_owned()).or_insert_with(|| {
                                        String::from_utf8_lossy(value.as_bytes()).into_owned()
                                    });
                                }
                                let path = parts.uri.path().to_owned();
                                let status = if path == "/billing" || path == "/ledger" {
                                    204
                                } else {
                                    404
                                };
                                if let Ok(mut log) = log.lock() {
                                    log.push(Arrived {
                                        path,
                                        headers,
                                        body,
                                    });
                                }
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                                        .expect("response"),
                                )
                            }
                        },
                    );
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match acceptor {
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            http.serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                                .await
                        }
                        None => {
                            http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                                .await
                        }
                    };
                });
            }
        });
        Self {
            port,
            arrived,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Where a Service's backend annotation points.
    fn backend(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn arrived(&self, path: &str) -> Vec<Arrived> {
        self.arrived
            .lock()
            .map(|a| a.iter().filter(|r| r.path == path).cloned().collect())
            .unwrap_or_default()
    }
}

/// The Standard Webhooks check, written out from the specification (not the
/// receiver's verifier, so that the forwarder's signer is checked by a
/// second implementation): `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`
/// keyed with the base64 after `whsec_`, the timestamp within five minutes.
fn standard_webhooks_valid(secret: &str, arrived: &Arrived) -> bool {
    use base64::Engine as _;
    use hmac::Mac as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let Some(key) = secret
        .trim()
        .strip_prefix("whsec_")
        .and_then(|k| engine.decode(k).ok())
    else {
        return false;
    };
    let (Some(id), Some(timestamp), Some(signatures)) = (
        arrived.headers.get("webhook-id"),
        arrived.headers.get("webhook-timestamp"),
        arrived.headers.get("webhook-signature"),
    ) else {
        return false;
    };
    let Ok(seconds) = timestamp.parse::<i64>() else {
        return false;
    };
    if (jiff::Timestamp::now().as_second() - seconds).abs() > 300 {
        return false;
    }
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key) else {
        return false;
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&arrived.body);
    let expected = engine.encode(mac.finalize().into_bytes());
    signatures
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

/// The pods of the forwarder of `subscription` that run (as processes of
/// the pod runner, with a pod IP of the process node) and are Ready.
async fn ready_forwarder_pods(pods: &Api<Pod>, subscription: &str) -> Vec<Pod> {
    let selector = format!(
        "app.kubernetes.io/name=hookwarden-forwarder,app.kubernetes.io/instance={subscription}"
    );
    pods.list(&ListParams::default().labels(&selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().is_some_and(|s| {
                    s.pod_ip.as_deref().is_some_and(is_pod_ip)
                        && s.conditions.as_ref().is_some_and(|c| {
                            c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                })
        })
        .collect()
}

/// Issue #14 as a user runs it: an endpoint and two `WebhookSubscription`s
/// applied to the control plane; the operator creates each forwarder's
/// Deployment, configuration and signing Secrets, durable consumer and
/// dead-letter stream; the pod runner runs the forwarder pods from their
/// Deployment spec (arguments, environment, the Secret volume as rendered);
/// a signed provider delivery through Traefik and the receiver pods arrives
/// at a real HTTPS destination signed with Standard Webhooks (checked with
/// the generated `<name>-signing` Secret read back through the API) and the
/// subscription is Ready with nothing pending; the subscription whose
/// destination answers 404 dead-letters it and its status says so.
#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_deliver_through_their_deployed_forwarders() {
    let started = std::time::Instant::now();
    let step = |what: &str| eprintln!("forwarding: {what} at {:.1?}", started.elapsed());
    let deployed = Deployed::start("forward").await;

    step("1. helm install, the endpoint");
    deployed.helm_install().await;
    let secrets = deployed.work.join("secrets");
    let output = Command::new(&deployed.cli)
        .args(["secret", "generate", "--format", "hex"])
        .output()
        .expect("secret generate");
    assert!(output.status.success(), "{}", text(&output));
    std::fs::create_dir_all(secrets.join("stripe-webhook")).expect("mkdir");
    let secret_file = secrets.join("stripe-webhook/secret");
    std::fs::write(
        &secret_file,
        String::from_utf8(output.stdout).expect("UTF-8").trim(),
    )
    .expect("write");
    ok(
        &deployed.helm_home,
        "kubectl",
        &[
            "create",
            "secret",
            "generic",
            "stripe-webhook",
            "--namespace",
            &deployed.namespace,
            &format!("--from-file=secret={}", secret_file.display()),
        ],
    );
    let example = apply_endpoint_on_host(
        &deployed.helm_home,
        &deployed.namespace,
        &deployed.work,
        "stripe",
        "stripe.forward.hookwarden.test",
        "/in/stripe",
    );
    rolled_out(&deployed.ns, "stripe", 2).await;
    let endpoints = deployed.ns.api::<WebhookEndpoint>();
    ready_and_routed(&endpoints, deployed.admin, "stripe", &example.host).await;

    step("2. the destination and its certificate");
    // cert-manager issues the destination's certificate from the test CA;
    // the subscription trusts that CA only (`caSecretRef`).
    let certificate = format!(
        r#"apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {{name: billing-tls, namespace: {namespace}}}
spec:
  secretName: billing-tls
  ipAddresses: ["127.0.0.1"]
  privateKey: {{algorithm: ECDSA, size: 256, encoding: PKCS8}}
  issuerRef: {{name: {issuer}, kind: Issuer, group: cert-manager.io}}
"#,
        issuer = CertManager::ISSUER,
        namespace = deployed.namespace
    );
    hookwarden_tests::deployed::kubectl_stdin(&["apply", "-f", "-"], &certificate)
        .unwrap_or_else(|e| panic!("{e}"));
    let tls = eventually("billing-tls issued", WAIT, || async {
        let secret = deployed
            .ns
            .api::<Secret>()
            .get_opt("billing-tls")
            .await
            .ok()??;
        let data = secret.data?;
        let get = |key: &str| data.get(key).map(|v| v.0.clone()).filter(|v| !v.is_empty());
        Some((get("tls.crt")?, get("tls.key")?, get("ca.crt")?))
    })
    .await;
    let destination = Destination::start(&tls.0, &tls.1).await;
    // And a Service in the cluster, `ledger`, reached by its DNS name over
    // plain HTTP: its backend is a server of this test (the annotation
    // stands in for the EndpointSlice; see the pod runner's service proxy).
    let ledger = Destination::start_plain().await;
    let service = format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: ledger
  namespace: {namespace}
  annotations: {{hookwarden.dev/pod-runner-backends: "{backend}"}}
spec:
  ports: [{{name: http, port: 80, protocol: TCP}}]
"#,
        backend = ledger.backend(),
        namespace = deployed.namespace
    );
    hookwarden_tests::deployed::kubectl_stdin(&["apply", "-f", "-"], &service)
        .unwrap_or_else(|e| panic!("{e}"));

    step("3. the subscriptions");
    // `stripe-to-billing` reaches a destination that takes everything;
    // `stripe-to-gone` one that answers 404 (not retried: dead-lettered);
    // `stripe-to-ledger` the Service by name, as most users will.
    let ledger_url = format!(
        "http://ledger.{namespace}.svc/ledger",
        namespace = deployed.namespace
    );
    let billing_url = destination.url("/billing");
    let gone_url = destination.url("/gone");
    for (name, url, trusted_ca) in [
        ("stripe-to-billing", billing_url.as_str(), true),
        ("stripe-to-gone", gone_url.as_str(), true),
        ("stripe-to-ledger", ledger_url.as_str(), false),
    ] {
        let ca = if trusted_ca {
            "\n    caSecretRef: {name: billing-tls, key: ca.crt}"
        } else {
            ""
        };
        let manifest = format!(
            r#"apiVersion: hookwarden.dev/v1alpha1
kind: WebhookSubscription
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  source: {{endpoint: stripe}}
  destination:
    url: "{url}"{ca}
    timeoutSeconds: 5
  passHeaders: [Hookwarden-Delivery-Id, Hookwarden-Provider]
"#,
            namespace = deployed.namespace
        );
        let file = deployed.work.join(format!("{name}.yaml"));
        std::fs::write(&file, manifest).expect("write");
        ok(
            &deployed.helm_home,
            "kubectl",
            &["apply", "-f", file.to_str().expect("UTF-8")],
        );
    }
    let subscriptions = deployed.ns.api::<hookwarden_crds::WebhookSubscription>();
    let pods = deployed.ns.api::<Pod>();
    let deployments = deployed.ns.api::<k8s_openapi::api::apps::v1::Deployment>();
    for name in ["stripe-to-billing", "stripe-to-gone", "stripe-to-ledger"] {
        // The children the operator creates, and a forwarder pod the pod
        // runner runs from the Deployment's spec: Ready means its own
        // /readyz answered at the pod IP (manifest loaded, NATS connected,
        // consumer bound).
        let deployment = eventually(&format!("{name}'s forwarder Deployment"), WAIT, || async {
            deployments
                .get_opt(&format!("{name}-forwarder"))
                .await
                .ok()?
        })
        .await;
        let container = &deployment
            .spec
            .template
            .spec
            .as_ref()
            .expect("pod spec")
            .containers[0];
        let args = container.args.clone().unwrap_or_default();
        assert_eq!(
            args.first().map(String::as_str),
            Some("forward"),
            "{args:?}"
        );
        assert!(
            container
                .image
                .as_deref()
                .is_some_and(|i| i.starts_with("ghcr.io/hookwarden/receiver")),
            "{:?}",
            container.image
        );
        for secret in [format!("{name}-forwarder"), format!("{name}-signing")] {
            eventually(&format!("Secret {secret}"), WAIT, || async {
                deployed.ns.api::<Secret>().get_opt(&secret).await.ok()?
            })
            .await;
        }
        let forwarders = eventually(&format!("{name}'s forwarder pod Ready"), WAIT, || async {
            let ready = ready_forwarder_pods(&pods, name).await;
            (!ready.is_empty()).then_some(ready)
        })
        .await;
        assert_eq!(forwarders.len(), 1, "{name}: one replica");
        eventually(&format!("{name} Ready"), WAIT, || async {
            let subscription = subscriptions.get(name).await.ok()?;
            (condition_is_true(&subscription, "Ready")).then_some(())
        })
        .await;
    }

    step("4. a delivery through Traefik and the receivers");
    let id = "evt_forward_1";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (code, out) = loop {
        let (code, out) = send(
            &deployed.cli,
            &example,
            &secrets,
            deployed.traefik,
            &deployed.ca,
            &["--event", "charge.succeeded", "--delivery-id", id],
        )
        .await;
        if !out.contains("invalid peer certificate") || tokio::time::Instant::now() >= deadline {
            break (code, out);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("200"), "{out}");
    let client = deployed.nats.connect().await.expect("NATS");
    let jetstream = async_nats::jetstream::new(client);
    let mut endpoint = example.endpoint.clone();
    endpoint.metadata.namespace = Some(deployed.namespace.clone());
    let target = hookwarden_receiver::publish::Target::for_endpoint(&endpoint).expect("target");
    let stream = jetstream.get_stream(&target.stream).await.expect("stream");
    let stored = stream.get_raw_message(1).await.expect("the stored event");

    step("5. at the destination, signed");
    let arrived = eventually("the event at /billing", WAIT, || async {
        destination.arrived("/billing").into_iter().next()
    })
    .await;
    let signing_secret = |subscription: &str| {
        let secrets = deployed.ns.api::<Secret>();
        let name = format!("{subscription}-signing");
        async move {
            let signing = secrets
                .get(&name)
                .await
                .expect("the generated signing Secret");
            let signing = signing
                .data
                .as_ref()
                .and_then(|d| d.get("secret"))
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                .expect("key secret");
            signing.lines().next().expect("a whsec_ line").to_owned()
        }
    };
    let signing = signing_secret("stripe-to-billing").await;
    assert!(
        standard_webhooks_valid(&signing, &arrived),
        "Standard Webhooks signature with the generated secret: {:?}",
        arrived.headers
    );
    let mut tampered = arrived.clone();
    tampered.body.push(b' ');
    assert!(
        !standard_webhooks_valid(&signing, &tampered),
        "the check can fail"
    );
    assert_eq!(
        arrived.body,
        stored.payload.to_vec(),
        "the provider's body as stored"
    );
    assert_eq!(
        arrived.headers.get("webhook-id").map(String::as_str),
        Some(id)
    );
    assert_eq!(
        arrived.headers.get("idempotency-key").map(String::as_str),
        Some(id)
    );
    assert_eq!(
        arrived
            .headers
            .get("hookwarden-event-type")
            .map(String::as_str),
        Some("charge.succeeded")
    );
    assert_eq!(
        arrived
            .headers
            .get("hookwarden-delivery-id")
            .map(String::as_str),
        Some(id),
        "passHeaders"
    );
    assert_eq!(
        arrived
            .headers
            .get("hookwarden-provider")
            .map(String::as_str),
        Some("stripe"),
        "passHeaders"
    );

    step("5b. at the Service, by its name");
    let at_ledger = eventually("the event at the ledger Service", WAIT, || async {
        ledger.arrived("/ledger").into_iter().next()
    })
    .await;
    let ledger_signing = signing_secret("stripe-to-ledger").await;
    assert_ne!(ledger_signing, signing, "a secret per subscription");
    assert!(
        standard_webhooks_valid(&ledger_signing, &at_ledger),
        "signed with stripe-to-ledger's secret: {:?}",
        at_ledger.headers
    );
    assert_eq!(at_ledger.body, stored.payload.to_vec());
    assert_eq!(
        at_ledger.headers.get("webhook-id").map(String::as_str),
        Some(id)
    );
    assert_eq!(
        at_ledger.headers.get("host").map(String::as_str),
        Some(format!("ledger.{namespace}.svc", namespace = deployed.namespace).as_str()),
        "the Service's name, not an address, was asked for"
    );

    step("6. status: delivered, and dead-lettered");
    for name in ["stripe-to-billing", "stripe-to-ledger"] {
        eventually(
            &format!("{name} Ready with nothing pending"),
            WAIT,
            || async {
                let subscription = subscriptions.get(name).await.ok()?;
                let status = subscription.status.as_ref()?;
                (condition_is_true(&subscription, "Ready")
                    && status.pending == Some(0)
                    && status.dead_letters.unwrap_or(0) == 0)
                    .then_some(())
            },
        )
        .await;
    }
    let gone = eventually(
        "stripe-to-gone's dead letter in its status",
        WAIT,
        || async {
            let subscription = subscriptions.get("stripe-to-gone").await.ok()?;
            let status = subscription.status.clone()?;
            (status.dead_letters == Some(1) && status.pending == Some(0)).then_some(status)
        },
    )
    .await;
    let last_error = gone.last_error.clone().unwrap_or_default();
    assert!(last_error.contains("404"), "lastError: {last_error:?}");
    assert_eq!(
        destination.arrived("/gone").len(),
        1,
        "a 404 is not tried again"
    );
    let dead_letters = jetstream
        .get_stream(
            hookwarden_receiver::forward::plan::default_dead_letter_stream(
                &deployed.namespace,
                "stripe-to-gone",
            ),
        )
        .await
        .expect("the dead-letter stream");
    let letter = dead_letters
        .get_raw_message(1)
        .await
        .expect("the dead letter");
    assert_eq!(letter.payload, stored.payload, "the event itself");
    use hookwarden_receiver::forward::stored::dead_letter_headers as dead;
    let header = |name: &str| {
        letter
            .headers
            .get(name)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        header(dead::STATUS),
        "404",
        "the last status travels with it"
    );
    assert_eq!(header(dead::REASON), "refused");
    assert_eq!(header(dead::ATTEMPTS), "1");
    step("done");
}

/// `kubectl apply` of a GitHub endpoint `name` served by pool `pool`, on
/// `host` and `path` behind Traefik, verified with the Secret
/// `<name>-webhook` (created here from a fresh secret, also written where
/// `hookwarden send --secrets-dir` finds it).
fn apply_pool_member(
    helm_home: &Path,
    cli: &Path,
    namespace: &str,
    work: &Path,
    pool: &str,
    (name, host, path): (&str, &str, &str),
) -> Example {
    let secret = work.join(format!("{name}-secret"));
    let output = Command::new(cli)
        .args(["secret", "generate", "--format", "hex"])
        .output()
        .expect("secret generate");
    std::fs::write(&secret, String::from_utf8_lossy(&output.stdout).trim()).expect("write");
    let secrets = work.join("secrets").join(format!("{name}-webhook"));
    std::fs::create_dir_all(&secrets).expect("mkdir");
    std::fs::copy(&secret, secrets.join("secret")).expect("copy");
    ok(
        helm_home,
        "kubectl",
        &[
            "create",
            "secret",
            "generic",
            &format!("{name}-webhook"),
            "--namespace",
            namespace,
            &format!("--from-file=secret={}", secret.display()),
        ],
    );
    let manifest = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1",
        "kind": "WebhookEndpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "provider": "github",
            "pool": pool,
            "secretRefs": [{"name": format!("{name}-webhook"), "key": "secret"}],
            "ingress": {"host": host, "path": path},
        },
    });
    let manifest_file = work.join(format!("{name}.yaml"));
    std::fs::write(
        &manifest_file,
        serde_yaml_ng::to_string(&manifest).expect("YAML"),
    )
    .expect("write");
    ok(
        helm_home,
        "kubectl",
        &["apply", "-f", manifest_file.to_str().expect("UTF-8")],
    );
    Example {
        name: name.to_owned(),
        endpoint: hookwarden_crds::from_yaml(
            &std::fs::read_to_string(&manifest_file).expect("read"),
        )
        .expect("endpoint"),
        manifest: manifest_file,
        host: host.to_owned(),
        path: path.to_owned(),
    }
}

/// The UIDs of the live pods of pool `pool`.
async fn pool_pod_uids(pods: &Api<Pod>, pool: &str) -> Vec<String> {
    let selector =
        format!("app.kubernetes.io/name=hookwarden-pool,app.kubernetes.io/instance={pool}");
    let mut uids: Vec<String> = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.uid)
        .collect();
    uids.sort();
    uids
}

/// Issue #15 as deployed: a `WebhookReceiverPool` of two pods (from their
/// own Deployment spec, on the process node) serves three endpoints,
/// routed by host and path through Traefik; each delivery is stored in
/// its endpoint's own stream. A fourth endpoint joins while the pool's pods
/// stay the same (its configuration reaches them through the mounted
/// Secrets, two config shards in one projected volume, refreshed in place)
/// and is delivered to as well. Then [`MANY_MEMBERS`] more in one `kubectl
/// apply`: each Ready, each delivered to through Traefik and stored once in
/// its own stream, on the same two pods (issue #15: hundreds of endpoints
/// on two pool pods).
#[tokio::test(flavor = "multi_thread")]
async fn a_pool_serves_many_endpoints_and_takes_a_new_one_without_a_restart() {
    let deployed = Deployed::start("pool").await;
    deployed.helm_install().await;
    let pool = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1",
        "kind": "WebhookReceiverPool",
        "metadata": {"name": "shared", "namespace": deployed.namespace},
        // Two config Secrets in one projected volume: alpha and gamma
        // hash to the first, beta and delta to the second.
        "spec": {"replicas": 2, "configShards": 2},
    });
    let pool_file = deployed.work.join("pool.yaml");
    std::fs::write(&pool_file, serde_yaml_ng::to_string(&pool).expect("YAML")).expect("write");
    ok(
        &deployed.helm_home,
        "kubectl",
        &["apply", "-f", pool_file.to_str().expect("UTF-8")],
    );
    // Two endpoints on one host, told apart by path; one on a host of its own.
    let mut members: Vec<Example> = [
        ("alpha", "hooks.pool.hookwarden.test", "/in/alpha"),
        ("beta", "hooks.pool.hookwarden.test", "/in/beta"),
        ("gamma", "gamma.pool.hookwarden.test", "/in/gamma"),
    ]
    .into_iter()
    .map(|member| {
        apply_pool_member(
            &deployed.helm_home,
            &deployed.cli,
            &deployed.namespace,
            &deployed.work,
            "shared",
            member,
        )
    })
    .collect();
    workload_rolled_out(&deployed.ns, "pool", "shared", 2).await;
    let pods = deployed.ns.api::<Pod>();
    let uids = pool_pod_uids(&pods, "shared").await;
    assert_eq!(uids.len(), 2, "{uids:?}");

    let client = deployed.nats.connect().await.expect("NATS");
    let jetstream = async_nats::jetstream::new(client);
    let endpoints = deployed.ns.api::<WebhookEndpoint>();
    let secrets = deployed.work.join("secrets");
    let deliver = |example: Example| {
        let (endpoints, jetstream, cli, secrets, ca, namespace) = (
            endpoints.clone(),
            jetstream.clone(),
            deployed.cli.clone(),
            secrets.clone(),
            deployed.ca.clone(),
            deployed.namespace.clone(),
        );
        async move {
            let name = example.name.clone();
            ready_and_routed(&endpoints, deployed.admin, &name, &example.host).await;
            let id = format!("pool-{name}-1");
            let extra = ["--event", "push", "--delivery-id", id.as_str()];
            let (code, out) =
                send_once_routed(&cli, &example, &secrets, deployed.traefik, &ca, &extra).await;
            assert_eq!(code, 0, "{name}: {out}");
            assert!(out.starts_with("200"), "{name}: {out}");
            let mut endpoint = example.endpoint.clone();
            endpoint.metadata.namespace = Some(namespace.clone());
            let target =
                hookwarden_receiver::publish::Target::for_endpoint(&endpoint).expect("target");
            let message = the_one_stored(&jetstream, &target.stream, &id).await;
            assert!(
                message
                    .subject
                    .to_string()
                    .starts_with(&target.subject_prefix),
                "{name}: {}",
                message.subject
            );
        }
    };
    for example in members.drain(..) {
        deliver(example).await;
    }
    let pools = deployed.ns.api::<hookwarden_crds::WebhookReceiverPool>();
    eventually("the pool to report three endpoints", WAIT, || async {
        let status = pools.get("shared").await.ok()?.status?;
        (status.endpoints == Some(3) && status.ready_replicas == Some(2)).then_some(())
    })
    .await;

    // A fourth endpoint: the pool's pods stay, their files change.
    let deployments = deployed.ns.api::<k8s_openapi::api::apps::v1::Deployment>();
    let deployment = deployments
        .get("shared-pool")
        .await
        .expect("pool Deployment");
    let generation = deployment.metadata.generation;
    let template = serde_json::to_value(&deployment.spec.template).expect("serializes");
    assert_eq!(
        template["spec"]["volumes"][0]["projected"]["sources"],
        serde_json::json!([
            {"secret": {"name": "shared-pool"}},
            {"secret": {"name": "shared-pool-1"}},
        ]),
        "the pods mount both config Secrets as one directory"
    );
    let secrets = deployed.ns.api::<k8s_openapi::api::core::v1::Secret>();
    for (shard, member) in [("shared-pool", "alpha"), ("shared-pool-1", "beta")] {
        let data = secrets
            .get(shard)
            .await
            .expect("shard")
            .data
            .unwrap_or_default();
        assert!(
            data.contains_key(&format!("endpoint.{member}.yaml")),
            "{member} in {shard}"
        );
    }
    let delta = apply_pool_member(
        &deployed.helm_home,
        &deployed.cli,
        &deployed.namespace,
        &deployed.work,
        "shared",
        ("delta", "hooks.pool.hookwarden.test", "/in/delta"),
    );
    deliver(delta).await;
    assert_eq!(
        pool_pod_uids(&pods, "shared").await,
        uids,
        "the same pool pods"
    );
    assert_eq!(
        deployments
            .get("shared-pool")
            .await
            .expect("pool Deployment")
            .metadata
            .generation,
        generation,
        "the pool's Deployment did not change"
    );
    for name in ["alpha", "beta", "gamma", "delta"] {
        assert!(
            deployments
                .get_opt(&format!("{name}-receiver"))
                .await
                .expect("get")
                .is_none(),
            "{name} has no receivers of its own"
        );
    }

    // Hundreds more on the same two pods: one `kubectl apply`, each
    // endpoint Ready, reached through Traefik and stored in its own stream.
    let started = std::time::Instant::now();
    let many = apply_many_pool_members(&deployed, "shared", MANY_MEMBERS);
    let ready = eventually(
        &format!("{MANY_MEMBERS} more pool members Ready"),
        WAIT,
        || async {
            let listed = endpoints.list(&ListParams::default()).await.ok()?;
            let ready = listed
                .items
                .iter()
                .filter(|e| {
                    e.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with("many-"))
                })
                .filter(|e| condition_is_true(*e, "Ready"))
                .count();
            (ready == MANY_MEMBERS).then_some(ready)
        },
    )
    .await;
    assert_eq!(ready, MANY_MEMBERS);
    eprintln!(
        "deployed pool: {MANY_MEMBERS} more members applied and Ready in {:.1?}",
        started.elapsed()
    );
    let stored: Vec<String> = futures::stream::iter(many)
        .map(|example| {
            let (jetstream, cli, secrets, ca, namespace) = (
                jetstream.clone(),
                deployed.cli.clone(),
                deployed.work.join("secrets"),
                deployed.ca.clone(),
                deployed.namespace.clone(),
            );
            async move {
                let name = example.name.clone();
                let id = format!("pool-{name}-1");
                let extra = ["--event", "push", "--delivery-id", id.as_str()];
                let (code, out) =
                    send_once_routed(&cli, &example, &secrets, deployed.traefik, &ca, &extra).await;
                assert_eq!(code, 0, "{name}: {out}");
                assert!(out.starts_with("200"), "{name}: {out}");
                let mut endpoint = example.endpoint.clone();
                endpoint.metadata.namespace = Some(namespace);
                let target =
                    hookwarden_receiver::publish::Target::for_endpoint(&endpoint).expect("target");
                let mut stream = jetstream.get_stream(&target.stream).await.expect("stream");
                let info = stream.info().await.expect("info").clone();
                assert_eq!(
                    info.state.messages, 1,
                    "{name}: stored once, in its own stream"
                );
                name
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(stored.len(), MANY_MEMBERS);
    eprintln!(
        "deployed pool: {MANY_MEMBERS} more members delivered to and stored after {:.1?}",
        started.elapsed()
    );
    assert_eq!(
        pool_pod_uids(&pods, "shared").await,
        uids,
        "still the same two pool pods"
    );
    eventually("the pool to report every endpoint", WAIT, || async {
        let status = pools.get("shared").await.ok()?.status?;
        (status.endpoints == Some(4 + i32::try_from(MANY_MEMBERS).ok()?)
            && status.ready_replicas == Some(2))
        .then_some(())
    })
    .await;
}

/// Issue #15 as deployed, on a NATS that requires a login: a pool whose
/// `spec.nats` names a JWT-mode nats-server of its own and a `.creds` file
/// in a Secret (the chart's operator has no login for that server). The
/// pool's pod, started by the pod runner from the operator's Deployment,
/// logs in with the file from its mounted config Secret; the operator
/// manages the member's stream with the same login, so the member turns
/// Ready; a delivery through Traefik is answered 200 and stored in the
/// member's stream on that server. Nothing of the `.creds` file appears in
/// the pool's Deployment.
#[tokio::test(flavor = "multi_thread")]
async fn a_pool_on_a_nats_requiring_a_login_stores_through_the_ingress() {
    let deployed = Deployed::start("pool-login").await;
    deployed.helm_install().await;
    let pools_nats = NatsServer::builder()
        .require_creds()
        .start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let creds = pools_nats.creds().expect("creds").to_owned();
    let creds_file = deployed.work.join("pool-user.creds");
    std::fs::write(&creds_file, &creds).expect("write");
    ok(
        &deployed.helm_home,
        "kubectl",
        &[
            "create",
            "secret",
            "generic",
            "pool-nats",
            "--namespace",
            &deployed.namespace,
            &format!("--from-file=user.creds={}", creds_file.display()),
        ],
    );
    let pool = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1",
        "kind": "WebhookReceiverPool",
        "metadata": {"name": "locked", "namespace": deployed.namespace},
        "spec": {"replicas": 1, "nats": {
            "url": pools_nats.url(),
            "credentialsSecretRef": {"name": "pool-nats", "key": "user.creds"},
        }},
    });
    let pool_file = deployed.work.join("pool.yaml");
    std::fs::write(&pool_file, serde_yaml_ng::to_string(&pool).expect("YAML")).expect("write");
    ok(
        &deployed.helm_home,
        "kubectl",
        &["apply", "-f", pool_file.to_str().expect("UTF-8")],
    );
    let member = apply_pool_member(
        &deployed.helm_home,
        &deployed.cli,
        &deployed.namespace,
        &deployed.work,
        "locked",
        ("omega", "omega.pool.hookwarden.test", "/in/omega"),
    );
    workload_rolled_out(&deployed.ns, "pool", "locked", 1).await;
    let deployment = deployed
        .ns
        .api::<k8s_openapi::api::apps::v1::Deployment>()
        .get("locked-pool")
        .await
        .expect("the pool's Deployment");
    let spec = serde_json::to_string(&deployment.spec).expect("serializes");
    let seed_line = creds
        .lines()
        .find(|line| line.starts_with("SU"))
        .expect("the user's seed");
    assert!(
        !spec.contains(seed_line) && !spec.contains("NATS USER JWT"),
        "the .creds file stays in its Secret"
    );
    assert!(spec.contains("pool-nats/user.creds"), "{spec}");

    let endpoints = deployed.ns.api::<WebhookEndpoint>();
    ready_and_routed(&endpoints, deployed.admin, "omega", &member.host).await;
    let id = "pool-login-omega-1";
    let extra = ["--event", "push", "--delivery-id", id];
    let secrets = deployed.work.join("secrets");
    let (code, out) = send_once_routed(
        &deployed.cli,
        &member,
        &secrets,
        deployed.traefik,
        &deployed.ca,
        &extra,
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("200"), "{out}");
    let mut endpoint = member.endpoint.clone();
    endpoint.metadata.namespace = Some(deployed.namespace.clone());
    let target = hookwarden_receiver::publish::Target::for_endpoint(&endpoint).expect("target");
    let jetstream = async_nats::jetstream::new(
        pools_nats
            .connect()
            .await
            .expect("log in to the pool's NATS"),
    );
    // On the pool's NATS: the member's stream is there.
    the_one_stored(&jetstream, &target.stream, id).await;
}

/// The one message of `stream` (a 2xx means stored, in the endpoint's own
/// stream), checked to be delivery `id`.
async fn the_one_stored(
    jetstream: &async_nats::jetstream::Context,
    stream: &str,
    id: &str,
) -> async_nats::jetstream::message::StreamMessage {
    let mut found = jetstream
        .get_stream(stream)
        .await
        .unwrap_or_else(|e| panic!("stream {stream}: {e}"));
    let info = found.info().await.expect("info").clone();
    assert_eq!(
        info.state.messages, 1,
        "{id}: a 2xx means stored, in {stream}"
    );
    let message = found
        .get_raw_message(info.state.last_sequence)
        .await
        .expect("message");
    assert_eq!(
        message
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned())
            .as_deref(),
        Some(id),
        "{stream}"
    );
    message
}

/// How many endpoints the deployed pool test adds at once ("hundreds of
/// endpoints on two pool pods", issue #15).
const MANY_MEMBERS: usize = 200;

/// `kubectl apply` of `count` GitHub endpoints `many-000`... in one
/// document stream, all of pool `pool` on alpha's host and certificate
/// (`alpha-tls`: no certificate each), paths `/many/<n>`, verified with one
/// Secret `many-webhook` (also where `hookwarden send --secrets-dir`
/// finds it).
fn apply_many_pool_members(deployed: &Deployed, pool: &str, count: usize) -> Vec<Example> {
    let secret = "many-pool-members-secret-0123456789abcdef";
    let secrets = deployed.work.join("secrets").join("many-webhook");
    std::fs::create_dir_all(&secrets).expect("mkdir");
    std::fs::write(secrets.join("secret"), secret).expect("write");
    ok(
        &deployed.helm_home,
        "kubectl",
        &[
            "create",
            "secret",
            "generic",
            "many-webhook",
            "--namespace",
            &deployed.namespace,
            &format!("--from-literal=secret={secret}"),
        ],
    );
    let host = "hooks.pool.hookwarden.test";
    let mut documents = Vec::new();
    let mut examples = Vec::new();
    for n in 0..count {
        let name = format!("many-{n:03}");
        let path = format!("/many/{n}");
        let manifest = serde_json::json!({
            "apiVersion": "hookwarden.dev/v1alpha1",
            "kind": "WebhookEndpoint",
            "metadata": {"name": name, "namespace": deployed.namespace},
            "spec": {
                "provider": "github",
                "pool": pool,
                "secretRefs": [{"name": "many-webhook", "key": "secret"}],
                "ingress": {"host": host, "path": path},
                "tls": {"secretName": "alpha-tls"},
            },
        });
        let yaml = serde_yaml_ng::to_string(&manifest).expect("YAML");
        let file = deployed.work.join(format!("{name}.yaml"));
        std::fs::write(&file, &yaml).expect("write");
        examples.push(Example {
            name,
            endpoint: hookwarden_crds::from_yaml(&yaml).expect("endpoint"),
            manifest: file,
            host: host.to_owned(),
            path,
        });
        documents.push(yaml);
    }
    let all = deployed.work.join("many.yaml");
    std::fs::write(&all, documents.join("---\n")).expect("write");
    ok(
        &deployed.helm_home,
        "kubectl",
        &["apply", "-f", all.to_str().expect("UTF-8")],
    );
    examples
}

// ------------------------------------------------------------ fetched keys

/// `kubectl apply` of endpoint `name` (`spec` below the ingress) on `host`
/// and `path` behind Traefik, with no secrets of its own.
fn apply_keyed_endpoint(
    helm_home: &Path,
    work: &Path,
    namespace: &str,
    name: &str,
    host: &str,
    path: &str,
    spec: &str,
) -> Example {
    let manifest = format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n\
         \x20 ingress: {{host: {host}, path: {path}}}\n{spec}"
    );
    let manifest_file = work.join(format!("{name}.yaml"));
    std::fs::write(&manifest_file, &manifest).expect("write");
    ok(
        helm_home,
        "kubectl",
        &["apply", "-f", manifest_file.to_str().expect("UTF-8")],
    );
    Example {
        name: name.to_owned(),
        manifest: manifest_file,
        endpoint: hookwarden_crds::from_yaml(&manifest).expect("endpoint"),
        host: host.to_owned(),
        path: path.to_owned(),
    }
}

/// Issue #13 as deployed: an AWS SNS endpoint and an Azure Event Grid
/// endpoint with Entra ID tokens behind Traefik, whose receiver pods fetch
/// the signing certificate from `sns.us-east-1.amazonaws.com` and the
/// tenant's keys from `login.microsoftonline.com` themselves, as in a
/// cluster. The pod runner's cluster DNS resolves those hosts to a key
/// server of this test (a ConfigMap of upstream names) and the pods' image
/// CA bundle trusts the test CA that issued its TLS certificate (a
/// ConfigMap too): nothing in the receivers' Deployments is changed, and
/// their host rules stay the real ones. Deliveries (and Event Grid's
/// validation handshake) signed with the published keys are answered and
/// stored once each; signed with another key, refused 401; each key was
/// fetched at most once a pod.
#[tokio::test(flavor = "multi_thread")]
async fn receiver_pods_fetch_provider_keys_through_cluster_dns() {
    use hookwarden_receiver::verify::keys::material::{jwk_json, rsa_signing_key};
    use hookwarden_receiver::verify::keys::url::ENTRA_HOST;
    use hookwarden_receiver::verify::sending::{ENTRA_KID, SNS_CERT_URL};
    use hookwarden_tests::{ListAnswer, ListServer, TestCa};
    const SIGNER_KEY: &str = include_str!("../../../core/src/verify/keys/testdata/signer_key.pem");
    const OTHER_KEY: &str = include_str!("../../../core/src/verify/keys/testdata/other_key.pem");
    const TENANT: &str = "84bd8158-6d4d-4958-8b9f-9d6445542f95";

    let started = std::time::Instant::now();
    let step = |what: &str| eprintln!("fetched keys: {what} at {:.1?}", started.elapsed());
    let deployed = Deployed::start("keys").await;
    let ingress_ca = deployed.ca.clone();

    step("1. the key server, as the cluster's DNS and the image see it");
    let (sns_host, sns_path) = SNS_CERT_URL
        .strip_prefix("https://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(host, path)| (host, format!("/{path}")))
        .expect("an https URL with a path");
    // Port 443 of an address of its own (one per test process), reachable
    // from the pods as the host's loopback is.
    let [_, _, high, low] = std::process::id().to_be_bytes();
    let address = std::net::SocketAddr::from(([127, 5, high, low.max(1)], 443));
    let key_ca = TestCa::new("key server CA");
    let key_server = ListServer::start_at(&key_ca, &[sns_host, ENTRA_HOST], address).await;
    key_server.serve(
        &sns_path,
        ListAnswer::ok(key_ca.issue(SIGNER_KEY, "sns.amazonaws.com", 2020, 2100)),
    );
    let signer = rsa_signing_key(SIGNER_KEY).expect("test key");
    let tenant_keys = serde_json::json!({"keys": [jwk_json(&signer, ENTRA_KID)]});
    key_server.serve(
        &format!("/{TENANT}/discovery/v2.0/keys"),
        ListAnswer::ok(tenant_keys.to_string()),
    );
    let maps = format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: upstream-hosts
  namespace: {namespace}
  labels: {{hookwarden.dev/pod-runner: upstream-hosts}}
data:
  hosts: "{ip} {sns_host} {ENTRA_HOST}"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: image-ca
  namespace: {namespace}
  labels: {{hookwarden.dev/pod-runner: image-ca}}
data:
  ca.crt: {pem:?}
"#,
        ip = address.ip(),
        pem = key_ca.pem(),
        namespace = deployed.namespace
    );
    hookwarden_tests::deployed::kubectl_stdin(&["apply", "-f", "-"], &maps)
        .unwrap_or_else(|e| panic!("{e}"));

    step("2. helm install, the endpoints behind Traefik");
    deployed.helm_install().await;
    let sns = apply_keyed_endpoint(
        &deployed.helm_home,
        &deployed.work,
        &deployed.namespace,
        "sns",
        "sns.keys.hookwarden.test",
        "/in/sns",
        "  provider: aws-sns\n  aws: {topicArns: ['arn:aws:sns:us-east-1:123456789012:orders']}\n",
    );
    let grid = apply_keyed_endpoint(
        &deployed.helm_home,
        &deployed.work,
        &deployed.namespace,
        "grid",
        "grid.keys.hookwarden.test",
        "/in/grid",
        &format!(
            "  provider: azure-event-grid\n  azure:\n    entra: {{tenantId: {TENANT}, \
             audience: 'api://hookwarden-events'}}\n"
        ),
    );
    let endpoints = deployed.ns.api::<WebhookEndpoint>();
    for example in [&sns, &grid] {
        rolled_out(&deployed.ns, &example.name, 2).await;
        ready_and_routed(&endpoints, deployed.admin, &example.name, &example.host).await;
    }

    step("3. deliveries signed with the published keys, and with another");
    let keys = deployed.work.join("keys");
    std::fs::create_dir_all(&keys).expect("mkdir");
    let signer_file = keys.join("signer.pem");
    let other_file = keys.join("other.pem");
    std::fs::write(&signer_file, SIGNER_KEY).expect("key");
    std::fs::write(&other_file, OTHER_KEY).expect("key");
    let secrets = deployed.work.join("secrets");
    std::fs::create_dir_all(&secrets).expect("mkdir");
    let send_with = |example: &Example, key: &Path, extra: &[&str]| {
        let (cli, secrets, ingress_ca) =
            (deployed.cli.clone(), secrets.clone(), ingress_ca.clone());
        let key = key.to_str().expect("UTF-8").to_owned();
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let example = Example {
            name: example.name.clone(),
            manifest: example.manifest.clone(),
            endpoint: example.endpoint.clone(),
            host: example.host.clone(),
            path: example.path.clone(),
        };
        async move {
            let mut args = vec!["--secret-file", key.as_str()];
            args.extend(extra.iter().map(String::as_str));
            // Traefik may serve its default certificate until it has read
            // the endpoint's Secret.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let (code, out) = send(
                    &cli,
                    &example,
                    &secrets,
                    deployed.traefik,
                    &ingress_ca,
                    &args,
                )
                .await;
                if !out.contains("invalid peer certificate")
                    || tokio::time::Instant::now() >= deadline
                {
                    break (code, out);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let delivery = |id: &'static str| ["--event", "order.created", "--delivery-id", id];
    let (code, out) = send_with(&sns, &signer_file, &delivery("sns-deployed-1")).await;
    assert_eq!((code, out.starts_with("200")), (0, true), "{out}");
    let (code, out) = send_with(&sns, &other_file, &delivery("sns-deployed-2")).await;
    assert_eq!(
        (code, out.starts_with("401")),
        (1, true),
        "another key: {out}"
    );
    let (code, out) = send_with(&sns, &signer_file, &delivery("sns-deployed-3")).await;
    assert_eq!((code, out.starts_with("200")), (0, true), "{out}");
    // Event Grid: the subscription validation handshake first, as Azure
    // does when the subscription is created, then events.
    let (code, out) = send_with(&grid, &signer_file, &["--handshake"]).await;
    assert_eq!(
        (code, out.starts_with("200")),
        (0, true),
        "handshake: {out}"
    );
    let (code, out) = send_with(&grid, &other_file, &["--handshake"]).await;
    assert_eq!(
        (code, out.starts_with("401")),
        (1, true),
        "handshake, another key: {out}"
    );
    let (code, out) = send_with(&grid, &signer_file, &delivery("grid-deployed-1")).await;
    assert_eq!((code, out.starts_with("200")), (0, true), "{out}");
    let (code, out) = send_with(&grid, &other_file, &delivery("grid-deployed-2")).await;
    assert_eq!(
        (code, out.starts_with("401")),
        (1, true),
        "another key: {out}"
    );

    step("4. stored once each, each key fetched at most once a pod");
    let client = deployed.nats.connect().await.expect("NATS");
    let jetstream = async_nats::jetstream::new(client);
    for (example, expected) in [(&sns, 2), (&grid, 1)] {
        let mut endpoint = example.endpoint.clone();
        endpoint.metadata.namespace = Some(deployed.namespace.clone());
        let target = hookwarden_receiver::publish::Target::for_endpoint(&endpoint).expect("target");
        let mut stream = jetstream.get_stream(&target.stream).await.expect("stream");
        let info = stream.info().await.expect("stream info");
        assert_eq!(
            info.state.messages, expected,
            "{}: the good deliveries only",
            example.name
        );
    }
    let requests = key_server.requests();
    for host in [sns_host, ENTRA_HOST] {
        let fetches = requests.iter().filter(|r| r.starts_with(host)).count();
        assert!(
            (1..=2).contains(&fetches),
            "{host}: one fetch per receiver pod at most, then the cache: {requests:?}"
        );
    }
    step("done");
}
