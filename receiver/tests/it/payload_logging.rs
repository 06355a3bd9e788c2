//! `spec.logging.payload` with the real binary logging at `trace`: the
//! secrets, the signatures and the credentials never appear in the log at
//! any level; redacted headers appear from `headers` on; the body appears
//! only with `full`. The modes are switched by hot reload.

use crate::binary::ReceiverProcess;
use hmac::{Hmac, Mac};
use hookwarden_tests::NatsServer;
use hyper::StatusCode;
use sha2::Sha256;

const TOKEN: &[u8] = b"tok-SECRET-1f2e";
const HMAC_KEY: &[u8] = b"hmac-SECRET-9a8b";
const AUTHORIZATION: &str = "Bearer auth-SECRET-55";
const FORGED: &str = "sha256=f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0";

/// A generic endpoint whose token and signature headers look harmless
/// (`X-Hw-Check`, `X-Hw-Mac`): only the verifier knows they are secret.
fn manifest(payload: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: acme, namespace: logging}}\n\
         spec:\n  provider: generic\n  verification:\n    \
         token: {{header: X-Hw-Check, secretRefs: [{{name: acme, key: token}}]}}\n    \
         hmac: {{signatureHeader: X-Hw-Mac, signaturePrefix: \"sha256=\", secretRefs: [{{name: acme, key: hmac}}]}}\n  \
         logging: {{payload: {payload}}}\n"
    )
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_KEY).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends a signed delivery and a forged one; returns the valid signature.
async fn deliveries(receiver: &ReceiverProcess, body: &[u8]) -> String {
    let signature = sign(body);
    let token = std::str::from_utf8(TOKEN).expect("ascii");
    for (mac, expected) in [
        (signature.as_str(), StatusCode::OK),
        (FORGED, StatusCode::UNAUTHORIZED),
    ] {
        let headers = [
            ("content-type", "application/json"),
            ("x-hw-check", token),
            ("x-hw-mac", mac),
            ("authorization", AUTHORIZATION),
            ("x-trace-note", "visible-header"),
            ("user-agent", "hookwarden-test/1"),
        ];
        let reply = receiver.send("POST", &headers, body).await;
        assert_eq!(reply.status, expected, "{:?}", reply.body);
    }
    signature
}

#[tokio::test]
async fn payload_logging_redacts_secrets_and_shows_the_body_only_when_full() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        &manifest("none"),
        &[("acme", "token", TOKEN), ("acme", "hmac", HMAC_KEY)],
        &[("RUST_LOG", "trace")],
    );
    receiver.ready().await;

    let mut signatures = Vec::new();
    signatures.push(deliveries(&receiver, br#"{"marker":"BODY-none"}"#).await);
    receiver.replace_manifest(&manifest("headers"));
    receiver.logged("configuration reloaded", 1).await;
    signatures.push(deliveries(&receiver, br#"{"marker":"BODY-headers"}"#).await);
    receiver.replace_manifest(&manifest("full"));
    receiver.logged("configuration reloaded", 2).await;
    signatures.push(deliveries(&receiver, br#"{"marker":"BODY-full"}"#).await);
    let mut long = b"{\"marker\":\"BODY-long\",\"pad\":\"".to_vec();
    long.extend(std::iter::repeat_n(b'p', 5000));
    long.extend_from_slice(b"\"}");
    signatures.push(deliveries(&receiver, &long).await);

    let (status, log) = receiver.stop().await;
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        log.contains(r#""level":"TRACE""#),
        "trace level is on: {log}"
    );
    let token = std::str::from_utf8(TOKEN).expect("ascii");
    let hmac_key = std::str::from_utf8(HMAC_KEY).expect("ascii");
    let mut secret_material = vec![token, hmac_key, "auth-SECRET-55", &FORGED[7..]];
    secret_material.extend(signatures.iter().map(|s| &s[7..]));
    for secret in secret_material {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    for absent in ["BODY-none", "BODY-headers"] {
        assert!(
            !log.contains(absent),
            "{absent}: a body logged without full"
        );
    }

    let audit: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "hookwarden::audit")
        .collect();
    assert_eq!(audit.len(), 8, "{log}");
    for line in &audit[..2] {
        assert!(line.get("headers").is_none(), "none: {line}");
        assert!(line.get("body").is_none(), "none: {line}");
    }
    for line in &audit[2..] {
        let headers: serde_json::Value =
            serde_json::from_str(line["headers"].as_str().expect("headers: a JSON text"))
                .expect("headers JSON");
        assert_eq!(headers["content-type"], "application/json", "{line}");
        assert_eq!(headers["user-agent"], "hookwarden-test/1", "{line}");
        // Only headers known to be harmless are shown: an unknown one is
        // redacted whatever its name.
        for secret_header in ["x-hw-check", "x-hw-mac", "authorization", "x-trace-note"] {
            assert_eq!(headers[secret_header], "[redacted]", "{line}");
        }
    }
    for line in &audit[2..4] {
        assert!(line.get("body").is_none(), "headers: {line}");
    }
    for line in &audit[4..6] {
        assert_eq!(line["body"], r#"{"marker":"BODY-full"}"#, "{line}");
        assert_eq!(line["body_encoding"], "utf8", "{line}");
        assert_eq!(line["payload_truncated"], false, "{line}");
    }
    for line in &audit[6..] {
        let body = line["body"].as_str().expect("body");
        assert_eq!(body.len(), 4096, "{line}");
        assert!(body.starts_with(r#"{"marker":"BODY-long""#), "{line}");
        assert_eq!(line["payload_truncated"], true, "{line}");
    }
}
