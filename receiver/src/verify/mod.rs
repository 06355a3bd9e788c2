//! Verifying that a delivery really comes from the provider.
//!
//! A [`Verifier`] sees exactly what arrived on the wire — the request headers
//! and the raw, unparsed body bytes — because every provider signs the bytes
//! it sent, and any re-serialisation (JSON parsing, charset decoding) would
//! break the signature. It is a pure function of its input and the secrets it
//! holds, so it is unit-tested without any I/O.
//!
//! A rejection carries a stable, machine-readable reason code
//! ([`Rejection::code`]): it is what the HTTP response and the audit log
//! report, so dashboards and alerts can rely on it across releases.

pub mod adyen;
pub mod bitbucket;
pub mod discord;
mod generic;
mod github;
pub mod gitlab;
mod hmac_common;
pub mod intercom;
pub mod linear;
pub mod mailgun;
pub mod meta;
pub mod paddle;
pub mod pagerduty;
pub mod sendgrid;
pub mod shopify;
pub mod slack;
pub mod standard_webhooks;
pub mod stripe;
pub mod svix;
pub mod twitch;
pub mod zoom;

pub use adyen::AdyenVerifier;
pub use bitbucket::BitbucketVerifier;
pub use discord::DiscordVerifier;
pub use generic::{Clock, DEFAULT_TIMESTAMP_TOLERANCE_SECS, GenericChecks, GenericVerifier};
pub use github::GithubVerifier;
pub use gitlab::GitlabVerifier;
pub use intercom::IntercomVerifier;
pub use linear::LinearVerifier;
pub use mailgun::MailgunVerifier;
pub use meta::MetaVerifier;
pub use paddle::PaddleVerifier;
pub use pagerduty::PagerdutyVerifier;
pub use sendgrid::SendgridVerifier;
pub use shopify::ShopifyVerifier;
pub use slack::SlackVerifier;
pub use standard_webhooks::StandardWebhooksVerifier;
pub use stripe::StripeVerifier;
pub use twitch::TwitchVerifier;
pub use zoom::ZoomVerifier;

use axum::http::HeaderMap;
use hookwarden_crds::{Provider, SecretKeyRef, WebhookEndpointSpec};

use crate::secrets::{Secret, SecretError};

/// What a successful verification learned about the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The provider's event type (e.g. GitHub's `push`), if it sent one.
    pub event: Option<String>,
    /// The provider's unique id of this delivery, if it sent one. Redeliveries
    /// of the same event keep it, which is what makes de-duplication work.
    pub delivery_id: Option<String>,
    /// Which of the configured secrets matched (its index in `secretRefs`),
    /// so operators can tell when a rotated-out secret is no longer used.
    pub secret_index: usize,
}

/// Why a delivery was refused. Each variant has a stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The signature header is absent.
    #[error("signature_missing")]
    SignatureMissing,
    /// The signature header is present but cannot be a valid signature
    /// (repeated, wrong scheme prefix, not hex, wrong length).
    #[error("signature_malformed")]
    SignatureMalformed,
    /// The signature is well-formed but no configured secret produces it.
    #[error("signature_mismatch")]
    SignatureMismatch,
    /// The signed timestamp header is absent.
    #[error("timestamp_missing")]
    TimestampMissing,
    /// The signed timestamp is not Unix seconds.
    #[error("timestamp_malformed")]
    TimestampMalformed,
    /// The signed timestamp is too old or too far in the future (a replay,
    /// or a badly wrong clock).
    #[error("timestamp_out_of_tolerance")]
    TimestampOutOfTolerance,
    /// The shared-token header is absent.
    #[error("token_missing")]
    TokenMissing,
    /// The shared token is not one of the accepted ones (or is repeated).
    #[error("token_mismatch")]
    TokenMismatch,
    /// No HTTP Basic credentials were sent.
    #[error("basic_auth_missing")]
    BasicAuthMissing,
    /// The HTTP Basic credentials are wrong or malformed.
    #[error("basic_auth_mismatch")]
    BasicAuthMismatch,
}

impl Rejection {
    /// The stable, machine-readable reason code.
    pub fn code(self) -> &'static str {
        match self {
            Self::SignatureMissing => "signature_missing",
            Self::SignatureMalformed => "signature_malformed",
            Self::SignatureMismatch => "signature_mismatch",
            Self::TimestampMissing => "timestamp_missing",
            Self::TimestampMalformed => "timestamp_malformed",
            Self::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Self::TokenMissing => "token_missing",
            Self::TokenMismatch => "token_mismatch",
            Self::BasicAuthMissing => "basic_auth_missing",
            Self::BasicAuthMismatch => "basic_auth_mismatch",
        }
    }
}

/// Checks one delivery against a provider's signature scheme.
pub trait Verifier: Send + Sync + std::fmt::Debug {
    /// The provider preset's name as written in the manifest (e.g. `github`).
    fn provider(&self) -> &'static str;

    /// The request headers (lower case) this verifier reads a secret, a
    /// signature or a token from; the audit log never shows their values.
    /// Timestamps, ids and event types are not secret. A provider that signs
    /// inside the body lists none.
    fn secret_headers(&self) -> Vec<&str>;

    /// Verifies a delivery from its headers and raw body bytes.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection>;
}

/// Why no verifier could be built for an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    /// The manifest names a provider this receiver cannot verify yet.
    #[error("provider {0:?} is not supported by this receiver yet")]
    UnsupportedProvider(Provider),
    /// Without a secret nothing could ever be verified; refusing to start is
    /// better than rejecting every delivery.
    #[error("the endpoint lists no secretRefs; at least one secret is required")]
    NoSecrets,
    /// A check of the `generic` provider has no secret of its own and
    /// `spec.secretRefs` is empty too.
    #[error("{0} has no secretRefs and spec.secretRefs is empty; at least one secret is required")]
    NoSecretsFor(&'static str),
    /// The `generic` provider needs at least one check; verification is
    /// never silently skipped.
    #[error("provider generic needs spec.verification with at least one of token, basicAuth, hmac")]
    NoChecks,
    /// `spec.verification` only applies to the `generic` provider.
    #[error(
        "spec.verification is only used with provider generic; the {0:?} preset verifies on its own"
    )]
    VerificationWithPreset(Provider),
    /// A key is not written in its declared encoding (the key is not shown).
    #[error("{check}.secretRefs[{index}] is not valid in the declared keyEncoding")]
    KeyEncoding {
        /// The check, e.g. `verification.hmac`.
        check: &'static str,
        /// Which of its secrets.
        index: usize,
    },
    /// A secret could not be loaded.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A preset's secret file does not hold a valid key of the kind the
    /// provider uses (the key itself is never shown).
    #[error("secretRefs[{index}] is not a valid {provider} key: expected {expected}")]
    InvalidKey {
        /// The preset, e.g. `discord`.
        provider: &'static str,
        /// Which of its secrets.
        index: usize,
        /// What the file should contain, e.g. `64 hex digits`.
        expected: &'static str,
    },
}

/// The verifier an endpoint's spec asks for, with its secrets loaded by
/// `load` (from files in the receiver, from the API in tests of the operator).
pub fn for_endpoint(
    spec: &WebhookEndpointSpec,
    load: impl Fn(&[SecretKeyRef]) -> Result<Vec<Secret>, SecretError>,
) -> Result<Box<dyn Verifier>, VerifierError> {
    if spec.provider != Provider::Generic {
        if spec.verification.is_some() {
            return Err(VerifierError::VerificationWithPreset(spec.provider));
        }
        return for_provider(
            spec.provider,
            load(&spec.secret_refs)?,
            spec.timestamp_tolerance_seconds,
        );
    }
    let verification = spec.verification.clone().ok_or(VerifierError::NoChecks)?;
    // A check without its own secretRefs uses the endpoint's.
    let refs = |own: &[SecretKeyRef]| {
        if own.is_empty() {
            load(&spec.secret_refs)
        } else {
            load(own)
        }
    };
    let token = match verification.token {
        Some(check) => Some((refs(&check.secret_refs)?, check)),
        None => None,
    };
    let basic = match verification.basic_auth {
        Some(check) => Some((refs(&check.secret_refs)?, check)),
        None => None,
    };
    let hmac = match verification.hmac {
        Some(check) => Some((refs(&check.secret_refs)?, check)),
        None => None,
    };
    let checks = GenericChecks {
        token: token.map(|(secrets, check)| (check, secrets)),
        basic: basic.map(|(secrets, check)| (check, secrets)),
        hmac: hmac.map(|(secrets, check)| (check, secrets)),
        event_header: verification.event_header,
        delivery_id_header: verification.delivery_id_header,
        timestamp_tolerance_secs: spec
            .timestamp_tolerance_seconds
            .unwrap_or(DEFAULT_TIMESTAMP_TOLERANCE_SECS),
    };
    Ok(Box::new(GenericVerifier::new(checks)?))
}

/// The verifier for an endpoint's provider preset. `tolerance_secs`
/// (`spec.timestampToleranceSeconds`) overrides the preset's replay window
/// for presets that sign a timestamp; `None` keeps the provider's default.
pub fn for_provider(
    provider: Provider,
    secrets: Vec<Secret>,
    tolerance_secs: Option<u32>,
) -> Result<Box<dyn Verifier>, VerifierError> {
    let tolerance = |default: u32| tolerance_secs.unwrap_or(default);
    match provider {
        Provider::Github => Ok(Box::new(GithubVerifier::new(secrets)?)),
        Provider::Bitbucket => Ok(Box::new(BitbucketVerifier::new(secrets)?)),
        Provider::Twitch => Ok(Box::new(TwitchVerifier::new(secrets)?)),
        Provider::Discord => Ok(Box::new(DiscordVerifier::new(secrets)?)),
        Provider::Sendgrid => Ok(Box::new(SendgridVerifier::new(secrets)?)),
        Provider::Mailgun => Ok(Box::new(MailgunVerifier::new(secrets)?)),
        Provider::Adyen => Ok(Box::new(AdyenVerifier::new(secrets)?)),
        Provider::Gitlab => Ok(Box::new(GitlabVerifier::new(
            secrets,
            tolerance(gitlab::DEFAULT_TOLERANCE_SECS),
        )?)),
        Provider::Stripe => Ok(Box::new(StripeVerifier::new(
            secrets,
            tolerance(stripe::DEFAULT_TOLERANCE_SECS),
        )?)),
        Provider::Slack => Ok(Box::new(SlackVerifier::new(
            secrets,
            tolerance(slack::DEFAULT_TOLERANCE_SECS),
        )?)),
        Provider::StandardWebhooks => Ok(Box::new(StandardWebhooksVerifier::new(
            secrets,
            tolerance(standard_webhooks::DEFAULT_TOLERANCE_SECS),
        )?)),
        Provider::Svix => Ok(Box::new(svix::verifier(
            secrets,
            tolerance(svix::DEFAULT_TOLERANCE_SECS),
        )?)),
        Provider::Shopify => Ok(Box::new(ShopifyVerifier::new(secrets)?)),
        Provider::Paddle => Ok(Box::new(PaddleVerifier::new(
            secrets,
            tolerance(paddle::DEFAULT_TOLERANCE_SECS),
        )?)),
        Provider::Zoom => Ok(Box::new(ZoomVerifier::new(
            secrets,
            tolerance(zoom::DEFAULT_TOLERANCE_SECS),
        )?)),
        Provider::Linear => Ok(Box::new(LinearVerifier::new(
            secrets,
            tolerance(linear::DEFAULT_TOLERANCE_SECS),
        )?)),
        Provider::Intercom => Ok(Box::new(IntercomVerifier::new(secrets)?)),
        Provider::Pagerduty => Ok(Box::new(PagerdutyVerifier::new(secrets)?)),
        Provider::Meta => Ok(Box::new(MetaVerifier::new(secrets)?)),
        other => Err(VerifierError::UnsupportedProvider(other)),
    }
}

/// The value of a header that must occur at most once.
///
/// `Ok(None)` when absent, `Err(())` when repeated or not visible ASCII: an
/// attacker who adds a second copy of a header must not be able to choose
/// which one is used.
pub(crate) fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    first.to_str().map(Some).map_err(|_| ())
}

/// An informational header (event type, delivery id): used only if it occurs
/// exactly once, is visible ASCII, non-empty and at most 256 bytes. These
/// values end up in NATS headers and subjects, so anything odd is dropped
/// rather than passed on.
pub(crate) fn info_header(headers: &HeaderMap, name: &str) -> Option<String> {
    single_header(headers, name)
        .ok()
        .flatten()
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_owned)
}

/// An informational value taken from a signed body (event type, delivery
/// id), under the same rules as [`info_header`]: visible ASCII, non-empty
/// after trimming, at most 256 bytes; anything else is dropped.
pub(crate) fn info_value(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()
        && value.len() <= 256
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
    .then(|| value.to_owned())
}

/// Checks a signed Unix-seconds timestamp against the clock: more than
/// `tolerance` seconds either way is a replay (or a badly wrong clock).
pub(crate) fn check_unix_timestamp(text: &str, now: i64, tolerance: u32) -> Result<(), Rejection> {
    // At most 20 characters: an absurdly long value is malformed without
    // being parsed.
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::TimestampMalformed);
    }
    let seconds: i64 = text.parse().map_err(|_| Rejection::TimestampMalformed)?;
    if now.abs_diff(seconds) > u64::from(tolerance) {
        return Err(Rejection::TimestampOutOfTolerance);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> WebhookEndpointSpec {
        let manifest = format!(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nmetadata: {{name: e}}\nspec:\n{yaml}"
        );
        hookwarden_crds::from_yaml(&manifest)
            .expect("manifest")
            .spec
    }

    /// Loads every ref as a secret whose value is `<name>/<key>`.
    fn load(refs: &[SecretKeyRef]) -> Result<Vec<Secret>, SecretError> {
        Ok(refs
            .iter()
            .map(|r| Secret::from(format!("{}/{}", r.name, r.key).into_bytes()))
            .collect())
    }

    fn token_headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-secret", value.parse().expect("header value"));
        headers
    }

    #[test]
    fn a_generic_check_without_own_refs_uses_the_endpoints() {
        let verifier = for_endpoint(
            &spec("  provider: generic\n  secretRefs: [{name: s, key: token}]\n  verification: {token: {header: X-Secret}}\n"),
            load,
        )
        .expect("verifier");
        assert!(verifier.verify(&token_headers("s/token"), b"").is_ok());
        assert_eq!(
            verifier.verify(&token_headers("other"), b"").map(|_| ()),
            Err(Rejection::TokenMismatch)
        );
    }

    #[test]
    fn a_checks_own_refs_win() {
        let verifier = for_endpoint(
            &spec("  provider: generic\n  secretRefs: [{name: s, key: k}]\n  verification:\n    token: {header: X-Secret, secretRefs: [{name: t, key: k}]}\n"),
            load,
        )
        .expect("verifier");
        assert!(verifier.verify(&token_headers("t/k"), b"").is_ok());
        assert!(verifier.verify(&token_headers("s/k"), b"").is_err());
    }

    #[test]
    fn asymmetric_and_body_signed_presets_are_wired() {
        for (provider, name) in [
            ("bitbucket", "bitbucket"),
            ("twitch", "twitch"),
            ("mailgun", "mailgun"),
        ] {
            let verifier = for_endpoint(
                &spec(&format!(
                    "  provider: {provider}\n  secretRefs: [{{name: s, key: k}}]\n"
                )),
                load,
            )
            .expect(provider);
            assert_eq!(verifier.provider(), name);
        }
        // Key-based presets refuse the `<name>/<key>` text of `load` as key
        // material, naming the preset but not the key.
        for provider in ["discord", "sendgrid", "adyen"] {
            let err = for_endpoint(
                &spec(&format!(
                    "  provider: {provider}\n  secretRefs: [{{name: s, key: k}}]\n"
                )),
                load,
            )
            .expect_err(provider);
            assert!(
                matches!(err, VerifierError::InvalidKey { provider: p, index: 0, .. } if p == provider),
                "{err}"
            );
            assert!(!err.to_string().contains("s/k"), "{err}");
        }
    }

    #[test]
    fn every_hmac_preset_is_built_under_its_manifest_name() {
        for (provider, name) in [
            (Provider::Gitlab, "gitlab"),
            (Provider::Stripe, "stripe"),
            (Provider::Slack, "slack"),
            (Provider::StandardWebhooks, "standard-webhooks"),
            (Provider::Svix, "svix"),
            (Provider::Shopify, "shopify"),
            (Provider::Paddle, "paddle"),
            (Provider::Zoom, "zoom"),
            (Provider::Linear, "linear"),
            (Provider::Intercom, "intercom"),
            (Provider::Pagerduty, "pagerduty"),
            (Provider::Meta, "meta"),
        ] {
            let verifier = for_provider(provider, vec![Secret::from(&b"c2VjcmV0"[..])], None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(verifier.provider(), name);
            assert!(matches!(
                for_provider(provider, Vec::new(), None),
                Err(VerifierError::NoSecrets)
            ));
        }
    }

    #[test]
    fn spec_timestamp_tolerance_reaches_the_preset() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let ts = i64::try_from(now).expect("fits") - 100;
        let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        let mut headers = HeaderMap::new();
        for (name, value) in stripe::sign(b"s/k", ts, body) {
            headers.insert(name, value.parse().expect("header value"));
        }
        let default = for_endpoint(
            &spec("  provider: stripe\n  secretRefs: [{name: s, key: k}]\n"),
            load,
        )
        .expect("verifier");
        assert_eq!(
            default.verify(&headers, body).map(|v| v.event),
            Ok(Some("charge.succeeded".to_owned()))
        );
        let narrow = for_endpoint(
            &spec("  provider: stripe\n  secretRefs: [{name: s, key: k}]\n  timestampToleranceSeconds: 60\n"),
            load,
        )
        .expect("verifier");
        assert_eq!(
            narrow.verify(&headers, body),
            Err(Rejection::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn generic_without_checks_and_presets_with_checks_are_refused() {
        let err = for_endpoint(
            &spec("  provider: generic\n  secretRefs: [{name: s, key: k}]\n"),
            load,
        )
        .expect_err("no checks");
        assert!(matches!(err, VerifierError::NoChecks), "{err}");
        let err = for_endpoint(
            &spec("  provider: generic\n  secretRefs: [{name: s, key: k}]\n  verification: {}\n"),
            load,
        )
        .expect_err("empty verification");
        assert!(matches!(err, VerifierError::NoChecks), "{err}");
        let err = for_endpoint(
            &spec("  provider: github\n  secretRefs: [{name: s, key: k}]\n  verification: {token: {header: X-Secret}}\n"),
            load,
        )
        .expect_err("preset with checks");
        assert!(
            err.to_string().contains("only used with provider generic"),
            "{err}"
        );
        let err = for_endpoint(
            &spec("  provider: generic\n  verification: {token: {header: X-Secret}}\n"),
            load,
        )
        .expect_err("no secrets anywhere");
        assert!(err.to_string().contains("verification.token"), "{err}");
    }
}
