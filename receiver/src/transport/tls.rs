//! TLS termination with rustls (ring), the certificate re-read from disk
//! while serving.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::mode::{CertificateError, TransportError};
use super::stats::TransportStats;

#[derive(Debug)]
pub(super) struct Tls {
    pub(super) config: Arc<rustls::ServerConfig>,
    pub(super) resolver: Arc<ReloadingCert>,
}

impl Tls {
    pub(super) fn load(cert: &Path, key: &Path) -> Result<Self, TransportError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TransportError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let files = CertFiles {
            cert: read(cert)?,
            key: read(key)?,
        };
        let certified =
            files
                .certified_key(&provider)
                .map_err(|source| TransportError::Certificate {
                    cert: cert.to_owned(),
                    key: key.to_owned(),
                    source,
                })?;
        let resolver = Arc::new(ReloadingCert {
            cert_path: cert.to_owned(),
            key_path: key.to_owned(),
            provider: Arc::clone(&provider),
            current: RwLock::new(Arc::new(certified)),
            loaded: RwLock::new(files),
        });
        // TLS 1.2 stays for providers and proxies that still use it; nothing
        // older (rustls has no TLS 1.0/1.1 at all).
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TransportError::Tls)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            resolver,
        })
    }
}

/// The raw contents of the certificate and key files.
#[derive(Clone, PartialEq, Eq)]
struct CertFiles {
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// Never prints the private key (the TLS configuration is `Debug`).
impl std::fmt::Debug for CertFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertFiles")
            .field("cert_bytes", &self.cert.len())
            .field("key_bytes", &self.key.len())
            .finish()
    }
}

impl CertFiles {
    /// The pair, if the files hold a certificate chain and the private key
    /// of its first certificate.
    fn certified_key(&self, provider: &CryptoProvider) -> Result<CertifiedKey, CertificateError> {
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(CertificateError::CertificatePem)?;
        if chain.is_empty() {
            return Err(CertificateError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(CertificateError::KeyPem)?;
        CertifiedKey::from_der(chain, key, provider).map_err(CertificateError::Pair)
    }
}

/// The certificate in service, swapped when the files change. Every
/// handshake asks for it, so a reload applies to the next connection while
/// established ones keep theirs.
#[derive(Debug)]
pub(super) struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// What the files held when last looked at (loaded or rejected), so an
    /// unchanged file is neither parsed nor reported again.
    loaded: RwLock<CertFiles>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A poisoned lock still holds a valid pair: the writer only assigns.
        let current = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(Arc::clone(&current))
    }
}

impl ReloadingCert {
    /// Reads the files and, if they changed, swaps in the new pair when it
    /// is valid, keeping the old one (and logging why) when it is not.
    /// `read_error` remembers a failure to read the files, so one that lasts
    /// is reported once, not every interval.
    async fn reload(&self, stats: &TransportStats, read_error: &mut Option<String>) {
        // One after the other, so a lasting failure is always the same one.
        let read = async {
            let cert = tokio::fs::read(&self.cert_path)
                .await
                .map_err(|err| (&self.cert_path, err))?;
            let key = tokio::fs::read(&self.key_path)
                .await
                .map_err(|err| (&self.key_path, err))?;
            Ok::<_, (&PathBuf, std::io::Error)>(CertFiles { cert, key })
        };
        let files = match read.await {
            Ok(files) => files,
            Err((path, err)) => {
                // A Secret being swapped is atomic, so this is not a race
                // with the kubelet: the file is really gone or unreadable.
                let error = format!("{}: {err}", path.display());
                if read_error.as_ref() != Some(&error) {
                    stats.cert_reload_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        error = error.as_str(),
                        "cannot read the TLS certificate files; keeping the certificate in service"
                    );
                    *read_error = Some(error);
                }
                return;
            }
        };
        *read_error = None;
        {
            let loaded = self
                .loaded
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if *loaded == files {
                return;
            }
        }
        let result = files.certified_key(&self.provider);
        *self
            .loaded
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = files;
        match result {
            Ok(certified) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(certified);
                stats.cert_reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    cert = %self.cert_path.display(),
                    "reloaded the TLS certificate"
                );
            }
            Err(err) => {
                stats.cert_reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    cert = %self.cert_path.display(),
                    key = %self.key_path.display(),
                    error = %err,
                    "the changed TLS certificate files are unusable; keeping the certificate in service"
                );
            }
        }
    }
}

/// Checks the certificate files every `interval`, for as long as it runs.
pub(super) async fn watch_cert_files(
    resolver: Arc<ReloadingCert>,
    stats: Arc<TransportStats>,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the files were just loaded.
    ticks.tick().await;
    let mut read_error = None;
    loop {
        ticks.tick().await;
        resolver.reload(&stats, &mut read_error).await;
    }
}

/// Aborts the task when serving ends, however it ends.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
