//! `/nick NAME` (or a client's first line): take a nick, unique across every node.
//!
//! Uniqueness is checked here against this node's nicks (claims in flight included) and
//! the nicks the other nodes announced; in a cluster with the backplane up the nick is
//! then claimed there ([`Action::Claim`]), which settles races between nodes. With the
//! backplane down the nick is granted locally and claimed again on reconnection
//! ([`Chat::nick_lost`] handles the loser).

use super::super::{Action, Chat, ClientId, Link, NickName, error, notice};

/// `/nick NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nick {
    name: String,
}

impl Nick {
    pub(super) fn parse(args: &str) -> Result<Nick, String> {
        if args.is_empty() || args.contains(' ') {
            return Err("usage: /nick NAME".into());
        }
        Ok(Nick {
            name: args.to_owned(),
        })
    }

    pub(super) fn apply(self, chat: &mut Chat, id: ClientId, out: &mut Vec<Action>) {
        match NickName::parse(&self.name) {
            Ok(nick) => chat.request_nick(id, nick, out),
            Err(why) => out.push(Action::Send(
                id,
                error(&format!("invalid nick {}: {why}", self.name)),
            )),
        }
    }
}

impl Chat {
    /// `id` asks for `nick`: refused, granted, or claimed with the other nodes first.
    pub(in super::super) fn request_nick(
        &mut self,
        id: ClientId,
        nick: NickName,
        out: &mut Vec<Action>,
    ) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let key = nick.key();
        if let Some(current) = &client.nick {
            if *current == nick {
                out.push(Action::Send(id, notice(&format!("you are already {nick}"))));
                return;
            }
            if current.key() == key {
                // Only the case changes: the nick stays this client's.
                self.complete_nick(id, nick, out);
                return;
            }
        }
        let taken_here = self.nicks.get(&key).is_some_and(|&owner| owner != id);
        if taken_here || self.remote_owner(&key).is_some() {
            out.push(Action::Send(id, error(&format!("nick {nick} is taken"))));
            return;
        }
        self.nicks.insert(key, id);
        if self.link == Link::Up {
            if let Some(client) = self.clients.get_mut(&id) {
                client.claiming = Some(nick.clone());
            }
            out.push(Action::Claim { client: id, nick });
        } else {
            self.complete_nick(id, nick, out);
        }
    }

    /// The backplane answered the claim of `nick` for `id`.
    pub fn claimed(&mut self, id: ClientId, nick: NickName, granted: bool, out: &mut Vec<Action>) {
        let Some(client) = self.clients.get_mut(&id) else {
            // Gone meanwhile: its Release was queued after this Claim and undoes it.
            return;
        };
        if client.claiming.as_ref() != Some(&nick) {
            return;
        }
        client.claiming = None;
        if granted {
            self.complete_nick(id, nick, out);
        } else {
            let key = nick.key();
            if self.nicks.get(&key) == Some(&id) {
                self.nicks.remove(&key);
            }
            out.push(Action::Send(id, error(&format!("nick {nick} is taken"))));
        }
        // What the client sent meanwhile, in order, until something waits again.
        while let Some(client) = self.clients.get_mut(&id) {
            if client.claiming.is_some() {
                break;
            }
            let Some(line) = client.waiting.pop_front() else {
                break;
            };
            self.line(id, &line, out);
        }
    }

    /// After the backplane came back, another node turned out to hold `nick`, which `id`
    /// was granted while this node was cut off: `id` gets a guest nick instead.
    pub fn nick_lost(&mut self, id: ClientId, nick: NickName, out: &mut Vec<Action>) {
        let holds = self
            .clients
            .get(&id)
            .is_some_and(|c| c.nick.as_ref() == Some(&nick));
        if !holds {
            return;
        }
        let Ok(guest) = NickName::parse(&format!("guest{}", id.0)) else {
            return;
        };
        out.push(Action::Send(
            id,
            error(&format!(
                "nick {nick} belongs to someone on another node (this node was cut off when you took it); you become {guest}"
            )),
        ));
        self.request_nick(id, guest, out);
    }

    /// Gives `id` the nick: a first nick enters the default room, a new one is announced.
    fn complete_nick(&mut self, id: ClientId, nick: NickName, out: &mut Vec<Action>) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let old = client.nick.replace(nick.clone());
        let room = client.room.clone();
        self.nicks.insert(nick.key(), id);
        let Some(old) = old else {
            let room = self.config.default_room.clone();
            self.enter_room(id, room, out);
            return;
        };
        if old.key() != nick.key() {
            self.forget_nick(id, old.clone(), out);
        }
        if let Some(room) = room {
            out.push(Action::Room {
                room: room.clone(),
                line: notice(&format!("{old} is now known as {nick}")),
                except: None,
            });
            let node = self.node;
            self.publish(
                || super::super::Event::Renamed {
                    node,
                    room,
                    old,
                    new: nick,
                },
                out,
            );
        }
    }
}
