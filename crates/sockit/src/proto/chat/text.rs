//! What may reach another person's terminal: the rules for nicks and room names.
//!
//! A chat server relays one stranger's bytes to other people's terminals, so nothing a
//! client sends is passed on raw: every line goes through the crate's one
//! [`crate::text::terminal_safe`] (invalid UTF-8 becomes U+FFFD; control characters, ESC
//! among them, and the bidirectional overrides are shown escaped, as `\x1b`).

use std::fmt;
use std::sync::Arc;

/// Longest nick, in characters.
pub const MAX_NICK: usize = 24;

/// Longest room name, in characters, without its `#`.
pub const MAX_ROOM: usize = 32;

/// A valid nick: 1 to [`MAX_NICK`] letters, digits, `_`, `-` or `.`, not starting with
/// `-` or `.`. Nicks are unique without regard to case (`Alice` and `alice` are one).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NickName(Arc<str>);

impl NickName {
    /// Checks `s` against the rules; the error says what is wrong, in words for the user.
    pub fn parse(s: &str) -> Result<NickName, String> {
        let count = s.chars().count();
        if count == 0 || count > MAX_NICK {
            return Err(format!("a nick has 1 to {MAX_NICK} characters"));
        }
        if !s.chars().all(|c| c.is_alphanumeric() || "_-.".contains(c)) {
            return Err("a nick has only letters, digits, _ - and .".into());
        }
        if s.starts_with(['-', '.']) {
            return Err("a nick cannot start with - or .".into());
        }
        Ok(NickName(s.into()))
    }

    /// The nick as its owner spelled it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form under which nicks are unique.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A valid room name: `#` and 1 to [`MAX_ROOM`] letters, digits, `_`, `-` or `.`, in
/// lower case (`/join Dev` is `#dev`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(Arc<str>);

impl RoomName {
    /// Checks `s` (with or without its `#`) against the rules.
    pub fn parse(s: &str) -> Result<RoomName, String> {
        let bare = s.strip_prefix('#').unwrap_or(s);
        let count = bare.chars().count();
        if count == 0 || count > MAX_ROOM {
            return Err(format!(
                "a room name has 1 to {MAX_ROOM} characters after #"
            ));
        }
        if !bare
            .chars()
            .all(|c| c.is_alphanumeric() || "_-.".contains(c))
        {
            return Err("a room name has only letters, digits, _ - and .".into());
        }
        Ok(RoomName(format!("#{}", bare.to_lowercase()).into()))
    }

    /// The name, `#` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RoomName {
    /// `#lobby`, where everyone starts.
    fn default() -> Self {
        RoomName("#lobby".into())
    }
}

macro_rules! display_as_str {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
    )*};
}
display_as_str!(NickName, RoomName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nick_rules() {
        assert_eq!(NickName::parse("Alice_1").unwrap().key(), "alice_1");
        assert!(NickName::parse("élodie").is_ok());
        for bad in [
            "",
            "a b",
            "-x",
            ".x",
            "x\u{FFFD}",
            "#room",
            "/nick",
            &"n".repeat(25),
        ] {
            assert!(NickName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn room_rules() {
        assert_eq!(RoomName::parse("Dev").unwrap().as_str(), "#dev");
        assert_eq!(
            RoomName::parse("#dev").unwrap(),
            RoomName::parse("dev").unwrap()
        );
        assert_eq!(RoomName::default().as_str(), "#lobby");
        for bad in ["", "#", "a b", "##x", &"r".repeat(33)] {
            assert!(RoomName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
