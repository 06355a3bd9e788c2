//! Building a delivery exactly as a provider sends it: the signers of the
//! preset registry ([`super::registry::Preset::sign`]), used by `hookwarden
//! send`, the property and fuzz tests, the benches and the end-to-end tests.
//!
//! Each signer composes its module's `sign` function (the scheme's one
//! definition) with the preset's default body, event and id headers.
//!
//! This module is what every signer shares (the [`Delivery`], its input,
//! the test senders' names and the helpers that build a request); the
//! signers are grouped as the registry's descriptors are: `signed` (a
//! shared secret or a key pair), `token` and `fetched` keys. They keep
//! their `sending::` paths.

mod fetched;
mod signed;
mod token;

pub(crate) use fetched::{aws_sns, google_pubsub, paypal};
pub(crate) use signed::{
    adyen, bitbucket, discord, discord_handshake, docusign, dropbox, dropbox_handshake, github,
    gitlab, hubspot, intercom, linear, mailgun, meta, meta_handshake, paddle, pagerduty, sendgrid,
    shopify, slack, slack_handshake, square, standard_webhooks, standard_webhooks_sender, stripe,
    svix, trello, trello_handshake, twilio, twitch, twitch_handshake, twitter, twitter_handshake,
    xero, xero_handshake, zendesk, zoom, zoom_handshake,
};
pub(crate) use token::{
    azure_event_grid, azure_event_grid_handshake, microsoft_graph, microsoft_graph_handshake, okta,
    okta_handshake,
};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hookwarden_crds::WebhookEndpointSpec;

use super::keys::material;

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
    use serde_json::json;

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
