//! The preset registry: everything Hookwarden knows about a provider, in one
//! descriptor per provider, found by an exhaustive match on [`Provider`].
//!
//! A new provider does not compile until it has all of it: how its verifier
//! is built from the spec, what its secret file holds, how it defends
//! against replays, how `hookwarden send` signs for it, its handshake, and
//! its row of docs/providers.md. The receiver, the CLI, the property and
//! fuzz tests, the benches and the docs iterate [`presets`]; nothing else
//! lists the providers.
//!
//! This module is the descriptor ([`Preset`]), the lookup ([`preset`],
//! [`presets`]) and the docs table; the descriptors themselves are grouped
//! by how the sender is authenticated: `signed` (a shared secret or the
//! provider's public key), `token`, `standard_webhooks_senders` and
//! `fetched` keys. The `generic` provider's is here.

mod fetched;
mod signed;
mod standard_webhooks_senders;
mod token;

use hookwarden_crds::Provider;

use super::public_url::PublicUrl;
use super::sending::{self, Delivery, SignError, SignInput, Signer};
use super::{Clock, DEFAULT_TIMESTAMP_TOLERANCE_SECS, PresetOptions, Verifier, VerifierError};
use crate::secrets::Secret;

/// What a preset's secret file (`secretRefs`) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The shared secret as the provider shows it, used as raw bytes.
    SharedSecret,
    /// A `whsec_<base64>` key (the prefix optional): the HMAC key is the
    /// decoded base64.
    WhsecKey,
    /// GitLab: a secret token, or a `whsec_…` signing token.
    TokenOrSigningToken,
    /// An HMAC key written as hex digits (Adyen).
    HexKey,
    /// An Ed25519 public key, 64 hex digits (Discord); `send` signs with the
    /// private key.
    Ed25519PublicKey,
    /// A P-256 public key, base64 DER (SendGrid); `send` signs with the
    /// private key.
    P256PublicKey,
    /// Nothing: the provider's certificate or JWKS is fetched (AWS SNS,
    /// PayPal, Google); the spec names the accepted senders. `send` signs
    /// with an RSA private key (PKCS#8 PEM).
    Fetched,
    /// Whatever `spec.verification` configures (`generic`).
    Configured,
}

/// A key pair for tests: what signs and what the receiver's secret file
/// holds (the same bytes for a shared secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestKey {
    /// What `send` signs with.
    pub signing: Vec<u8>,
    /// What the receiver verifies with.
    pub verifying: Vec<u8>,
}

impl KeyKind {
    /// The docs' words for it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::SharedSecret => "shared secret",
            Self::WhsecKey => "`whsec_<base64>` key",
            Self::TokenOrSigningToken => "secret token, or `whsec_` signing token",
            Self::HexKey => "HMAC key, hex",
            Self::Ed25519PublicKey => "Ed25519 public key, hex",
            Self::P256PublicKey => "P-256 public key, base64 DER",
            Self::Fetched => "nothing: the provider's key is fetched",
            Self::Configured => "per `spec.verification`",
        }
    }

    /// A key of this kind derived from `seed`, for tests: different seeds
    /// give different keys, the same seed the same key. `Fetched` keys are
    /// RSA, which cannot be derived from a seed: none is given (empty).
    pub fn test_key(self, seed: &str) -> TestKey {
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest: [u8; 32] = sha2::Sha256::digest(seed.as_bytes()).into();
        let same = |bytes: Vec<u8>| TestKey {
            signing: bytes.clone(),
            verifying: bytes,
        };
        match self {
            Self::SharedSecret | Self::Configured => same(seed.as_bytes().to_vec()),
            Self::Fetched => same(Vec::new()),
            Self::WhsecKey | Self::TokenOrSigningToken => same(
                format!(
                    "whsec_{}",
                    base64::engine::general_purpose::STANDARD.encode(seed)
                )
                .into_bytes(),
            ),
            Self::HexKey => same(hex::encode_upper(digest).into_bytes()),
            Self::Ed25519PublicKey => TestKey {
                signing: hex::encode(digest).into_bytes(),
                verifying: super::discord::public_key_hex(&digest).into_bytes(),
            },
            Self::P256PublicKey => {
                use p256::pkcs8::EncodePrivateKey as _;
                // A digest is a valid scalar but with probability ~2^-128;
                // hash again until it is.
                let mut scalar = digest;
                let key = loop {
                    if let Ok(key) = p256::SecretKey::from_slice(&scalar) {
                        break key;
                    }
                    scalar = sha2::Sha256::digest(scalar).into();
                };
                let der = key
                    .to_pkcs8_der()
                    .map(|d| d.as_bytes().to_vec())
                    .unwrap_or_default();
                let public = super::sendgrid::public_key_base64(&der).unwrap_or_default();
                TestKey {
                    signing: der,
                    verifying: public.into_bytes(),
                }
            }
        }
    }
}

/// How a preset defends against replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// A signed timestamp within a window; `spec.timestampToleranceSeconds`
    /// changes it.
    Window {
        /// The provider's window, in seconds.
        default_secs: u32,
    },
    /// A signed timestamp within a window the provider fixes.
    FixedWindow {
        /// The window, in seconds.
        secs: u32,
    },
    /// A signed token valid for its lifetime (Google's OIDC tokens, reused
    /// for an hour); `spec.timestampToleranceSeconds` changes the clock
    /// leeway on its `iat` and `exp`.
    TokenLifetime {
        /// How long the provider's token is valid.
        lifetime_secs: u32,
        /// The default clock leeway.
        leeway_secs: u32,
    },
    /// Nothing signed says when it was sent: replays are bounded only by
    /// the stream's de-duplication of delivery ids.
    Deduplication,
}

impl Replay {
    /// The window verification uses, given `spec.timestampToleranceSeconds`.
    pub fn tolerance(self, configured: Option<u32>) -> u32 {
        match self {
            Self::Window { default_secs } => configured.unwrap_or(default_secs),
            Self::FixedWindow { secs } => secs,
            Self::TokenLifetime { leeway_secs, .. } => configured.unwrap_or(leeway_secs),
            Self::Deduplication => configured.unwrap_or(DEFAULT_TIMESTAMP_TOLERANCE_SECS),
        }
    }

    /// How long after a delivery is first stored a capture of it still
    /// verifies, given `spec.timestampToleranceSeconds`: a signed time is
    /// accepted the window either side of the clock, and the provider's
    /// clock may be that far ahead, so twice the window (a token: its
    /// lifetime and leeway, twice). The stream's duplicate window must
    /// cover it. Without a signed time: twice the default window.
    pub fn capture_lifetime(self, configured: Option<u32>) -> u32 {
        let window = match self {
            Self::Window { default_secs } => {
                configured.unwrap_or(default_secs.max(DEFAULT_TIMESTAMP_TOLERANCE_SECS))
            }
            Self::FixedWindow { secs } => secs,
            Self::TokenLifetime {
                lifetime_secs,
                leeway_secs,
            } => lifetime_secs.saturating_add(configured.unwrap_or(leeway_secs)),
            Self::Deduplication => configured.unwrap_or(DEFAULT_TIMESTAMP_TOLERANCE_SECS),
        };
        window.max(1).saturating_mul(2)
    }

    /// The docs' words for it.
    pub fn describe(self) -> String {
        match self {
            Self::Window { default_secs } => format!("signed timestamp, {default_secs} s"),
            Self::FixedWindow { secs } => format!("signed timestamp, {secs} s (fixed)"),
            Self::TokenLifetime {
                lifetime_secs,
                leeway_secs,
            } => format!("token expiry ({lifetime_secs} s), {leeway_secs} s leeway"),
            Self::Deduplication => "de-duplication only".to_owned(),
        }
    }
}

/// What the signature covers: which changes to a delivery it detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Covers {
    /// Every byte of the body.
    Body,
    /// Chosen fields inside the body (Mailgun, Adyen): other bytes may
    /// change by the provider's design.
    BodyFields,
    /// Nothing: a shared token authenticates the sender (in a header, the
    /// query or the body); the body itself is not signed.
    Token,
    /// Whatever `spec.verification` configures.
    Configured,
}

/// A provider's endpoint-verification handshake.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeSupport {
    /// The docs' words for it.
    pub describe: &'static str,
    /// Whether the handshake request itself is authenticated (signed, or
    /// carrying the secret). An unauthenticated one is answered but can
    /// never be stored (`spec.handshake.publish`), or anyone could write
    /// "handshakes" into the stream.
    pub authenticated: bool,
    /// Sends it as the provider does (its secret: the preset's key, or
    /// Meta's verify token).
    pub sign: Signer,
}

/// What building a verifier needs beyond the secrets.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The replay window ([`Replay::tolerance`] of the spec's value).
    pub tolerance: u32,
    /// The clock the verifier reads.
    pub clock: Clock,
    /// The spec-derived settings (public URL, verify tokens, the fetched-key
    /// presets' accepted senders).
    pub preset: PresetOptions,
}

impl BuildOptions {
    fn public_url(&self, provider: Provider) -> Result<PublicUrl, VerifierError> {
        self.preset
            .public_url
            .clone()
            .ok_or(VerifierError::PublicUrlRequired(provider))
    }
}

/// Builds a preset's verifier.
pub type Build = fn(Vec<Secret>, &BuildOptions) -> Result<Box<dyn Verifier>, VerifierError>;

/// Everything about one provider preset.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// The provider.
    pub provider: Provider,
    /// What its secret file holds.
    pub key: KeyKind,
    /// Its replay defence.
    pub replay: Replay,
    /// What its signature covers.
    pub covers: Covers,
    /// Whether it signs the URL it calls (needs `spec.publicUrl` or
    /// `spec.ingress`).
    pub signs_url: bool,
    /// Builds the verifier.
    pub build: Build,
    /// Signs a delivery as the provider does.
    pub sign: Signer,
    /// Its handshake, if it has one.
    pub handshake: Option<HandshakeSupport>,
    /// The docs row: the signature scheme in a few words.
    pub scheme: &'static str,
    /// The provider's documentation of it.
    pub reference: &'static str,
}

impl Preset {
    /// The name written in a manifest.
    pub fn name(&self) -> String {
        self.provider.manifest_name()
    }

    /// Its verifier for `secrets`, with `spec.timestampToleranceSeconds`
    /// (`tolerance`), the spec-derived `options` and `clock`.
    pub fn verifier(
        &self,
        secrets: Vec<Secret>,
        tolerance: Option<u32>,
        options: PresetOptions,
        clock: Clock,
    ) -> Result<Box<dyn Verifier>, VerifierError> {
        (self.build)(
            secrets,
            &BuildOptions {
                tolerance: self.replay.tolerance(tolerance),
                clock,
                preset: options,
            },
        )
    }

    /// Signs a delivery with `secret` as the provider would.
    pub fn sign(&self, secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
        (self.sign)(secret, input)
    }
}

/// Every preset, in the order of [`Provider::ALL`].
pub fn presets() -> impl Iterator<Item = &'static Preset> {
    Provider::ALL.iter().map(|&provider| preset(provider))
}

/// The descriptor of `provider`.
pub fn preset(provider: Provider) -> &'static Preset {
    match provider {
        Provider::Github => &signed::GITHUB,
        Provider::Gitlab => &signed::GITLAB,
        Provider::Bitbucket => &signed::BITBUCKET,
        Provider::Stripe => &signed::STRIPE,
        Provider::Slack => &signed::SLACK,
        Provider::StandardWebhooks => &signed::STANDARD_WEBHOOKS,
        Provider::Svix => &signed::SVIX,
        Provider::Shopify => &signed::SHOPIFY,
        Provider::Twilio => &signed::TWILIO,
        Provider::Paddle => &signed::PADDLE,
        Provider::Square => &signed::SQUARE,
        Provider::Zoom => &signed::ZOOM,
        Provider::Twitch => &signed::TWITCH,
        Provider::Discord => &signed::DISCORD,
        Provider::Sendgrid => &signed::SENDGRID,
        Provider::Mailgun => &signed::MAILGUN,
        Provider::Linear => &signed::LINEAR,
        Provider::Intercom => &signed::INTERCOM,
        Provider::Pagerduty => &signed::PAGERDUTY,
        Provider::Meta => &signed::META,
        Provider::Adyen => &signed::ADYEN,
        Provider::Hubspot => &signed::HUBSPOT,
        Provider::Zendesk => &signed::ZENDESK,
        Provider::Xero => &signed::XERO,
        Provider::Docusign => &signed::DOCUSIGN,
        Provider::Dropbox => &signed::DROPBOX,
        Provider::Twitter => &signed::TWITTER,
        Provider::Trello => &signed::TRELLO,
        Provider::Okta => &token::OKTA,
        Provider::AzureEventGrid => &token::AZURE_EVENT_GRID,
        Provider::MicrosoftGraph => &token::MICROSOFT_GRAPH,
        Provider::AwsSns => &fetched::AWS_SNS,
        Provider::Paypal => &fetched::PAYPAL,
        Provider::GooglePubsub => &fetched::GOOGLE_PUBSUB,
        Provider::Clerk => &standard_webhooks_senders::CLERK,
        Provider::Resend => &standard_webhooks_senders::RESEND,
        Provider::Openai => &standard_webhooks_senders::OPENAI,
        Provider::Replicate => &standard_webhooks_senders::REPLICATE,
        Provider::Brex => &standard_webhooks_senders::BREX,
        Provider::Polar => &standard_webhooks_senders::POLAR,
        Provider::Generic => &GENERIC,
    }
}

/// A preset that signs the body with a shared secret and no timestamp.
const fn body_hmac(
    provider: Provider,
    build: Build,
    sign: Signer,
    scheme: &'static str,
    reference: &'static str,
) -> Preset {
    Preset {
        provider,
        key: KeyKind::SharedSecret,
        replay: Replay::Deduplication,
        covers: Covers::Body,
        signs_url: false,
        build,
        sign,
        handshake: None,
        scheme,
        reference,
    }
}

/// A preset that signs a timestamp and the body with a shared secret.
const fn stamped_hmac(
    provider: Provider,
    default_secs: u32,
    build: Build,
    sign: Signer,
    scheme: &'static str,
    reference: &'static str,
) -> Preset {
    Preset {
        replay: Replay::Window { default_secs },
        ..body_hmac(provider, build, sign, scheme, reference)
    }
}

static GENERIC: Preset = Preset {
    key: KeyKind::Configured,
    covers: Covers::Configured,
    ..body_hmac(
        Provider::Generic,
        // Built from spec.verification by `for_endpoint`.
        |_, _| Err(VerifierError::NoChecks),
        sending::configured,
        "token, HTTP Basic, HMAC and/or JWT as `spec.verification` configures",
        "receiver.md#verification",
    )
};

/// The table of docs/providers.md between its `presets` markers.
pub fn docs_table() -> String {
    let mut table = String::from(
        "| Preset | Signature | Secret file holds | Replay defence | Handshake |\n|---|---|---|---|---|\n",
    );
    for preset in presets() {
        let handshake = preset.handshake.map_or("—", |h| h.describe);
        let url = if preset.signs_url {
            " (signs the public URL)"
        } else {
            ""
        };
        table.push_str(&format!(
            "| [`{}`]({}) | {}{url} | {} | {} | {handshake} |\n",
            preset.name(),
            preset.reference,
            preset.scheme,
            preset.key.describe(),
            preset.replay.describe(),
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_descriptor_is_its_providers() {
        for (index, preset) in presets().enumerate() {
            assert_eq!(preset.provider, Provider::ALL[index]);
        }
    }

    /// The Standard Webhooks reference vector verifies through every named
    /// sender's descriptor, under its header names; Polar's key is the
    /// secret's own bytes, so its secret file holds the decoded key.
    #[test]
    fn standard_webhooks_senders_verify_the_published_vector() {
        use super::super::standard_webhooks::shared_tests::{
            VECTOR_BODY, VECTOR_ID, VECTOR_SECRET, VECTOR_SIGNATURE, VECTOR_TIMESTAMP,
        };
        use http::{HeaderMap, HeaderValue};
        fn clock() -> i64 {
            VECTOR_TIMESTAMP + 5
        }
        let cases = [
            (Provider::Clerk, "svix"),
            (Provider::Resend, "svix"),
            (Provider::Openai, "webhook"),
            (Provider::Replicate, "webhook"),
            (Provider::Brex, "webhook"),
            (Provider::Polar, "webhook"),
        ];
        for (provider, prefix) in cases {
            let preset = preset(provider);
            let secret = if provider == Provider::Polar {
                super::super::standard_webhooks::decode_secret(VECTOR_SECRET.as_bytes())
                    .expect("base64")
            } else {
                VECTOR_SECRET.as_bytes().to_vec()
            };
            let verifier = preset
                .verifier(
                    vec![Secret::from(secret)],
                    None,
                    PresetOptions::default(),
                    clock,
                )
                .expect("verifier");
            assert_eq!(verifier.provider(), preset.name());
            let mut headers = HeaderMap::new();
            for (name, value) in [
                ("id", VECTOR_ID.to_owned()),
                ("timestamp", VECTOR_TIMESTAMP.to_string()),
                ("signature", VECTOR_SIGNATURE.to_owned()),
            ] {
                headers.insert(
                    http::HeaderName::from_bytes(format!("{prefix}-{name}").as_bytes())
                        .expect("name"),
                    HeaderValue::from_str(&value).expect("value"),
                );
            }
            let verified = verifier
                .verify(&headers, VECTOR_BODY.as_bytes())
                .unwrap_or_else(|e| panic!("{}: {e}", preset.name()));
            assert_eq!(verified.delivery_id.as_deref(), Some(VECTOR_ID));
            let mut tampered = VECTOR_BODY.as_bytes().to_vec();
            tampered.push(b' ');
            assert!(verifier.verify(&headers, &tampered).is_err());
        }
    }

    #[test]
    fn test_keys_differ_by_seed_and_repeat_by_seed() {
        for preset in presets().filter(|p| p.key != KeyKind::Fetched) {
            let a = preset.key.test_key("a");
            assert_eq!(a, preset.key.test_key("a"), "{}", preset.name());
            assert_ne!(a, preset.key.test_key("b"), "{}", preset.name());
            assert!(!a.verifying.is_empty() && !a.signing.is_empty());
        }
    }
}
