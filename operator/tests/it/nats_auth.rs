//! The operator binary manages streams on a NATS that enforces each way of
//! logging in the operator is given: a user and password in `--nats-url`,
//! a token in it, and a `.creds` file (`--nats-credentials-file`); each
//! endpoint on the default NATS gets `StreamReady=True`. All the while it
//! logs at `RUST_LOG=trace` (every crate: kube, hyper, rustls, async-nats
//! with its `CONNECT`), and its output holds none of the NATS credentials
//! nor the endpoint's webhook secret, in any form.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use hookwarden_crds::WebhookEndpoint;
use hookwarden_tests::{NatsServer, TestNamespace, free_port, kubeconfig_path};

use crate::WAIT;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};

const WEBHOOK_SECRET: &str = "op-webh\"ook\\s3cret-41";
const PASSWORD: &str = "op-n@ts:pa ss/w%rd-42";
const TOKEN: &str = "op-t0ken/odd@chars-43";

/// Kills the operator if the test fails before it is stopped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every form a secret could take in a log line.
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
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
    ]
}

/// Runs the operator with `nats_args` on a namespace of its own, applies a
/// GitHub endpoint on the default NATS and waits for its stream; returns
/// the operator's whole output, after checking the stream exists.
async fn manage_a_stream(name: &str, nats: &NatsServer, nats_args: &[String]) -> String {
    let ns = TestNamespace::create(name).await.expect("namespace");
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "gh"},
        "stringData": {"secret": WEBHOOK_SECRET},
    });
    ns.api::<Secret>()
        .patch(
            "gh",
            &PatchParams::apply("hookwarden-test"),
            &Patch::Apply(&secret),
        )
        .await
        .expect("Secret applied");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("operator.log");
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_hookwarden-operator"))
        .args(["run", "--namespace", ns.name()])
        .args([
            "--metrics-listen",
            &format!("127.0.0.1:{}", free_port().expect("a free port")),
        ])
        .args(nats_args)
        .env("KUBECONFIG", kubeconfig_path())
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("operator starts");
    let mut guard = Guard(child);

    let endpoint = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1", "kind": "WebhookEndpoint",
        "metadata": {"name": "hook"},
        "spec": {"provider": "github", "secretRefs": [{"name": "gh", "key": "secret"}]},
    });
    let endpoints = ns.api::<WebhookEndpoint>();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    // The operator installs the CRD itself: apply until it is served.
    let deadline = tokio::time::Instant::now() + WAIT;
    let condition = loop {
        if let Ok(Some(status)) = guard.0.try_wait() {
            panic!("the operator exited ({status}):\n{}", read_log());
        }
        let _ = endpoints
            .patch(
                "hook",
                &PatchParams::apply("hookwarden-test").force(),
                &Patch::Apply(&endpoint),
            )
            .await;
        let ready = endpoints.get("hook").await.ok().and_then(|found| {
            found
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "StreamReady" && c.status == "True")
        });
        if let Some(condition) = ready {
            break condition;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no StreamReady=True within {WAIT:?}; log:\n{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(condition.reason, "StreamCreated", "{condition:?}");

    let stream = format!("HOOKWARDEN_{}_HOOK", ns.name().to_uppercase());
    let js = async_nats::jetstream::new(nats.connect().await.expect("connect"));
    js.get_stream(&stream)
        .await
        .expect("the operator created the stream");

    let _ = guard.0.kill();
    let _ = guard.0.wait();
    let output = read_log();
    // The scan means something only if the lines that would carry the
    // credentials were written.
    assert!(output.contains("write operation: CONNECT"), "{output}");
    for secret in [WEBHOOK_SECRET, PASSWORD, TOKEN] {
        for form in leak_forms(secret) {
            assert!(!output.contains(&form), "{form:?} in the operator's output");
        }
    }
    output
}

#[tokio::test]
async fn the_operator_logs_in_with_a_user_and_password_in_its_nats_url() {
    let nats = NatsServer::builder()
        .require_user_password("hookwarden", PASSWORD)
        .start()
        .await
        .expect("nats-server with a password");
    let output = manage_a_stream(
        "natsauth-pw",
        &nats,
        &["--nats-url".to_owned(), nats.url_with_auth()],
    )
    .await;
    // The client's debug lines of the servers it dials were written: they
    // showed the password while it was left in the URL.
    assert!(output.contains("attempting connection"), "{output}");
}

#[tokio::test]
async fn the_operator_logs_in_with_a_token_in_its_nats_url() {
    let nats = NatsServer::builder()
        .require_token(TOKEN)
        .start()
        .await
        .expect("nats-server with a token");
    manage_a_stream(
        "natsauth-token",
        &nats,
        &["--nats-url".to_owned(), nats.url_with_auth()],
    )
    .await;
}

#[tokio::test]
async fn the_operator_logs_in_with_its_creds_file() {
    let nats = NatsServer::builder()
        .require_creds()
        .start()
        .await
        .expect("nats-server in operator mode");
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("operator.creds");
    std::fs::write(&creds, nats.creds().expect("creds")).expect("write creds");
    let output = manage_a_stream(
        "natsauth-creds",
        &nats,
        &[
            "--nats-url".to_owned(),
            nats.url().to_owned(),
            "--nats-credentials-file".to_owned(),
            creds.display().to_string(),
        ],
    )
    .await;
    for line in nats
        .creds()
        .expect("creds")
        .lines()
        .filter(|l| l.starts_with("SU") || l.starts_with("eyJ"))
    {
        for form in leak_forms(line) {
            assert!(
                !output.contains(&form),
                "the .creds {form:?} in the operator's output"
            );
        }
    }
}
