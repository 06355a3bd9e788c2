//! One bounded HTTPS GET: the client of everything the receiver and the
//! operator fetch from providers (keys here, published source ranges in
//! [`crate::ranges`]).
//!
//! A GET is made only of a [`KeyUrl`], which only a host rule ([`super::url`])
//! makes; it goes over HTTPS with the system's roots (or a test CA), follows
//! no redirect (a 3xx is an answer like any other, for the caller to
//! refuse), and is bounded by a connect timeout, a total timeout and a cap
//! on the body read. Errors are static texts: nothing the server sent ends
//! up in a message.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use super::KeyUrl;

/// The bounds of one GET.
#[derive(Debug, Clone, Copy)]
pub struct GetLimits {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Bound on the whole GET: resolve, connect, TLS, request, response.
    pub total_timeout: Duration,
    /// The largest body read; a longer one is an error.
    pub max_body_bytes: usize,
    /// Refuse a host that resolves to a loopback, private, link-local or
    /// otherwise non-public address (see [`is_public`]): for URLs a spec
    /// names, so a manifest cannot make the fetcher reach inside the
    /// cluster. Test routes are not resolved and not checked.
    pub public_only: bool,
}

/// An answer: any status, its headers and its body (within the cap).
#[derive(Debug)]
pub struct Answer {
    /// The status; a redirect is returned as it is, never followed.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// Where GETs connect and whom they trust.
#[derive(Debug)]
pub struct HttpsClient {
    /// `None`: the system's roots. Set only by [`HttpsClient::with_test_routes`].
    roots: Option<Arc<rustls::RootCertStore>>,
    /// Host → address, instead of resolving the host. Empty but for
    /// [`HttpsClient::with_test_routes`].
    routes: HashMap<String, SocketAddr>,
    /// `roots`, or the system's loaded once.
    trusted: OnceLock<Option<Arc<rustls::RootCertStore>>>,
    tls: OnceLock<Option<Arc<rustls::ClientConfig>>>,
}

impl HttpsClient {
    /// The system's roots, hosts resolved by DNS.
    pub fn new() -> Self {
        Self::build(None, HashMap::new())
    }

    /// FOR TESTS ONLY: trusts `roots` instead of the system's and connects
    /// to `routes[host]` instead of resolving `host`. A route changes where
    /// an allowed host is reached, never which host is allowed: only a
    /// [`KeyUrl`] is ever fetched, and the TLS name checked is its host.
    pub fn with_test_routes(
        roots: rustls::RootCertStore,
        routes: HashMap<String, SocketAddr>,
    ) -> Self {
        Self::build(Some(Arc::new(roots)), routes)
    }

    fn build(
        roots: Option<Arc<rustls::RootCertStore>>,
        routes: HashMap<String, SocketAddr>,
    ) -> Self {
        Self {
            roots,
            routes,
            trusted: OnceLock::new(),
            tls: OnceLock::new(),
        }
    }

    /// The roots this client trusts: the test roots, or the system's
    /// (`SSL_CERT_FILE` / `SSL_CERT_DIR` if set); `None` if there are none.
    /// Also what fetched signing certificates must chain to.
    pub fn roots(&self) -> Option<Arc<rustls::RootCertStore>> {
        self.trusted
            .get_or_init(|| self.roots.clone().or_else(crate::tls::system_roots))
            .clone()
    }

    fn tls(&self) -> Result<Arc<rustls::ClientConfig>, &'static str> {
        self.tls
            .get_or_init(|| {
                self.roots()
                    .and_then(|roots| crate::tls::client_tls(Some(roots)))
            })
            .clone()
            .ok_or("no TLS roots")
    }

    /// GETs `url` with the extra request `headers`, within `limits`.
    pub async fn get(
        &self,
        url: &KeyUrl,
        headers: &[(HeaderName, HeaderValue)],
        limits: GetLimits,
    ) -> Result<Answer, &'static str> {
        tokio::time::timeout(
            limits.total_timeout,
            self.get_unbounded(url, headers, limits),
        )
        .await
        .map_err(|_| "fetch timed out")?
    }

    async fn get_unbounded(
        &self,
        url: &KeyUrl,
        headers: &[(HeaderName, HeaderValue)],
        limits: GetLimits,
    ) -> Result<Answer, &'static str> {
        let tls = self.tls()?;
        let address = match self.routes.get(url.host()) {
            Some(address) => *address,
            None => {
                let address = tokio::net::lookup_host((url.host(), 443))
                    .await
                    .ok()
                    .and_then(|mut addresses| addresses.next())
                    .ok_or("host not resolved")?;
                if limits.public_only && !is_public(address.ip()) {
                    return Err("host resolves to a non-public address");
                }
                address
            }
        };
        let tcp = tokio::time::timeout(
            limits.connect_timeout,
            tokio::net::TcpStream::connect(address),
        )
        .await
        .map_err(|_| "connect timed out")?
        .map_err(|_| "connection refused")?;
        let name =
            ServerName::try_from(url.host().to_owned()).map_err(|_| "host is no TLS name")?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|_| "TLS failed")?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| "HTTP failed")?;
        let driver = tokio::spawn(connection);
        let answer = async {
            let mut request = Request::get(url.path_and_query())
                .header(hyper::header::HOST, url.host())
                .header(hyper::header::USER_AGENT, "hookwarden");
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let request = request
                .body(Empty::<Bytes>::new())
                .map_err(|_| "request invalid")?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|_| "HTTP failed")?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, limits.max_body_bytes)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .map_err(|_| "response too large or cut off")?;
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        }
        .await;
        driver.abort();
        answer
    }
}

impl Default for HttpsClient {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `ip` is an address on the public internet: not unspecified,
/// loopback, private (RFC 1918, IPv6 ULA), link-local (cloud metadata at
/// 169.254.169.254), carrier-grade NAT, multicast, broadcast or
/// documentation space. IPv4-mapped IPv6 is judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().expect("ip")), "{private}");
        }
        for public in ["140.82.112.1", "8.8.8.8", "2606:50c0::1", "::ffff:1.1.1.1"] {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
    }
}
