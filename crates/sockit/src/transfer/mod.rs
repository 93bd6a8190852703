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

use std::io::{self, Read, Write};

use crate::frame::FrameError;
use crate::proto::transfer::{DecodeError, ProtocolError};
use crate::socket::Stream;
use crate::socket::tls::TlsStream;

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

/// The connection a transfer runs on: a plain socket, or TLS over one. The protocol is
/// the same on both; only how file bytes leave differs (`sendfile` cannot encrypt).
#[derive(Debug)]
pub enum Wire {
    /// TCP or Unix, as it was accepted or connected.
    Plain(Stream),
    /// TLS with the handshake done (boxed: rustls's state is large).
    Tls(Box<TlsStream>),
}

impl Wire {
    /// The socket under the connection, for its timeouts: a TLS read waits on it too.
    pub fn socket(&self) -> &Stream {
        match self {
            Wire::Plain(s) => s,
            Wire::Tls(t) => t.get_ref(),
        }
    }

    /// Ends the sending side cleanly once the conversation is over: close_notify over
    /// TLS (so the peer can tell the end from a cut), nothing on a plain socket, which
    /// closing ends well enough.
    pub fn finish(&mut self) {
        if let Wire::Tls(t) = self {
            let _ = t.shutdown_write();
        }
    }
}

impl From<Stream> for Wire {
    fn from(s: Stream) -> Wire {
        Wire::Plain(s)
    }
}

impl From<TlsStream> for Wire {
    fn from(t: TlsStream) -> Wire {
        Wire::Tls(Box::new(t))
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => (&*s).read(buf),
            Wire::Tls(t) => match t.read(buf) {
                // A socket closed without close_notify: the protocol's own frames, sizes
                // and digests tell a cut from a completed transfer, so it is an end of
                // stream like a plain one (a killed sender's partial file is kept for a
                // resume, as without TLS).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => (&*s).write(buf),
            Wire::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(s) => (&*s).flush(),
            Wire::Tls(t) => t.flush(),
        }
    }
}
