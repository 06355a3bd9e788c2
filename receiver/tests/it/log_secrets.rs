//! No secret in any output of the receiver binary at any log level, from
//! any crate: the real binary at `RUST_LOG=trace` (every crate: hyper,
//! rustls, async-nats with its `CONNECT` message), with an HMAC key, a
//! shared token and a Basic password of a `generic` endpoint with full
//! payload logging, and a NATS password in its URL; signed and forged
//! deliveries, some carrying the token and password in headers the
//! verifier does not read and in the body; then a rotated key, loaded by a
//! hot reload. Its stdout and stderr must hold none of the secrets in any
//! form a formatter or encoder could have written them.

use crate::binary::ReceiverProcess;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use hookwarden_tests::NatsServer;
use hyper::StatusCode;
use sha2::Sha256;

/// Characters JSON and `Debug` escape (`"`, `\`), so the escaped forms are
/// checked too, not only the raw one.
const HMAC_KEY: &str = "hm\"ac\\key-Xq81z";
const ROTATED_KEY: &str = "rot\"ated\\key-Pw27";
const TOKEN: &str = "tok\"en\\Hq4Lw9Xe2";
const PASSWORD: &str = "pw\"Jd3\\Ks8Vn1Tc";
/// As a URL needs it percent-encoded.
const NATS_PASSWORD: &str = "n@ts:pa ss/w%rd-Zy6";

const MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: scan, namespace: logs}\n\
    spec:\n  provider: generic\n  secretRefs: [{name: hmac, key: key}]\n  \
    verification:\n    \
    token: {header: X-Token, secretRefs: [{name: token, key: value}]}\n    \
    basicAuth: {username: hook, secretRefs: [{name: basic, key: password}]}\n    \
    hmac: {signatureHeader: X-Signature, idHeader: X-Id}\n  \
    logging: {payload: full}\n";

fn signature(key: &str, id: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(format!("{id}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Every form a secret could take in a log line: raw, JSON-escaped,
/// `Debug`-escaped and both, percent-encoded (URLs), hex (both cases),
/// base64 (standard and URL-safe, without padding: a prefix of the padded).
fn leak_forms(secret: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let json = |s: &str| {
        let quoted = serde_json::Value::from(s).to_string();
        quoted[1..quoted.len() - 1].to_owned()
    };
    let debug = |s: &str| {
        let quoted = format!("{s:?}");
        quoted[1..quoted.len() - 1].to_owned()
    };
    vec![
        secret.to_owned(),
        json(secret),
        debug(secret),
        json(&debug(secret)),
        debug(&json(secret)),
        hookwarden_tests::percent_encode(secret),
        hex::encode(secret),
        hex::encode_upper(secret),
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
    ]
}

fn assert_no_secret(output: &str, secrets: &[&str]) {
    for secret in secrets {
        for form in leak_forms(secret) {
            if let Some(at) = output.find(&form) {
                let line = output[..at].rsplit('\n').next().unwrap_or_default();
                panic!("the output holds {secret:?} as {form:?}, in the line starting {line:?}");
            }
        }
    }
}

/// Replaces a secret file at once (rename), as a Secret update does.
fn replace_secret(receiver: &ReceiverProcess, name: &str, key: &str, content: &[u8]) {
    let dir = receiver
        .manifest_path()
        .parent()
        .map(|d| d.join("secrets").join(name))
        .expect("secrets dir");
    let tmp = dir.join(format!(".{key}.tmp"));
    std::fs::write(&tmp, content).expect("write");
    std::fs::rename(&tmp, dir.join(key)).expect("rename");
}

/// Headers added to (or replacing those of) a signed delivery, and its body.
type Forgery<'a> = (&'a [(&'a str, &'a str)], &'a [u8]);

async fn deliver(
    receiver: &ReceiverProcess,
    key: &str,
    id: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> StatusCode {
    let signature = signature(key, id, body);
    let authorization = basic("hook", PASSWORD);
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-token", TOKEN),
        ("authorization", authorization.as_str()),
        ("x-id", id),
        ("x-signature", signature.as_str()),
    ];
    // An extra header replaces the one of the same name.
    headers.retain(|(name, _)| !extra.iter().any(|(n, _)| n == name));
    headers.extend_from_slice(extra);
    receiver.send("POST", &headers, body).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_output_at_trace_through_deliveries_and_a_reload() {
    let nats = NatsServer::builder()
        .require_user_password("hookwarden", NATS_PASSWORD)
        .start()
        .await
        .expect("nats-server with a password");
    let receiver = ReceiverProcess::spawn(
        &nats.url_with_auth(),
        MANIFEST,
        &[
            ("hmac", "key", HMAC_KEY.as_bytes()),
            ("token", "value", TOKEN.as_bytes()),
            ("basic", "password", PASSWORD.as_bytes()),
        ],
        &[("RUST_LOG", "trace")],
    );
    receiver.ready().await;

    let body = br#"{"type":"order.paid"}"#;
    assert_eq!(
        deliver(&receiver, HMAC_KEY, "d-1", &[], body).await,
        StatusCode::OK
    );
    // Forgeries carrying the real token and password: a wrong signature, a
    // signature with a guessed key, the secrets in headers nobody reads and
    // in the body (which full payload logging shows).
    let leaky_body =
        format!(r#"{{"token":"{TOKEN}","key":"{HMAC_KEY}","nats":"{NATS_PASSWORD}"}}"#);
    let forged: [Forgery; 4] = [
        (&[("x-signature", "00ff")], body),
        (&[("x-token", "guess")], body),
        (
            &[
                ("x-innocent", TOKEN),
                ("x-also", PASSWORD),
                ("x-signature", "00"),
            ],
            leaky_body.as_bytes(),
        ),
        (&[("authorization", &basic("hook", "guess"))], body),
    ];
    for (n, (extra, body)) in forged.iter().enumerate() {
        let status = deliver(&receiver, "wrong-key", &format!("f-{n}"), extra, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "forgery {n}");
    }

    // A rotated key, loaded by a hot reload: the new one is used, and is as
    // secret as the old one from its first load.
    replace_secret(&receiver, "hmac", "key", ROTATED_KEY.as_bytes());
    receiver.logged("configuration reloaded", 1).await;
    assert_eq!(
        deliver(&receiver, ROTATED_KEY, "d-2", &[], body).await,
        StatusCode::OK
    );
    assert_eq!(
        deliver(&receiver, HMAC_KEY, "d-3", &[], body).await,
        StatusCode::UNAUTHORIZED
    );

    let (_, log) = receiver.stop().await;
    // The scan means something only if lines that would carry the secrets
    // were written: the client's traces of its connection (async-nats
    // masks the password of its CONNECT itself; before the URL's
    // credentials were taken out of it, its debug lines printed the URL),
    // and the audit line of the forgery with the token and password in
    // headers no verifier reads and the secrets in its body, which the
    // filter alone keeps out.
    assert!(
        log.contains("write operation: CONNECT"),
        "no CONNECT traced:\n{log}"
    );
    let audit: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("hookwarden::audit") && l.contains("x-innocent"))
        .collect();
    assert_eq!(audit.len(), 1, "{log}");
    assert!(
        audit[0].contains(r#"\"x-innocent\":\"[redacted]\""#)
            && audit[0].contains(r#"\"x-also\":\"[redacted]\""#),
        "{}",
        audit[0]
    );
    let basic_pair = format!("hook:{PASSWORD}");
    assert_no_secret(
        &log,
        &[
            HMAC_KEY,
            ROTATED_KEY,
            TOKEN,
            PASSWORD,
            &basic_pair,
            NATS_PASSWORD,
        ],
    );
}

#[test]
fn the_scan_finds_every_form() {
    // The scan itself must be able to fail.
    let forms = leak_forms(HMAC_KEY);
    assert!(forms.contains(&"hm\\\"ac\\\\key-Xq81z".to_owned()));
    let line = serde_json::json!({"debug": format!("{:?}", Some(HMAC_KEY))}).to_string();
    let result = std::panic::catch_unwind(|| assert_no_secret(&line, &[HMAC_KEY]));
    assert!(result.is_err(), "{line}");
}
