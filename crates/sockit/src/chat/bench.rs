//! The chat load generator (`sockit chat bench`): fan-out load on one or more chat
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
//! Everything runs on one thread (pin it with `taskset` to keep it off the server's core):
//! the generator's own cost per line is a read shared with the other lines of the same
//! read, a few byte comparisons and a histogram update.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::addr::Endpoint;
use crate::error::{Error, Result};
use crate::proto::chat::RoomName;

/// After the senders stop, how long the run waits with no line arriving before it counts
/// the missing ones as lost.
const DRAIN_PATIENCE: Duration = Duration::from_secs(5);

/// The longest wait for the last lines after the senders stop.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

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

/// Everything the client tasks share (one thread: a `RefCell`).
struct Stats {
    start: Instant,
    /// When the senders stop; deliveries after it are not counted in the rate.
    stop_ns: u64,
    latency: Histogram<u64>,
    /// Data lines received, per client.
    received: Vec<u64>,
    received_in_window: u64,
    total_received: u64,
    /// Last sequence number seen, per client and sender.
    last_seq: Vec<Vec<u64>>,
    gaps: u64,
    /// Lines sent, per sender.
    sent: Vec<u64>,
    joined: usize,
    too_slow: Vec<bool>,
    ended: Vec<bool>,
    /// A setup failure (nick refused, ...), reported instead of a result.
    failure: Option<String>,
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start tokio runtime", e))?;
    tokio::task::LocalSet::new().block_on(&runtime, drive(options.clone()))
}

async fn drive(options: Options) -> Result<Report> {
    let n = options.clients;
    let tag = crate::proto::chat::NodeId::random().0 as u16;
    let stats = Rc::new(RefCell::new(Stats {
        start: Instant::now(),
        stop_ns: u64::MAX,
        latency: Histogram::new_with_bounds(1_000, 120_000_000_000, 3)
            .map_err(|e| Error::Bench(e.to_string()))?,
        received: vec![0; n],
        received_in_window: 0,
        total_received: 0,
        last_seq: vec![vec![0; options.senders]; n],
        gaps: 0,
        sent: vec![0; options.senders],
        joined: 0,
        too_slow: vec![false; n],
        ended: vec![false; n],
        failure: None,
    }));
    let (go_tx, go_rx) = watch::channel(false);
    let setup_started = Instant::now();
    for i in 0..n {
        let target = options.targets[i % options.targets.len()].clone();
        let nick = format!("bk{tag:04x}_{i}");
        let ctx = Client {
            index: i,
            nick,
            room: options.room.clone(),
            stats: stats.clone(),
            go: go_rx.clone(),
            send: (i < options.senders).then(|| Sending {
                period: Duration::from_secs_f64(1.0 / options.rate),
                duration: options.duration,
                size: options.size,
            }),
        };
        tokio::task::spawn_local(async move {
            let index = ctx.index;
            let stats = ctx.stats.clone();
            if let Err(e) = connect_and_run(target, ctx).await {
                let mut s = stats.borrow_mut();
                s.ended[index] = true;
                s.failure.get_or_insert(e);
            }
        });
        // Connecting a thousand clients at once overflows nothing, but pacing the
        // connects keeps the join notices (each goes to everyone) from piling up.
        if i % 100 == 99 {
            tokio::task::yield_now().await;
        }
    }
    // Every client has its nick and room once it has seen its own join notice.
    let deadline = setup_started + options.setup_timeout;
    loop {
        {
            let s = stats.borrow();
            if let Some(f) = &s.failure {
                return Err(Error::Bench(f.clone()));
            }
            if s.joined == n {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Bench(format!(
                    "only {} of {n} clients joined within {:?}",
                    s.joined, options.setup_timeout
                )));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The join notices of the last clients are still travelling to the first ones.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let setup = setup_started.elapsed();

    let start = Instant::now();
    {
        let mut s = stats.borrow_mut();
        s.start = start;
        s.stop_ns = options.duration.as_nanos() as u64;
    }
    if let Some(progress) = options.progress {
        progress(Phase::Sending);
    }
    let _ = go_tx.send(true);
    tokio::time::sleep(options.duration).await;
    // Wait for the senders' last lines, then for their deliveries.
    let mut last_total = 0;
    let mut last_progress = Instant::now();
    let drain_deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = stats.borrow();
        let expected = expected_total(&s);
        if s.total_received >= expected && sending_done(&s, &options) {
            break;
        }
        if s.total_received != last_total {
            last_total = s.total_received;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > DRAIN_PATIENCE {
            break;
        }
        if Instant::now() > drain_deadline {
            break;
        }
    }
    if let Some(progress) = options.progress {
        progress(Phase::Drained);
    }
    let s = stats.borrow();
    let sent: u64 = s.sent.iter().sum();
    let expected = expected_total(&s);
    let delivered = s.total_received;
    let mut lost_kept_up = 0;
    for i in 0..n {
        if !s.too_slow[i] {
            lost_kept_up += expected_for(&s, i).saturating_sub(s.received[i]);
        }
    }
    let q = |p: f64| Duration::from_nanos(s.latency.value_at_quantile(p));
    Ok(Report {
        clients: n,
        senders: options.senders,
        duration: options.duration,
        sent,
        expected,
        delivered,
        delivered_per_sec: s.received_in_window as f64 / options.duration.as_secs_f64(),
        lost: expected.saturating_sub(delivered),
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
    })
}

/// Every sender sent its last line (its count stopped at the expected number).
fn sending_done(s: &Stats, options: &Options) -> bool {
    let per_sender = (options.rate * options.duration.as_secs_f64()).floor() as u64;
    s.sent.iter().all(|&c| c >= per_sender)
}

/// Deliveries due to client `i`: every line of every other sender.
fn expected_for(s: &Stats, i: usize) -> u64 {
    let all: u64 = s.sent.iter().sum();
    all - s.sent.get(i).copied().unwrap_or(0)
}

fn expected_total(s: &Stats) -> u64 {
    (0..s.received.len()).map(|i| expected_for(s, i)).sum()
}

struct Client {
    index: usize,
    nick: String,
    room: Option<RoomName>,
    stats: Rc<RefCell<Stats>>,
    go: watch::Receiver<bool>,
    send: Option<Sending>,
}

struct Sending {
    period: Duration,
    duration: Duration,
    size: usize,
}

async fn connect_and_run(target: Endpoint, ctx: Client) -> std::result::Result<(), String> {
    let what = |e: std::io::Error| format!("connect {target}: {e}");
    match &target {
        Endpoint::Tcp(hp) => {
            let addr = hp.resolve().map_err(|e| e.to_string())?[0];
            let stream = tokio::net::TcpStream::connect(addr).await.map_err(what)?;
            stream.set_nodelay(true).map_err(what)?;
            let (r, w) = stream.into_split();
            run_client(r, w, ctx).await
        }
        Endpoint::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path).await.map_err(what)?;
            let (r, w) = stream.into_split();
            run_client(r, w, ctx).await
        }
        _ => Err(format!("{target}: chat runs over tcp or unix streams")),
    }
}

async fn run_client<R, W>(mut r: R, mut w: W, ctx: Client) -> std::result::Result<(), String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + 'static,
{
    let mut hello = format!("{}\n", ctx.nick);
    if let Some(room) = &ctx.room {
        hello.push_str(&format!("/join {room}\n"));
    }
    w.write_all(hello.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let joined = format!(
        "* {} joined {}",
        ctx.nick,
        ctx.room
            .as_ref()
            .map_or_else(String::new, |r| r.to_string())
    );
    // The write half stays open as long as the client runs: dropping it would half-close
    // the connection (and the server would see the client leave).
    let mut _keep_open = None;
    if let Some(sending) = ctx.send {
        let stats = ctx.stats.clone();
        let go = ctx.go.clone();
        let index = ctx.index;
        tokio::task::spawn_local(async move {
            if let Err(e) = send_lines(w, sending, index, stats.clone(), go).await {
                stats.borrow_mut().failure.get_or_insert(e);
            }
        });
    } else {
        _keep_open = Some(w);
    }
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut has_joined = false;
    loop {
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let n = r.read_buf(&mut buf).await.unwrap_or(0);
        if n == 0 {
            ctx.stats.borrow_mut().ended[ctx.index] = true;
            return Ok(());
        }
        let mut s = ctx.stats.borrow_mut();
        let now = s.start.elapsed().as_nanos() as u64;
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line = &buf[..i];
            if line.first() == Some(&b'<') {
                record(&mut s, ctx.index, line, now);
            } else if !has_joined && line.starts_with(joined.as_bytes()) {
                has_joined = true;
                s.joined += 1;
            } else if line.starts_with(b"! too slow") {
                s.too_slow[ctx.index] = true;
            } else if line.starts_with(b"! ") && !has_joined {
                let why = String::from_utf8_lossy(line).into_owned();
                s.failure
                    .get_or_insert(format!("{} was refused: {why}", ctx.nick));
            }
            buf.advance(i + 1);
        }
    }
}

/// One data line, `<bkTAG_SENDER> SEQ TIME padding`.
fn record(s: &mut Stats, me: usize, line: &[u8], now: u64) {
    let Some(close) = line.iter().position(|&b| b == b'>') else {
        return;
    };
    let Some(us) = line[..close].iter().rposition(|&b| b == b'_') else {
        return;
    };
    let (Some(sender), rest) = (number(&line[us + 1..close]), &line[close + 1..]) else {
        return;
    };
    let mut fields = rest.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let (Some(seq), Some(sent_at)) = (
        fields.next().and_then(number),
        fields.next().and_then(number),
    ) else {
        return;
    };
    let sender = sender as usize;
    let Some(last) = s.last_seq[me].get_mut(sender) else {
        return;
    };
    if seq != *last + 1 {
        s.gaps += 1;
    }
    *last = seq;
    s.received[me] += 1;
    s.total_received += 1;
    if sent_at < s.stop_ns {
        s.received_in_window += 1;
    }
    let _ = s.latency.record(now.saturating_sub(sent_at).max(1_000));
}

fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

async fn send_lines<W: AsyncWrite + Unpin>(
    mut w: W,
    sending: Sending,
    index: usize,
    stats: Rc<RefCell<Stats>>,
    mut go: watch::Receiver<bool>,
) -> std::result::Result<(), String> {
    if go.wait_for(|g| *g).await.is_err() {
        return Ok(());
    }
    let start = stats.borrow().start;
    let count = (sending.duration.as_secs_f64() / sending.period.as_secs_f64()).floor() as u64;
    // Senders start spread over one period, not all on the same tick.
    let offset = sending.period.mul_f64((index as f64 * 0.618_034) % 1.0);
    let mut line = Vec::with_capacity(sending.size + 32);
    for seq in 1..=count {
        let due = start + offset + sending.period.mul_f64((seq - 1) as f64);
        tokio::time::sleep_until(due.into()).await;
        let now = start.elapsed().as_nanos() as u64;
        line.clear();
        line.extend_from_slice(format!("{seq} {now} ").as_bytes());
        while line.len() + 1 < sending.size {
            line.push(b'x');
        }
        line.push(b'\n');
        if let Err(e) = w.write_all(&line).await {
            return Err(format!("sender {index}: {e}"));
        }
        stats.borrow_mut().sent[index] = seq;
    }
    // Kept open until the run ends (its tasks are dropped then): the server would
    // otherwise see this client leave.
    let _keep_open = w;
    std::future::pending::<()>().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_are_parsed_and_gaps_counted() {
        let mut s = Stats {
            start: Instant::now(),
            stop_ns: 10_000_000,
            latency: Histogram::new_with_bounds(1_000, 120_000_000_000, 3).unwrap(),
            received: vec![0; 2],
            received_in_window: 0,
            total_received: 0,
            last_seq: vec![vec![0; 2]; 2],
            gaps: 0,
            sent: vec![3, 0],
            joined: 0,
            too_slow: vec![false; 2],
            ended: vec![false; 2],
            failure: None,
        };
        record(&mut s, 1, b"<bk00ff_0> 1 1000000 xxxx", 3_000_000);
        record(&mut s, 1, b"<bk00ff_0> 3 2000000 xxxx", 4_000_000);
        record(&mut s, 1, b"<someone> hello", 4_000_000);
        record(&mut s, 1, b"<bk00ff_9> 1 1 x", 4_000_000);
        assert_eq!(s.received[1], 2);
        assert_eq!(s.gaps, 1);
        assert_eq!(s.latency.len(), 2);
        assert_eq!(expected_for(&s, 1), 3);
        assert_eq!(expected_for(&s, 0), 0);
        assert_eq!(number(b"12345"), Some(12345));
        assert_eq!(number(b"12a"), None);
    }
}
