//! The `select` backend: `select(2)` over bitmaps of at most `FD_SETSIZE` (1024)
//! descriptors, the oldest readiness interface.
//!
//! An `fd_set` is a fixed array of 1024 bits: setting the bit of descriptor 1024 or above
//! writes past its end, which is memory corruption in C and a panic in Rust's `libc`. So
//! this backend refuses such descriptors ([`Poller::can_watch`]), the loop closes those
//! connections at once, and the server keeps serving the rest.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use super::{Event, Interest, Poller, Ready, Token, Trigger};

/// The largest number of descriptors `select` can watch, and one past the largest one.
pub(crate) const FD_SETSIZE: usize = libc::FD_SETSIZE;

type Word = libc::c_ulong;
const WORD_BITS: usize = Word::BITS as usize;

/// An `fd_set` with checked, safe accessors. glibc and musl both define `fd_set` as an
/// array of `unsigned long` with descriptor `d` at bit `d % BITS` of word `d / BITS` (that
/// is what their `FD_SET` does); owning the words lets a wait scan a word at a time.
#[repr(C)]
#[derive(Clone, Copy)]
struct FdSet(
    /// The bits, as the kernel lays out an `fd_set`.
    [Word; FD_SETSIZE / WORD_BITS],
);

const _: () = assert!(size_of::<FdSet>() == size_of::<libc::fd_set>());
const _: () = assert!(align_of::<FdSet>() == align_of::<libc::fd_set>());

impl FdSet {
    const EMPTY: FdSet = FdSet([0; FD_SETSIZE / WORD_BITS]);

    fn set(&mut self, fd: usize, on: bool) {
        let bit = 1 << (fd % WORD_BITS);
        if on {
            self.0[fd / WORD_BITS] |= bit;
        } else {
            self.0[fd / WORD_BITS] &= !bit;
        }
    }

    fn as_mut_ptr(&mut self) -> *mut libc::fd_set {
        (self as *mut FdSet).cast()
    }
}

/// The descriptors watched for reading and for writing, and their tokens.
pub(crate) struct Select {
    /// Descriptors watched for reading; copied for each wait, as `select` overwrites its
    /// sets.
    read: FdSet,
    /// Descriptors watched for writing (a reply is stuck).
    write: FdSet,
    /// `tokens[fd]`, for the descriptors registered.
    tokens: Box<[Token; FD_SETSIZE]>,
    /// One more than the highest registered descriptor (`select`'s `nfds`).
    nfds: usize,
}

impl Select {
    pub(crate) fn new() -> Select {
        Select {
            read: FdSet::EMPTY,
            write: FdSet::EMPTY,
            tokens: Box::new([0; FD_SETSIZE]),
            nfds: 0,
        }
    }

    fn index(&self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let raw = fd.as_raw_fd();
        if self.can_watch(raw) {
            Ok(raw as usize)
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("descriptor {raw} is beyond select's FD_SETSIZE ({FD_SETSIZE})"),
            ))
        }
    }

    fn set_interest(&mut self, fd: usize, interest: Interest) {
        self.read.set(fd, interest == Interest::Read);
        self.write.set(fd, interest == Interest::Write);
    }

    fn is_registered(&self, fd: usize) -> bool {
        let (w, bit) = (fd / WORD_BITS, 1 << (fd % WORD_BITS));
        (self.read.0[w] | self.write.0[w]) & bit != 0
    }
}

impl Poller for Select {
    fn trigger(&self) -> Trigger {
        Trigger::Level
    }

    fn can_watch(&self, fd: RawFd) -> bool {
        usize::try_from(fd).is_ok_and(|fd| fd < FD_SETSIZE)
    }

    fn add(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        let fd = self.index(fd)?;
        self.tokens[fd] = token;
        self.set_interest(fd, interest);
        self.nfds = self.nfds.max(fd + 1);
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, _token: Token, interest: Interest) -> io::Result<()> {
        let fd = self.index(fd)?;
        self.set_interest(fd, interest);
        Ok(())
    }

    fn delete(&mut self, fd: BorrowedFd<'_>, _token: Token) -> io::Result<()> {
        let fd = self.index(fd)?;
        self.read.set(fd, false);
        self.write.set(fd, false);
        while self.nfds > 0 && !self.is_registered(self.nfds - 1) {
            self.nfds -= 1;
        }
        Ok(())
    }

    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        // select overwrites its sets with the results: hand it copies.
        let (mut read, mut write) = (self.read, self.write);
        let mut tv = timeout.map(|t| {
            // Rounded up, so a deadline is not woken for early and then waited for again.
            let micros = t.as_nanos().div_ceil(1000);
            libc::timeval {
                tv_sec: (micros / 1_000_000).try_into().unwrap_or(libc::time_t::MAX),
                tv_usec: (micros % 1_000_000) as libc::suseconds_t,
            }
        });
        let tv_ptr = tv
            .as_mut()
            .map_or(std::ptr::null_mut(), |tv| tv as *mut libc::timeval);
        // SAFETY: `read` and `write` have the size and layout of `fd_set` (asserted above)
        // and `nfds <= FD_SETSIZE`, so the kernel reads and writes only inside them; the
        // except set is null, which select allows; `tv_ptr` is null or points to `tv`,
        // which outlives the call.
        let n = unsafe {
            libc::select(
                self.nfds as libc::c_int,
                read.as_mut_ptr(),
                write.as_mut_ptr(),
                std::ptr::null_mut(),
                tv_ptr,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::Interrupted => Ok(()),
                _ => Err(e),
            };
        }
        if n == 0 {
            return Ok(());
        }
        let words = self.nfds.div_ceil(WORD_BITS);
        for w in 0..words {
            let (r, wr) = (read.0[w], write.0[w]);
            let mut bits = r | wr;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let mut ready = Ready::default();
                if r & (1 << b) != 0 {
                    ready |= Ready::READABLE;
                }
                if wr & (1 << b) != 0 {
                    ready |= Ready::WRITABLE;
                }
                events.push(Event {
                    token: self.tokens[w * WORD_BITS + b],
                    ready,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_descriptors_beyond_fd_setsize() {
        let s = Select::new();
        assert!(s.can_watch(0));
        assert!(s.can_watch(1023));
        assert!(!s.can_watch(1024));
        assert!(!s.can_watch(100_000));
        assert!(!s.can_watch(-1));
    }

    #[test]
    fn bits_match_libc_fd_set() {
        let mut ours = FdSet::EMPTY;
        for fd in [0, 1, 63, 64, 500, 1023] {
            ours.set(fd, true);
            // SAFETY: `ours` has fd_set's layout (asserted) and every fd is below FD_SETSIZE.
            assert!(unsafe { libc::FD_ISSET(fd as RawFd, ours.as_mut_ptr()) });
        }
        ours.set(64, false);
        // SAFETY: as above.
        assert!(!unsafe { libc::FD_ISSET(64, ours.as_mut_ptr()) });
    }
}
