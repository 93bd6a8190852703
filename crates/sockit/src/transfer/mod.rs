//! Verified, resumable file and folder transfer: the I/O drivers of `sockit send` and
//! `sockit recv` around the sans-IO protocol in [`crate::proto::transfer`].
//!
//! - [`mod@send`]: plans a list of files and folders and sends them over one connection,
//!   file bytes with `sendfile`, digests computed by a hashing thread.
//! - [`mod@recv`]: a [`crate::server::StreamService`] that receives into a directory, never
//!   outside it ([`fs`]), verifying each file before it is renamed into place.

pub mod fs;
mod hash;
pub mod recv;
pub mod send;

use std::io;

use crate::frame::FrameError;
use crate::proto::transfer::{DecodeError, ProtocolError};

pub use fs::Root;
pub use recv::{Existing, Receiver, RecvEvent, Tally};
pub use send::{Entry, EntryKind, Left, Links, SendEvent, SendReport, plan, send};

/// Why a transfer (or one session of it) failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The other side refused or rejected something; the message says what and why.
    #[error("{0}")]
    Refused(String),
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The peer broke the framing.
    #[error("protocol error: {0}")]
    Frame(#[from] FrameError),
    /// The sender stopped in the middle of a file; the partial data is kept.
    #[error("{path}: connection closed after {have} of {size} bytes (kept for a resume)")]
    Truncated {
        /// The file.
        path: String,
        /// Bytes the receiver has.
        have: u64,
        /// Bytes announced.
        size: u64,
    },
    /// A local file to send cannot be used (unsafe name, special file, ...).
    #[error("{0}")]
    Source(String),
    /// A system call failed; `what` says which, on what.
    #[error("{what}: {source}")]
    Io {
        /// The operation.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl From<DecodeError> for TransferError {
    fn from(e: DecodeError) -> Self {
        TransferError::Protocol(ProtocolError::Decode(e))
    }
}
