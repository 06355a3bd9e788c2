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
pub mod discord;
pub mod docusign;
pub mod dropbox;
pub mod entra;
mod generic;
mod github;
pub mod gitlab;
pub mod google_pubsub;
mod handshake_common;
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
pub mod xero;
pub mod zendesk;
pub mod zoom;

pub use adyen::AdyenVerifier;
pub use aws_sns::AwsSnsVerifier;
pub use bitbucket::BitbucketVerifier;
pub use discord::DiscordVerifier;
pub use generic::{
    GenericChecks, GenericVerifier, SignRequest as GenericSignRequest, TemplateError,
    sign as sign_generic,
};
pub use github::GithubVerifier;
pub use gitlab::GitlabVerifier;
pub use google_pubsub::GooglePubsubVerifier;
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
pub use zoom::ZoomVerifier;

use hookwarden_crds::{Provider, SecretKeyRef, WebhookEndpointSpec};
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

/// The default [`Verifier::precheck`]: at least one of `names` (the headers
/// a signature or token is read from) is present; each present one occurs
/// once and is of sane length. No names: nothing to check before the body.
pub(crate) fn credential_header_present(
    headers: &HeaderMap,
    names: &[&str],
) -> Result<(), Rejection> {
    if names.is_empty() {
        return Ok(());
    }
    let mut present = false;
    for name in names {
        match single_header(headers, name) {
            Err(()) => return Err(Rejection::SignatureMalformed),
            Ok(Some(value)) if value.len() > hmac_common::MAX_SIGNATURE_HEADER_LEN => {
                return Err(Rejection::SignatureMalformed);
            }
            Ok(Some(_)) => present = true,
            Ok(None) => {}
        }
    }
    if present {
        Ok(())
    } else {
        Err(Rejection::SignatureMissing)
    }
}

/// What to do with a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A delivery: store it.
    Deliver(Verified),
    /// A provider's endpoint-verification handshake, verified where the
    /// provider signs it: answer it; store it only if `publish`.
    Handshake(Handshake),
}

/// A verified handshake and the answer the provider expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// What verification learned; the event is always `handshake`.
    pub verified: Verified,
    /// The answer's `Content-Type`.
    pub content_type: &'static str,
    /// The answer's body.
    pub body: Vec<u8>,
    /// Also store the request (`spec.handshake.publish`).
    pub publish: bool,
    /// Response headers the answer needs besides `Content-Type` (the
    /// CloudEvents `OPTIONS` handshake answers in `WebHook-Allowed-Origin`).
    pub headers: Vec<(&'static str, String)>,
}

/// The event type handshakes are reported (and published) under.
pub const HANDSHAKE_EVENT: &str = "handshake";

impl Handshake {
    /// The verdict answering a handshake with `body`, not published.
    pub(crate) fn answer(verified: Verified, content_type: &'static str, body: Vec<u8>) -> Verdict {
        Verdict::Handshake(Self {
            verified: Verified {
                event: Some(HANDSHAKE_EVENT.to_owned()),
                ..verified
            },
            content_type,
            body,
            publish: false,
            headers: Vec::new(),
        })
    }
}

/// A challenge a handshake echoes back: at most 1024 bytes of visible ASCII
/// (what providers send), anything else is refused rather than reflected.
pub(crate) fn challenge(value: Option<&str>) -> Result<String, Rejection> {
    let value = value.ok_or(Rejection::HandshakeMalformed)?;
    if value.is_empty() || value.len() > 1024 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Rejection::HandshakeMalformed);
    }
    Ok(value.to_owned())
}

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
    /// The signature verified, but the body does not match the hash the
    /// signed URL carries (Twilio's `bodySHA256`).
    #[error("body_hash_mismatch")]
    BodyHashMismatch,
    /// A handshake (verified where signed) lacks what must be answered, or
    /// is not the provider's documented shape.
    #[error("handshake_malformed")]
    HandshakeMalformed,
    /// The key the delivery names could not be fetched (network failure,
    /// timeout, no usable key, or the fetch bounds): answered 503 so the
    /// provider retries.
    #[error("key_unavailable")]
    KeyUnavailable,
    /// The delivery names a key URL outside the provider's hosts; nothing
    /// was fetched.
    #[error("key_url_not_allowed")]
    KeyUrlNotAllowed,
    /// The signing certificate the delivery names was fetched from the
    /// provider's host but fails the provider's own checks
    /// ([`keys::certificate`]): expired, not yet valid, for another
    /// subject, or not chained to a trusted root. The
    /// URL is then not fetched again for a while and gets the same answer.
    #[error("{}", self.code())]
    KeyCertificate(keys::CertificateFault),
    /// The signature verified, but the sender is not one the endpoint
    /// accepts (an SNS topic outside `spec.aws.topicArns`, another Google
    /// service account).
    #[error("sender_not_allowed")]
    SenderNotAllowed,
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
            Self::BodyHashMismatch => "body_hash_mismatch",
            Self::HandshakeMalformed => "handshake_malformed",
            Self::KeyUnavailable => "key_unavailable",
            Self::KeyUrlNotAllowed => "key_url_not_allowed",
            Self::KeyCertificate(fault) => match fault {
                keys::CertificateFault::Expired => "key_certificate_expired",
                keys::CertificateFault::NotYetValid => "key_certificate_not_yet_valid",
                keys::CertificateFault::WrongSubject => "key_certificate_wrong_subject",
                keys::CertificateFault::Untrusted => "key_certificate_untrusted",
            },
            Self::SenderNotAllowed => "sender_not_allowed",
        }
    }
}

impl From<keys::KeyError> for Rejection {
    /// A URL outside the host rule is the sender's fault, as is a refused
    /// certificate; anything else about the fetch is retried later.
    fn from(error: keys::KeyError) -> Self {
        match error {
            keys::KeyError::NotAllowed => Self::KeyUrlNotAllowed,
            keys::KeyError::Unavailable(_) => Self::KeyUnavailable,
            keys::KeyError::Certificate(fault) => Self::KeyCertificate(fault),
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

/// A verifier whose handshakes are also stored (`spec.handshake.publish`).
#[derive(Debug)]
struct PublishHandshakes(Box<dyn Verifier>);

impl Verifier for PublishHandshakes {
    fn provider(&self) -> &'static str {
        self.0.provider()
    }

    fn secret_headers(&self) -> Vec<&str> {
        self.0.secret_headers()
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        self.0.verify(headers, body)
    }

    fn precheck(&self, request: &Head<'_>) -> Result<(), Rejection> {
        self.0.precheck(request)
    }

    fn plain_headers(&self) -> Vec<&str> {
        self.0.plain_headers()
    }

    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        match self.0.check(request)? {
            Verdict::Handshake(handshake) => Ok(Verdict::Handshake(Handshake {
                publish: true,
                ..handshake
            })),
            deliver => Ok(deliver),
        }
    }

    fn answers_get(&self) -> bool {
        self.0.answers_get()
    }

    fn answers_options(&self) -> bool {
        self.0.answers_options()
    }

    fn answers_head(&self) -> bool {
        self.0.answers_head()
    }

    fn prefetch(&self, request: &Incoming<'_>) -> Option<Prefetch> {
        self.0.prefetch(request)
    }
}

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

/// How long after a delivery is first stored a capture of it still
/// verifies, in seconds: a signed timestamp is accepted up to the tolerance
/// either side of the receiver's clock, and the provider's clock may be that
/// far ahead, so a delivery stored at `t` can be replayed until
/// `t + 2 × tolerance`. The stream's duplicate window must cover it
/// ([`crate::publish::StreamSettings::from_spec`]). Presets with a fixed
/// window use theirs; presets without a signed timestamp use the default
/// tolerance (their replays are bounded only by de-duplication).
pub fn replay_window_secs(spec: &WebhookEndpointSpec) -> u32 {
    registry::preset(spec.provider)
        .replay
        .capture_lifetime(spec.timestamp_tolerance_seconds)
}

/// The verifier an endpoint's spec asks for, with its secrets loaded by
/// `load` (from files in the receiver, from the API in tests of the operator).
pub fn for_endpoint(
    spec: &WebhookEndpointSpec,
    load: impl Fn(&[SecretKeyRef]) -> Result<Vec<Secret>, SecretError>,
) -> Result<Box<dyn Verifier>, VerifierError> {
    for_endpoint_with_fetcher(spec, load, None)
}

/// As [`for_endpoint`], the fetched-key presets fetching through `fetcher`
/// ([`PresetOptions::fetcher`]; `None`: the process's).
pub fn for_endpoint_with_fetcher(
    spec: &WebhookEndpointSpec,
    load: impl Fn(&[SecretKeyRef]) -> Result<Vec<Secret>, SecretError>,
    fetcher: Option<std::sync::Arc<keys::KeyFetcher>>,
) -> Result<Box<dyn Verifier>, VerifierError> {
    if spec.provider != Provider::Generic {
        if spec.verification.is_some() {
            return Err(VerifierError::VerificationWithPreset(spec.provider));
        }
        let handshake = spec.handshake.clone().unwrap_or_default();
        let verify_tokens = if handshake.verify_token_refs.is_empty() {
            Vec::new()
        } else {
            load(&handshake.verify_token_refs)?
        };
        let options = PresetOptions {
            public_url: PublicUrl::from_spec(spec)?,
            verify_tokens,
            publish_handshakes: handshake.publish,
            aws: spec.aws.clone(),
            paypal: spec.paypal.clone(),
            google: spec.google.clone(),
            azure: spec.azure.clone(),
            graph: spec.graph.clone(),
            okta: spec.okta.clone(),
            fetcher,
        };
        return for_preset(
            spec.provider,
            load(&spec.secret_refs)?,
            spec.timestamp_tolerance_seconds,
            options,
        );
    }
    let mut checks = generic_checks(spec, load)?;
    checks.fetcher = fetcher;
    Ok(Box::new(GenericVerifier::new(checks)?))
}

/// The `generic` provider's checks of `spec.verification` with their
/// secrets loaded by `load` (a check without its own `secretRefs` uses the
/// endpoint's).
pub fn generic_checks(
    spec: &WebhookEndpointSpec,
    load: impl Fn(&[SecretKeyRef]) -> Result<Vec<Secret>, SecretError>,
) -> Result<GenericChecks, VerifierError> {
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
    let jwt = match verification.jwt {
        // Its keys are fetched from jwksUrl: none are loaded (and its own
        // secretRefs are refused when the check is built).
        Some(check) if check.jwks_url.is_some() => Some((Vec::new(), check)),
        Some(check) => Some((refs(&check.secret_refs)?, check)),
        None => None,
    };
    // Only a check with a template can sign the URL: an unusable
    // spec.publicUrl on any other generic endpoint stays as ignored as before.
    let public_url = if hmac
        .as_ref()
        .is_some_and(|(_, check)| check.signed_content.is_some())
    {
        PublicUrl::from_spec(spec)?
    } else {
        None
    };
    Ok(GenericChecks {
        public_url,
        token: token.map(|(secrets, check)| (check, secrets)),
        basic: basic.map(|(secrets, check)| (check, secrets)),
        hmac: hmac.map(|(secrets, check)| (check, secrets)),
        jwt: jwt.map(|(secrets, check)| (check, secrets)),
        event_header: verification.event_header,
        delivery_id_header: verification.delivery_id_header,
        timestamp_tolerance_secs: spec
            .timestamp_tolerance_seconds
            .unwrap_or(DEFAULT_TIMESTAMP_TOLERANCE_SECS),
        fetcher: None,
    })
}

/// The verifier for an endpoint's provider preset. `tolerance_secs`
/// (`spec.timestampToleranceSeconds`) overrides the preset's replay window
/// for presets that sign a timestamp; `None` keeps the provider's default.
/// Presets that sign the URL (`twilio`, `square`) need [`for_preset`].
pub fn for_provider(
    provider: Provider,
    secrets: Vec<Secret>,
    tolerance_secs: Option<u32>,
) -> Result<Box<dyn Verifier>, VerifierError> {
    for_preset(provider, secrets, tolerance_secs, PresetOptions::default())
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

/// As [`for_provider`], with the spec-derived `options`.
pub fn for_preset(
    provider: Provider,
    secrets: Vec<Secret>,
    tolerance_secs: Option<u32>,
    options: PresetOptions,
) -> Result<Box<dyn Verifier>, VerifierError> {
    let preset = registry::preset(provider);
    if options.publish_handshakes && preset.handshake.is_some_and(|h| !h.authenticated) {
        return Err(VerifierError::UnauthenticatedHandshake(provider));
    }
    let publish_handshakes = options.publish_handshakes;
    let verifier = preset.verifier(secrets, tolerance_secs, options, system_clock)?;
    Ok(if publish_handshakes {
        Box::new(PublishHandshakes(verifier))
    } else {
        verifier
    })
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
    fn every_preset_is_built_under_its_manifest_name_and_needs_a_secret() {
        let url = PublicUrl::parse("https://hooks.example.com/in").expect("url");
        for preset in registry::presets() {
            let name = preset.name();
            let key = preset.key.test_key("s/k");
            let options = || PresetOptions {
                public_url: Some(url.clone()),
                ..PresetOptions::default()
            };
            if preset.key == registry::KeyKind::Fetched {
                // No secrets; built from their settings (tested below).
                continue;
            }
            if preset.key == registry::KeyKind::Configured {
                assert!(matches!(
                    for_preset(
                        preset.provider,
                        vec![Secret::from(key.verifying)],
                        None,
                        options()
                    ),
                    Err(VerifierError::NoChecks)
                ));
                continue;
            }
            let verifier = for_preset(
                preset.provider,
                vec![Secret::from(key.verifying)],
                None,
                options(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(verifier.provider(), name);
            assert!(
                matches!(
                    for_preset(preset.provider, Vec::new(), None, options()),
                    Err(VerifierError::NoSecrets)
                ),
                "{name}"
            );
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
    fn handshake_publish_marks_handshakes_only() {
        let body = slack::url_verification_body("c1");
        let now = hmac_common::system_clock();
        let mut headers = HeaderMap::new();
        for (name, value) in slack::sign(b"s/k", now, &body) {
            headers.insert(name, value.parse().expect("header value"));
        }
        let published = for_endpoint(
            &spec("  provider: slack\n  secretRefs: [{name: s, key: k}]\n  handshake: {publish: true}\n"),
            load,
        )
        .expect("verifier");
        assert_eq!(published.provider(), "slack");
        assert!(matches!(
            check_post(published.as_ref(), &headers, &body),
            Ok(Verdict::Handshake(Handshake { publish: true, .. }))
        ));
        let quiet = for_endpoint(
            &spec("  provider: slack\n  secretRefs: [{name: s, key: k}]\n"),
            load,
        )
        .expect("verifier");
        expect_handshake(check_post(quiet.as_ref(), &headers, &body));
        // Meta's verify tokens come from spec.handshake.verifyTokenRefs.
        let meta = for_endpoint(
            &spec("  provider: meta\n  secretRefs: [{name: s, key: k}]\n  handshake: {verifyTokenRefs: [{name: v, key: t}]}\n"),
            load,
        )
        .expect("verifier");
        assert!(meta.answers_get());
        let uri: Uri = format!("/?{}", meta::subscription_query("v/t", "42"))
            .parse()
            .expect("uri");
        let answered = meta.check(&Incoming {
            method: &Method::GET,
            uri: &uri,
            headers: &HeaderMap::new(),
            body: b"",
        });
        assert_eq!(expect_handshake(answered).body, b"42");
    }

    #[test]
    fn unauthenticated_handshakes_are_never_published() {
        for provider in ["dropbox", "twitter", "microsoft-graph"] {
            let err = for_endpoint(
                &spec(&format!(
                    "  provider: {provider}\n  secretRefs: [{{name: s, key: k}}]\n  handshake: {{publish: true}}\n"
                )),
                load,
            )
            .expect_err(provider);
            assert!(
                matches!(err, VerifierError::UnauthenticatedHandshake(_)),
                "{provider}: {err}"
            );
            assert!(
                for_endpoint(
                    &spec(&format!(
                        "  provider: {provider}\n  secretRefs: [{{name: s, key: k}}]\n"
                    )),
                    load,
                )
                .is_ok(),
                "{provider}"
            );
        }
        // An authenticated handshake may be.
        assert!(
            for_endpoint(
                &spec("  provider: okta\n  secretRefs: [{name: s, key: k}]\n  handshake: {publish: true}\n"),
                load,
            )
            .is_ok()
        );
    }

    #[test]
    fn fetched_key_presets_need_no_secrets_but_their_settings() {
        for (yaml, name) in [
            (
                "  provider: aws-sns\n  aws: {topicArns: [arn:aws:sns:us-east-1:1:t]}\n",
                "aws-sns",
            ),
            (
                "  provider: paypal\n  paypal: {webhookId: 4JH86294D6297924G}\n",
                "paypal",
            ),
            (
                "  provider: google-pubsub\n  google: {serviceAccountEmail: a@p.iam.gserviceaccount.com}\n  publicUrl: https://hooks.example.com/in\n",
                "google-pubsub",
            ),
            (
                "  provider: google-pubsub\n  google: {audience: x, serviceAccountEmail: a@p.iam.gserviceaccount.com}\n",
                "google-pubsub",
            ),
        ] {
            let verifier =
                for_endpoint(&spec(yaml), load).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(verifier.provider(), name);
        }
        for yaml in [
            "  provider: aws-sns\n",
            "  provider: paypal\n",
            "  provider: google-pubsub\n  google: {serviceAccountEmail: a@p.iam.gserviceaccount.com}\n",
        ] {
            let err = for_endpoint(&spec(yaml), load).expect_err(yaml);
            assert!(
                matches!(err, VerifierError::SettingRequired { .. }),
                "{err}"
            );
        }
        assert_eq!(
            replay_window_secs(&spec("  provider: google-pubsub\n")),
            2 * (3600 + 60)
        );
        assert_eq!(replay_window_secs(&spec("  provider: aws-sns\n")), 2 * 3600);
    }

    #[test]
    fn a_secret_header_that_is_no_header_name_is_a_startup_error() {
        for (provider, settings, field) in [
            (
                "okta",
                "okta: {authHeader: 'X Secret'}",
                "spec.okta.authHeader",
            ),
            (
                "azure-event-grid",
                "azure: {secretHeader: 'a:b'}",
                "spec.azure.secretHeader",
            ),
        ] {
            let err = for_endpoint(
                &spec(&format!(
                    "  provider: {provider}\n  secretRefs: [{{name: s, key: k}}]\n  {settings}\n"
                )),
                load,
            )
            .expect_err(provider);
            assert!(
                matches!(err, VerifierError::Invalid { field: f, .. } if f == field),
                "{provider}: {err}"
            );
        }
    }

    #[test]
    fn url_signing_presets_need_a_public_url() {
        for provider in ["twilio", "square"] {
            let err = for_endpoint(
                &spec(&format!(
                    "  provider: {provider}\n  secretRefs: [{{name: s, key: k}}]\n"
                )),
                load,
            )
            .expect_err(provider);
            assert!(
                err.to_string()
                    .contains("set spec.publicUrl, or spec.ingress (host and path)"),
                "{err}"
            );
            for extra in [
                "  ingress: {host: hooks.example.com, path: /in}\n",
                "  publicUrl: https://hooks.example.com/in\n",
            ] {
                let verifier = for_endpoint(
                    &spec(&format!(
                        "  provider: {provider}\n  secretRefs: [{{name: s, key: k}}]\n{extra}"
                    )),
                    load,
                )
                .unwrap_or_else(|e| panic!("{provider}: {e}"));
                assert_eq!(verifier.provider(), provider);
            }
            let err = for_endpoint(
                &spec(&format!(
                    "  provider: {provider}\n  secretRefs: [{{name: s, key: k}}]\n  publicUrl: hooks.example.com/in\n"
                )),
                load,
            )
            .expect_err("no scheme");
            assert!(err.to_string().contains("spec.publicUrl"), "{err}");
        }
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
