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

/// A loopback port that refuses every connection for as long as it lives:
/// a socket bound to it that never listens. Unlike a [`free_port`], which
/// another test may bind before it is used, no other socket can take it, so
/// "nothing listens there" stays true (a destination or backend that is
/// gone).
#[derive(Debug)]
pub struct RefusingPort {
    _socket: tokio::net::TcpSocket,
    port: u16,
}

impl RefusingPort {
    /// Binds a port the kernel picks on 127.0.0.1.
    pub fn bind() -> Result<Self, SupportError> {
        let io = || SupportError::io("cannot bind a refusing port on 127.0.0.1");
        let socket = tokio::net::TcpSocket::new_v4().map_err(io())?;
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .map_err(io())?;
        let port = socket.local_addr().map_err(io())?.port();
        Ok(Self {
            _socket: socket,
            port,
        })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusing_port_refuses_and_cannot_be_taken() {
        let refusing = RefusingPort::bind().expect("bound");
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], refusing.port()));
        let refused = std::net::TcpStream::connect(address).expect_err("nothing listens");
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(std::net::TcpListener::bind(address).is_err(), "taken");
    }
}
