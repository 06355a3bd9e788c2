//! How the listener treats TLS (`--tls-mode`), and why it cannot start.

use std::path::PathBuf;

use rustls::pki_types::pem;

/// How the receiver's listener treats TLS; `--tls-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMode {
    /// Terminate TLS in the receiver with `--tls-cert` and `--tls-key`.
    Terminate,
    /// Plain HTTP behind an ingress or proxy that terminates TLS; only
    /// requests the trusted proxy marks as HTTPS are to be accepted.
    BehindIngress,
    /// Plain HTTP, for local development only: signatures still verify, but
    /// deliveries cross the network in the clear.
    InsecureHttp,
}

/// The listener's mode, with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Terminate TLS with the PEM certificate chain and private key in these
    /// files (re-read while serving).
    Terminate { cert: PathBuf, key: PathBuf },
    /// See [`TlsMode::BehindIngress`].
    BehindIngress,
    /// See [`TlsMode::InsecureHttp`].
    InsecureHttp,
}

impl Mode {
    /// The mode from the command line: `terminate` needs both files, and the
    /// plain modes refuse them, because a certificate that is silently not
    /// used suggests TLS where there is none.
    pub fn from_flags(
        mode: TlsMode,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Self, TransportError> {
        match mode {
            TlsMode::Terminate => {
                let cert = cert.ok_or(TransportError::MissingFlag {
                    flag: "--tls-cert",
                    env: "HOOKWARDEN_TLS_CERT",
                })?;
                let key = key.ok_or(TransportError::MissingFlag {
                    flag: "--tls-key",
                    env: "HOOKWARDEN_TLS_KEY",
                })?;
                Ok(Self::Terminate { cert, key })
            }
            TlsMode::BehindIngress | TlsMode::InsecureHttp => {
                if cert.is_some() {
                    return Err(TransportError::UnusedFlag { flag: "--tls-cert" });
                }
                if key.is_some() {
                    return Err(TransportError::UnusedFlag { flag: "--tls-key" });
                }
                Ok(if mode == TlsMode::BehindIngress {
                    Self::BehindIngress
                } else {
                    Self::InsecureHttp
                })
            }
        }
    }

    /// Whether the request pipeline must accept only requests a trusted
    /// proxy marks as having arrived over HTTPS: true behind an ingress,
    /// where the receiver itself only sees plain HTTP.
    pub fn require_forwarded_https(&self) -> bool {
        matches!(self, Self::BehindIngress)
    }

    /// A short name for logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Terminate { .. } => "terminate",
            Self::BehindIngress => "behind-ingress",
            Self::InsecureHttp => "insecure-http",
        }
    }
}

/// Why the transport cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("--tls-mode terminate (the default) needs {flag} ({env}), a PEM file")]
    MissingFlag {
        flag: &'static str,
        env: &'static str,
    },
    #[error("{flag} is only used with --tls-mode terminate")]
    UnusedFlag { flag: &'static str },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} / {}: {source}", cert.display(), key.display())]
    Certificate {
        cert: PathBuf,
        key: PathBuf,
        source: CertificateError,
    },
    #[error("TLS configuration: {0}")]
    Tls(rustls::Error),
}

/// Why a certificate and key pair is unusable.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("no certificate in the certificate PEM file")]
    NoCertificate,
    #[error("certificate PEM: {0}")]
    CertificatePem(pem::Error),
    #[error("private key PEM: {0}")]
    KeyPem(pem::Error),
    #[error("certificate and key do not form a pair: {0}")]
    Pair(rustls::Error),
}
