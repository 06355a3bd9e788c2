//! DocuSign Connect's HMAC signatures: one header per HMAC key of the
//! account, `X-DocuSign-Signature-1`, `X-DocuSign-Signature-2`, ..., each
//! `<base64 HMAC-SHA256(key, body)>` over the whole raw body (line endings
//! included); the key is used as the text DocuSign shows. Any header matching
//! any configured key verifies, so keys can be rotated on either side. The
//! headers up to `X-DocuSign-Signature-100` are read, DocuSign's maximum
//! number of HMAC keys per account: each extra candidate costs one HMAC
//! finalisation, not another pass over the body, so this bound is cheap. A
//! candidate that is repeated, too long or not a base64 SHA-256 is skipped,
//! so it cannot get a correctly signed delivery refused; only when no
//! candidate parses is the delivery refused as malformed.
//!
//! DocuSign signs no timestamp. The event type is the JSON body's `event`
//! (e.g. `envelope-completed`); there is no delivery id (retries are not
//! marked as such in a way that tells deliveries apart).
//!
//! See <https://developers.docusign.com/platform/webhooks/connect/hmac/> and
//! <https://developers.docusign.com/platform/webhooks/connect/validate/>.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Hmac;
use http::HeaderMap;
use sha2::Sha256;

use super::hmac_common::{
    MAX_SIGNATURE_HEADER_LEN, find_secret, json_body, json_info, mac, require_secrets,
};
use super::{Head, Rejection, Verified, Verifier, VerifierError, single_header};
use crate::secrets::Secret;

/// DocuSign's maximum number of HMAC keys on an account, hence of signature
/// headers on a message.
pub const MAX_SIGNATURES: usize = 100;

/// The name of the `n`th signature header (from 1).
fn header_name(n: usize) -> String {
    format!("x-docusign-signature-{n}")
}

/// Verifies DocuSign Connect messages against one or more HMAC keys.
#[derive(Debug)]
pub struct DocusignVerifier {
    secrets: Vec<Secret>,
    /// `x-docusign-signature-1` to `-100`.
    names: Vec<String>,
}

impl DocusignVerifier {
    /// A verifier accepting a signature made with any of `secrets`.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self {
            secrets,
            names: (1..=MAX_SIGNATURES).map(header_name).collect(),
        })
    }

    /// The decoded candidates, and whether any signature header was present.
    fn candidates(&self, headers: &HeaderMap) -> (Vec<Vec<u8>>, bool) {
        let mut present = false;
        let mut candidates = Vec::new();
        for name in &self.names {
            let value = match single_header(headers, name) {
                Ok(None) => continue,
                Ok(Some(value)) => value,
                // Repeated or not visible ASCII: which copy is DocuSign's
                // cannot be told, so neither is used.
                Err(()) => {
                    present = true;
                    continue;
                }
            };
            present = true;
            if value.len() > MAX_SIGNATURE_HEADER_LEN {
                continue;
            }
            if let Some(signature) = BASE64.decode(value.trim()).ok().filter(|s| s.len() == 32) {
                candidates.push(signature);
            }
        }
        (candidates, present)
    }
}

impl Verifier for DocusignVerifier {
    fn provider(&self) -> &'static str {
        "docusign"
    }

    fn secret_headers(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    /// One signature header present is enough to read the body: a repeated
    /// or overlong candidate must not refuse a delivery another candidate
    /// may verify.
    fn precheck(&self, request: &Head<'_>) -> Result<(), Rejection> {
        if self.names.iter().any(|n| request.headers.contains_key(n)) {
            Ok(())
        } else {
            Err(Rejection::SignatureMissing)
        }
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let (candidates, present) = self.candidates(headers);
        if candidates.is_empty() {
            return Err(if present {
                Rejection::SignatureMalformed
            } else {
                Rejection::SignatureMissing
            });
        }
        let secret_index = find_secret::<Hmac<Sha256>>(&self.secrets, &[body], &candidates)
            .ok_or(Rejection::SignatureMismatch)?;
        Ok(Verified {
            event: json_info(json_body(body).as_ref(), "/event"),
            delivery_id: None,
            secret_index,
        })
    }
}

/// The headers DocuSign sends for `body` on an account whose HMAC keys are
/// `keys` (in order): `X-DocuSign-Signature-<n>` for the `n`th, at most
/// [`MAX_SIGNATURES`].
pub fn sign_with_keys(keys: &[&[u8]], body: &[u8]) -> Vec<(String, String)> {
    keys.iter()
        .take(MAX_SIGNATURES)
        .enumerate()
        .map(|(at, key)| {
            (
                header_name(at + 1),
                BASE64.encode(mac::<Hmac<Sha256>>(key, &[body])),
            )
        })
        .collect()
}

/// The header DocuSign sends for `body` on an account with the one HMAC
/// `key`.
pub fn sign(key: &[u8], body: &[u8]) -> Vec<(&'static str, String)> {
    vec![(
        "x-docusign-signature-1",
        BASE64.encode(mac::<Hmac<Sha256>>(key, &[body])),
    )]
}

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue, Method, Uri};

    use super::super::hmac_common::test_support::*;
    use super::*;

    const FIRST: &str = "x-docusign-signature-1";
    const BODY: &[u8] = br#"{"event":"envelope-completed","apiVersion":"v2.1","uri":"/restapi/v2.1/accounts/1/envelopes/2","retryCount":0,"configurationId":10,"generatedDateTime":"2023-11-14T22:13:20.0000000Z","data":{"accountId":"1","userId":"3","envelopeId":"2"}}"#;
    /// DocuSign publishes no key/body/signature triple; independently
    /// computed with `printf '%s' "$BODY" | openssl dgst -sha256 -hmac
    /// docusign-connect-key -binary | base64`, following
    /// <https://developers.docusign.com/platform/webhooks/connect/validate/>.
    const KNOWN: &str = "EylU4nDcYfRij3uwbS1///0p8CMNNqp7vRq2EEbOqUk=";

    fn verifier(secrets_: &[&str]) -> DocusignVerifier {
        DocusignVerifier::new(secrets(secrets_)).expect("verifier")
    }

    fn owned(pairs: &[(String, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    #[test]
    fn known_answer_and_event() {
        let verified = verifier(&["docusign-connect-key"])
            .verify(&headers(&[(FIRST, KNOWN)]), BODY)
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("envelope-completed".into()),
                delivery_id: None,
                secret_index: 0,
            }
        );
        assert_eq!(sign(b"docusign-connect-key", BODY)[0].1, KNOWN);
    }

    #[test]
    fn any_header_may_match_any_key() {
        // The account has three keys; ours is its third.
        let signed = owned(&sign_with_keys(&[&b"a"[..], b"b", b"ours"], BODY));
        assert_eq!(signed.len(), 3);
        let verified = verifier(&["old", "ours"])
            .verify(&signed, BODY)
            .expect("third header");
        assert_eq!(verified.secret_index, 1);
        assert_eq!(
            verifier(&["none of them"]).verify(&signed, BODY),
            Err(Rejection::SignatureMismatch)
        );
        // The hundredth header is read, a hundred-and-first is not.
        let sig = &sign(b"ours", BODY)[0].1;
        let last = owned(&[(header_name(MAX_SIGNATURES), sig.clone())]);
        assert!(verifier(&["ours"]).verify(&last, BODY).is_ok());
        let beyond = owned(&[(header_name(MAX_SIGNATURES + 1), sig.clone())]);
        assert_eq!(
            verifier(&["ours"]).verify(&beyond, BODY),
            Err(Rejection::SignatureMissing)
        );
        assert_eq!(
            sign_with_keys(&[&b"k"[..]; MAX_SIGNATURES + 5], BODY).len(),
            MAX_SIGNATURES
        );
    }

    #[test]
    fn a_bad_candidate_does_not_refuse_a_good_one() {
        let v = verifier(&["ours"]);
        let good = sign(b"ours", BODY)[0].1.clone();
        let huge = huge_value("A");
        for bad in ["not base64!", "c2hvcnQ=", huge.as_str()] {
            let mut map = owned(&[(header_name(1), bad.to_owned())]);
            map.insert(
                HeaderName::from_static("x-docusign-signature-2"),
                HeaderValue::from_str(&good).expect("value"),
            );
            assert!(
                v.verify(&map, BODY).is_ok(),
                "{}",
                &bad[..bad.len().min(20)]
            );
            // The other order: the good candidate first, the bad one after.
            let mut map = owned(&[(header_name(1), good.clone())]);
            map.insert(
                HeaderName::from_static("x-docusign-signature-2"),
                HeaderValue::from_str(bad).expect("value"),
            );
            assert!(
                v.verify(&map, BODY).is_ok(),
                "{} last",
                &bad[..bad.len().min(20)]
            );
            // Next to a well-formed wrong one, it is a mismatch.
            let wrong = sign(b"theirs", BODY)[0].1.clone();
            map.insert(
                HeaderName::from_static("x-docusign-signature-1"),
                HeaderValue::from_str(&wrong).expect("value"),
            );
            assert_eq!(v.verify(&map, BODY), Err(Rejection::SignatureMismatch));
            // Alone, it is malformed.
            let alone = owned(&[(header_name(1), bad.to_owned())]);
            assert_eq!(v.verify(&alone, BODY), Err(Rejection::SignatureMalformed));
        }
        // A repeated candidate is ignored, not chosen from.
        let mut map = owned(&[
            (header_name(1), good.clone()),
            (header_name(1), good.clone()),
        ]);
        assert_eq!(v.verify(&map, BODY), Err(Rejection::SignatureMalformed));
        map.insert(
            HeaderName::from_static("x-docusign-signature-3"),
            HeaderValue::from_str(&good).expect("value"),
        );
        assert!(v.verify(&map, BODY).is_ok());
        // The precheck lets such a mix through to the body.
        let uri = Uri::from_static("/");
        let head = |headers: &HeaderMap| {
            v.precheck(&Head {
                method: &Method::POST,
                uri: &uri,
                headers,
            })
        };
        assert_eq!(head(&map), Ok(()));
        assert_eq!(head(&HeaderMap::new()), Err(Rejection::SignatureMissing));
    }

    #[test]
    fn common_behaviour() {
        body_signature_suite(&Suite {
            build: |s| Ok(Box::new(DocusignVerifier::new(s)?)),
            sign,
            signature_header: FIRST,
            body: BODY,
        });
    }
}
