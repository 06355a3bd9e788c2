//! `hookwarden quarantine list` against a real receiver (assembled from its
//! manifest as the binary assembles it) with `spec.quarantine`, storing in a
//! private nats-server: deliveries signed with the wrong secret by
//! `hookwarden send` are refused, and the CLI shows each refusal.

use hookwarden_receiver::transport::Mode;
use hookwarden_tests::{InProcessReceiver, NatsServer};

use crate::{args, hookwarden};

const MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: github, namespace: ci}\n\
    spec:\n  provider: github\n  secretRefs: [{name: gh, key: secret}]\n  quarantine: {}\n";
const SECRET: &[u8] = b"the-real-SECRET-7c1d";

#[tokio::test]
async fn list_shows_each_refusal_readably_and_as_json() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = InProcessReceiver::start(
        &nats,
        MANIFEST,
        &[("gh/secret", SECRET)],
        Mode::InsecureHttp,
        |_| {},
    )
    .await;
    // Nothing refused yet: an empty list, successfully.
    let empty = hookwarden(args(&[
        "quarantine",
        "list",
        "--nats-url",
        nats.url(),
        "ci/github",
    ]))
    .await;
    assert!(empty.status.success(), "{empty:?}");
    assert!(empty.stdout.is_empty(), "{empty:?}");

    let wrong = receiver.files.dir().join("wrong-secret");
    std::fs::write(&wrong, b"not-the-secret").expect("write");
    for id in ["d-1", "d-2", "d-3"] {
        let sent = hookwarden(args(&[
            "send",
            "--provider",
            "github",
            "--secret-file",
            wrong.to_str().expect("utf-8 path"),
            "--url",
            &receiver.url,
            "--delivery-id",
            id,
        ]))
        .await;
        let text = String::from_utf8_lossy(&sent.stdout);
        assert!(
            text.starts_with("401"),
            "{text} {}",
            String::from_utf8_lossy(&sent.stderr)
        );
    }

    // Records are published after the answers: wait, bounded, for all three.
    let mut listed = String::new();
    for _ in 0..100 {
        let out = hookwarden(args(&[
            "quarantine",
            "list",
            "--nats-url",
            nats.url(),
            "ci/github",
        ]))
        .await;
        assert!(out.status.success(), "{out:?}");
        listed = String::from_utf8(out.stdout).expect("utf-8");
        if listed.lines().count() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    for line in &lines {
        assert!(
            line.contains(" 401 signature_mismatch client=127.0.0.1 "),
            "{line}"
        );
        assert!(line.contains(" POST / body="), "{line}");
    }
    assert!(!listed.contains("the-real-SECRET"), "{listed}");

    let newest = hookwarden(args(&[
        "quarantine",
        "list",
        "--nats-url",
        nats.url(),
        "--last",
        "1",
        "--json",
        "ci/github",
    ]))
    .await;
    assert!(newest.status.success(), "{newest:?}");
    let text = String::from_utf8(newest.stdout).expect("utf-8");
    assert_eq!(text.lines().count(), 1, "{text}");
    let record: serde_json::Value = serde_json::from_str(text.trim()).expect("a JSON record");
    assert_eq!(record["endpoint"], "ci/github");
    assert_eq!(record["status"], 401);
    assert_eq!(
        record["headers"]["x-github-delivery"], "d-3",
        "the newest one"
    );

    let not_a_name = hookwarden(args(&[
        "quarantine",
        "list",
        "--nats-url",
        nats.url(),
        "github",
    ]))
    .await;
    assert!(!not_a_name.status.success());
    assert!(
        String::from_utf8_lossy(&not_a_name.stderr).contains("<namespace>/<name>"),
        "{not_a_name:?}"
    );
    let disabled = hookwarden(args(&[
        "quarantine",
        "list",
        "--nats-url",
        nats.url(),
        "ci/other",
    ]))
    .await;
    assert!(!disabled.status.success());
    assert!(
        String::from_utf8_lossy(&disabled.stderr).contains("is spec.quarantine set on ci/other?"),
        "{disabled:?}"
    );
}
