//! `spec.request` end to end with the real binary and a real nats-server:
//! methods (a signed GET is stored, an unsigned one refused), media types,
//! the manifest's body cap over the flag's, and a cap above NATS
//! `max_payload` refused at startup and at reload.

use crate::binary::ReceiverProcess;
use hmac::{Hmac, Mac};
use hookwarden_tests::NatsServer;
use hyper::StatusCode;
use sha2::Sha256;

const SECRET: &[u8] = b"request-rules-secret";
/// The NATS server's `max_payload` in these tests: below the flag's 1 MiB
/// default.
const MAX_PAYLOAD: u32 = 65536;

fn manifest(request: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: github, namespace: request}}\n\
         spec:\n  provider: github\n  secretRefs: [{{name: gh, key: secret}}]\n{request}"
    )
}

const RULES: &str = "  request:\n    methods: [GET, POST]\n    contentTypes: [application/json]\n    maxBodyBytes: 64\n";

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn signed<'a>(id: &'a str, signature: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("content-type", "application/json; charset=utf-8"),
        ("x-github-event", "ping"),
        ("x-github-delivery", id),
        ("x-hub-signature-256", signature),
    ]
}

#[tokio::test]
async fn request_rules_apply_and_an_oversized_cap_is_refused_at_reload() {
    let nats = NatsServer::builder()
        .max_payload(MAX_PAYLOAD)
        .start()
        .await
        .expect("nats-server");
    // The flag's default 1 MiB is above max_payload; the manifest's 64 bytes
    // win, so the receiver starts.
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        &manifest(RULES),
        &[("gh", "secret", SECRET)],
        &[],
    );
    receiver.ready().await;

    let empty = sign(b"");
    let get = receiver.send("GET", &signed("get-1", &empty), b"").await;
    assert_eq!(get.status, StatusCode::OK, "{:?}", get.body);
    let unsigned = receiver
        .send("GET", &[("content-type", "application/json")], b"")
        .await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED, "GET is verified");
    assert_eq!(unsigned.body.as_ref(), br#"{"error":"signature_missing"}"#);

    let put = receiver.send("PUT", &signed("put-1", &empty), b"").await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.headers["allow"], "GET, POST");

    let body = br#"{"ok":true}"#;
    let signature = sign(body);
    let mut text = signed("text-1", &signature);
    text[0] = ("content-type", "text/plain");
    let refused = receiver.send("POST", &text, body).await;
    assert_eq!(refused.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        refused.body.as_ref(),
        br#"{"error":"unsupported_media_type"}"#
    );
    let stored = receiver
        .send("POST", &signed("post-1", &signature), body)
        .await;
    assert_eq!(stored.status, StatusCode::OK);

    let big = [b'x'; 65];
    let big_signature = sign(&big);
    let too_large = receiver
        .send("POST", &signed("big-1", &big_signature), &big)
        .await;
    assert_eq!(
        too_large.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "the manifest's cap wins"
    );

    // A reload to a cap above max_payload is refused; the old rules serve.
    receiver.replace_manifest(&manifest(&RULES.replace("64", "100000")));
    receiver.logged("cannot be loaded", 1).await;
    let again = receiver
        .send("POST", &signed("big-2", &big_signature), &big)
        .await;
    assert_eq!(
        again.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "still 64 bytes"
    );
    // Allowing PUT is applied.
    receiver.replace_manifest(&manifest(&RULES.replace("[GET, POST]", "[PUT]")));
    receiver.logged("configuration reloaded", 1).await;
    let put = receiver.send("PUT", &signed("put-2", &empty), b"").await;
    assert_eq!(put.status, StatusCode::OK);

    let (status, log) = receiver.stop().await;
    assert!(status.success(), "{status:?}\n{log}");
    // Said at startup and at the applied reload (not the refused one).
    assert_eq!(
        log.matches("spec.allowedSourceCidrs is empty: no IP restriction")
            .count(),
        2,
        "{log}"
    );
    let refusal = log
        .lines()
        .find(|line| line.contains("cannot be loaded"))
        .expect("the refused reload is logged");
    for part in ["100000", "65536", "spec.request.maxBodyBytes"] {
        assert!(refusal.contains(part), "{part} in {refusal}");
    }

    let js = async_nats::jetstream::new(nats.connect().await.expect("connect"));
    let stream = js
        .get_stream("HOOKWARDEN_REQUEST_GITHUB")
        .await
        .expect("stream");
    let first = stream.get_raw_message(1).await.expect("the GET is stored");
    assert!(first.payload.is_empty(), "a GET delivery has no body");
}

#[tokio::test]
async fn a_body_cap_above_max_payload_stops_startup() {
    let nats = NatsServer::builder()
        .max_payload(MAX_PAYLOAD)
        .start()
        .await
        .expect("nats-server");
    let cases = [
        (manifest(""), "1048576", "--max-body-bytes"),
        (
            manifest("  request: {maxBodyBytes: 70000}\n"),
            "70000",
            "spec.request.maxBodyBytes",
        ),
    ];
    for (manifest, limit, setting) in cases {
        let receiver =
            ReceiverProcess::spawn(nats.url(), &manifest, &[("gh", "secret", SECRET)], &[]);
        let (status, log) = receiver.exited().await;
        assert!(!status.success(), "{log}");
        let error = log
            .lines()
            .find(|line| line.contains("the body cap"))
            .unwrap_or_else(|| panic!("the refusal is logged: {log}"));
        for part in [limit, "65536", setting] {
            assert!(error.contains(part), "{part} in {error}");
        }
    }
}
