//! Ports for servers a test starts.

use crate::SupportError;

/// A loopback port nothing listens on right now (the kernel's pick for
/// port 0), for a server that must be told its port before it starts.
pub fn free_port() -> Result<u16, SupportError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(SupportError::io("cannot pick a free port on 127.0.0.1"))
}
