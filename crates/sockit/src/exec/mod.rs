//! Authenticated remote command execution (`docs/exec.md`): the I/O around the sans-IO core in
//! [`crate::proto::exec`].
//!
//! - [`server`]: a tokio task per connection ([`crate::server::Server::serve_tasks`])
//!   that authenticates, runs the permitted program in its own process group, streams its
//!   output and exit status, and enforces the time and output limits.
//! - [`client`]: the blocking client: connect, answer the challenge, send the command and
//!   optional stdin, write the output to two writers, return the exit status.
//! - [`token`]: the shared secret's file: read one, or create a fresh one (mode 0600).
//! - [`permits`]: the `--permit` list resolved against the real files.
//! - `strangers`: the two pools of connections, authenticated and not (see [`server`]).
//!
//! The HMAC proves that whoever asks knows the token; it does not encrypt anything. Over
//! an untrusted network, commands and output travel in the clear.

pub mod client;
pub mod permits;
pub mod server;
mod strangers;
pub mod token;

pub use client::{Client, Outcome};
pub use permits::resolve_permits;
pub use server::{ServeOptions, serve};
pub use token::{TokenFile, read_token_file};
