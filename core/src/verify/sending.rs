//! Building a delivery exactly as a provider sends it: the signers of the
//! preset registry ([`super::registry::Preset::sign`]), used by `hookwarden
//! send`, the property and fuzz tests, the benches and the end-to-end tests.
//!
//! Each signer composes its module's `sign` function (the scheme's one
//! definition) with the preset's default body, event and id headers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hookwarden_crds::WebhookEndpointSpec;
use serde_json::json;

use super::keys::material;
use super::{
    adyen, aws_sns, azure_event_grid, bitbucket, discord, docusign, dropbox, entra, gitlab,
    google_pubsub, hubspot, intercom, linear, mailgun, meta, microsoft_graph, okta, paddle,
    pagerduty, paypal, sendgrid, shopify, slack, square, standard_webhooks, stripe, svix, trello,
    twilio, twitch, twitter, xero, zendesk, zoom,
};

/// A signed delivery: the method, the headers to send and the exact body.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `POST`, or the method of a handshake made otherwise: `GET` (Meta),
    /// `HEAD` (Trello).
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

impl Delivery {
    /// The request target for a delivery to `path`: the path and the
    /// query the signer added (Twilio's `bodySHA256`, a handshake's
    /// challenge), as the provider would request it.
    pub fn target(&self, path: &str) -> String {
        match &self.extra_query {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        }
    }
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

/// What a delivery should carry.
#[derive(Debug, Clone)]
pub struct SignInput<'a> {
    /// The event type.
    pub event: &'a str,
    /// The delivery id (for a handshake: its challenge).
    pub id: &'a str,
    /// The body given by the user; `None` builds the preset's default body.
    pub body: Option<Vec<u8>>,
    /// Unix seconds of the signature.
    pub now: i64,
    /// The URL the provider calls, query included: what Twilio and Square
    /// sign.
    pub url: &'a str,
    /// The endpoint's spec, when known (`send --endpoint`): the fetched-key
    /// presets sign for its accepted senders (topic ARN, PayPal webhook id,
    /// audience and service account).
    pub spec: Option<&'a WebhookEndpointSpec>,
    /// The key that signs the Microsoft Entra tokens of a spec that takes a
    /// shared secret too (`azure-event-grid` with `secretRefs` and
    /// `azure.entra`, `microsoft-graph` with `graph.validationTokens`): the
    /// RSA private key (PKCS#8 PEM) whose JWK the tenant's key set lists
    /// under [`ENTRA_KID`]. `None`: an Event Grid spec with Entra alone
    /// takes its key from the secret file; Graph sends no tokens.
    pub token_key: Option<&'a [u8]>,
}

/// Why a delivery cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The signing key is not of the kind the preset signs with.
    #[error("the secret file does not hold {0}")]
    Key(&'static str),
    /// The given body cannot carry what the preset signs inside it.
    #[error("{0}")]
    Body(&'static str),
    /// The signing time cannot be written as the provider writes it.
    #[error("the time {0} is out of range")]
    Clock(i64),
    /// The preset signs what its manifest configures (`generic`).
    #[error("generic signs what its manifest configures: use --endpoint FILE --secrets-dir DIR")]
    Configured,
    /// The spec asks for a Microsoft Entra token besides the secret.
    #[error("the endpoint's {0} needs a token signed by a key: give it with --token-key FILE")]
    TokenKeyNeeded(&'static str),
}

/// Signs a delivery with the secret file's bytes.
pub type Signer = fn(&[u8], &SignInput<'_>) -> Result<Delivery, SignError>;

const WHSEC_KEY: &str = "a whsec_<base64> (or base64) key";
const ED25519_PRIVATE_KEY: &str =
    "an Ed25519 private key (PKCS#8 PEM or DER, or a 64-hex-digit seed)";
const P256_PRIVATE_KEY: &str = "a P-256 private key (PKCS#8 or SEC1, PEM or DER)";
const HEX_KEY: &str = "the HMAC key as hex digits";
const RSA_PRIVATE_KEY: &str = "an RSA private key (PKCS#8 PEM)";

/// Where `send` says the fetched-key presets' certificates are: the
/// receiver fetches them from there (through a test route in tests), so the
/// key server must serve the signing key's certificate at that URL.
pub const SNS_CERT_URL: &str =
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-hookwarden.pem";
/// PayPal's, likewise.
pub const PAYPAL_CERT_URL: &str =
    "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-hookwarden";
/// The `kid` Google's JWKS must list the signing key's public half under.
pub const GOOGLE_KID: &str = "hookwarden";
/// The `kid` the Entra tenant's JWKS must list the signing key's public
/// half under (`azure-event-grid` with `spec.azure.entra`).
pub const ENTRA_KID: &str = "hookwarden-entra";
/// The topic `send` signs for when no spec names one.
pub const DEFAULT_TOPIC_ARN: &str = "arn:aws:sns:us-east-1:123456789012:hookwarden";
/// The PayPal webhook id `send` signs for when no spec names one.
pub const DEFAULT_PAYPAL_WEBHOOK_ID: &str = "HOOKWARDEN0000000";
/// The service account `send` signs for when no spec names one.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "hookwarden@hookwarden.iam.gserviceaccount.com";

fn rsa_key(secret: &[u8]) -> Result<ring::signature::RsaKeyPair, SignError> {
    std::str::from_utf8(secret)
        .ok()
        .and_then(material::rsa_signing_key)
        .ok_or(SignError::Key(RSA_PRIVATE_KEY))
}

fn header(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

fn owned(headers: Vec<(&'static str, String)>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

fn body_or(input: &SignInput<'_>, default: serde_json::Value) -> Vec<u8> {
    input
        .body
        .clone()
        .unwrap_or_else(|| default.to_string().into_bytes())
}

/// A JSON POST with `headers` and `body`.
fn json_post(mut headers: Vec<(String, String)>, body: Vec<u8>) -> Delivery {
    headers.push(header("Content-Type", "application/json"));
    Delivery {
        method: "POST",
        headers,
        body,
        extra_query: None,
        expect: None,
    }
}

fn rfc3339(now: i64) -> Result<String, SignError> {
    jiff::Timestamp::from_second(now)
        .map(|t| t.to_string())
        .map_err(|_| SignError::Clock(now))
}

pub(crate) fn github(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({}));
    // GitHub and Bitbucket sign identically (`sha256=<hex>` of the body).
    let headers = vec![
        header("X-Hub-Signature-256", &bitbucket::sign(secret, &body)),
        header("X-GitHub-Event", input.event),
        header("X-GitHub-Delivery", input.id),
    ];
    Ok(json_post(headers, body))
}

pub(crate) fn bitbucket(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({}));
    let headers = vec![
        header("X-Hub-Signature", &bitbucket::sign(secret, &body)),
        header("X-Event-Key", input.event),
        header("X-Request-UUID", input.id),
    ];
    Ok(json_post(headers, body))
}

pub(crate) fn gitlab(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({}));
    let mut headers = if secret.starts_with(b"whsec_") {
        gitlab::sign_with_signing_token(secret, input.id, input.now, &body)
            .map(owned)
            .ok_or(SignError::Key(WHSEC_KEY))?
    } else {
        let mut headers = owned(gitlab::sign(secret));
        headers.push(header("Idempotency-Key", input.id));
        headers
    };
    headers.push(header("X-Gitlab-Event", input.event));
    Ok(json_post(headers, body))
}

pub(crate) fn stripe(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({"id": input.id, "type": input.event}));
    Ok(json_post(
        owned(stripe::sign(secret, input.now, &body)),
        body,
    ))
}

pub(crate) fn slack(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"type": "event_callback", "event_id": input.id, "event": {"type": input.event}}),
    );
    Ok(json_post(
        owned(slack::sign(secret, input.now, &body)),
        body,
    ))
}

pub(crate) fn standard_webhooks(
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({"type": input.event}));
    let headers = standard_webhooks::sign(secret, input.id, input.now, &body)
        .ok_or(SignError::Key(WHSEC_KEY))?;
    Ok(json_post(owned(headers), body))
}

pub(crate) fn svix(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({"type": input.event}));
    let headers =
        svix::sign(secret, input.id, input.now, &body).ok_or(SignError::Key(WHSEC_KEY))?;
    Ok(json_post(owned(headers), body))
}

/// A Standard Webhooks sender of `scheme` (Clerk, OpenAI, ...), keyed with
/// a `whsec_` secret.
pub(crate) fn standard_webhooks_sender(
    scheme: standard_webhooks::Scheme,
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({"type": input.event}));
    let headers = standard_webhooks::sign_scheme(scheme, secret, input.id, input.now, &body)
        .ok_or(SignError::Key(WHSEC_KEY))?;
    Ok(json_post(owned(headers), body))
}

pub(crate) fn shopify(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({}));
    let mut headers = owned(shopify::sign(secret, &body));
    headers.push(header("X-Shopify-Topic", input.event));
    headers.push(header("X-Shopify-Webhook-Id", input.id));
    Ok(json_post(headers, body))
}

pub(crate) fn paddle(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"event_id": input.id, "event_type": input.event}),
    );
    Ok(json_post(
        owned(paddle::sign(secret, input.now, &body)),
        body,
    ))
}

pub(crate) fn zoom(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({"event": input.event}));
    Ok(json_post(owned(zoom::sign(secret, input.now, &body)), body))
}

/// Twitch's headers for a message of `message_type`.
fn twitch_headers(
    secret: &[u8],
    input: &SignInput<'_>,
    message_type: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, SignError> {
    let timestamp = rfc3339(input.now)?;
    Ok(vec![
        header(
            "Twitch-Eventsub-Message-Signature",
            &twitch::sign(secret, input.id, &timestamp, body),
        ),
        header("Twitch-Eventsub-Message-Id", input.id),
        header("Twitch-Eventsub-Message-Timestamp", &timestamp),
        header("Twitch-Eventsub-Message-Type", message_type),
        header("Twitch-Eventsub-Subscription-Type", input.event),
    ])
}

pub(crate) fn twitch(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"subscription": {"type": input.event}, "event": {}}),
    );
    let headers = twitch_headers(secret, input, "notification", &body)?;
    Ok(json_post(headers, body))
}

pub(crate) fn linear(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"type": input.event, "webhookTimestamp": input.now.saturating_mul(1000)}),
    );
    let mut headers = owned(linear::sign(secret, &body));
    headers.push(header("Linear-Event", input.event));
    headers.push(header("Linear-Delivery", input.id));
    Ok(json_post(headers, body))
}

pub(crate) fn intercom(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"type": "notification_event", "topic": input.event, "id": input.id}),
    );
    Ok(json_post(owned(intercom::sign(secret, &body)), body))
}

pub(crate) fn pagerduty(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"event": {"id": input.id, "event_type": input.event}}),
    );
    Ok(json_post(owned(pagerduty::sign(secret, &body)), body))
}

pub(crate) fn meta(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({"object": input.event, "entry": []}));
    Ok(json_post(owned(meta::sign(secret, &body)), body))
}

pub(crate) fn discord(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let seed = ed25519_seed(secret).ok_or(SignError::Key(ED25519_PRIVATE_KEY))?;
    let body = body_or(
        input,
        json!({"id": input.id, "type": 2, "application_id": "0", "token": "hookwarden",
               "version": 1, "data": {"name": input.event}}),
    );
    Ok(json_post(
        owned(discord::sign(&seed, input.now, &body)),
        body,
    ))
}

pub(crate) fn sendgrid(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!([{"event": input.event, "sg_event_id": input.id, "timestamp": input.now,
                "email": "test@example.com"}]),
    );
    let headers =
        sendgrid::sign(&der(secret), input.now, &body).ok_or(SignError::Key(P256_PRIVATE_KEY))?;
    Ok(json_post(owned(headers), body))
}

pub(crate) fn mailgun(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let mut envelope = json_object(
        input,
        json!({"event-data": {"event": input.event, "id": input.id}}),
    )?;
    let ts = input.now.to_string();
    // Mailgun's tokens are 50 hex characters; any hex does.
    let token = format!(
        "{}{}",
        hex::encode(input.id.as_bytes()),
        hex::encode(ts.as_bytes())
    );
    envelope.insert(
        "signature".to_owned(),
        json!({"timestamp": ts, "token": token, "signature": mailgun::sign(secret, &ts, &token)}),
    );
    Ok(json_post(
        Vec::new(),
        serde_json::Value::Object(envelope).to_string().into_bytes(),
    ))
}

pub(crate) fn adyen(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let key = std::str::from_utf8(secret)
        .ok()
        .and_then(|text| hex::decode(text.trim()).ok())
        .ok_or(SignError::Key(HEX_KEY))?;
    let mut notification = json_object(
        input,
        json!({"live": "false", "notificationItems": [{"NotificationRequestItem": {
            "pspReference": input.id, "eventCode": input.event,
            "merchantAccountCode": "HookwardenTest", "merchantReference": "hookwarden",
            "amount": {"value": 1000, "currency": "EUR"}, "success": "true",
            "additionalData": {}}}]}),
    )?;
    let items = notification
        .get_mut("notificationItems")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or(SignError::Body("the body has no notificationItems array"))?;
    for wrapper in items {
        let item = wrapper
            .get_mut("NotificationRequestItem")
            .ok_or(SignError::Body(
                "a notification item has no NotificationRequestItem",
            ))?;
        let signature = adyen::sign(&key, item);
        let additional = item
            .as_object_mut()
            .ok_or(SignError::Body(
                "a NotificationRequestItem is not an object",
            ))?
            .entry("additionalData")
            .or_insert_with(|| json!({}));
        additional
            .as_object_mut()
            .ok_or(SignError::Body("additionalData is not an object"))?
            .insert("hmacSignature".to_owned(), json!(signature));
    }
    Ok(json_post(
        Vec::new(),
        serde_json::Value::Object(notification)
            .to_string()
            .into_bytes(),
    ))
}

pub(crate) fn twilio(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    // A JSON body is signed through bodySHA256 in the URL; anything else is
    // form parameters.
    let body = input.body.clone().unwrap_or_else(|| {
        form(&[
            ("AccountSid", "AChookwarden"),
            ("MessageSid", input.id),
            ("MessageStatus", input.event),
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
        headers.push(header(
            "X-Twilio-Signature",
            &twilio::sign(secret, &signed, &body),
        ));
        headers.push(header("Content-Type", "application/json"));
    } else {
        headers.push(header(
            "X-Twilio-Signature",
            &twilio::sign(secret, input.url, &body),
        ));
        headers.push(header("Content-Type", "application/x-www-form-urlencoded"));
    }
    headers.push(header("I-Twilio-Idempotency-Token", input.id));
    Ok(Delivery {
        method: "POST",
        headers,
        body,
        extra_query,
        expect: None,
    })
}

pub(crate) fn square(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let created = rfc3339(input.now)?;
    let body = body_or(
        input,
        json!({"merchant_id": "HOOKWARDEN", "type": input.event, "event_id": input.id,
               "created_at": created, "data": {}}),
    );
    Ok(json_post(
        owned(square::sign(secret, input.url, &body)),
        body,
    ))
}

pub(crate) fn hubspot(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!([{"eventId": 1, "subscriptionId": 1, "portalId": 1, "appId": 1,
                "occurredAt": input.now.saturating_mul(1000), "subscriptionType": input.event,
                "attemptNumber": 0, "objectId": input.id, "changeSource": "CRM"}]),
    );
    let headers = hubspot::sign(
        secret,
        "POST",
        input.url,
        &body,
        input.now.saturating_mul(1000),
    );
    Ok(json_post(owned(headers), body))
}

pub(crate) fn zendesk(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"type": input.event, "id": input.id, "time": rfc3339(input.now)?,
               "zendesk_event_version": "2022-11-06", "detail": {}, "event": {}}),
    );
    Ok(json_post(
        owned(zendesk::sign(secret, input.now, &body)),
        body,
    ))
}

pub(crate) fn xero(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    // Xero reports `<eventCategory>.<eventType>`: the event is split there.
    let (category, kind) = input
        .event
        .split_once('.')
        .unwrap_or(("INVOICE", input.event));
    let body = body_or(
        input,
        json!({"events": [{"resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/1",
                           "resourceId": input.id, "eventDateUtc": rfc3339(input.now)?,
                           "eventType": kind, "eventCategory": category,
                           "tenantId": "00000000-0000-0000-0000-000000000000",
                           "tenantType": "ORGANISATION"}],
               "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "HOOKWARDEN"}),
    );
    Ok(json_post(owned(xero::sign(secret, &body)), body))
}

/// Xero's Intent to Receive: a signed delivery without events, answered
/// with an empty 200.
pub(crate) fn xero_handshake(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = xero::intent_to_receive_body(input.id);
    Ok(handshake_post(
        owned(xero::sign(secret, &body)),
        body,
        Expected::Text(Vec::new()),
    ))
}

pub(crate) fn docusign(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"event": input.event, "apiVersion": "v2.1", "uri": "/restapi/v2.1/accounts",
               "retryCount": 0, "configurationId": 1, "generatedDateTime": rfc3339(input.now)?,
               "data": {"envelopeId": input.id}}),
    );
    Ok(json_post(owned(docusign::sign(secret, &body)), body))
}

pub(crate) fn dropbox(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"list_folder": {"accounts": [format!("dbid:{}", input.id)]},
               "delta": {"users": [12345]}}),
    );
    Ok(json_post(owned(dropbox::sign(secret, &body)), body))
}

/// A handshake GET with `query` (and `headers`), expecting `expect`.
fn handshake_get(query: String, headers: Vec<(String, String)>, expect: Expected) -> Delivery {
    Delivery {
        method: "GET",
        headers,
        body: Vec::new(),
        extra_query: Some(query),
        expect: Some(expect),
    }
}

/// Dropbox's unsigned `?challenge=` GET, echoed.
pub(crate) fn dropbox_handshake(_: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    Ok(handshake_get(
        dropbox::challenge_query(input.id),
        Vec::new(),
        Expected::Text(input.id.as_bytes().to_vec()),
    ))
}

pub(crate) fn twitter(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"for_user_id": "2244994945",
               "tweet_create_events": [{"id_str": input.id, "text": input.event}]}),
    );
    Ok(json_post(owned(twitter::sign(secret, &body)), body))
}

/// X's CRC GET, answered with the HMAC of its token.
pub(crate) fn twitter_handshake(
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    let answer = serde_json::from_str(&twitter::crc_response(secret, input.id))
        .map_err(|_| SignError::Body("the CRC answer is not JSON"))?;
    Ok(handshake_get(
        twitter::crc_query(input.id),
        Vec::new(),
        Expected::Json(answer),
    ))
}

pub(crate) fn trello(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"action": {"id": input.id, "type": input.event, "data": {}},
               "model": {"id": "4d5ea62fd76aa1136000000c", "name": "Hookwarden"}}),
    );
    Ok(json_post(
        owned(trello::sign(secret, input.url, &body)),
        body,
    ))
}

/// Trello's unsigned `HEAD` on webhook creation: any 200 will do, and a
/// `HEAD` answer has no body.
pub(crate) fn trello_handshake(_: &[u8], _: &SignInput<'_>) -> Result<Delivery, SignError> {
    Ok(Delivery {
        method: "HEAD",
        headers: Vec::new(),
        body: Vec::new(),
        extra_query: None,
        expect: Some(Expected::Text(Vec::new())),
    })
}

pub(crate) fn okta(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = input
        .body
        .clone()
        .unwrap_or_else(|| okta::delivery_body(input.id, input.event));
    Ok(json_post(okta_headers(secret, input), body))
}

/// Okta's secret header: `spec.okta.authHeader`, else `Authorization`.
fn okta_headers(secret: &[u8], input: &SignInput<'_>) -> Vec<(String, String)> {
    let mut headers = owned(okta::sign(secret));
    if let Some(name) = input
        .spec
        .and_then(|spec| spec.okta.as_ref())
        .and_then(|okta| okta.auth_header.as_deref())
    {
        for (header, _) in &mut headers {
            *header = name.to_owned();
        }
    }
    headers
}

/// Okta's one-time verification GET, authenticated like a delivery.
pub(crate) fn okta_handshake(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    Ok(Delivery {
        method: "GET",
        headers: {
            let mut headers = okta_headers(secret, input);
            headers.push((
                "X-Okta-Verification-Challenge".to_owned(),
                input.id.to_owned(),
            ));
            headers
        },
        body: Vec::new(),
        extra_query: None,
        expect: Some(Expected::Json(json!({"verification": input.id}))),
    })
}

pub(crate) fn azure_event_grid(
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!([{"id": input.id, "eventType": input.event, "subject": "/hookwarden",
                "topic": "/subscriptions/00000000-0000-0000-0000-000000000000",
                "eventTime": rfc3339(input.now)?, "data": {}, "dataVersion": "1",
                "metadataVersion": "1"}]),
    );
    let (query, headers) = azure_event_grid::sign(secret);
    let entra = entra_header(input.token_key.unwrap_or(secret), input)?;
    if let Some(entra) = &entra
        && input.token_key.is_none()
    {
        return Ok(json_post(
            owned(vec![headers[0].clone(), entra.clone()]),
            body,
        ));
    }
    // The secret, and with `token_key` the token as well.
    let mut delivery = json_post(owned(headers), body);
    if let Some((name, value)) = entra {
        delivery.headers.push(header(name, &value));
    }
    match event_grid_secret_header(input) {
        // A delivery property header instead of `?code=`.
        Some(name) => delivery.headers.push((
            name.to_owned(),
            String::from_utf8_lossy(secret).into_owned(),
        )),
        None => delivery.extra_query = Some(query),
    }
    Ok(delivery)
}

/// `spec.azure.secretHeader`, when the spec names one.
fn event_grid_secret_header<'a>(input: &SignInput<'a>) -> Option<&'a str> {
    input
        .spec
        .and_then(|spec| spec.azure.as_ref())
        .and_then(|azure| azure.secret_header.as_deref())
}

/// With `spec.azure.entra`, Event Grid's bearer token instead of the
/// secret: the secret file then holds the RSA private key (PKCS#8 PEM)
/// whose JWK the tenant's key set lists under [`ENTRA_KID`]. (A spec that
/// also lists `secretRefs` needs both, which one secret file cannot hold:
/// such a delivery is built by `azure_event_grid::entra_header` and
/// `secret_query` together.)
fn entra_header(
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Option<(&'static str, String)>, SignError> {
    let Some(entra) = input
        .spec
        .and_then(|spec| spec.azure.as_ref())
        .and_then(|azure| azure.entra.as_ref())
    else {
        return Ok(None);
    };
    let key = rsa_key(secret)?;
    Ok(Some(azure_event_grid::entra_header(
        &key,
        ENTRA_KID,
        &entra.tenant_id,
        &entra.audience,
        input.now,
    )))
}

/// Event Grid's subscription validation event, carrying the secret like a
/// delivery, answered with its code.
pub(crate) fn azure_event_grid_handshake(
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    let (query, headers) = azure_event_grid::sign(secret);
    let entra = entra_header(input.token_key.unwrap_or(secret), input)?;
    let mut delivery = handshake_post(
        owned(match (&entra, input.token_key) {
            (Some(entra), None) => vec![entra.clone()],
            (Some(entra), Some(_)) => {
                let mut headers = headers;
                headers.push(entra.clone());
                headers
            }
            (None, _) => headers,
        }),
        azure_event_grid::validation_body(input.id),
        Expected::Json(json!({"validationResponse": input.id})),
    );
    // The secret too, unless the token alone is what the spec takes.
    if entra.is_none() || input.token_key.is_some() {
        match event_grid_secret_header(input) {
            Some(name) => delivery.headers.push((
                name.to_owned(),
                String::from_utf8_lossy(secret).into_owned(),
            )),
            None => delivery.extra_query = Some(query),
        }
    }
    Ok(delivery)
}

/// A Graph change notification carrying the secret as its `clientState`.
///
/// With `graph.validationTokens` in the spec, a rich notification: its
/// `validationTokens` hold one token for the spec's tenant and app, signed
/// with `token_key` as Microsoft Graph Change Tracking's (which `send`
/// then needs; the receiver refuses such a delivery without tokens).
pub(crate) fn microsoft_graph(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let client_state = std::str::from_utf8(secret).map_err(|_| SignError::Key("UTF-8 text"))?;
    let validation = input
        .spec
        .and_then(|spec| spec.graph.as_ref())
        .and_then(|graph| graph.validation_tokens.as_ref());
    let tokens = match (validation, input.token_key) {
        (None, _) => Vec::new(),
        (Some(_), None) => return Err(SignError::TokenKeyNeeded("graph.validationTokens")),
        (Some(validation), Some(key)) => vec![entra::token(
            &rsa_key(key)?,
            ENTRA_KID,
            &entra::Claims {
                tenant: &validation.tenant_id,
                audience: &validation.app_id,
                client: entra::GRAPH_CHANGE_TRACKING_APP_ID,
                iat: input.now,
                v2: false,
            },
        )],
    };
    let body = match &input.body {
        Some(body) => body.clone(),
        None => {
            let mut body = json!({"value": [{"id": input.id, "changeType": input.event,
                                  "clientState": client_state,
                                  "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
                                  "resource": "users/hookwarden/messages/1",
                                  "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95"}]});
            if !tokens.is_empty() {
                body["validationTokens"] = tokens.into();
            }
            body.to_string().into_bytes()
        }
    };
    Ok(json_post(Vec::new(), body))
}

/// Graph's unsigned validation POST, answered with its token as text.
pub(crate) fn microsoft_graph_handshake(
    _: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    Ok(Delivery {
        method: "POST",
        headers: vec![header("Content-Type", "text/plain")],
        body: Vec::new(),
        extra_query: Some(microsoft_graph::validation_query(input.id)),
        expect: Some(Expected::Text(input.id.as_bytes().to_vec())),
    })
}

pub(crate) fn aws_sns(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let key = rsa_key(secret)?;
    let topic = input
        .spec
        .and_then(|spec| spec.aws.as_ref())
        .and_then(|aws| aws.topic_arns.first())
        .map_or(DEFAULT_TOPIC_ARN, String::as_str);
    let message = match &input.body {
        Some(body) => String::from_utf8_lossy(body).into_owned(),
        None => json!({"event": input.event}).to_string(),
    };
    let timestamp = rfc3339(input.now)?;
    let body = aws_sns::sign(
        &key,
        &aws_sns::Message {
            kind: "Notification",
            message_id: input.id,
            topic_arn: topic,
            subject: Some(input.event),
            message: &message,
            timestamp: &timestamp,
            signing_cert_url: SNS_CERT_URL,
            subscribe_url: None,
            token: None,
        },
    );
    let headers = vec![
        header("x-amz-sns-message-type", "Notification"),
        header("x-amz-sns-message-id", input.id),
        header("x-amz-sns-topic-arn", topic),
        header("Content-Type", "text/plain; charset=UTF-8"),
    ];
    Ok(Delivery {
        method: "POST",
        headers,
        body,
        extra_query: None,
        expect: None,
    })
}

pub(crate) fn paypal(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let key = rsa_key(secret)?;
    let webhook_id = input
        .spec
        .and_then(|spec| spec.paypal.as_ref())
        .map_or(DEFAULT_PAYPAL_WEBHOOK_ID, |p| p.webhook_id.as_str());
    let body = body_or(
        input,
        json!({"id": input.id, "event_version": "1.0", "create_time": rfc3339(input.now)?,
               "resource_type": "sale", "event_type": input.event,
               "summary": "hookwarden", "resource": {}}),
    );
    let headers = paypal::sign(
        &key,
        PAYPAL_CERT_URL,
        webhook_id,
        &format!("{}-transmission", input.id),
        input.now,
        &body,
    );
    Ok(json_post(owned(headers), body))
}

pub(crate) fn google_pubsub(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let key = rsa_key(secret)?;
    let google = input.spec.and_then(|spec| spec.google.as_ref());
    let audience = google
        .and_then(|g| g.audience.as_deref())
        .unwrap_or(input.url.split('?').next().unwrap_or(input.url));
    let email = google.map_or(DEFAULT_SERVICE_ACCOUNT, |g| {
        g.service_account_email.as_str()
    });
    let body = match &input.body {
        Some(body) => body.clone(),
        None => google_pubsub::push_body(
            input.id,
            input.event.as_bytes(),
            "projects/hookwarden/subscriptions/hookwarden",
        ),
    };
    let headers = google_pubsub::sign(&key, GOOGLE_KID, audience, email, input.now);
    Ok(json_post(owned(headers), body))
}

/// `generic` signs what its manifest configures ([`super::sign_generic`]).
pub(crate) fn configured(_: &[u8], _: &SignInput<'_>) -> Result<Delivery, SignError> {
    Err(SignError::Configured)
}

/// A handshake POST with `headers` and a JSON `body`, expecting `expect`.
fn handshake_post(mut headers: Vec<(String, String)>, body: Vec<u8>, expect: Expected) -> Delivery {
    headers.push(header("Content-Type", "application/json"));
    Delivery {
        method: "POST",
        headers,
        body,
        extra_query: None,
        expect: Some(expect),
    }
}

pub(crate) fn slack_handshake(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = slack::url_verification_body(input.id);
    let headers = owned(slack::sign(secret, input.now, &body));
    Ok(handshake_post(
        headers,
        body,
        Expected::Json(json!({"challenge": input.id})),
    ))
}

pub(crate) fn zoom_handshake(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = zoom::url_validation_body(input.id, input.now.saturating_mul(1000));
    let headers = owned(zoom::sign(secret, input.now, &body));
    let encrypted = hex::encode(super::hmac_common::mac::<hmac::Hmac<sha2::Sha256>>(
        secret,
        &[input.id.as_bytes()],
    ));
    Ok(handshake_post(
        headers,
        body,
        Expected::Json(json!({"plainToken": input.id, "encryptedToken": encrypted})),
    ))
}

pub(crate) fn twitch_handshake(
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    let body = json!({"challenge": input.id, "subscription": {"type": input.event}})
        .to_string()
        .into_bytes();
    let headers = twitch_headers(secret, input, "webhook_callback_verification", &body)?;
    Ok(handshake_post(
        headers,
        body,
        Expected::Text(input.id.as_bytes().to_vec()),
    ))
}

pub(crate) fn discord_handshake(
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    let seed = ed25519_seed(secret).ok_or(SignError::Key(ED25519_PRIVATE_KEY))?;
    let body = json!({"id": input.id, "type": 1, "application_id": "0", "token": "hookwarden",
                      "version": 1})
    .to_string()
    .into_bytes();
    let headers = owned(discord::sign(&seed, input.now, &body));
    Ok(handshake_post(
        headers,
        body,
        Expected::Json(json!({"type": 1})),
    ))
}

/// Meta's subscription handshake: `secret` is the verify token.
pub(crate) fn meta_handshake(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let token = std::str::from_utf8(secret).map_err(|_| SignError::Key("UTF-8 text"))?;
    Ok(Delivery {
        method: "GET",
        headers: Vec::new(),
        body: Vec::new(),
        extra_query: Some(meta::subscription_query(token, input.id)),
        expect: Some(Expected::Text(input.id.as_bytes().to_vec())),
    })
}

/// A body that is a JSON object: the user's, or `default`.
fn json_object(
    input: &SignInput<'_>,
    default: serde_json::Value,
) -> Result<serde_json::Map<String, serde_json::Value>, SignError> {
    match &input.body {
        Some(body) => match serde_json::from_slice(body) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            _ => Err(SignError::Body(
                "this preset signs inside the body: --body must be a JSON object",
            )),
        },
        None => match default {
            serde_json::Value::Object(map) => Ok(map),
            _ => Ok(serde_json::Map::new()),
        },
    }
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish().into_bytes()
}

/// The DER inside a PEM armour, or the bytes themselves.
pub fn der(bytes: &[u8]) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_in_their_usual_forms() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIESCJvivICpQ5IUCjwZT9ymH/xGW6RdJA9uFAWRx3xpG\n-----END PRIVATE KEY-----\n";
        // `openssl genpkey -algorithm ed25519`; the seed `openssl pkey -text` prints.
        assert_eq!(
            ed25519_seed(pem.as_bytes()).map(hex::encode).as_deref(),
            Some("448226f8af202a50e485028f0653f72987ff1196e9174903db85016471df1a46")
        );
        assert!(ed25519_seed(b"not a key").is_none());
    }

    #[test]
    fn expected_answers_compare_json_as_json() {
        let expected = Expected::Json(json!({"a": 1, "b": "x"}));
        assert!(expected.matches(br#"{ "b": "x", "a": 1 }"#));
        assert!(!expected.matches(br#"{"a": 2, "b": "x"}"#));
        assert!(Expected::Text(b"42".to_vec()).matches(b"42"));
        assert!(!Expected::Text(b"42".to_vec()).matches(b"42\n"));
    }
}
