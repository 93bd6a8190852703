//! What one chat node tells the others through the backplane, and its wire format.
//!
//! The design is Socket.IO's Redis adapter: every node publishes what happened to its own
//! clients on one shared channel and applies what the others publish, skipping its own
//! messages by their node id. Membership travels the same way: join, leave and rename
//! events as they happen, plus a full snapshot per node as a heartbeat (like Socket.IO's
//! `ClusterAdapterWithHeartbeat`), so a node that missed events, restarted, or lost the
//! backplane for a while converges again, and a node that stops beating is forgotten.
//!
//! # Wire format
//! One UTF-8 line per event, fields separated by single spaces; nicks and room names
//! never contain spaces and the free text, which may, comes last:
//!
//! ```text
//! 1 <node> M <room> <nick> <text>        a message said in a room
//! 1 <node> P <from> <to> <text>          a private message (/msg)
//! 1 <node> J <room> <nick>               joined
//! 1 <node> L <room> <nick>               left
//! 1 <node> N <room> <old> <new>          renamed
//! 1 <node> S <0|1> [<nick> <room>]...    snapshot of the node's members; 1: reply with yours
//! 1 <node> B                             the node is shutting down
//! ```
//!
//! `1` is the format version and `<node>` 16 hex digits. Decoding trusts nothing: names
//! are checked by the same rules as a client's, text is sanitized again.

use std::fmt::{self, Write as _};

use super::text::{NickName, RoomName};
use crate::text::terminal_safe;

/// A chat node's identity on the backplane, random per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub u64);

impl NodeId {
    /// A fresh random id (from the OS's random source, or the clock and pid without one).
    pub fn random() -> NodeId {
        use std::io::Read;
        let mut bytes = [0u8; 8];
        let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
        if random.is_ok() {
            return NodeId(u64::from_ne_bytes(bytes));
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        NodeId(nanos ^ (u64::from(std::process::id()) << 40))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One thing that happened on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `nick` said `text` in `room`.
    Say {
        /// Where it happened.
        node: NodeId,
        /// The room.
        room: RoomName,
        /// Who said it.
        nick: NickName,
        /// What was said (sanitized).
        text: String,
    },
    /// `from` sent `text` to `to` only.
    Private {
        /// Where the sender is.
        node: NodeId,
        /// The sender.
        from: NickName,
        /// The recipient, on some other node.
        to: NickName,
        /// The message (sanitized).
        text: String,
    },
    /// `nick` joined `room`.
    Joined {
        /// Where it happened.
        node: NodeId,
        /// The room.
        room: RoomName,
        /// Who.
        nick: NickName,
    },
    /// `nick` left `room` (or the chat).
    Left {
        /// Where it happened.
        node: NodeId,
        /// The room.
        room: RoomName,
        /// Who.
        nick: NickName,
    },
    /// `old` is now called `new`.
    Renamed {
        /// Where it happened.
        node: NodeId,
        /// The room they are in.
        room: RoomName,
        /// The nick before.
        old: NickName,
        /// The nick now.
        new: NickName,
    },
    /// Everyone on `node` and their room: the heartbeat.
    Snapshot {
        /// The node described.
        node: NodeId,
        /// Whether the receivers should answer with their own snapshots (a node that just
        /// (re)connected asks, to learn everyone's members at once).
        reply: bool,
        /// Its members.
        members: Vec<(NickName, RoomName)>,
    },
    /// `node` is shutting down: forget its members.
    Bye {
        /// The node.
        node: NodeId,
    },
}

impl Event {
    /// The node the event comes from.
    pub fn node(&self) -> NodeId {
        match self {
            Event::Say { node, .. }
            | Event::Private { node, .. }
            | Event::Joined { node, .. }
            | Event::Left { node, .. }
            | Event::Renamed { node, .. }
            | Event::Snapshot { node, .. }
            | Event::Bye { node } => *node,
        }
    }

    /// The event as one line (without a newline).
    pub fn encode(&self) -> String {
        let mut s = format!("1 {} ", self.node());
        // Writing into a String cannot fail.
        let _ = match self {
            Event::Say {
                room, nick, text, ..
            } => write!(s, "M {room} {nick} {text}"),
            Event::Private { from, to, text, .. } => write!(s, "P {from} {to} {text}"),
            Event::Joined { room, nick, .. } => write!(s, "J {room} {nick}"),
            Event::Left { room, nick, .. } => write!(s, "L {room} {nick}"),
            Event::Renamed { room, old, new, .. } => write!(s, "N {room} {old} {new}"),
            Event::Snapshot { reply, members, .. } => {
                let _ = write!(s, "S {}", u8::from(*reply));
                for (nick, room) in members {
                    let _ = write!(s, " {nick} {room}");
                }
                Ok(())
            }
            Event::Bye { .. } => write!(s, "B"),
        };
        s
    }

    /// Parses one line; `None` for anything malformed (a foreign publisher on the channel,
    /// a newer format version).
    pub fn decode(line: &[u8]) -> Option<Event> {
        let line = std::str::from_utf8(line).ok()?;
        let mut head = line.splitn(4, ' ');
        if head.next()? != "1" {
            return None;
        }
        let node = head.next()?;
        if node.len() != 16 {
            return None;
        }
        let node = NodeId(u64::from_str_radix(node, 16).ok()?);
        let kind = head.next()?;
        let rest = head.next().unwrap_or("");
        let nick = |s: &str| NickName::parse(s).ok();
        let room = |s: &str| RoomName::parse(s).ok().filter(|r| r.as_str() == s);
        let text = |s: &str| terminal_safe(s.as_bytes()).into_owned();
        Some(match kind {
            "M" => {
                let mut f = rest.splitn(3, ' ');
                Event::Say {
                    node,
                    room: room(f.next()?)?,
                    nick: nick(f.next()?)?,
                    text: text(f.next()?),
                }
            }
            "P" => {
                let mut f = rest.splitn(3, ' ');
                Event::Private {
                    node,
                    from: nick(f.next()?)?,
                    to: nick(f.next()?)?,
                    text: text(f.next()?),
                }
            }
            "J" | "L" => {
                let (r, n) = rest.split_once(' ')?;
                let (room, nick) = (room(r)?, nick(n)?);
                if kind == "J" {
                    Event::Joined { node, room, nick }
                } else {
                    Event::Left { node, room, nick }
                }
            }
            "N" => {
                let mut f = rest.split(' ');
                let event = Event::Renamed {
                    node,
                    room: room(f.next()?)?,
                    old: nick(f.next()?)?,
                    new: nick(f.next()?)?,
                };
                if f.next().is_some() {
                    return None;
                }
                event
            }
            "S" => {
                let mut f = rest.split(' ');
                let reply = match f.next()? {
                    "0" => false,
                    "1" => true,
                    _ => return None,
                };
                let mut members = Vec::new();
                while let Some(n) = f.next() {
                    members.push((nick(n)?, room(f.next()?)?));
                }
                Event::Snapshot {
                    node,
                    reply,
                    members,
                }
            }
            "B" if rest.is_empty() => Event::Bye { node },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NickName {
        NickName::parse(s).unwrap()
    }
    fn r(s: &str) -> RoomName {
        RoomName::parse(s).unwrap()
    }

    #[test]
    fn every_event_survives_a_round_trip() {
        let node = NodeId(0x0123_4567_89ab_cdef);
        let events = [
            Event::Say {
                node,
                room: r("#lobby"),
                nick: n("alice"),
                text: "hello  there ".into(),
            },
            Event::Say {
                node,
                room: r("#lobby"),
                nick: n("alice"),
                text: String::new(),
            },
            Event::Private {
                node,
                from: n("alice"),
                to: n("Bob"),
                text: "psst".into(),
            },
            Event::Joined {
                node,
                room: r("#dev"),
                nick: n("carol"),
            },
            Event::Left {
                node,
                room: r("#dev"),
                nick: n("carol"),
            },
            Event::Renamed {
                node,
                room: r("#dev"),
                old: n("carol"),
                new: n("caro"),
            },
            Event::Snapshot {
                node,
                reply: true,
                members: vec![(n("a"), r("#x")), (n("b"), r("#y"))],
            },
            Event::Snapshot {
                node,
                reply: false,
                members: vec![],
            },
            Event::Bye { node },
        ];
        for e in events {
            let line = e.encode();
            assert!(line.starts_with("1 0123456789abcdef "), "{line}");
            assert_eq!(Event::decode(line.as_bytes()), Some(e), "{line}");
        }
    }

    #[test]
    fn malformed_lines_are_ignored() {
        for bad in [
            "",
            "2 0123456789abcdef B",
            "1 0123 B",
            "1 0123456789abcdef X",
            "1 0123456789abcdef J #lobby",
            "1 0123456789abcdef J lobby alice",
            "1 0123456789abcdef J #lobby bad nick",
            "1 0123456789abcdef S 1 alice",
            "1 0123456789abcdef S 2",
            "1 0123456789abcdef B extra",
        ] {
            assert_eq!(Event::decode(bad.as_bytes()), None, "{bad:?}");
        }
        // Not UTF-8 at all: not ours.
        assert_eq!(Event::decode(b"1 0123456789abcdef M #a b \xff"), None);
        // Text from the backplane is sanitized again.
        let e = Event::decode("1 0123456789abcdef M #a b \u{1b}[2J".as_bytes()).unwrap();
        assert!(matches!(e, Event::Say { text, .. } if text == "\\x1b[2J"));
    }
}
