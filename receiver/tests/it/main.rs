//! The integration tests of `hookwarden-receiver`: one test binary (one
//! link of the crate and its dependencies), a module per subject. What
//! several modules share is here, once: the real receiver, assembled from
//! its manifest by `app::start` exactly as the binary is, bound to port 0
//! in front of a private nats-server, and a small HTTP client. `binary`
//! runs the binary itself (`CARGO_BIN_EXE_hookwarden-receiver`), `ingress`
//! puts it behind a real nginx, `attacks` is the adversarial suite.
//!
//! Every module's tests run in parallel in this one process (bounded by
//! `--test-threads`): a test starts its own nats-server, receiver, ports and
//! directories, and changes no process-wide state (no environment variable,
//! no global subscriber); `jetstream_cluster` runs one cluster at a time.

mod abuse;
mod attacks;
mod audit;
mod audit_batching;
mod binary;
mod blank_secrets;
mod cli;
mod dashboards;
mod examples;
mod fetched_keys;
mod filter;
mod forward;
mod handshakes;
mod ingest;
mod ingress;
mod jetstream_cluster;
mod log_secrets;
mod nats_auth;
mod payload_logging;
mod pool;
mod pool_attacks;
mod presets;
mod properties;
mod quarantine;
mod recipes;
mod reload;
mod request;
mod resilience;
mod signing_certificates;
mod source_ranges;
mod stream;
mod tls;
mod traces;

use std::convert::Infallible;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use hookwarden_receiver::app;
use hookwarden_receiver::publish::Target;
use hookwarden_receiver::server::AppState;
use hookwarden_receiver::transport::Mode;
use hookwarden_tests::{InProcessReceiver, NatsServer};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;

const SECRET: &str = "It's a Secret to Everybody";
const ENDPOINT: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: github, namespace: ci}\n\
    spec:\n  provider: github\n  secretRefs: [{name: gh, key: secret}]\n";

/// The test signer of the fetched-key presets (made with `openssl genpkey`,
/// see `keys::material`'s `test_keys`); key servers serve certificates of it.
pub const SIGNER_KEY: &str = include_str!("../../../core/src/verify/keys/testdata/signer_key.pem");

/// The body of an SNS notification `id` of `topic` with the signed
/// `Timestamp` `at` (Unix seconds), naming `cert_url` as its
/// `SigningCertURL`, signed (`SignatureVersion` 2) by [`SIGNER_KEY`].
pub fn sns_notification(cert_url: &str, topic: &str, id: &str, at: i64) -> Vec<u8> {
    use hookwarden_receiver::verify::aws_sns;
    let key =
        hookwarden_receiver::verify::keys::material::rsa_signing_key(SIGNER_KEY).expect("test key");
    let timestamp = jiff::Timestamp::from_second(at)
        .expect("a time")
        .to_string();
    aws_sns::sign(
        &key,
        &aws_sns::Message {
            kind: "Notification",
            message_id: id,
            topic_arn: topic,
            subject: Some("order.created"),
            message: "{\"order\":1}",
            timestamp: &timestamp,
            signing_cert_url: cert_url,
            ..aws_sns::Message::default()
        },
    )
}

/// [`ENDPOINT`] with `extra` lines appended to its spec (each indented by
/// two spaces, e.g. `"  allowedSourceCidrs: [10.0.0.0/8]\n"`).
fn github_manifest(extra: &str) -> String {
    format!("{ENDPOINT}{extra}")
}

/// How much longer the fault tests run: `HOOKWARDEN_SOAK_SCALE` (default 1,
/// what `make test` runs). `bench/soak.sh` raises it: the kill tests repeat
/// their fault that many times, the spray test uses that many times more
/// source addresses.
fn soak_scale() -> usize {
    std::env::var("HOOKWARDEN_SOAK_SCALE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

type Body = BoxBody<Bytes, Infallible>;

/// A receiver assembled from its manifest the way `hookwarden-receiver
/// serve` assembles it ([`app::start`]), serving plain HTTP on a port of its
/// own in this process, with an HTTP client; stopped on drop.
struct Receiver {
    pub url: String,
    pub target: Target,
    pub state: AppState,
    /// Held for its drop, which stops the receiver.
    _inner: InProcessReceiver,
    pub http: Client<HttpConnector, Body>,
}

/// The GitHub endpoint [`ENDPOINT`] (with `extra` spec lines), storing in
/// `nats`, its settings changed by `configure`.
async fn start_github(
    nats: &NatsServer,
    body_limit: usize,
    extra: &str,
    configure: impl FnOnce(&mut app::Settings),
) -> Receiver {
    start_manifest_with(
        nats,
        &github_manifest(extra),
        &[("gh/secret", SECRET.as_bytes())],
        |settings| {
            settings.max_body_bytes = body_limit;
            configure(settings);
        },
    )
    .await
}

/// The receiver over plain HTTP for the endpoint `manifest`, every secret
/// it refers to holding `secret`.
async fn start_endpoint(nats: &NatsServer, manifest: &str, secret: &[u8]) -> Receiver {
    let endpoint = hookwarden_crds::from_yaml(manifest).expect("endpoint manifest");
    let names: Vec<String> = hookwarden_receiver::reload::secret_refs(&endpoint.spec)
        .iter()
        .map(|r| format!("{}/{}", r.name, r.key))
        .collect();
    let secrets: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), secret)).collect();
    start_manifest(nats, manifest, &secrets).await
}

/// The receiver over plain HTTP for the endpoint `manifest`, each secret
/// `name/key` of `secrets` written where the manifest refers to it,
/// serving on `spec.ingress.path` (or `/`).
async fn start_manifest(nats: &NatsServer, manifest: &str, secrets: &[(&str, &[u8])]) -> Receiver {
    start_manifest_with(nats, manifest, secrets, |_| {}).await
}

/// As [`start_manifest`], with the process settings changed by `configure`.
async fn start_manifest_with(
    nats: &NatsServer,
    manifest: &str,
    secrets: &[(&str, &[u8])],
    configure: impl FnOnce(&mut app::Settings),
) -> Receiver {
    let inner =
        InProcessReceiver::start(nats, manifest, secrets, Mode::InsecureHttp, configure).await;
    Receiver {
        url: inner.url.clone(),
        target: inner.target.clone(),
        state: inner.state.clone(),
        _inner: inner,
        http: Client::builder(TokioExecutor::new()).build_http(),
    }
}

/// The receiver over plain HTTP (`--tls-mode insecure-http`).
async fn start_receiver(nats: &NatsServer, body_limit: usize) -> Receiver {
    start_github(nats, body_limit, "", |_| {}).await
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

struct Answer {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub json: serde_json::Value,
}

impl Receiver {
    /// The Prometheus text of the receiver's metrics.
    pub fn metrics(&self) -> String {
        self.state.metrics().render()
    }

    pub async fn post(&self, body: Body, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::post(&self.url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body).expect("request");
        let response = tokio::time::timeout(Duration::from_secs(15), self.http.request(request))
            .await
            .expect("the receiver answers in time")
            .expect("HTTP response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("JSON answer ({e}): {}", String::from_utf8_lossy(&bytes)));
        Answer {
            status,
            headers,
            json,
        }
    }

    /// A GitHub delivery signed with `signature` (or correctly when `None`).
    pub async fn deliver(&self, payload: &[u8], delivery: &str, signature: Option<&str>) -> Answer {
        self.deliver_with(payload, delivery, signature, &[]).await
    }

    /// As [`Receiver::deliver`], with `extra` headers (e.g. `X-Forwarded-For`).
    pub async fn deliver_with(
        &self,
        payload: &[u8],
        delivery: &str,
        signature: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let signature = signature.map_or_else(|| sign(payload), str::to_owned);
        let mut headers = vec![
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("x-github-delivery", delivery),
            ("x-hub-signature-256", signature.as_str()),
        ];
        headers.extend_from_slice(extra);
        self.post(Full::new(Bytes::copy_from_slice(payload)).boxed(), &headers)
            .await
    }
}

async fn stored_messages(nats: &NatsServer, target: &Target) -> u64 {
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let mut stream = js.get_stream(&target.stream).await.expect("stream");
    stream.info().await.expect("stream info").state.messages
}
