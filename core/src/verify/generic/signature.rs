//! The `generic` provider's HMAC check: its signature header (one value,
//! or `keyValue` pairs), the content its template names, the timestamp.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Hmac;
use hookwarden_crds::{HmacAlgorithm, KeyValueSignature, SignatureEncoding};
use http::HeaderMap;
use sha2::{Sha256, Sha512};

use super::template::Part;
use crate::secrets::Secret;
use crate::verify::hmac_common::{MAX_CANDIDATES, find_secret, signature_header};
use crate::verify::public_url::PublicUrl;
use crate::verify::timestamp::{Clock, check_fresh, parse_unix_seconds};
use crate::verify::{Rejection, VerifierError, single_header};

/// A key-value signature header's settings, defaults resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyValue {
    pub(super) signature_key: String,
    pub(super) timestamp_key: Option<String>,
    pub(super) pair_separator: String,
    pub(super) key_separator: String,
}

impl KeyValue {
    pub(super) fn new(spec: &KeyValueSignature) -> Result<Self, VerifierError> {
        let invalid = |field, reason| VerifierError::Invalid { field, reason };
        let kv = Self {
            signature_key: spec
                .signature_key
                .clone()
                .unwrap_or_else(|| "v1".to_owned()),
            timestamp_key: spec.timestamp_key.clone(),
            pair_separator: spec
                .pair_separator
                .clone()
                .unwrap_or_else(|| ",".to_owned()),
            key_separator: spec.key_separator.clone().unwrap_or_else(|| "=".to_owned()),
        };
        if kv.signature_key.is_empty() || kv.timestamp_key.as_deref() == Some("") {
            return Err(invalid(
                "verification.hmac.keyValue",
                "signatureKey and timestampKey must not be empty",
            ));
        }
        if kv.pair_separator.is_empty()
            || kv.key_separator.is_empty()
            || kv.pair_separator == kv.key_separator
        {
            return Err(invalid(
                "verification.hmac.keyValue",
                "pairSeparator and keySeparator must be non-empty and different",
            ));
        }
        if kv.timestamp_key.as_deref() == Some(kv.signature_key.as_str()) {
            return Err(invalid(
                "verification.hmac.keyValue",
                "timestampKey and signatureKey must be different",
            ));
        }
        Ok(kv)
    }

    /// The timestamp text and the signature values of `value`, the header
    /// (already bounded in length). Pairs without the key separator and
    /// unknown keys are skipped; a second timestamp is malformed (which one
    /// was signed would be ambiguous); more than [`MAX_CANDIDATES`]
    /// signatures is malformed (no sender sends that many).
    pub(super) fn parse<'a>(
        &self,
        value: &'a str,
    ) -> Result<(Option<&'a str>, Vec<&'a str>), Rejection> {
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for pair in value.split(self.pair_separator.as_str()) {
            let Some((key, text)) = pair.trim().split_once(self.key_separator.as_str()) else {
                continue;
            };
            if Some(key) == self.timestamp_key.as_deref() {
                if timestamp.replace(text).is_some() {
                    return Err(Rejection::TimestampMalformed);
                }
            } else if key == self.signature_key {
                if signatures.len() == MAX_CANDIDATES {
                    return Err(Rejection::SignatureMalformed);
                }
                signatures.push(text);
            }
        }
        Ok((timestamp, signatures))
    }
}

/// The request line, for templates that sign it.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestLine<'a> {
    pub(super) method: &'a str,
    pub(super) path_and_query: &'a str,
    pub(super) query: Option<&'a str>,
}

#[derive(Debug)]
pub(super) struct HmacVerifier {
    pub(super) algorithm: HmacAlgorithm,
    pub(super) signature_header: String,
    pub(super) signature_prefix: String,
    pub(super) signature_encoding: SignatureEncoding,
    pub(super) timestamp_header: Option<String>,
    pub(super) id_header: Option<String>,
    pub(super) key_value: Option<KeyValue>,
    pub(super) content: Vec<Part>,
    pub(super) public_url: Option<PublicUrl>,
    pub(super) keys: Vec<Secret>,
    pub(super) tolerance: u32,
    pub(super) clock: Clock,
}

impl HmacVerifier {
    pub(super) fn verify(
        &self,
        line: &RequestLine<'_>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<usize, Rejection> {
        let value = signature_header(headers, &self.signature_header)?;
        let (keyed_timestamp, candidates) = match &self.key_value {
            Some(kv) => {
                let (timestamp, texts) = kv.parse(value)?;
                // A badly encoded candidate next to a good one is skipped:
                // it may be a scheme version this check does not know.
                let candidates: Vec<Vec<u8>> = texts
                    .into_iter()
                    .filter_map(|text| self.decode_signature(text))
                    .collect();
                (timestamp, candidates)
            }
            None => (
                None,
                self.decode_signature(value).into_iter().collect::<Vec<_>>(),
            ),
        };
        if candidates.is_empty() {
            return Err(Rejection::SignatureMalformed);
        }

        // The id and timestamp are signed; the timestamp is also checked
        // against the clock so a captured delivery cannot be replayed later.
        let id = match &self.id_header {
            Some(name) => Some(
                single_header(headers, name)
                    .map_err(|()| Rejection::SignatureMalformed)?
                    .ok_or(Rejection::SignatureMalformed)?,
            ),
            None => None,
        };
        let timestamp = match (&self.timestamp_header, &self.key_value) {
            (Some(name), _) => Some(
                single_header(headers, name)
                    .map_err(|()| Rejection::TimestampMalformed)?
                    .ok_or(Rejection::TimestampMissing)?,
            ),
            (None, Some(kv)) if kv.timestamp_key.is_some() => {
                Some(keyed_timestamp.ok_or(Rejection::TimestampMissing)?)
            }
            _ => None,
        };
        if let Some(text) = timestamp {
            check_fresh((self.clock)(), parse_unix_seconds(text)?, self.tolerance)?;
        }
        // Built only when signed; the template was checked at startup to
        // have a public URL when it signs one.
        let url = match (&self.public_url, self.content.contains(&Part::Url)) {
            (Some(url), true) => url.with_query(line.query),
            _ => String::new(),
        };
        let mut parts: Vec<&[u8]> = Vec::with_capacity(self.content.len());
        for part in &self.content {
            parts.push(match part {
                Part::Literal(text) => text,
                Part::Method => line.method.as_bytes(),
                Part::Url => url.as_bytes(),
                Part::PathAndQuery => line.path_and_query.as_bytes(),
                Part::Timestamp => timestamp.unwrap_or_default().as_bytes(),
                Part::Id => id.unwrap_or_default().as_bytes(),
                // A signed header that is missing or repeated cannot be
                // what was signed.
                Part::Header(name) => single_header(headers, name)
                    .map_err(|()| Rejection::SignatureMalformed)?
                    .ok_or(Rejection::SignatureMalformed)?
                    .as_bytes(),
                Part::Body => body,
            });
        }

        // Every key against every candidate, each in constant time.
        match self.algorithm {
            HmacAlgorithm::Sha256 => find_secret::<Hmac<Sha256>>(&self.keys, &parts, &candidates),
            HmacAlgorithm::Sha512 => find_secret::<Hmac<Sha512>>(&self.keys, &parts, &candidates),
            HmacAlgorithm::Sha1 => find_secret::<Hmac<sha1::Sha1>>(&self.keys, &parts, &candidates),
        }
        .ok_or(Rejection::SignatureMismatch)
    }

    /// One signature: after the prefix, in its encoding, of the algorithm's
    /// length; `None` if not.
    pub(super) fn decode_signature(&self, text: &str) -> Option<Vec<u8>> {
        let encoded = text.strip_prefix(self.signature_prefix.as_str())?;
        let signature = match self.signature_encoding {
            SignatureEncoding::Hex => hex::decode(encoded.trim()).ok(),
            SignatureEncoding::Base64 => BASE64.decode(encoded.trim()).ok(),
        }?;
        (signature.len() == self.output_len()).then_some(signature)
    }

    pub(super) fn output_len(&self) -> usize {
        match self.algorithm {
            HmacAlgorithm::Sha256 => 32,
            HmacAlgorithm::Sha512 => 64,
            HmacAlgorithm::Sha1 => 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{NOW, PUBLIC, headers, hmac_check, hmac_verifier, secrets};
    use super::super::*;
    use super::*;
    use crate::verify::DEFAULT_TIMESTAMP_TOLERANCE_SECS;

    /// The Stripe preset's independently computed known answer
    /// (`core/src/verify/stripe.rs`):
    /// `printf '1700000000.%s' "$BODY" | openssl dgst -sha256 -hmac whsec_test_secret`.
    const STRIPE_SECRET: &str = "whsec_test_secret";
    const STRIPE_BODY: &[u8] =
        br#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}"#;
    const STRIPE_V1: &str = "67da5088c63e080c71bd2bb0cb5c03d85a8fc6a21ce3aaf484df809654745b92";

    fn stripe_like(keys: &[&str]) -> GenericVerifier {
        hmac_verifier(
            hmac_check(|c| {
                c.signature_header = "Stripe-Signature".into();
                c.key_value = Some(KeyValueSignature {
                    timestamp_key: Some("t".into()),
                    ..KeyValueSignature::default()
                });
            }),
            keys,
        )
    }

    #[test]
    fn a_stripe_style_header_verifies_any_of_its_signatures() {
        let v = stripe_like(&[STRIPE_SECRET]);
        let at =
            |value: &str, body: &[u8]| v.verify(&headers(&[("stripe-signature", value)]), body);
        assert!(at(&format!("t={NOW},v1={STRIPE_V1}"), STRIPE_BODY).is_ok());
        assert!(
            at(&format!("t={NOW}, v1={STRIPE_V1}"), STRIPE_BODY).is_ok(),
            "spaces around a pair are ignored"
        );
        let other = hex::encode([7u8; 32]);
        let several = format!("t={NOW},v1=zz,v1={other},v0={other},junk,v1={STRIPE_V1}");
        assert_eq!(
            at(&several, STRIPE_BODY).map(|v| v.secret_index),
            Ok(0),
            "a malformed candidate next to a valid one does not refuse the header"
        );
        assert_eq!(
            stripe_like(&["old", STRIPE_SECRET])
                .verify(&headers(&[("stripe-signature", &several)]), STRIPE_BODY)
                .map(|v| v.secret_index),
            Ok(1)
        );
        let mismatch = Err(Rejection::SignatureMismatch);
        assert_eq!(
            stripe_like(&["wrong"]).verify(
                &headers(&[("stripe-signature", &format!("t={NOW},v1={STRIPE_V1}"))]),
                STRIPE_BODY
            ),
            mismatch
        );
        let mut tampered = STRIPE_BODY.to_vec();
        tampered[5] ^= 1;
        assert_eq!(at(&format!("t={NOW},v1={STRIPE_V1}"), &tampered), mismatch);
        assert_eq!(
            at(&format!("t={},v1={STRIPE_V1}", NOW + 1), STRIPE_BODY),
            mismatch,
            "the timestamp is signed"
        );
        // Replay: the signed timestamp is outside the window.
        assert_eq!(
            at(&format!("t={},v1={STRIPE_V1}", NOW - 301), STRIPE_BODY),
            Err(Rejection::TimestampOutOfTolerance)
        );
        let malformed = Err(Rejection::SignatureMalformed);
        assert_eq!(
            at(&format!("t={NOW},v1=zz,v1=abcd"), STRIPE_BODY),
            malformed
        );
        assert_eq!(
            at(&format!("t={NOW},v0={STRIPE_V1}"), STRIPE_BODY),
            malformed
        );
        assert_eq!(at("", STRIPE_BODY), malformed);
        let seventeen = format!("t={NOW}{}", format!(",v1={other}").repeat(17));
        assert_eq!(at(&seventeen, STRIPE_BODY), malformed);
        assert_eq!(
            at(&format!("t={NOW},t={NOW},v1={STRIPE_V1}"), STRIPE_BODY),
            Err(Rejection::TimestampMalformed)
        );
        assert_eq!(
            at(&format!("v1={STRIPE_V1}"), STRIPE_BODY),
            Err(Rejection::TimestampMissing)
        );
        assert_eq!(
            at(&format!("t=soon,v1={STRIPE_V1}"), STRIPE_BODY),
            Err(Rejection::TimestampMalformed)
        );
        assert_eq!(
            v.verify(&headers(&[]), STRIPE_BODY),
            Err(Rejection::SignatureMissing)
        );
    }

    fn vector_now() -> i64 {
        crate::verify::standard_webhooks::shared_tests::VECTOR_TIMESTAMP
    }

    #[test]
    fn the_standard_webhooks_vector_as_a_key_value_header() {
        use crate::verify::standard_webhooks::shared_tests::{
            VECTOR_BODY, VECTOR_ID, VECTOR_SECRET, VECTOR_SIGNATURE, VECTOR_TIMESTAMP,
        };
        let key = VECTOR_SECRET.trim_start_matches("whsec_");
        let verifier = GenericVerifier::with_clock(
            GenericChecks {
                hmac: Some((
                    hmac_check(|c| {
                        c.key_encoding = BinaryEncoding::Base64;
                        c.signature_header = "webhook-signature".into();
                        c.signature_encoding = SignatureEncoding::Base64;
                        c.id_header = Some("webhook-id".into());
                        c.timestamp_header = Some("webhook-timestamp".into());
                        c.key_value = Some(KeyValueSignature {
                            pair_separator: Some(" ".into()),
                            key_separator: Some(",".into()),
                            ..KeyValueSignature::default()
                        });
                    }),
                    secrets(&[key]),
                )),
                timestamp_tolerance_secs: DEFAULT_TIMESTAMP_TOLERANCE_SECS,
                ..GenericChecks::default()
            },
            vector_now,
        )
        .expect("verifier");
        let ts = VECTOR_TIMESTAMP.to_string();
        let with = |signature: &str| {
            headers(&[
                ("webhook-id", VECTOR_ID),
                ("webhook-timestamp", &ts),
                ("webhook-signature", signature),
            ])
        };
        assert!(
            verifier
                .verify(&with(VECTOR_SIGNATURE), VECTOR_BODY.as_bytes())
                .is_ok()
        );
        let rotated = format!("v1,bm90LWEtc2lnbmF0dXJl v2,xyz {VECTOR_SIGNATURE}");
        assert!(
            verifier
                .verify(&with(&rotated), VECTOR_BODY.as_bytes())
                .is_ok()
        );
        assert_eq!(
            verifier.verify(&with(VECTOR_SIGNATURE), b"{\"test\": 2432232315}"),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn key_value_settings_that_cannot_work_are_startup_errors() {
        let refused = |edit: fn(&mut HmacCheck)| {
            GenericVerifier::new(GenericChecks {
                hmac: Some((hmac_check(edit), secrets(&["k"]))),
                ..GenericChecks::default()
            })
            .expect_err("refused")
            .to_string()
        };
        let message = refused(|c| {
            c.timestamp_header = Some("X-Timestamp".into());
            c.key_value = Some(KeyValueSignature {
                timestamp_key: Some("t".into()),
                ..KeyValueSignature::default()
            });
        });
        assert!(message.contains("not both"), "{message}");
        let message = refused(|c| {
            c.key_value = Some(KeyValueSignature {
                pair_separator: Some("=".into()),
                ..KeyValueSignature::default()
            });
        });
        assert!(message.contains("different"), "{message}");
        let message = refused(|c| {
            c.key_value = Some(KeyValueSignature {
                timestamp_key: Some("v1".into()),
                ..KeyValueSignature::default()
            });
        });
        assert!(
            message.contains("timestampKey and signatureKey"),
            "{message}"
        );
    }

    #[test]
    fn the_signer_writes_a_key_value_header() {
        let check = hmac_check(|c| {
            c.signature_header = "Stripe-Signature".into();
            c.key_value = Some(KeyValueSignature {
                timestamp_key: Some("t".into()),
                ..KeyValueSignature::default()
            });
        });
        let checks = GenericChecks {
            hmac: Some((check, secrets(&[STRIPE_SECRET]))),
            timestamp_tolerance_secs: DEFAULT_TIMESTAMP_TOLERANCE_SECS,
            ..GenericChecks::default()
        };
        let signed = sign(
            &checks,
            &SignRequest {
                id: "evt_1",
                event: "x",
                timestamp: NOW,
                method: "POST",
                url: PUBLIC,
                body: STRIPE_BODY,
            },
        )
        .expect("signed");
        assert_eq!(
            signed,
            vec![(
                "Stripe-Signature".to_owned(),
                format!("t={NOW},v1={STRIPE_V1}")
            )]
        );
    }
}
