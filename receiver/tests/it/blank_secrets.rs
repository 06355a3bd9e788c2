//! A secret file of only whitespace (what `echo > file` writes) is no key:
//! the real binary refuses to start with one, naming the secret and never
//! a value, and a hot reload that would rotate to one is refused while the
//! previous secret keeps serving. The same holds for a value over the
//! secret size limit (a reference to the wrong key: a pasted file, a
//! bundle), which would otherwise be built into the log filter's automata
//! in a dozen forms.

use crate::binary::ReceiverProcess;
use crate::{ENDPOINT, SECRET, sign};
use hmac::{Hmac, Mac};
use hookwarden_receiver::secrets::MAX_SECRET_VALUE_BYTES;
use hookwarden_tests::NatsServer;
use hyper::StatusCode;
use sha2::Sha256;

/// A GitHub delivery signed with `key`; its status.
async fn deliver(receiver: &ReceiverProcess, key: &[u8], id: &str) -> StatusCode {
    let body = br#"{"zen":"blank"}"#;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    if key == SECRET.as_bytes() {
        assert_eq!(signature, sign(body));
    }
    let headers = [
        ("content-type", "application/json"),
        ("x-github-event", "push"),
        ("x-github-delivery", id),
        ("x-hub-signature-256", signature.as_str()),
    ];
    receiver.send("POST", &headers, body).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_of_only_whitespace_stops_the_start_naming_it() {
    let nats = NatsServer::start().await.expect("nats-server");
    for blank in [&b"\n"[..], b"  \r\n\t"] {
        let receiver = ReceiverProcess::spawn(
            nats.url(),
            ENDPOINT,
            &[("gh", "secret", blank)],
            &[("RUST_LOG", "trace")],
        );
        let (status, log) = receiver.exited().await;
        assert!(!status.success(), "{log}");
        assert!(
            log.contains("secretRef gh/secret") && log.contains("holds only whitespace"),
            "{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotated_to_only_whitespace_is_refused_and_the_old_one_serves() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        ENDPOINT,
        &[("gh", "secret", SECRET.as_bytes())],
        &[],
    );
    receiver.ready().await;
    assert_eq!(
        deliver(&receiver, SECRET.as_bytes(), "w-1").await,
        StatusCode::OK
    );
    let file = receiver
        .manifest_path()
        .parent()
        .map(|dir| dir.join("secrets/gh/secret"))
        .expect("secret file");
    for (n, blank) in [&b" \n"[..], b"\r\n\t"].into_iter().enumerate() {
        // At once, as a Secret update swaps the file.
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, blank).expect("write");
        std::fs::rename(&tmp, &file).expect("rename");
        receiver.logged("holds only whitespace", n + 1).await;
        assert_eq!(
            deliver(&receiver, SECRET.as_bytes(), &format!("w-2{n}")).await,
            StatusCode::OK,
            "the previous secret still verifies"
        );
        // What the receiver would have accepted had it loaded the blank key.
        assert_eq!(
            deliver(&receiver, blank, &format!("w-3{n}")).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let (_, log) = receiver.stop().await;
    assert!(log.contains("secretRef gh/secret"), "{log}");
    assert!(!log.contains("configuration reloaded"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
}

/// One byte over the limit.
fn oversized() -> Vec<u8> {
    vec![b'k'; MAX_SECRET_VALUE_BYTES + 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_over_the_size_limit_stops_the_start_naming_it() {
    let nats = NatsServer::start().await.expect("nats-server");
    let value = oversized();
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        ENDPOINT,
        &[("gh", "secret", value.as_slice())],
        &[("RUST_LOG", "trace")],
    );
    let (status, log) = receiver.exited().await;
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("secretRef gh/secret") && log.contains("larger than 16 KiB"),
        "{log}"
    );
    assert!(
        !log.contains("kkkkkkkkkkkkkkkk"),
        "the value is never shown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotated_past_the_size_limit_is_refused_and_the_old_one_serves() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = ReceiverProcess::spawn(
        nats.url(),
        ENDPOINT,
        &[("gh", "secret", SECRET.as_bytes())],
        &[],
    );
    receiver.ready().await;
    let file = receiver
        .manifest_path()
        .parent()
        .map(|dir| dir.join("secrets/gh/secret"))
        .expect("secret file");
    let value = oversized();
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, &value).expect("write");
    std::fs::rename(&tmp, &file).expect("rename");
    receiver.logged("larger than 16 KiB", 1).await;
    assert_eq!(
        deliver(&receiver, SECRET.as_bytes(), "big-1").await,
        StatusCode::OK,
        "the previous secret still verifies"
    );
    assert_eq!(
        deliver(&receiver, &value, "big-2").await,
        StatusCode::UNAUTHORIZED,
        "the oversized value was never taken as a key"
    );
    let (_, log) = receiver.stop().await;
    assert!(!log.contains("configuration reloaded"), "{log}");
    assert!(
        !log.contains("kkkkkkkkkkkkkkkk"),
        "the value is never shown"
    );
}
