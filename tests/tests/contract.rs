//! The operator/receiver contract: the configuration the operator renders
//! (its Secret, mounted as its Deployment says, read as its container
//! arguments say) is exactly what the receiver loads, and the receiver built
//! from it verifies a correctly signed delivery and stores it in a real
//! JetStream, on the path the Ingress forwards.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use hookwarden_crds::WebhookEndpoint;
use hookwarden_operator::resources::{self, ResolvedSecrets, Settings};
use hookwarden_receiver::reload;
use hookwarden_receiver::server::{self, AppState};
use hookwarden_receiver::transport::{Limits, Mode, Transport};
use hookwarden_tests::NatsServer;
use sha2::Sha256;

const MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: github, namespace: contract, uid: 6f0c3c1e-0000-4000-8000-000000000001}\n\
    spec:\n  provider: github\n  secretRefs: [{name: gh, key: secret}]\n  \
    ingress: {host: hooks.example.com, path: /hooks/github}\n";
const SECRET: &[u8] = b"the-contract-secret";

/// Lays the rendered Secret out as the kubelet would mount it for the
/// Deployment (volume `items`: key -> path under the mount path), under
/// `root` instead of the container's mount path.
fn materialize(children: &resources::Children, root: &Path) -> (PathBuf, PathBuf) {
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
    let arg = |flag: &str| {
        let value = args
            .iter()
            .position(|a| *a == flag)
            .and_then(|i| args.get(i + 1))
            .unwrap_or_else(|| panic!("{flag} in {args:?}"));
        root.join(
            value
                .strip_prefix(mount)
                .expect("under the mount")
                .trim_start_matches('/'),
        )
    };
    (arg("--endpoint"), arg("--secrets-dir"))
}

#[tokio::test]
async fn the_rendered_configuration_runs_a_receiver_that_stores_signed_deliveries() {
    let endpoint: WebhookEndpoint = hookwarden_crds::from_yaml(MANIFEST).expect("manifest");
    let mut resolved = ResolvedSecrets::default();
    resolved.insert("gh", "secret", SECRET.to_vec());
    let settings = Settings {
        receiver_image: "receiver:test".to_owned(),
        nats_url: "nats://nats:4222".to_owned(),
        default_trusted_proxies: Vec::new(),
        default_forwarded_headers: hookwarden_crds::ForwardedHeaders::XForwardedFor,
        default_ingress_class: None,
        default_issuer: None,
    };
    let children = resources::build(&endpoint, &resolved, &settings).expect("children");
    let root = tempfile::tempdir().expect("tempdir");
    let (endpoint_file, secrets_dir) = materialize(&children, root.path());

    // The receiver's own loader, as `serve` uses it.
    let nats = NatsServer::start().await.expect("nats-server");
    let checked = reload::check(&endpoint_file, &secrets_dir).expect("rendered config loads");
    let client = nats.connect().await.expect("connect");
    let (_, pipeline) = checked
        .connect(client, Duration::from_secs(2), server::DEFAULT_BODY_LIMIT)
        .await
        .expect("stream ensured");
    assert_eq!(
        pipeline.path, "/hooks/github",
        "the path the Ingress forwards"
    );
    let stream = pipeline.publisher.target().stream.clone();
    let state = AppState::new(pipeline.verifier, pipeline.publisher).with_path(&pipeline.path);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let transport = Transport::new(&Mode::InsecureHttp, Limits::default()).expect("transport");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(state, listener, transport, async {
        let _ = stopped.await;
    }));

    let body = br#"{"zen":"contract"}"#;
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = hyper::Request::post(format!("http://{addr}/hooks/github"))
        .header("x-github-event", "push")
        .header("x-github-delivery", "contract-1")
        .header("x-hub-signature-256", signature)
        .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
        .expect("request");
    let response = client.request(request).await.expect("response");
    assert_eq!(response.status(), hyper::StatusCode::OK);

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
    let _ = stop.send(());
}
