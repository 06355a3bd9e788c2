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
//! fetcher trusts the system's roots (`SSL_CERT_FILE` to add a CA). The
//! binary itself cannot be pointed at a loopback server for
//! `sns.<region>.amazonaws.com` without a DNS override, so these run
//! in-process.
//!
//! Each delivery is signed correctly by the certificate's key; only the
//! certificate is wrong. Checked: a good certificate is stored (read back
//! from JetStream); an expired, a not yet valid, a misnamed or (PayPal) an
//! unchained one is answered 401 with its own reason, nothing stored, and
//! asked again is answered the same from the negative cache, without a
//! second fetch.
//!
//! Everything is on 127.0.0.1, port 0; every wait is bounded.

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{Answer, Receiver, start_manifest_with, stored_messages};
use hookwarden_receiver::verify::keys::material::rsa_signing_key;
use hookwarden_receiver::verify::keys::{FetcherConfig, KeyFetcher};
use hookwarden_receiver::verify::{aws_sns, paypal};
use hookwarden_tests::{ListAnswer, ListServer, NatsServer, TestCa};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;

/// The test signer (see `keys::material`'s `test_keys`).
const SIGNER_KEY: &str = include_str!("../src/verify/keys/testdata/signer_key.pem");

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
    let key = rsa_signing_key(SIGNER_KEY).expect("test key");
    let timestamp = jiff::Timestamp::from_second(now())
        .expect("now")
        .to_string();
    let cert_url = format!("https://{SNS_HOST}{path}");
    let body = aws_sns::sign(
        &key,
        &aws_sns::Message {
            kind: "Notification",
            message_id: id,
            topic_arn: TOPIC,
            subject: Some("order.created"),
            message: "{\"order\":1}",
            timestamp: &timestamp,
            signing_cert_url: &cert_url,
            ..aws_sns::Message::default()
        },
    );
    let headers = [("content-type", "text/plain; charset=UTF-8".to_owned())];
    post(receiver, &headers, body).await
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
            match refusal {
                None => assert_answer(&answer, StatusCode::OK, None, name),
                Some(reason) => {
                    assert_answer(&answer, StatusCode::UNAUTHORIZED, Some(reason), name);
                }
            }
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
async fn paypal_certificates_must_chain_to_a_trusted_root() {
    let nats = NatsServer::start().await.expect("nats-server");
    let ca = TestCa::new("test CA");
    let intermediate = ca.intermediate("test intermediate");
    let stranger = TestCa::new("a CA nobody trusts");
    let server = ListServer::start_of(&ca, &[PAYPAL_HOST]).await;
    let leaf =
        |subject: &str, from: i32, until: i32| intermediate.issue(SIGNER_KEY, subject, from, until);
    let cases = [
        (
            "CERT-good",
            leaf(PAYPAL_NAME, 2020, 2100) + &intermediate.pem(),
            None,
        ),
        (
            "CERT-no-intermediate",
            leaf(PAYPAL_NAME, 2020, 2100),
            Some("key_certificate_untrusted"),
        ),
        (
            "CERT-stranger",
            stranger.issue(SIGNER_KEY, PAYPAL_NAME, 2020, 2100),
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
            match refusal {
                None => assert_answer(&answer, StatusCode::OK, None, name),
                Some(reason) => {
                    assert_answer(&answer, StatusCode::UNAUTHORIZED, Some(reason), name);
                }
            }
        }
    }
    assert_eq!(
        stored_messages(&nats, &receiver.target).await,
        2,
        "the good ones"
    );
    assert_eq!(server.hits(), cases.len(), "one fetch per certificate");
}
