//! Provider handshakes end to end: a running receiver in front of a real
//! nats-server answers each provider's endpoint-verification request as the
//! provider expects, verified where the provider signs it, and stores
//! nothing, unless `spec.handshake.publish` asks for it.

use std::time::Duration;

use crate::{start_manifest, stored_messages};
use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey};
use hookwarden_receiver::verify;
use hookwarden_tests::NatsServer;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;

const SECRET: &[u8] = b"handshake-secret-0123456789";
const VERIFY_TOKEN: &[u8] = b"meta-verify-token";

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn manifest(name: &str, provider: &str, extra: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: {name}, namespace: hs}}\n\
         spec:\n  provider: {provider}\n  secretRefs: [{{name: s, key: k}}]\n{extra}"
    )
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

async fn send(method: &str, url: &str, headers: &[(&str, String)], body: &[u8]) -> Answer {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(15), client.request(request))
        .await
        .expect("the receiver answers")
        .expect("response");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Answer {
        status,
        content_type,
        body,
    }
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("JSON answer")
}

fn twitch_headers(kind: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let timestamp = jiff::Timestamp::now().to_string();
    vec![
        (
            "twitch-eventsub-message-signature",
            verify::twitch::sign(SECRET, "msg-1", &timestamp, body),
        ),
        ("twitch-eventsub-message-id", "msg-1".to_owned()),
        ("twitch-eventsub-message-timestamp", timestamp),
        ("twitch-eventsub-message-type", kind.to_owned()),
        (
            "twitch-eventsub-subscription-type",
            "channel.follow".to_owned(),
        ),
    ]
}

fn discord_headers(key: &SigningKey, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = now().to_string();
    let mut message = ts.as_bytes().to_vec();
    message.extend_from_slice(body);
    vec![
        (
            "x-signature-ed25519",
            hex::encode(key.sign(&message).to_bytes()),
        ),
        ("x-signature-timestamp", ts),
    ]
}

#[tokio::test]
async fn each_handshake_is_answered_verified_and_not_stored() {
    let nats = NatsServer::start().await.expect("nats-server");
    let discord_key = SigningKey::from_bytes(&[42; 32]);
    let discord_public = hex::encode(discord_key.verifying_key().to_bytes());

    // Slack url_verification: signed, answered with the challenge.
    let slack = start_manifest(&nats, &manifest("slack", "slack", ""), &[("s/k", SECRET)]).await;
    let body = verify::slack::url_verification_body("slack-challenge-1");
    let answer = send(
        "POST",
        &slack.url,
        &verify::slack::sign(SECRET, now(), &body),
        &body,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        json(&answer.body),
        serde_json::json!({"challenge": "slack-challenge-1"})
    );
    let forged = send(
        "POST",
        &slack.url,
        &verify::slack::sign(b"forged", now(), &body),
        &body,
    )
    .await;
    assert_eq!(
        forged.status,
        StatusCode::UNAUTHORIZED,
        "an unsigned challenge is refused"
    );
    assert_eq!(stored_messages(&nats, &slack.target).await, 0, "slack");

    // Zoom endpoint.url_validation: signed, answered with the encrypted token.
    let zoom = start_manifest(&nats, &manifest("zoom", "zoom", ""), &[("s/k", SECRET)]).await;
    let body = verify::zoom::url_validation_body("plain-token-1", now() * 1000);
    let answer = send(
        "POST",
        &zoom.url,
        &verify::zoom::sign(SECRET, now(), &body),
        &body,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = json(&answer.body);
    assert_eq!(answer["plainToken"], "plain-token-1");
    let expected = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).expect("any key length");
        mac.update(b"plain-token-1");
        hex::encode(mac.finalize().into_bytes())
    };
    assert_eq!(answer["encryptedToken"], expected.as_str());
    assert_eq!(stored_messages(&nats, &zoom.target).await, 0, "zoom");

    // Twitch webhook_callback_verification: signed, the challenge as text.
    let twitch = start_manifest(&nats, &manifest("twitch", "twitch", ""), &[("s/k", SECRET)]).await;
    let body = br#"{"challenge":"twitch-challenge-1","subscription":{"type":"channel.follow"}}"#;
    let answer = send(
        "POST",
        &twitch.url,
        &twitch_headers("webhook_callback_verification", body),
        body,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.content_type.starts_with("text/plain"),
        "{}",
        answer.content_type
    );
    assert_eq!(answer.body, b"twitch-challenge-1");
    assert_eq!(stored_messages(&nats, &twitch.target).await, 0, "twitch");

    // Discord PING: Ed25519-verified, answered with PONG.
    let discord = start_manifest(
        &nats,
        &manifest("discord", "discord", ""),
        &[("s/k", discord_public.as_bytes())],
    )
    .await;
    let ping = br#"{"id":"1","type":1,"application_id":"2","token":"t","version":1}"#;
    let answer = send(
        "POST",
        &discord.url,
        &discord_headers(&discord_key, ping),
        ping,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(json(&answer.body), serde_json::json!({"type": 1}));
    let other = SigningKey::from_bytes(&[43; 32]);
    let forged = send("POST", &discord.url, &discord_headers(&other, ping), ping).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(stored_messages(&nats, &discord.target).await, 0, "discord");

    // Meta's subscription GET: the verify token of verifyTokenRefs.
    let meta = start_manifest(
        &nats,
        &manifest(
            "meta",
            "meta",
            "  handshake: {verifyTokenRefs: [{name: v, key: t}]}\n",
        ),
        &[("s/k", SECRET), ("v/t", VERIFY_TOKEN)],
    )
    .await;
    let query = verify::meta::subscription_query("meta-verify-token", "1158201444");
    let answer = send("GET", &format!("{}?{query}", meta.url), &[], b"").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, b"1158201444");
    let wrong = verify::meta::subscription_query("guessed", "1158201444");
    let refused = send("GET", &format!("{}?{wrong}", meta.url), &[], b"").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(json(&refused.body)["error"], "token_mismatch");
    assert_eq!(stored_messages(&nats, &meta.target).await, 0, "meta");
    // GET stays refused for a preset without a GET handshake.
    let get = send("GET", &slack.url, &[], b"").await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_published_handshake_is_answered_and_stored_once() {
    let nats = NatsServer::start().await.expect("nats-server");
    let slack = start_manifest(
        &nats,
        &manifest(
            "slackpub",
            "slack",
            "  handshake: {publish: true}\n  nats: {cloudEvents: true}\n",
        ),
        &[("s/k", SECRET)],
    )
    .await;
    let body = verify::slack::url_verification_body("published-challenge");
    let headers = verify::slack::sign(SECRET, now(), &body);
    let answer = send("POST", &slack.url, &headers, &body).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        json(&answer.body),
        serde_json::json!({"challenge": "published-challenge"})
    );
    assert_eq!(stored_messages(&nats, &slack.target).await, 1);

    let js = async_nats::jetstream::new(nats.connect().await.expect("connect"));
    let stream = js.get_stream(&slack.target.stream).await.expect("stream");
    let message = stream.get_raw_message(1).await.expect("stored");
    assert_eq!(message.subject.as_str(), "hookwarden.hs.slackpub.handshake");
    assert_eq!(message.payload.as_ref(), body.as_slice());
    // A stored handshake is a CloudEvent too when the endpoint asks; Slack
    // sends no delivery id, so the id is the body's SHA-256 (Nats-Msg-Id).
    let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(header("ce-specversion").as_deref(), Some("1.0"));
    assert_eq!(
        header("ce-type").as_deref(),
        Some("dev.hookwarden.slack.handshake")
    );
    assert_eq!(
        header("ce-source").as_deref(),
        Some("/namespaces/hs/webhookendpoints/slackpub")
    );
    let sha256 = hookwarden_receiver::publish::body_sha256(&body);
    assert_eq!(header("ce-id").as_deref(), Some(sha256.as_str()));
    assert_eq!(header("Nats-Msg-Id"), header("ce-id"));

    // Twitch handshakes carry a message id: a repeat is stored once.
    let twitch = start_manifest(
        &nats,
        &manifest("twitchpub", "twitch", "  handshake: {publish: true}\n"),
        &[("s/k", SECRET)],
    )
    .await;
    let body = br#"{"challenge":"c-2","subscription":{"type":"channel.follow"}}"#;
    let headers = twitch_headers("webhook_callback_verification", body);
    for _ in 0..2 {
        let answer = send("POST", &twitch.url, &headers, body).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, b"c-2");
    }
    assert_eq!(stored_messages(&nats, &twitch.target).await, 1);
    // Without spec.nats.cloudEvents, no CloudEvents headers.
    let stream = js.get_stream(&twitch.target.stream).await.expect("stream");
    let message = stream.get_raw_message(1).await.expect("stored");
    assert!(message.headers.get("Nats-Msg-Id").is_some());
    assert!(message.headers.get("ce-id").is_none());
    assert!(message.headers.get("ce-specversion").is_none());
}
