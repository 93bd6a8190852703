//! The exec protocol core (SPEC §5), sans-IO: messages to and from frame payloads, the
//! HMAC-SHA256 challenge–response, the allow-list of programs, and the server-side
//! session state machine. No sockets, no processes, no clock, no randomness: the driver in
//! [`crate::exec`] brings those and this module decides.
//!
//! # Wire
//!
//! Every message is one length-prefixed frame ([`crate::frame`]) whose first byte is its
//! [`Kind`] and the rest its body:
//!
//! ```text
//! server                                   client
//!   C + 32 random bytes           ------>            challenge, at connect
//!                                 <------  A + HMAC-SHA256(token, challenge)
//!                                 <------  R + {"argv": ["prog", "arg", ...]}
//!                                 <------  I + stdin bytes ... then I + nothing (EOF)
//!   O + stdout bytes / E + stderr bytes ->           as the program produces them
//!   X + {"code": N} or {"signal": N} -->             then close
//!   ! + UTF-8 reason              ------>            refusal or error, then close
//! ```
//!
//! A connection carries one command. The client keeps its sending side open until `X` (or
//! `!`): end of stream from the client before that means it left, and the program is killed.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::frame::{FrameError, HEADER_LEN, LengthCodec};

/// Bytes in a challenge.
pub const CHALLENGE_LEN: usize = 32;

/// Bytes in an HMAC-SHA256 response.
pub const MAC_LEN: usize = 32;

/// The largest output chunk a server puts in one `O` or `E` frame.
pub const MAX_CHUNK: usize = 64 * 1024;

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

/// The shared secret. Its bytes are the HMAC key, exactly as stored in the token file.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token from its bytes; `None` for an empty one (no secret at all).
    pub fn new(bytes: &[u8]) -> Option<Token> {
        (!bytes.is_empty()).then(|| Token(bytes.into()))
    }

    fn mac(&self, challenge: &[u8; CHALLENGE_LEN]) -> Hmac<Sha256> {
        // HMAC takes keys of any length (long ones are hashed first): this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        mac.update(challenge);
        mac
    }

    /// The client's answer to `challenge`: HMAC-SHA256(token, challenge).
    pub fn respond(&self, challenge: &[u8; CHALLENGE_LEN]) -> [u8; MAC_LEN] {
        self.mac(challenge).finalize().into_bytes().into()
    }

    /// Whether `response` answers `challenge`, compared in constant time.
    pub fn verify(&self, challenge: &[u8; CHALLENGE_LEN], response: &[u8]) -> bool {
        self.mac(challenge).verify_slice(response).is_ok()
    }
}

/// The programs a server may run, resolved once, when it starts: by name on the server's
/// PATH, or by absolute path. A client names one the way it was permitted (or by the
/// absolute path a name resolved to); the server then runs that file, with no shell and no
/// PATH search of its own per request.
#[derive(Debug, Clone, Default)]
pub struct Permits {
    programs: Vec<Permit>,
}

#[derive(Debug, Clone)]
struct Permit {
    /// The bare name it was permitted by, if any.
    name: Option<String>,
    /// The file that runs.
    path: PathBuf,
}

/// A `--permit` entry that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermitError {
    /// A name found in no absolute PATH directory as an executable file.
    #[error("program {0:?} not found on PATH")]
    NotFound(String),
    /// An absolute path that is not an executable file.
    #[error("{0:?} is not an executable file")]
    NotExecutable(String),
    /// A relative path (`./x`, `bin/x`): it would depend on the server's directory.
    #[error("{0:?} must be a bare program name or an absolute path")]
    Relative(String),
}

impl Permits {
    /// Resolves `specs` against `path_var` (the value of `PATH`), checking the real files.
    pub fn resolve(specs: &[String], path_var: Option<&OsStr>) -> Result<Permits, PermitError> {
        Self::resolve_with(specs, path_var, is_executable_file)
    }

    /// [`Permits::resolve`] with the file check given, so it is testable without files.
    /// Relative PATH entries (`.`, empty) are skipped: they would make the server's working
    /// directory decide what runs.
    pub fn resolve_with(
        specs: &[String],
        path_var: Option<&OsStr>,
        is_executable: impl Fn(&Path) -> bool,
    ) -> Result<Permits, PermitError> {
        let mut programs = Vec::with_capacity(specs.len());
        for spec in specs {
            let permit = if spec.starts_with('/') {
                if !is_executable(Path::new(spec)) {
                    return Err(PermitError::NotExecutable(spec.clone()));
                }
                Permit {
                    name: None,
                    path: PathBuf::from(spec),
                }
            } else if spec.is_empty() || spec.contains('/') {
                return Err(PermitError::Relative(spec.clone()));
            } else {
                let path = path_var
                    .into_iter()
                    .flat_map(std::env::split_paths)
                    .filter(|dir| dir.is_absolute())
                    .map(|dir| dir.join(spec))
                    .find(|candidate| is_executable(candidate))
                    .ok_or_else(|| PermitError::NotFound(spec.clone()))?;
                Permit {
                    name: Some(spec.clone()),
                    path,
                }
            };
            programs.push(permit);
        }
        Ok(Permits { programs })
    }

    /// The file to run for a requested `argv[0]`, if it is permitted.
    pub fn lookup(&self, requested: &str) -> Option<&Path> {
        let found = if requested.starts_with('/') {
            let requested = Path::new(requested);
            self.programs.iter().find(|p| p.path == requested)
        } else {
            self.programs
                .iter()
                .find(|p| p.name.as_deref() == Some(requested))
        };
        found.map(|p| p.path.as_path())
    }

    /// The permitted programs as `name -> path` lines, for logs.
    pub fn describe(&self) -> Vec<String> {
        self.programs
            .iter()
            .map(|p| match &p.name {
                Some(name) => format!("{name} ({})", p.path.display()),
                None => p.path.display().to_string(),
            })
            .collect()
    }
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a server enforces, shared by all its sessions.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The shared secret.
    pub token: Token,
    /// The programs that may run.
    pub permits: Permits,
    /// Bytes of stdout and stderr together a program may produce.
    pub max_output: u64,
}

/// Where a server-side session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Challenge sent; waiting for `A`.
    AwaitAuth,
    /// Authenticated; waiting for `R`.
    AwaitRun,
    /// The program runs; `I` frames feed its stdin until an empty one.
    Running {
        /// Whether the client may still send stdin.
        stdin_open: bool,
    },
    /// Refused or finished: nothing more is accepted.
    Done,
}

/// What the driver must do after a client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing (authentication passed).
    None,
    /// Start `program` with `argv` (`argv[0]` as given by the client).
    Spawn {
        /// The permitted file to execute.
        program: PathBuf,
        /// The whole command line.
        argv: Vec<String>,
    },
    /// Write these bytes to the program's stdin.
    Stdin(Bytes),
    /// Close the program's stdin.
    CloseStdin,
}

/// Why a session ends early; sent to the client as `!` + the text, then the connection closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ProtocolError> for Refusal {
    fn from(e: ProtocolError) -> Refusal {
        Refusal(format!("protocol error: {e}"))
    }
}

impl From<Refusal> for Message {
    fn from(r: Refusal) -> Message {
        Message::Refuse(r.0)
    }
}

/// How much of a chunk of output fits under the output limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// All of it.
    Within,
    /// Only the first `keep` bytes; then the program must be stopped with this refusal.
    Exceeded {
        /// Bytes of the chunk still to send.
        keep: usize,
    },
}

/// One connection's state machine on the server: await auth → await run → running → done.
#[derive(Debug)]
pub struct Session {
    policy: Arc<Policy>,
    challenge: [u8; CHALLENGE_LEN],
    state: State,
    output: u64,
}

impl Session {
    /// A session that will challenge the client with `challenge` (32 random bytes).
    pub fn new(policy: Arc<Policy>, challenge: [u8; CHALLENGE_LEN]) -> Session {
        Session {
            policy,
            challenge,
            state: State::AwaitAuth,
            output: 0,
        }
    }

    /// The first message to send.
    pub fn greeting(&self) -> Message {
        Message::Challenge(self.challenge)
    }

    /// Where the session is.
    pub fn state(&self) -> State {
        self.state
    }

    /// Takes one message from the client. An `Err` ends the session: send it, then close.
    pub fn on_message(&mut self, msg: Message) -> Result<Action, Refusal> {
        let result = self.step(msg);
        if result.is_err() {
            self.state = State::Done;
        }
        result
    }

    fn step(&mut self, msg: Message) -> Result<Action, Refusal> {
        let out_of_order = |kind, state| -> Result<Action, Refusal> {
            Err(ProtocolError::OutOfOrder { kind, state }.into())
        };
        match (self.state, msg) {
            (State::AwaitAuth, Message::Auth(mac)) => {
                if !self.policy.token.verify(&self.challenge, &mac) {
                    return Err(Refusal("authentication failed: wrong token".into()));
                }
                self.state = State::AwaitRun;
                Ok(Action::None)
            }
            (State::AwaitRun, Message::Run { argv }) => {
                let Some(program) = self.policy.permits.lookup(&argv[0]) else {
                    return Err(Refusal(format!("program not allowed: {}", argv[0])));
                };
                let program = program.to_path_buf();
                self.state = State::Running { stdin_open: true };
                Ok(Action::Spawn { program, argv })
            }
            (State::Running { stdin_open: true }, Message::Stdin(data)) => {
                if data.is_empty() {
                    self.state = State::Running { stdin_open: false };
                    Ok(Action::CloseStdin)
                } else {
                    Ok(Action::Stdin(data))
                }
            }
            (State::AwaitAuth, m) => out_of_order(m.kind(), "before authentication"),
            (State::AwaitRun, m) => out_of_order(m.kind(), "before the command"),
            (State::Running { stdin_open: true }, m) => out_of_order(m.kind(), "while running"),
            (State::Running { stdin_open: false }, m) => {
                out_of_order(m.kind(), "after the end of stdin")
            }
            (State::Done, m) => out_of_order(m.kind(), "after the end"),
        }
    }

    /// Counts `len` bytes of output against the limit. On [`Budget::Exceeded`] the session
    /// is over: send the kept bytes, then [`Session::over_limit`].
    pub fn on_output(&mut self, len: usize) -> Budget {
        let left = self.policy.max_output.saturating_sub(self.output);
        if len as u64 <= left {
            self.output += len as u64;
            Budget::Within
        } else {
            self.output = self.policy.max_output;
            self.state = State::Done;
            Budget::Exceeded {
                keep: left as usize,
            }
        }
    }

    /// The refusal sent when the output limit was reached.
    pub fn over_limit(&self) -> Refusal {
        Refusal(format!(
            "output limit of {} bytes exceeded; program killed",
            self.policy.max_output
        ))
    }

    /// The program ended: the last message to send.
    pub fn on_exit(&mut self, status: ExitStatus) -> Message {
        self.state = State::Done;
        Message::Exit(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(msg: &Message) -> Message {
        let mut wire = BytesMut::new();
        msg.encode(&mut wire).unwrap();
        let payload = LengthCodec::default()
            .decode_frame(&mut wire)
            .unwrap()
            .unwrap();
        assert!(wire.is_empty(), "one message is one frame");
        Message::decode(payload.freeze()).unwrap()
    }

    #[test]
    fn every_kind_round_trips() {
        let msgs = [
            Message::Challenge([7; 32]),
            Message::Auth([9; 32]),
            Message::Run {
                argv: vec!["sh".into(), "-c".into(), "echo \"hi\" 'x' \\ é".into()],
            },
            Message::Stdin(Bytes::from_static(b"in\0put")),
            Message::Stdin(Bytes::new()),
            Message::Stdout(Bytes::from_static(b"\xff\x00out")),
            Message::Stderr(Bytes::from_static(b"err")),
            Message::Exit(ExitStatus::Code(3)),
            Message::Exit(ExitStatus::Signal(9)),
            Message::Refuse("not allowed: ✗".into()),
        ];
        for msg in &msgs {
            assert_eq!(&roundtrip(msg), msg);
        }
    }

    #[test]
    fn wire_bytes_match_the_spec() {
        let mut wire = BytesMut::new();
        Message::Run {
            argv: vec!["echo".into(), "hi".into()],
        }
        .encode(&mut wire)
        .unwrap();
        let body = br#"{"argv":["echo","hi"]}"#;
        assert_eq!(&wire[..4], &(1 + body.len() as u32).to_be_bytes());
        assert_eq!(wire[4], b'R');
        assert_eq!(&wire[5..], body);

        let exit = |s: &str| Message::decode(Bytes::from(format!("X{s}")));
        assert_eq!(
            exit(r#"{"code": 0}"#),
            Ok(Message::Exit(ExitStatus::Code(0)))
        );
        assert_eq!(
            exit(r#" {"signal":15} "#),
            Ok(Message::Exit(ExitStatus::Signal(15)))
        );
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let bad = |b: &'static [u8]| Message::decode(Bytes::from_static(b)).unwrap_err();
        assert_eq!(bad(b""), ProtocolError::Empty);
        assert_eq!(bad(b"Z"), ProtocolError::UnknownKind(b'Z'));
        assert!(matches!(
            bad(b"Ashort"),
            ProtocolError::BadLength { len: 5, .. }
        ));
        assert!(matches!(bad(&[b'C'; 34]), ProtocolError::BadLength { .. }));
        for body in [
            &b"R{"[..],
            b"R[]",
            b"R{}",
            b"R{\"argv\": []}",
            b"R{\"argv\": [\"\"]}",
            b"R{\"argv\": [1]}",
            b"R{\"argv\": \"ls\"}",
            b"R{\"argv\": [\"a\\u0000b\"]}",
            b"X{}",
            b"X{\"code\": 1, \"signal\": 2}",
            b"X{\"code\": 1e99}",
            b"X{\"code\": 4294967296}",
            b"X{\"code\": -1}",
            b"X{\"code\": 256}",
            b"X{\"signal\": -1}",
            b"X{\"signal\": 0}",
            b"X{\"signal\": 65}",
            b"X\xff",
        ] {
            assert!(
                matches!(bad(body), ProtocolError::BadBody { .. }),
                "{body:?} gave {:?}",
                bad(body)
            );
        }
    }

    #[test]
    fn output_prefix_is_a_frame_header_and_kind() {
        let p = prefix(Kind::Stdout, 10).unwrap();
        assert_eq!(p, [0, 0, 0, 11, b'O']);
        assert!(prefix(Kind::Stdout, 16 << 20).is_err());
        assert!(prefix(Kind::Stdout, usize::MAX).is_err());
    }

    #[test]
    fn responses_are_hmac_sha256_and_only_the_exact_one_verifies() {
        // The response must equal HMAC-SHA256 as any other implementation computes it.
        let token = Token::new(b"Jefe").unwrap();
        let challenge = [0x61; 32]; // 32 × 'a'
        let mac = token.respond(&challenge);
        // python3 -c "import hmac,hashlib;print(hmac.new(b'Jefe',b'a'*32,hashlib.sha256).hexdigest())"
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "364f5c3a7b63017de4919a0b5a5aef5ada18770895ce2aec3bfdfecc8b06bf7b"
        );
        assert!(token.verify(&challenge, &mac));
        let mut wrong = mac;
        wrong[31] ^= 1;
        assert!(!token.verify(&challenge, &wrong));
        assert!(!token.verify(&challenge, &mac[..31]));
        assert!(!Token::new(b"Jeff").unwrap().verify(&challenge, &mac));
        assert!(Token::new(b"").is_none());
    }

    fn permits() -> Permits {
        let exists = |p: &Path| {
            [
                "/usr/local/bin/tool",
                "/usr/bin/echo",
                "/bin/echo",
                "/usr/bin/cat",
                "/opt/x/run",
            ]
            .iter()
            .any(|e| Path::new(e) == p)
        };
        Permits::resolve_with(
            &["echo".into(), "cat".into(), "/opt/x/run".into()],
            Some(OsStr::new(".:relative/bin::/usr/bin:/bin")),
            exists,
        )
        .unwrap()
    }

    #[test]
    fn permits_resolve_names_on_path_and_absolute_paths() {
        let p = permits();
        assert_eq!(p.lookup("echo"), Some(Path::new("/usr/bin/echo")));
        assert_eq!(p.lookup("/usr/bin/echo"), Some(Path::new("/usr/bin/echo")));
        assert_eq!(p.lookup("/usr//bin/echo"), Some(Path::new("/usr/bin/echo")));
        assert_eq!(p.lookup("/opt/x/run"), Some(Path::new("/opt/x/run")));
        // Named the way it was not permitted, or not permitted at all.
        assert_eq!(p.lookup("run"), None);
        assert_eq!(p.lookup("/bin/echo"), None);
        assert_eq!(p.lookup("/usr/bin/../bin/echo"), None);
        assert_eq!(p.lookup("./echo"), None);
        assert_eq!(p.lookup("sh"), None);
        assert_eq!(p.lookup("echo "), None);
    }

    #[test]
    fn permits_that_cannot_be_honoured_are_errors() {
        let none = |_: &Path| false;
        let path = Some(OsStr::new("/usr/bin"));
        let err = |spec: &str| Permits::resolve_with(&[spec.into()], path, none).unwrap_err();
        assert_eq!(err("nope"), PermitError::NotFound("nope".into()));
        assert_eq!(
            err("/no/such"),
            PermitError::NotExecutable("/no/such".into())
        );
        assert_eq!(err("./x"), PermitError::Relative("./x".into()));
        assert_eq!(err("bin/x"), PermitError::Relative("bin/x".into()));
        assert_eq!(err(""), PermitError::Relative("".into()));
        // `.` on PATH is not searched, even where the file exists.
        let dot = |p: &Path| p == Path::new("./echo");
        assert!(Permits::resolve_with(&["echo".into()], Some(OsStr::new(".")), dot).is_err());
    }

    fn session(max_output: u64) -> Session {
        let policy = Policy {
            token: Token::new(b"secret").unwrap(),
            permits: permits(),
            max_output,
        };
        Session::new(Arc::new(policy), [1; 32])
    }

    fn auth(s: &Session) -> Message {
        let Message::Challenge(c) = s.greeting() else {
            panic!("greeting is a challenge")
        };
        Message::Auth(Token::new(b"secret").unwrap().respond(&c))
    }

    fn run(argv: &[&str]) -> Message {
        Message::Run {
            argv: argv.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_session_runs_through_every_state() {
        let mut s = session(100);
        assert_eq!(s.state(), State::AwaitAuth);
        assert_eq!(s.on_message(auth(&s)), Ok(Action::None));
        assert_eq!(s.state(), State::AwaitRun);
        assert_eq!(
            s.on_message(run(&["cat", "-"])),
            Ok(Action::Spawn {
                program: "/usr/bin/cat".into(),
                argv: vec!["cat".into(), "-".into()]
            })
        );
        let data = Bytes::from_static(b"abc");
        assert_eq!(
            s.on_message(Message::Stdin(data.clone())),
            Ok(Action::Stdin(data))
        );
        assert_eq!(
            s.on_message(Message::Stdin(Bytes::new())),
            Ok(Action::CloseStdin)
        );
        assert_eq!(s.state(), State::Running { stdin_open: false });
        assert_eq!(s.on_output(60), Budget::Within);
        assert_eq!(
            s.on_exit(ExitStatus::Code(0)),
            Message::Exit(ExitStatus::Code(0))
        );
        assert_eq!(s.state(), State::Done);
    }

    #[test]
    fn wrong_tokens_and_unlisted_programs_are_refused() {
        let mut s = session(100);
        let err = s.on_message(Message::Auth([0; 32])).unwrap_err();
        assert!(err.0.contains("wrong token"), "{err}");
        assert_eq!(s.state(), State::Done);
        // Done means done: even the right answer is refused now.
        assert!(s.on_message(auth(&s)).is_err());

        let mut s = session(100);
        s.on_message(auth(&s)).unwrap();
        let err = s.on_message(run(&["sh", "-c", "id"])).unwrap_err();
        assert_eq!(err.0, "program not allowed: sh");
        assert_eq!(s.state(), State::Done);
    }

    #[test]
    fn out_of_order_messages_are_refused() {
        let stdin = || Message::Stdin(Bytes::from_static(b"x"));
        // Before auth: a command, stdin, or any server message.
        for msg in [
            run(&["echo"]),
            stdin(),
            Message::Challenge([0; 32]),
            Message::Refuse("x".into()),
        ] {
            let mut s = session(100);
            let err = s.on_message(msg).unwrap_err();
            assert!(err.0.contains("before authentication"), "{err}");
        }
        // After auth: a second auth, or stdin before the command.
        let mut s = session(100);
        s.on_message(auth(&s)).unwrap();
        assert!(s.on_message(stdin()).is_err());
        let mut s = session(100);
        s.on_message(auth(&s)).unwrap();
        assert!(s.on_message(auth(&s)).is_err());
        // While running: a second command, output kinds, stdin after its end.
        let mut s = session(100);
        s.on_message(auth(&s)).unwrap();
        s.on_message(run(&["echo"])).unwrap();
        assert!(s.on_message(run(&["echo"])).is_err());
        let mut s = session(100);
        s.on_message(auth(&s)).unwrap();
        s.on_message(run(&["echo"])).unwrap();
        s.on_message(Message::Stdin(Bytes::new())).unwrap();
        let err = s.on_message(stdin()).unwrap_err();
        assert!(err.0.contains("after the end of stdin"), "{err}");
    }

    #[test]
    fn output_over_the_limit_keeps_what_fits() {
        let mut s = session(100);
        assert_eq!(s.on_output(60), Budget::Within);
        assert_eq!(s.on_output(40), Budget::Within);
        assert_eq!(s.on_output(1), Budget::Exceeded { keep: 0 });
        let mut s = session(100);
        assert_eq!(s.on_output(70), Budget::Within);
        assert_eq!(s.on_output(70), Budget::Exceeded { keep: 30 });
        assert_eq!(s.state(), State::Done);
        assert!(s.over_limit().0.contains("100 bytes"));
    }

    #[test]
    fn shell_codes_follow_the_128_plus_n_rule() {
        assert_eq!(ExitStatus::Code(3).shell_code(), 3);
        assert_eq!(ExitStatus::Signal(9).shell_code(), 137);
    }
}
