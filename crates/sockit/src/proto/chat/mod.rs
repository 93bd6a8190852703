//! The chat core (`docs/chat.md`), sans-IO: nicks, rooms, history and the cluster view, with
//! no sockets and no clock. A driver feeds it what happened — a client connected, sent a
//! line, left; another node published an event; the backplane answered a nick claim —
//! and carries out the [`Action`]s it returns: send a line to a client, to a room, publish
//! to the backplane, close a connection. The tokio driver is [`crate::chat`]; the tests
//! below drive one or two cores by hand.
//!
//! # The line protocol
//! UTF-8 lines ending in `\n` (`\r\n` accepted), so `nc`, `ncat` and `telnet` users take
//! part as they are. The first line a client sends is its nick (or `/nick NAME`); it then
//! is in `#lobby`. Every other line goes to its room, as `<nick> text` (not echoed back to
//! the sender, who already sees what they typed). A line starting with `//` sends the
//! rest with one `/` (to say something that starts with a slash).
//!
//! | sent                  | effect                                                   |
//! |-----------------------|----------------------------------------------------------|
//! | `/nick NAME`          | change nick (unique, across every node)                  |
//! | `/join ROOM`          | leave the room, join `ROOM` (`#` optional), see its last messages |
//! | `/rooms`              | rooms with members and how many                          |
//! | `/who [ROOM]`         | who is in your room (or `ROOM`), on every node          |
//! | `/msg NICK TEXT`      | `NICK` alone gets `*you* TEXT`; you get `-> *NICK* TEXT` |
//! | `/quit [REASON]`      | `* bye`, then the server closes                          |
//! | `/help`               | the commands                                             |
//!
//! Server lines: notices start with `* ` (`* alice joined #lobby`, `* alice left #lobby`,
//! `* alice is now known as al`), errors with `! ` (`! nick bob is taken`), messages are
//! `<nick> text`, private messages `*nick* text`. Input is never relayed raw: see
//! [`crate::text::terminal_safe`].
//!
//! # Nicks
//! ASCII letters, digits and IRC's specials, unique under IRC's case mapping
//! ([`NickName`]). Restricting nicks to IRC's set, rather than allowing any letter and
//! comparing confusable skeletons (Unicode TS #39), leaves no look-alikes to catch
//! (`аlice` with a Cyrillic а is not a nick), needs no Unicode tables that must follow each
//! Unicode release, and keeps every nick valid for IRC clients in the same rooms.

mod cluster;
mod cmd;
pub mod event;
pub mod text;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

pub use cluster::{HEARTBEAT, NODE_EXPIRY};
pub use cmd::Command;
pub use event::{Event, NodeId};
pub use text::{NickName, RoomName};

/// Messages of a room kept for replay to who joins it, by default.
pub const DEFAULT_HISTORY: usize = 20;

/// Lines a client may send while its nick is being checked with the other nodes; more are
/// refused (the check takes one backplane round trip, so only a paste gets near this).
const MAX_WAITING_LINES: usize = 64;

/// A connection, as the driver names it. Never reused within one core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// Whether other nodes share the rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// This process is the whole chat.
    #[default]
    Local,
    /// Nodes share rooms and nicks through a backplane ([`Action::Publish`],
    /// [`Action::Claim`], [`Action::Release`]).
    Cluster,
}

/// How a core behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Messages per room replayed to who joins it (0: none).
    pub history: usize,
    /// The longest line accepted, in bytes; only quoted in the error for longer ones (the
    /// driver's line codec enforces it).
    pub max_line: usize,
    /// Where a client goes once it has a nick.
    pub default_room: RoomName,
    /// Local, or sharing rooms with other nodes.
    pub scope: Scope,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            history: DEFAULT_HISTORY,
            max_line: crate::frame::DEFAULT_MAX_LINE,
            default_room: RoomName::default(),
            scope: Scope::Local,
        }
    }
}

/// What the driver must do. Lines carry their `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a line to one client.
    Send(ClientId, Bytes),
    /// Send a line to every client of this node in `room` ([`Chat::members`]), but `except`.
    Room {
        /// The room.
        room: RoomName,
        /// The line.
        line: Bytes,
        /// Who must not get it (the sender of a message).
        except: Option<ClientId>,
    },
    /// Close the connection once the lines queued for it are written. The core has already
    /// forgotten the client.
    Close(ClientId),
    /// Publish an event to the other nodes.
    Publish(Event),
    /// Claim a nick across the cluster; answer with [`Chat::claimed`].
    Claim {
        /// Who wants it.
        client: ClientId,
        /// The nick.
        nick: NickName,
    },
    /// Give back a nick claimed before (a no-op if another node holds it).
    Release(NickName),
}

/// Why a client is leaving, as the others are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leave {
    /// It sent `/quit`, maybe with a reason.
    Quit(Option<String>),
    /// It closed the connection.
    Closed,
    /// It did not read fast enough; its queue overflowed.
    TooSlow,
    /// The connection failed (reset, ...).
    Failed,
}

impl Leave {
    fn suffix(&self) -> String {
        match self {
            Leave::Quit(Some(reason)) => format!(" ({reason})"),
            Leave::Quit(None) | Leave::Closed => String::new(),
            Leave::TooSlow => " (too slow)".into(),
            Leave::Failed => " (connection lost)".into(),
        }
    }
}

/// The state of a chat node: its clients, rooms, history, and what it knows of the others.
#[derive(Debug)]
pub struct Chat {
    config: Config,
    node: NodeId,
    link: Link,
    clients: HashMap<ClientId, Client>,
    /// Case-folded nick → its local owner, claims in flight included.
    nicks: HashMap<String, ClientId>,
    /// Rooms with members here or on other nodes (ordered, for `/rooms`).
    rooms: BTreeMap<RoomName, Room>,
    /// The other nodes' members, from their events and heartbeats.
    remote: HashMap<NodeId, RemoteNode>,
    /// Local members were told their rooms are split (the backplane went down after being
    /// up), so they are owed a "whole again" when it is back.
    split: bool,
}

/// The backplane as the core sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// No backplane ([`Scope::Local`]).
    None,
    /// Connected: nicks are claimed cluster-wide.
    Up,
    /// Cut off: local clients are served alone; nicks are granted locally and claimed again
    /// on reconnection.
    Down,
}

#[derive(Debug, Default)]
struct Client {
    nick: Option<NickName>,
    room: Option<RoomName>,
    /// A nick claim in flight; lines wait in `waiting` until it is answered.
    claiming: Option<NickName>,
    waiting: VecDeque<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Room {
    /// Local members.
    members: Vec<ClientId>,
    /// The last messages, oldest first, as sent.
    history: VecDeque<Bytes>,
}

#[derive(Debug)]
struct RemoteNode {
    last_seen: Instant,
    /// Case-folded nick → (nick, room).
    members: HashMap<String, (NickName, RoomName)>,
}

impl Chat {
    /// A core for node `node` (any value when [`Scope::Local`]).
    pub fn new(config: Config, node: NodeId) -> Chat {
        let link = match config.scope {
            Scope::Local => Link::None,
            // Until the driver says the backplane is up, nothing can be claimed remotely.
            Scope::Cluster => Link::Down,
        };
        Chat {
            config,
            node,
            link,
            clients: HashMap::new(),
            nicks: HashMap::new(),
            rooms: BTreeMap::new(),
            remote: HashMap::new(),
            split: false,
        }
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// A client connected: it is greeted and asked for a nick.
    pub fn connect(&mut self, id: ClientId, out: &mut Vec<Action>) {
        self.clients.insert(id, Client::default());
        out.push(Action::Send(
            id,
            notice("welcome to sockit chat: send your nick to start (/help for commands)"),
        ));
    }

    /// A client sent a line (without its newline); any bytes at all.
    pub fn line(&mut self, id: ClientId, raw: &[u8], out: &mut Vec<Action>) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if client.claiming.is_some() {
            if client.waiting.len() < MAX_WAITING_LINES {
                client.waiting.push_back(raw.to_vec());
            } else {
                out.push(Action::Send(
                    id,
                    error("slow down: your nick is still being checked; line dropped"),
                ));
            }
            return;
        }
        // Blank is judged on the bytes: an escaped tab (`\t`) is not blank.
        let raw = raw.trim_ascii_end();
        if raw.trim_ascii_start().is_empty() {
            return;
        }
        let text = crate::text::terminal_safe(raw);
        let text = &*text;
        match Command::parse(text, client.nick.is_some()) {
            Ok(command) => command.apply(self, id, out),
            Err(why) => out.push(Action::Send(id, error(&why))),
        }
    }

    /// A client sent a line longer than the limit; the driver dropped it.
    pub fn line_too_long(&mut self, id: ClientId, out: &mut Vec<Action>) {
        if self.clients.contains_key(&id) {
            let max = self.config.max_line;
            out.push(Action::Send(
                id,
                error(&format!(
                    "line too long (the limit is {max} bytes): dropped"
                )),
            ));
        }
    }

    /// A client is gone (or is being dropped): its room is told why.
    pub fn disconnect(&mut self, id: ClientId, why: Leave, out: &mut Vec<Action>) {
        let Some(client) = self.clients.remove(&id) else {
            return;
        };
        if let Some(pending) = client.claiming {
            self.forget_nick(id, pending, out);
        }
        let Some(nick) = client.nick else {
            return;
        };
        if let Some(room) = client.room {
            self.exit_room(id, &nick, room, &why.suffix(), out);
        }
        self.forget_nick(id, nick, out);
    }

    /// The server is stopping: everyone is told and closed; the other nodes forget us.
    pub fn shutdown(&mut self, out: &mut Vec<Action>) {
        let line = notice("server shutting down");
        let mut ids: Vec<ClientId> = self.clients.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            out.push(Action::Send(id, line.clone()));
            out.push(Action::Close(id));
            if let Some(client) = self.clients.remove(&id) {
                for nick in client.nick.into_iter().chain(client.claiming) {
                    self.forget_nick(id, nick, out);
                }
            }
        }
        self.rooms.clear();
        if self.config.scope == Scope::Cluster {
            out.push(Action::Publish(Event::Bye { node: self.node }));
        }
    }

    /// The local members of `room`, for [`Action::Room`].
    pub fn members(&self, room: &RoomName) -> &[ClientId] {
        self.rooms.get(room).map_or(&[], |r| &r.members)
    }

    /// The room `id` is in (none before it has a nick, or once it is gone): what
    /// [`Chat::members`] must agree with, checked by the fuzz target's invariants.
    pub fn room_of(&self, id: ClientId) -> Option<&RoomName> {
        self.clients.get(&id)?.room.as_ref()
    }

    /// Every room this node knows (with members here or on other nodes), in order.
    pub fn room_names(&self) -> Vec<RoomName> {
        self.rooms.keys().cloned().collect()
    }

    /// Clients connected (with or without a nick yet).
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Frees a nick held by `id` (or claimed for it) here and, in a cluster, on the others.
    fn forget_nick(&mut self, id: ClientId, nick: NickName, out: &mut Vec<Action>) {
        let key = nick.key();
        if self.nicks.get(&key) == Some(&id) {
            self.nicks.remove(&key);
        }
        if self.config.scope == Scope::Cluster {
            out.push(Action::Release(nick));
        }
    }

    /// Publishes `event` when there are other nodes.
    fn publish(&self, event: impl FnOnce() -> Event, out: &mut Vec<Action>) {
        if self.config.scope == Scope::Cluster {
            out.push(Action::Publish(event()));
        }
    }

    /// Appends a message to a room's history.
    fn remember(&mut self, room: &RoomName, line: &Bytes) {
        let cap = self.config.history;
        if cap == 0 {
            return;
        }
        if let Some(r) = self.rooms.get_mut(room) {
            if r.history.len() >= cap {
                r.history.pop_front();
            }
            r.history.push_back(line.clone());
        }
    }

    /// Drops a room nobody is in any more, here or elsewhere (its history goes with it).
    fn gc_room(&mut self, room: &RoomName) {
        let empty = self.rooms.get(room).is_some_and(|r| r.members.is_empty());
        if empty && !self.has_remote_members(room) {
            self.rooms.remove(room);
        }
    }
}

/// `* text\n`: a notice.
pub fn notice(text: &str) -> Bytes {
    line_of(&["* ", text])
}

/// `! text\n`: an error.
pub fn error(text: &str) -> Bytes {
    line_of(&["! ", text])
}

/// `<nick> text\n`: a message.
pub fn said(nick: &NickName, text: &str) -> Bytes {
    line_of(&["<", nick.as_str(), "> ", text])
}

fn line_of(parts: &[&str]) -> Bytes {
    let len = parts.iter().map(|p| p.len()).sum::<usize>() + 1;
    let mut v = Vec::with_capacity(len);
    for p in parts {
        v.extend_from_slice(p.as_bytes());
    }
    v.push(b'\n');
    Bytes::from(v)
}

#[cfg(test)]
mod tests;
