//! One connection's server-side state machine (await auth → await run → running → done),
//! and the [`Policy`] every session of a server enforces: the token, the permitted
//! programs, the output limit. The driver feeds it client messages and program output and
//! does what the returned [`Action`]s say.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::message::{AUTH_FRAME_LEN, CHALLENGE_LEN, ExitStatus, Message, ProtocolError};
use super::permits::Permits;
use super::token::Token;

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

    /// The largest frame the client may send next: only [`AUTH_FRAME_LEN`] before it has
    /// authenticated, so that a longer length header is refused before its bytes are read.
    pub fn max_frame(&self) -> usize {
        match self.state {
            State::AwaitAuth => AUTH_FRAME_LEN,
            _ => crate::frame::DEFAULT_MAX_FRAME,
        }
    }

    /// Whether the client proved it holds the token and the session goes on.
    pub fn authenticated(&self) -> bool {
        matches!(self.state, State::AwaitRun | State::Running { .. })
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
