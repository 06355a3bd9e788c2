//! The receiver's listener: TLS termination (or explicitly not), HTTP/1.1 and
//! HTTP/2, and the connection limits that keep one hostile client from
//! exhausting the process.
//!
//! Webhook endpoints face the internet, so every stage of a connection is
//! bounded: the TLS handshake, reading the request headers, the header size,
//! the number of open connections and of HTTP/2 streams per connection, and
//! the drain on shutdown. The request pipeline ([`crate::server`]) bounds the
//! body itself.
//!
//! TLS uses rustls with the ring provider, chosen explicitly rather than
//! through a process-wide default, so another dependency enabling a second
//! provider cannot change (or break) what this listener offers. The
//! certificate is re-read from disk while serving, because Kubernetes
//! updates a mounted Secret (a cert-manager renewal, say) by swapping a
//! symlink under the running pod; a restart must not be needed to pick up a
//! renewed certificate.

mod connection;
mod limits;
mod listener;
mod mode;
mod peers;
mod stats;
mod tls;

pub use self::limits::{
    CERT_RELOAD_INTERVAL, DRAIN_TIMEOUT, FIRST_REQUEST_TIMEOUT, HEADER_READ_TIMEOUT,
    HTTP2_KEEP_ALIVE_INTERVAL, HTTP2_KEEP_ALIVE_TIMEOUT, IDLE_TIMEOUT, Limits,
    MAX_CONCURRENT_STREAMS, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_SOURCE, MAX_HEADER_BYTES,
    PROXY_IDLE_TIMEOUT, TLS_HANDSHAKE_TIMEOUT,
};
pub use self::listener::{Stopped, Transport};
pub use self::mode::{CertificateError, Mode, TlsMode, TransportError};
pub use self::peers::PeerPolicy;
pub use self::stats::TransportStats;
