//! The `hookwarden` CLI's presets: building a delivery exactly as a
//! provider signs it, with the receiver's own signers
//! (`hookwarden_receiver::verify::<preset>::sign`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hookwarden_crds::Provider;
use hookwarden_receiver::verify::{
    self, GenericChecks, adyen, bitbucket, discord, gitlab, intercom, linear, mailgun, meta,
    paddle, pagerduty, sendgrid, shopify, slack, square, standard_webhooks, stripe, svix, twilio,
    twitch, zoom,
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
    "discord",
    "sendgrid",
    "mailgun",
    "adyen",
    "twilio",
    "square",
    "generic",
];

/// The presets `send --handshake` can send the endpoint handshake of.
pub const HANDSHAKES: &[&str] = &["slack", "zoom", "twitch", "discord", "meta"];

/// A provider preset from its manifest name (`standard-webhooks`, ...).
pub fn parse_provider(name: &str) -> Result<Provider, String> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| format!("unknown provider {name:?}"))
}

/// A signed delivery: the headers to send and the exact body bytes.
#[derive(Debug)]
pub struct Delivery {
    /// `POST`, or `GET` for Meta's subscription handshake.
    pub method: &'static str,
    /// Header names and values, signature included.
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte as signed.
    pub body: Vec<u8>,
    /// Appended to the target URL's query (Twilio's `bodySHA256`, Meta's
    /// `hub.*` parameters).
    pub extra_query: Option<String>,
    /// For a handshake: the answer the provider expects.
    pub expect: Option<Expected>,
}

/// The answer a handshake must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// A JSON value (compared as JSON, not as bytes).
    Json(serde_json::Value),
    /// These exact bytes.
    Text(Vec<u8>),
}

impl Expected {
    /// Whether `answer` is the expected one.
    pub fn matches(&self, answer: &[u8]) -> bool {
        match self {
            Self::Json(value) => {
                serde_json::from_slice::<serde_json::Value>(answer)
                    .ok()
                    .as_ref()
                    == Some(value)
            }
            Self::Text(text) => answer == text.as_slice(),
        }
    }
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
    /// The URL the provider calls, query included: what Twilio and Square
    /// sign.
    pub url: &'a str,
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
        "discord" => {
            let seed = ed25519_seed(secret).ok_or(
                "the secret file does not hold an Ed25519 private key (PKCS#8 PEM or DER, or a 64-hex-digit seed)",
            )?;
            let body = body_or(
                input,
                json!({"id": id, "type": 2, "application_id": "0", "token": "hookwarden",
                       "version": 1, "data": {"name": event}}),
            );
            (owned(discord::sign(&seed, now, &body)), body)
        }
        "sendgrid" => {
            let body = body_or(
                input,
                json!([{"event": event, "sg_event_id": id, "timestamp": now,
                        "email": "test@example.com"}]),
            );
            let headers = sendgrid::sign(&der(secret), now, &body).ok_or(
                "the secret file does not hold a P-256 private key (PKCS#8 or SEC1, PEM or DER)",
            )?;
            (owned(headers), body)
        }
        "mailgun" => {
            let mut envelope =
                json_object(input, json!({"event-data": {"event": event, "id": id}}))?;
            let ts = now.to_string();
            let token = format!("{}{}", hex_id(id), hex_id(&ts));
            envelope.insert(
                "signature".to_owned(),
                json!({"timestamp": ts, "token": token, "signature": mailgun::sign(secret, &ts, &token)}),
            );
            (
                Vec::new(),
                serde_json::Value::Object(envelope).to_string().into_bytes(),
            )
        }
        "adyen" => {
            let key = std::str::from_utf8(secret)
                .ok()
                .and_then(|text| hex::decode(text.trim()).ok())
                .ok_or("the secret file does not hold the HMAC key as hex digits")?;
            let mut notification = json_object(
                input,
                json!({"live": "false", "notificationItems": [{"NotificationRequestItem": {
                    "pspReference": id, "eventCode": event, "merchantAccountCode": "HookwardenTest",
                    "merchantReference": "hookwarden", "amount": {"value": 1000, "currency": "EUR"},
                    "success": "true", "additionalData": {}}}]}),
            )?;
            let items = notification
                .get_mut("notificationItems")
                .and_then(serde_json::Value::as_array_mut)
                .ok_or("the body has no notificationItems array")?;
            for wrapper in items {
                let item = wrapper
                    .get_mut("NotificationRequestItem")
                    .ok_or("a notification item has no NotificationRequestItem")?;
                let signature = adyen::sign(&key, item);
                let additional = item
                    .as_object_mut()
                    .ok_or("a NotificationRequestItem is not an object")?
                    .entry("additionalData")
                    .or_insert_with(|| json!({}));
                additional
                    .as_object_mut()
                    .ok_or("additionalData is not an object")?
                    .insert("hmacSignature".to_owned(), json!(signature));
            }
            (
                Vec::new(),
                serde_json::Value::Object(notification)
                    .to_string()
                    .into_bytes(),
            )
        }
        "twilio" => {
            // A JSON body is signed through bodySHA256 in the URL; anything
            // else is form parameters.
            let body = input.body.clone().unwrap_or_else(|| {
                form(&[
                    ("AccountSid", "AChookwarden"),
                    ("MessageSid", id),
                    ("MessageStatus", event),
                ])
            });
            let is_json = serde_json::from_slice::<serde_json::Value>(&body).is_ok();
            let mut headers = Vec::new();
            let mut extra_query = None;
            if is_json {
                let signed = twilio::url_with_body_hash(input.url, &body);
                extra_query = Some(format!(
                    "bodySHA256={}",
                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body))
                ));
                headers.push(h(
                    "X-Twilio-Signature",
                    &twilio::sign(secret, &signed, &body),
                ));
                headers.push(h("Content-Type", "application/json"));
            } else {
                headers.push(h(
                    "X-Twilio-Signature",
                    &twilio::sign(secret, input.url, &body),
                ));
                headers.push(h("Content-Type", "application/x-www-form-urlencoded"));
            }
            headers.push(h("I-Twilio-Idempotency-Token", id));
            return Ok(Delivery {
                method: "POST",
                headers,
                body,
                extra_query,
                expect: None,
            });
        }
        "square" => {
            let created = jiff::Timestamp::from_second(now)
                .map_err(|e| format!("clock: {e}"))?
                .to_string();
            let body = body_or(
                input,
                json!({"merchant_id": "HOOKWARDEN", "type": event, "event_id": id,
                       "created_at": created, "data": {}}),
            );
            (owned(square::sign(secret, input.url, &body)), body)
        }
        "generic" => {
            return Err(
                "generic signs what its manifest configures: use --endpoint FILE --secrets-dir DIR"
                    .to_owned(),
            );
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
    Ok(Delivery {
        method: "POST",
        headers,
        body,
        extra_query: None,
        expect: None,
    })
}

/// Signs a delivery for the `generic` checks of a manifest, each with its
/// first secret; `event_header` carries the event.
pub fn sign_generic(
    checks: &GenericChecks,
    event_header: Option<&str>,
    input: &Input<'_>,
) -> Result<Delivery, String> {
    let body = body_or(input, json!({"type": input.event, "id": input.id}));
    let mut headers =
        verify::sign_generic(checks, input.id, input.now, &body).map_err(|e| e.to_string())?;
    if let Some(name) = event_header {
        headers.push((name.to_owned(), input.event.to_owned()));
    }
    headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    Ok(Delivery {
        method: "POST",
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
    let (id, now) = (input.id, input.now);
    let h = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    let json_type = || h("Content-Type", "application/json");
    let delivery = |headers, body, expect| Delivery {
        method: "POST",
        headers,
        body,
        extra_query: None,
        expect: Some(expect),
    };
    match provider {
        "slack" => {
            let body = slack::url_verification_body(id);
            let mut headers = owned(slack::sign(secret, now, &body));
            headers.push(json_type());
            Ok(delivery(
                headers,
                body,
                Expected::Json(json!({"challenge": id})),
            ))
        }
        "zoom" => {
            let body = zoom::url_validation_body(id, now.saturating_mul(1000));
            let mut headers = owned(zoom::sign(secret, now, &body));
            headers.push(json_type());
            let encrypted = hex_hmac_sha256(secret, id.as_bytes());
            Ok(delivery(
                headers,
                body,
                Expected::Json(json!({"plainToken": id, "encryptedToken": encrypted})),
            ))
        }
        "twitch" => {
            let body = json!({"challenge": id, "subscription": {"type": input.event}})
                .to_string()
                .into_bytes();
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
                h(
                    "Twitch-Eventsub-Message-Type",
                    "webhook_callback_verification",
                ),
                h("Twitch-Eventsub-Subscription-Type", input.event),
                json_type(),
            ];
            Ok(delivery(
                headers,
                body,
                Expected::Text(id.as_bytes().to_vec()),
            ))
        }
        "discord" => {
            let seed = ed25519_seed(secret).ok_or(
                "the secret file does not hold an Ed25519 private key (PKCS#8 PEM or DER, or a 64-hex-digit seed)",
            )?;
            let body = json!({"id": id, "type": 1, "application_id": "0", "token": "hookwarden", "version": 1})
                .to_string()
                .into_bytes();
            let mut headers = owned(discord::sign(&seed, now, &body));
            headers.push(json_type());
            Ok(delivery(headers, body, Expected::Json(json!({"type": 1}))))
        }
        "meta" => {
            let token = std::str::from_utf8(secret)
                .map_err(|_| "the verify token file is not UTF-8 text".to_owned())?;
            Ok(Delivery {
                method: "GET",
                headers: Vec::new(),
                body: Vec::new(),
                extra_query: Some(meta::subscription_query(token, id)),
                expect: Some(Expected::Text(id.as_bytes().to_vec())),
            })
        }
        other => Err(format!(
            "provider {other:?} has no handshake send can make; it supports {}",
            HANDSHAKES.join(", ")
        )),
    }
}

fn hex_hmac_sha256(key: &[u8], message: &[u8]) -> String {
    use hmac::Mac;
    match <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// A body that is a JSON object: the user's, or `default`.
fn json_object(
    input: &Input<'_>,
    default: serde_json::Value,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match &input.body {
        Some(body) => match serde_json::from_slice(body) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            _ => Err("this preset signs inside the body: --body must be a JSON object".to_owned()),
        },
        None => match default {
            serde_json::Value::Object(map) => Ok(map),
            _ => Ok(serde_json::Map::new()),
        },
    }
}

/// `text` as hex digits (Mailgun tokens are 50 hex characters).
fn hex_id(text: &str) -> String {
    hex::encode(text.as_bytes())
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish().into_bytes()
}

/// The DER inside a PEM armour, or the bytes themselves.
fn der(bytes: &[u8]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return bytes.to_vec();
    };
    if !text.contains("-----BEGIN") {
        return bytes.to_vec();
    }
    let base64: String = text
        .lines()
        .map(str::trim)
        .skip_while(|line| !line.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    BASE64.decode(base64).unwrap_or_default()
}

/// An Ed25519 private key's 32-byte seed: PKCS#8 (PEM or DER, as `openssl
/// genpkey -algorithm ed25519` writes it) or 64 hex digits.
pub fn ed25519_seed(bytes: &[u8]) -> Option<[u8; 32]> {
    // RFC 8410: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 },
    // OCTET STRING { OCTET STRING (32 bytes) } }.
    const PKCS8_PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut seed = [0u8; 32];
    if let Some(text) = std::str::from_utf8(bytes).ok().map(str::trim)
        && hex::decode_to_slice(text, &mut seed).is_ok()
    {
        return Some(seed);
    }
    let der = der(bytes);
    let rest = der.strip_prefix(&PKCS8_PREFIX[..])?;
    seed.copy_from_slice(rest.get(..32).filter(|_| rest.len() == 32)?);
    Some(seed)
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
    use hookwarden_receiver::verify::{self, Incoming, PresetOptions, Rejection, Verdict};
    use hyper::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

    const URL: &str = "https://hooks.example.com/in";
    /// 32 bytes of hex: an Ed25519 seed (Discord) and an Adyen HMAC key.
    const HEX_KEY: &[u8] = b"44fd7b4b6e6d0d4ba2a3f0a2bd3b1ec4d25cb2f5a35b5b49ddd3d4ba6e5f4b1a";
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`, PEM.
    const P256_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgoiwTVKttlFY6DOPf\neyL09KaIYAGtGjg19jV0nZOILnGhRANCAARZf2t164c2o4Mee1n4U9J5i19RKru9\n3lGb99Actxr3psAc4NZirCjNp1TZUkw3FD+v8qutCf8+gD0prlWVxQBT\n-----END PRIVATE KEY-----\n";

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

    /// What `send` signs with, and what the receiver's secret file holds.
    fn keys_for(provider: &str) -> (Vec<u8>, Vec<u8>) {
        match provider {
            "standard-webhooks" | "svix" | "gitlab-signing-token" => (
                b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_vec(),
                b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_vec(),
            ),
            "discord" => {
                let seed = ed25519_seed(HEX_KEY).expect("seed");
                (
                    HEX_KEY.to_vec(),
                    discord::public_key_hex(&seed).into_bytes(),
                )
            }
            "sendgrid" => (
                P256_PEM.as_bytes().to_vec(),
                sendgrid::public_key_base64(&der(P256_PEM.as_bytes()))
                    .expect("public key")
                    .into_bytes(),
            ),
            "adyen" => (HEX_KEY.to_vec(), HEX_KEY.to_vec()),
            _ => (
                b"It's a Secret to Everybody".to_vec(),
                b"It's a Secret to Everybody".to_vec(),
            ),
        }
    }

    fn verifier(name: &str, secret: &[u8]) -> Box<dyn verify::Verifier> {
        verify::for_preset(
            parse_provider(name).expect("provider"),
            vec![Secret::from(secret)],
            None,
            PresetOptions {
                public_url: Some(PublicUrl::parse(URL).expect("url")),
                ..PresetOptions::default()
            },
        )
        .expect("verifier")
    }

    fn check(
        verifier: &dyn verify::Verifier,
        delivery: &Delivery,
        body: &[u8],
    ) -> Result<Verdict, Rejection> {
        let target = match &delivery.extra_query {
            Some(query) => format!("/in?{query}"),
            None => "/in".to_owned(),
        };
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
        }
    }

    /// Every preset `send` signs for is accepted by the receiver's own
    /// verifier, which reads back the event and id where the preset carries
    /// them; one changed body byte is refused.
    #[test]
    fn every_sendable_preset_verifies_with_the_receivers_verifier() {
        for provider in SENDABLE
            .iter()
            .copied()
            .filter(|p| *p != "generic")
            .chain(["gitlab-signing-token"])
        {
            let name = if provider == "gitlab-signing-token" {
                "gitlab"
            } else {
                provider
            };
            let (signing, verifying) = keys_for(provider);
            let delivery = sign(name, &signing, &input(None)).expect("signs");
            let verifier = verifier(name, &verifying);
            let Ok(Verdict::Deliver(verified)) =
                check(verifier.as_ref(), &delivery, &delivery.body)
            else {
                panic!(
                    "{provider}: {:?}",
                    check(verifier.as_ref(), &delivery, &delivery.body)
                );
            };
            assert_eq!(verified.secret_index, 0);
            let expected_event = match name {
                "discord" => Some("APPLICATION_COMMAND"),
                "sendgrid" => Some("batch"),
                "twilio" => None,
                _ => Some("thing.happened"),
            };
            assert_eq!(verified.event.as_deref(), expected_event, "{provider}");
            if !matches!(name, "zoom" | "meta" | "sendgrid") {
                assert_eq!(verified.delivery_id.as_deref(), Some("id-42"), "{provider}");
            }

            // One changed byte of what is signed. Mailgun signs only the
            // signature block, GitLab's plain token nothing of the body.
            let mut changed = delivery.body.clone();
            if name == "mailgun" {
                let text = String::from_utf8(changed).expect("json");
                changed = text
                    .replacen("\"token\":\"", "\"token\":\"0", 1)
                    .into_bytes();
            } else if name == "adyen" {
                let text = String::from_utf8(changed).expect("json");
                changed = text.replacen("id-42", "id-43", 1).into_bytes();
            } else {
                changed.push(b' ');
            }
            let refused = check(verifier.as_ref(), &delivery, &changed);
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
    fn a_twilio_json_body_is_signed_through_body_sha256() {
        let (secret, _) = keys_for("twilio");
        let delivery =
            sign("twilio", &secret, &input(Some(br#"{"type":"x"}"#.to_vec()))).expect("signs");
        let query = delivery.extra_query.clone().expect("bodySHA256");
        assert!(query.starts_with("bodySHA256="), "{query}");
        let verifier = verifier("twilio", &secret);
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
        for provider in HANDSHAKES {
            let (signing, verifying) = keys_for(provider);
            let delivery = sign_handshake(provider, &signing, &input(None)).expect("signs");
            let expect = delivery.expect.clone().expect("an expected answer");
            let verifier = match *provider {
                // Meta's secret for the handshake is the verify token.
                "meta" => verify::for_preset(
                    Provider::Meta,
                    vec![Secret::from(&b"app secret"[..])],
                    None,
                    PresetOptions {
                        verify_tokens: vec![Secret::from(signing.clone())],
                        ..PresetOptions::default()
                    },
                )
                .expect("verifier"),
                name => verifier(name, &verifying),
            };
            match check(verifier.as_ref(), &delivery, &delivery.body) {
                Ok(Verdict::Handshake(handshake)) => {
                    assert!(expect.matches(&handshake.body), "{provider}: {expect:?}");
                }
                other => panic!("{provider}: {other:?}"),
            }
        }
        assert!(sign_handshake("github", b"s", &input(None)).is_err());
    }

    #[test]
    fn key_files_in_their_usual_forms() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIESCJvivICpQ5IUCjwZT9ymH/xGW6RdJA9uFAWRx3xpG\n-----END PRIVATE KEY-----\n";
        // `openssl genpkey -algorithm ed25519`; the seed `openssl pkey -text` prints.
        assert_eq!(
            ed25519_seed(pem.as_bytes()).map(hex::encode).as_deref(),
            Some("448226f8af202a50e485028f0653f72987ff1196e9174903db85016471df1a46")
        );
        assert!(ed25519_seed(b"not a key").is_none());
        assert!(sign("sendgrid", b"not a key", &input(None)).is_err());
    }

    #[test]
    fn a_given_body_is_sent_byte_for_byte() {
        let delivery =
            sign("stripe", b"s", &input(Some(b"not json \x00".to_vec()))).expect("signs");
        assert_eq!(delivery.body, b"not json \x00");
    }

    #[test]
    fn unsupported_presets_and_bad_keys_are_errors() {
        assert!(sign("generic", b"s", &input(None)).is_err());
        assert!(sign("svix", b"whsec_***", &input(None)).is_err());
        assert!(sign("adyen", b"not hex", &input(None)).is_err());
        assert!(sign("mailgun", b"k", &input(Some(b"[]".to_vec()))).is_err());
        assert!(parse_provider("githob").is_err());
    }
}
