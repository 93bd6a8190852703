//! The relay's byte transformations, free of I/O: `--crlf`, stdin lines cut into
//! datagrams, and datagrams printed as lines.

use super::LineEndings;

/// LF → CRLF on the way out, leaving a CRLF already there alone.
///
/// Whether the previous chunk ended in `\r` is carried over, so a CRLF split across two
/// reads is not doubled (ncat's `fix_line_endings` keeps the same state).
#[derive(Debug, Default, Clone)]
pub struct Crlf {
    after_cr: bool,
}

impl Crlf {
    /// Appends `input` to `out`, with every bare `\n` turned into `\r\n`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 8);
        for &b in input {
            if b == b'\n' && !self.after_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.after_cr = b == b'\r';
        }
    }
}

/// Cuts stdin into datagrams: one per line, without its `\n` (or `\r\n`).
///
/// With [`LineEndings::Crlf`] each datagram ends in `\r\n` instead. A line longer than
/// the datagram limit is sent in pieces of the limit rather than dropped. What follows the
/// last newline is sent at end of input by [`Datagrams::finish`].
#[derive(Debug, Clone)]
pub struct Datagrams {
    partial: Vec<u8>,
    max: usize,
    ending: &'static [u8],
}

impl Datagrams {
    /// A splitter for datagrams of at most `max` bytes (ending included).
    pub fn new(max: usize, line_endings: LineEndings) -> Datagrams {
        let ending: &'static [u8] = match line_endings {
            LineEndings::AsIs => b"",
            LineEndings::Crlf => b"\r\n",
        };
        assert!(max > ending.len(), "datagram limit too small");
        Datagrams {
            partial: Vec::new(),
            max,
            ending,
        }
    }

    /// Feeds a chunk of input; every datagram it completes is appended to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<Vec<u8>>) {
        let room = self.max - self.ending.len();
        while !chunk.is_empty() {
            if self.partial.len() == room && chunk[0] != b'\n' {
                // An over-long line: the piece so far goes out whole. Its trailing `\r`, if
                // any, is data: it was not followed by the `\n` that would make it an ending.
                let piece = std::mem::take(&mut self.partial);
                out.push(self.finish_line(piece, false));
                continue;
            }
            let newline = chunk.iter().position(|&b| b == b'\n');
            let line_end = newline.unwrap_or(chunk.len());
            let take = line_end.min(room - self.partial.len());
            self.partial.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if take == line_end && newline.is_some() {
                chunk = &chunk[1..];
                let line = std::mem::take(&mut self.partial);
                out.push(self.finish_line(line, true));
            }
        }
    }

    /// End of input: a last line without a newline becomes one more datagram.
    pub fn finish(&mut self, out: &mut Vec<Vec<u8>>) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            out.push(self.finish_line(line, false));
        }
    }

    fn finish_line(&self, mut line: Vec<u8>, had_newline: bool) -> Vec<u8> {
        if had_newline && line.last() == Some(&b'\r') {
            line.pop();
        }
        line.extend_from_slice(self.ending);
        line
    }
}

/// How a received datagram is printed: as is, plus a `\n` when it does not end in one, so
/// that every datagram is a line of its own on stdout.
pub fn needs_newline(datagram: &[u8]) -> bool {
    datagram.last() != Some(&b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crlf(chunks: &[&[u8]]) -> Vec<u8> {
        let mut c = Crlf::default();
        let mut out = Vec::new();
        for chunk in chunks {
            c.encode(chunk, &mut out);
        }
        out
    }

    #[test]
    fn crlf_turns_bare_lf_into_crlf_only() {
        assert_eq!(crlf(&[b"a\nb\n"]), b"a\r\nb\r\n");
        assert_eq!(crlf(&[b"a\r\nb\n\n"]), b"a\r\nb\r\n\r\n");
        assert_eq!(crlf(&[b"\n"]), b"\r\n");
        assert_eq!(crlf(&[b"no newline"]), b"no newline");
        assert_eq!(crlf(&[b"lone \r stays"]), b"lone \r stays");
    }

    #[test]
    fn crlf_split_across_reads_is_not_doubled() {
        assert_eq!(crlf(&[b"a\r", b"\nb"]), b"a\r\nb");
        assert_eq!(crlf(&[b"a", b"\n", b"\n"]), b"a\r\n\r\n");
        // Every way of cutting the input gives the same bytes.
        let input = b"x\r\ny\n\r\n\nz\r\r\n";
        let whole = crlf(&[input]);
        for cut in 0..=input.len() {
            assert_eq!(crlf(&[&input[..cut], &input[cut..]]), whole, "cut at {cut}");
        }
    }

    fn split(chunks: &[&[u8]], max: usize, endings: LineEndings) -> Vec<Vec<u8>> {
        let mut d = Datagrams::new(max, endings);
        let mut out = Vec::new();
        for chunk in chunks {
            d.push(chunk, &mut out);
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn one_datagram_per_line_without_its_ending() {
        let got = split(&[b"one\ntwo\r\n\nlast"], 100, LineEndings::AsIs);
        assert_eq!(got, vec![&b"one"[..], b"two", b"", b"last"]);
        let got = split(&[b"a\n"], 100, LineEndings::Crlf);
        assert_eq!(got, vec![&b"a\r\n"[..]]);
    }

    #[test]
    fn lines_survive_any_cut() {
        let input = b"alpha\r\nbeta\n\ngamma\r\ndelta";
        let whole = split(&[input], 100, LineEndings::AsIs);
        for cut in 0..=input.len() {
            let got = split(&[&input[..cut], &input[cut..]], 100, LineEndings::AsIs);
            assert_eq!(got, whole, "cut at {cut}");
        }
    }

    #[test]
    fn over_long_lines_go_out_in_pieces() {
        let got = split(&[b"abcdefgh\nij"], 3, LineEndings::AsIs);
        assert_eq!(got, vec![&b"abc"[..], b"def", b"gh", b"ij"]);
        let got = split(&[b"abcd\n"], 4, LineEndings::Crlf);
        assert_eq!(got, vec![&b"ab\r\n"[..], b"cd\r\n"]);
        // A line of exactly the limit is one datagram, and its newline adds no empty one.
        let got = split(&[b"abc", b"\n", b"d"], 3, LineEndings::AsIs);
        assert_eq!(got, vec![&b"abc"[..], b"d"]);
    }

    #[test]
    fn printed_datagrams_end_in_one_newline() {
        assert!(needs_newline(b"reply"));
        assert!(needs_newline(b""));
        assert!(!needs_newline(b"reply\n"));
    }
}
