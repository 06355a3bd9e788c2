//! Meta's scheme (WhatsApp, Messenger, Instagram, Graph API webhooks):
//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`, like
//! GitHub. The event is the body's `object` (e.g. `whatsapp_business_account`);
//! Meta sends no delivery id.
//!
//! The subscription handshake is a `GET` with `hub.mode=subscribe`,
//! `hub.verify_token` and `hub.challenge` in the query: the token is compared
//! (in constant time, through SHA-256 digests so its length does not leak)
//! with the `spec.handshake.verifyTokenRefs` secrets, and the challenge is
//! answered as `text/plain`. Meta does not sign that GET; without verify
//! tokens configured it is refused.
//!
//! See <https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads>
//! and <https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests>.

use hmac::Hmac;
use http::{HeaderMap, Method};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::hmac_common::{
    KeyedMacs, json_body, json_info, mac, require_secrets, verify_sha256_body,
};
use super::{
    Handshake, Incoming, Rejection, Verdict, Verified, Verifier, VerifierError, challenge,
};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Verifies Meta deliveries against one or more app secrets.
#[derive(Debug)]
pub struct MetaVerifier {
    /// The secrets, keyed once (every delivery is an HMAC under each).
    keys: KeyedMacs<Hmac<Sha256>>,
    /// SHA-256 digests of the accepted `hub.verify_token`s.
    verify_tokens: Vec<[u8; 32]>,
}

impl MetaVerifier {
    /// A verifier accepting a signature made with any of `secrets`; the
    /// subscription handshake is refused.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        Self::with_verify_tokens(secrets, Vec::new())
    }

    /// As [`MetaVerifier::new`], answering the subscription handshake when it
    /// carries one of `verify_tokens` (byte for byte).
    pub fn with_verify_tokens(
        secrets: Vec<Secret>,
        verify_tokens: Vec<Secret>,
    ) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        let verify_tokens = verify_tokens
            .iter()
            .map(|token| Sha256::digest(token.expose()).into())
            .collect();
        Ok(Self {
            keys: KeyedMacs::new(&secrets),
            verify_tokens,
        })
    }

    fn subscription(&self, query: &str) -> Result<Verdict, Rejection> {
        let mut mode = None;
        let mut token = None;
        let mut challenge_value = None;
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "hub.mode" => &mut mode,
                "hub.verify_token" => &mut token,
                "hub.challenge" => &mut challenge_value,
                _ => continue,
            };
            // A repeated parameter is ambiguous: refused.
            if slot.replace(value.into_owned()).is_some() {
                return Err(Rejection::HandshakeMalformed);
            }
        }
        if mode.as_deref() != Some("subscribe") {
            return Err(Rejection::HandshakeMalformed);
        }
        let token = token.ok_or(Rejection::TokenMissing)?;
        let given = Sha256::digest(token.as_bytes());
        let mut matched = None;
        for (index, candidate) in self.verify_tokens.iter().enumerate() {
            if bool::from(candidate.ct_eq(given.as_slice())) && matched.is_none() {
                matched = Some(index);
            }
        }
        let secret_index = matched.ok_or(Rejection::TokenMismatch)?;
        let answer = challenge(challenge_value.as_deref())?;
        Ok(Handshake::answer(
            Verified {
                event: None,
                delivery_id: None,
                secret_index,
            },
            "text/plain; charset=utf-8",
            answer.into_bytes(),
        ))
    }
}

impl Verifier for MetaVerifier {
    fn provider(&self) -> &'static str {
        "meta"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let secret_index = verify_sha256_body(&self.keys, headers, SIGNATURE_HEADER, body)?;
        Ok(Verified {
            event: json_info(json_body(body).as_ref(), "/object"),
            delivery_id: None,
            secret_index,
        })
    }

    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        if request.method == Method::GET {
            return self.subscription(request.uri.query().unwrap_or_default());
        }
        self.verify(request.headers, request.body)
            .map(Verdict::Deliver)
    }

    fn answers_get(&self) -> bool {
        true
    }

    /// The subscription GET carries no signature (it is checked by its verify
    /// token, in the query); a POST must carry its signature header.
    fn precheck(&self, request: &super::Head<'_>) -> Result<(), Rejection> {
        if request.method == Method::GET {
            return Ok(());
        }
        super::credential_header_present(request.headers, &self.secret_headers())
    }
}

/// The query of Meta's subscription handshake GET.
pub fn subscription_query(verify_token: &str, challenge: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("hub.mode", "subscribe")
        .append_pair("hub.verify_token", verify_token)
        .append_pair("hub.challenge", challenge)
        .finish()
}

/// The signature header Meta sends for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> Vec<(&'static str, String)> {
    vec![(
        SIGNATURE_HEADER,
        format!(
            "sha256={}",
            hex::encode(mac::<Hmac<Sha256>>(secret, &[body]))
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::hmac_common::test_support::*;
    use super::*;

    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    /// Meta publishes no fixed vector; independently computed with
    /// `printf '%s' "$BODY" | openssl dgst -sha256 -hmac app_secret` following
    /// <https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads>.
    const KNOWN: &str = "sha256=c236c758c9b2bd40b388a550eeca09eaca72384dd0aa5e7c31d19cddac5bba46";

    #[test]
    fn known_answer_and_object() {
        let v = MetaVerifier::new(secrets(&["app_secret"])).expect("verifier");
        let verified = v
            .verify(&headers(&[(SIGNATURE_HEADER, KNOWN)]), BODY)
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("whatsapp_business_account".into()),
                delivery_id: None,
                secret_index: 0,
            }
        );
        assert_eq!(sign(b"app_secret", BODY)[0].1, KNOWN);
        let sha1 = KNOWN.replacen("sha256=", "sha1=", 1);
        assert_eq!(
            v.verify(&headers(&[(SIGNATURE_HEADER, &sha1)]), BODY),
            Err(Rejection::SignatureMalformed)
        );
    }

    fn get(v: &MetaVerifier, query: &str) -> Result<Verdict, Rejection> {
        let uri: http::Uri = format!("/?{query}").parse().expect("uri");
        v.check(&Incoming {
            method: &Method::GET,
            uri: &uri,
            headers: &HeaderMap::new(),
            body: b"",
        })
    }

    #[test]
    fn the_subscription_handshake_needs_a_configured_verify_token() {
        let v =
            MetaVerifier::with_verify_tokens(secrets(&["app_secret"]), secrets(&["old", "tok en"]))
                .expect("verifier");
        assert!(v.answers_get());
        let verdict = get(&v, &subscription_query("tok en", "1158201444")).expect("answered");
        let Verdict::Handshake(handshake) = verdict else {
            panic!("a handshake: {verdict:?}");
        };
        assert_eq!(handshake.body, b"1158201444");
        assert_eq!(handshake.verified.secret_index, 1);
        assert_eq!(handshake.verified.event.as_deref(), Some("handshake"));
        assert!(!handshake.publish);
        assert_eq!(
            get(&v, &subscription_query("tok", "1")).map(|_| ()),
            Err(Rejection::TokenMismatch)
        );
        assert_eq!(
            get(&v, "hub.mode=subscribe&hub.challenge=1").map(|_| ()),
            Err(Rejection::TokenMissing)
        );
        assert_eq!(
            get(
                &v,
                "hub.mode=unsubscribe&hub.verify_token=old&hub.challenge=1"
            )
            .map(|_| ()),
            Err(Rejection::HandshakeMalformed)
        );
        assert_eq!(
            get(
                &v,
                "hub.mode=subscribe&hub.verify_token=old&hub.verify_token=x&hub.challenge=1"
            )
            .map(|_| ()),
            Err(Rejection::HandshakeMalformed)
        );
        assert_eq!(
            get(
                &v,
                "hub.mode=subscribe&hub.verify_token=old&hub.challenge=%3Cscript%3E%20x"
            )
            .map(|_| ()),
            Err(Rejection::HandshakeMalformed),
            "a challenge with a space is not reflected"
        );
        // Without verify tokens every subscription GET is refused.
        let none = MetaVerifier::new(secrets(&["app_secret"])).expect("verifier");
        assert_eq!(
            get(&none, &subscription_query("", "1")).map(|_| ()),
            Err(Rejection::TokenMismatch)
        );
    }

    #[test]
    fn common_behaviour() {
        body_signature_suite(&Suite {
            build: |s| Ok(Box::new(MetaVerifier::new(s)?)),
            sign,
            signature_header: SIGNATURE_HEADER,
            body: BODY,
        });
    }
}
