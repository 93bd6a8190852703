//! Many idle connections: open N, hold them for a while, then ping each one.
//!
//! This measures what a server does with connections that cost it nothing but memory:
//! whether it accepts them all, keeps them all (no idle reaping, no descriptor limit hit
//! halfway), and still answers every one of them afterwards. A ping is eight bytes the
//! echo server must send back unchanged.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::epoll;

use super::connect::{self, Target};
use super::json::Object;
use super::report::{FailureKind, Failures, Latency, format_duration, new_histogram};
use super::{Phase, Progress, SPARE_FDS};
use crate::addr::Endpoint;
use crate::error::{Error, Result};
use crate::socket::{ClientTls, Wire, raise_nofile_limit};

/// Bytes in one ping.
const PING: usize = 8;

/// What a connections benchmark does.
#[derive(Debug, Clone)]
pub struct ConnsConfig {
    /// The echo server (tcp, tls or unix).
    pub endpoint: Endpoint,
    /// For a `tls://` endpoint: whom to trust. Each connection then makes a full
    /// handshake before it counts as open.
    pub tls: Option<ClientTls>,
    /// Connections to open.
    pub conns: usize,
    /// How long to hold them, idle, before pinging.
    pub hold: Duration,
    /// Connect attempts in flight at once.
    pub connect_concurrency: usize,
    /// How long one connect may take.
    pub connect_timeout: Duration,
    /// How long opening may take in all; attempts not started by then are skipped.
    pub open_limit: Duration,
    /// How long the pings may take, all of them together.
    pub ping_timeout: Duration,
}

impl ConnsConfig {
    /// 1,000 connections held for 5 seconds.
    pub fn new(endpoint: Endpoint) -> ConnsConfig {
        ConnsConfig {
            endpoint,
            tls: None,
            conns: 1000,
            hold: Duration::from_secs(5),
            connect_concurrency: 256,
            connect_timeout: Duration::from_secs(5),
            open_limit: Duration::from_secs(60),
            ping_timeout: Duration::from_secs(10),
        }
    }
}

/// What a connections benchmark found.
#[derive(Debug, Clone)]
pub struct ConnsReport {
    /// The server measured.
    pub endpoint: Endpoint,
    /// Connections asked for.
    pub conns: usize,
    /// Connections that opened.
    pub opened: usize,
    /// Connections still open when the hold ended.
    pub held: usize,
    /// Connections that echoed their ping correctly.
    pub healthy: usize,
    /// How long opening took.
    pub open_time: Duration,
    /// How long the connections were held.
    pub hold: Duration,
    /// Ping round trips of the healthy connections (all pinged at once).
    pub ping: Latency,
    /// What went wrong with the others, by kind.
    pub failures: Failures,
}

impl ConnsReport {
    /// The report as one JSON object (latencies in nanoseconds).
    pub fn to_json(&self) -> String {
        let mut o = Object::new();
        o.str("bench", "conns");
        o.str("endpoint", &self.endpoint.to_string());
        o.num("conns", self.conns);
        o.num("opened", self.opened);
        o.num("held", self.held);
        o.num("healthy", self.healthy);
        o.float("open_secs", self.open_time.as_secs_f64());
        o.float("hold_secs", self.hold.as_secs_f64());
        o.raw("ping_ns", &self.ping.to_json());
        o.num("errors", self.failures.total());
        o.raw("failures", &self.failures.to_json());
        o.finish()
    }
}

impl fmt::Display for ConnsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conns {}: {} connections", self.endpoint, self.conns)?;
        writeln!(
            f,
            "  opened    {} in {}",
            self.opened,
            format_duration(self.open_time)
        )?;
        writeln!(
            f,
            "  held      {} for {}",
            self.held,
            format_duration(self.hold)
        )?;
        writeln!(f, "  healthy   {} (ping {})", self.healthy, self.ping)?;
        write!(f, "  errors    {}", self.failures)
    }
}

struct Held {
    stream: Wire,
    got: [u8; PING],
    got_len: usize,
    sent: Instant,
}

impl Held {
    fn token(slot: usize) -> [u8; PING] {
        let mut t = *b"ping\0\0\0\0";
        t[4..].copy_from_slice(&(slot as u32).to_be_bytes());
        t
    }
}

/// Runs the benchmark; `progress` is called a few times a second.
pub fn run(config: &ConnsConfig, mut progress: impl FnMut(&Progress)) -> Result<ConnsReport> {
    if config.conns == 0 {
        return Err(Error::Setting("at least one connection is needed".into()));
    }
    let target = Target::new(&config.endpoint, config.tls.as_ref())?;
    raise_nofile_limit(config.conns as u64 + SPARE_FDS);

    let began = Instant::now();
    let plan = connect::Plan {
        count: config.conns,
        concurrency: config.connect_concurrency,
        timeout: config.connect_timeout,
        limit: config.open_limit,
    };
    let mut opened = connect::open(&target, plan, &mut |open, errors| {
        progress(&Progress {
            phase: Phase::Connecting,
            elapsed: began.elapsed(),
            open,
            done: 0,
            errors,
        });
    })?;
    let open_time = began.elapsed();
    if let Some(e) = opened.none_opened(&config.endpoint, config.conns) {
        return Err(e);
    }
    let count = opened.streams.len();
    let mut failures = opened.failures;

    let ep =
        epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| Error::io("epoll", e.into()))?;
    let mut conns: Vec<Option<Held>> = Vec::with_capacity(count);
    for (slot, stream) in opened.streams.into_iter().enumerate() {
        let data = epoll::EventData::new_u64(slot as u64);
        match epoll::add(&ep, &stream, data, epoll::EventFlags::IN) {
            Ok(()) => conns.push(Some(Held {
                stream,
                got: [0; PING],
                got_len: 0,
                sent: began,
            })),
            Err(e) => {
                failures.add(FailureKind::of_io(&e.into()));
                conns.push(None);
            }
        }
    }
    let mut live = conns.iter().filter(|c| c.is_some()).count();
    let mut events = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];

    // Hold: nothing should arrive; a readable connection was closed, reset or is chatty.
    let hold_start = Instant::now();
    let hold_end = hold_start + config.hold;
    loop {
        let now = Instant::now();
        progress(&Progress {
            phase: Phase::Holding,
            elapsed: now.duration_since(hold_start),
            open: live,
            done: 0,
            errors: failures.total(),
        });
        if now >= hold_end {
            break;
        }
        let wait = hold_end.duration_since(now).min(Duration::from_millis(250));
        wait_events(&ep, &mut events, wait)?;
        for ev in &events {
            let slot = ev.data.u64() as usize;
            let Some(held) = conns[slot].as_mut() else {
                continue;
            };
            // Over TLS the server's session tickets arrive now: read, and no plaintext.
            let kind = match held.stream.read(&mut buf) {
                Ok(0) => FailureKind::Closed,
                Ok(_) => FailureKind::Unexpected,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    continue;
                }
                Err(e) => FailureKind::of_io(&e),
            };
            drop_conn(&ep, &mut conns[slot], &mut live);
            failures.add(kind);
        }
    }
    let held = live;

    // Ping: every held connection at once, then collect the echoes.
    let ping_start = Instant::now();
    for (slot, entry) in conns.iter_mut().enumerate() {
        let Some(held) = entry.as_mut() else {
            continue;
        };
        held.sent = Instant::now();
        let kind = match held.stream.write(&Held::token(slot)) {
            Ok(PING) => continue,
            // A fresh socket's buffer always takes eight bytes; anything else is odd.
            Ok(_) => FailureKind::Other,
            Err(e) => FailureKind::of_io(&e),
        };
        drop_conn(&ep, entry, &mut live);
        failures.add(kind);
    }
    let mut pending = live;
    let mut hist = new_histogram();
    let mut healthy = 0usize;
    let ping_end = ping_start + config.ping_timeout;
    let mut last_report = ping_start;
    while pending > 0 {
        let now = Instant::now();
        if now >= ping_end {
            break;
        }
        if now.duration_since(last_report) >= Duration::from_millis(200) {
            last_report = now;
            progress(&Progress {
                phase: Phase::Pinging,
                elapsed: now.duration_since(ping_start),
                open: held,
                done: healthy as u64,
                errors: failures.total(),
            });
        }
        let wait = ping_end.duration_since(now).min(Duration::from_millis(200));
        wait_events(&ep, &mut events, wait)?;
        let now = Instant::now();
        for ev in &events {
            let slot = ev.data.u64() as usize;
            let Some(h) = conns[slot].as_mut() else {
                continue;
            };
            // Over TLS a read may leave decrypted bytes in the stream that epoll cannot
            // announce: read until the ping is whole or nothing is left.
            let outcome = match read_ping(h) {
                Ok(0) => Some(FailureKind::Closed),
                Ok(_) => {
                    if h.got_len < PING {
                        continue;
                    }
                    if h.got == Held::token(slot) {
                        let ns = now.duration_since(h.sent).as_nanos() as u64;
                        hist.saturating_record(ns.max(1));
                        None
                    } else {
                        Some(FailureKind::Corrupt)
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    continue;
                }
                Err(e) => Some(FailureKind::of_io(&e)),
            };
            pending -= 1;
            match outcome {
                None => {
                    healthy += 1;
                    // Stays open (and counted in `live`) until the end, as it was held.
                    let _ = epoll::delete(&ep, &h.stream);
                }
                Some(kind) => {
                    drop_conn(&ep, &mut conns[slot], &mut live);
                    failures.add(kind);
                }
            }
        }
    }
    failures.add_n(FailureKind::Timeout, pending as u64);
    progress(&Progress {
        phase: Phase::Pinging,
        elapsed: ping_start.elapsed(),
        open: held,
        done: healthy as u64,
        errors: failures.total(),
    });
    Ok(ConnsReport {
        endpoint: config.endpoint.clone(),
        conns: config.conns,
        opened: count,
        held,
        healthy,
        open_time,
        hold: config.hold,
        ping: Latency::from_histogram(&hist),
        failures,
    })
}

/// Reads what has come of `h`'s ping; `Ok(0)` is the server's close.
fn read_ping(h: &mut Held) -> std::io::Result<usize> {
    let mut total = 0;
    while h.got_len < PING {
        match h.stream.read(&mut h.got[h.got_len..]) {
            Ok(0) if total == 0 => return Ok(0),
            Ok(0) => break,
            Ok(n) => {
                h.got_len += n;
                total += n;
            }
            Err(e) if total > 0 && e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

fn wait_events(
    ep: &std::os::fd::OwnedFd,
    events: &mut Vec<epoll::Event>,
    wait: Duration,
) -> Result<()> {
    let timeout = rustix::event::Timespec::try_from(wait.max(Duration::from_millis(1)))
        .expect("small timeout");
    events.clear();
    match epoll::wait(ep, spare_capacity(events), Some(&timeout)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(Error::io("epoll_wait", e.into())),
    }
}

fn drop_conn(ep: &std::os::fd::OwnedFd, entry: &mut Option<Held>, live: &mut usize) {
    if let Some(held) = entry.take() {
        let _ = epoll::delete(ep, &held.stream);
        *live -= 1;
    }
}
