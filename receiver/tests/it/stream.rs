//! The endpoint's stream from `spec.nats`, against a real nats-server that
//! only accepts a `.creds` file (operator mode): the receiver connects with
//! the credentials of `credentialsSecretRef`, creates the stream with the
//! spec's settings, and with `createStream: false` only checks that a
//! stream taking its subjects exists.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use hookwarden_receiver::reload::{self, LoadError};
use hookwarden_tests::NatsServer;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Writes the manifest (with `nats` as `spec.nats`) and the secrets (the
/// webhook secret and the `.creds` file) into `dir`.
fn files(dir: &Path, nats: &str, creds: &str) -> (PathBuf, PathBuf) {
    let endpoint = dir.join("endpoint.yaml");
    std::fs::write(
        &endpoint,
        format!(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
             metadata: {{name: github, namespace: streams}}\n\
             spec:\n  provider: github\n  secretRefs: [{{name: gh, key: secret}}]\n  nats: {nats}\n"
        ),
    )
    .expect("manifest");
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(secrets.join("gh")).expect("mkdir");
    std::fs::create_dir_all(secrets.join("nats")).expect("mkdir");
    std::fs::write(secrets.join("gh").join("secret"), b"webhook-secret").expect("secret");
    std::fs::write(secrets.join("nats").join("user.creds"), creds).expect("creds");
    (endpoint, secrets)
}

async fn load(endpoint: &Path, secrets: &Path, url: &str) -> Result<(), LoadError> {
    let checked = reload::check(endpoint, secrets)?;
    let client = checked
        .connect_options()?
        .connect(url)
        .await
        .expect("connects with the endpoint's credentials");
    checked
        .connect(
            client,
            TIMEOUT,
            hookwarden_receiver::server::DEFAULT_BODY_LIMIT,
            None,
        )
        .await
        .map(drop)
}

#[tokio::test]
async fn the_stream_gets_the_spec_settings_over_a_creds_connection() {
    let nats = NatsServer::builder()
        .require_creds()
        .start()
        .await
        .expect("nats-server in operator mode");
    let dir = tempfile::tempdir().expect("tempdir");
    let (endpoint, secrets) = files(
        dir.path(),
        "{storage: memory, maxAgeSeconds: 3600, maxBytes: 1048576, duplicateWindowSeconds: 900, \
         credentialsSecretRef: {name: nats, key: user.creds}}",
        nats.creds().expect("creds"),
    );
    load(&endpoint, &secrets, nats.url())
        .await
        .expect("the stream is created");

    let js = jetstream::new(nats.connect().await.expect("connect"));
    let mut created = js
        .get_stream("HOOKWARDEN_STREAMS_GITHUB")
        .await
        .expect("stream");
    let config = created.info().await.expect("info").config.clone();
    assert_eq!(config.subjects, ["hookwarden.streams.github.>"]);
    assert_eq!(config.storage, stream::StorageType::Memory);
    assert_eq!(config.max_age, Duration::from_secs(3600));
    assert_eq!(config.max_bytes, 1_048_576);
    assert_eq!(config.duplicate_window, Duration::from_secs(900));
    assert_eq!(config.num_replicas, 1);

    // Without the credentials file the receiver does not start.
    std::fs::remove_file(secrets.join("nats").join("user.creds")).expect("rm");
    let err = reload::check(&endpoint, &secrets).expect_err("creds missing");
    assert!(err.to_string().contains("credentialsSecretRef"), "{err}");
}

#[tokio::test]
async fn with_create_stream_false_the_stream_must_exist_and_take_the_subjects() {
    let nats = NatsServer::start().await.expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (endpoint, secrets) = files(dir.path(), "{createStream: false, stream: ORDERS}", "");
    let js = jetstream::new(nats.connect().await.expect("connect"));

    let err = load(&endpoint, &secrets, nats.url())
        .await
        .expect_err("no stream");
    let message = err.to_string();
    assert!(
        message.contains("ORDERS")
            && message.contains("createStream is false")
            && message.contains("hookwarden.streams.github.>"),
        "{message}"
    );
    assert!(
        js.get_stream("ORDERS").await.is_err(),
        "createStream: false must not create it"
    );

    // A stream of that name that takes other subjects cannot store them.
    js.create_stream(stream::Config {
        name: "ORDERS".to_owned(),
        subjects: vec!["orders.>".to_owned()],
        ..stream::Config::default()
    })
    .await
    .expect("foreign stream");
    let message = load(&endpoint, &secrets, nats.url())
        .await
        .expect_err("wrong subjects")
        .to_string();
    assert!(
        message.contains("orders.>") && message.contains("hookwarden.streams.github.>"),
        "{message}"
    );

    // Managed elsewhere with a wider filter and its own limits: used, and
    // left as it is.
    js.update_stream(stream::Config {
        name: "ORDERS".to_owned(),
        subjects: vec!["orders.>".to_owned(), "hookwarden.>".to_owned()],
        max_age: Duration::from_secs(7),
        ..stream::Config::default()
    })
    .await
    .expect("administrator's update");
    load(&endpoint, &secrets, nats.url())
        .await
        .expect("the stream takes the subjects");
    let mut stream = js.get_stream("ORDERS").await.expect("stream");
    let config = stream.info().await.expect("info").config.clone();
    assert_eq!(config.max_age, Duration::from_secs(7));
    assert_eq!(config.subjects, ["orders.>", "hookwarden.>"]);
}

#[tokio::test]
async fn serve_connects_with_the_creds_file_and_refuses_to_start_without_its_stream() {
    let nats = NatsServer::builder()
        .require_creds()
        .start()
        .await
        .expect("nats-server in operator mode");
    let dir = tempfile::tempdir().expect("tempdir");
    let (endpoint, secrets) = files(
        dir.path(),
        "{createStream: false, credentialsSecretRef: {name: nats, key: user.creds}}",
        nats.creds().expect("creds"),
    );
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwarden-receiver"))
        .args(["serve", "--tls-mode", "insecure-http"])
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--endpoint")
        .arg(&endpoint)
        .arg("--secrets-dir")
        .arg(&secrets)
        .args(["--nats-url", nats.url()])
        .output()
        .await
        .expect("receiver runs");
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    // Connected (an authorization failure would say "cannot connect"), then
    // refused for the missing stream.
    assert!(
        log.contains("HOOKWARDEN_STREAMS_GITHUB") && log.contains("createStream is false"),
        "{log}"
    );
    assert!(!log.contains("cannot connect"), "{log}");
    let seed_line = nats
        .creds()
        .and_then(|c| c.lines().find(|l| l.starts_with("SU")))
        .expect("seed");
    assert!(!log.contains(seed_line), "the seed is logged: {log}");
}
