//! What the receiver's integration tests share: the real receiver bound to
//! port 0 in front of a private nats-server, and a small HTTP client.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod binary;
pub mod ingress;

use std::convert::Infallible;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use hookwarden_receiver::publish::{Publisher, Target};
use hookwarden_receiver::secrets::Secret;
use hookwarden_receiver::server::{self, AppState};
use hookwarden_receiver::transport::{Limits, Mode, Transport};
use hookwarden_receiver::verify;
use hookwarden_tests::NatsServer;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;
use tokio::sync::oneshot;

pub const SECRET: &str = "It's a Secret to Everybody";
pub const ENDPOINT: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: github, namespace: ci}\n\
    spec: {provider: github, secretRefs: [{name: gh, key: secret}]}\n";
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// How much longer the fault tests run: `HOOKWARDEN_SOAK_SCALE` (default 1,
/// what `make test` runs). `bench/soak.sh` raises it: the kill tests repeat
/// their fault that many times, the spray test uses that many times more
/// source addresses.
pub fn soak_scale() -> usize {
    std::env::var("HOOKWARDEN_SOAK_SCALE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

pub type Body = BoxBody<Bytes, Infallible>;

/// A receiver serving on a port of its own, stopped on drop.
pub struct Receiver {
    pub url: String,
    pub target: Target,
    stop: Option<oneshot::Sender<()>>,
    pub http: Client<HttpConnector, Body>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The request pipeline of the GitHub endpoint [`ENDPOINT`], storing in
/// `nats`.
pub async fn app_state(nats: &NatsServer, body_limit: usize) -> (AppState, Target) {
    let endpoint = hookwarden_crds::from_yaml(ENDPOINT).expect("endpoint manifest");
    let target = Target::for_endpoint(&endpoint).expect("target");
    let verifier = verify::for_provider(
        endpoint.spec.provider,
        vec![Secret::from(SECRET.as_bytes())],
        None,
    )
    .expect("verifier");
    let client = nats.connect().await.expect("connect to NATS");
    let publisher = Publisher::new(client, target.clone(), PUBLISH_TIMEOUT);
    publisher.ensure_stream().await.expect("stream");
    (
        AppState::with_body_limit(verifier, publisher, body_limit),
        target,
    )
}

/// The receiver over plain HTTP for the endpoint `manifest`, verifying with
/// its provider preset and `secret`.
pub async fn start_endpoint(nats: &NatsServer, manifest: &str, secret: &[u8]) -> Receiver {
    let endpoint = hookwarden_crds::from_yaml(manifest).expect("endpoint manifest");
    let target = Target::for_endpoint(&endpoint).expect("target");
    let verifier = verify::for_provider(endpoint.spec.provider, vec![Secret::from(secret)], None)
        .expect("verifier");
    let client = nats.connect().await.expect("connect to NATS");
    let publisher = Publisher::new(client, target.clone(), PUBLISH_TIMEOUT);
    publisher.ensure_stream().await.expect("stream");
    serve_plain(AppState::new(verifier, publisher), target).await
}

/// The receiver over plain HTTP for the endpoint `manifest`, built as the
/// real receiver builds it (`verify::for_endpoint`: public URL, handshake
/// settings), each secret ref `name/key` read from `secrets`, serving on
/// `spec.ingress.path` (or `/`).
pub async fn start_manifest(
    nats: &NatsServer,
    manifest: &str,
    secrets: &[(&str, &[u8])],
) -> Receiver {
    let endpoint = hookwarden_crds::from_yaml(manifest).expect("endpoint manifest");
    let target = Target::for_endpoint(&endpoint).expect("target");
    let verifier = verify::for_endpoint(&endpoint.spec, |refs| {
        Ok(refs
            .iter()
            .map(|r| {
                let name = format!("{}/{}", r.name, r.key);
                let value = secrets
                    .iter()
                    .find(|(n, _)| *n == name)
                    .unwrap_or_else(|| panic!("no test secret {name}"));
                Secret::from(value.1)
            })
            .collect())
    })
    .expect("verifier");
    let client = nats.connect().await.expect("connect to NATS");
    let publisher = Publisher::new(client, target.clone(), PUBLISH_TIMEOUT);
    publisher.ensure_stream().await.expect("stream");
    let path = endpoint
        .spec
        .ingress
        .as_ref()
        .map_or("/", |ingress| ingress.path.as_str());
    let mut receiver =
        serve_plain(AppState::new(verifier, publisher).with_path(path), target).await;
    receiver.url = format!("{}{}", receiver.url.trim_end_matches('/'), path);
    receiver
}

async fn serve_plain(state: AppState, target: Target) -> Receiver {
    let transport =
        Transport::new(&Mode::InsecureHttp, Limits::default()).expect("plain HTTP transport");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server::serve(state, listener, transport, async {
        let _ = stopped.await;
    }));
    Receiver {
        url,
        target,
        stop: Some(stop),
        http: Client::builder(TokioExecutor::new()).build_http(),
    }
}

/// The receiver over plain HTTP (`--tls-mode insecure-http`).
pub async fn start_receiver(nats: &NatsServer, body_limit: usize) -> Receiver {
    start_receiver_with(nats, body_limit, |state| state).await
}

/// As [`start_receiver`], with `configure` applied to the state (trusted
/// proxies, allowlist, rate limits, ...).
pub async fn start_receiver_with(
    nats: &NatsServer,
    body_limit: usize,
    configure: impl FnOnce(AppState) -> AppState,
) -> Receiver {
    let (state, target) = app_state(nats, body_limit).await;
    serve_plain(configure(state), target).await
}

pub fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub json: serde_json::Value,
}

impl Receiver {
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

pub async fn stored_messages(nats: &NatsServer, target: &Target) -> u64 {
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let mut stream = js.get_stream(&target.stream).await.expect("stream");
    stream.info().await.expect("stream info").state.messages
}
