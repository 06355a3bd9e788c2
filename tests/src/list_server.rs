//! [`ListServer`]: an HTTPS server on 127.0.0.1 (port 0, or a chosen
//! address) with a certificate of a [`TestCa`] that stands in for the hosts
//! where providers publish their source ranges and their signing keys
//! (certificates, JWK Sets). Its answers can be replaced while it runs (a
//! changed list, a failure, a slow or malformed answer), it counts and
//! records the requests, and it can be stopped and restarted on its port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hookwarden_receiver::ranges::fetch::RangeFetcher;
use hyper::Request;
use hyper_util::rt::TokioIo;

use crate::TestCa;

/// One answer of the server.
#[derive(Debug, Clone)]
pub struct ListAnswer {
    /// The status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// Wait this long before answering (a slow server).
    pub delay: Duration,
}

impl ListAnswer {
    /// `200` with `body`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// `status` with an empty body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }
}

/// A running list server, stopped on drop.
#[derive(Debug)]
pub struct ListServer {
    address: SocketAddr,
    ca_pem: String,
    roots: rustls::RootCertStore,
    hosts: Vec<String>,
    tls: Arc<rustls::ServerConfig>,
    answers: Arc<Mutex<HashMap<String, ListAnswer>>>,
    hits: Arc<AtomicUsize>,
    /// Every request, as `host path?query`.
    requests: Arc<Mutex<Vec<String>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for ListServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl ListServer {
    /// Serves for the TLS names `hosts`; every path answers 404 until
    /// [`ListServer::serve`] sets it.
    ///
    /// # Panics
    /// When the server cannot be set up (a test failure).
    pub async fn start(hosts: &[&str]) -> Self {
        Self::start_of(&TestCa::new("list server CA"), hosts).await
    }

    /// As [`ListServer::start`], with a TLS certificate of `ca` (which may
    /// also issue the signing certificates it serves).
    ///
    /// # Panics
    /// When the server cannot be set up (a test failure).
    pub async fn start_of(ca: &TestCa, hosts: &[&str]) -> Self {
        Self::start_at(ca, hosts, "127.0.0.1:0".parse().expect("address")).await
    }

    /// As [`ListServer::start_of`], listening on `address` (port 443 of a
    /// loopback address, where a binary that resolves the hosts there
    /// connects).
    ///
    /// # Panics
    /// When the server cannot be set up (a test failure).
    pub async fn start_at(ca: &TestCa, hosts: &[&str], address: SocketAddr) -> Self {
        let (cert, key) = ca.tls(hosts);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        let listener = tokio::net::TcpListener::bind(address).await.expect("bind");
        let mut server = Self {
            address: listener.local_addr().expect("address"),
            ca_pem: ca.pem(),
            roots: ca.roots(),
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            tls: Arc::new(server),
            answers: Arc::default(),
            hits: Arc::new(AtomicUsize::new(0)),
            requests: Arc::default(),
            task: None,
        };
        server.listen(listener);
        server
    }

    fn listen(&mut self, listener: tokio::net::TcpListener) {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&self.tls));
        let answers = Arc::clone(&self.answers);
        let hits = Arc::clone(&self.hits);
        let requests = Arc::clone(&self.requests);
        self.task = Some(tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let answers = Arc::clone(&answers);
                let hits = Arc::clone(&hits);
                let requests = Arc::clone(&requests);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |request: Request<hyper::body::Incoming>| {
                            hits.fetch_add(1, Ordering::SeqCst);
                            let target = request
                                .uri()
                                .path_and_query()
                                .map_or_else(|| request.uri().path(), |p| p.as_str())
                                .to_owned();
                            let host = request
                                .headers()
                                .get(hyper::header::HOST)
                                .and_then(|h| h.to_str().ok())
                                .unwrap_or_default();
                            requests
                                .lock()
                                .expect("requests")
                                .push(format!("{host} {target}"));
                            let answer = {
                                let answers = answers.lock().expect("answers");
                                answers
                                    .get(&target)
                                    .or_else(|| answers.get(request.uri().path()))
                                    .cloned()
                                    .unwrap_or_else(|| ListAnswer::status(404))
                            };
                            async move {
                                tokio::time::sleep(answer.delay).await;
                                hyper::Response::builder()
                                    .status(answer.status)
                                    .body(http_body_util::Full::new(Bytes::from(answer.body)))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        }));
    }

    /// Closes the port: connections to it are refused until
    /// [`ListServer::restart`].
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // Once the aborted task is joined its listener is closed.
            let _ = task.await;
        }
    }

    /// Listens on the same port again.
    ///
    /// # Panics
    /// When the port was taken meanwhile (a test failure).
    pub async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.address)
            .await
            .expect("the server's port is free again");
        self.listen(listener);
    }

    /// Every request so far, as `host path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }

    /// Answers `path` with `answer` from now on.
    pub fn serve(&self, path: &str, answer: ListAnswer) {
        self.answers
            .lock()
            .expect("answers")
            .insert(path.to_owned(), answer);
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The test CA, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The roots that trust the server (its CA).
    pub fn roots(&self) -> rustls::RootCertStore {
        self.roots.clone()
    }

    /// Each of the server's host names → its address: the routes of a
    /// test fetcher (`KeyFetcher::with_test_routes`).
    pub fn routes(&self) -> HashMap<String, SocketAddr> {
        self.hosts
            .iter()
            .map(|h| (h.clone(), self.address))
            .collect()
    }

    /// A range fetcher that trusts the test CA and connects here for the
    /// server's host names ([`RangeFetcher::with_test_routes`]), each fetch
    /// bounded by `total_timeout`.
    pub fn fetcher(&self, total_timeout: Duration) -> RangeFetcher {
        RangeFetcher::with_test_routes(self.roots(), self.routes(), total_timeout)
    }
}

/// Writes the list `source` parsed from the saved document `sample` into
/// the operator's ConfigMap of last good lists (`hookwarden-source-ranges`
/// in `namespace`), fetched now: what the operator finds after a restart
/// during a provider's outage. For tests whose operator runs as a process
/// without internet (the journey, pods as processes) and an example that
/// names a published list.
///
/// # Panics
/// When the sample does not parse or the ConfigMap cannot be written.
pub async fn save_list_for_operator(
    client: kube::Client,
    namespace: &str,
    source: &hookwarden_receiver::ranges::ListSource,
    sample: &std::path::Path,
) {
    use hookwarden_receiver::ranges::{SavedList, fetch::unix_now, texts};
    let document = std::fs::read(sample).expect("the saved sample");
    let networks = source.parse(&document).expect("the sample's ranges");
    let saved = SavedList {
        source: source.describe(),
        cidrs: texts(&networks),
        fetched_at: unix_now(),
        changed_at: unix_now(),
        etag: None,
        last_modified: None,
    };
    let map = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "hookwarden-source-ranges", "namespace": namespace},
        "data": {source.key(): serde_json::to_string(&saved).expect("JSON")},
    });
    kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client, namespace)
        .patch(
            "hookwarden-source-ranges",
            &kube::api::PatchParams::apply("hookwarden-tests"),
            &kube::api::Patch::Apply(&map),
        )
        .await
        .expect("the saved list");
}
