//! The event loop driven over socketpairs, under every backend: no listener, connections
//! adopted directly, a client thread on the other end.

use std::io::{Read, Write};
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::server::Config;
use crate::server::poller::select::FD_SETSIZE;
use crate::socket::gate::Gate;
use crate::socket::{AccessList, Peer, Shutdown};

/// Every backend behind one type, so each test runs under all of them.
enum AnyPoller {
    Select(Select),
    Poll(Poll),
    Epoll(Epoll),
}

macro_rules! delegate {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            AnyPoller::Select($p) => $e,
            AnyPoller::Poll($p) => $e,
            AnyPoller::Epoll($p) => $e,
        }
    };
}

impl Poller for AnyPoller {
    fn trigger(&self) -> Trigger {
        delegate!(self, p => p.trigger())
    }
    fn can_watch(&self, fd: RawFd) -> bool {
        delegate!(self, p => p.can_watch(fd))
    }
    fn add(&mut self, fd: BorrowedFd<'_>, t: Token, i: Interest) -> io::Result<()> {
        delegate!(self, p => p.add(fd, t, i))
    }
    fn modify(&mut self, fd: BorrowedFd<'_>, t: Token, i: Interest) -> io::Result<()> {
        delegate!(self, p => p.modify(fd, t, i))
    }
    fn delete(&mut self, fd: BorrowedFd<'_>, t: Token) -> io::Result<()> {
        delegate!(self, p => p.delete(fd, t))
    }
    fn wait(&mut self, ev: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        delegate!(self, p => p.wait(ev, timeout))
    }
}

const BACKENDS: [&str; 4] = ["select", "poll", "epoll", "epoll-et"];

fn backend(name: &str) -> AnyPoller {
    match name {
        "select" => AnyPoller::Select(Select::new()),
        "poll" => AnyPoller::Poll(Poll::new()),
        "epoll" => AnyPoller::Epoll(Epoll::new(Trigger::Level).unwrap()),
        "epoll-et" => AnyPoller::Epoll(Epoll::new(Trigger::Edge).unwrap()),
        _ => unreachable!(),
    }
}

/// Greets with `hi`, echoes, answers `quit` with `bye` and a close, says `eof` last.
#[derive(Clone, Copy)]
struct Polite;

impl Handler for Polite {
    fn on_connect(&mut self, out: &mut Output) -> Flow {
        out.extend_from_slice(b"hi\n");
        Flow::Continue
    }
    fn on_data(&mut self, data: &[u8], out: &mut Output) -> Flow {
        if data.starts_with(b"quit") {
            out.extend_from_slice(b"bye\n");
            return Flow::Close;
        }
        out.extend_from_slice(data);
        Flow::Continue
    }
    fn on_eof(&mut self, out: &mut Output) {
        out.extend_from_slice(b"eof\n");
    }
}

impl Service for Polite {
    type Handler = Polite;
    fn handler(&self, _peer: &Peer) -> Polite {
        Polite
    }
}

/// Replies to every byte with `FLOOD` bytes, counting the bytes it was given.
#[derive(Clone)]
struct Flood(
    /// Bytes given to the handlers, counted across connections.
    Arc<AtomicUsize>,
);

const FLOOD: usize = 4 << 20;

impl Handler for Flood {
    fn on_data(&mut self, data: &[u8], out: &mut Output) -> Flow {
        self.0.fetch_add(data.len(), Ordering::SeqCst);
        let len = out.len() + data.len() * FLOOD;
        out.resize(len, b'x');
        Flow::Continue
    }
}

impl Service for Flood {
    type Handler = Flood;
    fn handler(&self, _peer: &Peer) -> Flood {
        self.clone()
    }
}

/// Streams `COUNT` numbered lines, one more each time its output drains (every tenth
/// preceded by a file's content, sent by `sendfile`), then echoes.
struct Counter {
    /// The number of the next line to stream.
    next: usize,
    /// Sent by `sendfile` before every tenth line, to mix file ranges with bytes.
    file: std::fs::File,
}

const COUNT: usize = 200;
const FILE_TEXT: &[u8] = b"from a file\n";

fn counted() -> Vec<u8> {
    let mut all = Vec::new();
    for i in 0..COUNT {
        if i.is_multiple_of(10) {
            all.extend_from_slice(FILE_TEXT);
        }
        all.extend_from_slice(format!("{i:06}\n").as_bytes());
    }
    all
}

impl Counter {
    fn more(&mut self, out: &mut Output) -> Flow {
        if self.next < COUNT {
            if self.next.is_multiple_of(10) {
                let file = self.file.try_clone().unwrap();
                out.send_file(file, 0, FILE_TEXT.len() as u64);
            }
            out.extend_from_slice(format!("{:06}\n", self.next).as_bytes());
            self.next += 1;
        }
        Flow::Continue
    }
}

impl Handler for Counter {
    fn on_connect(&mut self, out: &mut Output) -> Flow {
        self.more(out)
    }
    fn on_drained(&mut self, out: &mut Output) -> Flow {
        self.more(out)
    }
    fn on_data(&mut self, data: &[u8], out: &mut Output) -> Flow {
        out.extend_from_slice(data);
        Flow::Continue
    }
}

struct CounterService(
    /// The file every [`Counter`] sends by `sendfile`.
    std::path::PathBuf,
);

impl Service for CounterService {
    type Handler = Counter;
    fn handler(&self, _peer: &Peer) -> Counter {
        Counter {
            next: 0,
            file: std::fs::File::open(&self.0).unwrap(),
        }
    }
}

/// Runs a loop under `backend` with one adopted connection (`server`) while `client`
/// plays the peer; then triggers shutdown and returns what the loop returned.
fn with_loop<S: Service>(
    backend: &str,
    service: S,
    config: Config,
    server: UnixStream,
    client: impl FnOnce(&Shutdown),
) -> Result<()> {
    let shutdown = Shutdown::new().unwrap();
    let ctx = Ctx {
        config: &config,
        shutdown: &shutdown,
        gate: Gate::new(AccessList::default(), 100, b""),
    };
    std::thread::scope(|scope| {
        let (service, ctx) = (&service, &ctx);
        let serving = scope.spawn(move || {
            server.set_nonblocking(true).unwrap();
            let peer = Peer::Unix(None);
            let slot = ctx.gate.admit(server.as_fd(), &peer).unwrap();
            // Made here: epoll's event buffer holds raw pointers and is not `Send`.
            let mut l = EventLoop::new(self::backend(backend), service, ctx, None);
            l.adopt(server.into(), service.handler(&peer), slot);
            l.run()
        });
        // Triggered even when the client panics, or the test would hang, not fail.
        let stop = StopOnDrop(&shutdown);
        client(stop.0);
        drop(stop);
        serving.join().unwrap()
    })
}

struct StopOnDrop<'a>(
    /// Triggered on drop, so a failing test does not leave its loop running.
    &'a Shutdown,
);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

fn pair() -> (UnixStream, UnixStream) {
    let (client, server) = UnixStream::pair().unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (client, server)
}

fn read_n(mut s: &UnixStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

fn read_rest(mut s: &UnixStream) -> Vec<u8> {
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    buf
}

#[test]
fn greets_echoes_and_says_last_words_at_eof() {
    for b in BACKENDS {
        let (client, server) = pair();
        with_loop(b, Polite, Config::default(), server, |_| {
            assert_eq!(read_n(&client, 3), b"hi\n", "{b}");
            (&client).write_all(b"abc").unwrap();
            assert_eq!(read_n(&client, 3), b"abc", "{b}");
            client.shutdown(std::net::Shutdown::Write).unwrap();
            assert_eq!(read_rest(&client), b"eof\n", "{b}");
        })
        .unwrap();
    }
}

#[test]
fn close_writes_the_reply_first() {
    for b in BACKENDS {
        let (client, server) = pair();
        with_loop(b, Polite, Config::default(), server, |_| {
            (&client).write_all(b"quit").unwrap();
            assert_eq!(read_rest(&client), b"hi\nbye\n", "{b}");
        })
        .unwrap();
    }
}

#[test]
fn stops_reading_while_a_reply_is_stuck_and_resumes_after() {
    for b in BACKENDS {
        let (client, server) = pair();
        let seen = Arc::new(AtomicUsize::new(0));
        with_loop(b, Flood(seen.clone()), Config::default(), server, |_| {
            (&client).write_all(b"1").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            for byte in [b"2", b"3", b"4"] {
                (&client).write_all(byte).unwrap();
            }
            std::thread::sleep(Duration::from_millis(200));
            // 4 MiB are stuck in the connection: the next three bytes stay unread.
            assert_eq!(seen.load(Ordering::SeqCst), 1, "{b}: read while stuck");
            let got = read_n(&client, 4 * FLOOD);
            assert!(got.iter().all(|&c| c == b'x'), "{b}");
            assert_eq!(seen.load(Ordering::SeqCst), 4, "{b}");
        })
        .unwrap();
    }
}

#[test]
fn a_handler_streams_as_its_output_drains() {
    let path = std::env::temp_dir().join(format!("sockit-counter-{}", std::process::id()));
    std::fs::write(&path, FILE_TEXT).unwrap();
    let want = counted();
    for b in BACKENDS {
        let (client, server) = pair();
        let service = CounterService(path.clone());
        with_loop(b, service, Config::default(), server, |_| {
            // Far more rounds than one wake-up allows: the rest come on later turns.
            assert!(read_n(&client, want.len()) == want, "{b}: stream differs");
            (&client).write_all(b"ping").unwrap();
            assert_eq!(read_n(&client, 4), b"ping", "{b}");
        })
        .unwrap();
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn shutdown_gives_last_words_then_closes() {
    for b in BACKENDS {
        let (client, server) = pair();
        with_loop(b, Polite, Config::default(), server, |shutdown| {
            assert_eq!(read_n(&client, 3), b"hi\n", "{b}");
            shutdown.trigger();
            assert_eq!(read_rest(&client), b"eof\n", "{b}");
        })
        .unwrap();
    }
}

#[test]
fn idle_connections_are_closed() {
    for b in BACKENDS {
        let (client, server) = pair();
        let config = Config {
            idle_timeout: Some(Duration::from_millis(100)),
            ..Config::default()
        };
        with_loop(b, Polite, config, server, |_| {
            let start = Instant::now();
            assert_eq!(read_rest(&client), b"hi\n", "{b}");
            let took = start.elapsed();
            assert!(
                took >= Duration::from_millis(90),
                "{b}: closed after {took:?}"
            );
            assert!(took < Duration::from_secs(2), "{b}: closed after {took:?}");
        })
        .unwrap();
    }
}

#[test]
fn select_never_watches_a_descriptor_beyond_fd_setsize() {
    let (client, server) = pair();
    // Only possible where RLIMIT_NOFILE allows descriptor 1024 or more.
    let Ok(high) = rustix::io::fcntl_dupfd_cloexec(&server, FD_SETSIZE as RawFd) else {
        return;
    };
    drop(server);
    let mut select = Select::new();
    assert!(select.add(high.as_fd(), 7, Interest::Read).is_err());
    // Adopted anyway (as if `admit` had not checked), it is closed, not watched.
    let high = UnixStream::from(high);
    with_loop("select", Polite, Config::default(), high, |_| {
        assert_eq!(read_rest(&client), b"hi\n");
    })
    .unwrap();
}

/// Echoes whole lines; a line in progress is a head, and one that misses its deadline is
/// answered `late`.
struct Lines(Vec<u8>);

impl Handler for Lines {
    fn on_data(&mut self, data: &[u8], out: &mut Output) -> Flow {
        self.0.extend_from_slice(data);
        if let Some(end) = self.0.iter().rposition(|&b| b == b'\n') {
            out.extend(self.0.drain(..=end));
        }
        Flow::Continue
    }
    fn in_head(&self) -> bool {
        !self.0.is_empty()
    }
    fn on_head_timeout(&mut self, out: &mut Output) {
        out.extend_from_slice(b"late\n");
    }
}

struct LinesService;

impl Service for LinesService {
    type Handler = Lines;
    fn handler(&self, _peer: &Peer) -> Lines {
        Lines(Vec::new())
    }
}

#[test]
fn a_head_that_trickles_is_cut_at_its_deadline() {
    for b in BACKENDS {
        let (client, server) = pair();
        let config = Config {
            idle_timeout: Some(Duration::from_secs(5)),
            header_timeout: Some(Duration::from_millis(300)),
            ..Config::default()
        };
        with_loop(b, LinesService, config, server, |_| {
            (&client).write_all(b"one\n").unwrap();
            assert_eq!(read_n(&client, 4), b"one\n", "{b}");
            client
                .set_read_timeout(Some(Duration::from_millis(30)))
                .unwrap();
            let start = Instant::now();
            let mut got = Vec::new();
            // A byte every 30 ms: never idle, never a whole line.
            loop {
                assert!(start.elapsed() < Duration::from_secs(3), "{b}: never cut");
                let _ = (&client).write_all(b"x");
                let mut buf = [0u8; 16];
                match (&client).read(&mut buf) {
                    // Reset: closed with the rest of the line unread (after `late`,
                    // which a Unix socket still delivers first).
                    Ok(0) => break,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{b}: {e}"),
                }
            }
            let took = start.elapsed();
            assert_eq!(got, b"late\n", "{b}");
            assert!(
                took >= Duration::from_millis(280) && took < Duration::from_secs(2),
                "{b}: cut after {took:?}"
            );
        })
        .unwrap();
    }
}
