//! The event-loop models (`select`, `poll`, `epoll`, `epoll-et`): one readiness loop per
//! worker, each on its own listener, over the small [`Poller`] trait of [`super::poller`]
//! (one backend per file there); connections live in a [`Slab`], index = token.
//!
//! # Transitions
//! After every handler call (`on_connect`, `on_data`, `on_eof`, `on_drained`) the loop
//! sends what the handler queued as far as the socket takes it; what is left is the
//! connection's *pending output*. Phase, pending output and the handler's [`Flow`] then
//! decide what the connection waits for next:
//!
//! | phase   | pending output | flow / event                  | next                                          |
//! |---------|----------------|-------------------------------|-----------------------------------------------|
//! | Open    | empty          | `Continue`, nothing queued    | interest Read (edge: read on to a short read) |
//! | Open    | empty          | `Continue`, reply sent        | `on_drained` (≤ `DRAIN_ROUNDS`), then Read     |
//! | Open    | not empty      | `Continue`                    | interest Write; reading suspended             |
//! | Open    | empty          | `Close`                       | close                                         |
//! | Open    | not empty      | `Close`                       | phase Closing, interest Write                 |
//! | Open    | —              | end of stream or shutdown     | `on_eof`, phase Ending                        |
//! | Ending  | empty          | `on_drained` adds nothing     | close                                         |
//! | Ending  | empty          | `on_drained` adds more        | send it; stay Ending                          |
//! | Ending  | not empty      | —                             | interest Write                                |
//! | Closing | empty          | last write done               | close                                         |
//! | Closing | not empty      | —                             | interest Write                                |
//! | any     | not empty      | writable, all written         | Closing: close; else `on_drained`, then Read  |
//! | any     | not empty      | writable, socket still full   | interest Write (no change)                    |
//! | any     | —              | handler panicked, I/O error   | close                                         |
//! | Open    | empty          | head past its deadline        | `on_head_timeout`, one write, close           |
//!
//! Level-triggered backends see each interest change as a `modify`; the edge-triggered
//! one watches both directions from the start and never changes.
//!
//! The loop has the shape of mio's `tcp_server` example: a token → connection slab, accept
//! until the listener would block, read, hand the bytes to the [`Handler`], write its reply,
//! deregister on close. It is a small driver around the sans-IO handler, as `conn.rs` is
//! for the blocking models.
//!
//! Memory: the read buffer and the reply scratch buffer belong to the loop, not to the
//! connections. An idle connection holds its socket, its handler, two timestamps and an
//! empty (unallocated) pending-output `Vec`: about a hundred bytes, so 10,000 of them fit
//! in 1 MiB.
//!
//! Speed: in the common case a message costs one `read` and one `send` and allocates
//! nothing: the reply is sent straight from the scratch buffer. Only when the socket takes
//! part of it is the unwritten tail moved into the connection, which is then not read
//! again until that tail is written (backpressure: a peer that does not read cannot make the
//! server buffer without bound). Level-triggered backends change a socket's interest only
//! when it enters or leaves that state; the edge-triggered one never does. File ranges in
//! a reply go by `sendfile`, a piece per writable event, never through the loop's memory.
//!
//! Fairness: a handler that streams (it adds more every time its output is drained) gets
//! [`DRAIN_ROUNDS`] rounds per wake-up, then waits for the next turn of the loop.
//!
//! One file over 800 lines on purpose: it is one state machine, the table above, and
//! every row of it is a branch of `EventLoop`'s methods below; split across files, a reader
//! would follow one transition through several. What is not the state machine lives
//! apart: the backends in `poller/`, the connection table in `slab.rs`, the tests in
//! `eventloop/tests.rs`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::io::Errno;

use super::head::last_words;
use super::output::Progress;
use super::poller::{BATCH, Epoll, Event, Interest, Poll, Poller, Ready, Select, Token, Trigger};
use super::slab::Slab;
use super::{Ctx, Flow, GRACE, HEAD_TIMEOUT, Handler, Model, Output, Service};
use crate::error::{Error, Result};
use crate::socket::gate::Slot;
use crate::socket::{Listener, Stream};

/// Bytes read per `read` call; one buffer per loop, however many connections it serves.
const READ_BUF: usize = 64 * 1024;

/// The scratch reply buffer is shrunk back to this after a handler made it larger, so one
/// huge reply does not pin memory for the life of the loop.
const OUT_KEEP: usize = 1 << 20;

/// Times a connection's handler may refill its drained output in one wake-up.
const DRAIN_ROUNDS: usize = 16;

/// How long accepting pauses when the process runs out of descriptors or memory; the
/// connections already open keep being served meanwhile.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

const LISTENER: Token = 0;
const SHUTDOWN: Token = 1;
const FIRST_CONN: Token = 2;

/// Serves `listeners` with one loop each: the first in the caller's thread, the others in
/// threads of their own; all share the gate (limit, allow/deny) and the shutdown handle.
pub(crate) fn serve<S: Service>(
    listeners: &[Listener],
    model: Model,
    service: std::sync::Arc<S>,
    ctx: Ctx<'_>,
) -> Result<()> {
    for l in listeners {
        l.set_nonblocking(true)
            .map_err(|e| Error::io("set listener non-blocking", e))?;
    }
    let service = &*service;
    let ctx = &ctx;
    let run = move |listener: &Listener| {
        let result = run_loop(model, listener, service, ctx);
        if result.is_err() {
            // A loop that failed takes the others down with it: half a server that still
            // accepts on some listeners would be harder to notice than a clean exit.
            ctx.shutdown.trigger();
        }
        result
    };
    let (first, rest) = listeners
        .split_first()
        .ok_or_else(|| Error::io("serve", io::ErrorKind::InvalidInput.into()))?;
    std::thread::scope(|scope| {
        let mut result = Ok(());
        let mut threads = Vec::new();
        for (i, listener) in rest.iter().enumerate() {
            let spawned = std::thread::Builder::new()
                .name(format!("sockit-loop-{}", i + 1))
                .spawn_scoped(scope, move || run(listener));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    ctx.shutdown.trigger();
                    result = Err(Error::io("start event-loop thread", e));
                    break;
                }
            }
        }
        if result.is_ok() {
            result = run(first);
        }
        for t in threads {
            let r = t.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

fn run_loop<S: Service>(
    model: Model,
    listener: &Listener,
    service: &S,
    ctx: &Ctx<'_>,
) -> Result<()> {
    let fd = Some(listener);
    match model {
        Model::Select => EventLoop::new(Select::new(), service, ctx, fd).run(),
        Model::Poll => EventLoop::new(Poll::new(), service, ctx, fd).run(),
        Model::Epoll | Model::EpollEt => {
            let trigger = if model == Model::Epoll {
                Trigger::Level
            } else {
                Trigger::Edge
            };
            let epoll = Epoll::new(trigger).map_err(|e| Error::io("epoll_create", e))?;
            EventLoop::new(epoll, service, ctx, fd).run()
        }
        other => Err(Error::Unsupported {
            model: other.name(),
            what: "an event loop",
        }),
    }
}

/// One connection's state between events.
struct Conn<H> {
    /// The socket; closed when the connection is dropped, after the poller forgot it.
    fd: OwnedFd,
    /// Where the connection is in its life (see the transition table above).
    phase: Phase,
    /// When the connection last read or wrote, in milliseconds of the loop clock.
    last_active: u64,
    /// When the head in progress began (loop clock), or [`NEVER`] when none is: the same
    /// timestamps as `last_active`, so timing heads costs no clock read of its own.
    head_since: u64,
    /// The unwritten rest of a reply; empty and unallocated in the common case.
    pending: Output,
    /// The protocol logic, fed the bytes read and asked for replies.
    handler: H,
    /// Its place under the connection limit, given back when the connection is dropped.
    _slot: Slot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading and replying.
    Open,
    /// The peer (or the server) ended and the handler has said its last words: write
    /// them, let the handler add more as they drain, then close.
    Ending,
    /// The handler said `Close`: write what is pending, then close.
    Closing,
}

/// Whether new connections are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepting {
    Yes,
    /// Out of descriptors or memory: the listener is unregistered until this time (ms).
    PausedUntil(u64),
    /// Shutting down.
    Stopped,
}

/// No time at all: a timeout that is not configured, a head that is not in progress.
const NEVER: u64 = u64::MAX;

/// The timeout bookkeeping (idle connections, heads past their deadline): a sweep every
/// quarter of the shorter timeout over coarse timestamps, instead of a timer per
/// connection or a clock read per message.
#[derive(Debug, Clone, Copy)]
struct Idle {
    /// A connection silent for this long is closed ([`NEVER`]: no idle timeout).
    timeout_ms: u64,
    /// A head in progress for this long is cut ([`NEVER`]: no header timeout); also
    /// checked whenever the connection reads, so a trickling head is cut on time.
    head_ms: u64,
    /// Time between sweeps: a quarter of the shorter timeout, so a connection overstays
    /// by 25% at most.
    every_ms: u64,
    /// When the next sweep is due, in loop-clock milliseconds.
    next_sweep: u64,
}

/// One event loop: its poller, its connections and its buffers.
pub(crate) struct EventLoop<'a, P: Poller, S: Service> {
    /// The readiness backend: the one thing that differs between the four models.
    poller: P,
    /// Makes a handler for each admitted connection.
    service: &'a S,
    /// Configuration, shutdown handle and admission gate, shared with the other loops.
    ctx: &'a Ctx<'a>,
    /// Where connections come from; `None` in tests that adopt socketpairs.
    listener: Option<&'a Listener>,
    /// The connections, by token minus `FIRST_CONN`.
    conns: Slab<Conn<S::Handler>>,
    /// Readiness reports of the current wait, kept to reuse the allocation.
    events: Vec<Event>,
    /// The one read buffer of the loop: connections own none, so idle ones cost little.
    buf: Box<[u8]>,
    /// Scratch for a handler's reply, sent straight from here; only an unsent tail moves
    /// into the connection.
    out: Output,
    /// Connections whose handlers used up their [`DRAIN_ROUNDS`]: resumed after this batch.
    again: Vec<usize>,
    /// Whether the listener is watched (paused when descriptors run out, stopped at
    /// shutdown).
    accepting: Accepting,
    /// The timeout sweep, when an idle or header timeout is configured.
    idle: Option<Idle>,
    /// The loop clock, read once per wake-up and only when something is timed.
    start: Instant,
    /// Milliseconds since `start` at the last wake-up: the one clock read connections
    /// share.
    now: u64,
    /// Connections refused because the poller cannot watch their descriptor.
    unwatchable: u64,
}

impl<'a, P: Poller, S: Service> EventLoop<'a, P, S> {
    pub(crate) fn new(
        poller: P,
        service: &'a S,
        ctx: &'a Ctx<'a>,
        listener: Option<&'a Listener>,
    ) -> Self {
        let ms = |t: Duration| u64::try_from(t.as_millis()).unwrap_or(NEVER - 1).max(1);
        let timeout_ms = ctx.config.idle_timeout.map_or(NEVER, ms);
        let head_ms = ctx.config.header_timeout.map_or(NEVER, ms);
        let idle = (timeout_ms != NEVER || head_ms != NEVER).then(|| {
            let every_ms = (timeout_ms.min(head_ms) / 4).max(1);
            Idle {
                timeout_ms,
                head_ms,
                every_ms,
                next_sweep: every_ms,
            }
        });
        EventLoop {
            poller,
            service,
            ctx,
            listener,
            conns: Slab::default(),
            events: Vec::with_capacity(BATCH),
            buf: vec![0; READ_BUF].into_boxed_slice(),
            out: Output::new(),
            again: Vec::new(),
            accepting: Accepting::Yes,
            idle,
            start: Instant::now(),
            now: 0,
            unwatchable: 0,
        }
    }

    /// Runs until shutdown; then stops accepting, lets every handler say its last words,
    /// writes them (for at most [`GRACE`]) and closes everything.
    pub(crate) fn run(mut self) -> Result<()> {
        if let Some(l) = self.listener {
            self.poller
                .add(l.as_fd(), LISTENER, Interest::Read)
                .map_err(|e| Error::io("watch listener", e))?;
        }
        self.poller
            .add(self.ctx.shutdown.fd(), SHUTDOWN, Interest::Read)
            .map_err(|e| Error::io("watch shutdown pipe", e))?;
        loop {
            let timeout = self.timeout();
            self.events.clear();
            self.poller
                .wait(&mut self.events, timeout)
                .map_err(|e| Error::io("wait for readiness", e))?;
            self.tick();
            let mut stop = false;
            for i in 0..self.events.len() {
                let Event { token, ready } = self.events[i];
                match token {
                    LISTENER => self.accept_all()?,
                    SHUTDOWN => stop = true,
                    t => self.on_event(t - FIRST_CONN, ready),
                }
            }
            if stop || self.ctx.shutdown.is_triggered() {
                return self.shut_down();
            }
            self.resume();
            self.timers();
        }
    }

    /// Takes a connection that was accepted and admitted: greets it and starts watching it.
    pub(crate) fn adopt(&mut self, fd: OwnedFd, mut handler: S::Handler, slot: Slot) {
        let Some(flow) = contained(&mut self.out, |out| handler.on_connect(out)) else {
            return;
        };
        let greeted = !self.out.is_empty();
        let mut conn = Conn {
            fd,
            phase: Phase::Open,
            last_active: self.now,
            head_since: NEVER,
            pending: Output::new(),
            handler,
            _slot: slot,
        };
        if let Err(e) = send_out(&conn.fd, &mut self.out, &mut conn.pending) {
            tracing::debug!(error = %e, "connection ended at greeting");
            return;
        }
        if flow == Flow::Close {
            if conn.pending.is_empty() {
                return;
            }
            conn.phase = Phase::Closing;
        }
        let interest = if conn.pending.is_empty() {
            Interest::Read
        } else {
            Interest::Write
        };
        let idx = self.conns.next_key();
        if let Err(e) = self.poller.add(conn.fd.as_fd(), FIRST_CONN + idx, interest) {
            tracing::warn!(error = %e, "cannot watch connection; closed");
            return;
        }
        let drained = greeted && interest == Interest::Read && conn.phase == Phase::Open;
        self.conns.insert(conn);
        if drained {
            self.again.push(idx);
        }
    }

    /// Accepts until the listener would block (it may be shared with other loops, which
    /// then got the connection first: normal).
    fn accept_all(&mut self) -> Result<()> {
        let Some(listener) = self.listener else {
            return Ok(());
        };
        if self.accepting != Accepting::Yes {
            return Ok(());
        }
        loop {
            match accept(listener) {
                Ok((stream, peer)) => self.admit(stream, &peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if is_shortage(&e) => {
                    tracing::warn!(error = %e, "accept failed; pausing accepts");
                    self.pause_accepting(listener);
                    return Ok(());
                }
                // One connection's trouble (aborted before we got to it, EINTR, ...).
                Err(e) if crate::socket::listener::accept_error_is_transient(&e) => {}
                Err(e) => return Err(Error::io("accept", e)),
            }
        }
    }

    fn admit(&mut self, stream: OwnedFd, peer: &crate::socket::Peer) {
        if !self.poller.can_watch(stream.as_raw_fd()) {
            self.unwatchable += 1;
            // Once, then on every power of two: a flood must not flood the log as well.
            if self.unwatchable.is_power_of_two() {
                tracing::warn!(
                    %peer,
                    fd = stream.as_raw_fd(),
                    refused = self.unwatchable,
                    "refused: descriptor too large for select (FD_SETSIZE); use poll or epoll"
                );
            }
            return;
        }
        let Some(slot) = self.ctx.gate.admit(stream.as_fd(), peer) else {
            return;
        };
        let handler = self.service.handler(peer);
        self.adopt(stream, handler, slot);
    }

    fn pause_accepting(&mut self, listener: &Listener) {
        let _ = self.poller.delete(listener.as_fd(), LISTENER);
        self.now = self.elapsed_ms();
        self.accepting = Accepting::PausedUntil(self.now + ACCEPT_PAUSE.as_millis() as u64);
    }

    /// Handles one readiness report of connection `idx`.
    fn on_event(&mut self, idx: usize, mut ready: Ready) {
        let trigger = self.poller.trigger();
        let Some(conn) = self.conns.get_mut(idx) else {
            // Closed earlier in this batch.
            return;
        };
        if !conn.pending.is_empty() {
            if !ready.contains(Ready::WRITABLE) && !ready.contains(Ready::CLOSED) {
                // Edge-triggered: data arrived while the reply is stuck; read it once the
                // reply is out (below), as no new edge will say it is there.
                return;
            }
            match flush(&conn.fd, &mut conn.pending) {
                Err(e) => return self.close(idx, &e),
                Ok(Progress::Blocked) => {
                    conn.last_active = self.now;
                    return;
                }
                Ok(Progress::Done) => {
                    conn.last_active = self.now;
                    // Reading was suspended while the reply went out: the peer could not be
                    // heard, so the head in progress starts afresh.
                    if conn.head_since != NEVER {
                        conn.head_since = self.now;
                    }
                }
            }
            if conn.phase == Phase::Closing {
                return self.close_quietly(idx);
            }
            if !self.drained(idx) {
                return;
            }
            match trigger {
                Trigger::Level => {
                    // Back to reading; the level of whatever waits will wake us again.
                    self.want(idx, Interest::Read);
                    return;
                }
                Trigger::Edge => ready |= Ready::READABLE,
            }
        }
        if ready.contains(Ready::READABLE) || ready.contains(Ready::CLOSED) {
            self.read(idx, trigger, ready);
        }
    }

    /// Reads and handles what arrived: once for level-triggered backends, until the socket
    /// is drained for edge-triggered ones.
    fn read(&mut self, idx: usize, trigger: Trigger, ready: Ready) {
        let head_ms = self.idle.map_or(NEVER, |i| i.head_ms);
        loop {
            let Some(conn) = self.conns.get_mut(idx) else {
                return;
            };
            if conn.phase != Phase::Open {
                return;
            }
            let n = match rustix::io::read(&conn.fd, &mut self.buf[..]) {
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return,
                Err(e) => return self.close(idx, &e.into()),
            };
            conn.last_active = self.now;
            // Bytes that arrive after the head's deadline are late, whatever they say.
            if n > 0 && head_ms != NEVER && late(conn.head_since, head_ms, self.now) {
                return self.head_missed(idx);
            }
            let data = &self.buf[..n];
            // `None`: end of stream.
            let flow = contained(&mut self.out, |out| {
                if n == 0 {
                    conn.handler.on_eof(out);
                    None
                } else {
                    Some(conn.handler.on_data(data, out))
                }
            });
            let Some(flow) = flow else {
                return self.close_quietly(idx);
            };
            if n > 0 && head_ms != NEVER {
                if !conn.handler.in_head() {
                    conn.head_since = NEVER;
                } else if conn.head_since == NEVER {
                    conn.head_since = self.now;
                }
            }
            let replied = !self.out.is_empty();
            let sent = send_out(&conn.fd, &mut self.out, &mut conn.pending);
            if let Err(e) = sent {
                return self.close(idx, &e);
            }
            let Some(flow) = flow else {
                conn.phase = Phase::Ending;
                if conn.pending.is_empty() {
                    self.drained(idx);
                    return;
                }
                return self.want(idx, Interest::Write);
            };
            if flow == Flow::Close {
                conn.phase = Phase::Closing;
                if conn.pending.is_empty() {
                    return self.close_quietly(idx);
                }
                return self.want(idx, Interest::Write);
            }
            if !conn.pending.is_empty() {
                return self.want(idx, Interest::Write);
            }
            if replied && !self.drained(idx) {
                return;
            }
            // Level-triggered: what is left is reported again, and other connections get
            // their turn meanwhile. Edge-triggered: a short read emptied the socket (data
            // arriving later raises a new edge), unless the peer also hung up, whose EOF
            // must still be read now (the same reasoning as tokio's `poll_read`).
            if trigger == Trigger::Level || (n < self.buf.len() && !ready.contains(Ready::CLOSED)) {
                return;
            }
        }
    }

    /// Called when connection `idx`'s output has all been written and it is open or
    /// ending: lets its handler add more ([`Handler::on_drained`]), for at most
    /// [`DRAIN_ROUNDS`] rounds. Returns whether the connection may read again now; if not,
    /// it was closed (an ending one is, once its handler adds nothing), is waiting to
    /// write, or waits for [`EventLoop::resume`].
    fn drained(&mut self, idx: usize) -> bool {
        for _ in 0..DRAIN_ROUNDS {
            let Some(conn) = self.conns.get_mut(idx) else {
                return false;
            };
            let Some(flow) = contained(&mut self.out, |out| conn.handler.on_drained(out)) else {
                self.close_quietly(idx);
                return false;
            };
            if flow == Flow::Continue && self.out.is_empty() {
                if conn.phase == Phase::Ending {
                    self.close_quietly(idx);
                    return false;
                }
                return true;
            }
            if let Err(e) = send_out(&conn.fd, &mut self.out, &mut conn.pending) {
                self.close(idx, &e);
                return false;
            }
            if flow == Flow::Close {
                conn.phase = Phase::Closing;
                if conn.pending.is_empty() {
                    self.close_quietly(idx);
                } else {
                    self.want(idx, Interest::Write);
                }
                return false;
            }
            if !conn.pending.is_empty() {
                self.want(idx, Interest::Write);
                return false;
            }
        }
        self.again.push(idx);
        false
    }

    /// Gives the connections that used up their drain rounds their next turn.
    fn resume(&mut self) {
        let mut again = std::mem::take(&mut self.again);
        for &idx in &again {
            let ready = self
                .conns
                .get(idx)
                .is_some_and(|c| c.phase != Phase::Closing && c.pending.is_empty());
            // Edge-triggered: data that came meanwhile raised no new edge; read it now.
            if ready && self.drained(idx) && self.poller.trigger() == Trigger::Edge {
                self.read(idx, Trigger::Edge, Ready::READABLE);
            }
        }
        again.clear();
        if self.again.is_empty() {
            self.again = again;
        }
    }

    /// Switches a connection between reading and writing (no-op for edge-triggered
    /// backends, which watch both all along).
    fn want(&mut self, idx: usize, interest: Interest) {
        let Some(conn) = self.conns.get(idx) else {
            return;
        };
        if let Err(e) = self
            .poller
            .modify(conn.fd.as_fd(), FIRST_CONN + idx, interest)
        {
            self.close(idx, &e);
        }
    }

    /// Ends a connection whose head missed its deadline: the handler's last words get
    /// one attempt that never waits, then the connection is closed.
    fn head_missed(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        if contained(&mut self.out, |out| conn.handler.on_head_timeout(out)).is_some() {
            last_words(conn.fd.as_fd(), &mut self.out);
        }
        tracing::debug!("{HEAD_TIMEOUT}; connection closed");
        self.close_quietly(idx);
    }

    fn close(&mut self, idx: usize, why: &io::Error) {
        tracing::debug!(error = %why, "connection ended");
        self.close_quietly(idx);
    }

    fn close_quietly(&mut self, idx: usize) {
        if let Some(conn) = self.conns.remove(idx) {
            let _ = self.poller.delete(conn.fd.as_fd(), FIRST_CONN + idx);
            // Dropping closes the socket and gives the slot back to the gate.
        }
    }

    /// How long the next wait may last: until the next idle sweep or accept resumption,
    /// and not at all while connections wait for [`EventLoop::resume`].
    fn timeout(&self) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let sweep = self.idle.map(|i| i.next_sweep);
        let resume = match self.accepting {
            Accepting::PausedUntil(t) => Some(t),
            _ => None,
        };
        let next = match (sweep, resume) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        next.map(|t| Duration::from_millis(t.saturating_sub(self.now)))
    }

    /// Reads the clock, once per wake-up, if anything is timed.
    fn tick(&mut self) {
        // `idle` is set when either timeout is: heads use the same clock.
        if self.idle.is_some() || self.accepting != Accepting::Yes {
            self.now = self.elapsed_ms();
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Resumes accepting after a pause, and closes connections idle for too long.
    fn timers(&mut self) {
        if let (Accepting::PausedUntil(t), Some(l)) = (self.accepting, self.listener)
            && self.now >= t
        {
            self.accepting = match self.poller.add(l.as_fd(), LISTENER, Interest::Read) {
                Ok(()) => Accepting::Yes,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch listener again; retrying");
                    Accepting::PausedUntil(self.now + ACCEPT_PAUSE.as_millis() as u64)
                }
            };
        }
        let Some(idle) = &mut self.idle else {
            return;
        };
        if self.now < idle.next_sweep {
            return;
        }
        idle.next_sweep = self.now + idle.every_ms;
        let Idle {
            timeout_ms,
            head_ms,
            ..
        } = *idle;
        for idx in 0..self.conns.end() {
            let Some(c) = self.conns.get(idx) else {
                continue;
            };
            if late(c.last_active, timeout_ms, self.now) {
                tracing::debug!("connection idle too long; closed");
                self.close_quietly(idx);
            } else if c.phase == Phase::Open
                // A reply still going out is the server's time, not the peer's.
                && c.pending.is_empty()
                && late(c.head_since, head_ms, self.now)
            {
                self.head_missed(idx);
            }
        }
    }

    fn shut_down(mut self) -> Result<()> {
        if let Some(l) = self.listener
            && self.accepting == Accepting::Yes
        {
            let _ = self.poller.delete(l.as_fd(), LISTENER);
        }
        self.accepting = Accepting::Stopped;
        let _ = self.poller.delete(self.ctx.shutdown.fd(), SHUTDOWN);
        for idx in 0..self.conns.end() {
            let Some(conn) = self.conns.get_mut(idx) else {
                continue;
            };
            if conn.phase == Phase::Open {
                conn.phase = Phase::Ending;
                contained(&mut self.out, |out| conn.handler.on_eof(out));
                if let Err(e) = send_out(&conn.fd, &mut self.out, &mut conn.pending) {
                    self.close(idx, &e);
                    continue;
                }
            }
            if !conn.pending.is_empty() {
                self.want(idx, Interest::Write);
            } else if conn.phase == Phase::Ending {
                self.drained(idx);
            } else {
                self.close_quietly(idx);
            }
        }
        let deadline = Instant::now() + GRACE;
        while self.conns.len() > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    connections = self.conns.len(),
                    "peers did not take their last replies in time; closing"
                );
                break;
            }
            let wait = if self.again.is_empty() {
                left
            } else {
                Duration::ZERO
            };
            self.events.clear();
            self.poller
                .wait(&mut self.events, Some(wait))
                .map_err(|e| Error::io("wait for readiness", e))?;
            for i in 0..self.events.len() {
                let Event { token, ready } = self.events[i];
                if token >= FIRST_CONN {
                    self.on_event(token - FIRST_CONN, ready);
                }
            }
            self.resume();
        }
        for idx in 0..self.conns.end() {
            self.close_quietly(idx);
        }
        Ok(())
    }
}

/// Runs a handler callback. A panic in it (a bug the input found) costs its connection
/// only, as it costs one thread under the `threads` model, not the loop serving every
/// other connection: `None`, with whatever the handler had half-written dropped.
fn contained<R>(out: &mut Output, f: impl FnOnce(&mut Output) -> R) -> Option<R> {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(out))).ok();
    if r.is_none() {
        out.clear();
        tracing::error!("connection handler panicked; connection closed");
    }
    r
}

/// Whether `timeout_ms` has passed since `since` at `now` (never, if either is [`NEVER`]).
fn late(since: u64, timeout_ms: u64, now: u64) -> bool {
    since != NEVER && timeout_ms != NEVER && now.saturating_sub(since) >= timeout_ms
}

/// Accepts one connection and makes it non-blocking.
fn accept(listener: &Listener) -> io::Result<(OwnedFd, crate::socket::Peer)> {
    let (stream, peer) = listener.accept()?;
    stream.set_nonblocking(true)?;
    let fd = match stream {
        Stream::Tcp(s) => s.into(),
        Stream::Unix(s) => s.into(),
    };
    Ok((fd, peer))
}

fn is_shortage(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Writes `out` (the loop's scratch output), or appends it to `pending` if a reply is
/// already waiting there, then empties `out`. What the socket does not take goes to
/// `pending`.
fn send_out(fd: &OwnedFd, out: &mut Output, pending: &mut Output) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let result = if pending.is_empty() {
        out.write_to(fd.as_fd()).map(|_| ())
    } else {
        Ok(())
    };
    // Whatever is left (all of it when a reply was already waiting) queues behind.
    pending.append(out);
    if out.capacity() > OUT_KEEP {
        out.shrink_to(READ_BUF);
    }
    result
}

/// Writes as much of `pending` as the socket takes; frees it once it is all out.
fn flush(fd: &OwnedFd, pending: &mut Output) -> io::Result<Progress> {
    let progress = pending.write_to(fd.as_fd())?;
    if progress == Progress::Done {
        // Back to the unallocated state an idle connection should be in.
        *pending = Output::new();
    }
    Ok(progress)
}

#[cfg(test)]
mod tests;
