//! The core's side of the backplane: applying other nodes' events, the heartbeat
//! snapshot, forgetting silent nodes, and the link going up and down.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::cmd::msg::private;
use super::{Action, Chat, ClientId, Event, Link, NickName, RemoteNode, RoomName, notice, said};

/// How often a node publishes its snapshot (the driver's timer; here for reference).
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// A node not heard from for this long is forgotten, members and all.
pub const NODE_EXPIRY: Duration = Duration::from_secs(7);

impl Chat {
    /// Another node published `event` (events of this node are ignored). `now` is when.
    pub fn remote(&mut self, event: Event, now: Instant, out: &mut Vec<Action>) {
        let from = event.node();
        if from == self.node {
            return;
        }
        let node = self.remote.entry(from).or_insert_with(|| RemoteNode {
            last_seen: now,
            members: HashMap::new(),
        });
        node.last_seen = now;
        match event {
            Event::Say {
                room, nick, text, ..
            } => {
                if !self.rooms.contains_key(&room) && !self.has_remote_members(&room) {
                    return;
                }
                self.rooms.entry(room.clone()).or_default();
                let line = said(&nick, &text);
                self.remember(&room, &line);
                out.push(Action::Room {
                    room,
                    line,
                    except: None,
                });
            }
            Event::Private { from, to, text, .. } => {
                let owner = self.nicks.get(&to.key()).copied();
                let registered = owner.filter(|o| {
                    self.clients
                        .get(o)
                        .is_some_and(|c| c.nick.as_ref().is_some_and(|n| n.key() == to.key()))
                });
                if let Some(owner) = registered {
                    out.push(Action::Send(owner, private(&from, &text)));
                }
            }
            Event::Joined { room, nick, .. } => {
                node.members
                    .insert(nick.key(), (nick.clone(), room.clone()));
                self.rooms.entry(room.clone()).or_default();
                out.push(Action::Room {
                    line: notice(&format!("{nick} joined {room}")),
                    room,
                    except: None,
                });
            }
            Event::Left { room, nick, .. } => {
                node.members.remove(&nick.key());
                out.push(Action::Room {
                    line: notice(&format!("{nick} left {room}")),
                    room: room.clone(),
                    except: None,
                });
                self.gc_room(&room);
            }
            Event::Renamed { room, old, new, .. } => {
                node.members.remove(&old.key());
                node.members.insert(new.key(), (new.clone(), room.clone()));
                out.push(Action::Room {
                    line: notice(&format!("{old} is now known as {new}")),
                    room,
                    except: None,
                });
            }
            Event::Snapshot { reply, members, .. } => {
                let before: HashSet<RoomName> =
                    node.members.values().map(|(_, r)| r.clone()).collect();
                node.members = members
                    .into_iter()
                    .map(|(nick, room)| (nick.key(), (nick, room)))
                    .collect();
                let after: Vec<RoomName> = node.members.values().map(|(_, r)| r.clone()).collect();
                for room in after {
                    self.rooms.entry(room).or_default();
                }
                for room in before {
                    self.gc_room(&room);
                }
                if reply {
                    out.push(Action::Publish(self.snapshot(false)));
                }
            }
            Event::Bye { .. } => {
                self.forget_node(from);
            }
        }
    }

    /// Forgets the nodes not heard from for [`NODE_EXPIRY`] (a crashed node, or all of
    /// them while this node is cut off). Call it on the heartbeat timer.
    pub fn tick(&mut self, now: Instant) {
        let silent: Vec<_> = self
            .remote
            .iter()
            .filter(|(_, n)| now.saturating_duration_since(n.last_seen) > NODE_EXPIRY)
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            self.forget_node(id);
        }
    }

    /// This node's members, for the heartbeat; `reply` asks the others for theirs.
    pub fn snapshot(&self, reply: bool) -> Event {
        let mut members: Vec<(NickName, RoomName)> = self
            .clients
            .values()
            .filter_map(|c| Some((c.nick.clone()?, c.room.clone()?)))
            .collect();
        members.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Event::Snapshot {
            node: self.node,
            reply,
            members,
        }
    }

    /// The backplane is (again) connected: from now on nicks are claimed there, and the
    /// other nodes are asked for their members. The driver then claims [`Chat::nicks`]
    /// again and reports the ones lost with [`Chat::nick_lost`].
    ///
    /// The driver calls this once it has caught up with what the others said while it was
    /// away, so members told their room was split are now told it is whole again: from
    /// here on, nothing said on any node is lost to them.
    pub fn backplane_up(&mut self, out: &mut Vec<Action>) {
        if self.link == Link::None {
            return;
        }
        self.link = Link::Up;
        out.push(Action::Publish(self.snapshot(true)));
        if std::mem::take(&mut self.split) {
            self.tell_every_room(out, |room| format!("{room} is whole again"));
        }
    }

    /// The backplane is lost: local clients go on alone; nicks are granted locally. If it
    /// was up, every local member is told that its room is split: until it is whole again,
    /// lines do not cross between this server and the others.
    pub fn backplane_down(&mut self, out: &mut Vec<Action>) {
        match self.link {
            Link::None | Link::Down => {}
            Link::Up => {
                self.link = Link::Down;
                self.split = true;
                self.tell_every_room(out, |room| {
                    format!(
                        "{room} is split: this server lost its link to the others; until it \
                         is back, lines said here do not reach them, nor theirs you"
                    )
                });
            }
        }
    }

    /// A notice to the local members of every room.
    fn tell_every_room(&self, out: &mut Vec<Action>, text: impl Fn(&RoomName) -> String) {
        for (room, r) in &self.rooms {
            if !r.members.is_empty() {
                out.push(Action::Room {
                    room: room.clone(),
                    line: notice(&text(room)),
                    except: None,
                });
            }
        }
    }

    /// Every client with a nick, and the nick.
    pub fn nicks(&self) -> Vec<(ClientId, NickName)> {
        let mut v: Vec<_> = self
            .clients
            .iter()
            .filter_map(|(id, c)| Some((*id, c.nick.clone()?)))
            .collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }

    /// The nick (as spelled) and room of the member of another node with this key.
    pub(super) fn remote_owner(&self, key: &str) -> Option<&(NickName, RoomName)> {
        self.remote.values().find_map(|n| n.members.get(key))
    }

    /// Members of other nodes in `room`.
    pub(super) fn remote_members<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> impl Iterator<Item = &'a NickName> + 'a {
        self.remote
            .values()
            .flat_map(|n| n.members.values())
            .filter(move |(_, r)| r == room)
            .map(|(n, _)| n)
    }

    pub(super) fn has_remote_members(&self, room: &RoomName) -> bool {
        self.remote_members(room).next().is_some()
    }

    fn forget_node(&mut self, id: super::NodeId) {
        if let Some(node) = self.remote.remove(&id) {
            let rooms: HashSet<RoomName> = node.members.into_values().map(|(_, r)| r).collect();
            for room in rooms {
                self.gc_room(&room);
            }
        }
    }
}
