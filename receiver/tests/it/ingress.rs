//! The receiver as the operator deploys it: the real binary started from its
//! manifest in `--tls-mode behind-ingress`, behind a real nginx configured
//! like ingress-nginx's defaults ([`hookwarden_tests::Nginx`]), storing in a
//! real nats-server; and a client that connects to nginx from any loopback
//! address (all of 127.0.0.0/8 is local on Linux), over plain HTTP or HTTPS,
//! so a test can play an outsider and an allowed provider side by side.
//!
//! The adversarial tests (`attacks_*.rs`) build on it: whatever an attacker
//! sends goes through the same proxy a deployment has in front.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_nats::jetstream;
use async_nats::jetstream::message::StreamMessage;
use bytes::Bytes;
use hookwarden_receiver::publish::Target;
use hookwarden_tests::{NatsServer, Nginx, NginxBuilder};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;

use crate::binary::{PlainMode, ReceiverProcess, Reply, WAIT};

/// How the client reaches nginx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP to nginx's HTTP listener (nginx says `http` upstream).
    Http,
    /// TLS to nginx's HTTPS listener, HTTP/1.1 inside.
    Https,
}

/// nats-server, the receiver binary and nginx in front of it; all stopped
/// on drop.
pub struct BehindIngress {
    // Dropped in this order: nginx first, so nothing reaches a stopping
    // receiver, and NATS last.
    pub nginx: Nginx,
    pub receiver: ReceiverProcess,
    pub nats: NatsServer,
    /// Where the endpoint's deliveries are stored.
    pub target: Target,
    tls: TlsConnector,
}

impl BehindIngress {
    /// Starts the three for `manifest`, with `secrets` as
    /// `(secret name, key, content)`; `proxy` configures nginx beyond the
    /// ingress-nginx defaults (e.g. `|b| b` for none).
    pub async fn start(
        manifest: &str,
        secrets: &[(&str, &str, &[u8])],
        proxy: impl FnOnce(NginxBuilder) -> NginxBuilder,
    ) -> Self {
        let endpoint = hookwarden_crds::from_yaml(manifest).expect("endpoint manifest");
        let target = Target::for_endpoint(&endpoint).expect("target");
        let nats = NatsServer::start().await.expect("nats-server");
        let receiver =
            ReceiverProcess::spawn_in(PlainMode::BehindIngress, nats.url(), manifest, secrets, &[]);
        receiver.ready().await;
        let nginx = proxy(Nginx::builder(receiver.listen_addr()))
            .start()
            .await
            .expect("nginx");
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(nginx.certificate_der().to_vec()))
            .expect("nginx's certificate");
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            nginx,
            receiver,
            nats,
            target,
            tls: TlsConnector::from(Arc::new(config)),
        }
    }

    /// Sends `POST path` with `headers` (in order; a name given twice is
    /// sent as two header lines) and `body` to nginx, over a connection
    /// from `from` (a loopback address).
    pub async fn post_from(
        &self,
        from: IpAddr,
        scheme: Scheme,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let to = match scheme {
            Scheme::Http => self.nginx.http_addr(),
            Scheme::Https => self.nginx.https_addr(),
        };
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(from, 0))
            .unwrap_or_else(|e| panic!("bind the client to {from}: {e}"));
        let stream = tokio::time::timeout(WAIT, socket.connect(to))
            .await
            .expect("nginx accepts in time")
            .expect("connect to nginx");
        let mut request = Request::post(path).header("host", "localhost");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .expect("request");
        match scheme {
            Scheme::Http => exchange(stream, request).await,
            Scheme::Https => {
                let name = ServerName::try_from("localhost").expect("server name");
                let stream = tokio::time::timeout(WAIT, self.tls.connect(name, stream))
                    .await
                    .expect("TLS handshake in time")
                    .expect("TLS handshake with nginx");
                exchange(stream, request).await
            }
        }
    }

    /// Every message stored in the endpoint's stream, oldest first.
    pub async fn stored(&self) -> Vec<StreamMessage> {
        let js = jetstream::new(self.nats.connect().await.expect("connect"));
        let mut stream = js.get_stream(&self.target.stream).await.expect("stream");
        let info = stream.info().await.expect("stream info");
        let (count, first, last) = (
            info.state.messages,
            info.state.first_sequence,
            info.state.last_sequence,
        );
        let mut messages = Vec::new();
        if count == 0 {
            return messages;
        }
        for sequence in first..=last {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                messages.push(message);
            }
        }
        messages
    }
}

/// One request on a fresh HTTP/1.1 connection.
async fn exchange(
    io: impl AsyncRead + AsyncWrite + Send + Unpin + 'static,
    request: Request<Full<Bytes>>,
) -> Reply {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("HTTP/1.1 handshake");
    let driver = tokio::spawn(connection);
    let response = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("HTTP response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .expect("the body in time")
        .expect("body")
        .to_bytes();
    driver.abort();
    Reply {
        status,
        headers,
        body,
    }
}

/// The `x-request-id` nginx passed back from the receiver.
pub fn request_id(reply: &Reply) -> String {
    reply
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| {
            panic!(
                "no x-request-id: {} {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            )
        })
        .to_owned()
}

/// The JSON answer's `error` (the reason code of a refusal).
pub fn reason(reply: &Reply) -> String {
    let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_else(|e| {
        panic!(
            "a JSON answer ({e}): {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )
    });
    json["error"].as_str().unwrap_or_default().to_owned()
}

/// The `Hookwarden-Source-Ip` a message was stored with.
pub fn source_ip(message: &StreamMessage) -> String {
    message
        .headers
        .get("Hookwarden-Source-Ip")
        .map(|v| v.as_str().to_owned())
        .expect("Hookwarden-Source-Ip")
}
