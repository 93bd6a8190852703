//! HTTP/1.1 load (`sockit bench http`): N keep-alive connections sending one request
//! at a time, in one of two modes.
//!
//! - **Closed loop** (as wrk): a connection sends its next request as soon as the
//!   previous response is complete. Latency is from sending to the last byte of the
//!   response. The offered load adapts to the server, so a server that stalls is simply
//!   asked less while it stalls: its stalls hardly show in the percentiles (coordinated
//!   omission).
//! - **Open loop** (`rate`, as wrk2): requests are *scheduled* at a constant total rate,
//!   spread over the connections; a connection sends a request when it is due, or at
//!   once when the previous response comes back late. Latency is measured from the
//!   scheduled time, so the time a request spent waiting behind a stalled one counts,
//!   as it does for a user who arrived then.
//!
//! Every response is parsed by the client core ([`crate::proto::http::client::response`],
//! without allocating) and its body is framed and counted: a `Content-Length` body
//! cut short by a close, a body longer than announced (whose extra bytes then fail to
//! parse as the next head), or a bad chunk are errors, never successes. A server that
//! closes after a response (HTTP/1.0, `Connection: close`) is reconnected to.
//!
//! The generator is built as [`super::echo`] is, to cost as little CPU per request as
//! possible: threads each running a level-triggered `epoll` loop over non-blocking
//! sockets, the request bytes built once, one `read` per wake-up into a buffer shared by
//! the thread's connections, and body bytes counted, not copied (chunked bodies are
//! decoded into a scratch buffer that is reused).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rustix::buffer::spare_capacity;
use rustix::event::epoll;
use socket2::{Domain, Socket, Type};

use super::json::Object;
use super::report::{FailureKind, Failures, Latency, new_histogram, per_sec};
use super::{Phase, Progress, SPARE_FDS};
use crate::error::{Error, Result};
use crate::proto::http::client::chunked::ChunkedDecoder;
use crate::proto::http::client::response::{BodyFraming, parse_summary};
use crate::proto::http::client::url::{Scheme, Url};
use crate::socket::raise_nofile_limit;

/// Bytes read per `read` call, one buffer per load thread.
const READ_BUF: usize = 256 * 1024;
/// After a failed connect, how long a connection waits before trying again, so that a
/// server that refuses is not hammered in a tight loop.
const RETRY: Duration = Duration::from_millis(10);

/// What an HTTP benchmark does.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The URL requested (http:// only).
    pub url: Url,
    /// Connections.
    pub conns: usize,
    /// How long to send load.
    pub duration: Duration,
    /// Load threads, each with its own epoll loop and share of the connections.
    pub threads: usize,
    /// `None`: closed loop. `Some(r)`: open loop at `r` requests per second in all,
    /// latency from each request's scheduled time.
    pub rate: Option<f64>,
    /// The request method.
    pub method: String,
    /// Extra request headers, name and value, sent as given.
    pub headers: Vec<(String, String)>,
    /// The request body (sent with a Content-Length), empty for none.
    pub body: Vec<u8>,
}

impl HttpConfig {
    /// `GET url`, one connection, closed loop, 5 seconds.
    pub fn new(url: Url) -> HttpConfig {
        HttpConfig {
            url,
            conns: 1,
            duration: Duration::from_secs(5),
            threads: 1,
            rate: None,
            method: "GET".into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Setting(what));
        if self.url.scheme == Scheme::Https {
            return bad("https:// is not supported by bench http yet; use http://".into());
        }
        if self.conns == 0 {
            return bad("at least one connection is needed".into());
        }
        if self.threads == 0 {
            return bad("at least one thread is needed".into());
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return bad("the rate must be a positive number of requests per second".into());
        }
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if !token(&self.method) {
            return bad(format!("{:?} is not an HTTP method", self.method));
        }
        for (name, value) in &self.headers {
            if !token(name) || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return bad(format!("invalid header {name:?}"));
            }
        }
        Ok(())
    }

    /// The request bytes, built once and sent as they are by every connection.
    fn request(&self) -> Vec<u8> {
        let mut r = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            self.method,
            self.url.target,
            self.url.host_header()
        );
        let has = |n: &str| self.headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(n));
        if !has("user-agent") {
            r += "User-Agent: sockit-bench\r\n";
        }
        if !self.body.is_empty() && !has("content-length") {
            r += &format!("Content-Length: {}\r\n", self.body.len());
        }
        for (name, value) in &self.headers {
            r += &format!("{name}: {value}\r\n");
        }
        r += "\r\n";
        let mut bytes = r.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// What an HTTP benchmark measured.
#[derive(Debug, Clone)]
pub struct HttpReport {
    /// The URL requested.
    pub url: String,
    /// Connections.
    pub conns: usize,
    /// Load threads used.
    pub threads: usize,
    /// The open loop's rate, `None` for a closed loop.
    pub rate: Option<f64>,
    /// The measured window.
    pub duration: Duration,
    /// Complete, well-formed responses within the window (any status).
    pub requests: u64,
    /// Responses by status code, ascending.
    pub statuses: Vec<(u16, u64)>,
    /// Bytes received (heads and bodies) in the window.
    pub bytes: u64,
    /// Connections opened, the first ones and reconnects after a close.
    pub connects: u64,
    /// Requests sent whose response had not come back when the window ended.
    pub unfinished: u64,
    /// Latency of the responses counted in `requests`.
    pub latency: Latency,
    /// Failed connects, connections lost mid-response, malformed responses.
    pub failures: Failures,
}

impl HttpReport {
    /// Responses per second in the window.
    pub fn requests_per_sec(&self) -> f64 {
        per_sec(self.requests as f64, self.duration)
    }

    /// Every failure, of every kind.
    pub fn errors(&self) -> u64 {
        self.failures.total()
    }

    /// The report as one JSON object (latencies in nanoseconds).
    pub fn to_json(&self) -> String {
        let mut o = Object::new();
        o.str("bench", "http");
        o.str("url", &self.url);
        o.num("conns", self.conns);
        o.num("threads", self.threads);
        match self.rate {
            Some(r) => o.float("rate", r),
            None => o.raw("rate", "null"),
        }
        o.str(
            "mode",
            if self.rate.is_some() {
                "open"
            } else {
                "closed"
            },
        );
        o.float("secs", self.duration.as_secs_f64());
        o.num("requests", self.requests);
        o.float("requests_per_sec", self.requests_per_sec());
        o.num("bytes", self.bytes);
        o.num("connects", self.connects);
        o.num("unfinished", self.unfinished);
        let mut st = Object::new();
        for (code, n) in &self.statuses {
            st.num(&code.to_string(), n);
        }
        o.raw("status", &st.finish());
        o.raw("latency_ns", &self.latency.to_json());
        o.num("errors", self.errors());
        o.raw("failures", &self.failures.to_json());
        o.finish()
    }
}

impl fmt::Display for HttpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.rate {
            Some(r) => format!("open loop at {r:.0} req/s (latency from the scheduled time)"),
            None => "closed loop".into(),
        };
        writeln!(
            f,
            "http {}: {} conns, {} thread{}, {:.2}s, {mode}",
            self.url,
            self.conns,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.duration.as_secs_f64(),
        )?;
        writeln!(
            f,
            "  requests  {} ({:.0}/s), {:.2} MB received, {} connects, {} unfinished",
            self.requests,
            self.requests_per_sec(),
            self.bytes as f64 / 1e6,
            self.connects,
            self.unfinished
        )?;
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        writeln!(f, "  status    {}", statuses.join(", "))?;
        let l = &self.latency;
        if l.count == 0 {
            writeln!(f, "  latency   no samples")?;
        } else {
            use super::format_duration as d;
            writeln!(
                f,
                "  latency   p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {})",
                d(l.p50),
                d(l.p90),
                d(l.p99),
                d(l.p999),
                d(l.max),
                d(l.mean)
            )?;
        }
        write!(f, "  errors    {}", self.failures)
    }
}

/// Runs the benchmark; `progress` is called a few times a second from the calling thread.
pub fn run(config: &HttpConfig, mut progress: impl FnMut(&Progress)) -> Result<HttpReport> {
    config.check()?;
    let addr = (config.url.host.as_str(), config.url.port)
        .to_socket_addrs()
        .map_err(|e| Error::io(format!("resolve {}", config.url.host), e))?
        .next()
        .ok_or_else(|| Error::Setting(format!("{} has no address", config.url.host)))?;
    raise_nofile_limit(config.conns as u64 + SPARE_FDS);
    let request = config.request();
    let threads = config.threads.min(config.conns);
    let start = Instant::now();
    let deadline = start + config.duration;
    let meters: Vec<Meter> = (0..threads).map(|_| Meter::default()).collect();
    let tallies = std::thread::scope(|scope| {
        let handles: Vec<_> = meters
            .iter()
            .enumerate()
            .map(|(t, meter)| {
                let request = &request;
                // Connection i of all goes to thread i % threads.
                let ids: Vec<usize> = (t..config.conns).step_by(threads).collect();
                scope.spawn(move || {
                    let mut worker = Worker::new(addr, request, config, &ids, meter, start)?;
                    worker.run(deadline);
                    Ok::<Tally, Error>(worker.tally)
                })
            })
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            progress(&Progress {
                phase: Phase::Running,
                elapsed: start.elapsed().min(config.duration),
                open: meters.iter().map(|m| m.open.load(Ordering::Relaxed)).sum(),
                done: meters.iter().map(|m| m.done.load(Ordering::Relaxed)).sum(),
                errors: meters
                    .iter()
                    .map(|m| m.errors.load(Ordering::Relaxed))
                    .sum(),
            });
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("a load thread panicked"))
            .collect::<Result<Vec<Tally>>>()
    })?;
    let mut total = Tally::new();
    for t in &tallies {
        total.merge(t);
    }
    if total.requests == 0 && total.connects == 0 {
        let why = total
            .failures
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::Setting(format!(
            "no connection to {addr} could be opened ({why})"
        )));
    }
    Ok(HttpReport {
        url: config.url.to_string(),
        conns: config.conns,
        threads,
        rate: config.rate,
        duration: config.duration,
        requests: total.requests,
        statuses: total
            .statuses
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| (c as u16, *n))
            .collect(),
        bytes: total.bytes,
        connects: total.connects,
        unfinished: total.unfinished,
        latency: Latency::from_histogram(&total.hist),
        failures: total.failures,
    })
}

/// A load thread's counters, published for the progress line (one writer each).
#[derive(Debug, Default)]
struct Meter {
    done: AtomicU64,
    errors: AtomicU64,
    open: AtomicUsize,
}

/// What a load thread counted.
struct Tally {
    hist: Histogram<u64>,
    requests: u64,
    /// Responses per status code (0-999; anything else is malformed).
    statuses: Vec<u64>,
    bytes: u64,
    connects: u64,
    unfinished: u64,
    failures: Failures,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            hist: new_histogram(),
            requests: 0,
            statuses: vec![0; 1000],
            bytes: 0,
            connects: 0,
            unfinished: 0,
            failures: Failures::default(),
        }
    }

    fn merge(&mut self, other: &Tally) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.requests += other.requests;
        for (a, b) in self.statuses.iter_mut().zip(&other.statuses) {
            *a += b;
        }
        self.bytes += other.bytes;
        self.connects += other.connects;
        self.unfinished += other.unfinished;
        self.failures.merge(&other.failures);
    }
}

/// Where a connection's response stands.
#[derive(Debug)]
enum Reading {
    /// No request in flight.
    Idle,
    /// Waiting for (the rest of) the head.
    Head,
    /// This many body bytes still to come.
    Body(u64),
    /// A chunked body, being decoded.
    Chunked,
    /// A body that ends when the server closes.
    UntilClose,
}

/// One connection.
struct Conn {
    /// `None` while waiting to reconnect.
    socket: Option<Socket>,
    /// The non-blocking connect has not completed yet.
    connecting: bool,
    reading: Reading,
    /// Bytes of the request written so far; `None` when no write is pending.
    written: Option<usize>,
    /// The moment latency is measured from: the send (closed loop) or the schedule (open).
    since: Instant,
    /// Open loop: when this connection's next request is due.
    due: Instant,
    /// The status of the response being read.
    status: u16,
    /// The server closes after the response being read.
    closes: bool,
    /// A head split over reads, kept until it is whole (the common case parses in place).
    partial: Vec<u8>,
    chunked: ChunkedDecoder,
    /// EPOLLOUT is registered.
    want_write: bool,
    /// Pending timer (a due request or a reconnect), to tell live heap entries from stale.
    timer: Option<Instant>,
}

struct Worker<'a> {
    ep: rustix::fd::OwnedFd,
    addr: SocketAddr,
    request: &'a [u8],
    head_request: bool,
    /// Open loop: time between two requests of one connection.
    period: Option<Duration>,
    conns: Vec<Conn>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    meter: &'a Meter,
    tally: Tally,
    open: usize,
}

/// How a response or a connection ended badly.
struct Fail(FailureKind);

impl<'a> Worker<'a> {
    fn new(
        addr: SocketAddr,
        request: &'a [u8],
        config: &HttpConfig,
        ids: &[usize],
        meter: &'a Meter,
        start: Instant,
    ) -> Result<Worker<'a>> {
        let ep =
            epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| Error::io("epoll", e.into()))?;
        // Per connection: rate / conns requests per second; connection i starts i / rate
        // seconds in, so that the schedule is spread evenly over time (as wrk2's is).
        let period = config
            .rate
            .map(|r| Duration::from_secs_f64(config.conns as f64 / r));
        let conns = ids
            .iter()
            .map(|&i| Conn {
                socket: None,
                connecting: false,
                reading: Reading::Idle,
                written: None,
                since: start,
                due: start
                    + config
                        .rate
                        .map_or(Duration::ZERO, |r| Duration::from_secs_f64(i as f64 / r)),
                status: 0,
                closes: false,
                partial: Vec::new(),
                chunked: ChunkedDecoder::new(),
                want_write: false,
                timer: None,
            })
            .collect();
        Ok(Worker {
            ep,
            addr,
            request,
            head_request: config.method.eq_ignore_ascii_case("HEAD"),
            period,
            conns,
            timers: BinaryHeap::new(),
            buf: vec![0; READ_BUF],
            scratch: Vec::new(),
            meter,
            tally: Tally::new(),
            open: 0,
        })
    }

    fn run(&mut self, deadline: Instant) {
        for slot in 0..self.conns.len() {
            self.connect(slot);
        }
        let mut events = Vec::with_capacity(1024);
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            while let Some(&Reverse((at, slot))) = self.timers.peek() {
                if at > now {
                    break;
                }
                self.timers.pop();
                if self.conns[slot].timer == Some(at) {
                    self.conns[slot].timer = None;
                    self.on_timer(slot, now);
                }
            }
            let until = self
                .timers
                .peek()
                .map_or(deadline, |Reverse((at, _))| (*at).min(deadline));
            let wait = until
                .saturating_duration_since(now)
                .min(Duration::from_millis(100));
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
            if now >= deadline {
                break;
            }
            for ev in &events {
                let slot = ev.data.u64() as usize;
                let flags = ev.flags;
                if self.conns[slot].socket.is_none() {
                    continue;
                }
                if self.conns[slot].connecting {
                    self.on_connected(slot, now);
                    continue;
                }
                if flags.contains(epoll::EventFlags::OUT) {
                    self.write(slot);
                }
                if flags.intersects(
                    epoll::EventFlags::IN | epoll::EventFlags::ERR | epoll::EventFlags::HUP,
                ) && self.conns[slot].socket.is_some()
                {
                    self.read(slot, now);
                }
            }
            self.meter
                .done
                .store(self.tally.requests, Ordering::Relaxed);
            self.meter
                .errors
                .store(self.tally.failures.total(), Ordering::Relaxed);
            self.meter.open.store(self.open, Ordering::Relaxed);
        }
        self.tally.unfinished = self
            .conns
            .iter()
            .filter(|c| !matches!(c.reading, Reading::Idle))
            .count() as u64;
    }

    fn fail(&mut self, kind: FailureKind) {
        self.tally.failures.add(kind);
    }

    /// Opens (or reopens) the connection of `slot` with a non-blocking connect.
    fn connect(&mut self, slot: usize) {
        let socket = match Socket::new(
            Domain::for_address(self.addr),
            Type::STREAM.nonblocking(),
            None,
        ) {
            Ok(s) => s,
            Err(e) => {
                self.fail(FailureKind::of_io(&e));
                self.retry(slot);
                return;
            }
        };
        let _ = socket.set_tcp_nodelay(true);
        match socket.connect(&self.addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => {
                self.fail(FailureKind::of_io(&e));
                self.retry(slot);
                return;
            }
        }
        let data = epoll::EventData::new_u64(slot as u64);
        if let Err(e) = epoll::add(&self.ep, &socket, data, epoll::EventFlags::OUT) {
            self.fail(FailureKind::of_io(&e.into()));
            self.retry(slot);
            return;
        }
        let c = &mut self.conns[slot];
        c.socket = Some(socket);
        c.connecting = true;
        c.want_write = true;
        c.reading = Reading::Idle;
        c.written = None;
        c.partial.clear();
    }

    fn retry(&mut self, slot: usize) {
        self.set_timer(slot, Instant::now() + RETRY);
    }

    fn set_timer(&mut self, slot: usize, at: Instant) {
        self.conns[slot].timer = Some(at);
        self.timers.push(Reverse((at, slot)));
    }

    fn on_timer(&mut self, slot: usize, now: Instant) {
        let c = &self.conns[slot];
        if c.socket.is_none() {
            self.connect(slot);
        } else if !c.connecting && matches!(c.reading, Reading::Idle) {
            self.send(slot, now);
        }
    }

    fn on_connected(&mut self, slot: usize, now: Instant) {
        let Some(socket) = self.conns[slot].socket.as_ref() else {
            return;
        };
        match socket.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => {
                self.fail(FailureKind::of_io(&e));
                self.drop_conn(slot);
                self.retry(slot);
                return;
            }
        }
        self.tally.connects += 1;
        self.open += 1;
        self.conns[slot].connecting = false;
        self.set_interest(slot, false);
        self.next_request(slot, now);
    }

    /// Sends now (closed loop, or open loop when due) or arms the timer for the due time.
    fn next_request(&mut self, slot: usize, now: Instant) {
        let due = self.conns[slot].due;
        if self.period.is_some() && due > now {
            self.set_timer(slot, due);
        } else {
            self.send(slot, now);
        }
    }

    fn send(&mut self, slot: usize, now: Instant) {
        let period = self.period;
        let c = &mut self.conns[slot];
        c.since = match period {
            Some(p) => {
                let due = c.due;
                c.due += p;
                due
            }
            None => now,
        };
        c.reading = Reading::Head;
        c.written = Some(0);
        self.write(slot);
    }

    fn write(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        let (Some(socket), Some(pos)) = (c.socket.as_ref(), c.written) else {
            return;
        };
        let mut pos = pos;
        while pos < self.request.len() {
            match (&*socket).write(&self.request[pos..]) {
                Ok(n) => pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(FailureKind::of_io(&e));
                    self.lost(slot);
                    return;
                }
            }
        }
        let done = pos >= self.request.len();
        c.written = if done { None } else { Some(pos) };
        if c.want_write == done {
            self.set_interest(slot, !done);
        }
    }

    fn set_interest(&mut self, slot: usize, write: bool) {
        let c = &mut self.conns[slot];
        let Some(socket) = c.socket.as_ref() else {
            return;
        };
        let mut flags = epoll::EventFlags::IN;
        if write {
            flags |= epoll::EventFlags::OUT;
        }
        let _ = epoll::modify(
            &self.ep,
            socket,
            epoll::EventData::new_u64(slot as u64),
            flags,
        );
        c.want_write = write;
    }

    fn read(&mut self, slot: usize, now: Instant) {
        let Some(socket) = self.conns[slot].socket.as_ref() else {
            return;
        };
        let n = match (&*socket).read(&mut self.buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                return;
            }
            Err(e) => {
                self.fail(FailureKind::of_io(&e));
                self.lost(slot);
                return;
            }
        };
        if n == 0 {
            self.on_eof(slot, now);
            return;
        }
        self.tally.bytes += n as u64;
        let buf = std::mem::take(&mut self.buf);
        let result = self.feed(slot, &buf[..n], now);
        self.buf = buf;
        if let Err(Fail(kind)) = result {
            self.fail(kind);
            self.lost(slot);
        }
    }

    /// Takes the bytes a read brought: heads, bodies, as many responses as they hold.
    fn feed(
        &mut self,
        slot: usize,
        mut data: &[u8],
        now: Instant,
    ) -> std::result::Result<(), Fail> {
        while !data.is_empty() {
            let c = &mut self.conns[slot];
            match c.reading {
                Reading::Idle => return Err(Fail(FailureKind::Unexpected)),
                Reading::Head => {
                    let parsed = if c.partial.is_empty() {
                        parse_summary(data, self.head_request)
                    } else {
                        c.partial.extend_from_slice(data);
                        data = &[];
                        parse_summary(&c.partial, self.head_request)
                    };
                    let summary = match parsed {
                        Ok(Some(s)) => s,
                        Ok(None) => {
                            if c.partial.is_empty() {
                                c.partial.extend_from_slice(data);
                            }
                            return Ok(());
                        }
                        Err(_) => return Err(Fail(FailureKind::Malformed)),
                    };
                    if !c.partial.is_empty() {
                        // The rest of the buffered bytes after the head: rare (a head split
                        // over reads), so a copy is fine.
                        let rest = c.partial[summary.head_len..].to_vec();
                        c.partial.clear();
                        c.status = summary.status;
                        c.closes = summary.closes;
                        c.reading = reading_for(summary.framing, c);
                        if matches!(c.reading, Reading::Idle) && !self.complete(slot, now) {
                            return Ok(());
                        }
                        return self.feed(slot, &rest, now);
                    }
                    data = &data[summary.head_len..];
                    c.status = summary.status;
                    c.closes = summary.closes;
                    c.reading = reading_for(summary.framing, c);
                    if matches!(c.reading, Reading::Idle) && !self.complete(slot, now) {
                        return Ok(());
                    }
                }
                Reading::Body(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    data = &data[take..];
                    let left = left - take as u64;
                    c.reading = Reading::Body(left);
                    if left == 0 {
                        c.reading = Reading::Idle;
                        if !self.complete(slot, now) {
                            return Ok(());
                        }
                    }
                }
                Reading::Chunked => {
                    let used = c
                        .chunked
                        .decode(data, &mut self.scratch)
                        .map_err(|_| Fail(FailureKind::Malformed))?;
                    self.scratch.clear();
                    data = &data[used..];
                    if c.chunked.is_done() {
                        c.reading = Reading::Idle;
                        if !self.complete(slot, now) {
                            return Ok(());
                        }
                    }
                }
                Reading::UntilClose => return Ok(()),
            }
        }
        Ok(())
    }

    /// A response is complete: count it, then the next request, or a new connection when
    /// the server closes this one (`false`: whatever else the read brought is dropped).
    fn complete(&mut self, slot: usize, now: Instant) -> bool {
        let c = &self.conns[slot];
        let ns = now.saturating_duration_since(c.since).as_nanos() as u64;
        let _ = self.tally.hist.record(ns.max(1));
        self.tally.requests += 1;
        if let Some(n) = self.tally.statuses.get_mut(usize::from(c.status)) {
            *n += 1;
        }
        if c.closes {
            self.drop_conn(slot);
            self.connect(slot);
            return false;
        }
        self.next_request(slot, now);
        true
    }

    fn on_eof(&mut self, slot: usize, now: Instant) {
        match self.conns[slot].reading {
            Reading::UntilClose => {
                self.conns[slot].reading = Reading::Idle;
                self.conns[slot].closes = true;
                self.complete(slot, now);
            }
            // A keep-alive connection the server closed between requests: not an error.
            Reading::Idle => {
                self.drop_conn(slot);
                self.connect(slot);
            }
            // Closed before the response (or its body) was complete.
            _ => {
                self.fail(FailureKind::Closed);
                self.lost(slot);
            }
        }
    }

    /// A connection lost or broken mid-response: close it and open another.
    fn lost(&mut self, slot: usize) {
        self.drop_conn(slot);
        self.connect(slot);
    }

    fn drop_conn(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        if let Some(socket) = c.socket.take() {
            let _ = epoll::delete(&self.ep, &socket);
            if !c.connecting {
                self.open -= 1;
            }
        }
        c.connecting = false;
        c.reading = Reading::Idle;
        c.written = None;
        c.partial.clear();
    }
}

/// What follows a head with this framing; `Idle` when the response is already complete.
fn reading_for(framing: BodyFraming, c: &mut Conn) -> Reading {
    match framing {
        BodyFraming::Empty | BodyFraming::Length(0) => Reading::Idle,
        BodyFraming::Length(n) => Reading::Body(n),
        BodyFraming::Chunked => {
            c.chunked = ChunkedDecoder::new();
            Reading::Chunked
        }
        BodyFraming::UntilClose => Reading::UntilClose,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_built_once_with_host_length_and_headers() {
        let mut c = HttpConfig::new(Url::parse("http://127.0.0.1:8080/a?b=1").unwrap());
        c.method = "POST".into();
        c.headers = vec![("X-Test".into(), "yes".into())];
        c.body = b"hello".to_vec();
        assert_eq!(
            String::from_utf8(c.request()).unwrap(),
            "POST /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: sockit-bench\r\n\
             Content-Length: 5\r\nX-Test: yes\r\n\r\nhello"
        );
        c.headers = vec![("Bad\r\nName".into(), "x".into())];
        assert!(c.check().is_err());
        c.headers.clear();
        c.method = "GE T".into();
        assert!(c.check().is_err());
    }
}
