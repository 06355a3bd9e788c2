//! X's (Twitter's) Account Activity scheme:
//! `x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256(consumer
//! secret, body)>`, the raw body bytes signed with the app's consumer secret
//! (API secret key). No timestamp is signed, so there is no replay window;
//! the stream's de-duplication and TLS are the only defence against a
//! replayed capture. The event is the body's `*_events` key (e.g.
//! `tweet_create_events`); X sends no delivery id.
//!
//! The Challenge-Response Check (CRC) is an unsigned `GET ?crc_token=<token>`
//! (at registration, hourly, and on demand) answered with
//! `{"response_token": "sha256=<base64 HMAC-SHA256(consumer secret,
//! crc_token)>"}`. Because anyone can send that GET, answering it makes the
//! receiver an HMAC oracle for the consumer secret: a forger could ask for
//! the "CRC answer" of a JSON body and replay it as that body's signature.
//! The receiver therefore only answers tokens made of letters, digits and
//! `-_.~+/=:` (what X sends), which can never be a JSON document (no `{`, no
//! `"`), so no answer is ever a valid delivery signature. The CRC is
//! answered with the first configured secret: list the current consumer
//! secret first.
//!
//! See <https://docs.x.com/x-api/webhooks/quickstart> and
//! <https://developer.x.com/en/docs/x-api/enterprise/account-activity-api/guides/securing-webhooks>.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::Hmac;
use http::{HeaderMap, Method};
use sha2::Sha256;

use super::handshake_common::query_param;
use super::hmac_common::{find_secret, json_body, mac, require_secrets, signature_header};
use super::{
    Handshake, Head, Incoming, Rejection, Verdict, Verified, Verifier, VerifierError, challenge,
    credential_header_present, info_value,
};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-twitter-webhooks-signature";

/// Verifies X Account Activity deliveries against one or more consumer
/// secrets.
#[derive(Debug)]
pub struct TwitterVerifier {
    secrets: Vec<Secret>,
}

impl TwitterVerifier {
    /// A verifier accepting a signature made with any of `secrets`; the CRC
    /// is answered with the first.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self { secrets })
    }

    fn crc(&self, query: Option<&str>) -> Result<Verdict, Rejection> {
        let token = challenge(query_param(query, "crc_token")?.as_deref())?;
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~+/=:".contains(&b))
        {
            return Err(Rejection::HandshakeMalformed);
        }
        let secret = self.secrets.first().ok_or(Rejection::SignatureMismatch)?;
        Ok(Handshake::answer(
            Verified {
                event: None,
                delivery_id: None,
                secret_index: 0,
            },
            "application/json",
            crc_response(secret.expose(), &token).into_bytes(),
        ))
    }
}

/// `sha256=<base64 HMAC-SHA256(secret, message)>`, X's form for both the
/// CRC answer and the delivery signature.
fn sha256_base64(secret: &[u8], message: &[u8]) -> String {
    format!(
        "sha256={}",
        STANDARD.encode(mac::<Hmac<Sha256>>(secret, &[message]))
    )
}

impl Verifier for TwitterVerifier {
    fn provider(&self) -> &'static str {
        "twitter"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let encoded = signature_header(headers, SIGNATURE_HEADER)?
            .strip_prefix("sha256=")
            .ok_or(Rejection::SignatureMalformed)?;
        let signature = STANDARD
            .decode(encoded)
            .ok()
            .filter(|s| s.len() == 32)
            .ok_or(Rejection::SignatureMalformed)?;
        let secret_index = find_secret::<Hmac<Sha256>>(&self.secrets, &[body], &[signature])
            .ok_or(Rejection::SignatureMismatch)?;
        // The object's keys are sorted (serde_json's map), so the first
        // `*_events` key is the same on every replica.
        let event = json_body(body).and_then(|json| {
            json.as_object()?
                .keys()
                .find(|key| key.ends_with("_events"))
                .and_then(|key| info_value(key))
        });
        Ok(Verified {
            event,
            delivery_id: None,
            secret_index,
        })
    }

    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        if request.method == Method::GET {
            return self.crc(request.uri.query());
        }
        self.verify(request.headers, request.body)
            .map(Verdict::Deliver)
    }

    fn answers_get(&self) -> bool {
        true
    }

    /// The CRC GET carries no signature; a POST must.
    fn precheck(&self, request: &Head<'_>) -> Result<(), Rejection> {
        if request.method == Method::GET {
            return Ok(());
        }
        credential_header_present(request.headers, &self.secret_headers())
    }
}

/// The query of X's CRC GET.
pub fn crc_query(crc_token: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("crc_token", crc_token)
        .finish()
}

/// The JSON answer to a CRC with `crc_token` under `secret`.
pub fn crc_response(secret: &[u8], crc_token: &str) -> String {
    serde_json::json!({ "response_token": sha256_base64(secret, crc_token.as_bytes()) }).to_string()
}

/// The signature header X sends for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> Vec<(&'static str, String)> {
    vec![(SIGNATURE_HEADER, sha256_base64(secret, body))]
}

#[cfg(test)]
mod tests {
    use http::Uri;

    use super::super::expect_handshake;
    use super::super::hmac_common::test_support::*;
    use super::*;

    const BODY: &[u8] = br#"{"for_user_id":"2244994945","tweet_create_events":[{"id_str":"1"}]}"#;
    /// X publishes no fixed vector; independently computed with
    /// `printf '%s' "$BODY" | openssl dgst -sha256 -hmac consumer_secret -binary | base64`
    /// following <https://docs.x.com/x-api/webhooks/quickstart>.
    const KNOWN: &str = "sha256=YKa8k6myCM77vGf3aKwJvmuN8t9+1eO9GdLZwVpx6eU=";
    /// The example consumer secret and token of Twitter's own CRC samples
    /// (<https://gist.github.com/jcipriano/46c4b3f379d214d57a9ddfa70dba49fe>,
    /// linked from the securing-webhooks guide), which print no answer;
    /// computed with `printf '%s' 9b4507b3-9040-4669-9ca3-6b94edb50553 |
    /// openssl dgst -sha256 -hmac z3ZX4v7mAAUGykl3EcmkqbartmuW8VFOOzCloLx9Q45P0hLrFu -binary | base64`.
    const SAMPLE_SECRET: &str = "z3ZX4v7mAAUGykl3EcmkqbartmuW8VFOOzCloLx9Q45P0hLrFu";
    const SAMPLE_TOKEN: &str = "9b4507b3-9040-4669-9ca3-6b94edb50553";
    const SAMPLE_ANSWER: &str = "sha256=Cytd4Sq+NvEcV3MMrXxWJGJx5A+y/lXzzU2Maartkx8=";

    fn verifier(secrets_: &[&str]) -> TwitterVerifier {
        TwitterVerifier::new(secrets(secrets_)).expect("verifier")
    }

    #[test]
    fn known_answer_and_event() {
        let v = verifier(&["consumer_secret"]);
        let verified = v
            .verify(&headers(&[(SIGNATURE_HEADER, KNOWN)]), BODY)
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("tweet_create_events".into()),
                delivery_id: None,
                secret_index: 0,
            }
        );
        assert_eq!(sign(b"consumer_secret", BODY)[0].1, KNOWN);
        let hex = format!(
            "sha256={}",
            hex::encode(STANDARD.decode(&KNOWN[7..]).expect("b64"))
        );
        for bad in [&KNOWN[7..], &hex, "sha256=", "sha256=YWJj"] {
            assert_eq!(
                v.verify(&headers(&[(SIGNATURE_HEADER, bad)]), BODY),
                Err(Rejection::SignatureMalformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn built_under_its_manifest_name() {
        let built =
            super::super::for_provider(hookwarden_crds::Provider::Twitter, secrets(&["s"]), None)
                .expect("verifier");
        assert_eq!(built.provider(), "twitter");
        assert!(built.answers_get());
        assert!(matches!(
            super::super::for_provider(hookwarden_crds::Provider::Twitter, Vec::new(), None),
            Err(VerifierError::NoSecrets)
        ));
    }

    #[test]
    fn common_behaviour() {
        body_signature_suite(&Suite {
            build: |s| Ok(Box::new(TwitterVerifier::new(s)?)),
            sign,
            signature_header: SIGNATURE_HEADER,
            body: BODY,
        });
    }

    fn get(v: &TwitterVerifier, query: &str) -> Result<Verdict, Rejection> {
        let uri: Uri = format!("/x?{query}").parse().expect("uri");
        let head = Head {
            method: &Method::GET,
            uri: &uri,
            headers: &HeaderMap::new(),
        };
        v.precheck(&head)?;
        v.check(&Incoming {
            method: &Method::GET,
            uri: &uri,
            headers: &HeaderMap::new(),
            body: b"",
        })
    }

    #[test]
    fn the_crc_is_answered_with_the_first_secret() {
        let v = verifier(&[SAMPLE_SECRET, "rotated-out"]);
        assert!(v.answers_get());
        let handshake = expect_handshake(get(&v, &crc_query(SAMPLE_TOKEN)));
        assert_eq!(handshake.content_type, "application/json");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&handshake.body).expect("json"),
            serde_json::json!({ "response_token": SAMPLE_ANSWER })
        );
        assert_eq!(
            crc_response(SAMPLE_SECRET.as_bytes(), SAMPLE_TOKEN),
            format!(r#"{{"response_token":"{SAMPLE_ANSWER}"}}"#)
        );
        // Base64-looking tokens (with `+`, `/`, `=`) are answered too.
        assert!(get(&v, &crc_query("NjM3+ODk0/MjI1==")).is_ok());
        for bad in [
            "",
            "crc_token=",
            "crc_token=a&crc_token=b",
            &crc_query(&"a".repeat(1025)),
            &crc_query("has space"),
        ] {
            assert_eq!(
                get(&v, bad).map(|_| ()),
                Err(Rejection::HandshakeMalformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_crc_never_signs_a_delivery() {
        // A forger asks for the "CRC answer" of a JSON body, to use it as
        // that body's signature: refused.
        let v = verifier(&["consumer_secret"]);
        let forged = std::str::from_utf8(BODY).expect("utf-8");
        assert_eq!(
            get(&v, &crc_query(forged)).map(|_| ()),
            Err(Rejection::HandshakeMalformed)
        );
    }
}
