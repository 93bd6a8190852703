//! The exec protocol core (`docs/exec.md`), sans-IO. No sockets, no processes, no files,
//! no clock, no randomness: the driver in [`crate::exec`] brings those and this module
//! decides. One idea per file:
//!
//! - [`message`]: the messages to and from frame payloads, and what an exit status may be.
//! - [`token`]: the shared secret and the HMAC-SHA256 challenge–response.
//! - [`permits`]: the allow-list of programs a server may run.
//! - [`session`]: the server-side session state machine and the policy it enforces.
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

pub mod message;
pub mod permits;
pub mod session;
#[cfg(test)]
mod tests;
pub mod token;

pub use message::{
    AUTH_FRAME_LEN, CHALLENGE_LEN, ExitStatus, Kind, MAC_LEN, MAX_CHUNK, MAX_SIGNAL, Message,
    PREFIX_LEN, ProtocolError, prefix,
};
pub use permits::{PermitError, Permits};
pub use session::{Action, Budget, Policy, Refusal, Session, State};
pub use token::Token;
