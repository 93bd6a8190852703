//! `/who [ROOM]`: who is in a room, on this node and every other.

use super::super::{Action, Chat, ClientId, RoomName, error, notice};

/// `/who [ROOM]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    room: Option<RoomName>,
}

impl Who {
    pub(super) fn parse(args: &str) -> Result<Who, String> {
        if args.is_empty() {
            return Ok(Who { room: None });
        }
        RoomName::parse(args)
            .map(|room| Who { room: Some(room) })
            .map_err(|why| format!("usage: /who [ROOM] ({why})"))
    }

    pub(super) fn apply(self, chat: &mut Chat, id: ClientId, out: &mut Vec<Action>) {
        let Some(room) = self
            .room
            .or_else(|| chat.clients.get(&id).and_then(|c| c.room.clone()))
        else {
            out.push(Action::Send(id, error("you are in no room")));
            return;
        };
        let mut nicks: Vec<String> = chat
            .members(&room)
            .iter()
            .filter_map(|m| chat.clients.get(m).and_then(|c| c.nick.as_ref()))
            .chain(chat.remote_members(&room))
            .map(|n| n.to_string())
            .collect();
        nicks.sort_by_key(|n| n.to_lowercase());
        nicks.dedup();
        let line = if nicks.is_empty() {
            format!("nobody in {room}")
        } else {
            format!("{} in {room}: {}", nicks.len(), nicks.join(", "))
        };
        out.push(Action::Send(id, notice(&line)));
    }
}
