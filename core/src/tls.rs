//! The client TLS configuration of everything Hookwarden fetches or sends
//! over HTTPS: providers' keys ([`crate::verify::keys::https`], published
//! source ranges through it), the OTLP exporter's traces
//! ([`crate::telemetry`]), and the receiver's deliveries to HTTP services
//! (`forward`); below all of them, so they trust alike.

use std::sync::Arc;

/// The system's roots (`rustls-native-certs`: the OS store, or the files
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` name); empty if there are none.
pub fn system_root_store() -> rustls::RootCertStore {
    let mut store = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    store.add_parsable_certificates(native.certs);
    store
}

/// The system's roots, `None` (and said once) if there are none.
pub(crate) fn system_roots() -> Option<Arc<rustls::RootCertStore>> {
    let store = system_root_store();
    if store.is_empty() {
        tracing::warn!("no system TLS roots found: nothing can be fetched over HTTPS");
        return None;
    }
    Some(Arc::new(store))
}

/// A client configuration trusting `roots`: ring's crypto, rustls' safe
/// default protocol versions (TLS 1.2 and 1.3), no client certificate.
///
/// # Errors
/// When ring's provider offers none of those versions (a build problem).
pub fn client_config(
    roots: Arc<rustls::RootCertStore>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The client TLS configuration: `roots` or else the system's.
pub(crate) fn client_tls(
    roots: Option<Arc<rustls::RootCertStore>>,
) -> Option<Arc<rustls::ClientConfig>> {
    let roots = match roots {
        Some(roots) => roots,
        None => system_roots()?,
    };
    client_config(roots).ok().map(Arc::new)
}
