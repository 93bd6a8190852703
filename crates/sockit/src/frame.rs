//! Framing: the fix for "sticky packets" (TCP is a byte stream: two sends may arrive as
//! one read, one send as several). Sans-IO codecs over [`BytesMut`], usable from blocking
//! code ([`LengthCodec::read_frame`]) and, from the same implementation, as tokio-util
//! [`Decoder`]/[`Encoder`]s.
//!
//! # Length-prefixed frames (`docs/frame.md`)
//!
//! ```text
//! +----------------+--------------------------------+
//! | length N (u32, |  N bytes of payload            |
//! | big-endian)    |                                |
//! +----------------+--------------------------------+
//!      4 bytes              0 ..= max_frame bytes
//! ```
//!
//! A length above the receiver's limit (default [`DEFAULT_MAX_FRAME`], 16 MiB) is an error
//! as soon as the 4-byte header is read, before any buffer of that size is reserved: a
//! peer cannot make the receiver allocate by lying about a length.
//!
//! # Lines
//!
//! [`LineCodec`] splits on `\n` (a preceding `\r` is dropped) with a maximum line length,
//! checked as bytes arrive, so an endless line costs at most the limit.

use std::io::{self, Read};

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The default largest frame payload accepted: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// The default longest line accepted (without its newline): 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 64 << 10;

/// Size of the big-endian length header.
pub const HEADER_LEN: usize = 4;

/// What can go wrong while framing.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A frame header announced more bytes than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// The announced (or attempted) length.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A line grew past the limit without a newline.
    #[error("line longer than the limit of {max} bytes")]
    LineTooLong {
        /// The configured limit.
        max: usize,
    },
    /// The stream ended in the middle of a frame or line.
    #[error("connection closed in the middle of a frame ({have} of {want} bytes)")]
    Truncated {
        /// Bytes of the frame (header included) that did arrive.
        have: usize,
        /// Bytes the frame needed.
        want: usize,
    },
    /// The underlying reader or writer failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Decoder state: waiting for a header, or for the payload of a known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Data(usize),
}

/// The 4-byte big-endian length-prefix codec.
#[derive(Debug, Clone)]
pub struct LengthCodec {
    max_frame: usize,
    state: State,
}

impl Default for LengthCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl LengthCodec {
    /// A codec accepting payloads up to `max_frame` bytes (at most `u32::MAX`).
    pub fn new(max_frame: usize) -> Self {
        LengthCodec {
            max_frame: max_frame.min(u32::MAX as usize),
            state: State::Head,
        }
    }

    /// The largest payload accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Takes the next whole frame's payload out of `buf`, or `Ok(None)` if more bytes are
    /// needed (then whatever is in `buf` stays there for the next call).
    pub fn decode_frame(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let len = match self.state {
            State::Data(len) => len,
            State::Head => {
                if buf.len() < HEADER_LEN {
                    return Ok(None);
                }
                let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if len > self.max_frame {
                    return Err(FrameError::TooLong {
                        len: len as u64,
                        max: self.max_frame,
                    });
                }
                buf.advance(HEADER_LEN);
                self.state = State::Data(len);
                len
            }
        };
        if buf.len() < len {
            // Safe to reserve now: `len` passed the limit check.
            buf.reserve(len - buf.len());
            return Ok(None);
        }
        self.state = State::Head;
        Ok(Some(buf.split_to(len)))
    }

    /// Appends one frame (header and payload) to `dst`.
    pub fn encode_frame(&self, payload: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.reserve(HEADER_LEN + payload.len());
        dst.put_slice(&self.header(payload.len())?);
        dst.put_slice(payload);
        Ok(())
    }

    /// The header for a payload of `len` bytes, for writers that send header and payload
    /// separately (e.g. with `writev`, to avoid copying a large payload).
    pub fn header(&self, len: usize) -> Result<[u8; HEADER_LEN], FrameError> {
        if len > self.max_frame {
            return Err(FrameError::TooLong {
                len: len as u64,
                max: self.max_frame,
            });
        }
        Ok((len as u32).to_be_bytes())
    }

    /// Blocking read of one frame: reads from `reader` into `buf` until a frame is whole.
    /// `Ok(None)` is a clean end of stream between frames; an end inside a frame is
    /// [`FrameError::Truncated`]. Bytes after the frame stay in `buf` for the next call.
    pub fn read_frame<R: Read>(
        &mut self,
        reader: &mut R,
        buf: &mut BytesMut,
    ) -> Result<Option<BytesMut>, FrameError> {
        loop {
            if let Some(frame) = self.decode_frame(buf)? {
                return Ok(Some(frame));
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(8192);
            }
            let n = read_some(reader, buf)?;
            if n == 0 {
                return match (self.state, buf.len()) {
                    (State::Head, 0) => Ok(None),
                    (State::Head, have) => Err(FrameError::Truncated {
                        have,
                        want: HEADER_LEN,
                    }),
                    (State::Data(len), have) => Err(FrameError::Truncated {
                        have: HEADER_LEN + have,
                        want: HEADER_LEN + len,
                    }),
                };
            }
        }
    }
}

/// One `read` into the spare capacity of `buf`, retrying on EINTR.
fn read_some<R: Read>(reader: &mut R, buf: &mut BytesMut) -> io::Result<usize> {
    let start = buf.len();
    // Zero-filling the window keeps this free of `unsafe`; capping it keeps the cost per
    // read constant however large the frame being assembled is.
    let window = (buf.capacity() - start).clamp(1, 64 * 1024);
    buf.resize(start + window, 0);
    loop {
        match reader.read(&mut buf[start..]) {
            Ok(n) => {
                buf.truncate(start + n);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        }
    }
}

impl Decoder for LengthCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        self.decode_frame(src)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode_frame(buf)? {
            Some(frame) => Ok(Some(frame)),
            None => match (self.state, buf.len()) {
                (State::Head, 0) => Ok(None),
                (State::Head, have) => Err(FrameError::Truncated {
                    have,
                    want: HEADER_LEN,
                }),
                (State::Data(len), have) => Err(FrameError::Truncated {
                    have: HEADER_LEN + have,
                    want: HEADER_LEN + len,
                }),
            },
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for LengthCodec {
    type Error = FrameError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_frame(item.as_ref(), dst)
    }
}

/// Newline-delimited lines with a maximum length.
#[derive(Debug, Clone)]
pub struct LineCodec {
    max_line: usize,
    /// How far `buf` was already searched for `\n`, so each byte is scanned once.
    scanned: usize,
}

impl Default for LineCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE)
    }
}

impl LineCodec {
    /// A codec accepting lines of up to `max_line` bytes (newline not counted).
    pub fn new(max_line: usize) -> Self {
        LineCodec {
            max_line,
            scanned: 0,
        }
    }

    /// Takes the next whole line (without `\n` or `\r\n`) out of `buf`, or `Ok(None)`.
    pub fn decode_line(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        // A line may be max_line bytes plus "\r\n": look no further than that.
        let window = buf.len().min(self.max_line.saturating_add(2));
        // A caller may have emptied `buf` in between; never index past it.
        self.scanned = self.scanned.min(window);
        match buf[self.scanned..window].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let end = self.scanned + i;
                self.scanned = 0;
                let mut line = buf.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                if line.len() > self.max_line {
                    return Err(FrameError::LineTooLong { max: self.max_line });
                }
                Ok(Some(line))
            }
            None if window > self.max_line => {
                // max_line + 1 bytes (or +2 with '\r') and no newline: it cannot end in time.
                if window == self.max_line + 1 && buf.get(self.max_line) == Some(&b'\r') {
                    self.scanned = window;
                    return Ok(None);
                }
                Err(FrameError::LineTooLong { max: self.max_line })
            }
            None => {
                self.scanned = window;
                Ok(None)
            }
        }
    }

    /// Appends `line` and a `\n` to `dst`.
    pub fn encode_line(&self, line: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        if line.len() > self.max_line {
            return Err(FrameError::LineTooLong { max: self.max_line });
        }
        dst.reserve(line.len() + 1);
        dst.put_slice(line);
        dst.put_u8(b'\n');
        Ok(())
    }
}

impl Decoder for LineCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        self.decode_line(src)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode_line(buf)? {
            Some(line) => Ok(Some(line)),
            // A last line without a newline is still a line, as `BufRead::lines` has it.
            None if !buf.is_empty() => {
                self.scanned = 0;
                let mut line = buf.split();
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                Ok(Some(line))
            }
            None => Ok(None),
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for LineCodec {
    type Error = FrameError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_line(item.as_ref(), dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_all(frames: &[Vec<u8>]) -> Vec<u8> {
        let codec = LengthCodec::default();
        let mut wire = BytesMut::new();
        for f in frames {
            codec.encode_frame(f, &mut wire).unwrap();
        }
        wire.to_vec()
    }

    /// Feeds `wire` to a decoder cut at `cuts` and collects every frame.
    fn decode_in_pieces(wire: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut codec = LengthCodec::default();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut start = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort_unstable();
        for end in points {
            buf.extend_from_slice(&wire[start..end]);
            start = end;
            while let Some(f) = codec.decode_frame(&mut buf).unwrap() {
                frames.push(f.to_vec());
            }
        }
        assert!(buf.is_empty());
        frames
    }

    proptest! {
        #[test]
        fn any_split_of_any_frames_decodes_to_the_same_frames(
            frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
            cuts in prop::collection::vec(any::<usize>(), 0..40),
        ) {
            let wire = encode_all(&frames);
            prop_assert_eq!(decode_in_pieces(&wire, &cuts), frames);
        }

        #[test]
        fn any_split_of_any_lines_decodes_to_the_same_lines(
            lines in prop::collection::vec("[^\r\n]{0,50}", 0..20),
            cuts in prop::collection::vec(any::<usize>(), 0..40),
        ) {
            let wire: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
            let mut codec = LineCodec::new(256); // 50 chars of up to 4 bytes each fit
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
            points.push(wire.len());
            points.sort_unstable();
            let mut start = 0;
            for end in points {
                buf.extend_from_slice(&wire[start..end]);
                start = end;
                while let Some(l) = codec.decode_line(&mut buf).unwrap() {
                    got.push(String::from_utf8(l.to_vec()).unwrap());
                }
            }
            prop_assert_eq!(got, lines);
        }

        #[test]
        fn over_long_lengths_are_rejected_before_allocating(len in (1024u32 + 1)..=u32::MAX) {
            let mut codec = LengthCodec::new(1024);
            let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
            let err = codec.decode_frame(&mut buf).unwrap_err();
            let too_long = matches!(err, FrameError::TooLong { .. });
            prop_assert!(too_long);
            // Nothing near `len` was reserved.
            prop_assert!(buf.capacity() < 64);
        }
    }

    #[test]
    fn zero_length_frames_and_many_frames_in_one_read() {
        let wire = encode_all(&[vec![], b"a".to_vec(), vec![], b"bc".to_vec()]);
        assert_eq!(
            decode_in_pieces(&wire, &[]),
            vec![vec![], b"a".to_vec(), vec![], b"bc".to_vec()]
        );
    }

    #[test]
    fn a_4_gib_header_is_an_error_not_an_allocation() {
        let mut codec = LengthCodec::default();
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 1, 2][..]);
        let err = codec.decode_frame(&mut buf).unwrap_err();
        assert!(err.to_string().contains("4294967295"), "{err}");
    }

    #[test]
    fn blocking_reads_report_clean_end_and_truncation() {
        let wire = encode_all(&[b"hello".to_vec(), b"world".to_vec()]);
        let mut codec = LengthCodec::default();
        let mut buf = BytesMut::new();
        let mut reader = &wire[..];
        assert_eq!(
            &codec.read_frame(&mut reader, &mut buf).unwrap().unwrap()[..],
            b"hello"
        );
        assert_eq!(
            &codec.read_frame(&mut reader, &mut buf).unwrap().unwrap()[..],
            b"world"
        );
        assert!(codec.read_frame(&mut reader, &mut buf).unwrap().is_none());

        let mut cut = &wire[..7];
        let mut codec = LengthCodec::default();
        let err = codec
            .read_frame(&mut cut, &mut BytesMut::new())
            .unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated { have: 7, want: 9 }),
            "{err:?}"
        );
    }

    #[test]
    fn encoding_over_the_limit_fails() {
        let codec = LengthCodec::new(3);
        assert!(codec.encode_frame(b"four", &mut BytesMut::new()).is_err());
    }

    #[test]
    fn lines_over_the_limit_are_errors_even_without_a_newline() {
        let mut codec = LineCodec::new(4);
        let mut buf = BytesMut::from(&b"abcd\r\nabcdefgh"[..]);
        assert_eq!(&codec.decode_line(&mut buf).unwrap().unwrap()[..], b"abcd");
        assert!(matches!(
            codec.decode_line(&mut buf),
            Err(FrameError::LineTooLong { max: 4 })
        ));
        let mut buf = BytesMut::from(&b"abcd\r"[..]);
        assert!(codec.decode_line(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"\n");
        assert_eq!(&codec.decode_line(&mut buf).unwrap().unwrap()[..], b"abcd");
    }

    #[test]
    fn a_last_line_without_newline_is_returned_at_eof() {
        let mut codec = LineCodec::default();
        let mut buf = BytesMut::from(&b"one\ntwo"[..]);
        assert_eq!(&codec.decode_eof(&mut buf).unwrap().unwrap()[..], b"one");
        assert_eq!(&codec.decode_eof(&mut buf).unwrap().unwrap()[..], b"two");
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    }
}
