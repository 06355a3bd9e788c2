//! No command of `hookwarden` prints a secret (docs/cli.md), whatever it
//! is asked: `send` (accepted, refused, unreachable, an answer that echoes
//! the request back), `send --print-curl` for a shared-token preset, the
//! `generic` token and HTTP Basic checks and Meta's verify token (and each
//! printed command, run by `sh` with the system's curl, is accepted by the
//! receiver: the shell reads the secrets from their files), `verify` (OK,
//! refused, unreadable). `secret generate` prints the secret it makes, and
//! only that; `tail` is covered by `nats_auth.rs`, `replay` and `dlq` by
//! `replay.rs` (every output scanned, a destination echoing the signing
//! secret shown `[redacted]`).

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use hookwarden_receiver::app;
use hookwarden_receiver::transport::Mode;
use hookwarden_tests::NatsServer;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::{args, hookwarden, path};

const GITHUB_SECRET: &str = "gh-S3cret-Ab12xy";
const GITLAB_TOKEN: &str = "gl-T0ken-Cd34xy";
const TOKEN: &str = "tok-Zx98-s3cret";
const PASSWORD: &str = "pw-Qr45-s3cret";
const HMAC_KEY: &str = "hm-Lm67-s3cret";
const VERIFY_TOKEN: &str = "meta-Vt31 s3cret";

/// Every form a secret could be printed in.
fn forms(secret: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    vec![
        secret.to_owned(),
        hookwarden_tests::percent_encode(secret),
        secret.replace(' ', "+"),
        hex::encode(secret),
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
    ]
}

fn secrets() -> Vec<String> {
    let mut all: Vec<String> = [
        GITHUB_SECRET,
        GITLAB_TOKEN,
        TOKEN,
        PASSWORD,
        HMAC_KEY,
        VERIFY_TOKEN,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    all.push(format!("hook:{PASSWORD}"));
    all
}

/// Stdout and stderr of `output`, after checking neither holds a secret.
fn scanned(what: &str, output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in secrets() {
        for form in forms(&secret) {
            assert!(!text.contains(&form), "{what} printed {form:?}:\n{text}");
        }
    }
    text
}

/// Runs a printed curl command with `sh`, printing the status code last.
async fn run_curl(command: &str) -> String {
    let command = format!("{} -w ' %{{http_code}}'", command.trim_end());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .args(["-c", &command])
            .output()
            .expect("run sh")
    })
    .await
    .expect("join");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A receiver built from `manifest` (as the binary builds it) with its
/// secret files (`name/key`, content) in `dir/secrets`; its base URL.
async fn serve(
    nats: &NatsServer,
    dir: &Path,
    manifest: &str,
    files: &[(&str, &str)],
) -> (String, oneshot::Sender<()>) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("endpoint.yaml"), manifest).expect("manifest");
    for (name, content) in files {
        let file = dir.join("secrets").join(name);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, content).expect("secret");
    }
    // Started as its binary starts, on these files.
    let settings = hookwarden_tests::receiver::settings(
        nats,
        &dir.join("endpoint.yaml"),
        &dir.join("secrets"),
        Mode::InsecureHttp,
    );
    let receiver = app::start(settings).await.expect("the receiver starts");
    let base = format!("http://{}/", receiver.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(receiver.serve(async {
        let _ = stopped.await;
    }));
    (base, stop)
}

/// A server that answers 200 with the request it got (head and body), as
/// a debugging endpoint does; its URL.
async fn echo_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Up to the end of the headers and a little body is enough.
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    request.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&request).await;
            });
        }
    });
    url
}

fn manifest(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: {name}, namespace: noleak}}\nspec:\n{spec}"
    )
}

const GENERIC: &str = "  provider: generic\n  secretRefs: [{name: hmac, key: key}]\n  \
    verification:\n    \
    token: {header: X-Token, secretRefs: [{name: token, key: value}]}\n    \
    basicAuth: {username: hook, secretRefs: [{name: basic, key: password}]}\n    \
    hmac: {signatureHeader: X-Signature, idHeader: X-Id}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_print_curl_never_print_a_secret_and_the_curl_commands_work() {
    let nats = NatsServer::start().await.expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let generic_dir = dir.path().join("generic");
    let (generic_url, _generic) = serve(
        &nats,
        &generic_dir,
        &manifest("generic", GENERIC),
        &[
            ("hmac/key", HMAC_KEY),
            ("token/value", TOKEN),
            ("basic/password", PASSWORD),
        ],
    )
    .await;
    let generic_manifest = path(&generic_dir.join("endpoint.yaml"));
    let generic_secrets = path(&generic_dir.join("secrets"));
    let generic = |extra: &[&str]| {
        let mut command = args(&[
            "send",
            "--endpoint",
            &generic_manifest,
            "--secrets-dir",
            &generic_secrets,
        ]);
        command.extend(args(extra));
        command
    };

    // generic: sent, then as curl; the curl command works.
    let sent = hookwarden(generic(&["--url", &generic_url])).await;
    let text = scanned("send generic", &sent);
    assert!(text.starts_with("200 OK"), "{text}");
    let printed = hookwarden(generic(&["--url", &generic_url, "--print-curl"])).await;
    let curl = scanned("send generic --print-curl", &printed);
    assert!(printed.status.success(), "{curl}");
    assert!(
        curl.contains("$(cat "),
        "the shell reads the secrets: {curl}"
    );
    assert!(run_curl(&curl).await.ends_with(" 200"), "{curl}");

    // A server that echoes the request back: `send` shows its answer, not
    // the token and the Basic password it sent.
    let echo = echo_server().await;
    let echoed = hookwarden(generic(&["--url", &echo])).await;
    let text = scanned("send generic to an echo server", &echoed);
    assert!(text.contains("x-token: [redacted]"), "{text}");
    assert!(text.contains("authorization: Basic [redacted]"), "{text}");

    // Nothing to answer: the error names the URL, nothing else.
    let unreachable = hookwarden(generic(&["--url", "http://127.0.0.1:9/"])).await;
    assert_eq!(unreachable.status.code(), Some(2));
    scanned("send to nowhere", &unreachable);

    // GitHub: refused with a wrong secret, accepted with the right one.
    let github_dir = dir.path().join("github");
    let (github_url, _github) = serve(
        &nats,
        &github_dir,
        &manifest(
            "github",
            "  provider: github\n  secretRefs: [{name: gh, key: secret}]\n",
        ),
        &[("gh/secret", GITHUB_SECRET)],
    )
    .await;
    let secret_file = path(&github_dir.join("secrets/gh/secret"));
    let wrong = github_dir.join("wrong");
    std::fs::write(&wrong, "not-the-secret").expect("write");
    for (file, code) in [(secret_file.clone(), 0), (path(&wrong), 1)] {
        let output = hookwarden(args(&[
            "send",
            "--provider",
            "github",
            "--secret-file",
            &file,
            "--url",
            &github_url,
        ]))
        .await;
        scanned("send github", &output);
        assert_eq!(output.status.code(), Some(code), "{output:?}");
    }

    // GitLab: the token is the header's whole value.
    let gitlab_dir = dir.path().join("gitlab");
    let (gitlab_url, _gitlab) = serve(
        &nats,
        &gitlab_dir,
        &manifest(
            "gitlab",
            "  provider: gitlab\n  secretRefs: [{name: gl, key: token}]\n",
        ),
        &[("gl/token", GITLAB_TOKEN)],
    )
    .await;
    let printed = hookwarden(args(&[
        "send",
        "--provider",
        "gitlab",
        "--secret-file",
        &path(&gitlab_dir.join("secrets/gl/token")),
        "--url",
        &gitlab_url,
        "--print-curl",
    ]))
    .await;
    let curl = scanned("send gitlab --print-curl", &printed);
    assert!(run_curl(&curl).await.ends_with(" 200"), "{curl}");

    // Meta's subscription handshake: the verify token is a query parameter.
    let meta_dir = dir.path().join("meta");
    let (meta_url, _meta) = serve(
        &nats,
        &meta_dir,
        &manifest(
            "meta",
            "  provider: meta\n  secretRefs: [{name: app, key: secret}]\n  \
             handshake: {verifyTokenRefs: [{name: verify, key: token}]}\n",
        ),
        &[
            ("app/secret", "meta-app-secret"),
            ("verify/token", VERIFY_TOKEN),
        ],
    )
    .await;
    let meta = |extra: &[&str]| {
        let mut command = args(&[
            "send",
            "--handshake",
            "--endpoint",
            &path(&meta_dir.join("endpoint.yaml")),
            "--secrets-dir",
            &path(&meta_dir.join("secrets")),
            "--url",
            &meta_url,
            "--delivery-id",
            "challenge-9",
        ]);
        command.extend(args(extra));
        command
    };
    let text = scanned("send meta --handshake", &hookwarden(meta(&[])).await);
    assert!(text.starts_with("200 OK\nchallenge-9"), "{text}");
    let printed = hookwarden(meta(&["--print-curl"])).await;
    let curl = scanned("send meta --handshake --print-curl", &printed);
    assert!(printed.status.success(), "{curl}");
    assert_eq!(run_curl(&curl).await, "challenge-9 200", "{curl}");
}

fn github_request(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         X-Hub-Signature-256: sha256={}\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: v-1\r\n\
         Content-Length: {}\r\n\r\n{body}",
        hex::encode(mac.finalize().into_bytes()),
        body.len()
    )
}

fn generic_request(token: &str, password: &str, key: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(format!("g-1.{body}").as_bytes());
    format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Token: {token}\r\n\
         Authorization: Basic {}\r\nX-Id: g-1\r\nX-Signature: {}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        base64::engine::general_purpose::STANDARD.encode(format!("hook:{password}")),
        hex::encode(mac.finalize().into_bytes()),
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_never_prints_a_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, content: &str| -> PathBuf {
        let file = dir.path().join(name);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, content).expect("write");
        file
    };
    let secret = path(&write("github-secret", GITHUB_SECRET));
    // The body quotes the secret, as a careless sender might: not printed.
    let body = format!(r#"{{"leak":"{GITHUB_SECRET}"}}"#);
    let good = path(&write("good.http", &github_request(GITHUB_SECRET, &body)));
    let forged = path(&write("forged.http", &github_request("guess", &body)));
    for (request, code) in [(&good, 0), (&forged, 1)] {
        let output = hookwarden(args(&[
            "verify",
            "--provider",
            "github",
            "--secret-file",
            &secret,
            "--request",
            request,
        ]))
        .await;
        scanned("verify github", &output);
        assert_eq!(output.status.code(), Some(code), "{output:?}");
    }
    let missing = hookwarden(args(&[
        "verify",
        "--provider",
        "github",
        "--secret-file",
        &secret,
        "--request",
        &path(&dir.path().join("absent.http")),
    ]))
    .await;
    assert_eq!(missing.status.code(), Some(2));
    scanned("verify without a request", &missing);

    write("generic.yaml", &manifest("generic", GENERIC));
    write("secrets/hmac/key", HMAC_KEY);
    write("secrets/token/value", TOKEN);
    write("secrets/basic/password", PASSWORD);
    for (request, code) in [
        (generic_request(TOKEN, PASSWORD, HMAC_KEY, "{}"), 0),
        (generic_request(TOKEN, PASSWORD, "guess", "{}"), 1),
        (generic_request("guess", PASSWORD, HMAC_KEY, "{}"), 1),
    ] {
        let saved = path(&write("generic.http", &request));
        let output = hookwarden(args(&[
            "verify",
            "--endpoint",
            &path(&dir.path().join("generic.yaml")),
            "--secrets-dir",
            &path(&dir.path().join("secrets")),
            "--request",
            &saved,
        ]))
        .await;
        scanned("verify generic", &output);
        assert_eq!(output.status.code(), Some(code), "{output:?}");
    }
}

#[test]
fn the_scan_can_fail() {
    let output = Output {
        status: std::process::ExitStatus::default(),
        stdout: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("hook:{PASSWORD}"))
        )
        .into_bytes(),
        stderr: Vec::new(),
    };
    assert!(std::panic::catch_unwind(|| scanned("a leak", &output)).is_err());
}
