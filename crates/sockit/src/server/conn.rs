//! The blocking connection driver shared by the `blocking`, `threads` and `fork` models:
//! read, hand the bytes to the handler, write what it produced (blocking: each write
//! returns once everything is out), until one side is done.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::head::{HeadClock, last_words};
use super::output::Progress;
use super::{Config, Ctx, Flow, Handler, Output};
use crate::error::{Error, Result};
use crate::socket::gate::Slot;
use crate::socket::listener::accept_error_is_transient;
use crate::socket::{Listener, Peer, Shutdown, Stream, Wake};

/// Bytes read per `read` call; one buffer per connection, as these models block per connection.
const READ_BUF: usize = 64 * 1024;

/// Serves one connection to the end. Errors are the peer's (reset, timeout) and end only it.
/// A panic in the handler (a bug the input found) ends this connection only: under the
/// `blocking` model the server's one thread runs it, and must go on accepting.
pub(crate) fn drive<H: Handler>(stream: &Stream, peer: &Peer, mut handler: H, config: &Config) {
    let run = std::panic::AssertUnwindSafe(|| run(stream, &mut handler, config));
    match std::panic::catch_unwind(run) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection ended"),
        Err(_) => tracing::error!(%peer, "connection handler panicked; connection closed"),
    }
}

fn run<H: Handler>(stream: &Stream, handler: &mut H, config: &Config) -> io::Result<()> {
    // The idle timeout bounds both ways: a peer that stops reading a long reply holds a
    // thread (a process under fork) as surely as one that stops sending.
    stream.set_read_timeout(config.idle_timeout)?;
    stream.set_write_timeout(config.idle_timeout)?;
    // Heads are held to their deadline by shortening the read timeout while one arrives.
    let mut heads = HeadClock::new(config.idle_timeout, config.header_timeout);
    let mut buf = vec![0u8; READ_BUF];
    let mut out = Output::new();
    let mut flow = handler.on_connect(&mut out);
    // End of stream seen: what is queued (and what `on_drained` adds) is written, then done.
    let mut ending = false;
    loop {
        // Write what the handler queued, and let it go on once that is out.
        let wrote = !out.is_empty();
        while !out.is_empty() {
            if out.write_to(stream.as_fd())? == Progress::Blocked {
                // A blocking socket says "would block" only when SO_SNDTIMEO expired.
                return Err(io::Error::new(
                    ErrorKind::TimedOut,
                    "idle timeout (peer not reading)",
                ));
            }
            if flow == Flow::Continue {
                flow = handler.on_drained(&mut out);
            }
        }
        if wrote {
            heads.restart();
        }
        if flow != Flow::Continue || ending {
            return Ok(());
        }
        if heads.overdue() {
            return Err(head_missed(stream, handler, heads.timed_out()));
        }
        heads.before_read(stream)?;
        match (&*stream).read(&mut buf) {
            Ok(0) => {
                handler.on_eof(&mut out);
                ending = true;
            }
            Ok(n) => {
                flow = handler.on_data(&buf[..n], &mut out);
                if heads.is_on() {
                    heads.after_read(stream, handler.in_head())?;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // SO_RCVTIMEO expiring: the idle timeout, or the head deadline.
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if heads.overdue() {
                    return Err(head_missed(stream, handler, heads.timed_out()));
                }
                return Err(heads.timed_out());
            }
            Err(e) => return Err(e),
        }
    }
}

/// Ends a connection whose head missed its deadline: the handler's last words get one
/// attempt that never waits, then `why` ends the connection.
fn head_missed<H: Handler>(stream: &Stream, handler: &mut H, why: io::Error) -> io::Error {
    let mut out = Output::new();
    handler.on_head_timeout(&mut out);
    last_words(stream.as_fd(), &mut out);
    why
}

/// The accept loop of the blocking models: waits for a connection or shutdown, admits it
/// through the gate and hands it to `on_conn`. `on_tick` runs at least every `tick`.
pub(crate) fn accept_each(
    listener: &Listener,
    ctx: &Ctx<'_>,
    tick: Option<Duration>,
    mut on_tick: impl FnMut(),
    mut on_conn: impl FnMut(Stream, Peer, Slot),
) -> Result<()> {
    // Non-blocking so that a connection that vanished between poll and accept cannot
    // leave the loop stuck in accept, deaf to shutdown.
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("set listener non-blocking", e))?;
    loop {
        let wake = ctx
            .shutdown
            .wait_readable(listener.as_fd(), tick)
            .map_err(|e| Error::io("poll listener", e))?;
        match wake {
            Wake::Shutdown => return Ok(()),
            Wake::Timeout => {
                on_tick();
                continue;
            }
            Wake::Ready => {}
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Some(slot) = ctx.gate.admit(stream.as_fd(), &peer) {
                    on_conn(stream, peer, slot);
                }
            }
            Err(e) if accept_error_is_transient(&e) => {
                if e.kind() != ErrorKind::WouldBlock {
                    tracing::warn!(error = %e, "accept failed; backing off");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            Err(e) => return Err(Error::io("accept", e)),
        }
    }
}

/// The open connections of a blocking-model server, so that shutdown can end them: their
/// read side is shut, the handler sees EOF, and its last reply is still written.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Locked: connections register from their own threads, shutdown walks them from
    /// another.
    inner: Mutex<RegistryInner>,
}

#[derive(Debug, Default)]
struct RegistryInner {
    /// The next connection's key: keys are never reused, so a late deregistration cannot
    /// remove another connection.
    next: u64,
    /// A handle (a `dup`) on each open connection, to shut its read side at shutdown.
    streams: HashMap<u64, Stream>,
    /// Shutdown has begun: a connection registering now is ended at once instead of being
    /// missed.
    closed: bool,
}

/// A registered connection; deregistered when dropped.
pub(crate) struct Registered<'a> {
    /// Where to deregister on drop.
    registry: &'a Registry,
    /// This connection's key in the registry.
    id: u64,
}

impl Registry {
    /// Starts the thread that waits for shutdown and then ends every connection.
    pub(crate) fn watch(self: &Arc<Self>, shutdown: &Shutdown) {
        let registry = self.clone();
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            while shutdown.wait_readable(shutdown.fd(), None).ok() != Some(Wake::Shutdown) {}
            registry.close_all();
        });
    }

    /// Tracks `stream` until the returned guard is dropped.
    pub(crate) fn register(&self, stream: &Stream) -> Registered<'_> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.next += 1;
        let id = inner.next;
        match stream.try_clone() {
            // Registered after shutdown began: end it at once rather than serve it forever.
            Ok(clone) if inner.closed => {
                let _ = clone.shutdown(std::net::Shutdown::Read);
            }
            Ok(clone) => {
                inner.streams.insert(id, clone);
            }
            Err(e) => tracing::warn!(error = %e, "cannot track connection for shutdown"),
        }
        Registered { registry: self, id }
    }

    fn close_all(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.closed = true;
        for stream in inner.streams.values() {
            let _ = stream.shutdown(std::net::Shutdown::Read);
        }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut inner = self
            .registry
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        inner.streams.remove(&self.id);
    }
}
