//! The signing certificates AWS SNS and PayPal publish, checked as their own
//! SDKs' validators check them before their key is believed.
//!
//! What the providers' validators do (read from their sources):
//!
//! - AWS SDK for Java v2, `SnsMessageManager` (`CertificateRetriever`,
//!   `SnsHostProvider`): the certificate must be within its validity dates
//!   and be valid for the host name `sns.amazonaws.com` (a few regions and
//!   partitions use `sns-signing.<region>.amazonaws.com`,
//!   `sns-<region>.amazonaws.com.cn` or `sns-us-gov-west-1.amazonaws.com`).
//!   It does not check a chain: the PEM at `SigningCertURL` holds the leaf
//!   only (AWS's own test copy, `SimpleNotificationService-7506a1e3….pem`,
//!   is one certificate issued by the intermediate `Amazon RSA 2048 M01`,
//!   which is in no system trust store), so trust in it comes from fetching
//!   it over HTTPS from the SNS host, as the key fetcher does.
//! - PayPal's SDKs (Java `SSLUtil.validateCertificateChain`, Python
//!   `WebhookEvent._verify_certificate`): the certificate must chain to a
//!   trusted root (they ship DigiCert's; we use the system's, which include
//!   them), be within its validity dates, and name
//!   `messageverificationcerts.paypal.com` (`.sandbox.paypal.com` for the
//!   sandbox).
//!
//! So both are checked for validity (at the verifier's clock) and subject
//! (the certificate's DNS names, as `rustls-webpki` reads them for TLS),
//! and PayPal's also for its chain when the fetched PEM carries
//! intermediates, to the roots the fetcher trusts for TLS (the system's: a
//! custom CA comes in through `SSL_CERT_FILE`, as for every fetch). A
//! PayPal file with the leaf alone is checked as SNS's is (see
//! [`signing_key`]).

use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use webpki::{ALL_VERIFICATION_ALGS, EndEntityCert, KeyUsage};

use super::material::{pem_blocks, rsa_key_of_certificate};
use super::{KeyError, RsaKey};

/// Whose signing certificate a URL serves: what it must name and whether
/// its chain is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signer {
    /// AWS SNS (`SigningCertURL`): validity and name; the leaf only.
    AwsSns,
    /// PayPal (`PAYPAL-CERT-URL`): validity, name and chain.
    Paypal,
}

/// Why a fetched certificate is not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertificateFault {
    /// Its validity ended before now.
    #[error("the signing certificate has expired")]
    Expired,
    /// Its validity starts after now.
    #[error("the signing certificate is not valid yet")]
    NotYetValid,
    /// It is not for the name the provider signs as.
    #[error("the signing certificate names another subject")]
    WrongSubject,
    /// It does not chain to a trusted root (self-signed, an unknown CA, a
    /// broken or misused chain).
    #[error("the signing certificate does not chain to a trusted root")]
    Untrusted,
}

/// The names `signer`'s certificate served from `host` may be for.
fn expected_names(signer: Signer, host: &str) -> Vec<String> {
    match signer {
        Signer::AwsSns => {
            let (region, china) = match host
                .strip_prefix("sns.")
                .and_then(|rest| rest.strip_suffix(".amazonaws.com.cn"))
            {
                Some(region) => (region, true),
                None => (
                    host.strip_prefix("sns.")
                        .and_then(|rest| rest.strip_suffix(".amazonaws.com"))
                        .unwrap_or_default(),
                    false,
                ),
            };
            let mut names = vec![
                "sns.amazonaws.com".to_owned(),
                format!("sns-signing.{region}.amazonaws.com"),
            ];
            if china {
                names.push(format!("sns-{region}.amazonaws.com.cn"));
            }
            if region.starts_with("us-gov-") {
                names.push("sns-us-gov-west-1.amazonaws.com".to_owned());
            }
            names
        }
        Signer::Paypal if host.contains(".sandbox.") => {
            vec!["messageverificationcerts.sandbox.paypal.com".to_owned()]
        }
        Signer::Paypal => vec!["messageverificationcerts.paypal.com".to_owned()],
    }
}

/// The RSA key of the first certificate of `pem` (the rest are its
/// intermediates), once it passed `signer`'s checks at `now` (Unix
/// seconds) against `roots`; `host` is where it was fetched from. No RSA
/// certificate at all is no usable key ([`KeyError::Unavailable`], as for
/// any other answer without one), a failed check
/// [`KeyError::Certificate`].
pub fn signing_key(
    pem: &[u8],
    signer: Signer,
    host: &str,
    roots: &[TrustAnchor<'_>],
    now: i64,
) -> Result<RsaKey, KeyError> {
    const NO_KEY: KeyError = KeyError::Unavailable("no usable key");
    let text = std::str::from_utf8(pem).map_err(|_| NO_KEY)?;
    let mut certificates = pem_blocks(text, "CERTIFICATE").into_iter();
    let leaf = certificates.next().ok_or(NO_KEY)?;
    let key = rsa_key_of_certificate(&leaf).ok_or(NO_KEY)?;
    let intermediates: Vec<CertificateDer<'_>> = certificates.map(CertificateDer::from).collect();
    let leaf = CertificateDer::from(leaf);
    let certificate = EndEntityCert::try_from(&leaf).map_err(|_| NO_KEY)?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now).unwrap_or(0),
    ));
    // The leaf's own properties (validity dates, key usage) are checked
    // before any issuer is looked for, so an unknown issuer means they
    // passed.
    let chained = certificate.verify_for_usage(
        ALL_VERIFICATION_ALGS,
        roots,
        &intermediates,
        time,
        KeyUsage::server_auth(),
        None,
        None,
    );
    match chained {
        Ok(_) => {}
        Err(webpki::Error::CertExpired { .. }) => return Err(CertificateFault::Expired.into()),
        Err(webpki::Error::CertNotValidYet { .. }) => {
            return Err(CertificateFault::NotYetValid.into());
        }
        // SNS publishes the leaf alone (see the module's documentation).
        // PayPal's file is expected to carry its intermediates, but its
        // Java SDK ships an intermediate as its trust anchor, so a file
        // with the leaf alone is possible and not confirmed either way
        // without a real download: a lone leaf is then believed as SNS's
        // is (validity and name; the HTTPS fetch from PayPal's host vouches
        // for it), rather than refusing every real delivery. Intermediates
        // that are given must lead to a trusted root.
        Err(webpki::Error::UnknownIssuer)
            if signer == Signer::AwsSns || intermediates.is_empty() => {}
        Err(_) => return Err(CertificateFault::Untrusted.into()),
    }
    let named = expected_names(signer, host).into_iter().any(|name| {
        ServerName::try_from(name)
            .is_ok_and(|name| certificate.verify_is_valid_for_subject_name(&name).is_ok())
    });
    if !named {
        return Err(CertificateFault::WrongSubject.into());
    }
    Ok(key)
}

#[cfg(test)]
pub(crate) mod test_ca {
    //! Certificates of a test CA for the signing keys of
    //! `material::test_keys`, with chosen names and dates.

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    /// A test CA: its certificate and key.
    pub(crate) struct TestCa {
        params: CertificateParams,
        key: KeyPair,
        /// The CA certificate in DER, a trust anchor for tests.
        pub(crate) der: rustls::pki_types::CertificateDer<'static>,
    }

    impl TestCa {
        /// A fresh self-signed CA valid from 2000 to 2100.
        pub(crate) fn new(name: &str) -> Self {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(Vec::new()).expect("params");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2100, 1, 1);
            let der = params.self_signed(&key).expect("ca").der().clone();
            Self { params, key, der }
        }

        /// An intermediate CA issued by this one.
        pub(crate) fn intermediate(&self, name: &str) -> Self {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(Vec::new()).expect("params");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2100, 1, 1);
            let issuer = Issuer::from_params(&self.params, &self.key);
            let der = params.signed_by(&key, &issuer).expect("cert").der().clone();
            Self { params, key, der }
        }

        /// A certificate for `name`, valid from `not_before` to `not_after`
        /// (years), of the RSA key `subject_key_pem` (PKCS#8).
        pub(crate) fn issue(
            &self,
            subject_key_pem: &str,
            name: &str,
            not_before: i32,
            not_after: i32,
        ) -> rustls::pki_types::CertificateDer<'static> {
            let subject = KeyPair::from_pem(subject_key_pem).expect("RSA key");
            let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.not_before = rcgen::date_time_ymd(not_before, 1, 1);
            params.not_after = rcgen::date_time_ymd(not_after, 1, 1);
            let issuer = Issuer::from_params(&self.params, &self.key);
            params
                .signed_by(&subject, &issuer)
                .expect("cert")
                .der()
                .clone()
        }
    }

    impl TestCa {
        /// A TLS server certificate for `hosts` and its key.
        pub(crate) fn tls(
            &self,
            hosts: &[&str],
        ) -> (
            rustls::pki_types::CertificateDer<'static>,
            rustls::pki_types::PrivateKeyDer<'static>,
        ) {
            let key = KeyPair::generate().expect("key");
            let params =
                CertificateParams::new(hosts.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())
                    .expect("params");
            let issuer = Issuer::from_params(&self.params, &self.key);
            let cert = params.signed_by(&key, &issuer).expect("cert");
            (
                cert.der().clone(),
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
        }
    }

    /// `certificates` as one PEM text, in order.
    pub(crate) fn pem(certificates: &[&rustls::pki_types::CertificateDer<'_>]) -> String {
        certificates.iter().map(|der| pem_of(der)).collect()
    }

    fn pem_of(der: &[u8]) -> String {
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in text.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::RsaDigest;
    use super::super::material::test_keys::*;
    use super::test_ca::{TestCa, pem};
    use super::*;

    const SNS_HOST: &str = "sns.us-east-1.amazonaws.com";
    const PAYPAL_HOST: &str = "api-m.paypal.com";
    const PAYPAL_NAME: &str = "messageverificationcerts.paypal.com";
    /// 2026-06-01, inside the test certificates' 2020–2030 validity.
    const NOW: i64 = 1_780_272_000;

    fn anchors(ca: &TestCa) -> Vec<TrustAnchor<'static>> {
        vec![
            webpki::anchor_from_trusted_cert(&ca.der)
                .expect("anchor")
                .to_owned(),
        ]
    }

    fn signs_as_signer(key: &RsaKey) -> bool {
        let signature = material::rsa_sha256_sign(&signer(), b"message");
        key.verifies(RsaDigest::Sha256, b"message", &signature)
    }

    use super::super::material;

    /// What a forger makes: the right name, their own RSA key, no issuer.
    fn self_signed(key_pem: &str, name: &str) -> rustls::pki_types::CertificateDer<'static> {
        let key = rcgen::KeyPair::from_pem(key_pem).expect("RSA key");
        rcgen::CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert")
            .der()
            .clone()
    }

    #[test]
    fn a_paypal_chain_to_a_trusted_root_yields_its_key() {
        let root = TestCa::new("test root");
        let intermediate = root.intermediate("test intermediate");
        let leaf = intermediate.issue(SIGNER_KEY, PAYPAL_NAME, 2020, 2030);
        let chain = pem(&[&leaf, &intermediate.der]);
        let key = signing_key(
            chain.as_bytes(),
            Signer::Paypal,
            PAYPAL_HOST,
            &anchors(&root),
            NOW,
        )
        .expect("trusted");
        assert!(signs_as_signer(&key));
        // The sandbox certificate name for the sandbox hosts, not the live one.
        let sandbox = intermediate.issue(
            SIGNER_KEY,
            "messageverificationcerts.sandbox.paypal.com",
            2020,
            2030,
        );
        let sandbox = pem(&[&sandbox, &intermediate.der]);
        for (host, expected) in [
            ("api-m.sandbox.paypal.com", Ok(())),
            (
                PAYPAL_HOST,
                Err(KeyError::Certificate(CertificateFault::WrongSubject)),
            ),
        ] {
            assert_eq!(
                signing_key(
                    sandbox.as_bytes(),
                    Signer::Paypal,
                    host,
                    &anchors(&root),
                    NOW
                )
                .map(drop),
                expected,
                "{host}"
            );
        }
    }

    #[test]
    fn paypal_certificates_are_refused_for_their_specific_fault() {
        let root = TestCa::new("test root");
        let intermediate = root.intermediate("test intermediate");
        let other_intermediate = TestCa::new("another root").intermediate("its intermediate");
        let check = |pem: String, roots: &[TrustAnchor<'_>], now: i64| {
            signing_key(pem.as_bytes(), Signer::Paypal, PAYPAL_HOST, roots, now).map(drop)
        };
        let good = intermediate.issue(SIGNER_KEY, PAYPAL_NAME, 2020, 2030);
        let cases = [
            (
                "expired",
                pem(&[
                    &intermediate.issue(SIGNER_KEY, PAYPAL_NAME, 2010, 2020),
                    &intermediate.der,
                ]),
                NOW,
                CertificateFault::Expired,
            ),
            (
                "not yet valid",
                pem(&[
                    &intermediate.issue(SIGNER_KEY, PAYPAL_NAME, 2028, 2030),
                    &intermediate.der,
                ]),
                NOW,
                CertificateFault::NotYetValid,
            ),
            (
                "checked at the caller's clock",
                pem(&[&good, &intermediate.der]),
                1_262_304_000, // 2010
                CertificateFault::NotYetValid,
            ),
            (
                "another name",
                pem(&[
                    &intermediate.issue(SIGNER_KEY, "www.paypal.com", 2020, 2030),
                    &intermediate.der,
                ]),
                NOW,
                CertificateFault::WrongSubject,
            ),
            (
                "an unknown root",
                pem(&[
                    &other_intermediate.issue(SIGNER_KEY, PAYPAL_NAME, 2020, 2030),
                    &other_intermediate.der,
                ]),
                NOW,
                CertificateFault::Untrusted,
            ),
            (
                "self-signed in PayPal's name, claiming an intermediate",
                pem(&[&self_signed(SIGNER_KEY, PAYPAL_NAME), &intermediate.der]),
                NOW,
                CertificateFault::Untrusted,
            ),
            (
                "the leaf alone, expired",
                pem(&[&intermediate.issue(SIGNER_KEY, PAYPAL_NAME, 2010, 2020)]),
                NOW,
                CertificateFault::Expired,
            ),
            (
                "the leaf alone, another name",
                pem(&[&intermediate.issue(SIGNER_KEY, "www.paypal.com", 2020, 2030)]),
                NOW,
                CertificateFault::WrongSubject,
            ),
        ];
        for (case, pem, now, fault) in cases {
            assert_eq!(
                check(pem, &anchors(&root), now),
                Err(KeyError::Certificate(fault)),
                "{case}"
            );
        }
        // The leaf alone is checked as SNS's is: its dates and name (above),
        // not its issuer, which PayPal may leave out; a self-signed one in
        // PayPal's name then passes too, as for SNS: the HTTPS fetch from
        // PayPal's own host is what vouches for it.
        assert_eq!(check(pem(&[&good]), &anchors(&root), NOW), Ok(()));
        assert_eq!(
            check(
                pem(&[&self_signed(SIGNER_KEY, PAYPAL_NAME)]),
                &anchors(&root),
                NOW
            ),
            Ok(())
        );
        // No certificate at all is no key, as any answer without one.
        assert_eq!(
            check("garbage".to_owned(), &anchors(&root), NOW),
            Err(KeyError::Unavailable("no usable key"))
        );
        // A CA's own certificate served as the signer's is no leaf.
        let ca_as_leaf = pem(&[&intermediate.der]);
        assert!(check(ca_as_leaf, &anchors(&root), NOW).is_err());
    }

    #[test]
    fn an_sns_leaf_is_checked_for_dates_and_name_without_a_chain() {
        // As SNS serves it: the leaf alone, its issuer not a root.
        let root = TestCa::new("test root");
        let intermediate = root.intermediate("Amazon RSA 2048 M01 (test)");
        let no_roots: &[TrustAnchor<'_>] = &[];
        let check = |der: &rustls::pki_types::CertificateDer<'_>, host: &str, now: i64| {
            signing_key(pem(&[der]).as_bytes(), Signer::AwsSns, host, no_roots, now).map(drop)
        };
        let good = intermediate.issue(SIGNER_KEY, "sns.amazonaws.com", 2020, 2030);
        assert_eq!(check(&good, SNS_HOST, NOW), Ok(()));
        let key = signing_key(
            pem(&[&good]).as_bytes(),
            Signer::AwsSns,
            SNS_HOST,
            no_roots,
            NOW,
        )
        .expect("key");
        assert!(signs_as_signer(&key));
        let regional = intermediate.issue(
            SIGNER_KEY,
            "sns-signing.ap-east-1.amazonaws.com",
            2020,
            2030,
        );
        assert_eq!(check(&regional, "sns.ap-east-1.amazonaws.com", NOW), Ok(()));
        assert_eq!(
            check(&regional, SNS_HOST, NOW),
            Err(KeyError::Certificate(CertificateFault::WrongSubject)),
            "another region's signing name"
        );
        let china = intermediate.issue(SIGNER_KEY, "sns-cn-north-1.amazonaws.com.cn", 2020, 2030);
        assert_eq!(
            check(&china, "sns.cn-north-1.amazonaws.com.cn", NOW),
            Ok(())
        );
        for (case, der, fault) in [
            (
                "expired",
                intermediate.issue(SIGNER_KEY, "sns.amazonaws.com", 2010, 2020),
                CertificateFault::Expired,
            ),
            (
                "not yet valid",
                intermediate.issue(SIGNER_KEY, "sns.amazonaws.com", 2028, 2030),
                CertificateFault::NotYetValid,
            ),
            (
                "another name",
                intermediate.issue(SIGNER_KEY, "s3.amazonaws.com", 2020, 2030),
                CertificateFault::WrongSubject,
            ),
            (
                "a name ending like SNS's",
                intermediate.issue(SIGNER_KEY, "evil-sns.amazonaws.com", 2020, 2030),
                CertificateFault::WrongSubject,
            ),
        ] {
            assert_eq!(
                check(&der, SNS_HOST, NOW),
                Err(KeyError::Certificate(fault)),
                "{case}"
            );
        }
        // A self-signed one passes too: for SNS the chain is vouched for
        // by the HTTPS fetch from AWS's host only, as in AWS's validator.
        assert_eq!(
            check(&self_signed(SIGNER_KEY, "sns.amazonaws.com"), SNS_HOST, NOW),
            Ok(())
        );
        // Where a chain is given and it is to a known root, a broken
        // signature is still refused.
        let forged = TestCa::new("Amazon RSA 2048 M01 (test)").issue(
            SIGNER_KEY,
            "sns.amazonaws.com",
            2020,
            2030,
        );
        let with_root = anchors(&root);
        assert_eq!(
            signing_key(
                pem(&[&forged, &intermediate.der]).as_bytes(),
                Signer::AwsSns,
                SNS_HOST,
                &with_root,
                NOW
            ),
            Err(KeyError::Certificate(CertificateFault::Untrusted))
        );
    }

    /// AWS's published signing certificate (aws-sdk-java-v2,
    /// `services-custom/sns-message-manager/src/test/resources/software/amazon/awssdk/messagemanager/sns/internal/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem`):
    /// the leaf alone, `CN=sns.amazonaws.com` with that DNS name, issued by
    /// `Amazon RSA 2048 M01`, valid 2025-11-10 to 2026-10-14. The message
    /// it signed is checked in `aws_sns`'s tests.
    #[test]
    fn aws_published_sns_certificate_passes_within_its_dates() {
        let cert = include_bytes!("testdata/aws_sns_7506a1e3.pem");
        let check =
            |host: &str, now: i64| signing_key(cert, Signer::AwsSns, host, &[], now).map(drop);
        // 2026-03-06T20:00:26Z, when AWS's test message was sent.
        assert_eq!(check("sns.us-west-2.amazonaws.com", 1_772_827_226), Ok(()));
        assert_eq!(
            check("sns.us-west-2.amazonaws.com", 1_800_000_000),
            Err(KeyError::Certificate(CertificateFault::Expired)),
            "2027"
        );
        assert_eq!(
            check("sns.us-west-2.amazonaws.com", 1_735_689_600),
            Err(KeyError::Certificate(CertificateFault::NotYetValid)),
            "2025-01-01"
        );
        // As PayPal's it fails twice over: no chain, another name.
        assert!(signing_key(cert, Signer::Paypal, PAYPAL_HOST, &[], 1_772_827_226).is_err());
    }
}
