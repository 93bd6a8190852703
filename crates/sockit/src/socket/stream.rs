//! [`Stream`]: one connected stream socket, TCP or Unix, behind one type; what servers
//! accept and what clients connect with.

use std::io::{self, Read, Write};
use std::net::{Shutdown as How, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::addr::Endpoint;
use crate::error::{Error, Result};

/// One accepted (or connected) stream.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix stream.
    Unix(UnixStream),
}

impl Stream {
    /// Connects to a stream endpoint (TCP addresses are tried in resolver order). For a
    /// `tls://` endpoint this is the TCP connection under it: the handshake is
    /// `socket::TlsStream::connect`'s.
    pub fn connect(endpoint: &Endpoint, timeout: Option<Duration>) -> Result<Stream> {
        let what = || format!("connect {endpoint}");
        match endpoint {
            Endpoint::Tcp(hp) | Endpoint::Tls(hp) => {
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
