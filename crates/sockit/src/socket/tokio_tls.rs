//! TLS for the tokio drivers (exec, chat, and their clients): [`TokioTls`], the
//! `TokioStream::Tls` variant, and [`tls_tunnel`], which gives a blocking client a plain
//! socket whose bytes travel in TLS.
//!
//! # Why rustls driven by hand, not tokio-rustls
//! The two drivers hold their sockets in two different ways. Exec's tasks await
//! `AsyncRead`/`AsyncWrite` (through `tokio::io::split`), which tokio-rustls would serve.
//! Chat's hub does not await at all: it fans a line out to a thousand sockets with
//! non-blocking `try_write` calls on a shared `&TokioStream`, and hands a socket that
//! would block to its client's task. tokio-rustls has no `&self`, non-blocking write, so
//! chat would need a second TLS layer. rustls itself is sans-IO (ciphertext in with
//! `read_tls`, plaintext out with `reader`, plaintext in with `writer`, ciphertext out
//! with `write_tls`), so one small type drives it over the tokio socket in both styles:
//! the `try_*` calls do the work, and the `poll_*` of `AsyncRead`/`AsyncWrite` are those
//! calls plus the socket's readiness. The rustls state sits behind a `Mutex` because the
//! `try_*` calls take `&self` (chat shares the stream through an `Rc`, exec moves it
//! between threads); it is never contended (one task at a time uses a connection) and
//! only TLS connections have one: the plain variants are untouched.
//!
//! # Writing
//! [`TokioTls::try_write`] encrypts what rustls's buffer has room for (at most
//! [`BACKLOG`] bytes of records wait for the socket) and sends what the socket takes;
//! `WouldBlock` when the backlog is full and the socket takes nothing, which is the
//! signal chat's slow-reader logic already acts on. Records may stay queued after a write
//! succeeded: [`TokioTls::try_flush`] (and `poll_flush`) sends them, and a caller that
//! stops writing must flush, as with any buffered writer.
//!
//! # Handshake
//! [`TokioStream::handshake`](super::TokioStream::handshake) runs it within a deadline
//! before the driver sees the connection; a peer that sends plain text, stalls, or fails
//! verification gets an error in one sentence ([`super::tls_sentence`]) for the caller to
//! log, and loses its own connection only.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{Interest, ReadBuf};

use super::tls::{ClientTls, Role, ServerTls, handshake_error, tls_sentence};
use super::{Stream, TokioStream};
use crate::error::{Error, Result};

/// Most bytes of encrypted records held for a socket that does not take them: what a
/// slow reader costs in TLS on top of what the driver queues itself.
pub const BACKLOG: usize = 64 * 1024;

/// A TLS connection over a tokio socket; see the module documentation.
pub struct TokioTls {
    /// The socket the records travel on (a plain variant).
    sock: TokioStream,
    /// rustls and what this layer remembers about the connection's end.
    state: Mutex<State>,
}

/// The mutable part of a TLS connection.
struct State {
    /// The TLS state machine, client or server.
    conn: rustls::Connection,
    /// The peer's close_notify was already returned as an end of stream: readiness must
    /// not keep announcing it.
    eof_read: bool,
    /// Our close_notify is queued: the socket's write side is shut once it has left.
    closing: bool,
    /// The socket's write side was shut.
    fin_sent: bool,
}

impl fmt::Debug for TokioTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioTls")
            .field("sock", &self.sock)
            .finish_non_exhaustive()
    }
}

impl TokioTls {
    fn new(sock: TokioStream, mut conn: rustls::Connection) -> TokioTls {
        conn.set_buffer_limit(Some(BACKLOG));
        TokioTls {
            sock,
            state: Mutex::new(State {
                conn,
                eof_read: false,
                closing: false,
                fin_sent: false,
            }),
        }
    }

    /// The plain socket under the TLS.
    pub fn get_ref(&self) -> &TokioStream {
        &self.sock
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave rustls half-updated in a way that matters more
        // than losing this one connection, which the next error does.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a read can make progress: decrypted bytes (or the peer's close_notify)
    /// already wait, which the socket's readiness cannot tell, or the socket is readable.
    pub async fn readable(&self) -> io::Result<()> {
        if self.buffered() {
            return Ok(());
        }
        std::future::poll_fn(|cx| self.sock.poll_read_ready(cx)).await
    }

    /// Waits until the socket takes bytes.
    pub async fn writable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.sock.poll_write_ready(cx)).await
    }

    /// Reads decrypted bytes into `dst`: `Ok(0)` is the peer's close_notify, a socket
    /// closed without one is `UnexpectedEof`, `WouldBlock` when nothing is there.
    pub fn try_read(&self, dst: &mut [u8]) -> io::Result<usize> {
        let mut st = self.lock();
        loop {
            match st.conn.reader().read(dst) {
                Ok(0) if !dst.is_empty() => {
                    st.eof_read = true;
                    return Ok(0);
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // Until the socket says WouldBlock, so that tokio clears its readiness.
            st.conn.read_tls(&mut SockIo(&self.sock))?;
            let processed = st.conn.process_new_packets();
            // Alerts, key updates, session tickets: out now if the socket takes them.
            let _ = self.flush_locked(&mut st);
            if let Err(e) = processed {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    tls_sentence(&e, peer_role(&st.conn)),
                ));
            }
        }
    }

    /// [`TokioTls::try_read`] into the spare capacity of `buf` (reserve before calling).
    pub fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let start = buf.len();
        let room = (buf.capacity() - start).max(1024);
        buf.resize(start + room, 0);
        let got = self.try_read(&mut buf[start..]);
        buf.truncate(start + *got.as_ref().unwrap_or(&0));
        got
    }

    /// Encrypts what fits of `src` and sends what the socket takes; `WouldBlock` when
    /// [`BACKLOG`] bytes of records already wait and the socket takes none of them.
    pub fn try_write(&self, src: &[u8]) -> io::Result<usize> {
        self.try_write_vectored(&[io::IoSlice::new(src)])
    }

    /// [`TokioTls::try_write`] of several buffers, in order.
    pub fn try_write_vectored(&self, src: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut st = self.lock();
        if st.closing {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        would_block_ok(self.flush_locked(&mut st))?;
        let n = st.conn.writer().write_vectored(src)?;
        would_block_ok(self.flush_locked(&mut st))?;
        if n == 0 && src.iter().any(|s| !s.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Sends the records still queued: `Ok` once none is left, `WouldBlock` while the
    /// socket takes no more.
    pub fn try_flush(&self) -> io::Result<()> {
        let mut st = self.lock();
        self.flush_locked(&mut st)
    }

    /// TLS's half-close: close_notify, then the socket's write side is shut once it has
    /// left (now, or by the next flush). Reading goes on.
    pub fn shutdown_write(&self) -> io::Result<()> {
        let mut st = self.lock();
        if !st.closing {
            st.conn.send_close_notify();
            st.closing = true;
        }
        would_block_ok(self.flush_locked(&mut st))
    }

    /// Runs the handshake to its end, as far as the socket allows now: `Ok(None)` once it
    /// is done, or the readiness to wait for before the next step.
    fn handshake_step(&self) -> io::Result<Option<Interest>> {
        let mut st = self.lock();
        loop {
            match self.flush_locked(&mut st) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Some(Interest::WRITABLE));
                }
                other => other?,
            }
            if !st.conn.is_handshaking() {
                return Ok(None);
            }
            match st.conn.read_tls(&mut SockIo(&self.sock)) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Some(Interest::READABLE));
                }
                Err(e) => return Err(e),
            }
            if let Err(e) = st.conn.process_new_packets() {
                // The alert saying why, if the socket takes it.
                let _ = self.flush_locked(&mut st);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }

    /// The handshake, within `timeout`; its failure in one sentence.
    async fn handshake(&self, timeout: Duration) -> Result<()> {
        let peer = peer_role(&self.lock().conn);
        let shake = async {
            while let Some(interest) = self.handshake_step()? {
                if interest == Interest::READABLE {
                    std::future::poll_fn(|cx| self.sock.poll_read_ready(cx)).await?;
                } else {
                    self.writable().await?;
                }
            }
            Ok::<(), io::Error>(())
        };
        let result = match tokio::time::timeout(timeout, shake).await {
            Ok(r) => r,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        };
        result.map_err(|e| handshake_error("TLS handshake", e, timeout, peer))
    }

    /// Decrypted bytes or the peer's close_notify wait to be read.
    fn buffered(&self) -> bool {
        let mut st = self.lock();
        match st.conn.process_new_packets() {
            Ok(io) => io.plaintext_bytes_to_read() > 0 || (io.peer_has_closed() && !st.eof_read),
            // The error comes out of the next read.
            Err(_) => true,
        }
    }

    fn flush_locked(&self, st: &mut State) -> io::Result<()> {
        while st.conn.wants_write() {
            st.conn.write_tls(&mut SockIo(&self.sock))?;
        }
        if st.closing && !st.fin_sent {
            st.fin_sent = true;
            match self.sock.shutdown_write() {
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                other => other?,
            }
        }
        Ok(())
    }

    pub(super) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match self.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.sock.poll_read_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    pub(super) fn poll_write(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.sock.poll_write_ready(cx))?;
                }
                other => return Poll::Ready(other),
            }
        }
    }

    pub(super) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.try_flush() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.sock.poll_write_ready(cx))?;
                }
                other => return Poll::Ready(other),
            }
        }
    }

    pub(super) fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        {
            let mut st = self.lock();
            if !st.closing {
                st.conn.send_close_notify();
                st.closing = true;
            }
        }
        self.poll_flush(cx)
    }
}

impl TokioStream {
    /// TLS as a server over this (plain) connection; the handshake is
    /// [`TokioStream::handshake`]'s.
    pub fn tls_server(self, tls: &ServerTls) -> Result<TokioStream> {
        let conn = rustls::ServerConnection::new(tls.config())
            .map_err(|e| Error::Tls(format!("TLS setup: {e}")))?;
        Ok(TokioStream::Tls(Box::new(TokioTls::new(self, conn.into()))))
    }

    /// TLS as a client of `host` (its name checked in the certificate, unless the
    /// configuration names another) over this (plain) connection.
    pub fn tls_client(self, tls: &ClientTls, host: &str) -> Result<TokioStream> {
        let conn = rustls::ClientConnection::new(tls.config(), tls.server_name(host)?)
            .map_err(|e| Error::Tls(format!("TLS setup: {e}")))?;
        Ok(TokioStream::Tls(Box::new(TokioTls::new(self, conn.into()))))
    }

    /// Runs the TLS handshake within `timeout` (nothing to do on a plain connection). A
    /// peer that speaks plain text, stalls or is not trusted is an [`Error::Tls`] saying
    /// why in one sentence.
    pub async fn handshake(&self, timeout: Duration) -> Result<()> {
        match self {
            TokioStream::Tls(t) => t.handshake(timeout).await,
            _ => Ok(()),
        }
    }

    /// Sends what TLS still holds: `Ok` once nothing waits (always, on a plain
    /// connection), `WouldBlock` while the socket takes no more.
    pub fn try_flush(&self) -> io::Result<()> {
        match self {
            TokioStream::Tls(t) => t.try_flush(),
            _ => Ok(()),
        }
    }

    /// Whether this connection is in TLS (and so must be flushed after writing).
    pub fn is_tls(&self) -> bool {
        matches!(self, TokioStream::Tls(_))
    }

    /// A connected socket (blocking or not) registered with the current runtime.
    pub fn from_std(sock: Stream) -> io::Result<TokioStream> {
        sock.set_nonblocking(true)?;
        match sock {
            Stream::Tcp(s) => tokio::net::TcpStream::from_std(s).map(TokioStream::Tcp),
            Stream::Unix(s) => tokio::net::UnixStream::from_std(s).map(TokioStream::Unix),
        }
    }
}

/// Gives a blocking client TLS without changing how it reads and writes: the handshake
/// with `host` runs here, within `timeout`, and its failure is this call's error; then a
/// thread of its own carries bytes between the TLS connection over `sock` and the Unix
/// socket returned. The client reads, writes, duplicates and half-closes that socket as
/// it would the TCP one: its half-close becomes close_notify, the server's close_notify
/// its end of stream; a connection that fails in TLS ends it.
pub fn tls_tunnel(sock: Stream, tls: &ClientTls, host: &str, timeout: Duration) -> Result<Stream> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start tokio runtime", e))?;
    let (mine, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| Error::io("socketpair", e))?;
    let mut wire = runtime.block_on(async {
        let wire = TokioStream::from_std(sock)
            .map_err(|e| Error::io("register socket", e))?
            .tls_client(tls, host)?;
        wire.handshake(timeout).await?;
        Ok::<_, Error>(wire)
    })?;
    std::thread::Builder::new()
        .name("tls tunnel".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(mut local) = TokioStream::from_std(Stream::Unix(theirs)) else {
                    return;
                };
                if let Err(e) = tokio::io::copy_bidirectional(&mut wire, &mut local).await {
                    tracing::debug!(error = %e, "TLS connection ended");
                }
            });
        })
        .map_err(|e| Error::io("start TLS thread", e))?;
    Ok(Stream::Unix(mine))
}

/// The socket as rustls's `io::Read`/`io::Write`: non-blocking calls that clear tokio's
/// readiness when they would block.
struct SockIo<'a>(&'a TokioStream);

impl Read for SockIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_io(Interest::READABLE, || {
            rustix::io::read(self.0, buf).map_err(Into::into)
        })
    }
}

impl Write for SockIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_io(Interest::WRITABLE, || {
            rustix::io::writev(self.0, bufs).map_err(Into::into)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn would_block_ok(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        other => other,
    }
}

fn peer_role(conn: &rustls::Connection) -> Role {
    match conn {
        rustls::Connection::Client(_) => Role::Server,
        rustls::Connection::Server(_) => Role::Client,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::ClientOptions;
    use tokio::io::AsyncReadExt;

    /// A TLS pair over a Unix socketpair, both handshakes made: (server, client).
    async fn pair() -> (TokioStream, TokioStream) {
        let tls = ServerTls::self_signed(&["localhost".into()]).unwrap();
        let trust = ClientTls::new(&ClientOptions {
            pin: Some(tls.fingerprint()),
            ..ClientOptions::default()
        })
        .unwrap();
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let server = TokioStream::Unix(a).tls_server(&tls).unwrap();
        let client = TokioStream::Unix(b)
            .tls_client(&trust, "localhost")
            .unwrap();
        let wait = Duration::from_secs(5);
        let (s, c) = tokio::join!(server.handshake(wait), client.handshake(wait));
        s.unwrap();
        c.unwrap();
        (server, client)
    }

    fn run(test: impl std::future::Future<Output = ()>) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(test);
    }

    /// What chat's hub relies on: non-blocking writes to a peer that does not read stop
    /// with `WouldBlock` after a bounded amount, and once the peer reads, flushing sends
    /// every byte taken, in order, and close_notify after them.
    #[test]
    fn writes_to_a_stalled_reader_are_bounded_and_arrive_whole_after_flushes() {
        run(async {
            let (server, mut client) = pair().await;
            let mut sent = Vec::new();
            let chunk: Vec<u8> = (0..16_384u32).map(|i| (i % 251) as u8).collect();
            loop {
                match server.try_write(&chunk) {
                    Ok(n) => sent.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
                assert!(sent.len() < 16 << 20, "never blocked");
            }
            // The kernel's buffers and BACKLOG, not the whole stream.
            assert!(sent.len() > BACKLOG, "{}", sent.len());
            let flush = async {
                loop {
                    server.writable().await.unwrap();
                    match server.try_flush() {
                        Ok(()) => break,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                server.shutdown_write().unwrap();
                while server.try_flush().is_err() {
                    server.writable().await.unwrap();
                }
            };
            let read = async {
                let mut got = Vec::new();
                client.read_to_end(&mut got).await.unwrap();
                got
            };
            let ((), got) = tokio::join!(flush, read);
            assert!(got == sent, "{} bytes sent, {} read", sent.len(), got.len());
        });
    }

    /// Plain text where a handshake is expected is an error in one sentence.
    #[test]
    fn plain_text_to_a_tls_server_is_refused_in_one_sentence() {
        run(async {
            let tls = ServerTls::self_signed(&["localhost".into()]).unwrap();
            let (a, b) = tokio::net::UnixStream::pair().unwrap();
            let server = TokioStream::Unix(a).tls_server(&tls).unwrap();
            let plain = TokioStream::Unix(b);
            plain.writable().await.unwrap();
            plain.try_write(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let err = server
                .handshake(Duration::from_secs(5))
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("the client does not speak TLS"), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        });
    }
}
