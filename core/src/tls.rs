//! The client TLS configuration of everything core fetches over HTTPS:
//! providers' keys ([`crate::verify::keys::https`], published source ranges
//! through it) and the OTLP exporter's traces ([`crate::telemetry`]); below
//! both.

use std::sync::Arc;

/// The system's roots (`rustls-native-certs`: the OS store, or the files
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` name), `None` if there are none.
pub(crate) fn system_roots() -> Option<Arc<rustls::RootCertStore>> {
    let mut store = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!("no system TLS roots found: nothing can be fetched over HTTPS");
        return None;
    }
    Some(Arc::new(store))
}

/// The client TLS configuration: ring, `roots` or else the system's.
pub(crate) fn client_tls(
    roots: Option<Arc<rustls::RootCertStore>>,
) -> Option<Arc<rustls::ClientConfig>> {
    let roots = match roots {
        Some(roots) => roots,
        None => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(Arc::new(config))
}
