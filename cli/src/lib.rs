//! The `hookwarden` CLI's presets: building a delivery exactly as a
//! provider signs it, with the receiver's own signers
//! (`hookwarden_receiver::verify::<preset>::sign`).

use hookwarden_crds::Provider;
use hookwarden_receiver::verify::{
    bitbucket, gitlab, intercom, linear, meta, paddle, pagerduty, shopify, slack,
    standard_webhooks, stripe, svix, twitch, zoom,
};
use serde_json::json;

/// The presets `send` can sign for, as written in a manifest.
pub const SENDABLE: &[&str] = &[
    "github",
    "gitlab",
    "bitbucket",
    "stripe",
    "slack",
    "standard-webhooks",
    "svix",
    "shopify",
    "paddle",
    "zoom",
    "twitch",
    "linear",
    "intercom",
    "pagerduty",
    "meta",
];

/// A provider preset from its manifest name (`standard-webhooks`, ...).
pub fn parse_provider(name: &str) -> Result<Provider, String> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| format!("unknown provider {name:?}"))
}

/// A signed delivery: the headers to send and the exact body bytes.
#[derive(Debug)]
pub struct Delivery {
    /// Header names and values, signature included.
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte as signed.
    pub body: Vec<u8>,
}

/// What the delivery should carry.
#[derive(Debug)]
pub struct Input<'a> {
    /// The event type.
    pub event: &'a str,
    /// The delivery id.
    pub id: &'a str,
    /// The body given by the user; `None` builds the preset's default body.
    pub body: Option<Vec<u8>>,
    /// Unix seconds of the signature.
    pub now: i64,
}

fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    // GitHub and Bitbucket sign identically (`sha256=<hex>` of the body).
    bitbucket::sign(secret, body)
}

fn owned(headers: Vec<(&'static str, String)>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

fn body_or(input: &Input<'_>, default: serde_json::Value) -> Vec<u8> {
    input
        .body
        .clone()
        .unwrap_or_else(|| default.to_string().into_bytes())
}

/// Signs a delivery for `provider` with `secret`.
pub fn sign(provider: &str, secret: &[u8], input: &Input<'_>) -> Result<Delivery, String> {
    let (event, id, now) = (input.event, input.id, input.now);
    let h = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    let whsec = |headers: Option<Vec<(&'static str, String)>>| {
        headers.map(owned).ok_or_else(|| {
            "the secret file does not hold a whsec_<base64> (or base64) key".to_owned()
        })
    };
    let (headers, body) = match provider {
        "github" => {
            let body = body_or(input, json!({}));
            let headers = vec![
                h("X-Hub-Signature-256", &hmac_sha256_hex(secret, &body)),
                h("X-GitHub-Event", event),
                h("X-GitHub-Delivery", id),
            ];
            (headers, body)
        }
        "bitbucket" => {
            let body = body_or(input, json!({}));
            let headers = vec![
                h("X-Hub-Signature", &bitbucket::sign(secret, &body)),
                h("X-Event-Key", event),
                h("X-Request-UUID", id),
            ];
            (headers, body)
        }
        "gitlab" => {
            let body = body_or(input, json!({}));
            let mut headers = if secret.starts_with(b"whsec_") {
                whsec(gitlab::sign_with_signing_token(secret, id, now, &body))?
            } else {
                let mut headers = owned(gitlab::sign(secret));
                headers.push(h("Idempotency-Key", id));
                headers
            };
            headers.push(h("X-Gitlab-Event", event));
            (headers, body)
        }
        "stripe" => {
            let body = body_or(input, json!({"id": id, "type": event}));
            (owned(stripe::sign(secret, now, &body)), body)
        }
        "slack" => {
            let body = body_or(
                input,
                json!({"type": "event_callback", "event_id": id, "event": {"type": event}}),
            );
            (owned(slack::sign(secret, now, &body)), body)
        }
        "standard-webhooks" => {
            let body = body_or(input, json!({"type": event}));
            let headers = whsec(standard_webhooks::sign(secret, id, now, &body))?;
            (headers, body)
        }
        "svix" => {
            let body = body_or(input, json!({"type": event}));
            (whsec(svix::sign(secret, id, now, &body))?, body)
        }
        "shopify" => {
            let body = body_or(input, json!({}));
            let mut headers = owned(shopify::sign(secret, &body));
            headers.push(h("X-Shopify-Topic", event));
            headers.push(h("X-Shopify-Webhook-Id", id));
            (headers, body)
        }
        "paddle" => {
            let body = body_or(input, json!({"event_id": id, "event_type": event}));
            (owned(paddle::sign(secret, now, &body)), body)
        }
        "zoom" => {
            let body = body_or(input, json!({"event": event}));
            (owned(zoom::sign(secret, now, &body)), body)
        }
        "twitch" => {
            let body = body_or(input, json!({"subscription": {"type": event}, "event": {}}));
            let timestamp = jiff::Timestamp::from_second(now)
                .map_err(|e| format!("clock: {e}"))?
                .to_string();
            let headers = vec![
                h(
                    "Twitch-Eventsub-Message-Signature",
                    &twitch::sign(secret, id, &timestamp, &body),
                ),
                h("Twitch-Eventsub-Message-Id", id),
                h("Twitch-Eventsub-Message-Timestamp", &timestamp),
                h("Twitch-Eventsub-Message-Type", "notification"),
                h("Twitch-Eventsub-Subscription-Type", event),
            ];
            (headers, body)
        }
        "linear" => {
            let body = body_or(
                input,
                json!({"type": event, "webhookTimestamp": now.saturating_mul(1000)}),
            );
            let mut headers = owned(linear::sign(secret, &body));
            headers.push(h("Linear-Event", event));
            headers.push(h("Linear-Delivery", id));
            (headers, body)
        }
        "intercom" => {
            let body = body_or(
                input,
                json!({"type": "notification_event", "topic": event, "id": id}),
            );
            (owned(intercom::sign(secret, &body)), body)
        }
        "pagerduty" => {
            let body = body_or(input, json!({"event": {"id": id, "event_type": event}}));
            (owned(pagerduty::sign(secret, &body)), body)
        }
        "meta" => {
            let body = body_or(input, json!({"object": event, "entry": []}));
            (owned(meta::sign(secret, &body)), body)
        }
        other => {
            return Err(format!(
                "send cannot sign for provider {other:?}; it supports {}",
                SENDABLE.join(", ")
            ));
        }
    };
    let mut headers = headers;
    headers.push(h("Content-Type", "application/json"));
    Ok(Delivery { headers, body })
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
    use hookwarden_receiver::verify::{self, Rejection};
    use hyper::http::{HeaderMap, HeaderName, HeaderValue};

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

    fn secret_for(provider: &str) -> &'static [u8] {
        match provider {
            "standard-webhooks" | "svix" => b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            _ => b"It's a Secret to Everybody",
        }
    }

    /// Every preset `send` signs for is accepted by the receiver's own
    /// verifier, which reads back the event and id where the preset carries
    /// them; one changed body byte is refused.
    #[test]
    fn every_sendable_preset_verifies_with_the_receivers_verifier() {
        let now = jiff::Timestamp::now().as_second();
        for provider in SENDABLE.iter().copied().chain(["gitlab-signing-token"]) {
            let (name, secret): (&str, &[u8]) = match provider {
                "gitlab-signing-token" => ("gitlab", b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                other => (other, secret_for(other)),
            };
            let input = Input {
                event: "thing.happened",
                id: "id-42",
                body: None,
                now,
            };
            let delivery = sign(name, secret, &input).expect("signs");
            let verifier = verify::for_provider(
                parse_provider(name).expect("provider"),
                vec![Secret::from(secret)],
                None,
            )
            .expect("verifier");
            let verified = verifier
                .verify(&headers(&delivery), &delivery.body)
                .unwrap_or_else(|r| panic!("{provider}: {r:?}"));
            assert_eq!(verified.secret_index, 0);
            assert_eq!(
                verified.event.as_deref(),
                Some("thing.happened"),
                "{provider}"
            );
            if !matches!(name, "zoom" | "meta") {
                assert_eq!(verified.delivery_id.as_deref(), Some("id-42"), "{provider}");
            }

            let mut changed = delivery.body.clone();
            changed.push(b' ');
            let refused = verifier.verify(&headers(&delivery), &changed);
            // GitLab's plain token does not sign the body.
            if name != "gitlab" || provider == "gitlab-signing-token" {
                assert_eq!(
                    refused.map(|_| ()),
                    Err(Rejection::SignatureMismatch),
                    "{provider}"
                );
            }
        }
    }

    #[test]
    fn a_given_body_is_sent_byte_for_byte() {
        let input = Input {
            event: "e",
            id: "i",
            body: Some(b"not json \x00".to_vec()),
            now: 1,
        };
        let delivery = sign("stripe", b"s", &input).expect("signs");
        assert_eq!(delivery.body, b"not json \x00");
    }

    #[test]
    fn unsupported_presets_and_bad_keys_are_errors() {
        let input = Input {
            event: "e",
            id: "i",
            body: None,
            now: 1,
        };
        assert!(sign("discord", b"s", &input).is_err());
        assert!(sign("svix", b"whsec_***", &input).is_err());
        assert!(parse_provider("githob").is_err());
    }
}
