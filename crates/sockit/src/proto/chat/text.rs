//! What may reach another person's terminal: the rules for nicks (ASCII, as on IRC, so
//! no look-alikes) and room names.
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

/// What a nick may hold besides ASCII letters and digits: IRC's specials, so that every
/// nick is also a valid IRC nick.
pub const NICK_SPECIALS: &str = "[]\\`_^{|}-";

/// A valid nick: 1 to [`MAX_NICK`] ASCII letters, digits and IRC specials
/// ([`NICK_SPECIALS`]), not starting with a digit or `-` — exactly the nicks IRC allows.
///
/// ASCII only, rather than any letter with uniqueness by confusable skeleton (Unicode
/// TS #39): there is then no look-alike to catch (`аlice` with a Cyrillic а, a full-width
/// `ａｌｉｃｅ`, a dotless `alıce` are simply not nicks), no Unicode tables to keep up to
/// date, and nothing a user of an IRC client sharing the room could not type or address.
/// Nicks are unique under IRC's case mapping (`Alice` and `alice` are one, and so are
/// `[a]` and `{a}`, `a\b` and `a|b`); only the font-dependent ASCII pairs (`l`/`I`/`1`,
/// `O`/`0`) remain, as on IRC.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NickName(Arc<str>);

impl NickName {
    /// Checks `s` against the rules; the error says what is wrong, in words for the user.
    pub fn parse(s: &str) -> Result<NickName, String> {
        let count = s.chars().count();
        if count == 0 || count > MAX_NICK {
            return Err(format!("a nick has 1 to {MAX_NICK} characters"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || NICK_SPECIALS.contains(c))
        {
            return Err("a nick has only ASCII letters, digits and [ ] \\ ` _ ^ { | } -".into());
        }
        if s.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            return Err("a nick cannot start with a digit or -".into());
        }
        Ok(NickName(s.into()))
    }

    /// The nick as its owner spelled it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form under which nicks are unique: IRC's `rfc1459` case mapping (ASCII letters
    /// in lower case, `[]\\` as `{}|`).
    pub fn key(&self) -> String {
        self.0
            .chars()
            .map(|c| match c {
                '[' => '{',
                ']' => '}',
                '\\' => '|',
                c => c.to_ascii_lowercase(),
            })
            .collect()
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
        assert_eq!(NickName::parse("[Bo]\\x").unwrap().key(), "{bo}|x");
        assert_eq!(
            NickName::parse("{bo}|X").unwrap().key(),
            NickName::parse("[BO]\\x").unwrap().key()
        );
        for good in ["a", "_x", "`^{|}-[]\\", "x9-", &"n".repeat(24)] {
            assert!(NickName::parse(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "a b",
            "-x",
            "9x",
            ".x",
            "a.b",
            "x\u{FFFD}",
            "#room",
            "/nick",
            "élodie",
            &"n".repeat(25),
        ] {
            assert!(NickName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn look_alike_nicks_are_not_nicks() {
        // Cyrillic а, full width, dotless ı, Cyrillic с, Greek ο, a zero-width space.
        for fake in [
            "\u{430}lice",
            "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}",
            "al\u{131}ce",
            "ali\u{441}e",
            "b\u{3bf}b",
            "al\u{200b}ice",
        ] {
            let e = NickName::parse(fake).unwrap_err();
            assert!(e.contains("ASCII"), "{fake:?}: {e}");
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
