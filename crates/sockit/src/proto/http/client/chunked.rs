//! The chunked transfer coding (RFC 9112 §7.1), decoded sans-IO.
//!
//! ```text
//! 1a;ext=1\r\n          chunk-size (hex) [; extensions] CRLF   <= MAX_SIZE_LINE bytes
//! <26 bytes>\r\n        chunk-data CRLF
//! 0\r\n                 last chunk
//! Trailer: x\r\n        trailer lines                          <= MAX_TRAILERS lines
//! \r\n                  end
//! ```
//!
//! The decoder keeps no data of its own beyond one partial line: chunk data is copied
//! straight from the input to the output as it arrives, so any cut of the input gives the
//! same result.

use crate::proto::http::HttpError;

/// Longest chunk-size line (size, extensions, CRLF) accepted.
pub const MAX_SIZE_LINE: usize = 1024;
/// Longest trailer line accepted.
pub const MAX_TRAILER_LINE: usize = 8 * 1024;
/// Most trailer lines accepted.
pub const MAX_TRAILERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line (partial line kept in `line`).
    Size,
    /// This many data bytes of the current chunk remain.
    Data(u64),
    /// The CRLF after chunk data; the number of its bytes already seen.
    DataEnd(u8),
    /// Reading trailer lines after the last chunk.
    Trailer,
    /// The message is complete.
    Done,
}

/// Decodes a chunked body; feed it bytes with [`ChunkedDecoder::decode`].
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    line: Vec<u8>,
    trailers: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size,
            line: Vec::new(),
            trailers: 0,
        }
    }

    /// Whether the last chunk and the trailers were read: the body is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, appending body bytes to `out`. Returns how many input bytes were
    /// consumed: all of them, unless the body ended inside `input` (the rest belongs to
    /// whatever follows the message).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::Data(left) => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd(0)
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd(seen) => {
                    let want = if seen == 0 { b'\r' } else { b'\n' };
                    if input[i] != want {
                        return Err(HttpError::malformed(
                            "chunked body",
                            "chunk data not followed by CRLF",
                        ));
                    }
                    i += 1;
                    self.state = if seen == 0 {
                        State::DataEnd(1)
                    } else {
                        State::Size
                    };
                }
                State::Size | State::Trailer => {
                    let limit = if self.state == State::Size {
                        MAX_SIZE_LINE
                    } else {
                        MAX_TRAILER_LINE
                    };
                    let rest = &input[i..];
                    let (piece, complete) = match rest.iter().position(|&b| b == b'\n') {
                        Some(n) => (&rest[..=n], true),
                        None => (rest, false),
                    };
                    if self.line.len() + piece.len() > limit {
                        return Err(HttpError::TooLarge {
                            what: if self.state == State::Size {
                                "chunk size line"
                            } else {
                                "trailer line"
                            },
                            limit,
                        });
                    }
                    self.line.extend_from_slice(piece);
                    i += piece.len();
                    if complete {
                        let line = std::mem::take(&mut self.line);
                        self.on_line(&line)?;
                    }
                }
            }
        }
        Ok(i)
    }

    fn on_line(&mut self, line: &[u8]) -> Result<(), HttpError> {
        let line = line
            .strip_suffix(b"\r\n")
            .ok_or_else(|| HttpError::malformed("chunked body", "line not ended by CRLF"))?;
        if self.state == State::Trailer {
            if line.is_empty() {
                self.state = State::Done;
                return Ok(());
            }
            self.trailers += 1;
            if self.trailers > MAX_TRAILERS {
                return Err(HttpError::TooLarge {
                    what: "trailer section",
                    limit: MAX_TRAILERS,
                });
            }
            if !line.contains(&b':') {
                return Err(HttpError::malformed("chunked body", "trailer without ':'"));
            }
            return Ok(());
        }
        let size = parse_size(line)?;
        self.state = if size == 0 {
            State::Trailer
        } else {
            State::Data(size)
        };
        Ok(())
    }
}

/// The hex size before any `;extension`, with at most 16 digits (no overflow).
fn parse_size(line: &[u8]) -> Result<u64, HttpError> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii_end();
    if digits.is_empty() || digits.len() > 16 {
        return Err(HttpError::malformed(
            "chunk size line",
            format!("bad size {:?}", String::from_utf8_lossy(digits)),
        ));
    }
    let mut size: u64 = 0;
    for &d in digits {
        let v = (d as char).to_digit(16).ok_or_else(|| {
            HttpError::malformed(
                "chunk size line",
                format!("bad size {:?}", String::from_utf8_lossy(digits)),
            )
        })?;
        size = (size << 4) | u64::from(v);
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_cut(wire: &[u8], cut: usize) -> Result<(Vec<u8>, usize, bool), HttpError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut used = 0;
        for piece in wire.chunks(cut.max(1)) {
            let n = d.decode(piece, &mut out)?;
            used += n;
            if d.is_done() {
                break;
            }
        }
        Ok((out, used, d.is_done()))
    }

    #[test]
    fn decodes_any_cut_alike() {
        let wire =
            b"5\r\nhello\r\n1a;name=v\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for cut in 1..wire.len() {
            let (out, used, done) = decode_cut(wire, cut).unwrap();
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz");
            assert!(done);
            assert_eq!(used, wire.len() - 4, "cut {cut}");
        }
    }

    #[test]
    fn refuses_bad_sizes_and_long_lines() {
        assert!(decode_cut(b"zz\r\n", 100).is_err());
        assert!(decode_cut(b"\r\n", 100).is_err());
        assert!(decode_cut(b"11111111111111111\r\n", 100).is_err());
        assert!(decode_cut(b"3\r\nabcXY", 100).is_err());
        let long = format!("1;{}\r\n", "x".repeat(MAX_SIZE_LINE));
        assert!(matches!(
            decode_cut(long.as_bytes(), 7),
            Err(HttpError::TooLarge { .. })
        ));
        let mut many = b"0\r\n".to_vec();
        for _ in 0..=MAX_TRAILERS {
            many.extend_from_slice(b"A: b\r\n");
        }
        assert!(decode_cut(&many, 5).is_err());
    }

    #[test]
    fn huge_size_is_streamed_not_reserved() {
        let (out, _, done) = decode_cut(b"ffffffffffffffff\r\nabc", 2).unwrap();
        assert_eq!(out, b"abc");
        assert!(!done);
    }
}
