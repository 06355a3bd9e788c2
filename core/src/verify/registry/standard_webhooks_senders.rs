//! The descriptors of the senders that sign with Standard Webhooks (Clerk,
//! Resend, OpenAI, Replicate, Brex, Polar): a descriptor each, so users
//! find them by name.

use hookwarden_crds::Provider;

use super::{KeyKind, Preset, stamped_hmac};
use crate::secrets::Secret;
use crate::verify::sending;
use crate::verify::{StandardWebhooksVerifier, standard_webhooks, svix};

/// The Standard Webhooks scheme under `provider`'s name, with Svix's
/// header names (`svix: true`) or the specification's.
pub(super) const fn sender_scheme(provider: &'static str, svix: bool) -> standard_webhooks::Scheme {
    let base = if svix {
        svix::SCHEME
    } else {
        standard_webhooks::SCHEME
    };
    standard_webhooks::Scheme { provider, ..base }
}

/// Polar keys Standard Webhooks with the secret's own bytes (its SDKs
/// base64-encode the secret before handing it to the Standard Webhooks
/// library): the same key written as a `whsec_` secret.
pub(super) fn polar_key(secret: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(secret)
    )
    .into_bytes()
}

/// Senders that sign with Standard Webhooks: a descriptor each, so users
/// find them by name, verified and signed exactly as `standard-webhooks`
/// (or `svix`) under their own name.
macro_rules! standard_webhooks_sender {
    ($static:ident, $provider:expr, $name:literal, svix: $svix:literal, key: $key:expr, to_key: $to_key:expr, $scheme:literal, $reference:literal) => {
        pub(super) static $static: Preset = Preset {
            key: $key,
            ..stamped_hmac(
                $provider,
                standard_webhooks::DEFAULT_TOLERANCE_SECS,
                |s, o| {
                    let to_key: fn(&[u8]) -> Vec<u8> = $to_key;
                    let keys = s
                        .iter()
                        .map(|secret| Secret::from(to_key(secret.expose())))
                        .collect();
                    Ok(Box::new(StandardWebhooksVerifier::with_clock(
                        sender_scheme($name, $svix),
                        keys,
                        o.tolerance,
                        o.clock,
                    )?))
                },
                |secret, input| {
                    let to_key: fn(&[u8]) -> Vec<u8> = $to_key;
                    sending::standard_webhooks_sender(
                        sender_scheme($name, $svix),
                        &to_key(secret),
                        input,
                    )
                },
                $scheme,
                $reference,
            )
        };
    };
}

standard_webhooks_sender!(
    CLERK,
    Provider::Clerk,
    "clerk",
    svix: true,
    key: KeyKind::WhsecKey,
    to_key: <[u8]>::to_vec,
    "Standard Webhooks through Svix (`svix-signature`)",
    "https://clerk.com/docs/webhooks/sync-data#verify-webhook-requests"
);
standard_webhooks_sender!(
    RESEND,
    Provider::Resend,
    "resend",
    svix: true,
    key: KeyKind::WhsecKey,
    to_key: <[u8]>::to_vec,
    "Standard Webhooks through Svix (`svix-signature`)",
    "https://resend.com/docs/dashboard/webhooks/verify-webhooks-requests"
);
standard_webhooks_sender!(
    OPENAI,
    Provider::Openai,
    "openai",
    svix: false,
    key: KeyKind::WhsecKey,
    to_key: <[u8]>::to_vec,
    "Standard Webhooks (`webhook-signature`)",
    "https://platform.openai.com/docs/guides/webhooks"
);
standard_webhooks_sender!(
    REPLICATE,
    Provider::Replicate,
    "replicate",
    svix: false,
    key: KeyKind::WhsecKey,
    to_key: <[u8]>::to_vec,
    "Standard Webhooks (`webhook-signature`)",
    "https://replicate.com/docs/topics/webhooks/verify-webhook"
);
standard_webhooks_sender!(
    BREX,
    Provider::Brex,
    "brex",
    svix: false,
    key: KeyKind::WhsecKey,
    to_key: <[u8]>::to_vec,
    "Standard Webhooks (`webhook-signature`)",
    "https://developer.brex.com/docs/webhooks/"
);
standard_webhooks_sender!(
    POLAR,
    Provider::Polar,
    "polar",
    svix: false,
    key: KeyKind::SharedSecret,
    to_key: polar_key,
    "Standard Webhooks (`webhook-signature`) keyed with the secret's bytes",
    "https://polar.sh/docs/integrate/webhooks/delivery"
);
