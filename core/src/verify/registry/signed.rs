//! The descriptors of the presets that sign with what their secret file
//! holds: a shared secret (HMAC of the body, of a timestamp and the body,
//! of the URL) or the provider's public key (Ed25519, ECDSA).

use hookwarden_crds::Provider;

use super::{Covers, HandshakeSupport, KeyKind, Preset, Replay, body_hmac, stamped_hmac};
use crate::verify::sending;
use crate::verify::{
    AdyenVerifier, BitbucketVerifier, DEFAULT_TIMESTAMP_TOLERANCE_SECS, DiscordVerifier,
    GithubVerifier, GitlabVerifier, IntercomVerifier, LinearVerifier, MailgunVerifier,
    MetaVerifier, PaddleVerifier, PagerdutyVerifier, SendgridVerifier, ShopifyVerifier,
    SlackVerifier, SquareVerifier, StandardWebhooksVerifier, StripeVerifier, TwilioVerifier,
    TwitchVerifier, ZoomVerifier, docusign, dropbox, gitlab, hubspot, linear, paddle, slack,
    standard_webhooks, stripe, svix, trello, twitch, twitter, xero, zendesk, zoom,
};

pub(super) static GITHUB: Preset = body_hmac(
    Provider::Github,
    |s, _| Ok(Box::new(GithubVerifier::new(s)?)),
    sending::github,
    "`X-Hub-Signature-256`: HMAC-SHA256 of the body, hex",
    "https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries",
);

pub(super) static GITLAB: Preset = Preset {
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

pub(super) static BITBUCKET: Preset = body_hmac(
    Provider::Bitbucket,
    |s, _| Ok(Box::new(BitbucketVerifier::new(s)?)),
    sending::bitbucket,
    "`X-Hub-Signature`: HMAC-SHA256 of the body, hex",
    "https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/",
);

pub(super) static STRIPE: Preset = stamped_hmac(
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

pub(super) static SLACK: Preset = Preset {
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

pub(super) static STANDARD_WEBHOOKS: Preset = Preset {
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

pub(super) static SVIX: Preset = Preset {
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

pub(super) static SHOPIFY: Preset = body_hmac(
    Provider::Shopify,
    |s, _| Ok(Box::new(ShopifyVerifier::new(s)?)),
    sending::shopify,
    "`X-Shopify-Hmac-Sha256`: HMAC-SHA256 of the body, base64",
    "https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook",
);

pub(super) static TWILIO: Preset = Preset {
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

pub(super) static PADDLE: Preset = stamped_hmac(
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

pub(super) static SQUARE: Preset = Preset {
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

pub(super) static ZOOM: Preset = Preset {
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

pub(super) static TWITCH: Preset = Preset {
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

pub(super) static DISCORD: Preset = Preset {
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

pub(super) static SENDGRID: Preset = Preset {
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

pub(super) static MAILGUN: Preset = Preset {
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

pub(super) static LINEAR: Preset = stamped_hmac(
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

pub(super) static INTERCOM: Preset = body_hmac(
    Provider::Intercom,
    |s, _| Ok(Box::new(IntercomVerifier::new(s)?)),
    sending::intercom,
    "`X-Hub-Signature: sha1=…`: HMAC-SHA1 of the body, hex",
    "https://developers.intercom.com/docs/references/webhooks/webhook-models#signed-notifications",
);

pub(super) static PAGERDUTY: Preset = body_hmac(
    Provider::Pagerduty,
    |s, _| Ok(Box::new(PagerdutyVerifier::new(s)?)),
    sending::pagerduty,
    "`X-PagerDuty-Signature: v1=…`: HMAC-SHA256 of the body, hex",
    "https://developer.pagerduty.com/docs/webhooks/webhook-signatures/",
);

pub(super) static META: Preset = Preset {
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

pub(super) static ADYEN: Preset = Preset {
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

pub(super) static HUBSPOT: Preset = Preset {
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

pub(super) static ZENDESK: Preset = stamped_hmac(
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

pub(super) static XERO: Preset = Preset {
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

pub(super) static DOCUSIGN: Preset = body_hmac(
    Provider::Docusign,
    |s, _| Ok(Box::new(docusign::DocusignVerifier::new(s)?)),
    sending::docusign,
    "`X-DocuSign-Signature-<n>`: HMAC-SHA256 of the body, base64, one per key",
    "https://developers.docusign.com/platform/webhooks/connect/hmac/",
);

pub(super) static DROPBOX: Preset = Preset {
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

pub(super) static TWITTER: Preset = Preset {
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

pub(super) static TRELLO: Preset = Preset {
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
