//! The relay's byte transformations, free of I/O: `--crlf`, stdin lines cut into
//! datagrams, datagrams printed as lines, stdin lines sent as
//! length-prefixed frames (`docs/frame.md`)
//! ([`FrameEncoder`]), frames printed as lines ([`FrameDecoder`]), and `--hex` dumps
//! ([`HexDump`]).

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::{Dump, LineEndings};
use crate::frame::{FrameError, LengthCodec};

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

/// Cuts stdin into frames (`--frame`): one frame per line, without its `\n` (or `\r\n`),
/// each a 4-byte big-endian length and the line's bytes (`docs/frame.md`).
///
/// What follows the last newline is one more frame at end of input
/// ([`FrameEncoder::finish`]); an empty line is an empty frame. A line longer than the
/// frame limit is an error as soon as it grows past it, so an endless line costs at most
/// the limit.
#[derive(Debug, Clone)]
pub struct FrameEncoder {
    codec: LengthCodec,
    partial: Vec<u8>,
}

impl FrameEncoder {
    /// An encoder for frames of at most `max_frame` bytes.
    pub fn new(max_frame: usize) -> FrameEncoder {
        FrameEncoder {
            codec: LengthCodec::new(max_frame),
            partial: Vec::new(),
        }
    }

    /// Feeds a chunk of input; every frame it completes is appended to `out`, header and
    /// payload.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let max = self.codec.max_frame();
        while !chunk.is_empty() {
            let newline = chunk.iter().position(|&b| b == b'\n');
            let line_end = newline.unwrap_or(chunk.len());
            self.partial.extend_from_slice(&chunk[..line_end]);
            // The line may still end in "\r\n": one byte over the limit can be its '\r'.
            let len = self.partial.len();
            if len > max && !(len == max + 1 && self.partial.last() == Some(&b'\r')) {
                return Err(FrameError::TooLong {
                    len: self.partial.len() as u64,
                    max,
                });
            }
            match newline {
                Some(at) => {
                    chunk = &chunk[at + 1..];
                    let mut line = std::mem::take(&mut self.partial);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    self.encode(&line, out)?;
                }
                None => chunk = &[],
            }
        }
        Ok(())
    }

    /// End of input: a last line without a newline becomes one more frame (a `\r` at its
    /// end is data: no `\n` followed it).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        if self.partial.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.partial);
        self.encode(&line, out)
    }

    fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        out.reserve(crate::frame::HEADER_LEN + payload.len());
        out.extend_from_slice(&self.codec.header(payload.len())?);
        out.extend_from_slice(payload);
        Ok(())
    }
}

/// Prints received frames (`--frame`): each frame's payload followed by one `\n`, or with
/// [`Dump::Hex`] each frame as a hex dump of its own (offsets from 0; an empty frame is
/// its offset alone).
///
/// A length header over the limit is an error as soon as its 4 bytes arrive, before any
/// buffer of that size exists; bytes left over at the end of the stream (a frame cut
/// short) are [`FrameError::Truncated`], from [`FrameDecoder::finish`].
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    codec: LengthCodec,
    buf: BytesMut,
    dump: Dump,
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `max_frame` bytes, printed as `dump` says.
    pub fn new(max_frame: usize, dump: Dump) -> FrameDecoder {
        FrameDecoder {
            codec: LengthCodec::new(max_frame),
            buf: BytesMut::new(),
            dump,
        }
    }

    /// Feeds received bytes; every frame they complete is appended to `out`, printed.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.buf.extend_from_slice(chunk);
        while let Some(frame) = self.codec.decode_frame(&mut self.buf)? {
            self.print(&frame, out);
        }
        Ok(())
    }

    /// The stream ended: an error if it ended inside a frame.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        while let Some(frame) = self.codec.decode_eof(&mut self.buf)? {
            self.print(&frame, out);
        }
        Ok(())
    }

    fn print(&self, frame: &[u8], out: &mut Vec<u8>) {
        match self.dump {
            Dump::AsIs => {
                out.reserve(frame.len() + 1);
                out.extend_from_slice(frame);
                out.push(b'\n');
            }
            Dump::Hex => hex_message(frame, out),
        }
    }
}

/// `--hex` for a byte stream: every chunk dumped as it arrives, in `xxd`'s format, with
/// offsets counted from the start of the stream. Each chunk starts a new line, so what is
/// printed does not wait for a line of 16 bytes to fill.
#[derive(Debug, Clone, Default)]
pub struct HexDump {
    offset: u64,
}

impl HexDump {
    /// Appends the dump of `chunk` to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        hex_lines(chunk, self.offset, out);
        self.offset += chunk.len() as u64;
    }
}

/// Appends one message (a frame, a datagram) dumped on its own from offset 0; an empty
/// one is its offset alone, `00000000:`, so that it still shows.
pub fn hex_message(message: &[u8], out: &mut Vec<u8>) {
    if message.is_empty() {
        out.extend_from_slice(b"00000000:\n");
    } else {
        hex_lines(message, 0, out);
    }
}

/// Bytes per line of a hex dump.
pub const HEX_WIDTH: usize = 16;

/// Appends `bytes` as `xxd` prints them, the first at `offset`: lines of
/// `OFFSET: HHHH HHHH ...  ASCII`, 16 bytes each, with `.` for bytes that are not
/// printable ASCII.
pub fn hex_lines(bytes: &[u8], offset: u64, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len().div_ceil(HEX_WIDTH) * 68);
    for (i, line) in bytes.chunks(HEX_WIDTH).enumerate() {
        let at = offset + (i * HEX_WIDTH) as u64;
        out.extend_from_slice(format!("{at:08x}:").as_bytes());
        for j in 0..HEX_WIDTH {
            if j % 2 == 0 {
                out.push(b' ');
            }
            match line.get(j) {
                Some(&b) => {
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 15)]);
                }
                None => out.extend_from_slice(b"  "),
            }
        }
        out.extend_from_slice(b"  ");
        out.extend(line.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b
            } else {
                b'.'
            }
        }));
        out.push(b'\n');
    }
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

#[cfg(test)]
mod frame_tests {
    use super::*;

    fn encode(chunks: &[&[u8]], max: usize) -> Result<Vec<u8>, FrameError> {
        let mut e = FrameEncoder::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            e.push(chunk, &mut out)?;
        }
        e.finish(&mut out)?;
        Ok(out)
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(payload);
        f
    }

    /// Every way of cutting `input` in two, and in three, gives `whole`.
    fn every_cut<T: PartialEq + std::fmt::Debug>(input: &[u8], run: impl Fn(&[&[u8]]) -> T) {
        let whole = run(&[input]);
        for a in 0..=input.len() {
            for b in a..=input.len() {
                let got = run(&[&input[..a], &input[a..b], &input[b..]]);
                assert_eq!(got, whole, "cut at {a} and {b}");
            }
        }
    }

    #[test]
    fn each_line_is_one_frame_without_its_ending() {
        let got = encode(&[b"hello\nworld\r\n\nlast"], 100).unwrap();
        let want: Vec<u8> = [frame(b"hello"), frame(b"world"), frame(b""), frame(b"last")].concat();
        assert_eq!(got, want);
        // A lone '\r' is data; one before the end of input too.
        assert_eq!(encode(&[b"a\rb\n"], 100).unwrap(), frame(b"a\rb"));
        assert_eq!(encode(&[b"a\r"], 100).unwrap(), frame(b"a\r"));
        assert_eq!(encode(&[b""], 100).unwrap(), b"");
    }

    #[test]
    fn encoded_lines_survive_any_cut() {
        every_cut(b"alpha\r\nbeta\n\ngamma\r\ndelta\r", |chunks| {
            encode(chunks, 100).unwrap()
        });
    }

    #[test]
    fn a_stdin_line_over_the_limit_is_an_error_as_it_grows() {
        assert_eq!(encode(&[b"abc\n"], 3).unwrap(), frame(b"abc"));
        assert_eq!(encode(&[b"abc\r\n"], 3).unwrap(), frame(b"abc"));
        assert_eq!(encode(&[b"abc", b"\r", b"\n"], 3).unwrap(), frame(b"abc"));
        assert!(matches!(
            encode(&[b"abcd\n"], 3),
            Err(FrameError::TooLong { max: 3, .. })
        ));
        // No newline needed: the line is refused once it cannot fit any more.
        let mut e = FrameEncoder::new(3);
        assert!(e.push(b"abcd", &mut Vec::new()).is_err());
        // "abc\r" at the end of input is four bytes of data.
        assert!(encode(&[b"abc\r"], 3).is_err());
    }

    fn decode(chunks: &[&[u8]], max: usize, dump: Dump) -> Result<Vec<u8>, String> {
        let mut d = FrameDecoder::new(max, dump);
        let mut out = Vec::new();
        for chunk in chunks {
            d.push(chunk, &mut out).map_err(|e| e.to_string())?;
        }
        d.finish(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn each_frame_is_printed_as_one_line() {
        let wire = [
            frame(b"one"),
            frame(b""),
            frame(b"two\nlines"),
            frame(b"x\n"),
        ]
        .concat();
        let got = decode(&[&wire], 100, Dump::AsIs).unwrap();
        assert_eq!(got, b"one\n\ntwo\nlines\nx\n\n");
    }

    #[test]
    fn decoded_frames_survive_any_cut() {
        let wire = [
            frame(b"sticky"),
            frame(b""),
            frame(&[0, 1, 2, 255]),
            frame(b"end"),
        ]
        .concat();
        every_cut(&wire, |chunks| decode(chunks, 100, Dump::AsIs).unwrap());
        every_cut(&wire, |chunks| decode(chunks, 100, Dump::Hex).unwrap());
    }

    #[test]
    fn lines_round_trip_through_frames() {
        let input = b"first\nsecond\r\n\n\x00binary\xff\n";
        let wire = encode(&[input], 100).unwrap();
        let printed = decode(&[&wire], 100, Dump::AsIs).unwrap();
        assert_eq!(printed, b"first\nsecond\n\n\x00binary\xff\n");
    }

    #[test]
    fn an_over_long_header_is_refused_before_its_frame_arrives() {
        let mut d = FrameDecoder::new(16, Dump::AsIs);
        let mut out = Vec::new();
        d.push(&frame(b"ok"), &mut out).unwrap();
        assert_eq!(out, b"ok\n");
        let err = d.push(&[0xff, 0xff, 0xff, 0xff], &mut out).unwrap_err();
        assert!(matches!(
            err,
            FrameError::TooLong {
                len: 0xffff_ffff,
                max: 16
            }
        ));
        // Frames before the bad header in the same read are printed first.
        let wire = [frame(b"a"), vec![0, 0, 0, 17]].concat();
        let mut d = FrameDecoder::new(16, Dump::AsIs);
        let mut out = Vec::new();
        assert!(d.push(&wire, &mut out).is_err());
        assert_eq!(out, b"a\n");
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_truncated() {
        let wire = frame(b"hello");
        for cut in 1..wire.len() {
            let err = decode(&[&wire[..cut]], 100, Dump::AsIs).unwrap_err();
            assert!(err.contains("middle of a frame"), "cut at {cut}: {err}");
        }
        assert_eq!(decode(&[&wire], 100, Dump::AsIs).unwrap(), b"hello\n");
    }

    #[test]
    fn hex_lines_are_xxds() {
        let mut out = Vec::new();
        hex_lines(b"hello, frames!\n\x00\x01\xff", 0, &mut out);
        let want = "00000000: 6865 6c6c 6f2c 2066 7261 6d65 7321 0a00  hello, frames!..\n\
                    00000010: 01ff                                     ..\n";
        assert_eq!(String::from_utf8(out).unwrap(), want);
        let mut out = Vec::new();
        hex_lines(b"abc", 0x1234, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "00001234: 6162 63                                  abc\n"
        );
    }

    #[test]
    fn a_stream_dump_counts_offsets_across_reads() {
        let mut h = HexDump::default();
        let mut out = Vec::new();
        h.push(b"ab", &mut out);
        h.push(b"cd", &mut out);
        let text = String::from_utf8(out).unwrap();
        let offsets: Vec<&str> = text.lines().map(|l| &l[..9]).collect();
        assert_eq!(offsets, ["00000000:", "00000002:"]);
    }

    #[test]
    fn an_empty_frame_dumps_as_its_offset() {
        let wire = [frame(b""), frame(b"A")].concat();
        let got = decode(&[&wire], 100, Dump::Hex).unwrap();
        let want = "00000000:\n00000000: 41                                       A\n";
        assert_eq!(String::from_utf8(got).unwrap(), want);
    }
}
