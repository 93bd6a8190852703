//! `/join ROOM`: leave the current room and enter another, seeing its last messages.

use super::super::{Action, Chat, ClientId, Event, NickName, RoomName, error, notice};

/// `/join ROOM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    room: String,
}

impl Join {
    pub(super) fn parse(args: &str) -> Result<Join, String> {
        if args.is_empty() || args.contains(' ') {
            return Err("usage: /join ROOM".into());
        }
        Ok(Join {
            room: args.to_owned(),
        })
    }

    pub(super) fn apply(self, chat: &mut Chat, id: ClientId, out: &mut Vec<Action>) {
        match RoomName::parse(&self.room) {
            Ok(room) => chat.enter_room(id, room, out),
            Err(why) => out.push(Action::Send(
                id,
                error(&format!("invalid room {}: {why}", self.room)),
            )),
        }
    }
}

impl Chat {
    /// Moves `id` (which has a nick) into `room`: the old room sees it leave, the new one
    /// sees it join, and it gets the new room's history first.
    pub(in super::super) fn enter_room(
        &mut self,
        id: ClientId,
        room: RoomName,
        out: &mut Vec<Action>,
    ) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let Some(nick) = client.nick.clone() else {
            return;
        };
        if client.room.as_ref() == Some(&room) {
            out.push(Action::Send(
                id,
                notice(&format!("you are already in {room}")),
            ));
            return;
        }
        let old = client.room.replace(room.clone());
        if let Some(old) = old {
            self.exit_room(id, &nick, old, "", out);
        }
        let entry = self.rooms.entry(room.clone()).or_default();
        entry.members.push(id);
        out.extend(entry.history.iter().map(|l| Action::Send(id, l.clone())));
        out.push(Action::Room {
            room: room.clone(),
            line: notice(&format!("{nick} joined {room}")),
            except: None,
        });
        let node = self.node;
        self.publish(|| Event::Joined { node, room, nick }, out);
    }

    /// Takes `id` out of `room`; the members left are told, `suffix` saying why.
    pub(in super::super) fn exit_room(
        &mut self,
        id: ClientId,
        nick: &NickName,
        room: RoomName,
        suffix: &str,
        out: &mut Vec<Action>,
    ) {
        if let Some(r) = self.rooms.get_mut(&room)
            && let Some(i) = r.members.iter().position(|&m| m == id)
        {
            r.members.swap_remove(i);
        }
        out.push(Action::Room {
            room: room.clone(),
            line: notice(&format!("{nick} left {room}{suffix}")),
            except: None,
        });
        let node = self.node;
        let nick = nick.clone();
        self.publish(
            || Event::Left {
                node,
                room: room.clone(),
                nick,
            },
            out,
        );
        self.gc_room(&room);
    }
}
