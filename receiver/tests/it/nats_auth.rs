//! Every way the receiver binary logs in to NATS, each against a real
//! nats-server that enforces it: a user and password in the URL, a token in
//! the URL (both as the operator hands a `--nats-url` with credentials to
//! receivers, through `HOOKWARDEN_NATS_URL`), and a `.creds` file. Each
//! receiver must start, store a signed delivery, and never show the
//! credentials; a wrong password stops the start with the URL redacted.

use crate::binary::ReceiverProcess;
use crate::{ENDPOINT, sign};
use hookwarden_tests::NatsServer;
use hyper::StatusCode;

/// Needs percent-encoding in a URL (`@`, `:`, `/`, `%`, a space): the
/// receiver must decode it as the `nats` CLI does.
const PASSWORD: &str = "n@ts:pa ss/w%rd-7Kq2";
const TOKEN: &str = "t0ken/with@odd:chars-Vb8";

/// Starts the receiver of the GitHub endpoint against `nats` with
/// `nats_url`, sends one signed delivery and returns the receiver's whole
/// output once stopped.
async fn serve_and_deliver(nats: &NatsServer, nats_url: &str, manifest: &str) -> String {
    let receiver = ReceiverProcess::spawn(
        nats_url,
        manifest,
        &[
            ("gh", "secret", crate::SECRET.as_bytes()),
            (
                "nats",
                "user.creds",
                nats.creds().unwrap_or_default().as_bytes(),
            ),
        ],
        &[("RUST_LOG", "debug")],
    );
    receiver.ready().await;
    let body = br#"{"zen":"logged in"}"#;
    let signature = sign(body);
    let reply = receiver
        .send(
            "POST",
            &[
                ("content-type", "application/json"),
                ("x-github-event", "push"),
                ("x-github-delivery", "auth-1"),
                ("x-hub-signature-256", &signature),
            ],
            body,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}: {}",
        String::from_utf8_lossy(&reply.body),
        receiver.log()
    );
    let (_, log) = receiver.stop().await;
    // Stored: the 200 came after the PubAck; the stream holds it.
    let js = async_nats::jetstream::new(nats.connect().await.expect("connect"));
    let mut stream = js
        .get_stream("HOOKWARDEN_CI_GITHUB")
        .await
        .expect("the receiver created the stream");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
    log
}

fn assert_not_in(log: &str, secret: &str) {
    let encoded = hookwarden_tests::percent_encode(secret);
    for form in [secret, encoded.as_str()] {
        assert!(!log.contains(form), "{form:?} is in the output:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_and_password_in_the_url_log_in() {
    let nats = NatsServer::builder()
        .require_user_password("hookwarden", PASSWORD)
        .start()
        .await
        .expect("nats-server with a password");
    let url = nats.url_with_auth();
    assert!(
        url.contains("%40"),
        "the password is percent-encoded: {url}"
    );
    let log = serve_and_deliver(&nats, &url, ENDPOINT).await;
    assert_not_in(&log, PASSWORD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_url_logs_in() {
    let nats = NatsServer::builder()
        .require_token(TOKEN)
        .start()
        .await
        .expect("nats-server with a token");
    let log = serve_and_deliver(&nats, &nats.url_with_auth(), ENDPOINT).await;
    assert_not_in(&log, TOKEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creds_file_logs_in() {
    let nats = NatsServer::builder()
        .require_creds()
        .start()
        .await
        .expect("nats-server in operator mode");
    let manifest =
        crate::github_manifest("  nats: {credentialsSecretRef: {name: nats, key: user.creds}}\n");
    let log = serve_and_deliver(&nats, nats.url(), &manifest).await;
    let creds = nats.creds().expect("creds");
    for line in creds
        .lines()
        .filter(|l| l.starts_with("SU") || l.starts_with("eyJ"))
    {
        assert_not_in(&log, line);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_stops_the_start_without_showing_it() {
    let nats = NatsServer::builder()
        .require_user_password("hookwarden", PASSWORD)
        .start()
        .await
        .expect("nats-server with a password");
    let wrong = "wr0ng-pa55word";
    let url = nats
        .url()
        .replace("nats://", &format!("nats://hookwarden:{wrong}@"));
    let receiver = ReceiverProcess::spawn(
        &url,
        ENDPOINT,
        &[("gh", "secret", crate::SECRET.as_bytes())],
        &[("RUST_LOG", "trace")],
    );
    let (status, log) = receiver.exited().await;
    assert!(!status.success(), "{log}");
    assert!(log.contains("authorization violation"), "{log}");
    assert!(
        log.contains("cannot connect to NATS at nats://***@127.0.0.1:"),
        "{log}"
    );
    assert_not_in(&log, wrong);
}
