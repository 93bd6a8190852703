//! [`Wire`]: a connection's bytes as a client or a driver moves them, on a plain socket or
//! inside TLS. The one type the relay and the transfer (and any later driver) hold, so
//! "plain or TLS" is decided once, where the connection is made.

use std::io::{self, Read, Write};
use std::net::Shutdown as How;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use super::Stream;
use super::tls::TlsStream;

/// A connection, plain or TLS. Reads and writes go through TLS when there is one; a TLS
/// peer that closed its socket without close_notify reads as `UnexpectedEof`, for the
/// caller to judge (a protocol with its own lengths and digests may take it as an end).
#[derive(Debug)]
pub enum Wire {
    /// TCP or Unix, as it was accepted or connected.
    Plain(Stream),
    /// TLS over TCP with the handshake made (boxed: rustls's state is large).
    Tls(Box<TlsStream>),
}

impl Wire {
    /// The socket under the connection, for its options and timeouts: a TLS read waits on
    /// it too.
    pub fn socket(&self) -> &Stream {
        match self {
            Wire::Plain(s) => s,
            Wire::Tls(t) => t.get_ref(),
        }
    }

    /// Switches the socket's blocking mode (TLS reads and writes follow it).
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Wire::Plain(s) => s.set_nonblocking(on),
            Wire::Tls(t) => t.set_nonblocking(on),
        }
    }

    /// The half-close: `shutdown(SHUT_WR)`, or TLS's close_notify and then `SHUT_WR`.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(s) => s.shutdown(How::Write),
            Wire::Tls(t) => t.shutdown_write(),
        }
    }

    /// Ends a finished conversation cleanly where a clean end must be said: close_notify
    /// over TLS (so the peer can tell the end from a cut); nothing on a plain socket,
    /// whose close says it.
    pub fn close_notify(&mut self) {
        if let Wire::Tls(t) = self {
            let _ = t.shutdown_write();
        }
    }

    /// TLS records (or its close_notify) wait for room in the socket.
    pub fn wants_write(&self) -> bool {
        matches!(self, Wire::Tls(t) if t.wants_write())
    }

    /// Sends what TLS has queued, as far as the socket takes it (non-blocking sockets:
    /// `WouldBlock` when it takes nothing); nothing to do on a plain socket.
    pub fn write_pending(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(_) => Ok(()),
            Wire::Tls(t) => t.write_pending(),
        }
    }

    /// TLS holds decrypted bytes (or the peer's close_notify) that poll cannot announce.
    pub fn buffered(&mut self) -> bool {
        match self {
            Wire::Plain(_) => false,
            Wire::Tls(t) => t.buffered(),
        }
    }
}

impl From<Stream> for Wire {
    fn from(s: Stream) -> Wire {
        Wire::Plain(s)
    }
}

impl From<TlsStream> for Wire {
    fn from(t: TlsStream) -> Wire {
        Wire::Tls(Box::new(t))
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => (&*s).read(buf),
            Wire::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => (&*s).write(buf),
            Wire::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(s) => (&*s).flush(),
            Wire::Tls(t) => t.flush(),
        }
    }
}

impl AsFd for Wire {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket().as_fd()
    }
}

// For tokio's `AsyncFd`, which registers a descriptor by its number: the forwarder waits
// on a wire's readiness that way, plain or TLS alike.
impl AsRawFd for Wire {
    fn as_raw_fd(&self) -> RawFd {
        self.socket().as_fd().as_raw_fd()
    }
}
