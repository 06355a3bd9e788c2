//! The shared receiver pool as shipped: the real `hookwarden-receiver
//! serve --pool-dir` binary on a directory laid out and updated like the
//! pool's mounted Secret ([`SecretVolume`]), storing in a real nats-server.
//! Each endpoint is reached by its host and path, verified with its own
//! secrets, stored in its own stream; endpoints come, change, break and go
//! at run time without disturbing the others or the open connections.

use crate::binary::{PlainMode, ReceiverProcess, Reply, WAIT, request};
use async_nats::jetstream;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use hookwarden_receiver::pool::layout::{endpoint_file, secret_file};
use hookwarden_receiver::publish::Target;
use hookwarden_tests::{NatsServer, SecretVolume, eventually};
use http_body_util::Full;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

const GITHUB_SECRET: &[u8] = b"gh-pool-SECRET-0001";
const GITHUB_B_SECRET: &[u8] = b"gh-b-pool-SECRET-0002";
const STRIPE_SECRET: &[u8] = b"whsec_pool-SECRET-0003";
const TOKEN: &[u8] = b"token-pool-SECRET-0004";
const ROTATED: &[u8] = b"gh-pool-ROTATED-0005";
const ALL_SECRETS: [&[u8]; 5] = [
    GITHUB_SECRET,
    GITHUB_B_SECRET,
    STRIPE_SECRET,
    TOKEN,
    ROTATED,
];

const GH_HOST: &str = "gh.example.com";
const PAY_HOST: &str = "pay.example.com";

fn github(name: &str, path: &str, secret: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: {name}, namespace: pool}}\n\
         spec:\n  provider: github\n  secretRefs: [{{name: {secret}, key: secret}}]\n  \
         ingress: {{host: {GH_HOST}, path: {path}}}\n"
    )
}

fn stripe() -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: stripe, namespace: pool}}\n\
         spec:\n  provider: stripe\n  secretRefs: [{{name: stripe, key: secret}}]\n  \
         ingress: {{host: {PAY_HOST}, path: /stripe}}\n"
    )
}

/// A generic token endpoint without an Ingress: `/` on any host.
fn token(extra: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: token, namespace: pool}}\n\
         spec:\n  provider: generic\n  verification:\n    \
         token: {{header: X-Token, secretRefs: [{{name: token, key: value}}]}}\n{extra}"
    )
}

fn target(manifest: &str) -> Target {
    Target::for_endpoint(&hookwarden_crds::from_yaml(manifest).expect("manifest")).expect("target")
}

fn endpoint_key(name: &str) -> String {
    endpoint_file(name)
}

fn hub_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A GitHub delivery to `path` on `host`, signed with `secret`.
fn github_delivery(
    listen: &str,
    host: &str,
    path: &str,
    secret: &[u8],
    body: &[u8],
) -> hyper::Request<Full<Bytes>> {
    let signature = hub_signature(secret, body);
    let delivery = format!("{:032x}", rand::random::<u128>());
    request(
        listen,
        "POST",
        path,
        &[
            ("host", host),
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("x-github-delivery", delivery.as_str()),
            ("x-hub-signature-256", signature.as_str()),
        ],
        body,
    )
}

fn stripe_delivery(listen: &str, body: &[u8]) -> hyper::Request<Full<Bytes>> {
    let headers = hookwarden_receiver::verify::stripe::sign(
        STRIPE_SECRET,
        jiff::Timestamp::now().as_second(),
        body,
    );
    let mut all: Vec<(&str, &str)> = vec![("host", PAY_HOST), ("content-type", "application/json")];
    all.extend(headers.iter().map(|(n, v)| (*n, v.as_str())));
    request(listen, "POST", "/stripe", &all, body)
}

fn token_delivery(listen: &str, host: &str, body: &[u8]) -> hyper::Request<Full<Bytes>> {
    let token = std::str::from_utf8(TOKEN).expect("text");
    request(
        listen,
        "POST",
        "/",
        &[
            ("host", host),
            ("content-type", "application/json"),
            ("x-token", token),
        ],
        body,
    )
}

/// The body stored at `reply`'s sequence in `stream`.
async fn stored_body(nats: &NatsServer, stream: &str, reply: &Reply) -> Bytes {
    let json = reply.json();
    assert_eq!(json["status"], "stored", "{json}");
    let sequence = json["sequence"].as_u64().expect("sequence");
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let stream = js.get_stream(stream).await.expect("the endpoint's stream");
    stream
        .get_raw_message(sequence)
        .await
        .expect("stored")
        .payload
}

/// Sends `request` on the connection `kept`, its target in origin form
/// (`/path`, as the pooled client sends it: an absolute URI's authority
/// would be the host routed, not `Host`).
async fn on(
    kept: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    mut request: hyper::Request<Full<Bytes>>,
) -> Reply {
    let origin = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .expect("an origin-form target");
    *request.uri_mut() = origin;
    let response = tokio::time::timeout(WAIT, kept.send_request(request))
        .await
        .expect("an answer in time")
        .expect("the kept connection still works");
    Reply::of(response).await
}

/// `/endpoints`, by name.
async fn endpoints(pool: &ReceiverProcess) -> serde_json::Map<String, serde_json::Value> {
    let (status, text) = pool.ops_get("/endpoints").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    json["endpoints"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| (e["name"].as_str().expect("name").to_owned(), e.clone()))
        .collect()
}

/// Waits until `/endpoints` says `name` is in `state`; returns its entry.
async fn endpoint_in(pool: &ReceiverProcess, name: &str, state: &str) -> serde_json::Value {
    let what = format!("endpoint {name} {state} on /endpoints");
    eventually(&what, WAIT, || async {
        endpoints(pool)
            .await
            .remove(name)
            .filter(|e| e["state"] == state)
    })
    .await
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn assert_no_secret(log: &str) {
    for secret in ALL_SECRETS {
        let text = std::str::from_utf8(secret).expect("text");
        assert!(!log.contains(text), "a secret in the pool's output");
    }
}

#[tokio::test]
async fn each_endpoint_is_reached_by_its_route_and_stores_in_its_own_stream() {
    let nats = NatsServer::start().await.expect("nats-server");
    let (github_a, github_b, stripe, token) = (
        github("github", "/github", "gh"),
        github("github-b", "/github-b", "gh-b"),
        stripe(),
        token(""),
    );
    // Claims GitHub's route with a secret of its own: never served.
    let usurper = github("zz-usurper", "/github", "gh-b");
    let volume = SecretVolume::new(&[
        (&endpoint_key("github"), github_a.as_bytes()),
        (&endpoint_key("github-b"), github_b.as_bytes()),
        (&endpoint_key("stripe"), stripe.as_bytes()),
        (&endpoint_key("token"), token.as_bytes()),
        (&endpoint_key("zz-usurper"), usurper.as_bytes()),
        (&secret_file("gh", "secret"), GITHUB_SECRET),
        (&secret_file("gh-b", "secret"), GITHUB_B_SECRET),
        (&secret_file("stripe", "secret"), STRIPE_SECRET),
        (&secret_file("token", "value"), TOKEN),
    ]);
    let pool = ReceiverProcess::spawn_pool(
        PlainMode::InsecureHttp,
        nats.url(),
        volume.path(),
        &[("RUST_LOG", "debug")],
    );
    pool.ready().await;
    let listen = pool.listen.clone();

    // Each provider on its own route, stored in its own stream.
    let body = br#"{"ref":"refs/heads/main"}"#;
    let reply = pool
        .send_request(github_delivery(
            &listen,
            GH_HOST,
            "/github",
            GITHUB_SECRET,
            body,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        stored_body(&nats, &target(&github_a).stream, &reply)
            .await
            .as_ref(),
        body
    );
    let reply = pool
        .send_request(github_delivery(
            &listen,
            "GH.Example.com:443",
            "/github-b",
            GITHUB_B_SECRET,
            body,
        ))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "host case and port do not matter"
    );
    assert_eq!(
        stored_body(&nats, &target(&github_b).stream, &reply)
            .await
            .as_ref(),
        body
    );
    let charge = br#"{"type":"charge.succeeded"}"#;
    let reply = pool.send_request(stripe_delivery(&listen, charge)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        stored_body(&nats, &target(&stripe).stream, &reply)
            .await
            .as_ref(),
        charge
    );
    let reply = pool
        .send_request(token_delivery(&listen, "anything.example.org", b"{}"))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the host-less endpoint takes any host"
    );
    assert_eq!(
        stored_body(&nats, &target(&token).stream, &reply)
            .await
            .as_ref(),
        b"{}"
    );

    // The usurper's signature does not pass on the route it claims.
    let reply = pool
        .send_request(github_delivery(
            &listen,
            GH_HOST,
            "/github",
            GITHUB_B_SECRET,
            body,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // One endpoint's valid signature is worth nothing on another's route.
    let reply = pool
        .send_request(github_delivery(
            &listen,
            GH_HOST,
            "/github-b",
            GITHUB_SECRET,
            body,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "signature_mismatch");
    let mut to_stripe = github_delivery(&listen, PAY_HOST, "/stripe", GITHUB_SECRET, body);
    to_stripe
        .headers_mut()
        .insert("host", PAY_HOST.parse().expect("host"));
    let reply = pool.send_request(to_stripe).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // A route is its host and its path: GitHub's path on Stripe's host is
    // nobody's, and nothing is stored.
    let reply = pool
        .send_request(github_delivery(
            &listen,
            PAY_HOST,
            "/github",
            GITHUB_SECRET,
            body,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["error"], "unknown_endpoint");
    let request_id = reply.headers["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let audit = pool.audit_line(&request_id).await;
    assert_eq!(audit["endpoint"], "-", "{audit}");
    assert_eq!(audit["reason"], "unknown_endpoint", "{audit}");
    let metrics = pool.metrics().await;
    assert!(
        metrics.contains(r#"hookwarden_refusals_total{endpoint="-",reason="unknown_endpoint"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"hookwarden_requests_total{endpoint="pool/stripe",outcome="stored"} 1"#),
        "{metrics}"
    );

    // `/endpoints`: every file serving, with the sha256 of its manifest.
    let listed = endpoints(&pool).await;
    assert_eq!(listed.len(), 5, "{listed:?}");
    let conflict = &listed["zz-usurper"];
    assert_eq!(conflict["state"], "conflict", "{conflict}");
    assert_eq!(conflict["routed"], false, "{conflict}");
    assert!(
        conflict["error"]
            .as_str()
            .is_some_and(|e| e.contains("endpoint github")),
        "{conflict}"
    );
    for (name, manifest) in [
        ("github", &github_a),
        ("github-b", &github_b),
        ("stripe", &stripe),
        ("token", &token),
    ] {
        let entry = &listed[name];
        assert_eq!(entry["state"], "serving", "{entry}");
        assert_eq!(
            entry["config_sha256"],
            sha256_hex(manifest.as_bytes()),
            "{entry}"
        );
        assert!(entry["error"].is_null(), "{entry}");
    }
    let metrics = pool.metrics().await;
    for line in [
        r#"hookwarden_pool_endpoint_config{endpoint="stripe",state="serving"} 1"#,
        r#"hookwarden_pool_endpoint_config{endpoint="zz-usurper",state="conflict"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    let (_, readyz) = pool.ops_get("/readyz").await;
    assert_eq!(readyz, "ready\n");
    let (status, log) = pool.stop().await;
    assert!(status.success(), "{status}");
    assert!(log.contains("\"level\":\"DEBUG\""), "debug logging was on");
    assert_no_secret(&log);
}

#[tokio::test]
async fn endpoints_are_added_changed_broken_and_removed_at_run_time() {
    let nats = NatsServer::start().await.expect("nats-server");
    let github_a = github("github", "/github", "gh");
    let volume = SecretVolume::new(&[
        (&endpoint_key("github"), github_a.as_bytes()),
        (&secret_file("gh", "secret"), GITHUB_SECRET),
    ]);
    let pool = ReceiverProcess::spawn_pool(
        PlainMode::InsecureHttp,
        nats.url(),
        volume.path(),
        &[("RUST_LOG", "debug")],
    );
    pool.ready().await;
    let listen = pool.listen.clone();
    // One keep-alive connection, opened before any change, used throughout.
    let stream = tokio::net::TcpStream::connect(&listen)
        .await
        .expect("connect");
    let (mut kept, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    let connection = tokio::spawn(connection);
    let body = br#"{"zen":"Keep it logically awesome."}"#;
    let reply = on(
        &mut kept,
        github_delivery(&listen, GH_HOST, "/github", GITHUB_SECRET, body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    // A new endpoint, its secret with it: served without a restart, on the
    // connection opened before.
    let stripe = stripe();
    let reply = on(&mut kept, stripe_delivery(&listen, b"{}")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "not there yet");
    volume.update(
        &[
            (&endpoint_key("stripe"), stripe.as_bytes()),
            (&secret_file("stripe", "secret"), STRIPE_SECRET),
        ],
        &[],
    );
    endpoint_in(&pool, "stripe", "serving").await;
    let charge = br#"{"type":"charge.refunded"}"#;
    let reply = on(&mut kept, stripe_delivery(&listen, charge)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        stored_body(&nats, &target(&stripe).stream, &reply)
            .await
            .as_ref(),
        charge
    );

    // A rotated secret: the new one verifies once the pool read it.
    volume.update(&[(&secret_file("gh", "secret"), ROTATED)], &[]);
    eventually("the rotated GitHub secret to verify", WAIT, || async {
        let reply = pool
            .send_request(github_delivery(&listen, GH_HOST, "/github", ROTATED, body))
            .await;
        (reply.status == StatusCode::OK).then_some(())
    })
    .await;
    let reply = on(
        &mut kept,
        github_delivery(&listen, GH_HOST, "/github", GITHUB_SECRET, body),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "the old secret is gone"
    );

    // A broken manifest: GitHub keeps its last good configuration (the
    // rotated secret), says so, and Stripe is untouched.
    let served_sha = sha256_hex(github_a.as_bytes());
    volume.update(
        &[(&endpoint_key("github"), b"spec: [not: an endpoint")],
        &[],
    );
    let entry = endpoint_in(&pool, "github", "failed").await;
    assert_eq!(entry["config_sha256"], served_sha, "{entry}");
    assert!(
        entry["error"]
            .as_str()
            .is_some_and(|e| e.contains("endpoint.github.yaml")),
        "{entry}"
    );
    let reply = on(
        &mut kept,
        github_delivery(&listen, GH_HOST, "/github", ROTATED, body),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the last good configuration serves"
    );
    let reply = on(&mut kept, stripe_delivery(&listen, charge)).await;
    assert_eq!(reply.status, StatusCode::OK);
    // A manifest naming a secret that is not there: failed the same way.
    volume.update(
        &[(
            &endpoint_key("github"),
            github("github", "/github", "gh-missing").as_bytes(),
        )],
        &[],
    );
    let entry = eventually("the missing secret reported", WAIT, || async {
        endpoints(&pool).await.remove("github").filter(|e| {
            e["state"] == "failed"
                && e["error"]
                    .as_str()
                    .is_some_and(|text| text.contains("gh-missing/secret"))
        })
    })
    .await;
    assert_eq!(entry["config_sha256"], served_sha, "{entry}");
    let reply = on(
        &mut kept,
        github_delivery(&listen, GH_HOST, "/github", ROTATED, body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    // A new file that never loaded is not served.
    volume.update(&[(&endpoint_key("broken"), b"kind: [")], &[]);
    let entry = endpoint_in(&pool, "broken", "failed").await;
    assert!(entry["config_sha256"].is_null(), "{entry}");
    assert!(!entry["routed"].as_bool().expect("routed"), "{entry}");
    // Fixed again: serving.
    volume.update(&[(&endpoint_key("github"), github_a.as_bytes())], &[]);
    endpoint_in(&pool, "github", "serving").await;

    // Removed: its route is gone, the others stay.
    volume.update(
        &[],
        &[&endpoint_key("stripe"), &secret_file("stripe", "secret")],
    );
    eventually("stripe gone from /endpoints", WAIT, || async {
        (!endpoints(&pool).await.contains_key("stripe")).then_some(())
    })
    .await;
    let reply = on(&mut kept, stripe_delivery(&listen, charge)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["error"], "unknown_endpoint");
    let reply = on(
        &mut kept,
        github_delivery(&listen, GH_HOST, "/github", ROTATED, body),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the same connection all along"
    );
    assert!(!connection.is_finished(), "the connection was never closed");

    let (status, log) = pool.stop().await;
    assert!(status.success(), "{status}");
    assert_no_secret(&log);
}

#[tokio::test]
async fn a_flooded_endpoint_does_not_fail_another_ones_deliveries() {
    let nats = NatsServer::start().await.expect("nats-server");
    // The noisy endpoint takes 2 requests per source at once, then one a
    // second.
    let noisy = token("  rateLimit:\n    perSourceIp: {requestsPerSecond: 1, burst: 2}\n")
        .replace("metadata: {name: token,", "metadata: {name: noisy,")
        .replace(
            "verification:",
            "ingress: {host: noisy.example.com, path: /}\n  verification:",
        );
    let quiet = github("quiet", "/quiet", "gh");
    let volume = SecretVolume::new(&[
        (&endpoint_key("noisy"), noisy.as_bytes()),
        (&endpoint_key("quiet"), quiet.as_bytes()),
        (&secret_file("gh", "secret"), GITHUB_SECRET),
        (&secret_file("token", "value"), TOKEN),
    ]);
    let pool = ReceiverProcess::spawn_pool(
        PlainMode::InsecureHttp,
        nats.url(),
        volume.path(),
        &[("HOOKWARDEN_MAX_IN_FLIGHT_PER_ENDPOINT", "16")],
    );
    pool.ready().await;
    for name in ["noisy", "quiet"] {
        endpoint_in(&pool, name, "serving").await;
    }
    let listen = pool.listen.clone();
    let flood =
        (0..40).map(|_| pool.send_request(token_delivery(&listen, "noisy.example.com", b"{}")));
    let deliveries = (0..10).map(|n| {
        let body = format!(r#"{{"n":{n}}}"#);
        pool.send_request(github_delivery(
            &listen,
            GH_HOST,
            "/quiet",
            GITHUB_SECRET,
            body.as_bytes(),
        ))
    });
    let (flooded, delivered) = tokio::join!(
        futures::future::join_all(flood),
        futures::future::join_all(deliveries)
    );
    let limited = flooded
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let statuses: Vec<u16> = flooded.iter().map(|r| r.status.as_u16()).collect();
    assert!(
        limited > 0,
        "the flood met its endpoint's limit: {statuses:?}"
    );
    for reply in &delivered {
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
    let metrics = pool.metrics().await;
    assert!(
        metrics.contains(r#"hookwarden_requests_total{endpoint="pool/quiet",outcome="stored"} 10"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"hookwarden_rate_limited_total{endpoint="pool/quiet""#),
        "{metrics}"
    );
    let (_, log) = pool.stop().await;
    assert!(
        log.contains(r#""max_in_flight_per_endpoint":16"#),
        "the bound as set: {log}"
    );
}

#[tokio::test]
async fn a_stream_deleted_under_the_pool_is_reported_on_its_endpoint_only() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream::new(nats.connect().await.expect("connect"));
    // Managed elsewhere: the administrator creates it, the pool only uses it.
    js.create_stream(jetstream::stream::Config {
        name: "ORDERS".to_owned(),
        subjects: vec!["hookwarden.pool.orders.>".to_owned()],
        ..jetstream::stream::Config::default()
    })
    .await
    .expect("the administrator's stream");
    let orders = github("orders", "/orders", "gh").replace(
        "  ingress:",
        "  nats: {createStream: false, stream: ORDERS}\n  ingress:",
    );
    let quiet = github("quiet", "/quiet", "gh");
    let volume = SecretVolume::new(&[
        (&endpoint_key("orders"), orders.as_bytes()),
        (&endpoint_key("quiet"), quiet.as_bytes()),
        (&secret_file("gh", "secret"), GITHUB_SECRET),
    ]);
    let pool = ReceiverProcess::spawn_pool(
        PlainMode::InsecureHttp,
        nats.url(),
        volume.path(),
        &[("HOOKWARDEN_STREAM_CHECK_INTERVAL_SECS", "1")],
    );
    pool.ready().await;
    let listen = pool.listen.clone();
    let body = br#"{"order":1}"#;
    let reply = pool
        .send_request(github_delivery(
            &listen,
            GH_HOST,
            "/orders",
            GITHUB_SECRET,
            body,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(stored_body(&nats, "ORDERS", &reply).await.as_ref(), body);

    js.delete_stream("ORDERS")
        .await
        .expect("deleted under the pool");
    let entry = eventually("the missing stream on /endpoints", WAIT, || async {
        endpoints(&pool)
            .await
            .remove("orders")
            .filter(|e| e["stream_problem"].is_string())
    })
    .await;
    assert!(
        entry["stream_problem"]
            .as_str()
            .is_some_and(|p| p.contains("ORDERS")),
        "{entry}"
    );
    let reply = pool
        .send_request(github_delivery(
            &listen,
            GH_HOST,
            "/orders",
            GITHUB_SECRET,
            body,
        ))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "never a 2xx unstored"
    );
    // The pool and its other endpoints are fine.
    let (status, readyz) = pool.ops_get("/readyz").await;
    assert_eq!((status, readyz.as_str()), (StatusCode::OK, "ready\n"));
    assert!(endpoints(&pool).await["quiet"]["stream_problem"].is_null());
    let reply = pool
        .send_request(github_delivery(
            &listen,
            GH_HOST,
            "/quiet",
            GITHUB_SECRET,
            body,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    pool.stop().await;
}

#[tokio::test]
async fn behind_an_ingress_each_endpoint_trusts_only_its_own_proxies() {
    let nats = NatsServer::start().await.expect("nats-server");
    // The proxy (here 127.0.0.1) is trusted by one endpoint, not the other.
    let trusting = github("trusting", "/trusting", "gh")
        .replace("  ingress:", "  trustedProxies: [127.0.0.1/32]\n  ingress:");
    let wary = github("wary", "/wary", "gh")
        .replace("  ingress:", "  trustedProxies: [192.0.2.1/32]\n  ingress:");
    let volume = SecretVolume::new(&[
        (&endpoint_key("trusting"), trusting.as_bytes()),
        (&endpoint_key("wary"), wary.as_bytes()),
        (&secret_file("gh", "secret"), GITHUB_SECRET),
    ]);
    let pool =
        ReceiverProcess::spawn_pool(PlainMode::BehindIngress, nats.url(), volume.path(), &[]);
    pool.ready().await;
    let listen = pool.listen.clone();
    let forwarded = |path: &str| {
        let mut request = github_delivery(&listen, GH_HOST, path, GITHUB_SECRET, b"{}");
        let headers = request.headers_mut();
        headers.insert("x-forwarded-proto", "https".parse().expect("value"));
        headers.insert("x-forwarded-for", "203.0.113.9".parse().expect("value"));
        request
    };
    let reply = pool.send_request(forwarded("/trusting")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    // The same proxy's word counts for nothing at the endpoint that does
    // not trust it: its HTTPS report is not believed.
    let reply = pool.send_request(forwarded("/wary")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
    assert_eq!(reply.json()["error"], "https_required");
    let (_, log) = pool.stop().await;
    let audit: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "hookwarden::audit" && line["outcome"] == "stored")
        .collect();
    assert_eq!(audit.len(), 1, "{log}");
    assert_eq!(audit[0]["endpoint"], "pool/trusting");
    assert_eq!(
        audit[0]["client_ip"], "203.0.113.9",
        "the trusted proxy's client"
    );
}

#[tokio::test]
async fn hundreds_of_endpoints_are_served_by_one_pool() {
    const ENDPOINTS: usize = 200;
    let nats = NatsServer::start().await.expect("nats-server");
    let manifests: Vec<(String, String)> = (0..ENDPOINTS)
        .map(|n| {
            let name = format!("hook-{n:03}");
            let manifest = github(&name, &format!("/hooks/{n}"), "gh");
            (endpoint_key(&name), manifest)
        })
        .collect();
    let mut files: Vec<(&str, &[u8])> = manifests
        .iter()
        .map(|(key, manifest)| (key.as_str(), manifest.as_bytes()))
        .collect();
    let secret = secret_file("gh", "secret");
    files.push((&secret, GITHUB_SECRET));
    let volume = SecretVolume::new(&files);
    let pool = ReceiverProcess::spawn_pool(PlainMode::InsecureHttp, nats.url(), volume.path(), &[]);
    pool.ready().await;
    let listed = endpoints(&pool).await;
    assert_eq!(listed.len(), ENDPOINTS);
    assert!(
        listed
            .values()
            .all(|e| e["state"] == "serving" && e["routed"] == true),
        "every endpoint serving"
    );
    let listen = pool.listen.clone();
    for n in [0, 57, 123, ENDPOINTS - 1] {
        let body = format!(r#"{{"endpoint":{n}}}"#);
        let reply = pool
            .send_request(github_delivery(
                &listen,
                GH_HOST,
                &format!("/hooks/{n}"),
                GITHUB_SECRET,
                body.as_bytes(),
            ))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let manifest = &manifests[n].1;
        assert_eq!(
            stored_body(&nats, &target(manifest).stream, &reply)
                .await
                .as_ref(),
            body.as_bytes()
        );
    }
    let rss = pool.rss_kib().expect("the pool's memory");
    println!("{ENDPOINTS} endpoints: {rss} KiB resident");
    pool.stop().await;
}

/// A pool on a NATS that requires a `.creds` file logs in with its own
/// (`--nats-credentials-secret-ref`, a key of its directory as the operator
/// renders it), stores a member's delivery, and never shows the file; a
/// pool without the flag, or naming a key that is not there, does not
/// start and says why.
#[tokio::test]
async fn a_pool_logs_in_to_nats_with_its_own_creds_file() {
    let nats = NatsServer::builder()
        .require_creds()
        .start()
        .await
        .expect("nats-server in operator mode");
    let creds = nats.creds().expect("creds").to_owned();
    let github_a = github("github", "/github", "gh");
    let volume = SecretVolume::new(&[
        (&endpoint_key("github"), github_a.as_bytes()),
        (&secret_file("gh", "secret"), GITHUB_SECRET),
        (&secret_file("nats", "user.creds"), creds.as_bytes()),
    ]);

    let without =
        ReceiverProcess::spawn_pool(PlainMode::InsecureHttp, nats.url(), volume.path(), &[]);
    let (status, log) = without.exited().await;
    assert!(!status.success(), "started without credentials:\n{log}");
    assert!(log.to_ascii_lowercase().contains("authorization"), "{log}");

    let missing = ReceiverProcess::spawn_pool(
        PlainMode::InsecureHttp,
        nats.url(),
        volume.path(),
        &[("HOOKWARDEN_NATS_CREDENTIALS_SECRET_REF", "nats/other.creds")],
    );
    let (status, log) = missing.exited().await;
    assert!(!status.success(), "started without its .creds file:\n{log}");
    assert!(
        log.contains("--nats-credentials-secret-ref: cannot read secretRef nats/other.creds"),
        "names the flag and the reference: {log}"
    );

    let pool = ReceiverProcess::spawn_pool(
        PlainMode::InsecureHttp,
        nats.url(),
        volume.path(),
        &[
            ("HOOKWARDEN_NATS_CREDENTIALS_SECRET_REF", "nats/user.creds"),
            ("RUST_LOG", "debug"),
        ],
    );
    pool.ready().await;
    let body = br#"{"ref":"refs/heads/creds"}"#;
    let reply = pool
        .send_request(github_delivery(
            &pool.listen,
            GH_HOST,
            "/github",
            GITHUB_SECRET,
            body,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        stored_body(&nats, &target(&github_a).stream, &reply)
            .await
            .as_ref(),
        body
    );
    let (_, log) = pool.stop().await;
    assert_no_secret(&log);
    for part in creds
        .lines()
        .filter(|line| line.starts_with("SU") || line.starts_with("eyJ"))
    {
        assert!(
            !log.contains(part),
            "a part of the .creds file in the output"
        );
    }
}
