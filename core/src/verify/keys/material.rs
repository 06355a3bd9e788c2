//! Key material as providers publish it, parsed by small pure functions: an
//! X.509 certificate in PEM (AWS SNS, PayPal) reduced to its RSA public key,
//! and a JWK Set (Google, Microsoft Entra, a `generic` endpoint's
//! `jwksUrl`) reduced to its RSA and P-256 keys by `kid`. Certificates are
//! RSA only: it is what AWS and PayPal sign with.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

/// An RSA public key as PKCS#1 `RSAPublicKey` DER, what ring verifies with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaKey(Vec<u8>);

/// The RSA PKCS#1 v1.5 digests the providers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaDigest {
    /// SHA-1: AWS SNS `SignatureVersion` 1 only.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl RsaKey {
    /// Whether `signature` is this key's RSA PKCS#1 v1.5 signature of
    /// `message` (keys of 2048 to 8192 bits).
    pub fn verifies(&self, digest: RsaDigest, message: &[u8], signature: &[u8]) -> bool {
        let algorithm = match digest {
            RsaDigest::Sha1 => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            RsaDigest::Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(algorithm, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

/// One signing key of a JWK Set: RSA (`RS256`) or P-256 (`ES256`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// Its key id, matched against a JWT's `kid`.
    pub kid: String,
    key: JwkKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum JwkKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The SEC1 uncompressed point `04 || x || y`, checked to be on the
    /// curve when the set was parsed.
    P256(Vec<u8>),
}

impl Jwk {
    /// Whether `signature` is this key's RS256 signature of `message`
    /// (never, for a P-256 key: a token cannot pick the algorithm by
    /// picking a key).
    pub fn verifies_rs256(&self, message: &[u8], signature: &[u8]) -> bool {
        let JwkKey::Rsa { n, e } = &self.key else {
            return false;
        };
        RsaPublicKeyComponents { n, e }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
            .is_ok()
    }

    /// Whether `signature` (JWS form: `R || S`, 32 bytes each, RFC 7518
    /// §3.4) is this key's ES256 signature of `message` (never, for an RSA
    /// key).
    pub fn verifies_es256(&self, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        let JwkKey::P256(point) = &self.key else {
            return false;
        };
        let (Ok(key), Ok(signature)) = (
            p256::ecdsa::VerifyingKey::from_sec1_bytes(point),
            p256::ecdsa::Signature::from_slice(signature),
        ) else {
            return false;
        };
        key.verify(message, &signature).is_ok()
    }
}

/// The DER of every `-----BEGIN <label>-----` block of `text`, in order.
pub fn pem_blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let Some(stop) = after.find(&end) else {
            break;
        };
        let base64: String = after[..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        if let Ok(der) = STANDARD.decode(base64) {
            blocks.push(der);
        }
        rest = &after[stop + end.len()..];
    }
    blocks
}

/// One DER element: its tag, its contents and what follows it. Only the
/// definite-length forms DER allows.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

const SEQUENCE: u8 = 0x30;
const BIT_STRING: u8 = 0x03;
/// `rsaEncryption`, 1.2.840.113549.1.1.1, as a DER OID.
const RSA_ENCRYPTION_OID: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// The RSA public key of an X.509 certificate (DER): `tbsCertificate`'s
/// `subjectPublicKeyInfo`, whose algorithm must be `rsaEncryption`. The
/// certificate's own signature is not checked: it was fetched over HTTPS
/// from the provider's host, which is what vouches for it (as in AWS's and
/// PayPal's SDK validators).
pub fn rsa_key_of_certificate(der: &[u8]) -> Option<RsaKey> {
    let (SEQUENCE, certificate, _) = element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(certificate)? else {
        return None;
    };
    let mut fields = tbs;
    // [0] EXPLICIT version, present from v2 on.
    if fields.first() == Some(&0xa0) {
        fields = element(fields)?.2;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        fields = element(fields)?.2;
    }
    let (SEQUENCE, spki, _) = element(fields)? else {
        return None;
    };
    rsa_key_of_spki(spki)
}

/// The RSA key of a `SubjectPublicKeyInfo`'s contents, whose algorithm must
/// be `rsaEncryption`.
fn rsa_key_of_spki(spki: &[u8]) -> Option<RsaKey> {
    let (SEQUENCE, algorithm, rest) = element(spki)? else {
        return None;
    };
    if !algorithm.starts_with(&RSA_ENCRYPTION_OID) {
        return None;
    }
    let (BIT_STRING, bits, _) = element(rest)? else {
        return None;
    };
    let (0, key) = bits.split_first()? else {
        return None;
    };
    Some(RsaKey(key.to_vec()))
}

/// The RSA key of the first certificate in a PEM text (PayPal sends the
/// signing certificate followed by its chain).
pub fn rsa_key_of_pem(text: &[u8]) -> Option<RsaKey> {
    let text = std::str::from_utf8(text).ok()?;
    pem_blocks(text, "CERTIFICATE")
        .first()
        .and_then(|der| rsa_key_of_certificate(der))
}

/// The RSA key of a PEM public key (`-----BEGIN PUBLIC KEY-----`, what
/// `openssl pkey -pubout` writes).
pub fn rsa_key_of_public_key_pem(text: &[u8]) -> Option<RsaKey> {
    let text = std::str::from_utf8(text).ok()?;
    let der = pem_blocks(text, "PUBLIC KEY").into_iter().next()?;
    let (SEQUENCE, spki, _) = element(&der)? else {
        return None;
    };
    rsa_key_of_spki(spki)
}

/// The most keys a JWK Set may hold; Google's has two or three,
/// Microsoft's about ten.
const MAX_JWKS_KEYS: usize = 32;

/// The signing keys of a JWK Set (`{"keys": [{"kty": "RSA", "kid", "n",
/// "e"}, {"kty": "EC", "crv": "P-256", "kid", "x", "y"}, ...]}`); keys
/// without a `kid`, of other types, curves or uses, or whose `alg` is not
/// `RS256` / `ES256` are left out. `None` if it is not a JWK Set or has no
/// usable key.
pub fn parse_jwks(body: &[u8]) -> Option<Vec<Jwk>> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let keys: Vec<Jwk> = json
        .get("keys")?
        .as_array()?
        .iter()
        .take(MAX_JWKS_KEYS)
        .filter_map(|key| {
            let text = |name: &str| key.get(name).and_then(serde_json::Value::as_str);
            let bytes = |name: &str| URL_SAFE_NO_PAD.decode(text(name)?).ok();
            if text("use").is_some_and(|u| u != "sig") {
                return None;
            }
            let key = match text("kty")? {
                "RSA" if text("alg").is_none_or(|a| a == "RS256") => JwkKey::Rsa {
                    n: bytes("n")?,
                    e: bytes("e")?,
                },
                "EC" if text("crv")? == "P-256" && text("alg").is_none_or(|a| a == "ES256") => {
                    let (x, y) = (bytes("x")?, bytes("y")?);
                    if x.len() != 32 || y.len() != 32 {
                        return None;
                    }
                    let mut point = Vec::with_capacity(65);
                    point.push(0x04);
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    // Not on the curve: no key, rather than a key that
                    // verifies nothing.
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).ok()?;
                    JwkKey::P256(point)
                }
                _ => return None,
            };
            Some(Jwk {
                kid: text("kid")?.to_owned(),
                key,
            })
        })
        .collect();
    (!keys.is_empty()).then_some(keys)
}

/// An RSA private key for the `sign` helpers, from PKCS#8 PEM
/// (`-----BEGIN PRIVATE KEY-----`, what `openssl genpkey` writes).
pub fn rsa_signing_key(pem: &str) -> Option<ring::signature::RsaKeyPair> {
    let der = pem_blocks(pem, "PRIVATE KEY").into_iter().next()?;
    ring::signature::RsaKeyPair::from_pkcs8(&der).ok()
}

/// The RSA PKCS#1 v1.5 SHA-256 signature of `message` with `key`.
pub fn rsa_sha256_sign(key: &ring::signature::RsaKeyPair, message: &[u8]) -> Vec<u8> {
    let mut signature = vec![0u8; key.public().modulus_len()];
    let rng = ring::rand::SystemRandom::new();
    // Fails only if the buffer has the wrong size, which it has not.
    match key.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut signature) {
        Ok(()) => signature,
        Err(_) => Vec::new(),
    }
}

/// The public half of `key` as a JWK with `kid`, as Google publishes them.
pub fn jwk_json(key: &ring::signature::RsaKeyPair, kid: &str) -> serde_json::Value {
    use ring::signature::KeyPair;
    let public = key.public_key();
    let components: RsaPublicKeyComponents<Vec<u8>> = public.into();
    serde_json::json!({
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(&components.n),
        "e": URL_SAFE_NO_PAD.encode(&components.e),
    })
}

/// A P-256 public key as a JWK with `kid`, as Microsoft and most OIDC
/// providers publish EC keys.
pub fn ec_jwk_json(key: &p256::ecdsa::VerifyingKey, kid: &str) -> serde_json::Value {
    let point = key.to_encoded_point(false);
    serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "alg": "ES256",
        "use": "sig",
        "kid": kid,
        "x": point.x().map(|x| URL_SAFE_NO_PAD.encode(x)).unwrap_or_default(),
        "y": point.y().map(|y| URL_SAFE_NO_PAD.encode(y)).unwrap_or_default(),
    })
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! Fixed test RSA keys and self-signed certificates, made with
    //! `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out signer_key.pem`
    //! and `openssl req -x509 -new -key signer_key.pem -subj "/CN=hookwarden test signer"
    //! -days 36500 -sha256 -out signer_cert.pem` (likewise `other_*`),
    //! `openssl pkey -in signer_key.pem -pubout -out signer_pub.pem`, and a
    //! P-256 pair: `openssl genpkey -algorithm EC -pkeyopt
    //! ec_paramgen_curve:P-256 -out ec_key.pem`, `openssl pkey -in ec_key.pem
    //! -pubout -out ec_pub.pem`. Test material only: never trusted by anything.

    pub(crate) const SIGNER_KEY: &str = include_str!("testdata/signer_key.pem");
    pub(crate) const SIGNER_CERT: &str = include_str!("testdata/signer_cert.pem");
    pub(crate) const OTHER_KEY: &str = include_str!("testdata/other_key.pem");
    pub(crate) const OTHER_CERT: &str = include_str!("testdata/other_cert.pem");
    pub(crate) const SIGNER_PUB: &str = include_str!("testdata/signer_pub.pem");
    pub(crate) const EC_KEY: &str = include_str!("testdata/ec_key.pem");
    pub(crate) const EC_PUB: &str = include_str!("testdata/ec_pub.pem");

    pub(crate) fn signer() -> ring::signature::RsaKeyPair {
        super::rsa_signing_key(SIGNER_KEY).expect("test key")
    }

    pub(crate) fn other() -> ring::signature::RsaKeyPair {
        super::rsa_signing_key(OTHER_KEY).expect("test key")
    }

    pub(crate) fn ec_signer() -> p256::ecdsa::SigningKey {
        use p256::pkcs8::DecodePrivateKey as _;
        let der = super::pem_blocks(EC_KEY, "PRIVATE KEY")
            .into_iter()
            .next()
            .expect("pem");
        p256::ecdsa::SigningKey::from_pkcs8_der(&der).expect("test key")
    }
}

#[cfg(test)]
mod tests {
    use super::test_keys::*;
    use super::*;

    #[test]
    fn a_certificate_yields_the_key_that_signed() {
        let key = rsa_key_of_pem(SIGNER_CERT.as_bytes()).expect("key");
        let signature = rsa_sha256_sign(&signer(), b"message");
        assert!(key.verifies(RsaDigest::Sha256, b"message", &signature));
        assert!(!key.verifies(RsaDigest::Sha256, b"messagf", &signature));
        assert!(!key.verifies(RsaDigest::Sha1, b"message", &signature));
        let other = rsa_key_of_pem(OTHER_CERT.as_bytes()).expect("key");
        assert!(!other.verifies(RsaDigest::Sha256, b"message", &signature));
        // The first certificate of a chain counts.
        let chain = format!("{SIGNER_CERT}{OTHER_CERT}");
        assert_eq!(rsa_key_of_pem(chain.as_bytes()), Some(key));
    }

    #[test]
    fn garbage_is_no_key() {
        for bad in [
            &b""[..],
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
            SIGNER_KEY.as_bytes(),
            &[0xff, 0xfe],
        ] {
            assert_eq!(rsa_key_of_pem(bad), None);
        }
        // Truncated DER at every length.
        let der = pem_blocks(SIGNER_CERT, "CERTIFICATE").remove(0);
        for len in 0..der.len() {
            assert_eq!(rsa_key_of_certificate(&der[..len]), None, "{len}");
        }
        // An EC certificate is not an RSA key.
        let ec = rcgen::generate_simple_self_signed(vec!["x".into()]).expect("cert");
        assert_eq!(rsa_key_of_certificate(ec.cert.der()), None);
    }

    #[test]
    fn jwks_round_trip_and_filters() {
        let set = serde_json::json!({"keys": [
            jwk_json(&signer(), "k1"),
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
        ]});
        let keys = parse_jwks(set.to_string().as_bytes()).expect("keys");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid, "k1");
        let signature = rsa_sha256_sign(&signer(), b"a.b");
        assert!(keys[0].verifies_rs256(b"a.b", &signature));
        assert!(!keys[0].verifies_rs256(b"a.c", &signature));
        for bad in [&b"{}"[..], b"[]", b"{\"keys\":[]}", b"not json"] {
            assert_eq!(parse_jwks(bad), None);
        }
    }

    #[test]
    fn p256_jwks_verify_es256_only() {
        use p256::ecdsa::signature::Signer as _;
        let ec = ec_signer();
        let set = serde_json::json!({"keys": [
            ec_jwk_json(ec.verifying_key(), "ec1"),
            jwk_json(&signer(), "rsa1"),
            // Off the curve, another curve, an RSA key claiming ES256.
            {"kty": "EC", "kid": "bad", "crv": "P-256",
             "x": URL_SAFE_NO_PAD.encode([1u8; 32]), "y": URL_SAFE_NO_PAD.encode([2u8; 32])},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "mixed", "alg": "ES256", "n": "AQAB", "e": "AQAB"},
        ]});
        let keys = parse_jwks(set.to_string().as_bytes()).expect("keys");
        let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["ec1", "rsa1"]);
        let signature: p256::ecdsa::Signature = ec.sign(b"a.b");
        let signature = signature.to_bytes();
        assert!(keys[0].verifies_es256(b"a.b", &signature));
        assert!(!keys[0].verifies_es256(b"a.c", &signature));
        assert!(
            !keys[0].verifies_rs256(b"a.b", &signature),
            "not an RSA key"
        );
        let rsa = rsa_sha256_sign(&signer(), b"a.b");
        assert!(keys[1].verifies_rs256(b"a.b", &rsa));
        assert!(!keys[1].verifies_es256(b"a.b", &rsa), "not a P-256 key");
        assert!(!keys[0].verifies_es256(b"a.b", &signature[..63]));
    }
}
