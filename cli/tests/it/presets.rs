//! `hookwarden send` and `verify` for the presets that need more than a
//! shared secret — `generic` from a manifest, URL-signing Twilio and Square,
//! key-pair Discord and SendGrid, body-signed Mailgun and Adyen — and the
//! handshakes, against a real receiver built from the same manifest (as the
//! receiver binary builds it) storing in a private nats-server.

use std::path::PathBuf;
use std::process::Output;

use hookwarden_receiver::transport::Mode;
use hookwarden_receiver::verify;
use hookwarden_tests::{InProcessReceiver, NatsServer};

use crate::{args, hookwarden, path};

/// `openssl genpkey -algorithm ed25519`, and its public key as hex.
const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIESCJvivICpQ5IUCjwZT9ymH/xGW6RdJA9uFAWRx3xpG\n-----END PRIVATE KEY-----\n";
/// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`, and
/// the SubjectPublicKeyInfo `openssl pkey -pubout` printed, base64.
const P256_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgoiwTVKttlFY6DOPf\neyL09KaIYAGtGjg19jV0nZOILnGhRANCAARZf2t164c2o4Mee1n4U9J5i19RKru9\n3lGb99Actxr3psAc4NZirCjNp1TZUkw3FD+v8qutCf8+gD0prlWVxQBT\n-----END PRIVATE KEY-----\n";
const P256_PUBLIC: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEWX9rdeuHNqODHntZ+FPSeYtfUSq7vd5Rm/fQHLca96bAHODWYqwozadU2VJMNxQ/r/KrrQn/PoA9Ka5VlcUAUw==";

/// A receiver for one manifest, with its files.
struct Endpoint {
    /// `http://127.0.0.1:<port>` (no path).
    base: String,
    receiver: InProcessReceiver,
}

impl Endpoint {
    fn manifest(&self) -> PathBuf {
        self.receiver.files.endpoint().to_owned()
    }

    fn secrets(&self) -> PathBuf {
        self.receiver.files.secrets_dir().to_owned()
    }

    fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.receiver.files.dir().join(name);
        std::fs::write(&path, content).expect("write file");
        path
    }
}

/// Writes `manifest` and `secrets` (`name/key`, content) like a mounted
/// Secret, and serves the receiver on them as its binary starts.
async fn serve(nats: &NatsServer, manifest: &str, secret_files: &[(&str, &[u8])]) -> Endpoint {
    let receiver =
        InProcessReceiver::start(nats, manifest, secret_files, Mode::InsecureHttp, |_| {}).await;
    Endpoint {
        base: receiver.base.clone(),
        receiver,
    }
}

fn assert_ok(output: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what}: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn manifest(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: {name}, namespace: cli}}\nspec:\n{spec}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_signs_what_the_receiver_accepts_for_every_kind_of_preset() {
    let nats = NatsServer::start().await.expect("nats-server");

    // generic: token, Basic and an HMAC over id.timestamp.body, from the manifest.
    let generic = serve(
        &nats,
        &manifest(
            "generic",
            "  provider: generic\n  secretRefs: [{name: s, key: k}]\n  verification:\n    \
             token: {header: X-Token, secretRefs: [{name: t, key: k}]}\n    \
             basicAuth: {username: hooks}\n    \
             hmac: {signatureHeader: X-Signature, signaturePrefix: 'v1=', signatureEncoding: base64, \
             algorithm: sha512, keyEncoding: hex, idHeader: X-Id, timestampHeader: X-Ts}\n    \
             eventHeader: X-Event\n",
        ),
        &[("s/k", b"00112233445566778899aabbccddeeff"), ("t/k", b"a-token")],
    )
    .await;
    let sent = hookwarden(args(&[
        "send",
        "--endpoint",
        &path(&generic.manifest()),
        "--secrets-dir",
        &path(&generic.secrets()),
        "--url",
        &format!("{}/", generic.base),
        "--event",
        "order.paid",
    ]))
    .await;
    let text = assert_ok(&sent, "generic");
    assert!(text.starts_with("200 OK"), "{text}");

    // twilio: the public URL comes from the manifest's ingress; the query
    // of --url is signed.
    let twilio = serve(
        &nats,
        &manifest(
            "twilio",
            "  provider: twilio\n  secretRefs: [{name: s, key: k}]\n  \
             ingress: {host: hooks.example.com, path: /sms}\n",
        ),
        &[("s/k", b"auth-token")],
    )
    .await;
    for body in [None, Some(r#"{"type":"com.twilio.event"}"#)] {
        let mut command = args(&[
            "send",
            "--endpoint",
            &path(&twilio.manifest()),
            "--secrets-dir",
            &path(&twilio.secrets()),
            "--url",
            &format!("{}/sms?tenant=a%20b", twilio.base),
        ]);
        if let Some(body) = body {
            command.extend(args(&[
                "--body",
                &path(&twilio.file("body.json", body.as_bytes())),
            ]));
        }
        let text = assert_ok(&hookwarden(command).await, "twilio");
        assert!(text.starts_with("200 OK"), "{text}");
    }

    // square: without a manifest, --public-url names the URL Square calls.
    let square = serve(
        &nats,
        &manifest(
            "square",
            "  provider: square\n  secretRefs: [{name: s, key: k}]\n  \
             publicUrl: https://hooks.example.com/square\n",
        ),
        &[("s/k", b"square-key")],
    )
    .await;
    let key = square.file("square-key", b"square-key");
    let send_square = |public: &str| {
        hookwarden(args(&[
            "send",
            "--provider",
            "square",
            "--secret-file",
            &path(&key),
            "--url",
            &format!("{}/", square.base),
            "--public-url",
            public,
        ]))
    };
    let text = assert_ok(
        &send_square("https://hooks.example.com/square").await,
        "square",
    );
    assert!(text.starts_with("200 OK"), "{text}");
    let wrong = send_square("https://other.example.com/square").await;
    assert_eq!(wrong.status.code(), Some(1), "another URL is refused");

    // discord and sendgrid: the sender's private key (PEM); the receiver
    // holds the public key.
    let seed = hookwarden_cli::ed25519_seed(ED25519_PEM.as_bytes()).expect("seed");
    let discord = serve(
        &nats,
        &manifest(
            "discord",
            "  provider: discord\n  secretRefs: [{name: s, key: k}]\n",
        ),
        &[("s/k", verify::discord::public_key_hex(&seed).as_bytes())],
    )
    .await;
    let sendgrid = serve(
        &nats,
        &manifest(
            "sendgrid",
            "  provider: sendgrid\n  secretRefs: [{name: s, key: k}]\n",
        ),
        &[("s/k", P256_PUBLIC.as_bytes())],
    )
    .await;
    for (endpoint, provider, key) in [
        (&discord, "discord", ED25519_PEM),
        (&sendgrid, "sendgrid", P256_PEM),
    ] {
        let key = endpoint.file("private.pem", key.as_bytes());
        let text = assert_ok(
            &hookwarden(args(&[
                "send",
                "--provider",
                provider,
                "--secret-file",
                &path(&key),
                "--url",
                &format!("{}/", endpoint.base),
            ]))
            .await,
            provider,
        );
        assert!(text.starts_with("200 OK"), "{provider}: {text}");
    }

    // mailgun and adyen sign inside the body.
    let mailgun = serve(
        &nats,
        &manifest(
            "mailgun",
            "  provider: mailgun\n  secretRefs: [{name: s, key: k}]\n",
        ),
        &[("s/k", b"mailgun-signing-key")],
    )
    .await;
    let adyen = serve(
        &nats,
        &manifest(
            "adyen",
            "  provider: adyen\n  secretRefs: [{name: s, key: k}]\n",
        ),
        &[(
            "s/k",
            b"44fd7b4b6e6d0d4ba2a3f0a2bd3b1ec4d25cb2f5a35b5b49ddd3d4ba6e5f4b1a",
        )],
    )
    .await;
    for (endpoint, name) in [(&mailgun, "mailgun"), (&adyen, "adyen")] {
        let text = assert_ok(
            &hookwarden(args(&[
                "send",
                "--endpoint",
                &path(&endpoint.manifest()),
                "--secrets-dir",
                &path(&endpoint.secrets()),
                "--url",
                &format!("{}/", endpoint.base),
            ]))
            .await,
            name,
        );
        assert!(text.starts_with("200 OK"), "{name}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_handshake_gets_the_answer_the_provider_expects() {
    let nats = NatsServer::start().await.expect("nats-server");
    let meta = serve(
        &nats,
        &manifest(
            "meta",
            "  provider: meta\n  secretRefs: [{name: s, key: k}]\n  \
             handshake: {verifyTokenRefs: [{name: v, key: t}]}\n",
        ),
        &[("s/k", b"app-secret"), ("v/t", b"verify-me")],
    )
    .await;
    let text = assert_ok(
        &hookwarden(args(&[
            "send",
            "--handshake",
            "--endpoint",
            &path(&meta.manifest()),
            "--secrets-dir",
            &path(&meta.secrets()),
            "--url",
            &format!("{}/", meta.base),
            "--delivery-id",
            "challenge-7",
        ]))
        .await,
        "meta",
    );
    assert!(text.starts_with("200 OK\nchallenge-7"), "{text}");
    let token = meta.file("wrong-token", b"guessed");
    let refused = hookwarden(args(&[
        "send",
        "--handshake",
        "--provider",
        "meta",
        "--secret-file",
        &path(&token),
        "--url",
        &format!("{}/", meta.base),
    ]))
    .await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stdout).contains("token_mismatch"));

    for provider in ["slack", "zoom", "twitch"] {
        let endpoint = serve(
            &nats,
            &manifest(
                provider,
                &format!("  provider: {provider}\n  secretRefs: [{{name: s, key: k}}]\n"),
            ),
            &[("s/k", b"shared-secret")],
        )
        .await;
        let text = assert_ok(
            &hookwarden(args(&[
                "send",
                "--handshake",
                "--endpoint",
                &path(&endpoint.manifest()),
                "--secrets-dir",
                &path(&endpoint.secrets()),
                "--url",
                &format!("{}/", endpoint.base),
            ]))
            .await,
            provider,
        );
        assert!(text.starts_with("200 OK"), "{provider}: {text}");
    }

    let seed = hookwarden_cli::ed25519_seed(ED25519_PEM.as_bytes()).expect("seed");
    let discord = serve(
        &nats,
        &manifest(
            "discord",
            "  provider: discord\n  secretRefs: [{name: s, key: k}]\n",
        ),
        &[("s/k", verify::discord::public_key_hex(&seed).as_bytes())],
    )
    .await;
    let key = discord.file("private.pem", ED25519_PEM.as_bytes());
    let text = assert_ok(
        &hookwarden(args(&[
            "send",
            "--handshake",
            "--provider",
            "discord",
            "--secret-file",
            &path(&key),
            "--url",
            &format!("{}/", discord.base),
        ]))
        .await,
        "discord",
    );
    assert!(text.starts_with("200 OK"), "{text}");
}

#[test]
fn verify_checks_url_signed_requests_and_handshakes_from_saved_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "12345").expect("token");
    // Twilio's own library test request (twilio-python
    // tests/unit/test_request_validator.py), saved as it arrived.
    let body = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";
    let request = format!(
        "POST /myapp.php?foo=1&bar=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         X-Twilio-Signature: RSOYDt4T1cUTdK1PDd93/VVr8B8=\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let saved = dir.path().join("request.http");
    std::fs::write(&saved, request).expect("request");
    let run = |extra: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hookwarden"));
        command
            .args(["verify", "--provider", "twilio", "--secret-file"])
            .arg(&token)
            .arg("--request")
            .arg(&saved)
            .args(extra);
        command.output().expect("run hookwarden")
    };
    let ok = run(&["--public-url", "https://mycompany.com/myapp.php"]);
    let text = assert_ok(&ok, "twilio verify");
    assert!(text.starts_with("OK"), "{text}");
    let wrong = run(&["--public-url", "https://mycompany.com/other.php"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("signature_mismatch"));
    let missing = run(&[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--public-url"));

    // A Meta subscription GET, checked with the manifest's verify tokens.
    std::fs::write(
        dir.path().join("endpoint.yaml"),
        manifest(
            "meta",
            "  provider: meta\n  secretRefs: [{name: s, key: k}]\n  \
             handshake: {verifyTokenRefs: [{name: v, key: t}]}\n",
        ),
    )
    .expect("manifest");
    for (name, content) in [("s/k", "app-secret"), ("v/t", "verify-me")] {
        let path = dir.path().join("secrets").join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, content).expect("secret");
    }
    std::fs::write(
        &saved,
        "GET /?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=99 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .expect("request");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hookwarden"))
        .arg("verify")
        .arg("--endpoint")
        .arg(dir.path().join("endpoint.yaml"))
        .arg("--secrets-dir")
        .arg(dir.path().join("secrets"))
        .arg("--request")
        .arg(&saved)
        .output()
        .expect("run hookwarden");
    let text = assert_ok(&output, "meta verify");
    assert!(text.starts_with("OK handshake"), "{text}");
    assert!(text.contains(": 99"), "{text}");
}

/// Every preset of the registry, as shipped: the receiver started from a
/// manifest naming it, `hookwarden send` (the binary) signing with the
/// sender's key, answered 2xx (so stored in JetStream); a delivery signed
/// with another key refused; and every preset's handshake answered as the
/// provider expects. `generic` is covered above (it signs what its manifest
/// configures); the fetched-key presets need a key server (`fetched.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_delivers_every_preset_of_the_registry_to_the_receiver() {
    use hookwarden_receiver::verify::registry::{self, KeyKind};
    let nats = NatsServer::start().await.expect("nats-server");
    let mut delivered = Vec::new();
    let mut handshakes = Vec::new();
    for preset in registry::presets() {
        if matches!(preset.key, KeyKind::Configured | KeyKind::Fetched) {
            continue;
        }
        let name = preset.name();
        let key = preset.key.test_key("the sender's key");
        let other = preset.key.test_key("another key");
        // Meta's handshake carries a verify token of its own.
        let spec = format!(
            "  provider: {name}\n  secretRefs: [{{name: s, key: k}}]\n  \
             publicUrl: https://hooks.example.com/in\n  \
             handshake: {{verifyTokenRefs: [{{name: v, key: t}}]}}\n"
        );
        let endpoint = serve(
            &nats,
            &manifest(&name, &spec),
            &[("s/k", &key.verifying), ("v/t", b"the verify token")],
        )
        .await;
        let url = format!("{}/", endpoint.base);
        let send = |secret: PathBuf, handshake: bool| {
            let mut command = args(&[
                "send",
                "--provider",
                &name,
                "--secret-file",
                &path(&secret),
                "--url",
                &url,
                "--public-url",
                "https://hooks.example.com/in",
                "--event",
                "thing.happened",
            ]);
            if handshake {
                command.push("--handshake".to_owned());
            }
            hookwarden(command)
        };
        let signing = endpoint.file("signing-key", &key.signing);
        let text = assert_ok(&send(signing.clone(), false).await, &name);
        assert!(text.starts_with("200 OK"), "{name}: {text}");
        let forged = send(endpoint.file("other-key", &other.signing), false).await;
        assert_eq!(forged.status.code(), Some(1), "{name}: another key");
        let refused = String::from_utf8_lossy(&forged.stdout).into_owned();
        assert!(refused.starts_with("401"), "{name}: {refused}");
        delivered.push(name.clone());

        if preset.handshake.is_some() {
            let secret = if name == "meta" {
                endpoint.file("verify-token", b"the verify token")
            } else {
                signing
            };
            let text = assert_ok(&send(secret, true).await, &format!("{name} handshake"));
            assert!(text.starts_with("200 OK"), "{name} handshake: {text}");
            handshakes.push(name);
        }
    }
    assert!(delivered.len() >= 36, "{delivered:?}");
    assert!(handshakes.len() >= 12, "{handshakes:?}");
}

/// `hookwarden verify` checks a saved request of every preset (signed by the
/// registry's signer, written as it arrives on the wire): OK with the
/// receiver's key, REFUSED with another.
#[test]
fn verify_checks_a_saved_request_of_every_preset() {
    use hookwarden_receiver::verify::registry::{self, KeyKind};
    use hookwarden_receiver::verify::sending::SignInput;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut checked = 0;
    for preset in registry::presets() {
        if matches!(preset.key, KeyKind::Configured | KeyKind::Fetched) {
            continue;
        }
        let name = preset.name();
        let key = preset.key.test_key("the sender's key");
        let input = SignInput {
            event: "thing.happened",
            id: "id-42",
            body: None,
            now: jiff::Timestamp::now().as_second(),
            url: "https://hooks.example.com/in",
            spec: None,
            token_key: None,
        };
        let delivery = preset.sign(&key.signing, &input).expect("signs");
        let target = delivery.target("/in");
        let mut request = format!(
            "{} {target} HTTP/1.1\r\nHost: hooks.example.com\r\n",
            delivery.method
        )
        .into_bytes();
        for (header, value) in &delivery.headers {
            request.extend_from_slice(format!("{header}: {value}\r\n").as_bytes());
        }
        request.extend_from_slice(
            format!("Content-Length: {}\r\n\r\n", delivery.body.len()).as_bytes(),
        );
        request.extend_from_slice(&delivery.body);
        let saved = dir.path().join(format!("{name}.http"));
        std::fs::write(&saved, request).expect("request");
        let run = |verifying: &[u8]| {
            let secret = dir.path().join(format!("{name}.key"));
            std::fs::write(&secret, verifying).expect("key");
            std::process::Command::new(env!("CARGO_BIN_EXE_hookwarden"))
                .args(["verify", "--provider", &name, "--secret-file"])
                .arg(&secret)
                .args(["--public-url", "https://hooks.example.com/in", "--request"])
                .arg(&saved)
                .output()
                .expect("run hookwarden")
        };
        let text = assert_ok(&run(&key.verifying), &name);
        assert!(text.starts_with("OK"), "{name}: {text}");
        let other = run(&preset.key.test_key("another key").verifying);
        assert_eq!(other.status.code(), Some(1), "{name}");
        assert!(
            String::from_utf8_lossy(&other.stdout).starts_with("REFUSED"),
            "{name}"
        );
        checked += 1;
    }
    assert!(checked >= 36, "{checked}");
}

/// The spec chooses where Okta and Event Grid send their secret: a custom
/// Okta authentication header, an Event Grid delivery-property header; the
/// default place is then refused, and `send --endpoint` signs where the
/// spec says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_and_event_grid_read_the_secret_where_the_spec_says() {
    let nats = NatsServer::start().await.expect("nats-server");
    for (name, settings) in [
        ("okta", "  okta: {authHeader: X-Okta-Secret}\n"),
        (
            "azure-event-grid",
            "  azure: {secretHeader: X-Event-Grid-Secret}\n",
        ),
    ] {
        let endpoint = serve(
            &nats,
            &manifest(
                name,
                &format!("  provider: {name}\n  secretRefs: [{{name: s, key: k}}]\n{settings}"),
            ),
            &[("s/k", b"hook-secret")],
        )
        .await;
        for handshake in [false, true] {
            let mut command = args(&[
                "send",
                "--endpoint",
                &path(&endpoint.manifest()),
                "--secrets-dir",
                &path(&endpoint.secrets()),
                "--url",
                &format!("{}/", endpoint.base),
            ]);
            if handshake {
                command.push("--handshake".to_owned());
            }
            let text = assert_ok(&hookwarden(command).await, name);
            assert!(text.starts_with("200 OK"), "{name}: {text}");
        }
        // Without the spec, send puts the secret in the default place
        // (Okta's Authorization; Event Grid's ?code=): not where this
        // endpoint looks.
        let command = args(&[
            "send",
            "--provider",
            name,
            "--secret-file",
            &path(&endpoint.file("secret", b"hook-secret")),
            "--url",
            &format!("{}/", endpoint.base),
        ]);
        let refused = hookwarden(command).await;
        assert_eq!(refused.status.code(), Some(1), "{name}");
        let text = String::from_utf8_lossy(&refused.stdout).into_owned();
        assert!(text.starts_with("401"), "{name}: {text}");
    }
}
