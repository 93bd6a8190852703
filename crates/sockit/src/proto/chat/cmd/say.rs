//! A plain line: a message to everyone else in the sender's room, kept in its history.

use super::super::{Action, Chat, ClientId, Event, said};

/// A message for the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say {
    text: String,
}

impl Say {
    pub(super) fn new(text: String) -> Say {
        Say { text }
    }

    pub(super) fn apply(self, chat: &mut Chat, id: ClientId, out: &mut Vec<Action>) {
        let Some(client) = chat.clients.get(&id) else {
            return;
        };
        let (Some(nick), Some(room)) = (client.nick.clone(), client.room.clone()) else {
            return;
        };
        let line = said(&nick, &self.text);
        chat.remember(&room, &line);
        out.push(Action::Room {
            room: room.clone(),
            line,
            except: Some(id),
        });
        let node = chat.node;
        chat.publish(
            || Event::Say {
                node,
                room,
                nick,
                text: self.text,
            },
            out,
        );
    }
}
