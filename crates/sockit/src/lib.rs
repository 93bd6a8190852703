//! sockit: a socket toolkit. Python's `socketserver` with every concurrency model, sans-IO
//! protocol cores, and the clients and load generators that go with them.
//!
//! # Layout
//! - [`addr`]: [`Endpoint`], the one address syntax (`HOST:PORT`, `udp://`, `unix:`, ...).
//! - [`server`]: the server framework: [`server::Handler`] / [`server::Service`], a
//!   [`server::Server`] bound to an endpoint, served under a [`server::Model`].
//! - [`proto`]: sans-IO protocol cores ([`proto::echo`]).
//! - [`bench`](mod@bench): load generators behind `sockit bench`: closed-loop echo load
//!   ([`bench::echo`]) and many idle connections ([`bench::conns`]).
//! - [`error`]: the typed [`Error`].

pub mod addr;
pub mod bench;
pub mod error;
pub mod proto;
pub mod server;

pub use addr::{Endpoint, Transport};
pub use error::{Error, Result};
