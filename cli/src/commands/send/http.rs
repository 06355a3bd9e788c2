//! `send`'s HTTP/1.1 client: one request over plain TCP or rustls, with
//! `--cacert`, `--insecure` and `--connect-to` as curl has them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use hookwarden_cli::Delivery;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::http::uri::InvalidUri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, InvalidDnsNameError, pem};
use tokio::net::TcpStream;

/// Where a delivery goes, and how to trust it.
#[derive(Debug)]
pub struct Target<'a> {
    /// `--url` with the signer's query.
    pub url: &'a str,
    pub cacert: Option<&'a Path>,
    pub insecure: bool,
    pub connect_to: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("--url {url:?}: {source}")]
    Url { url: String, source: InvalidUri },
    #[error("--url {url:?}: only http:// and https:// are supported")]
    Scheme { url: String },
    #[error("--url {url:?} has no host")]
    NoHost { url: String },
    #[error("invalid request: {0}")]
    Request(#[source] hyper::http::Error),
    #[error("cannot connect to {address} (--connect-to): {source}")]
    ConnectTo {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("cannot read --cacert {}: {source}", path.display())]
    CaCertRead { path: PathBuf, source: pem::Error },
    #[error("--cacert {}: {source}", path.display())]
    CaCertPem { path: PathBuf, source: pem::Error },
    #[error("--cacert {}: {source}", path.display())]
    CaCert {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[source] rustls::Error),
    #[error("--url host: {0}")]
    ServerName(#[source] InvalidDnsNameError),
    #[error("TLS handshake with {host}:{port}: {source}")]
    Handshake {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[source] hyper::Error),
    #[error("reading the answer: {0}")]
    Answer(#[source] hyper::Error),
}

/// Sends `delivery` to `target` and returns the answer's status and body.
pub async fn post(
    target: &Target<'_>,
    delivery: Delivery,
) -> Result<(hyper::StatusCode, Bytes), PostError> {
    let url = target.url;
    let uri: hyper::Uri = url.parse().map_err(|source| PostError::Url {
        url: url.to_owned(),
        source,
    })?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(PostError::Scheme {
                url: url.to_owned(),
            });
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| PostError::NoHost {
            url: url.to_owned(),
        })?
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| host.clone());
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());

    let mut request = Request::builder()
        .method(delivery.method)
        .uri(path)
        .header(hyper::header::HOST, authority);
    for (name, value) in &delivery.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(delivery.body)))
        .map_err(PostError::Request)?;

    let tcp_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tcp = match target.connect_to {
        Some(address) => {
            TcpStream::connect(address)
                .await
                .map_err(|source| PostError::ConnectTo {
                    address: address.to_owned(),
                    source,
                })?
        }
        None => TcpStream::connect((tcp_host.as_str(), port))
            .await
            .map_err(|source| PostError::Connect {
                host: host.clone(),
                port,
                source,
            })?,
    };
    if https {
        let config = tls_config(target.cacert, target.insecure)?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name =
            rustls::pki_types::ServerName::try_from(tcp_host).map_err(PostError::ServerName)?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|source| PostError::Handshake { host, port, source })?;
        exchange(TokioIo::new(tls), request).await
    } else {
        exchange(TokioIo::new(tcp), request).await
    }
}

async fn exchange<T>(
    io: T,
    request: Request<Full<Bytes>>,
) -> Result<(hyper::StatusCode, Bytes), PostError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(PostError::Http)?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(PostError::Http)?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(PostError::Answer)?
        .to_bytes();
    driver.abort();
    Ok((status, body))
}

fn tls_config(cacert: Option<&Path>, insecure: bool) -> Result<rustls::ClientConfig, PostError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot use is skipped, as curl does.
        let _ = roots.add(cert);
    }
    if let Some(path) = cacert {
        let certs =
            CertificateDer::pem_file_iter(path).map_err(|source| PostError::CaCertRead {
                path: path.to_owned(),
                source,
            })?;
        for cert in certs {
            let cert = cert.map_err(|source| PostError::CaCertPem {
                path: path.to_owned(),
                source,
            })?;
            roots.add(cert).map_err(|source| PostError::CaCert {
                path: path.to_owned(),
                source,
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(PostError::Tls)?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(config)
}

/// `--insecure`: any certificate is accepted, but the handshake signature
/// is still checked with the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
