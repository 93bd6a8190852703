//! Request heads have deadlines, not just idle timeouts. The idle timeout measures silence,
//! so a peer that sends one byte a second never trips it, and enough such peers fill the
//! connection limit. A head (a request's line and headers, a transfer's control frame)
//! must therefore *complete* within [`Config::header_timeout`](super::Config) of its first
//! byte, whatever its pace, as nginx's `client_header_timeout` bounds it.
//!
//! Who is in the middle of a head only the protocol knows
//! ([`Handler::in_head`](super::Handler::in_head)); this module keeps the time for the
//! blocking drivers and for services that own their sockets ([`HeadClock`]). The event loops keep it in the same
//! sweep as the idle timeout, the `async` model as a `tokio::time` deadline.
//!
//! Time the server spends writing (reading suspended until a reply is out) does not count
//! against the peer: the clock restarts once the reply is written.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::net::SendFlags;

use super::Output;
use crate::socket::Stream;

/// What a connection ended by the head deadline reports (logged, or shown by a service).
pub const HEAD_TIMEOUT: &str = "header timeout (head not complete in time)";

/// The error of a read that the head deadline ended.
pub(crate) fn head_timeout() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, HEAD_TIMEOUT)
}

/// The error of a read that the idle timeout ended.
pub(crate) fn idle_timeout() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "idle timeout")
}

/// The head deadline of one blocking connection: when the current head began, and the
/// read timeout (`SO_RCVTIMEO`) that leaves, so a blocked read wakes at whichever of the
/// idle timeout and the head deadline comes first.
///
/// Costs nothing while no head is in progress: the socket keeps the idle timeout set when
/// the connection was accepted, and the timeout is only shortened (one `setsockopt` per
/// read) while a head arrives in pieces.
#[derive(Debug, Clone)]
pub struct HeadClock {
    /// The read timeout the socket has outside heads (the idle timeout).
    idle: Option<Duration>,
    /// How long a head may take from its first byte; `None`: heads are not timed.
    header: Option<Duration>,
    /// When the head in progress began, if one is.
    since: Option<Instant>,
    /// Whether the socket's read timeout was shortened for a head, and must be put back.
    shortened: bool,
}

impl HeadClock {
    /// A clock for a connection whose read timeout is `idle`, whose heads must complete
    /// within `header`.
    pub fn new(idle: Option<Duration>, header: Option<Duration>) -> HeadClock {
        HeadClock {
            idle,
            header,
            since: None,
            shortened: false,
        }
    }

    /// Whether heads are timed at all (a header timeout is configured).
    pub fn is_on(&self) -> bool {
        self.header.is_some()
    }

    /// The idle timeout the socket's reads keep outside heads, for a service that changes
    /// the read timeout itself (a TLS handshake) and must put it back.
    pub fn idle(&self) -> Option<Duration> {
        self.idle
    }

    /// How long a head may take, for a service whose first head is not its own (a TLS
    /// handshake before the protocol's greeting).
    pub fn header(&self) -> Option<Duration> {
        self.header
    }

    /// Whether the head in progress has used up its time.
    pub fn overdue(&self) -> bool {
        match (self.header, self.since) {
            (Some(limit), Some(since)) => since.elapsed() >= limit,
            _ => false,
        }
    }

    /// Marks the start of a head (its first byte was just read), unless one is in progress.
    pub fn begin(&mut self) {
        if self.header.is_some() && self.since.is_none() {
            self.since = Some(Instant::now());
        }
    }

    /// Call before each read: fails with the head timeout if the head in progress is
    /// overdue, else shortens the socket's read timeout to what the head has left.
    pub fn before_read(&mut self, stream: &Stream) -> io::Result<()> {
        let (Some(limit), Some(since)) = (self.header, self.since) else {
            return Ok(());
        };
        let left = limit.saturating_sub(since.elapsed());
        if left.is_zero() {
            return Err(head_timeout());
        }
        let wait = match self.idle {
            Some(idle) if idle < left => idle,
            _ => left,
        };
        stream.set_read_timeout(Some(wait))?;
        self.shortened = true;
        Ok(())
    }

    /// Call after each read that delivered bytes: `in_head` says whether the peer is now
    /// in the middle of a head. A head that completed gives the socket its idle timeout
    /// back.
    pub fn after_read(&mut self, stream: &Stream, in_head: bool) -> io::Result<()> {
        if in_head {
            self.begin();
            return Ok(());
        }
        self.end(stream)
    }

    /// The head in progress (if any) is complete; the socket gets its idle timeout back.
    pub fn end(&mut self, stream: &Stream) -> io::Result<()> {
        self.since = None;
        if self.shortened {
            self.shortened = false;
            stream.set_read_timeout(self.idle)?;
        }
        Ok(())
    }

    /// The server spent time writing, not reading: the head in progress starts afresh, as
    /// the peer could not be heard meanwhile.
    pub fn restart(&mut self) {
        if self.since.is_some() {
            self.since = Some(Instant::now());
        }
    }

    /// The error for a read that timed out (`WouldBlock` from `SO_RCVTIMEO`): the head
    /// deadline's when that is what passed, else the idle timeout's.
    pub fn timed_out(&self) -> io::Error {
        if self.overdue() {
            head_timeout()
        } else {
            idle_timeout()
        }
    }
}

/// Sends a handler's last words (a 408, say) to a peer that is being dropped, in one
/// attempt that never waits: what the socket does not take at once is lost, so a peer
/// that stopped reading cannot hold the connection longer. Only bytes are sent; a queued
/// file range (no last words have one) is not.
pub(crate) fn last_words(fd: BorrowedFd<'_>, out: &mut Output) {
    if !out.is_empty() && out.queued_files() == 0 {
        let _ = rustix::net::send(fd, &out[..], SendFlags::DONTWAIT | SendFlags::NOSIGNAL);
    }
    out.clear();
}
