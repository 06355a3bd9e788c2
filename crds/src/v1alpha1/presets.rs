//! The provider presets (`spec.provider`) and their settings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `aws-sns` preset: which SNS topics may deliver.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSnsSpec {
    /// The ARNs of the topics whose messages are accepted (at least one:
    /// anyone can subscribe any URL to their own topic). A correctly signed
    /// message of another topic is refused `sender_not_allowed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub topic_arns: Vec<String>,
    /// Confirm a verified `SubscriptionConfirmation` of an accepted topic by
    /// visiting its `SubscribeURL` (SNS hosts only). Default false: the
    /// confirmation is stored (event `SubscriptionConfirmation`) for a
    /// person to confirm.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_confirm_subscriptions: bool,
}

/// The `paypal` preset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaypalSpec {
    /// The ID PayPal gave this webhook (Developer Dashboard, or the
    /// Webhooks API), part of what PayPal signs.
    #[schemars(length(min = 1, max = 50))]
    pub webhook_id: String,
}

/// The `google-pubsub` preset: whose push tokens are accepted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GooglePubsubSpec {
    /// The token's expected `aud`, as set on the push subscription. Absent:
    /// the endpoint's public URL (`publicUrl`, else from `ingress`), Pub/Sub's
    /// default audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub audience: Option<String>,
    /// The service account the subscription pushes as (`email` claim, which
    /// must also be `email_verified`).
    #[schemars(length(min = 3, max = 320))]
    pub service_account_email: String,
}

/// The `okta` preset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OktaSpec {
    /// The header the event hook sends its secret in (the hook's
    /// "Authentication field"). Absent: `Authorization`, Okta's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub auth_header: Option<String>,
}

/// The `azure-event-grid` preset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureEventGridSpec {
    /// A static header of the subscription's delivery properties (marked
    /// secret in Event Grid) that carries the shared secret instead of the
    /// `?code=` query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub secret_header: Option<String>,

    /// Require a Microsoft Entra ID bearer token (`Authorization: Bearer`)
    /// on every request, handshakes included: the event subscription's
    /// "Use Microsoft Entra authentication" with this tenant and app. The
    /// token is verified with the tenant's published keys and must have
    /// been issued to Azure Event Grid. With `secretRefs` as well, the
    /// `?code=` secret is required too; without any, the token alone
    /// authenticates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entra: Option<EntraTokenSpec>,
}

/// Which Microsoft Entra ID tokens are accepted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntraTokenSpec {
    /// The tenant (directory) id of the app, a GUID
    /// (`azureActiveDirectoryTenantId` of the subscription): the token's
    /// issuer and where its keys are fetched from.
    #[schemars(length(min = 36, max = 36))]
    pub tenant_id: String,
    /// The token's expected `aud`: the app id or app id URI exactly as the
    /// subscription names it (`azureActiveDirectoryApplicationIdOrUri`;
    /// v1.0 tokens carry what was asked for, v2.0 tokens the app id).
    #[schemars(length(min = 1, max = 2048))]
    pub audience: String,
}

/// The `microsoft-graph` preset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MicrosoftGraphSpec {
    /// Also verify rich notifications' `validationTokens`: every token of
    /// a delivery must be signed by the tenant's Microsoft Entra keys, be
    /// issued by the tenant to Microsoft Graph Change Tracking, for this
    /// app, and not be expired; a delivery without them is refused. Only
    /// for subscriptions with `includeResourceData` (basic notifications
    /// carry no tokens). Absent: `clientState` alone authenticates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_tokens: Option<GraphValidationTokensSpec>,
}

/// Whose Graph validation tokens are accepted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GraphValidationTokensSpec {
    /// The tenant (directory) id the subscription was made in, a GUID.
    #[schemars(length(min = 36, max = 36))]
    pub tenant_id: String,
    /// The application (client) id of the app that made the
    /// subscription: the tokens' `aud`.
    #[schemars(length(min = 1, max = 256))]
    pub app_id: String,
}

/// Signature schemes of the providers Hookwarden verifies. Each preset
/// verifies exactly as its provider signs; see `docs/providers.md`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// GitHub: `X-Hub-Signature-256`, HMAC-SHA256 of the body.
    Github,
    /// GitLab: `X-Gitlab-Token` (and the newer signing token).
    Gitlab,
    /// Bitbucket Cloud: `X-Hub-Signature`, HMAC-SHA256 of the body.
    Bitbucket,
    /// Stripe: `Stripe-Signature` with timestamp and `v1` signatures.
    Stripe,
    /// Slack: `v0` signing with `X-Slack-Request-Timestamp`.
    Slack,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks,
    /// Svix: Standard Webhooks with `svix-*` headers.
    Svix,
    /// Shopify: `X-Shopify-Hmac-Sha256`, base64 HMAC-SHA256 of the body.
    Shopify,
    /// Twilio: `X-Twilio-Signature` over the full URL and parameters.
    Twilio,
    /// Paddle Billing: `Paddle-Signature` with `ts` and `h1`.
    Paddle,
    /// Square: `x-square-hmacsha256-signature` over notification URL and body.
    Square,
    /// Zoom: `x-zm-signature` `v0` with `x-zm-request-timestamp`.
    Zoom,
    /// Twitch EventSub: `Twitch-Eventsub-Message-Signature`.
    Twitch,
    /// Discord interactions: Ed25519 `X-Signature-Ed25519`.
    Discord,
    /// SendGrid Event Webhook: ECDSA P-256 signature.
    Sendgrid,
    /// Mailgun: signature fields in the body.
    Mailgun,
    /// Linear: `Linear-Signature`, HMAC-SHA256 of the body.
    Linear,
    /// Intercom: `X-Hub-Signature`, HMAC-SHA1 of the body.
    Intercom,
    /// PagerDuty v3: `X-PagerDuty-Signature` with several `v1=`.
    Pagerduty,
    /// Meta (WhatsApp, Messenger, Instagram): `X-Hub-Signature-256`.
    Meta,
    /// Adyen: HMAC over the notification fields (hex key).
    Adyen,
    /// HubSpot: `X-HubSpot-Signature-v3`, HMAC-SHA256 of method, URL, body
    /// and timestamp (needs `publicUrl` or `ingress`).
    Hubspot,
    /// Zendesk: `X-Zendesk-Webhook-Signature`, HMAC-SHA256 of timestamp and
    /// body.
    Zendesk,
    /// Xero: `x-xero-signature`, HMAC-SHA256 of the body; answers Intent to
    /// Receive.
    Xero,
    /// DocuSign Connect: `X-DocuSign-Signature-<n>`, HMAC-SHA256 of the body,
    /// one per account key.
    Docusign,
    /// Dropbox: `X-Dropbox-Signature`, hex HMAC-SHA256 of the body; answers
    /// the `?challenge=` GET.
    Dropbox,
    /// X (Twitter) Account Activity: `x-twitter-webhooks-signature`, base64
    /// HMAC-SHA256 of the body; answers the `?crc_token=` GET (CRC).
    Twitter,
    /// Trello: `X-Trello-Webhook`, base64 HMAC-SHA1 of the body and the
    /// callback URL (needs `publicUrl` or `ingress`); answers the `HEAD`
    /// Trello sends when a webhook is created.
    Trello,
    /// Okta event hooks: a shared secret in the `Authorization` header;
    /// answers the `X-Okta-Verification-Challenge` GET.
    Okta,
    /// Azure Event Grid webhooks: a shared secret in the `code` query
    /// parameter; answers the subscription validation event and the
    /// CloudEvents `OPTIONS` handshake.
    AzureEventGrid,
    /// Microsoft Graph change notifications: every notification's
    /// `clientState`; answers the `?validationToken=` POST.
    MicrosoftGraph,
    /// Amazon SNS: signed messages verified with AWS's certificate
    /// (fetched from SNS hosts only); needs `aws.topicArns`, no secrets.
    AwsSns,
    /// PayPal: `PAYPAL-TRANSMISSION-SIG` verified with PayPal's certificate
    /// (fetched from PayPal's API hosts only); needs `paypal.webhookId`, no
    /// secrets.
    Paypal,
    /// Google Cloud Pub/Sub push: an OIDC token (`Authorization: Bearer`)
    /// verified with Google's published keys; needs
    /// `google.serviceAccountEmail`, no secrets.
    GooglePubsub,
    /// Clerk: Standard Webhooks through Svix (`svix-*` headers, `whsec_`
    /// signing secret).
    Clerk,
    /// Resend: Standard Webhooks through Svix (`svix-*` headers, `whsec_`
    /// signing secret).
    Resend,
    /// OpenAI: Standard Webhooks (`webhook-*` headers, `whsec_` secret).
    Openai,
    /// Replicate: Standard Webhooks (`webhook-*` headers, `whsec_` secret).
    Replicate,
    /// Brex: Standard Webhooks (`webhook-*` headers, base64 secret).
    Brex,
    /// Polar: Standard Webhooks (`webhook-*` headers) keyed with the
    /// secret's own bytes, as Polar's SDKs do.
    Polar,
    /// Checks configured in `spec.verification`: a shared token, HTTP Basic
    /// credentials and/or an HMAC signature, for any sender that is not a
    /// preset.
    Generic,
}

impl Provider {
    /// Every provider, in the order of the enum (and of docs/providers.md).
    /// A test checks it against the CRD schema's list, so a new variant
    /// cannot be left out; the receiver's preset registry maps each one
    /// with an exhaustive match.
    pub const ALL: &'static [Provider] = &[
        Self::Github,
        Self::Gitlab,
        Self::Bitbucket,
        Self::Stripe,
        Self::Slack,
        Self::StandardWebhooks,
        Self::Svix,
        Self::Shopify,
        Self::Twilio,
        Self::Paddle,
        Self::Square,
        Self::Zoom,
        Self::Twitch,
        Self::Discord,
        Self::Sendgrid,
        Self::Mailgun,
        Self::Linear,
        Self::Intercom,
        Self::Pagerduty,
        Self::Meta,
        Self::Adyen,
        Self::Hubspot,
        Self::Zendesk,
        Self::Xero,
        Self::Docusign,
        Self::Dropbox,
        Self::Twitter,
        Self::Trello,
        Self::Okta,
        Self::AzureEventGrid,
        Self::MicrosoftGraph,
        Self::AwsSns,
        Self::Paypal,
        Self::GooglePubsub,
        Self::Clerk,
        Self::Resend,
        Self::Openai,
        Self::Replicate,
        Self::Brex,
        Self::Polar,
        Self::Generic,
    ];

    /// The name written in a manifest (`standard-webhooks`, ...): serde's
    /// kebab-case name, without a serde round trip (the drift test checks
    /// that the two agree for every provider).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Bitbucket => "bitbucket",
            Self::Stripe => "stripe",
            Self::Slack => "slack",
            Self::StandardWebhooks => "standard-webhooks",
            Self::Svix => "svix",
            Self::Shopify => "shopify",
            Self::Twilio => "twilio",
            Self::Paddle => "paddle",
            Self::Square => "square",
            Self::Zoom => "zoom",
            Self::Twitch => "twitch",
            Self::Discord => "discord",
            Self::Sendgrid => "sendgrid",
            Self::Mailgun => "mailgun",
            Self::Linear => "linear",
            Self::Intercom => "intercom",
            Self::Pagerduty => "pagerduty",
            Self::Meta => "meta",
            Self::Adyen => "adyen",
            Self::Hubspot => "hubspot",
            Self::Zendesk => "zendesk",
            Self::Xero => "xero",
            Self::Docusign => "docusign",
            Self::Dropbox => "dropbox",
            Self::Twitter => "twitter",
            Self::Trello => "trello",
            Self::Okta => "okta",
            Self::AzureEventGrid => "azure-event-grid",
            Self::MicrosoftGraph => "microsoft-graph",
            Self::AwsSns => "aws-sns",
            Self::Paypal => "paypal",
            Self::GooglePubsub => "google-pubsub",
            Self::Clerk => "clerk",
            Self::Resend => "resend",
            Self::Openai => "openai",
            Self::Replicate => "replicate",
            Self::Brex => "brex",
            Self::Polar => "polar",
            Self::Generic => "generic",
        }
    }

    /// The name written in a manifest, owned; [`Provider::as_str`] borrows it.
    pub fn manifest_name(self) -> String {
        self.as_str().to_owned()
    }

    /// The provider a manifest name stands for.
    pub fn from_manifest_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|provider| provider.as_str() == name)
    }
}
