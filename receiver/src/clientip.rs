//! Who is delivering: the client IP and scheme of a request, and the source
//! networks an endpoint accepts.
//!
//! Behind an ingress controller every request arrives from the proxy, so the
//! socket peer alone says nothing about the provider. The proxy reports the
//! original client in a forwarding header, but anyone can send those
//! headers, so they are believed only from a peer inside
//! `spec.trustedProxies`, and even then only:
//!
//! - the one kind the proxies are configured to write
//!   (`spec.forwardedHeaders`): `X-Forwarded-For` with `X-Forwarded-Proto`,
//!   or RFC 7239 `Forwarded`. Proxies write one kind and pass the others
//!   through as the client sent them (ingress-nginx, Envoy and Traefik
//!   forward a client's `Forwarded` untouched), so the presence of a header
//!   says nothing about who wrote it. `X-Real-IP` is never read: it holds
//!   one address, so it cannot say which proxies a request went through.
//! - the hops appended by trusted proxies: the list is walked right to left
//!   (nearest hop first) and the first address outside the trusted networks
//!   is the client. Everything left of it was written by the client itself,
//!   so it is not even parsed: it can neither be believed nor get the
//!   request refused as malformed (which would also lose the client's
//!   address from the audit line).
//!
//! All of this is pure (no I/O) so every rule is unit-tested here.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::header::FORWARDED;
use axum::http::{HeaderMap, HeaderValue};
pub use hookwarden_crds::ForwardedHeaders;
use ipnet::IpNet;

/// The field path of the allowlist in the `WebhookEndpoint` spec.
pub const ALLOWED_SOURCE_CIDRS_FIELD: &str = "spec.allowedSourceCidrs";
/// The field path of the trusted proxies in the `WebhookEndpoint` spec.
pub const TRUSTED_PROXIES_FIELD: &str = "spec.trustedProxies";

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// A CIDR of the spec that does not parse; names the field so the operator
/// can fix the manifest without guessing.
#[derive(Debug, thiserror::Error)]
#[error("{field}[{index}]: invalid CIDR {value:?}: {reason}")]
pub struct CidrError {
    /// The spec field, e.g. `spec.allowedSourceCidrs`.
    pub field: &'static str,
    /// The position in the list.
    pub index: usize,
    /// The offending value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A set of networks (IPv4 and IPv6), such as `spec.allowedSourceCidrs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// Parses `values` of the spec field `field`. A bare address is a single
    /// host (`/32`, `/128`). A CIDR with host bits set (`10.1.2.3/8`) is
    /// refused rather than silently widened: in an allowlist such a typo
    /// would let in far more than intended.
    pub fn parse(field: &'static str, values: &[String]) -> Result<Self, CidrError> {
        values
            .iter()
            .enumerate()
            .map(|(index, value)| {
                parse_network(value.trim()).map_err(|reason| CidrError {
                    field,
                    index,
                    value: value.clone(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// These networks and `more` (the fetched ranges of
    /// `spec.allowedSources`, already checked).
    pub fn with(mut self, more: impl IntoIterator<Item = IpNet>) -> Self {
        self.0.extend(more);
        self
    }

    /// No networks at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many networks.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `ip` (IPv4-mapped IPv6 counts as IPv4) is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

fn parse_network(value: &str) -> Result<IpNet, String> {
    if !value.contains('/') {
        return IpAddr::from_str(value)
            .map(IpNet::from)
            .map_err(|err| err.to_string());
    }
    let net = IpNet::from_str(value).map_err(|err| err.to_string())?;
    if net.trunc() != net {
        return Err(format!("host bits are set; the network is {}", net.trunc()));
    }
    Ok(net)
}

/// Forwarding headers from a trusted proxy that cannot be understood. The
/// request is refused (400 `forwarded_header_invalid`) rather than guessed
/// at: a guess could attribute the request to the proxy itself, which is
/// often inside the allowlist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {header} header: {reason}")]
pub struct ForwardedError {
    /// The header that is malformed.
    pub header: &'static str,
    /// What is wrong with it (never the whole value, which is client input).
    pub reason: &'static str,
}

impl ForwardedError {
    /// The reason code reported to the client and the audit log.
    pub const CODE: &'static str = "forwarded_header_invalid";

    fn new(header: &'static str, reason: &'static str) -> Self {
        Self { header, reason }
    }
}

/// Where a request came from, as far as it can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr {
    /// The original client: the socket peer, or the first untrusted hop of
    /// the forwarding headers of a trusted proxy.
    pub client_ip: IpAddr,
    /// The socket peer (IPv4-mapped IPv6 normalised to IPv4).
    pub peer_ip: IpAddr,
    /// The scheme the client used, lower case, as reported by a trusted
    /// proxy; `None` when no trusted proxy reported one.
    pub forwarded_proto: Option<String>,
}

impl ClientAddr {
    /// Whether a trusted proxy reported that the client used HTTPS.
    pub fn forwarded_https(&self) -> bool {
        self.forwarded_proto.as_deref() == Some("https")
    }
}

/// The proxies whose forwarding headers are believed (`spec.trustedProxies`),
/// and which headers those are (`spec.forwardedHeaders`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Networks,
    headers: ForwardedHeaders,
}

impl TrustedProxies {
    /// Trusts the proxies in `networks` (empty trusts none) about what they
    /// write in `headers`, and about nothing else.
    pub fn new(networks: Networks, headers: ForwardedHeaders) -> Self {
        Self { networks, headers }
    }

    /// Whether `peer` is one of the trusted proxies.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.networks.contains(peer)
    }

    /// The forwarding headers believed from a trusted proxy.
    pub fn headers(&self) -> ForwardedHeaders {
        self.headers
    }

    /// Resolves the client of a request from socket peer `peer`.
    ///
    /// Only the configured headers are read, whatever else is present:
    /// - `XForwardedFor`: the client from `X-Forwarded-For` (every
    ///   occurrence, in order, comma lists), the scheme from the last value
    ///   of `X-Forwarded-Proto` (written by the nearest proxy, which replaces
    ///   the client's);
    /// - `Forwarded`: the client from the `for=` of `Forwarded` elements,
    ///   the scheme from the `proto=` of the client's own element (written by
    ///   the outermost trusted proxy, the one that saw the client's
    ///   connection).
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> Result<ClientAddr, ForwardedError> {
        let peer_ip = peer.to_canonical();
        if !self.trusts(peer_ip) {
            // Headers from an untrusted peer are the client's own claims.
            return Ok(ClientAddr {
                client_ip: peer_ip,
                peer_ip,
                forwarded_proto: None,
            });
        }
        let (client_ip, forwarded_proto) = match self.headers {
            ForwardedHeaders::XForwardedFor => (
                self.walk_x_forwarded_for(peer_ip, headers)?,
                x_forwarded_proto(headers)?,
            ),
            ForwardedHeaders::Forwarded => self.walk_forwarded(peer_ip, headers)?,
        };
        Ok(ClientAddr {
            client_ip,
            peer_ip,
            forwarded_proto,
        })
    }

    /// Walks the `X-Forwarded-For` hops from the right (the last header
    /// line first), starting at the trusted `peer`, and returns the first
    /// untrusted one (the leftmost when every hop is trusted). A hop is
    /// parsed only when reached, so whatever the client wrote left of the
    /// hop its proxy appended never matters. An `unknown` hop stops the walk
    /// at the last trusted address: nothing left of it can be attributed.
    fn walk_x_forwarded_for(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
    ) -> Result<IpAddr, ForwardedError> {
        let mut last_trusted = peer;
        for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            for hop in line.as_bytes().rsplit(|b| *b == b',') {
                match x_forwarded_for_hop(hop)? {
                    Node::Ip(ip) if self.networks.contains(ip) => last_trusted = ip,
                    Node::Ip(ip) => return Ok(ip),
                    Node::Unknown => return Ok(last_trusted),
                }
            }
        }
        Ok(last_trusted)
    }

    /// Walks the `Forwarded` elements like [`Self::walk_x_forwarded_for`];
    /// returns the client and the `proto=` of its element (of the leftmost
    /// element when every hop is trusted, of the unknown one when the walk
    /// stops there). A header line is split into elements as a whole
    /// (quoted strings may hold `,`), so only lines the walk reaches are
    /// read.
    fn walk_forwarded(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
    ) -> Result<(IpAddr, Option<String>), ForwardedError> {
        let mut last_trusted = peer;
        let mut proto = None;
        for line in headers.get_all(FORWARDED).iter().rev() {
            for pairs in forwarded_line(line)?.iter().rev() {
                let hop = element(pairs)?;
                proto = hop.proto;
                match hop.node {
                    Node::Ip(ip) if self.networks.contains(ip) => last_trusted = ip,
                    Node::Ip(ip) => return Ok((ip, proto)),
                    Node::Unknown => return Ok((last_trusted, proto)),
                }
            }
        }
        Ok((last_trusted, proto))
    }
}

/// One hop of a forwarding header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Ip(IpAddr),
    /// `unknown`, an obfuscated identifier (`_hidden`) or a missing `for=`.
    Unknown,
}

/// One `X-Forwarded-For` hop, as the bytes between commas.
fn x_forwarded_for_hop(hop: &[u8]) -> Result<Node, ForwardedError> {
    let hop = std::str::from_utf8(hop)
        .ok()
        .filter(|hop| hop.is_ascii())
        .ok_or(ForwardedError::new("X-Forwarded-For", "not ASCII"))?
        .trim();
    if hop.eq_ignore_ascii_case("unknown") {
        return Ok(Node::Unknown);
    }
    parse_address(hop).map(Node::Ip).ok_or(ForwardedError::new(
        "X-Forwarded-For",
        "a hop is not an IP address",
    ))
}

/// An address as proxies write it: `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]`,
/// and with a port `1.2.3.4:80`, `[2001:db8::1]:443`.
fn parse_address(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(text) {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = SocketAddr::from_str(text) {
        return Some(addr.ip().to_canonical());
    }
    text.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| std::net::Ipv6Addr::from_str(inner).ok())
        .map(|ip| IpAddr::V6(ip).to_canonical())
}

/// The last `X-Forwarded-Proto` value (of the last header line): the one
/// the nearest proxy wrote. Values before it are not read.
fn x_forwarded_proto(headers: &HeaderMap) -> Result<Option<String>, ForwardedError> {
    let Some(line) = headers.get_all(X_FORWARDED_PROTO).iter().next_back() else {
        return Ok(None);
    };
    let invalid = || ForwardedError::new("X-Forwarded-Proto", "not a URI scheme");
    let last = line
        .as_bytes()
        .rsplit(|b| *b == b',')
        .next()
        .unwrap_or_default();
    let last = std::str::from_utf8(last).map_err(|_| invalid())?;
    parse_scheme(last.trim()).map(Some).ok_or_else(invalid)
}

/// A URI scheme (RFC 3986: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`), lower-cased.
fn parse_scheme(text: &str) -> Option<String> {
    let mut chars = text.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then(|| text.to_ascii_lowercase())
}

/// One element of RFC 7239 `Forwarded`: the parameters one proxy added.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    node: Node,
    proto: Option<String>,
}

const FORWARDED_NAME: &str = "Forwarded";

/// The elements of one `Forwarded` header line, as `name=value` pairs.
fn forwarded_line(line: &HeaderValue) -> Result<Vec<Vec<(String, String)>>, ForwardedError> {
    let value = line
        .to_str()
        .map_err(|_| ForwardedError::new(FORWARDED_NAME, "not ASCII"))?;
    split_elements(value)
}

/// Splits a `Forwarded` value into elements (`,`) of `name=value` pairs
/// (`;`), unquoting quoted strings (which may contain `,` and `;`).
fn split_elements(value: &str) -> Result<Vec<Vec<(String, String)>>, ForwardedError> {
    let invalid = |reason| ForwardedError::new(FORWARDED_NAME, reason);
    let mut elements = Vec::new();
    let mut pairs = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| is_tchar(*c)) {
            name.push(c.to_ascii_lowercase());
        }
        if name.is_empty() {
            return Err(invalid("expected a parameter name"));
        }
        if chars.next() != Some('=') {
            return Err(invalid("expected '=' after a parameter name"));
        }
        let mut text = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => text.push(chars.next().ok_or(invalid("unterminated quote"))?),
                    Some(c) => text.push(c),
                    None => return Err(invalid("unterminated quote")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| is_tchar(*c)) {
                text.push(c);
            }
            if text.is_empty() {
                return Err(invalid("empty parameter value"));
            }
        }
        if pairs.iter().any(|(seen, _)| *seen == name) {
            return Err(invalid("a parameter is repeated within an element"));
        }
        pairs.push((name, text));
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        match chars.next() {
            None => {
                elements.push(pairs);
                return Ok(elements);
            }
            Some(';') => {}
            Some(',') => elements.push(std::mem::take(&mut pairs)),
            Some(_) => return Err(invalid("unexpected character")),
        }
    }
}

/// RFC 7230 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn element(pairs: &[(String, String)]) -> Result<Element, ForwardedError> {
    let mut element = Element {
        node: Node::Unknown,
        proto: None,
    };
    for (name, value) in pairs {
        match name.as_str() {
            "for" => element.node = parse_node(value)?,
            "proto" => {
                element.proto = Some(parse_scheme(value).ok_or(ForwardedError::new(
                    FORWARDED_NAME,
                    "proto is not a URI scheme",
                ))?);
            }
            // `by`, `host` and extensions say nothing about the client.
            _ => {}
        }
    }
    Ok(element)
}

/// An RFC 7239 node: `IPv4[:port]`, `"[IPv6][:port]"`, `unknown` or an
/// obfuscated `_identifier` (with an optional port of either kind).
fn parse_node(value: &str) -> Result<Node, ForwardedError> {
    let invalid = ForwardedError::new(FORWARDED_NAME, "for= is not a node");
    let (name, port) = if let Some(rest) = value.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or(invalid.clone())?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(invalid.clone())?),
        };
        let ip = std::net::Ipv6Addr::from_str(inner).map_err(|_| invalid.clone())?;
        check_port(port).ok_or(invalid)?;
        return Ok(Node::Ip(IpAddr::V6(ip).to_canonical()));
    } else {
        match value.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (value, None),
        }
    };
    check_port(port).ok_or(invalid.clone())?;
    if name.eq_ignore_ascii_case("unknown") || is_obfuscated(name) {
        return Ok(Node::Unknown);
    }
    std::net::Ipv4Addr::from_str(name)
        .map(|ip| Node::Ip(IpAddr::V4(ip)))
        .map_err(|_| invalid)
}

/// `node-port = port / obfport`.
fn check_port(port: Option<&str>) -> Option<()> {
    match port {
        None => Some(()),
        Some(port) if is_obfuscated(port) => Some(()),
        Some(port) => port.parse::<u16>().ok().map(|_| ()),
    }
}

/// `obfnode` / `obfport`: `"_" 1*(ALPHA / DIGIT / "." / "_" / "-")`.
fn is_obfuscated(text: &str) -> bool {
    text.strip_prefix('_').is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    })
}

impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "[{}]", list.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn nets(field: &'static str, values: &[&str]) -> Networks {
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        Networks::parse(field, &values).expect("valid CIDRs")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("IP address")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).expect("header value"));
        }
        headers
    }

    /// Trusted proxies that write `X-Forwarded-For` (the default).
    fn proxies(values: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            nets(TRUSTED_PROXIES_FIELD, values),
            ForwardedHeaders::XForwardedFor,
        )
    }

    /// Trusted proxies that write RFC 7239 `Forwarded`.
    fn rfc7239(values: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            nets(TRUSTED_PROXIES_FIELD, values),
            ForwardedHeaders::Forwarded,
        )
    }

    fn client(proxies: &TrustedProxies, peer: &str, pairs: &[(&'static str, &str)]) -> IpAddr {
        proxies
            .resolve(ip(peer), &headers(pairs))
            .expect("resolves")
            .client_ip
    }

    #[test]
    fn parses_ipv4_and_ipv6_cidrs_and_bare_addresses() {
        let networks = nets(
            ALLOWED_SOURCE_CIDRS_FIELD,
            &["10.0.0.0/8", "2001:db8::/32", "192.0.2.7", "::1"],
        );
        assert_eq!(networks.len(), 4);
        assert!(networks.contains(ip("10.200.3.4")));
        assert!(!networks.contains(ip("11.0.0.1")));
        assert!(networks.contains(ip("2001:db8:1::5")));
        assert!(!networks.contains(ip("2001:db9::5")));
        assert!(networks.contains(ip("192.0.2.7")));
        assert!(!networks.contains(ip("192.0.2.8")));
        assert!(networks.contains(ip("::1")));
        // IPv4-mapped IPv6 is the IPv4 address.
        assert!(networks.contains(ip("::ffff:10.1.2.3")));
        assert!(!Networks::default().contains(ip("10.0.0.1")));
    }

    #[test]
    fn an_invalid_cidr_names_the_field_index_and_value() {
        let values = vec!["10.0.0.0/8".to_owned(), "10.0.0.0/33".to_owned()];
        let err = Networks::parse(ALLOWED_SOURCE_CIDRS_FIELD, &values).expect_err("/33");
        let message = err.to_string();
        assert!(
            message.starts_with("spec.allowedSourceCidrs[1]: invalid CIDR \"10.0.0.0/33\""),
            "{message}"
        );
        for bad in ["not-an-ip", "10.1.2.3/8", "2001:db8::1/32", "", "10.0.0.0/"] {
            let err = Networks::parse(TRUSTED_PROXIES_FIELD, &[bad.to_owned()])
                .expect_err(bad)
                .to_string();
            assert!(err.starts_with("spec.trustedProxies[0]"), "{err}");
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let forged = [
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=203.0.113.8"),
            ("x-real-ip", "203.0.113.9"),
        ];
        for headers in [ForwardedHeaders::XForwardedFor, ForwardedHeaders::Forwarded] {
            let none = TrustedProxies::new(Networks::default(), headers);
            assert_eq!(client(&none, "127.0.0.1", &forged), ip("127.0.0.1"));
        }
        assert_eq!(
            TrustedProxies::default().headers(),
            ForwardedHeaders::XForwardedFor,
            "ingress-nginx's header by default"
        );
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored_even_malformed() {
        for trusted in [proxies(&["10.0.0.0/8"]), rfc7239(&["10.0.0.0/8"])] {
            let resolved = trusted
                .resolve(
                    ip("198.51.100.1"),
                    &headers(&[
                        ("x-forwarded-for", "203.0.113.7"),
                        ("x-forwarded-proto", "https"),
                        ("forwarded", "for=203.0.113.8;proto=https"),
                        ("forwarded", "garbage"),
                        ("x-forwarded-for", "garbage"),
                    ]),
                )
                .expect("not even parsed");
            assert_eq!(resolved.client_ip, ip("198.51.100.1"));
            assert_eq!(resolved.forwarded_proto, None);
            assert!(!resolved.forwarded_https());
        }
    }

    #[test]
    fn x_forwarded_for_is_walked_right_to_left_over_all_occurrences() {
        let trusted = proxies(&["10.0.0.0/8"]);
        // The client forged "1.1.1.1"; the ingress appended the real client.
        let xff = [("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.0.0.5")];
        assert_eq!(client(&trusted, "10.0.0.1", &xff), ip("203.0.113.7"));
        let split = [
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.7,10.0.0.5"),
        ];
        assert_eq!(client(&trusted, "10.0.0.1", &split), ip("203.0.113.7"));
        // No header: the trusted peer itself is the client.
        assert_eq!(client(&trusted, "10.0.0.1", &[]), ip("10.0.0.1"));
        // Every hop trusted: the leftmost.
        let all = [("x-forwarded-for", "10.9.9.9, 10.0.0.5")];
        assert_eq!(client(&trusted, "10.0.0.1", &all), ip("10.9.9.9"));
        // Ports and brackets as some proxies write them.
        let ported = [("x-forwarded-for", "[2001:db8::7]:443, 203.0.113.9:5000")];
        assert_eq!(client(&trusted, "10.0.0.1", &ported), ip("203.0.113.9"));
        let v6 = [("x-forwarded-for", "2001:db8::7")];
        assert_eq!(client(&trusted, "10.0.0.1", &v6), ip("2001:db8::7"));
    }

    #[test]
    fn ipv4_mapped_peers_and_hops_are_ipv4() {
        let trusted = proxies(&["127.0.0.0/8"]);
        let resolved = trusted
            .resolve(
                ip("::ffff:127.0.0.1"),
                &headers(&[("x-forwarded-for", "::ffff:203.0.113.7")]),
            )
            .expect("resolves");
        assert_eq!(resolved.peer_ip, ip("127.0.0.1"));
        assert_eq!(resolved.client_ip, ip("203.0.113.7"));
        assert!(resolved.client_ip.is_ipv4());
    }

    #[test]
    fn ipv6_proxies_and_clients() {
        let trusted = proxies(&["fd00::/8"]);
        let xff = [("x-forwarded-for", "2001:db8::1, fd00::2")];
        assert_eq!(client(&trusted, "fd00::1", &xff), ip("2001:db8::1"));
        assert_eq!(client(&trusted, "2001:db8::99", &xff), ip("2001:db8::99"));
    }

    #[test]
    fn forwarded_rfc7239_with_quoted_ipv6_and_ports() {
        let trusted = rfc7239(&["10.0.0.0/8"]);
        let forwarded = [(
            "forwarded",
            r#"for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.5;proto=http"#,
        )];
        let resolved = trusted
            .resolve(ip("10.0.0.1"), &headers(&forwarded))
            .expect("resolves");
        assert_eq!(resolved.client_ip, ip("2001:db8:cafe::17"));
        // The proto of the client's own hop, written by the outermost trusted proxy.
        assert_eq!(resolved.forwarded_proto.as_deref(), Some("https"));
        assert!(resolved.forwarded_https());

        let ported = [(
            "forwarded",
            "For=\"203.0.113.7:8443\";Proto=HTTPS;by=10.0.0.1",
        )];
        let resolved = trusted
            .resolve(ip("10.0.0.1"), &headers(&ported))
            .expect("resolves");
        assert_eq!(resolved.client_ip, ip("203.0.113.7"));
        assert_eq!(resolved.forwarded_proto.as_deref(), Some("https"));
    }

    /// Proxies write one kind of header and pass the others through as the
    /// client sent them: a client outside the allowlist, over plain HTTP,
    /// claiming an allowed address and HTTPS in the kind its proxy does not
    /// write must change nothing, however the claim is spelt.
    #[test]
    fn only_the_configured_headers_are_read() {
        // ingress-nginx wrote X-Forwarded-For and X-Forwarded-Proto; the
        // client wrote the rest.
        let ingress_nginx = headers(&[
            ("forwarded", "for=192.0.2.1;proto=https"),
            ("forwarded", "for=10.0.0.7;proto=https"),
            ("x-real-ip", "192.0.2.1"),
            ("x-forwarded-scheme", "https"),
            ("x-scheme", "https"),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "http"),
        ]);
        let resolved = proxies(&["10.0.0.0/8"])
            .resolve(ip("10.0.0.1"), &ingress_nginx)
            .expect("resolves");
        assert_eq!(resolved.client_ip, ip("203.0.113.7"));
        assert_eq!(resolved.forwarded_proto.as_deref(), Some("http"));
        // The same client's claims in a Forwarded it cannot even spell.
        let malformed = headers(&[
            ("forwarded", "for=\"unterminated"),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        let resolved = proxies(&["10.0.0.0/8"])
            .resolve(ip("10.0.0.1"), &malformed)
            .expect("the malformed Forwarded is not read");
        assert_eq!(resolved.client_ip, ip("203.0.113.7"));
        // No X-Forwarded-For at all: the proxy itself, whatever Forwarded
        // says, and no scheme (so behind-ingress refuses it).
        let only_forwarded = headers(&[("forwarded", "for=192.0.2.1;proto=https")]);
        let resolved = proxies(&["10.0.0.0/8"])
            .resolve(ip("10.0.0.1"), &only_forwarded)
            .expect("resolves");
        assert_eq!(resolved.client_ip, ip("10.0.0.1"));
        assert_eq!(resolved.forwarded_proto, None);

        // An RFC 7239 proxy wrote Forwarded; the client wrote the rest.
        let rfc7239_proxy = headers(&[
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-for", "not-an-ip"),
            ("x-forwarded-proto", "https"),
            ("x-real-ip", "192.0.2.1"),
            ("forwarded", "for=203.0.113.7;proto=http"),
        ]);
        let resolved = rfc7239(&["10.0.0.0/8"])
            .resolve(ip("10.0.0.1"), &rfc7239_proxy)
            .expect("the malformed X-Forwarded-For is not read");
        assert_eq!(resolved.client_ip, ip("203.0.113.7"));
        assert_eq!(resolved.forwarded_proto.as_deref(), Some("http"));
        let err = rfc7239(&["10.0.0.0/8"])
            .resolve(ip("10.0.0.1"), &malformed)
            .expect_err("the configured header is malformed");
        assert_eq!(err.header, "Forwarded");

        // X-Real-IP alone is read by neither.
        let real_ip = [("x-real-ip", "203.0.113.7")];
        assert_eq!(
            client(&proxies(&["10.0.0.0/8"]), "10.0.0.1", &real_ip),
            ip("10.0.0.1")
        );
        assert_eq!(
            client(&rfc7239(&["10.0.0.0/8"]), "10.0.0.1", &real_ip),
            ip("10.0.0.1")
        );
    }

    /// Left of the hop its proxy appended, the client may write anything:
    /// it is not parsed, so it can neither be believed nor get the request
    /// refused (which would lose the client's address from the audit line).
    #[test]
    fn what_the_client_wrote_left_of_its_hop_is_not_parsed() {
        let trusted = proxies(&["10.0.0.0/8"]);
        for junk in ["not-an-ip", "", "1.2.3.4,,", "for=1.2.3.4", "\u{fc}nknown"] {
            // nginx's $proxy_add_x_forwarded_for: "<client's>, <client>".
            let appended = format!("{junk}, 203.0.113.7");
            let mut map = HeaderMap::new();
            map.append(
                X_FORWARDED_FOR,
                HeaderValue::from_bytes(appended.as_bytes()).expect("header value"),
            );
            assert_eq!(
                trusted.resolve(ip("10.0.0.1"), &map).map(|c| c.client_ip),
                Ok(ip("203.0.113.7")),
                "{junk:?}"
            );
            // A proxy that adds a line of its own instead (HAProxy).
            let mut map = HeaderMap::new();
            map.append(
                X_FORWARDED_FOR,
                HeaderValue::from_bytes(junk.as_bytes()).expect("header value"),
            );
            map.append(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
            assert_eq!(
                trusted.resolve(ip("10.0.0.1"), &map).map(|c| c.client_ip),
                Ok(ip("203.0.113.7")),
                "{junk:?} on a line of its own"
            );
        }
        // Only the last X-Forwarded-Proto value is the nearest proxy's.
        let proto = [("x-forwarded-proto", "ht tp, https")];
        let resolved = trusted
            .resolve(ip("10.0.0.1"), &headers(&proto))
            .expect("resolves");
        assert!(resolved.forwarded_https());

        // Forwarded: a client's broken line before the proxy's own line.
        let trusted = rfc7239(&["10.0.0.0/8"]);
        let lines = [
            ("forwarded", "for=\"unterminated"),
            ("forwarded", "for=203.0.113.7;proto=https"),
        ];
        assert_eq!(client(&trusted, "10.0.0.1", &lines), ip("203.0.113.7"));
        // A broken element left of the client's, on the same line, is
        // split but not read.
        let same_line = [(
            "forwarded",
            "for=300.1.1.1;proto=\"h ttp\", for=203.0.113.7",
        )];
        assert_eq!(client(&trusted, "10.0.0.1", &same_line), ip("203.0.113.7"));
    }

    #[test]
    fn unknown_or_obfuscated_hops_stop_at_the_last_trusted_hop() {
        let trusted = rfc7239(&["10.0.0.0/8"]);
        for node in ["unknown", "_hidden", "\"_abc:_port\"", "\"unknown:80\""] {
            let value = format!("for=203.0.113.7, for={node}, for=10.0.0.5");
            let forwarded = [("forwarded", value.as_str())];
            assert_eq!(
                client(&trusted, "10.0.0.1", &forwarded),
                ip("10.0.0.5"),
                "{node}"
            );
        }
        // An element without for= cannot be attributed either.
        let no_for = [("forwarded", "for=203.0.113.7, proto=https")];
        assert_eq!(client(&trusted, "10.0.0.1", &no_for), ip("10.0.0.1"));
        let xff = [("x-forwarded-for", "203.0.113.7, unknown")];
        assert_eq!(
            client(&proxies(&["10.0.0.0/8"]), "10.0.0.1", &xff),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn malformed_headers_from_a_trusted_proxy_are_refused() {
        let bad: &[(ForwardedHeaders, &'static str, &str)] = &[
            (
                ForwardedHeaders::XForwardedFor,
                "x-forwarded-for",
                "203.0.113.7, not-an-ip",
            ),
            (
                ForwardedHeaders::XForwardedFor,
                "x-forwarded-for",
                "10.0.0.5,,10.0.0.6",
            ),
            (ForwardedHeaders::XForwardedFor, "x-forwarded-for", ""),
            (
                ForwardedHeaders::XForwardedFor,
                "x-forwarded-for",
                "10.0.0.5, \u{fc}",
            ),
            (
                ForwardedHeaders::XForwardedFor,
                "x-forwarded-proto",
                "ht tp",
            ),
            (
                ForwardedHeaders::XForwardedFor,
                "x-forwarded-proto",
                "https, ",
            ),
            (ForwardedHeaders::Forwarded, "forwarded", "for"),
            (
                ForwardedHeaders::Forwarded,
                "forwarded",
                "for=203.0.113.7;for=198.51.100.1",
            ),
            (
                ForwardedHeaders::Forwarded,
                "forwarded",
                "for=\"[2001:db8::1]:99999\"",
            ),
            (
                ForwardedHeaders::Forwarded,
                "forwarded",
                "for=\"[2001:db8::1\"",
            ),
            (
                ForwardedHeaders::Forwarded,
                "forwarded",
                "for=\"unterminated",
            ),
            (ForwardedHeaders::Forwarded, "forwarded", "for=300.1.1.1"),
            (
                ForwardedHeaders::Forwarded,
                "forwarded",
                "for=203.0.113.7;proto=\"h ttp\"",
            ),
            (
                ForwardedHeaders::Forwarded,
                "forwarded",
                "for=203.0.113.7 junk",
            ),
            // The client's junk on the proxy's own line cannot be split
            // from it.
            (
                ForwardedHeaders::Forwarded,
                "forwarded",
                "for=\"x, for=203.0.113.7",
            ),
        ];
        for (kind, name, value) in bad {
            let trusted = TrustedProxies::new(nets(TRUSTED_PROXIES_FIELD, &["10.0.0.0/8"]), *kind);
            let mut map = HeaderMap::new();
            map.append(
                *name,
                HeaderValue::from_bytes(value.as_bytes()).expect("header value"),
            );
            let err = trusted.resolve(ip("10.0.0.1"), &map).expect_err(value);
            assert_eq!(ForwardedError::CODE, "forwarded_header_invalid");
            assert!(!err.reason.is_empty(), "{name}: {value}");
        }
    }

    #[test]
    fn x_forwarded_proto_only_from_a_trusted_peer_last_value_wins() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let resolved = trusted
            .resolve(
                ip("10.0.0.1"),
                &headers(&[
                    ("x-forwarded-proto", "http"),
                    ("x-forwarded-proto", "HTTPS"),
                ]),
            )
            .expect("resolves");
        assert_eq!(resolved.forwarded_proto.as_deref(), Some("https"));
        let resolved = trusted
            .resolve(
                ip("10.0.0.1"),
                &headers(&[("x-forwarded-proto", "https, http")]),
            )
            .expect("resolves");
        assert!(!resolved.forwarded_https());
    }
}
