//! What the fuzz targets share: every verifier the receiver can build, with
//! secrets the fuzzer does not know, and header maps built from fuzz input.

use std::time::{SystemTime, UNIX_EPOCH};

use hookwarden_receiver::secrets::Secret;
use hookwarden_receiver::verify::registry::{self, KeyKind, Preset};
use hookwarden_receiver::verify::{self, PresetOptions, Verifier};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The seed of every preset's key ([`KeyKind::test_key`]) and the key of
/// the generic checks. The fuzzer never sees them, so no input may ever
/// verify.
pub const HMAC_SECRET: &[u8] = b"fuzz-secret-9c1f0e6b2d7a4853";

/// The URL the URL-signing presets (Twilio, Square) are configured with.
pub const PUBLIC_URL: &str = "https://hooks.example.com/in";

/// Every preset the registry builds from its secrets alone: all but
/// `generic`, which is built from [`GENERIC_SPECS`].
pub fn presets() -> impl Iterator<Item = &'static Preset> {
    registry::presets().filter(|p| p.key != KeyKind::Configured)
}

/// `generic` provider configurations (the `spec:` body of a manifest),
/// secrets named `s/k`.
pub const GENERIC_SPECS: &[&str] = &[
    "{provider: generic, secretRefs: [{name: s, key: k}], verification: {hmac: {signatureHeader: X-Signature, signaturePrefix: 'sha256='}}}",
    "{provider: generic, secretRefs: [{name: s, key: k}], verification: {hmac: {algorithm: sha512, signatureHeader: X-Signature, signatureEncoding: base64, timestampHeader: X-Timestamp, idHeader: X-Id}}}",
    "{provider: generic, secretRefs: [{name: s, key: k}], verification: {hmac: {algorithm: sha1, signatureHeader: X-Signature, signaturePrefix: 'sha1='}}}",
    "{provider: generic, secretRefs: [{name: s, key: k}], verification: {token: {header: X-Token}}}",
    "{provider: generic, secretRefs: [{name: s, key: k}], verification: {basicAuth: {username: hook}, eventHeader: X-Event, deliveryIdHeader: X-Id}}",
];

/// The secret a preset is configured with.
pub fn secret_for(preset: &Preset) -> Vec<u8> {
    let seed = String::from_utf8_lossy(HMAC_SECRET);
    preset.key.test_key(&seed).verifying
}

/// Every verifier: the presets, then the generic configurations.
pub fn verifiers() -> Vec<Box<dyn Verifier>> {
    let mut all: Vec<Box<dyn Verifier>> = presets()
        .map(|p| {
            p.verifier(
                vec![Secret::from(secret_for(p))],
                None,
                PresetOptions::for_tests(PUBLIC_URL),
                verify::system_clock,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", p.name()))
        })
        .collect();
    for spec in GENERIC_SPECS {
        let manifest = format!(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nmetadata: {{name: e}}\nspec: {spec}\n"
        );
        let endpoint = hookwarden_crds::from_yaml(&manifest).unwrap_or_else(|e| panic!("{e}"));
        let verifier = verify::for_endpoint(&endpoint.spec, |refs| {
            Ok(refs.iter().map(|_| Secret::from(HMAC_SECRET)).collect())
        })
        .unwrap_or_else(|e| panic!("{spec}: {e}"));
        all.push(verifier);
    }
    all
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Every header name a verifier reads, so the fuzzer reaches them quickly.
pub const HEADER_NAMES: &[&str] = &[
    "x-hub-signature-256",
    "x-hub-signature",
    "x-github-event",
    "x-github-delivery",
    "x-event-key",
    "x-request-uuid",
    "x-gitlab-token",
    "x-gitlab-event",
    "x-gitlab-event-uuid",
    "idempotency-key",
    "stripe-signature",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "x-shopify-hmac-sha256",
    "x-shopify-topic",
    "x-shopify-webhook-id",
    "paddle-signature",
    "x-zm-signature",
    "x-zm-request-timestamp",
    "twitch-eventsub-message-signature",
    "twitch-eventsub-message-id",
    "twitch-eventsub-message-timestamp",
    "twitch-eventsub-message-type",
    "x-signature-ed25519",
    "x-signature-timestamp",
    "x-twilio-email-event-webhook-signature",
    "x-twilio-email-event-webhook-timestamp",
    "linear-signature",
    "linear-event",
    "x-pagerduty-signature",
    "x-signature",
    "x-timestamp",
    "x-id",
    "x-token",
    "x-event",
    "authorization",
    "content-type",
];

/// [`HEADER_NAMES`] and every header a verifier reads a secret or
/// signature from, so a new preset's headers are reached without a list.
pub fn header_names() -> &'static [HeaderName] {
    static NAMES: std::sync::OnceLock<Vec<HeaderName>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<HeaderName> = HEADER_NAMES
            .iter()
            .map(|name| HeaderName::from_static(name))
            .collect();
        for verifier in verifiers() {
            for name in verifier.secret_headers() {
                if let Ok(name) = HeaderName::from_bytes(name.as_bytes())
                    && !names.contains(&name)
                {
                    names.push(name);
                }
            }
        }
        names
    })
}

/// A header name: one of [`header_names`], or made from arbitrary bytes.
pub fn header_name(index: u8, raw: &[u8]) -> Option<HeaderName> {
    match header_names().get(usize::from(index)) {
        Some(name) => Some(name.clone()),
        None => HeaderName::from_bytes(raw).ok(),
    }
}

/// A header value from fuzz bytes. `@now` becomes the current Unix seconds
/// and `@rfc3339` the current time as Twitch writes it, so the fuzzer gets
/// past the replay window into the signature checks.
pub fn header_value(raw: &[u8]) -> Option<HeaderValue> {
    let now = now();
    if raw.windows(4).any(|w| w == b"@now") || raw.windows(8).any(|w| w == b"@rfc3339") {
        let text = String::from_utf8_lossy(raw)
            .replace("@now", &now.to_string())
            .replace("@rfc3339", &rfc3339(now));
        return HeaderValue::from_str(&text).ok();
    }
    HeaderValue::from_bytes(raw).ok()
}

/// `seconds` as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Builds a header map from (name index, raw name, raw value) triples,
/// skipping what HTTP could not carry.
pub fn headers(pairs: &[(u8, Vec<u8>, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (index, name, value) in pairs {
        if let (Some(name), Some(value)) = (header_name(*index, name), header_value(value)) {
            map.append(name, value);
        }
    }
    map
}
