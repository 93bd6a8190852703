//! The `fork` model: a process per connection, like `ForkingTCPServer`, bounded like its
//! `max_children`. The parent only accepts and reaps; a child serves one connection and
//! exits. On shutdown the parent stops accepting and sends SIGTERM to its children; a
//! child takes it as the threads model takes shutdown (its connection's read side is shut,
//! so the handler sees end of stream and its last words are written), and the parent
//! kills what is left after [`GRACE`].

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd};
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
    let children = std::cell::RefCell::new(HashSet::<Pid>::new());
    let result = accept_each(
        listener,
        &ctx,
        Some(REAP_EVERY),
        || reap(&mut children.borrow_mut(), false),
        |stream, peer, _slot| {
            // The gate counts connections in this process; children live elsewhere, so the
            // limit is enforced on the set of live children instead.
            let mut children = children.borrow_mut();
            reap(&mut children, false);
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
    for pid in &children {
        let _ = signal::kill(*pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + GRACE;
    while !children.is_empty() && Instant::now() < deadline {
        reap(&mut children, false);
        std::thread::sleep(Duration::from_millis(5));
    }
    for pid in &children {
        let _ = signal::kill(*pid, Signal::SIGKILL);
    }
    reap(&mut children, true);
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

/// Collects exited children so none stays a zombie; `block` waits for every one.
fn reap(children: &mut HashSet<Pid>, block: bool) {
    if block {
        for pid in children.drain() {
            let _ = waitpid(pid, None);
        }
        return;
    }
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, ..)) => {
                children.remove(&pid);
            }
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => {}
        }
    }
}
