//! Graceful shutdown: one handle, cloned to whoever may stop the server (a signal thread,
//! a test, a library user), observed by every model.
//!
//! Triggering writes one byte into a pipe that nobody drains, so the read end stays
//! readable forever: every loop that polls it wakes, now or later, without coordination.

use std::io::{self, PipeReader, PipeWriter, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, poll};

/// Stops a server: stop accepting, let connections finish their current replies, close.
#[derive(Debug, Clone)]
pub struct Shutdown(
    /// Shared by every clone: triggering one triggers them all.
    Arc<Inner>,
);

#[derive(Debug)]
struct Inner {
    /// Set once, so triggering twice writes the pipe once, and polled code that does not
    /// watch the pipe can still ask.
    triggered: AtomicBool,
    /// Never drained: once written, it stays readable for every loop that polls it.
    reader: PipeReader,
    /// Non-blocking, so triggering never waits (a signal thread must not block).
    writer: PipeWriter,
}

/// What [`Shutdown::wait_readable`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The watched descriptor is ready.
    Ready,
    /// Shutdown was triggered.
    Shutdown,
    /// The timeout passed with neither.
    Timeout,
}

impl Shutdown {
    /// A new, untriggered handle.
    pub fn new() -> io::Result<Shutdown> {
        let (reader, writer) = io::pipe()?;
        rustix::io::ioctl_fionbio(&writer, true)?;
        Ok(Shutdown(Arc::new(Inner {
            triggered: AtomicBool::new(false),
            reader,
            writer,
        })))
    }

    /// Asks the server to stop. Safe to call many times and from any thread.
    pub fn trigger(&self) {
        if !self.0.triggered.swap(true, Ordering::SeqCst) {
            // A full pipe is still readable, so a failed write loses nothing.
            let _ = (&self.0.writer).write(&[1]);
        }
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        self.0.triggered.load(Ordering::SeqCst)
    }

    /// A descriptor that becomes readable, for good, once shutdown is triggered.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.reader.as_fd()
    }

    /// Resolves once shutdown is triggered; for async drivers.
    pub(crate) fn watch_async(&self) -> io::Result<impl std::future::Future<Output = ()> + use<>> {
        let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(
            self.0.reader.as_fd().try_clone_to_owned()?,
        )?;
        Ok(async move {
            let _ = rx.readable().await;
        })
    }

    /// Waits until `fd` is readable, shutdown is triggered, or `timeout` passes.
    pub(crate) fn wait_readable(
        &self,
        fd: BorrowedFd<'_>,
        timeout: Option<Duration>,
    ) -> io::Result<Wake> {
        let mut fds = [
            PollFd::new(&self.0.reader, PollFlags::IN),
            PollFd::new(&fd, PollFlags::IN),
        ];
        let ts = timeout.map(|t| rustix::event::Timespec {
            tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: t.subsec_nanos().into(),
        });
        loop {
            match poll(&mut fds, ts.as_ref()) {
                Ok(0) => return Ok(Wake::Timeout),
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if self.is_triggered() || !fds[0].revents().is_empty() {
            Ok(Wake::Shutdown)
        } else {
            Ok(Wake::Ready)
        }
    }
}
