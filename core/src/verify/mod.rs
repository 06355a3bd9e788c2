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
pub mod aws_sns;
pub mod azure_event_grid;
pub mod bitbucket;
mod build;
pub mod discord;
pub mod docusign;
pub mod dropbox;
pub mod entra;
mod generic;
mod github;
pub mod gitlab;
pub mod google_pubsub;
mod handshake_common;
mod headers;
mod hmac_common;
pub mod hubspot;
pub mod intercom;
pub mod keys;
pub mod linear;
pub mod mailgun;
pub mod meta;
pub mod microsoft_graph;
pub mod okta;
pub mod paddle;
pub mod pagerduty;
pub mod paypal;
pub mod public_url;
pub mod registry;
pub mod sendgrid;
pub mod sending;
pub mod shopify;
pub mod slack;
pub mod square;
pub mod standard_webhooks;
pub mod stripe;
pub mod svix;
mod timestamp;
pub mod trello;
pub mod twilio;
pub mod twitch;
pub mod twitter;
mod verdict;
pub mod xero;
pub mod zendesk;
pub mod zoom;

pub use adyen::AdyenVerifier;
pub use aws_sns::AwsSnsVerifier;
pub use bitbucket::BitbucketVerifier;
pub use build::{
    for_endpoint, for_endpoint_with_fetcher, for_preset, for_provider, generic_checks,
    replay_window_secs,
};
pub use discord::DiscordVerifier;
pub use generic::{
    GenericChecks, GenericVerifier, SignRequest as GenericSignRequest, TemplateError,
    sign as sign_generic,
};
pub use github::GithubVerifier;
pub use gitlab::GitlabVerifier;
pub use google_pubsub::GooglePubsubVerifier;
pub(crate) use headers::{credential_header_present, info_header, info_value, single_header};
pub use intercom::IntercomVerifier;
pub use linear::LinearVerifier;
pub use mailgun::MailgunVerifier;
pub use meta::MetaVerifier;
pub use paddle::PaddleVerifier;
pub use pagerduty::PagerdutyVerifier;
pub use paypal::PaypalVerifier;
pub use sendgrid::SendgridVerifier;
pub use shopify::ShopifyVerifier;
pub use slack::SlackVerifier;
pub use square::SquareVerifier;
pub use standard_webhooks::StandardWebhooksVerifier;
pub use stripe::StripeVerifier;
pub use timestamp::{Clock, DEFAULT_TIMESTAMP_TOLERANCE_SECS, system_clock};
pub use twilio::TwilioVerifier;
pub use twitch::TwitchVerifier;
pub(crate) use verdict::challenge;
pub use verdict::{HANDSHAKE_EVENT, Handshake, Rejection, Verdict, Verified};
pub use zoom::ZoomVerifier;

use hookwarden_crds::Provider;
use http::{HeaderMap, Method, Uri};

use crate::secrets::{Secret, SecretError};
use public_url::{PublicUrl, PublicUrlError};

/// A request as a verifier sees it: the request line besides the headers
/// and the raw body bytes, for the presets that sign the URL (Twilio,
/// Square) or answer a handshake by GET (Meta).
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The HTTP method.
    pub method: &'a Method,
    /// The request target as received (path and raw query).
    pub uri: &'a Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The raw body bytes.
    pub body: &'a [u8],
}

/// A request before its body is read: what [`Verifier::precheck`] sees.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// The HTTP method.
    pub method: &'a Method,
    /// The request target as received.
    pub uri: &'a Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
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

    /// Headers beyond the providers' well-known ones that carry only an
    /// event type, a delivery id or a timestamp, shown by payload logging
    /// (the `generic` provider's configured ones).
    fn plain_headers(&self) -> Vec<&str> {
        Vec::new()
    }

    /// Verifies a delivery from its headers and raw body bytes.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection>;

    /// The checks that need no body, made before the body is read, so a
    /// request that can never verify costs no body buffer and no body-read
    /// slot. By default: one of [`Verifier::secret_headers`] is present,
    /// occurs once and is not absurdly long. A preset whose signature is in
    /// the body (no secret headers) passes. Whatever passes here is still
    /// fully checked by [`Verifier::check`].
    fn precheck(&self, request: &Head<'_>) -> Result<(), Rejection> {
        credential_header_present(request.headers, &self.secret_headers())
    }

    /// Verifies a whole request; what the receiver calls. Presets that sign
    /// only headers and body keep this default, which is [`Verifier::verify`].
    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        self.verify(request.headers, request.body)
            .map(Verdict::Deliver)
    }

    /// Whether `GET` requests reach [`Verifier::check`] (Meta's
    /// subscription handshake) besides `POST`.
    fn answers_get(&self) -> bool {
        false
    }

    /// Whether `OPTIONS` requests reach [`Verifier::check`] (the CloudEvents
    /// abuse-protection handshake of Azure Event Grid).
    fn answers_options(&self) -> bool {
        false
    }

    /// Whether `HEAD` requests reach [`Verifier::check`] (Trello's check of
    /// the callback URL when a webhook is created). The answer's body is
    /// never sent: HTTP gives a `HEAD` answer none.
    fn answers_head(&self) -> bool {
        false
    }

    /// For presets whose keys are fetched (AWS SNS, PayPal, Google): the
    /// fetch of the key `request` needs, awaited by the server (with a
    /// bound) after the body is read and before [`Verifier::check`], which
    /// then finds the key cached. The future owns what it needs. `None`
    /// (the default): nothing to fetch.
    fn prefetch(&self, request: &Incoming<'_>) -> Option<Prefetch> {
        let _ = request;
        None
    }
}

/// The longest anyone waits for a [`Prefetch`]: the server before it
/// answers 503 `key_unavailable`, `hookwarden verify` before it reports the
/// same. A fetch itself is bounded at 5 s; waiting for another request's
/// fetch of the same key counts, hence a little more.
pub const PREFETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6);

/// A key fetch a verifier needs before [`Verifier::check`].
pub type Prefetch =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Rejection>> + Send + 'static>>;

/// Why no verifier could be built for an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
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
    #[error(
        "provider generic needs spec.verification with at least one of token, basicAuth, hmac, jwt"
    )]
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
    /// `spec.handshake.publish` with a preset whose handshake anyone can
    /// send: storing it would let anyone write into the stream.
    #[error(
        "spec.handshake.publish: the {0:?} handshake is not authenticated, so it is answered but never stored"
    )]
    UnauthenticatedHandshake(Provider),
    /// A preset that signs the public URL has no way to know it.
    #[error(
        "provider {0:?} signs the URL it calls: set spec.publicUrl, or spec.ingress (host and path)"
    )]
    PublicUrlRequired(Provider),
    /// `spec.publicUrl` cannot be used.
    #[error(transparent)]
    PublicUrl(#[from] PublicUrlError),
    /// A setting of the `generic` provider's checks cannot be used.
    #[error("{field}: {reason}")]
    Invalid {
        /// The setting, e.g. `verification.hmac.keyValue`.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// `verification.hmac.signedContent` cannot be used.
    #[error("verification.hmac.signedContent: {0}")]
    SignedContent(#[from] TemplateError),
    /// A preset that verifies with fetched keys lacks a spec setting it
    /// cannot work safely without.
    #[error("provider {provider} needs {setting}")]
    SettingRequired {
        /// The preset, e.g. `aws-sns`.
        provider: &'static str,
        /// The missing setting, e.g. `spec.aws.topicArns`.
        setting: &'static str,
    },
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

/// The one rule for an empty secret list, whatever the preset: nothing
/// could ever be verified, so building the verifier fails (the receiver
/// refuses to start rather than reject every delivery).
pub(crate) fn require_secrets(secrets: &[Secret]) -> Result<(), VerifierError> {
    if secrets.is_empty() {
        Err(VerifierError::NoSecrets)
    } else {
        Ok(())
    }
}

/// Reads every secret as a key with `parse`, at startup: no secret at all, or
/// one that is not a key (`expected` says what it should be), is an error
/// naming the secret's index, never its value.
pub(crate) fn parse_keys<K>(
    secrets: &[Secret],
    provider: &'static str,
    expected: &'static str,
    parse: impl Fn(&Secret) -> Option<K>,
) -> Result<Vec<K>, VerifierError> {
    require_secrets(secrets)?;
    secrets
        .iter()
        .enumerate()
        .map(|(index, secret)| {
            parse(secret).ok_or(VerifierError::InvalidKey {
                provider,
                index,
                expected,
            })
        })
        .collect()
}

/// What some presets need beyond their secrets.
#[derive(Debug, Clone, Default)]
pub struct PresetOptions {
    /// The URL the provider calls (`twilio`, `square`).
    pub public_url: Option<PublicUrl>,
    /// `spec.handshake.verifyTokenRefs`: the tokens Meta's subscription
    /// handshake must carry.
    pub verify_tokens: Vec<Secret>,
    /// `spec.handshake.publish`.
    pub publish_handshakes: bool,
    /// `spec.aws` (`aws-sns`).
    pub aws: Option<hookwarden_crds::AwsSnsSpec>,
    /// `spec.paypal` (`paypal`).
    pub paypal: Option<hookwarden_crds::PaypalSpec>,
    /// `spec.google` (`google-pubsub`).
    pub google: Option<hookwarden_crds::GooglePubsubSpec>,
    /// `spec.azure` (`azure-event-grid`).
    pub azure: Option<hookwarden_crds::AzureEventGridSpec>,
    /// `spec.graph` (`microsoft-graph`).
    pub graph: Option<hookwarden_crds::MicrosoftGraphSpec>,
    /// `spec.okta` (`okta`).
    pub okta: Option<hookwarden_crds::OktaSpec>,
    /// The key fetcher of the fetched-key presets; `None`: the process's
    /// ([`keys::KeyFetcher::shared`]). Tests give one routed to a loopback
    /// key server.
    pub fetcher: Option<std::sync::Arc<keys::KeyFetcher>>,
}

impl PresetOptions {
    /// What tests and benches configure every preset with: `public_url`,
    /// and the senders `send` signs for by default
    /// ([`sending::DEFAULT_TOPIC_ARN`], ...).
    pub fn for_tests(public_url: &str) -> Self {
        Self {
            public_url: PublicUrl::parse(public_url).ok(),
            aws: Some(hookwarden_crds::AwsSnsSpec {
                topic_arns: vec![sending::DEFAULT_TOPIC_ARN.to_owned()],
                ..Default::default()
            }),
            paypal: Some(hookwarden_crds::PaypalSpec {
                webhook_id: sending::DEFAULT_PAYPAL_WEBHOOK_ID.to_owned(),
            }),
            google: Some(hookwarden_crds::GooglePubsubSpec {
                audience: None,
                service_account_email: sending::DEFAULT_SERVICE_ACCOUNT.to_owned(),
            }),
            ..Self::default()
        }
    }

    /// The key fetcher to use.
    pub fn fetcher(&self) -> std::sync::Arc<keys::KeyFetcher> {
        self.fetcher
            .clone()
            .unwrap_or_else(keys::KeyFetcher::shared)
    }
}

/// A `POST /` with `headers` and `body` through [`Verifier::check`].
#[cfg(test)]
pub(crate) fn check_post(
    verifier: &dyn Verifier,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Verdict, Rejection> {
    let uri = Uri::from_static("/");
    verifier.check(&Incoming {
        method: &Method::POST,
        uri: &uri,
        headers,
        body,
    })
}

/// The handshake of a verdict, or a panic naming what it was instead.
#[cfg(test)]
pub(crate) fn expect_handshake(verdict: Result<Verdict, Rejection>) -> Handshake {
    match verdict {
        Ok(Verdict::Handshake(handshake)) => {
            assert_eq!(handshake.verified.event.as_deref(), Some(HANDSHAKE_EVENT));
            assert!(!handshake.publish, "published only on request");
            handshake
        }
        other => panic!("expected a handshake, got {other:?}"),
    }
}
