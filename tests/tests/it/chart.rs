//! The Helm chart (`charts/hookwarden`) and the `Dockerfile`, checked with the
//! pinned `helm` and `kubectl` and the shared control plane: the chart lints
//! clean, its schema refuses bad values, the API server accepts what it
//! renders, its RBAC is exactly what the operator's API calls need, and its
//! CRD is the generated one.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hookwarden_tests::tools::{repo_root, require_tool};
use hookwarden_tests::{TestNamespace, kubeconfig_path};
use serde_json::Value;

use crate::text;

fn chart_dir() -> PathBuf {
    repo_root().join("charts/hookwarden")
}

fn full_values() -> PathBuf {
    chart_dir().join("ci/full-values.yaml")
}

fn run(tool: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let path = require_tool(tool).unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(&path)
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        // helm must not read or write the user's repositories and caches.
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("hookwarden-helm"),
        )
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("hookwarden-helm"),
        )
        .env(
            "HELM_DATA_HOME",
            std::env::temp_dir().join("hookwarden-helm"),
        )
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

/// `helm template hw <chart> <args>`; panics with helm's output on failure.
fn render(args: &[&str]) -> String {
    let chart = chart_dir();
    let mut all = vec!["template", "hw", chart.to_str().expect("UTF-8 path")];
    all.extend_from_slice(args);
    let output = run("helm", &all, None);
    assert!(
        output.status.success(),
        "helm {all:?} failed:\n{}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `helm template` that must fail; returns helm's output.
fn refused(args: &[&str]) -> String {
    let chart = chart_dir();
    let mut all = vec!["template", "hw", chart.to_str().expect("UTF-8 path")];
    all.extend_from_slice(args);
    let output = run("helm", &all, None);
    assert!(
        !output.status.success(),
        "helm {all:?} accepted a bad value:\n{}",
        text(&output)
    );
    text(&output)
}

/// The non-empty YAML documents of a rendered stream.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("helm renders valid YAML"))
        .filter(|doc: &Value| !doc.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap_or("?"),
                d["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// Every (apiGroup, resource, verb, resourceName) a rule list grants.
fn grants(rules: &Value) -> BTreeSet<(String, String, String, String)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().unwrap_or("?").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for rule in rules.as_array().expect("rules is a list") {
        let names = strings(&rule["resourceNames"]);
        let names = if names.is_empty() {
            vec![String::new()]
        } else {
            names
        };
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    for name in &names {
                        out.insert((group.clone(), resource.clone(), verb.clone(), name.clone()));
                    }
                }
            }
        }
    }
    out
}

fn expect(entries: &[(&str, &[&str], &[&str])]) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs) in entries {
        for resource in *resources {
            for verb in *verbs {
                out.insert((
                    (*group).to_owned(),
                    (*resource).to_owned(),
                    (*verb).to_owned(),
                    String::new(),
                ));
            }
        }
    }
    out
}

/// What operator/src calls, resource by resource (see the comments in
/// templates/_helpers.tpl).
fn namespaced_needs() -> BTreeSet<(String, String, String, String)> {
    const PRUNED: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];
    expect(&[
        (
            "hookwarden.dev",
            &["webhookendpoints"],
            &["get", "list", "watch"],
        ),
        (
            "hookwarden.dev",
            &["webhooksubscriptions"],
            &["list", "watch", "patch"],
        ),
        (
            "hookwarden.dev",
            &["webhookreceiverpools"],
            &["get", "list", "watch"],
        ),
        (
            "hookwarden.dev",
            &[
                "webhookendpoints/status",
                "webhooksubscriptions/status",
                "webhookreceiverpools/status",
            ],
            &["patch"],
        ),
        (
            "hookwarden.dev",
            &[
                "webhookendpoints/finalizers",
                "webhooksubscriptions/finalizers",
                "webhookreceiverpools/finalizers",
            ],
            &["update"],
        ),
        // Deleted by name when an endpoint joins a pool.
        ("apps", &["deployments"], PRUNED),
        ("", &["secrets"], PRUNED),
        ("", &["services"], PRUNED),
        ("events.k8s.io", &["events"], &["create", "patch"]),
        ("networking.k8s.io", &["networkpolicies"], PRUNED),
        ("networking.k8s.io", &["ingresses"], PRUNED),
        ("policy", &["poddisruptionbudgets"], PRUNED),
        ("autoscaling", &["horizontalpodautoscalers"], PRUNED),
        ("cert-manager.io", &["certificates"], PRUNED),
    ])
}

fn crd_needs() -> BTreeSet<(String, String, String, String)> {
    let mut needs = expect(&[(
        "apiextensions.k8s.io",
        &["customresourcedefinitions"],
        &["create", "list", "watch"],
    )]);
    for crd in [
        "webhookendpoints.hookwarden.dev",
        "webhooksubscriptions.hookwarden.dev",
        "webhookreceiverpools.hookwarden.dev",
    ] {
        needs.insert((
            "apiextensions.k8s.io".to_owned(),
            "customresourcedefinitions".to_owned(),
            "patch".to_owned(),
            crd.to_owned(),
        ));
    }
    needs.insert((
        "apiextensions.k8s.io".to_owned(),
        "customresourcedefinitions".to_owned(),
        "get".to_owned(),
        "certificates.cert-manager.io".to_owned(),
    ));
    needs
}

fn no_wildcards(docs: &[Value]) {
    for doc in docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
    {
        for grant in grants(&doc["rules"]) {
            assert!(
                !(grant.0 == "*" || grant.1 == "*" || grant.2 == "*" || grant.1.contains("*")),
                "{} {} grants a wildcard: {grant:?}",
                doc["kind"],
                doc["metadata"]["name"]
            );
            // Optional children when a spec stops wanting them, and an
            // endpoint's own receivers (Deployment, Service, rendered
            // Secret, NetworkPolicy) once a pool serves it; the rest goes
            // with its owner through the garbage collector.
            assert!(
                grant.2 != "delete"
                    || [
                        "ingresses",
                        "poddisruptionbudgets",
                        "horizontalpodautoscalers",
                        "certificates",
                        "deployments",
                        "services",
                        "secrets",
                        "networkpolicies",
                    ]
                    .contains(&grant.1.as_str()),
                "the operator deletes only children a spec stops wanting: {grant:?}"
            );
            assert_ne!(grant.2, "escalate");
            assert_ne!(grant.2, "bind");
        }
    }
}

#[test]
fn the_charts_crds_are_the_generated_crds() {
    for (_, file) in hookwarden_crds::CRDS {
        let generated = std::fs::read(repo_root().join("crds").join(file))
            .unwrap_or_else(|e| panic!("crds/{file}: {e}"));
        let shipped = std::fs::read(chart_dir().join("crds").join(file)).unwrap_or_default();
        assert!(
            generated == shipped,
            "charts/hookwarden/crds/{file} differs from crds/{file}; \
             run `make crds` (it regenerates both)"
        );
    }
}

#[test]
fn chart_versions_follow_the_workspace() {
    let chart = std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml");
    let chart: Value = serde_yaml_ng::from_str(&chart).expect("Chart.yaml is YAML");
    let workspace = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["appVersion"], workspace);
    assert_eq!(chart["version"], workspace);
}

#[test]
fn lint_strict_is_clean_with_default_and_full_values() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("UTF-8 path");
    let values = full_values();
    for args in [
        vec!["lint", "--strict", chart],
        vec![
            "lint",
            "--strict",
            chart,
            "-f",
            values.to_str().expect("UTF-8 path"),
        ],
    ] {
        let output = run("helm", &args, None);
        let out = text(&output);
        assert!(output.status.success(), "helm {args:?} failed:\n{out}");
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "helm {args:?} is not clean:\n{out}"
        );
    }
}

#[test]
fn the_schema_refuses_bad_values_with_a_message() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--set", "replicas=two"],
            "at '/replicas': got string, want integer",
        ),
        (
            &["--set", "replicas=2"],
            "at '/replicas': maximum: got 2, want 1",
        ),
        (
            &["--set", "image.operator.pullPolicy=Sometimes"],
            "at '/image/operator/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
        ),
        (
            &["--set", "replica=1"],
            "additional properties 'replica' not allowed",
        ),
        (
            &["--set", "watchNamespace=Web_Hooks"],
            "at '/watchNamespace'",
        ),
        (
            &["--set", "watchNamespaces={webhooks,Web_Hooks}"],
            "at '/watchNamespaces/1'",
        ),
        (
            &["--set", "watchNamespaces={webhooks,webhooks}"],
            "at '/watchNamespaces': items at 0 and 1 are equal",
        ),
        (&["--set", "nats.url=localhost:4222"], "at '/nats/url'"),
        (
            &["--set", "tracing.otlpEndpoint=collector:4318"],
            "at '/tracing/otlpEndpoint'",
        ),
        (
            &["--set-string", "tracing.samplerArg=2"],
            "at '/tracing/samplerArg'",
        ),
        (
            &["--set", "nats.url=nats://n1:4222\\, nats://n2:4222"],
            "at '/nats/url'",
        ),
        (
            &["--set", "nats.url=nats://n1:4222\\,n2:4222"],
            "at '/nats/url'",
        ),
        (
            &["--set", "nats.streamCheckIntervalSeconds=0"],
            "at '/nats/streamCheckIntervalSeconds': minimum: got 0, want 1",
        ),
        (
            &["--set", "image.operator.repository="],
            "at '/image/operator/repository'",
        ),
        (
            &["--set", "podSecurityContext.runAsNonRoot=false"],
            "at '/podSecurityContext/runAsNonRoot'",
        ),
        (
            &["--set", "securityContext.allowPrivilegeEscalation=true"],
            "at '/securityContext/allowPrivilegeEscalation'",
        ),
        (
            &["--set", "serviceMonitor.interval=often"],
            "at '/serviceMonitor/interval'",
        ),
        (
            &[
                "--set",
                "leaderElection.enabled=true",
                "--set",
                "replicas=3",
            ],
            "at '/replicas': maximum: got 3, want 2",
        ),
        (
            &["--set", "metricsService.enabled=yes"],
            "at '/metricsService/enabled'",
        ),
        (
            &["--set", "receivers.trustedProxies={10.0.0.0}"],
            "at '/receivers/trustedProxies/0'",
        ),
        (
            // A header's name is not the setting's value.
            &["--set", "receivers.forwardedHeaders=X-Forwarded-For"],
            "at '/receivers/forwardedHeaders': value must be one of 'XForwardedFor', 'Forwarded'",
        ),
        (
            &["--set", "ingress.className=Nginx_Public"],
            "at '/ingress/className'",
        ),
        (
            &["--set", "certManager.issuer.name=Lets_Encrypt"],
            "at '/certManager/issuer/name'",
        ),
        (
            &["--set", "certManager.issuer.kind=clusterissuer"],
            "at '/certManager/issuer/kind': value must be one of 'ClusterIssuer', 'Issuer'",
        ),
        (
            &["--set", "logFormat=logfmt"],
            "at '/logFormat': value must be one of 'json', 'text'",
        ),
    ];
    for (args, message) in cases {
        let out = refused(args);
        assert!(
            out.contains(message),
            "helm template {args:?}: expected {message:?} in\n{out}"
        );
    }
}

/// `helm upgrade --reuse-values` from a chart without
/// `receivers.forwardedHeaders` leaves it unset: no empty flag (which the
/// operator would refuse to start with), the operator's own default.
#[test]
fn a_nats_clusters_servers_reach_the_operator_as_one_url() {
    let docs = documents(&render(&[
        "--set",
        "nats.url=nats://n1.nats.svc:4222\\,nats://n2.nats.svc:4222\\,nats://n3.nats.svc:4222",
    ]));
    let deployment = find(&docs, "Deployment", "hw-hookwarden").expect("Deployment");
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        args.as_array().expect("args").iter().any(|a| a
            == "--nats-url=nats://n1.nats.svc:4222,nats://n2.nats.svc:4222,nats://n3.nats.svc:4222"),
        "{args}"
    );
}

#[test]
fn an_unset_forwarded_headers_value_passes_no_flag() {
    let docs = documents(&render(&["--set", "receivers.forwardedHeaders=null"]));
    let deployment = find(&docs, "Deployment", "hw-hookwarden").expect("Deployment");
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    let args: Vec<&str> = args
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.iter()
            .any(|a| a.starts_with("--default-trusted-proxies=")),
        "{args:?}"
    );
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--default-forwarded-headers")),
        "{args:?}"
    );
}

#[test]
fn defaults_render_a_hardened_operator_for_all_namespaces() {
    let docs = documents(&render(&["--namespace", "hookwarden"]));
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole/hw-hookwarden",
            "ClusterRole/hw-hookwarden-crd",
            "ClusterRoleBinding/hw-hookwarden",
            "ClusterRoleBinding/hw-hookwarden-crd",
            "Deployment/hw-hookwarden",
            "Role/hw-hookwarden-source-ranges",
            "RoleBinding/hw-hookwarden-source-ranges",
            "ServiceAccount/hw-hookwarden",
        ]
        .map(str::to_owned)
        .into(),
        "no PDB, monitors, alerts, dashboard or metrics Service by default"
    );
    let version = env!("CARGO_PKG_VERSION");
    let deployment = find(&docs, "Deployment", "hw-hookwarden").expect("Deployment");
    assert_eq!(deployment["metadata"]["namespace"], "hookwarden");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "hw-hookwarden");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        format!("ghcr.io/hookwarden/operator:{version}")
    );
    assert_eq!(
        container["args"],
        serde_json::json!([
            "run",
            format!("--receiver-image=ghcr.io/hookwarden/receiver:{version}"),
            "--nats-url=nats://nats.nats.svc:4222",
            "--stream-check-interval=300",
            "--default-trusted-proxies=10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7",
            "--default-forwarded-headers=XForwardedFor",
            "--log-format=json",
        ]),
        "no --namespace: all namespaces; JSON logs like the receivers'"
    );
    assert!(
        container.get("volumeMounts").is_none(),
        "no NATS credentials mounted without nats.credentialsSecret"
    );
    assert_eq!(
        container["env"][0],
        serde_json::json!({"name": "RUST_LOG", "value": "info"})
    );
    assert_eq!(container["env"][1]["name"], "POD_NAME");
    let env = container["env"].as_array().expect("env");
    assert!(
        !env.iter()
            .any(|e| e["name"].as_str().is_some_and(|n| n.starts_with("OTEL_"))),
        "traces off by default: {env:?}"
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(container["resources"]["limits"]["memory"].is_string());
    // The operations port the operator serves by default (--metrics-listen
    // 0.0.0.0:8080), probed by name: readiness on /readyz (CRD installed,
    // endpoints listed), liveness only on /healthz.
    assert_eq!(
        container["ports"],
        serde_json::json!([{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"],
        serde_json::json!({"path": "/readyz", "port": "metrics"})
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"],
        serde_json::json!({"path": "/healthz", "port": "metrics"})
    );
    assert!(container["readinessProbe"]["periodSeconds"].is_u64());

    let role = find(&docs, "ClusterRole", "hw-hookwarden").expect("ClusterRole");
    assert_eq!(grants(&role["rules"]), namespaced_needs());
    let crd_role = find(&docs, "ClusterRole", "hw-hookwarden-crd").expect("CRD ClusterRole");
    assert_eq!(grants(&crd_role["rules"]), crd_needs());
    no_wildcards(&docs);
    for name in ["hw-hookwarden", "hw-hookwarden-crd"] {
        let binding = find(&docs, "ClusterRoleBinding", name).expect("binding");
        assert_eq!(binding["roleRef"]["name"], name);
        assert_eq!(
            binding["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": "hw-hookwarden", "namespace": "hookwarden"}])
        );
    }
}

#[test]
fn each_watched_namespace_gets_a_role_and_the_full_values_render() {
    let values = full_values();
    let docs = documents(&render(&[
        "--namespace",
        "hookwarden",
        "-f",
        values.to_str().expect("UTF-8 path"),
    ]));
    assert!(
        find(&docs, "ClusterRole", "hw-hookwarden").is_none(),
        "no cluster-wide rights"
    );
    assert!(find(&docs, "ClusterRoleBinding", "hw-hookwarden").is_none());
    // One Role + RoleBinding in each listed namespace, and nowhere else.
    let in_namespaces = |kind: &str| -> BTreeSet<String> {
        docs.iter()
            .filter(|d| d["kind"] == kind && d["metadata"]["name"] == "hw-hookwarden")
            .map(|d| {
                d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect()
    };
    let watched: BTreeSet<String> = ["payments", "webhooks"].map(str::to_owned).into();
    assert_eq!(in_namespaces("Role"), watched);
    assert_eq!(in_namespaces("RoleBinding"), watched);
    for doc in &docs {
        if doc["metadata"]["name"] != "hw-hookwarden" {
            continue;
        }
        if doc["kind"] == "Role" {
            assert_eq!(grants(&doc["rules"]), namespaced_needs());
        }
        if doc["kind"] == "RoleBinding" {
            assert_eq!(
                doc["roleRef"],
                serde_json::json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hw-hookwarden"})
            );
            assert_eq!(doc["subjects"][0]["name"], "hookwarden-operator");
            assert_eq!(doc["subjects"][0]["namespace"], "hookwarden");
        }
    }
    // The CRD is cluster-scoped: its rights stay a ClusterRole.
    let crd_role = find(&docs, "ClusterRole", "hw-hookwarden-crd").expect("CRD ClusterRole");
    assert_eq!(grants(&crd_role["rules"]), crd_needs());
    no_wildcards(&docs);

    let deployment = find(&docs, "Deployment", "hw-hookwarden").expect("Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        "registry.example.com/hookwarden/operator:0.1.0-rc.1"
    );
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(
        container["args"],
        serde_json::json!([
            "run",
            "--receiver-image=registry.example.com/hookwarden/receiver:0.1.0-rc.1",
            "--nats-url=nats://nats.messaging.svc:4222",
            "--stream-check-interval=120",
            "--default-trusted-proxies=10.244.0.0/16,fd00:10:244::/56",
            "--default-forwarded-headers=Forwarded",
            "--default-ingress-class=nginx",
            "--default-issuer-name=webhooks-ca",
            "--default-issuer-kind=Issuer",
            "--nats-credentials-file=/etc/hookwarden/nats/creds",
            "--namespace=payments,webhooks",
            "--leader-election",
            "--log-format=text",
        ])
    );
    // Only the .creds key of the operator's NATS Secret, read-only.
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"],
        serde_json::json!([{"name": "nats-credentials", "secret": {
            "secretName": "nats-creds", "defaultMode": 0o440,
            "items": [{"key": "operator.creds", "path": "creds"}],
        }}])
    );
    assert_eq!(
        container["volumeMounts"],
        serde_json::json!([{"name": "nats-credentials", "mountPath": "/etc/hookwarden/nats", "readOnly": true}])
    );
    assert_eq!(container["env"][0]["value"], "info,kube=warn");
    // Traces: the operator's, passed on to its workloads by name.
    let env: Vec<&serde_json::Value> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter(|e| e["name"].as_str().is_some_and(|n| n.starts_with("OTEL_")))
        .collect();
    assert_eq!(
        env,
        [
            &serde_json::json!({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.observability.svc:4318"}),
            &serde_json::json!({"name": "OTEL_TRACES_SAMPLER", "value": "parentbased_traceidratio"}),
            &serde_json::json!({"name": "OTEL_TRACES_SAMPLER_ARG", "value": "0.25"}),
        ]
    );
    let pdb = find(&docs, "PodDisruptionBudget", "hw-hookwarden").expect("PDB");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let monitor = find(&docs, "ServiceMonitor", "hw-hookwarden-receivers").expect("ServiceMonitor");
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        serde_json::json!(["payments", "webhooks"])
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    // The ServiceMonitor selects what the operator really labels its
    // receiver Services with (the operator's own label function).
    let child_labels = hookwarden_operator::resources::labels("github");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(
            child_labels.get(key).map(String::as_str),
            value.as_str(),
            "receiver Services do not carry {key}={value}"
        );
    }
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");

    // Leader election: the flag, the Lease's namespace, and rights on that
    // one Lease only (create cannot be limited by name).
    assert!(
        container["args"]
            .as_array()
            .is_some_and(|args| args.iter().any(|a| a == "--leader-election")),
        "{}",
        container["args"]
    );
    assert_eq!(
        container["env"][2],
        serde_json::json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})
    );
    let election =
        find(&docs, "Role", "hw-hookwarden-leader-election").expect("leader-election Role");
    assert_eq!(election["metadata"]["namespace"], "hookwarden");
    let lease = |verb: &str, name: &str| {
        (
            "coordination.k8s.io".to_owned(),
            "leases".to_owned(),
            verb.to_owned(),
            name.to_owned(),
        )
    };
    assert_eq!(
        grants(&election["rules"]),
        [
            lease("create", ""),
            lease("get", "hookwarden-operator"),
            lease("update", "hookwarden-operator"),
        ]
        .into()
    );
    assert_eq!(
        hookwarden_operator::leader::LEASE_NAME,
        "hookwarden-operator",
        "the Role names the Lease the operator uses"
    );
    let election_binding = find(&docs, "RoleBinding", "hw-hookwarden-leader-election")
        .expect("leader-election RoleBinding");
    assert_eq!(election_binding["metadata"]["namespace"], "hookwarden");
    assert_eq!(
        election_binding["roleRef"],
        serde_json::json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hw-hookwarden-leader-election"})
    );
    assert_eq!(
        election_binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "hookwarden-operator", "namespace": "hookwarden"}])
    );

    let service = find(&docs, "Service", "hw-hookwarden-metrics").expect("metrics Service");
    assert_eq!(service["metadata"]["namespace"], "hookwarden");
    assert_eq!(
        service["spec"]["ports"],
        serde_json::json!([{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}])
    );
    // It selects exactly the operator's pods, not the receivers.
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        service["spec"]["selector"]["app.kubernetes.io/name"],
        "hookwarden-operator"
    );
}

/// The monitoring objects ship exactly the files the tests check: the
/// PrometheusRule's spec is `rules/hookwarden.rules.yaml` (which
/// tests/tests/it/alerts.rs runs through promtool), the dashboard ConfigMap
/// holds `dashboards/hookwarden.json`, and the monitors keep the metrics'
/// `endpoint` label and select what the operator really labels its pods with.
#[test]
fn the_alerts_and_the_dashboard_ship_the_tested_files() {
    let values = full_values();
    let docs = documents(&render(&[
        "--namespace",
        "hookwarden",
        "-f",
        values.to_str().expect("UTF-8 path"),
    ]));

    let rule = find(&docs, "PrometheusRule", "hw-hookwarden").expect("PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "hookwarden");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let rules_file =
        std::fs::read_to_string(chart_dir().join("rules/hookwarden.rules.yaml")).expect("rules");
    let rules: Value = serde_yaml_ng::from_str(&rules_file).expect("rules YAML");
    assert_eq!(rule["spec"], rules, "the PrometheusRule is the tested file");
    assert!(
        rule["spec"]["groups"][0]["rules"][0]["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("{{ $labels.endpoint }}")),
        "helm leaves Prometheus' templates alone"
    );

    let dashboard = find(&docs, "ConfigMap", "hw-hookwarden-dashboard").expect("dashboard");
    assert_eq!(dashboard["metadata"]["namespace"], "monitoring");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        dashboard["metadata"]["annotations"]["grafana_folder"],
        "Webhooks"
    );
    let shipped: Value = serde_json::from_str(
        dashboard["data"]["hookwarden.json"]
            .as_str()
            .expect("hookwarden.json"),
    )
    .expect("the dashboard is JSON");
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("dashboards/hookwarden.json"))
            .expect("dashboard"),
    )
    .expect("dashboard JSON");
    assert_eq!(shipped, file);
    assert_eq!(shipped["uid"], "hookwarden");

    // Every monitor keeps our `endpoint` label (the Prometheus Operator
    // would otherwise overwrite it with the port's name).
    let receivers = find(&docs, "ServiceMonitor", "hw-hookwarden-receivers").expect("receivers");
    let operator = find(&docs, "ServiceMonitor", "hw-hookwarden-operator").expect("operator");
    let forwarders = find(&docs, "PodMonitor", "hw-hookwarden-forwarders").expect("forwarders");
    assert_eq!(receivers["spec"]["endpoints"][0]["honorLabels"], true);
    assert_eq!(operator["spec"]["endpoints"][0]["honorLabels"], true);
    assert_eq!(
        forwarders["spec"]["podMetricsEndpoints"][0]["honorLabels"],
        true
    );
    assert_eq!(
        forwarders["spec"]["podMetricsEndpoints"][0]["port"],
        "metrics"
    );
    assert_eq!(
        forwarders["spec"]["namespaceSelector"]["matchNames"],
        serde_json::json!(["payments", "webhooks"])
    );
    let forwarder_labels =
        hookwarden_operator::resources::Component::Forwarder.labels("to-billing");
    for (key, value) in forwarders["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(
            forwarder_labels.get(key).map(String::as_str),
            value.as_str(),
            "forwarder pods do not carry {key}={value}"
        );
    }
    // The operator's monitor selects the operator's metrics Service.
    let service = find(&docs, "Service", "hw-hookwarden-metrics").expect("metrics Service");
    assert_eq!(
        operator["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"]
    );

    // Off by default (see defaults_render_a_hardened_operator_for_all_namespaces),
    // and the schema refuses unknown keys under the new values.
    for bad in [
        "prometheusRule.severity=page",
        "grafanaDashboard.folder=x",
        "grafanaDashboard.namespace=Not_A_Namespace",
    ] {
        refused(&["--set", bad]);
    }
}

/// The packaged chart leaves out promtool's unit tests (`.helmignore`) and
/// keeps the files its templates read.
#[test]
fn the_packaged_chart_holds_the_rules_but_not_their_tests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().expect("UTF-8 path");
    let chart = chart_dir();
    let output = run(
        "helm",
        &["package", chart.to_str().expect("UTF-8 path"), "-d", out],
        None,
    );
    assert!(output.status.success(), "{}", text(&output));
    let package = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .expect("a .tgz");
    let listing = Command::new("tar")
        .arg("tzf")
        .arg(&package)
        .output()
        .expect("tar runs");
    assert!(listing.status.success());
    let files = String::from_utf8_lossy(&listing.stdout);
    assert!(
        files.contains("hookwarden/rules/hookwarden.rules.yaml"),
        "{files}"
    );
    assert!(
        files.contains("hookwarden/dashboards/hookwarden.json"),
        "{files}"
    );
    assert!(!files.contains("rules.test.yaml"), "{files}");
}

/// Server-side dry run: the API server validates every object (schemas,
/// defaulting, admission) without storing anything.
fn accepted_by_the_api_server(namespace: &str, docs: &[Value]) {
    let stream: Vec<String> = docs
        .iter()
        .map(|d| serde_json::to_string(d).expect("JSON"))
        .collect();
    let stream = stream.join("\n---\n");
    let output = run(
        "kubectl",
        &[
            "apply",
            "--dry-run=server",
            "--namespace",
            namespace,
            "-f",
            "-",
        ],
        Some(&stream),
    );
    let out = text(&output);
    assert!(
        output.status.success(),
        "the API server refused the chart:\n{out}"
    );
    for doc in docs {
        let name = doc["metadata"]["name"].as_str().unwrap_or("?");
        assert!(
            out.contains(&format!("/{name} ")),
            "{name} not applied:\n{out}"
        );
    }
}

/// Kinds of the Prometheus Operator, whose CRDs the test control plane lacks.
const MONITORING_KINDS: [&str; 3] = ["ServiceMonitor", "PodMonitor", "PrometheusRule"];

#[tokio::test]
async fn the_api_server_accepts_the_rendered_manifests() {
    let namespace = TestNamespace::create("chart")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ns = namespace.name();

    let defaults = documents(&render(&["--namespace", ns, "--include-crds"]));
    assert!(
        defaults
            .iter()
            .any(|d| d["kind"] == "CustomResourceDefinition"),
        "--include-crds renders the chart's CRD"
    );
    accepted_by_the_api_server(ns, &defaults);

    // The full values, watching the test namespace itself so the Role lands
    // in a namespace that exists. The Prometheus Operator's CRDs
    // (MONITORING_KINDS) are not installed in the shared control plane; those
    // objects are checked by shape in
    // `each_watched_namespace_gets_a_role_and_the_full_values_render` and
    // `the_alerts_and_the_dashboard_ship_the_tested_files`, and the rules by
    // promtool (tests/tests/it/alerts.rs).
    let values = full_values();
    let watch = format!("watchNamespaces={{{ns}}}");
    let dashboard_namespace = format!("grafanaDashboard.namespace={ns}");
    let full: Vec<Value> = documents(&render(&[
        "--namespace",
        ns,
        "-f",
        values.to_str().expect("UTF-8 path"),
        "--set",
        &watch,
        "--set",
        &dashboard_namespace,
    ]))
    .into_iter()
    .filter(|d| !MONITORING_KINDS.contains(&d["kind"].as_str().unwrap_or_default()))
    .collect();
    assert!(full.iter().any(|d| d["kind"] == "Role"));
    assert!(
        full.iter().any(|d| d["kind"] == "ConfigMap"),
        "the dashboard ConfigMap is checked by the API server"
    );
    accepted_by_the_api_server(ns, &full);
}

/// The packages each of the Dockerfile's `cargo build` commands names with
/// `-p` (each up to the end of its command: other commands have their own
/// `-p` flags).
fn dockerfile_builds(dockerfile: &str) -> Vec<BTreeSet<String>> {
    let words: Vec<&str> = dockerfile.split_whitespace().collect();
    let builds: Vec<BTreeSet<String>> = words
        .windows(2)
        .enumerate()
        .filter(|(_, w)| *w == ["cargo", "build"])
        .map(|(start, _)| {
            let build: Vec<&str> = words[start..]
                .iter()
                .take_while(|w| **w != "&&")
                .copied()
                .collect();
            build
                .windows(2)
                .filter(|w| w[0] == "-p")
                .map(|w| w[1].to_owned())
                .collect()
        })
        .collect();
    assert!(!builds.is_empty(), "a cargo build in the Dockerfile");
    builds
}

fn workspace_packages(root: &Path) -> BTreeSet<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let members = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("members = "))
        .expect("workspace members");
    members
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .map(|member| {
            let manifest = std::fs::read_to_string(root.join(member).join("Cargo.toml"))
                .expect("member Cargo.toml");
            manifest
                .lines()
                .find_map(|l| l.trim().strip_prefix("name = "))
                .expect("package name")
                .trim_matches('"')
                .to_owned()
        })
        .collect()
}

/// A cheap sanity check, not a substitute for building the images (no
/// container engine runs where the tests run).
#[test]
fn the_dockerfile_builds_both_binaries_from_workspace_packages() {
    let root = repo_root();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let lower = dockerfile.to_lowercase();
    for target in ["operator", "receiver"] {
        assert!(
            lower.lines().any(
                |l| l.starts_with("from gcr.io/distroless/cc-debian12:nonroot ")
                    && l.trim_end().ends_with(&format!(" as {target}"))
            ),
            "no distroless stage named {target}"
        );
        assert!(
            dockerfile.contains(&format!(
                "ENTRYPOINT [\"/usr/local/bin/hookwarden-{target}\"]"
            )),
            "the {target} image's entrypoint is its binary"
        );
    }
    assert!(
        dockerfile.contains("--release --locked"),
        "built from Cargo.lock"
    );
    assert_eq!(dockerfile.matches("USER 65532").count(), 2);
    let builds = dockerfile_builds(&dockerfile);
    let packages: BTreeSet<String> = builds.iter().flatten().cloned().collect();
    assert_eq!(
        packages,
        ["hookwarden-operator", "hookwarden-receiver"]
            .map(str::to_owned)
            .into()
    );
    // One cargo invocation unifies the features of what both link, and the
    // operator turns on crds' `kube` feature: the receiver image would
    // carry kube, which the data plane is built without (deps-check).
    assert!(
        builds
            .iter()
            .all(|build| !(build.contains("hookwarden-receiver")
                && build.contains("hookwarden-operator"))),
        "the receiver is built in a cargo invocation of its own: {builds:?}"
    );
    let workspace = workspace_packages(&root);
    assert!(
        packages.is_subset(&workspace),
        "{packages:?} are not all workspace members {workspace:?}"
    );
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).expect(".dockerignore");
    for excluded in ["target/", ".git"] {
        assert!(
            ignore.lines().any(|l| l.trim() == excluded),
            ".dockerignore misses {excluded}"
        );
    }
}

#[test]
fn the_notes_tell_the_next_step() {
    let chart = chart_dir();
    let values = full_values();
    let args = [
        "install",
        "hw",
        chart.to_str().expect("UTF-8 path"),
        "--namespace",
        "hookwarden",
        "--dry-run=client",
        "-f",
        values.to_str().expect("UTF-8 path"),
    ];
    let output = run("helm", &args, None);
    let out = text(&output);
    assert!(output.status.success(), "helm {args:?} failed:\n{out}");
    let notes = out.split_once("NOTES:").map(|(_, n)| n).unwrap_or_default();
    for expected in [
        "watching namespaces payments, webhooks only",
        "NS=payments",
        "kubectl -n $NS apply -f examples/github.yaml",
        "kubectl -n $NS get webhookendpoints",
        "get secret github-webhook -o jsonpath='{.data.secret}'",
        "receivers.trustedProxies of this release\n(10.244.0.0/16, fd00:10:244::/56)",
        "spec.forwardedHeaders, else Forwarded\n(receivers.forwardedHeaders)",
        "with the credentials in Secret\nnats-creds (key operator.creds)",
        "not removed by \"helm uninstall\"",
    ] {
        assert!(
            notes.contains(expected),
            "NOTES miss {expected:?}:\n{notes}"
        );
    }
}

fn kubectl_as(user: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut all = vec!["--as", user];
    all.extend_from_slice(args);
    run("kubectl", &all, stdin)
}

/// The Role of a one-namespace install, bound for real in a test namespace,
/// lets the operator's ServiceAccount server-side apply its children there
/// (a first apply is authorized as create), and nothing outside it.
#[tokio::test]
async fn the_bound_role_lets_the_operator_apply_its_children_and_no_more() {
    let namespace = TestNamespace::create("chart-rbac")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ns = namespace.name();
    let values = full_values();
    let watch = format!("watchNamespaces={{{ns}}}");
    // Only the namespaced RBAC objects are created for real: they vanish
    // with the test namespace and grant nothing elsewhere.
    let rbac: Vec<Value> = documents(&render(&[
        "--namespace",
        ns,
        "-f",
        values.to_str().expect("UTF-8 path"),
        "--set",
        &watch,
    ]))
    .into_iter()
    .filter(|d| {
        ["ServiceAccount", "Role", "RoleBinding"].contains(&d["kind"].as_str().unwrap_or(""))
    })
    .collect();
    // ServiceAccount, the Role and its binding, the leader-election Role
    // and its binding (the full values enable leader election), and the
    // Role and binding of the ConfigMap of source range lists.
    assert_eq!(rbac.len(), 7);
    let stream: Vec<String> = rbac.iter().map(|d| d.to_string()).collect();
    let output = run(
        "kubectl",
        &["apply", "--namespace", ns, "-f", "-"],
        Some(&stream.join("\n---\n")),
    );
    assert!(
        output.status.success(),
        "RBAC not applied:\n{}",
        text(&output)
    );

    let operator = format!("system:serviceaccount:{ns}:hookwarden-operator");
    let children = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "probe-receiver"}, "stringData": {"endpoint.yaml": "x"}},
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "probe-receiver"},
             "spec": {"selector": {"app": "probe"}, "ports": [{"port": 80}]}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "probe-receiver"},
             "spec": {"selector": {"matchLabels": {"app": "probe"}},
                      "template": {"metadata": {"labels": {"app": "probe"}},
                                   "spec": {"containers": [{"name": "r", "image": "probe"}]}}}},
        ],
    })
    .to_string();
    let apply = |target: &str| {
        kubectl_as(
            &operator,
            &[
                "apply",
                "--server-side",
                "--field-manager=hookwarden-operator",
                "--dry-run=server",
                "--namespace",
                target,
                "-f",
                "-",
            ],
            Some(&children),
        )
    };
    // The RBAC authorizer learns of new bindings through its informers:
    // allow it a moment.
    let mut attempt = 0;
    let applied = loop {
        let output = apply(ns);
        attempt += 1;
        if output.status.success() || attempt == 20 {
            break output;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert!(
        applied.status.success(),
        "the operator's ServiceAccount cannot apply its children:\n{}",
        text(&applied)
    );
    let elsewhere = apply("default");
    assert!(
        !elsewhere.status.success() && text(&elsewhere).contains("forbidden"),
        "the Role must not reach other namespaces:\n{}",
        text(&elsewhere)
    );
    for (verb, group, resource, subresource, expected) in [
        ("list", "hookwarden.dev", "webhookendpoints", "", true),
        (
            "patch",
            "hookwarden.dev",
            "webhookendpoints",
            "status",
            true,
        ),
        ("watch", "hookwarden.dev", "webhooksubscriptions", "", true),
        // The finalizer that removes a deleted subscription's consumer.
        ("patch", "hookwarden.dev", "webhooksubscriptions", "", true),
        (
            "patch",
            "hookwarden.dev",
            "webhooksubscriptions",
            "status",
            true,
        ),
        (
            "delete",
            "hookwarden.dev",
            "webhooksubscriptions",
            "",
            false,
        ),
        ("create", "events.k8s.io", "events", "", true),
        // An endpoint's receivers, once a pool serves it.
        ("delete", "apps", "deployments", "", true),
        ("watch", "hookwarden.dev", "webhookreceiverpools", "", true),
        (
            "patch",
            "hookwarden.dev",
            "webhookreceiverpools",
            "status",
            true,
        ),
        ("patch", "hookwarden.dev", "webhookreceiverpools", "", false),
        ("update", "hookwarden.dev", "webhookendpoints", "", false),
        ("list", "", "pods", "", false),
        ("create", "rbac.authorization.k8s.io", "roles", "", false),
        ("create", "coordination.k8s.io", "leases", "", true),
        ("list", "coordination.k8s.io", "leases", "", false),
        ("delete", "coordination.k8s.io", "leases", "", false),
    ] {
        let allowed = subject_access(&operator, ns, verb, group, resource, subresource);
        assert_eq!(
            allowed, expected,
            "may the operator {verb} {resource}/{subresource} in group {group:?}?"
        );
    }
}

/// Asks the API server's authorizer (a SubjectAccessReview, as admin) whether
/// `user` may `verb` the resource in `namespace`. Unlike `kubectl auth can-i`
/// this needs no discovery, so it works while the CRD is not installed.
fn subject_access(
    user: &str,
    namespace: &str,
    verb: &str,
    group: &str,
    resource: &str,
    subresource: &str,
) -> bool {
    let review = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "resourceAttributes": {
                "namespace": namespace,
                "verb": verb,
                "group": group,
                "resource": resource,
                "subresource": subresource,
            },
        },
    })
    .to_string();
    let output = run(
        "kubectl",
        &["create", "-o", "json", "-f", "-"],
        Some(&review),
    );
    assert!(
        output.status.success(),
        "SubjectAccessReview failed:\n{}",
        text(&output)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("JSON review");
    answer["status"]["allowed"] == true
}
