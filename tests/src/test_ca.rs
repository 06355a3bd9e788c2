//! [`TestCa`]: a certificate authority for tests, whose certificates the
//! loopback key and list servers serve: their TLS certificates, and the
//! signing certificates (with chosen names and dates) that stand in for
//! AWS SNS's and PayPal's. A fetcher given its root trusts both, as a
//! receiver trusts the system's roots for both.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A CA (a root, or an intermediate of one) with its key.
#[derive(Debug)]
pub struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    certificate: rcgen::Certificate,
}

/// A CA's certificate parameters named `name`, valid 2000 to 2100.
fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    params
}

impl TestCa {
    /// A fresh self-signed root named `name`.
    ///
    /// # Panics
    /// When rcgen fails (a test failure).
    pub fn new(name: &str) -> Self {
        let params = ca_params(name);
        let key = KeyPair::generate().expect("key");
        let certificate = params.self_signed(&key).expect("root");
        Self {
            params,
            key,
            certificate,
        }
    }

    /// An intermediate CA named `name`, issued by this one.
    ///
    /// # Panics
    /// When rcgen fails (a test failure).
    pub fn intermediate(&self, name: &str) -> Self {
        let params = ca_params(name);
        let key = KeyPair::generate().expect("key");
        let certificate = params
            .signed_by(&key, &self.issuer())
            .expect("intermediate");
        Self {
            params,
            key,
            certificate,
        }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// This CA's certificate, DER: a trust anchor.
    pub fn der(&self) -> &CertificateDer<'static> {
        self.certificate.der()
    }

    /// This CA's certificate, PEM.
    pub fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// Roots holding only this CA.
    ///
    /// # Panics
    /// Never for a certificate rcgen made.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der().clone()).expect("root");
        roots
    }

    /// A TLS server certificate for `hosts`, and its key.
    ///
    /// # Panics
    /// When rcgen fails (a test failure).
    pub fn tls(&self, hosts: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("key");
        let params =
            CertificateParams::new(hosts.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())
                .expect("params");
        let certificate = params.signed_by(&key, &self.issuer()).expect("cert");
        (
            certificate.der().clone(),
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
    }

    /// A signing certificate, PEM, for the DNS name (and common name)
    /// `name`, valid from 1 January `from` to 1 January `until`, of the
    /// RSA key `key_pem` (PKCS#8), issued by this CA.
    ///
    /// # Panics
    /// When the key is not a PKCS#8 key or rcgen fails (a test failure).
    pub fn issue(&self, key_pem: &str, name: &str, from: i32, until: i32) -> String {
        let key = KeyPair::from_pem(key_pem).expect("PKCS#8 key");
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        params.signed_by(&key, &self.issuer()).expect("cert").pem()
    }
}
