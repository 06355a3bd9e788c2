//! Traces, end to end: the receiver binary exporting to a real Jaeger v2
//! (the pinned build, OTLP over HTTP, spans in memory), read back through
//! Jaeger's query API. A delivery is one trace: the request span with its
//! steps as children, the JetStream sequence the message was stored at,
//! and the stored message's `traceparent` naming the publish span, so a
//! consumer continues that trace. The sender's `traceparent` is a link and
//! never the parent unless the endpoint's spec (or the receiver's flag)
//! says to trust it. No secret,
//! signature, header value or body reaches an exported span. Off, nothing
//! is exported and nothing is logged about traces.

use crate::binary::{PlainMode, ReceiverProcess};
use async_nats::jetstream;
use hmac::{Hmac, Mac};
use hookwarden_receiver::pool::layout::{endpoint_file, secret_file};
use hookwarden_tests::{Jaeger, NatsServer, SecretVolume, TraceSpan};
use hyper::StatusCode;
use sha2::Sha256;

const HMAC_KEY: &str = "trace-hmac-key-Qz81";
const TOKEN: &str = "trace-token-Lw93x";
/// A header value no verifier reads, and a body: neither may be exported.
const INNOCENT_HEADER: &str = "innocent-header-value-Xy12";
const BODY: &str = r#"{"order":"body-text-Rt55"}"#;
/// The sender's trace context: valid, and untrusted.
const SENDER_TRACE: &str = "5e0d6fb5c6b3e1f8a0b1c2d3e4f5a6b7";
const SENDER_SPAN: &str = "a1b2c3d4e5f60718";
const STREAM: &str = "HOOKWARDEN_TRACES_ORDERS";
/// The host the pool's endpoints are routed by (a dedicated receiver
/// takes any).
const POOL_HOST: &str = "traces.example.com";

const MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
    metadata: {name: orders, namespace: traces}\n\
    spec:\n  provider: generic\n  secretRefs: [{name: hmac, key: key}]\n  \
    verification:\n    \
    token: {header: X-Token, secretRefs: [{name: token, key: value}]}\n    \
    hmac: {signatureHeader: X-Signature, idHeader: X-Id}\n";

/// A pool member like [`MANIFEST`], `orders-<name>` at `/<name>`, with
/// `extra` appended to its spec.
fn pool_member(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: orders-{name}, namespace: traces}}\n\
         spec:\n  provider: generic\n  secretRefs: [{{name: hmac, key: key}}]\n  \
         ingress: {{host: {POOL_HOST}, path: /{name}}}\n  \
         verification:\n    \
         token: {{header: X-Token, secretRefs: [{{name: token, key: value}}]}}\n    \
         hmac: {{signatureHeader: X-Signature, idHeader: X-Id}}\n{extra}"
    )
}

/// The request span's steps, in order.
const STEPS: [&str; 5] = [
    "hookwarden.client_ip",
    "hookwarden.limits",
    "hookwarden.body",
    "hookwarden.verify",
    "hookwarden.publish",
];

fn signature(id: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_KEY.as_bytes()).expect("any key length");
    mac.update(format!("{id}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn sender_traceparent() -> String {
    format!("00-{SENDER_TRACE}-{SENDER_SPAN}-01")
}

fn spawn(nats: &NatsServer, env: &[(&str, &str)]) -> ReceiverProcess {
    ReceiverProcess::spawn(
        nats.url(),
        MANIFEST,
        &[
            ("hmac", "key", HMAC_KEY.as_bytes()),
            ("token", "value", TOKEN.as_bytes()),
        ],
        env,
    )
}

/// Sends a signed delivery carrying the sender's `traceparent`; its stream
/// sequence.
async fn deliver(receiver: &ReceiverProcess, id: &str) -> u64 {
    deliver_to(receiver, POOL_HOST, "/", id).await
}

/// As [`deliver`], to `path` on `host`.
async fn deliver_to(receiver: &ReceiverProcess, host: &str, path: &str, id: &str) -> u64 {
    let signature = signature(id, BODY.as_bytes());
    let traceparent = sender_traceparent();
    let reply = receiver
        .send_to(
            "POST",
            path,
            &[
                ("host", host),
                ("content-type", "application/json"),
                ("x-token", TOKEN),
                ("x-id", id),
                ("x-signature", signature.as_str()),
                ("x-innocent", INNOCENT_HEADER),
                ("traceparent", traceparent.as_str()),
                ("tracestate", "sender=claims"),
            ],
            BODY.as_bytes(),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let answer: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
    answer["sequence"].as_u64().expect("sequence")
}

/// The trace headers of a stored message.
struct StoredTrace {
    traceparent: String,
    tracestate: Option<String>,
    sender: Option<String>,
}

async fn stored_trace(nats: &NatsServer, sequence: u64) -> StoredTrace {
    stored_trace_in(nats, STREAM, sequence).await
}

async fn stored_trace_in(nats: &NatsServer, stream: &str, sequence: u64) -> StoredTrace {
    let js = jetstream::new(nats.connect().await.expect("connect"));
    let stream = js.get_stream(stream).await.expect("stream");
    let message = stream.get_raw_message(sequence).await.expect("stored");
    let header = |n: &str| message.headers.get(n).map(|v| v.as_str().to_owned());
    StoredTrace {
        traceparent: header("traceparent").expect("a traceparent is stored"),
        tracestate: header("tracestate"),
        sender: header("Hookwarden-Sender-Traceparent"),
    }
}

/// `(trace id, parent id)` of a `traceparent`.
fn ids(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    (parts[1].to_owned(), parts[2].to_owned())
}

/// Waits (bounded) until Jaeger holds the request span and every step of
/// trace `trace_id`.
async fn complete_trace(jaeger: &Jaeger, trace_id: &str) -> Vec<TraceSpan> {
    let what = format!("trace {trace_id} with its request span and steps in Jaeger");
    hookwarden_tests::eventually(&what, crate::binary::WAIT, || async {
        let spans = jaeger.trace(trace_id).await.expect("query API");
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        (names.contains(&"hookwarden.request") && STEPS.iter().all(|s| names.contains(s)))
            .then_some(spans)
    })
    .await
}

fn span<'a>(spans: &'a [TraceSpan], name: &str) -> &'a TraceSpan {
    let mut named = spans.iter().filter(|s| s.name == name);
    let found = named
        .next()
        .unwrap_or_else(|| panic!("no {name} in {spans:#?}"));
    assert!(named.next().is_none(), "one {name} only: {spans:#?}");
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_is_one_trace_with_its_steps_and_the_stored_message_continues_it() {
    let nats = NatsServer::start().await.expect("nats-server");
    let jaeger = Jaeger::start().await.expect("jaeger");
    let receiver = spawn(
        &nats,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    receiver.ready().await;

    let sequence = deliver(&receiver, "d-1").await;
    let stored = stored_trace(&nats, sequence).await;
    assert_eq!(
        stored.sender.as_deref(),
        Some(sender_traceparent().as_str()),
        "the sender's context is kept apart, as a claim"
    );
    assert_eq!(
        stored.tracestate, None,
        "the sender's tracestate is not ours"
    );
    let (trace_id, stored_parent) = ids(&stored.traceparent);
    assert_ne!(
        trace_id, SENDER_TRACE,
        "the sender's trace is not continued"
    );

    let spans = complete_trace(&jaeger, &trace_id).await;
    let request = span(&spans, "hookwarden.request");
    assert_eq!(request.service, "hookwarden-receiver");
    assert_eq!(
        request.parent_span_id, "",
        "the request span is a root: the sender's context is not its parent"
    );
    assert_eq!(
        request.links,
        [(SENDER_TRACE.to_owned(), SENDER_SPAN.to_owned())],
        "the sender's context is a link"
    );
    let sequence_text = sequence.to_string();
    let body_size = BODY.len().to_string();
    for (key, want) in [
        ("hookwarden.endpoint", "traces/orders"),
        ("hookwarden.provider", "generic"),
        ("hookwarden.outcome", "stored"),
        ("http.response.status_code", "200"),
        ("http.request.method", "POST"),
        ("client.address", "127.0.0.1"),
        ("messaging.destination.name", STREAM),
        ("hookwarden.stream_sequence", sequence_text.as_str()),
        ("hookwarden.duplicate", "false"),
        ("hookwarden.body_size", body_size.as_str()),
    ] {
        assert_eq!(
            request.attribute(key).as_deref(),
            Some(want),
            "{key} of {request:#?}"
        );
    }
    assert_eq!(request.attribute("hookwarden.reason"), None);
    for step in STEPS {
        let step = span(&spans, step);
        assert_eq!(step.parent_span_id, request.span_id, "{step:#?}");
        assert!(step.links.is_empty(), "{step:#?}");
    }
    let publish = span(&spans, "hookwarden.publish");
    assert_eq!(
        publish.span_id, stored_parent,
        "the stored traceparent names the publish span"
    );
    assert_eq!(
        publish.attribute("hookwarden.stream_sequence").as_deref(),
        Some(sequence_text.as_str()),
        "the sequence stored in NATS"
    );
    assert_eq!(
        publish.attribute("messaging.destination.name").as_deref(),
        Some(STREAM)
    );

    // Nothing the sender wrote beyond what the spans are about: no secret,
    // signature, header value or body.
    let exported = format!("{spans:?}");
    for secret in [
        HMAC_KEY,
        TOKEN,
        INNOCENT_HEADER,
        "body-text-Rt55",
        "sender=claims",
        &signature("d-1", BODY.as_bytes()),
    ] {
        assert!(
            !exported.contains(secret),
            "{secret:?} was exported: {exported}"
        );
    }
    let (status, log) = receiver.stop().await;
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_sender_traceparent_is_continued() {
    let nats = NatsServer::start().await.expect("nats-server");
    let jaeger = Jaeger::start().await.expect("jaeger");
    let receiver = spawn(
        &nats,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "orders-receiver"),
            ("HOOKWARDEN_TRUST_INCOMING_TRACEPARENT", "true"),
        ],
    );
    receiver.ready().await;

    let sequence = deliver(&receiver, "d-1").await;
    let stored = stored_trace(&nats, sequence).await;
    let (trace_id, _) = ids(&stored.traceparent);
    assert_eq!(
        trace_id, SENDER_TRACE,
        "trusted: the sender's trace goes on"
    );
    assert_eq!(
        stored.tracestate.as_deref(),
        Some("sender=claims"),
        "and its tracestate with it"
    );
    let spans = complete_trace(&jaeger, &trace_id).await;
    let request = span(&spans, "hookwarden.request");
    assert_eq!(request.service, "orders-receiver", "OTEL_SERVICE_NAME wins");
    assert_eq!(request.parent_span_id, SENDER_SPAN);
    assert!(request.links.is_empty(), "{request:#?}");
    let (status, log) = receiver.stop().await;
    assert!(status.success(), "{log}");
}

/// Trust is the endpoint's own (`spec.traces.trustIncomingTraceparent`):
/// in one pool process, the member that trusts its senders continues their
/// trace while the one beside it, sent the same `traceparent`, only links
/// to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_in_a_sender_traceparent_is_per_endpoint_in_its_spec() {
    let nats = NatsServer::start().await.expect("nats-server");
    let jaeger = Jaeger::start().await.expect("jaeger");
    let trusted = pool_member("trusted", "  traces: {trustIncomingTraceparent: true}\n");
    let untrusted = pool_member("untrusted", "  traces: {trustIncomingTraceparent: false}\n");
    let volume = SecretVolume::new(&[
        (&endpoint_file("orders-trusted"), trusted.as_bytes()),
        (&endpoint_file("orders-untrusted"), untrusted.as_bytes()),
        (&secret_file("hmac", "key"), HMAC_KEY.as_bytes()),
        (&secret_file("token", "value"), TOKEN.as_bytes()),
    ]);
    let receiver = ReceiverProcess::spawn_pool(
        PlainMode::InsecureHttp,
        nats.url(),
        volume.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    receiver.ready().await;

    let untrusted_sequence = deliver_to(&receiver, POOL_HOST, "/untrusted", "u-1").await;
    let trusted_sequence = deliver_to(&receiver, POOL_HOST, "/trusted", "t-1").await;

    let stored = stored_trace_in(&nats, "HOOKWARDEN_TRACES_ORDERS-TRUSTED", trusted_sequence).await;
    assert_eq!(
        ids(&stored.traceparent).0,
        SENDER_TRACE,
        "trusted by its spec: the sender's trace goes on"
    );
    let spans = complete_trace(&jaeger, SENDER_TRACE).await;
    let request = span(&spans, "hookwarden.request");
    assert_eq!(
        request.attribute("hookwarden.endpoint").as_deref(),
        Some("traces/orders-trusted"),
        "only the trusting endpoint joined the sender's trace"
    );
    assert_eq!(request.parent_span_id, SENDER_SPAN);
    assert!(request.links.is_empty(), "{request:#?}");

    let stored = stored_trace_in(
        &nats,
        "HOOKWARDEN_TRACES_ORDERS-UNTRUSTED",
        untrusted_sequence,
    )
    .await;
    let (trace_id, _) = ids(&stored.traceparent);
    assert_ne!(
        trace_id, SENDER_TRACE,
        "its neighbour's trust is not its own"
    );
    assert_eq!(stored.tracestate, None);
    let spans = complete_trace(&jaeger, &trace_id).await;
    let request = span(&spans, "hookwarden.request");
    assert_eq!(
        request.attribute("hookwarden.endpoint").as_deref(),
        Some("traces/orders-untrusted")
    );
    assert_eq!(request.parent_span_id, "", "a root");
    assert_eq!(
        request.links,
        [(SENDER_TRACE.to_owned(), SENDER_SPAN.to_owned())],
        "the sender's context is a link"
    );
    let (status, log) = receiver.stop().await;
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_nothing_is_exported_and_nothing_is_said_about_traces() {
    let nats = NatsServer::start().await.expect("nats-server");
    let jaeger = Jaeger::start().await.expect("jaeger");
    // Off by default (no endpoint), and off when the SDK is disabled even
    // with an endpoint set.
    let default = spawn(&nats, &[]);
    let disabled = spawn(
        &nats,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    );
    for (n, receiver) in [&default, &disabled].into_iter().enumerate() {
        receiver.ready().await;
        let sequence = deliver(receiver, &format!("off-{n}")).await;
        let stored = stored_trace(&nats, sequence).await;
        let (trace_id, _) = ids(&stored.traceparent);
        assert_ne!(
            trace_id, SENDER_TRACE,
            "untrusted, even with traces off: a new trace"
        );
        assert_eq!(stored.tracestate, None);
        assert_eq!(
            stored.sender.as_deref(),
            Some(sender_traceparent().as_str())
        );
    }
    for receiver in [default, disabled] {
        let (status, log) = receiver.stop().await;
        assert!(status.success(), "{log}");
        for word in ["opentelemetry", "OTLP", "traces are off", "export"] {
            assert!(!log.contains(word), "{word:?} logged:\n{log}");
        }
    }
    assert_eq!(
        jaeger.services().await.expect("query API"),
        Vec::<String>::new(),
        "nothing was exported"
    );
}

/// The trace backend is away (nothing listens at the OTLP endpoint): every
/// delivery is still stored and answered 200; the failure is logged when it
/// starts and not once per batch, the lost spans are counted in
/// `/metrics`, and the OTLP headers (an API key, say) appear nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_backend_that_is_away_is_said_once_and_counted_and_deliveries_go_on() {
    const OTLP_KEY: &str = "otlp-api-key-Vb72kq";
    let nats = NatsServer::start().await.expect("nats-server");
    // A loopback port nothing listens on (nor can): every export is
    // refused.
    let backend = hookwarden_tests::RefusingPort::bind().expect("a refusing port");
    let away = format!("http://127.0.0.1:{}", backend.port());
    let headers = format!("x-api-key={OTLP_KEY}");
    let receiver = spawn(
        &nats,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", away.as_str()),
            ("OTEL_EXPORTER_OTLP_HEADERS", headers.as_str()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    receiver.ready().await;
    let started = std::time::Instant::now();
    const DELIVERIES: usize = 8;
    for n in 0..DELIVERIES {
        let sequence = deliver(&receiver, &format!("away-{n}")).await;
        stored_trace(&nats, sequence).await;
        // Spread over several export batches.
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    }
    const WARNING: &str = "traces could not be exported";
    receiver.logged(WARNING, 1).await;
    // Each delivery is a request span and its five steps.
    let lost = hookwarden_tests::eventually(
        "the lost spans of every delivery to be counted",
        std::time::Duration::from_secs(30),
        || async {
            let metrics = receiver.metrics().await;
            let lost = metrics
                .lines()
                .find_map(|l| l.strip_prefix("hookwarden_trace_export_failed_spans_total "))
                .and_then(|v| v.trim().parse::<f64>().ok())?;
            (lost >= (DELIVERIES * (1 + STEPS.len())) as f64).then_some(lost)
        },
    )
    .await;
    let within_a_minute = started.elapsed() < std::time::Duration::from_secs(55);
    let (status, log) = receiver.stop().await;
    assert!(status.success(), "{log}");
    let warnings = log.matches(WARNING).count();
    if within_a_minute {
        assert_eq!(
            warnings, 1,
            "one line, not one per batch ({lost} spans lost):\n{log}"
        );
    } else {
        assert!(warnings < DELIVERIES, "{warnings} lines:\n{log}");
    }
    assert!(!log.contains(OTLP_KEY), "the OTLP header leaked:\n{log}");
}
