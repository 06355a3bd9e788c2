//! Arbitrary headers and body through every verifier (each preset and the
//! generic checks): must never panic, and must never accept, because the
//! fuzzer does not know any of the secrets.
#![no_main]

use std::sync::LazyLock;

use hookwarden_fuzz::{headers, verifiers};
use hookwarden_receiver::verify::{Incoming, Verifier};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

static VERIFIERS: LazyLock<Vec<Box<dyn Verifier>>> = LazyLock::new(verifiers);

#[derive(Debug, Arbitrary)]
struct Delivery {
    verifier: u8,
    headers: Vec<(u8, Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
}

fuzz_target!(|input: Delivery| {
    let verifier = &VERIFIERS[usize::from(input.verifier) % VERIFIERS.len()];
    let headers = headers(&input.headers);
    let (method, uri) = (http::Method::POST, http::Uri::from_static("/in"));
    let result = verifier.check(&Incoming {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &input.body,
    });
    assert!(
        result.is_err(),
        "{} accepted a delivery the fuzzer could not sign: {result:?}",
        verifier.provider()
    );
});
