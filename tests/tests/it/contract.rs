//! The operator/receiver contract: the configuration the operator renders
//! (its Secret, mounted as its Deployment says, read as its container
//! arguments say, parsed by the receiver's own flag parser) starts the
//! receiver exactly as `hookwarden-receiver serve` starts, and that receiver
//! verifies a correctly signed delivery forwarded by a trusted proxy and
//! stores it in a real JetStream, on the path the Ingress forwards.

use std::path::Path;

use clap::Parser;
use hmac::{Hmac, Mac};
use hookwarden_crds::WebhookEndpoint;
use hookwarden_operator::resources::validate::ValidEndpoint;
use hookwarden_operator::resources::{self, ResolvedSecrets, Settings};
use hookwarden_receiver::app;
use hookwarden_tests::NatsServer;
use sha2::Sha256;

const MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: github, namespace: contract, uid: 6f0c3c1e-0000-4000-8000-000000000001}\n\
    spec:\n  provider: github\n  secretRefs: [{name: gh, key: secret}]\n  \
    ingress: {host: hooks.example.com, path: /hooks/github}\n";
const SECRET: &[u8] = b"the-contract-secret";

/// Lays the rendered Secret out as the kubelet would mount it for the
/// Deployment (volume `items`: key -> path under the mount path), under
/// `root` instead of the container's mount path; returns the container's
/// arguments with the mount path moved to `root`, the listeners moved to
/// `127.0.0.1:0` (the kernel picks the ports) and NATS to `nats_url` (what
/// differs between a pod and this test; nothing else is touched).
fn materialize(children: &resources::Children, root: &Path, nats_url: &str) -> Vec<String> {
    let deployment = serde_json::to_value(&children.deployment).expect("deployment JSON");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let mount = container["volumeMounts"][0]["mountPath"]
        .as_str()
        .expect("mount path");
    let volume = &pod["volumes"][0]["secret"];
    assert_eq!(
        volume["secretName"].as_str(),
        children.secret.metadata.name.as_deref(),
        "the Deployment mounts the rendered Secret"
    );
    let data = children.secret.data.as_ref().expect("rendered data");
    for item in volume["items"].as_array().expect("items") {
        let key = item["key"].as_str().expect("key");
        let path = root.join(item["path"].as_str().expect("path"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &data.get(key).expect("key rendered").0).expect("write");
    }
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    let mut rewritten = Vec::new();
    let mut previous = "";
    for arg in args {
        let value = match previous {
            "--listen" | "--metrics-listen" => "127.0.0.1:0".to_owned(),
            "--nats-url" => nats_url.to_owned(),
            _ => match arg.strip_prefix(mount) {
                Some(rest) => root
                    .join(rest.trim_start_matches('/'))
                    .display()
                    .to_string(),
                None => arg.to_owned(),
            },
        };
        rewritten.push(value);
        previous = arg;
    }
    rewritten
}

/// `hookwarden-receiver serve`'s flags ([`app::ServeArgs`]), parsed as the
/// binary parses them. A receiver Deployment runs `serve` only; the binary's
/// other subcommand, `forward`, is a forwarder's (`tests/tests/it/deployed.rs`).
#[derive(Debug, clap::Parser)]
struct ReceiverCommand {
    #[command(subcommand)]
    command: ReceiverSubcommand,
}

#[derive(Debug, clap::Subcommand)]
enum ReceiverSubcommand {
    Serve(app::ServeArgs),
}

#[tokio::test]
async fn the_rendered_configuration_runs_a_receiver_that_stores_signed_deliveries() {
    let endpoint: WebhookEndpoint = hookwarden_crds::from_yaml(MANIFEST)
        .expect("manifest")
        .into();
    let mut resolved = ResolvedSecrets::default();
    resolved.insert("gh", "secret", SECRET.to_vec());
    let settings = Settings {
        receiver_image: "receiver:test".to_owned(),
        nats_url: "nats://nats:4222".to_owned(),
        // The ingress controller, as the chart's default tells users to set.
        default_trusted_proxies: vec!["127.0.0.1/32".to_owned()],
        default_forwarded_headers: hookwarden_crds::ForwardedHeaders::XForwardedFor,
        default_ingress_class: None,
        default_issuer: None,
        workload_env: Vec::new(),
    };
    // As a reconcile pass builds them: validated, the operator's defaults
    // applied.
    let valid = ValidEndpoint::check(&endpoint).expect("valid");
    let effective = resources::effective_endpoint(&endpoint, &settings);
    let children = resources::build_with_ranges(&valid, &effective, &resolved, &settings, &[])
        .expect("children");
    let root = tempfile::tempdir().expect("tempdir");
    let nats = NatsServer::start().await.expect("nats-server");
    let args = materialize(&children, root.path(), nats.url());

    // The receiver as its binary starts from these arguments.
    let command = ReceiverCommand::try_parse_from(
        std::iter::once("hookwarden-receiver".to_owned()).chain(args),
    )
    .expect("the Deployment's arguments parse");
    let ReceiverSubcommand::Serve(serve) = command.command;
    let receiver = app::start(serve.settings().expect("settings"))
        .await
        .expect("the rendered configuration starts a receiver");
    let state = receiver.state().expect("a receiver of one endpoint");
    assert_eq!(
        state.path(),
        "/hooks/github",
        "the path the Ingress forwards"
    );
    let stream = state.target().stream;
    let addr = receiver.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(receiver.serve(async {
        let _ = stopped.await;
    }));

    let body = br#"{"zen":"contract"}"#;
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    // As the ingress controller forwards it: the path, the scheme and the
    // client it saw.
    let request = |path: &str| {
        hyper::Request::post(format!("http://{addr}{path}"))
            .header("x-github-event", "push")
            .header("x-github-delivery", "contract-1")
            .header("x-hub-signature-256", signature.as_str())
            .header("x-forwarded-for", "203.0.113.5")
            .header("x-forwarded-proto", "https")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
            .expect("request")
    };
    let elsewhere = client.request(request("/")).await.expect("response");
    assert_eq!(elsewhere.status(), hyper::StatusCode::NOT_FOUND);
    let response = client
        .request(request("/hooks/github"))
        .await
        .expect("response");
    let status = response.status();
    let answer = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("answer")
        .to_bytes();
    assert_eq!(status, hyper::StatusCode::OK, "{answer:?}");

    let js = async_nats::jetstream::new(nats.connect().await.expect("connect"));
    let stored = js
        .get_stream(&stream)
        .await
        .expect("stream")
        .get_raw_message(1)
        .await
        .expect("stored");
    assert_eq!(stored.subject.as_str(), "hookwarden.contract.github.push");
    assert_eq!(stored.payload.as_ref(), body);
    assert_eq!(
        stored
            .headers
            .get("Hookwarden-Source-Ip")
            .map(|v| v.as_str()),
        Some("203.0.113.5"),
        "the client the trusted proxy reported"
    );
    let _ = stop.send(());
}
