//! [`Listener`], a listening stream socket, and binding: SO_REUSEADDR always,
//! SO_REUSEPORT when several event loops each want their own listener on one port, stale
//! Unix socket files cleared first (see [`super::unix_path`]).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::{UnixDatagram, UnixListener};

use socket2::{Domain, Protocol, Socket, Type};

use super::unix_path::{UnixPathGuard, clear_stale_socket};
use super::{DatagramSocket, Peer, Stream};
use crate::addr::{Endpoint, HostPort};
use crate::error::{Error, Result};

/// Pending-connection queue length; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

/// A listening stream socket.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix stream.
    Unix(UnixListener),
}

impl Listener {
    /// Accepts one connection (blocking or not, as the listener is set).
    /// TCP connections get TCP_NODELAY: a reply is written whole as soon as the handler
    /// produced it, and Nagle's delay would only hold back the last small segment.
    pub fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, a)| {
                // Best effort: a failure concerns this one connection, never the listener.
                let _ = s.set_nodelay(true);
                (Stream::Tcp(s), Peer::Inet(a))
            }),
            Listener::Unix(l) => l
                .accept()
                .map(|(s, a)| (Stream::Unix(s), Peer::from_unix(&a))),
        }
    }

    /// Switches the listener between blocking and non-blocking accepts.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(on),
            Listener::Unix(l) => l.set_nonblocking(on),
        }
    }

    /// Another handle on the same listening socket (a `dup`).
    pub fn try_clone(&self) -> io::Result<Listener> {
        Ok(match self {
            Listener::Tcp(l) => Listener::Tcp(l.try_clone()?),
            Listener::Unix(l) => Listener::Unix(l.try_clone()?),
        })
    }
}

/// `accept` errors that concern one connection (or a momentary shortage) and must not
/// stop the server: retry after a short back-off, as mini-redis does.
pub(crate) fn accept_error_is_transient(e: &io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | TimedOut
    ) || matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EPROTO | libc::EPERM
        )
    )
}

/// What binding produced: the sockets, the address really bound, and the file to clean up.
#[derive(Debug)]
pub(crate) struct Bound<T> {
    /// One socket per event loop (clones of one for Unix, which has no SO_REUSEPORT).
    pub(crate) sockets: Vec<T>,
    /// The address really bound: what port 0 became, to print and to connect to.
    pub(crate) local: Endpoint,
    /// For Unix endpoints: removes the socket file when the owner is done with it.
    pub(crate) guard: Option<UnixPathGuard>,
}

/// Binds `count` stream listeners on one address (SO_REUSEPORT when more than one).
/// A `tls://` address binds TCP: TLS is spoken on the accepted connections, by whoever
/// accepts them, and the local endpoint keeps saying `tls://`.
pub(crate) fn bind_stream(endpoint: &Endpoint, count: usize) -> Result<Bound<Listener>> {
    match endpoint {
        Endpoint::Tcp(hp) | Endpoint::Tls(hp) => {
            let (sockets, addr) = bind_inet(hp, Type::STREAM, count)?;
            let sockets = sockets
                .into_iter()
                .map(|s| Listener::Tcp(s.into()))
                .collect();
            let local = match endpoint {
                Endpoint::Tls(_) => Endpoint::Tls(addr.into()),
                _ => Endpoint::tcp(addr),
            };
            Ok(Bound {
                sockets,
                local,
                guard: None,
            })
        }
        Endpoint::Unix(path) => {
            clear_stale_socket(path)?;
            let l =
                UnixListener::bind(path).map_err(|e| Error::io(format!("bind {endpoint}"), e))?;
            let guard = UnixPathGuard::new(path.clone())
                .map_err(|e| Error::io(format!("stat {endpoint}"), e))?;
            // One Unix listener shared by every loop: Unix sockets have no SO_REUSEPORT.
            let mut sockets = vec![Listener::Unix(l)];
            for _ in 1..count {
                sockets.push(
                    sockets[0]
                        .try_clone()
                        .map_err(|e| Error::io("dup listener", e))?,
                );
            }
            Ok(Bound {
                sockets,
                local: endpoint.clone(),
                guard: Some(guard),
            })
        }
        Endpoint::Udp(_) | Endpoint::UnixDgram(_) => Err(Error::Unsupported {
            model: "stream server",
            what: "datagram endpoints",
        }),
    }
}

/// Binds `count` datagram sockets on one address (SO_REUSEPORT when more than one).
pub(crate) fn bind_datagram(endpoint: &Endpoint, count: usize) -> Result<Bound<DatagramSocket>> {
    match endpoint {
        Endpoint::Udp(hp) => {
            let (sockets, addr) = bind_inet(hp, Type::DGRAM, count)?;
            let sockets = sockets
                .into_iter()
                .map(|s| DatagramSocket::Udp(s.into()))
                .collect();
            Ok(Bound {
                sockets,
                local: Endpoint::udp(addr),
                guard: None,
            })
        }
        Endpoint::UnixDgram(path) => {
            clear_stale_socket(path)?;
            let s =
                UnixDatagram::bind(path).map_err(|e| Error::io(format!("bind {endpoint}"), e))?;
            let guard = UnixPathGuard::new(path.clone())
                .map_err(|e| Error::io(format!("stat {endpoint}"), e))?;
            let mut sockets = vec![DatagramSocket::Unix(s)];
            for _ in 1..count {
                sockets.push(
                    sockets[0]
                        .try_clone()
                        .map_err(|e| Error::io("dup socket", e))?,
                );
            }
            Ok(Bound {
                sockets,
                local: endpoint.clone(),
                guard: Some(guard),
            })
        }
        Endpoint::Tcp(_) | Endpoint::Tls(_) | Endpoint::Unix(_) => Err(Error::Unsupported {
            model: "datagram server",
            what: "stream endpoints",
        }),
    }
}

/// Binds the first resolved address that works, then `count - 1` more on the port it got.
fn bind_inet(hp: &HostPort, ty: Type, count: usize) -> Result<(Vec<Socket>, SocketAddr)> {
    let reuse_port = count > 1;
    let mut last = None;
    for addr in hp.resolve()? {
        match bind_one(addr, ty, reuse_port) {
            Ok(first) => {
                let local = first
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_socket())
                    .unwrap_or(addr);
                let mut sockets = vec![first];
                for _ in 1..count {
                    sockets.push(
                        bind_one(local, ty, true)
                            .map_err(|e| Error::io(format!("bind {local} (SO_REUSEPORT)"), e))?,
                    );
                }
                return Ok((sockets, local));
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    let (addr, e) = last.expect("resolve returns at least one address");
    Err(Error::io(format!("bind {addr}"), e))
}

fn bind_one(addr: SocketAddr, ty: Type, reuse_port: bool) -> io::Result<Socket> {
    let proto = if ty == Type::STREAM {
        Protocol::TCP
    } else {
        Protocol::UDP
    };
    let socket = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // `[::]:P` then means IPv6 only, as the user wrote, and leaves IPv4 to others.
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    if ty == Type::STREAM {
        socket.listen(BACKLOG)?;
    }
    Ok(socket)
}
