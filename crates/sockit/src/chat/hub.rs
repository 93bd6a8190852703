//! The hub: the chat core plus every client's outgoing queue, on one thread.
//!
//! Everything that happens goes through [`Hub`] methods, which call the core and carry out
//! its actions: a line for a client is appended to that client's queue (a byte buffer);
//! a line for a room is appended to each member's. Queues are written in rounds
//! ([`Hub::take_round`], [`Hub::flush`]), at most one per coalescing window, so that under
//! load one `write` carries several lines to a client instead of one `write` per line per
//! client.
//! A client whose socket would block is left to its own task, which waits until the
//! socket is writable and calls [`Hub::flush_one`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::sync::{Notify, mpsc};

use super::backplane::Cmd;
use crate::proto::chat::{Action, Chat, ClientId, Event, Leave, NickName};
use crate::socket::TokioStream;

/// The hub as tasks share it (one thread: no locks).
pub(super) type Shared = Rc<RefCell<Hub>>;

pub(super) struct Hub {
    /// The sans-IO chat: nicks, rooms, history; the hub only carries out its actions.
    pub(super) core: Chat,
    /// Every connected client's socket and queue (ids are sequential: no need for SipHash).
    clients: HashMap<ClientId, Slot, BuildHasherDefault<IdHasher>>,
    /// Clients with bytes queued and no write attempted yet.
    dirty: Vec<ClientId>,
    /// Clients whose queue overflowed during the current batch of actions.
    too_slow: Vec<ClientId>,
    /// Scratch space for the core's actions (kept to reuse its allocation).
    actions: Vec<Action>,
    /// The next client's id; ids are never reused, so a stale id finds nothing.
    next_id: u64,
    /// A client's queue may hold this many bytes before it is disconnected.
    max_queue: usize,
    /// Wakes the flusher task.
    flush: Rc<Notify>,
    /// Commands for the backplane task, in cluster mode.
    backplane: Option<mpsc::UnboundedSender<Cmd>>,
}

/// One client's connection and outgoing queue.
struct Slot {
    /// The socket, shared with the client's task (which reads it and writes when blocked).
    conn: Rc<TokioStream>,
    /// Bytes not yet taken by the kernel, whole lines except perhaps a partly written
    /// first one.
    out: BytesMut,
    /// The first line of `out` was partly written (so dropping the queue keeps its end).
    mid_line: bool,
    /// In `Hub::dirty`, so a client is listed once however many lines it is given.
    dirty: bool,
    /// The socket would block: the client's task owns the writing until `out` drains.
    blocked: bool,
    /// Where the connection is in its life: one state, not three flags that could
    /// contradict each other.
    life: Life,
    /// Wakes the client's task.
    wake: Rc<Notify>,
}

/// A client's life as the hub sees it; it only moves down this list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Taking lines.
    Open,
    /// Its queue overflowed in the current batch of actions: once the batch is carried
    /// out, a notice replaces what was queued and it closes (see `Hub::overflow`).
    Overflowed,
    /// Close once `out` is written, and take no more lines.
    Closing,
    /// A write failed: the client's task ends the connection.
    Failed,
}

/// What a client's task needs to know about its slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct SlotState {
    /// The socket would block: the task waits for it to be writable and flushes.
    pub(super) blocked: bool,
    /// The hub wants the connection closed once its queue is written.
    pub(super) closing: bool,
    /// Nothing is left to write: a closing connection may close now.
    pub(super) drained: bool,
    /// A write failed: the task ends the connection.
    pub(super) failed: bool,
}

impl Hub {
    pub(super) fn new(
        core: Chat,
        max_queue: usize,
        flush: Rc<Notify>,
        backplane: Option<mpsc::UnboundedSender<Cmd>>,
    ) -> Hub {
        Hub {
            core,
            clients: HashMap::default(),
            dirty: Vec::new(),
            too_slow: Vec::new(),
            actions: Vec::new(),
            next_id: 1,
            max_queue,
            flush,
            backplane,
        }
    }

    /// A new connection; its task is woken through `wake`.
    pub(super) fn connect(&mut self, conn: Rc<TokioStream>, wake: Rc<Notify>) -> ClientId {
        let id = ClientId(self.next_id);
        self.next_id += 1;
        self.clients.insert(
            id,
            Slot {
                conn,
                out: BytesMut::new(),
                mid_line: false,
                dirty: false,
                blocked: false,
                life: Life::Open,
                wake,
            },
        );
        self.core.connect(id, &mut self.actions);
        self.run();
        id
    }

    pub(super) fn line(&mut self, id: ClientId, line: &[u8]) {
        self.core.line(id, line, &mut self.actions);
        self.run();
    }

    pub(super) fn line_too_long(&mut self, id: ClientId) {
        self.core.line_too_long(id, &mut self.actions);
        self.run();
    }

    /// The connection is over (EOF, error): forget it at once.
    pub(super) fn disconnect(&mut self, id: ClientId, why: Leave) {
        self.clients.remove(&id);
        self.core.disconnect(id, why, &mut self.actions);
        self.run();
    }

    /// A closing client's task is done with it.
    pub(super) fn remove(&mut self, id: ClientId) {
        self.clients.remove(&id);
    }

    pub(super) fn remote(&mut self, event: Event, now: Instant) {
        self.core.remote(event, now, &mut self.actions);
        self.run();
    }

    pub(super) fn claimed(&mut self, id: ClientId, nick: NickName, granted: bool) {
        self.core.claimed(id, nick, granted, &mut self.actions);
        self.run();
    }

    pub(super) fn nick_lost(&mut self, id: ClientId, nick: NickName) {
        self.core.nick_lost(id, nick, &mut self.actions);
        self.run();
    }

    pub(super) fn backplane_up(&mut self) {
        self.core.backplane_up(&mut self.actions);
        self.run();
    }

    pub(super) fn backplane_down(&mut self) {
        self.core.backplane_down(&mut self.actions);
        self.run();
    }

    /// Everyone is told the server stops, and every connection closes once written.
    pub(super) fn shutdown(&mut self) {
        self.core.shutdown(&mut self.actions);
        self.run();
    }

    /// Asks the backplane task to finish what is queued and end.
    pub(super) fn stop_backplane(&self) {
        self.to_backplane(Cmd::Stop);
    }

    /// Connections still open (closing ones included).
    pub(super) fn open_connections(&self) -> usize {
        self.clients.len()
    }

    pub(super) fn state(&self, id: ClientId) -> Option<SlotState> {
        self.clients.get(&id).map(|s| SlotState {
            blocked: s.blocked,
            closing: s.life == Life::Closing,
            drained: s.out.is_empty(),
            failed: s.life == Life::Failed,
        })
    }

    /// Carries out the core's actions, then whatever they cause (a queue that overflowed
    /// makes its client leave, which the room is told), until nothing is left to do.
    fn run(&mut self) {
        let mut actions = std::mem::take(&mut self.actions);
        while !actions.is_empty() {
            for action in actions.drain(..) {
                match action {
                    Action::Send(id, line) => self.push(id, &line),
                    Action::Room { room, line, except } => {
                        for &member in self.core.members(&room) {
                            if Some(member) != except {
                                push(
                                    &mut self.clients,
                                    &mut self.dirty,
                                    &mut self.too_slow,
                                    self.max_queue,
                                    member,
                                    &line,
                                );
                            }
                        }
                    }
                    Action::Close(id) => {
                        if let Some(slot) = self.clients.get_mut(&id) {
                            slot.close();
                            slot.wake.notify_one();
                        }
                    }
                    Action::Publish(event) => self.to_backplane(Cmd::Publish(event.encode())),
                    Action::Claim { client, nick } => match &self.backplane {
                        Some(_) => self.to_backplane(Cmd::Claim { client, nick }),
                        // Without a backplane nobody else can hold it.
                        None => self.core.claimed(client, nick, true, &mut self.actions),
                    },
                    Action::Release(nick) => self.to_backplane(Cmd::Release(nick)),
                }
            }
            for id in std::mem::take(&mut self.too_slow) {
                self.overflow(id);
                self.core.disconnect(id, Leave::TooSlow, &mut self.actions);
            }
            // Actions caused by the ones just carried out (claims answered locally, leaves).
            std::mem::swap(&mut actions, &mut self.actions);
        }
        self.actions = actions;
        if !self.dirty.is_empty() {
            self.flush.notify_one();
        }
    }

    fn push(&mut self, id: ClientId, line: &[u8]) {
        push(
            &mut self.clients,
            &mut self.dirty,
            &mut self.too_slow,
            self.max_queue,
            id,
            line,
        );
    }

    fn to_backplane(&self, cmd: Cmd) {
        if let Some(tx) = &self.backplane {
            // The backplane task outlives the hub's use of it; a send can only fail while
            // the server is stopping, when nothing more needs publishing.
            let _ = tx.send(cmd);
        }
    }

    /// The queue of `id` overflowed: what was waiting is dropped (but the end of a line
    /// partly written), a notice takes its place, and the connection closes once that is
    /// written.
    fn overflow(&mut self, id: ClientId) {
        let Some(slot) = self.clients.get_mut(&id) else {
            return;
        };
        let keep = if slot.mid_line {
            slot.out
                .iter()
                .position(|&b| b == b'\n')
                .map_or(slot.out.len(), |i| i + 1)
        } else {
            0
        };
        let dropped = slot.out.len() - keep;
        slot.out.truncate(keep);
        slot.out.extend_from_slice(
            format!(
                "! too slow: {dropped} bytes of chat were waiting for you (the limit is {}); disconnected\n",
                self.max_queue
            )
            .as_bytes(),
        );
        slot.close();
        if !slot.dirty && !slot.blocked {
            slot.dirty = true;
            self.dirty.push(id);
        }
        slot.wake.notify_one();
    }

    /// Starts a flush round: the clients with bytes queued, in the order they became
    /// dirty (a room's member order, so each client's turn comes at the same point of
    /// every round). Lines queued for them until their turn go out with it; a client
    /// given a line after its turn is in the next round. `spare` is the previous round's
    /// list, emptied, to reuse its allocation.
    pub(super) fn take_round(&mut self, mut spare: Vec<ClientId>) -> Vec<ClientId> {
        spare.clear();
        std::mem::swap(&mut self.dirty, &mut spare);
        spare
    }

    /// Writes the queues of `ids` (part of a round) as far as their sockets take them. A
    /// socket that would block is handed to its client's task.
    pub(super) fn flush(&mut self, ids: &[ClientId]) {
        for id in ids {
            let Some(slot) = self.clients.get_mut(id) else {
                continue;
            };
            slot.dirty = false;
            if slot.blocked {
                continue;
            }
            match slot.write() {
                Ok(true) if slot.life == Life::Closing => slot.wake.notify_one(),
                Ok(true) => {}
                Ok(false) => {
                    slot.blocked = true;
                    slot.wake.notify_one();
                }
                Err(_) => {
                    slot.life = Life::Failed;
                    slot.wake.notify_one();
                }
            }
        }
    }

    /// The socket of a blocked client became writable: write what it takes.
    pub(super) fn flush_one(&mut self, id: ClientId) {
        if let Some(slot) = self.clients.get_mut(&id) {
            match slot.write() {
                Ok(true) => slot.blocked = false,
                Ok(false) => {}
                Err(_) => slot.life = Life::Failed,
            }
        }
    }
}

/// Appends `line` to the queue of `id`, or marks it too slow if that would pass the limit.
/// (A free function so that a room's member list can be borrowed meanwhile.)
fn push(
    clients: &mut HashMap<ClientId, Slot, BuildHasherDefault<IdHasher>>,
    dirty: &mut Vec<ClientId>,
    too_slow: &mut Vec<ClientId>,
    max_queue: usize,
    id: ClientId,
    line: &[u8],
) {
    let Some(slot) = clients.get_mut(&id) else {
        return;
    };
    if matches!(slot.life, Life::Closing | Life::Failed) {
        return;
    }
    if slot.out.len() + line.len() > max_queue && !slot.blocked {
        // Full only because it was not written yet (the coalescing window): write now, and
        // count the client as slow only if its socket does not take the bytes.
        match slot.write() {
            Ok(false) => {
                slot.blocked = true;
                slot.wake.notify_one();
            }
            Ok(_) => {}
            Err(_) => {
                slot.life = Life::Failed;
                slot.wake.notify_one();
                return;
            }
        }
    }
    if slot.out.len() + line.len() > max_queue {
        if slot.life == Life::Open {
            slot.life = Life::Overflowed;
            too_slow.push(id);
        }
        return;
    }
    slot.out.extend_from_slice(line);
    if !slot.dirty && !slot.blocked {
        slot.dirty = true;
        dirty.push(id);
    }
}

impl Slot {
    /// Asks for the connection to close once its queue is written; a failed one stays
    /// failed (its task ends it at once).
    fn close(&mut self) {
        if self.life != Life::Failed {
            self.life = Life::Closing;
        }
    }

    /// Writes as much of the queue as the socket takes: `Ok(true)` once it is empty (and,
    /// over TLS, its records sent), `Ok(false)` when the socket would block first.
    fn write(&mut self) -> io::Result<bool> {
        while !self.out.is_empty() {
            match self.conn.try_write(&self.out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.mid_line = self.out[n - 1] != b'\n';
                    self.out.advance(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Over TLS, records may wait for the socket after the plaintext was taken: the
        // client stays blocked (its task waits for the socket) until they are out. A
        // plain socket holds nothing back: `Ok` at once.
        match self.conn.try_flush() {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Client ids are sequential integers: they hash to themselves (scrambled, so that the
/// table's high bits vary too).
#[derive(Default)]
struct IdHasher(
    /// The id written last; `finish` scrambles it.
    u64,
);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
