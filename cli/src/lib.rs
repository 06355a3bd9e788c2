//! The `hookwarden` CLI's presets: building a delivery exactly as a
//! provider signs it, with the signers of the receiver's preset registry
//! (`hookwarden_receiver::verify::registry`), the one list of presets.

pub mod ranges;

use hookwarden_crds::Provider;
use hookwarden_receiver::verify::registry::{self, Preset};
use hookwarden_receiver::verify::{self, GenericChecks};
use serde_json::json;

pub mod quarantine;
pub mod replay;

pub use hookwarden_receiver::verify::sending::{
    Delivery, Expected, SignInput as Input, der, ed25519_seed,
};

/// The presets `send` can sign for, as written in a manifest: every one.
pub fn sendable() -> Vec<String> {
    registry::presets().map(Preset::name).collect()
}

/// The presets `send --handshake` can send the endpoint handshake of.
pub fn handshakes() -> Vec<String> {
    registry::presets()
        .filter(|p| p.handshake.is_some())
        .map(Preset::name)
        .collect()
}

/// A provider preset from its manifest name (`standard-webhooks`, ...).
pub fn parse_provider(name: &str) -> Result<Provider, String> {
    Provider::from_manifest_name(name).ok_or_else(|| {
        format!(
            "unknown provider {name:?}; the presets are {}",
            sendable().join(", ")
        )
    })
}

/// Signs a delivery for `provider` with `secret`.
pub fn sign(provider: &str, secret: &[u8], input: &Input<'_>) -> Result<Delivery, String> {
    let preset = registry::preset(parse_provider(provider)?);
    preset.sign(secret, input).map_err(|e| e.to_string())
}

/// Signs a delivery for the `generic` checks of a manifest, each with its
/// first secret (the event in the manifest's event header, if any).
pub fn sign_generic(checks: &GenericChecks, input: &Input<'_>) -> Result<Delivery, String> {
    let body = input.body.clone().unwrap_or_else(|| {
        json!({"type": input.event, "id": input.id})
            .to_string()
            .into_bytes()
    });
    let method = "POST";
    let mut headers = verify::sign_generic(
        checks,
        &verify::GenericSignRequest {
            id: input.id,
            event: input.event,
            timestamp: input.now,
            method,
            url: input.url,
            body: &body,
        },
    )
    .map_err(|e| e.to_string())?;
    headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    Ok(Delivery {
        method,
        headers,
        body,
        extra_query: None,
        expect: None,
    })
}

/// The endpoint handshake of `provider`, signed as the provider signs it
/// (for Meta, `secret` is the verify token), with the answer it expects.
/// The challenge is the delivery id.
pub fn sign_handshake(
    provider: &str,
    secret: &[u8],
    input: &Input<'_>,
) -> Result<Delivery, String> {
    let preset = registry::preset(parse_provider(provider)?);
    let handshake = preset.handshake.ok_or_else(|| {
        format!(
            "provider {provider:?} has no handshake send can make; it supports {}",
            handshakes().join(", ")
        )
    })?;
    (handshake.sign)(secret, input).map_err(|e| e.to_string())
}

/// The presets as a table: Markdown (docs/providers.md's) or one line each.
pub fn presets_table(markdown: bool) -> String {
    if markdown {
        return registry::docs_table();
    }
    let mut text = String::new();
    for preset in registry::presets() {
        let handshake = preset
            .handshake
            .map(|h| format!("; handshake: {}", h.describe.replace('`', "")))
            .unwrap_or_default();
        text.push_str(&format!(
            "{:<20} {}; secret file: {}; replay: {}{handshake}\n",
            preset.name(),
            preset.scheme.replace('`', ""),
            preset.key.describe().replace('`', ""),
            preset.replay.describe(),
        ));
    }
    text
}

/// A one-line explanation of a rejection's reason code.
pub fn explain(code: &str) -> &'static str {
    match code {
        "signature_missing" => "the request carries no signature header",
        "signature_malformed" => {
            "the signature header cannot be a valid signature (repeated, wrong scheme, not hex, wrong length)"
        }
        "signature_mismatch" => {
            "no given secret produces this signature: wrong secret, or the body/signed headers changed"
        }
        "timestamp_missing" => "the signed timestamp header is absent",
        "timestamp_malformed" => "the signed timestamp is not in the provider's format",
        "timestamp_out_of_tolerance" => {
            "the signed timestamp is outside the replay window (an old request, or a wrong clock)"
        }
        "token_missing" => "the shared-token header is absent",
        "token_mismatch" => "the shared token is not one of the given secrets",
        "basic_auth_missing" => "no HTTP Basic credentials were sent",
        "basic_auth_mismatch" => "the HTTP Basic credentials are wrong or malformed",
        "handshake_malformed" => {
            "the handshake lacks its challenge, or it is not 1-1024 visible ASCII characters"
        }
        "key_unavailable" => {
            "the provider's signing key could not be fetched (network, timeout, or fetch limits); retry later"
        }
        "key_url_not_allowed" => {
            "the delivery names a certificate URL outside the provider's hosts; nothing was fetched"
        }
        "key_certificate_expired" | "key_certificate_not_yet_valid" => {
            "the signing certificate at the delivery's certificate URL is outside its validity dates"
        }
        "key_certificate_wrong_subject" => {
            "the signing certificate is not for the name the provider signs as"
        }
        "key_certificate_untrusted" => {
            "the signing certificate does not chain to a root the receiver trusts"
        }
        "sender_not_allowed" => {
            "the signature is valid, but the topic or service account is not one the endpoint accepts"
        }
        "body_hash_mismatch" => {
            "the signed URL's bodySHA256 is not the SHA-256 of the body: the body changed"
        }
        _ => "see docs/receiver.md",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookwarden_receiver::secrets::Secret;
    use hookwarden_receiver::verify::public_url::PublicUrl;
    use hookwarden_receiver::verify::registry::{Covers, KeyKind};
    use hookwarden_receiver::verify::{Incoming, Rejection, Verdict, Verifier};
    use hyper::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

    const URL: &str = "https://hooks.example.com/in";

    fn headers(delivery: &Delivery) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in &delivery.headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    fn verifier(preset: &Preset, secret: &[u8], verify_tokens: Vec<Secret>) -> Box<dyn Verifier> {
        preset
            .verifier(
                vec![Secret::from(secret)],
                None,
                verify::PresetOptions {
                    public_url: Some(PublicUrl::parse(URL).expect("url")),
                    verify_tokens,
                    ..verify::PresetOptions::default()
                },
                verify::system_clock,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", preset.name()))
    }

    fn check(
        verifier: &dyn Verifier,
        delivery: &Delivery,
        body: &[u8],
    ) -> Result<Verdict, Rejection> {
        let target = delivery.target("/in");
        let uri: Uri = target.parse().expect("uri");
        let method: Method = delivery.method.parse().expect("method");
        verifier.check(&Incoming {
            method: &method,
            uri: &uri,
            headers: &headers(delivery),
            body,
        })
    }

    fn input(body: Option<Vec<u8>>) -> Input<'static> {
        Input {
            event: "thing.happened",
            id: "id-42",
            body,
            now: jiff::Timestamp::now().as_second(),
            url: URL,
            spec: None,
            token_key: None,
        }
    }

    /// Every preset `send` signs for is accepted by the receiver's own
    /// verifier, which reads back the event and id where the preset carries
    /// them; one changed byte of what is signed is refused.
    #[test]
    fn every_sendable_preset_verifies_with_the_receivers_verifier() {
        let mut checked = 0;
        for preset in registry::presets() {
            if preset.key == KeyKind::Configured {
                assert!(sign(&preset.name(), b"s", &input(None)).is_err());
                continue;
            }
            if preset.key == KeyKind::Fetched {
                // Verified against a key server: tests/it/fetched.rs.
                assert!(sign(&preset.name(), b"not a key", &input(None)).is_err());
                continue;
            }
            let mut keys = vec![preset.key.test_key("It's a Secret to Everybody")];
            if preset.key == KeyKind::TokenOrSigningToken {
                // GitLab's plain secret token as well as its signing token.
                keys.push(KeyKind::SharedSecret.test_key("It's a Secret to Everybody"));
            }
            for key in keys {
                let name = preset.name();
                let delivery = sign(&name, &key.signing, &input(None)).expect("signs");
                let verifier = verifier(preset, &key.verifying, Vec::new());
                let Ok(Verdict::Deliver(verified)) =
                    check(verifier.as_ref(), &delivery, &delivery.body)
                else {
                    panic!(
                        "{name}: {:?}",
                        check(verifier.as_ref(), &delivery, &delivery.body)
                    );
                };
                assert_eq!(verified.secret_index, 0);
                let expected_event = match name.as_str() {
                    "discord" => Some("APPLICATION_COMMAND"),
                    "dropbox" => Some("list_folder"),
                    "twitter" => Some("tweet_create_events"),
                    "sendgrid" => Some("batch"),
                    "twilio" => None,
                    _ => Some("thing.happened"),
                };
                assert_eq!(verified.event.as_deref(), expected_event, "{name}");
                // Presets whose provider sends no delivery id (HubSpot's
                // eventId is not unique by its docs).
                if !matches!(
                    name.as_str(),
                    "zoom"
                        | "meta"
                        | "sendgrid"
                        | "hubspot"
                        | "xero"
                        | "docusign"
                        | "dropbox"
                        | "twitter"
                ) {
                    assert_eq!(verified.delivery_id.as_deref(), Some("id-42"), "{name}");
                }

                // One changed byte of what is signed. Mailgun signs only the
                // signature block, Adyen the item's fields, GitLab's plain
                // token nothing of the body.
                let mut changed = delivery.body.clone();
                if name == "mailgun" {
                    let text = String::from_utf8(changed).expect("json");
                    changed = text
                        .replacen("\"token\":\"", "\"token\":\"0", 1)
                        .into_bytes();
                } else if preset.covers == Covers::Token {
                    // A token authenticates; nothing of the body is signed.
                    checked += 1;
                    continue;
                } else if preset.covers == Covers::BodyFields {
                    let text = String::from_utf8(changed).expect("json");
                    changed = text.replacen("id-42", "id-43", 1).into_bytes();
                } else {
                    changed.push(b' ');
                }
                let refused = check(verifier.as_ref(), &delivery, &changed);
                if !key.signing.starts_with(b"It's") || name != "gitlab" {
                    assert_eq!(
                        refused.map(|_| ()),
                        Err(Rejection::SignatureMismatch),
                        "{name}"
                    );
                }
                checked += 1;
            }
        }
        let expected = registry::presets()
            .map(|p| match p.key {
                KeyKind::Configured | KeyKind::Fetched => 0,
                KeyKind::TokenOrSigningToken => 2,
                _ => 1,
            })
            .sum::<usize>();
        assert_eq!(checked, expected);
    }

    /// A generic manifest, read as the CLI reads it, with its one secret.
    fn generic_manifest(
        verification: &str,
    ) -> (hookwarden_crds::WebhookEndpointSpec, GenericChecks) {
        let manifest = format!(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nmetadata: {{name: e}}\nspec:\n  provider: generic\n  publicUrl: {URL}\n  secretRefs: [{{name: s, key: k}}]\n  verification:\n{verification}"
        );
        let spec = hookwarden_crds::from_yaml(&manifest)
            .expect("manifest")
            .spec;
        let load =
            |_: &[hookwarden_crds::SecretKeyRef]| Ok(vec![Secret::from(&b"generic-key"[..])]);
        let checks = verify::generic_checks(&spec, load).expect("checks");
        (spec, checks)
    }

    /// `send --endpoint` signs what a generic manifest's template asks for,
    /// and the receiver's verifier, built from the same manifest, accepts it.
    #[test]
    fn a_generic_template_is_signed_as_the_receiver_verifies_it() {
        let (spec, checks) = generic_manifest(
            "    eventHeader: X-Event\n    hmac:\n      signatureHeader: X-Signature\n      timestampHeader: X-Timestamp\n      signedContent: \"{method} {url}\\n{timestamp}\\n{header:X-Event}\\n{body}\"\n",
        );
        let delivery = sign_generic(&checks, &input(None)).expect("signs");
        let load =
            |_: &[hookwarden_crds::SecretKeyRef]| Ok(vec![Secret::from(&b"generic-key"[..])]);
        let verifier = verify::for_endpoint(&spec, load).expect("verifier");
        let Ok(Verdict::Deliver(verified)) = check(verifier.as_ref(), &delivery, &delivery.body)
        else {
            panic!("{:?}", check(verifier.as_ref(), &delivery, &delivery.body));
        };
        assert_eq!(verified.event.as_deref(), Some("thing.happened"));
        let mut changed = delivery.body.clone();
        changed.push(b' ');
        assert_eq!(
            check(verifier.as_ref(), &delivery, &changed).map(|_| ()),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn a_twilio_json_body_is_signed_through_body_sha256() {
        let preset = registry::preset(Provider::Twilio);
        let secret = b"It's a Secret to Everybody";
        let delivery =
            sign("twilio", secret, &input(Some(br#"{"type":"x"}"#.to_vec()))).expect("signs");
        let query = delivery.extra_query.clone().expect("bodySHA256");
        assert!(query.starts_with("bodySHA256="), "{query}");
        let verifier = verifier(preset, secret, Vec::new());
        assert!(matches!(
            check(verifier.as_ref(), &delivery, &delivery.body),
            Ok(Verdict::Deliver(_))
        ));
        assert_eq!(
            check(verifier.as_ref(), &delivery, br#"{"type":"y"}"#).map(|_| ()),
            Err(Rejection::BodyHashMismatch)
        );
    }

    #[test]
    fn every_handshake_is_answered_as_send_expects() {
        let mut checked = Vec::new();
        for preset in registry::presets().filter(|p| p.handshake.is_some()) {
            let name = preset.name();
            let key = preset.key.test_key("It's a Secret to Everybody");
            let delivery = sign_handshake(&name, &key.signing, &input(None)).expect("signs");
            let expect = delivery.expect.clone().expect("an expected answer");
            let verifier = if preset.provider == Provider::Meta {
                // Meta's secret for the handshake is the verify token.
                verifier(
                    preset,
                    b"app secret",
                    vec![Secret::from(key.signing.clone())],
                )
            } else {
                verifier(preset, &key.verifying, Vec::new())
            };
            match check(verifier.as_ref(), &delivery, &delivery.body) {
                Ok(Verdict::Handshake(handshake)) => {
                    assert!(expect.matches(&handshake.body), "{name}: {expect:?}");
                }
                other => panic!("{name}: {other:?}"),
            }
            checked.push(name);
        }
        assert_eq!(checked, handshakes());
        assert!(checked.len() >= 5, "{checked:?}");
        assert!(sign_handshake("github", b"s", &input(None)).is_err());
    }

    #[test]
    fn key_files_in_their_usual_forms() {
        assert!(sign("sendgrid", b"not a key", &input(None)).is_err());
        assert!(sign("discord", b"not a key", &input(None)).is_err());
    }

    #[test]
    fn a_given_body_is_sent_byte_for_byte() {
        let delivery =
            sign("stripe", b"s", &input(Some(b"not json \x00".to_vec()))).expect("signs");
        assert_eq!(delivery.body, b"not json \x00");
    }

    /// docs/providers.md's table is generated from the registry.
    #[test]
    fn the_docs_table_is_the_registrys() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/providers.md");
        let docs = std::fs::read_to_string(path).expect("docs/providers.md");
        let (_, rest) = docs
            .split_once("<!-- presets:begin -->\n")
            .expect("begin marker");
        let (table, _) = rest.split_once("<!-- presets:end -->").expect("end marker");
        assert!(
            table == registry::docs_table(),
            "docs/providers.md's preset table is out of date; regenerate it with `make docs`"
        );
        for preset in registry::presets() {
            assert!(table.contains(&format!("[`{}`]", preset.name())));
        }
    }

    #[test]
    fn unsupported_presets_and_bad_keys_are_errors() {
        assert!(sign("generic", b"s", &input(None)).is_err());
        assert!(sign("svix", b"whsec_***", &input(None)).is_err());
        assert!(sign("adyen", b"not hex", &input(None)).is_err());
        assert!(sign("mailgun", b"k", &input(Some(b"[]".to_vec()))).is_err());
        let unknown = parse_provider("githob").expect_err("unknown");
        assert!(unknown.contains("github"), "{unknown}");
    }
}
