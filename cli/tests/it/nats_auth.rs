//! `hookwarden tail` logs in to NATS every way the receiver does, each
//! against a real nats-server that enforces it: a user and password in
//! `--nats-url`, a token in it, a `.creds` file (`--nats-credentials-file`);
//! and a refused login says so without showing the credentials.

use std::io::BufRead;
use std::time::Duration;

use hookwarden_tests::NatsServer;

const PASSWORD: &str = "n@ts:pa ss/w%rd-Cl1";
const TOKEN: &str = "t0ken/with@odd:chars-Cl2";

/// Runs `hookwarden tail` with `args` on subject `auth.>`, publishes one
/// message once it says it is tailing, and returns everything it printed
/// (stderr, then stdout) once the message is shown.
async fn tail_one_message(nats: &NatsServer, args: &[&str]) -> String {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookwarden"))
        .arg("tail")
        .args(args)
        .arg("auth.>")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hookwarden tail");
    let stderr = child.stderr.take().expect("stderr");
    let stdout = child.stdout.take().expect("stdout");
    let ready = tokio::task::spawn_blocking(move || {
        let mut ready = String::new();
        let _ = std::io::BufReader::new(stderr).read_line(&mut ready);
        ready
    });
    let ready = tokio::time::timeout(Duration::from_secs(20), ready)
        .await
        .expect("tail says something within 20 s")
        .expect("join");
    if !ready.starts_with("tailing") {
        let _ = child.kill();
        let _ = child.wait();
        panic!("tail did not start: {ready}");
    }
    let client = nats.connect().await.expect("connect");
    client
        .publish("auth.x", r#"{"logged":"in"}"#.into())
        .await
        .expect("publish");
    client.flush().await.expect("flush");
    let shown = tokio::task::spawn_blocking(move || {
        let mut shown = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            shown.push_str(&line);
            shown.push('\n');
            if line == "}" {
                break;
            }
        }
        shown
    });
    let shown = tokio::time::timeout(Duration::from_secs(20), shown)
        .await
        .expect("the message is shown within 20 s")
        .expect("join");
    let _ = child.kill();
    let _ = child.wait();
    assert!(shown.starts_with("--- auth.x\n"), "{shown}");
    assert!(shown.contains("\"logged\": \"in\""), "{shown}");
    format!("{ready}{shown}")
}

fn assert_not_in(output: &str, secret: &str) {
    let encoded = hookwarden_tests::percent_encode(secret);
    for form in [secret, encoded.as_str()] {
        assert!(!output.contains(form), "{form:?} in:\n{output}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_logs_in_with_a_user_and_password_in_the_url() {
    let nats = NatsServer::builder()
        .require_user_password("hookwarden", PASSWORD)
        .start()
        .await
        .expect("nats-server with a password");
    let output = tail_one_message(&nats, &["--nats-url", &nats.url_with_auth()]).await;
    assert_not_in(&output, PASSWORD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_logs_in_with_a_token_in_the_url() {
    let nats = NatsServer::builder()
        .require_token(TOKEN)
        .start()
        .await
        .expect("nats-server with a token");
    let output = tail_one_message(&nats, &["--nats-url", &nats.url_with_auth()]).await;
    assert_not_in(&output, TOKEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_logs_in_with_a_creds_file() {
    let nats = NatsServer::builder()
        .require_creds()
        .start()
        .await
        .expect("nats-server in operator mode");
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("user.creds");
    std::fs::write(&creds, nats.creds().expect("creds")).expect("write creds");
    let output = tail_one_message(
        &nats,
        &[
            "--nats-url",
            nats.url(),
            "--nats-credentials-file",
            &creds.display().to_string(),
        ],
    )
    .await;
    for line in nats
        .creds()
        .expect("creds")
        .lines()
        .filter(|l| l.starts_with("SU") || l.starts_with("eyJ"))
    {
        assert_not_in(&output, line);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_reported_without_the_password() {
    let nats = NatsServer::builder()
        .require_user_password("hookwarden", PASSWORD)
        .start()
        .await
        .expect("nats-server with a password");
    let wrong = "wr0ng-pa55word";
    let url = nats
        .url()
        .replace("nats://", &format!("nats://hookwarden:{wrong}@"));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookwarden"))
            .args(["tail", "--nats-url", &url, "auth.>"])
            .output()
            .expect("run hookwarden tail")
    })
    .await
    .expect("join");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("cannot connect to NATS at nats://***@127.0.0.1:")
            && text.contains("authorization violation"),
        "{text}"
    );
    assert_not_in(&text, wrong);
}
