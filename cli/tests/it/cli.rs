//! The `hookwarden` binary, run for real.

use std::path::Path;
use std::process::{Command, Output};

use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "It's a Secret to Everybody";

fn hookwarden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookwarden"))
        .args(args)
        .output()
        .expect("run hookwarden")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

fn secret_file(dir: &Path, value: &str) -> String {
    let path = dir.join("secret");
    std::fs::write(&path, value).expect("write secret");
    path.display().to_string()
}

#[test]
fn secret_generate_prints_32_random_bytes_in_each_format() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let mut seen = Vec::new();
    for format in ["hex", "base64", "whsec"] {
        let output = hookwarden(&["secret", "generate", "--format", format]);
        assert!(output.status.success(), "{output:?}");
        let text = stdout(&output);
        let text = text.strip_suffix('\n').expect("one line");
        let bytes = match format {
            "hex" => {
                assert_eq!(text.len(), 64);
                hex::decode(text).expect("hex")
            }
            "base64" => STANDARD.decode(text).expect("base64"),
            _ => STANDARD
                .decode(text.strip_prefix("whsec_").expect("whsec_ prefix"))
                .expect("base64"),
        };
        assert_eq!(bytes.len(), 32, "{format}: {text}");
        seen.push(bytes);
    }
    assert_ne!(seen[0], seen[1], "two draws differ");
    let default = hookwarden(&["secret", "generate"]);
    assert_eq!(stdout(&default).trim().len(), 64, "hex by default");
}

#[test]
fn print_curl_for_github_carries_the_right_signature() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(dir.path(), SECRET);
    let body = dir.path().join("body.json");
    std::fs::write(&body, br#"{"zen":"Keep it logically awesome."}"#).expect("body");
    let output = hookwarden(&[
        "send",
        "--provider",
        "github",
        "--secret-file",
        &secret,
        "--url",
        "http://127.0.0.1:9/hook",
        "--event",
        "push",
        "--delivery-id",
        "d-1",
        "--body",
        &body.display().to_string(),
        "--print-curl",
    ]);
    assert!(output.status.success(), "{output:?}");
    let curl = stdout(&output);
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(br#"{"zen":"Keep it logically awesome."}"#);
    let expected = format!(
        "'X-Hub-Signature-256: sha256={}'",
        hex::encode(mac.finalize().into_bytes())
    );
    assert!(curl.contains(&expected), "{curl}");
    assert!(curl.contains("'X-GitHub-Event: push'"), "{curl}");
    assert!(curl.contains("'X-GitHub-Delivery: d-1'"), "{curl}");
    assert!(curl.contains("--data-binary @"), "{curl}");
    assert!(!curl.contains(SECRET), "the secret is never printed");
}

/// A raw HTTP/1.1 request from the `--print-curl` headers of `provider`.
fn saved_request(dir: &Path, provider: &str, secret: &str, body: &str) -> Vec<u8> {
    let body_path = dir.join("body.json");
    std::fs::write(&body_path, body).expect("body");
    let output = hookwarden(&[
        "send",
        "--provider",
        provider,
        "--secret-file",
        secret,
        "--url",
        "http://127.0.0.1:9/",
        "--event",
        "push",
        "--delivery-id",
        "d-7",
        "--body",
        &body_path.display().to_string(),
        "--print-curl",
    ]);
    assert!(output.status.success(), "{output:?}");
    let mut raw = String::from("POST / HTTP/1.1\r\nHost: example\r\n");
    for line in stdout(&output).lines() {
        if let Some(header) = line.trim().strip_prefix("-H '") {
            let header = header
                .trim_end_matches(" \\")
                .strip_suffix('\'')
                .expect("quoted");
            raw.push_str(header);
            raw.push_str("\r\n");
        }
    }
    raw.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    raw.into_bytes()
}

#[test]
fn verify_accepts_a_signed_request_and_refuses_a_changed_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(dir.path(), SECRET);
    let request = dir.path().join("request.http");
    for provider in ["github", "stripe", "slack", "bitbucket", "pagerduty"] {
        let raw = saved_request(dir.path(), provider, &secret, r#"{"action":"opened"}"#);
        std::fs::write(&request, &raw).expect("request");
        let args = [
            "verify",
            "--provider",
            provider,
            "--secret-file",
            &secret,
            "--request",
            &request.display().to_string(),
        ];
        let ok = hookwarden(&args);
        assert!(ok.status.success(), "{provider}: {ok:?}");
        assert!(
            stdout(&ok).starts_with("OK (secret index 0"),
            "{provider}: {ok:?}"
        );

        let mut changed = raw.clone();
        let last = changed.len() - 3;
        changed[last] = b'X';
        std::fs::write(&request, &changed).expect("request");
        let refused = hookwarden(&args);
        assert_eq!(refused.status.code(), Some(1), "{provider}: {refused:?}");
        assert!(
            stdout(&refused).starts_with("REFUSED: signature_mismatch\n"),
            "{provider}: {refused:?}"
        );
        assert!(!stdout(&refused).contains(SECRET));
    }
}

#[test]
fn verify_reports_the_event_and_delivery_of_github() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(dir.path(), SECRET);
    let request = dir.path().join("request.http");
    std::fs::write(&request, saved_request(dir.path(), "github", &secret, "{}")).expect("write");
    let output = hookwarden(&[
        "verify",
        "--provider",
        "github",
        "--secret-file",
        &secret,
        "--request",
        &request.display().to_string(),
    ]);
    assert_eq!(
        stdout(&output),
        "OK (secret index 0, event push, delivery d-7)\n"
    );
}

#[test]
fn print_curl_never_prints_a_token_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(dir.path(), "gitlab-token-value");
    let output = hookwarden(&[
        "send",
        "--provider",
        "gitlab",
        "--secret-file",
        &secret,
        "--url",
        "http://127.0.0.1:9/",
        "--print-curl",
    ]);
    assert!(output.status.success(), "{output:?}");
    let curl = stdout(&output);
    assert!(!curl.contains("gitlab-token-value"), "{curl}");
    assert!(
        curl.contains(&format!("-H \"x-gitlab-token: $(cat '{secret}')\"")),
        "{curl}"
    );
}
