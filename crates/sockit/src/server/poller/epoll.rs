//! The `epoll` and `epoll-et` backends: Linux `epoll(7)`, level- or edge-triggered.
//!
//! Level-triggered, a socket is watched for reading or for writing (the loop switches only
//! when a reply gets stuck and when it is out). Edge-triggered, every socket is registered
//! once for both directions and hang-ups, and never touched again: the loop reads until the
//! socket is drained and writes until it would block, so no edge is ever missed.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::buffer::spare_capacity;
use rustix::event::{Timespec, epoll};
use rustix::io::Errno;

use super::{BATCH, Event, Interest, Poller, Ready, Token, Trigger};

/// An epoll instance and the buffer its events are collected into.
pub(crate) struct Epoll {
    /// The epoll instance.
    fd: OwnedFd,
    /// Level or edge: set once, for every registration (`epoll` vs `epoll-et`).
    trigger: Trigger,
    /// What `epoll_wait` fills, kept to reuse the allocation ([`BATCH`] at a time).
    batch: Vec<epoll::Event>,
}

impl Epoll {
    pub(crate) fn new(trigger: Trigger) -> io::Result<Epoll> {
        Ok(Epoll {
            fd: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            trigger,
            batch: Vec::with_capacity(BATCH),
        })
    }

    fn flags(&self, interest: Interest) -> epoll::EventFlags {
        use epoll::EventFlags as F;
        match (self.trigger, interest) {
            (Trigger::Level, Interest::Read) => F::IN,
            (Trigger::Level, Interest::Write) => F::OUT,
            // RDHUP tells a short read apart from one that also met the peer's FIN.
            (Trigger::Edge, _) => F::IN | F::OUT | F::RDHUP | F::ET,
        }
    }
}

impl Poller for Epoll {
    fn trigger(&self) -> Trigger {
        self.trigger
    }

    fn add(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        let data = epoll::EventData::new_u64(token as u64);
        Ok(epoll::add(&self.fd, fd, data, self.flags(interest))?)
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        match self.trigger {
            // Registered for everything once; an epoll_ctl here would be a wasted syscall.
            Trigger::Edge => Ok(()),
            Trigger::Level => {
                let data = epoll::EventData::new_u64(token as u64);
                Ok(epoll::modify(&self.fd, fd, data, self.flags(interest))?)
            }
        }
    }

    fn delete(&mut self, fd: BorrowedFd<'_>, _token: Token) -> io::Result<()> {
        Ok(epoll::delete(&self.fd, fd)?)
    }

    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        self.batch.clear();
        let timeout = timeout.map(timespec);
        match epoll::wait(&self.fd, spare_capacity(&mut self.batch), timeout.as_ref()) {
            Ok(_) => {}
            Err(Errno::INTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        events.extend(self.batch.iter().map(|e| {
            let flags = e.flags;
            Event {
                token: e.data.u64() as Token,
                ready: ready(flags),
            }
        }));
        Ok(())
    }
}

fn ready(flags: epoll::EventFlags) -> Ready {
    use epoll::EventFlags as F;
    let mut ready = Ready::default();
    if flags.intersects(F::IN | F::PRI) {
        ready |= Ready::READABLE;
    }
    if flags.contains(F::OUT) {
        ready |= Ready::WRITABLE;
    }
    if flags.intersects(F::HUP | F::ERR | F::RDHUP) {
        ready |= Ready::CLOSED;
    }
    ready
}

/// A wait timeout; rustix rounds it up to whole milliseconds, so a deadline is never
/// woken for early.
pub(crate) fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: d.subsec_nanos().into(),
    }
}
