//! What payload logging (`spec.logging.payload`) shows of a request: its
//! headers, every value redacted unless the header is known to be harmless,
//! and the first [`BODY_LOG_LIMIT`] bytes of its body.
//!
//! Redaction is an allowlist: a header is shown only when it is a standard
//! HTTP header or one of the event-type, delivery-id and timestamp headers
//! providers send ([`PLAIN_HEADERS`]), or one the endpoint names for such
//! information (`spec.verification.eventHeader`, ...). Any other header, a
//! custom `X-Secret` as much as `Authorization`, is `[redacted]`: a list of
//! suspicious names always misses the next one. A header the verifier reads
//! a secret or signature from is redacted even if it is on the list.

use base64::Engine as _;
use http::HeaderMap;
use serde_json::{Map, Value};

/// What a redacted header value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// The most body bytes an audit line carries.
pub const BODY_LOG_LIMIT: usize = 4096;

/// Headers whose values are shown: standard HTTP and proxy headers, and the
/// providers' event types, delivery ids, timestamps and retry counters.
/// None of them carries a secret or a signature.
pub const PLAIN_HEADERS: &[&str] = &[
    // HTTP and proxies.
    "accept",
    "accept-encoding",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "date",
    "expect",
    "forwarded",
    "host",
    "traceparent",
    "tracestate",
    "transfer-encoding",
    "user-agent",
    "via",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
    // GitHub.
    "x-github-delivery",
    "x-github-event",
    "x-github-hook-id",
    "x-github-hook-installation-target-id",
    "x-github-hook-installation-target-type",
    // GitLab.
    "x-gitlab-event",
    "x-gitlab-event-uuid",
    "x-gitlab-instance",
    "x-gitlab-webhook-uuid",
    "idempotency-key",
    // Bitbucket.
    "x-event-key",
    "x-request-uuid",
    "x-hook-uuid",
    "x-attempt-number",
    // Slack.
    "x-slack-request-timestamp",
    "x-slack-retry-num",
    "x-slack-retry-reason",
    // Standard Webhooks, Svix.
    "webhook-id",
    "webhook-timestamp",
    "svix-id",
    "svix-timestamp",
    // Shopify.
    "x-shopify-api-version",
    "x-shopify-event-id",
    "x-shopify-shop-domain",
    "x-shopify-topic",
    "x-shopify-triggered-at",
    "x-shopify-webhook-id",
    // Zoom.
    "x-zm-request-timestamp",
    // Twitch.
    "twitch-eventsub-message-id",
    "twitch-eventsub-message-retry",
    "twitch-eventsub-message-timestamp",
    "twitch-eventsub-message-type",
    "twitch-eventsub-subscription-type",
    "twitch-eventsub-subscription-version",
    // Discord, SendGrid.
    "x-signature-timestamp",
    "x-twilio-email-event-webhook-timestamp",
    // Twilio.
    "i-twilio-idempotency-token",
    // Linear.
    "linear-delivery",
    "linear-event",
];

/// Whether the value of header `name` must not be logged: it is not on
/// [`PLAIN_HEADERS`] nor in `plain` (the endpoint's own information
/// headers), or the verifier reads a secret from it (`verifier_headers`).
pub fn is_secret_header(name: &str, verifier_headers: &[&str], plain: &[&str]) -> bool {
    let name = name.to_ascii_lowercase();
    let listed = PLAIN_HEADERS.contains(&name.as_str())
        || plain.iter().any(|p| p.eq_ignore_ascii_case(&name));
    !listed
        || verifier_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&name))
}

/// The headers as a JSON object (names in lower case, repeated headers as
/// an array of their values), with every secret-bearing value replaced by
/// [`REDACTED`]. Values that are not text are shown lossily as UTF-8.
pub fn headers_json(headers: &HeaderMap, verifier_headers: &[&str], plain: &[&str]) -> Value {
    let mut object = Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = if is_secret_header(name.as_str(), verifier_headers, plain) {
            headers
                .get_all(name)
                .iter()
                .map(|_| Value::from(REDACTED))
                .collect()
        } else {
            headers
                .get_all(name)
                .iter()
                .map(|v| Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect()
        };
        let value = match <[Value; 1]>::try_from(values) {
            Ok([single]) => single,
            Err(values) => Value::Array(values),
        };
        object.insert(name.as_str().to_owned(), value);
    }
    Value::Object(object)
}

/// At most [`BODY_LOG_LIMIT`] bytes of a body, for the audit line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyExcerpt {
    /// The bytes as text, or base64.
    pub text: String,
    /// `utf8` or `base64`.
    pub encoding: &'static str,
    /// Whether the body was longer than what is shown.
    pub truncated: bool,
}

/// The first [`BODY_LOG_LIMIT`] bytes of `body`: as text when they are
/// UTF-8 (a character cut in two by the limit is left out), else base64.
pub fn body_excerpt(body: &[u8]) -> BodyExcerpt {
    let truncated = body.len() > BODY_LOG_LIMIT;
    let head = body.get(..BODY_LOG_LIMIT).unwrap_or(body);
    let text = match std::str::from_utf8(head) {
        Ok(text) => Some(text),
        // Only the last character is incomplete, because the limit cut it.
        Err(err) if truncated && err.error_len().is_none() => {
            std::str::from_utf8(head.get(..err.valid_up_to()).unwrap_or_default()).ok()
        }
        Err(_) => None,
    };
    match text {
        Some(text) => BodyExcerpt {
            text: text.to_owned(),
            encoding: "utf8",
            truncated,
        },
        None => BodyExcerpt {
            text: base64::engine::general_purpose::STANDARD.encode(head),
            encoding: "base64",
            truncated,
        },
    }
}

/// `url` with the credentials of each server (`user:password@`,
/// `token@`) replaced by `***`, for logs and error messages. Handles the
/// comma-separated server lists NATS accepts.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|server| {
            let (scheme, rest) = match server.split_once("://") {
                Some((scheme, rest)) => (Some(scheme), rest),
                None => (None, server),
            };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let redacted = match rest[..authority_end].rfind('@') {
                Some(at) => format!("***@{}", &rest[at + 1..]),
                None => rest.to_owned(),
            };
            match scheme {
                Some(scheme) => format!("{scheme}://{redacted}"),
                None => redacted,
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn verifier_credential_and_suspicious_headers_are_redacted() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("x-hub-signature-256", "sha256=abc"),
            ("authorization", "Bearer t0ken"),
            ("cookie", "session=s3cret"),
            ("x-api-key", "k3y"),
            ("x-custom-check", "from-the-verifier"),
            ("x-shopify-hmac-sha256", "mac"),
            ("x-gitlab-token", "glpat"),
            ("user-agent", "GitHub-Hookshot/1"),
            ("x-acme-pass", "unlisted-s3cret"),
            ("x-acme-event", "order.paid"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        headers.append("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let json = headers_json(&headers, &["x-custom-check"], &["X-Acme-Event"]);
        assert_eq!(
            json,
            serde_json::json!({
                "content-type": "application/json",
                "x-github-event": "push",
                "x-hub-signature-256": REDACTED,
                "authorization": REDACTED,
                "cookie": REDACTED,
                "x-api-key": REDACTED,
                "x-custom-check": REDACTED,
                "x-shopify-hmac-sha256": REDACTED,
                "x-gitlab-token": REDACTED,
                "user-agent": "GitHub-Hookshot/1",
                // Not known to be harmless: redacted, whatever its name.
                "x-acme-pass": REDACTED,
                // The endpoint names it as its event header.
                "x-acme-event": "order.paid",
                "x-forwarded-for": ["192.0.2.1", "10.0.0.1"],
            })
        );
        let text = json.to_string();
        for secret in [
            "abc",
            "t0ken",
            "s3cret",
            "k3y",
            "from-the-verifier",
            "glpat",
            "unlisted-s3cret",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn every_preset_lists_its_signature_header_or_the_fallback_catches_it() {
        // The fallback alone covers each preset's signature or token header.
        for name in [
            "x-hub-signature-256",
            "x-hub-signature",
            "x-gitlab-token",
            "stripe-signature",
            "x-slack-signature",
            "webhook-signature",
            "svix-signature",
            "x-shopify-hmac-sha256",
            "paddle-signature",
            "x-zm-signature",
            "twitch-eventsub-message-signature",
            "x-signature-ed25519",
            "x-twilio-email-event-webhook-signature",
            "linear-signature",
            "x-pagerduty-signature",
        ] {
            assert!(is_secret_header(name, &[], &[]), "{name}");
        }
        for name in [
            "content-type",
            "x-github-delivery",
            "user-agent",
            "webhook-id",
        ] {
            assert!(!is_secret_header(name, &[], &[]), "{name}");
        }
        // Nothing the list does not know is shown.
        for name in [
            "x-secret",
            "x-custom",
            "x-api-credentials-v2",
            "x-internal-pass",
        ] {
            assert!(is_secret_header(name, &[], &[]), "{name}");
        }
    }

    #[test]
    fn bodies_are_text_or_base64_and_capped() {
        let short = body_excerpt(b"{\"a\":1}");
        assert_eq!(
            short,
            BodyExcerpt {
                text: "{\"a\":1}".to_owned(),
                encoding: "utf8",
                truncated: false
            }
        );
        let binary = body_excerpt(&[0xff, 0x00, 0x10]);
        assert_eq!(binary.encoding, "base64");
        assert_eq!(binary.text, "/wAQ");
        assert!(!binary.truncated);

        let long = body_excerpt(&vec![b'x'; BODY_LOG_LIMIT + 1]);
        assert_eq!(long.text.len(), BODY_LOG_LIMIT);
        assert!(long.truncated);

        // "é" is two bytes; the limit falls between them.
        let mut cut = vec![b'x'; BODY_LOG_LIMIT - 1];
        cut.extend_from_slice("é and more".as_bytes());
        let cut = body_excerpt(&cut);
        assert_eq!(cut.encoding, "utf8");
        assert_eq!(cut.text.len(), BODY_LOG_LIMIT - 1);
        assert!(cut.truncated);
    }

    #[test]
    fn event_types_and_delivery_ids_stay_readable_unless_a_verifier_reads_them() {
        for name in [
            "X-Event-Key",
            "Idempotency-Key",
            "I-Twilio-Idempotency-Token",
        ] {
            assert!(!is_secret_header(name, &[], &[]), "{name}");
            assert!(
                is_secret_header(name, &[&name.to_ascii_lowercase()], &[]),
                "{name} read by the verifier"
            );
        }
        assert!(is_secret_header("X-Api-Key", &[], &[]));
        assert!(is_secret_header("X-Gitlab-Token", &[], &[]));
    }

    #[test]
    fn urls_lose_the_credentials_of_every_server() {
        assert_eq!(
            redact_url("nats://user:pa55@nats.x.svc:4222"),
            "nats://***@nats.x.svc:4222"
        );
        assert_eq!(redact_url("nats://tok@n:4222/p@x"), "nats://***@n:4222/p@x");
        assert_eq!(
            redact_url("nats://a:s3cret@n1:4222,tls://b:s3cret@n2:4222,n3:4222"),
            "nats://***@n1:4222,tls://***@n2:4222,n3:4222"
        );
        assert_eq!(redact_url("u:s3cret@n:4222"), "***@n:4222");
        assert_eq!(redact_url("nats://n:4222"), "nats://n:4222");
    }
}
