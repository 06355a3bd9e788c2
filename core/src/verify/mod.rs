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
    PresetOptions, VerifierError, for_endpoint, for_endpoint_with_fetcher, for_preset,
    for_provider, generic_checks, replay_window_secs,
};
pub(crate) use build::{parse_keys, require_secrets};
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

use http::{HeaderMap, Method, Uri};

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
    use hookwarden_crds::{SecretKeyRef, WebhookEndpointSpec};

    use super::public_url::PublicUrl;
    use super::*;
    use crate::secrets::{Secret, SecretError};

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
