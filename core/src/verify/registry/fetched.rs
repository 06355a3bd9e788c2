//! The descriptors of the presets verified with a key fetched from the
//! provider (AWS SNS, PayPal, Google Pub/Sub).

use hookwarden_crds::Provider;

use super::{Build, Covers, KeyKind, Preset, Replay, body_hmac};
use crate::verify::sending::{self, Signer};
use crate::verify::{aws_sns, google_pubsub, paypal};

/// A preset verified with a key fetched from the provider.
pub(super) const fn fetched(
    provider: Provider,
    replay: Replay,
    build: Build,
    sign: Signer,
    scheme: &'static str,
    reference: &'static str,
) -> Preset {
    Preset {
        key: KeyKind::Fetched,
        replay,
        ..body_hmac(provider, build, sign, scheme, reference)
    }
}

pub(super) static AWS_SNS: Preset = Preset {
    covers: Covers::BodyFields,
    ..fetched(
        Provider::AwsSns,
        Replay::Window {
            default_secs: aws_sns::DEFAULT_TOLERANCE_SECS,
        },
        |_, o| {
            let aws = o.preset.aws.clone().unwrap_or_default();
            Ok(Box::new(aws_sns::AwsSnsVerifier::with_clock(
                aws.topic_arns,
                aws.auto_confirm_subscriptions,
                o.tolerance,
                o.clock,
                o.preset.fetcher(),
            )?))
        },
        sending::aws_sns,
        "SHA1withRSA / SHA256withRSA of the message's fields, certificate from `SigningCertURL` on SNS hosts; topic allowlist",
        "https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html",
    )
};

pub(super) static PAYPAL: Preset = fetched(
    Provider::Paypal,
    Replay::Window {
        default_secs: paypal::DEFAULT_TOLERANCE_SECS,
    },
    |_, o| {
        Ok(Box::new(paypal::PaypalVerifier::with_clock(
            o.preset.paypal.clone().unwrap_or_default().webhook_id,
            o.tolerance,
            o.clock,
            o.preset.fetcher(),
        )?))
    },
    sending::paypal,
    "`PAYPAL-TRANSMISSION-SIG`: SHA256withRSA of id, time, webhook id and CRC32 of the body, certificate from PayPal hosts",
    "https://developer.paypal.com/api/rest/webhooks/rest/#link-selfverificationmethod",
);

pub(super) static GOOGLE_PUBSUB: Preset = Preset {
    // The token authenticates the sender, not the body.
    covers: Covers::Token,
    ..fetched(
        Provider::GooglePubsub,
        Replay::TokenLifetime {
            lifetime_secs: google_pubsub::TOKEN_LIFETIME_SECS,
            leeway_secs: google_pubsub::DEFAULT_LEEWAY_SECS,
        },
        |_, o| {
            let google = o.preset.google.clone().unwrap_or_default();
            let audience = google
                .audience
                .or_else(|| o.preset.public_url.as_ref().map(|url| url.with_query(None)))
                .unwrap_or_default();
            Ok(Box::new(google_pubsub::GooglePubsubVerifier::with_clock(
                audience,
                google.service_account_email,
                o.tolerance,
                o.clock,
                o.preset.fetcher(),
            )?))
        },
        sending::google_pubsub,
        "`Authorization: Bearer`: RS256 OIDC token of Google's JWKS; `aud`, `iss`, service account `email`",
        "https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions",
    )
};
