//! Source filtering end to end: the real receiver in front of a real
//! nats-server, with trusted proxies, allowlists and rate limits. Requests
//! come from 127.0.0.1; `X-Forwarded-For` plays the client behind a proxy.

use crate::{Answer, Receiver, start_github, stored_messages};
use async_nats::jetstream;
use hookwarden_receiver::transport::Mode;
use hookwarden_tests::NatsServer;
use hyper::StatusCode;

const BODY_LIMIT: usize = 1024 * 1024;

async fn stored_source_ip(nats: &NatsServer, receiver: &Receiver, answer: &Answer) -> String {
    let sequence = answer.json["sequence"].as_u64().expect("sequence");
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let stream = js
        .get_stream(&receiver.target.stream)
        .await
        .expect("stream");
    let message = stream.get_raw_message(sequence).await.expect("stored");
    message
        .headers
        .get("Hookwarden-Source-Ip")
        .map(|v| v.as_str().to_owned())
        .expect("Hookwarden-Source-Ip")
}

#[tokio::test]
async fn a_peer_outside_the_allowlist_is_refused_and_nothing_is_stored() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_github(
        &nats,
        BODY_LIMIT,
        "  allowedSourceCidrs: [10.0.0.0/8]\n",
        |_| {},
    )
    .await;
    let answer = receiver
        .deliver(br#"{"id":"denied-1"}"#, "denied-1", None)
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    assert_eq!(answer.json, serde_json::json!({"error": "ip_not_allowed"}));
    assert_eq!(stored_messages(&nats, &receiver.target).await, 0);
}

#[tokio::test]
async fn a_peer_inside_the_allowlist_is_stored() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_github(
        &nats,
        BODY_LIMIT,
        "  allowedSourceCidrs: [\"2001:db8::/32\", 127.0.0.0/8]\n",
        |_| {},
    )
    .await;
    let answer = receiver
        .deliver(br#"{"id":"allowed-1"}"#, "allowed-1", None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(stored_messages(&nats, &receiver.target).await, 1);
}

#[tokio::test]
async fn a_trusted_proxy_forwards_the_client_ip() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_github(
        &nats,
        BODY_LIMIT,
        "  trustedProxies: [127.0.0.1/32]\n  allowedSourceCidrs: [203.0.113.0/24]\n",
        |_| {},
    )
    .await;
    let answer = receiver
        .deliver_with(
            br#"{"id":"proxied-1"}"#,
            "proxied-1",
            None,
            &[("x-forwarded-for", "203.0.113.7")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(
        stored_source_ip(&nats, &receiver, &answer).await,
        "203.0.113.7"
    );

    // This proxy writes X-Forwarded-For, so a Forwarded header is the
    // client's own, passed through: the proxy itself is the client.
    let rfc7239 = [("forwarded", "for=\"203.0.113.9:5000\";proto=https")];
    let answer = receiver
        .deliver_with(br#"{"id":"proxied-2"}"#, "proxied-2", None, &rfc7239)
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    assert_eq!(answer.json["error"], "ip_not_allowed");

    // Without the header the proxy itself is the client: not allowed.
    let answer = receiver
        .deliver(br#"{"id":"proxied-3"}"#, "proxied-3", None)
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    assert_eq!(answer.json["error"], "ip_not_allowed");

    // A proxy configured as writing Forwarded (RFC 7239) is believed about
    // it, and then not about X-Forwarded-For.
    let receiver = start_github(
        &nats,
        BODY_LIMIT,
        "  trustedProxies: [127.0.0.1/32]\n  allowedSourceCidrs: [203.0.113.0/24]\n  forwardedHeaders: Forwarded\n",
        |_| {},
    )
    .await;
    let answer = receiver
        .deliver_with(br#"{"id":"proxied-4"}"#, "proxied-4", None, &rfc7239)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(
        stored_source_ip(&nats, &receiver, &answer).await,
        "203.0.113.9"
    );
    let answer = receiver
        .deliver_with(
            br#"{"id":"proxied-5"}"#,
            "proxied-5",
            None,
            &[("x-forwarded-for", "203.0.113.7")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    assert_eq!(answer.json["error"], "ip_not_allowed");
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_github(
        &nats,
        BODY_LIMIT,
        "  trustedProxies: [10.0.0.0/8]\n  allowedSourceCidrs: [203.0.113.0/24]\n",
        |_| {},
    )
    .await;
    let spoofed = receiver
        .deliver_with(
            br#"{"id":"spoofed-1"}"#,
            "spoofed-1",
            None,
            &[
                ("x-forwarded-for", "203.0.113.7"),
                ("forwarded", "for=203.0.113.7"),
            ],
        )
        .await;
    assert_eq!(spoofed.status, StatusCode::FORBIDDEN, "{}", spoofed.json);
    assert_eq!(spoofed.json["error"], "ip_not_allowed");
    assert_eq!(stored_messages(&nats, &receiver.target).await, 0);
}

#[tokio::test]
async fn a_malformed_forwarding_header_from_a_trusted_proxy_is_400() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_github(
        &nats,
        BODY_LIMIT,
        "  trustedProxies: [127.0.0.1/32]\n",
        |_| {},
    )
    .await;
    let answer = receiver
        .deliver_with(
            br#"{"id":"malformed-1"}"#,
            "malformed-1",
            None,
            &[("x-forwarded-for", "203.0.113.7, not-an-address")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);
    assert_eq!(answer.json["error"], "forwarded_header_invalid");
    assert_eq!(stored_messages(&nats, &receiver.target).await, 0);
}

#[tokio::test]
async fn behind_an_ingress_only_forwarded_https_is_accepted() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_github(
        &nats,
        BODY_LIMIT,
        "  trustedProxies: [127.0.0.1/32]\n",
        |settings| settings.mode = Mode::BehindIngress,
    )
    .await;
    let plain = receiver
        .deliver_with(
            br#"{"id":"https-1"}"#,
            "https-1",
            None,
            &[("x-forwarded-proto", "http")],
        )
        .await;
    assert_eq!(plain.status, StatusCode::FORBIDDEN, "{}", plain.json);
    assert_eq!(plain.json["error"], "https_required");
    let unreported = receiver
        .deliver(br#"{"id":"https-2"}"#, "https-2", None)
        .await;
    assert_eq!(unreported.json["error"], "https_required");
    let https = receiver
        .deliver_with(
            br#"{"id":"https-3"}"#,
            "https-3",
            None,
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert_eq!(https.status, StatusCode::OK, "{}", https.json);
    assert_eq!(stored_messages(&nats, &receiver.target).await, 1);
}

#[tokio::test]
async fn a_flooding_client_is_rate_limited_while_another_still_delivers() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_github(
        &nats,
        BODY_LIMIT,
        "  trustedProxies: [127.0.0.1/32]\n  rateLimit:\n    perSourceIp: {requestsPerSecond: 1, burst: 2}\n",
        |_| {},
    )
    .await;
    let client_a = [("x-forwarded-for", "203.0.113.7")];
    let mut ok = 0;
    let mut limited = 0;
    for n in 0..5 {
        let answer = receiver
            .deliver_with(
                format!("{{\"n\":{n}}}").as_bytes(),
                &format!("flood-{n}"),
                None,
                &client_a,
            )
            .await;
        match answer.status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert_eq!(answer.json["error"], "rate_limited");
                let retry_after: u64 = answer.headers["retry-after"]
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("whole seconds");
                assert!(retry_after >= 1, "{retry_after}");
            }
            other => panic!("unexpected {other}: {}", answer.json),
        }
    }
    // The burst of 2 is there from the start; a third pass would need a
    // refill, i.e. a whole second between these back-to-back requests.
    assert_eq!(ok, 2, "{ok} of 5 passed a burst of 2");
    assert_eq!(limited, 3);

    let client_b = receiver
        .deliver_with(
            br#"{"id":"other-client"}"#,
            "other-client",
            None,
            &[("x-forwarded-for", "203.0.113.8")],
        )
        .await;
    assert_eq!(client_b.status, StatusCode::OK, "{}", client_b.json);
    assert_eq!(stored_messages(&nats, &receiver.target).await, 3);
}
