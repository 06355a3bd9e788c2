//! The fetched-key presets (`aws-sns`, `paypal`, `google-pubsub`,
//! `azure-event-grid` with Entra tokens, and a `generic` JWT check with
//! `jwksUrl`) through
//! the assembled receiver (`app::start`, as the binary starts it) in front
//! of a real nats-server, fetching their keys over HTTPS from a loopback
//! key server that stands in for the provider's hosts.
//!
//! The key server has a test CA (rcgen) and serves the certificate or JWK
//! Set of `core/src/verify/keys/testdata/signer_key.pem`; the receiver
//! is given a fetcher made by `KeyFetcher::with_test_routes` (through
//! `Settings::key_fetcher`, which the binary never sets) that trusts that CA
//! and connects to 127.0.0.1 for the provider's host names. Deliveries are
//! signed by the registry's signers (what `hookwarden send --endpoint`
//! sends) for the spec's senders, or, for what that signer does not vary
//! (another SNS certificate URL, topic or message type), by
//! `aws_sns::sign`. Each test checks that
//!
//! - a signed delivery is answered 200 and stored in JetStream (read back);
//! - a second delivery is verified from the cache (one fetch in all);
//! - a certificate URL on a host the preset's rule refuses is answered 401
//!   `key_url_not_allowed` without any request to the key server, although
//!   the test fetcher has a route for that host (the rule is applied
//!   first);
//! - with the key server down and the key not cached the answer is 503
//!   `key_unavailable` with `Retry-After`, nothing is stored, and the same
//!   delivery is stored once the server is back;
//!
//! and per preset: SNS refuses a topic outside `spec.aws.topicArns` and
//! stores a `SubscriptionConfirmation` for a person (its `SubscribeURL` is
//! visited only with `autoConfirmSubscriptions`); Google refuses a token for
//! another audience and an expired one (without fetching); Event Grid
//! answers its validation handshake only with a token and refuses tokens of
//! another tenant, audience or client; the `generic` JWKS check fetches its
//! configured URL only, whatever host the token's `jku` names.
//!
//! Everything is on 127.0.0.1, port 0; every wait is bounded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Answer, Receiver, start_manifest_with, stored_messages};
use async_nats::jetstream;
use bytes::Bytes;
use hookwarden_crds::{Provider, WebhookEndpointSpec};
use hookwarden_receiver::publish::event_token;
use hookwarden_receiver::server::RETRY_AFTER_SECS;
use hookwarden_receiver::verify::keys::material::{jwk_json, rsa_signing_key};
use hookwarden_receiver::verify::keys::{FetcherConfig, KeyFetcher};
use hookwarden_receiver::verify::sending::{
    Delivery, ENTRA_KID, GOOGLE_KID, PAYPAL_CERT_URL, SNS_CERT_URL, SignInput,
};
use hookwarden_receiver::verify::{aws_sns, azure_event_grid, entra, google_pubsub, registry};
use hookwarden_tests::{ListAnswer, ListServer, NatsServer, TestCa};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;

/// The test signer (made with `openssl genpkey`, see `keys::material`'s
/// `test_keys`); the key server serves its certificates, issued by the
/// key server's CA for the name each provider signs as.
const SIGNER_KEY: &str = include_str!("../../../core/src/verify/keys/testdata/signer_key.pem");

/// How long a failed key URL is not fetched again, shortened from a minute
/// so "the key server is back" needs no long wait.
const NEGATIVE_TTL: Duration = Duration::from_millis(200);

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The path and query of an `https://host/...` URL.
fn path_of(url: &str) -> &str {
    let rest = url.strip_prefix("https://").expect("an https URL");
    &rest[rest.find('/').expect("a path")..]
}

/// The key server: an HTTPS server on 127.0.0.1 ([`ListServer`]) with a
/// certificate of `ca` for `hosts`, serving `files` (path and query →
/// body, answered 200; else 404); it records every request as
/// `host path`, and can be stopped (its port closed) and started again on
/// the same port.
async fn key_server(ca: &TestCa, hosts: &[&str], files: HashMap<String, Vec<u8>>) -> ListServer {
    let server = ListServer::start_of(ca, hosts).await;
    for (path, body) in files {
        server.serve(&path, ListAnswer::ok(body));
    }
    server
}

/// A fetcher for the receiver: trusts only the test CA, reaches every
/// host of the server's certificate at the server.
fn fetcher_of(server: &ListServer) -> Arc<KeyFetcher> {
    KeyFetcher::with_test_routes(
        FetcherConfig {
            negative_ttl: NEGATIVE_TTL,
            ..FetcherConfig::default()
        },
        server.roots(),
        server.routes(),
    )
}

/// The receiver for `manifest` (no secrets: these presets take none),
/// fetching keys through `fetcher`.
async fn start(nats: &NatsServer, manifest: &str, fetcher: &Arc<KeyFetcher>) -> Receiver {
    let fetcher = Arc::clone(fetcher);
    start_manifest_with(nats, manifest, &[], move |settings| {
        settings.key_fetcher = Some(fetcher);
    })
    .await
}

fn spec_of(manifest: &str) -> WebhookEndpointSpec {
    hookwarden_crds::from_yaml(manifest)
        .expect("endpoint manifest")
        .spec
}

/// `provider`'s delivery `id` signed with the test key at `at`, for the
/// senders of `spec`: what `hookwarden send --endpoint` sends.
fn signed(provider: Provider, spec: &WebhookEndpointSpec, id: &str, at: i64) -> Delivery {
    registry::preset(provider)
        .sign(
            SIGNER_KEY.as_bytes(),
            &SignInput {
                event: "order.created",
                id,
                body: None,
                now: at,
                url: "https://hooks.example.com/in",
                spec: Some(spec),
                token_key: None,
            },
        )
        .expect("signed")
}

async fn post(receiver: &Receiver, delivery: &Delivery) -> Answer {
    let headers: Vec<(&str, &str)> = delivery
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    receiver
        .post(
            Full::new(Bytes::from(delivery.body.clone())).boxed(),
            &headers,
        )
        .await
}

fn assert_refused(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.json);
    assert_eq!(answer.json["error"], code, "{}", answer.json);
}

/// Asserts `answer` stored `delivery` as event `event` with id `id`,
/// reading the message back from JetStream.
async fn assert_stored(
    nats: &NatsServer,
    receiver: &Receiver,
    answer: &Answer,
    delivery: &Delivery,
    event: Option<&str>,
    id: &str,
) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["duplicate"], false, "{}", answer.json);
    let sequence = answer.json["sequence"].as_u64().expect("sequence");
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let stream = js
        .get_stream(&receiver.target.stream)
        .await
        .expect("stream");
    let message = stream.get_raw_message(sequence).await.expect("stored");
    assert_eq!(message.payload.as_ref(), delivery.body.as_slice());
    assert_eq!(
        message.subject.as_str(),
        format!("{}.{}", receiver.target.subject_prefix, event_token(event))
    );
    let header = |n: &str| message.headers.get(n).map(|v| v.as_str().to_owned());
    assert_eq!(header("Hookwarden-Delivery-Id").as_deref(), Some(id));
    assert_eq!(
        header("Hookwarden-Provider").as_deref(),
        Some(receiver.target.provider.as_str())
    );
}

/// The steps every fetched-key preset shares, on a receiver whose key
/// server is `server` and holds nothing yet: refused while the key server
/// is down, stored once it is back, the next delivery from the cache.
/// `delivery(id)` signs a delivery with id `id`.
async fn down_back_and_cached(
    nats: &NatsServer,
    receiver: &Receiver,
    server: &mut ListServer,
    delivery: impl Fn(&str) -> Delivery,
    event: Option<&str>,
) {
    let before = server.requests().len();
    server.stop().await;
    let first = delivery("delivery-1");
    let answer = post(receiver, &first).await;
    assert_refused(&answer, StatusCode::SERVICE_UNAVAILABLE, "key_unavailable");
    assert_eq!(
        answer
            .headers
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some(RETRY_AFTER_SECS.to_string().as_str()),
        "the provider is told to retry"
    );
    assert_eq!(stored_messages(nats, &receiver.target).await, 0);

    server.restart().await;
    // Past the negative cache of the failed fetch: the provider's retry.
    tokio::time::sleep(NEGATIVE_TTL * 2).await;
    let answer = post(receiver, &first).await;
    assert_stored(nats, receiver, &answer, &first, event, "delivery-1").await;
    assert_eq!(server.requests().len(), before + 1, "one fetch");

    let second = delivery("delivery-2");
    let answer = post(receiver, &second).await;
    assert_stored(nats, receiver, &answer, &second, event, "delivery-2").await;
    assert_eq!(
        server.requests().len(),
        before + 1,
        "the second delivery is verified from the cache: {:?}",
        server.requests()
    );
    assert_eq!(stored_messages(nats, &receiver.target).await, 2);
}

const SNS_HOST: &str = "sns.us-east-1.amazonaws.com";
/// An S3 bucket's host: on amazonaws.com, but not an SNS host, so anyone
/// could put a certificate there.
const S3_HOST: &str = "hookwarden.s3.amazonaws.com";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:orders";
const SNS_MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: orders, namespace: keys}\n\
    spec:\n  provider: aws-sns\n  aws: {topicArns: ['arn:aws:sns:us-east-1:123456789012:orders']}\n";

/// An SNS message of `kind` from `topic`, signed with the test key,
/// naming `cert_url` as its `SigningCertURL`.
fn sns_message(kind: &str, id: &str, topic: &str, cert_url: &str) -> Delivery {
    let key = rsa_signing_key(SIGNER_KEY).expect("test key");
    let timestamp = jiff::Timestamp::from_second(now())
        .expect("now")
        .to_string();
    let subscribe_url = format!(
        "https://{SNS_HOST}/?Action=ConfirmSubscription&TopicArn={topic}&Token=2336412f37fb"
    );
    let confirmation = kind == "SubscriptionConfirmation";
    let body = aws_sns::sign(
        &key,
        &aws_sns::Message {
            kind,
            message_id: id,
            topic_arn: topic,
            subject: (!confirmation).then_some("order.created"),
            message: "{\"order\":1}",
            timestamp: &timestamp,
            signing_cert_url: cert_url,
            subscribe_url: confirmation.then_some(subscribe_url.as_str()),
            token: confirmation.then_some("2336412f37fb"),
        },
    );
    Delivery {
        method: "POST",
        headers: vec![
            ("x-amz-sns-message-type".to_owned(), kind.to_owned()),
            ("x-amz-sns-message-id".to_owned(), id.to_owned()),
            (
                "content-type".to_owned(),
                "text/plain; charset=UTF-8".to_owned(),
            ),
        ],
        body,
        extra_query: None,
        expect: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sns_fetches_its_certificate_from_sns_hosts_only() {
    let nats = NatsServer::start().await.expect("nats-server");
    let cert_path = path_of(SNS_CERT_URL);
    let ca = TestCa::new("key server CA");
    let certificate = ca.issue(SIGNER_KEY, "sns.amazonaws.com", 2020, 2100);
    let mut server = key_server(
        &ca,
        &[SNS_HOST, S3_HOST],
        HashMap::from([(cert_path.to_owned(), certificate.into_bytes())]),
    )
    .await;
    let fetcher = fetcher_of(&server);
    let receiver = start(&nats, SNS_MANIFEST, &fetcher).await;
    let spec = spec_of(SNS_MANIFEST);

    // The same certificate on an S3 host, which the fetcher could reach: the
    // host rule refuses the URL before any connection.
    let s3 = format!("https://{S3_HOST}{cert_path}");
    let answer = post(&receiver, &sns_message("Notification", "s3-1", TOPIC, &s3)).await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "key_url_not_allowed");
    assert_eq!(server.requests(), Vec::<String>::new(), "nothing fetched");
    assert_eq!(stored_messages(&nats, &receiver.target).await, 0);

    down_back_and_cached(
        &nats,
        &receiver,
        &mut server,
        |id| signed(Provider::AwsSns, &spec, id, now()),
        Some("Notification"),
    )
    .await;
    assert_eq!(
        server.requests(),
        [format!("{SNS_HOST} {cert_path}")],
        "the certificate was fetched from the SNS host"
    );

    // Signed by SNS, but for another account's topic.
    let other = "arn:aws:sns:us-east-1:999999999999:orders";
    let answer = post(
        &receiver,
        &sns_message("Notification", "other-1", other, SNS_CERT_URL),
    )
    .await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "sender_not_allowed");

    // A subscription confirmation is stored for a person to confirm; the
    // receiver does not visit its SubscribeURL (which the fetcher could
    // reach: the key server would record it).
    let confirmation = sns_message("SubscriptionConfirmation", "confirm-1", TOPIC, SNS_CERT_URL);
    let answer = post(&receiver, &confirmation).await;
    assert_stored(
        &nats,
        &receiver,
        &answer,
        &confirmation,
        Some("SubscriptionConfirmation"),
        "confirm-1",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
    assert_eq!(stored_messages(&nats, &receiver.target).await, 3);

    // The control: with autoConfirmSubscriptions the same confirmation
    // makes the receiver visit the SubscribeURL on the SNS host.
    let auto = SNS_MANIFEST
        .replace("name: orders", "name: orders-auto")
        .replace("aws: {", "aws: {autoConfirmSubscriptions: true, ");
    let auto_receiver = start(&nats, &auto, &fetcher).await;
    let answer = post(&auto_receiver, &confirmation).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let visited = format!("{SNS_HOST} /?Action=ConfirmSubscription&TopicArn={TOPIC}");
    let mut seen = false;
    for _ in 0..100 {
        seen = server.requests().iter().any(|r| r.starts_with(&visited));
        if seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "SubscribeURL visited: {:?}", server.requests());
}

const PAYPAL_HOST: &str = "api.paypal.com";
/// A PayPal host that is not one of its API hosts.
const PAYPAL_WWW: &str = "www.paypal.com";
const PAYPAL_MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: sales, namespace: keys}\n\
    spec:\n  provider: paypal\n  paypal: {webhookId: 4JH86294D6297924G}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paypal_fetches_its_certificate_from_paypal_api_hosts_only() {
    let nats = NatsServer::start().await.expect("nats-server");
    let cert_path = path_of(PAYPAL_CERT_URL);
    // Served with its chain, as PayPal serves it.
    let ca = TestCa::new("key server CA");
    let intermediate = ca.intermediate("key server intermediate");
    let chain = intermediate.issue(
        SIGNER_KEY,
        "messageverificationcerts.paypal.com",
        2020,
        2100,
    ) + &intermediate.pem();
    let mut server = key_server(
        &ca,
        &[PAYPAL_HOST, PAYPAL_WWW],
        HashMap::from([(cert_path.to_owned(), chain.into_bytes())]),
    )
    .await;
    let fetcher = fetcher_of(&server);
    let receiver = start(&nats, PAYPAL_MANIFEST, &fetcher).await;
    let spec = spec_of(PAYPAL_MANIFEST);

    // A correctly signed delivery naming the certificate on another host
    // (the header is not signed, so an attacker picks it).
    let mut elsewhere = signed(Provider::Paypal, &spec, "www-1", now());
    for (name, value) in &mut elsewhere.headers {
        if name.eq_ignore_ascii_case("paypal-cert-url") {
            *value = format!("https://{PAYPAL_WWW}{cert_path}");
        }
    }
    let answer = post(&receiver, &elsewhere).await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "key_url_not_allowed");
    assert_eq!(server.requests(), Vec::<String>::new(), "nothing fetched");
    assert_eq!(stored_messages(&nats, &receiver.target).await, 0);

    down_back_and_cached(
        &nats,
        &receiver,
        &mut server,
        |id| signed(Provider::Paypal, &spec, id, now()),
        Some("order.created"),
    )
    .await;
    assert_eq!(server.requests(), [format!("{PAYPAL_HOST} {cert_path}")]);

    // Signed for another webhook id: the signature does not verify.
    let mut other_spec = spec.clone();
    other_spec.paypal = Some(hookwarden_crds::PaypalSpec {
        webhook_id: "8PT597110X687430LKGECATA".to_owned(),
    });
    let answer = post(
        &receiver,
        &signed(Provider::Paypal, &other_spec, "other-1", now()),
    )
    .await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "signature_mismatch");
    assert_eq!(stored_messages(&nats, &receiver.target).await, 2);
}

const GOOGLE_MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: pushes, namespace: keys}\n\
    spec:\n  provider: google-pubsub\n  google:\n    \
    serviceAccountEmail: pusher@my-project.iam.gserviceaccount.com\n    \
    audience: https://hooks.example.com/pubsub\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_pubsub_fetches_its_jwks_and_checks_the_token() {
    let nats = NatsServer::start().await.expect("nats-server");
    let jwks_url = hookwarden_receiver::verify::keys::url::GOOGLE_JWKS_URL;
    let jwks_host = "www.googleapis.com";
    let key = rsa_signing_key(SIGNER_KEY).expect("test key");
    let set = serde_json::json!({"keys": [jwk_json(&key, GOOGLE_KID)]});
    let mut server = key_server(
        &TestCa::new("key server CA"),
        &[jwks_host],
        HashMap::from([(path_of(jwks_url).to_owned(), set.to_string().into_bytes())]),
    )
    .await;
    let fetcher = fetcher_of(&server);
    let receiver = start(&nats, GOOGLE_MANIFEST, &fetcher).await;
    let spec = spec_of(GOOGLE_MANIFEST);

    // A token for another audience, and an expired one (issued two hours
    // ago for one): refused on their claims, before any key is fetched.
    let mut elsewhere = spec.clone();
    if let Some(google) = elsewhere.google.as_mut() {
        google.audience = Some("https://attacker.example.com/pubsub".to_owned());
    }
    let answer = post(
        &receiver,
        &signed(Provider::GooglePubsub, &elsewhere, "aud-1", now()),
    )
    .await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "token_mismatch");
    let answer = post(
        &receiver,
        &signed(Provider::GooglePubsub, &spec, "old-1", now() - 7200),
    )
    .await;
    assert_refused(
        &answer,
        StatusCode::UNAUTHORIZED,
        "timestamp_out_of_tolerance",
    );
    assert_eq!(server.requests(), Vec::<String>::new(), "nothing fetched");
    assert_eq!(stored_messages(&nats, &receiver.target).await, 0);

    down_back_and_cached(
        &nats,
        &receiver,
        &mut server,
        |id| signed(Provider::GooglePubsub, &spec, id, now()),
        None,
    )
    .await;
    assert_eq!(
        server.requests(),
        [format!("{jwks_host} {}", path_of(jwks_url))]
    );

    // With the keys cached, the wrong audience is still refused.
    let answer = post(
        &receiver,
        &signed(Provider::GooglePubsub, &elsewhere, "aud-2", now()),
    )
    .await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "token_mismatch");
    // A valid token of another service account.
    let mut stranger = spec.clone();
    if let Some(google) = stranger.google.as_mut() {
        google.service_account_email = "someone@other-project.iam.gserviceaccount.com".to_owned();
    }
    let answer = post(
        &receiver,
        &signed(Provider::GooglePubsub, &stranger, "sa-1", now()),
    )
    .await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "sender_not_allowed");
    assert_eq!(stored_messages(&nats, &receiver.target).await, 2);
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
}

const TENANT: &str = "84bd8158-6d4d-4958-8b9f-9d6445542f95";
const ENTRA_HOST: &str = "login.microsoftonline.com";
const GRID_MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: grid, namespace: keys}\n\
    spec:\n  provider: azure-event-grid\n  azure:\n    entra:\n      \
    tenantId: 84bd8158-6d4d-4958-8b9f-9d6445542f95\n      \
    audience: api://hookwarden-events\n";

/// A delivery or handshake with an Entra token of `claims`, signed with the
/// test key.
fn with_token(body: Vec<u8>, claims: &entra::Claims<'_>) -> Delivery {
    let key = rsa_signing_key(SIGNER_KEY).expect("test key");
    let token = entra::token(&key, ENTRA_KID, claims);
    Delivery {
        method: "POST",
        headers: vec![
            ("authorization".to_owned(), format!("Bearer {token}")),
            ("content-type".to_owned(), "application/json".to_owned()),
        ],
        body,
        extra_query: None,
        expect: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_event_grid_checks_entra_tokens_with_the_tenants_keys() {
    let nats = NatsServer::start().await.expect("nats-server");
    let keys_path = format!("/{TENANT}/discovery/v2.0/keys");
    let key = rsa_signing_key(SIGNER_KEY).expect("test key");
    let set = serde_json::json!({"keys": [jwk_json(&key, ENTRA_KID)]});
    let mut server = key_server(
        &TestCa::new("key server CA"),
        &[ENTRA_HOST],
        HashMap::from([(keys_path.clone(), set.to_string().into_bytes())]),
    )
    .await;
    let fetcher = fetcher_of(&server);
    let receiver = start(&nats, GRID_MANIFEST, &fetcher).await;
    let spec = spec_of(GRID_MANIFEST);
    let claims = |audience, tenant, client, iat| entra::Claims {
        tenant,
        audience,
        client,
        iat,
        v2: false,
    };
    let audience = "api://hookwarden-events";

    // No token, a token for another app, of another tenant, expired: refused
    // on their claims before any key is fetched.
    let body = registry::preset(Provider::AzureEventGrid)
        .sign(
            SIGNER_KEY.as_bytes(),
            &SignInput {
                event: "order.created",
                id: "x",
                body: None,
                now: now(),
                url: "https://hooks.example.com/in",
                spec: Some(&spec),
                token_key: None,
            },
        )
        .expect("signed")
        .body;
    let mut bare = with_token(
        body.clone(),
        &claims(audience, TENANT, entra::EVENT_GRID_APP_ID, now()),
    );
    bare.headers.remove(0);
    let answer = post(&receiver, &bare).await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "signature_missing");
    let other_tenant = "00000000-1111-2222-3333-444444444444";
    for (delivery, code) in [
        (
            with_token(
                body.clone(),
                &claims("api://other", TENANT, entra::EVENT_GRID_APP_ID, now()),
            ),
            "token_mismatch",
        ),
        (
            with_token(
                body.clone(),
                &claims(audience, other_tenant, entra::EVENT_GRID_APP_ID, now()),
            ),
            "token_mismatch",
        ),
        (
            with_token(
                body.clone(),
                &claims(audience, TENANT, entra::EVENT_GRID_APP_ID, now() - 7200),
            ),
            "timestamp_out_of_tolerance",
        ),
    ] {
        assert_refused(
            &post(&receiver, &delivery).await,
            StatusCode::UNAUTHORIZED,
            code,
        );
    }
    assert_eq!(server.requests(), Vec::<String>::new(), "nothing fetched");

    down_back_and_cached(
        &nats,
        &receiver,
        &mut server,
        |id| signed(Provider::AzureEventGrid, &spec, id, now()),
        Some("order.created"),
    )
    .await;
    assert_eq!(server.requests(), [format!("{ENTRA_HOST} {keys_path}")]);

    // The validation handshake carries the token too.
    let validation = azure_event_grid::validation_body("512d38b6-c7b8-40c8-89fe-f46f9e9622b6");
    let answer = post(
        &receiver,
        &with_token(
            validation.clone(),
            &claims(audience, TENANT, entra::EVENT_GRID_APP_ID, now()),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(
        answer.json["validationResponse"],
        "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    );
    let mut unsigned = with_token(
        validation,
        &claims(audience, TENANT, entra::EVENT_GRID_APP_ID, now()),
    );
    unsigned.headers.remove(0);
    assert_refused(
        &post(&receiver, &unsigned).await,
        StatusCode::UNAUTHORIZED,
        "signature_missing",
    );
    // A valid token of the tenant for the app, asked for by another client.
    let stranger = with_token(
        body,
        &claims(
            audience,
            TENANT,
            "11111111-2222-3333-4444-555555555555",
            now(),
        ),
    );
    assert_refused(
        &post(&receiver, &stranger).await,
        StatusCode::UNAUTHORIZED,
        "sender_not_allowed",
    );
    assert_eq!(stored_messages(&nats, &receiver.target).await, 2);
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
}

const ISSUER_HOST: &str = "issuer.example.com";
const EVIL_HOST: &str = "keys.attacker.example";
const GENERIC_MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: tokens, namespace: keys}\n\
    spec:\n  provider: generic\n  verification:\n    deliveryIdHeader: X-Id\n    jwt:\n      \
    algorithm: RS256\n      jwksUrl: https://issuer.example.com/.well-known/jwks.json\n      \
    issuer: https://issuer.example.com/\n      audience: hookwarden\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_jwks_url_is_the_only_url_fetched() {
    let nats = NatsServer::start().await.expect("nats-server");
    let key = rsa_signing_key(SIGNER_KEY).expect("test key");
    let set = serde_json::json!({"keys": [jwk_json(&key, "issuer-1")]}).to_string();
    // The key server answers for the attacker's host too, with the same
    // set: only the host rule keeps the receiver from asking it.
    let mut server = key_server(
        &TestCa::new("key server CA"),
        &[ISSUER_HOST, EVIL_HOST],
        HashMap::from([
            (
                "/.well-known/jwks.json".to_owned(),
                set.clone().into_bytes(),
            ),
            ("/evil.json".to_owned(), set.into_bytes()),
        ]),
    )
    .await;
    let fetcher = fetcher_of(&server);
    let receiver = start(&nats, GENERIC_MANIFEST, &fetcher).await;
    let token = |kid: &str, header_extra: Option<(&str, &str)>, aud: &str, id: &str| {
        let claims = serde_json::json!({
            "iss": "https://issuer.example.com/", "aud": aud,
            "exp": now() + 300, "iat": now(), "sub": "sender-1",
        });
        let token = match header_extra {
            None => google_pubsub::jwt(&key, kid, &claims),
            Some((name, value)) => {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                let header = serde_json::json!({"alg": "RS256", "kid": kid, name: value});
                let signed = format!(
                    "{}.{}",
                    b64.encode(header.to_string()),
                    b64.encode(claims.to_string())
                );
                let signature = hookwarden_receiver::verify::keys::material::rsa_sha256_sign(
                    &key,
                    signed.as_bytes(),
                );
                format!("{signed}.{}", b64.encode(signature))
            }
        };
        Delivery {
            method: "POST",
            headers: vec![
                ("authorization".to_owned(), format!("Bearer {token}")),
                ("x-id".to_owned(), id.to_owned()),
            ],
            body: br#"{"order":1}"#.to_vec(),
            extra_query: None,
            expect: None,
        }
    };

    // A token naming its keys on another host (`jku`), and a token for
    // another audience: nothing is fetched from where a token says.
    let answer = post(
        &receiver,
        &token(
            "evil-1",
            Some(("jku", "https://keys.attacker.example/evil.json")),
            "hookwarden",
            "jku-1",
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.json);
    let answer = post(&receiver, &token("issuer-1", None, "someone-else", "aud-1")).await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "token_mismatch");
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r == &format!("{ISSUER_HOST} /.well-known/jwks.json")),
        "{:?}",
        server.requests()
    );
    let fetched_before = server.requests().len();
    assert!(fetched_before <= 2, "{:?}", server.requests());

    // The fresh-start shared steps need an empty cache: a second receiver
    // with its own fetcher.
    let fresh = fetcher_of(&server);
    let receiver = start(
        &nats,
        &GENERIC_MANIFEST.replace("name: tokens", "name: tokens-2"),
        &fresh,
    )
    .await;
    let before = server.requests().len();
    down_back_and_cached(
        &nats,
        &receiver,
        &mut server,
        |id| token("issuer-1", None, "hookwarden", id),
        None,
    )
    .await;
    assert_eq!(server.requests().len(), before + 1);
    assert!(
        !server.requests().iter().any(|r| r.starts_with(EVIL_HOST)),
        "{:?}",
        server.requests()
    );
}
