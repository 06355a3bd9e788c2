//! `spec.allowedSources` through the operator, against the real control
//! plane and a loopback list server serving GitHub's `meta` document (the
//! saved sample with its `hooks` replaced): the controller runs in-process
//! with a range fetcher routed to the list server (`RangesConfig::fetcher`,
//! which the binary never sets).
//!
//! Two endpoints naming the same list share one fetch and one ConfigMap
//! entry; the fetched ranges are rendered as concrete CIDRs into each
//! receiver's `endpoint.yaml` (without `allowedSources`, so receivers never
//! fetch) without rolling the pods; a changed list is rendered again and
//! recorded as an Event naming the added and removed ranges; failing and
//! implausible answers keep the last good list; a restarted operator whose
//! provider is down keeps serving the saved list, also to a new endpoint.
//! (That a receiver applies a changed `allowedSourceCidrs` without a
//! restart, refusing the removed range, is `receiver/tests/it/reload.rs` and
//! `receiver/tests/it/source_ranges.rs`.)

use std::time::Duration;

use hookwarden_crds::WebhookEndpoint;
use hookwarden_operator::ops::Ops;
use hookwarden_operator::ranges::{CONFIGMAP_NAME, RangesConfig};
use hookwarden_operator::resources::CONFIG_HASH_ANNOTATION;
use hookwarden_tests::{ListAnswer, ListServer, NatsServer, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};

use crate::{Operator, eventually, operator_config, run_operator};

/// An operator managing streams on `nats` whose range fetcher asks
/// `server`, refreshing every second.
async fn start_operator(ns: &TestNamespace, nats: &NatsServer, server: &ListServer) -> Operator {
    let mut config = operator_config(ns, nats.url());
    config.ranges = RangesConfig {
        // The test's namespace stands in for the operator's own.
        namespace: Some(ns.name().to_owned()),
        refresh: Duration::from_secs(1),
        max_age: Duration::from_secs(3600),
        fetcher: Some(std::sync::Arc::new(server.fetcher(Duration::from_secs(2)))),
    };
    run_operator(ns, config, Ops::default(), None).await
}

fn meta(hooks: &[&str]) -> Vec<u8> {
    let sample = include_bytes!("../../../core/src/ranges/testdata/github-meta.json");
    let mut document: serde_json::Value = serde_json::from_slice(sample).expect("sample");
    document["hooks"] = serde_json::json!(hooks);
    document.to_string().into_bytes()
}

async fn apply_endpoint(ns: &TestNamespace, name: &str) {
    let endpoint = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1",
        "kind": "WebhookEndpoint",
        "metadata": {"name": name},
        "spec": {
            "provider": "github",
            "replicas": 1,
            "secretRefs": [{"name": "gh", "key": "secret"}],
            "allowedSources": [{"provider": "github", "service": "hooks"}],
        },
    });
    ns.api::<WebhookEndpoint>()
        .patch(
            name,
            &PatchParams::apply("hookwarden-test"),
            &Patch::Apply(&endpoint),
        )
        .await
        .expect("endpoint applied");
}

/// The `allowedSourceCidrs` of the rendered `endpoint.yaml` of `name`, once
/// it has no `allowedSources` left.
async fn rendered_cidrs(ns: &TestNamespace, name: &str) -> Option<Vec<String>> {
    let secret = ns
        .api::<Secret>()
        .get_opt(&format!("{name}-receiver"))
        .await
        .ok()??;
    let yaml = secret.data.as_ref()?.get("endpoint.yaml")?;
    let endpoint = hookwarden_crds::from_yaml(&String::from_utf8_lossy(&yaml.0)).ok()?;
    endpoint
        .spec
        .allowed_sources
        .is_empty()
        .then_some(endpoint.spec.allowed_source_cidrs)
}

async fn config_hash(ns: &TestNamespace, name: &str) -> Option<String> {
    let deployment = ns
        .api::<Deployment>()
        .get_opt(&format!("{name}-receiver"))
        .await
        .ok()??;
    deployment
        .spec
        .template
        .metadata?
        .annotations?
        .get(CONFIG_HASH_ANNOTATION)
        .cloned()
}

async fn ranges_condition(ns: &TestNamespace, name: &str) -> Option<(String, String)> {
    let endpoint = ns.api::<WebhookEndpoint>().get(name).await.ok()?;
    endpoint
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "SourceRangesCurrent")
        .map(|c| (c.status, c.message))
}

#[tokio::test]
async fn lists_are_fetched_once_rendered_refreshed_and_kept() {
    let ns = TestNamespace::create("ranges").await.expect("namespace");
    hookwarden_operator::crd::install(ns.client(), Duration::from_secs(30))
        .await
        .expect("CRD installs");
    let nats = NatsServer::start().await.expect("nats-server");
    let server = ListServer::start(&["api.github.com"]).await;
    server.serve(
        "/meta",
        ListAnswer::ok(meta(&["127.0.0.0/8", "192.30.252.0/22"])),
    );
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gh"},
        "stringData": {"secret": "ranges-s3cr3t"},
    });
    ns.api::<Secret>()
        .patch(
            "gh",
            &PatchParams::apply("hookwarden-test"),
            &Patch::Apply(&secret),
        )
        .await
        .expect("secret");
    let operator = start_operator(&ns, &nats, &server).await;
    for name in ["gh-a", "gh-b"] {
        apply_endpoint(&ns, name).await;
    }
    for name in ["gh-a", "gh-b"] {
        let cidrs = eventually(&format!("{name}'s rendered ranges"), || {
            rendered_cidrs(&ns, name)
        })
        .await;
        assert_eq!(cidrs, ["127.0.0.0/8", "192.30.252.0/22"]);
        let (status, message) =
            eventually("SourceRangesCurrent", || ranges_condition(&ns, name)).await;
        assert_eq!(status, "True", "{message}");
        assert!(
            message.contains("github hooks (https://api.github.com/meta): 2 ranges"),
            "{message}"
        );
    }
    // One list for both endpoints, kept in the ConfigMap.
    let map = eventually("the saved list", || async {
        ns.api::<ConfigMap>().get_opt(CONFIGMAP_NAME).await.ok()?
    })
    .await;
    let data = map.data.unwrap_or_default();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["github-hooks"]);
    assert!(data["github-hooks"].contains("127.0.0.0/8"));
    let hash = config_hash(&ns, "gh-a").await.expect("hash");

    // The provider changes the list: rendered again, the pods not rolled,
    // an Event names what changed.
    server.serve(
        "/meta",
        ListAnswer::ok(meta(&["10.0.0.0/8", "192.30.252.0/22"])),
    );
    for name in ["gh-a", "gh-b"] {
        eventually(&format!("{name}'s new ranges"), || async {
            (rendered_cidrs(&ns, name).await? == ["10.0.0.0/8", "192.30.252.0/22"]).then_some(())
        })
        .await;
    }
    assert_eq!(
        config_hash(&ns, "gh-a").await,
        Some(hash.clone()),
        "hot reload, no roll"
    );
    let note = eventually("the SourceRangesChanged Event", || async {
        let events = ns.api::<Event>().list(&ListParams::default()).await.ok()?;
        events
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("SourceRangesChanged"))
            .find_map(|e| e.note)
    })
    .await;
    assert!(
        note.contains("added 10.0.0.0/8") && note.contains("removed 127.0.0.0/8"),
        "{note}"
    );

    // Failing, malformed and implausible answers keep the last good list.
    for (answer, what) in [
        (ListAnswer::status(503), "a failing server"),
        (ListAnswer::ok(meta(&["0.0.0.0/0"])), "the whole internet"),
        (
            ListAnswer::ok(b"{\"hooks\": [\"nonsense\"]}".to_vec()),
            "a malformed list",
        ),
    ] {
        let hits = server.hits();
        server.serve("/meta", answer);
        eventually(&format!("fetches against {what}"), || async {
            (server.hits() >= hits + 2).then_some(())
        })
        .await;
        assert_eq!(
            rendered_cidrs(&ns, "gh-a").await.expect("rendered"),
            ["10.0.0.0/8", "192.30.252.0/22"],
            "after {what}"
        );
    }
    let (status, message) = eventually("the failure in the condition", || async {
        let (status, message) = ranges_condition(&ns, "gh-a").await?;
        message
            .contains("the last fetch failed")
            .then_some((status, message))
    })
    .await;
    assert_eq!(status, "True", "still current: {message}");

    // A restart while the provider is down: the saved list is used, also
    // by an endpoint created now.
    operator.stop().await;
    let down = ListServer::start(&["api.github.com"]).await;
    down.serve("/meta", ListAnswer::status(503));
    let _operator = start_operator(&ns, &nats, &down).await;
    apply_endpoint(&ns, "gh-c").await;
    let cidrs = eventually("gh-c's ranges from the saved list", || {
        rendered_cidrs(&ns, "gh-c")
    })
    .await;
    assert_eq!(cidrs, ["10.0.0.0/8", "192.30.252.0/22"]);
    assert_eq!(
        rendered_cidrs(&ns, "gh-a").await.expect("rendered"),
        ["10.0.0.0/8", "192.30.252.0/22"]
    );
}

/// `POST /` of a GitHub delivery signed with `secret` at `ip:8080` over
/// HTTP/1.0, as the node's proxy forwarding for `client` over HTTPS: the
/// status code and the answer's body, `None` while nothing answers.
fn deliver_as_proxy(ip: &str, secret: &[u8], client: &str, id: &str) -> Option<(u16, String)> {
    use hookwarden_core::verify::registry;
    use hookwarden_core::verify::sending::SignInput;
    use std::io::{Read, Write};
    let delivery = registry::preset(hookwarden_crds::Provider::Github)
        .sign(
            secret,
            &SignInput {
                event: "push",
                id,
                body: Some(format!(r#"{{"id":"{id}"}}"#).into_bytes()),
                now: hookwarden_core::ranges::fetch::unix_now(),
                url: "https://hooks.example/",
                spec: None,
                token_key: None,
            },
        )
        .expect("signs");
    let mut request = format!(
        "POST / HTTP/1.0\r\nHost: hooks.example\r\nContent-Length: {}\r\nX-Forwarded-For: {client}\r\nX-Forwarded-Proto: https\r\n",
        delivery.body.len()
    );
    for (name, value) in &delivery.headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = std::net::TcpStream::connect((ip, 8080)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    stream.write_all(&delivery.body).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Some((status, body))
}

/// The whole way, with receivers as processes run from their Deployment
/// (the pod runner): a list the provider changes is fetched by the
/// operator, rendered into the receivers' Secret, refreshed in the running
/// pod's volume as the kubelet does, and hot-reloaded by the receiver: a
/// delivery from the removed range is refused, one from the added range
/// accepted, without the pod being replaced.
#[tokio::test]
async fn a_changed_list_reaches_the_running_receiver_pod() {
    use hookwarden_tests::deployed::{build_workspace_binaries, process_node_address};
    use k8s_openapi::api::core::v1::Pod;
    build_workspace_binaries().unwrap_or_else(|e| panic!("{e}"));
    let node = process_node_address().unwrap_or_else(|e| panic!("{e}"));
    let ns = TestNamespace::create_on_process_node("ranges-pods")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    hookwarden_operator::crd::install(ns.client(), Duration::from_secs(30))
        .await
        .expect("CRDs install");
    let server = ListServer::start(&["api.github.com"]).await;
    server.serve("/meta", ListAnswer::ok(meta(&["203.0.113.0/24"])));
    let nats = NatsServer::start().await.expect("nats-server");
    let mut config = operator_config(&ns, nats.url());
    // The pod runner's node address is the source of host connections:
    // the receivers' trusted proxy here, as the ingress controller would be.
    config.settings.default_trusted_proxies = vec![format!("{node}/32")];
    // An image the pod runner runs (as the workspace's receiver binary).
    config.settings.receiver_image = "ghcr.io/hookwarden/receiver:test".to_owned();
    config.ranges = RangesConfig {
        namespace: Some(ns.name().to_owned()),
        refresh: Duration::from_secs(1),
        max_age: Duration::from_secs(3600),
        fetcher: Some(std::sync::Arc::new(server.fetcher(Duration::from_secs(2)))),
    };
    let _operator = run_operator(&ns, config, Ops::default(), Some(nats)).await;

    let secret = b"pod-ranges-secret-value";
    ns.api::<Secret>()
        .patch(
            "gh",
            &PatchParams::apply("hookwarden-test"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gh"},
                "stringData": {"secret": String::from_utf8_lossy(secret)},
            })),
        )
        .await
        .expect("secret applied");
    apply_endpoint(&ns, "github").await;

    let pods = ns.api::<Pod>();
    let selector = ListParams::default().labels("app.kubernetes.io/instance=github");
    let (pod_uid, ip) = eventually("the receiver pod Ready on the process node", || async {
        let list = pods.list(&selector).await.ok()?;
        let pod = list.items.into_iter().find(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })?;
        let ip = pod.status.as_ref()?.pod_ip.clone()?;
        Some((pod.metadata.uid?, ip))
    })
    .await;

    let attempt = std::sync::atomic::AtomicU32::new(0);
    let deliver = |client: &'static str| {
        let ip = ip.clone();
        let n = attempt.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            tokio::task::spawn_blocking(move || {
                deliver_as_proxy(&ip, secret, client, &format!("pod-ranges-{n}"))
            })
            .await
            .ok()
            .flatten()
        }
    };
    eventually("a delivery from the listed range stored", || async {
        let (status, _) = deliver("203.0.113.7").await?;
        (status == 200).then_some(())
    })
    .await;
    let (status, body) = deliver("198.51.100.7").await.expect("an answer");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("ip_not_allowed"), "{body}");

    // GitHub changes its list: the old range removed, a new one added.
    server.serve("/meta", ListAnswer::ok(meta(&["198.51.100.0/24"])));
    eventually("the added range accepted by the running pod", || async {
        let (status, _) = deliver("198.51.100.7").await?;
        (status == 200).then_some(())
    })
    .await;
    let (status, body) = deliver("203.0.113.7").await.expect("an answer");
    assert_eq!(status, 403, "the removed range is refused: {body}");
    assert!(body.contains("ip_not_allowed"), "{body}");

    // The same pod all along: the change was a hot reload, not a rollout.
    let list = pods.list(&selector).await.expect("pods");
    let live: Vec<_> = list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    assert_eq!(live, vec![pod_uid]);
}
