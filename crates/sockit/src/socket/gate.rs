//! Admission of new peers, the same for every model: the allow/deny lists first, then the
//! connection limit. A peer over the limit gets the service's busy message and a close,
//! not a silent hang in the backlog.

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{AccessList, Peer};

/// Decides who gets in; shared by all the loops and threads of one server.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    /// Checked first: a denied peer is refused whatever the load.
    access: Arc<AccessList>,
    /// Connections served at once; the next one is refused so the server stays within
    /// what its model can bear.
    limit: usize,
    /// Connections admitted and not yet closed, shared with every [`Slot`] so that a
    /// connection gives its place back wherever it ends.
    live: Arc<AtomicUsize>,
    /// Told to a peer refused for the limit, so it learns why instead of seeing a bare
    /// close (empty: just close).
    busy: Arc<[u8]>,
}

/// A connection's place under the limit; given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot(
    /// The gate's count of live connections, decremented on drop.
    Arc<AtomicUsize>,
);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    pub(crate) fn new(access: AccessList, limit: usize, busy: &[u8]) -> Gate {
        Gate {
            access: Arc::new(access),
            limit,
            live: Arc::new(AtomicUsize::new(0)),
            busy: busy.into(),
        }
    }

    /// Whether a datagram from `peer` may be answered.
    pub(crate) fn permits(&self, peer: &Peer) -> bool {
        self.access.permits(peer.ip())
    }

    /// Admits a freshly accepted connection, or refuses it (the caller then drops it,
    /// which closes it).
    pub(crate) fn admit(&self, fd: BorrowedFd<'_>, peer: &Peer) -> Option<Slot> {
        if !self.permits(peer) {
            tracing::info!(%peer, "refused: denied by the access list");
            return None;
        }
        let prev = self.live.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.live.clone());
        if prev >= self.limit {
            self.refuse_busy(fd, peer, self.limit);
            return None;
        }
        Some(slot)
    }

    /// Tells a peer the server is full (`limit` connections); the caller then closes it.
    pub(crate) fn refuse_busy(&self, fd: BorrowedFd<'_>, peer: &Peer, limit: usize) {
        tracing::warn!(%peer, limit, "refused: connection limit reached");
        if !self.busy.is_empty() {
            // Best effort and never blocking: the refusal must not stall the accept loop.
            let _ = rustix::net::send(fd, &self.busy, rustix::net::SendFlags::DONTWAIT);
        }
    }

    /// Connections admitted and still open.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }
}
