//! Datagram serving (UDP, Unix datagram) under every model.
//!
//! A datagram server has one socket and no connections, so the models differ only in how
//! many receivers share it: `blocking` one loop; `threads` and the event-loop models one
//! loop per worker (each event loop on its own SO_REUSEPORT socket); `fork` one process per
//! worker; `async` tokio tasks. Every receiver drains the socket until it would block, so a
//! burst costs one wake-up.

use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::sync::Arc;

use nix::sys::signal::{self, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork};

use super::{Ctx, DatagramService, Model, Reply};
use crate::error::{Error, Result};
use crate::socket::{DatagramSocket, Peer, Wake};

/// Larger than any UDP payload (65,507 bytes).
const MAX_DATAGRAM: usize = 64 * 1024;

pub(crate) fn serve<S: DatagramService>(
    sockets: &[DatagramSocket],
    service: Arc<S>,
    ctx: Ctx<'_>,
) -> Result<()> {
    let workers = match ctx.config.model {
        Model::Blocking => 1,
        m if m.is_event_loop() => sockets.len(),
        _ => ctx
            .config
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
    .max(1);
    // Event-loop models bound one socket per worker; the others share the first.
    let socket_for = |i: usize| {
        sockets[i % sockets.len()]
            .try_clone()
            .map_err(|e| Error::io("dup socket", e))
    };
    match ctx.config.model {
        Model::Async => serve_async(socket_for(0)?, service, &ctx),
        Model::Fork => {
            let mut children = Vec::new();
            for _ in 0..workers {
                // SAFETY: the child runs the receive loop and `_exit`s; it never returns
                // into the parent's frames. glibc's fork keeps malloc usable in the child.
                match unsafe { fork() } {
                    Ok(ForkResult::Child) => {
                        let _ = receive_loop(&sockets[0], &*service, &ctx);
                        // SAFETY: ends the child without running the parent's cleanup.
                        unsafe { libc::_exit(0) }
                    }
                    Ok(ForkResult::Parent { child }) => children.push(child),
                    Err(e) => tracing::warn!(error = %e, "fork failed"),
                }
            }
            // Children watch the same shutdown pipe (inherited) and leave on their own;
            // SIGTERM covers one stuck in a handler.
            while ctx.shutdown.wait_readable(ctx.shutdown.fd(), None).ok() != Some(Wake::Shutdown) {
            }
            for pid in &children {
                let _ = signal::kill(*pid, Signal::SIGTERM);
                let _ = waitpid(*pid, None);
            }
            Ok(())
        }
        _ => std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|i| {
                    let socket = socket_for(i);
                    let (service, ctx) = (&*service, &ctx);
                    scope.spawn(move || receive_loop(&socket?, service, ctx))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Ok(())))
                .collect::<Result<Vec<()>>>()
                .map(drop)
        }),
    }
}

fn receive_loop<S: DatagramService>(
    socket: &DatagramSocket,
    service: &S,
    ctx: &Ctx<'_>,
) -> Result<()> {
    socket
        .set_nonblocking(true)
        .map_err(|e| Error::io("set socket non-blocking", e))?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut out = Vec::new();
    loop {
        match ctx.shutdown.wait_readable(socket.as_fd(), None) {
            Ok(Wake::Shutdown) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(Error::io("poll socket", e)),
        }
        loop {
            let (n, peer) = match socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // ICMP errors from earlier replies surface here; they concern one peer only.
                Err(e) => {
                    tracing::debug!(error = %e, "recv failed");
                    continue;
                }
            };
            if !ctx.gate.permits(&peer) {
                tracing::info!(%peer, "datagram dropped: denied by the access list");
                continue;
            }
            if service.on_datagram(&buf[..n], &peer, &mut out) == Reply::Send
                && let Err(e) = socket.send_to(&out, &peer)
            {
                tracing::debug!(%peer, error = %e, "reply not sent");
            }
            out.clear();
        }
    }
}

fn serve_async<S: DatagramService>(
    socket: DatagramSocket,
    service: Arc<S>,
    ctx: &Ctx<'_>,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start tokio runtime", e))?;
    runtime.block_on(async {
        socket
            .set_nonblocking(true)
            .map_err(|e| Error::io("set socket non-blocking", e))?;
        let socket = match socket {
            DatagramSocket::Udp(s) => tokio::net::UdpSocket::from_std(s).map(AsyncDatagram::Udp),
            DatagramSocket::Unix(s) => {
                tokio::net::UnixDatagram::from_std(s).map(AsyncDatagram::Unix)
            }
        }
        .map_err(|e| Error::io("register socket", e))?;
        let stopped = ctx
            .shutdown
            .watch_async()
            .map_err(|e| Error::io("watch shutdown pipe", e))?;
        tokio::pin!(stopped);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut out = Vec::new();
        loop {
            tokio::select! {
                _ = &mut stopped => return Ok(()),
                r = socket.readable() => r.map_err(|e| Error::io("poll socket", e))?,
            };
            loop {
                let (n, peer) = match socket.try_recv_from(&mut buf) {
                    Ok(got) => got,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => continue,
                };
                if !ctx.gate.permits(&peer) {
                    continue;
                }
                if service.on_datagram(&buf[..n], &peer, &mut out) == Reply::Send {
                    let _ = socket.try_send_to(&out, &peer);
                }
                out.clear();
            }
        }
    })
}

/// A datagram socket registered with tokio.
enum AsyncDatagram {
    Udp(tokio::net::UdpSocket),
    Unix(tokio::net::UnixDatagram),
}

impl AsyncDatagram {
    async fn readable(&self) -> std::io::Result<()> {
        match self {
            AsyncDatagram::Udp(s) => s.readable().await,
            AsyncDatagram::Unix(s) => s.readable().await,
        }
    }

    fn try_recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, Peer)> {
        match self {
            AsyncDatagram::Udp(s) => s.try_recv_from(buf).map(|(n, a)| (n, Peer::Inet(a))),
            AsyncDatagram::Unix(s) => s
                .try_recv_from(buf)
                .map(|(n, a)| (n, Peer::Unix(a.as_pathname().map(Into::into)))),
        }
    }

    fn try_send_to(&self, buf: &[u8], peer: &Peer) -> std::io::Result<usize> {
        match (self, peer) {
            (AsyncDatagram::Udp(s), Peer::Inet(a)) => s.try_send_to(buf, *a),
            (AsyncDatagram::Unix(s), Peer::Unix(Some(p))) => s.try_send_to(buf, p),
            _ => Err(ErrorKind::AddrNotAvailable.into()),
        }
    }
}
