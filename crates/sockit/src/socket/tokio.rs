//! sockit on tokio, once: [`TokioStream`], the one async stream type (TCP or Unix, plain
//! or in TLS: see `tokio_tls`), and [`accept_loop`], the one accept loop of every tokio driver (the `async` model, exec,
//! chat). The loop does what every sockit server does on accepting (TCP_NODELAY, the
//! admission [`Gate`], back-off on transient errors, stop on [`Shutdown`]); what becomes
//! of an admitted connection is the caller's `spawn` function, the one difference
//! between the drivers.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use super::gate::{Gate, Slot};
use super::listener::accept_error_is_transient;
use super::tokio_tls::TokioTls;
use super::{Listener, Peer, Shutdown};
use crate::error::{Error, Result};

/// How long accepting pauses after a transient error (a reset connection, no descriptors
/// left), so a shortage does not become a busy loop.
const BACK_OFF: Duration = Duration::from_millis(10);

/// An accepted connection as a tokio stream: `AsyncRead`/`AsyncWrite` for tasks that
/// await it, and readiness with `try_*` calls (all on `&self`) for drivers that share it
/// between tasks, as chat's hub and client tasks do. Over TLS the same calls carry
/// plaintext; a writer must then also flush ([`TokioStream::try_flush`], `poll_flush`).
#[derive(Debug)]
pub enum TokioStream {
    /// TCP.
    Tcp(tokio::net::TcpStream),
    /// Unix stream.
    Unix(tokio::net::UnixStream),
    /// TLS over one of the others (boxed: rustls's state is large, and the plain
    /// variants should not carry its size).
    Tls(Box<TokioTls>),
}

impl TokioStream {
    /// Waits until the socket is readable (or closed).
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            TokioStream::Tcp(s) => s.readable().await,
            TokioStream::Unix(s) => s.readable().await,
            TokioStream::Tls(t) => t.readable().await,
        }
    }

    /// Waits until the socket is writable (or closed).
    pub async fn writable(&self) -> io::Result<()> {
        match self {
            TokioStream::Tcp(s) => s.writable().await,
            TokioStream::Unix(s) => s.writable().await,
            TokioStream::Tls(t) => t.writable().await,
        }
    }

    /// Reads what is there into `buf`; `WouldBlock` when nothing is.
    pub fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            TokioStream::Tcp(s) => s.try_read_buf(buf),
            TokioStream::Unix(s) => s.try_read_buf(buf),
            TokioStream::Tls(t) => t.try_read_buf(buf),
        }
    }

    /// Writes what the kernel takes now; `WouldBlock` when it takes nothing. (Over TLS:
    /// what fits in the bounded record backlog, see `tokio_tls`.)
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            TokioStream::Tcp(s) => s.try_write(bytes),
            TokioStream::Unix(s) => s.try_write(bytes),
            TokioStream::Tls(t) => t.try_write(bytes),
        }
    }

    /// Runs `f` (system calls on the descriptor) when the socket is ready for
    /// `interest`; `f` must return `WouldBlock` when the socket is not, so that tokio
    /// clears the readiness it consumed. Refused over TLS: bytes written past it would
    /// not be encrypted.
    pub fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        match self {
            TokioStream::Tcp(s) => s.try_io(interest, f),
            TokioStream::Unix(s) => s.try_io(interest, f),
            TokioStream::Tls(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "raw I/O on a TLS connection",
            )),
        }
    }

    /// Half-closes the write side: the peer reads EOF after the last byte written (over
    /// TLS, close_notify first).
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            TokioStream::Tls(t) => t.shutdown_write(),
            _ => rustix::net::shutdown(self.as_fd(), rustix::net::Shutdown::Write)
                .map_err(Into::into),
        }
    }

    /// Polls the socket's read readiness (of the socket under TLS, for a TLS stream).
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            TokioStream::Tcp(s) => s.poll_read_ready(cx),
            TokioStream::Unix(s) => s.poll_read_ready(cx),
            TokioStream::Tls(t) => t.get_ref().poll_read_ready(cx),
        }
    }

    /// Polls the socket's write readiness (of the socket under TLS, for a TLS stream).
    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            TokioStream::Tcp(s) => s.poll_write_ready(cx),
            TokioStream::Unix(s) => s.poll_write_ready(cx),
            TokioStream::Tls(t) => t.get_ref().poll_write_ready(cx),
        }
    }
}

impl AsFd for TokioStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            TokioStream::Tcp(s) => s.as_fd(),
            TokioStream::Unix(s) => s.as_fd(),
            TokioStream::Tls(t) => t.get_ref().as_fd(),
        }
    }
}

impl AsRawFd for TokioStream {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl AsyncRead for TokioStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TokioStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            TokioStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            TokioStream::Tls(t) => t.poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TokioStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TokioStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            TokioStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            TokioStream::Tls(t) => t.poll_write(cx, &[io::IoSlice::new(buf)]),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TokioStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            TokioStream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            TokioStream::Tls(t) => t.poll_write(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TokioStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            TokioStream::Unix(s) => Pin::new(s).poll_flush(cx),
            TokioStream::Tls(t) => t.poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TokioStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            TokioStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            TokioStream::Tls(t) => t.poll_shutdown(cx),
        }
    }
}

/// A [`Listener`] registered with the tokio runtime of the calling thread.
#[derive(Debug)]
pub(crate) enum TokioListener {
    /// TCP.
    Tcp(tokio::net::TcpListener),
    /// Unix stream.
    Unix(tokio::net::UnixListener),
}

impl TokioListener {
    /// Registers `listener` (made non-blocking) with the current runtime.
    pub(crate) fn new(listener: Listener) -> Result<TokioListener> {
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("prepare listener", e))?;
        match listener {
            Listener::Tcp(l) => tokio::net::TcpListener::from_std(l).map(TokioListener::Tcp),
            Listener::Unix(l) => tokio::net::UnixListener::from_std(l).map(TokioListener::Unix),
        }
        .map_err(|e| Error::io("register listener", e))
    }

    /// Accepts one connection. TCP gets TCP_NODELAY as under every model (see
    /// [`Listener::accept`]); with `send_buffer`, the socket's SO_SNDBUF is capped, so
    /// what the kernel holds for a peer that does not read is set by the caller, not by
    /// the machine's autotuning limits.
    async fn accept(&self, send_buffer: Option<usize>) -> io::Result<(TokioStream, Peer)> {
        let (stream, peer) = match self {
            TokioListener::Tcp(l) => {
                let (s, a) = l.accept().await?;
                (TokioStream::Tcp(s), Peer::Inet(a))
            }
            TokioListener::Unix(l) => {
                let (s, a) = l.accept().await?;
                let peer = Peer::Unix(a.as_pathname().map(Into::into));
                (TokioStream::Unix(s), peer)
            }
        };
        if let TokioStream::Tcp(s) = &stream {
            // Best effort: a failure concerns this one connection, never the listener.
            let _ = s.set_nodelay(true);
        }
        if let Some(size) = send_buffer {
            socket2::SockRef::from(&stream).set_send_buffer_size(size)?;
        }
        Ok((stream, peer))
    }
}

/// Accepts on `listener` until `shutdown` is triggered, and hands every connection the
/// `gate` admits to `spawn`, with the slot it holds under the connection limit (to be
/// dropped when the connection ends). With `send_buffer`, each accepted socket's
/// SO_SNDBUF is capped at it. Transient `accept` errors back off and go on; others end
/// the loop with an error. What happens to the connections still open is the caller's.
pub(crate) async fn accept_loop(
    listener: &TokioListener,
    gate: &Gate,
    shutdown: &Shutdown,
    send_buffer: Option<usize>,
    mut spawn: impl FnMut(TokioStream, Peer, Slot),
) -> Result<()> {
    let stopped = shutdown
        .watch_async()
        .map_err(|e| Error::io("watch shutdown pipe", e))?;
    tokio::pin!(stopped);
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return Ok(()),
            r = listener.accept(send_buffer) => r,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) if accept_error_is_transient(&e) => {
                tracing::warn!(error = %e, "accept failed; backing off");
                tokio::time::sleep(BACK_OFF).await;
                continue;
            }
            Err(e) => return Err(Error::io("accept", e)),
        };
        let Some(slot) = gate.admit(stream.as_fd(), &peer) else {
            continue;
        };
        spawn(stream, peer, slot);
    }
}
