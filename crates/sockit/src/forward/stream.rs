//! One relayed stream connection: both directions at once inside one tokio task, driven by
//! one poll function over the two legs' readiness (`AsyncFd<Wire>`), so a connection at
//! rest is a parked task and two registrations, nothing else.
//!
//! Bytes in flight live in a pipe (plain to plain: `splice(2)` socket → pipe → socket,
//! never copied through userspace) or in a userspace buffer (a TLS leg: rustls must see
//! the plaintext). Either is taken when a direction has read something and given back as
//! soon as it is written out: pipes to a per-thread pool, buffers to the allocator. An
//! idle connection therefore holds no pipe descriptor and no buffer.
//!
//! The rules: an EOF on one side is passed on as a half-close (`shutdown(SHUT_WR)`, or
//! close_notify then `SHUT_WR` on TLS) and the relay ends when both directions have
//! ended; a TLS peer that closes without close_notify is reported (debug) and taken as
//! an EOF, as the connect/listen relay does; a reset, or any other error, on either side
//! ends the relay with SO_LINGER 0 on both sockets, so the other side sees a reset too.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use crate::socket::Wire;

/// What a pipe is asked to hold: larger than the 64 KiB default, so one `splice` pair
/// moves more per wake-up on a fast stream. Best effort: a system that refuses keeps the
/// default.
const PIPE_SIZE: usize = 256 * 1024;

/// Pipes a thread keeps for later connections: enough for the directions that have bytes
/// in flight at once on one thread; more are closed when given back.
const POOL_MAX: usize = 64;

/// The userspace buffer of a direction with a TLS leg: one TLS record's plaintext.
const TLS_BUF: usize = 16 * 1024;

/// How a relay ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Both directions reached EOF and passed it on.
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// A side reset (or failed); both were closed with a reset.
    Reset(io::Error),
}

/// Relays between `client` and `target` until both directions end, an error resets both,
/// or nothing moves for `idle`.
pub(crate) async fn relay(
    client: &mut AsyncFd<Wire>,
    target: &mut AsyncFd<Wire>,
    idle: Option<Duration>,
) -> Ended {
    let splice =
        matches!(client.get_ref(), Wire::Plain(_)) && matches!(target.get_ref(), Wire::Plain(_));
    let mut up = Direction::new(splice);
    let mut down = Direction::new(splice);
    let mut last = Instant::now();
    let mut timer = idle.map(|d| Box::pin(tokio::time::sleep(d)));
    let result = poll_fn(|cx| {
        let a = up.poll(cx, client, target, &mut last);
        let b = down.poll(cx, target, client, &mut last);
        match (a, b) {
            (Poll::Ready(Err(e)), _) | (_, Poll::Ready(Err(e))) => return Poll::Ready(Err(e)),
            (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => return Poll::Ready(Ok(true)),
            _ => {}
        }
        if let (Some(timer), Some(idle)) = (timer.as_mut(), idle) {
            while timer.as_mut().poll(cx).is_ready() {
                let due = last + idle;
                if Instant::now() >= due {
                    return Poll::Ready(Ok(false));
                }
                timer.as_mut().reset(due);
            }
        }
        Poll::Pending
    })
    .await;
    match result {
        Ok(true) => Ended::Closed,
        Ok(false) => Ended::Idle,
        Err(e) => {
            reset(client);
            reset(target);
            Ended::Reset(e)
        }
    }
}

/// Makes the coming close a reset (SO_LINGER 0), so the peer learns the relay broke
/// rather than reading a clean end. A Unix socket has no reset: its close is enough.
pub(crate) fn reset(leg: &AsyncFd<Wire>) {
    let _ = socket2::SockRef::from(leg.get_ref().socket()).set_linger(Some(Duration::ZERO));
}

/// One direction, source to sink: its bytes in flight and how far its end has got.
struct Direction {
    /// Both legs plain: bytes go through a pipe; otherwise through `buf`.
    splice: bool,
    /// The pipe holding this direction's bytes in flight (taken from the pool on reading,
    /// given back once drained).
    pipe: Option<Pipe>,
    /// The userspace buffer of a TLS direction, held only while bytes flow.
    buf: Option<Box<[u8]>>,
    /// `buf[start..end]` is still to be written.
    start: usize,
    /// End of what was read into `buf`; for a pipe, the bytes it holds.
    end: usize,
    /// The source said EOF: once what is in flight is written, the sink is half-closed.
    eof: bool,
    /// The sink is half-closed (its close_notify queued, for TLS): this direction is done
    /// once the sink has no TLS bytes left to send.
    shut: bool,
}

impl Direction {
    fn new(splice: bool) -> Direction {
        Direction {
            splice,
            pipe: None,
            buf: None,
            start: 0,
            end: 0,
            eof: false,
            shut: false,
        }
    }

    /// Moves what can be moved now; `Ready(Ok)` once this direction has ended.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut AsyncFd<Wire>,
        dst: &mut AsyncFd<Wire>,
        last: &mut Instant,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.start < self.end {
                ready!(self.poll_write(cx, dst))?;
                continue;
            }
            if dst.get_ref().wants_write() {
                // TLS records (or the close_notify) rustls could not send yet.
                let mut guard = ready!(dst.poll_write_ready_mut(cx))?;
                match guard.try_io(|fd| fd.get_mut().write_pending()) {
                    Ok(r) => r?,
                    Err(_) => continue,
                }
                continue;
            }
            self.release();
            if self.shut {
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                match dst.get_mut().shutdown_write() {
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                    other => other?,
                }
                self.shut = true;
                continue;
            }
            let n = ready!(self.poll_read(cx, src))?;
            *last = Instant::now();
            if n == 0 {
                self.eof = true;
            }
        }
    }

    /// Reads once from `src` into the pipe or the buffer: the byte count, 0 at EOF.
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut AsyncFd<Wire>,
    ) -> Poll<io::Result<usize>> {
        loop {
            // TLS may hold decrypted bytes the socket's readiness would not announce.
            let buffered = src.get_mut().buffered();
            let result = if buffered {
                self.read_once(src.get_mut())
            } else {
                let mut guard = ready!(src.poll_read_ready_mut(cx))?;
                match guard.try_io(|fd| self.read_once(fd.get_mut())) {
                    Ok(r) => r,
                    Err(_) => continue,
                }
            };
            return Poll::Ready(match result {
                Ok(n) => Ok(n),
                // A TLS peer gone without close_notify: the end of its data all the same
                // (nothing here can tell a truncation), said in the log.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && is_tls(src) => {
                    tracing::debug!("TLS peer closed without close_notify");
                    Ok(0)
                }
                Err(e) => Err(e),
            });
        }
    }

    /// One non-blocking read into what this direction uses for bytes in flight; on
    /// `WouldBlock` that is given back, so waiting holds nothing.
    fn read_once(&mut self, src: &mut Wire) -> io::Result<usize> {
        let result = if self.splice {
            let pipe = match self.pipe.take() {
                Some(p) => p,
                None => Pipe::take()?,
            };
            let r = rustix::pipe::splice(
                src.as_fd(),
                None,
                &pipe.write,
                None,
                PIPE_SIZE,
                SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
            )
            .map_err(io::Error::from);
            self.pipe = Some(pipe);
            r
        } else {
            let buf = self
                .buf
                .get_or_insert_with(|| vec![0; TLS_BUF].into_boxed_slice());
            src.read(buf)
        };
        match result {
            Ok(n) => {
                self.start = 0;
                self.end = n;
                Ok(n)
            }
            Err(e) => {
                self.release();
                Err(e)
            }
        }
    }

    /// Writes what is in flight to `dst` as far as it takes it.
    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut AsyncFd<Wire>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(dst.poll_write_ready_mut(cx))?;
            let written = guard.try_io(|fd| {
                let wire = fd.get_mut();
                match (&self.pipe, &self.buf) {
                    (Some(pipe), _) => rustix::pipe::splice(
                        &pipe.read,
                        None,
                        wire.as_fd(),
                        None,
                        self.end - self.start,
                        SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
                    )
                    .map_err(io::Error::from),
                    (None, Some(buf)) => wire.write(&buf[self.start..self.end]),
                    (None, None) => Ok(self.end - self.start),
                }
            });
            match written {
                Ok(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(Ok(n)) => {
                    self.start += n;
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Gives back the pipe (to the pool, empty) and the buffer once nothing is in flight.
    fn release(&mut self) {
        if self.start < self.end {
            return;
        }
        self.start = 0;
        self.end = 0;
        self.buf = None;
        if let Some(pipe) = self.pipe.take() {
            pipe.give_back();
        }
    }
}

impl Drop for Direction {
    fn drop(&mut self) {
        // A pipe with bytes still in it is closed with the connection, not pooled: the
        // next connection must not receive this one's bytes.
        if self.start >= self.end
            && let Some(pipe) = self.pipe.take()
        {
            pipe.give_back();
        }
    }
}

fn is_tls(leg: &AsyncFd<Wire>) -> bool {
    matches!(leg.get_ref(), Wire::Tls(_))
}

/// A pipe for `splice`: both ends non-blocking.
struct Pipe {
    /// Where bytes leave the pipe for the sink.
    read: OwnedFd,
    /// Where bytes from the source enter.
    write: OwnedFd,
}

thread_local! {
    /// Empty pipes ready for the next direction with bytes to move on this thread: making
    /// a pipe (and sizing it) costs three system calls.
    static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

impl Pipe {
    /// An empty pipe from this thread's pool, or a new one.
    fn take() -> io::Result<Pipe> {
        if let Some(pipe) = POOL.with(|p| p.borrow_mut().pop()) {
            return Ok(pipe);
        }
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // Best effort: without it the pipe keeps the default 64 KiB.
        let _ = rustix::pipe::fcntl_setpipe_size(&write, PIPE_SIZE);
        Ok(Pipe { read, write })
    }

    /// Returns an empty pipe to this thread's pool (closing it when the pool is full).
    fn give_back(self) {
        // `try_with`: a task dropped while its thread winds up finds no pool; the pipe
        // is then closed.
        let _ = POOL.try_with(|p| {
            let mut pool = p.borrow_mut();
            if pool.len() < POOL_MAX {
                pool.push(self);
            }
        });
    }
}
