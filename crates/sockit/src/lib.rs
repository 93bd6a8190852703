//! sockit: a socket toolkit. Python's `socketserver` with every concurrency model, sans-IO
//! protocol cores, and the clients and load generators that go with them.
//!
//! # Layout
//! - [`addr`]: [`Endpoint`], the one address syntax (`HOST:PORT`, `udp://`, `unix:`, ...).
//! - [`frame`]: sans-IO framing: 4-byte length prefix and lines, with limits.
//! - [`server`]: the server framework: [`server::Handler`] / [`server::Service`], a
//!   [`server::Server`] bound to an endpoint, served under a [`server::Model`].
//! - [`net`]: network utilities: [`net::subnet`] arithmetic, [`net::ports`] table,
//!   [`net::check`] port scans.
//! - [`proto`]: sans-IO protocol cores ([`proto::echo`], [`proto::chat`]: nicks, rooms,
//!   history and the cluster view of the multi-user chat).
//! - [`relay`]: the full-duplex stdin ↔ socket relay of `connect` and `listen` (ncat's
//!   job), its rules as typed [`relay::Options`]; [`relay::text`] holds its sans-IO parts.
//! - [`chat`]: the chat server's tokio driver (per-client bounded queues, coalesced
//!   writes, the Redis backplane) and the chat load generator [`chat::bench`].
//! - [`error`]: the typed [`Error`].

pub mod addr;
pub mod chat;
pub mod error;
pub mod frame;
pub mod net;
pub mod proto;
pub mod relay;
pub mod server;

pub use addr::{Endpoint, Transport};
pub use error::{Error, Result};
