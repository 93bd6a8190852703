//! Terminal-safe text: what a peer sends may be printed, but never acted on by the
//! terminal that shows it.
//!
//! Every string a peer controls (a chat line, a sender's file name, a receiver's or an
//! exec server's refusal, an HTTP reason phrase, ...) goes through [`terminal_safe`]
//! before it is printed, so that a hostile peer cannot retitle the window, clear the
//! screen, move the cursor, ring the bell, or reorder what a line seems to say. One
//! function for the whole crate, so every place escapes the same characters the same way.
//!
//! The rules: invalid UTF-8 becomes U+FFFD; control characters (C0 with tab, CR and LF,
//! DEL, C1 — among them ESC and CSI, which start every escape sequence), the bidirectional
//! marks, embeddings, overrides and isolates, and the line and paragraph separators are
//! shown escaped, visibly: `\x1b`, `\t`, `\u{9b}`, `\u{202e}`. The escapes are for eyes:
//! a backslash is left as it is, so they are not meant to be read back.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Makes `raw` safe to print: valid UTF-8 with every dangerous character escaped (see
/// the module docs). Plain printable ASCII, the common case, is borrowed as it is.
/// Idempotent: what it returns passes through it unchanged.
pub fn terminal_safe(raw: &[u8]) -> Cow<'_, str> {
    if raw.iter().all(|&b| (0x20..0x7f).contains(&b))
        && let Ok(text) = std::str::from_utf8(raw)
    {
        return Cow::Borrowed(text);
    }
    let text = String::from_utf8_lossy(raw);
    if !text.chars().any(is_unsafe) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// A [`fmt::Display`] that prints what `T` displays through [`terminal_safe`]:
/// `eprintln!("skipped {}", Escaped(&path))`.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<T>(
    /// What is displayed, escaped: anything a peer may have chosen.
    pub T,
);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        f.write_str(&terminal_safe(text.as_bytes()))
    }
}

/// Whether `c` must not reach a terminal as it is: control characters, and the invisible
/// characters that reorder or break a line on screen.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        c if is_unsafe(c) && (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if is_unsafe(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn printable_ascii_is_borrowed_and_unchanged() {
        assert!(matches!(
            terminal_safe(b"hello, world!"),
            Cow::Borrowed("hello, world!")
        ));
        assert!(matches!(terminal_safe("café".as_bytes()), Cow::Borrowed(_)));
    }

    #[test]
    fn controls_are_escaped_visibly_and_bad_utf8_replaced() {
        assert_eq!(terminal_safe(b"\x1b[2Jclear"), "\\x1b[2Jclear");
        assert_eq!(terminal_safe(b"\x1b]0;pwned\x07"), "\\x1b]0;pwned\\x07");
        assert_eq!(terminal_safe(b"a\tb\r\nc\x7f"), "a\\tb\\r\\nc\\x7f");
        assert_eq!(
            terminal_safe(b"caf\xc3\xa9 \xff\xfe"),
            "caf\u{e9} \u{FFFD}\u{FFFD}"
        );
        assert_eq!(terminal_safe("C1 \u{9b}2J".as_bytes()), "C1 \\u{9b}2J");
        assert_eq!(
            terminal_safe("abc\u{202E}fdp.exe".as_bytes()),
            "abc\\u{202e}fdp.exe"
        );
        assert_eq!(Escaped("x\x1by").to_string(), "x\\x1by");
    }

    proptest! {
        #[test]
        fn safe_text_has_nothing_unsafe(raw in prop::collection::vec(any::<u8>(), 0..200)) {
            let clean = terminal_safe(&raw);
            prop_assert!(!clean.chars().any(is_unsafe));
            prop_assert!(!clean.as_bytes().contains(&0x1b));
            // Idempotent: a line that went through one chat node passes another unchanged.
            prop_assert_eq!(terminal_safe(clean.as_bytes()), clean.clone());
        }
    }
}
