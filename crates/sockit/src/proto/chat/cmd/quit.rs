//! `/quit [REASON]`: say goodbye; the room is told, with the reason if there is one.

use super::super::{Action, Chat, ClientId, Leave, notice};

/// `/quit [REASON]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quit {
    reason: Option<String>,
}

impl Quit {
    pub(super) fn parse(args: &str) -> Quit {
        Quit {
            reason: (!args.is_empty()).then(|| args.to_owned()),
        }
    }

    pub(super) fn apply(self, chat: &mut Chat, id: ClientId, out: &mut Vec<Action>) {
        out.push(Action::Send(id, notice("bye")));
        chat.disconnect(id, Leave::Quit(self.reason), out);
        out.push(Action::Close(id));
    }
}
