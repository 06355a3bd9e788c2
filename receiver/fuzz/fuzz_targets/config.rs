//! The configuration loader: a `WebhookEndpoint` manifest from arbitrary
//! YAML (`hookwarden_crds::from_yaml`), then everything the receiver checks
//! before it serves (`reload::check` without the file system): the JetStream
//! target, the verifier with its secrets, the CIDR lists and the rate
//! limits. Must never panic; errors are fine.
#![no_main]

use hookwarden_receiver::clientip::{self, Networks};
use hookwarden_receiver::limits::RateLimits;
use hookwarden_receiver::publish::Target;
use hookwarden_receiver::secrets::Secret;
use hookwarden_receiver::verify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(endpoint) = hookwarden_crds::from_yaml(text) else {
        return;
    };
    if let Ok(target) = Target::for_endpoint(&endpoint) {
        let _ = target.subject(Some("fuzz.event"));
        let _ = target.subject(None);
    }
    // Secrets as the files would hold them: named after their reference.
    let _ = verify::for_endpoint(&endpoint.spec, |refs| {
        Ok(refs
            .iter()
            .map(|r| Secret::from(format!("{}/{}", r.name, r.key).into_bytes()))
            .collect())
    });
    let _ = Networks::parse(
        clientip::ALLOWED_SOURCE_CIDRS_FIELD,
        &endpoint.spec.allowed_source_cidrs,
    );
    let _ = Networks::parse(
        clientip::TRUSTED_PROXIES_FIELD,
        &endpoint.spec.trusted_proxies,
    );
    let _ = RateLimits::from_spec(endpoint.spec.rate_limit.as_ref());
    let _ = hookwarden_receiver::ranges::sources_of(&endpoint.spec);
});
