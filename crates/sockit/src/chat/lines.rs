//! A client's input as lines: [`LineReader`] splits what the client task reads with
//! [`LineCodec`], over-long lines reported and skipped.

use bytes::BytesMut;

use crate::frame::LineCodec;

/// One thing read from a client.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Input {
    /// A whole line, without its newline.
    Line(BytesMut),
    /// A line over the limit was dropped (up to its newline, however long it goes on).
    TooLong,
}

/// Splits a client's bytes into lines with [`LineCodec`]; an over-long line is reported
/// once and skipped up to its newline, and the connection goes on.
#[derive(Debug)]
pub(super) struct LineReader {
    /// Longest line accepted, to rebuild the codec after an over-long line.
    max_line: usize,
    /// Finds lines and enforces the limit.
    codec: LineCodec,
    /// Bytes read and not yet split into lines; the client task reads into it directly.
    pub(super) buf: BytesMut,
    /// Inside an over-long line: discard until the next newline.
    skipping: bool,
}

impl LineReader {
    pub(super) fn new(max_line: usize) -> LineReader {
        LineReader {
            max_line,
            codec: LineCodec::new(max_line),
            buf: BytesMut::with_capacity(4096),
            skipping: false,
        }
    }

    /// The next line or event from what was read so far.
    pub(super) fn next(&mut self) -> Option<Input> {
        if self.skipping {
            let i = self.buf.iter().position(|&b| b == b'\n');
            let Some(i) = i else {
                self.buf.clear();
                return None;
            };
            let _ = self.buf.split_to(i + 1);
            self.skipping = false;
        }
        match self.codec.decode_line(&mut self.buf) {
            Ok(Some(line)) => Some(Input::Line(line)),
            Ok(None) => None,
            Err(_) => {
                // Only `LineTooLong` can come from decoding a buffer.
                self.codec = LineCodec::new(self.max_line);
                self.skipping = true;
                // Whatever follows the newline (if it came in this read) is kept.
                if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                    let _ = self.buf.split_to(i + 1);
                    self.skipping = false;
                } else {
                    self.buf.clear();
                }
                Some(Input::TooLong)
            }
        }
    }

    /// At EOF: a last line without a newline still counts (unless it was over-long).
    pub(super) fn finish(&mut self) -> Option<Input> {
        if self.skipping || self.buf.is_empty() {
            return None;
        }
        let mut line = self.buf.split();
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        Some(Input::Line(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(r: &mut LineReader, bytes: &[u8]) -> Vec<Input> {
        r.buf.extend_from_slice(bytes);
        std::iter::from_fn(|| r.next()).collect()
    }

    fn line(s: &str) -> Input {
        Input::Line(BytesMut::from(s.as_bytes()))
    }

    #[test]
    fn over_long_lines_are_skipped_to_their_newline_and_reading_goes_on() {
        let mut r = LineReader::new(8);
        assert_eq!(feed(&mut r, b"short\r\n12345678"), vec![line("short")]);
        assert_eq!(feed(&mut r, b"9abc"), vec![Input::TooLong]);
        assert_eq!(feed(&mut r, b"more of the same"), vec![]);
        assert_eq!(feed(&mut r, b"end\nnext\n"), vec![line("next")]);
        assert_eq!(
            feed(&mut r, b"0123456789 long\nok\n"),
            vec![Input::TooLong, line("ok")]
        );
        assert_eq!(feed(&mut r, b"tail"), vec![]);
        assert_eq!(r.finish(), Some(line("tail")));
    }
}
