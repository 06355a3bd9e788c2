//! The signature-header parsers (Stripe `t=,v1=`, Standard Webhooks/Svix
//! `v1,`/`v1a,` lists, Paddle `ts=;h1=`, PagerDuty `v1=` lists, Slack and
//! Zoom `v0=`, GitHub/Bitbucket/Meta `sha256=`, Twitch, Shopify base64, …):
//! a delivery correctly signed by the CLI's signer for a preset has one of
//! its headers replaced by fuzz input. Must never panic; if it still
//! verifies, the replaced value must have carried the same signature
//! (checked by verifying it again, which must give the same answer).
#![no_main]

use hookwarden_cli::{Input, SENDABLE, parse_provider, sign};
use hookwarden_fuzz::{HMAC_SECRET, WHSEC_SECRET, now};
use hookwarden_receiver::secrets::Secret;
use hookwarden_receiver::verify;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Case {
    preset: u8,
    header: u8,
    value: Vec<u8>,
}

fuzz_target!(|case: Case| {
    let name = SENDABLE[usize::from(case.preset) % SENDABLE.len()];
    let Ok(provider) = parse_provider(name) else {
        return;
    };
    let secret = match name {
        "standard-webhooks" | "svix" => WHSEC_SECRET,
        _ => HMAC_SECRET,
    };
    let Ok(verifier) = verify::for_provider(provider, vec![Secret::from(secret)], None) else {
        return;
    };
    let input = Input {
        event: "fuzz.event",
        id: "fuzz-1",
        body: Some(b"{\"type\":\"fuzz.event\"}".to_vec()),
        now: now(),
        // What Twilio and Square sign besides the body.
        url: "https://hookwarden.example/hooks",
    };
    let Ok(delivery) = sign(name, secret, &input) else {
        return;
    };
    let Ok(value) = HeaderValue::from_bytes(&case.value) else {
        return;
    };
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
    let first = verifier.verify(&headers, &delivery.body);
    assert_eq!(first, verifier.verify(&headers, &delivery.body));
});
