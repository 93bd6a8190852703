//! Port checks (`connect_ex` of the classic tutorials, `ncat -z` / `nmap -sT`): try a TCP connection to
//! each port, many at once, and classify the answer.
//!
//! - **open**: the handshake completed (the connection is closed at once);
//! - **closed**: the host answered with a reset (`ECONNREFUSED`);
//! - **filtered**: no answer within the timeout, or an ICMP unreachable: something dropped
//!   the SYN (a firewall, a full accept queue, a black hole).

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::{Timespec, epoll};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};

use crate::error::{Error, Result};

/// The most ports a list may name (every TCP port).
const MAX_PORTS: usize = 65_535;

/// What a port answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortState {
    /// Accepted a connection.
    Open,
    /// Refused it (RST).
    Closed,
    /// Did not answer in time, or the network said it is unreachable.
    Filtered,
}

impl PortState {
    /// The state's name as printed.
    pub fn name(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
        }
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One port's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortResult {
    /// The port tried.
    pub port: u16,
    /// What it answered.
    pub state: PortState,
}

/// A sorted, de-duplicated list of ports: `22`, `8000-8100`, `22,80,443`, or a mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortList(Vec<u16>);

/// A port list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port list {input:?}: {reason}")]
pub struct PortListError {
    input: String,
    reason: String,
}

impl FromStr for PortList {
    type Err = PortListError;

    fn from_str(s: &str) -> std::result::Result<PortList, PortListError> {
        let bad = |reason: String| PortListError {
            input: s.to_owned(),
            reason,
        };
        let port = |p: &str| match p.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(bad(format!("`{p}` is not a port from 1 to 65535"))),
            Ok(n) => Ok(n),
        };
        let mut ports = Vec::new();
        for part in s.split(',') {
            match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (port(lo)?, port(hi)?);
                    if lo > hi {
                        return Err(bad(format!("range {lo}-{hi} runs backwards")));
                    }
                    ports.extend(lo..=hi);
                }
                None => ports.push(port(part)?),
            }
            // Overlapping ranges repeated many times must not grow the list without bound.
            if ports.len() > MAX_PORTS {
                ports.sort_unstable();
                ports.dedup();
            }
        }
        ports.sort_unstable();
        ports.dedup();
        Ok(PortList(ports))
    }
}

impl PortList {
    /// The ports, ascending.
    pub fn ports(&self) -> &[u16] {
        &self.0
    }
}

/// How to scan.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// How long one connection attempt may take before the port counts as filtered.
    pub timeout: Duration,
    /// Connection attempts in flight at once.
    pub concurrency: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            timeout: Duration::from_secs(1),
            concurrency: 512,
        }
    }
}

/// Tries every port of `ports` on `host`; results come back in port order.
pub fn scan(host: IpAddr, ports: &PortList, options: ScanOptions) -> Result<Vec<PortResult>> {
    let mut all = scan_hosts(&[host], ports, options)?;
    Ok(all.pop().unwrap_or_default())
}

/// Tries every port of `ports` on every host, with at most `options.concurrency`
/// handshakes in flight over all hosts together; one list per host (in the hosts' order),
/// each in port order.
///
/// How it is fast: a thread per CPU for a long list, non-blocking sockets, and as few system calls per port as
/// the kernel allows. A `connect` that cannot finish at once returns `EINPROGRESS`; a
/// second `connect` on the same socket then says whether the answer is already there,
/// which on loopback and on a near host it usually is: `ECONNREFUSED` (closed; the socket
/// is reused for the next port, no `socket`/`close`), `EISCONN` (open), or `EALREADY`
/// (still waiting: the socket goes to epoll with a deadline). An open port's socket is
/// closed with a reset (`SO_LINGER` 0), as `nmap -sT` does, so no TIME_WAIT piles up.
pub fn scan_hosts(
    hosts: &[IpAddr],
    ports: &PortList,
    options: ScanOptions,
) -> Result<Vec<Vec<PortResult>>> {
    let window = options.concurrency.max(1);
    raise_fd_limit(window);
    let ports = ports.ports();
    // Most of a scan's time is the kernel's (a SYN and its RST per port, on the scanning
    // core): a long list is split into contiguous shares, one thread per CPU, each with
    // its share of the window. Short lists stay on one thread.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cpus
        .min(hosts.len() * ports.len() / MIN_JOBS_PER_THREAD)
        .min(window)
        .max(1);
    let share = ports.len().div_ceil(threads).max(1);
    let parts = std::thread::scope(|scope| {
        let handles: Vec<_> = ports
            .chunks(share)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut scanner =
                        Scanner::new(hosts, chunk, options.timeout, (window / threads).max(1))?;
                    scanner.run()?;
                    Ok::<_, Error>(scanner.results())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a scan thread panicked"))
            .collect::<Result<Vec<_>>>()
    })?;
    let mut all: Vec<Vec<PortResult>> = vec![Vec::with_capacity(ports.len()); hosts.len()];
    for part in parts {
        for (host, results) in all.iter_mut().zip(part) {
            host.extend(results);
        }
    }
    Ok(all)
}

/// A scan is split over threads only when each gets at least this many handshakes.
const MIN_JOBS_PER_THREAD: usize = 4096;

/// The state of one scan: the work left, the handshakes in flight, the answers so far.
struct Scanner<'a> {
    hosts: &'a [IpAddr],
    ports: &'a [u16],
    timeout: Duration,
    window: usize,
    /// Next job: jobs run port-major (every host's port 1, then port 2, ...), so that a
    /// sweep spreads its load over the hosts.
    next: usize,
    /// Answer per host and port position; `Filtered` until something answers.
    states: Vec<Vec<PortState>>,
    /// A socket of each family (v4, v6) free for the next `connect`: reused after a refusal.
    spare: [Option<OwnedFd>; 2],
    ep: OwnedFd,
    /// Handshakes in flight, by slot (the epoll data); `None` is a free slot.
    slots: Vec<Option<InFlight>>,
    free: Vec<usize>,
    /// Slots in the order their handshakes started, and so in deadline order (one timeout
    /// for all); entries whose slot finished or was reused are skipped by generation.
    order: VecDeque<(usize, u64, Instant)>,
    generation: u64,
    in_flight: usize,
}

/// One handshake waiting for its answer.
struct InFlight {
    fd: OwnedFd,
    job: usize,
    generation: u64,
}

impl<'a> Scanner<'a> {
    fn new(
        hosts: &'a [IpAddr],
        ports: &'a [u16],
        timeout: Duration,
        window: usize,
    ) -> Result<Self> {
        let ep =
            epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| Error::io("epoll", e.into()))?;
        Ok(Scanner {
            hosts,
            ports,
            timeout,
            window,
            next: 0,
            states: vec![vec![PortState::Filtered; ports.len()]; hosts.len()],
            spare: [None, None],
            ep,
            slots: Vec::new(),
            free: Vec::new(),
            order: VecDeque::new(),
            generation: 0,
            in_flight: 0,
        })
    }

    fn jobs(&self) -> usize {
        self.hosts.len() * self.ports.len()
    }

    fn addr_of(&self, job: usize) -> SocketAddr {
        let h = self.hosts.len();
        SocketAddr::new(self.hosts[job % h], self.ports[job / h])
    }

    fn set(&mut self, job: usize, state: PortState) {
        let h = self.hosts.len();
        self.states[job % h][job / h] = state;
    }

    fn run(&mut self) -> Result<()> {
        let mut events = Vec::with_capacity(1024);
        loop {
            while self.in_flight < self.window && self.next < self.jobs() {
                let job = self.next;
                self.next += 1;
                self.start(job)?;
            }
            if self.in_flight == 0 && self.next >= self.jobs() {
                return Ok(());
            }
            if self.in_flight == 0 {
                continue;
            }
            let now = Instant::now();
            self.expire(now);
            let Some(&(_, _, deadline)) = self.order.front() else {
                continue;
            };
            let wait = deadline
                .saturating_duration_since(now)
                .min(Duration::from_millis(100));
            let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            });
            events.clear();
            match epoll::wait(&self.ep, spare_capacity(&mut events), Some(&timeout)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(Error::io("epoll_wait", e.into())),
            }
            for ev in &events {
                let slot = ev.data.u64() as usize;
                let Some(flight) = self.slots.get_mut(slot).and_then(Option::take) else {
                    continue;
                };
                self.free.push(slot);
                self.in_flight -= 1;
                let addr = self.addr_of(flight.job);
                let state = match sockopt::socket_error(&flight.fd) {
                    Ok(Ok(())) => open_state(&flight.fd, addr),
                    Ok(Err(Errno::CONNREFUSED)) => PortState::Closed,
                    Ok(Err(e)) => refused_or_filtered(e, addr)?,
                    Err(e) => return Err(Error::io("read connect result", e.into())),
                };
                self.set(flight.job, state);
                // Dropping the socket closes it; an open one was set to reset on close.
            }
        }
    }

    /// Starts the handshake of one job: answered at once, or put in flight.
    fn start(&mut self, job: usize) -> Result<()> {
        let addr = self.addr_of(job);
        let family = usize::from(addr.is_ipv6());
        let fd = match self.spare[family].take() {
            Some(fd) => fd,
            None => rustix::net::socket_with(
                if addr.is_ipv6() {
                    AddressFamily::INET6
                } else {
                    AddressFamily::INET
                },
                SocketType::STREAM,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
                None,
            )
            .map_err(|e| Error::io("open TCP socket", e.into()))?,
        };
        let answer = match rustix::net::connect(&fd, &addr) {
            // Asking again costs one call and usually saves an epoll round trip.
            Err(Errno::INPROGRESS) => match rustix::net::connect(&fd, &addr) {
                Err(Errno::ISCONN) => Ok(()),
                other => other,
            },
            other => other,
        };
        let state = match answer {
            Ok(()) => open_state(&fd, addr),
            Err(Errno::CONNREFUSED) => {
                // A refused socket is back in the closed state: good for another connect.
                self.spare[family] = Some(fd);
                PortState::Closed
            }
            Err(Errno::ALREADY | Errno::INPROGRESS) => {
                self.track(fd, job)?;
                return Ok(());
            }
            Err(e) => refused_or_filtered(e, addr)?,
        };
        self.set(job, state);
        Ok(())
    }

    fn track(&mut self, fd: OwnedFd, job: usize) -> Result<()> {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        epoll::add(
            &self.ep,
            &fd,
            epoll::EventData::new_u64(slot as u64),
            epoll::EventFlags::OUT | epoll::EventFlags::ONESHOT,
        )
        .map_err(|e| Error::io("epoll_ctl", e.into()))?;
        self.generation += 1;
        self.order
            .push_back((slot, self.generation, Instant::now() + self.timeout));
        self.slots[slot] = Some(InFlight {
            fd,
            job,
            generation: self.generation,
        });
        self.in_flight += 1;
        Ok(())
    }

    /// Handshakes past their deadline are filtered; their sockets are closed.
    fn expire(&mut self, now: Instant) {
        while let Some(&(slot, generation, deadline)) = self.order.front() {
            let live = matches!(&self.slots[slot], Some(f) if f.generation == generation);
            if live && deadline > now {
                break;
            }
            self.order.pop_front();
            if live && let Some(flight) = self.slots[slot].take() {
                self.free.push(slot);
                self.in_flight -= 1;
                self.set(flight.job, PortState::Filtered);
            }
        }
    }

    fn results(self) -> Vec<Vec<PortResult>> {
        self.states
            .into_iter()
            .map(|states| {
                states
                    .into_iter()
                    .zip(self.ports)
                    .map(|(state, &port)| PortResult { port, state })
                    .collect()
            })
            .collect()
    }
}

/// A completed handshake: open, unless the socket connected to itself. Connecting to a
/// free port in the ephemeral range can pick that very port as the source: TCP's
/// simultaneous open then connects the socket to itself. Nobody listens there: closed.
/// Either way the socket is set to close with a reset.
fn open_state(fd: &OwnedFd, addr: SocketAddr) -> PortState {
    let _ = sockopt::set_socket_linger(fd, Some(Duration::ZERO));
    if super::tcping::is_self_connect(fd.as_fd(), addr) {
        PortState::Closed
    } else {
        PortState::Open
    }
}

/// What a failed handshake means: unreachable is filtered; anything else (out of
/// descriptors or local ports, a bad address) means the scan itself is broken, and
/// guessing a state would be a lie.
fn refused_or_filtered(e: Errno, addr: SocketAddr) -> Result<PortState> {
    match e {
        Errno::CONNREFUSED => Ok(PortState::Closed),
        Errno::HOSTUNREACH | Errno::NETUNREACH | Errno::TIMEDOUT => Ok(PortState::Filtered),
        e => Err(Error::io(format!("connect {addr}"), e.into())),
    }
}

/// Lets `concurrency` sockets be open at once: raises the soft descriptor limit toward the
/// hard one. Failure is not fatal; the scan then reports the descriptor error.
fn raise_fd_limit(concurrency: usize) {
    crate::socket::raise_nofile_limit((concurrency as u64).saturating_add(64));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists_parse_sort_and_dedup() {
        let l: PortList = "443,22,80,20-23".parse().unwrap();
        assert_eq!(l.ports(), [20, 21, 22, 23, 80, 443]);
        assert_eq!("1-65535".parse::<PortList>().unwrap().ports().len(), 65_535);
        for bad in ["", "0", "70000", "80-22", "a", "1,,2", "5-"] {
            assert!(bad.parse::<PortList>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_long_list_split_over_threads_comes_back_whole_and_in_order() {
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = open.local_addr().unwrap().port();
        let lo = port.saturating_sub(5_000).clamp(1, 65_535 - 9_999);
        let list: PortList = format!("{lo}-{}", lo + 9_999).parse().unwrap();
        let hosts = ["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
        let all = scan_hosts(&hosts, &list, ScanOptions::default()).unwrap();
        assert_eq!(all.len(), 2);
        for (h, results) in all.iter().enumerate() {
            let ports: Vec<u16> = results.iter().map(|r| r.port).collect();
            assert_eq!(ports, list.ports(), "host {h}: every port once, in order");
            let state = results.iter().find(|r| r.port == port).unwrap().state;
            let want = if h == 0 {
                PortState::Open
            } else {
                PortState::Closed
            };
            assert_eq!(state, want, "host {h}");
        }
    }

    #[test]
    fn open_and_closed_on_loopback() {
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open_port = open.local_addr().unwrap().port();
        let closed_port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let list: PortList = format!("{open_port},{closed_port}").parse().unwrap();
        let results = scan("127.0.0.1".parse().unwrap(), &list, ScanOptions::default()).unwrap();
        let state = |p| results.iter().find(|r| r.port == p).unwrap().state;
        assert_eq!(state(open_port), PortState::Open);
        assert_eq!(state(closed_port), PortState::Closed);
    }
}
