//! Micro-benchmarks of every verifier on a correctly signed delivery of
//! 1 KiB and 64 KiB: the cost of the accepting path, which does the most
//! work (every signature checked, the body hashed once per secret).
//!
//! `bench/micro.sh` runs them next to `openssl speed -evp sha256` and
//! reports the HMAC-SHA256 verifiers against that ceiling.

use std::hint::black_box;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::Signer as _;
use hookwarden_crds::{BinaryEncoding, HmacAlgorithm, HmacCheck, Provider, SignatureEncoding};
use hookwarden_receiver::secrets::Secret;
use hookwarden_receiver::verify::{
    self, AdyenVerifier, Clock, DiscordVerifier, GenericChecks, GenericVerifier, GitlabVerifier,
    LinearVerifier, MailgunVerifier, PaddleVerifier, SendgridVerifier, SlackVerifier,
    StandardWebhooksVerifier, StripeVerifier, TwitchVerifier, Verifier, ZoomVerifier, adyen,
    bitbucket, gitlab, intercom, linear, mailgun, meta, paddle, pagerduty, shopify, slack,
    standard_webhooks, stripe, svix, twitch, zoom,
};
use serde_json::json;

const NOW: i64 = 1_700_000_000;
const CLOCK: Clock = || NOW;
const SECRET: &[u8] = b"bench-secret-0123456789abcdef";
const WHSEC: &[u8] = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_bench_1";
const SIZES: [(usize, &str); 2] = [(1024, "1KiB"), (64 * 1024, "64KiB")];

/// One signed delivery and the verifier that accepts it.
struct Case {
    name: &'static str,
    verifier: Box<dyn Verifier>,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn headers<N: AsRef<str>>(pairs: &[(N, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_ref().as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}

/// A JSON body of exactly `size` bytes (Linear's signed timestamp included).
fn json_body(size: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"type":"bench.event","id":"evt_1","webhookTimestamp":{},"data":""#,
        NOW * 1000
    );
    let mut body = head.into_bytes();
    body.resize(size - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

/// `value` padded with a `pad` field until its JSON is `size` bytes.
fn padded(mut value: serde_json::Value, pointer: &str, size: usize) -> Vec<u8> {
    let len = value.to_string().len();
    if let Some(slot) = value.pointer_mut(pointer) {
        *slot = json!("x".repeat(size.saturating_sub(len + 2)));
    }
    value.to_string().into_bytes()
}

fn preset(provider: Provider, secret: &[u8]) -> Box<dyn Verifier> {
    verify::for_provider(provider, vec![Secret::from(secret)], None).expect("verifier")
}

fn generic(algorithm: HmacAlgorithm, body: &[u8]) -> (Box<dyn Verifier>, HeaderMap) {
    let check = HmacCheck {
        algorithm,
        key_encoding: BinaryEncoding::Raw,
        signature_header: "X-Signature".to_owned(),
        signature_prefix: None,
        signature_encoding: SignatureEncoding::Hex,
        timestamp_header: None,
        id_header: None,
        secret_refs: Vec::new(),
    };
    let checks = GenericChecks {
        hmac: Some((check, vec![Secret::from(SECRET)])),
        timestamp_tolerance_secs: verify::DEFAULT_TIMESTAMP_TOLERANCE_SECS,
        ..GenericChecks::default()
    };
    let verifier = GenericVerifier::with_clock(checks, CLOCK).expect("verifier");
    let signature = match algorithm {
        HmacAlgorithm::Sha256 => mac::<hmac::Hmac<sha2::Sha256>>(body),
        HmacAlgorithm::Sha512 => mac::<hmac::Hmac<sha2::Sha512>>(body),
        HmacAlgorithm::Sha1 => mac::<hmac::Hmac<sha1::Sha1>>(body),
    };
    (
        Box::new(verifier),
        headers(&[("x-signature", hex::encode(signature))]),
    )
}

fn mac<M: hmac::Mac + hmac::digest::KeyInit>(body: &[u8]) -> Vec<u8> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(SECRET).expect("any key length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn boxed<V: Verifier + 'static>(verifier: Result<V, verify::VerifierError>) -> Box<dyn Verifier> {
    Box::new(verifier.expect("verifier"))
}

/// Every verifier with a delivery of `size` bytes it accepts.
fn cases(size: usize) -> Vec<Case> {
    let body = json_body(size);
    let case = |name, verifier, headers| Case {
        name,
        verifier,
        headers,
        body: body.clone(),
    };
    let mut cases = vec![
        case(
            "github",
            preset(Provider::Github, SECRET),
            headers(&[("x-hub-signature-256", bitbucket::sign(SECRET, &body))]),
        ),
        case(
            "bitbucket",
            preset(Provider::Bitbucket, SECRET),
            headers(&[("x-hub-signature", bitbucket::sign(SECRET, &body))]),
        ),
        case(
            "gitlab-token",
            boxed(GitlabVerifier::with_clock(
                vec![Secret::from(SECRET)],
                gitlab::DEFAULT_TOLERANCE_SECS,
                CLOCK,
            )),
            headers(&gitlab::sign(SECRET)),
        ),
        case(
            "gitlab-signing-token",
            boxed(GitlabVerifier::with_clock(
                vec![Secret::from(WHSEC)],
                gitlab::DEFAULT_TOLERANCE_SECS,
                CLOCK,
            )),
            headers(&gitlab::sign_with_signing_token(WHSEC, ID, NOW, &body).expect("whsec")),
        ),
        case(
            "stripe",
            boxed(StripeVerifier::with_clock(
                vec![Secret::from(SECRET)],
                stripe::DEFAULT_TOLERANCE_SECS,
                CLOCK,
            )),
            headers(&stripe::sign(SECRET, NOW, &body)),
        ),
        case(
            "slack",
            boxed(SlackVerifier::with_clock(
                vec![Secret::from(SECRET)],
                slack::DEFAULT_TOLERANCE_SECS,
                CLOCK,
            )),
            headers(&slack::sign(SECRET, NOW, &body)),
        ),
        case(
            "standard-webhooks",
            boxed(StandardWebhooksVerifier::with_clock(
                standard_webhooks::SCHEME,
                vec![Secret::from(WHSEC)],
                standard_webhooks::DEFAULT_TOLERANCE_SECS,
                CLOCK,
            )),
            headers(&standard_webhooks::sign(WHSEC, ID, NOW, &body).expect("whsec")),
        ),
        case(
            "svix",
            boxed(svix::verifier_with_clock(
                vec![Secret::from(WHSEC)],
                svix::DEFAULT_TOLERANCE_SECS,
                CLOCK,
            )),
            headers(&svix::sign(WHSEC, ID, NOW, &body).expect("whsec")),
        ),
        case(
            "shopify",
            preset(Provider::Shopify, SECRET),
            headers(&shopify::sign(SECRET, &body)),
        ),
        case(
            "paddle",
            boxed(PaddleVerifier::with_clock(
                vec![Secret::from(SECRET)],
                paddle::DEFAULT_TOLERANCE_SECS,
                CLOCK,
            )),
            headers(&paddle::sign(SECRET, NOW, &body)),
        ),
        case(
            "zoom",
            boxed(ZoomVerifier::with_clock(
                vec![Secret::from(SECRET)],
                zoom::DEFAULT_TOLERANCE_SECS,
                CLOCK,
            )),
            headers(&zoom::sign(SECRET, NOW, &body)),
        ),
        case(
            "twitch",
            boxed(TwitchVerifier::with_clock(
                vec![Secret::from(SECRET)],
                CLOCK,
            )),
            {
                let ts = jiff::Timestamp::from_second(NOW)
                    .expect("in range")
                    .to_string();
                headers(&[
                    (
                        "twitch-eventsub-message-signature",
                        twitch::sign(SECRET, ID, &ts, &body),
                    ),
                    ("twitch-eventsub-message-id", ID.to_owned()),
                    ("twitch-eventsub-message-timestamp", ts),
                    ("twitch-eventsub-message-type", "notification".to_owned()),
                ])
            },
        ),
        case(
            "linear",
            boxed(LinearVerifier::with_clock(
                vec![Secret::from(SECRET)],
                linear::DEFAULT_TOLERANCE_SECS,
                CLOCK,
            )),
            headers(&linear::sign(SECRET, &body)),
        ),
        case(
            "intercom",
            preset(Provider::Intercom, SECRET),
            headers(&intercom::sign(SECRET, &body)),
        ),
        case(
            "pagerduty",
            preset(Provider::Pagerduty, SECRET),
            headers(&pagerduty::sign(SECRET, &body)),
        ),
        case(
            "meta",
            preset(Provider::Meta, SECRET),
            headers(&meta::sign(SECRET, &body)),
        ),
    ];
    for (name, algorithm) in [
        ("generic-hmac-sha256", HmacAlgorithm::Sha256),
        ("generic-hmac-sha512", HmacAlgorithm::Sha512),
        ("generic-hmac-sha1", HmacAlgorithm::Sha1),
    ] {
        let (verifier, headers) = generic(algorithm, &body);
        cases.push(case(name, verifier, headers));
    }

    // Asymmetric presets: Ed25519 (Discord), ECDSA P-256 (SendGrid).
    let ts = NOW.to_string();
    let ed = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let message = [ts.as_bytes(), &body].concat();
    cases.push(case(
        "discord",
        boxed(DiscordVerifier::with_clock(
            vec![Secret::from(
                hex::encode(ed.verifying_key().as_bytes()).into_bytes(),
            )],
            CLOCK,
        )),
        headers(&[
            (
                "x-signature-ed25519",
                hex::encode(ed.sign(&message).to_bytes()),
            ),
            ("x-signature-timestamp", ts.clone()),
        ]),
    ));
    let p256_key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("valid scalar");
    let mut spki =
        hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").expect("hex");
    spki.extend_from_slice(p256_key.verifying_key().to_encoded_point(false).as_bytes());
    let signature: p256::ecdsa::Signature =
        p256::ecdsa::signature::Signer::sign(&p256_key, &message);
    cases.push(case(
        "sendgrid",
        boxed(SendgridVerifier::with_clock(
            vec![Secret::from(BASE64.encode(spki).into_bytes())],
            CLOCK,
        )),
        headers(&[
            (
                "x-twilio-email-event-webhook-signature",
                BASE64.encode(signature.to_der().as_bytes()),
            ),
            ("x-twilio-email-event-webhook-timestamp", ts.clone()),
        ]),
    ));

    // Signatures inside the body: Mailgun (timestamp and token), Adyen (item fields).
    let token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0";
    let envelope = json!({
        "signature": {"timestamp": ts, "token": token, "signature": mailgun::sign(SECRET, &ts, token)},
        "event-data": {"event": "delivered", "id": "evt_1", "pad": ""},
    });
    cases.push(Case {
        name: "mailgun",
        verifier: boxed(MailgunVerifier::with_clock(
            vec![Secret::from(SECRET)],
            CLOCK,
        )),
        headers: HeaderMap::new(),
        body: padded(envelope, "/event-data/pad", size),
    });
    let adyen_key = [0x5a_u8; 32];
    let mut item = json!({
        "pspReference": "7914073381342284", "originalReference": "", "merchantAccountCode": "Bench",
        "merchantReference": "ref-1", "amount": {"value": 1130, "currency": "EUR"},
        "eventCode": "AUTHORISATION", "success": "true", "pad": "",
    });
    let hmac_signature = adyen::sign(&adyen_key, &item);
    item["additionalData"] = json!({"hmacSignature": hmac_signature});
    let notification =
        json!({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]});
    cases.push(Case {
        name: "adyen",
        verifier: boxed(AdyenVerifier::new(vec![Secret::from(
            hex::encode_upper(adyen_key).into_bytes(),
        )])),
        headers: HeaderMap::new(),
        body: padded(
            notification,
            "/notificationItems/0/NotificationRequestItem/pad",
            size,
        ),
    });
    cases
}

fn verifiers(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    for (size, label) in SIZES {
        for case in cases(size) {
            if let Err(rejection) = case.verifier.verify(&case.headers, &case.body) {
                panic!(
                    "{} {label}: the signed delivery is refused: {rejection}",
                    case.name
                );
            }
            group.throughput(Throughput::Bytes(case.body.len() as u64));
            group.bench_with_input(BenchmarkId::new(case.name, label), &case, |b, case| {
                b.iter(|| {
                    black_box(
                        case.verifier
                            .verify(black_box(&case.headers), black_box(&case.body)),
                    )
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, verifiers);
criterion_main!(benches);
