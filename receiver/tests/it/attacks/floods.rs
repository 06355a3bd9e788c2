//! Floods from many addresses of one IPv6 network.
//!
//! Before, per-IP rate limits keyed IPv6 clients by /128: one host, which
//! usually owns a whole /64, had 2^64 buckets to spread a flood over.

use hookwarden_tests::NatsServer;
use hyper::StatusCode;

use crate::binary::ReceiverProcess;
use crate::{SECRET, github_manifest};

/// A delivery the trusted proxy (the test itself, on 127.0.0.1) reports as
/// coming from `client`.
async fn deliver_as(receiver: &ReceiverProcess, client: &str, id: &str) -> StatusCode {
    super::deliver_github(
        receiver,
        SECRET.as_bytes(),
        id,
        &[("x-forwarded-for", client)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_of_one_ipv6_64_share_one_bucket() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        &github_manifest(
            "  trustedProxies: [127.0.0.1/32]\n  rateLimit:\n    perSourceIp: {requestsPerSecond: 1, burst: 3}\n",
        ),
        &[("gh", "secret", SECRET.as_bytes())],
        &[],
    );
    receiver.ready().await;
    let mut limited = 0;
    for n in 0..20 {
        let client = format!("2001:db8:1:2::{:x}", n + 1);
        match deliver_as(&receiver, &client, &format!("v6-{n}")).await {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("{client}: {other}"),
        }
    }
    assert!(
        limited >= 16,
        "the /64 is one source: {limited} of 20 limited"
    );
    // Another /64 has its own bucket.
    assert_eq!(
        deliver_as(&receiver, "2001:db8:1:3::1", "other-64").await,
        StatusCode::OK
    );
    // With a /128 prefix configured, each address is its own source again.
    let per_address = ReceiverProcess::spawn(
        nats.url(),
        &github_manifest(
            "  trustedProxies: [127.0.0.1/32]\n  rateLimit:\n    perSourceIp: {requestsPerSecond: 1, burst: 3}\n    ipv6PrefixLength: 128\n",
        )
        .replace("name: github", "name: github128"),
        &[("gh", "secret", SECRET.as_bytes())],
        &[],
    );
    per_address.ready().await;
    for n in 0..10 {
        let client = format!("2001:db8:1:2::{:x}", n + 1);
        assert_eq!(
            deliver_as(&per_address, &client, &format!("v6-128-{n}")).await,
            StatusCode::OK
        );
    }
}
