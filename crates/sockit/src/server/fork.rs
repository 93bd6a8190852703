//! The `fork` model: a process per connection, like `ForkingTCPServer`, bounded like its
//! `max_children`. The parent only accepts and reaps; a child serves one connection and
//! exits. On shutdown the parent stops accepting and sends SIGTERM to its children; a
//! child takes it as the threads model takes shutdown (its connection's read side is shut,
//! so the handler sees end of stream and its last words are written), and the parent
//! kills what is left after [`GRACE`].
//!
//! The parent reaps only its own children ([`Children`]): a library server lives in a
//! process that may have started other programs, and `waitpid(-1)` would take their exit
//! statuses from under whoever waits for them.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use super::conn::{accept_each, drive};
use super::{Ctx, GRACE, Service};
use crate::error::Result;
use crate::socket::Listener;

/// How often the parent reaps children when no connection arrives.
const REAP_EVERY: Duration = Duration::from_millis(200);

pub(crate) fn serve<S: Service>(listener: &Listener, service: Arc<S>, ctx: Ctx<'_>) -> Result<()> {
    let limit = ctx
        .config
        .max_conns
        .unwrap_or(ctx.config.model.default_max_conns());
    // Shared by the tick and the accept callbacks, which never run at the same time.
    let children = std::cell::RefCell::new(Children::new());
    let result = accept_each(
        listener,
        &ctx,
        Some(REAP_EVERY),
        || children.borrow_mut().reap_exited(),
        |stream, peer, _slot| {
            // The gate counts connections in this process; children live elsewhere, so the
            // limit is enforced on the set of live children instead.
            let mut children = children.borrow_mut();
            children.reap_exited();
            if children.len() >= limit {
                ctx.gate.refuse_busy(stream.as_fd(), &peer, limit);
                return;
            }
            // SAFETY: the child only runs this connection's handler and then `_exit`s; it
            // never returns into the parent's stack or runs its atexit handlers. Allocation in
            // the child is safe because glibc's fork takes the malloc locks across the call.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    // The parent's signal handling (a thread, gone in the child) must not
                    // swallow the SIGTERM of shutdown: it ends this connection gracefully.
                    CHILD_CONN.store(stream.as_fd().as_raw_fd(), Ordering::SeqCst);
                    let graceful = signal::SigAction::new(
                        SigHandler::Handler(end_connection),
                        signal::SaFlags::SA_RESTART,
                        signal::SigSet::empty(),
                    );
                    // SAFETY: `end_connection` only loads an atomic and calls `shutdown(2)`,
                    // both async-signal-safe.
                    let _ = unsafe { signal::sigaction(Signal::SIGTERM, &graceful) };
                    // SAFETY: restoring the default disposition installs no handler code.
                    let _ = unsafe { signal::signal(Signal::SIGINT, SigHandler::SigDfl) };
                    drive(&stream, &peer, service.handler(&peer), ctx.config);
                    CHILD_CONN.store(-1, Ordering::SeqCst);
                    drop(stream);
                    // SAFETY: `_exit` ends the child without unwinding into the parent's frames.
                    unsafe { libc::_exit(0) }
                }
                Ok(ForkResult::Parent { child }) => {
                    children.insert(child);
                }
                Err(e) => tracing::warn!(%peer, error = %e, "fork failed; connection dropped"),
            }
        },
    );
    let mut children = children.into_inner();
    children.signal(Signal::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while !children.is_empty() && Instant::now() < deadline {
        children.reap_exited();
        std::thread::sleep(Duration::from_millis(5));
    }
    children.signal(Signal::SIGKILL);
    children.reap_all();
    result
}

/// The connection a child serves, for its SIGTERM handler.
static CHILD_CONN: AtomicI32 = AtomicI32::new(-1);

/// A child's SIGTERM: shuts its connection's read side, so the handler's next read sees end
/// of stream and says its last words (a blocked read returns; SA_RESTART resumes others).
extern "C" fn end_connection(_: libc::c_int) {
    let fd = CHILD_CONN.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: `shutdown` is async-signal-safe and `fd` is the child's open connection
        // (stored before the handler was installed, cleared before it is closed).
        unsafe { libc::shutdown(fd, libc::SHUT_RD) };
    }
}

/// The live children of one server. Each is watched by a pidfd in one epoll set, so
/// reaping asks the kernel which of *these* exited (one `epoll_wait`, however many are
/// alive) and waits for exactly those; where pidfds are missing (kernels before 5.3)
/// each child is asked by its pid instead.
struct Children {
    /// Readable pidfds of exited children; `None` without pidfd support.
    exits: Option<OwnedFd>,
    /// Every live child, with its pidfd (kept open while it is watched).
    live: HashMap<Pid, Option<OwnedFd>>,
}

impl Children {
    fn new() -> Children {
        Children {
            exits: rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC).ok(),
            live: HashMap::new(),
        }
    }

    fn len(&self) -> usize {
        self.live.len()
    }

    fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    fn insert(&mut self, pid: Pid) {
        let watched = self.exits.as_ref().and_then(|epoll| {
            let raw = rustix::process::Pid::from_raw(pid.as_raw())?;
            let fd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()).ok()?;
            let data = rustix::event::epoll::EventData::new_u64(pid.as_raw() as u64);
            rustix::event::epoll::add(epoll, &fd, data, rustix::event::epoll::EventFlags::IN)
                .ok()?;
            Some(fd)
        });
        self.live.insert(pid, watched);
    }

    /// Collects the children that have exited, so none stays a zombie; never blocks.
    fn reap_exited(&mut self) {
        let mut exited = Vec::new();
        if let Some(epoll) = &self.exits {
            let mut ready = Vec::with_capacity(64);
            let zero = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            loop {
                ready.clear();
                match rustix::event::epoll::wait(
                    epoll,
                    rustix::buffer::spare_capacity(&mut ready),
                    Some(&zero),
                ) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => break,
                }
                exited.extend(ready.iter().map(|e| Pid::from_raw(e.data.u64() as i32)));
                if ready.len() < ready.capacity() {
                    break;
                }
            }
        }
        // Children without a pidfd are asked one by one.
        exited.extend(
            self.live
                .iter()
                .filter(|(_, fd)| fd.is_none())
                .map(|(pid, _)| *pid),
        );
        for pid in exited {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                // Exited, or not ours to wait for any more (ECHILD): forgotten either way.
                // The pidfd leaves the epoll set explicitly: children forked since hold
                // copies of it, which would keep it there, ready for ever.
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(_) => {
                    if let (Some(Some(fd)), Some(epoll)) = (self.live.remove(&pid), &self.exits) {
                        let _ = rustix::event::epoll::delete(epoll, &fd);
                    }
                }
                Ok(_) => {}
            }
        }
    }

    /// Sends `sig` to every live child.
    fn signal(&self, sig: Signal) {
        for pid in self.live.keys() {
            let _ = signal::kill(*pid, sig);
        }
    }

    /// Waits for every child to exit.
    fn reap_all(&mut self) {
        for (pid, _) in self.live.drain() {
            let _ = waitpid(pid, None);
        }
    }
}
