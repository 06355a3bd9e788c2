//! `hookwarden ranges fetch`: the fetch into a file against a loopback list
//! server (in process, with a range fetcher routed to it: the binary only
//! fetches from public addresses with the system's roots), and the binary's
//! refusals.

use std::process::Command;
use std::time::Duration;

use hookwarden_cli::ranges::{fetch, source_of};
use hookwarden_tests::{ListAnswer, ListServer};

fn hookwarden(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_hookwarden"))
        .args(args)
        .output()
        .expect("hookwarden runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_list_is_written_and_a_shrunken_one_refused() {
    let server = ListServer::start(&["stripe.com"]).await;
    server.serve(
        "/files/ips/ips_webhooks.json",
        ListAnswer::ok(
            include_bytes!("../../../core/src/ranges/testdata/stripe-ips-webhooks.json").to_vec(),
        ),
    );
    let fetcher = server.fetcher(Duration::from_secs(5));
    let source = source_of("stripe", None, None, None).expect("stripe");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("stripe-webhooks.txt");
    let (stdout, summary) = fetch(&fetcher, &source, Some(&file))
        .await
        .expect("fetched");
    assert!(stdout.is_empty());
    assert!(
        summary.contains("15 ranges") && summary.contains("stripe-webhooks.txt"),
        "{summary}"
    );
    let written = std::fs::read_to_string(&file).expect("file");
    assert!(written.lines().any(|l| l == "3.18.12.63/32"), "{written}");
    assert_eq!(written.lines().filter(|l| !l.starts_with('#')).count(), 15);

    // Stripe now publishes 3 of 15: refused against the file, which stays.
    server.serve(
        "/files/ips/ips_webhooks.json",
        ListAnswer::ok(
            br#"{"WEBHOOKS": ["3.18.12.63", "3.130.192.231", "13.235.14.237"]}"#.to_vec(),
        ),
    );
    let err = fetch(&fetcher, &source, Some(&file))
        .await
        .expect_err("shrank");
    assert!(err.contains("shrank from 15 to 3"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).expect("file"), written);
    // To standard output there is no previous list.
    let (stdout, _) = fetch(&fetcher, &source, None).await.expect("stdout");
    assert_eq!(stdout.lines().count(), 3);
}

#[test]
fn the_binary_names_what_it_cannot_fetch() {
    let (code, _, stderr) = hookwarden(&["ranges", "fetch", "gitlub"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown provider \"gitlub\"") && stderr.contains("aws-sns"),
        "{stderr}"
    );
    let (code, _, stderr) =
        hookwarden(&["ranges", "fetch", "https://ranges.example.invalid/r.json"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("jsonPath"), "{stderr}");
    let (code, stdout, stderr) = hookwarden(&[
        "ranges",
        "fetch",
        "https://ranges.example.invalid/r.json",
        "--json-path",
        "$.r",
    ]);
    assert_eq!(code, 2, "{stdout}");
    assert!(
        stderr.contains("$.r of (https://ranges.example.invalid/r.json)"),
        "{stderr}"
    );
    let (code, _, stderr) = hookwarden(&[
        "ranges",
        "fetch",
        "http://example.com/r.json",
        "--json-path",
        "$",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("https://"), "{stderr}");
}
