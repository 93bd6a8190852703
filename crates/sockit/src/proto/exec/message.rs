//! The exec messages: each one frame whose first byte is its [`Kind`] and the rest its
//! body (raw bytes, or a small JSON object for `R` and `X`), decoded strictly: a payload
//! that is not a valid message is a [`ProtocolError`], never a panic.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};

use crate::frame::{FrameError, HEADER_LEN, LengthCodec};

/// Bytes in a challenge.
pub const CHALLENGE_LEN: usize = 32;

/// Bytes in an HMAC-SHA256 response.
pub const MAC_LEN: usize = 32;

/// The largest output chunk a server puts in one `O` or `E` frame.
pub const MAX_CHUNK: usize = 64 * 1024;

/// The only frame a client may send before it has authenticated: `A` and its MAC. A
/// stranger costs the server this many bytes of frame, not the 16 MiB a command may take.
pub const AUTH_FRAME_LEN: usize = 1 + MAC_LEN;

/// Frame header plus kind byte: what precedes a body on the wire.
pub const PREFIX_LEN: usize = HEADER_LEN + 1;

/// The first byte of a payload: which message it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// `C`: server → client challenge.
    Challenge = b'C',
    /// `A`: client → server HMAC of the challenge.
    Auth = b'A',
    /// `R`: client → server command to run.
    Run = b'R',
    /// `I`: client → server stdin bytes; empty means end of input.
    Stdin = b'I',
    /// `O`: server → client stdout bytes.
    Stdout = b'O',
    /// `E`: server → client stderr bytes.
    Stderr = b'E',
    /// `X`: server → client exit status.
    Exit = b'X',
    /// `!`: server → client refusal or error, followed by close.
    Refuse = b'!',
}

impl Kind {
    /// The kind for a first byte, if it is one.
    pub fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            b'C' => Kind::Challenge,
            b'A' => Kind::Auth,
            b'R' => Kind::Run,
            b'I' => Kind::Stdin,
            b'O' => Kind::Stdout,
            b'E' => Kind::Stderr,
            b'X' => Kind::Exit,
            b'!' => Kind::Refuse,
            _ => return None,
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", *self as u8 as char)
    }
}

/// How a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// A signal with this number killed it.
    Signal(i32),
}

impl ExitStatus {
    /// The status a shell would report: the code itself, or 128 + N for signal N.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(n) => 128 + n,
        }
    }
}

/// One exec message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The server's random challenge.
    Challenge([u8; CHALLENGE_LEN]),
    /// The client's HMAC-SHA256(token, challenge).
    Auth([u8; MAC_LEN]),
    /// The command line to run; `argv[0]` names the program.
    Run {
        /// Program and arguments, never interpreted by a shell.
        argv: Vec<String>,
    },
    /// Bytes for the program's stdin; empty closes it.
    Stdin(Bytes),
    /// Bytes the program wrote to stdout.
    Stdout(Bytes),
    /// Bytes the program wrote to stderr.
    Stderr(Bytes),
    /// The program ended.
    Exit(ExitStatus),
    /// The server refuses or gives up, and says why.
    Refuse(String),
}

/// A payload that is not a well-formed exec message, or one that came out of turn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A frame with no kind byte.
    #[error("empty message")]
    Empty,
    /// A first byte that is no known kind.
    #[error("unknown message kind 0x{0:02x}")]
    UnknownKind(u8),
    /// A challenge or MAC of the wrong size.
    #[error("{kind} message of {len} bytes (expected {want})")]
    BadLength {
        /// The message kind.
        kind: Kind,
        /// Body bytes received.
        len: usize,
        /// Body bytes required.
        want: usize,
    },
    /// A JSON body that does not parse or lacks its fields.
    #[error("{kind} message: {reason}")]
    BadBody {
        /// The message kind.
        kind: Kind,
        /// What is wrong, in words.
        reason: String,
    },
    /// A valid message at the wrong moment (or from the wrong side).
    #[error("unexpected {kind} message {state}")]
    OutOfOrder {
        /// The message kind.
        kind: Kind,
        /// Where the session was, in words ("before authentication", ...).
        state: &'static str,
    },
}

impl Message {
    /// This message's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Challenge(_) => Kind::Challenge,
            Message::Auth(_) => Kind::Auth,
            Message::Run { .. } => Kind::Run,
            Message::Stdin(_) => Kind::Stdin,
            Message::Stdout(_) => Kind::Stdout,
            Message::Stderr(_) => Kind::Stderr,
            Message::Exit(_) => Kind::Exit,
            Message::Refuse(_) => Kind::Refuse,
        }
    }

    /// Parses one frame payload. Byte bodies are slices of `payload`, not copies.
    pub fn decode(mut payload: Bytes) -> Result<Message, ProtocolError> {
        let Some(&first) = payload.first() else {
            return Err(ProtocolError::Empty);
        };
        let kind = Kind::from_byte(first).ok_or(ProtocolError::UnknownKind(first))?;
        let body = payload.split_off(1);
        let fixed = |want: usize| -> Result<[u8; 32], ProtocolError> {
            <[u8; 32]>::try_from(&body[..]).map_err(|_| ProtocolError::BadLength {
                kind,
                len: body.len(),
                want,
            })
        };
        Ok(match kind {
            Kind::Challenge => Message::Challenge(fixed(CHALLENGE_LEN)?),
            Kind::Auth => Message::Auth(fixed(MAC_LEN)?),
            Kind::Run => Message::Run {
                argv: parse_argv(&body)?,
            },
            Kind::Stdin => Message::Stdin(body),
            Kind::Stdout => Message::Stdout(body),
            Kind::Stderr => Message::Stderr(body),
            Kind::Exit => Message::Exit(parse_exit(&body)?),
            Kind::Refuse => Message::Refuse(String::from_utf8_lossy(&body).into_owned()),
        })
    }

    /// Appends this message as one whole frame (length header, kind, body) to `dst`.
    /// Fails only for a body over the frame limit (16 MiB).
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), FrameError> {
        let json;
        let body: &[u8] = match self {
            Message::Challenge(b) | Message::Auth(b) => b,
            Message::Run { argv } => {
                json = json!({ "argv": argv }).to_string();
                json.as_bytes()
            }
            Message::Stdin(b) | Message::Stdout(b) | Message::Stderr(b) => b,
            Message::Exit(ExitStatus::Code(c)) => {
                json = json!({ "code": c }).to_string();
                json.as_bytes()
            }
            Message::Exit(ExitStatus::Signal(n)) => {
                json = json!({ "signal": n }).to_string();
                json.as_bytes()
            }
            Message::Refuse(reason) => reason.as_bytes(),
        };
        let header = prefix(self.kind(), body.len())?;
        dst.reserve(PREFIX_LEN + body.len());
        dst.put_slice(&header);
        dst.put_slice(body);
        Ok(())
    }

    /// This message as one whole frame.
    pub fn to_frame(&self) -> Result<Bytes, FrameError> {
        let mut buf = BytesMut::new();
        self.encode(&mut buf)?;
        Ok(buf.freeze())
    }
}

/// Frame header and kind byte for a body of `body_len` bytes, for drivers that read a
/// body straight into place after it (program output, without copying it).
pub fn prefix(kind: Kind, body_len: usize) -> Result<[u8; PREFIX_LEN], FrameError> {
    let len = body_len.checked_add(1).ok_or(FrameError::TooLong {
        len: u64::MAX,
        max: LengthCodec::default().max_frame(),
    })?;
    let h = LengthCodec::default().header(len)?;
    Ok([h[0], h[1], h[2], h[3], kind as u8])
}

fn json_body(kind: Kind, body: &[u8]) -> Result<serde_json::Map<String, Value>, ProtocolError> {
    let bad = |reason: String| ProtocolError::BadBody { kind, reason };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad("expected a JSON object".into())),
        Err(e) => Err(bad(format!("bad JSON: {e}"))),
    }
}

fn parse_argv(body: &[u8]) -> Result<Vec<String>, ProtocolError> {
    let bad = |reason: &str| ProtocolError::BadBody {
        kind: Kind::Run,
        reason: reason.into(),
    };
    let map = json_body(Kind::Run, body)?;
    let Some(Value::Array(items)) = map.get("argv") else {
        return Err(bad("expected {\"argv\": [\"prog\", ...]}"));
    };
    let argv = items
        .iter()
        .map(|v| match v {
            // A NUL cannot be passed to execve: refuse it here rather than at spawn.
            Value::String(s) if !s.contains('\0') => Ok(s.clone()),
            Value::String(_) => Err(bad("argv strings must not contain NUL")),
            _ => Err(bad("argv must be an array of strings")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if argv.first().is_none_or(String::is_empty) {
        return Err(bad("argv must name a program"));
    }
    Ok(argv)
}

fn parse_exit(body: &[u8]) -> Result<ExitStatus, ProtocolError> {
    let map = json_body(Kind::Exit, body)?;
    let int = |key: &str| {
        map.get(key)
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
    };
    // Only what a Linux process can end with: an exit code is one byte, a signal is
    // 1..=64. Anything else would reach the user as a made-up status (signal -1 as 127,
    // "command not found"), so it is the server breaking the protocol.
    match (int("code"), int("signal")) {
        (Some(c), None) if (0..=255).contains(&c) => Ok(ExitStatus::Code(c)),
        (None, Some(n)) if (1..=MAX_SIGNAL).contains(&n) => Ok(ExitStatus::Signal(n)),
        (Some(_), None) | (None, Some(_)) => Err(ProtocolError::BadBody {
            kind: Kind::Exit,
            reason: format!("exit code 0..=255 or signal 1..={MAX_SIGNAL} expected"),
        }),
        _ => Err(ProtocolError::BadBody {
            kind: Kind::Exit,
            reason: "expected {\"code\": N} or {\"signal\": N}".into(),
        }),
    }
}

/// The highest signal number on Linux (`SIGRTMAX`).
pub const MAX_SIGNAL: i32 = 64;
