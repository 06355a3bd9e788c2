//! The signature-header parsers (Stripe `t=,v1=`, Standard Webhooks/Svix
//! `v1,`/`v1a,` lists, Paddle `ts=;h1=`, PagerDuty `v1=` lists, Slack and
//! Zoom `v0=`, GitHub/Bitbucket/Meta `sha256=`, Twitch, Shopify base64, …
//! of every preset in the registry): a delivery correctly signed by the
//! preset's signer has one of its headers replaced by fuzz input. Must never
//! panic; if it still verifies, the replaced value must have carried the
//! same signature (checked by verifying it again, which must give the same
//! answer).
#![no_main]

use std::sync::LazyLock;

use hookwarden_fuzz::{HMAC_SECRET, PUBLIC_URL, now, presets};
use hookwarden_receiver::secrets::Secret;
use hookwarden_receiver::verify::registry::{Covers, Preset};
use hookwarden_receiver::verify::sending::SignInput;
use hookwarden_receiver::verify::{self, Incoming, PresetOptions};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

static PRESETS: LazyLock<Vec<&'static Preset>> = LazyLock::new(|| presets().collect());

#[derive(Debug, Arbitrary)]
struct Case {
    preset: u8,
    header: u8,
    value: Vec<u8>,
}

fuzz_target!(|case: Case| {
    let preset = PRESETS[usize::from(case.preset) % PRESETS.len()];
    let key = preset.key.test_key(&String::from_utf8_lossy(HMAC_SECRET));
    let Ok(verifier) = preset.verifier(
        vec![Secret::from(key.verifying)],
        None,
                PresetOptions::for_tests(PUBLIC_URL),
        verify::system_clock,
    ) else {
        return;
    };
    let input = SignInput {
        event: "fuzz.event",
        id: "fuzz-1",
        // Presets that sign fields inside the body build their own.
        body: (preset.covers != Covers::BodyFields).then(|| b"{\"type\":\"fuzz.event\"}".to_vec()),
        now: now(),
        url: PUBLIC_URL,
        spec: None,
        token_key: None,
    };
    let Ok(delivery) = preset.sign(&key.signing, &input) else {
        return;
    };
    let Ok(value) = HeaderValue::from_bytes(&case.value) else {
        return;
    };
    if delivery.headers.is_empty() {
        return;
    }
    let replaced = usize::from(case.header) % delivery.headers.len();
    let mut headers = HeaderMap::new();
    for (index, (n, v)) in delivery.headers.iter().enumerate() {
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) else {
            return;
        };
        headers.append(n, if index == replaced { value.clone() } else { v });
    }
    let target = delivery.target("/in");
    let (Ok(method), Ok(uri)) = (delivery.method.parse::<Method>(), target.parse::<Uri>()) else {
        return;
    };
    let incoming = Incoming {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &delivery.body,
    };
    let first = verifier.check(&incoming);
    assert_eq!(first, verifier.check(&incoming));
});
