//! `hookwarden send` for the fetched-key presets (`aws-sns`, `paypal`,
//! `google-pubsub`) against a receiver assembled from the same manifest
//! (as the binary assembles it) that fetches the providers' keys from a
//! loopback HTTPS server.
//!
//! `send` names the providers' real hosts (`SNS_CERT_URL`,
//! `PAYPAL_CERT_URL`, Google's JWKS URL), so the receiver's host rules are
//! unchanged; its fetcher (`KeyFetcher::with_test_routes`) only maps those
//! hosts to the loopback server and trusts the test CA, which issued the
//! server's TLS certificate and the signing certificates (for the names the
//! providers sign as). Signed with the key the server publishes: stored;
//! with another key: refused.

use hookwarden_receiver::transport::Mode;
use hookwarden_receiver::verify::keys::material::{jwk_json, rsa_signing_key};
use hookwarden_receiver::verify::keys::{FetcherConfig, KeyFetcher};
use hookwarden_receiver::verify::sending::{GOOGLE_KID, PAYPAL_CERT_URL, SNS_CERT_URL};
use hookwarden_tests::{InProcessReceiver, ListAnswer, ListServer, NatsServer, TestCa};

use crate::{args, hookwarden, path};

const SIGNER_KEY: &str = include_str!("../../../core/src/verify/keys/testdata/signer_key.pem");
const OTHER_KEY: &str = include_str!("../../../core/src/verify/keys/testdata/other_key.pem");

/// The host and the path of an `https://host/path` URL.
fn split(url: &str) -> (&str, &str) {
    let rest = url.strip_prefix("https://").expect("an https URL");
    rest.split_at(rest.find('/').expect("a path"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_signs_what_the_receiver_verifies_with_fetched_keys() {
    let nats = NatsServer::start().await.expect("nats-server");
    let ca = TestCa::new("test CA");
    let (sns_host, sns_path) = split(SNS_CERT_URL);
    let (paypal_host, paypal_path) = split(PAYPAL_CERT_URL);
    let google = hookwarden_receiver::verify::keys::url::google_jwks_url();
    let server = ListServer::start_of(&ca, &[sns_host, paypal_host, google.host()]).await;
    server.serve(
        sns_path,
        ListAnswer::ok(ca.issue(SIGNER_KEY, "sns.amazonaws.com", 2020, 2100)),
    );
    server.serve(
        paypal_path,
        ListAnswer::ok(ca.issue(
            SIGNER_KEY,
            "messageverificationcerts.paypal.com",
            2020,
            2100,
        )),
    );
    let signer = rsa_signing_key(SIGNER_KEY).expect("test key");
    let jwks = serde_json::json!({"keys": [jwk_json(&signer, GOOGLE_KID)]});
    server.serve(google.path_and_query(), ListAnswer::ok(jwks.to_string()));

    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("signer.pem");
    std::fs::write(&key, SIGNER_KEY).expect("key");
    let other = dir.path().join("other.pem");
    std::fs::write(&other, OTHER_KEY).expect("key");
    let specs = [
        (
            "aws-sns",
            "  provider: aws-sns\n  aws: {topicArns: ['arn:aws:sns:us-east-1:123456789012:orders']}\n",
        ),
        (
            "paypal",
            "  provider: paypal\n  paypal: {webhookId: 4JH86294D6297924G}\n",
        ),
        (
            "google-pubsub",
            "  provider: google-pubsub\n  google:\n    \
             serviceAccountEmail: pusher@my-project.iam.gserviceaccount.com\n    \
             audience: https://hooks.example.com/pubsub\n",
        ),
    ];
    for (name, spec) in specs {
        let manifest = format!(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
             metadata: {{name: {name}, namespace: cli}}\nspec:\n{spec}"
        );
        let fetcher =
            KeyFetcher::with_test_routes(FetcherConfig::default(), ca.roots(), server.routes());
        let receiver =
            InProcessReceiver::start(&nats, &manifest, &[], Mode::InsecureHttp, move |settings| {
                settings.key_fetcher = Some(fetcher);
            })
            .await;
        let send = |key: &std::path::Path| {
            hookwarden(args(&[
                "send",
                "--endpoint",
                &path(receiver.files.endpoint()),
                "--secrets-dir",
                &path(receiver.files.secrets_dir()),
                "--secret-file",
                &path(key),
                "--url",
                &format!("{}/", receiver.base),
                "--event",
                "order.created",
            ]))
        };
        let sent = send(&key).await;
        let stdout = String::from_utf8_lossy(&sent.stdout).into_owned();
        assert_eq!(
            sent.status.code(),
            Some(0),
            "{name}: {stdout} {}",
            String::from_utf8_lossy(&sent.stderr)
        );
        assert!(stdout.starts_with("200 OK"), "{name}: {stdout}");
        let forged = send(&other).await;
        let stdout = String::from_utf8_lossy(&forged.stdout).into_owned();
        assert_eq!(forged.status.code(), Some(1), "{name}: another key");
        assert!(stdout.starts_with("401"), "{name}: {stdout}");
    }
    // One fetch per provider: the second delivery verified from the cache.
    assert_eq!(server.hits(), 3);
}

/// An endpoint that takes a shared secret and a Microsoft Entra token
/// together: `send --token-key` adds the token, signed with the key whose
/// JWK the tenant's key set (on the loopback key server) lists. Event Grid
/// with `secretRefs` and `azure.entra` needs both the `?code=` secret and
/// the token; Graph with `graph.validationTokens` needs the `clientState`
/// and a token in `validationTokens`. Each verifies with both, and is
/// refused with the token of another key or without the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_adds_an_entra_token_to_a_secret_with_token_key() {
    use hookwarden_receiver::verify::keys::url::ENTRA_HOST;
    use hookwarden_receiver::verify::sending::ENTRA_KID;
    const TENANT: &str = "84bd8158-6d4d-4958-8b9f-9d6445542f95";

    let nats = NatsServer::start().await.expect("nats-server");
    let ca = TestCa::new("test CA");
    let server = ListServer::start_of(&ca, &[ENTRA_HOST]).await;
    let signer = rsa_signing_key(SIGNER_KEY).expect("test key");
    let keys = serde_json::json!({"keys": [jwk_json(&signer, ENTRA_KID)]});
    server.serve(
        &format!("/{TENANT}/discovery/v2.0/keys"),
        ListAnswer::ok(keys.to_string()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("signer.pem");
    std::fs::write(&key, SIGNER_KEY).expect("key");
    let other = dir.path().join("other.pem");
    std::fs::write(&other, OTHER_KEY).expect("key");
    let wrong_secret = dir.path().join("wrong");
    std::fs::write(&wrong_secret, "not-the-secret").expect("secret");
    let specs = [
        (
            "azure-event-grid",
            format!(
                "  provider: azure-event-grid\n  secretRefs: [{{name: s, key: k}}]\n  azure:\n    \
                 entra: {{tenantId: {TENANT}, audience: 'api://hookwarden-events'}}\n"
            ),
        ),
        (
            "microsoft-graph",
            format!(
                "  provider: microsoft-graph\n  secretRefs: [{{name: s, key: k}}]\n  graph:\n    \
                 validationTokens: {{tenantId: {TENANT}, appId: 8e460676-ae3f-4b1e-8790-ee0fb5d6148f}}\n"
            ),
        ),
    ];
    for (name, spec) in specs {
        let manifest = format!(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
             metadata: {{name: {name}, namespace: cli}}\nspec:\n{spec}"
        );
        let fetcher =
            KeyFetcher::with_test_routes(FetcherConfig::default(), ca.roots(), server.routes());
        let receiver = InProcessReceiver::start(
            &nats,
            &manifest,
            &[("s/k", b"the-shared-secret".as_slice())],
            Mode::InsecureHttp,
            move |settings| {
                settings.key_fetcher = Some(fetcher);
            },
        )
        .await;
        let send = |extra: &[&str]| {
            let mut all = args(&[
                "send",
                "--endpoint",
                &path(receiver.files.endpoint()),
                "--secrets-dir",
                &path(receiver.files.secrets_dir()),
                "--url",
                &format!("{}/", receiver.base),
                "--event",
                "created",
            ]);
            all.extend(extra.iter().map(|s| (*s).to_owned()));
            hookwarden(all)
        };
        let out = |output: &std::process::Output| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        };
        let signed = send(&["--token-key", &path(&key)]).await;
        assert_eq!(signed.status.code(), Some(0), "{name}: {}", out(&signed));
        assert!(
            out(&signed).starts_with("200 OK"),
            "{name}: {}",
            out(&signed)
        );
        let forged = send(&["--token-key", &path(&other)]).await;
        assert_eq!(forged.status.code(), Some(1), "{name}: another key");
        assert!(out(&forged).starts_with("401"), "{name}: {}", out(&forged));
        let no_secret = send(&[
            "--token-key",
            &path(&key),
            "--secret-file",
            &path(&wrong_secret),
        ])
        .await;
        assert!(
            out(&no_secret).starts_with("401"),
            "{name}: the token alone: {}",
            out(&no_secret)
        );
        if name == "microsoft-graph" {
            // Without the key, send says what it needs instead of sending
            // a delivery the receiver must refuse.
            let refused = send(&[]).await;
            assert_eq!(refused.status.code(), Some(2), "{}", out(&refused));
            assert!(out(&refused).contains("--token-key"), "{}", out(&refused));
        }
    }
    // The tenant's keys fetched once by each receiver, then cached.
    assert_eq!(server.hits(), 2);
}
