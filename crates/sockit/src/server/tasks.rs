//! Serving connections as tokio tasks that do their own I/O, for protocols that need more
//! than bytes in and bytes out: `exec` waits on child processes and their pipes as well as
//! on the socket. Admission (allow/deny, connection limit) and shutdown are the same as
//! for every [`Model`](super::Model); only the per-connection work is the caller's.

use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use super::output::Output;
use super::{GRACE, Server, Sockets};
use crate::error::{Error, Result};
use crate::socket::gate::Gate;
use crate::socket::listener::accept_error_is_transient;
use crate::socket::{Listener, Peer};

/// An accepted connection as a tokio stream.
#[derive(Debug)]
pub enum TaskStream {
    /// TCP.
    Tcp(tokio::net::TcpStream),
    /// Unix stream.
    Unix(tokio::net::UnixStream),
}

/// Tells a connection task that the server is stopping: it should wind up and return.
#[derive(Debug, Clone)]
pub struct Stopping(
    /// Turns `true` once, when the accept loop ends.
    watch::Receiver<bool>,
);

impl Stopping {
    /// Resolves once the server stops (at once if it already has).
    pub async fn wait(&mut self) {
        // An error means the server is gone altogether, which is stopping too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

impl Server {
    /// Serves each admitted connection with `handle(stream, peer, stopping)` as a tokio task
    /// on a multi-threaded runtime (`workers` threads; one per CPU by default), until
    /// shutdown. A peer refused for the connection limit gets `busy` (may be empty) and a
    /// close. On shutdown, tasks see [`Stopping`] and get a few seconds to finish.
    ///
    /// The configured model and idle timeout do not apply: the task decides how it waits.
    pub fn serve_tasks<F, Fut>(self, busy: &[u8], handle: F) -> Result<()>
    where
        F: Fn(TaskStream, Peer, Stopping) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Sockets::Stream(listeners) = &self.sockets else {
            return Err(Error::Unsupported {
                model: "tasks",
                what: "a datagram endpoint",
            });
        };
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = self.config.workers {
            builder.worker_threads(n.max(1));
        }
        let runtime = builder
            .enable_all()
            .build()
            .map_err(|e| Error::io("start tokio runtime", e))?;
        let listener = listeners[0]
            .try_clone()
            .and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .map_err(|e| Error::io("prepare listener", e))?;
        let gate = Gate::new(self.config.access.clone(), self.config.max_conns(), busy);
        let result = runtime.block_on(accept_loop(listener, &gate, &self, handle));
        // Tasks still running after the grace period are dropped here, mid-await: their
        // destructors run (an exec session's kills its process group).
        runtime.shutdown_timeout(Duration::from_millis(100));
        result
    }
}

async fn accept_loop<F, Fut>(
    listener: Listener,
    gate: &Gate,
    server: &Server,
    handle: F,
) -> Result<()>
where
    F: Fn(TaskStream, Peer, Stopping) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = server
        .shutdown
        .watch_async()
        .map_err(|e| Error::io("watch shutdown pipe", e))?;
    tokio::pin!(stopped);
    let listener = match listener {
        Listener::Tcp(l) => tokio::net::TcpListener::from_std(l).map(Accept::Tcp),
        Listener::Unix(l) => tokio::net::UnixListener::from_std(l).map(Accept::Unix),
    }
    .map_err(|e| Error::io("register listener", e))?;
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) if accept_error_is_transient(&e) => {
                tracing::warn!(error = %e, "accept failed; backing off");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(e) => return Err(Error::io("accept", e)),
        };
        let Some(slot) = gate.admit(stream.as_fd(), &peer) else {
            continue;
        };
        let task = handle(stream, peer, Stopping(stop_rx.clone()));
        tokio::spawn(async move {
            let _slot = slot;
            task.await;
        });
    }
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + GRACE;
    while gate.live() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

enum Accept {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Accept {
    async fn accept(&self) -> io::Result<(TaskStream, Peer)> {
        match self {
            Accept::Tcp(l) => {
                let (s, a) = l.accept().await?;
                // As for every model (see `Listener::accept`).
                let _ = s.set_nodelay(true);
                Ok((TaskStream::Tcp(s), Peer::Inet(a)))
            }
            Accept::Unix(l) => l.accept().await.map(|(s, a)| {
                let peer = Peer::Unix(a.as_pathname().map(Into::into));
                (TaskStream::Unix(s), peer)
            }),
        }
    }
}

impl TaskStream {
    /// Writes all of `out` (bytes and file ranges), waiting for the socket as needed; with
    /// `idle`, fails if the socket takes nothing for that long (a peer that stopped reading).
    pub(crate) async fn write_output(
        &self,
        out: &mut Output,
        idle: Option<std::time::Duration>,
    ) -> io::Result<()> {
        use super::output::Progress;
        let fd = self.as_fd();
        // `try_io` must see `WouldBlock` to clear the readiness it consumed.
        let mut step = || match out.write_to(fd)? {
            Progress::Done => Ok(()),
            Progress::Blocked => Err(io::ErrorKind::WouldBlock.into()),
        };
        loop {
            let writable = async {
                match self {
                    TaskStream::Tcp(s) => s.writable().await,
                    TaskStream::Unix(s) => s.writable().await,
                }
            };
            match idle {
                Some(t) => tokio::time::timeout(t, writable).await.map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "idle timeout (peer not reading)")
                })??,
                None => writable.await?,
            }
            let r = match self {
                TaskStream::Tcp(s) => s.try_io(tokio::io::Interest::WRITABLE, &mut step),
                TaskStream::Unix(s) => s.try_io(tokio::io::Interest::WRITABLE, &mut step),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
        }
    }
}

impl AsFd for TaskStream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            TaskStream::Tcp(s) => s.as_fd(),
            TaskStream::Unix(s) => s.as_fd(),
        }
    }
}

impl AsyncRead for TaskStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TaskStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            TaskStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TaskStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TaskStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            TaskStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TaskStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            TaskStream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TaskStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            TaskStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TaskStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            TaskStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
