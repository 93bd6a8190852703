//! The file-transfer protocol behind `sockit send` / `sockit recv`, sans-IO. No sockets,
//! no files: the drivers in [`crate::transfer`] do the I/O and ask this module what is
//! allowed next. One idea per file:
//!
//! - [`digest`]: the checksum algorithms, incremental hashers and `*sum` lines.
//! - [`path`]: relative paths a sender may name, validated before anything touches DIR.
//! - [`message`]: the messages and their encoding in frames.
//! - [`receiver`]: the receiver's state machine: what may come next, what to reply.
//!
//! The wire format is documented in `docs/transfer.md`; in short:
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
//!   | F kind=link size=len(target) path target           |   (for each link)
//!   |--------------------------------------------------->|
//!   |                                A (no body) | S why |
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
//! Every message is one length-prefixed frame (`docs/frame.md`: 4-byte big-endian length,
//! then the payload) whose first byte is its kind. Only file contents travel outside
//! frames, so the sender can hand them to `sendfile` in one piece; their length is known
//! from the header and the offer. A `!` from the receiver ends the connection.

pub mod digest;
pub mod message;
pub mod path;
pub mod receiver;
#[cfg(test)]
mod tests;

use crate::frame::LengthCodec;

pub use digest::{Algo, Hasher, hex, sum_line};
pub use message::{DecodeError, Header, Kind, Link, Message, Origin};
pub use path::{LinkError, MAX_NAME, MAX_PATH, PARTIAL_PREFIX, PathError, RelPath, check_link};
pub use receiver::{Close, Event, ProtocolError, Receiver, Want};

/// The protocol name carried by the `V` message.
pub const MAGIC: &[u8] = b"sockit-transfer";

/// The protocol version this implementation speaks.
pub const VERSION: u8 = 1;

/// The largest frame either side accepts: headers and digests are small.
pub const MAX_FRAME: usize = 64 * 1024;

/// A length codec sized for this protocol's messages.
pub fn codec() -> LengthCodec {
    LengthCodec::new(MAX_FRAME)
}
