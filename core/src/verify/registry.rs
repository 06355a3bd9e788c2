//! The preset registry: everything Hookwarden knows about a provider, in one
//! descriptor per provider, found by an exhaustive match on [`Provider`].
//!
//! A new provider does not compile until it has all of it: how its verifier
//! is built from the spec, what its secret file holds, how it defends
//! against replays, how `hookwarden send` signs for it, its handshake, and
//! its row of docs/providers.md. The receiver, the CLI, the property and
//! fuzz tests, the benches and the docs iterate [`presets`]; nothing else
//! lists the providers.

use hookwarden_crds::Provider;

use super::public_url::PublicUrl;
use super::sending::{self, Delivery, SignError, SignInput, Signer};
use super::{
    AdyenVerifier, BitbucketVerifier, Clock, DEFAULT_TIMESTAMP_TOLERANCE_SECS, DiscordVerifier,
    GithubVerifier, GitlabVerifier, IntercomVerifier, LinearVerifier, MailgunVerifier,
    MetaVerifier, PaddleVerifier, PagerdutyVerifier, PresetOptions, SendgridVerifier,
    ShopifyVerifier, SlackVerifier, SquareVerifier, StandardWebhooksVerifier, StripeVerifier,
    TwilioVerifier, TwitchVerifier, Verifier, VerifierError, ZoomVerifier, aws_sns,
    azure_event_grid, docusign, dropbox, entra, gitlab, google_pubsub, hubspot, linear,
    microsoft_graph, okta, paddle, paypal, slack, standard_webhooks, stripe, svix, trello, twitch,
    twitter, xero, zendesk, zoom,
};
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
        Provider::Github => &GITHUB,
        Provider::Gitlab => &GITLAB,
        Provider::Bitbucket => &BITBUCKET,
        Provider::Stripe => &STRIPE,
        Provider::Slack => &SLACK,
        Provider::StandardWebhooks => &STANDARD_WEBHOOKS,
        Provider::Svix => &SVIX,
        Provider::Shopify => &SHOPIFY,
        Provider::Twilio => &TWILIO,
        Provider::Paddle => &PADDLE,
        Provider::Square => &SQUARE,
        Provider::Zoom => &ZOOM,
        Provider::Twitch => &TWITCH,
        Provider::Discord => &DISCORD,
        Provider::Sendgrid => &SENDGRID,
        Provider::Mailgun => &MAILGUN,
        Provider::Linear => &LINEAR,
        Provider::Intercom => &INTERCOM,
        Provider::Pagerduty => &PAGERDUTY,
        Provider::Meta => &META,
        Provider::Adyen => &ADYEN,
        Provider::Hubspot => &HUBSPOT,
        Provider::Zendesk => &ZENDESK,
        Provider::Xero => &XERO,
        Provider::Docusign => &DOCUSIGN,
        Provider::Dropbox => &DROPBOX,
        Provider::Twitter => &TWITTER,
        Provider::Trello => &TRELLO,
        Provider::Okta => &OKTA,
        Provider::AzureEventGrid => &AZURE_EVENT_GRID,
        Provider::MicrosoftGraph => &MICROSOFT_GRAPH,
        Provider::AwsSns => &AWS_SNS,
        Provider::Paypal => &PAYPAL,
        Provider::GooglePubsub => &GOOGLE_PUBSUB,
        Provider::Clerk => &CLERK,
        Provider::Resend => &RESEND,
        Provider::Openai => &OPENAI,
        Provider::Replicate => &REPLICATE,
        Provider::Brex => &BREX,
        Provider::Polar => &POLAR,
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

static GITHUB: Preset = body_hmac(
    Provider::Github,
    |s, _| Ok(Box::new(GithubVerifier::new(s)?)),
    sending::github,
    "`X-Hub-Signature-256`: HMAC-SHA256 of the body, hex",
    "https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries",
);

static GITLAB: Preset = Preset {
    key: KeyKind::TokenOrSigningToken,
    replay: Replay::Window {
        default_secs: gitlab::DEFAULT_TOLERANCE_SECS,
    },
    ..body_hmac(
        Provider::Gitlab,
        |s, o| {
            Ok(Box::new(GitlabVerifier::with_clock(
                s,
                o.tolerance,
                o.clock,
            )?))
        },
        sending::gitlab,
        "`X-Gitlab-Token`; a signing token adds Standard Webhooks headers",
        "https://docs.gitlab.com/user/project/integrations/webhooks/",
    )
};

static BITBUCKET: Preset = body_hmac(
    Provider::Bitbucket,
    |s, _| Ok(Box::new(BitbucketVerifier::new(s)?)),
    sending::bitbucket,
    "`X-Hub-Signature`: HMAC-SHA256 of the body, hex",
    "https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/",
);

static STRIPE: Preset = stamped_hmac(
    Provider::Stripe,
    stripe::DEFAULT_TOLERANCE_SECS,
    |s, o| {
        Ok(Box::new(StripeVerifier::with_clock(
            s,
            o.tolerance,
            o.clock,
        )?))
    },
    sending::stripe,
    "`Stripe-Signature: t=…,v1=…`: HMAC-SHA256 of `<t>.<body>`, hex",
    "https://docs.stripe.com/webhooks#verify-manually",
);

static SLACK: Preset = Preset {
    handshake: Some(HandshakeSupport {
        describe: "`url_verification` challenge",
        authenticated: true,
        sign: sending::slack_handshake,
    }),
    ..stamped_hmac(
        Provider::Slack,
        slack::DEFAULT_TOLERANCE_SECS,
        |s, o| {
            Ok(Box::new(SlackVerifier::with_clock(
                s,
                o.tolerance,
                o.clock,
            )?))
        },
        sending::slack,
        "`X-Slack-Signature: v0=…`: HMAC-SHA256 of `v0:<ts>:<body>`, hex",
        "https://api.slack.com/authentication/verifying-requests-from-slack",
    )
};

static STANDARD_WEBHOOKS: Preset = Preset {
    key: KeyKind::WhsecKey,
    ..stamped_hmac(
        Provider::StandardWebhooks,
        standard_webhooks::DEFAULT_TOLERANCE_SECS,
        |s, o| {
            Ok(Box::new(StandardWebhooksVerifier::with_clock(
                standard_webhooks::SCHEME,
                s,
                o.tolerance,
                o.clock,
            )?))
        },
        sending::standard_webhooks,
        "`webhook-signature: v1,…`: HMAC-SHA256 of `<id>.<ts>.<body>`, base64 (or `v1a` Ed25519)",
        "https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md",
    )
};

static SVIX: Preset = Preset {
    key: KeyKind::WhsecKey,
    ..stamped_hmac(
        Provider::Svix,
        svix::DEFAULT_TOLERANCE_SECS,
        |s, o| {
            Ok(Box::new(svix::verifier_with_clock(
                s,
                o.tolerance,
                o.clock,
            )?))
        },
        sending::svix,
        "`svix-signature`: Standard Webhooks under `svix-*` names",
        "https://docs.svix.com/receiving/verifying-payloads/how-manual",
    )
};

static SHOPIFY: Preset = body_hmac(
    Provider::Shopify,
    |s, _| Ok(Box::new(ShopifyVerifier::new(s)?)),
    sending::shopify,
    "`X-Shopify-Hmac-Sha256`: HMAC-SHA256 of the body, base64",
    "https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook",
);

static TWILIO: Preset = Preset {
    signs_url: true,
    ..body_hmac(
        Provider::Twilio,
        |s, o| {
            Ok(Box::new(TwilioVerifier::new(
                s,
                o.public_url(Provider::Twilio)?,
            )?))
        },
        sending::twilio,
        "`X-Twilio-Signature`: HMAC-SHA1 of the URL and form parameters (or `bodySHA256`), base64",
        "https://www.twilio.com/docs/usage/webhooks/webhooks-security",
    )
};

static PADDLE: Preset = stamped_hmac(
    Provider::Paddle,
    paddle::DEFAULT_TOLERANCE_SECS,
    |s, o| {
        Ok(Box::new(PaddleVerifier::with_clock(
            s,
            o.tolerance,
            o.clock,
        )?))
    },
    sending::paddle,
    "`Paddle-Signature: ts=…;h1=…`: HMAC-SHA256 of `<ts>:<body>`, hex",
    "https://developer.paddle.com/webhooks/signature-verification",
);

static SQUARE: Preset = Preset {
    signs_url: true,
    ..body_hmac(
        Provider::Square,
        |s, o| {
            Ok(Box::new(SquareVerifier::new(
                s,
                o.public_url(Provider::Square)?,
            )?))
        },
        sending::square,
        "`x-square-hmacsha256-signature`: HMAC-SHA256 of the URL and body, base64",
        "https://developer.squareup.com/docs/webhooks/step3validate",
    )
};

static ZOOM: Preset = Preset {
    handshake: Some(HandshakeSupport {
        describe: "`endpoint.url_validation` (encrypted token)",
        authenticated: true,
        sign: sending::zoom_handshake,
    }),
    ..stamped_hmac(
        Provider::Zoom,
        zoom::DEFAULT_TOLERANCE_SECS,
        |s, o| Ok(Box::new(ZoomVerifier::with_clock(s, o.tolerance, o.clock)?)),
        sending::zoom,
        "`x-zm-signature: v0=…`: HMAC-SHA256 of `v0:<ts>:<body>`, hex",
        "https://developers.zoom.us/docs/api/webhooks/#verify-with-zooms-header",
    )
};

static TWITCH: Preset = Preset {
    replay: Replay::FixedWindow {
        secs: twitch::TOLERANCE_SECS,
    },
    handshake: Some(HandshakeSupport {
        describe: "`webhook_callback_verification` challenge",
        authenticated: true,
        sign: sending::twitch_handshake,
    }),
    ..body_hmac(
        Provider::Twitch,
        |s, o| Ok(Box::new(TwitchVerifier::with_clock(s, o.clock)?)),
        sending::twitch,
        "`Twitch-Eventsub-Message-Signature`: HMAC-SHA256 of id, timestamp and body, hex",
        "https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-the-event-message",
    )
};

static DISCORD: Preset = Preset {
    key: KeyKind::Ed25519PublicKey,
    replay: Replay::FixedWindow {
        secs: DEFAULT_TIMESTAMP_TOLERANCE_SECS,
    },
    handshake: Some(HandshakeSupport {
        describe: "PING answered with PONG",
        authenticated: true,
        sign: sending::discord_handshake,
    }),
    ..body_hmac(
        Provider::Discord,
        |s, o| Ok(Box::new(DiscordVerifier::with_clock(s, o.clock)?)),
        sending::discord,
        "`X-Signature-Ed25519`: Ed25519 of timestamp and body",
        "https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers",
    )
};

static SENDGRID: Preset = Preset {
    key: KeyKind::P256PublicKey,
    replay: Replay::FixedWindow {
        secs: DEFAULT_TIMESTAMP_TOLERANCE_SECS,
    },
    ..body_hmac(
        Provider::Sendgrid,
        |s, o| Ok(Box::new(SendgridVerifier::with_clock(s, o.clock)?)),
        sending::sendgrid,
        "`X-Twilio-Email-Event-Webhook-Signature`: ECDSA P-256 of timestamp and body",
        "https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features",
    )
};

static MAILGUN: Preset = Preset {
    replay: Replay::FixedWindow {
        secs: DEFAULT_TIMESTAMP_TOLERANCE_SECS,
    },
    covers: Covers::BodyFields,
    ..body_hmac(
        Provider::Mailgun,
        |s, o| Ok(Box::new(MailgunVerifier::with_clock(s, o.clock)?)),
        sending::mailgun,
        "body `signature`: HMAC-SHA256 of timestamp and token, hex",
        "https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks",
    )
};

static LINEAR: Preset = stamped_hmac(
    Provider::Linear,
    linear::DEFAULT_TOLERANCE_SECS,
    |s, o| {
        Ok(Box::new(LinearVerifier::with_clock(
            s,
            o.tolerance,
            o.clock,
        )?))
    },
    sending::linear,
    "`Linear-Signature`: HMAC-SHA256 of the body, hex; body `webhookTimestamp`",
    "https://linear.app/developers/webhooks#securing-webhooks",
);

static INTERCOM: Preset = body_hmac(
    Provider::Intercom,
    |s, _| Ok(Box::new(IntercomVerifier::new(s)?)),
    sending::intercom,
    "`X-Hub-Signature: sha1=…`: HMAC-SHA1 of the body, hex",
    "https://developers.intercom.com/docs/references/webhooks/webhook-models#signed-notifications",
);

static PAGERDUTY: Preset = body_hmac(
    Provider::Pagerduty,
    |s, _| Ok(Box::new(PagerdutyVerifier::new(s)?)),
    sending::pagerduty,
    "`X-PagerDuty-Signature: v1=…`: HMAC-SHA256 of the body, hex",
    "https://developer.pagerduty.com/docs/webhooks/webhook-signatures/",
);

static META: Preset = Preset {
    handshake: Some(HandshakeSupport {
        describe: "GET `hub.challenge` with a verify token",
        authenticated: true,
        sign: sending::meta_handshake,
    }),
    ..body_hmac(
        Provider::Meta,
        |s, o| {
            Ok(Box::new(MetaVerifier::with_verify_tokens(
                s,
                o.preset.verify_tokens.clone(),
            )?))
        },
        sending::meta,
        "`X-Hub-Signature-256`: HMAC-SHA256 of the body with the app secret, hex",
        "https://developers.facebook.com/docs/graph-api/webhooks/getting-started",
    )
};

static ADYEN: Preset = Preset {
    key: KeyKind::HexKey,
    covers: Covers::BodyFields,
    ..body_hmac(
        Provider::Adyen,
        |s, _| Ok(Box::new(AdyenVerifier::new(s)?)),
        sending::adyen,
        "`additionalData.hmacSignature`: HMAC-SHA256 of the item's fields, base64; or `HmacSignature` header: of the body",
        "https://docs.adyen.com/development-resources/webhooks/secure-webhooks/verify-hmac-signatures/",
    )
};

static HUBSPOT: Preset = Preset {
    signs_url: true,
    ..stamped_hmac(
        Provider::Hubspot,
        hubspot::DEFAULT_TOLERANCE_SECS,
        |s, o| {
            Ok(Box::new(hubspot::HubspotVerifier::with_clock(
                s,
                o.public_url(Provider::Hubspot)?,
                o.tolerance,
                o.clock,
            )?))
        },
        sending::hubspot,
        "`X-HubSpot-Signature-v3`: HMAC-SHA256 of method, URL, body and timestamp, base64",
        "https://developers.hubspot.com/docs/guides/apps/authentication/validating-requests",
    )
};

static ZENDESK: Preset = stamped_hmac(
    Provider::Zendesk,
    zendesk::DEFAULT_TOLERANCE_SECS,
    |s, o| {
        Ok(Box::new(zendesk::ZendeskVerifier::with_clock(
            s,
            o.tolerance,
            o.clock,
        )?))
    },
    sending::zendesk,
    "`X-Zendesk-Webhook-Signature`: HMAC-SHA256 of RFC 3339 timestamp and body, base64",
    "https://developer.zendesk.com/documentation/webhooks/verifying/",
);

static XERO: Preset = Preset {
    handshake: Some(HandshakeSupport {
        describe: "Intent to Receive (401 for every bad signature)",
        authenticated: true,
        sign: sending::xero_handshake,
    }),
    ..body_hmac(
        Provider::Xero,
        |s, _| Ok(Box::new(xero::XeroVerifier::new(s)?)),
        sending::xero,
        "`x-xero-signature`: HMAC-SHA256 of the body, base64",
        "https://developer.xero.com/documentation/guides/webhooks/configuring-your-server/",
    )
};

static DOCUSIGN: Preset = body_hmac(
    Provider::Docusign,
    |s, _| Ok(Box::new(docusign::DocusignVerifier::new(s)?)),
    sending::docusign,
    "`X-DocuSign-Signature-<n>`: HMAC-SHA256 of the body, base64, one per key",
    "https://developers.docusign.com/platform/webhooks/connect/hmac/",
);

static DROPBOX: Preset = Preset {
    handshake: Some(HandshakeSupport {
        describe: "GET `challenge` echoed (unsigned)",
        authenticated: false,
        sign: sending::dropbox_handshake,
    }),
    ..body_hmac(
        Provider::Dropbox,
        |s, _| Ok(Box::new(dropbox::DropboxVerifier::new(s)?)),
        sending::dropbox,
        "`X-Dropbox-Signature`: HMAC-SHA256 of the body with the app secret, hex",
        "https://www.dropbox.com/developers/reference/webhooks",
    )
};

static TWITTER: Preset = Preset {
    handshake: Some(HandshakeSupport {
        describe: "GET `crc_token` answered with its HMAC (unsigned)",
        authenticated: false,
        sign: sending::twitter_handshake,
    }),
    ..body_hmac(
        Provider::Twitter,
        |s, _| Ok(Box::new(twitter::TwitterVerifier::new(s)?)),
        sending::twitter,
        "`x-twitter-webhooks-signature: sha256=…`: HMAC-SHA256 of the body, base64",
        "https://docs.x.com/x-api/enterprise-gnip-2.0/fundamentals/account-activity#securing-webhooks",
    )
};

static TRELLO: Preset = Preset {
    signs_url: true,
    handshake: Some(HandshakeSupport {
        describe: "`HEAD` on webhook creation, answered 200 (unsigned)",
        authenticated: false,
        sign: sending::trello_handshake,
    }),
    ..body_hmac(
        Provider::Trello,
        |s, o| {
            Ok(Box::new(trello::TrelloVerifier::new(
                s,
                o.public_url(Provider::Trello)?,
            )?))
        },
        sending::trello,
        "`X-Trello-Webhook`: HMAC-SHA1 of the body and the callback URL with the app secret, base64",
        "https://developer.atlassian.com/cloud/trello/guides/rest-api/webhooks/#webhook-signatures",
    )
};

/// A header name from the spec (`field`), lower-cased; `None` when unset.
fn header_setting(
    value: Option<&str>,
    field: &'static str,
) -> Result<Option<http::HeaderName>, VerifierError> {
    value
        .map(|name| {
            http::HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).map_err(
                |_| VerifierError::Invalid {
                    field,
                    reason: "not a valid header name",
                },
            )
        })
        .transpose()
}

/// A preset authenticated by a shared token, not a signature.
const fn token(
    provider: Provider,
    build: Build,
    sign: Signer,
    handshake: HandshakeSupport,
    scheme: &'static str,
    reference: &'static str,
) -> Preset {
    Preset {
        covers: Covers::Token,
        handshake: Some(handshake),
        ..body_hmac(provider, build, sign, scheme, reference)
    }
}

static OKTA: Preset = token(
    Provider::Okta,
    |s, o| {
        let header = header_setting(
            o.preset
                .okta
                .as_ref()
                .and_then(|k| k.auth_header.as_deref()),
            "spec.okta.authHeader",
        )?
        .unwrap_or(http::HeaderName::from_static(okta::DEFAULT_AUTH_HEADER));
        Ok(Box::new(okta::OktaVerifier::with_header(s, header)?))
    },
    sending::okta,
    HandshakeSupport {
        describe: "GET `X-Okta-Verification-Challenge` (authenticated)",
        authenticated: true,
        sign: sending::okta_handshake,
    },
    "`Authorization`: the shared secret itself",
    "https://developer.okta.com/docs/concepts/event-hooks/",
);

static AZURE_EVENT_GRID: Preset = token(
    Provider::AzureEventGrid,
    |s, o| {
        let credential = match header_setting(
            o.preset
                .azure
                .as_ref()
                .and_then(|a| a.secret_header.as_deref()),
            "spec.azure.secretHeader",
        )? {
            Some(header) => azure_event_grid::Credential::Header(header),
            None => azure_event_grid::Credential::Query(
                azure_event_grid::DEFAULT_QUERY_PARAMETER.to_owned(),
            ),
        };
        let Some(entra) = o.preset.azure.as_ref().and_then(|a| a.entra.as_ref()) else {
            return Ok(Box::new(
                azure_event_grid::AzureEventGridVerifier::with_credential(s, credential)?,
            ));
        };
        let check = entra::EntraCheck::new(
            &entra::EntraSettings {
                provider: "azure-event-grid",
                tenant_field: "spec.azure.entra.tenantId",
                audience_field: "spec.azure.entra.audience",
                tenant: &entra.tenant_id,
                audience: &entra.audience,
                client: entra::EVENT_GRID_APP_ID,
            },
            entra::DEFAULT_LEEWAY_SECS,
            o.clock,
            o.preset.fetcher(),
        )?;
        Ok(Box::new(
            azure_event_grid::AzureEventGridVerifier::with_entra(s, credential, Some(check))?,
        ))
    },
    sending::azure_event_grid,
    HandshakeSupport {
        describe: "`SubscriptionValidationEvent` and CloudEvents `OPTIONS` (authenticated)",
        authenticated: true,
        sign: sending::azure_event_grid_handshake,
    },
    "`?code=`: the shared secret itself, in the query; and/or (`spec.azure.entra`) an RS256 Microsoft Entra ID bearer token of the tenant's JWKS issued to Event Grid: `aud`, `iss`, `appid`",
    "https://learn.microsoft.com/en-us/azure/event-grid/security-authentication",
);

static MICROSOFT_GRAPH: Preset = token(
    Provider::MicrosoftGraph,
    |s, o| {
        let Some(graph) = o
            .preset
            .graph
            .as_ref()
            .and_then(|g| g.validation_tokens.as_ref())
        else {
            return Ok(Box::new(microsoft_graph::MicrosoftGraphVerifier::new(s)?));
        };
        let check = entra::EntraCheck::new(
            &entra::EntraSettings {
                provider: "microsoft-graph",
                tenant_field: "spec.graph.validationTokens.tenantId",
                audience_field: "spec.graph.validationTokens.appId",
                tenant: &graph.tenant_id,
                audience: &graph.app_id,
                client: entra::GRAPH_CHANGE_TRACKING_APP_ID,
            },
            entra::DEFAULT_LEEWAY_SECS,
            o.clock,
            o.preset.fetcher(),
        )?;
        Ok(Box::new(
            microsoft_graph::MicrosoftGraphVerifier::with_validation_tokens(s, Some(check))?,
        ))
    },
    sending::microsoft_graph,
    HandshakeSupport {
        describe: "POST `validationToken` echoed (unsigned)",
        authenticated: false,
        sign: sending::microsoft_graph_handshake,
    },
    "body `clientState` of every notification: the shared secret itself; optionally (`spec.graph.validationTokens`) every rich notification `validationTokens` JWT of the tenant's Entra JWKS",
    "https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks",
);

/// The Standard Webhooks scheme under `provider`'s name, with Svix's
/// header names (`svix: true`) or the specification's.
const fn sender_scheme(provider: &'static str, svix: bool) -> standard_webhooks::Scheme {
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
fn polar_key(secret: &[u8]) -> Vec<u8> {
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
        static $static: Preset = Preset {
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

/// A preset verified with a key fetched from the provider.
const fn fetched(
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

static AWS_SNS: Preset = Preset {
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

static PAYPAL: Preset = fetched(
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

static GOOGLE_PUBSUB: Preset = Preset {
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
