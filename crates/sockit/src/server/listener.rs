//! Bound sockets of every kind behind one type each: [`Listener`] and [`Stream`] for
//! connections, [`DatagramSocket`] for datagrams, [`Peer`] for who is on the other side.
//!
//! Binding lives here too: SO_REUSEADDR always, SO_REUSEPORT when several event loops
//! each want their own listener on one port, stale Unix socket files cleaned up first.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown as How, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

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

/// One accepted (or connected) stream.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix stream.
    Unix(UnixStream),
}

/// A bound datagram socket.
#[derive(Debug)]
pub enum DatagramSocket {
    /// UDP.
    Udp(UdpSocket),
    /// Unix datagram.
    Unix(UnixDatagram),
}

/// The other side of a connection or the sender of a datagram.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// An IP peer.
    Inet(SocketAddr),
    /// A Unix peer; `None` when its socket is unnamed (it cannot receive replies then).
    Unix(Option<PathBuf>),
}

impl Peer {
    /// The peer's IP address, for allow/deny checks; Unix peers have none.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Inet(a) => Some(a.ip()),
            Peer::Unix(_) => None,
        }
    }

    fn from_unix(addr: &std::os::unix::net::SocketAddr) -> Peer {
        Peer::Unix(addr.as_pathname().map(Path::to_path_buf))
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Inet(a) => write!(f, "{a}"),
            Peer::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Peer::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
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

impl Stream {
    /// Connects to a stream endpoint (TCP addresses are tried in resolver order).
    pub fn connect(endpoint: &Endpoint, timeout: Option<Duration>) -> Result<Stream> {
        let what = || format!("connect {endpoint}");
        match endpoint {
            Endpoint::Tcp(hp) => {
                let mut last = None;
                for addr in hp.resolve()? {
                    let res = match timeout {
                        Some(t) => TcpStream::connect_timeout(&addr, t),
                        None => TcpStream::connect(addr),
                    };
                    match res {
                        Ok(s) => return Ok(Stream::Tcp(s)),
                        Err(e) => last = Some(e),
                    }
                }
                Err(Error::io(
                    what(),
                    last.unwrap_or_else(|| io::ErrorKind::NotFound.into()),
                ))
            }
            Endpoint::Unix(p) => UnixStream::connect(p)
                .map(Stream::Unix)
                .map_err(|e| Error::io(what(), e)),
            Endpoint::Udp(_) | Endpoint::UnixDgram(_) => Err(Error::Unsupported {
                model: "stream connect",
                what: "datagram endpoints",
            }),
        }
    }

    /// Shuts down the read, write or both halves.
    pub fn shutdown(&self, how: How) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// Blocking or non-blocking I/O.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            Stream::Unix(s) => s.set_nonblocking(on),
        }
    }

    /// How long a blocking read may wait (SO_RCVTIMEO); it then fails with `WouldBlock`.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
        }
    }

    /// How long a blocking write may wait for room (SO_SNDTIMEO); it then fails with
    /// `WouldBlock`, or returns what it wrote so far.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(t),
            Stream::Unix(s) => s.set_write_timeout(t),
        }
    }

    /// Another handle on the same connection (a `dup`).
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }

    // Without this, `Write`'s default writes only the first slice: one syscall per buffer.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write_vectored(bufs),
            Stream::Unix(s) => (&*s).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl DatagramSocket {
    /// Receives one datagram and who sent it.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Peer)> {
        match self {
            DatagramSocket::Udp(s) => s.recv_from(buf).map(|(n, a)| (n, Peer::Inet(a))),
            DatagramSocket::Unix(s) => s.recv_from(buf).map(|(n, a)| (n, Peer::from_unix(&a))),
        }
    }

    /// Sends one datagram to `peer`; an unnamed Unix peer cannot be answered.
    pub fn send_to(&self, buf: &[u8], peer: &Peer) -> io::Result<usize> {
        match (self, peer) {
            (DatagramSocket::Udp(s), Peer::Inet(a)) => s.send_to(buf, a),
            (DatagramSocket::Unix(s), Peer::Unix(Some(p))) => s.send_to(buf, p),
            _ => Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("cannot reply to {peer}"),
            )),
        }
    }

    /// Blocking or non-blocking I/O.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            DatagramSocket::Udp(s) => s.set_nonblocking(on),
            DatagramSocket::Unix(s) => s.set_nonblocking(on),
        }
    }

    /// Another handle on the same socket (a `dup`).
    pub fn try_clone(&self) -> io::Result<DatagramSocket> {
        Ok(match self {
            DatagramSocket::Udp(s) => DatagramSocket::Udp(s.try_clone()?),
            DatagramSocket::Unix(s) => DatagramSocket::Unix(s.try_clone()?),
        })
    }
}

macro_rules! impl_fd {
    ($($ty:ident { $($var:ident),* }),*) => {$(
        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                match self { $($ty::$var(s) => s.as_fd(),)* }
            }
        }
        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.as_fd().as_raw_fd()
            }
        }
    )*};
}
impl_fd!(
    Listener { Tcp, Unix },
    Stream { Tcp, Unix },
    DatagramSocket { Udp, Unix }
);

/// Removes a Unix socket file when the server that bound it goes away, but only while
/// the path still names that socket: whatever replaced it since (a regular file, another
/// server's socket) belongs to someone else and stays.
#[derive(Debug)]
pub(crate) struct UnixPathGuard {
    /// The path bound, removed on drop.
    path: PathBuf,
    /// Device and inode of the socket file as bound: how drop tells "still ours" from
    /// "replaced" (a path alone cannot).
    id: (u64, u64),
}

impl UnixPathGuard {
    /// Guards the socket file just bound at `path`, recording which file it is.
    pub(crate) fn new(path: PathBuf) -> io::Result<UnixPathGuard> {
        let id = file_id(&path)?;
        Ok(UnixPathGuard { path, id })
    }
}

/// Device and inode of what `path` names (not following a symlink).
fn file_id(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

impl Drop for UnixPathGuard {
    fn drop(&mut self) {
        // A check then a removal: a replacement in between would still be removed, a
        // window no path-based API closes; it is microseconds wide instead of a lifetime.
        if file_id(&self.path).is_ok_and(|id| id == self.id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What binding produced: the sockets, the address really bound, and the file to clean up.
#[derive(Debug)]
pub(crate) struct Bound<T> {
    pub(crate) sockets: Vec<T>,
    pub(crate) local: Endpoint,
    pub(crate) guard: Option<UnixPathGuard>,
}

/// Binds `count` stream listeners on one address (SO_REUSEPORT when more than one).
pub(crate) fn bind_stream(endpoint: &Endpoint, count: usize) -> Result<Bound<Listener>> {
    match endpoint {
        Endpoint::Tcp(hp) => {
            let (sockets, addr) = bind_inet(hp, Type::STREAM, count)?;
            let sockets = sockets
                .into_iter()
                .map(|s| Listener::Tcp(s.into()))
                .collect();
            Ok(Bound {
                sockets,
                local: Endpoint::tcp(addr),
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
        Endpoint::Tcp(_) | Endpoint::Unix(_) => Err(Error::Unsupported {
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

/// A socket file left by a server that died is removed; one still in use is an error.
fn clear_stale_socket(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let in_use = || {
        Error::io(
            format!("bind unix:{}", path.display()),
            io::ErrorKind::AddrInUse.into(),
        )
    };
    if !meta.file_type().is_socket() {
        return Err(in_use());
    }
    let alive = UnixStream::connect(path).is_ok()
        || UnixDatagram::unbound()
            .and_then(|s| s.connect(path))
            .is_ok();
    if alive {
        return Err(in_use());
    }
    std::fs::remove_file(path).map_err(|e| Error::io(format!("remove stale {}", path.display()), e))
}
