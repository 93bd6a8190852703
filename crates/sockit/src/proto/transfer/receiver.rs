//! The receiver's side of a session as a state machine: it checks that the sender's
//! messages come in order, tells the driver what to read next (a frame or raw file
//! bytes), and builds every reply; the driver does the files and the socket.

use super::VERSION;
use super::digest::Algo;
use super::message::{DecodeError, Header, Kind, Link, Message, Origin};
use super::path::{LinkError, check_link};

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
    /// A symbolic link whose target stays inside DIR: create it (never following a link
    /// on the way), then call [`Receiver::link_done`], or [`Receiver::skip`] (or
    /// [`Receiver::fail`]) if it cannot be.
    Link(Link),
    /// A symbolic link whose target would lead out of DIR: it must not be created. Tell
    /// the sender with [`Receiver::skip`] (the session goes on).
    UnsafeLink {
        /// The link as sent.
        link: Link,
        /// Why it is refused.
        reason: LinkError,
    },
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
    /// Waiting for the driver to answer a link header.
    LinkPending,
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
            State::DirPending | State::LinkPending | State::Deciding(_) | State::Verifying(_) => {
                "deciding"
            }
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
            (State::Idle, Message::Link(link)) => match check_link(&link.path, &link.target) {
                Ok(()) => (State::LinkPending, Event::Link(link)),
                Err(reason) => (State::LinkPending, Event::UnsafeLink { link, reason }),
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

    /// The link of the last header is in place (made now, or the same link was there).
    pub fn link_done(&mut self) -> Message {
        if self.state == State::LinkPending {
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

    /// The file or link is not wanted (or not allowed); the sender goes on with the next.
    pub fn skip(&mut self, reason: impl Into<String>) -> Message {
        if matches!(self.state, State::Deciding(_) | State::LinkPending) {
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
            State::Hello | State::Idle | State::DirPending | State::LinkPending => {
                Close::BetweenFiles
            }
            _ => Close::MidFile,
        }
    }
}

fn kind_name(msg: &Message) -> &'static str {
    match msg {
        Message::Hello { .. } => "hello (V)",
        Message::Header(_) => "header (F)",
        Message::Link(_) => "link header (F)",
        Message::Offer { .. } => "offer (O)",
        Message::Skip { .. } => "skip (S)",
        Message::Digest(_) => "digest (D)",
        Message::Ack(_) => "ack (A)",
        Message::End => "end (E)",
        Message::Error(_) => "error (!)",
    }
}
