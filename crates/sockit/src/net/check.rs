//! Port checks (`connect_ex` of the classic tutorials, `ncat -z` / `nmap -sT`): try a TCP connection to
//! each port, many at once, and classify the answer.
//!
//! - **open**: the handshake completed (the connection is closed at once);
//! - **closed**: the host answered with a reset (`ECONNREFUSED`);
//! - **filtered**: no answer within the timeout, or an ICMP unreachable: something dropped
//!   the SYN (a firewall, a full accept queue, a black hole).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

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
    raise_fd_limit(options.concurrency);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start tokio runtime", e))?;
    let mut results = runtime.block_on(scan_async(host, ports.ports(), options))?;
    results.sort_unstable_by_key(|r| r.port);
    Ok(results)
}

async fn scan_async(host: IpAddr, ports: &[u16], options: ScanOptions) -> Result<Vec<PortResult>> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut results = Vec::with_capacity(ports.len());
    let mut pending = ports.iter().copied();
    let window = options.concurrency.max(1);
    loop {
        while tasks.len() < window {
            let Some(port) = pending.next() else { break };
            tasks.spawn(probe(SocketAddr::new(host, port), options.timeout));
        }
        match tasks.join_next().await {
            Some(Ok(result)) => results.push(result?),
            Some(Err(e)) => return Err(Error::io("port probe", std::io::Error::other(e))),
            None => return Ok(results),
        }
    }
}

async fn probe(addr: SocketAddr, timeout: Duration) -> Result<PortResult> {
    use std::io::ErrorKind::*;
    let state = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Err(_elapsed) => PortState::Filtered,
        // Connecting to a free port in the ephemeral range can pick that very port as the
        // source: TCP's simultaneous open then connects the socket to itself. Nobody
        // listens there, so it is closed.
        Ok(Ok(stream)) if stream.local_addr().ok() == Some(addr) => PortState::Closed,
        Ok(Ok(_stream)) => PortState::Open,
        Ok(Err(e)) if e.kind() == ConnectionRefused => PortState::Closed,
        Ok(Err(e)) if matches!(e.kind(), HostUnreachable | NetworkUnreachable | TimedOut) => {
            PortState::Filtered
        }
        // Out of descriptors or local ports, or a bad address: the scan itself is broken,
        // and guessing a state would be a lie.
        Ok(Err(e)) => return Err(Error::io(format!("connect {addr}"), e)),
    };
    Ok(PortResult {
        port: addr.port(),
        state,
    })
}

/// Lets `concurrency` sockets be open at once: raises the soft descriptor limit toward the
/// hard one. Failure is not fatal; the scan then reports the descriptor error.
fn raise_fd_limit(concurrency: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let want = (concurrency as u64).saturating_add(64);
    if let Some(current) = limit.current
        && current < want
    {
        limit.current = Some(limit.maximum.map_or(want, |max| max.min(want)));
        let _ = setrlimit(Resource::Nofile, limit);
    }
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
