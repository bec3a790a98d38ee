//! The listening sockets: one per worker on the same address, each with `SO_REUSEPORT` so that the
//! kernel spreads incoming connections over the workers (the reference's workers each bind their
//! own socket the same way).

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use bai_config::HostPort;
use socket2::{Domain, Protocol, Socket, Type};

/// The accept backlog of every listener (the reference's `TCPSite(backlog=1024)`).
pub const BACKLOG: i32 = 1024;

/// Why `service-addr` could not be listened on.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("[manager] service-addr {addr}: cannot resolve the host: {source}")]
    Resolve {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("[manager] service-addr {addr}: the host resolves to no address")]
    NoAddress { addr: String },
    #[error("[manager] service-addr {addr}: cannot listen: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// The socket address `service-addr` names (its first address when a host name resolves to several).
pub fn resolve(addr: &HostPort) -> Result<SocketAddr, BindError> {
    let host = addr.host.trim_start_matches('[').trim_end_matches(']');
    (host, addr.port)
        .to_socket_addrs()
        .map_err(|source| BindError::Resolve {
            addr: addr.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| BindError::NoAddress {
            addr: addr.to_string(),
        })
}

/// Binds `count` listeners on `addr`, all with `SO_REUSEPORT`, non-blocking, ready for tokio. With
/// port 0 the first listener's port (chosen by the kernel) is shared by the others.
pub fn bind_listeners(addr: SocketAddr, count: usize) -> Result<Vec<TcpListener>, BindError> {
    let mut addr = addr;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let listener = bind_one(addr).map_err(|source| BindError::Listen { addr, source })?;
        if addr.port() == 0 {
            addr = listener
                .local_addr()
                .map_err(|source| BindError::Listen { addr, source })?;
        }
        listeners.push(listener);
    }
    Ok(listeners)
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_listeners_share_one_port() {
        let first = bind_listeners("127.0.0.1:0".parse().expect("addr"), 1).expect("bind");
        let addr = first[0].local_addr().expect("local addr");
        let more = bind_listeners(addr, 2).expect("bind again with SO_REUSEPORT");
        assert_eq!(more[1].local_addr().expect("local addr"), addr);
    }

    #[test]
    fn port_zero_is_chosen_once_for_all_listeners() {
        let listeners = bind_listeners("127.0.0.1:0".parse().expect("addr"), 3).expect("bind");
        let port = listeners[0].local_addr().expect("local addr").port();
        assert_ne!(port, 0);
        for listener in &listeners {
            assert_eq!(listener.local_addr().expect("local addr").port(), port);
        }
    }

    #[test]
    fn a_port_in_use_without_reuseport_is_an_error_naming_the_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("local addr");
        let error = bind_listeners(addr, 1).expect_err("in use");
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
    }

    #[test]
    fn host_names_resolve() {
        let addr = resolve(&HostPort::new("localhost", 8081)).expect("resolve");
        assert_eq!(addr.port(), 8081);
        assert!(addr.ip().is_loopback());
        let v6 = resolve(&HostPort::new("::1", 8081)).expect("resolve");
        assert!(v6.is_ipv6());
    }
}
