//! `/msg NICK TEXT`: a private message, to a client of this node or of another one.

use bytes::Bytes;

use super::super::{Action, Chat, ClientId, Event, NickName, error};

/// `/msg NICK TEXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    to: String,
    text: String,
}

impl Msg {
    pub(super) fn parse(args: &str) -> Result<Msg, String> {
        match args.split_once(' ') {
            Some((to, text)) if !text.trim().is_empty() => Ok(Msg {
                to: to.to_owned(),
                text: text.trim().to_owned(),
            }),
            _ => Err("usage: /msg NICK TEXT".into()),
        }
    }

    pub(super) fn apply(self, chat: &mut Chat, id: ClientId, out: &mut Vec<Action>) {
        let Some(from) = chat.clients.get(&id).and_then(|c| c.nick.clone()) else {
            return;
        };
        let no_such = || Action::Send(id, error(&format!("no such nick: {}", self.to)));
        let Ok(to) = NickName::parse(&self.to) else {
            out.push(no_such());
            return;
        };
        let key = to.key();
        let local = chat.nicks.get(&key).copied().filter(|owner| {
            chat.clients
                .get(owner)
                .and_then(|c| c.nick.as_ref())
                .is_some()
        });
        if let Some(owner) = local {
            let to = chat.clients[&owner].nick.clone().unwrap_or(to);
            out.push(Action::Send(owner, private(&from, &self.text)));
            out.push(Action::Send(id, sent(&to, &self.text)));
        } else if let Some(to) = chat.remote_owner(&key).map(|(nick, _)| nick.clone()) {
            out.push(Action::Send(id, sent(&to, &self.text)));
            let node = chat.node;
            chat.publish(
                || Event::Private {
                    node,
                    from,
                    to,
                    text: self.text,
                },
                out,
            );
        } else {
            out.push(no_such());
        }
    }
}

/// `*from* text`: what the recipient of a private message sees.
pub(in super::super) fn private(from: &NickName, text: &str) -> Bytes {
    super::super::line_of(&["*", from.as_str(), "* ", text])
}

/// `-> *to* text`: what its sender sees.
fn sent(to: &NickName, text: &str) -> Bytes {
    super::super::line_of(&["-> *", to.as_str(), "* ", text])
}
