//! The chat load generator (`sockit bench chat`): fan-out load on one or more chat
//! servers, measuring deliveries per second, delivery latency and lost lines.
//!
//! `clients` connections join the same room (spread round-robin over the targets, so a
//! cluster is loaded evenly); the first `senders` of them each send `rate` lines per
//! second for the duration. Every line carries its sender's sequence number and the time
//! it was sent (nanoseconds since the run started, on this process's monotonic clock), so
//! every receiver measures the delivery latency of every line and notices gaps. After the
//! senders stop, the run waits until every line has arrived (or nothing has arrived for a
//! while), then counts: a line is lost when a client that should have got it did not.
//! Clients that the server disconnected as too slow are counted apart: the lines they
//! missed are lost to clients that did not keep up, the rest to clients that did.
//!
//! # Cost
//! Everything runs on one thread (pin it with `taskset` to keep it off the server's core),
//! and the time a line waits in this process before it is read counts into the latency
//! measured, so the receive path is lean: one level-triggered `epoll` loop over every
//! connection, one `read` per readable connection per wake-up into one shared buffer,
//! lines parsed in place (`memchr`), per-client counters in flat arrays, nothing allocated
//! per line. A receiver's time stamp is taken once per `read`, right after it returns.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rustix::buffer::spare_capacity;
use rustix::event::epoll;

use super::connect::{self, Target};
use crate::addr::Endpoint;
use crate::error::{Error, Result};
use crate::proto::chat::{NodeId, RoomName};
use crate::socket::Stream;

/// After the senders stop, how long the run waits with no line arriving before it counts
/// the missing ones as lost.
const DRAIN_PATIENCE: Duration = Duration::from_secs(5);

/// The longest wait for the last lines after the senders stop.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// Bytes read at a time (one buffer for every connection: a read takes what is there).
const READ_BUF: usize = 256 * 1024;

/// Most bytes of an unfinished line carried from one read to the next.
const CARRY_MAX: usize = 64 * 1024;

/// Clients that say hello at a time while setting up: each join notice goes to everyone,
/// so pacing the hellos (and reading the notices in between) keeps them from piling up.
const HELLO_BATCH: usize = 100;

/// After the last client joined, the wait before sending: the join notices of the last
/// clients are still travelling to the first ones.
const SETTLE: Duration = Duration::from_millis(500);

/// How long one connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Chat servers; clients are spread over them round-robin.
    pub targets: Vec<Endpoint>,
    /// Connections, senders included.
    pub clients: usize,
    /// How many of the clients send.
    pub senders: usize,
    /// Lines per second per sender.
    pub rate: f64,
    /// How long the senders send.
    pub duration: Duration,
    /// Bytes per line sent (at least what the sequence number and time stamp need).
    pub size: usize,
    /// The room everyone joins (`None`: stay in the server's default room).
    pub room: Option<RoomName>,
    /// Longest wait for every client to connect and join.
    pub setup_timeout: Duration,
    /// Called as the run moves on (a script samples the server's CPU time there).
    pub progress: Option<fn(Phase)>,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Every client joined; the senders start now.
    Sending,
    /// The senders stopped and every line arrived (or the wait for them ended).
    Drained,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            targets: Vec::new(),
            clients: 100,
            senders: 10,
            rate: 100.0,
            duration: Duration::from_secs(10),
            size: 64,
            room: None,
            setup_timeout: Duration::from_secs(60),
            progress: None,
        }
    }
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Connections.
    pub clients: usize,
    /// Senders among them.
    pub senders: usize,
    /// How long the senders sent.
    pub duration: Duration,
    /// Lines sent.
    pub sent: u64,
    /// Deliveries due: every line to every other client.
    pub expected: u64,
    /// Deliveries that arrived.
    pub delivered: u64,
    /// Deliveries that arrived while the senders were sending, per second.
    pub delivered_per_sec: f64,
    /// `expected - delivered`.
    pub lost: u64,
    /// Lines lost by clients that were not disconnected as too slow.
    pub lost_kept_up: u64,
    /// Clients the server disconnected as too slow.
    pub slow_disconnected: usize,
    /// Clients whose connection ended otherwise.
    pub dropped: usize,
    /// Lines that arrived out of their sender's order (or after a gap).
    pub gaps: u64,
    /// Median delivery latency.
    pub p50: Duration,
    /// 99th percentile delivery latency.
    pub p99: Duration,
    /// 99.9th percentile delivery latency.
    pub p999: Duration,
    /// Slowest delivery.
    pub max: Duration,
    /// Time to connect and join every client.
    pub setup: Duration,
}

/// The counts of a run, per client in flat arrays.
struct Stats {
    start: Instant,
    /// When the senders stop; deliveries after it are not counted in the rate.
    stop_ns: u64,
    senders: usize,
    latency: Histogram<u64>,
    /// Data lines received, per client.
    received: Vec<u64>,
    received_in_window: u64,
    total_received: u64,
    /// Last sequence number seen, per client and sender (`client * senders + sender`).
    last_seq: Vec<u64>,
    gaps: u64,
    /// Lines sent, per sender.
    sent: Vec<u64>,
    joined: usize,
    too_slow: Vec<bool>,
    ended: Vec<bool>,
    /// A setup failure (nick refused, ...), reported instead of a result.
    failure: Option<String>,
}

impl Stats {
    fn new(clients: usize, senders: usize) -> Result<Stats> {
        Ok(Stats {
            start: Instant::now(),
            stop_ns: u64::MAX,
            senders,
            latency: Histogram::new_with_bounds(1_000, 120_000_000_000, 3)
                .map_err(|e| Error::Bench(e.to_string()))?,
            received: vec![0; clients],
            received_in_window: 0,
            total_received: 0,
            last_seq: vec![0; clients * senders],
            gaps: 0,
            sent: vec![0; senders],
            joined: 0,
            too_slow: vec![false; clients],
            ended: vec![false; clients],
            failure: None,
        })
    }

    /// One data line received by client `me` at `now`: `<bkTAG_SENDER> SEQ TIME padding`.
    fn record(&mut self, me: usize, line: &[u8], now: u64) {
        let Some(close) = memchr::memchr(b'>', line) else {
            return;
        };
        let Some(us) = memchr::memrchr(b'_', &line[..close]) else {
            return;
        };
        let Some(sender) = number(&line[us + 1..close]) else {
            return;
        };
        let mut rest = &line[close + 1..];
        let (Some(seq), Some(sent_at)) = (field(&mut rest), field(&mut rest)) else {
            return;
        };
        let sender = sender as usize;
        if sender >= self.senders {
            return;
        }
        let last = &mut self.last_seq[me * self.senders + sender];
        if seq != *last + 1 {
            self.gaps += 1;
        }
        *last = seq;
        self.received[me] += 1;
        self.total_received += 1;
        if sent_at < self.stop_ns {
            self.received_in_window += 1;
        }
        let _ = self.latency.record(now.saturating_sub(sent_at).max(1_000));
    }

    /// Deliveries due to client `i`: every line of every other sender.
    fn expected_for(&self, i: usize) -> u64 {
        let all: u64 = self.sent.iter().sum();
        all - self.sent.get(i).copied().unwrap_or(0)
    }

    /// Every line to every client but its sender.
    fn expected_total(&self) -> u64 {
        let all: u64 = self.sent.iter().sum();
        all * (self.received.len() as u64 - 1)
    }
}

/// A space-separated decimal field, taken off the front of `rest`.
fn field(rest: &mut &[u8]) -> Option<u64> {
    let s = rest.trim_ascii_start();
    let end = memchr::memchr(b' ', s).unwrap_or(s.len());
    *rest = &s[end..];
    number(&s[..end])
}

fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// One connection of the run.
struct Client {
    stream: Stream,
    /// The start of a line that the last read ended inside.
    partial: Vec<u8>,
    /// Its own join notice, `* NICK joined ROOM`: seen once it has its nick and room.
    joined_notice: Vec<u8>,
    joined: bool,
    open: bool,
}

/// The epoll loop over every client.
struct Clients {
    ep: OwnedFd,
    events: Vec<epoll::Event>,
    buf: Vec<u8>,
    clients: Vec<Client>,
    nicks: Vec<String>,
    stats: Stats,
}

impl Clients {
    /// Waits up to `wait` for input, and takes in whatever arrived.
    fn poll(&mut self, wait: Duration) -> Result<()> {
        let timeout = rustix::event::Timespec::try_from(wait).expect("a short wait");
        self.events.clear();
        match epoll::wait(&self.ep, spare_capacity(&mut self.events), Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::io("epoll_wait", e.into())),
        }
        for k in 0..self.events.len() {
            let i = self.events[k].data.u64() as usize;
            self.read(i);
        }
        Ok(())
    }

    /// One read from client `i`, and the lines in it.
    fn read(&mut self, i: usize) {
        let Clients {
            ep,
            buf,
            clients,
            nicks,
            stats,
            ..
        } = self;
        let c = &mut clients[i];
        if !c.open {
            return;
        }
        let carried = c.partial.len();
        buf[..carried].copy_from_slice(&c.partial);
        let n = match (&c.stream).read(&mut buf[carried..]) {
            Ok(0) => {
                c.open = false;
                stats.ended[i] = true;
                let _ = epoll::delete(&*ep, &c.stream);
                return;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return;
            }
            Err(_) => {
                c.open = false;
                stats.ended[i] = true;
                let _ = epoll::delete(&*ep, &c.stream);
                return;
            }
        };
        let now = stats.start.elapsed().as_nanos() as u64;
        let data = &buf[..carried + n];
        let mut at = 0;
        while let Some(k) = memchr::memchr(b'\n', &data[at..]) {
            let line = &data[at..at + k];
            at += k + 1;
            if line.first() == Some(&b'<') {
                stats.record(i, line, now);
            } else if !c.joined && line.starts_with(&c.joined_notice) {
                c.joined = true;
                stats.joined += 1;
            } else if line.starts_with(b"! too slow") {
                stats.too_slow[i] = true;
            } else if line.starts_with(b"! ") && !c.joined {
                let why = String::from_utf8_lossy(line);
                stats
                    .failure
                    .get_or_insert_with(|| format!("{} was refused: {why}", nicks[i]));
            }
        }
        c.partial.clear();
        // A server's lines are a few KiB at most; more without a newline is not chat.
        if data.len() - at <= CARRY_MAX {
            c.partial.extend_from_slice(&data[at..]);
        }
    }
}

/// A sender's progress through its lines.
struct Sender {
    /// When its first line is due, from the start.
    offset: Duration,
    /// The next line's sequence number (from 1).
    seq: u64,
    /// Bytes the socket did not take yet.
    backlog: Vec<u8>,
}

/// Runs the load and reports.
pub fn run(options: &Options) -> Result<Report> {
    if options.targets.is_empty() || options.clients < 2 || options.senders == 0 {
        return Err(Error::Bench(
            "need a target, at least 2 clients and 1 sender".into(),
        ));
    }
    if options.senders > options.clients {
        return Err(Error::Bench("more senders than clients".into()));
    }
    if options.rate <= 0.0 || options.rate.is_nan() {
        return Err(Error::Bench("the rate must be positive".into()));
    }
    let n = options.clients;
    let setup_started = Instant::now();
    let mut lp = connect_all(options)?;

    // Hellos, a batch at a time; every client has its nick and room once it has seen its
    // own join notice.
    let deadline = setup_started + options.setup_timeout;
    let mut hellos = 0;
    while lp.stats.joined < n {
        if let Some(f) = &lp.stats.failure {
            return Err(Error::Bench(f.clone()));
        }
        if Instant::now() > deadline {
            return Err(Error::Bench(format!(
                "only {} of {n} clients joined within {:?}",
                lp.stats.joined, options.setup_timeout
            )));
        }
        let batch_end = (hellos + HELLO_BATCH).min(n);
        for i in hellos..batch_end {
            let mut hello = format!("{}\n", lp.nicks[i]);
            if let Some(room) = &options.room {
                hello.push_str(&format!("/join {room}\n"));
            }
            // A few dozen bytes on a fresh connection: the socket takes them whole.
            (&lp.clients[i].stream)
                .write_all(hello.as_bytes())
                .map_err(|e| Error::io(format!("hello from client {i}"), e))?;
        }
        hellos = batch_end;
        lp.poll(Duration::from_millis(if hellos < n { 1 } else { 20 }))?;
    }
    let settle_end = Instant::now() + SETTLE;
    while let Some(left) = settle_end.checked_duration_since(Instant::now()) {
        lp.poll(left)?;
    }
    let setup = setup_started.elapsed();

    let start = Instant::now();
    lp.stats.start = start;
    lp.stats.stop_ns = options.duration.as_nanos() as u64;
    if let Some(progress) = options.progress {
        progress(Phase::Sending);
    }
    send_all(&mut lp, options, start)?;

    // The deliveries of the last lines.
    let mut last_total = lp.stats.total_received;
    let mut last_progress = Instant::now();
    let drain_deadline = Instant::now() + DRAIN_LIMIT;
    while lp.stats.total_received < lp.stats.expected_total() {
        lp.poll(Duration::from_millis(50))?;
        let now = Instant::now();
        if lp.stats.total_received != last_total {
            last_total = lp.stats.total_received;
            last_progress = now;
        } else if now.duration_since(last_progress) > DRAIN_PATIENCE || now > drain_deadline {
            break;
        }
    }
    if let Some(progress) = options.progress {
        progress(Phase::Drained);
    }
    Ok(report(&lp.stats, options, setup))
}

/// Connects every client (spread round-robin over the targets) and registers it.
fn connect_all(options: &Options) -> Result<Clients> {
    let n = options.clients;
    let t = options.targets.len();
    let mut per_target = Vec::with_capacity(t);
    for (k, endpoint) in options.targets.iter().enumerate() {
        let target = Target::new(endpoint, None)?;
        // Clients k, k + t, k + 2t, ... go to target k.
        let count = n / t + usize::from(k < n % t);
        let plan = connect::Plan {
            count,
            concurrency: 256,
            timeout: CONNECT_TIMEOUT,
            limit: options.setup_timeout,
        };
        let opened = connect::open(&target, plan, &mut |_, _| {})?;
        if opened.streams.len() < count {
            let why = opened
                .first_error
                .map_or_else(|| "no error reported".to_string(), |e| e.to_string());
            return Err(Error::Bench(format!(
                "connect {endpoint}: {} of {count} connections opened ({why})",
                opened.streams.len()
            )));
        }
        per_target.push(opened.into_plain().into_iter());
    }
    let ep =
        epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| Error::io("epoll", e.into()))?;
    let tag = NodeId::random().0 as u16;
    let room = options
        .room
        .as_ref()
        .map_or_else(String::new, |r| r.to_string());
    let mut clients = Vec::with_capacity(n);
    let mut nicks = Vec::with_capacity(n);
    for i in 0..n {
        let stream = per_target[i % t].next().expect("one stream per client");
        epoll::add(
            &ep,
            &stream,
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN,
        )
        .map_err(|e| Error::io("epoll_ctl", e.into()))?;
        let nick = format!("bk{tag:04x}_{i}");
        clients.push(Client {
            stream,
            partial: Vec::new(),
            joined_notice: format!("* {nick} joined {room}").into_bytes(),
            joined: false,
            open: true,
        });
        nicks.push(nick);
    }
    Ok(Clients {
        ep,
        events: Vec::with_capacity(1024),
        buf: vec![0; CARRY_MAX + READ_BUF],
        clients,
        nicks,
        stats: Stats::new(n, options.senders)?,
    })
}

/// Sends every sender's lines on schedule, taking in deliveries meanwhile.
fn send_all(lp: &mut Clients, options: &Options, start: Instant) -> Result<()> {
    let period = Duration::from_secs_f64(1.0 / options.rate);
    let count = (options.duration.as_secs_f64() / period.as_secs_f64()).floor() as u64;
    // Senders start spread over one period, not all on the same tick.
    let mut senders: Vec<Sender> = (0..options.senders)
        .map(|j| Sender {
            offset: period.mul_f64((j as f64 * 0.618_034) % 1.0),
            seq: 1,
            backlog: Vec::new(),
        })
        .collect();
    let due = |s: &Sender| start + s.offset + period.mul_f64((s.seq - 1) as f64);
    let mut line = Vec::with_capacity(options.size + 32);
    loop {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for (j, s) in senders.iter_mut().enumerate() {
            while s.seq <= count && due(s) <= now {
                let at = start.elapsed().as_nanos() as u64;
                line.clear();
                let _ = write!(line, "{} {at} ", s.seq);
                line.resize(line.len().max(options.size.saturating_sub(1)), b'x');
                line.push(b'\n');
                s.backlog.extend_from_slice(&line);
                lp.stats.sent[j] = s.seq;
                s.seq += 1;
            }
            if !s.backlog.is_empty() {
                match (&lp.clients[j].stream).write(&s.backlog) {
                    Ok(k) => drop(s.backlog.drain(..k)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(Error::io(format!("sender {j}"), e)),
                }
            }
            if s.seq <= count {
                next = Some(next.map_or(due(s), |t| t.min(due(s))));
            } else if !s.backlog.is_empty() {
                next = Some(now + Duration::from_millis(1));
            }
        }
        let Some(next) = next else {
            return Ok(());
        };
        lp.poll(next.saturating_duration_since(Instant::now()))?;
    }
}

fn report(s: &Stats, options: &Options, setup: Duration) -> Report {
    let n = options.clients;
    let expected = s.expected_total();
    let lost_kept_up = (0..n)
        .filter(|&i| !s.too_slow[i])
        .map(|i| s.expected_for(i).saturating_sub(s.received[i]))
        .sum();
    let q = |p: f64| Duration::from_nanos(s.latency.value_at_quantile(p));
    Report {
        clients: n,
        senders: options.senders,
        duration: options.duration,
        sent: s.sent.iter().sum(),
        expected,
        delivered: s.total_received,
        delivered_per_sec: s.received_in_window as f64 / options.duration.as_secs_f64(),
        lost: expected.saturating_sub(s.total_received),
        lost_kept_up,
        slow_disconnected: s.too_slow.iter().filter(|&&t| t).count(),
        dropped: s
            .ended
            .iter()
            .zip(&s.too_slow)
            .filter(|(e, t)| **e && !**t)
            .count(),
        gaps: s.gaps,
        p50: q(0.5),
        p99: q(0.99),
        p999: q(0.999),
        max: Duration::from_nanos(s.latency.max()),
        setup,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_are_parsed_and_gaps_counted() {
        let mut s = Stats::new(2, 2).unwrap();
        s.stop_ns = 10_000_000;
        s.sent = vec![3, 0];
        s.record(1, b"<bk00ff_0> 1 1000000 xxxx", 3_000_000);
        s.record(1, b"<bk00ff_0> 3 2000000 xxxx", 4_000_000);
        s.record(1, b"<someone> hello", 4_000_000);
        s.record(1, b"<bk00ff_9> 1 1 x", 4_000_000);
        assert_eq!(s.received[1], 2);
        assert_eq!(s.gaps, 1);
        assert_eq!(s.latency.len(), 2);
        assert_eq!(s.expected_for(1), 3);
        assert_eq!(s.expected_for(0), 0);
        assert_eq!(s.expected_total(), 3);
        assert_eq!(number(b"12345"), Some(12345));
        assert_eq!(number(b"12a"), None);
        let mut rest: &[u8] = b"  12 34 xx";
        assert_eq!(field(&mut rest), Some(12));
        assert_eq!(field(&mut rest), Some(34));
        assert_eq!(field(&mut rest), None);
    }
}
