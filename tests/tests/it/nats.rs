//! The private nats-server is a real JetStream: it de-duplicates by
//! `Nats-Msg-Id` and keeps stored messages across a restart.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use hookwarden_tests::NatsServer;

#[tokio::test]
async fn jetstream_dedupes_by_msg_id_and_keeps_messages_across_restart() {
    let mut server = NatsServer::start().await.expect("nats-server starts");
    let js = jetstream::new(server.connect().await.expect("connect"));
    js.create_stream(stream::Config {
        name: "EVENTS".to_owned(),
        subjects: vec!["events.>".to_owned()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..stream::Config::default()
    })
    .await
    .expect("stream created");

    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "delivery-1");
    let publish = || async {
        js.publish_with_headers("events.push", headers.clone(), "payload-1".into())
            .await
            .expect("published")
            .await
            .expect("acknowledged")
    };
    let first = publish().await;
    let second = publish().await;
    assert!(!first.duplicate, "first publish is stored");
    assert!(
        second.duplicate,
        "second publish with the same Nats-Msg-Id is a duplicate"
    );
    assert_eq!(second.sequence, first.sequence);
    let mut events = js.get_stream("EVENTS").await.expect("stream");
    assert_eq!(events.info().await.expect("info").state.messages, 1);

    let url_before = server.url().to_owned();
    server
        .restart()
        .await
        .expect("nats-server restarts with the same store");
    assert_eq!(
        server.url(),
        url_before,
        "restart keeps the port, so clients reconnect"
    );
    let js = jetstream::new(server.connect().await.expect("reconnect"));
    let mut events = js
        .get_stream("EVENTS")
        .await
        .expect("stream survives restart");
    assert_eq!(events.info().await.expect("info").state.messages, 1);
    let stored = events
        .get_raw_message(first.sequence)
        .await
        .expect("stored message");
    assert_eq!(stored.payload.as_ref(), b"payload-1");
    assert_eq!(stored.subject.as_str(), "events.push");
}

#[tokio::test]
async fn a_creds_server_refuses_anonymous_clients_and_serves_jetstream_to_the_user() {
    let server = NatsServer::builder()
        .require_creds()
        .start()
        .await
        .expect("nats-server in operator mode starts");
    let creds = server.creds().expect("creds");
    assert!(creds.contains("BEGIN NATS USER JWT") && creds.contains("BEGIN USER NKEY SEED"));

    let refused = async_nats::connect(server.url()).await;
    assert!(refused.is_err(), "an anonymous client was let in");

    let js = jetstream::new(server.connect().await.expect("the user connects"));
    js.create_stream(stream::Config {
        name: "CREDS".to_owned(),
        subjects: vec!["creds.>".to_owned()],
        ..stream::Config::default()
    })
    .await
    .expect("the user's account has JetStream");
    js.publish("creds.x", "1".into())
        .await
        .expect("published")
        .await
        .expect("stored");
}

#[tokio::test]
async fn a_password_server_lets_in_only_the_user_with_its_password() {
    let password = "p@ss:w/rd% 1";
    let server = NatsServer::builder()
        .require_user_password("hook", password)
        .start()
        .await
        .expect("nats-server with a password starts");
    assert!(
        async_nats::connect(server.url()).await.is_err(),
        "anonymous"
    );
    let wrong = async_nats::ConnectOptions::with_user_and_password("hook".into(), "guess".into())
        .connect(server.url())
        .await;
    assert!(wrong.is_err(), "a wrong password was let in");
    let right = async_nats::ConnectOptions::with_user_and_password("hook".into(), password.into())
        .connect(server.url())
        .await;
    assert!(right.is_ok(), "{right:?}");
    assert!(server.connect().await.is_ok());
    let url = server.url_with_auth();
    assert_eq!(
        url,
        server
            .url()
            .replace("nats://", "nats://hook:p%40ss%3Aw%2Frd%25%201@")
    );
}

#[tokio::test]
async fn a_token_server_lets_in_only_clients_with_the_token() {
    let server = NatsServer::builder()
        .require_token("t0k/en")
        .start()
        .await
        .expect("nats-server with a token starts");
    assert!(
        async_nats::connect(server.url()).await.is_err(),
        "anonymous"
    );
    let wrong = async_nats::ConnectOptions::with_token("guess".into())
        .connect(server.url())
        .await;
    assert!(wrong.is_err(), "a wrong token was let in");
    let js = jetstream::new(server.connect().await.expect("the token gets in"));
    js.query_account().await.expect("JetStream answers");
    assert_eq!(
        server.url_with_auth(),
        server.url().replace("nats://", "nats://t0k%2Fen@")
    );
}
