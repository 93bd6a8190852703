//! sockit: a socket toolkit. Python's `socketserver` with every concurrency model, sans-IO
//! protocol cores, and the clients and load generators that go with them.
//!
//! # Layout
//! - [`addr`]: [`Endpoint`], the one address syntax (`HOST:PORT`, `udp://`, `unix:`, ...).
//! - [`server`]: the server framework: [`server::Handler`] / [`server::Service`], a
//!   [`server::Server`] bound to an endpoint, served under a [`server::Model`].
//! - [`proto`]: sans-IO protocol cores ([`proto::echo`]).
//! - [`relay`]: the full-duplex stdin ↔ socket relay of `connect` and `listen` (ncat's
//!   job), its rules as typed [`relay::Options`]; [`relay::text`] holds its sans-IO parts.
//! - [`error`]: the typed [`Error`].

pub mod addr;
pub mod error;
pub mod proto;
pub mod relay;
pub mod server;

pub use addr::{Endpoint, Transport};
pub use error::{Error, Result};
