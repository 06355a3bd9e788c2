//! Property tests of every verifier whose signature covers the body (each
//! such preset of the registry, asymmetric and URL-signing ones included,
//! and the generic HMAC check in several shapes): what a sender signs always
//! verifies; one changed body byte, one changed signature character or
//! another key never does; a timestamp outside the window is refused as
//! `timestamp_out_of_tolerance`; and no header value, however odd, panics a
//! verifier or the client-IP parsers.
//!
//! Mailgun and Adyen are left out of the body properties on purpose: they
//! sign fields inside the body (Mailgun only its timestamp and token), so
//! changing other body bytes keeps the signature valid by the providers'
//! design (`Covers::BodyFields`). Their parsers are still in the no-panic
//! property.
//!
//! Keys come from `KeyKind::test_key` of alphanumeric seeds of at most 48
//! bytes: HMAC pads a key with zero bytes to the block size and hashes a
//! longer one, so `k` and `k\0`, or a long key and its hash, are the same
//! key by construction, not a bug.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use hookwarden_crds::{BinaryEncoding, HmacAlgorithm, HmacCheck, SignatureEncoding};
use hookwarden_receiver::clientip::{self, ForwardedHeaders, Networks, TrustedProxies};
use hookwarden_receiver::secrets::Secret;
use hookwarden_receiver::verify::registry::{self, Covers, KeyKind, Replay, TestKey};
use hookwarden_receiver::verify::sending::{Delivery, SignInput};
use hookwarden_receiver::verify::{
    self, Clock, GenericChecks, GenericVerifier, Incoming, PresetOptions, Rejection, Verdict,
    Verifier,
};
use proptest::prelude::*;

/// The verifiers' clock in these tests.
const NOW: i64 = 1_700_000_000;
const CLOCK: Clock = || NOW;
const ID: &str = "msg_2bX9";

/// Cases per property and preset: enough to find a broken parser or an
/// ignored byte, small enough that the whole file runs in seconds.
const CASES: u32 = 48;

type Headers = Vec<(String, String)>;

/// Signs (signing key, timestamp, body) as a sender does.
type Sign = Box<dyn Fn(&[u8], i64, &[u8]) -> Delivery>;

/// One verifier and how its sender signs.
struct Preset {
    name: String,
    /// The key pair for a seed (a shared secret signs and verifies alike).
    key: Box<dyn Fn(&str) -> TestKey>,
    build: Box<dyn Fn(Vec<Secret>) -> Box<dyn Verifier>>,
    /// What a sender sends for (signing key, timestamp, body).
    sign: Sign,
    /// The replay window, for presets that sign a timestamp.
    tolerance: Option<u32>,
}

/// The URL the URL-signing presets (Twilio, Square) are configured with.
const PUBLIC_URL: &str = "https://hooks.example.com/in";

/// A delivery of `headers` and `body`, as a generic sender would POST it.
fn post(headers: Headers, body: &[u8]) -> Delivery {
    Delivery {
        method: "POST",
        headers,
        body: body.to_vec(),
        extra_query: None,
        expect: None,
    }
}

fn built<V: Verifier + 'static, E: std::fmt::Debug>(result: Result<V, E>) -> Box<dyn Verifier> {
    Box::new(result.expect("verifier"))
}

/// A generic HMAC check: `algorithm`, `encoding`, an optional prefix, and
/// (when `stamped`) a signed id and timestamp.
fn generic_check(
    algorithm: HmacAlgorithm,
    encoding: SignatureEncoding,
    prefix: Option<&str>,
    stamped: bool,
) -> HmacCheck {
    HmacCheck {
        algorithm,
        key_encoding: BinaryEncoding::Raw,
        signature_header: "X-Signature".to_owned(),
        signature_prefix: prefix.map(str::to_owned),
        signature_encoding: encoding,
        timestamp_header: stamped.then(|| "X-Timestamp".to_owned()),
        id_header: stamped.then(|| "X-Id".to_owned()),
        signed_content: None,
        key_value: None,
        secret_refs: Vec::new(),
    }
}

fn generic_verifier(check: HmacCheck, secrets: Vec<Secret>) -> Box<dyn Verifier> {
    let checks = GenericChecks {
        hmac: Some((check, secrets)),
        timestamp_tolerance_secs: verify::DEFAULT_TIMESTAMP_TOLERANCE_SECS,
        ..GenericChecks::default()
    };
    built(GenericVerifier::with_clock(checks, CLOCK))
}

/// Signs as a sender configured like [`generic_check`] would.
fn generic_sign(check: &HmacCheck, secret: &[u8], timestamp: i64, body: &[u8]) -> Headers {
    let ts = timestamp.to_string();
    let mut content = Vec::new();
    if check.id_header.is_some() {
        content.extend_from_slice(format!("{ID}.{ts}.").as_bytes());
    }
    content.extend_from_slice(body);
    let signature = match check.algorithm {
        HmacAlgorithm::Sha256 => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
            mac.update(&content);
            mac.finalize().into_bytes().to_vec()
        }
        HmacAlgorithm::Sha512 => {
            let mut mac = Hmac::<sha2::Sha512>::new_from_slice(secret).expect("any key length");
            mac.update(&content);
            mac.finalize().into_bytes().to_vec()
        }
        HmacAlgorithm::Sha1 => {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("any key length");
            mac.update(&content);
            mac.finalize().into_bytes().to_vec()
        }
    };
    let encoded = match check.signature_encoding {
        SignatureEncoding::Hex => hex::encode(signature),
        SignatureEncoding::Base64 => BASE64.encode(signature),
    };
    let prefix = check.signature_prefix.clone().unwrap_or_default();
    let mut headers = vec![("x-signature".to_owned(), format!("{prefix}{encoded}"))];
    if let Some(name) = &check.timestamp_header {
        headers.push((name.to_ascii_lowercase(), ts));
        headers.push(("x-id".to_owned(), ID.to_owned()));
    }
    headers
}

fn generic_sha256() -> HmacCheck {
    generic_check(
        HmacAlgorithm::Sha256,
        SignatureEncoding::Hex,
        Some("sha256="),
        true,
    )
}

fn generic_sha512() -> HmacCheck {
    generic_check(HmacAlgorithm::Sha512, SignatureEncoding::Base64, None, true)
}

fn generic_sha1() -> HmacCheck {
    generic_check(
        HmacAlgorithm::Sha1,
        SignatureEncoding::Hex,
        Some("sha1="),
        false,
    )
}

/// Every preset of the registry whose signature covers the body.
fn registry_cases() -> Vec<Preset> {
    registry::presets()
        // Fetched-key presets need a key server: their unit tests.
        .filter(|p| p.covers == Covers::Body && p.key != KeyKind::Fetched)
        .map(|preset| Preset {
            name: preset.name(),
            key: Box::new(move |seed| preset.key.test_key(seed)),
            build: Box::new(move |secrets| {
                preset
                    .verifier(secrets, None, PresetOptions::for_tests(PUBLIC_URL), CLOCK)
                    .unwrap_or_else(|e| panic!("{}: {e}", preset.name()))
            }),
            sign: Box::new(move |key, ts, body| {
                let input = SignInput {
                    event: "t.e",
                    id: ID,
                    body: Some(body.to_vec()),
                    now: ts,
                    url: PUBLIC_URL,
                    spec: None,
                    token_key: None,
                };
                preset
                    .sign(key, &input)
                    .unwrap_or_else(|e| panic!("{}: {e}", preset.name()))
            }),
            tolerance: match preset.replay {
                Replay::Window { default_secs } => Some(default_secs),
                Replay::FixedWindow { secs } => Some(secs),
                // A token's lifetime is checked on the token, not a header.
                Replay::TokenLifetime { .. } | Replay::Deduplication => None,
            },
        })
        .collect()
}

fn generic_case(name: &str, check: fn() -> HmacCheck, tolerance: Option<u32>) -> Preset {
    Preset {
        name: name.to_owned(),
        key: Box::new(|seed| KeyKind::SharedSecret.test_key(seed)),
        build: Box::new(move |s| generic_verifier(check(), s)),
        sign: Box::new(move |s, t, b| post(generic_sign(&check(), s, t, b), b)),
        tolerance,
    }
}

fn presets() -> Vec<Preset> {
    let mut all = registry_cases();
    assert!(all.len() >= 18, "only {} presets sign the body", all.len());
    all.push(generic_case(
        "generic sha256 hex, id and timestamp",
        generic_sha256,
        Some(verify::DEFAULT_TIMESTAMP_TOLERANCE_SECS),
    ));
    all.push(generic_case(
        "generic sha512 base64, id and timestamp",
        generic_sha512,
        Some(verify::DEFAULT_TIMESTAMP_TOLERANCE_SECS),
    ));
    all.push(generic_case("generic sha1 hex", generic_sha1, None));
    all
}

/// Verifies `delivery` with `body` in its place, as the receiver does (the
/// request line included, for the presets that sign the URL).
fn check(
    preset: &Preset,
    verifying: &[u8],
    delivery: &Delivery,
    body: &[u8],
) -> Result<usize, Rejection> {
    let target = delivery.target("/in");
    let uri: Uri = target.parse().expect("uri");
    let method: Method = delivery.method.parse().expect("method");
    match (preset.build)(vec![Secret::from(verifying)]).check(&Incoming {
        method: &method,
        uri: &uri,
        headers: &header_map(&delivery.headers),
        body,
    })? {
        Verdict::Deliver(verified) => Ok(verified.secret_index),
        Verdict::Handshake(_) => panic!("{}: a delivery taken for a handshake", preset.name),
    }
}

/// A JSON body around `data`, carrying Linear's signed millisecond
/// timestamp (the other presets ignore it).
fn body(timestamp: i64, data: &str) -> Vec<u8> {
    serde_json::json!({"webhookTimestamp": timestamp * 1000, "type": "t.e", "data": data})
        .to_string()
        .into_bytes()
}

fn header_map(headers: &Headers) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        // Failures are reported with their inputs; nothing is written to disk.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs `property` for every preset with its own runner, naming the preset
/// in a failure.
fn for_every_preset<S: Strategy>(
    strategy: S,
    property: impl Fn(&Preset, S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    for preset in presets() {
        let mut runner = proptest::test_runner::TestRunner::new(config());
        if let Err(err) = runner.run(&strategy, |value| property(&preset, value)) {
            panic!("{}: {err}", preset.name);
        }
    }
}

fn secret_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{1,48}"
}

fn data_strategy() -> impl Strategy<Value = String> {
    // Any Unicode text, escaped into the JSON body.
    ".{0,300}"
}

#[test]
fn what_the_provider_signs_verifies() {
    for_every_preset(
        (secret_strategy(), data_strategy(), -60i64..=0),
        |p, (seed, data, age)| {
            let key = (p.key)(&seed);
            // Within every window (Paddle's is five seconds).
            let ts = NOW + age.max(-i64::from(p.tolerance.unwrap_or(300)));
            let body = body(ts, &data);
            let delivery = (p.sign)(&key.signing, ts, &body);
            prop_assert_eq!(check(p, &key.verifying, &delivery, &body), Ok(0));
            Ok(())
        },
    );
}

#[test]
fn one_changed_body_byte_never_verifies() {
    for_every_preset(
        (
            secret_strategy(),
            data_strategy(),
            any::<prop::sample::Index>(),
            1u8..=255,
        ),
        |p, (seed, data, index, mask)| {
            let key = (p.key)(&seed);
            let body = body(NOW, &data);
            let delivery = (p.sign)(&key.signing, NOW, &body);
            let mut changed = body.clone();
            changed[index.index(body.len())] ^= mask;
            prop_assert!(check(p, &key.verifying, &delivery, &changed).is_err());
            Ok(())
        },
    );
}

#[test]
fn one_changed_signature_character_never_verifies() {
    // Any visible ASCII character that is not the same letter in another
    // case (hex is read in either case, as providers send it), in the
    // header the verifier reads its signature (or token) from.
    for_every_preset(
        (
            secret_strategy(),
            data_strategy(),
            any::<prop::sample::Index>(),
            0x21u8..=0x7e,
        ),
        |p, (seed, data, index, replacement)| {
            let key = (p.key)(&seed);
            let body = body(NOW, &data);
            let mut delivery = (p.sign)(&key.signing, NOW, &body);
            let verifier = (p.build)(vec![Secret::from(key.verifying.clone())]);
            let signature_headers = verifier.secret_headers();
            let (_, value) = delivery
                .headers
                .iter_mut()
                .find(|(n, _)| {
                    let n = n.to_ascii_lowercase();
                    signature_headers.contains(&n.as_str()) || n.contains("signature")
                })
                .unwrap_or_else(|| panic!("{}: no header of {signature_headers:?}", p.name));
            let mut bytes = value.clone().into_bytes();
            let at = index.index(bytes.len());
            prop_assume!(!bytes[at].eq_ignore_ascii_case(&replacement));
            bytes[at] = replacement;
            *value = String::from_utf8(bytes).expect("ascii");
            prop_assert!(check(p, &key.verifying, &delivery, &body).is_err());
            Ok(())
        },
    );
}

#[test]
fn another_secret_never_verifies() {
    for_every_preset(
        (secret_strategy(), secret_strategy(), data_strategy()),
        |p, (signer, other, data)| {
            prop_assume!(signer != other);
            let body = body(NOW, &data);
            let delivery = (p.sign)(&(p.key)(&signer).signing, NOW, &body);
            prop_assert_eq!(
                check(p, &(p.key)(&other).verifying, &delivery, &body),
                Err(Rejection::SignatureMismatch)
            );
            Ok(())
        },
    );
}

#[test]
fn a_timestamp_outside_the_window_is_refused() {
    for_every_preset(
        (
            secret_strategy(),
            data_strategy(),
            1i64..=10_000_000,
            any::<bool>(),
        ),
        |p, (seed, data, beyond, future)| {
            let Some(tolerance) = p.tolerance else {
                return Ok(());
            };
            let key = (p.key)(&seed);
            let offset = i64::from(tolerance) + beyond;
            let ts = if future { NOW + offset } else { NOW - offset };
            let body = body(ts, &data);
            let delivery = (p.sign)(&key.signing, ts, &body);
            prop_assert_eq!(
                check(p, &key.verifying, &delivery, &body),
                Err(Rejection::TimestampOutOfTolerance)
            );
            Ok(())
        },
    );
}

/// Headers a verifier reads besides its secret ones (timestamps, ids,
/// types), and the generic checks'; every verifier's
/// [`Verifier::secret_headers`] is added to them.
const READ_HEADERS: &[&str] = &[
    "x-slack-request-timestamp",
    "webhook-id",
    "webhook-timestamp",
    "svix-id",
    "svix-timestamp",
    "x-zm-request-timestamp",
    "twitch-eventsub-message-id",
    "twitch-eventsub-message-timestamp",
    "twitch-eventsub-message-type",
    "x-signature-timestamp",
    "x-twilio-email-event-webhook-timestamp",
    "x-signature",
    "x-timestamp",
    "x-id",
];

/// Every verifier the receiver builds from a manifest, keyed with secrets
/// these tests never sign with: every preset of the registry, and the
/// generic checks.
fn all_verifiers() -> Vec<Box<dyn Verifier>> {
    let mut all: Vec<Box<dyn Verifier>> = registry::presets()
        .filter(|p| p.key != KeyKind::Configured)
        .map(|p| {
            p.verifier(
                vec![Secret::from(
                    p.key.test_key("unknown to the test").verifying,
                )],
                None,
                PresetOptions::for_tests(PUBLIC_URL),
                CLOCK,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", p.name()))
        })
        .collect();
    assert_eq!(all.len(), registry::presets().count() - 1);
    for check in [generic_sha256(), generic_sha512(), generic_sha1()] {
        all.push(generic_verifier(check, vec![Secret::from(&b"k"[..])]));
    }
    all
}

#[test]
fn no_header_value_panics_a_verifier() {
    let verifiers = all_verifiers();
    let mut names: Vec<String> = READ_HEADERS.iter().map(|n| (*n).to_owned()).collect();
    for verifier in &verifiers {
        for name in verifier.secret_headers() {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    let strategy = (
        prop::collection::vec((prop::sample::select(names), "[ -~]{0,120}"), 0..6),
        prop::collection::vec(any::<u8>(), 0..256),
        prop::sample::select(vec!["/in", "/in?bodySHA256=00", "/in?x=1&y=2"]),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 256,
        ..config()
    });
    runner
        .run(&strategy, |(pairs, body, target)| {
            let mut headers = HeaderMap::new();
            for (name, value) in &pairs {
                headers.append(
                    HeaderName::from_bytes(name.as_bytes()).expect("name"),
                    HeaderValue::from_str(value).expect("visible ASCII"),
                );
            }
            let uri = Uri::from_static(target);
            for verifier in &verifiers {
                let result = verifier.check(&Incoming {
                    method: &Method::POST,
                    uri: &uri,
                    headers: &headers,
                    body: &body,
                });
                prop_assert!(
                    result.is_err(),
                    "{} accepted an unsigned delivery",
                    verifier.provider()
                );
            }
            Ok(())
        })
        .unwrap_or_else(|err| panic!("{err}"));
}

#[test]
fn no_forwarding_header_panics_the_client_ip_parsers() {
    let networks = ["10.0.0.0/8".to_owned(), "fd00::/8".to_owned()];
    let networks = Networks::parse(clientip::TRUSTED_PROXIES_FIELD, &networks).expect("networks");
    let x_forwarded_for = TrustedProxies::new(networks.clone(), ForwardedHeaders::XForwardedFor);
    let rfc7239 = TrustedProxies::new(networks, ForwardedHeaders::Forwarded);
    let peer: IpAddr = "10.1.2.3".parse().expect("ip");
    // Values built from the characters the parsers care about, and any
    // visible ASCII.
    let value = prop_oneof![
        "[ -~]{0,80}",
        r#"([0-9a-fA-F:.\[\]_,;="\\ ]|for|proto|by|unknown|https?){0,24}"#,
    ];
    const NAMES: [&str; 4] = [
        "x-forwarded-for",
        "forwarded",
        "x-forwarded-proto",
        "x-real-ip",
    ];
    let strategy = prop::collection::vec((prop::sample::select(&NAMES[..]), value), 0..4);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 512,
        ..config()
    });
    runner
        .run(&strategy, |pairs| {
            let mut headers = HeaderMap::new();
            for (name, value) in &pairs {
                headers.append(*name, HeaderValue::from_str(value).expect("visible ASCII"));
            }
            for (proxies, read) in [
                (&x_forwarded_for, ["x-forwarded-for", "x-forwarded-proto"]),
                (&rfc7239, ["forwarded", "forwarded"]),
            ] {
                let resolved = proxies.resolve(peer, &headers);
                if let Ok(client) = &resolved {
                    prop_assert_eq!(client.peer_ip, peer);
                }
                // Only the configured headers matter: without the others
                // the answer is the same.
                let mut only = HeaderMap::new();
                for (name, value) in headers.iter().filter(|(n, _)| read.contains(&n.as_str())) {
                    only.append(name, value.clone());
                }
                prop_assert_eq!(&proxies.resolve(peer, &only), &resolved);
                // From an untrusted peer the headers change nothing.
                let outside: IpAddr = "203.0.113.9".parse().expect("ip");
                let client = proxies.resolve(outside, &headers).expect("untrusted peer");
                prop_assert_eq!(client.client_ip, outside);
                prop_assert_eq!(client.forwarded_proto, None);
            }
            Ok(())
        })
        .unwrap_or_else(|err| panic!("{err}"));
}
