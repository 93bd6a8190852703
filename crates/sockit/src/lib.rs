//! sockit: a socket toolkit. Python's `socketserver` with every concurrency model, sans-IO
//! protocol cores, and the clients and load generators that go with them.
//!
//! # Layout
//! - [`addr`]: [`Endpoint`], the one address syntax (`HOST:PORT`, `udp://`, `unix:`, ...).
//! - [`frame`]: sans-IO framing: 4-byte length prefix and lines, with limits.
//! - [`socket`]: the socket layer under everything else: [`socket::Stream`],
//!   [`socket::Listener`], [`socket::DatagramSocket`], [`socket::Peer`], binding, Unix
//!   socket files, [`socket::Shutdown`], [`socket::AccessList`], admission, and
//!   [`socket::TokioStream`] with the one tokio accept loop.
//! - [`server`]: the server framework: [`server::Handler`] / [`server::Service`], a
//!   [`server::Server`] bound to an endpoint, served under a [`server::Model`].
//! - [`net`]: network utilities: [`net::subnet`] arithmetic, [`net::cidr`] sets
//!   (aggregate, deaggregate, variable-length subnetting), [`net::ports`] table,
//!   [`net::check`] port scans (connect), and on raw sockets: [`net::packet`] (sans-IO
//!   IPv4, IPv6, ICMP, ICMPv6 and TCP headers with their checksums), [`net::ping`] (ICMP
//!   echo) and [`net::syn`] (half-open SYN scan).
//! - [`relay`]: the full-duplex stdin ↔ socket relay of `connect` and `listen` (ncat's
//!   job), its rules as typed [`relay::Options`]; [`relay::text`] holds its sans-IO parts.
//! - [`proto`]: sans-IO protocol cores ([`proto::echo`], [`proto::exec`],
//!   [`proto::transfer`], [`proto::http`], [`proto::chat`]: nicks, rooms, history and the
//!   cluster view of the multi-user chat).
//! - [`forward`]: `sockit forward`'s relay of every accepted connection to a target
//!   (TCP, Unix, TLS on either leg; splice(2) between plain sockets).
//! - [`http`](mod@http): `http get`'s client (plain and TLS) and `http serve`'s static file
//!   service, around [`proto::http`].
//! - [`proxy`](mod@proxy): connecting through a SOCKS5 or HTTP proxy (`--proxy`), around
//!   [`proto::proxy`].
//! - [`exec`]: authenticated remote command execution: the tokio server driver and the
//!   blocking client around [`proto::exec`].
//! - [`chat`]: the chat server's tokio driver (per-client bounded queues, coalesced
//!   writes, the Redis backplane).
//! - [`bench`](mod@bench): load generators behind `sockit bench`: closed-loop echo load
//!   ([`bench::echo`]), many idle connections ([`bench::conns`]) and chat fan-out
//!   ([`bench::chat`]).
//! - [`transfer`]: the file-transfer drivers of `send` and `recv` around
//!   [`proto::transfer`].
//! - [`text`]: terminal-safe text: every string a peer controls is escaped with
//!   [`text::terminal_safe`] before it is printed.
//! - [`error`]: the typed [`Error`].
//! - `fuzzing` (hidden): the invariant checks run by the fuzz targets in `fuzz/` and by
//!   the corpus replay test.

// sockit is built on Linux interfaces (epoll, sendfile, splice, packet sockets,
// SO_PEERCRED): say so at once rather than with hundreds of unresolved imports.
#[cfg(not(target_os = "linux"))]
compile_error!("sockit runs on Linux only (it uses epoll, sendfile, splice and packet sockets)");

pub mod addr;
pub mod bench;
pub mod chat;
pub mod error;
pub mod exec;
pub mod forward;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod net;
pub mod proto;
pub mod proxy;
pub mod relay;
pub mod server;
pub mod socket;
pub mod text;
pub mod transfer;

pub use addr::{Endpoint, Transport};
pub use error::{Error, Result};
