//! What may reach another person's terminal: lines made safe to print, and the rules for
//! nicks and room names.
//!
//! A chat server relays one stranger's bytes to other people's terminals, so nothing a
//! client sends is passed on raw: invalid UTF-8 becomes U+FFFD, a tab becomes a space,
//! and control characters (C0, DEL, C1 — among them ESC, which starts every terminal
//! escape sequence) and the bidirectional overrides that reorder what a line seems to
//! say become U+FFFD too.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Longest nick, in characters.
pub const MAX_NICK: usize = 24;

/// Longest room name, in characters, without its `#`.
pub const MAX_ROOM: usize = 32;

/// What an unprintable or dangerous character becomes.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Makes `raw` printable: valid UTF-8 with no control or bidi-override characters (see
/// the module docs). Plain printable ASCII, the common case, is borrowed as it is.
pub fn sanitize(raw: &[u8]) -> Cow<'_, str> {
    if raw.iter().all(|&b| (0x20..0x7f).contains(&b))
        && let Ok(text) = std::str::from_utf8(raw)
    {
        return Cow::Borrowed(text);
    }
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        out.push(match c {
            '\t' => ' ',
            c if is_unsafe(c) => REPLACEMENT,
            c => c,
        });
    }
    Cow::Owned(out)
}

/// Control characters and the invisible characters that reorder text on screen.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

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
    use proptest::prelude::*;

    #[test]
    fn printable_ascii_is_borrowed_and_unchanged() {
        assert!(matches!(
            sanitize(b"hello, world!"),
            Cow::Borrowed("hello, world!")
        ));
    }

    #[test]
    fn escapes_controls_and_bad_utf8_are_replaced() {
        assert_eq!(sanitize(b"\x1b[2Jclear"), "\u{FFFD}[2Jclear");
        assert_eq!(sanitize(b"a\tb\x07c\x7f"), "a b\u{FFFD}c\u{FFFD}");
        assert_eq!(
            sanitize(b"caf\xc3\xa9 \xff\xfe"),
            "caf\u{e9} \u{FFFD}\u{FFFD}"
        );
        assert_eq!(sanitize("C1 \u{9b}2J".as_bytes()), "C1 \u{FFFD}2J");
        assert_eq!(
            sanitize("abc\u{202E}fdp.exe".as_bytes()),
            "abc\u{FFFD}fdp.exe"
        );
        assert_eq!(sanitize(b"\r"), "\u{FFFD}");
    }

    proptest! {
        #[test]
        fn sanitized_text_has_no_control_characters(raw in prop::collection::vec(any::<u8>(), 0..200)) {
            let clean = sanitize(&raw);
            prop_assert!(!clean.chars().any(is_unsafe));
            // Idempotent: a line that went through one node passes another unchanged.
            prop_assert_eq!(sanitize(clean.as_bytes()), clean.clone());
        }
    }

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
