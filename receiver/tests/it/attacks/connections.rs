//! Every phase of a connection has a deadline; one source cannot hold the
//! listener.
//!
//! Before, a TLS connection that said nothing after its handshake, a
//! partial HTTP/2 preface and an idle HTTP/2 connection answering pings
//! all stayed open for minutes: the HTTP/1-or-2 detection had no timeout
//! and nothing closed an idle HTTP/2 connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hookwarden_tests::NatsServer;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

use super::{closed_within, connect_from, metric};
use crate::binary::ReceiverProcess;
use crate::{ENDPOINT, SECRET};

/// Short deadlines so the attacks end fast; the defaults are in
/// `receiver/src/transport/limits.rs` and `docs/receiver.md`.
const FIRST_REQUEST_SECS: &str = "2";
const IDLE_SECS: &str = "3";

fn env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("RUST_LOG", "warn"),
        ("HOOKWARDEN_FIRST_REQUEST_TIMEOUT_SECS", FIRST_REQUEST_SECS),
        ("HOOKWARDEN_IDLE_TIMEOUT_SECS", IDLE_SECS),
    ];
    env.extend_from_slice(extra);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_half_preface_and_idle_connections_are_closed() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        ENDPOINT,
        &[("gh", "secret", SECRET.as_bytes())],
        &env(&[]),
    );
    receiver.ready().await;
    let to: SocketAddr = receiver.listen.parse().expect("listen address");

    // Says nothing at all.
    let mut silent = connect_from([127, 0, 3, 1], to).await;
    // Half an HTTP/2 preface.
    let mut half_preface = connect_from([127, 0, 3, 2], to).await;
    half_preface
        .write_all(b"PRI * HTTP/2.0\r\n")
        .await
        .expect("write");
    // An HTTP/1.1 keep-alive connection that made one request, then idles.
    let mut idle_h1 = connect_from([127, 0, 3, 6], to).await;
    idle_h1
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: h\r\n\r\n")
        .await
        .expect("write");
    // An HTTP/2 connection that made one request, then idles; the client
    // answers the server's pings (hyper's client does).
    let idle_h2 = {
        let (mut sender, connection) = super::h2_connect([127, 0, 3, 3], to).await;
        let request = hyper::Request::get(format!("http://{to}/healthz"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request");
        let response = sender.send_request(request).await.expect("h2 response");
        assert_eq!(response.status(), hyper::StatusCode::OK);
        // The sender stays alive: the client never closes on its own.
        (sender, connection)
    };

    assert!(
        closed_within(&mut silent, Duration::from_secs(6)).await,
        "a silent connection is closed after the first-request timeout"
    );
    assert!(
        closed_within(&mut half_preface, Duration::from_secs(6)).await,
        "a partial HTTP/2 preface is closed after the first-request timeout"
    );
    assert!(
        closed_within(&mut idle_h1, Duration::from_secs(8)).await,
        "an idle HTTP/1.1 keep-alive connection is closed after the idle timeout"
    );
    let (_sender, connection) = idle_h2;
    let ended = tokio::time::timeout(Duration::from_secs(8), connection)
        .await
        .expect("an idle HTTP/2 connection is closed after the idle timeout");
    assert!(ended.is_ok(), "the h2 connection task ended: {ended:?}");
    let metrics = receiver.metrics().await;
    assert!(
        metric(&metrics, "hookwarden_connections_idle_closed_total") >= 4,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_that_says_nothing_after_the_handshake_is_closed() {
    let nats = NatsServer::start().await.expect("nats-server");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("key");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        ENDPOINT,
        &[("gh", "secret", SECRET.as_bytes())],
        &env(&[
            ("HOOKWARDEN_TLS_MODE", "terminate"),
            ("HOOKWARDEN_TLS_CERT", cert_path.to_str().expect("utf-8")),
            ("HOOKWARDEN_TLS_KEY", key_path.to_str().expect("utf-8")),
        ]),
    );
    receiver.ready().await;
    let to: SocketAddr = receiver.listen.parse().expect("listen address");

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.cert.der().to_vec()))
        .expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = connect_from([127, 0, 3, 4], to).await;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("the handshake completes");
    // Handshake done, then nothing: before, this stayed open for minutes.
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(
        Duration::from_secs(6),
        tokio::io::AsyncReadExt::read(&mut tls, &mut buf),
    )
    .await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "closed after the first-request timeout: {closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_cannot_hold_every_connection() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        ENDPOINT,
        &[("gh", "secret", SECRET.as_bytes())],
        &[
            ("RUST_LOG", "warn"),
            ("HOOKWARDEN_MAX_CONNECTIONS_PER_SOURCE", "16"),
            // Long enough that the held connections outlive the count.
            ("HOOKWARDEN_FIRST_REQUEST_TIMEOUT_SECS", "30"),
        ],
    );
    receiver.ready().await;
    let to: SocketAddr = receiver.listen.parse().expect("listen address");
    let mut held = Vec::new();
    for _ in 0..40 {
        held.push(connect_from([127, 0, 3, 5], to).await);
    }
    // The receiver closes what is over the cap at once.
    let checks: Vec<_> = held
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let closed = closed_within(&mut stream, Duration::from_secs(1)).await;
                (closed, stream)
            })
        })
        .collect();
    let mut closed = 0;
    let mut open = Vec::new();
    for check in checks {
        let (was_closed, stream) = check.await.expect("check");
        if was_closed {
            closed += 1;
        } else {
            open.push(stream);
        }
    }
    assert_eq!(closed, 40 - 16, "all but 16 closed at once");
    let metrics = receiver.metrics().await;
    assert_eq!(
        metric(&metrics, "hookwarden_connections_refused_per_source_total"),
        24,
        "{metrics}"
    );
    // Another source is served meanwhile.
    let mut other = connect_from([127, 0, 0, 1], to).await;
    let status = super::exchange(
        &mut other,
        &super::signed_request("/", "other-source", "{\"other\":1}"),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(status, Some(200));
}
