//! Load generators behind `sockit bench`: closed-loop echo load ([`echo`]), many idle
//! connections ([`conns`]) and chat fan-out ([`mod@chat`], with its own report: deliveries
//! and delivery latency).
//!
//! Both share the machine with the server they measure (the benchmarks here run on two
//! cores: one for the server, one for the generator), so they are built to cost as little
//! CPU per message as possible: one thread (or a few, with [`EchoConfig::threads`]) each
//! running a level-triggered `epoll` loop over non-blocking sockets, one `read` and one
//! vectored `write` per wake-up, payloads that are slices of one precomputed pattern (no
//! per-message generation), and verification by `memcmp` against that pattern.
//!
//! Every run is bounded in time: connection attempts have a timeout, the load stops
//! after its duration and whatever is still in flight a grace period later. A connection
//! that fails is counted by [`FailureKind`], never fatal, unless every connection fails.
//!
//! ```no_run
//! use std::time::Duration;
//! use sockit::bench::{EchoConfig, echo};
//!
//! let mut config = EchoConfig::new("127.0.0.1:7000".parse()?);
//! config.conns = 50;
//! config.pipeline = 16;
//! config.duration = Duration::from_secs(3);
//! let report = echo::run(&config, |_progress| {})?;
//! println!("{report}");
//! println!("{}", report.to_json());
//! # Ok::<(), sockit::Error>(())
//! ```

pub mod chat;
pub mod conns;
pub mod echo;
pub mod http;

mod connect;
mod json;
mod pattern;
mod report;

use std::fmt;
use std::time::Duration;

pub use conns::{ConnsConfig, ConnsReport};
pub use echo::{EchoConfig, EchoReport};
pub use http::{HttpConfig, HttpReport};
pub use report::{FailureKind, Failures, Latency, format_duration};

/// What a run is doing, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening connections.
    Connecting,
    /// Sending load.
    Running,
    /// The duration is over; waiting for the messages still in flight.
    Draining,
    /// Holding connections open, idle.
    Holding,
    /// Checking each held connection with a ping.
    Pinging,
}

/// A snapshot of a run in progress, handed to the progress callback a few times a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The current phase.
    pub phase: Phase,
    /// Time since the phase began.
    pub elapsed: Duration,
    /// Connections open so far (or still open).
    pub open: usize,
    /// Messages echoed correctly (echo), or connections that answered their ping (conns).
    pub done: u64,
    /// Failures so far, of every kind.
    pub errors: u64,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        match self.phase {
            Phase::Connecting => write!(
                f,
                "connecting {secs:.1}s: {} open, {} failed",
                self.open, self.errors
            ),
            Phase::Running | Phase::Draining => {
                let rate = if secs > 0.0 {
                    self.done as f64 / secs
                } else {
                    0.0
                };
                let what = if self.phase == Phase::Running {
                    "running"
                } else {
                    "draining"
                };
                write!(
                    f,
                    "{what} {secs:.1}s: {} msgs ({rate:.0}/s), {} conns, {} errors",
                    self.done, self.open, self.errors
                )
            }
            Phase::Holding => write!(
                f,
                "holding {secs:.1}s: {} open, {} failed",
                self.open, self.errors
            ),
            Phase::Pinging => write!(
                f,
                "pinging {secs:.1}s: {} healthy of {}, {} failed",
                self.done, self.open, self.errors
            ),
        }
    }
}

/// Descriptors kept free for everything that is not a connection (stdio, epoll, ...).
const SPARE_FDS: u64 = 64;
