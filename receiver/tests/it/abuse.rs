//! Hostile and broken clients, over raw TCP against the real receiver and a
//! real nats-server: each gets a 4xx (or the connection closed), nothing is
//! stored, and the receiver keeps serving legitimate deliveries. Distinct
//! loopback source addresses (127.0.0.2, 127.0.0.3) play distinct clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::{Receiver, sign, start_github, start_receiver, stored_messages};
use hookwarden_tests::NatsServer;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn addr(receiver: &Receiver) -> SocketAddr {
    receiver
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("socket address")
}

/// Connects from `source` (a loopback address) to the receiver.
async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    socket.connect(to).await.expect("connect")
}

/// The value of the unlabelled metric `name` in the Prometheus `text`.
fn metric_value(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

/// Writes `request` and reads until the server closes or 5 s pass; returns
/// the status code of the first response line, if any.
async fn exchange(mut stream: TcpStream, request: &[u8]) -> Option<u16> {
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

/// A correctly signed GitHub delivery as raw HTTP/1.1.
fn signed_request(id: &str, body: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nhost: hookwarden\r\ncontent-type: application/json\r\n\
         x-github-event: push\r\nx-github-delivery: {id}\r\nx-hub-signature-256: {}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        sign(body.as_bytes()),
        body.len()
    )
    .into_bytes()
}

async fn still_serves(receiver: &Receiver, id: &str) {
    let answer = receiver.deliver(b"{\"still\":\"serving\"}", id, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

#[tokio::test]
async fn malformed_requests_get_4xx_and_leave_the_receiver_healthy() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_receiver(&nats, 1024).await;
    let to = addr(&receiver);
    let connect = || TcpStream::connect(to);

    // Bad chunked encoding.
    let bad_chunks =
        b"POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n";
    let status = exchange(connect().await.expect("connect"), bad_chunks).await;
    assert!(
        matches!(status, None | Some(400..=499)),
        "bad chunks: {status:?}"
    );

    // Truncated body: declares 100 bytes, sends 10, closes its side.
    let mut stream = connect().await.expect("connect");
    let _ = stream
        .write_all(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 100\r\n\r\n0123456789")
        .await;
    let _ = stream.shutdown().await;
    let status = exchange(stream, b"").await;
    assert!(
        matches!(status, None | Some(400..=499)),
        "truncated: {status:?}"
    );

    // Absurd header count (2 000 headers).
    let mut many = b"POST / HTTP/1.1\r\nhost: h\r\n".to_vec();
    for i in 0..2000 {
        many.extend_from_slice(format!("x-h-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"content-length: 0\r\n\r\n");
    let status = exchange(connect().await.expect("connect"), &many).await;
    assert!(
        matches!(status, None | Some(400..=499)),
        "2000 headers: {status:?}"
    );

    // Invalid UTF-8 in the signature header: malformed, not a crash.
    let raw = b"POST / HTTP/1.1\r\nhost: h\r\nx-hub-signature-256: sha256=\xff\xfe\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
    let status = exchange(connect().await.expect("connect"), raw).await;
    assert!(
        matches!(status, None | Some(400..=499)),
        "invalid UTF-8: {status:?}"
    );

    // A declared body over the cap (1 KiB here).
    let big = "x".repeat(2048);
    let status = exchange(
        connect().await.expect("connect"),
        &signed_request("big", &big),
    )
    .await;
    assert_eq!(status, Some(413));

    assert_eq!(
        stored_messages(&nats, &receiver.target).await,
        0,
        "nothing refused is stored"
    );
    still_serves(&receiver, "after-abuse").await;
    assert_eq!(stored_messages(&nats, &receiver.target).await, 1);
}

#[tokio::test]
async fn idle_and_slow_connections_do_not_block_deliveries() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_receiver(&nats, 1024 * 1024).await;
    let to = addr(&receiver);
    // From one other address: 200 connections that say nothing, and 20 that
    // send half a request (unsigned, so refused before the body).
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(connect_from([127, 0, 0, 2], to).await);
    }
    for _ in 0..20 {
        let mut slow = connect_from([127, 0, 0, 2], to).await;
        // The kernel accepts what the receiver then drops; a write may fail.
        let _ = slow
            .write_all(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 1000\r\n\r\n{")
            .await;
        idle.push(slow);
    }
    still_serves(&receiver, "despite-idle").await;
    // One address holds at most its share of the connection slots.
    let text = receiver.metrics();
    let refused = metric_value(&text, "hookwarden_connections_refused_per_source_total");
    assert!(
        refused >= 220 - hookwarden_receiver::transport::MAX_CONNECTIONS_PER_SOURCE as u64,
        "{refused} refused: {text}"
    );
    drop(idle);
    still_serves(&receiver, "after-idle").await;
}

#[tokio::test]
async fn a_flooding_source_address_is_limited_while_another_is_served() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_github(
        &nats,
        1024 * 1024,
        "  rateLimit:\n    perSourceIp: {requestsPerSecond: 1, burst: 3}\n",
        |_| {},
    )
    .await;
    let to = addr(&receiver);

    let mut flood = Vec::new();
    for i in 0..20 {
        let stream = connect_from([127, 0, 0, 2], to).await;
        flood.push(exchange(stream, &signed_request(&format!("flood-{i}"), "{}")).await);
    }
    let accepted = flood.iter().filter(|s| **s == Some(200)).count();
    let limited = flood.iter().filter(|s| **s == Some(429)).count();
    assert!(
        accepted <= 4,
        "the burst (3) plus at most one refill: {flood:?}"
    );
    assert!(limited >= 16, "the rest is limited: {flood:?}");

    let other = exchange(
        connect_from([127, 0, 0, 3], to).await,
        &signed_request("other", "{}"),
    )
    .await;
    assert_eq!(other, Some(200), "another source is still served");
    let counted = format!(
        "hookwarden_rate_limited_total{{endpoint=\"ci/github\",scope=\"per_source_ip\"}} {limited}\n"
    );
    let text = receiver.metrics();
    assert!(text.contains(&counted), "{counted} in {text}");
}

/// A forged GitHub delivery (a signature of other bytes) as raw HTTP/1.1.
fn forged_request(id: &str) -> Vec<u8> {
    let body = format!("{{\"delivery\":\"{id}\"}}");
    format!(
        "POST / HTTP/1.1\r\nhost: hookwarden\r\ncontent-type: application/json\r\n\
         x-github-event: push\r\nx-github-delivery: {id}\r\nx-hub-signature-256: {}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        sign(b"other bytes"),
        body.len()
    )
    .into_bytes()
}

/// The `n`th spraying address: 127.100.0.0 onwards (never 127.0.0.1, where
/// the legitimate client connects from, nor the test cluster's pod network
/// in 127.244.0.0/16).
fn spray_address(n: usize) -> [u8; 4] {
    let [_, a, b, c] = u32::try_from(n)
        .expect("fewer than 2^24 addresses")
        .to_be_bytes();
    [127, 100 + a, b, c]
}

/// Source addresses the spray test uses (`bench/soak.sh` multiplies it past
/// the receiver's 100,000 tracked rate-limit buckets).
const SPRAY_ADDRESSES: usize = 2_000;
/// Connections of the spray at once.
const SPRAY_CONNECTIONS: usize = 32;
/// How much the real receiver's resident memory may grow over the spray.
/// A leak of a few KiB per client would exceed it at 2,000 clients; the
/// rate-limit table itself is a few dozen bytes per address.
const SPRAY_RSS_GROWTH_KIB: u64 = 16 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spray_from_many_addresses_keeps_memory_bounded_and_deliveries_flowing() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = crate::binary::ReceiverProcess::spawn(
        nats.url(),
        crate::ENDPOINT,
        &[("gh", "secret", crate::SECRET.as_bytes())],
        &[("RUST_LOG", "warn")],
    );
    receiver.ready().await;
    let to: SocketAddr = receiver.listen.parse().expect("listen address");
    let before = receiver.rss_kib().expect("VmRSS");

    let addresses = SPRAY_ADDRESSES * crate::soak_scale();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..SPRAY_CONNECTIONS)
        .map(|_| {
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut refused = 0_usize;
                let mut other = Vec::new();
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= addresses {
                        break;
                    }
                    let stream = connect_from(spray_address(n), to).await;
                    match exchange(stream, &forged_request(&format!("spray-{n}"))).await {
                        Some(401) => refused += 1,
                        status => other.push((n, status)),
                    }
                }
                (refused, other)
            })
        })
        .collect();
    let mut refused = 0;
    let mut other = Vec::new();
    for worker in workers {
        let (r, o) = worker.await.expect("spray worker");
        refused += r;
        other.extend(o);
    }
    let after = receiver.rss_kib().expect("VmRSS");
    assert!(
        other.is_empty(),
        "every forged delivery is refused 401: {:?}",
        &other[..other.len().min(10)]
    );
    assert_eq!(refused, addresses);

    let body = b"{\"after\":\"spray\"}";
    let signature = sign(body);
    let legit = receiver
        .send(
            "POST",
            &[
                ("content-type", "application/json"),
                ("x-github-event", "push"),
                ("x-github-delivery", "after-spray"),
                ("x-hub-signature-256", &signature),
            ],
            body,
        )
        .await;
    assert_eq!(legit.status, StatusCode::OK, "a delivery after the spray");
    let growth = after.saturating_sub(before);
    eprintln!(
        "spray from {addresses} addresses: all refused 401; RSS {before} KiB before, {after} KiB after (+{growth} KiB)"
    );
    assert!(
        growth <= SPRAY_RSS_GROWTH_KIB,
        "RSS grew by {growth} KiB over {addresses} sources ({before} -> {after} KiB)"
    );
}
