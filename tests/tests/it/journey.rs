//! The user's journey, end to end, against the shared control plane and a
//! real nats-server (issue #6):
//!
//! 1. `helm install` the chart (pinned helm) into a fresh namespace, watching
//!    that namespace; the operator Deployment and its RBAC are there. kwok
//!    runs no containers, so the operator runs here as a process, with the
//!    arguments of the chart's Deployment and a token of the chart's
//!    ServiceAccount (TokenRequest): the chart's RBAC must be enough.
//! 2. `kubectl apply` every manifest in `examples/`, after creating the
//!    Secrets they reference.
//! 3. Each becomes Ready (Stripe's only without a certificate: no
//!    cert-manager here), `kubectl get whe` shows URL and Ready, and the
//!    children docs/operator.md lists exist.
//! 4. Real `hookwarden-receiver` processes run from the configuration the
//!    operator rendered (the config Secret laid out as the pod's volume
//!    mounts it, the Deployment's own arguments); `hookwarden send` delivers
//!    GitHub, Stripe and Slack events; the example consumer
//!    (`examples/consumer`) prints each exactly once with its headers; forged
//!    and out-of-network deliveries are refused with their reason codes and
//!    not stored.
//! 5. `helm upgrade` with other values changes the operator Deployment;
//!    `helm uninstall` removes the operator's objects and keeps the CRD, the
//!    endpoints, their receivers and the stored events.
//!
//! Each phase is a method of [`Journey`] named after what it checks, and
//! hands the next ones what they need (`Installed`, `Applied`,
//! `Delivering`); the test reads as the list above. A failure names its
//! phase in the step log (`journey: 3. Ready at 12.3s`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hookwarden_crds::WebhookEndpoint;
use hookwarden_tests::tools::repo_root;
use hookwarden_tests::{
    ManagedProcess, NatsServer, TestNamespace, condition, eventually, free_port, kubeconfig_path,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use serde_json::Value;

use crate::{consumed, ok, text, tool};

/// Generous: the operator, the controller manager and kwok converge in their
/// own time on a busy machine. Nothing is asserted about how long it takes.
const WAIT: Duration = Duration::from_secs(90);
const CRD: &str = "webhookendpoints.hookwarden.dev";

/// The workspace binaries the journey runs, built (or found up to date) by
/// the same cargo that runs this test: `hookwarden-tests` cannot name other
/// packages' binaries with `CARGO_BIN_EXE_*`.
///
/// `cargo test --workspace --no-run` builds exactly what `make test`'s
/// `cargo test --workspace` has already built (the binaries of every package
/// with integration tests, with the same features), so there it does
/// nothing; run alone, this test first builds the workspace's tests.
struct Binaries {
    operator: PathBuf,
    receiver: PathBuf,
    cli: PathBuf,
    consumer: PathBuf,
}

impl Binaries {
    fn build() -> Self {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(&cargo);
        // What cargo set for this test, not for a build: build scripts that
        // track such variables (ring's reads CARGO_MANIFEST_DIR) would see a
        // change and rebuild half the dependency tree on every run.
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
            .current_dir(repo_root())
            .args(["test", "--workspace", "--locked", "--no-run"])
            .output()
            .expect("cargo runs");
        assert!(
            output.status.success(),
            "cargo test --workspace --no-run failed:\n{}",
            text(&output)
        );
        // target/<profile>/deps/it-<hash> → target/<profile>/
        let exe = std::env::current_exe().expect("test executable");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target directory")
            .to_owned();
        let bin = |name: &str| {
            let path = dir.join(name);
            assert!(path.is_file(), "{} not built", path.display());
            path
        };
        Self {
            operator: bin("hookwarden-operator"),
            receiver: bin("hookwarden-receiver"),
            cli: bin("hookwarden"),
            consumer: bin("hookwarden-example-consumer"),
        }
    }
}

/// The release's cluster-scoped objects do not go with the namespace: a
/// failing test still uninstalls it.
struct Release {
    helm_home: PathBuf,
    name: String,
    namespace: String,
    installed: bool,
}

impl Drop for Release {
    fn drop(&mut self) {
        if self.installed {
            let _ = tool(
                &self.helm_home,
                "helm",
                &["uninstall", &self.name, "--namespace", &self.namespace],
                None,
            );
        }
    }
}

/// `GET path` over plain HTTP/1.0: the status code, or `None` while nothing
/// answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

/// A kubeconfig for the control plane that authenticates with `token`.
fn token_kubeconfig(token: &str, path: &Path) {
    let admin = std::fs::read_to_string(kubeconfig_path()).expect("admin kubeconfig");
    let admin: Value = serde_yaml_ng::from_str(&admin).expect("kubeconfig is YAML");
    let cluster = &admin["clusters"][0];
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "journey", "cluster": cluster["cluster"]}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "journey", "context": {"cluster": "journey", "user": "operator"}}],
        "current-context": "journey",
    });
    std::fs::write(path, config.to_string()).expect("write kubeconfig");
}

/// The receiver's files exactly as the Deployment's Secret volume mounts
/// them: each `items` entry of the volume, from the config Secret's data, at
/// its path under `dir` (the pod's `/etc/hookwarden`). Written through a
/// rename, as the kubelet swaps a mounted Secret atomically.
fn lay_out(deployment: &Deployment, secret: &Secret, dir: &Path) {
    let pod = deployment.spec.template.spec.as_ref();
    let volume = pod
        .and_then(|p| p.volumes.as_ref())
        .and_then(|v| v.iter().find_map(|v| v.secret.as_ref()))
        .expect("a Secret volume");
    assert_eq!(
        volume.secret_name.as_deref(),
        secret.metadata.name.as_deref(),
        "the Deployment mounts the config Secret"
    );
    let data = secret.data.as_ref().expect("config Secret data");
    for item in volume.items.iter().flatten() {
        let value = data
            .get(&item.key)
            .unwrap_or_else(|| panic!("the Secret has no key {}", item.key));
        let path = dir.join(&item.path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let temporary = path.with_extension("new");
        std::fs::write(&temporary, &value.0).expect("write mounted file");
        std::fs::rename(&temporary, &path).expect("rename mounted file");
    }
}

/// The container's arguments with the pod's paths and ports replaced by
/// local ones; everything else (NATS URL, TLS mode) as the operator rendered.
fn local_args(
    deployment: &Deployment,
    config_dir: &Path,
    listen: u16,
    metrics: u16,
) -> Vec<String> {
    let container = &deployment
        .spec
        .template
        .spec
        .as_ref()
        .expect("pod spec")
        .containers[0];
    let mount = container
        .volume_mounts
        .as_ref()
        .and_then(|m| m.first())
        .expect("the config mount")
        .mount_path
        .clone();
    let args = container.args.clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut flag = "";
    for arg in &args {
        let local = match flag {
            "--listen" => format!("127.0.0.1:{listen}"),
            "--metrics-listen" => format!("127.0.0.1:{metrics}"),
            _ => match arg.strip_prefix(&mount) {
                Some(rest) => format!("{}{rest}", config_dir.display()),
                None => arg.clone(),
            },
        };
        flag = if arg.starts_with("--") { arg } else { "" };
        out.push(local);
    }
    out
}

/// The operator as the chart's pod would run it: the Deployment's arguments
/// and `RUST_LOG`, the ServiceAccount's kubeconfig; only the operations port
/// moves to a free local one. Returns once it is ready (CRD found, the
/// watched endpoints listed).
async fn start_operator(
    bins: &Binaries,
    deployment: &Deployment,
    kubeconfig: &Path,
    log: &Path,
) -> ManagedProcess {
    let container = &deployment
        .spec
        .template
        .spec
        .as_ref()
        .expect("pod spec")
        .containers[0];
    let rust_log = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "RUST_LOG")
        .and_then(|e| e.value.clone())
        .expect("RUST_LOG");
    let operations = free_port().expect("a free port");
    let mut args = container.args.clone().unwrap_or_default();
    args.push(format!("--metrics-listen=127.0.0.1:{operations}"));
    let mut operator = ManagedProcess::spawn_with_env(
        "operator",
        &bins.operator,
        &args,
        &[
            ("KUBECONFIG", kubeconfig.as_os_str()),
            ("RUST_LOG", OsStr::new(&rust_log)),
            // The chart's fieldRef: the operator's namespace, where it keeps
            // the ConfigMap of source range lists.
            (
                "POD_NAMESPACE",
                OsStr::new(deployment.metadata.namespace.as_deref().expect("namespace")),
            ),
        ],
        log,
    )
    .expect("operator starts");
    operator
        .wait_until(WAIT, || async move {
            (http_status(operations, "/readyz") == Some(200)).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    operator
}

/// One receiver process run from what the operator rendered for `endpoint`.
struct Receiver {
    /// Stopped on drop.
    _process: ManagedProcess,
    port: u16,
    /// The path its rendered manifest serves (`spec.ingress.path`, else `/`):
    /// what the Ingress forwards.
    path: String,
}

impl Receiver {
    /// Where a delivery for it goes, as the ingress controller forwards it.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.path)
    }
}

async fn start_receiver(
    ns: &TestNamespace,
    bins: &Binaries,
    work: &Path,
    endpoint: &str,
    nats_url: &str,
) -> Receiver {
    let child = format!("{endpoint}-receiver");
    let deployment = ns
        .api::<Deployment>()
        .get(&child)
        .await
        .expect("receiver Deployment");
    let secret = ns.api::<Secret>().get(&child).await.expect("config Secret");
    let config_dir = work.join(format!("{endpoint}-config"));
    lay_out(&deployment, &secret, &config_dir);
    let rendered = secret
        .data
        .as_ref()
        .and_then(|data| data.get("endpoint.yaml"))
        .expect("the rendered manifest");
    let path = hookwarden_crds::from_yaml(&String::from_utf8_lossy(&rendered.0))
        .expect("the rendered manifest parses")
        .spec
        .ingress
        .map_or_else(|| "/".to_owned(), |ingress| ingress.path);
    let (port, metrics) = (
        free_port().expect("a free port"),
        free_port().expect("a free port"),
    );
    let args = local_args(&deployment, &config_dir, port, metrics);
    assert!(
        args.windows(2).any(|w| w == ["--nats-url", nats_url]),
        "the operator renders the chart's nats.url: {args:?}"
    );
    assert!(
        args.windows(2)
            .any(|w| w == ["--tls-mode", "behind-ingress"]),
        "{args:?}"
    );
    let mut process = ManagedProcess::spawn(
        &format!("receiver {endpoint}"),
        &bins.receiver,
        &args,
        &work.join(format!("{endpoint}-receiver.log")),
    )
    .expect("receiver starts");
    process
        .wait_until(WAIT, || async move {
            (http_status(metrics, "/readyz") == Some(200)).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Receiver {
        _process: process,
        port,
        path,
    }
}

/// `hookwarden send`: exit code and output.
async fn send(
    bins: &Binaries,
    provider: &str,
    secret_file: &Path,
    url: String,
    extra: &[&str],
) -> (i32, String) {
    let output = tokio::process::Command::new(&bins.cli)
        .args(["send", "--provider", provider, "--secret-file"])
        .arg(secret_file)
        .args(["--url", &url])
        .args(extra)
        .output()
        .await
        .expect("hookwarden send runs");
    (output.status.code().unwrap_or(-1), text(&output))
}

/// The example consumer on `hookwarden.<namespace>.<endpoint>.>`, durable
/// name `journey`, printing to `log` (appended to across restarts).
fn start_consumer(
    bins: &Binaries,
    nats_url: &str,
    namespace: &str,
    endpoint: &str,
    log: &Path,
) -> ManagedProcess {
    ManagedProcess::spawn(
        &format!("consumer {endpoint}"),
        &bins.consumer,
        &[
            "--nats-url".to_owned(),
            nats_url.to_owned(),
            "--subject".to_owned(),
            format!("hookwarden.{namespace}.{endpoint}.>"),
            "--durable".to_owned(),
            "journey".to_owned(),
        ],
        log,
    )
    .expect("consumer starts")
}

/// Waits until the durable consumer `journey` has acknowledged everything
/// `stream` holds: the consumer prints before it acknowledges, so its log
/// is then complete.
async fn drained(consumer: &mut ManagedProcess, stream: &async_nats::jetstream::stream::Stream) {
    let mut stream = stream.clone();
    let last = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    consumer
        .wait_until(WAIT, || {
            let stream = stream.clone();
            async move {
                let mut consumer: async_nats::jetstream::consumer::PullConsumer =
                    stream.get_consumer("journey").await.ok()?;
                let info = consumer.info().await.ok()?;
                (info.ack_floor.stream_sequence == last && info.num_ack_pending == 0).then_some(())
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// What every phase of the journey shares: the binaries, NATS, the
/// namespace and its chart release's name, the work directory (the logs
/// of every process the journey runs), and the clock of its steps.
struct Journey {
    started: std::time::Instant,
    bins: Binaries,
    nats: NatsServer,
    ns: TestNamespace,
    namespace: String,
    work: tempfile::TempDir,
    helm_home: PathBuf,
    chart: String,
}

/// What `helm install` left: the release (uninstalled on drop should the
/// journey fail), the operator run as its pod would be, and what phase 5
/// checks again after the upgrade and the uninstall.
struct Installed {
    release: Release,
    release_name: String,
    fullname: String,
    crd_uid: Option<String>,
    crd_rbac: String,
    operator: ManagedProcess,
    operator_kubeconfig: PathBuf,
}

/// The provider secrets the journey generated, as files.
struct ProviderSecrets {
    github: PathBuf,
    stripe: PathBuf,
    slack_current: PathBuf,
    slack_previous: PathBuf,
    orders: PathBuf,
    acme_token: PathBuf,
    acme_hmac: PathBuf,
}

/// What `kubectl apply` left: the secrets and the endpoints applied.
struct Applied {
    secrets: ProviderSecrets,
    names: BTreeSet<String>,
    expected: BTreeSet<String>,
}

/// The receivers run from the operator's configuration, the consumers
/// reading their streams, and the deliveries stored.
struct Delivering {
    receivers: BTreeMap<&'static str, Receiver>,
    consumers: Vec<(&'static str, ManagedProcess, PathBuf)>,
    github_id: &'static str,
    stripe_id: &'static str,
    slack_id: &'static str,
}

// What the ingress adds to a request from `client` that arrived over HTTPS.
const HTTPS: &str = "X-Forwarded-Proto: https";
const GITHUB_HOOKS_IP: &str = "140.82.112.10";
const ELSEWHERE: &str = "198.51.100.7";

fn from(client: &str) -> String {
    format!("X-Forwarded-For: {client}")
}

#[tokio::test(flavor = "multi_thread")]
async fn install_apply_receive_consume_upgrade_uninstall() {
    let journey = Journey::start().await;
    journey.step("1. helm install");
    let installed = journey.helm_install().await;
    journey.step("2. apply");
    let applied = journey.apply_examples().await;
    journey.step("3. Ready");
    journey.every_endpoint_ready(&applied).await;
    journey.step("4. receivers");
    let mut delivering = journey.receive(&applied).await;
    journey.step("4. consumers");
    journey.consume_each_once(&applied, &mut delivering).await;
    journey.step("5. upgrade");
    journey
        .upgrade_and_uninstall(installed, &applied, &delivering)
        .await;
    journey.no_secret_in_any_log(&applied).await;
    journey.step("done");
}

impl Journey {
    /// Builds the binaries, starts NATS, creates the namespace.
    async fn start() -> Self {
        let started = std::time::Instant::now();
        let bins = Binaries::build();
        let nats = NatsServer::start().await.unwrap_or_else(|e| panic!("{e}"));
        let ns = TestNamespace::create("journey")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let namespace = ns.name().to_owned();
        let work = tempfile::tempdir().expect("work dir");
        let helm_home = work.path().join("helm");
        let chart = repo_root().join("charts/hookwarden");
        let journey = Self {
            started,
            bins,
            nats,
            ns,
            namespace,
            work,
            helm_home,
            chart: chart.to_str().expect("UTF-8 path").to_owned(),
        };
        journey.step("binaries built");
        journey
    }

    /// Where the time goes, shown with a failure (or with --nocapture).
    fn step(&self, what: &str) {
        eprintln!("journey: {what} at {:.1?}", self.started.elapsed());
    }

    /// Phase 1: `helm install` into the namespace, watching it; the operator's
    /// Deployment and RBAC are there, and it runs as its pod would.
    async fn helm_install(&self) -> Installed {
        let (bins, nats, ns) = (&self.bins, &self.nats, &self.ns);
        let (namespace, helm_home, chart) = (&self.namespace, &self.helm_home, self.chart.as_str());
        let work = self.work.path();

        // The CRD is cluster-scoped and shared with the other tests, which may
        // have installed it already: make sure it exists, so helm meets the
        // case of a cluster that has it and skips it, as it does for crds/.
        hookwarden_operator::crd::install(ns.client(), WAIT)
            .await
            .expect("CRD installed");
        let crds: Api<CustomResourceDefinition> = Api::all(ns.client());
        let crd_uid = crds.get(CRD).await.expect("CRD").metadata.uid;

        let release_name = namespace.clone();
        let fullname = format!("{release_name}-hookwarden");
        let nats_value = format!("nats.url={}", nats.url());
        let watch_value = format!("watchNamespace={namespace}");
        let release = Release {
            helm_home: helm_home.clone(),
            name: release_name.clone(),
            namespace: namespace.clone(),
            installed: true,
        };
        let installed = ok(
            helm_home,
            "helm",
            &[
                "install",
                &release_name,
                chart,
                "--namespace",
                namespace,
                "--set",
                &nats_value,
                "--set",
                &watch_value,
            ],
        );
        assert!(installed.contains("STATUS: deployed"), "{installed}");
        assert!(
            installed.contains(&format!("watching namespace {namespace} only")),
            "the notes: {installed}"
        );
        assert_eq!(
            crds.get(CRD).await.expect("CRD").metadata.uid,
            crd_uid,
            "helm left the existing CRD alone"
        );

        let operator_deployment = ns
            .api::<Deployment>()
            .get(&fullname)
            .await
            .expect("the operator Deployment");
        let pod = operator_deployment
            .spec
            .template
            .spec
            .clone()
            .expect("pod spec");
        assert_eq!(pod.service_account_name.as_deref(), Some(fullname.as_str()));
        let container = &pod.containers[0];
        let operator_args = container.args.clone().unwrap_or_default();
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            operator_args,
            [
                "run".to_owned(),
                format!("--receiver-image=ghcr.io/hookwarden/receiver:{version}"),
                format!("--nats-url={}", nats.url()),
                "--stream-check-interval=300".to_owned(),
                "--default-trusted-proxies=10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
                    .to_owned(),
                "--default-forwarded-headers=XForwardedFor".to_owned(),
                format!("--namespace={namespace}"),
                "--log-format=json".to_owned(),
            ]
        );
        let env: BTreeMap<String, String> = container
            .env
            .iter()
            .flatten()
            .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
            .collect();
        assert_eq!(env.get("RUST_LOG").map(String::as_str), Some("info"));

        ns.api::<ServiceAccount>()
            .get(&fullname)
            .await
            .expect("the operator's ServiceAccount");
        let role = ns.api::<Role>().get(&fullname).await.expect("Role");
        assert!(
            role.rules.iter().flatten().any(|r| r
                .resources
                .iter()
                .flatten()
                .any(|x| x == "webhookendpoints")),
            "{role:?}"
        );
        let binding = ns
            .api::<RoleBinding>()
            .get(&fullname)
            .await
            .expect("RoleBinding");
        assert_eq!(binding.role_ref.name, fullname);
        let subjects = binding.subjects.clone().unwrap_or_default();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].name, fullname);
        assert_eq!(subjects[0].namespace.as_deref(), Some(namespace.as_str()));
        let crd_rbac = format!("{fullname}-crd");
        let cluster_roles: Api<ClusterRole> = Api::all(ns.client());
        let cluster_bindings: Api<ClusterRoleBinding> = Api::all(ns.client());
        cluster_roles.get(&crd_rbac).await.expect("CRD ClusterRole");
        cluster_bindings
            .get(&crd_rbac)
            .await
            .expect("CRD ClusterRoleBinding");
        assert!(
            cluster_roles
                .get_opt(&fullname)
                .await
                .expect("get")
                .is_none(),
            "one watched namespace: no cluster-wide namespaced rights"
        );

        // The operator as the pod would run it: the Deployment's arguments and
        // RUST_LOG, the ServiceAccount's token (TokenRequest), only the
        // operations port moved to a free local one.
        let token = ok(
            helm_home,
            "kubectl",
            &[
                "create",
                "token",
                &fullname,
                "--namespace",
                namespace,
                "--duration=1h",
            ],
        );
        let operator_kubeconfig = work.join("operator.kubeconfig");
        token_kubeconfig(token.trim(), &operator_kubeconfig);
        // Really the ServiceAccount, not the admin.
        let whoami = ok(
            helm_home,
            "kubectl",
            &[
                "--kubeconfig",
                operator_kubeconfig.to_str().expect("UTF-8 path"),
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ],
        );
        assert_eq!(
            whoami.trim(),
            format!("system:serviceaccount:{namespace}:{fullname}")
        );
        // examples/github.yaml names GitHub's published hook ranges; there is
        // no internet here, so the operator finds GitHub's list where it keeps
        // the last good one (its ConfigMap), as after a restart during an
        // outage of api.github.com: the saved sample of GitHub's meta document.
        hookwarden_tests::save_list_for_operator(
            ns.client(),
            namespace,
            &hookwarden_receiver::ranges::ListSource::Github {
                service: "hooks".to_owned(),
            },
            &repo_root().join("core/src/ranges/testdata/github-meta.json"),
        )
        .await;
        let operator = start_operator(
            bins,
            &operator_deployment,
            &operator_kubeconfig,
            &work.join("operator.log"),
        )
        .await;
        Installed {
            release,
            release_name,
            fullname,
            crd_uid,
            crd_rbac,
            operator,
            operator_kubeconfig,
        }
    }

    /// Phase 2: the Secrets the examples reference, then `kubectl apply` of
    /// every example endpoint.
    async fn apply_examples(&self) -> Applied {
        let (bins, namespace, helm_home) = (&self.bins, &self.namespace, &self.helm_home);
        let work = self.work.path();
        let examples = repo_root().join("examples");

        let secrets_dir = work.join("provider-secrets");
        std::fs::create_dir_all(&secrets_dir).expect("mkdir");
        let generate = |name: &str, format: &str| {
            let output = Command::new(&bins.cli)
                .args(["secret", "generate", "--format", format])
                .output()
                .expect("hookwarden secret generate");
            assert!(output.status.success(), "{}", text(&output));
            let path = secrets_dir.join(name);
            let value = String::from_utf8(output.stdout).expect("UTF-8");
            std::fs::write(&path, value.trim_end()).expect("write secret");
            path
        };
        let github_secret = generate("github", "hex");
        let stripe_secret = generate("stripe", "hex");
        let slack_current = generate("slack-current", "hex");
        let slack_previous = generate("slack-previous", "hex");
        let orders_secret = generate("orders", "whsec");
        let acme_token = generate("acme-token", "hex");
        let acme_hmac = generate("acme-hmac", "hex");
        let twilio_token = generate("twilio-auth-token", "hex");
        let meta_secret = generate("meta-app-secret", "hex");
        let meta_verify = generate("meta-verify-token", "hex");
        let from_file = |key: &str, path: &Path| format!("--from-file={key}={}", path.display());
        for (secret, files) in [
            ("github-webhook", vec![from_file("secret", &github_secret)]),
            ("stripe-webhook", vec![from_file("secret", &stripe_secret)]),
            (
                "slack-signing",
                vec![
                    from_file("current", &slack_current),
                    from_file("previous", &slack_previous),
                ],
            ),
            ("orders-webhook", vec![from_file("secret", &orders_secret)]),
            (
                "acme-webhook",
                vec![
                    from_file("token", &acme_token),
                    from_file("hmac", &acme_hmac),
                ],
            ),
            ("twilio", vec![from_file("auth-token", &twilio_token)]),
            (
                "meta-app",
                vec![
                    from_file("app-secret", &meta_secret),
                    from_file("verify-token", &meta_verify),
                ],
            ),
        ] {
            let mut args = vec![
                "create",
                "secret",
                "generic",
                secret,
                "--namespace",
                &namespace,
            ];
            args.extend(files.iter().map(String::as_str));
            ok(helm_home, "kubectl", &args);
        }

        let mut names = BTreeSet::new();
        for entry in std::fs::read_dir(&examples).expect("examples/") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let manifest: Value =
                serde_yaml_ng::from_str(&std::fs::read_to_string(&path).expect("read example"))
                    .expect("example is YAML");
            // Endpoints only: the subscription example runs as deployed, its
            // forwarder pod from its own Deployment (tests/tests/it/deployed.rs).
            if manifest["kind"] != "WebhookEndpoint" {
                continue;
            }
            let name = manifest["metadata"]["name"]
                .as_str()
                .expect("named")
                .to_owned();
            let path = path.to_str().expect("UTF-8 path");
            let applied = ok(
                helm_home,
                "kubectl",
                &["apply", "--namespace", namespace, "-f", path],
            );
            assert!(
                applied.contains(&format!("webhookendpoint.hookwarden.dev/{name} created")),
                "{applied}"
            );
            names.insert(name);
        }
        let expected: BTreeSet<String> = [
            "acme",
            "github",
            "github-generated",
            "orders",
            "slack",
            "stripe",
            "twilio-sms",
            "whatsapp",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(names, expected, "every example applied");
        Applied {
            secrets: ProviderSecrets {
                github: github_secret,
                stripe: stripe_secret,
                slack_current,
                slack_previous,
                orders: orders_secret,
                acme_token,
                acme_hmac,
            },
            names,
            expected,
        }
    }

    /// Phase 3: each endpoint becomes Ready (Stripe's without a certificate),
    /// `kubectl get whe` shows them, and their children exist.
    async fn every_endpoint_ready(&self, applied: &Applied) {
        let (ns, namespace, helm_home) = (&self.ns, &self.namespace, &self.helm_home);
        let names = &applied.names;

        let endpoints = ns.api::<WebhookEndpoint>();
        for name in names {
            eventually(&format!("{name} to be Ready"), WAIT, || async {
                let endpoint = endpoints.get(name).await.ok()?;
                let ready = condition(&endpoint, "Ready").map(|c| (c.status, c.reason))?;
                if name == "stripe" {
                    // tls.issuerRef needs cert-manager, which the shared control
                    // plane does not run: the receivers are available and Ready
                    // says why it is not True (docs/operator.md).
                    let available =
                        condition(&endpoint, "ReceiverAvailable").map(|c| (c.status, c.reason))?;
                    (available.0 == "True"
                        && ready == ("False".to_owned(), "CertificateNotReady".to_owned()))
                        .then_some(())
                } else {
                    (ready == ("True".to_owned(), "ReceiverAvailable".to_owned())).then_some(())
                }
            })
            .await;
        }
        let table = ok(
            helm_home,
            "kubectl",
            &["get", "whe", "--namespace", namespace],
        );
        let rows: BTreeMap<String, Vec<String>> = table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let columns: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
                Some((columns.first()?.clone(), columns))
            })
            .collect();
        assert!(
            table.lines().next().is_some_and(|header| {
                header.split_whitespace().collect::<Vec<_>>()
                    == ["NAME", "URL", "PROVIDER", "READY", "AGE"]
            }),
            "{table}"
        );
        assert_eq!(
            rows["stripe"][1..4],
            ["https://hooks.example.com/stripe", "stripe", "False"],
            "{table}"
        );
        // No ingress, no URL: the column is empty, so the row has one field less.
        assert_eq!(rows["github"][1..3], ["github", "True"], "{table}");
        assert_eq!(rows["slack"][1..3], ["slack", "True"], "{table}");
        assert_eq!(rows.len(), names.len(), "{table}");

        for name in names {
            let child = format!("{name}-receiver");
            ns.api::<Deployment>()
                .get(&child)
                .await
                .unwrap_or_else(|e| panic!("Deployment {child}: {e}"));
            ns.api::<Service>()
                .get(&child)
                .await
                .unwrap_or_else(|e| panic!("Service {child}: {e}"));
            ns.api::<NetworkPolicy>()
                .get(&child)
                .await
                .unwrap_or_else(|e| panic!("NetworkPolicy {child}: {e}"));
            let secret = ns
                .api::<Secret>()
                .get(&child)
                .await
                .unwrap_or_else(|e| panic!("Secret {child}: {e}"));
            assert!(
                secret
                    .data
                    .as_ref()
                    .is_some_and(|d| d.contains_key("endpoint.yaml")),
                "{child} holds the endpoint"
            );
            // An example without trustedProxies gets the chart's default
            // (receivers.trustedProxies), or no delivery could ever pass;
            // stripe.yaml lists its own, which wins.
            let rendered: Value =
                serde_yaml_ng::from_slice(&secret.data.as_ref().expect("data")["endpoint.yaml"].0)
                    .expect("the rendered endpoint is YAML");
            let expected = if name == "stripe" {
                serde_json::json!(["10.42.0.0/16"])
            } else {
                serde_json::json!(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"])
            };
            assert_eq!(
                rendered["spec"]["trustedProxies"], expected,
                "{child} trusts the chart's default proxies"
            );
            // And believes them only in the headers the chart says the ingress
            // controller writes (receivers.forwardedHeaders), written out.
            assert_eq!(
                rendered["spec"]["forwardedHeaders"], "XForwardedFor",
                "{child} believes only X-Forwarded-For"
            );
        }
        ns.api::<Ingress>()
            .get("stripe-receiver")
            .await
            .expect("stripe's Ingress");
        ns.api::<PodDisruptionBudget>()
            .get("github-generated-receiver")
            .await
            .expect("a budget for two replicas");
        let generated = endpoints
            .get("github-generated")
            .await
            .expect("github-generated");
        assert_eq!(
            generated
                .status
                .as_ref()
                .and_then(|s| s.secret_name.as_deref()),
            Some("github-generated-webhook-secret")
        );
        ns.api::<Secret>()
            .get("github-generated-webhook-secret")
            .await
            .expect("the generated secret");
    }

    /// Phase 4: receivers run from what the operator rendered; `hookwarden
    /// send` delivers, forged and out-of-network deliveries are refused; the
    /// example consumers start.
    async fn receive(&self, applied: &Applied) -> Delivering {
        let (bins, nats, ns) = (&self.bins, &self.nats, &self.ns);
        let (namespace, helm_home) = (&self.namespace, &self.helm_home);
        let work = self.work.path();
        let ProviderSecrets {
            github: github_secret,
            stripe: stripe_secret,
            slack_current,
            slack_previous,
            ..
        } = &applied.secrets;

        // The receivers run behind an ingress (`--tls-mode behind-ingress`): they
        // take only deliveries a trusted proxy reports as HTTPS, and learn the
        // client's address from it. Here this test is that ingress controller,
        // at 127.0.0.1: the user lists it in trustedProxies (in a cluster, the
        // ingress controller's pod network, as stripe.yaml does).
        // The pods' config hash before: github's (which names GitHub's
        // published ranges) leaves the fetched ranges out, so that a changed
        // list is hot-reloaded instead of rolling the pods; it is not the hash
        // of the rendered Secret, only a new one.
        let github_hash_before = ns
            .api::<Deployment>()
            .get("github-receiver")
            .await
            .ok()
            .and_then(|d| {
                d.spec
                    .template
                    .metadata?
                    .annotations?
                    .get("hookwarden.dev/config-hash")
                    .cloned()
            });
        for (endpoint, proxies) in [
            ("github", r#"["127.0.0.1/32"]"#),
            ("slack", r#"["127.0.0.1/32"]"#),
            ("stripe", r#"["10.42.0.0/16", "127.0.0.1/32"]"#),
        ] {
            let patch = format!(r#"{{"spec": {{"trustedProxies": {proxies}}}}}"#);
            ok(
                helm_home,
                "kubectl",
                &[
                    "patch",
                    "whe",
                    endpoint,
                    "--namespace",
                    namespace,
                    "--type=merge",
                    "-p",
                    &patch,
                ],
            );
        }
        let mut receivers = BTreeMap::new();
        for endpoint in ["github", "stripe", "slack"] {
            let child = format!("{endpoint}-receiver");
            // The operator re-renders the config Secret and rolls the Deployment
            // (its config-hash annotation follows the Secret's data).
            eventually(
                &format!("{endpoint}'s re-rendered config"),
                WAIT,
                || async {
                    let secret = ns.api::<Secret>().get(&child).await.ok()?;
                    let manifest = secret.data.as_ref()?.get("endpoint.yaml")?;
                    if !String::from_utf8_lossy(&manifest.0).contains("127.0.0.1/32") {
                        return None;
                    }
                    let deployment = ns.api::<Deployment>().get(&child).await.ok()?;
                    let hash = deployment
                        .spec
                        .template
                        .metadata
                        .as_ref()?
                        .annotations
                        .as_ref()?
                        .get("hookwarden.dev/config-hash")?
                        .clone();
                    let rolled = if endpoint == "github" {
                        Some(&hash) != github_hash_before.as_ref()
                    } else {
                        hash == hookwarden_operator::resources::config_hash(&secret)
                    };
                    rolled.then_some(())
                },
            )
            .await;
            receivers.insert(
                endpoint,
                start_receiver(ns, bins, work, endpoint, nats.url()).await,
            );
        }
        let port = |endpoint: &str| receivers[endpoint].url();

        let mut consumers = Vec::new();
        for endpoint in ["github", "stripe", "slack"] {
            let log = work.join(format!("{endpoint}-consumer.log"));
            let process = start_consumer(bins, nats.url(), namespace, endpoint, &log);
            consumers.push((endpoint, process, log));
        }

        // GitHub's example admits GitHub's networks only.
        let (code, out) = send(
            bins,
            "github",
            github_secret,
            port("github"),
            &[
                "--event",
                "push",
                "--header",
                HTTPS,
                "--header",
                &from(ELSEWHERE),
            ],
        )
        .await;
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("403") && out.contains("ip_not_allowed"),
            "{out}"
        );
        let github_id = "journey-github-1";
        let github_args = [
            "--event",
            "push",
            "--delivery-id",
            github_id,
            "--header",
            HTTPS,
            "--header",
            &from(GITHUB_HOOKS_IP),
        ];
        let (code, out) = send(bins, "github", github_secret, port("github"), &github_args).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("200"), "{out}");
        // GitHub redelivers: answered 2xx, stored once.
        let (code, out) = send(bins, "github", github_secret, port("github"), &github_args).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("\"duplicate\": true"), "{out}");

        let stripe_id = "evt_journey_1";
        let (code, out) = send(
            bins,
            "stripe",
            stripe_secret,
            port("stripe"),
            &[
                "--event",
                "charge.succeeded",
                "--delivery-id",
                stripe_id,
                "--header",
                HTTPS,
                "--header",
                &from(ELSEWHERE),
            ],
        )
        .await;
        assert_eq!(code, 0, "{out}");
        // Forged: signed with another secret.
        let (code, out) = send(
            bins,
            "stripe",
            slack_current,
            port("stripe"),
            &[
                "--event",
                "charge.refunded",
                "--delivery-id",
                "evt_forged",
                "--header",
                HTTPS,
                "--header",
                &from(ELSEWHERE),
            ],
        )
        .await;
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("401") && out.contains("signature_mismatch"),
            "{out}"
        );
        // Plain HTTP at the ingress: refused.
        let (code, out) = send(
            bins,
            "stripe",
            stripe_secret,
            port("stripe"),
            &["--event", "charge.refunded", "--delivery-id", "evt_plain"],
        )
        .await;
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("403") && out.contains("https_required"),
            "{out}"
        );

        // Slack during a rotation: the previous secret still verifies.
        let slack_id = "Ev_journey_1";
        let (code, out) = send(
            bins,
            "slack",
            slack_previous,
            port("slack"),
            &[
                "--event",
                "app_mention",
                "--delivery-id",
                slack_id,
                "--header",
                HTTPS,
                "--header",
                &from(ELSEWHERE),
            ],
        )
        .await;
        assert_eq!(code, 0, "{out}");
        Delivering {
            receivers,
            consumers,
            github_id,
            stripe_id,
            slack_id,
        }
    }

    /// Phase 4, continued: everything stored reaches the consumers, each event
    /// once with its headers, also across a consumer's restart.
    async fn consume_each_once(&self, applied: &Applied, delivering: &mut Delivering) {
        let (bins, nats, namespace) = (&self.bins, &self.nats, &self.namespace);
        let github_secret = &applied.secrets.github;
        let (github_id, stripe_id, slack_id) = (
            delivering.github_id,
            delivering.stripe_id,
            delivering.slack_id,
        );
        let receivers = &delivering.receivers;
        let port = |endpoint: &str| receivers[endpoint].url();
        let consumers = &mut delivering.consumers;

        // Everything stored reaches the consumers, each event once, with its
        // headers. A consumer that has acknowledged up to the stream's last
        // sequence has printed everything it will print.
        let client = nats.connect().await.expect("NATS");
        let jetstream = async_nats::jetstream::new(client);
        for (endpoint, id, event_type, token, client, stored) in [
            ("github", github_id, "push", "push", GITHUB_HOOKS_IP, 1),
            (
                "stripe",
                stripe_id,
                "charge.succeeded",
                "charge_succeeded",
                ELSEWHERE,
                1,
            ),
            (
                "slack",
                slack_id,
                "app_mention",
                "app_mention",
                ELSEWHERE,
                1,
            ),
        ] {
            let stream_name =
                hookwarden_receiver::publish::default_stream_name(namespace, endpoint);
            let mut stream = jetstream.get_stream(&stream_name).await.expect("stream");
            let info = stream.info().await.expect("stream info").clone();
            assert_eq!(
                info.state.messages, stored,
                "{endpoint}: only verified deliveries are stored, redeliveries once"
            );
            let (_, process, log) = consumers
                .iter_mut()
                .find(|(e, _, _)| *e == endpoint)
                .expect("consumer");
            drained(process, &stream).await;
            let events = consumed(log);
            assert_eq!(events.len(), 1, "{endpoint}: exactly once: {events:?}");
            let event = &events[0];
            assert_eq!(
                event["subject"],
                format!("hookwarden.{namespace}.{endpoint}.{token}")
            );
            let headers = &event["headers"];
            assert_eq!(headers["Nats-Msg-Id"], id, "{event}");
            assert_eq!(headers["Hookwarden-Delivery-Id"], id, "{event}");
            assert_eq!(
                headers["Hookwarden-Endpoint"],
                format!("{namespace}/{endpoint}"),
                "{event}"
            );
            assert_eq!(headers["Hookwarden-Provider"], endpoint, "{event}");
            assert_eq!(headers["Hookwarden-Event"], event_type, "{event}");
            assert_eq!(headers["Hookwarden-Source-Ip"], client, "{event}");
            assert!(headers["Hookwarden-Received-At"].is_string(), "{event}");
            let body: Value = serde_json::from_str(event["body"].as_str().expect("text body"))
                .expect("JSON body");
            assert!(body.is_object(), "{event}");
        }

        // Durable: stopped, and back under the same name, the consumer gets
        // what arrived meanwhile and nothing it had acknowledged.
        let (_, process, log) = consumers
            .iter_mut()
            .find(|(e, _, _)| *e == "github")
            .expect("consumer");
        process.stop();
        let second_id = "journey-github-2";
        let (code, out) = send(
            bins,
            "github",
            github_secret,
            port("github"),
            &[
                "--event",
                "issues",
                "--delivery-id",
                second_id,
                "--header",
                HTTPS,
                "--header",
                &from(GITHUB_HOOKS_IP),
            ],
        )
        .await;
        assert_eq!(code, 0, "{out}");
        *process = start_consumer(bins, nats.url(), namespace, "github", log);
        let github_stream = jetstream
            .get_stream(hookwarden_receiver::publish::default_stream_name(
                namespace, "github",
            ))
            .await
            .expect("stream");
        drained(process, &github_stream).await;
        let ids: Vec<Value> = consumed(log)
            .iter()
            .map(|e| e["headers"]["Nats-Msg-Id"].clone())
            .collect();
        assert_eq!(ids, [github_id, second_id], "across a restart, each once");
    }

    /// Phase 5: `helm upgrade` changes the operator Deployment and every
    /// receiver follows; `helm uninstall` removes the operator's objects and
    /// keeps the CRD, the endpoints, their receivers and the stored events.
    async fn upgrade_and_uninstall(
        &self,
        installed: Installed,
        applied: &Applied,
        delivering: &Delivering,
    ) {
        let (bins, nats, ns) = (&self.bins, &self.nats, &self.ns);
        let (namespace, helm_home, chart) = (&self.namespace, &self.helm_home, self.chart.as_str());
        let work = self.work.path();
        let Installed {
            mut release,
            release_name,
            fullname,
            crd_uid,
            crd_rbac,
            mut operator,
            operator_kubeconfig,
        } = installed;
        let (names, expected) = (&applied.names, &applied.expected);
        let stripe_secret = &applied.secrets.stripe;
        let port = |endpoint: &str| delivering.receivers[endpoint].url();
        let crds: Api<CustomResourceDefinition> = Api::all(ns.client());
        let cluster_roles: Api<ClusterRole> = Api::all(ns.client());
        let cluster_bindings: Api<ClusterRoleBinding> = Api::all(ns.client());
        let endpoints = ns.api::<WebhookEndpoint>();
        let jetstream = async_nats::jetstream::new(nats.connect().await.expect("NATS"));

        let upgraded = ok(
            helm_home,
            "helm",
            &[
                "upgrade",
                &release_name,
                chart,
                "--namespace",
                namespace,
                "--reuse-values",
                "--set",
                "logLevel=debug",
                "--set",
                "image.operator.tag=journey",
                "--set",
                "image.receiver.tag=journey",
            ],
        );
        assert!(upgraded.contains("REVISION: 2"), "{upgraded}");
        let upgraded = ns
            .api::<Deployment>()
            .get(&fullname)
            .await
            .expect("operator Deployment");
        let container = &upgraded
            .spec
            .template
            .spec
            .as_ref()
            .expect("pod spec")
            .containers[0];
        assert_eq!(
            container.image.as_deref(),
            Some("ghcr.io/hookwarden/operator:journey")
        );
        assert_eq!(
            container.args.clone().unwrap_or_default(),
            [
                "run".to_owned(),
                "--receiver-image=ghcr.io/hookwarden/receiver:journey".to_owned(),
                format!("--nats-url={}", nats.url()),
                "--stream-check-interval=300".to_owned(),
                "--default-trusted-proxies=10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
                    .to_owned(),
                "--default-forwarded-headers=XForwardedFor".to_owned(),
                format!("--namespace={namespace}"),
                "--log-format=json".to_owned(),
            ],
            "--reuse-values kept nats.url and watchNamespace"
        );
        let log_level = container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "RUST_LOG")
            .and_then(|e| e.value.clone());
        assert_eq!(log_level.as_deref(), Some("debug"));
        // The new operator pod (Recreate: the old one first stops) renders every
        // receiver with the new receiver image.
        operator.stop();
        let mut operator = start_operator(
            bins,
            &upgraded,
            &operator_kubeconfig,
            &work.join("operator-upgraded.log"),
        )
        .await;
        for name in names {
            let child = format!("{name}-receiver");
            eventually(
                &format!("{child} with the upgraded image"),
                WAIT,
                || async {
                    let deployment = ns.api::<Deployment>().get(&child).await.ok()?;
                    let image = deployment.spec.template.spec?.containers[0].image.clone()?;
                    (image == "ghcr.io/hookwarden/receiver:journey").then_some(())
                },
            )
            .await;
        }

        ok(
            helm_home,
            "helm",
            &["uninstall", &release_name, "--namespace", namespace],
        );
        release.installed = false;
        // The operator pod would be gone with its Deployment.
        operator.stop();
        assert!(
            ns.api::<Deployment>()
                .get_opt(&fullname)
                .await
                .expect("get")
                .is_none(),
            "the operator Deployment is removed"
        );
        assert!(
            ns.api::<ServiceAccount>()
                .get_opt(&fullname)
                .await
                .expect("get")
                .is_none()
        );
        assert!(
            ns.api::<Role>()
                .get_opt(&fullname)
                .await
                .expect("get")
                .is_none()
        );
        assert!(
            ns.api::<RoleBinding>()
                .get_opt(&fullname)
                .await
                .expect("get")
                .is_none()
        );
        assert!(
            cluster_roles
                .get_opt(&crd_rbac)
                .await
                .expect("get")
                .is_none()
        );
        assert!(
            cluster_bindings
                .get_opt(&crd_rbac)
                .await
                .expect("get")
                .is_none()
        );
        // Kept: the CRD (helm never deletes crds/), the endpoints, their
        // receivers, and the events in JetStream.
        assert_eq!(
            crds.get(CRD).await.expect("the CRD is kept").metadata.uid,
            crd_uid
        );
        let left: BTreeSet<String> = endpoints
            .list(&Default::default())
            .await
            .expect("list endpoints")
            .items
            .iter()
            .filter_map(|e| e.metadata.name.clone())
            .collect();
        assert_eq!(&left, expected, "the WebhookEndpoints are kept");
        for name in names {
            ns.api::<Deployment>()
                .get(&format!("{name}-receiver"))
                .await
                .unwrap_or_else(|e| panic!("receiver of {name} kept: {e}"));
        }
        let stream_name = hookwarden_receiver::publish::default_stream_name(namespace, "stripe");
        let mut stream = jetstream
            .get_stream(&stream_name)
            .await
            .expect("stream kept");
        assert_eq!(stream.info().await.expect("info").state.messages, 1);
        // The receivers, running on without an operator, still take deliveries.
        let (code, out) = send(
            bins,
            "stripe",
            stripe_secret,
            port("stripe"),
            &[
                "--event",
                "charge.refunded",
                "--delivery-id",
                "evt_journey_2",
                "--header",
                HTTPS,
                "--header",
                &from(ELSEWHERE),
            ],
        )
        .await;
        assert_eq!(code, 0, "{out}");
        assert_eq!(stream.info().await.expect("info").state.messages, 2);
    }

    /// No secret value in any log of the journey (the operator's at debug).
    async fn no_secret_in_any_log(&self, applied: &Applied) {
        let work = self.work.path();
        let ProviderSecrets {
            github: github_secret,
            stripe: stripe_secret,
            slack_current,
            slack_previous,
            orders: orders_secret,
            acme_token,
            acme_hmac,
        } = &applied.secrets;
        let ns = &self.ns;

        let generated_value = ns
            .api::<Secret>()
            .get("github-generated-webhook-secret")
            .await
            .expect("generated secret")
            .data
            .and_then(|d| d.get("secret").cloned())
            .expect("generated value");
        let mut values = vec![String::from_utf8_lossy(&generated_value.0).into_owned()];
        for file in [
            &github_secret,
            &stripe_secret,
            &slack_current,
            &slack_previous,
            &orders_secret,
            &acme_token,
            &acme_hmac,
        ] {
            values.push(std::fs::read_to_string(file).expect("secret file"));
        }
        let mut logs = 0;
        for entry in std::fs::read_dir(work).expect("work dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "log") {
                let log = std::fs::read_to_string(&path).unwrap_or_default();
                for value in &values {
                    assert!(
                        value.len() >= 32 && !log.contains(value.as_str()),
                        "{} holds a secret value",
                        path.display()
                    );
                }
                logs += 1;
            }
        }
        assert_eq!(logs, 8, "two operators, three receivers, three consumers");
    }
}
