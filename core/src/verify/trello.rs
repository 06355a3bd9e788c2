//! Trello's scheme: `X-Trello-Webhook: <base64 HMAC-SHA1(application
//! secret, body + callbackURL)>`, the raw body bytes followed by the
//! callback URL exactly as it was given when the webhook was created (see
//! [`super::public_url`]: the spec's public URL and the query of the
//! request, since Trello calls the callback URL with the query it was given).
//! The key is the application's OAuth 1.0 secret (the Power-Up's "Secret"),
//! not an API token. Trello signs no timestamp: replays are bounded only by
//! the stream's de-duplication of the action id. The event type is the
//! body's `action.type` (e.g. `updateCard`), the delivery id its `action.id`
//! (one per action, kept when Trello retries).
//!
//! When a webhook is created Trello sends a `HEAD` to the callback URL and
//! creates the webhook only if it is answered 200. That request carries no
//! signature (Trello has none to give before the webhook exists), so it is
//! answered — with no body — but proves nothing beyond the endpoint
//! existing, and can never be stored (an unauthenticated handshake).
//!
//! See <https://developer.atlassian.com/cloud/trello/guides/rest-api/webhooks/#webhook-signatures>.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Hmac;
use http::{HeaderMap, Method};
use sha1::Sha1;

use super::hmac_common::{
    find_secret, json_body, json_info, mac, require_secrets, signature_header,
};
use super::public_url::PublicUrl;
use super::{
    Handshake, Head, Incoming, Rejection, Verdict, Verified, Verifier, VerifierError,
    credential_header_present,
};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-trello-webhook";

/// An HMAC-SHA1, the only length a signature can decode to.
const SIGNATURE_LEN: usize = 20;

/// Verifies Trello webhook deliveries against one or more application
/// secrets.
#[derive(Debug)]
pub struct TrelloVerifier {
    secrets: Vec<Secret>,
    url: PublicUrl,
}

impl TrelloVerifier {
    /// A verifier for deliveries to `url` (the callback URL without its
    /// query), accepting any of `secrets` (application secrets, used as raw
    /// bytes).
    pub fn new(secrets: Vec<Secret>, url: PublicUrl) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self { secrets, url })
    }

    fn verify_query(
        &self,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Verified, Rejection> {
        let value = signature_header(headers, SIGNATURE_HEADER)?;
        let signature = BASE64
            .decode(value.trim())
            .map_err(|_| Rejection::SignatureMalformed)?;
        if signature.len() != SIGNATURE_LEN {
            return Err(Rejection::SignatureMalformed);
        }
        let url = self.url.with_query(query);
        let secret_index =
            find_secret::<Hmac<Sha1>>(&self.secrets, &[body, url.as_bytes()], &[signature])
                .ok_or(Rejection::SignatureMismatch)?;
        let json = json_body(body);
        Ok(Verified {
            event: json_info(json.as_ref(), "/action/type"),
            delivery_id: json_info(json.as_ref(), "/action/id"),
            secret_index,
        })
    }
}

impl Verifier for TrelloVerifier {
    fn provider(&self) -> &'static str {
        "trello"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    /// Without the request line, the URL is taken to be the public URL
    /// without a query.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        self.verify_query(None, headers, body)
    }

    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        if request.method == Method::HEAD {
            // Trello's creation check: unsigned, answered 200 with nothing.
            return Ok(Handshake::answer(
                Verified {
                    event: None,
                    delivery_id: None,
                    secret_index: 0,
                },
                "text/plain; charset=utf-8",
                Vec::new(),
            ));
        }
        self.verify_query(request.uri.query(), request.headers, request.body)
            .map(Verdict::Deliver)
    }

    fn answers_head(&self) -> bool {
        true
    }

    /// The creation `HEAD` carries no signature; a delivery must.
    fn precheck(&self, request: &Head<'_>) -> Result<(), Rejection> {
        if request.method == Method::HEAD {
            return Ok(());
        }
        credential_header_present(request.headers, &self.secret_headers())
    }
}

/// The header Trello sends for `body` delivered to `url` (the full callback
/// URL, query included) with the application secret `secret`.
pub fn sign(secret: &[u8], url: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![(
        SIGNATURE_HEADER,
        BASE64.encode(mac::<Hmac<Sha1>>(secret, &[body, url.as_bytes()])),
    )]
}

#[cfg(test)]
mod tests {
    use http::Uri;

    use super::super::hmac_common::test_support::*;
    use super::*;

    const SECRET: &str = "trello-app-secret";
    const URL: &str = "https://hooks.example.com/trello";
    const BODY: &str = r#"{"action":{"id":"5f3c1a2b3c4d5e6f7a8b9c0d","type":"updateCard","data":{"card":{"id":"5f3c1a2b3c4d5e6f7a8b9c0e","name":"Ship it"}}},"model":{"id":"4d5ea62fd76aa1136000000c","name":"Hookwarden"}}"#;
    /// Trello publishes no key/body/signature triple; independently computed
    /// with `printf '%s%s' "$BODY" https://hooks.example.com/trello | openssl
    /// dgst -sha1 -hmac trello-app-secret -binary | base64`, following
    /// <https://developer.atlassian.com/cloud/trello/guides/rest-api/webhooks/#webhook-signatures>
    /// ("a base64 digest of an HMAC-SHA1 hash … of the full request body and
    /// the callbackURL exactly as it was provided during webhook creation")
    /// and its Node example (`createHmac('sha1', secret).update(body +
    /// callbackURL).digest('base64')`).
    const KNOWN: &str = "PQY6wxiyS/xhU7p0fa4E0P6KLpY=";
    /// The same body called at `URL?board=1`, computed the same way.
    const KNOWN_WITH_QUERY: &str = "L6ibIJ5R9kxQFHGi/VBLhg3TGXs=";

    fn verifier(secrets_: &[&str]) -> TrelloVerifier {
        TrelloVerifier::new(secrets(secrets_), PublicUrl::parse(URL).expect("url"))
            .expect("verifier")
    }

    fn check(
        v: &TrelloVerifier,
        method: Method,
        path: &str,
        signature: Option<&str>,
        body: &str,
    ) -> Result<Verdict, Rejection> {
        let uri: Uri = path.parse().expect("uri");
        let headers = match signature {
            Some(signature) => headers(&[(SIGNATURE_HEADER, signature)]),
            None => HeaderMap::new(),
        };
        v.check(&Incoming {
            method: &method,
            uri: &uri,
            headers: &headers,
            body: body.as_bytes(),
        })
    }

    fn delivered(result: Result<Verdict, Rejection>) -> Result<Verified, Rejection> {
        match result? {
            Verdict::Deliver(verified) => Ok(verified),
            Verdict::Handshake(handshake) => panic!("a delivery taken for {handshake:?}"),
        }
    }

    #[test]
    fn known_answer_and_fields() {
        let v = verifier(&["old-secret", SECRET]);
        let verified =
            delivered(check(&v, Method::POST, "/trello", Some(KNOWN), BODY)).expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("updateCard".into()),
                delivery_id: Some("5f3c1a2b3c4d5e6f7a8b9c0d".into()),
                secret_index: 1,
            }
        );
        assert_eq!(sign(SECRET.as_bytes(), URL, BODY.as_bytes())[0].1, KNOWN);
        // The body comes first, then the URL: the other order is not Trello's.
        let swapped = BASE64.encode(mac::<Hmac<Sha1>>(
            SECRET.as_bytes(),
            &[URL.as_bytes(), BODY.as_bytes()],
        ));
        assert_eq!(
            delivered(check(&v, Method::POST, "/trello", Some(&swapped), BODY)),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn url_query_and_body_are_signed() {
        let v = verifier(&[SECRET]);
        let post = |path: &str, signature: &str, body: &str| {
            delivered(check(&v, Method::POST, path, Some(signature), body)).map(|_| ())
        };
        assert_eq!(
            post("/trello", KNOWN, &BODY.replace("Ship it", "Ship it!")),
            Err(Rejection::SignatureMismatch)
        );
        // The callback URL's query is signed: Trello calls it as registered.
        assert_eq!(
            post("/trello?board=1", KNOWN, BODY),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(post("/trello?board=1", KNOWN_WITH_QUERY, BODY), Ok(()));
        assert_eq!(
            sign(
                SECRET.as_bytes(),
                &format!("{URL}?board=1"),
                BODY.as_bytes()
            )[0]
            .1,
            KNOWN_WITH_QUERY
        );
        let elsewhere = TrelloVerifier::new(
            secrets(&[SECRET]),
            PublicUrl::parse("https://hooks.example.com/other").expect("url"),
        )
        .expect("verifier");
        assert_eq!(
            delivered(check(
                &elsewhere,
                Method::POST,
                "/trello",
                Some(KNOWN),
                BODY
            )),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            post("/trello", &flip_char(KNOWN, 3), BODY),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            verifier(&["other"]).verify(&headers(&[(SIGNATURE_HEADER, KNOWN)]), BODY.as_bytes()),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn missing_and_malformed_signatures() {
        let v = verifier(&[SECRET]);
        let sha256 = BASE64.encode([1u8; 32]);
        for bad in [
            "",
            "x",
            "!!!!",
            &KNOWN[..20],
            sha256.as_str(),
            &huge_value("A"),
        ] {
            assert_eq!(
                delivered(check(&v, Method::POST, "/trello", Some(bad), BODY)),
                Err(Rejection::SignatureMalformed),
                "{}",
                &bad[..bad.len().min(40)]
            );
        }
        assert_eq!(
            delivered(check(&v, Method::POST, "/trello", None, BODY)),
            Err(Rejection::SignatureMissing)
        );
        let mut twice = headers(&[(SIGNATURE_HEADER, KNOWN)]);
        twice.append(SIGNATURE_HEADER, twice[SIGNATURE_HEADER].clone());
        assert_eq!(
            v.verify(&twice, BODY.as_bytes()),
            Err(Rejection::SignatureMalformed)
        );
        assert!(matches!(
            TrelloVerifier::new(Vec::new(), PublicUrl::parse(URL).expect("url")),
            Err(VerifierError::NoSecrets)
        ));
    }

    #[test]
    fn the_creation_head_is_answered_with_nothing() {
        let v = verifier(&[SECRET]);
        assert!(v.answers_head());
        assert!(!v.answers_get());
        let uri = Uri::from_static("/trello");
        let empty = HeaderMap::new();
        let head = |method: &Method| {
            v.precheck(&Head {
                method,
                uri: &uri,
                headers: &empty,
            })
        };
        // Unsigned, it passes the precheck; a POST without a signature not.
        assert_eq!(head(&Method::HEAD), Ok(()));
        assert_eq!(head(&Method::POST), Err(Rejection::SignatureMissing));
        match check(&v, Method::HEAD, "/trello", None, "") {
            Ok(Verdict::Handshake(handshake)) => {
                assert!(handshake.body.is_empty());
                assert_eq!(handshake.verified.event.as_deref(), Some("handshake"));
                assert!(!handshake.publish);
            }
            other => panic!("{other:?}"),
        }
        // A POST is never taken for the handshake.
        assert!(matches!(
            check(&v, Method::POST, "/trello", None, ""),
            Err(Rejection::SignatureMissing)
        ));
    }

    #[test]
    fn needs_the_public_url_and_cannot_publish_its_handshake() {
        use hookwarden_crds::Provider;

        use super::super::{PresetOptions, for_preset};
        assert!(matches!(
            for_preset(
                Provider::Trello,
                secrets(&["s"]),
                None,
                PresetOptions::default()
            ),
            Err(VerifierError::PublicUrlRequired(Provider::Trello))
        ));
        let publish = PresetOptions {
            public_url: Some(PublicUrl::parse(URL).expect("url")),
            publish_handshakes: true,
            ..PresetOptions::default()
        };
        assert!(matches!(
            for_preset(Provider::Trello, secrets(&["s"]), None, publish),
            Err(VerifierError::UnauthenticatedHandshake(Provider::Trello))
        ));
    }
}
