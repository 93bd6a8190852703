//! The chat commands, one file each (mini-redis's `cmd/` layout): each parses its
//! arguments and applies itself to the [`Chat`].

mod help;
mod join;
pub(super) mod msg;
mod nick;
mod quit;
mod rooms;
mod say;
mod who;

pub use help::Help;
pub use join::Join;
pub use msg::Msg;
pub use nick::Nick;
pub use quit::Quit;
pub use rooms::Rooms;
pub use say::Say;
pub use who::Who;

use super::{Action, Chat, ClientId};

/// One line from a client, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/nick NAME`, or the first line.
    Nick(Nick),
    /// `/join ROOM`.
    Join(Join),
    /// `/rooms`.
    Rooms(Rooms),
    /// `/who [ROOM]`.
    Who(Who),
    /// `/msg NICK TEXT`.
    Msg(Msg),
    /// `/quit [REASON]`.
    Quit(Quit),
    /// `/help`.
    Help(Help),
    /// Anything else: a message to the room.
    Say(Say),
}

impl Command {
    /// Parses a sanitized, non-empty line. `registered`: whether the client has a nick
    /// (before that, a plain line is the nick and only `/nick`, `/quit`, `/help` work).
    /// The error is the text of a `! ` line for the client.
    pub fn parse(line: &str, registered: bool) -> Result<Command, String> {
        if let Some(rest) = line.strip_prefix("//") {
            if registered {
                return Ok(Command::Say(Say::new(format!("/{rest}"))));
            }
        } else if let Some(rest) = line.strip_prefix('/') {
            let (name, args) = rest.split_once(' ').unwrap_or((rest, ""));
            let args = args.trim();
            let command = match name.to_ascii_lowercase().as_str() {
                "nick" => Command::Nick(Nick::parse(args)?),
                "quit" => Command::Quit(Quit::parse(args)),
                "help" => Command::Help(Help),
                _ if !registered => return Err(choose_a_nick()),
                "join" => Command::Join(Join::parse(args)?),
                "rooms" => Command::Rooms(Rooms),
                "who" => Command::Who(Who::parse(args)?),
                "msg" => Command::Msg(Msg::parse(args)?),
                _ => return Err(format!("unknown command /{name} (try /help)")),
            };
            return Ok(command);
        }
        if registered {
            Ok(Command::Say(Say::new(line.to_owned())))
        } else {
            Nick::parse(line.trim())
                .map(Command::Nick)
                .map_err(|_| choose_a_nick())
        }
    }

    /// Carries the command out for `client`.
    pub(super) fn apply(self, chat: &mut Chat, client: ClientId, out: &mut Vec<Action>) {
        match self {
            Command::Nick(c) => c.apply(chat, client, out),
            Command::Join(c) => c.apply(chat, client, out),
            Command::Rooms(c) => c.apply(chat, client, out),
            Command::Who(c) => c.apply(chat, client, out),
            Command::Msg(c) => c.apply(chat, client, out),
            Command::Quit(c) => c.apply(chat, client, out),
            Command::Help(c) => c.apply(chat, client, out),
            Command::Say(c) => c.apply(chat, client, out),
        }
    }
}

fn choose_a_nick() -> String {
    "choose a nick first: send it as a line (or /nick NAME)".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_to_commands() {
        let p = |s| Command::parse(s, true);
        assert!(matches!(p("hello"), Ok(Command::Say(_))));
        assert_eq!(
            p("//etc/passwd"),
            Ok(Command::Say(Say::new("/etc/passwd".into())))
        );
        assert!(matches!(p("/NICK bob"), Ok(Command::Nick(_))));
        assert!(matches!(p("/join dev"), Ok(Command::Join(_))));
        assert!(matches!(p("/who"), Ok(Command::Who(_))));
        assert!(matches!(p("/who #dev"), Ok(Command::Who(_))));
        assert!(matches!(p("/rooms"), Ok(Command::Rooms(_))));
        assert!(matches!(p("/msg bob hi there"), Ok(Command::Msg(_))));
        assert!(matches!(p("/quit"), Ok(Command::Quit(_))));
        assert!(matches!(p("/help"), Ok(Command::Help(_))));
        assert!(
            p("/frobnicate")
                .unwrap_err()
                .contains("unknown command /frobnicate")
        );
        assert!(p("/nick").unwrap_err().contains("usage"));
        assert!(p("/msg bob").unwrap_err().contains("usage"));
        assert!(p("/join").unwrap_err().contains("usage"));
    }

    #[test]
    fn before_a_nick_a_line_is_the_nick() {
        let p = |s| Command::parse(s, false);
        assert!(matches!(p("alice"), Ok(Command::Nick(_))));
        assert!(matches!(p("/nick alice"), Ok(Command::Nick(_))));
        assert!(matches!(p("/quit"), Ok(Command::Quit(_))));
        assert!(p("/join #dev").unwrap_err().contains("choose a nick"));
        assert!(p("hello world").unwrap_err().contains("choose a nick"));
    }
}
