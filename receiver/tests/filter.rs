//! Source filtering end to end: the real receiver in front of a real
//! nats-server, with trusted proxies, allowlists and rate limits. Requests
//! come from 127.0.0.1; `X-Forwarded-For` plays the client behind a proxy.

mod common;

use async_nats::jetstream;
use common::{Answer, Receiver, start_receiver_with, stored_messages};
use hookwarden_crds::{Rate, RateLimitSpec};
use hookwarden_receiver::clientip::{
    ALLOWED_SOURCE_CIDRS_FIELD, ForwardedHeaders, Networks, TRUSTED_PROXIES_FIELD, TrustedProxies,
};
use hookwarden_receiver::limits::RateLimits;
use hookwarden_receiver::server::AppState;
use hookwarden_tests::NatsServer;
use hyper::StatusCode;

const BODY_LIMIT: usize = 1024 * 1024;

fn allowed(cidrs: &[&str]) -> Networks {
    let cidrs: Vec<String> = cidrs.iter().map(|c| (*c).to_owned()).collect();
    Networks::parse(ALLOWED_SOURCE_CIDRS_FIELD, &cidrs).expect("allowlist")
}

/// Proxies in `cidrs` that write `X-Forwarded-For` (ingress-nginx).
fn trusted(cidrs: &[&str]) -> TrustedProxies {
    trusted_as(cidrs, ForwardedHeaders::XForwardedFor)
}

fn trusted_as(cidrs: &[&str], headers: ForwardedHeaders) -> TrustedProxies {
    let cidrs: Vec<String> = cidrs.iter().map(|c| (*c).to_owned()).collect();
    TrustedProxies::new(
        Networks::parse(TRUSTED_PROXIES_FIELD, &cidrs).expect("proxies"),
        headers,
    )
}

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
    let receiver = start_receiver_with(&nats, BODY_LIMIT, |state| {
        state.with_allowed_sources(allowed(&["10.0.0.0/8"]))
    })
    .await;
    let answer = receiver.deliver(b"{}", "denied-1", None).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    assert_eq!(answer.json, serde_json::json!({"error": "ip_not_allowed"}));
    assert_eq!(stored_messages(&nats, &receiver.target).await, 0);
}

#[tokio::test]
async fn a_peer_inside_the_allowlist_is_stored() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_receiver_with(&nats, BODY_LIMIT, |state| {
        state.with_allowed_sources(allowed(&["2001:db8::/32", "127.0.0.0/8"]))
    })
    .await;
    let answer = receiver.deliver(b"{}", "allowed-1", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(stored_messages(&nats, &receiver.target).await, 1);
}

#[tokio::test]
async fn a_trusted_proxy_forwards_the_client_ip() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = start_receiver_with(&nats, BODY_LIMIT, |state| {
        state
            .with_trusted_proxies(trusted(&["127.0.0.1/32"]))
            .with_allowed_sources(allowed(&["203.0.113.0/24"]))
    })
    .await;
    let answer = receiver
        .deliver_with(
            b"{}",
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
        .deliver_with(b"{}", "proxied-2", None, &rfc7239)
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    assert_eq!(answer.json["error"], "ip_not_allowed");

    // Without the header the proxy itself is the client: not allowed.
    let answer = receiver.deliver(b"{}", "proxied-3", None).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    assert_eq!(answer.json["error"], "ip_not_allowed");

    // A proxy configured as writing Forwarded (RFC 7239) is believed about
    // it, and then not about X-Forwarded-For.
    let receiver = start_receiver_with(&nats, BODY_LIMIT, |state| {
        state
            .with_trusted_proxies(trusted_as(&["127.0.0.1/32"], ForwardedHeaders::Forwarded))
            .with_allowed_sources(allowed(&["203.0.113.0/24"]))
    })
    .await;
    let answer = receiver
        .deliver_with(b"{}", "proxied-4", None, &rfc7239)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(
        stored_source_ip(&nats, &receiver, &answer).await,
        "203.0.113.9"
    );
    let answer = receiver
        .deliver_with(
            b"{}",
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
    let receiver = start_receiver_with(&nats, BODY_LIMIT, |state| {
        state
            .with_trusted_proxies(trusted(&["10.0.0.0/8"]))
            .with_allowed_sources(allowed(&["203.0.113.0/24"]))
    })
    .await;
    let spoofed = receiver
        .deliver_with(
            b"{}",
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
    let receiver = start_receiver_with(&nats, BODY_LIMIT, |state| {
        state.with_trusted_proxies(trusted(&["127.0.0.1/32"]))
    })
    .await;
    let answer = receiver
        .deliver_with(
            b"{}",
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
    let receiver = start_receiver_with(&nats, BODY_LIMIT, |state| {
        state
            .with_trusted_proxies(trusted(&["127.0.0.1/32"]))
            .require_forwarded_https(true)
    })
    .await;
    let plain = receiver
        .deliver_with(b"{}", "https-1", None, &[("x-forwarded-proto", "http")])
        .await;
    assert_eq!(plain.status, StatusCode::FORBIDDEN, "{}", plain.json);
    assert_eq!(plain.json["error"], "https_required");
    let unreported = receiver.deliver(b"{}", "https-2", None).await;
    assert_eq!(unreported.json["error"], "https_required");
    let https = receiver
        .deliver_with(b"{}", "https-3", None, &[("x-forwarded-proto", "https")])
        .await;
    assert_eq!(https.status, StatusCode::OK, "{}", https.json);
    assert_eq!(stored_messages(&nats, &receiver.target).await, 1);
}

#[tokio::test]
async fn a_flooding_client_is_rate_limited_while_another_still_delivers() {
    let nats = NatsServer::start().await.expect("nats-server");
    let spec = RateLimitSpec {
        global: None,
        per_source_ip: Some(Rate {
            requests_per_second: 1,
            burst: Some(2),
        }),
    };
    let limits = RateLimits::from_spec(Some(&spec)).expect("rate limits");
    let receiver = start_receiver_with(&nats, BODY_LIMIT, |state: AppState| {
        state
            .with_trusted_proxies(trusted(&["127.0.0.1/32"]))
            .with_rate_limits(limits)
    })
    .await;
    let client_a = [("x-forwarded-for", "203.0.113.7")];
    let mut ok = 0;
    let mut limited = 0;
    for n in 0..5 {
        let answer = receiver
            .deliver_with(b"{}", &format!("flood-{n}"), None, &client_a)
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
            b"{}",
            "other-client",
            None,
            &[("x-forwarded-for", "203.0.113.8")],
        )
        .await;
    assert_eq!(client_b.status, StatusCode::OK, "{}", client_b.json);
    assert_eq!(stored_messages(&nats, &receiver.target).await, 3);
}
