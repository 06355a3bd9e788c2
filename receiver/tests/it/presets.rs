//! Every symmetric preset end to end: a delivery signed exactly as the
//! provider signs (the preset's own `sign`) goes through a running receiver
//! into a real JetStream, is stored once under its event subject and
//! delivery id, and the same delivery with one changed body byte is refused.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{start_endpoint, start_manifest};
use async_nats::jetstream;
use bytes::Bytes;
use hookwarden_receiver::verify;
use hookwarden_tests::NatsServer;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;

const SECRET: &[u8] = b"e2e-secret-0123456789";
/// Standard Webhooks and Svix take `whsec_<base64>` secrets.
const WHSEC: &[u8] = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

struct Case {
    provider: &'static str,
    secret: &'static [u8],
    body: &'static str,
    headers: Vec<(&'static str, String)>,
    subject_event: &'static str,
    delivery_id: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    let ts = now();
    let case = |provider, secret, body: &'static str, headers, subject_event, delivery_id| Case {
        provider,
        secret,
        body,
        headers,
        subject_event,
        delivery_id,
    };
    let stripe = r#"{"id":"evt_1","type":"charge.succeeded"}"#;
    let slack = r#"{"type":"event_callback","event_id":"Ev01","event":{"type":"app_mention"}}"#;
    let sw = r#"{"type":"invoice.paid","data":{}}"#;
    let shopify = r#"{"id":820982911946154508}"#;
    let paddle = r#"{"event_id":"evt_01h","event_type":"transaction.completed"}"#;
    let zoom = r#"{"event":"meeting.started","payload":{}}"#;
    let pagerduty = r#"{"event":{"id":"01DEN","event_type":"incident.triggered"}}"#;
    let linear = r#"{"action":"create","type":"Issue"}"#;
    let intercom = r#"{"topic":"conversation.user.created","id":"notif_1"}"#;
    let meta = r#"{"object":"whatsapp_business_account","entry":[]}"#;
    let gitlab = r#"{"object_kind":"push","ref":"refs/heads/main","total_commits_count":1}"#;
    let bitbucket = r#"{"push":{"changes":[]},"repository":{"uuid":"{1}"}}"#;
    let with = |mut headers: Vec<(&'static str, String)>, extra: &[(&'static str, &str)]| {
        headers.extend(extra.iter().map(|(n, v)| (*n, (*v).to_owned())));
        headers
    };
    vec![
        case(
            "stripe",
            SECRET,
            stripe,
            verify::stripe::sign(SECRET, ts, stripe.as_bytes()),
            "charge_succeeded",
            Some("evt_1"),
        ),
        case(
            "slack",
            SECRET,
            slack,
            verify::slack::sign(SECRET, ts, slack.as_bytes()),
            "app_mention",
            Some("Ev01"),
        ),
        case(
            "standard-webhooks",
            WHSEC,
            sw,
            verify::standard_webhooks::sign(WHSEC, "msg_e2e_1", ts, sw.as_bytes())
                .expect("whsec secret"),
            "invoice_paid",
            Some("msg_e2e_1"),
        ),
        case(
            "svix",
            WHSEC,
            sw,
            verify::svix::sign(WHSEC, "msg_e2e_2", ts, sw.as_bytes()).expect("whsec secret"),
            "invoice_paid",
            Some("msg_e2e_2"),
        ),
        case(
            "shopify",
            SECRET,
            shopify,
            with(
                verify::shopify::sign(SECRET, shopify.as_bytes()),
                &[
                    ("x-shopify-topic", "orders/create"),
                    ("x-shopify-webhook-id", "b54557e4"),
                ],
            ),
            "orders_create",
            Some("b54557e4"),
        ),
        case(
            "paddle",
            SECRET,
            paddle,
            verify::paddle::sign(SECRET, ts, paddle.as_bytes()),
            "transaction_completed",
            Some("evt_01h"),
        ),
        case(
            "zoom",
            SECRET,
            zoom,
            verify::zoom::sign(SECRET, ts, zoom.as_bytes()),
            "meeting_started",
            None,
        ),
        case(
            "pagerduty",
            SECRET,
            pagerduty,
            verify::pagerduty::sign(SECRET, pagerduty.as_bytes()),
            "incident_triggered",
            Some("01DEN"),
        ),
        case(
            "linear",
            SECRET,
            linear,
            with(
                verify::linear::sign(SECRET, linear.as_bytes()),
                &[("linear-event", "Issue"), ("linear-delivery", "lin-1")],
            ),
            "Issue",
            Some("lin-1"),
        ),
        case(
            "intercom",
            SECRET,
            intercom,
            verify::intercom::sign(SECRET, intercom.as_bytes()),
            "conversation_user_created",
            Some("notif_1"),
        ),
        case(
            "gitlab",
            WHSEC,
            gitlab,
            with(
                verify::gitlab::sign_with_signing_token(WHSEC, "gl-e2e-1", ts, gitlab.as_bytes())
                    .expect("whsec secret"),
                &[("x-gitlab-event", "Push Hook")],
            ),
            "Push_Hook",
            Some("gl-e2e-1"),
        ),
        case(
            "bitbucket",
            SECRET,
            bitbucket,
            vec![
                (
                    "x-hub-signature",
                    verify::bitbucket::sign(SECRET, bitbucket.as_bytes()),
                ),
                ("x-event-key", "repo:push".to_owned()),
                ("x-request-uuid", "bb-e2e-1".to_owned()),
            ],
            "repo_push",
            Some("bb-e2e-1"),
        ),
        case(
            "meta",
            SECRET,
            meta,
            verify::meta::sign(SECRET, meta.as_bytes()),
            "whatsapp_business_account",
            None,
        ),
    ]
}

async fn post(
    url: &str,
    body: &[u8],
    headers: &[(&'static str, String)],
) -> (StatusCode, serde_json::Value) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut request = hyper::Request::post(url).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = client
        .request(
            request
                .body(Full::new(Bytes::copy_from_slice(body)))
                .expect("request"),
        )
        .await
        .expect("response");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test]
async fn every_symmetric_preset_stores_a_real_delivery_once_and_refuses_a_tampered_one() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream::new(nats.connect().await.expect("connect"));
    for case in cases() {
        let name = case.provider.replace('-', "");
        let manifest = format!(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
             metadata: {{name: {name}, namespace: e2e}}\n\
             spec: {{provider: {}, secretRefs: [{{name: s, key: k}}]}}\n",
            case.provider
        );
        let receiver = start_endpoint(&nats, &manifest, case.secret).await;

        let (status, answer) = post(&receiver.url, case.body.as_bytes(), &case.headers).await;
        assert_eq!(status, StatusCode::OK, "{}: {answer}", case.provider);
        let sequence = answer["sequence"].as_u64().expect("sequence");
        let stream = js
            .get_stream(&receiver.target.stream)
            .await
            .expect("stream");
        let message = stream.get_raw_message(sequence).await.expect("stored");
        assert_eq!(
            message.subject.as_str(),
            format!("hookwarden.e2e.{name}.{}", case.subject_event),
            "{}",
            case.provider
        );
        assert_eq!(message.payload.as_ref(), case.body.as_bytes());
        let header = |n: &str| message.headers.get(n).map(|v| v.as_str().to_owned());
        assert_eq!(
            header("Hookwarden-Provider").as_deref(),
            Some(case.provider)
        );
        assert_eq!(
            header("Hookwarden-Delivery-Id").as_deref(),
            case.delivery_id,
            "{}",
            case.provider
        );

        if case.delivery_id.is_some() {
            let (status, again) = post(&receiver.url, case.body.as_bytes(), &case.headers).await;
            assert_eq!(status, StatusCode::OK, "{}: {again}", case.provider);
            assert_eq!(
                again["duplicate"], true,
                "{}: a redelivery is stored once",
                case.provider
            );
        }

        let mut tampered = case.body.as_bytes().to_vec();
        if let Some(byte) = tampered
            .iter_mut()
            .find(|b| b.is_ascii_digit() || **b == b'e')
        {
            *byte ^= 0x01;
        }
        let (status, refused) = post(&receiver.url, &tampered, &case.headers).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{}: {refused}",
            case.provider
        );
        assert_eq!(refused["error"], "signature_mismatch", "{}", case.provider);
    }
}

/// Twilio and Square sign the public URL: the receiver rebuilds it from
/// `spec.ingress` and the query it received, so a request signed for the
/// public URL verifies through a receiver that sees a different host,
/// scheme and port.
#[tokio::test]
async fn url_signing_presets_verify_against_the_public_url_and_store() {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream::new(nats.connect().await.expect("connect"));
    for provider in ["twilio", "square"] {
        let manifest = format!(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
             metadata: {{name: {provider}, namespace: e2e}}\n\
             spec: {{provider: {provider}, secretRefs: [{{name: s, key: k}}], \
             ingress: {{host: hooks.example.com, path: /in}}}}\n"
        );
        let receiver = start_manifest(&nats, &manifest, &[("s/k", SECRET)]).await;
        let public = "https://hooks.example.com/in?account=a%201";
        let (body, headers, content_type): (&[u8], Vec<(&'static str, String)>, &str) =
            match provider {
                "twilio" => {
                    let body = b"MessageSid=SM1&Body=hello+there&From=%2B15005550006";
                    (
                        body,
                        vec![
                            (
                                "x-twilio-signature",
                                verify::twilio::sign(SECRET, public, body),
                            ),
                            ("i-twilio-idempotency-token", "idem-1".to_owned()),
                        ],
                        "application/x-www-form-urlencoded",
                    )
                }
                _ => {
                    let body = br#"{"type":"payment.updated","event_id":"ev-1"}"#;
                    (
                        body,
                        verify::square::sign(SECRET, public, body),
                        "application/json",
                    )
                }
            };
        let url = format!("{}?account=a%201", receiver.url);
        let mut with_type = headers.clone();
        with_type.push(("content-type", content_type.to_owned()));
        let (status, answer) = post(&url, body, &with_type).await;
        assert_eq!(status, StatusCode::OK, "{provider}: {answer}");
        let sequence = answer["sequence"].as_u64().expect("sequence");
        let stream = js
            .get_stream(&receiver.target.stream)
            .await
            .expect("stream");
        let message = stream.get_raw_message(sequence).await.expect("stored");
        assert_eq!(message.payload.as_ref(), body, "{provider}");

        // Another query than the one signed is refused.
        let (status, refused) =
            post(&format!("{}?account=b", receiver.url), body, &with_type).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{provider}: {refused}");
        assert_eq!(refused["error"], "signature_mismatch", "{provider}");
    }

    // A Twilio JSON body is signed through bodySHA256 in the URL.
    let manifest = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
        metadata: {name: twiliojson, namespace: e2e}\n\
        spec: {provider: twilio, secretRefs: [{name: s, key: k}], \
        publicUrl: 'https://hooks.example.com:8443/json'}\n";
    let receiver = start_manifest(&nats, manifest, &[("s/k", SECRET)]).await;
    let body = br#"{"specversion":"1.0","type":"com.twilio.messaging.message.delivered"}"#;
    let signed_url =
        verify::twilio::url_with_body_hash("https://hooks.example.com:8443/json", body);
    let query = signed_url.split_once('?').map(|(_, q)| q).expect("query");
    let headers = vec![(
        "x-twilio-signature",
        verify::twilio::sign(SECRET, &signed_url, body),
    )];
    let url = format!("{}?{query}", receiver.url);
    let (status, answer) = post(&url, body, &headers).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, refused) = post(&url, br#"{"changed":true}"#, &headers).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"], "body_hash_mismatch");
}
