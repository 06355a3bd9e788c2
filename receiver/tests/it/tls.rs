//! The receiver terminating TLS for real: a certificate generated here, an
//! HTTPS client trusting it, and a real nats-server behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::{sign, stored_messages};
use bytes::Bytes;
use futures::SinkExt;
use hookwarden_receiver::app;
use hookwarden_receiver::publish::Target;
use hookwarden_receiver::transport::{Limits, Mode, Stopped, Transport, TransportStats};
use hookwarden_tests::NatsServer;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Generous bound on anything the tests wait for.
const WAIT: Duration = Duration::from_secs(10);

/// A self-signed certificate for `localhost`.
struct Cert {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn self_signed() -> Cert {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    Cert {
        cert_pem: cert.pem(),
        key_pem: signing_key.serialize_pem(),
        der: cert.der().clone(),
    }
}

/// Certificate files laid out like a mounted Secret: `tls.crt` and `tls.key`
/// are symlinks through `..data`, which points at a versioned directory, and
/// an update swaps `..data` atomically (what the kubelet does).
struct SecretMount {
    dir: tempfile::TempDir,
    version: u32,
}

impl SecretMount {
    fn new(cert_pem: &str, key_pem: &str) -> Self {
        let mut mount = Self {
            dir: tempfile::tempdir().expect("tempdir"),
            version: 0,
        };
        mount.update(cert_pem, key_pem);
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(Path::new("..data").join(name), mount.dir.path().join(name))
                .expect("symlink");
        }
        mount
    }

    fn update(&mut self, cert_pem: &str, key_pem: &str) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        let data = self.dir.path().join(&version);
        std::fs::create_dir(&data).expect("mkdir");
        std::fs::write(data.join("tls.crt"), cert_pem).expect("write cert");
        std::fs::write(data.join("tls.key"), key_pem).expect("write key");
        let staged = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&version, &staged).expect("symlink");
        std::fs::rename(&staged, self.dir.path().join("..data")).expect("swap ..data");
    }

    fn mode(&self) -> Mode {
        Mode::Terminate {
            cert: self.path("tls.crt"),
            key: self.path("tls.key"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A receiver terminating TLS on a port of its own, stopped on drop.
struct TlsReceiver {
    addr: SocketAddr,
    target: Target,
    _files: hookwarden_tests::EndpointFiles,
    stats: Arc<TransportStats>,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<Stopped>>,
}

impl TlsReceiver {
    /// Requests shutdown; how serving ended, at most [`WAIT`] later.
    async fn shut_down(&mut self) -> Stopped {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let serving = self.serving.take().expect("serving");
        tokio::time::timeout(WAIT, serving)
            .await
            .expect("serving ends in time")
            .expect("serving task")
    }
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The receiver assembled as the binary assembles it, terminating TLS with
/// `mount`'s certificate, with connection `limits`.
async fn start(nats: &NatsServer, mount: &SecretMount, limits: Limits) -> TlsReceiver {
    let files = hookwarden_tests::EndpointFiles::new(
        crate::ENDPOINT,
        &[("gh", "secret", crate::SECRET.as_bytes())],
    );
    let mut settings = hookwarden_tests::receiver::settings(
        nats,
        files.endpoint(),
        files.secrets_dir(),
        mount.mode(),
    );
    settings.limits = limits;
    let receiver = app::start(settings).await.expect("the receiver starts");
    assert!(receiver.is_tls());
    let stats = receiver.transport_stats();
    let addr = receiver.local_addr();
    let target = receiver
        .state()
        .expect("a receiver of one endpoint")
        .target();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(receiver.serve(async {
        let _ = stopped.await;
    }));
    TlsReceiver {
        addr,
        target,
        _files: files,
        stats,
        stop: Some(stop),
        serving: Some(serving),
    }
}

fn client_config(
    trusted: &[&CertificateDer<'static>],
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in trusted {
        roots.add((*cert).clone()).expect("trust anchor");
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("TCP connect");
    let name = ServerName::try_from("localhost").expect("server name");
    tokio::time::timeout(WAIT, TlsConnector::from(config).connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("TLS handshake")
}

fn delivery(uri: &str, payload: &'static [u8], delivery_id: &str) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery_id)
        .header("x-hub-signature-256", sign(payload))
        .body(Full::new(Bytes::from_static(payload)))
        .expect("request")
}

/// Sends `request` over HTTP/1.1 on `tls`; the status and JSON answer.
async fn http1(
    tls: TlsStream<TcpStream>,
    request: Request<Full<Bytes>>,
) -> (StatusCode, Version, serde_json::Value) {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    answer(sender.send_request(request)).await
}

async fn answer(
    response: impl Future<Output = hyper::Result<hyper::Response<hyper::body::Incoming>>>,
) -> (StatusCode, Version, serde_json::Value) {
    let response = tokio::time::timeout(WAIT, response)
        .await
        .expect("answer in time")
        .expect("HTTP response");
    let status = response.status();
    let version = response.version();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("JSON answer ({e}): {}", String::from_utf8_lossy(&body)));
    (status, version, json)
}

fn peer_certificate(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("a server certificate")
        .clone()
        .into_owned()
}

/// Waits until `condition` holds, at most [`WAIT`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Everything the server sends until it closes the connection (or resets
/// it), at most [`WAIT`].
async fn read_until_closed(stream: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server closes the connection in time");
    received
}

const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;
const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;

#[tokio::test]
async fn a_signed_delivery_over_tls_is_stored() {
    let nats = NatsServer::start().await.expect("nats-server");
    let cert = self_signed();
    let mount = SecretMount::new(&cert.cert_pem, &cert.key_pem);
    let receiver = start(&nats, &mount, Limits::default()).await;

    let tls = connect(
        receiver.addr,
        client_config(&[&cert.der], &[TLS13], &[b"http/1.1"]),
    )
    .await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    let payload = br#"{"ref":"refs/heads/main"}"#;
    let (status, version, json) = http1(tls, delivery("/", payload, "tls-1")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(version, Version::HTTP_11);
    assert_eq!(json["status"], "stored");
    assert_eq!(stored_messages(&nats, &receiver.target).await, 1);

    // TLS 1.2 is still offered.
    let tls = connect(
        receiver.addr,
        client_config(&[&cert.der], &[TLS12], &[b"http/1.1"]),
    )
    .await;
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    let healthz = Request::get("/healthz")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let (status, _, json) = http1(tls, healthz).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(receiver.stats.handshake_failures(), 0);
}

#[tokio::test]
async fn http2_is_negotiated_with_alpn() {
    let nats = NatsServer::start().await.expect("nats-server");
    let cert = self_signed();
    let mount = SecretMount::new(&cert.cert_pem, &cert.key_pem);
    let receiver = start(&nats, &mount, Limits::default()).await;

    let tls = connect(
        receiver.addr,
        client_config(&[&cert.der], &[TLS13, TLS12], &[b"h2", b"http/1.1"]),
    )
    .await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    // Two requests multiplexed on the one connection.
    let first = sender.send_request(delivery("https://localhost/", b"{\"n\":1}", "h2-1"));
    let second = sender.send_request(delivery("https://localhost/", b"{\"n\":2}", "h2-2"));
    let (first, second) = tokio::join!(answer(first), answer(second));
    for (status, version, json) in [first, second] {
        assert_eq!(status, StatusCode::OK, "{json}");
        assert_eq!(version, Version::HTTP_2);
        assert_eq!(json["status"], "stored");
    }
    assert_eq!(stored_messages(&nats, &receiver.target).await, 2);
}

#[tokio::test]
async fn plain_http_and_tls_1_1_are_refused() {
    let nats = NatsServer::start().await.expect("nats-server");
    let cert = self_signed();
    let mount = SecretMount::new(&cert.cert_pem, &cert.key_pem);
    let receiver = start(&nats, &mount, Limits::default()).await;

    let mut plain = TcpStream::connect(receiver.addr).await.expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send");
    let received = read_until_closed(&mut plain).await;
    assert!(
        !received.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer: {:?}",
        String::from_utf8_lossy(&received)
    );
    eventually("the refused handshake is counted", || {
        receiver.stats.handshake_failures() == 1
    })
    .await;

    // rustls cannot speak TLS 1.1, so this is a hand-made TLS 1.1
    // ClientHello: only version 3.2, no supported_versions extension.
    let mut hello = Vec::new();
    hello.extend_from_slice(&[0x03, 0x02]); // client_version TLS 1.1
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(0); // no session id
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // two TLS 1.1 suites
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&u16::try_from(hello.len()).expect("short").to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16::try_from(handshake.len()).expect("short").to_be_bytes());
    record.extend_from_slice(&handshake);

    let mut old = TcpStream::connect(receiver.addr).await.expect("connect");
    old.write_all(&record).await.expect("send ClientHello");
    let received = read_until_closed(&mut old).await;
    assert_ne!(
        received.first(),
        Some(&0x16),
        "the server answered a TLS 1.1 hello with a handshake: {received:02x?}"
    );
    eventually("the TLS 1.1 handshake is counted as failed", || {
        receiver.stats.handshake_failures() == 2
    })
    .await;
}

#[tokio::test]
async fn a_client_sending_headers_too_slowly_is_disconnected() {
    let nats = NatsServer::start().await.expect("nats-server");
    let cert = self_signed();
    let mount = SecretMount::new(&cert.cert_pem, &cert.key_pem);
    let limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let receiver = start(&nats, &mount, limits).await;
    let config = client_config(&[&cert.der], &[TLS13], &[b"http/1.1"]);

    let mut slow = connect(receiver.addr, Arc::clone(&config)).await;
    slow.write_all(b"POST / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("send the first header lines");
    slow.flush().await.expect("flush");
    // The rest of the headers never come (well: far too late).
    let received = read_until_closed(&mut slow).await;
    assert!(
        !received.starts_with(b"HTTP/1.1 2"),
        "{:?}",
        String::from_utf8_lossy(&received)
    );

    // An idle keep-alive connection is closed by the same timeout, after
    // its answer: it cannot hold a connection slot forever either.
    let mut idle = connect(receiver.addr, Arc::clone(&config)).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send");
    let received = read_until_closed(&mut idle).await;
    assert!(
        received.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&received)
    );

    // A client sending its headers at once is served under the same limit.
    let fast = connect(receiver.addr, config).await;
    let (status, _, json) = http1(fast, delivery("/", b"{}", "fast-1")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let nats = NatsServer::start().await.expect("nats-server");
    let old = self_signed();
    let new = self_signed();
    let mut mount = SecretMount::new(&old.cert_pem, &old.key_pem);
    let limits = Limits {
        cert_reload_interval: Duration::from_millis(50),
        ..Limits::default()
    };
    let receiver = start(&nats, &mount, limits).await;
    let config = client_config(&[&old.der, &new.der], &[TLS13], &[b"http/1.1"]);
    let served = || async { peer_certificate(&connect(receiver.addr, Arc::clone(&config)).await) };
    assert_eq!(served().await, old.der);

    // Garbage, then a certificate with someone else's key: both refused,
    // the old certificate stays in service.
    mount.update("-----BEGIN CERTIFICATE-----\nnot base64!\n", &new.key_pem);
    eventually("the garbage certificate is rejected", || {
        receiver.stats.cert_reload_failures() == 1
    })
    .await;
    assert_eq!(served().await, old.der, "still the old certificate");
    mount.update(&new.cert_pem, &old.key_pem);
    eventually("the mismatched pair is rejected", || {
        receiver.stats.cert_reload_failures() == 2
    })
    .await;
    assert_eq!(served().await, old.der, "still the old certificate");
    assert_eq!(receiver.stats.cert_reloads(), 0);

    // The Secret unmounted: reported once, still serving.
    let data = mount.path("..data");
    std::fs::rename(&data, mount.path("..gone")).expect("unmount");
    eventually("the unreadable files are reported", || {
        receiver.stats.cert_reload_failures() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.stats.cert_reload_failures(),
        3,
        "a lasting read error is reported once"
    );
    assert_eq!(served().await, old.der, "still the old certificate");
    std::fs::rename(mount.path("..gone"), &data).expect("remount");

    // A renewed pair is picked up by the next connection.
    let established = connect(receiver.addr, Arc::clone(&config)).await;
    mount.update(&new.cert_pem, &new.key_pem);
    eventually("the renewed certificate is loaded", || {
        receiver.stats.cert_reloads() == 1
    })
    .await;
    let renewed = connect(receiver.addr, Arc::clone(&config)).await;
    assert_eq!(peer_certificate(&renewed), new.der);
    let (status, _, json) = http1(renewed, delivery("/", b"{}", "renewed-1")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    // A connection made before the renewal keeps working.
    assert_eq!(peer_certificate(&established), old.der);
    let (status, _, json) = http1(established, delivery("/", b"{}", "before-1")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let nats = NatsServer::start().await.expect("nats-server");
    let cert = self_signed();
    let mount = SecretMount::new(&cert.cert_pem, &cert.key_pem);
    let limits = Limits {
        max_header_bytes: 16 * 1024,
        ..Limits::default()
    };
    let receiver = start(&nats, &mount, limits).await;
    let config = client_config(&[&cert.der], &[TLS13], &[b"http/1.1"]);
    let request = |header_bytes: usize| {
        format!(
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nx-big: {}\r\n\r\n",
            "a".repeat(header_bytes)
        )
    };

    let mut fine = connect(receiver.addr, Arc::clone(&config)).await;
    fine.write_all(request(8 * 1024).as_bytes())
        .await
        .expect("send");
    let answer = read_until_closed(&mut fine).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    // Refused with 431, or cut off while still sending: never served.
    let mut big = connect(receiver.addr, config).await;
    let _ = big.write_all(request(64 * 1024).as_bytes()).await;
    let answer = read_until_closed(&mut big).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn at_the_connection_cap_new_connections_wait() {
    let nats = NatsServer::start().await.expect("nats-server");
    let cert = self_signed();
    let mount = SecretMount::new(&cert.cert_pem, &cert.key_pem);
    let limits = Limits {
        max_connections: 1,
        ..Limits::default()
    };
    let receiver = start(&nats, &mount, limits).await;
    let config = client_config(&[&cert.der], &[TLS13], &[b"http/1.1"]);

    let first = connect(receiver.addr, Arc::clone(&config)).await;
    let tcp = TcpStream::connect(receiver.addr)
        .await
        .expect("the kernel queues the second connection");
    let name = ServerName::try_from("localhost").expect("server name");
    let second = tokio::spawn(TlsConnector::from(config).connect(name, tcp));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "a second connection was served while the only slot was taken"
    );

    drop(first);
    let second = tokio::time::timeout(WAIT, second)
        .await
        .expect("served once the first connection closed")
        .expect("task")
        .expect("TLS handshake");
    let healthz = Request::get("/healthz")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let (status, _, json) = http1(second, healthz).await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish() {
    let nats = NatsServer::start().await.expect("nats-server");
    let cert = self_signed();
    let mount = SecretMount::new(&cert.cert_pem, &cert.key_pem);
    let mut receiver = start(&nats, &mount, Limits::default()).await;
    let tls = connect(
        receiver.addr,
        client_config(&[&cert.der], &[TLS13], &[b"http/1.1"]),
    )
    .await;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);

    // The body arrives in two parts, with the shutdown in between.
    let payload: &[u8] = b"{\"in\":\"flight\"}";
    let (mut body, frames) = futures::channel::mpsc::channel::<
        Result<hyper::body::Frame<Bytes>, std::convert::Infallible>,
    >(2);
    let request = Request::post("/")
        .header("content-length", payload.len())
        .header("x-github-event", "push")
        .header("x-github-delivery", "in-flight-1")
        .header("x-hub-signature-256", sign(payload))
        .body(http_body_util::StreamBody::new(frames))
        .expect("request");
    let response = tokio::spawn(sender.send_request(request));
    body.send(Ok(hyper::body::Frame::data(Bytes::copy_from_slice(
        &payload[..4],
    ))))
    .await
    .expect("first part");
    // Give the server time to start on the request (setup only: arriving
    // late would make it refuse the request, failing the test).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stop = receiver.stop.take().expect("stop");
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    body.send(Ok(hyper::body::Frame::data(Bytes::copy_from_slice(
        &payload[4..],
    ))))
    .await
    .expect("second part");
    drop(body);

    let response = tokio::time::timeout(WAIT, response)
        .await
        .expect("answer in time")
        .expect("task")
        .expect("the request in flight is answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(receiver.shut_down().await, Stopped::Drained);
    assert_eq!(stored_messages(&nats, &receiver.target).await, 1);
}

#[tokio::test]
async fn the_drain_is_bounded() {
    let nats = NatsServer::start().await.expect("nats-server");
    let cert = self_signed();
    let mount = SecretMount::new(&cert.cert_pem, &cert.key_pem);
    let limits = Limits {
        drain_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let mut receiver = start(&nats, &mount, limits).await;
    let mut stuck = connect(
        receiver.addr,
        client_config(&[&cert.der], &[TLS13], &[b"http/1.1"]),
    )
    .await;
    // A request (signed-looking, so it gets past the header checks) whose
    // body never comes: the pipeline would give up on it after its own body
    // timeout, later than the drain.
    let signature = sign(b"{}");
    stuck
        .write_all(
            format!(
                "POST / HTTP/1.1\r\nHost: localhost\r\nX-Hub-Signature-256: {signature}\r\n\
                 Content-Length: 100\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await
        .expect("send");
    stuck.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.shut_down().await, Stopped::DrainTimedOut);
}

#[test]
fn terminate_mode_names_the_missing_flag() {
    use hookwarden_receiver::transport::TlsMode;
    let err = Mode::from_flags(TlsMode::Terminate, None, Some(PathBuf::from("k")))
        .expect_err("no certificate");
    assert!(err.to_string().contains("--tls-cert"), "{err}");
    let err =
        Mode::from_flags(TlsMode::Terminate, Some(PathBuf::from("c")), None).expect_err("no key");
    assert!(err.to_string().contains("--tls-key"), "{err}");
    let err = Mode::from_flags(TlsMode::InsecureHttp, Some(PathBuf::from("c")), None)
        .expect_err("a certificate that would not be used");
    assert!(err.to_string().contains("--tls-cert"), "{err}");

    let ingress = Mode::from_flags(TlsMode::BehindIngress, None, None).expect("no files needed");
    assert!(ingress.require_forwarded_https());
    let insecure = Mode::from_flags(TlsMode::InsecureHttp, None, None).expect("no files needed");
    assert!(!insecure.require_forwarded_https());
    let terminate = Mode::from_flags(
        TlsMode::Terminate,
        Some(PathBuf::from("c")),
        Some(PathBuf::from("k")),
    )
    .expect("both files");
    assert!(!terminate.require_forwarded_https());
}

#[test]
fn an_unusable_certificate_stops_startup() {
    let cert = self_signed();
    let other = self_signed();
    let mount = SecretMount::new(&cert.cert_pem, &other.key_pem);
    let err = Transport::new(&mount.mode(), Limits::default()).expect_err("mismatched pair");
    assert!(err.to_string().contains("tls.crt"), "{err}");
    let missing = Mode::Terminate {
        cert: mount.path("missing.crt"),
        key: mount.path("tls.key"),
    };
    let err = Transport::new(&missing, Limits::default()).expect_err("missing file");
    assert!(err.to_string().contains("missing.crt"), "{err}");
}

#[tokio::test]
async fn a_client_that_never_says_hello_is_disconnected_while_deliveries_succeed() {
    let nats = NatsServer::start().await.expect("nats-server");
    let cert = self_signed();
    let mount = SecretMount::new(&cert.cert_pem, &cert.key_pem);
    let limits = Limits {
        tls_handshake_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let receiver = start(&nats, &mount, limits).await;
    let config = client_config(&[&cert.der], &[TLS13], &[b"http/1.1"]);

    // Opens TCP to the TLS port and sends nothing.
    let mut silent = TcpStream::connect(receiver.addr).await.expect("connect");
    for i in 0..3 {
        let tls = connect(receiver.addr, Arc::clone(&config)).await;
        let payload: &'static [u8] = b"{\"while\":\"silent\"}";
        let (status, _, json) = http1(tls, delivery("/", payload, &format!("silent-{i}"))).await;
        assert_eq!(status, StatusCode::OK, "{json}");
    }
    let received = read_until_closed(&mut silent).await;
    assert!(received.is_empty(), "nothing is sent to a silent client");
    eventually("the timed-out handshake is counted", || {
        receiver.stats.handshake_failures() == 1
    })
    .await;
    // The three deliveries were stored once each (same payload, own ids).
    assert_eq!(stored_messages(&nats, &receiver.target).await, 3);
}

/// One HTTP/2 frame: 24-bit length, type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small frame");
    let mut frame = len.to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

const H2_HEADERS: u8 = 0x1;
const H2_RST_STREAM: u8 = 0x3;
const H2_SETTINGS: u8 = 0x4;
const H2_END_HEADERS: u8 = 0x4;
const H2_ACK: u8 = 0x1;
const H2_REFUSED_STREAM: u32 = 0x7;

#[tokio::test]
async fn http2_streams_beyond_the_cap_are_refused_and_the_receiver_stays_healthy() {
    let nats = NatsServer::start().await.expect("nats-server");
    let cert = self_signed();
    let mount = SecretMount::new(&cert.cert_pem, &cert.key_pem);
    let limits = Limits {
        max_concurrent_streams: 2,
        ..Limits::default()
    };
    let receiver = start(&nats, &mount, limits).await;
    let config = client_config(&[&cert.der], &[TLS13], &[b"h2"]);

    // A client ignoring the advertised cap: three POSTs whose bodies never
    // come, so the first two streams stay open.
    let mut tls = connect(receiver.addr, Arc::clone(&config)).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(H2_SETTINGS, 0, 0, &[]));
    // HPACK: :method POST, :scheme https, :path / (static table), then
    // :authority localhost as a literal with the static name.
    let mut block = vec![0x83, 0x87, 0x84, 0x01, 9];
    block.extend_from_slice(b"localhost");
    for stream in [1, 3, 5] {
        out.extend(h2_frame(H2_HEADERS, H2_END_HEADERS, stream, &block));
    }
    tls.write_all(&out).await.expect("frames");
    tls.flush().await.expect("flush");

    let mut resets = Vec::new();
    let read_resets = async {
        loop {
            let mut header = [0u8; 9];
            tls.read_exact(&mut header).await.expect("a frame");
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let mut payload = vec![0u8; len];
            tls.read_exact(&mut payload).await.expect("frame payload");
            let stream =
                u32::from_be_bytes(header[5..9].try_into().expect("4 bytes")) & 0x7fff_ffff;
            match header[3] {
                H2_SETTINGS if header[4] & H2_ACK == 0 => {
                    tls.write_all(&h2_frame(H2_SETTINGS, H2_ACK, 0, &[]))
                        .await
                        .expect("settings ack");
                }
                H2_RST_STREAM => {
                    let code = u32::from_be_bytes(payload[..4].try_into().expect("4 bytes"));
                    resets.push((stream, code));
                    if stream == 5 {
                        return;
                    }
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(WAIT, read_resets)
        .await
        .expect("the third stream is reset in time");
    assert_eq!(
        resets,
        [(5, H2_REFUSED_STREAM)],
        "only the stream over the cap is refused"
    );

    // Meanwhile the receiver serves others, over HTTP/2 too.
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(connect(receiver.addr, config).await),
    )
    .await
    .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let (status, version, json) = answer(sender.send_request(delivery(
        "https://localhost/",
        b"{\"after\":\"refused\"}",
        "h2-after-refused",
    )))
    .await;
    assert_eq!(
        (status, version),
        (StatusCode::OK, Version::HTTP_2),
        "{json}"
    );
    drop(tls);
}
