//! AWS SNS and PayPal signing certificates that fail their provider's own
//! checks (`keys::certificate`), through the assembled receiver
//! (`app::start`, as the binary starts it) in front of a real nats-server.
//!
//! The certificates are served by a loopback HTTPS server
//! (`hookwarden_tests::ListServer`) for the providers' host names, and
//! issued by a test CA ([`hookwarden_tests::TestCa`]) that is also the
//! server's TLS CA. The receiver's fetcher (`KeyFetcher::with_test_routes`,
//! through `Settings::key_fetcher`) is given that CA as its roots: the one
//! store it trusts for TLS and for signing certificates, as the binary's
//! fetcher trusts the system's roots (`SSL_CERT_FILE` to add a CA).
//!
//! Each delivery is signed correctly by the certificate's key; only the
//! certificate is wrong. Checked: a good certificate is stored (read back
//! from JetStream); an expired, a not yet valid, a misnamed or (PayPal, given with intermediates) an
//! unchained one is answered 401 with its own reason, nothing stored, and
//! asked again is answered the same from the negative cache, without a
//! second fetch.
//!
//! Two tests run the shipped binary itself (`ReceiverProcess::spawn_resolving`:
//! its own mount namespace with a test `/etc/hosts` naming a loopback
//! address for the provider's host, a key server on that address's port
//! 443, the test CA through `SSL_CERT_FILE`): the certificate checks and the
//! fetch budget under a flood of made-up certificate URLs, and Google's JWKS
//! not refetched for made-up `kid`s.
//!
//! Everything is on 127.0.0.1, port 0; every wait is bounded.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::binary::ReceiverProcess;
use crate::{Answer, Receiver, SIGNER_KEY, sns_notification, start_manifest_with, stored_messages};
use bytes::Bytes;
use hookwarden_receiver::verify::keys::material::{jwk_json, rsa_signing_key};
use hookwarden_receiver::verify::keys::{FetcherConfig, KeyFetcher};
use hookwarden_receiver::verify::{google_pubsub, paypal};
use hookwarden_tests::{ListAnswer, ListServer, NatsServer, TestCa};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;

const SNS_HOST: &str = "sns.us-east-1.amazonaws.com";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:orders";
const SNS_MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: orders, namespace: certs}\n\
    spec:\n  provider: aws-sns\n  aws: {topicArns: ['arn:aws:sns:us-east-1:123456789012:orders']}\n";

const PAYPAL_HOST: &str = "api-m.paypal.com";
const WEBHOOK_ID: &str = "4JH86294D6297924G";
const PAYPAL_MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: sales, namespace: certs}\n\
    spec:\n  provider: paypal\n  paypal: {webhookId: 4JH86294D6297924G}\n";
const PAYPAL_NAME: &str = "messageverificationcerts.paypal.com";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The receiver for `manifest`, fetching from `server` and trusting `ca`
/// only.
async fn start(nats: &NatsServer, manifest: &str, ca: &TestCa, server: &ListServer) -> Receiver {
    let fetcher =
        KeyFetcher::with_test_routes(FetcherConfig::default(), ca.roots(), server.routes());
    start_manifest_with(nats, manifest, &[], move |settings| {
        settings.key_fetcher = Some(Arc::clone(&fetcher));
    })
    .await
}

async fn post(receiver: &Receiver, headers: &[(&str, String)], body: Vec<u8>) -> Answer {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    receiver
        .post(Full::new(Bytes::from(body)).boxed(), &headers)
        .await
}

/// An SNS notification `id` signed by the test signer, naming the
/// certificate at `path` on the SNS host.
async fn post_sns(receiver: &Receiver, path: &str, id: &str) -> Answer {
    let headers = [("content-type", "text/plain; charset=UTF-8".to_owned())];
    post(receiver, &headers, sns_body(path, id)).await
}

/// The body of an SNS notification `id` signed now by the test signer,
/// naming the certificate at `path` on the SNS host.
fn sns_body(path: &str, id: &str) -> Vec<u8> {
    sns_notification(&format!("https://{SNS_HOST}{path}"), TOPIC, id, now())
}

/// A PayPal delivery `id` signed by the test signer, naming the
/// certificate at `path` on the PayPal API host.
async fn post_paypal(receiver: &Receiver, path: &str, id: &str) -> Answer {
    let key = rsa_signing_key(SIGNER_KEY).expect("test key");
    let body = format!(r#"{{"id":"{id}","event_type":"PAYMENT.SALE.COMPLETED","resource":{{}}}}"#)
        .into_bytes();
    let mut headers = paypal::sign(
        &key,
        &format!("https://{PAYPAL_HOST}{path}"),
        WEBHOOK_ID,
        id,
        now(),
        &body,
    );
    headers.push(("content-type", "application/json".to_owned()));
    post(receiver, &headers, body).await
}

fn assert_answer(answer: &Answer, status: StatusCode, reason: Option<&str>, case: &str) {
    assert_eq!(answer.status, status, "{case}: {}", answer.json);
    if let Some(reason) = reason {
        assert_eq!(answer.json["error"], reason, "{case}: {}", answer.json);
    }
}

/// 200 when `refusal` is `None`, else 401 with that reason.
fn assert_stored_or_refused(answer: &Answer, refusal: Option<&str>, case: &str) {
    match refusal {
        None => assert_answer(answer, StatusCode::OK, None, case),
        Some(reason) => assert_answer(answer, StatusCode::UNAUTHORIZED, Some(reason), case),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_certificates_must_be_in_date_and_for_sns() {
    let nats = NatsServer::start().await.expect("nats-server");
    let ca = TestCa::new("test CA");
    let server = ListServer::start_of(&ca, &[SNS_HOST]).await;
    // As SNS serves them: the leaf alone.
    let cases = [
        ("good", "sns.amazonaws.com", 2020, 2100, None),
        (
            "expired",
            "sns.amazonaws.com",
            2010,
            2020,
            Some("key_certificate_expired"),
        ),
        (
            "future",
            "sns.amazonaws.com",
            2090,
            2100,
            Some("key_certificate_not_yet_valid"),
        ),
        (
            "s3",
            "hookwarden.s3.amazonaws.com",
            2020,
            2100,
            Some("key_certificate_wrong_subject"),
        ),
    ];
    for (name, subject, from, until, _) in cases {
        server.serve(
            &format!("/SimpleNotificationService-{name}.pem"),
            ListAnswer::ok(ca.issue(SIGNER_KEY, subject, from, until)),
        );
    }
    let receiver = start(&nats, SNS_MANIFEST, &ca, &server).await;
    for (name, _, _, _, refusal) in cases {
        let path = format!("/SimpleNotificationService-{name}.pem");
        for attempt in 0..2 {
            let answer = post_sns(&receiver, &path, &format!("{name}-{attempt}")).await;
            assert_stored_or_refused(&answer, refusal, name);
        }
    }
    assert_eq!(
        stored_messages(&nats, &receiver.target).await,
        2,
        "the good ones"
    );
    assert_eq!(server.hits(), cases.len(), "one fetch per certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paypal_certificates_with_intermediates_must_chain_to_a_trusted_root() {
    let nats = NatsServer::start().await.expect("nats-server");
    let ca = TestCa::new("test CA");
    let intermediate = ca.intermediate("test intermediate");
    let stranger = TestCa::new("a CA nobody trusts").intermediate("its intermediate");
    let server = ListServer::start_of(&ca, &[PAYPAL_HOST]).await;
    let leaf =
        |subject: &str, from: i32, until: i32| intermediate.issue(SIGNER_KEY, subject, from, until);
    let cases = [
        (
            "CERT-good",
            leaf(PAYPAL_NAME, 2020, 2100) + &intermediate.pem(),
            None,
        ),
        // The leaf alone: checked as SNS's is (dates and name), since
        // PayPal may serve it so (see verify/keys/certificate.rs).
        ("CERT-leaf-alone", leaf(PAYPAL_NAME, 2020, 2100), None),
        (
            "CERT-leaf-alone-expired",
            leaf(PAYPAL_NAME, 2010, 2020),
            Some("key_certificate_expired"),
        ),
        (
            "CERT-stranger",
            stranger.issue(SIGNER_KEY, PAYPAL_NAME, 2020, 2100) + &stranger.pem(),
            Some("key_certificate_untrusted"),
        ),
        (
            "CERT-expired",
            leaf(PAYPAL_NAME, 2010, 2020) + &intermediate.pem(),
            Some("key_certificate_expired"),
        ),
        (
            "CERT-www",
            leaf("www.paypal.com", 2020, 2100) + &intermediate.pem(),
            Some("key_certificate_wrong_subject"),
        ),
    ];
    for (name, pem, _) in &cases {
        server.serve(
            &format!("/v1/notifications/certs/{name}"),
            ListAnswer::ok(pem.clone()),
        );
    }
    let receiver = start(&nats, PAYPAL_MANIFEST, &ca, &server).await;
    for (name, _, refusal) in &cases {
        let path = format!("/v1/notifications/certs/{name}");
        for attempt in 0..2 {
            let answer = post_paypal(&receiver, &path, &format!("WH-{name}-{attempt}")).await;
            assert_stored_or_refused(&answer, *refusal, name);
        }
    }
    assert_eq!(
        stored_messages(&nats, &receiver.target).await,
        4,
        "the good ones"
    );
    assert_eq!(server.hits(), cases.len(), "one fetch per certificate");
}

/// A loopback address in `127.<network>.0.0/16`, outside the pod range
/// (127.1.0.0/16), one per test process and network, so that port 443 is
/// free there whatever else runs.
fn key_server_address(network: u8) -> SocketAddr {
    let [_, _, high, low] = std::process::id().to_be_bytes();
    SocketAddr::from((Ipv4Addr::new(127, network, high, low.max(1)), 443))
}

/// The shipped binary for `manifest`, resolving `host` to `address` and
/// trusting `ca` besides the system's roots; `dir` holds its files.
async fn shipped_binary_resolving(
    dir: &std::path::Path,
    host: &str,
    address: SocketAddr,
    ca: &TestCa,
    nats: &NatsServer,
    manifest: &str,
) -> ReceiverProcess {
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, format!("{} {host}\n", address.ip())).expect("hosts");
    let roots = dir.join("roots.pem");
    std::fs::write(&roots, ca.pem()).expect("roots");
    let receiver = ReceiverProcess::spawn_resolving(
        &hosts,
        nats.url(),
        manifest,
        &[("SSL_CERT_FILE", roots.to_str().expect("UTF-8 path"))],
    );
    receiver.ready().await;
    receiver
}

/// The shipped binary, unchanged, fetching SNS certificates from a
/// loopback key server: its mount namespace's `/etc/hosts` names the key
/// server's address for the SNS host, and `SSL_CERT_FILE` adds the test CA
/// to its roots (what a user does for a custom CA). A good certificate
/// verifies; an expired one is refused with its reason, from the negative
/// cache the second time. Then a flood of made-up certificate URLs on the
/// allowed host: each answered 503 `key_unavailable`, the fetches the key
/// server sees bounded by the budget (20 a minute), and the cached
/// certificate keeps verifying throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_binary_checks_certificates_and_holds_its_fetch_budget() {
    const BUDGET: usize = 20; // FetcherConfig::default().max_fetches
    const FLOOD: usize = 60;
    let nats = NatsServer::start().await.expect("nats-server");
    let ca = TestCa::new("test CA");
    let address = key_server_address(2);
    let server = ListServer::start_at(&ca, &[SNS_HOST], address).await;
    server.serve(
        "/SimpleNotificationService-good.pem",
        ListAnswer::ok(ca.issue(SIGNER_KEY, "sns.amazonaws.com", 2020, 2100)),
    );
    server.serve(
        "/SimpleNotificationService-expired.pem",
        ListAnswer::ok(ca.issue(SIGNER_KEY, "sns.amazonaws.com", 2010, 2020)),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver =
        shipped_binary_resolving(dir.path(), SNS_HOST, address, &ca, &nats, SNS_MANIFEST).await;
    let send = |path: &str, id: &str| {
        let body = sns_body(path, id);
        let receiver = &receiver;
        async move {
            receiver
                .send(
                    "POST",
                    &[("content-type", "text/plain; charset=UTF-8")],
                    &body,
                )
                .await
        }
    };
    let started = std::time::Instant::now();
    let good = send("/SimpleNotificationService-good.pem", "good-0").await;
    assert_eq!(good.status, StatusCode::OK, "{}", receiver.log());
    for attempt in 0..2 {
        let expired = send(
            "/SimpleNotificationService-expired.pem",
            &format!("exp-{attempt}"),
        )
        .await;
        assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
        assert_eq!(expired.json()["error"], "key_certificate_expired");
    }
    assert_eq!(server.hits(), 2, "one fetch each");

    for i in 0..FLOOD {
        let path = format!("/SimpleNotificationService-made-up-{i}.pem");
        let made_up = send(&path, &format!("flood-{i}")).await;
        assert_eq!(made_up.status, StatusCode::SERVICE_UNAVAILABLE, "{i}");
        assert_eq!(made_up.json()["error"], "key_unavailable", "{i}");
        if i % 10 == 0 {
            let cached = send(
                "/SimpleNotificationService-good.pem",
                &format!("good-{}", i + 1),
            )
            .await;
            assert_eq!(cached.status, StatusCode::OK, "the cached certificate, {i}");
        }
    }
    // The budget is per minute: should the flood have taken longer, each
    // further minute allows as many again.
    let minutes = usize::try_from(started.elapsed().as_secs() / 60).unwrap_or(usize::MAX);
    let allowed = BUDGET.saturating_mul(minutes.saturating_add(1));
    let fetched = server.hits();
    assert!(
        fetched <= allowed && fetched < 2 + FLOOD,
        "{fetched} fetches for {FLOOD} made-up URLs (budget {allowed})"
    );
    let expired = send("/SimpleNotificationService-expired.pem", "exp-after").await;
    assert_eq!(expired.json()["error"], "key_certificate_expired");
    assert_eq!(server.hits(), fetched, "answered from the caches");
    let js = async_nats::jetstream::new(nats.connect().await.expect("connect"));
    let mut stream = js
        .get_stream("HOOKWARDEN_CERTS_ORDERS")
        .await
        .expect("stream");
    let stored = stream.info().await.expect("info").state.messages;
    assert_eq!(stored, 1 + 6, "the good deliveries only");
}

/// The shipped binary with a `google-pubsub` endpoint, Google's JWKS host
/// resolved to a loopback server: tokens under made-up `kid`s are refused
/// without making the binary fetch the JWKS again (at most once a minute),
/// and tokens under the known `kid` keep verifying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_binary_refetches_google_keys_at_most_once_a_minute_for_made_up_kids() {
    const MADE_UP: usize = 30;
    const AUDIENCE: &str = "https://hooks.example.com/pubsub";
    const EMAIL: &str = "pusher@my-project.iam.gserviceaccount.com";
    let nats = NatsServer::start().await.expect("nats-server");
    let ca = TestCa::new("test CA");
    let jwks = hookwarden_receiver::verify::keys::url::google_jwks_url();
    let address = key_server_address(4);
    let server = ListServer::start_at(&ca, &[jwks.host()], address).await;
    let signer = rsa_signing_key(SIGNER_KEY).expect("test key");
    let set = serde_json::json!({"keys": [jwk_json(&signer, "k1")]});
    server.serve(jwks.path_and_query(), ListAnswer::ok(set.to_string()));
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
        metadata: {name: pushes, namespace: certs}\n\
        spec:\n  provider: google-pubsub\n  google:\n    \
        serviceAccountEmail: pusher@my-project.iam.gserviceaccount.com\n    \
        audience: https://hooks.example.com/pubsub\n";
    let receiver =
        shipped_binary_resolving(dir.path(), jwks.host(), address, &ca, &nats, manifest).await;
    let push = |kid: String, id: String| {
        let receiver = &receiver;
        let mut headers = google_pubsub::sign(&signer, &kid, AUDIENCE, EMAIL, now());
        headers.push(("content-type", "application/json".to_owned()));
        let body = google_pubsub::push_body(&id, b"{}", "projects/p/subscriptions/s");
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            receiver.send("POST", &headers, &body).await
        }
    };
    let started = std::time::Instant::now();
    let known = push("k1".to_owned(), "m-0".to_owned()).await;
    assert_eq!(known.status, StatusCode::OK, "{}", receiver.log());
    for i in 0..MADE_UP {
        let made_up = push(format!("made-up-{i}"), format!("f-{i}")).await;
        assert_eq!(made_up.status, StatusCode::UNAUTHORIZED, "{i}");
        if i % 10 == 0 {
            let again = push("k1".to_owned(), format!("m-{}", i + 1)).await;
            assert_eq!(again.status, StatusCode::OK, "the known kid, {i}");
        }
    }
    // One refetch a minute at most: none within the minute of the fetch.
    let minutes = usize::try_from(started.elapsed().as_secs() / 60).unwrap_or(usize::MAX);
    assert!(
        server.hits() <= 1 + minutes,
        "{} JWKS fetches for {MADE_UP} made-up kids",
        server.hits()
    );
}
