//! `/help`: the commands, one notice line each.

use super::super::{Action, Chat, ClientId, notice};

/// `/help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Help;

/// The help text, one line each.
const LINES: &[&str] = &[
    "commands:",
    "  /nick NAME       change your nick",
    "  /join ROOM       leave your room and join ROOM (everyone starts in #lobby)",
    "  /rooms           list the rooms and how many are in each",
    "  /who [ROOM]      list who is in your room (or ROOM)",
    "  /msg NICK TEXT   send TEXT to NICK alone",
    "  /quit [REASON]   leave",
    "  /help            this list",
    "any other line goes to your room; start it with // to send a line that begins with /",
];

impl Help {
    pub(super) fn apply(self, chat: &mut Chat, id: ClientId, out: &mut Vec<Action>) {
        let _ = chat;
        out.extend(LINES.iter().map(|l| Action::Send(id, notice(l))));
    }
}
