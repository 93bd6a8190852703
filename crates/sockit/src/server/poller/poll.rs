//! The `poll` backend: `poll(2)` over an array of `pollfd`s kept between waits.
//!
//! The array changes only when a descriptor is added, removed or switched between reading
//! and writing; each wait hands the whole array to the kernel and scans it for results, so
//! a wait costs time in proportion to the connections (the reason epoll exists).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use super::epoll::timespec;
use super::{Event, Interest, Poller, Ready, Token, Trigger};

/// No entry in `Poll::index`.
const NONE: u32 = u32::MAX;

/// The `pollfd` array, with the token of each entry and the entry of each token.
#[derive(Default)]
pub(crate) struct Poll {
    /// The array handed to `poll(2)`, kept between waits (dense: removal swaps the last
    /// entry in).
    fds: Vec<PollFd<'static>>,
    /// `tokens[i]` is the token of `fds[i]`, to report readiness by token.
    tokens: Vec<Token>,
    /// `index[token]` is where that token's entry is in `fds` (tokens are small and dense).
    index: Vec<u32>,
}

impl Poll {
    pub(crate) fn new() -> Poll {
        Poll::default()
    }

    fn entry(fd: BorrowedFd<'_>, interest: Interest) -> PollFd<'static> {
        let flags = match interest {
            Interest::Read => PollFlags::IN,
            Interest::Write => PollFlags::OUT,
        };
        // SAFETY: the `Poller` contract keeps `fd` open until `delete`, which removes this
        // entry; the `'static` borrow never outlives the descriptor.
        let fd = unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) };
        PollFd::from_borrowed_fd(fd, flags)
    }

    fn slot(&self, token: Token) -> io::Result<usize> {
        match self.index.get(token) {
            Some(&i) if i != NONE => Ok(i as usize),
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }
}

impl Poller for Poll {
    fn trigger(&self) -> Trigger {
        Trigger::Level
    }

    fn add(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        if self.index.get(token).is_some_and(|&i| i != NONE) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let at = u32::try_from(self.fds.len()).map_err(|_| io::ErrorKind::OutOfMemory)?;
        if self.index.len() <= token {
            self.index.resize(token + 1, NONE);
        }
        self.index[token] = at;
        self.fds.push(Poll::entry(fd, interest));
        self.tokens.push(token);
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        let i = self.slot(token)?;
        self.fds[i] = Poll::entry(fd, interest);
        Ok(())
    }

    fn delete(&mut self, _fd: BorrowedFd<'_>, token: Token) -> io::Result<()> {
        let i = self.slot(token)?;
        self.fds.swap_remove(i);
        self.tokens.swap_remove(i);
        self.index[token] = NONE;
        if let Some(&moved) = self.tokens.get(i) {
            self.index[moved] = i as u32;
        }
        Ok(())
    }

    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        let timeout = timeout.map(timespec);
        let n = match rustix::event::poll(&mut self.fds, timeout.as_ref()) {
            Ok(n) => n,
            Err(Errno::INTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(());
        }
        for (fd, &token) in self.fds.iter().zip(&self.tokens) {
            let revents = fd.revents();
            if revents.is_empty() {
                continue;
            }
            let mut ready = Ready::default();
            if revents.intersects(PollFlags::IN | PollFlags::PRI) {
                ready |= Ready::READABLE;
            }
            if revents.contains(PollFlags::OUT) {
                ready |= Ready::WRITABLE;
            }
            if revents.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
                ready |= Ready::CLOSED;
            }
            events.push(Event { token, ready });
        }
        Ok(())
    }
}
