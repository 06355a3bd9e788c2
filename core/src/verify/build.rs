//! Building an endpoint's verifier from its spec: its secrets loaded, the
//! preset's descriptor or the `generic` provider's checks, and why that can
//! fail ([`VerifierError`]).

use hookwarden_crds::{Provider, SecretKeyRef, WebhookEndpointSpec};
use http::HeaderMap;

use super::public_url::{PublicUrl, PublicUrlError};
use super::{
    DEFAULT_TIMESTAMP_TOLERANCE_SECS, GenericChecks, GenericVerifier, Handshake, Head, Incoming,
    Prefetch, Rejection, TemplateError, Verdict, Verified, Verifier, keys, registry, sending,
    system_clock,
};
use crate::secrets::{Secret, SecretError};

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
