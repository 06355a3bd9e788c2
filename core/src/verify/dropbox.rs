//! Dropbox's scheme: `X-Dropbox-Signature: <hex HMAC-SHA256(app secret,
//! body)>`, the raw body bytes signed with the app secret, no prefix, no
//! timestamp (so no replay window: a captured notification stays valid, and
//! only the stream's de-duplication and TLS protect against a replay; a
//! notification only says "these accounts changed", which is harmless to
//! repeat). Dropbox sends no event type or delivery id; the event is the
//! notification's kind, the top-level key `list_folder` (or the legacy
//! `delta`).
//!
//! The verification request is a `GET ?challenge=<random>`, unsigned, whose
//! challenge is echoed as `text/plain` (the receiver adds
//! `X-Content-Type-Options: nosniff` to every handshake answer, as Dropbox
//! asks, so the echo is not a reflected XSS); a challenge that is not 1-1024
//! visible ASCII characters is refused rather than reflected.
//!
//! See <https://www.dropbox.com/developers/reference/webhooks>.

use hmac::Hmac;
use http::{HeaderMap, Method};
use sha2::Sha256;

use super::handshake_common::query_param;
use super::hmac_common::{
    find_secret, json_body, mac, prefixed_hex, require_secrets, signature_header,
};
use super::{
    Handshake, Head, Incoming, Rejection, Verdict, Verified, Verifier, VerifierError, challenge,
    credential_header_present,
};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-dropbox-signature";

/// Verifies Dropbox notifications against one or more app secrets.
#[derive(Debug)]
pub struct DropboxVerifier {
    secrets: Vec<Secret>,
}

impl DropboxVerifier {
    /// A verifier accepting a signature made with any of `secrets` (app
    /// secrets, as the App Console shows them).
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self { secrets })
    }
}

impl Verifier for DropboxVerifier {
    fn provider(&self) -> &'static str {
        "dropbox"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let signature = prefixed_hex(signature_header(headers, SIGNATURE_HEADER)?, "", 32)?;
        let secret_index = find_secret::<Hmac<Sha256>>(&self.secrets, &[body], &[signature])
            .ok_or(Rejection::SignatureMismatch)?;
        let json = json_body(body);
        let event = ["list_folder", "delta"]
            .into_iter()
            .find(|key| json.as_ref().and_then(|j| j.get(key)).is_some())
            .map(str::to_owned);
        Ok(Verified {
            event,
            delivery_id: None,
            secret_index,
        })
    }

    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        if request.method != Method::GET {
            return self
                .verify(request.headers, request.body)
                .map(Verdict::Deliver);
        }
        // Dropbox does not sign the verification GET: anyone can make the
        // receiver echo a bounded challenge, which proves nothing but that
        // the endpoint exists.
        let answer = challenge(query_param(request.uri.query(), "challenge")?.as_deref())?;
        Ok(Handshake::answer(
            Verified {
                event: None,
                delivery_id: None,
                secret_index: 0,
            },
            "text/plain; charset=utf-8",
            answer.into_bytes(),
        ))
    }

    fn answers_get(&self) -> bool {
        true
    }

    /// The verification GET carries no signature; a POST must.
    fn precheck(&self, request: &Head<'_>) -> Result<(), Rejection> {
        if request.method == Method::GET {
            return Ok(());
        }
        credential_header_present(request.headers, &self.secret_headers())
    }
}

/// The query of Dropbox's verification GET.
pub fn challenge_query(challenge: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("challenge", challenge)
        .finish()
}

/// The signature header Dropbox sends for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> Vec<(&'static str, String)> {
    vec![(
        SIGNATURE_HEADER,
        hex::encode(mac::<Hmac<Sha256>>(secret, &[body])),
    )]
}

#[cfg(test)]
mod tests {
    use http::Uri;

    use super::super::expect_handshake;
    use super::super::hmac_common::test_support::*;
    use super::*;

    const BODY: &[u8] =
        br#"{"list_folder":{"accounts":["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]},"delta":{"users":[12345]}}"#;
    /// Dropbox publishes no fixed vector; independently computed with
    /// `printf '%s' "$BODY" | openssl dgst -sha256 -hmac app_secret` following
    /// <https://www.dropbox.com/developers/reference/webhooks>.
    const KNOWN: &str = "6c98922c56a62e71799bc4091e4dc9836503743a91792a71d6a7c98fab1db1cc";
    /// The vector of the `hapi-dropbox-webhooks` plugin's tests
    /// (`test/index.js`: secret `the_secret`, body `{"delta": {"users": [12345]}}`),
    /// which `openssl dgst -sha256 -hmac the_secret` agrees with.
    const HAPI_BODY: &[u8] = br#"{"delta": {"users": [12345]}}"#;
    const HAPI: &str = "0a8c16b085420b960dc78664279fe09e936a2a01b1f91064869d9e77dfd64529";

    fn verifier(secrets_: &[&str]) -> DropboxVerifier {
        DropboxVerifier::new(secrets(secrets_)).expect("verifier")
    }

    #[test]
    fn known_answers_and_event() {
        let verified = verifier(&["app_secret"])
            .verify(&headers(&[(SIGNATURE_HEADER, KNOWN)]), BODY)
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("list_folder".into()),
                delivery_id: None,
                secret_index: 0,
            }
        );
        assert_eq!(sign(b"app_secret", BODY)[0].1, KNOWN);
        let legacy = verifier(&["the_secret"])
            .verify(&headers(&[(SIGNATURE_HEADER, HAPI)]), HAPI_BODY)
            .expect("verifies");
        assert_eq!(legacy.event.as_deref(), Some("delta"));
        assert_eq!(sign(b"the_secret", HAPI_BODY)[0].1, HAPI);
        // Upper-case hex is what `hex` decodes too; a prefix is not Dropbox's.
        let v = verifier(&["app_secret"]);
        assert!(
            v.verify(&headers(&[(SIGNATURE_HEADER, &KNOWN.to_uppercase())]), BODY)
                .is_ok()
        );
        assert_eq!(
            v.verify(
                &headers(&[(SIGNATURE_HEADER, &format!("sha256={KNOWN}"))]),
                BODY
            ),
            Err(Rejection::SignatureMalformed)
        );
    }

    #[test]
    fn built_under_its_manifest_name() {
        let built =
            super::super::for_provider(hookwarden_crds::Provider::Dropbox, secrets(&["s"]), None)
                .expect("verifier");
        assert_eq!(built.provider(), "dropbox");
        assert!(built.answers_get());
        assert!(matches!(
            super::super::for_provider(hookwarden_crds::Provider::Dropbox, Vec::new(), None),
            Err(VerifierError::NoSecrets)
        ));
    }

    #[test]
    fn common_behaviour() {
        body_signature_suite(&Suite {
            build: |s| Ok(Box::new(DropboxVerifier::new(s)?)),
            sign,
            signature_header: SIGNATURE_HEADER,
            body: BODY,
        });
    }

    fn request(v: &DropboxVerifier, method: Method, query: &str) -> Result<Verdict, Rejection> {
        let uri: Uri = format!("/hook?{query}").parse().expect("uri");
        let head = Head {
            method: &method,
            uri: &uri,
            headers: &HeaderMap::new(),
        };
        v.precheck(&head)?;
        v.check(&Incoming {
            method: &method,
            uri: &uri,
            headers: &HeaderMap::new(),
            body: b"",
        })
    }

    #[test]
    fn the_verification_get_is_echoed_within_bounds() {
        let v = verifier(&["app_secret"]);
        assert!(v.answers_get());
        let handshake = expect_handshake(request(&v, Method::GET, &challenge_query("abc123")));
        assert_eq!(handshake.body, b"abc123");
        assert_eq!(handshake.content_type, "text/plain; charset=utf-8");
        for bad in [
            "",
            "challenge=",
            "challenge=a&challenge=b",
            "challenge=%3Cscript%3E%20alert(1)",
            &challenge_query(&"a".repeat(1025)),
            "other=1",
        ] {
            assert_eq!(
                request(&v, Method::GET, bad).map(|_| ()),
                Err(Rejection::HandshakeMalformed),
                "{bad}"
            );
        }
        // A POST with a challenge is a delivery: it needs its signature.
        assert_eq!(
            request(&v, Method::POST, &challenge_query("abc123")).map(|_| ()),
            Err(Rejection::SignatureMissing)
        );
    }
}
