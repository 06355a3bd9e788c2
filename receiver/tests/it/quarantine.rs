//! `spec.quarantine` with the real binary and a real nats-server: every
//! refused request leaves one record (reason, status, client, method, path,
//! redacted headers, body size and digest; the body's first bytes only when
//! asked) in a stream of its own, never a secret; a flood is rate-limited,
//! not stored, and does not keep valid deliveries from being stored; without
//! the setting nothing is recorded.

use std::time::Duration;

use crate::binary::ReceiverProcess;
use async_nats::jetstream;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use hookwarden_tests::NatsServer;
use hyper::StatusCode;
use sha2::Sha256;

const TOKEN: &[u8] = b"tok-SECRET-q1w2";
const HMAC_KEY: &[u8] = b"hmac-SECRET-e3r4";
const FORGED: &str = "sha256=f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0";
const STREAM: &str = "HOOKWARDEN-QUARANTINE_EDGE_ACME";
const SUBJECT: &str = "hookwarden-quarantine.edge.acme";

/// A generic endpoint whose token and signature headers look harmless:
/// only the verifier knows they are secret.
fn manifest(quarantine: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: acme, namespace: edge}}\n\
         spec:\n  provider: generic\n  verification:\n    \
         token: {{header: X-Hw-Check, secretRefs: [{{name: acme, key: token}}]}}\n    \
         hmac: {{signatureHeader: X-Hw-Mac, signaturePrefix: \"sha256=\", secretRefs: [{{name: acme, key: hmac}}]}}\n\
         {quarantine}"
    )
}

fn spawn(nats: &NatsServer, quarantine: &str) -> ReceiverProcess {
    ReceiverProcess::spawn(
        nats.url(),
        &manifest(quarantine),
        &[("acme", "token", TOKEN), ("acme", "hmac", HMAC_KEY)],
        &[("RUST_LOG", "trace")],
    )
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_KEY).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn token() -> &'static str {
    std::str::from_utf8(TOKEN).expect("ascii")
}

/// The quarantine records stored so far, waiting (bounded) until there are
/// at least `at_least`.
async fn records(nats: &NatsServer, at_least: usize) -> Vec<serde_json::Value> {
    records_of(nats, STREAM, SUBJECT, at_least).await
}

/// As [`records`], of the quarantine in `stream` on `subject`.
async fn records_of(
    nats: &NatsServer,
    stream: &str,
    subject: &str,
    at_least: usize,
) -> Vec<serde_json::Value> {
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut found = Vec::new();
        if let Ok(mut stream) = js.get_stream(stream).await {
            let info = stream.info().await.expect("stream info");
            if info.state.messages > 0 {
                for sequence in info.state.first_sequence..=info.state.last_sequence {
                    if let Ok(message) = stream.get_raw_message(sequence).await {
                        assert_eq!(message.subject.as_str(), subject);
                        found
                            .push(serde_json::from_slice(&message.payload).expect("a JSON record"));
                    }
                }
            }
        }
        if found.len() >= at_least || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn no_secret_in(text: &str) {
    for secret in [TOKEN, HMAC_KEY] {
        let secret = std::str::from_utf8(secret).expect("ascii");
        assert!(!text.contains(secret), "a secret in: {text}");
    }
}

#[tokio::test]
async fn each_refusal_leaves_one_redacted_record_and_deliveries_are_untouched() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = spawn(&nats, "  quarantine: {}\n");
    receiver.ready().await;

    let body = br#"{"order":1}"#;
    let stored = receiver
        .send(
            "POST",
            &[
                ("content-type", "application/json"),
                ("x-hw-check", token()),
                ("x-hw-mac", &sign(body)),
            ],
            body,
        )
        .await;
    assert_eq!(stored.status, StatusCode::OK);
    // The right token, a forged signature: the token must not be recorded.
    let forged = receiver
        .send(
            "POST",
            &[
                ("content-type", "application/json"),
                ("x-hw-check", token()),
                ("x-hw-mac", FORGED),
                ("user-agent", "scanner/1.0"),
            ],
            body,
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let elsewhere = receiver
        .send_to("POST", "/wp-login.php?token=leak", &[], b"x")
        .await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);

    let records = records(&nats, 2).await;
    assert_eq!(records.len(), 2, "{records:#?}");
    let signature = records
        .iter()
        .find(|r| r["status"] == 401)
        .expect("the forged delivery's record");
    assert_eq!(signature["endpoint"], "edge/acme");
    assert_eq!(signature["method"], "POST");
    assert_eq!(signature["path"], "/");
    assert_eq!(signature["client_ip"], "127.0.0.1");
    assert_eq!(signature["body_size"], body.len());
    assert_eq!(
        signature["body_sha256"],
        hex::encode(<Sha256 as sha2::Digest>::digest(body))
    );
    assert!(signature.get("body_prefix").is_none(), "{signature}");
    assert_eq!(signature["headers"]["user-agent"], "scanner/1.0");
    assert_eq!(signature["headers"]["x-hw-check"], "[redacted]");
    assert_eq!(signature["headers"]["x-hw-mac"], "[redacted]");
    assert!(
        signature["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("signature")),
        "{signature}"
    );
    let request_id = forged.headers["x-request-id"].to_str().expect("ascii");
    assert_eq!(signature["request_id"], request_id);
    let not_found = records
        .iter()
        .find(|r| r["status"] == 404)
        .expect("the scanner's record");
    assert_eq!(not_found["reason"], "not_found");
    assert_eq!(not_found["path"], "/wp-login.php", "the query is not kept");
    no_secret_in(&serde_json::to_string(&records).expect("json"));

    // The delivery stream holds the valid delivery only.
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let mut deliveries = js
        .get_stream("HOOKWARDEN_EDGE_ACME")
        .await
        .expect("delivery stream");
    assert_eq!(
        deliveries.info().await.expect("info").state.messages,
        1,
        "refusals are never stored as deliveries"
    );
    let metrics = receiver.metrics().await;
    assert!(
        metrics.contains(
            "hookwarden_quarantine_records_total{endpoint=\"edge/acme\",result=\"recorded\"} 2"
        ),
        "{metrics}"
    );
    let (_, log) = receiver.stop().await;
    no_secret_in(&log);
}

#[tokio::test]
async fn a_body_prefix_is_kept_only_when_asked_and_never_with_a_secret() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = spawn(&nats, "  quarantine: {bodyPrefixBytes: 64}\n");
    receiver.ready().await;
    // A body quoting the token: the prefix must not carry it.
    let body = format!(
        "{{\"leak\":\"{}\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}",
        token()
    );
    let reply = receiver
        .send(
            "POST",
            &[
                ("content-type", "application/json"),
                ("x-hw-check", token()),
                ("x-hw-mac", FORGED),
            ],
            body.as_bytes(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let records = records(&nats, 1).await;
    assert_eq!(records.len(), 1);
    let prefix = records[0]["body_prefix"].as_str().expect("a body prefix");
    let prefix = base64::engine::general_purpose::STANDARD
        .decode(prefix)
        .expect("base64");
    let prefix = String::from_utf8_lossy(&prefix);
    assert!(prefix.starts_with("{\"leak\":\""), "{prefix}");
    no_secret_in(&prefix);
    assert!(
        prefix.len() <= 64 + 16,
        "bounded (a redaction marker may lengthen it): {prefix}"
    );
}

#[tokio::test]
async fn a_flood_of_refusals_is_rate_limited_and_deliveries_still_get_through() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = spawn(&nats, "  quarantine: {maxPerSecond: 1}\n");
    receiver.ready().await;
    const FLOOD: usize = 40;
    for i in 0..FLOOD {
        let reply = receiver
            .send(
                "POST",
                &[("content-type", "application/json"), ("x-hw-mac", FORGED)],
                format!("{{\"n\":{i}}}").as_bytes(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let body = br#"{"real":true}"#;
    let stored = receiver
        .send(
            "POST",
            &[
                ("content-type", "application/json"),
                ("x-hw-check", token()),
                ("x-hw-mac", &sign(body)),
            ],
            body,
        )
        .await;
    assert_eq!(stored.status, StatusCode::OK);
    // Every refusal ends recorded or counted as dropped (the records are
    // published after the answers: wait, bounded, until all are accounted).
    let count = |metrics: &str, result: &str| -> usize {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("hookwarden_quarantine_records_total")
                    && l.contains(&format!("result=\"{result}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (recorded, dropped) = loop {
        let metrics = receiver.metrics().await;
        let (recorded, dropped) = (count(&metrics, "recorded"), count(&metrics, "dropped_rate"));
        if recorded + dropped >= FLOOD || tokio::time::Instant::now() > deadline {
            break (recorded, dropped);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(recorded + dropped, FLOOD, "every refusal is accounted for");
    assert!(recorded >= 1, "the first refusal is recorded");
    assert!(dropped >= 1, "a flood far over 1/s is not recorded in full");
    assert_eq!(records(&nats, recorded).await.len(), recorded);
}

#[tokio::test]
async fn without_the_setting_nothing_is_recorded() {
    let nats = NatsServer::start().await.expect("nats-server");
    let receiver = spawn(&nats, "");
    receiver.ready().await;
    let reply = receiver
        .send(
            "POST",
            &[("content-type", "application/json"), ("x-hw-mac", FORGED)],
            b"{}",
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let js = jetstream::new(nats.connect().await.expect("connect"));
    assert!(js.get_stream(STREAM).await.is_err(), "no quarantine stream");
    assert!(
        !receiver
            .metrics()
            .await
            .contains("quarantine_records_total{")
    );
}

#[tokio::test]
async fn the_operators_stream_step_manages_the_quarantine_stream_too() {
    use hookwarden_receiver::publish::{Target, manage_stream, stream_in_sync};
    let nats = NatsServer::start().await.expect("nats-server");
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let endpoint = hookwarden_crds::from_yaml(&manifest(
        "  quarantine: {maxAgeSeconds: 3600, maxBytes: 2097152}\n",
    ))
    .expect("manifest");
    let target = Target::for_endpoint(&endpoint).expect("target");
    assert!(!stream_in_sync(&js, &target).await.expect("lookup"));
    manage_stream(&js, &target).await.expect("managed");
    assert!(stream_in_sync(&js, &target).await.expect("lookup"));
    let mut quarantine = js.get_stream(STREAM).await.expect("quarantine stream");
    let config = &quarantine.info().await.expect("info").config;
    assert_eq!(config.subjects, [SUBJECT]);
    assert_eq!(config.max_age, Duration::from_secs(3600));
    assert_eq!(config.max_bytes, 2_097_152);

    // Deleted behind the operator's back: out of sync, then created again.
    js.delete_stream(STREAM).await.expect("delete");
    assert!(!stream_in_sync(&js, &target).await.expect("lookup"));
    manage_stream(&js, &target).await.expect("managed");
    assert!(stream_in_sync(&js, &target).await.expect("lookup"));
    // A changed limit is applied to the existing stream.
    let endpoint = hookwarden_crds::from_yaml(&manifest("  quarantine: {maxAgeSeconds: 7200}\n"))
        .expect("manifest");
    let target = Target::for_endpoint(&endpoint).expect("target");
    assert!(!stream_in_sync(&js, &target).await.expect("lookup"));
    manage_stream(&js, &target).await.expect("managed");
    let mut quarantine = js.get_stream(STREAM).await.expect("quarantine stream");
    assert_eq!(
        quarantine.info().await.expect("info").config.max_age,
        Duration::from_secs(7200)
    );
}

/// `hookwarden_quarantine_records_total` of `endpoint` with `result`.
fn quarantine_count(metrics: &str, endpoint: &str, result: &str) -> usize {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("hookwarden_quarantine_records_total")
                && l.contains(&format!("endpoint=\"{endpoint}\""))
                && l.contains(&format!("result=\"{result}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// In a pool, one endpoint's flood of refusals cannot crowd out another's
/// records, and cannot take more than its share of the pool's ceiling
/// (`--max-quarantine-records-per-second`) even when its own spec allows
/// far more: the NATS stream it fills stays bounded.
#[tokio::test]
async fn in_a_pool_a_flood_on_one_endpoint_leaves_the_others_records_and_a_bounded_stream() {
    use crate::binary::PlainMode;
    use hookwarden_receiver::pool::layout::{endpoint_file, secret_file};

    const CEILING: usize = 40;
    /// One endpoint's share of the ceiling (a quarter, as every pool bound).
    const SHARE: usize = CEILING / 4;
    const FLOOD: usize = 100;
    const QUIET_REFUSALS: usize = 3;
    let member = |name: &str, per_second: u32| {
        format!(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
             metadata: {{name: {name}, namespace: edge}}\n\
             spec:\n  provider: generic\n  ingress: {{host: q.example.com, path: /{name}}}\n  \
             verification:\n    \
             token: {{header: X-Hw-Check, secretRefs: [{{name: acme, key: token}}]}}\n    \
             hmac: {{signatureHeader: X-Hw-Mac, signaturePrefix: \"sha256=\", secretRefs: [{{name: acme, key: hmac}}]}}\n  \
             quarantine: {{maxPerSecond: {per_second}}}\n"
        )
    };
    let (flooded, quiet) = (member("flooded", 1000), member("quiet", 5));
    let nats = NatsServer::start().await.expect("nats-server");
    let volume = hookwarden_tests::SecretVolume::new(&[
        (&endpoint_file("flooded"), flooded.as_bytes()),
        (&endpoint_file("quiet"), quiet.as_bytes()),
        (&secret_file("acme", "token"), TOKEN),
        (&secret_file("acme", "hmac"), HMAC_KEY),
    ]);
    let ceiling = CEILING.to_string();
    let pool = ReceiverProcess::spawn_pool(
        PlainMode::InsecureHttp,
        nats.url(),
        volume.path(),
        &[(
            "HOOKWARDEN_MAX_QUARANTINE_RECORDS_PER_SECOND",
            ceiling.as_str(),
        )],
    );
    pool.ready().await;
    let refuse = |path: &'static str, n: usize| {
        let pool = &pool;
        async move {
            let body = format!("{{\"n\":{n}}}");
            let reply = pool
                .send_to(
                    "POST",
                    path,
                    &[
                        ("host", "q.example.com"),
                        ("content-type", "application/json"),
                        ("x-hw-mac", FORGED),
                    ],
                    body.as_bytes(),
                )
                .await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        }
    };
    let flood_started = std::time::Instant::now();
    for n in 0..FLOOD {
        refuse("/flooded", n).await;
    }
    let flood_took = flood_started.elapsed();
    for n in 0..QUIET_REFUSALS {
        refuse("/quiet", n).await;
    }

    // Every refusal ends recorded or counted as dropped (bounded wait).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (recorded, dropped, quiet_recorded) = loop {
        let metrics = pool.metrics().await;
        let recorded = quarantine_count(&metrics, "edge/flooded", "recorded");
        let dropped = quarantine_count(&metrics, "edge/flooded", "dropped_rate");
        let quiet_recorded = quarantine_count(&metrics, "edge/quiet", "recorded");
        if (recorded + dropped >= FLOOD && quiet_recorded >= QUIET_REFUSALS)
            || tokio::time::Instant::now() > deadline
        {
            break (recorded, dropped, quiet_recorded);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(recorded + dropped, FLOOD, "every refusal is accounted for");
    // A token bucket of SHARE per second holding SHARE at the start: no
    // more than that over the flood's duration, however long it took.
    let bound = SHARE * (1 + usize::try_from(flood_took.as_secs()).unwrap_or(usize::MAX - 1) + 1);
    assert!(
        recorded <= bound.min(FLOOD - 1),
        "the flooded endpoint recorded {recorded} of {FLOOD} in {flood_took:?}: more than \
         its share ({SHARE}/s) of the pool's ceiling, although its spec allows 1000/s"
    );
    assert_eq!(
        quiet_recorded, QUIET_REFUSALS,
        "the quiet endpoint's refusals are all recorded despite the flood next door"
    );
    let quiet_records = records_of(
        &nats,
        "HOOKWARDEN-QUARANTINE_EDGE_QUIET",
        "hookwarden-quarantine.edge.quiet",
        QUIET_REFUSALS,
    )
    .await;
    assert_eq!(quiet_records.len(), QUIET_REFUSALS);
    for record in &quiet_records {
        assert_eq!(record["endpoint"], "edge/quiet", "{record}");
        no_secret_in(&record.to_string());
    }
    let flooded_records = records_of(
        &nats,
        "HOOKWARDEN-QUARANTINE_EDGE_FLOODED",
        "hookwarden-quarantine.edge.flooded",
        recorded,
    )
    .await;
    assert_eq!(
        flooded_records.len(),
        recorded,
        "the stream holds what was recorded, no more"
    );
    let (status, log) = pool.stop().await;
    assert!(status.success(), "{log}");
}
