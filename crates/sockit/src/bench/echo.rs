//! Closed-loop echo load: N connections, each keeping K messages of B bytes in flight
//! for a duration, every echoed byte checked.
//!
//! "Closed loop" means a connection sends its next message only when an earlier one has
//! come back, so the offered load adapts to the server and the latency measured is the
//! server's (plus the loopback's), not a queue the generator built up.
//!
//! Latency is per message, from the moment it is queued for `write` to the moment its
//! last byte has come back. Messages still in flight when the duration ends are waited
//! for (and checked) during a grace period, but no longer counted in the rate.
//!
//! Over `tls://` every connection makes its handshake while opening (not in the window);
//! the messages queued in one `writev` go to rustls as one vectored write, so they share
//! records as they would share a TCP segment, and a wake-up reads until the socket and
//! rustls are both empty (epoll cannot see what rustls has already decrypted).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rustix::buffer::spare_capacity;
use rustix::event::epoll;

use super::connect::{self, Target};
use super::json::Object;
use super::pattern::Pattern;
use super::report::{FailureKind, Failures, Latency, new_histogram, per_sec};
use super::{Phase, Progress, SPARE_FDS};
use crate::addr::Endpoint;
use crate::error::{Error, Result};
use crate::socket::{ClientTls, Stream, Wire, raise_nofile_limit};

/// Bytes read per `read` call, one buffer per loop thread.
const READ_BUF: usize = 256 * 1024;
/// Messages handed to one `writev`.
const MAX_IOV: usize = 64;

/// What an echo benchmark does.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// The echo server (tcp, tls or unix).
    pub endpoint: Endpoint,
    /// For a `tls://` endpoint: whom to trust (handshakes are made while opening).
    pub tls: Option<ClientTls>,
    /// Connections.
    pub conns: usize,
    /// Bytes per message.
    pub size: usize,
    /// How long to send load.
    pub duration: Duration,
    /// Messages in flight per connection (1: strict request/response).
    pub pipeline: usize,
    /// Load threads, each with its own epoll loop and share of the connections.
    pub threads: usize,
    /// Connect attempts in flight at once while opening.
    pub connect_concurrency: usize,
    /// How long one connect may take.
    pub connect_timeout: Duration,
    /// After `duration`, how long to wait for the messages still in flight.
    pub grace: Duration,
    /// `None`: closed loop. `Some(r)`: open loop, `r` messages per second in all, spread
    /// evenly over the connections; each message is sent when it is due (or as soon as
    /// a slot in the pipeline frees up, when the server is behind), and its latency is
    /// measured from its scheduled time, as wrk2 does.
    pub rate: Option<f64>,
}

impl EchoConfig {
    /// One connection, 64-byte messages, one in flight, 5 seconds.
    pub fn new(endpoint: Endpoint) -> EchoConfig {
        EchoConfig {
            endpoint,
            tls: None,
            conns: 1,
            size: 64,
            duration: Duration::from_secs(5),
            pipeline: 1,
            threads: 1,
            connect_concurrency: 256,
            connect_timeout: Duration::from_secs(5),
            grace: Duration::from_secs(1),
            rate: None,
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Setting(what.to_owned()));
        if self.conns == 0 {
            return bad("at least one connection is needed");
        }
        if self.size == 0 {
            return bad("messages must be at least 1 byte");
        }
        if self.size > 64 << 20 {
            return bad("messages may be at most 64 MiB");
        }
        if self.pipeline == 0 {
            return bad("at least one message must be in flight");
        }
        if self.threads == 0 {
            return bad("at least one thread is needed");
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return bad("the rate must be a positive number of messages per second");
        }
        Ok(())
    }
}

/// What an echo benchmark measured.
#[derive(Debug, Clone)]
pub struct EchoReport {
    /// The server measured.
    pub endpoint: Endpoint,
    /// Connections asked for.
    pub conns: usize,
    /// Connections that opened.
    pub connected: usize,
    /// Bytes per message.
    pub size: usize,
    /// Messages in flight per connection.
    pub pipeline: usize,
    /// Load threads used.
    pub threads: usize,
    /// The measured window (the configured duration).
    pub duration: Duration,
    /// Messages echoed correctly within the window: the basis of every rate.
    pub msgs: u64,
    /// Messages echoed correctly after the window, during the grace period.
    pub drained: u64,
    /// Messages sent but not echoed by the end of the grace period (a server that
    /// serves one connection at a time leaves the others' messages here).
    pub unfinished: u64,
    /// Latency of the messages counted in `msgs`.
    pub latency: Latency,
    /// Failed connects, connections lost, corrupt echoes.
    pub failures: Failures,
    /// The open loop's rate, `None` for a closed loop.
    pub rate: Option<f64>,
}

impl EchoReport {
    /// Messages per second in the window.
    pub fn msgs_per_sec(&self) -> f64 {
        per_sec(self.msgs as f64, self.duration)
    }

    /// Echoed payload in megabytes (10^6 bytes) per second, one direction.
    pub fn mb_per_sec(&self) -> f64 {
        per_sec(self.msgs as f64 * self.size as f64, self.duration) / 1e6
    }

    /// Every failure, of every kind.
    pub fn errors(&self) -> u64 {
        self.failures.total()
    }

    /// The report as one JSON object (latencies in nanoseconds).
    pub fn to_json(&self) -> String {
        let mut o = Object::new();
        o.str("bench", "echo");
        o.str("endpoint", &self.endpoint.to_string());
        o.num("conns", self.conns);
        o.num("connected", self.connected);
        o.num("size", self.size);
        o.num("pipeline", self.pipeline);
        o.num("threads", self.threads);
        match self.rate {
            Some(r) => o.float("rate", r),
            None => o.raw("rate", "null"),
        }
        o.float("secs", self.duration.as_secs_f64());
        o.num("msgs", self.msgs);
        o.num("drained", self.drained);
        o.num("unfinished", self.unfinished);
        o.float("msgs_per_sec", self.msgs_per_sec());
        o.float("mb_per_sec", self.mb_per_sec());
        o.raw("latency_ns", &self.latency.to_json());
        o.num("errors", self.errors());
        o.raw("failures", &self.failures.to_json());
        o.finish()
    }
}

impl fmt::Display for EchoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "echo {}: {} conns ({} open) × {} B, {} in flight each, {:.2}s, {} thread{}",
            self.endpoint,
            self.conns,
            self.connected,
            self.size,
            self.pipeline,
            self.duration.as_secs_f64(),
            self.threads,
            if self.threads == 1 { "" } else { "s" },
        )?;
        writeln!(
            f,
            "  messages  {} ({:.0}/s, {:.2} MB/s); {} drained after, {} unfinished",
            self.msgs,
            self.msgs_per_sec(),
            self.mb_per_sec(),
            self.drained,
            self.unfinished
        )?;
        match self.rate {
            Some(r) => writeln!(
                f,
                "  latency   {} (open loop at {r:.0}/s: from each message's scheduled time)",
                self.latency
            )?,
            None => writeln!(f, "  latency   {}", self.latency)?,
        }
        write!(f, "  errors    {}", self.failures)
    }
}

/// Runs the benchmark; `progress` is called a few times a second from the calling thread.
pub fn run(config: &EchoConfig, mut progress: impl FnMut(&Progress)) -> Result<EchoReport> {
    config.check()?;
    let target = Target::new(&config.endpoint, config.tls.as_ref())?;
    raise_nofile_limit(config.conns as u64 + SPARE_FDS);

    let began = Instant::now();
    let plan = connect::Plan {
        count: config.conns,
        concurrency: config.connect_concurrency,
        timeout: config.connect_timeout,
        limit: config.connect_timeout.max(Duration::from_secs(10)),
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
    if let Some(e) = opened.none_opened(&config.endpoint, config.conns) {
        return Err(e);
    }
    let connected = opened.streams.len();
    let threads = config.threads.min(connected);
    let mut shares: Vec<Vec<(u64, Wire)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, stream) in opened.streams.into_iter().enumerate() {
        shares[i % threads].push((i as u64, stream));
    }

    let pattern = Pattern::new(config.size);
    let meters: Vec<Meter> = (0..threads).map(|_| Meter::default()).collect();
    let start = Instant::now();
    let clock = Clock {
        start,
        deadline: start + config.duration,
        hard_stop: start + config.duration + config.grace,
    };
    let tallies = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .zip(&meters)
            .map(|(share, meter)| {
                let pattern = &pattern;
                scope.spawn(move || {
                    let mut worker = Worker::new(share, pattern, config, meter)?;
                    worker.run(clock);
                    Ok::<Tally, Error>(worker.tally)
                })
            })
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            let now = Instant::now();
            let (phase, since) = if now < clock.deadline {
                (Phase::Running, start)
            } else {
                (Phase::Draining, clock.deadline)
            };
            progress(&Progress {
                phase,
                elapsed: now.duration_since(since),
                open: meters.iter().map(|m| m.open.load(Ordering::Relaxed)).sum(),
                done: meters.iter().map(|m| m.msgs.load(Ordering::Relaxed)).sum(),
                errors: opened.failures.total()
                    + meters
                        .iter()
                        .map(|m| m.errors.load(Ordering::Relaxed))
                        .sum::<u64>(),
            });
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("a load thread panicked"))
            .collect::<Result<Vec<Tally>>>()
    })?;

    let mut total = Tally::new();
    total.failures = opened.failures;
    for t in &tallies {
        total.merge(t);
    }
    Ok(EchoReport {
        endpoint: config.endpoint.clone(),
        conns: config.conns,
        connected,
        size: config.size,
        pipeline: config.pipeline,
        threads,
        duration: config.duration,
        msgs: total.msgs,
        drained: total.drained,
        unfinished: total.unfinished,
        latency: Latency::from_histogram(&total.hist),
        failures: total.failures,
        rate: config.rate,
    })
}

/// One `writev` for all the slices (`Stream`'s own `Write` writes only the first); over
/// TLS, one vectored write into rustls (the slices share records), then the records out.
fn write_vectored(wire: &mut Wire, iov: &[IoSlice<'_>]) -> std::io::Result<usize> {
    match wire {
        Wire::Plain(Stream::Tcp(s)) => (&*s).write_vectored(iov),
        Wire::Plain(Stream::Unix(s)) => (&*s).write_vectored(iov),
        Wire::Tls(t) => t.write_vectored(iov),
    }
}

/// The three moments of a run.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    deadline: Instant,
    hard_stop: Instant,
}

/// A load thread's counters, published for the progress line (plain stores: one writer).
#[derive(Debug, Default)]
struct Meter {
    msgs: AtomicU64,
    errors: AtomicU64,
    open: AtomicUsize,
}

/// What a load thread counted.
struct Tally {
    hist: Histogram<u64>,
    msgs: u64,
    drained: u64,
    unfinished: u64,
    failures: Failures,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            hist: new_histogram(),
            msgs: 0,
            drained: 0,
            unfinished: 0,
            failures: Failures::default(),
        }
    }

    fn merge(&mut self, other: &Tally) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.msgs += other.msgs;
        self.drained += other.drained;
        self.unfinished += other.unfinished;
        self.failures.merge(&other.failures);
    }
}

/// A message sent (or queued to be) and not yet fully echoed.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    queued: Instant,
    offset: u32,
}

/// One connection's state: its messages in flight, how far each has been written and
/// echoed.
struct Conn {
    stream: Wire,
    id: u64,
    next_seq: u64,
    inflight: VecDeque<InFlight>,
    /// Index in `inflight` of the first message not completely written.
    unsent: usize,
    /// Bytes of that message already written.
    unsent_pos: usize,
    /// Bytes of `inflight[0]` already echoed.
    echoed: usize,
    /// `inflight[0]` had a byte that differs.
    corrupt: bool,
    /// EPOLLOUT is registered (a write could not finish, or TLS records wait).
    want_write: bool,
    /// Open loop: when this connection's next message is scheduled.
    due: Instant,
    /// Open loop: the due time a timer is armed for, so that it is armed once.
    armed: Option<Instant>,
}

struct Worker<'a> {
    ep: OwnedFd,
    conns: Vec<Option<Conn>>,
    pattern: &'a Pattern,
    size: usize,
    pipeline: usize,
    meter: &'a Meter,
    buf: Vec<u8>,
    tally: Tally,
    open: usize,
    in_flight: usize,
    /// Open loop: time between two messages of one connection (conns / rate).
    period: Option<Duration>,
    /// Open loop: connections waiting for their next due time, earliest first.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    rate: Option<f64>,
}

impl<'a> Worker<'a> {
    fn new(
        share: Vec<(u64, Wire)>,
        pattern: &'a Pattern,
        config: &EchoConfig,
        meter: &'a Meter,
    ) -> Result<Worker<'a>> {
        let ep =
            epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| Error::io("epoll", e.into()))?;
        let mut conns = Vec::with_capacity(share.len());
        for (slot, (id, stream)) in share.into_iter().enumerate() {
            epoll::add(
                &ep,
                &stream,
                epoll::EventData::new_u64(slot as u64),
                epoll::EventFlags::IN,
            )
            .map_err(|e| Error::io("epoll_ctl", e.into()))?;
            conns.push(Some(Conn {
                stream,
                id,
                next_seq: 0,
                inflight: VecDeque::with_capacity(config.pipeline),
                unsent: 0,
                unsent_pos: 0,
                echoed: 0,
                corrupt: false,
                want_write: false,
                due: Instant::now(),
                armed: None,
            }));
        }
        Ok(Worker {
            ep,
            open: conns.len(),
            conns,
            pattern,
            size: config.size,
            pipeline: config.pipeline,
            meter,
            buf: vec![0; READ_BUF],
            tally: Tally::new(),
            in_flight: 0,
            period: config
                .rate
                .map(|r| Duration::from_secs_f64(config.conns as f64 / r)),
            timers: BinaryHeap::new(),
            rate: config.rate,
        })
    }

    fn run(&mut self, clock: Clock) {
        self.meter.open.store(self.open, Ordering::Relaxed);
        if let Some(rate) = self.rate {
            // Connection i's first message is due i / rate seconds in: the schedule is
            // spread evenly over time.
            for conn in self.conns.iter_mut().flatten() {
                conn.due = clock.start + Duration::from_secs_f64(conn.id as f64 / rate);
            }
        }
        let now = Instant::now();
        for slot in 0..self.conns.len() {
            self.send(slot, now);
        }
        let mut events = Vec::with_capacity(1024);
        loop {
            let now = Instant::now();
            let sending = now < clock.deadline;
            if now >= clock.hard_stop || self.open == 0 || (!sending && self.in_flight == 0) {
                break;
            }
            let until = if sending {
                clock.deadline
            } else {
                clock.hard_stop
            };
            let mut wait = until
                .duration_since(now)
                .min(Duration::from_millis(100))
                .max(Duration::from_millis(1));
            if sending {
                while let Some(&Reverse((at, slot))) = self.timers.peek() {
                    if at > now {
                        // A due message is sent on time, not at the next millisecond.
                        wait = wait.min(at - now);
                        break;
                    }
                    self.timers.pop();
                    if self.conns[slot]
                        .as_ref()
                        .is_some_and(|c| c.armed == Some(at))
                    {
                        if let Some(c) = self.conns[slot].as_mut() {
                            c.armed = None;
                        }
                        self.send(slot, now);
                    }
                }
            }
            let timeout = rustix::event::Timespec::try_from(wait).expect("small timeout");
            events.clear();
            match epoll::wait(&self.ep, spare_capacity(&mut events), Some(&timeout)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    tracing::error!(error = %e, "epoll_wait failed; ending this load thread");
                    break;
                }
            }
            let now = Instant::now();
            let in_window = now < clock.deadline;
            for ev in &events {
                let slot = ev.data.u64() as usize;
                let flags = ev.flags;
                let writable = flags.contains(epoll::EventFlags::OUT);
                let readable = flags.intersects(
                    epoll::EventFlags::IN | epoll::EventFlags::ERR | epoll::EventFlags::HUP,
                );
                if readable {
                    self.receive(slot, now, in_window);
                }
                if writable || (readable && in_window) {
                    self.send(slot, now);
                }
            }
            self.meter.msgs.store(self.tally.msgs, Ordering::Relaxed);
            self.meter
                .errors
                .store(self.tally.failures.total(), Ordering::Relaxed);
            self.meter.open.store(self.open, Ordering::Relaxed);
        }
        self.tally.unfinished += self.in_flight as u64;
    }

    /// Reads what arrived on `slot` and checks it against what was sent: one `read` on a
    /// plain socket; over TLS, again while rustls holds records already read (epoll will
    /// never announce them), without the extra `read` that would only say `EAGAIN`.
    fn receive(&mut self, slot: usize, now: Instant, in_window: bool) {
        loop {
            let Some(conn) = self.conns[slot].as_mut() else {
                return;
            };
            let n = match conn.stream.read(&mut self.buf) {
                Ok(0) => return self.fail(slot, FailureKind::Closed),
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    return;
                }
                Err(e) => return self.fail(slot, FailureKind::of_io(&e)),
            };
            let mut data = &self.buf[..n];
            while !data.is_empty() {
                let written = if conn.unsent > 0 {
                    self.size
                } else {
                    conn.unsent_pos
                };
                let take = (written - conn.echoed).min(data.len());
                if take == 0 {
                    // More bytes than were sent: not an echo.
                    return self.fail(slot, FailureKind::Unexpected);
                }
                let front = conn.inflight[0];
                if data[..take] != *self.pattern.part(front.offset, conn.echoed, take) {
                    conn.corrupt = true;
                }
                conn.echoed += take;
                data = &data[take..];
                if conn.echoed == self.size {
                    conn.inflight.pop_front();
                    conn.unsent -= 1;
                    conn.echoed = 0;
                    self.in_flight -= 1;
                    if std::mem::take(&mut conn.corrupt) {
                        self.tally.failures.add(FailureKind::Corrupt);
                    } else if in_window {
                        self.tally.msgs += 1;
                        let ns = now.duration_since(front.queued).as_nanos() as u64;
                        self.tally.hist.saturating_record(ns.max(1));
                    } else {
                        self.tally.drained += 1;
                    }
                }
            }
            if !conn.stream.buffered() {
                return;
            }
        }
    }

    /// Tops `slot` up to `pipeline` messages in flight (while the window is open) and
    /// writes what is pending in one `writev`.
    fn send(&mut self, slot: usize, now: Instant) {
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        while conn.inflight.len() < self.pipeline {
            let queued = match self.period {
                None => now,
                Some(_) if conn.due > now => {
                    if conn.armed != Some(conn.due) {
                        conn.armed = Some(conn.due);
                        self.timers.push(Reverse((conn.due, slot)));
                    }
                    break;
                }
                Some(period) => {
                    let due = conn.due;
                    conn.due += period;
                    due
                }
            };
            let offset = Pattern::offset(conn.id, conn.next_seq);
            conn.next_seq += 1;
            conn.inflight.push_back(InFlight { queued, offset });
            self.in_flight += 1;
        }
        while conn.unsent < conn.inflight.len() {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            for (i, m) in conn
                .inflight
                .iter()
                .skip(conn.unsent)
                .take(MAX_IOV)
                .enumerate()
            {
                let msg = self.pattern.message(m.offset);
                iov[i] = IoSlice::new(if i == 0 { &msg[conn.unsent_pos..] } else { msg });
                count = i + 1;
            }
            match write_vectored(&mut conn.stream, &iov[..count]) {
                Ok(n) => {
                    let mut n = n;
                    while n > 0 {
                        let left = self.size - conn.unsent_pos;
                        if n >= left {
                            n -= left;
                            conn.unsent += 1;
                            conn.unsent_pos = 0;
                        } else {
                            conn.unsent_pos += n;
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return self.fail(slot, FailureKind::of_io(&e)),
            }
        }
        // TLS records rustls took but the socket did not (yet).
        if conn.stream.wants_write() {
            match conn.stream.write_pending() {
                Ok(()) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => return self.fail(slot, FailureKind::of_io(&e)),
            }
        }
        let want_write = conn.unsent < conn.inflight.len() || conn.stream.wants_write();
        if want_write != conn.want_write {
            conn.want_write = want_write;
            let mut flags = epoll::EventFlags::IN;
            if want_write {
                flags |= epoll::EventFlags::OUT;
            }
            let data = epoll::EventData::new_u64(slot as u64);
            if let Err(e) = epoll::modify(&self.ep, &conn.stream, data, flags) {
                self.fail(slot, FailureKind::of_io(&e.into()));
            }
        }
    }

    /// Ends the connection in `slot`: its messages in flight will never come back.
    fn fail(&mut self, slot: usize, kind: FailureKind) {
        if let Some(conn) = self.conns[slot].take() {
            let _ = epoll::delete(&self.ep, &conn.stream);
            self.tally.failures.add(kind);
            self.tally.unfinished += conn.inflight.len() as u64;
            self.in_flight -= conn.inflight.len();
            self.open -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> EchoReport {
        let mut failures = Failures::default();
        failures.add(FailureKind::Corrupt);
        EchoReport {
            endpoint: "127.0.0.1:7000".parse().unwrap(),
            conns: 50,
            connected: 50,
            size: 16384,
            pipeline: 16,
            threads: 1,
            duration: Duration::from_millis(2500),
            msgs: 100_000,
            drained: 800,
            unfinished: 0,
            latency: Latency {
                count: 100_000,
                p50: Duration::from_micros(120),
                ..Latency::default()
            },
            failures,
            rate: None,
        }
    }

    #[test]
    fn rates_are_per_second_of_the_window() {
        let r = report();
        assert_eq!(r.msgs_per_sec(), 40_000.0);
        // 40,000 × 16,384 bytes per second, in 10^6 bytes.
        assert!((r.mb_per_sec() - 655.36).abs() < 1e-9);
        assert_eq!(r.errors(), 1);
        let zero = EchoReport {
            duration: Duration::ZERO,
            ..report()
        };
        assert_eq!(zero.msgs_per_sec(), 0.0);
    }

    #[test]
    fn json_and_text_carry_every_figure() {
        let r = report();
        let json = r.to_json();
        for field in [
            r#""endpoint":"tcp://127.0.0.1:7000""#,
            r#""msgs":100000"#,
            r#""drained":800"#,
            r#""msgs_per_sec":40000.000"#,
            r#""mb_per_sec":655.360"#,
            r#""p50":120000"#,
            r#""errors":1"#,
            r#""failures":{"corrupt":1}"#,
        ] {
            assert!(json.contains(field), "{field} missing from {json}");
        }
        let text = r.to_string();
        assert!(text.contains("40000/s, 655.36 MB/s"), "{text}");
        assert!(text.contains("p50 120µs"), "{text}");
        assert!(text.contains("errors    1 (corrupt 1)"), "{text}");
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let base = EchoConfig::new("127.0.0.1:7000".parse().unwrap());
        assert!(base.check().is_ok());
        for bad in [
            EchoConfig {
                conns: 0,
                ..base.clone()
            },
            EchoConfig {
                size: 0,
                ..base.clone()
            },
            EchoConfig {
                pipeline: 0,
                ..base.clone()
            },
            EchoConfig {
                threads: 0,
                ..base.clone()
            },
        ] {
            assert!(matches!(bad.check(), Err(Error::Setting(_))));
        }
    }
}
