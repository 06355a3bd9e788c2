//! `spec.allowedSources` of a standalone receiver, against a loopback list
//! server that serves GitHub's `meta` document (the saved sample, its
//! `hooks` replaced by loopback and private ranges: the client here is
//! always 127.0.0.1):
//!
//! - through the assembled receiver (`app::start`, as the binary starts it,
//!   given a range fetcher routed to the list server through
//!   `Settings::range_fetcher`, which the binary never sets): the list is
//!   fetched at start and refreshed; a delivery from a removed range is
//!   refused 403 `ip_not_allowed` after the change and one from an added
//!   range is stored; failing, slow, malformed and implausible answers keep
//!   the last good list; a list that cannot be had stops the start;
//! - through the real `hookwarden-receiver` binary, which cannot reach a
//!   loopback list server (only public addresses, system roots): its saved
//!   list (`--source-ranges-dir`, the file `hookwarden ranges fetch`
//!   writes) is used at start and hot-reloaded when replaced, an implausible
//!   replacement is ignored, and a list it can neither fetch nor find stops
//!   it with a message naming the list.
//!
//! Everything is on 127.0.0.1, port 0; every wait is bounded.

use std::sync::Arc;
use std::time::Duration;

use crate::binary::ReceiverProcess;
use crate::{SECRET, sign, start_github, stored_messages};
use hookwarden_receiver::app;
use hookwarden_receiver::ranges::local::write_file;
use hookwarden_tests::{EndpointFiles, ListAnswer, ListServer, NatsServer, eventually};
use hyper::StatusCode;

const WAIT: Duration = Duration::from_secs(30);

/// The saved `api.github.com/meta` sample with `hooks` replaced.
fn meta(hooks: &[&str]) -> Vec<u8> {
    let sample = include_bytes!("../../../core/src/ranges/testdata/github-meta.json");
    let mut document: serde_json::Value = serde_json::from_slice(sample).expect("sample");
    document["hooks"] = serde_json::json!(hooks);
    document.to_string().into_bytes()
}

const ALLOW_LOOPBACK: &[&str] = &["127.0.0.0/8", "192.30.252.0/22"];
const ALLOW_PRIVATE: &[&str] = &["10.0.0.0/8", "192.30.252.0/22"];

#[tokio::test]
async fn the_assembled_receiver_follows_good_changes_and_keeps_the_last_good_list() {
    let nats = NatsServer::start().await.expect("nats-server");
    let server = ListServer::start(&["api.github.com"]).await;
    server.serve("/meta", ListAnswer::ok(meta(ALLOW_LOOPBACK)));
    let fetcher = Arc::new(server.fetcher(Duration::from_secs(1)));
    let receiver = start_github(
        &nats,
        1024 * 1024,
        "  allowedSources: [{provider: github, service: hooks}]\n",
        |settings| {
            settings.range_fetcher = Some(fetcher);
            settings.source_ranges_refresh = Duration::from_millis(300);
        },
    )
    .await;
    let answer = receiver.deliver(br#"{"id":1}"#, "ranges-1", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    // 127.0.0.0/8 removed: refused once the refresh and the reload ran.
    server.serve("/meta", ListAnswer::ok(meta(ALLOW_PRIVATE)));
    eventually("the removed range to be refused", WAIT, || async {
        let answer = receiver.deliver(br#"{"id":2}"#, "ranges-2", None).await;
        (answer.status == StatusCode::FORBIDDEN).then_some(answer)
    })
    .await
    .json
    .get("error")
    .filter(|e| *e == "ip_not_allowed")
    .expect("refused for the allowlist");

    // (Until then the same delivery may have been stored: a retry of the
    // same id is de-duplicated.)
    let stored = stored_messages(&nats, &receiver.target).await;

    // Every kind of failure keeps the last good list: each is served for
    // several refreshes, and 127.0.0.1 stays refused.
    for (answer, what) in [
        (ListAnswer::status(500), "a failing server"),
        (ListAnswer::status(301), "a redirect"),
        (
            ListAnswer::ok(b"{\"hooks\": [\"not a cidr\"]}".to_vec()),
            "a malformed list",
        ),
        (ListAnswer::ok(meta(&[])), "an empty list"),
        (ListAnswer::ok(meta(&["0.0.0.0/0"])), "the whole internet"),
        (
            ListAnswer::ok(b"<html>maintenance</html>".to_vec()),
            "not JSON",
        ),
        (
            ListAnswer {
                delay: Duration::from_secs(5),
                ..ListAnswer::ok(meta(ALLOW_LOOPBACK))
            },
            "a slow server",
        ),
    ] {
        let hits = server.hits();
        server.serve("/meta", answer);
        eventually(&format!("refreshes against {what}"), WAIT, || async {
            (server.hits() >= hits + 3).then_some(())
        })
        .await;
        let answer = receiver.deliver(br#"{"id":3}"#, "ranges-3", None).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "after {what}: {}",
            answer.json
        );
    }
    assert!(
        receiver
            .state
            .metrics()
            .render()
            .contains("hookwarden_config_stale 0"),
        "a failed fetch is not a broken configuration"
    );

    // 127.0.0.0/8 added back: stored again.
    server.serve("/meta", ListAnswer::ok(meta(ALLOW_LOOPBACK)));
    eventually("the added range to be accepted", WAIT, || async {
        let answer = receiver.deliver(br#"{"id":4}"#, "ranges-4", None).await;
        (answer.status == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(
        stored_messages(&nats, &receiver.target).await,
        stored + 1,
        "nothing refused was stored"
    );
}

#[tokio::test]
async fn a_list_that_cannot_be_had_stops_the_start() {
    let nats = NatsServer::start().await.expect("nats-server");
    let server = ListServer::start(&["api.github.com"]).await;
    server.serve("/meta", ListAnswer::status(503));
    let files = EndpointFiles::new(
        &crate::github_manifest("  allowedSources: [{provider: github}]\n"),
        &[("gh", "secret", SECRET.as_bytes())],
    );
    let mut settings = hookwarden_tests::receiver::settings(
        &nats,
        files.endpoint(),
        files.secrets_dir(),
        hookwarden_receiver::transport::Mode::InsecureHttp,
    );
    settings.range_fetcher = Some(Arc::new(server.fetcher(Duration::from_secs(1))));
    let Err(err) = app::start(settings.clone()).await else {
        panic!("started without its list");
    };
    let message = err.to_string();
    assert!(
        message.contains("github hooks (https://api.github.com/meta)")
            && message.contains("503")
            && message.contains("no saved copy"),
        "{message}"
    );

    // With a saved copy the same receiver starts, on the saved list.
    let dir = tempfile::tempdir().expect("dir");
    write_file(
        &dir.path().join("github-hooks.txt"),
        "test",
        &["10.0.0.0/8".parse().expect("net")],
    )
    .expect("write");
    settings.source_ranges_dir = Some(dir.path().to_owned());
    let receiver = app::start(settings)
        .await
        .expect("starts on the saved list");
    let state = receiver.state().expect("a receiver of one endpoint");
    assert!(state.allows([10, 1, 2, 3].into()));
    assert!(!state.allows([127, 0, 0, 1].into()));
}

/// The GitHub manifest with `allowedSources`, and the binary started on it
/// with `dir` as `--source-ranges-dir`.
fn spawn_binary(
    nats: &NatsServer,
    sources: &str,
    dir: Option<&std::path::Path>,
) -> ReceiverProcess {
    let manifest = crate::github_manifest(sources);
    let mut env = vec![("RUST_LOG", "info")];
    let dir_text = dir.map(|d| d.display().to_string());
    if let Some(dir) = &dir_text {
        env.push(("HOOKWARDEN_SOURCE_RANGES_DIR", dir.as_str()));
    }
    ReceiverProcess::spawn(
        nats.url(),
        &manifest,
        &[("gh", "secret", SECRET.as_bytes())],
        &env,
    )
}

async fn deliver(process: &ReceiverProcess, id: &str) -> (StatusCode, String) {
    let body = format!(r#"{{"id":"{id}"}}"#);
    let signature = sign(body.as_bytes());
    let reply = process
        .send(
            "POST",
            &[
                ("content-type", "application/json"),
                ("x-github-event", "push"),
                ("x-github-delivery", id),
                ("x-hub-signature-256", &signature),
            ],
            body.as_bytes(),
        )
        .await;
    (
        reply.status,
        String::from_utf8_lossy(&reply.body).into_owned(),
    )
}

#[tokio::test]
async fn the_binary_hot_reloads_its_saved_list() {
    let nats = NatsServer::start().await.expect("nats-server");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("github-hooks.txt");
    let set = |cidr: &str| {
        write_file(&file, "test", &[cidr.parse().expect("net")]).expect("write");
    };
    set("127.0.0.0/8");
    let process = spawn_binary(
        &nats,
        "  allowedSources: [{provider: github}]\n",
        Some(dir.path()),
    );
    process.ready().await;
    assert_eq!(
        deliver(&process, "bin-1").await.0,
        StatusCode::OK,
        "{}",
        process.log()
    );
    // The list's age on the receiver's own /metrics (the file was just
    // written, so it is young; the label is the list's key, as the
    // operator's metric names it).
    let metrics = process.metrics().await;
    let age = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("hookwarden_source_range_list_age_seconds{list=\"github-hooks\"} ")
        })
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no list age in:\n{metrics}"));
    assert!((0..3600).contains(&age), "{age}");

    // Replaced by another writer (`hookwarden ranges fetch` from cron):
    // applied without a restart.
    set("10.0.0.0/8");
    process.logged("configuration reloaded", 1).await;
    let (status, body) = deliver(&process, "bin-2").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("ip_not_allowed"), "{body}");

    // An implausible replacement is not taken.
    std::fs::write(&file, "0.0.0.0/0\n").expect("write");
    process.logged("is not usable; ignored", 1).await;
    assert_eq!(deliver(&process, "bin-3").await.0, StatusCode::FORBIDDEN);

    set("127.0.0.0/8");
    eventually("the added range to be accepted", WAIT, || async {
        (deliver(&process, "bin-4").await.0 == StatusCode::OK).then_some(())
    })
    .await;
    let (status, log) = process.stop().await;
    assert!(status.success(), "{log}");
}

#[tokio::test]
async fn the_binary_does_not_start_without_its_list() {
    let nats = NatsServer::start().await.expect("nats-server");
    // `.invalid` never resolves: the fetch fails at once, and there is no
    // saved copy.
    let process = spawn_binary(
        &nats,
        "  allowedSources: [{url: \"https://ranges.example.invalid/list.json\", jsonPath: $.ranges}]\n",
        None,
    );
    let (status, log) = process.exited().await;
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("$.ranges of (https://ranges.example.invalid/list.json) cannot be fetched")
            && log.contains("no --source-ranges-dir"),
        "{log}"
    );
}
