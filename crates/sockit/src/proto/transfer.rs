//! The file-transfer protocol behind `sockit send` / `sockit recv`, sans-IO: the messages
//! and their encoding, the checksum algorithms, relative-path validation, and the
//! receiver's state machine. No sockets, no files: the drivers in [`crate::transfer`] do
//! the I/O and ask this module what is allowed next. The wire format is documented in
//! `docs/transfer.md`; in short:
//!
//! ```text
//! sender                                             receiver
//!   | V "sockit-transfer" 1                              |
//!   |--------------------------------------------------->|
//!   |                              V "sockit-transfer" 1 |
//!   |<---------------------------------------------------|
//!   | F kind=dir mode path                               |   (for each directory)
//!   |--------------------------------------------------->|
//!   |                                       A (no body)  |
//!   |<---------------------------------------------------|
//!   | F kind=file algo mode size path                    |   (for each file)
//!   |--------------------------------------------------->|
//!   |                       O offset origin  | S reason  |
//!   |<---------------------------------------------------|
//!   | raw bytes [offset, size)   (not framed)            |
//!   | D digest of the whole file                         |
//!   |--------------------------------------------------->|
//!   |                                A digest | ! reason |
//!   |<---------------------------------------------------|
//!   | E                                                  |
//!   |--------------------------------------------------->|
//!   |                                                 E  |
//!   |<---------------------------------------------------|
//! ```
//!
//! Every message is one SPEC §5 frame (4-byte big-endian length, then the payload) whose
//! first byte is its kind. Only file contents travel outside frames, so the sender can hand
//! them to `sendfile` in one piece; their length is known from the header and the offer.
//! A `!` from the receiver ends the connection.

use std::fmt;
use std::str::FromStr;

use bytes::{BufMut, BytesMut};
use sha2::Digest as _;

use crate::frame::LengthCodec;

/// The protocol name carried by the `V` message.
pub const MAGIC: &[u8] = b"sockit-transfer";

/// The protocol version this implementation speaks.
pub const VERSION: u8 = 1;

/// The longest relative path accepted, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH: usize = 4096;

/// The longest path component accepted, in bytes (Linux `NAME_MAX`).
pub const MAX_NAME: usize = 255;

/// The prefix of the receiver's partial files; reserved, so no sender may name one.
pub const PARTIAL_PREFIX: &str = ".sockit-partial-";

/// The largest frame either side accepts: headers and digests are small.
pub const MAX_FRAME: usize = 64 * 1024;

/// A checksum algorithm; the sender picks one per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algo {
    /// BLAKE3, 32-byte digest (`b3sum`): the default, the fastest by far.
    #[default]
    Blake3,
    /// SHA-256, 32-byte digest (`sha256sum`).
    Sha256,
    /// MD5, 16-byte digest (`md5sum`), as seed 003 checks files; not collision resistant.
    Md5,
}

impl Algo {
    /// Every algorithm, in wire-code order.
    pub const ALL: [Algo; 3] = [Algo::Blake3, Algo::Sha256, Algo::Md5];

    /// The name the CLI takes.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Blake3 => "blake3",
            Algo::Sha256 => "sha256",
            Algo::Md5 => "md5",
        }
    }

    /// The digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algo::Blake3 | Algo::Sha256 => 32,
            Algo::Md5 => 16,
        }
    }

    /// The byte that names the algorithm on the wire.
    pub fn code(self) -> u8 {
        match self {
            Algo::Blake3 => 1,
            Algo::Sha256 => 2,
            Algo::Md5 => 3,
        }
    }

    /// The algorithm a wire byte names.
    pub fn from_code(code: u8) -> Option<Algo> {
        Algo::ALL.into_iter().find(|a| a.code() == code)
    }

    /// A fresh incremental hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            Algo::Blake3 => Hasher::Blake3(Box::default()),
            Algo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algo::Md5 => Hasher::Md5(md5::Md5::new()),
        }
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algo {
    type Err = String;

    fn from_str(s: &str) -> Result<Algo, String> {
        Algo::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| format!("unknown checksum {s:?} (expected blake3, sha256 or md5)"))
    }
}

/// An incremental hasher for one [`Algo`] (`hashlib.md5().update()`, for all three).
#[derive(Clone)]
pub enum Hasher {
    /// BLAKE3 (boxed: its state is 1.9 KiB).
    Blake3(Box<blake3::Hasher>),
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// MD5.
    Md5(md5::Md5),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hasher::Blake3(_) => "Hasher(blake3)",
            Hasher::Sha256(_) => "Hasher(sha256)",
            Hasher::Md5(_) => "Hasher(md5)",
        })
    }
}

impl Hasher {
    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Blake3(h) => {
                h.update(data);
            }
            Hasher::Sha256(h) => h.update(data),
            Hasher::Md5(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finalize(self) -> Vec<u8> {
        match self {
            Hasher::Blake3(h) => h.finalize().as_bytes().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Md5(h) => h.finalize().to_vec(),
        }
    }
}

/// Lower-case hex, as the `*sum` tools print digests.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// One line of `sha256sum` / `md5sum` / `b3sum` output for `path` (text mode, two spaces).
/// Like those tools, a name holding `\` or a newline is escaped and the line starts with
/// `\`, so `sha256sum -c` reads it back. Bytes, not text: Unix names need not be UTF-8.
pub fn sum_line(digest: &[u8], path: &RelPath) -> Vec<u8> {
    let name = path.as_bytes();
    let escape = name.iter().any(|&b| b == b'\\' || b == b'\n' || b == b'\r');
    let mut line = Vec::with_capacity(digest.len() * 2 + name.len() + 4);
    if escape {
        line.push(b'\\');
    }
    line.extend_from_slice(hex(digest).as_bytes());
    line.extend_from_slice(b"  ");
    for &b in name {
        match b {
            b'\\' if escape => line.extend_from_slice(b"\\\\"),
            b'\n' if escape => line.extend_from_slice(b"\\n"),
            b'\r' if escape => line.extend_from_slice(b"\\r"),
            _ => line.push(b),
        }
    }
    line.push(b'\n');
    line
}

/// Why a relative path is refused. A sender that produces one is broken or hostile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The empty path names DIR itself.
    #[error("empty path")]
    Empty,
    /// A leading `/` would escape DIR.
    #[error("absolute path")]
    Absolute,
    /// NUL cannot be part of a Unix name; it would cut the name short in a system call.
    #[error("NUL byte in path")]
    Nul,
    /// `a//b` or a trailing `/`: not a normalized path.
    #[error("empty path component (\"//\" or trailing \"/\")")]
    EmptyComponent,
    /// `.`: not a normalized path.
    #[error("\".\" component")]
    CurrentDir,
    /// `..` would climb out of DIR.
    #[error("\"..\" component")]
    ParentDir,
    /// Longer than [`MAX_PATH`].
    #[error("path longer than {MAX_PATH} bytes")]
    TooLong,
    /// A component longer than [`MAX_NAME`].
    #[error("path component longer than {MAX_NAME} bytes")]
    NameTooLong,
    /// A component starting with [`PARTIAL_PREFIX`], which names the receiver's own files.
    #[error("names starting with {PARTIAL_PREFIX} are reserved")]
    Reserved,
}

/// A validated relative path: components separated by single `/`, none empty, `.` or
/// `..`, no NUL, not absolute. Safe to resolve under DIR one component at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(Vec<u8>);

impl RelPath {
    /// Validates `bytes` as a relative path.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<RelPath, PathError> {
        let bytes = bytes.into();
        validate(&bytes)?;
        Ok(RelPath(bytes))
    }

    /// The path as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The components, in order; never empty.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/')
    }

    /// The components before the last, and the last.
    pub fn split_last(&self) -> (Vec<&[u8]>, &[u8]) {
        let mut parts: Vec<&[u8]> = self.components().collect();
        let last = parts.pop().unwrap_or_default();
        (parts, last)
    }

    /// `self/name`.
    pub fn join(&self, name: &[u8]) -> Result<RelPath, PathError> {
        let mut bytes = self.0.clone();
        bytes.push(b'/');
        bytes.extend_from_slice(name);
        RelPath::new(bytes)
    }

    /// The deterministic name of this file's partial data for a file of `size` bytes:
    /// the same path and size find the same partial after a crash, a different size
    /// (another version of the file) does not.
    pub fn partial_name(&self, size: u64) -> String {
        let mut h = blake3::Hasher::new();
        h.update(&(self.0.len() as u64).to_be_bytes());
        h.update(&self.0);
        h.update(&size.to_be_bytes());
        format!("{PARTIAL_PREFIX}{}", hex(&h.finalize().as_bytes()[..16]))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

fn validate(bytes: &[u8]) -> Result<(), PathError> {
    if bytes.is_empty() {
        return Err(PathError::Empty);
    }
    if bytes.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    if bytes.contains(&0) {
        return Err(PathError::Nul);
    }
    if bytes[0] == b'/' {
        return Err(PathError::Absolute);
    }
    for part in bytes.split(|&b| b == b'/') {
        match part {
            b"" => return Err(PathError::EmptyComponent),
            b"." => return Err(PathError::CurrentDir),
            b".." => return Err(PathError::ParentDir),
            p if p.len() > MAX_NAME => return Err(PathError::NameTooLong),
            p if p.starts_with(PARTIAL_PREFIX.as_bytes()) => return Err(PathError::Reserved),
            _ => {}
        }
    }
    Ok(())
}

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

/// A length codec sized for this protocol's messages.
pub fn codec() -> LengthCodec {
    LengthCodec::new(MAX_FRAME)
}

/// What the receiver must read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// One frame.
    Frame,
    /// This many raw bytes of the current file.
    Bytes(u64),
    /// Nothing more: the session is over.
    Nothing,
}

/// What a frame means for the receiver's driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The sender said hello; reply with [`Receiver::hello`].
    Hello,
    /// A directory to create; then call [`Receiver::dir_done`].
    Dir(Header),
    /// A file is announced: look at the disk, then call [`Receiver::offer`] or
    /// [`Receiver::skip`] (or refuse it with [`Receiver::fail`]).
    File(Header),
    /// The sender's digest of the whole file: compare with your own, then call
    /// [`Receiver::verified`] or [`Receiver::fail`].
    Digest(Vec<u8>),
    /// The sender is done: finish up and reply with [`Receiver::end`].
    End,
}

/// A protocol violation by the sender. It ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A frame that does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A message that is valid but not now (e.g. a digest before the bytes).
    #[error("unexpected {got} while {state}")]
    Unexpected {
        /// The message kind received.
        got: &'static str,
        /// What the receiver was waiting for.
        state: &'static str,
    },
    /// A digest of the wrong length for the file's algorithm.
    #[error("{algo} digest of {got} bytes (expected {want})")]
    DigestLength {
        /// The file's algorithm.
        algo: Algo,
        /// The length received.
        got: usize,
        /// The length expected.
        want: usize,
    },
    /// A protocol version this receiver does not speak.
    #[error("unsupported protocol version {0} (this receiver speaks {VERSION})")]
    Version(u8),
}

/// How the connection ended, as far as the protocol can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// After `E`: everything announced was handled.
    Complete,
    /// Between files, without `E`: the files so far are fine, the session is cut.
    BetweenFiles,
    /// In the middle of a file's bytes or before its digest: the partial data is kept
    /// for a resume (it is verified then, whole, before it is used).
    MidFile,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for `V`.
    Hello,
    /// Waiting for `F` or `E`.
    Idle,
    /// Waiting for the driver to answer a directory header.
    DirPending,
    /// Waiting for the driver to answer a file header.
    Deciding(Header),
    /// Receiving raw bytes: `remaining` still to come.
    Data { header: Header, remaining: u64 },
    /// Waiting for `D`.
    Trailer(Header),
    /// Waiting for the driver's verdict on the digest.
    Verifying(Header),
    /// `E` was answered, or the driver failed the session.
    Done,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Hello => "waiting for the hello",
            State::Idle => "waiting for a header",
            State::DirPending | State::Deciding(_) | State::Verifying(_) => "deciding",
            State::Data { .. } => "receiving file bytes",
            State::Trailer(_) => "waiting for the digest",
            State::Done => "finished",
        }
    }
}

/// The receiver's side of a session as a state machine: it checks that the sender's
/// messages come in order and tells the driver what to read next and what to reply.
///
/// Every reply method returns the frame to send; the driver sends it.
#[derive(Debug)]
pub struct Receiver {
    state: State,
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    /// A session that has just been accepted.
    pub fn new() -> Receiver {
        Receiver {
            state: State::Hello,
        }
    }

    /// What to read next.
    pub fn want(&self) -> Want {
        match &self.state {
            State::Data { remaining, .. } => Want::Bytes(*remaining),
            State::Done => Want::Nothing,
            _ => Want::Frame,
        }
    }

    /// The file being received, if any.
    pub fn current(&self) -> Option<&Header> {
        match &self.state {
            State::Deciding(h) | State::Trailer(h) | State::Verifying(h) => Some(h),
            State::Data { header, .. } => Some(header),
            _ => None,
        }
    }

    /// A whole frame arrived.
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Event, ProtocolError> {
        let msg = Message::decode(frame)?;
        let state = std::mem::replace(&mut self.state, State::Done);
        let unexpected = |got| ProtocolError::Unexpected {
            got,
            state: state.name(),
        };
        let (next, event) = match (&state, msg) {
            (State::Hello, Message::Hello { version: VERSION }) => (State::Idle, Event::Hello),
            (State::Hello, Message::Hello { version }) => {
                return Err(ProtocolError::Version(version));
            }
            (State::Idle, Message::Header(h)) => match h.kind {
                Kind::Dir => (State::DirPending, Event::Dir(h)),
                Kind::File => (State::Deciding(h.clone()), Event::File(h)),
            },
            (State::Idle, Message::End) => (State::Idle, Event::End),
            (State::Trailer(h), Message::Digest(d)) => {
                if d.len() != h.algo.digest_len() {
                    return Err(ProtocolError::DigestLength {
                        algo: h.algo,
                        got: d.len(),
                        want: h.algo.digest_len(),
                    });
                }
                (State::Verifying(h.clone()), Event::Digest(d))
            }
            (_, msg) => return Err(unexpected(kind_name(&msg))),
        };
        self.state = next;
        Ok(event)
    }

    /// `n` raw bytes of the current file arrived (and were written). The driver must not
    /// read more than [`Want::Bytes`] says.
    pub fn on_bytes(&mut self, n: u64) {
        if let State::Data { header, remaining } = &mut self.state {
            *remaining = remaining.saturating_sub(n);
            if *remaining == 0 {
                let header = header.clone();
                self.state = State::Trailer(header);
            }
        }
    }

    /// The reply to the hello.
    pub fn hello(&mut self) -> Message {
        Message::Hello { version: VERSION }
    }

    /// The directory of the last header exists now.
    pub fn dir_done(&mut self) -> Message {
        if self.state == State::DirPending {
            self.state = State::Idle;
        }
        Message::Ack(Vec::new())
    }

    /// The receiver has the file's bytes before `offset` (`offset <= size`); the sender
    /// sends the rest.
    pub fn offer(&mut self, offset: u64, origin: Origin) -> Message {
        if let State::Deciding(h) = &self.state {
            let offset = offset.min(h.size);
            let remaining = h.size - offset;
            self.state = if remaining == 0 {
                State::Trailer(h.clone())
            } else {
                State::Data {
                    header: h.clone(),
                    remaining,
                }
            };
            return Message::Offer { offset, origin };
        }
        Message::Error("internal: offer outside a file".into())
    }

    /// The file is not wanted; the sender goes on with the next.
    pub fn skip(&mut self, reason: impl Into<String>) -> Message {
        if matches!(self.state, State::Deciding(_)) {
            self.state = State::Idle;
        }
        Message::Skip {
            reason: reason.into(),
        }
    }

    /// The digests matched and the file is in place.
    pub fn verified(&mut self, digest: Vec<u8>) -> Message {
        if matches!(self.state, State::Verifying(_)) {
            self.state = State::Idle;
        }
        Message::Ack(digest)
    }

    /// The session is over: every directory and file was handled.
    pub fn end(&mut self) -> Message {
        self.state = State::Done;
        Message::End
    }

    /// Refuses or fails the current step; the driver sends the message and closes.
    pub fn fail(&mut self, reason: impl Into<String>) -> Message {
        self.state = State::Done;
        Message::Error(reason.into())
    }

    /// The sender closed (or the connection broke) now: what that means.
    pub fn on_eof(&self) -> Close {
        match self.state {
            State::Done => Close::Complete,
            State::Hello | State::Idle | State::DirPending => Close::BetweenFiles,
            _ => Close::MidFile,
        }
    }
}

fn kind_name(msg: &Message) -> &'static str {
    match msg {
        Message::Hello { .. } => "hello (V)",
        Message::Header(_) => "header (F)",
        Message::Offer { .. } => "offer (O)",
        Message::Skip { .. } => "skip (S)",
        Message::Digest(_) => "digest (D)",
        Message::Ack(_) => "ack (A)",
        Message::End => "end (E)",
        Message::Error(_) => "error (!)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    fn file(p: &str, size: u64) -> Header {
        Header {
            kind: Kind::File,
            algo: Algo::Blake3,
            mode: 0o644,
            size,
            path: path(p),
        }
    }

    /// The payload of a message's frame (what `on_frame` gets).
    fn payload(msg: &Message) -> Vec<u8> {
        msg.to_frame()[4..].to_vec()
    }

    #[test]
    fn unsafe_paths_are_refused_with_their_reason() {
        let cases: &[(&[u8], PathError)] = &[
            (b"", PathError::Empty),
            (b"/etc/passwd", PathError::Absolute),
            (b"/", PathError::Absolute),
            (b"..", PathError::ParentDir),
            (b"../x", PathError::ParentDir),
            (b"a/../../x", PathError::ParentDir),
            (b"a/..", PathError::ParentDir),
            (b".", PathError::CurrentDir),
            (b"./a", PathError::CurrentDir),
            (b"a/./b", PathError::CurrentDir),
            (b"a//b", PathError::EmptyComponent),
            (b"a/", PathError::EmptyComponent),
            (b"a/b/", PathError::EmptyComponent),
            (b"a\0b", PathError::Nul),
            (b"a/\0", PathError::Nul),
            (b".sockit-partial-00", PathError::Reserved),
            (b"d/.sockit-partial-x", PathError::Reserved),
        ];
        for (raw, want) in cases {
            assert_eq!(
                RelPath::new(*raw).unwrap_err(),
                *want,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        assert_eq!(
            RelPath::new(vec![b'a'; 256]).unwrap_err(),
            PathError::NameTooLong
        );
        let long: Vec<u8> = std::iter::repeat_n(b"abcdefg/".as_slice(), 600)
            .flatten()
            .copied()
            .chain(*b"x")
            .collect();
        assert_eq!(RelPath::new(long).unwrap_err(), PathError::TooLong);
    }

    #[test]
    fn ordinary_relative_paths_are_accepted() {
        for ok in [
            "a",
            "a/b/c.txt",
            "...",
            "..a",
            "a..",
            ".hidden",
            "sp ace/ü",
            "back\\slash",
        ] {
            let p = path(ok);
            assert_eq!(p.as_bytes(), ok.as_bytes());
        }
        let non_utf8 = RelPath::new(vec![0xff, b'/', 0xfe]).unwrap();
        assert_eq!(non_utf8.components().count(), 2);
        let abc = path("a/b/c");
        let (dirs, last) = abc.split_last();
        assert_eq!(dirs, vec![b"a".as_slice(), b"b"]);
        assert_eq!(last, b"c");
        assert_eq!(path("a").join(b"b").unwrap(), path("a/b"));
        assert!(path("a").join(b"..").is_err());
    }

    #[test]
    fn partial_names_depend_on_path_and_size() {
        let p = path("dir/file");
        assert_eq!(p.partial_name(10), p.partial_name(10));
        assert_ne!(p.partial_name(10), p.partial_name(11));
        assert_ne!(p.partial_name(10), path("dir/filf").partial_name(10));
        assert!(p.partial_name(10).starts_with(PARTIAL_PREFIX));
        // A partial name is never a name a sender may use.
        assert_eq!(
            RelPath::new(p.partial_name(10)).unwrap_err(),
            PathError::Reserved
        );
    }

    #[test]
    fn every_message_round_trips() {
        let msgs = [
            Message::Hello { version: VERSION },
            Message::Header(file("a/b", 123)),
            Message::Header(Header {
                kind: Kind::Dir,
                algo: Algo::Md5,
                mode: 0o755,
                size: 0,
                path: path("d"),
            }),
            Message::Offer {
                offset: 1 << 40,
                origin: Origin::Partial,
            },
            Message::Skip {
                reason: "exists".into(),
            },
            Message::Digest(vec![7; 32]),
            Message::Ack(vec![]),
            Message::End,
            Message::Error("no".into()),
        ];
        let mut wire = BytesMut::new();
        for m in &msgs {
            m.encode(&mut wire);
        }
        let mut codec = codec();
        for m in &msgs {
            let frame = codec.decode_frame(&mut wire).unwrap().unwrap();
            assert_eq!(&Message::decode(&frame).unwrap(), m);
        }
        assert!(wire.is_empty());
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert_eq!(Message::decode(b""), Err(DecodeError::Empty));
        assert_eq!(Message::decode(b"Z"), Err(DecodeError::UnknownKind(b'Z')));
        assert_eq!(Message::decode(b"Vother\x01"), Err(DecodeError::BadHello));
        assert_eq!(
            Message::decode(b"F\0\x01"),
            Err(DecodeError::Malformed('F'))
        );
        assert_eq!(Message::decode(b"O\0"), Err(DecodeError::Malformed('O')));
        let mut bad_algo = payload(&Message::Header(file("a", 1)));
        bad_algo[2] = 9;
        assert_eq!(Message::decode(&bad_algo), Err(DecodeError::UnknownAlgo(9)));
        // A raw header with an unsafe path (the encoder cannot produce one).
        let mut raw = payload(&Message::Header(file("a", 1)));
        raw.truncate(15);
        raw.extend_from_slice(b"../escape");
        assert!(matches!(
            Message::decode(&raw),
            Err(DecodeError::Path {
                reason: PathError::ParentDir,
                ..
            })
        ));
        // A directory with a size.
        let mut dir = payload(&Message::Header(file("a", 5)));
        dir[1] = 1;
        assert_eq!(Message::decode(&dir), Err(DecodeError::Malformed('F')));
    }

    #[test]
    fn a_whole_session_in_order() {
        let mut r = Receiver::new();
        assert_eq!(r.want(), Want::Frame);
        assert_eq!(r.on_eof(), Close::BetweenFiles);
        assert_eq!(
            r.on_frame(&payload(&Message::Hello { version: VERSION })),
            Ok(Event::Hello)
        );
        assert_eq!(r.hello(), Message::Hello { version: VERSION });

        let dir = Header {
            kind: Kind::Dir,
            algo: Algo::Blake3,
            mode: 0o700,
            size: 0,
            path: path("d"),
        };
        assert_eq!(
            r.on_frame(&payload(&Message::Header(dir.clone()))),
            Ok(Event::Dir(dir))
        );
        assert_eq!(r.dir_done(), Message::Ack(vec![]));

        let h = file("d/f", 10);
        assert_eq!(
            r.on_frame(&payload(&Message::Header(h.clone()))),
            Ok(Event::File(h.clone()))
        );
        assert_eq!(
            r.offer(4, Origin::Partial),
            Message::Offer {
                offset: 4,
                origin: Origin::Partial
            }
        );
        assert_eq!(r.want(), Want::Bytes(6));
        assert_eq!(r.on_eof(), Close::MidFile);
        r.on_bytes(5);
        assert_eq!(r.want(), Want::Bytes(1));
        r.on_bytes(1);
        assert_eq!(r.want(), Want::Frame);
        assert_eq!(r.on_eof(), Close::MidFile);
        assert_eq!(
            r.on_frame(&payload(&Message::Digest(vec![1; 32]))),
            Ok(Event::Digest(vec![1; 32]))
        );
        assert_eq!(r.verified(vec![1; 32]), Message::Ack(vec![1; 32]));

        // An empty file: no bytes, straight to the digest.
        let empty = file("e", 0);
        r.on_frame(&payload(&Message::Header(empty))).unwrap();
        r.offer(0, Origin::Fresh);
        assert_eq!(r.want(), Want::Frame);
        r.on_frame(&payload(&Message::Digest(vec![0; 32]))).unwrap();
        r.verified(vec![0; 32]);

        // A skipped file.
        r.on_frame(&payload(&Message::Header(file("s", 3))))
            .unwrap();
        assert!(matches!(r.skip("exists"), Message::Skip { .. }));
        assert_eq!(r.want(), Want::Frame);

        assert_eq!(r.on_frame(&payload(&Message::End)), Ok(Event::End));
        assert_eq!(r.end(), Message::End);
        assert_eq!(r.want(), Want::Nothing);
        assert_eq!(r.on_eof(), Close::Complete);
    }

    #[test]
    fn messages_out_of_order_are_protocol_errors() {
        let hello = payload(&Message::Hello { version: VERSION });
        let header = payload(&Message::Header(file("f", 3)));
        let digest = payload(&Message::Digest(vec![0; 32]));

        // A header before the hello.
        let mut r = Receiver::new();
        assert!(matches!(
            r.on_frame(&header),
            Err(ProtocolError::Unexpected { .. })
        ));

        // Another version.
        let mut r = Receiver::new();
        assert_eq!(
            r.on_frame(&payload(&Message::Hello { version: 9 })),
            Err(ProtocolError::Version(9))
        );

        // A digest with no file, and a digest before the bytes.
        let mut r = Receiver::new();
        r.on_frame(&hello).unwrap();
        assert!(r.on_frame(&digest).is_err());
        let mut r = Receiver::new();
        r.on_frame(&hello).unwrap();
        r.on_frame(&header).unwrap();
        r.offer(0, Origin::Fresh);
        assert_eq!(r.want(), Want::Bytes(3));

        // A digest of the wrong length.
        let mut r = Receiver::new();
        r.on_frame(&hello).unwrap();
        r.on_frame(&header).unwrap();
        r.offer(3, Origin::Existing);
        assert!(matches!(
            r.on_frame(&payload(&Message::Digest(vec![0; 16]))),
            Err(ProtocolError::DigestLength { got: 16, .. })
        ));

        // Receiver-side messages coming from the sender.
        let mut r = Receiver::new();
        r.on_frame(&hello).unwrap();
        assert!(r.on_frame(&payload(&Message::Ack(vec![]))).is_err());
        assert!(r.on_frame(&hello).is_err(), "second hello");
    }

    #[test]
    fn an_offer_never_exceeds_the_size() {
        let mut r = Receiver::new();
        r.on_frame(&payload(&Message::Hello { version: VERSION }))
            .unwrap();
        r.on_frame(&payload(&Message::Header(file("f", 3))))
            .unwrap();
        assert_eq!(
            r.offer(10, Origin::Partial),
            Message::Offer {
                offset: 3,
                origin: Origin::Partial
            }
        );
        assert_eq!(r.want(), Want::Frame);
    }

    #[test]
    fn sum_lines_match_coreutils() {
        let d = [0xab, 0x01];
        assert_eq!(sum_line(&d, &path("a/b.txt")), b"ab01  a/b.txt\n");
        assert_eq!(sum_line(&d, &path("new\nline")), b"\\ab01  new\\nline\n");
        assert_eq!(
            sum_line(&d, &path("back\\slash")),
            b"\\ab01  back\\\\slash\n"
        );
    }

    #[test]
    fn hashers_match_known_digests() {
        let cases = [
            (Algo::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (
                Algo::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                Algo::Blake3,
                "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
            ),
        ];
        for (algo, want) in cases {
            let mut h = algo.hasher();
            h.update(b"a");
            h.update(b"bc");
            let d = h.finalize();
            assert_eq!(d.len(), algo.digest_len());
            assert_eq!(hex(&d), want, "{algo}");
        }
    }
}
