//! Micro-benchmarks of every verifier on a correctly signed delivery of
//! 1 KiB and 64 KiB: the cost of the accepting path, which does the most
//! work (every signature checked, the body hashed once per secret). Every
//! preset of the registry is measured, signed by its own signer.
//!
//! `bench/micro.sh` runs them next to `openssl speed -evp sha256` and
//! reports the HMAC-SHA256 verifiers against that ceiling.

use std::hint::black_box;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hookwarden_crds::{BinaryEncoding, HmacAlgorithm, HmacCheck, SignatureEncoding};
use hookwarden_receiver::secrets::Secret;
use hookwarden_receiver::verify::registry::{self, Covers, KeyKind};
use hookwarden_receiver::verify::sending::SignInput;
use hookwarden_receiver::verify::{
    self, Clock, GenericChecks, GenericVerifier, Incoming, PresetOptions, Verdict, Verifier,
};
use serde_json::json;

const NOW: i64 = 1_700_000_000;
const CLOCK: Clock = || NOW;
const SECRET: &[u8] = b"bench-secret-0123456789abcdef";
const ID: &str = "msg_bench_1";
const PUBLIC_URL: &str = "https://hooks.example.com/in";
const SIZES: [(usize, &str); 2] = [(1024, "1KiB"), (64 * 1024, "64KiB")];

/// One signed delivery and the verifier that accepts it.
struct Case {
    name: String,
    verifier: Box<dyn Verifier>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Case {
    fn check(&self) -> bool {
        matches!(
            self.verifier.check(&Incoming {
                method: black_box(&self.method),
                uri: black_box(&self.uri),
                headers: black_box(&self.headers),
                body: black_box(&self.body),
            }),
            Ok(Verdict::Deliver(_))
        )
    }
}

fn headers<N: AsRef<str>>(pairs: &[(N, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_ref().as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}

/// A JSON body of exactly `size` bytes (Linear's signed timestamp included).
fn json_body(size: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"type":"bench.event","id":"evt_1","webhookTimestamp":{},"data":""#,
        NOW * 1000
    );
    let mut body = head.into_bytes();
    body.resize(size - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

/// `value` padded with a `pad` field until its JSON is `size` bytes.
fn padded(mut value: serde_json::Value, pointer: &str, size: usize) -> Vec<u8> {
    let len = value.to_string().len();
    if let Some(slot) = value.pointer_mut(pointer) {
        *slot = json!("x".repeat(size.saturating_sub(len + 2)));
    }
    value.to_string().into_bytes()
}

fn generic(algorithm: HmacAlgorithm, body: &[u8]) -> (Box<dyn Verifier>, HeaderMap) {
    let check = HmacCheck {
        algorithm,
        key_encoding: BinaryEncoding::Raw,
        signature_header: "X-Signature".to_owned(),
        signature_prefix: None,
        signature_encoding: SignatureEncoding::Hex,
        timestamp_header: None,
        id_header: None,
        signed_content: None,
        key_value: None,
        secret_refs: Vec::new(),
    };
    let checks = GenericChecks {
        hmac: Some((check, vec![Secret::from(SECRET)])),
        timestamp_tolerance_secs: verify::DEFAULT_TIMESTAMP_TOLERANCE_SECS,
        ..GenericChecks::default()
    };
    let verifier = GenericVerifier::with_clock(checks, CLOCK).expect("verifier");
    let signature = match algorithm {
        HmacAlgorithm::Sha256 => mac::<hmac::Hmac<sha2::Sha256>>(body),
        HmacAlgorithm::Sha512 => mac::<hmac::Hmac<sha2::Sha512>>(body),
        HmacAlgorithm::Sha1 => mac::<hmac::Hmac<sha1::Sha1>>(body),
    };
    (
        Box::new(verifier),
        headers(&[("x-signature", hex::encode(signature))]),
    )
}

fn mac<M: hmac::Mac + hmac::digest::KeyInit>(body: &[u8]) -> Vec<u8> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(SECRET).expect("any key length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// A body of about `size` bytes the preset can sign: the JSON body, or
/// for presets that sign fields inside it, its own shape padded.
fn body_for(covers: Covers, name: &str, size: usize) -> Option<Vec<u8>> {
    match (covers, name) {
        (Covers::BodyFields, "mailgun") => Some(padded(
            json!({"event-data": {"event": "delivered", "id": "evt_1", "pad": ""}}),
            "/event-data/pad",
            size - 200,
        )),
        (Covers::BodyFields, _) => Some(padded(
            json!({"live": "false", "notificationItems": [{"NotificationRequestItem": {
                "pspReference": "7914073381342284", "originalReference": "",
                "merchantAccountCode": "Bench", "merchantReference": "ref-1",
                "amount": {"value": 1130, "currency": "EUR"}, "eventCode": "AUTHORISATION",
                "success": "true", "pad": ""}}]}),
            "/notificationItems/0/NotificationRequestItem/pad",
            size - 100,
        )),
        _ => Some(json_body(size)),
    }
}

/// Every verifier with a delivery of `size` bytes it accepts.
fn cases(size: usize) -> Vec<Case> {
    let seed = String::from_utf8_lossy(SECRET);
    let mut cases = Vec::new();
    // Fetched-key presets verify with a key server's certificate: their
    // cost is RSA verification, measured by their unit tests' vectors.
    for preset in
        registry::presets().filter(|p| !matches!(p.key, KeyKind::Configured | KeyKind::Fetched))
    {
        let name = preset.name();
        let key = preset.key.test_key(&seed);
        let verifier = preset
            .verifier(
                vec![Secret::from(key.verifying)],
                None,
                PresetOptions::for_tests(PUBLIC_URL),
                CLOCK,
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let input = SignInput {
            event: "bench.event",
            id: ID,
            body: body_for(preset.covers, &name, size),
            now: NOW,
            url: PUBLIC_URL,
            spec: None,
            token_key: None,
        };
        let delivery = preset
            .sign(&key.signing, &input)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let target = delivery.target("/in");
        cases.push(Case {
            name,
            verifier,
            method: delivery.method.parse().expect("method"),
            uri: target.parse().expect("uri"),
            headers: headers(&delivery.headers),
            body: delivery.body,
        });
    }
    let body = json_body(size);
    for (name, algorithm) in [
        ("generic-hmac-sha256", HmacAlgorithm::Sha256),
        ("generic-hmac-sha512", HmacAlgorithm::Sha512),
        ("generic-hmac-sha1", HmacAlgorithm::Sha1),
    ] {
        let (verifier, headers) = generic(algorithm, &body);
        cases.push(Case {
            name: name.to_owned(),
            verifier,
            method: Method::POST,
            uri: Uri::from_static("/in"),
            headers,
            body: body.clone(),
        });
    }
    cases
}

fn verifiers(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    for (size, label) in SIZES {
        for case in cases(size) {
            assert!(
                case.check(),
                "{} {label}: the signed delivery is refused",
                case.name
            );
            group.throughput(Throughput::Bytes(case.body.len() as u64));
            group.bench_with_input(BenchmarkId::new(&case.name, label), &case, |b, case| {
                b.iter(|| black_box(case.check()));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, verifiers);
criterion_main!(benches);
