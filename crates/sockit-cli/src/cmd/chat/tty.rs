//! `chat join` on a terminal: raw mode, a one-line editor at the bottom, and incoming
//! lines printed above it.
//!
//! An incoming line is drawn by going to column 0, clearing the input line, printing the
//! line and a newline (so it scrolls up with the others), and redrawing the prompt and
//! what was being typed, cursor included. Typing therefore never mixes with arriving text.
//! The editor ([`Editor`]) is I/O-free: keys in, an action and a rendering out.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::mpsc;

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::{cursor, queue, style, terminal};
use sockit::text::terminal_safe;
use unicode_width::UnicodeWidthChar;

use super::join::{Event, Session};

const PROMPT: &str = "> ";

/// Longest line the editor takes, in characters.
const MAX_INPUT: usize = 4096;

/// What a key asks for.
#[derive(Debug, PartialEq, Eq)]
enum Edit {
    /// The line changed (or the cursor moved): redraw it.
    Redraw,
    /// Enter: send this line.
    Submit(String),
    /// Ctrl-C, or Ctrl-D on an empty line: leave.
    Quit,
    /// Nothing to do.
    None,
}

/// The input line being typed.
#[derive(Debug, Default)]
struct Editor {
    chars: Vec<char>,
    cursor: usize,
}

impl Editor {
    fn key(&mut self, key: KeyEvent) -> Edit {
        if key.kind == KeyEventKind::Release {
            return Edit::None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Enter => {
                let line: String = self.chars.drain(..).collect();
                self.cursor = 0;
                Edit::Submit(line)
            }
            KeyCode::Char('c') if ctrl => Edit::Quit,
            KeyCode::Char('d') if ctrl && self.chars.is_empty() => Edit::Quit,
            KeyCode::Char('d') if ctrl => self.delete(),
            KeyCode::Char('a') if ctrl => self.move_to(0),
            KeyCode::Char('e') if ctrl => self.move_to(self.chars.len()),
            KeyCode::Char('b') if ctrl => self.move_to(self.cursor.saturating_sub(1)),
            KeyCode::Char('f') if ctrl => self.move_to(self.cursor + 1),
            KeyCode::Char('u') if ctrl => {
                self.chars.drain(..self.cursor);
                self.cursor = 0;
                Edit::Redraw
            }
            KeyCode::Char('k') if ctrl => {
                self.chars.truncate(self.cursor);
                Edit::Redraw
            }
            KeyCode::Char('w') if ctrl => {
                let mut start = self.cursor;
                while start > 0 && self.chars[start - 1] == ' ' {
                    start -= 1;
                }
                while start > 0 && self.chars[start - 1] != ' ' {
                    start -= 1;
                }
                self.chars.drain(start..self.cursor);
                self.cursor = start;
                Edit::Redraw
            }
            KeyCode::Char('l') if ctrl => Edit::Redraw,
            KeyCode::Char(_) if ctrl => Edit::None,
            KeyCode::Char(c) if !c.is_control() && self.chars.len() < MAX_INPUT => {
                self.chars.insert(self.cursor, c);
                self.cursor += 1;
                Edit::Redraw
            }
            KeyCode::Tab if self.chars.len() < MAX_INPUT => {
                self.chars.insert(self.cursor, ' ');
                self.cursor += 1;
                Edit::Redraw
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.chars.remove(self.cursor);
                Edit::Redraw
            }
            KeyCode::Delete => self.delete(),
            KeyCode::Left => self.move_to(self.cursor.saturating_sub(1)),
            KeyCode::Right => self.move_to(self.cursor + 1),
            KeyCode::Home => self.move_to(0),
            KeyCode::End => self.move_to(self.chars.len()),
            _ => Edit::None,
        }
    }

    fn delete(&mut self) -> Edit {
        if self.cursor < self.chars.len() {
            self.chars.remove(self.cursor);
        }
        Edit::Redraw
    }

    fn move_to(&mut self, to: usize) -> Edit {
        self.cursor = to.min(self.chars.len());
        Edit::Redraw
    }

    /// What fits in `width` columns after the prompt (scrolled to keep the cursor in
    /// view), and the cursor's column. Columns are counted as the terminal does: two for
    /// a wide (CJK, emoji) character, none for a combining mark.
    fn view(&self, width: usize) -> (String, usize) {
        let cols = |c: &char| UnicodeWidthChar::width(*c).unwrap_or(0);
        let room = width.saturating_sub(PROMPT.len() + 1).max(1);
        // The first character shown: as far back from the cursor as `room` allows.
        let mut start = self.cursor;
        let mut before = 0;
        while start > 0 && before + cols(&self.chars[start - 1]) <= room {
            start -= 1;
            before += cols(&self.chars[start]);
        }
        let mut used = 0;
        let shown: String = self.chars[start..]
            .iter()
            .take_while(|c| {
                used += cols(c);
                used <= room
            })
            .collect();
        (shown, PROMPT.len() + before)
    }
}

/// Restores the terminal however the session ends (errors and panics included).
struct RawMode;

impl RawMode {
    fn enable() -> io::Result<RawMode> {
        terminal::enable_raw_mode()?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let mut out = io::stdout();
        let _ = queue!(
            out,
            cursor::MoveToColumn(0),
            terminal::Clear(terminal::ClearType::CurrentLine)
        );
        let _ = out.flush();
        let _ = terminal::disable_raw_mode();
    }
}

pub(super) fn run(
    mut chat: Session,
    tx: mpsc::Sender<Event>,
    rx: mpsc::Receiver<Event>,
) -> anyhow::Result<ExitCode> {
    let _raw = RawMode::enable()?;
    std::thread::spawn(move || {
        while let Ok(event) = crossterm::event::read() {
            if tx.send(Event::Term(event)).is_err() {
                return;
            }
        }
    });
    let mut editor = Editor::default();
    let mut out = io::stdout().lock();
    draw(&mut out, &editor)?;
    loop {
        let event = match chat.wait() {
            None => rx.recv().ok(),
            Some(left) => match rx.recv_timeout(left) {
                Ok(e) => Some(e),
                Err(mpsc::RecvTimeoutError::Timeout) => return Ok(ExitCode::SUCCESS),
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            },
        };
        match event {
            Some(Event::Server(line)) => {
                let shown = terminal_safe(line.strip_suffix(b"\n").unwrap_or(&line)).into_owned();
                above(&mut out, &shown)?;
                draw(&mut out, &editor)?;
            }
            Some(Event::Term(TermEvent::Key(key))) => match editor.key(key) {
                Edit::Redraw => draw(&mut out, &editor)?,
                Edit::Submit(line) => {
                    if !line.trim().is_empty() {
                        above(&mut out, &format!("{PROMPT}{line}"))?;
                        chat.send(line.as_bytes())?;
                    }
                    draw(&mut out, &editor)?;
                }
                Edit::Quit => chat.quit(),
                Edit::None => {}
            },
            Some(Event::Term(_)) => draw(&mut out, &editor)?,
            Some(Event::Signal) => chat.quit(),
            Some(Event::ServerClosed) | None => return chat.ended(None),
            Some(Event::ServerFailed(e)) => return chat.ended(Some(e)),
            Some(Event::Input(_) | Event::InputEof) => {}
        }
    }
}

/// Prints `text` as a line of its own above the input line.
fn above(out: &mut impl Write, text: &str) -> io::Result<()> {
    queue!(
        out,
        cursor::MoveToColumn(0),
        terminal::Clear(terminal::ClearType::CurrentLine),
        style::Print(text),
        style::Print("\r\n")
    )
}

/// Redraws the input line.
fn draw(out: &mut impl Write, editor: &Editor) -> io::Result<()> {
    // A terminal that does not know its size (0 columns) gets the classic 80.
    let width = terminal::size()
        .ok()
        .filter(|&(w, _)| w > 0)
        .map_or(80, |(w, _)| usize::from(w));
    let (shown, col) = editor.view(width);
    queue!(
        out,
        cursor::MoveToColumn(0),
        terminal::Clear(terminal::ClearType::CurrentLine),
        style::Print(PROMPT),
        style::Print(shown),
        cursor::MoveToColumn(u16::try_from(col).unwrap_or(u16::MAX))
    )?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(editor: &mut Editor, codes: &[KeyCode]) -> Vec<Edit> {
        codes
            .iter()
            .map(|&c| editor.key(KeyEvent::from(c)))
            .collect()
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    #[test]
    fn typing_editing_and_submitting() {
        let mut e = Editor::default();
        keys(
            &mut e,
            &"hello wrld".chars().map(KeyCode::Char).collect::<Vec<_>>(),
        );
        keys(&mut e, &[KeyCode::Left, KeyCode::Left, KeyCode::Left]);
        keys(&mut e, &[KeyCode::Char('o')]);
        assert_eq!(e.view(80), ("hello world".into(), 2 + 8));
        assert_eq!(e.key(ctrl('w')), Edit::Redraw);
        assert_eq!(e.view(80).0, "hello rld");
        keys(&mut e, &[KeyCode::End, KeyCode::Backspace]);
        assert_eq!(
            e.key(KeyEvent::from(KeyCode::Enter)),
            Edit::Submit("hello rl".into())
        );
        assert_eq!(e.view(80), (String::new(), 2));
        assert_eq!(e.key(ctrl('d')), Edit::Quit);
        assert_eq!(e.key(ctrl('c')), Edit::Quit);
    }

    #[test]
    fn a_long_line_scrolls_to_keep_the_cursor_in_view() {
        let mut e = Editor::default();
        keys(
            &mut e,
            &"0123456789".chars().map(KeyCode::Char).collect::<Vec<_>>(),
        );
        let (shown, col) = e.view(8); // room for 5 characters after "> "
        assert_eq!((shown.as_str(), col), ("56789", 7));
        keys(&mut e, &[KeyCode::Home]);
        assert_eq!(e.view(8), ("01234".into(), 2));
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let mut e = Editor::default();
        keys(
            &mut e,
            &"你好ab".chars().map(KeyCode::Char).collect::<Vec<_>>(),
        );
        // "> " + 你好 (4 columns) + "ab": the cursor after them, at column 8.
        assert_eq!(e.view(80), ("你好ab".into(), 8));
        // Room for 5 columns: the cursor at the end keeps "好ab" (4) in view.
        assert_eq!(e.view(8), ("好ab".into(), 2 + 4));
        keys(&mut e, &[KeyCode::Home]);
        // From the start, "你好a" fits (5 columns), "b" does not.
        assert_eq!(e.view(8), ("你好a".into(), 2));
        keys(&mut e, &[KeyCode::Right]);
        assert_eq!(e.view(8).1, 4);
        // A combining accent takes no column of its own.
        let mut e = Editor::default();
        keys(
            &mut e,
            &"e\u{301}x".chars().map(KeyCode::Char).collect::<Vec<_>>(),
        );
        assert_eq!(e.view(80).1, 2 + 2);
    }
}
