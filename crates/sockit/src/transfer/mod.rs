//! Verified, resumable file and folder transfer: the I/O drivers of `sockit send` and
//! `sockit recv` around the sans-IO protocol in [`crate::proto::transfer`].
//!
//! - [`mod@send`]: plans a list of files and folders and sends them over one connection,
//!   file bytes with `sendfile` (read in large chunks over TLS), digests computed by a
//!   hashing thread.
//! - [`mod@recv`]: a [`crate::server::StreamService`] that receives into a directory, never
//!   outside it ([`fs`]), verifying each file before it is renamed into place.
//! - [`Wire`]: the connection both run on, plain or TLS: the protocol is the same.

pub mod fs;
mod hash;
pub mod recv;
pub mod send;

use std::io::{self, Read};

use crate::frame::FrameError;
use crate::proto::transfer::{DecodeError, ProtocolError};
use crate::socket::Wire;

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

/// Reads `wire` for the transfer: a TLS peer that closed its socket without
/// close_notify is an end of stream like a plain one. The protocol's own frames, sizes
/// and digests tell a cut from a completed transfer (and a killed sender's partial file
/// is kept for a resume, as without TLS), so the missing close_notify adds nothing.
pub(crate) fn read_wire(wire: &mut Wire, buf: &mut [u8]) -> io::Result<usize> {
    match wire.read(buf) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        other => other,
    }
}

/// [`Wire`] read with [`read_wire`]'s rule, for readers that take `impl Read`.
pub(crate) struct WireReader<'a>(pub(crate) &'a mut Wire);

impl Read for WireReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_wire(self.0, buf)
    }
}
