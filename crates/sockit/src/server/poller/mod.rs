//! The readiness vocabulary the event loop speaks ([`Token`], [`Interest`], [`Trigger`],
//! [`Ready`], [`Event`]) and the [`Poller`] trait, with one backend per file: `select.rs`,
//! `poll.rs`, `epoll.rs` (level- and edge-triggered). The backends know nothing of
//! connections or handlers; the loop (`eventloop.rs`) knows nothing of system calls.

pub(crate) mod epoll;
pub(crate) mod poll;
pub(crate) mod select;

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

pub(crate) use epoll::Epoll;
pub(crate) use poll::Poll;
pub(crate) use select::Select;

/// Readiness events taken per wait: enough to amortise the syscall over a busy loop.
pub(crate) const BATCH: usize = 1024;

/// Names a registration in a [`Poller`]: the listener, the shutdown pipe or a connection
/// (connection `i` of the slab is token `FIRST_CONN + i`, so tokens stay small and dense).
pub(crate) type Token = usize;

/// What the loop wants to hear about a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Readable (or closed): the normal state.
    Read,
    /// Writable (or closed): a reply is pending and reading is suspended.
    Write,
}

/// How a backend reports readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Reported for as long as it lasts: one read per wake-up is enough, what is left is
    /// reported again.
    Level,
    /// Reported when it appears: the loop must read until the socket would block (or a
    /// read comes back short), or it never hears about the rest.
    Edge,
}

/// Readiness of one registration, as a tiny bit set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ready(
    /// `READABLE | WRITABLE | CLOSED` bits: one byte, copied freely.
    u8,
);

impl Ready {
    pub(crate) const READABLE: Ready = Ready(1);
    pub(crate) const WRITABLE: Ready = Ready(2);
    /// The peer hung up or the socket failed: reading or writing will say how.
    pub(crate) const CLOSED: Ready = Ready(4);

    pub(crate) fn contains(self, other: Ready) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Ready {
    type Output = Ready;

    fn bitor(self, rhs: Ready) -> Ready {
        Ready(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Ready {
    fn bitor_assign(&mut self, rhs: Ready) {
        self.0 |= rhs.0;
    }
}

/// One readiness report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Event {
    /// Which registration is ready.
    pub(crate) token: Token,
    /// How it is ready.
    pub(crate) ready: Ready,
}

/// A readiness backend. Contract: a descriptor stays open from [`Poller::add`] until
/// [`Poller::delete`] (the loop always deletes before it closes).
pub(crate) trait Poller {
    /// How this backend reports readiness, for every registration.
    fn trigger(&self) -> Trigger;

    /// Whether `fd` can be registered at all (`select` cannot watch large descriptors).
    fn can_watch(&self, fd: RawFd) -> bool {
        let _ = fd;
        true
    }

    /// Starts watching `fd` under `token`.
    fn add(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()>;

    /// Changes what `fd` is watched for.
    fn modify(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()>;

    /// Stops watching `fd`.
    fn delete(&mut self, fd: BorrowedFd<'_>, token: Token) -> io::Result<()>;

    /// Waits until something is ready or `timeout` passes (`None`: no limit) and appends
    /// the reports to `events`. A signal interrupting the wait is not an error: it returns
    /// with no reports.
    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()>;
}
