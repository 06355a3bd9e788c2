//! The adversarial suite: each module attacks one promise of
//! `docs/security.md` against the real `hookwarden-receiver` binary, started
//! from its manifest the way the operator starts it, in front of a real
//! nats-server. Every attack uses loopback addresses only and is bounded in
//! count and time.
//!
//! | module | promise attacked |
//! |---|---|
//! | `forwarding` | a client cannot forge its address or scheme through the ingress (a real nginx) |
//! | `slow_clients` | unauthenticated or slow bodies cannot starve signed deliveries |
//! | `connections` | every connection phase has a deadline; one source cannot fill the listener |
//! | `aborts` | every request is audited and counted whatever the client does |
//! | `reloads` | a rotation during a NATS outage is applied, not lost |
//! | `replays` | a replay inside the tolerance is never stored twice |
//! | `streams` | a lost stream is re-created, or `/readyz` says so |
//! | `floods` | an IPv6 host is one source, not 2^64 |
//! | `deployed` | the binary serves each example manifest on its own path |

mod aborts;
mod connections;
mod deployed;
mod floods;
mod forwarding;
mod reloads;
mod replays;
mod slow_clients;
mod streams;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection to `to` from the loopback address `source`.
pub async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    socket.connect(to).await.expect("connect")
}

/// A GitHub delivery for [`crate::ENDPOINT`] as raw HTTP/1.1, signed
/// correctly, on `path`.
pub fn signed_request(path: &str, id: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: hookwarden\r\ncontent-type: application/json\r\n\
         x-github-event: push\r\nx-github-delivery: {id}\r\nx-hub-signature-256: {}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        crate::sign(body.as_bytes()),
        body.len()
    )
    .into_bytes()
}

/// Writes `request`, reads until the server closes or `within` passes;
/// the status of the answer, if one came.
pub async fn exchange(stream: &mut TcpStream, request: &[u8], within: Duration) -> Option<u16> {
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    status_of(&answer)
}

/// The status code of the first HTTP/1.1 response line in `answer`.
pub fn status_of(answer: &[u8]) -> Option<u16> {
    String::from_utf8_lossy(answer)
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

/// Whether the server closed `stream` within `within` (reads hit EOF or a
/// reset); what was read before does not matter.
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_elapsed) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// The value of the metric line starting with `prefix` (name and labels)
/// in the Prometheus `text`; 0 when absent.
pub fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(prefix)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// The audit lines (JSON) of the receiver's log.
pub fn audit_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "hookwarden::audit")
        .collect()
}

/// An HTTP/2 connection to `to` from `source`: its request sender, and the
/// task driving it.
pub async fn h2_connect<B>(
    source: [u8; 4],
    to: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<B>,
    tokio::task::JoinHandle<hyper::Result<()>>,
)
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = connect_from(source, to).await;
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    (sender, tokio::spawn(connection))
}

/// `X-Hub-Signature-256` of `body` under `secret`.
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A GitHub delivery `{"id":"<id>"}` signed with `secret`, with `extra`
/// headers, sent to the receiver binary: the answer's status.
pub(crate) async fn deliver_github(
    receiver: &crate::binary::ReceiverProcess,
    secret: &[u8],
    id: &str,
    extra: &[(&str, &str)],
) -> hyper::StatusCode {
    let body = format!("{{\"id\":\"{id}\"}}");
    let signature = github_signature(secret, body.as_bytes());
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-github-event", "push"),
        ("x-github-delivery", id),
        ("x-hub-signature-256", signature.as_str()),
    ];
    headers.extend_from_slice(extra);
    receiver
        .send("POST", &headers, body.as_bytes())
        .await
        .status
}

/// The JetStream messages of `stream`, counted.
pub async fn stored(nats: &hookwarden_tests::NatsServer, stream: &str) -> u64 {
    let js = async_nats::jetstream::new(nats.connect().await.expect("connect"));
    match js.get_stream(stream).await {
        Ok(mut stream) => stream.info().await.expect("stream info").state.messages,
        Err(_) => 0,
    }
}
