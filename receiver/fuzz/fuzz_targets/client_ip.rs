//! The client-IP header parsers (`X-Forwarded-For`, RFC 7239 `Forwarded`,
//! `X-Forwarded-Proto`, and `X-Real-IP`, which is never read) through
//! `TrustedProxies::resolve`, for proxies of either `forwardedHeaders`: must
//! never panic, an untrusted peer's headers must change nothing, and the
//! headers of the kind not configured must change nothing either.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use hookwarden_receiver::clientip::{
    ForwardedHeaders, Networks, TRUSTED_PROXIES_FIELD, TrustedProxies,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

static NETWORKS: LazyLock<Networks> = LazyLock::new(|| {
    let networks = [
        "10.0.0.0/8",
        "192.168.1.1",
        "fd00::/8",
        "::ffff:172.16.0.0/108",
    ]
    .map(str::to_owned);
    Networks::parse(TRUSTED_PROXIES_FIELD, &networks).expect("networks")
});
static X_FORWARDED_FOR: LazyLock<TrustedProxies> =
    LazyLock::new(|| TrustedProxies::new(NETWORKS.clone(), ForwardedHeaders::XForwardedFor));
static RFC7239: LazyLock<TrustedProxies> =
    LazyLock::new(|| TrustedProxies::new(NETWORKS.clone(), ForwardedHeaders::Forwarded));

#[derive(Debug, Arbitrary)]
struct Request {
    peer: Peer,
    rfc7239: bool,
    headers: Vec<(Which, Vec<u8>)>,
}

#[derive(Debug, Arbitrary)]
enum Peer {
    Trusted,
    TrustedV6,
    Other([u8; 4]),
    OtherV6([u8; 16]),
}

#[derive(Debug, Arbitrary, PartialEq)]
enum Which {
    XForwardedFor,
    Forwarded,
    XForwardedProto,
    XRealIp,
}

fuzz_target!(|request: Request| {
    let peer = match request.peer {
        Peer::Trusted => IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        Peer::TrustedV6 => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        Peer::Other(b) => IpAddr::V4(Ipv4Addr::from(b)),
        Peer::OtherV6(b) => IpAddr::V6(Ipv6Addr::from(b)),
    };
    let (proxies, read): (&TrustedProxies, &[Which]) = if request.rfc7239 {
        (&RFC7239, &[Which::Forwarded])
    } else {
        (&X_FORWARDED_FOR, &[Which::XForwardedFor, Which::XForwardedProto])
    };
    let mut headers = HeaderMap::new();
    let mut configured = HeaderMap::new();
    for (which, raw) in &request.headers {
        let name = match which {
            Which::XForwardedFor => "x-forwarded-for",
            Which::Forwarded => "forwarded",
            Which::XForwardedProto => "x-forwarded-proto",
            Which::XRealIp => "x-real-ip",
        };
        if let Ok(value) = HeaderValue::from_bytes(raw) {
            if read.contains(which) {
                configured.append(HeaderName::from_static(name), value.clone());
            }
            headers.append(HeaderName::from_static(name), value);
        }
    }
    let resolved = proxies.resolve(peer, &headers);
    assert_eq!(
        proxies.resolve(peer, &configured),
        resolved,
        "a header of the kind not configured changed the answer"
    );
    let Ok(client) = resolved else {
        return;
    };
    assert_eq!(client.peer_ip, peer.to_canonical());
    if !NETWORKS.contains(peer) {
        assert_eq!(
            client.client_ip, client.peer_ip,
            "an untrusted peer chose its client address"
        );
    }
    if client.forwarded_proto.is_some() {
        assert!(NETWORKS.contains(peer), "an untrusted peer set the scheme");
    }
});
