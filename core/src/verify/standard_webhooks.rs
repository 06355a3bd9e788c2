//! Standard Webhooks: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` headers. The signature header is a space-separated
//! list of `<version>,<signature>`; each `v1` is the base64 HMAC-SHA256 of
//! `<id>.<timestamp>.<body>` under the secret, which is written
//! `whsec_<base64>` (the prefix is optional; the rest is always base64).
//! The asymmetric `v1a` (base64 Ed25519 signature of the same content) is
//! verified with public keys written `whpk_<base64>`. At least one `v1`
//! (or `v1a`) must match; other versions are ignored. The timestamp must be
//! within five minutes. Svix uses the
//! same scheme with `svix-*` header names (see [`super::svix`]).
//!
//! See <https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hmac::Hmac;
use http::HeaderMap;
use sha2::Sha256;

use super::hmac_common::{
    Candidates, check_fresh, json_body, json_info, mac, require_secrets, signature_header,
    system_clock, timestamp_header,
};
use super::{Clock, Rejection, Verified, Verifier, VerifierError, info_header, single_header};
use crate::secrets::Secret;

/// The spec's replay window: five minutes either way.
pub const DEFAULT_TOLERANCE_SECS: u32 = 300;

/// The header names of one flavour of the scheme.
#[derive(Debug, Clone, Copy)]
pub struct Scheme {
    /// The preset's name.
    pub provider: &'static str,
    /// The message id header (signed; also the delivery id).
    pub id_header: &'static str,
    /// The Unix-seconds timestamp header (signed).
    pub timestamp_header: &'static str,
    /// The signature list header.
    pub signature_header: &'static str,
    /// Whether a delivery without `signature_header` may carry the three
    /// Standard Webhooks headers instead (as Svix's libraries accept).
    pub also_standard_headers: bool,
}

/// The headers of the Standard Webhooks specification.
pub const SCHEME: Scheme = Scheme {
    provider: "standard-webhooks",
    id_header: "webhook-id",
    timestamp_header: "webhook-timestamp",
    signature_header: "webhook-signature",
    also_standard_headers: false,
};

/// Verifies Standard Webhooks (or Svix) deliveries.
#[derive(Debug)]
pub struct StandardWebhooksVerifier {
    scheme: Scheme,
    /// The decoded keys, in `secretRefs` order.
    keys: Vec<Key>,
    tolerance: u32,
    clock: Clock,
}

/// One configured key: a symmetric secret (`v1`) or a public key (`v1a`).
#[derive(Debug)]
enum Key {
    Hmac(Secret),
    Ed25519(VerifyingKey),
}

impl Key {
    fn decode(secret: &[u8]) -> Option<Self> {
        if let Some(public) = secret.strip_prefix(b"whpk_") {
            let text = std::str::from_utf8(public).ok()?.trim();
            let bytes: [u8; 32] = BASE64.decode(text).ok()?.try_into().ok()?;
            return VerifyingKey::from_bytes(&bytes).ok().map(Self::Ed25519);
        }
        decode_secret(secret).map(|key| Self::Hmac(Secret::from(key)))
    }
}

/// The HMAC key of a `whsec_<base64>` (or bare base64) secret.
pub fn decode_secret(secret: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(secret).ok()?.trim();
    let encoded = text.strip_prefix("whsec_").unwrap_or(text);
    BASE64.decode(encoded).ok().filter(|key| !key.is_empty())
}

impl StandardWebhooksVerifier {
    /// A Standard Webhooks verifier accepting any of `secrets` within
    /// `tolerance` seconds. Fails when a secret is not base64.
    pub fn new(secrets: Vec<Secret>, tolerance: u32) -> Result<Self, VerifierError> {
        Self::with_clock(SCHEME, secrets, tolerance, system_clock)
    }

    /// A verifier for `scheme`, reading the time from `clock`.
    pub fn with_clock(
        scheme: Scheme,
        secrets: Vec<Secret>,
        tolerance: u32,
        clock: Clock,
    ) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(index, secret)| {
                Key::decode(secret.expose()).ok_or(VerifierError::KeyEncoding {
                    check: "secretRefs",
                    index,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            scheme,
            keys,
            tolerance,
            clock,
        })
    }
}

/// The `v1` and `v1a` signatures of a signature list.
#[derive(Debug, Default)]
struct Signatures {
    v1: Vec<Vec<u8>>,
    v1a: Vec<Signature>,
}

/// One decoded entry of a signature list.
enum Candidate {
    V1(Vec<u8>),
    V1a(Signature),
}

/// The `v1` and `v1a` signatures of a signature list. Other versions and
/// entries without a version are skipped, and so is a `v1` or `v1a` whose
/// signature is not base64 of the right length: it cannot get a delivery
/// refused that another entry verifies (a sender moving to `v1a` may list
/// one that an older verifier cannot read).
fn parse_signatures(value: &str) -> Result<Signatures, Rejection> {
    let mut candidates = Candidates::new();
    for entry in value.split(' ').filter(|e| !e.is_empty()) {
        let (version, signature) = entry.split_once(',').unwrap_or((entry, ""));
        let decoded = || BASE64.decode(signature).ok();
        match version {
            "v1" => candidates.push(
                decoded()
                    .filter(|bytes| bytes.len() == 32)
                    .map(Candidate::V1),
            )?,
            "v1a" => candidates.push(
                decoded()
                    .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
                    .map(|bytes| Candidate::V1a(Signature::from_bytes(&bytes))),
            )?,
            _ => {}
        }
    }
    let mut signatures = Signatures::default();
    for candidate in candidates.into_well_formed()? {
        match candidate {
            Candidate::V1(bytes) => signatures.v1.push(bytes),
            Candidate::V1a(signature) => signatures.v1a.push(signature),
        }
    }
    Ok(signatures)
}

/// The index of the first key that produced one of `signatures`. Every key
/// is tried against every signature; HMACs are compared in constant time.
fn find_key(keys: &[Key], parts: &[&[u8]], signatures: &Signatures) -> Option<usize> {
    let mut matched = None;
    let mut content = None;
    for (index, key) in keys.iter().enumerate() {
        let ok = match key {
            Key::Hmac(secret) => {
                let Ok(mut mac) = <Hmac<Sha256> as hmac::Mac>::new_from_slice(secret.expose())
                else {
                    continue;
                };
                for part in parts {
                    hmac::Mac::update(&mut mac, part);
                }
                signatures.v1.iter().fold(false, |ok, candidate| {
                    hmac::Mac::verify_slice(mac.clone(), candidate).is_ok() | ok
                })
            }
            Key::Ed25519(public) => {
                let content: &Vec<u8> = content.get_or_insert_with(|| parts.concat());
                signatures.v1a.iter().fold(false, |ok, signature| {
                    public.verify_strict(content, signature).is_ok() | ok
                })
            }
        };
        if ok && matched.is_none() {
            matched = Some(index);
        }
    }
    matched
}

impl Verifier for StandardWebhooksVerifier {
    fn provider(&self) -> &'static str {
        self.scheme.provider
    }

    fn secret_headers(&self) -> Vec<&str> {
        let mut names = vec![self.scheme.signature_header];
        if self.scheme.also_standard_headers {
            names.push(SCHEME.signature_header);
        }
        names
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        // The three headers are taken from the same family, never mixed.
        let names = if self.scheme.also_standard_headers
            && !headers.contains_key(self.scheme.signature_header)
            && headers.contains_key(SCHEME.signature_header)
        {
            SCHEME
        } else {
            self.scheme
        };
        let signatures = parse_signatures(signature_header(headers, names.signature_header)?)?;
        // The id is signed: without it nothing can be checked.
        let id = single_header(headers, names.id_header)
            .map_err(|()| Rejection::SignatureMalformed)?
            .filter(|id| !id.is_empty() && id.len() <= 256)
            .ok_or(Rejection::SignatureMalformed)?;
        let (timestamp, seconds) = timestamp_header(headers, names.timestamp_header)?;
        check_fresh((self.clock)(), seconds, self.tolerance)?;
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
        let secret_index =
            find_key(&self.keys, &parts, &signatures).ok_or(Rejection::SignatureMismatch)?;
        Ok(Verified {
            event: json_info(json_body(body).as_ref(), "/type"),
            delivery_id: info_header(headers, names.id_header),
            secret_index,
        })
    }
}

/// The headers a sender of `scheme` sends for `body`, signed with `secret`
/// (`whsec_<base64>`); `None` when the secret is not base64.
pub fn sign_scheme(
    scheme: Scheme,
    secret: &[u8],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<Vec<(&'static str, String)>> {
    let key = decode_secret(secret)?;
    let ts = timestamp.to_string();
    let signature = mac::<Hmac<Sha256>>(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    Some(vec![
        (scheme.id_header, id.to_owned()),
        (scheme.timestamp_header, ts),
        (
            scheme.signature_header,
            format!("v1,{}", BASE64.encode(signature)),
        ),
    ])
}

/// The headers of an asymmetric (`v1a`) sender of `scheme` for `body`.
pub fn sign_v1a(
    scheme: Scheme,
    key: &SigningKey,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let ts = timestamp.to_string();
    let content = [id.as_bytes(), b".", ts.as_bytes(), b".", body].concat();
    let signature = key.sign(&content);
    vec![
        (scheme.id_header, id.to_owned()),
        (scheme.timestamp_header, ts),
        (
            scheme.signature_header,
            format!("v1a,{}", BASE64.encode(signature.to_bytes())),
        ),
    ]
}

/// The Standard Webhooks headers for `body`, signed with `secret`
/// (`whsec_<base64>`); `None` when the secret is not base64.
pub fn sign(
    secret: &[u8],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<Vec<(&'static str, String)>> {
    sign_scheme(SCHEME, secret, id, timestamp, body)
}

/// Tests shared with [`super::svix`]: the same behaviour under other names.
#[cfg(test)]
pub(crate) mod shared_tests {
    use super::super::hmac_common::MAX_CANDIDATES;
    use super::super::hmac_common::test_support::*;
    use super::*;

    /// The test vector of the Standard Webhooks reference libraries
    /// (<https://github.com/standard-webhooks/standard-webhooks/blob/main/libraries/python/standardwebhooks/tests/test_webhooks.py>),
    /// also published by Svix at
    /// <https://docs.svix.com/receiving/verifying-payloads/how-manual>.
    pub(crate) const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    pub(crate) const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    pub(crate) const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    pub(crate) const VECTOR_BODY: &str = r#"{"test": 2432232314}"#;
    pub(crate) const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const SECRET: &str = "whsec_c2VjcmV0LWtleS1ieXRlcw==";
    const BODY: &[u8] = br#"{"type":"invoice.paid","data":{}}"#;

    fn vector_clock() -> i64 {
        VECTOR_TIMESTAMP + 5
    }

    fn verifier(scheme: Scheme, secrets_: &[&str]) -> StandardWebhooksVerifier {
        StandardWebhooksVerifier::with_clock(scheme, secrets(secrets_), DEFAULT_TOLERANCE_SECS, now)
            .expect("verifier")
    }

    fn signed_at(scheme: Scheme, ts: i64) -> HeaderMap {
        signed_headers(&sign_scheme(scheme, SECRET.as_bytes(), "msg_1", ts, BODY).expect("secret"))
    }

    pub(crate) fn published_vector(scheme: Scheme) {
        let v = StandardWebhooksVerifier::with_clock(
            scheme,
            secrets(&[VECTOR_SECRET]),
            DEFAULT_TOLERANCE_SECS,
            vector_clock,
        )
        .expect("verifier");
        let vector = headers(&[
            (scheme.id_header, VECTOR_ID),
            (scheme.timestamp_header, &VECTOR_TIMESTAMP.to_string()),
            (scheme.signature_header, VECTOR_SIGNATURE),
        ]);
        let verified = v
            .verify(&vector, VECTOR_BODY.as_bytes())
            .expect("published vector verifies");
        assert_eq!(verified.delivery_id.as_deref(), Some(VECTOR_ID));
        assert_eq!(verified.event, None, "the vector's body has no type");
        let signed = sign_scheme(
            scheme,
            VECTOR_SECRET.as_bytes(),
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_BODY.as_bytes(),
        )
        .expect("secret");
        assert_eq!(signed[2].1, VECTOR_SIGNATURE);
        // The same secret without its prefix is the same key.
        let bare = StandardWebhooksVerifier::with_clock(
            scheme,
            secrets(&[VECTOR_SECRET.trim_start_matches("whsec_")]),
            DEFAULT_TOLERANCE_SECS,
            vector_clock,
        )
        .expect("verifier");
        assert!(bare.verify(&vector, VECTOR_BODY.as_bytes()).is_ok());
        // Years later, it is a replay.
        let real = StandardWebhooksVerifier::with_clock(
            scheme,
            secrets(&[VECTOR_SECRET]),
            DEFAULT_TOLERANCE_SECS,
            system_clock,
        )
        .expect("verifier");
        assert_eq!(
            real.verify(&vector, VECTOR_BODY.as_bytes()),
            Err(Rejection::TimestampOutOfTolerance)
        );
    }

    pub(crate) fn round_trip_and_lists(scheme: Scheme) {
        let v = verifier(scheme, &[SECRET]);
        let good = signed_at(scheme, NOW);
        let verified = v.verify(&good, BODY).expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("invoice.paid".into()),
                delivery_id: Some("msg_1".into()),
                secret_index: 0,
            }
        );
        let sig = good[scheme.signature_header]
            .to_str()
            .expect("ascii")
            .to_owned();
        let other = format!("v1,{}", BASE64.encode([9u8; 32]));
        let listed = format!("v0,AAAA {other} v2,xyz {sig}");
        assert!(
            v.verify(&with_header(&good, scheme.signature_header, &listed), BODY)
                .is_ok(),
            "any v1 may match; other versions are ignored"
        );
        let only_other = format!("v2,{}", &sig[3..]);
        assert_eq!(
            v.verify(
                &with_header(&good, scheme.signature_header, &only_other),
                BODY
            ),
            Err(Rejection::SignatureMalformed)
        );
    }

    /// A `v1` or `v1a` entry that does not decode is skipped, not a reason
    /// to refuse the entry next to it; checked with the published vector
    /// and the independently computed `v1a` signature of it.
    pub(crate) fn candidate_lists(scheme: Scheme) {
        let v = StandardWebhooksVerifier::with_clock(
            scheme,
            secrets(&[VECTOR_SECRET, V1A_PUBLIC]),
            DEFAULT_TOLERANCE_SECS,
            vector_clock,
        )
        .expect("verifier");
        let verify = |entries: &[&str]| {
            v.verify(
                &headers(&[
                    (scheme.id_header, VECTOR_ID),
                    (scheme.timestamp_header, &VECTOR_TIMESTAMP.to_string()),
                    (scheme.signature_header, &entries.join(" ")),
                ]),
                VECTOR_BODY.as_bytes(),
            )
        };
        let other_v1 = format!("v1,{}", BASE64.encode([9u8; 32]));
        let other_v1a = format!("v1a,{}", BASE64.encode([9u8; 64]));
        let v1_short = format!("v1,{}", BASE64.encode([1u8; 31]));
        let v1_long = format!("v1,{}", BASE64.encode([1u8; 33]));
        let v1a_short = format!("v1a,{}", BASE64.encode([1u8; 63]));
        let malformed = [
            "v1,!!!",
            v1_short.as_str(),
            v1_long.as_str(),
            "v1,",
            "v1",
            "v1a,AAAA",
            v1a_short.as_str(),
            "v1a,",
        ];
        for (good, other) in [
            (VECTOR_SIGNATURE, other_v1.as_str()),
            (VECTOR_SIGNATURE, other_v1a.as_str()),
            (V1A_SIGNATURE, other_v1.as_str()),
            (V1A_SIGNATURE, other_v1a.as_str()),
        ] {
            candidate_list_suite(&CandidateList {
                verify: &verify,
                good,
                other,
                malformed: &malformed,
            });
        }
        // v1 and v1a share the cap.
        let mut mixed = vec![V1A_SIGNATURE; 1];
        mixed.extend(vec![VECTOR_SIGNATURE; MAX_CANDIDATES]);
        assert_eq!(verify(&mixed), Err(Rejection::SignatureMalformed));
        // A repeated timestamp header stays malformed next to a good entry.
        let mut twice = headers(&[
            (scheme.id_header, VECTOR_ID),
            (scheme.timestamp_header, &VECTOR_TIMESTAMP.to_string()),
            (scheme.timestamp_header, &VECTOR_TIMESTAMP.to_string()),
        ]);
        twice.insert(
            scheme.signature_header,
            format!("v1,!!! {VECTOR_SIGNATURE}")
                .parse()
                .expect("header value"),
        );
        assert_eq!(
            v.verify(&twice, VECTOR_BODY.as_bytes()),
            Err(Rejection::TimestampMalformed)
        );
    }

    pub(crate) fn tampering(scheme: Scheme) {
        let v = verifier(scheme, &[SECRET]);
        let good = signed_at(scheme, NOW);
        assert_eq!(
            v.verify(&good, &tamper(BODY)),
            Err(Rejection::SignatureMismatch)
        );
        let sig = good[scheme.signature_header]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_eq!(
            v.verify(
                &with_header(&good, scheme.signature_header, &flip_char(&sig, 5)),
                BODY
            ),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            v.verify(
                &with_header(&good, scheme.timestamp_header, &(NOW - 1).to_string()),
                BODY
            ),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            v.verify(&with_header(&good, scheme.id_header, "msg_2"), BODY),
            Err(Rejection::SignatureMismatch)
        );
    }

    pub(crate) fn missing_and_malformed(scheme: Scheme) {
        let v = verifier(scheme, &[SECRET]);
        let good = signed_at(scheme, NOW);
        let sig = good[scheme.signature_header]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_eq!(
            v.verify(&without_header(&good, scheme.signature_header), BODY),
            Err(Rejection::SignatureMissing)
        );
        assert_eq!(
            v.verify(&without_header(&good, scheme.id_header), BODY),
            Err(Rejection::SignatureMalformed)
        );
        assert_eq!(
            v.verify(&without_header(&good, scheme.timestamp_header), BODY),
            Err(Rejection::TimestampMissing)
        );
        assert_eq!(
            v.verify(&with_header(&good, scheme.timestamp_header, "1e9"), BODY),
            Err(Rejection::TimestampMalformed)
        );
        for bad in [
            sig[3..].to_owned(),
            "v1,!!!".to_owned(),
            format!("v1,{}", BASE64.encode([1u8; 31])),
            huge_value("v1,"),
            format!("{sig} ").repeat(MAX_CANDIDATES + 1),
        ] {
            assert_eq!(
                v.verify(&with_header(&good, scheme.signature_header, &bad), BODY),
                Err(Rejection::SignatureMalformed)
            );
        }
        assert_eq!(
            v.verify(
                &with_header(&good, scheme.id_header, &huge_value("msg_")),
                BODY
            ),
            Err(Rejection::SignatureMalformed)
        );
    }

    pub(crate) fn timestamps(scheme: Scheme) {
        let v = verifier(scheme, &[SECRET]);
        assert!(v.verify(&signed_at(scheme, NOW - 300), BODY).is_ok());
        assert!(v.verify(&signed_at(scheme, NOW + 300), BODY).is_ok());
        for ts in [NOW - 301, NOW + 301] {
            assert_eq!(
                v.verify(&signed_at(scheme, ts), BODY),
                Err(Rejection::TimestampOutOfTolerance)
            );
        }
    }

    pub(crate) fn rotation_and_bad_keys(scheme: Scheme) {
        let verified = verifier(scheme, &["whsec_b2xkLWtleQ==", SECRET])
            .verify(&signed_at(scheme, NOW), BODY)
            .expect("second secret");
        assert_eq!(verified.secret_index, 1);
        let err = StandardWebhooksVerifier::with_clock(
            scheme,
            secrets(&[SECRET, "whsec_not base64 s3cr3t"]),
            300,
            now,
        )
        .expect_err("not base64");
        let message = err.to_string();
        assert!(
            message.contains("secretRefs[1]") && !message.contains("s3cr3t"),
            "{message}"
        );
    }

    /// The Ed25519 key with seed `[7; 32]` and its signature of the published
    /// vector's content, computed independently with Python's `cryptography`
    /// (`Ed25519PrivateKey.from_private_bytes(bytes([7]*32)).sign(...)`); the
    /// `v1a` construction is that of the spec's "Asymmetric signatures".
    pub(crate) const V1A_PUBLIC: &str = "whpk_6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=";
    pub(crate) const V1A_SIGNATURE: &str = "v1a,2iFnCkcL0nCB7d0lgaT5vmGnQgJl4zcl9qd7UbPYvulcwR3MRYzjXT2JCSEV4dFH3XNALA4OW0zY5fFdGv9GBA==";

    #[test]
    fn asymmetric_v1a() {
        let v = StandardWebhooksVerifier::with_clock(
            SCHEME,
            secrets(&[VECTOR_SECRET, V1A_PUBLIC]),
            DEFAULT_TOLERANCE_SECS,
            vector_clock,
        )
        .expect("verifier");
        let vector = |signature: &str| {
            headers(&[
                (SCHEME.id_header, VECTOR_ID),
                (SCHEME.timestamp_header, &VECTOR_TIMESTAMP.to_string()),
                (SCHEME.signature_header, signature),
            ])
        };
        let verified = v
            .verify(&vector(V1A_SIGNATURE), VECTOR_BODY.as_bytes())
            .expect("v1a verifies");
        assert_eq!(verified.secret_index, 1);
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let signed = sign_v1a(
            SCHEME,
            &key,
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_BODY.as_bytes(),
        );
        assert_eq!(signed[2].1, V1A_SIGNATURE);
        assert_eq!(
            v.verify(&vector(V1A_SIGNATURE), b"{\"test\": 2432232315}"),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            v.verify(
                &vector(&flip_char(V1A_SIGNATURE, 10)),
                VECTOR_BODY.as_bytes()
            ),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            v.verify(&vector("v1a,AAAA"), VECTOR_BODY.as_bytes()),
            Err(Rejection::SignatureMalformed)
        );
        // Both kinds in one header, as a sender rotating to v1a would send.
        let both = format!("{VECTOR_SIGNATURE} {V1A_SIGNATURE}");
        assert_eq!(
            v.verify(&vector(&both), VECTOR_BODY.as_bytes())
                .map(|v| v.secret_index),
            Ok(0)
        );
        // A public key alone cannot check an HMAC signature.
        let public_only = StandardWebhooksVerifier::with_clock(
            SCHEME,
            secrets(&[V1A_PUBLIC]),
            DEFAULT_TOLERANCE_SECS,
            vector_clock,
        )
        .expect("verifier");
        assert_eq!(
            public_only.verify(&vector(VECTOR_SIGNATURE), VECTOR_BODY.as_bytes()),
            Err(Rejection::SignatureMismatch)
        );
        for bad in [
            "whpk_AAAA",
            "whpk_!!",
            "whsk_6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=",
        ] {
            assert!(
                StandardWebhooksVerifier::new(secrets(&[bad]), 300).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn standard_webhooks() {
        published_vector(SCHEME);
        round_trip_and_lists(SCHEME);
        candidate_lists(SCHEME);
        tampering(SCHEME);
        missing_and_malformed(SCHEME);
        timestamps(SCHEME);
        rotation_and_bad_keys(SCHEME);
        assert_eq!(verifier(SCHEME, &[SECRET]).provider(), "standard-webhooks");
    }
}
