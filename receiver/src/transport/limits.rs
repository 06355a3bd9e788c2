//! The bounds on every stage of a connection, and their defaults.

use std::time::Duration;

/// How long a client may take to send its request line and headers. Providers
/// send them at once; a client trickling header bytes (slowloris) would
/// otherwise hold a connection, and its buffer, for as long as it likes. On
/// HTTP/1.1 this is also how long an idle keep-alive connection stays open
/// waiting for its next request.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to complete the TLS handshake. A connection
/// that opens TCP and never says hello costs a connection slot until this.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most header bytes a request may carry (HTTP/1.1 read buffer, HTTP/2
/// header list). Provider headers are a few KiB; the cap bounds the memory a
/// request takes before any of it is looked at.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The most connections served at once. At the cap the listener stops
/// accepting until a connection closes: new connections wait in the kernel's
/// accept backlog (where the client's own connect timeout applies) instead of
/// being accepted and dropped, so a burst of legitimate deliveries is delayed
/// rather than refused, and the process never holds more than this many
/// sockets and TLS sessions.
pub const MAX_CONNECTIONS: usize = 10_000;

/// The most concurrent HTTP/2 streams (requests) per connection; bounds what
/// one multiplexed client can make the receiver work on at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 100;

/// How often an idle HTTP/2 connection is pinged, and how long the answer may
/// take: a peer that vanished without closing (a NAT timeout, a dead node)
/// stops holding a connection slot.
pub const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// See [`HTTP2_KEEP_ALIVE_INTERVAL`].
pub const HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the certificate and key files are checked for changes. The
/// kubelet syncs mounted Secrets about once a minute, so a few seconds more
/// hardly matters, and reading two small files is cheap.
pub const CERT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// How long a new connection may take to send its first request after it
/// opened (and, over TLS, after the handshake): a client that connects and
/// says nothing, or sends half an HTTP/2 preface, is closed after this.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection with no request in progress stays open when its
/// peer is a client (not a trusted proxy): HTTP/1.1 keep-alive and HTTP/2
/// alike, whatever pings it answers.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// The idle timeout for connections from trusted proxies: longer than the
/// upstream keep-alive of common ingress controllers (ingress-nginx 60 s,
/// Traefik 90 s), so the receiver never closes a connection the proxy is
/// about to reuse (which would fail that delivery with a 502).
pub const PROXY_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The most connections one source (an IPv4 address, an IPv6 /64) may hold
/// at once, so one address cannot fill [`MAX_CONNECTIONS`]. Trusted proxies
/// carry many clients and are not held to it.
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 128;

/// How long connections in flight may take to finish after shutdown was
/// requested: below Kubernetes' default 30 s grace period, so the process
/// exits on its own instead of being killed mid-answer.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// The connection limits; [`Limits::default`] holds the constants above.
/// Tests shorten them.
#[derive(Debug, Clone)]
pub struct Limits {
    pub first_request_timeout: Duration,
    pub idle_timeout: Duration,
    pub proxy_idle_timeout: Duration,
    pub max_connections_per_source: usize,
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub max_concurrent_streams: u32,
    pub http2_keep_alive_interval: Duration,
    pub http2_keep_alive_timeout: Duration,
    pub cert_reload_interval: Duration,
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            first_request_timeout: FIRST_REQUEST_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            proxy_idle_timeout: PROXY_IDLE_TIMEOUT,
            max_connections_per_source: MAX_CONNECTIONS_PER_SOURCE,
            header_read_timeout: HEADER_READ_TIMEOUT,
            tls_handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
            max_header_bytes: MAX_HEADER_BYTES,
            max_connections: MAX_CONNECTIONS,
            max_concurrent_streams: MAX_CONCURRENT_STREAMS,
            http2_keep_alive_interval: HTTP2_KEEP_ALIVE_INTERVAL,
            http2_keep_alive_timeout: HTTP2_KEEP_ALIVE_TIMEOUT,
            cert_reload_interval: CERT_RELOAD_INTERVAL,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}
