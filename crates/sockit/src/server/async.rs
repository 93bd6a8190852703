//! The `async` model, and the tokio tasks under it: [`Server::serve_tasks`] serves each
//! admitted connection as a task that does its own I/O (exec waits on child processes
//! and their pipes as well as on the socket), and the model itself is one such task per
//! connection driving a [`Handler`]. Accepting, admission and the stream type are the
//! socket layer's tokio part, shared with chat; stopping (a [`Stopping`] signal, then
//! [`GRACE`] for the tasks to finish) is this file's.

use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::head::{head_timeout, last_words};
use super::output::Progress;
use super::{Config, Flow, GRACE, Handler, Output, Server, Service, Sockets};
use crate::error::{Error, Result};
use crate::socket::gate::Gate;
use crate::socket::tokio::{TokioListener, accept_loop};
use crate::socket::{Peer, TokioStream};

const READ_BUF: usize = 16 * 1024;

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
    /// The configured model, idle and header timeouts do not apply: the task decides how it
    /// waits. The tasks get plain streams, so a `tls://` endpoint is refused here.
    pub fn serve_tasks<F, Fut>(self, busy: &[u8], handle: F) -> Result<()>
    where
        F: Fn(TokioStream, Peer, Stopping) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if matches!(self.local, crate::addr::Endpoint::Tls(_)) {
            return Err(Error::Unsupported {
                model: "tasks",
                what: "a tls:// endpoint (the tasks would get plain streams)",
            });
        }
        self.serve_tasks_plain(busy, handle)
    }

    /// [`Server::serve_tasks`] without the `tls://` check, for the async model, whose
    /// service was checked (and does its TLS inside its handlers), and for exec, whose
    /// tasks put TLS on their streams themselves (`socket::tokio_tls`).
    pub(crate) fn serve_tasks_plain<F, Fut>(self, busy: &[u8], handle: F) -> Result<()>
    where
        F: Fn(TokioStream, Peer, Stopping) -> Fut,
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
            .map_err(|e| Error::io("prepare listener", e))?;
        let gate = Gate::new(self.config.access.clone(), self.config.max_conns(), busy);
        let result = runtime.block_on(async {
            let listener = TokioListener::new(listener)?;
            let (stop_tx, stop_rx) = watch::channel(false);
            let spawn = |stream, peer, slot| {
                let task = handle(stream, peer, Stopping(stop_rx.clone()));
                // `map`, not an `async move` block awaiting `task`: the block would hold
                // `task` twice (its capture and the awaited copy), doubling what every
                // connection costs for its whole life.
                tokio::spawn(task.map(move |()| drop(slot)));
            };
            accept_loop(&listener, &gate, &self.shutdown, None, spawn).await?;
            let _ = stop_tx.send(true);
            let deadline = tokio::time::Instant::now() + GRACE;
            while gate.live() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(())
        });
        // Tasks still running after the grace period are dropped here, mid-await: their
        // destructors run (an exec session's kills its process group).
        runtime.shutdown_timeout(Duration::from_millis(100));
        result
    }
}

pub(crate) fn serve<S: Service>(server: Server, service: S) -> Result<()> {
    let config = Arc::new(server.config.clone());
    let service = Arc::new(service);
    let busy: Vec<u8> = service.busy_message().to_vec();
    server.serve_tasks_plain(&busy, move |stream, peer, stopping| {
        let handler = service.handler(&peer);
        let config = config.clone();
        async move {
            if let Err(e) = drive(stream, handler, &config, stopping).await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        }
    })
}

async fn drive<H: Handler>(
    mut stream: TokioStream,
    mut handler: H,
    config: &Config,
    mut stopping: Stopping,
) -> io::Result<()> {
    let mut buf = vec![0u8; READ_BUF];
    let mut out = Output::new();
    let mut flow = handler.on_connect(&mut out);
    // End of stream seen: what is queued (and what `on_drained` adds) is written, then done.
    let mut ending = false;
    // When the head in progress must be complete (see `Handler::in_head`).
    let mut head_deadline: Option<Instant> = None;
    loop {
        // Write what the handler queued, and let it go on once that is out.
        let wrote = !out.is_empty();
        while !out.is_empty() {
            write_output(&stream, &mut out, config.idle_timeout).await?;
            if flow == Flow::Continue {
                flow = handler.on_drained(&mut out);
            }
        }
        if flow != Flow::Continue || ending {
            break;
        }
        if let (true, Some(_), Some(t)) = (wrote, head_deadline, config.header_timeout) {
            // The peer could not be heard while the reply went out: its head starts afresh.
            head_deadline = Some(Instant::now() + t);
        }
        let idle_deadline = config.idle_timeout.map(|t| Instant::now() + t);
        // Whichever comes first; `true` if it is the head's.
        let deadline = match (idle_deadline, head_deadline) {
            (Some(i), Some(h)) if i < h => Some((i, false)),
            (_, Some(h)) => Some((h, true)),
            (i, None) => i.map(|i| (i, false)),
        };
        let read = async {
            match deadline {
                Some((at, head)) => tokio::time::timeout_at(at, stream.read(&mut buf))
                    .await
                    .unwrap_or_else(|_| {
                        Err(if head {
                            head_timeout()
                        } else {
                            io::Error::new(io::ErrorKind::TimedOut, "idle timeout")
                        })
                    }),
                None => stream.read(&mut buf).await,
            }
        };
        // Shutdown reads as end of stream: the handler says its last words, they are sent.
        let read = tokio::select! {
            r = read => r,
            _ = stopping.wait() => Ok(0),
        };
        let n = match read {
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut
                    && head_deadline.is_some_and(|h| Instant::now() >= h) =>
            {
                let mut last = Output::new();
                handler.on_head_timeout(&mut last);
                last_words(stream.as_fd(), &mut last);
                return Err(head_timeout());
            }
            r => r?,
        };
        if n == 0 {
            handler.on_eof(&mut out);
            ending = true;
        } else {
            flow = handler.on_data(&buf[..n], &mut out);
            if let Some(t) = config.header_timeout {
                head_deadline = match (handler.in_head(), head_deadline) {
                    (false, _) => None,
                    (true, None) => Some(Instant::now() + t),
                    (true, keep) => keep,
                };
            }
        }
    }
    stream.shutdown().await
}

/// Writes all of `out` (bytes and file ranges) to `stream`, waiting for the socket as
/// needed; with `idle`, fails if the socket takes nothing for that long (a peer that
/// stopped reading).
async fn write_output(
    stream: &TokioStream,
    out: &mut Output,
    idle: Option<Duration>,
) -> io::Result<()> {
    let fd = stream.as_fd();
    loop {
        let writable = stream.writable();
        match idle {
            Some(t) => tokio::time::timeout(t, writable).await.map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "idle timeout (peer not reading)")
            })??,
            None => writable.await?,
        }
        // `try_io` must see `WouldBlock` to clear the readiness it consumed.
        let r = stream.try_io(tokio::io::Interest::WRITABLE, || {
            match out.write_to(fd)? {
                Progress::Done => Ok(()),
                Progress::Blocked => Err(io::ErrorKind::WouldBlock.into()),
            }
        });
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            r => return r,
        }
    }
}
