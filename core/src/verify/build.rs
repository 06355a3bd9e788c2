//! Building an endpoint's verifier from its spec: its secrets loaded, then
//! the preset's descriptor or the `generic` provider's checks.

use hookwarden_crds::{Provider, SecretKeyRef, WebhookEndpointSpec};
use http::HeaderMap;

use super::public_url::PublicUrl;
use super::{
    DEFAULT_TIMESTAMP_TOLERANCE_SECS, GenericChecks, GenericVerifier, Handshake, Head, Incoming,
    Prefetch, PresetOptions, Rejection, Verdict, Verified, Verifier, VerifierError, keys, registry,
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

#[cfg(test)]
mod tests {
    use super::*;
    // Everything the verifiers' module holds: the presets' own signers and
    // the request types.
    use crate::verify::*;

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
