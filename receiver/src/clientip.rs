//! Who is delivering: the client IP and scheme of a request, and the source
//! networks an endpoint accepts.
//!
//! Behind an ingress controller every request arrives from the proxy, so the
//! socket peer alone says nothing about the provider. The proxy reports the
//! original client in `X-Forwarded-For` or RFC 7239 `Forwarded`, but anyone
//! can send those headers, so they are believed only from a peer inside
//! `spec.trustedProxies`, and even then only the hops appended by trusted
//! proxies are: the list is walked right to left (nearest hop first) and the
//! first address outside the trusted networks is the client. Everything
//! left of it was written by the client itself and may be forged.
//!
//! All of this is pure (no I/O) so every rule is unit-tested here.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use axum::http::header::FORWARDED;
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

/// The proxies whose forwarding headers are believed (`spec.trustedProxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Networks);

impl TrustedProxies {
    /// Trusts the proxies in `networks`; empty trusts none.
    pub fn new(networks: Networks) -> Self {
        Self(networks)
    }

    /// Whether `peer` is one of the trusted proxies.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.0.contains(peer)
    }

    /// Resolves the client of a request from socket peer `peer`.
    ///
    /// `Forwarded` is used when present, else `X-Forwarded-For`: a proxy that
    /// speaks RFC 7239 says so explicitly, and the two are not mixed because
    /// their hops need not line up. The scheme comes from the `Forwarded`
    /// element of the client's hop (it was written by the outermost trusted
    /// proxy, the one that saw the client's connection), else from the last
    /// `X-Forwarded-Proto` value (written by the nearest proxy).
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> Result<ClientAddr, ForwardedError> {
        let peer_ip = peer.to_canonical();
        let direct = ClientAddr {
            client_ip: peer_ip,
            peer_ip,
            forwarded_proto: None,
        };
        if !self.0.contains(peer_ip) {
            // Headers from an untrusted peer are the client's own claims.
            return Ok(direct);
        }
        if headers.contains_key(FORWARDED) {
            let elements = forwarded_elements(headers)?;
            let (client_ip, proto) =
                self.walk(peer_ip, elements.into_iter().map(|e| (e.node, e.proto)));
            return Ok(ClientAddr {
                client_ip,
                peer_ip,
                forwarded_proto: proto,
            });
        }
        let hops = x_forwarded_for(headers)?;
        let (client_ip, ()) = self.walk(peer_ip, hops.into_iter().map(|node| (node, ())));
        Ok(ClientAddr {
            client_ip,
            peer_ip,
            forwarded_proto: x_forwarded_proto(headers)?,
        })
    }

    /// Walks `hops` (left to right as sent) from the right, starting at the
    /// trusted `peer`. Returns the client and the extra data of its hop
    /// (that of the leftmost hop when every hop is trusted). An unknown or
    /// obfuscated hop stops the walk at the last trusted address: nothing
    /// left of it can be attributed.
    fn walk<T: Default>(
        &self,
        peer: IpAddr,
        hops: impl DoubleEndedIterator<Item = (Node, T)>,
    ) -> (IpAddr, T) {
        let mut last_trusted = peer;
        let mut data = T::default();
        for (node, hop_data) in hops.rev() {
            data = hop_data;
            match node {
                Node::Ip(ip) if self.0.contains(ip) => last_trusted = ip,
                Node::Ip(ip) => return (ip, data),
                Node::Unknown => return (last_trusted, data),
            }
        }
        (last_trusted, data)
    }
}

/// One hop of a forwarding header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Ip(IpAddr),
    /// `unknown`, an obfuscated identifier (`_hidden`) or a missing `for=`.
    Unknown,
}

/// All `X-Forwarded-For` hops, over every occurrence of the header, in order.
fn x_forwarded_for(headers: &HeaderMap) -> Result<Vec<Node>, ForwardedError> {
    let mut hops = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        let value = value
            .to_str()
            .map_err(|_| ForwardedError::new("X-Forwarded-For", "not ASCII"))?;
        for hop in value.split(',') {
            let hop = hop.trim();
            let node = if hop.eq_ignore_ascii_case("unknown") {
                Node::Unknown
            } else {
                parse_address(hop).map(Node::Ip).ok_or(ForwardedError::new(
                    "X-Forwarded-For",
                    "a hop is not an IP address",
                ))?
            };
            hops.push(node);
        }
    }
    Ok(hops)
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

/// The last `X-Forwarded-Proto` value, over every occurrence of the header.
fn x_forwarded_proto(headers: &HeaderMap) -> Result<Option<String>, ForwardedError> {
    let mut last = None;
    for value in headers.get_all(X_FORWARDED_PROTO) {
        let value = value
            .to_str()
            .map_err(|_| ForwardedError::new("X-Forwarded-Proto", "not ASCII"))?;
        for proto in value.split(',') {
            last = Some(
                parse_scheme(proto.trim())
                    .ok_or(ForwardedError::new("X-Forwarded-Proto", "not a URI scheme"))?,
            );
        }
    }
    Ok(last)
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

/// All `Forwarded` elements, over every occurrence of the header, in order.
fn forwarded_elements(headers: &HeaderMap) -> Result<Vec<Element>, ForwardedError> {
    let mut elements = Vec::new();
    for value in headers.get_all(FORWARDED) {
        let value = value
            .to_str()
            .map_err(|_| ForwardedError::new(FORWARDED_NAME, "not ASCII"))?;
        for pairs in split_elements(value)? {
            elements.push(element(&pairs)?);
        }
    }
    Ok(elements)
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

    fn proxies(values: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets(TRUSTED_PROXIES_FIELD, values))
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
        let none = TrustedProxies::default();
        let forged = [
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=203.0.113.8"),
        ];
        assert_eq!(client(&none, "127.0.0.1", &forged), ip("127.0.0.1"));
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored_even_malformed() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let resolved = trusted
            .resolve(
                ip("198.51.100.1"),
                &headers(&[
                    ("x-forwarded-for", "203.0.113.7"),
                    ("x-forwarded-proto", "https"),
                    ("forwarded", "garbage"),
                ]),
            )
            .expect("not even parsed");
        assert_eq!(resolved.client_ip, ip("198.51.100.1"));
        assert_eq!(resolved.forwarded_proto, None);
        assert!(!resolved.forwarded_https());
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
        let trusted = proxies(&["10.0.0.0/8"]);
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

    #[test]
    fn forwarded_takes_precedence_over_x_forwarded_for() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let both = [
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=203.0.113.7"),
        ];
        assert_eq!(client(&trusted, "10.0.0.1", &both), ip("203.0.113.7"));
    }

    #[test]
    fn unknown_or_obfuscated_hops_stop_at_the_last_trusted_hop() {
        let trusted = proxies(&["10.0.0.0/8"]);
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
        assert_eq!(client(&trusted, "10.0.0.1", &xff), ip("10.0.0.1"));
    }

    #[test]
    fn malformed_headers_from_a_trusted_proxy_are_refused() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let bad: &[(&'static str, &str)] = &[
            ("x-forwarded-for", "203.0.113.7, not-an-ip"),
            ("x-forwarded-for", "203.0.113.7,,10.0.0.5"),
            ("x-forwarded-for", ""),
            ("x-forwarded-proto", "ht tp"),
            ("forwarded", "for"),
            ("forwarded", "for=203.0.113.7;for=198.51.100.1"),
            ("forwarded", "for=\"[2001:db8::1]:99999\""),
            ("forwarded", "for=\"[2001:db8::1\""),
            ("forwarded", "for=\"unterminated"),
            ("forwarded", "for=300.1.1.1"),
            ("forwarded", "for=203.0.113.7;proto=\"h ttp\""),
            ("forwarded", "for=203.0.113.7 junk"),
        ];
        for (name, value) in bad {
            let err = trusted
                .resolve(ip("10.0.0.1"), &headers(&[(name, value)]))
                .expect_err(value);
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
