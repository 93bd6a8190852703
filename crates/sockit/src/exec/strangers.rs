//! The exec server's two pools of connections: authenticated commands (a semaphore of
//! `--max-conns` permits) and strangers, connections that have not authenticated yet.
//!
//! The strangers' pool is bounded and evicts the one that has waited longest when a
//! newcomer arrives: idle connections can then never keep a token holder out, since a
//! client holding the token authenticates within a round trip, long before it is the
//! oldest stranger. (A pool that refused newcomers instead would let 16 idle connections
//! lock everyone out until their deadline, again and again.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore};

/// The server's two pools of connections.
pub(super) struct Limits {
    /// A permit per running (authenticated) connection.
    pub(super) commands: Arc<Semaphore>,
    /// Connections that have not authenticated yet.
    pub(super) strangers: Arc<Strangers>,
}

/// Connections waiting to authenticate, oldest first, each with the signal that tells it
/// to give up its place.
pub(super) struct Strangers {
    /// Most strangers at once.
    limit: usize,
    /// Who waits, oldest first: a ticket number and its eviction signal.
    waiting: Mutex<VecDeque<(u64, Arc<Notify>)>>,
    /// Ticket numbers, so a ticket finds itself in `waiting` when it leaves.
    next: AtomicU64,
}

impl Strangers {
    pub(super) fn new(limit: usize) -> Arc<Strangers> {
        Arc::new(Strangers {
            limit: limit.max(1),
            waiting: Mutex::new(VecDeque::new()),
            next: AtomicU64::new(0),
        })
    }

    /// Takes a place in the pool, evicting the longest-waiting stranger if it is full.
    pub(super) fn enter(self: &Arc<Strangers>) -> Ticket {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evicted = Arc::new(Notify::new());
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        while waiting.len() >= self.limit {
            if let Some((_, oldest)) = waiting.pop_front() {
                // A stored permit: the oldest sees it even if not waiting right now.
                oldest.notify_one();
            }
        }
        waiting.push_back((id, evicted.clone()));
        Ticket {
            pool: self.clone(),
            id,
            evicted,
        }
    }
}

/// A stranger's place in the pool; leaving (authenticated or not) frees it.
pub(super) struct Ticket {
    /// The pool to leave when dropped.
    pool: Arc<Strangers>,
    /// This ticket's number in the pool.
    id: u64,
    /// Notified when a newcomer takes this stranger's place.
    pub(super) evicted: Arc<Notify>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut waiting = self.pool.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.retain(|(id, _)| *id != self.id);
    }
}
