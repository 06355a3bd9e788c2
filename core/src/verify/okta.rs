//! Okta event hooks: nothing is signed. Every request Okta sends, the
//! one-time verification GET included, carries the secret chosen when the
//! hook was registered, verbatim, in an authentication header
//! (`channel.config.authScheme`: `type: HEADER`, `key` the header name,
//! `Authorization` in Okta's examples, `value` the secret). The whole header
//! value is compared with the configured secrets, in constant time through
//! SHA-256 digests (so neither timing nor length leaks). A Basic-auth
//! `value` (`Basic <base64>`) is compared as written, scheme included.
//! There is no timestamp, so no replay window: TLS and the stream's
//! de-duplication (by `eventId`) are the only defence against a replay.
//!
//! The verification request is a `GET` with `X-Okta-Verification-Challenge`,
//! answered `{"verification": <challenge>}` only when its authentication
//! header is right (a stranger cannot make the endpoint vouch for a hook it
//! did not register). Deliveries are `POST`s of
//! `{"eventType": "com.okta.event_hook", "eventId": .., "data": {"events": [..]}}`;
//! the event is the first event's `eventType` (e.g. `user.session.start`),
//! the delivery id the envelope's `eventId`.
//!
//! See <https://developer.okta.com/use_cases/event_hooks> (one-time
//! verification, authentication header) and the `EventHookChannelConfigAuthScheme`
//! of Okta's management API (`key`: "the name for the authorization header").

use http::{HeaderMap, HeaderName, Method};

use super::handshake_common::Tokens;
use super::hmac_common::{json_body, json_info, require_secrets};
use super::{
    Handshake, Head, Incoming, Rejection, Verdict, Verified, Verifier, VerifierError, challenge,
    single_header,
};
use crate::secrets::Secret;

/// The authentication header of Okta's examples and Admin Console.
pub const DEFAULT_AUTH_HEADER: &str = "authorization";
const CHALLENGE_HEADER: &str = "x-okta-verification-challenge";

/// Verifies Okta event hook requests against one or more shared secrets.
#[derive(Debug)]
pub struct OktaVerifier {
    header: HeaderName,
    tokens: Tokens,
}

impl OktaVerifier {
    /// A verifier accepting any of `secrets` in the `Authorization` header.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        Self::with_header(secrets, HeaderName::from_static(DEFAULT_AUTH_HEADER))
    }

    /// As [`OktaVerifier::new`], reading the secret from `header` (the
    /// hook's `authScheme.key`).
    pub fn with_header(secrets: Vec<Secret>, header: HeaderName) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self {
            header,
            tokens: Tokens::new(&secrets),
        })
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<usize, Rejection> {
        // A repeated header is refused: a second copy must not let an
        // attacker choose which one is compared.
        let token = single_header(headers, self.header.as_str())
            .map_err(|()| Rejection::TokenMismatch)?
            .ok_or(Rejection::TokenMissing)?;
        self.tokens
            .find(token.as_bytes())
            .ok_or(Rejection::TokenMismatch)
    }
}

impl Verifier for OktaVerifier {
    fn provider(&self) -> &'static str {
        "okta"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![self.header.as_str()]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let secret_index = self.authenticate(headers)?;
        let json = json_body(body);
        Ok(Verified {
            event: json_info(json.as_ref(), "/data/events/0/eventType"),
            delivery_id: json_info(json.as_ref(), "/eventId"),
            secret_index,
        })
    }

    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        if request.method != Method::GET {
            return self
                .verify(request.headers, request.body)
                .map(Verdict::Deliver);
        }
        let secret_index = self.authenticate(request.headers)?;
        let value = single_header(request.headers, CHALLENGE_HEADER)
            .map_err(|()| Rejection::HandshakeMalformed)?;
        let answer = challenge(value)?;
        Ok(Handshake::answer(
            Verified {
                event: None,
                delivery_id: None,
                secret_index,
            },
            "application/json",
            verification_response(&answer).into_bytes(),
        ))
    }

    fn answers_get(&self) -> bool {
        true
    }

    /// The secret needs no body: it is checked whole before the body is
    /// read, on the verification GET as on a delivery.
    fn precheck(&self, request: &Head<'_>) -> Result<(), Rejection> {
        self.authenticate(request.headers).map(|_| ())
    }
}

/// The headers of Okta's one-time verification GET with `secret` in the
/// `Authorization` header.
pub fn verification_headers(secret: &[u8], challenge: &str) -> Vec<(&'static str, String)> {
    let mut headers = sign(secret);
    headers.push((CHALLENGE_HEADER, challenge.to_owned()));
    headers
}

/// The answer Okta expects to its verification GET.
pub fn verification_response(challenge: &str) -> String {
    serde_json::json!({ "verification": challenge }).to_string()
}

/// The header Okta sends with every request: the secret itself, in
/// `Authorization` (a secret that is not visible ASCII cannot be a header
/// value and is sent as lossy UTF-8, which the receiver will refuse).
pub fn sign(secret: &[u8]) -> Vec<(&'static str, String)> {
    vec![(
        DEFAULT_AUTH_HEADER,
        String::from_utf8_lossy(secret).into_owned(),
    )]
}

/// An event hook delivery body as Okta sends it, with one event of type
/// `event_type`.
pub fn delivery_body(event_id: &str, event_type: &str) -> Vec<u8> {
    serde_json::json!({
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "source": "https://example.okta.com/api/v1/eventHooks/who8vt36qfNpCGz9H1e6",
        "eventId": event_id,
        "data": { "events": [{ "uuid": "5e8d1f3b-0000-11f0-0000-000000000000", "eventType": event_type }] },
        "eventTime": "2024-01-01T00:00:00.000Z",
        "contentType": "application/json",
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use http::Uri;

    use super::super::hmac_common::test_support::*;
    use super::super::{check_post, expect_handshake};
    use super::*;

    /// Okta's published example of the verification request and its answer
    /// (<https://support.okta.com/help/s/article/Unable-to-verify-event-hook-Hook-hook-name-execution-failed>,
    /// the one-time verification request of
    /// <https://developer.okta.com/use_cases/event_hooks>).
    const SECRET: &str = "my-shared-secret";
    const CHALLENGE: &str = "Me_rShK8JHsTnbyYrWXCEoMGbM_zsZ6k0hLPZ_Pg";
    const ANSWER: &str = r#"{"verification":"Me_rShK8JHsTnbyYrWXCEoMGbM_zsZ6k0hLPZ_Pg"}"#;

    fn verifier(secrets_: &[&str]) -> OktaVerifier {
        OktaVerifier::new(secrets(secrets_)).expect("verifier")
    }

    fn request(
        v: &OktaVerifier,
        method: Method,
        headers: &HeaderMap,
    ) -> Result<Verdict, Rejection> {
        let uri = Uri::from_static("/okta");
        v.precheck(&Head {
            method: &method,
            uri: &uri,
            headers,
        })?;
        v.check(&Incoming {
            method: &method,
            uri: &uri,
            headers,
            body: b"",
        })
    }

    #[test]
    fn the_published_verification_example() {
        let v = verifier(&["rotated-out", SECRET]);
        assert!(v.answers_get());
        let good = signed_headers(&verification_headers(SECRET.as_bytes(), CHALLENGE));
        let handshake = expect_handshake(request(&v, Method::GET, &good));
        assert_eq!(handshake.body, ANSWER.as_bytes());
        assert_eq!(handshake.content_type, "application/json");
        assert_eq!(handshake.verified.secret_index, 1);
        assert_eq!(verification_response(CHALLENGE), ANSWER);
    }

    #[test]
    fn the_verification_is_answered_only_with_the_right_secret() {
        let v = verifier(&[SECRET]);
        let good = signed_headers(&verification_headers(SECRET.as_bytes(), CHALLENGE));
        let get = |headers: &HeaderMap| request(&v, Method::GET, headers).map(|_| ());
        assert_eq!(
            get(&with_header(&good, "authorization", "my-shared-secreT")),
            Err(Rejection::TokenMismatch)
        );
        assert_eq!(
            get(&without_header(&good, "authorization")),
            Err(Rejection::TokenMissing)
        );
        let mut twice = good.clone();
        twice.append("authorization", "other".parse().expect("value"));
        assert_eq!(get(&twice), Err(Rejection::TokenMismatch));
        // The secret right, the challenge wrong: nothing is reflected.
        assert_eq!(
            get(&without_header(&good, CHALLENGE_HEADER)),
            Err(Rejection::HandshakeMalformed)
        );
        for bad in ["<b> x", "", &huge_value("a")] {
            assert_eq!(
                get(&with_header(&good, CHALLENGE_HEADER, bad)),
                Err(Rejection::HandshakeMalformed),
                "{}",
                &bad[..bad.len().min(20)]
            );
        }
        let mut two = good.clone();
        two.append(CHALLENGE_HEADER, "other".parse().expect("value"));
        assert_eq!(get(&two), Err(Rejection::HandshakeMalformed));
    }

    #[test]
    fn deliveries_carry_the_secret() {
        let v = verifier(&["old", SECRET]);
        let body = delivery_body("b5a188b9-5ece-4636-b041-482ffda96311", "user.session.start");
        let good = signed_headers(&sign(SECRET.as_bytes()));
        match check_post(&v, &good, &body) {
            Ok(Verdict::Deliver(verified)) => assert_eq!(
                verified,
                Verified {
                    event: Some("user.session.start".into()),
                    delivery_id: Some("b5a188b9-5ece-4636-b041-482ffda96311".into()),
                    secret_index: 1,
                }
            ),
            other => panic!("a delivery: {other:?}"),
        }
        // The challenge header on a POST does not make it a handshake.
        let odd = with_header(&good, CHALLENGE_HEADER, CHALLENGE);
        assert!(matches!(
            check_post(&v, &odd, &body),
            Ok(Verdict::Deliver(_))
        ));
        assert_eq!(
            v.verify(&with_header(&good, "authorization", "old "), &body),
            Err(Rejection::TokenMismatch)
        );
        assert_eq!(
            v.verify(&without_header(&good, "authorization"), &body),
            Err(Rejection::TokenMissing)
        );
        // A body that is not Okta's envelope still verifies (nothing is
        // signed), without event or id.
        assert_eq!(
            v.verify(&good, b"x").map(|v| (v.event, v.delivery_id)),
            Ok((None, None))
        );
    }

    #[test]
    fn a_custom_header_name() {
        let v =
            OktaVerifier::with_header(secrets(&[SECRET]), HeaderName::from_static("x-okta-secret"))
                .expect("verifier");
        assert_eq!(v.secret_headers(), vec!["x-okta-secret"]);
        let good = headers(&[("x-okta-secret", SECRET)]);
        assert!(v.verify(&good, b"{}").is_ok());
        // The secret in `Authorization` is not the configured header.
        assert_eq!(
            v.verify(&signed_headers(&sign(SECRET.as_bytes())), b"{}"),
            Err(Rejection::TokenMissing)
        );
    }

    #[test]
    fn built_under_its_manifest_name() {
        let built =
            super::super::for_provider(hookwarden_crds::Provider::Okta, secrets(&["s"]), None)
                .expect("verifier");
        assert_eq!(built.provider(), "okta");
        assert_eq!(built.secret_headers(), vec!["authorization"]);
        assert!(matches!(
            super::super::for_provider(hookwarden_crds::Provider::Okta, Vec::new(), None),
            Err(VerifierError::NoSecrets)
        ));
    }
}
