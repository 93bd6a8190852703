//! The messages both sides exchange, each one frame whose first byte is its kind, and
//! their encoding and decoding (a frame that is not a valid message is a
//! [`DecodeError`], never a panic).

use bytes::{BufMut, BytesMut};

use super::MAGIC;
use super::digest::Algo;
use super::path::{PathError, RelPath};

/// What a header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file: its bytes and digest follow.
    File,
    /// A directory (empty or not): created, nothing follows.
    Dir,
}

/// The header sent before each directory and file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// File or directory.
    pub kind: Kind,
    /// The checksum of this file's digest.
    pub algo: Algo,
    /// Permission bits (`st_mode & 0o7777`); the receiver applies `mode & 0o777`.
    pub mode: u32,
    /// File size in bytes (0 for directories).
    pub size: u64,
    /// Where it goes, relative to the receiver's DIR.
    pub path: RelPath,
}

/// A symbolic link, sent as an `F` header of kind 2 whose body is the link's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Where the link goes, relative to the receiver's DIR.
    pub path: RelPath,
    /// What the link points to, as the sender's `readlink` gave it (bytes: targets need
    /// not be UTF-8). Checked by the receiver ([`super::path::check_link`]), not here: an
    /// unsafe target costs the link, not the session.
    pub target: Vec<u8>,
}

/// Where the receiver's offset comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Nothing was there: the offset is 0.
    Fresh,
    /// A partial file from an earlier, broken transfer: resume at the offset.
    Partial,
    /// A complete file of the same size is already in place: the offset is the size, and
    /// the digest decides whether it is the same file.
    Existing,
}

impl Origin {
    fn code(self) -> u8 {
        match self {
            Origin::Fresh => 0,
            Origin::Partial => 1,
            Origin::Existing => 2,
        }
    }

    fn from_code(code: u8) -> Option<Origin> {
        [Origin::Fresh, Origin::Partial, Origin::Existing]
            .into_iter()
            .find(|o| o.code() == code)
    }
}

/// One protocol message (one frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `V`: both sides, first: protocol name and version.
    Hello {
        /// The version spoken.
        version: u8,
    },
    /// `F`: sender → receiver: a directory or file follows.
    Header(Header),
    /// `F` of kind 2: sender → receiver: a symbolic link; nothing follows.
    Link(Link),
    /// `O`: receiver → sender: send the file's bytes from `offset` on.
    Offer {
        /// The first byte the receiver wants.
        offset: u64,
        /// Why it already has the bytes before `offset`.
        origin: Origin,
    },
    /// `S`: receiver → sender: do not send this file (it exists, `--skip-existing`).
    Skip {
        /// Why, for the sender's user.
        reason: String,
    },
    /// `D`: sender → receiver: the digest of the whole file, after its bytes.
    Digest(Vec<u8>),
    /// `A`: receiver → sender: the directory exists / the file is verified and in place
    /// (with the receiver's own digest; empty for directories).
    Ack(Vec<u8>),
    /// `E`: sender → receiver: no more files; receiver → sender: all done.
    End,
    /// `!`: receiver → sender: refused or failed; the connection closes after it.
    Error(String),
}

/// The header kind byte of a symbolic link.
const LINK: u8 = 2;

/// A link header's body (after `F`): `None` if its lengths do not add up, else the link
/// or the error for its path.
fn decode_link(body: &[u8]) -> Option<Result<Message, DecodeError>> {
    let size = u64::from_be_bytes(body.get(6..14)?.try_into().ok()?);
    let size = usize::try_from(size)
        .ok()
        .filter(|&n| n <= super::path::MAX_PATH)?;
    let rest = body.get(14..)?;
    let (raw, target) = rest.split_at_checked(rest.len().checked_sub(size)?)?;
    Some(
        RelPath::new(raw)
            .map(|path| {
                Message::Link(Link {
                    path,
                    target: target.to_vec(),
                })
            })
            .map_err(|reason| DecodeError::Path {
                path: String::from_utf8_lossy(raw).into_owned(),
                reason,
            }),
    )
}

/// A frame that is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame was empty: no kind byte.
    #[error("empty message")]
    Empty,
    /// An unknown kind byte.
    #[error("unknown message kind {0:#04x}")]
    UnknownKind(u8),
    /// A body of the wrong length for its kind.
    #[error("malformed {0:?} message")]
    Malformed(char),
    /// A `V` for another protocol or version.
    #[error("not a sockit-transfer peer, or an unsupported version")]
    BadHello,
    /// An unknown algorithm code.
    #[error("unknown checksum algorithm {0}")]
    UnknownAlgo(u8),
    /// A header whose path is unsafe.
    #[error("unsafe path {path:?}: {reason}")]
    Path {
        /// The path as sent (lossy UTF-8, for the message).
        path: String,
        /// What is wrong with it.
        reason: PathError,
    },
}

impl Message {
    /// Appends this message as one frame to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        let mut body = Vec::new();
        match self {
            Message::Hello { version } => {
                body.push(b'V');
                body.extend_from_slice(MAGIC);
                body.push(*version);
            }
            Message::Header(h) => {
                body.push(b'F');
                body.push(match h.kind {
                    Kind::File => 0,
                    Kind::Dir => 1,
                });
                body.push(h.algo.code());
                body.extend_from_slice(&h.mode.to_be_bytes());
                body.extend_from_slice(&h.size.to_be_bytes());
                body.extend_from_slice(h.path.as_bytes());
            }
            Message::Link(l) => {
                // Algo and mode mean nothing for a link (Linux has no link modes): zeros.
                // The size is the target's length; the target ends the frame.
                body.push(b'F');
                body.push(LINK);
                body.push(0);
                body.extend_from_slice(&0u32.to_be_bytes());
                body.extend_from_slice(&(l.target.len() as u64).to_be_bytes());
                body.extend_from_slice(l.path.as_bytes());
                body.extend_from_slice(&l.target);
            }
            Message::Offer { offset, origin } => {
                body.push(b'O');
                body.extend_from_slice(&offset.to_be_bytes());
                body.push(origin.code());
            }
            Message::Skip { reason } => {
                body.push(b'S');
                body.extend_from_slice(reason.as_bytes());
            }
            Message::Digest(d) => {
                body.push(b'D');
                body.extend_from_slice(d);
            }
            Message::Ack(d) => {
                body.push(b'A');
                body.extend_from_slice(d);
            }
            Message::End => body.push(b'E'),
            Message::Error(m) => {
                body.push(b'!');
                body.extend_from_slice(m.as_bytes());
            }
        }
        // Every body is far below the limit, except a path, which is capped at MAX_PATH.
        dst.reserve(4 + body.len());
        dst.put_u32(body.len() as u32);
        dst.put_slice(&body);
    }

    /// The message as one frame, header included.
    pub fn to_frame(&self) -> Vec<u8> {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        buf.to_vec()
    }

    /// Decodes one frame's payload.
    pub fn decode(frame: &[u8]) -> Result<Message, DecodeError> {
        let (&kind, body) = frame.split_first().ok_or(DecodeError::Empty)?;
        let malformed = || DecodeError::Malformed(kind as char);
        Ok(match kind {
            b'V' => {
                let version = body.strip_prefix(MAGIC).ok_or(DecodeError::BadHello)?;
                match version {
                    [v] => Message::Hello { version: *v },
                    _ => return Err(DecodeError::BadHello),
                }
            }
            b'F' => {
                if body.len() < 14 {
                    return Err(malformed());
                }
                if body[0] == LINK {
                    return decode_link(body).ok_or_else(malformed)?;
                }
                let kind = match body[0] {
                    0 => Kind::File,
                    1 => Kind::Dir,
                    _ => return Err(malformed()),
                };
                let algo = Algo::from_code(body[1]).ok_or(DecodeError::UnknownAlgo(body[1]))?;
                let mode = u32::from_be_bytes(body[2..6].try_into().map_err(|_| malformed())?);
                let size = u64::from_be_bytes(body[6..14].try_into().map_err(|_| malformed())?);
                let raw = &body[14..];
                let path = RelPath::new(raw).map_err(|reason| DecodeError::Path {
                    path: String::from_utf8_lossy(raw).into_owned(),
                    reason,
                })?;
                if kind == Kind::Dir && size != 0 {
                    return Err(malformed());
                }
                Message::Header(Header {
                    kind,
                    algo,
                    mode,
                    size,
                    path,
                })
            }
            b'O' => {
                if body.len() != 9 {
                    return Err(malformed());
                }
                let offset = u64::from_be_bytes(body[..8].try_into().map_err(|_| malformed())?);
                let origin = Origin::from_code(body[8]).ok_or_else(malformed)?;
                Message::Offer { offset, origin }
            }
            b'S' => Message::Skip {
                reason: String::from_utf8_lossy(body).into_owned(),
            },
            b'D' => Message::Digest(body.to_vec()),
            b'A' => Message::Ack(body.to_vec()),
            b'E' if body.is_empty() => Message::End,
            b'E' => return Err(malformed()),
            b'!' => Message::Error(String::from_utf8_lossy(body).into_owned()),
            other => return Err(DecodeError::UnknownKind(other)),
        })
    }
}
