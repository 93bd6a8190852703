//! `/rooms`: the rooms that have members, on any node, and how many.

use std::collections::BTreeMap;

use super::super::{Action, Chat, ClientId, notice};

/// `/rooms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rooms;

impl Rooms {
    pub(super) fn apply(self, chat: &mut Chat, id: ClientId, out: &mut Vec<Action>) {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (name, room) in &chat.rooms {
            let named = room
                .members
                .iter()
                .filter(|m| chat.clients.get(m).is_some_and(|c| c.nick.is_some()))
                .count();
            *counts.entry(name.as_str()).or_default() += named;
        }
        for node in chat.remote.values() {
            for (_, room) in node.members.values() {
                *counts.entry(room.as_str()).or_default() += 1;
            }
        }
        counts.retain(|_, n| *n > 0);
        let list: Vec<String> = counts.iter().map(|(r, n)| format!("{r} ({n})")).collect();
        let line = match list.len() {
            0 => "no rooms".to_owned(),
            1 => format!("1 room: {}", list[0]),
            n => format!("{n} rooms: {}", list.join(", ")),
        };
        out.push(Action::Send(id, notice(&line)));
    }
}
