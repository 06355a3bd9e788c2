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
