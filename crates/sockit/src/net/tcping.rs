//! TCP "ping" (`ping --tcp PORT`): the time a TCP handshake takes, which needs no
//! privileges and passes where ICMP is filtered.
//!
//! Each probe is a non-blocking `connect` and a `poll` for its completion: the time from
//! the `connect` call to the moment the kernel saw the SYN-ACK (or the RST) is the probe's
//! time. An accepted connection is closed at once. Counts and times are kept in the same
//! [`Stats`] as the ICMP ping, so both print one summary.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};

use super::ping::Stats;
use crate::error::{Error, Result};

/// How to ping.
#[derive(Debug, Clone, Copy)]
pub struct TcpPingOptions {
    /// Probes to send; `None` until stopped.
    pub count: Option<u32>,
    /// Time between the starts of two probes.
    pub interval: Duration,
    /// How long a handshake may take before the probe counts as timed out.
    pub timeout: Duration,
}

/// How one handshake ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handshake completed: something listens.
    Open,
    /// The host answered with a reset: it is up, nothing listens on the port.
    Refused,
    /// No answer within the timeout (a firewall, a full accept queue, a dead host).
    Timeout,
    /// The network said no (host or network unreachable, ...): the OS error.
    Failed(String),
}

impl Outcome {
    /// The outcome's name as printed.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::Refused => "refused",
            Outcome::Timeout => "timeout",
            Outcome::Failed(_) => "error",
        }
    }
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Sequence number, from 1.
    pub seq: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// From `connect` to the answer (or to the timeout).
    pub time: Duration,
}

/// Probes `addr` until `options.count` probes are done or `stop` is set; calls
/// `on_probe` after each one. The stats count open answers as received, resets as
/// refused, and failures as errors; their times are in `rtts` for open answers only.
pub fn run(
    addr: SocketAddr,
    options: TcpPingOptions,
    stop: &AtomicBool,
    mut on_probe: impl FnMut(&Probe),
) -> Result<Stats> {
    let mut stats = Stats::default();
    let started = Instant::now();
    let mut next = started;
    let mut seq = 0u32;
    while !stop.load(Ordering::Relaxed) && options.count.is_none_or(|c| seq < c) {
        // Short sleeps so that Ctrl-C is noticed promptly.
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(100)));
            continue;
        }
        seq += 1;
        let (outcome, time) = probe(addr, options.timeout, stop)?;
        stats.transmitted += 1;
        match outcome {
            Outcome::Open => {
                stats.received += 1;
                stats.rtts.push(time);
            }
            Outcome::Refused => stats.refused += 1,
            Outcome::Timeout => {}
            Outcome::Failed(_) => stats.errors += 1,
        }
        on_probe(&Probe { seq, outcome, time });
        // A probe that outlasted the interval (a timeout) delays the next one rather than
        // making the following probes catch up in a burst, as ping does.
        next = (next + options.interval).max(Instant::now());
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// One handshake with `addr`, given up after `timeout` (or when `stop` is set, which
/// counts as a timeout). Errors are for a broken prober (no descriptors, no local
/// ports), not for what the network answered.
pub fn probe(
    addr: SocketAddr,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<(Outcome, Duration)> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let fd: OwnedFd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::io("open TCP socket", e.into()))?;
    let started = Instant::now();
    let answer = match rustix::net::connect(&fd, &addr) {
        Ok(()) => Ok(()),
        Err(Errno::INPROGRESS) => loop {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() || stop.load(Ordering::Relaxed) {
                return Ok((Outcome::Timeout, started.elapsed()));
            }
            let wait =
                Timespec::try_from(left.min(Duration::from_millis(100))).unwrap_or(Timespec {
                    tv_sec: 0,
                    tv_nsec: 100_000_000,
                });
            let mut fds = [PollFd::new(&fd, PollFlags::OUT)];
            match poll(&mut fds, Some(&wait)) {
                Ok(0) | Err(Errno::INTR) => continue,
                Ok(_) => {
                    break sockopt::socket_error(&fd)
                        .map_err(|e| Error::io("read connect result", e.into()))?;
                }
                Err(e) => return Err(Error::io("poll", e.into())),
            }
        },
        Err(e) => Err(e),
    };
    let time = started.elapsed();
    let outcome = match answer {
        // A free port in the ephemeral range can be picked as the source too: TCP's
        // simultaneous open then connects the socket to itself. Nobody listens there.
        Ok(()) if is_self_connect(fd.as_fd(), addr) => Outcome::Refused,
        Ok(()) => Outcome::Open,
        Err(Errno::CONNREFUSED) => Outcome::Refused,
        Err(Errno::TIMEDOUT) => Outcome::Timeout,
        Err(e @ (Errno::HOSTUNREACH | Errno::NETUNREACH | Errno::ACCESS | Errno::PERM)) => {
            Outcome::Failed(io::Error::from(e).to_string())
        }
        Err(e) => return Err(Error::io(format!("connect {addr}"), e.into())),
    };
    Ok((outcome, time))
}

/// Whether a connected socket is connected to itself (source and destination alike).
pub(crate) fn is_self_connect(fd: std::os::fd::BorrowedFd<'_>, addr: SocketAddr) -> bool {
    rustix::net::getsockname(fd)
        .ok()
        .and_then(|a| SocketAddr::try_from(a).ok())
        == Some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_and_refused_on_loopback() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let stop = AtomicBool::new(false);
        let t = Duration::from_secs(5);
        assert_eq!(probe(open, t, &stop).unwrap().0, Outcome::Open);
        assert_eq!(probe(closed, t, &stop).unwrap().0, Outcome::Refused);
        let options = TcpPingOptions {
            count: Some(3),
            interval: Duration::from_millis(10),
            timeout: t,
        };
        let mut seen = Vec::new();
        let stats = run(open, options, &stop, |p| seen.push(p.seq)).unwrap();
        assert_eq!(seen, [1, 2, 3]);
        assert_eq!(
            (stats.transmitted, stats.received, stats.rtts.len()),
            (3, 3, 3)
        );
    }
}
