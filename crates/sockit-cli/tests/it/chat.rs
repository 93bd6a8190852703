//! `sockit chat serve` and `chat join`, end to end: clients as raw sockets speaking the
//! line protocol, through `nc`, and through `sockit chat join`; then two servers sharing
//! rooms through a real `redis-server` started here, killed and restarted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Proc, Server, WAIT, contains, json_number, signal};

/// A client speaking the line protocol over a raw socket.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    /// Every line read so far, for failure messages.
    seen: Vec<String>,
}

impl Client {
    fn connect(server: &Server) -> Client {
        let stream = TcpStream::connect(server.addr()).expect("connect to chat server");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut c = Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            seen: Vec::new(),
        };
        c.expect("* welcome");
        c
    }

    /// Connects and takes `nick`; returns once the join notice came back.
    fn join(server: &Server, nick: &str) -> Client {
        let mut c = Client::connect(server);
        c.send(nick);
        c.expect(&format!("* {nick} joined #lobby"));
        c
    }

    fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send to chat server");
    }

    /// The next line (without its newline); `None` at EOF.
    fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                assert_eq!(buf.pop(), Some(b'\n'), "a line cut short: {buf:?}");
                let line = String::from_utf8(buf).expect("the server sends UTF-8");
                self.seen.push(line.clone());
                Some(line)
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("reading a line: {e}; seen so far {:?}", self.seen),
        }
    }

    /// Reads lines until one starts with `prefix`; returns the lines before it.
    fn expect(&mut self, prefix: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            match self.line() {
                Some(l) if l.starts_with(prefix) => return before,
                Some(l) => before.push(l),
                None => panic!("EOF before {prefix:?}; seen {:?}", self.seen),
            }
        }
    }

    /// The next line, which must be `want`.
    fn next_is(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got.as_deref(), Some(want), "seen {:?}", self.seen);
    }

    /// Reads until EOF; returns the lines.
    fn rest(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.line()).collect()
    }
}

fn serve(extra: &[&str]) -> Server {
    let mut args = vec!["chat", "serve", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[test]
fn messages_reach_the_room_and_no_other_including_an_nc_user() {
    let server = serve(&[]);
    let mut alice = Client::join(&server, "alice");
    let mut nc = Proc::spawn({
        let mut c = Command::new("nc");
        c.args(["-q", "1", "127.0.0.1", &server.port().to_string()]);
        c
    });
    nc.write(b"bob\n");
    nc.wait_stdout_contains("* bob joined #lobby");
    alice.next_is("* bob joined #lobby");
    let mut carol = Client::join(&server, "carol");
    carol.send("/join #dev");
    carol.expect("* carol joined #dev");
    alice.expect("* carol left #lobby");

    alice.send("hello lobby");
    nc.wait_stdout_contains("<alice> hello lobby");
    nc.write(b"hi alice, from nc\r\n");
    alice.next_is("<bob> hi alice, from nc");
    // Both lines were handled before this one: had either leaked into #dev, carol would
    // read it before the answer to /who.
    carol.send("/who");
    carol.next_is("* 1 in #dev: carol");
    carol.send("only for dev");
    carol.send("/rooms");
    carol.next_is("* 2 rooms: #dev (1), #lobby (2)");
    alice.send("/who");
    alice.next_is("* 2 in #lobby: alice, bob");
    let out = String::from_utf8(nc.stdout()).unwrap();
    assert!(!out.contains("only for dev"), "{out}");
    assert!(!out.contains("<bob>"), "not echoed to the sender: {out}");

    nc.write(b"/quit see you\n");
    nc.wait_stdout_contains("* bye");
    alice.next_is("* bob left #lobby (see you)");
    nc.close_stdin();
    assert!(nc.wait_exit(WAIT).success());
    let (status, _) = server.stop();
    assert!(status.success());
}

#[test]
fn private_messages_and_nick_rules() {
    let server = serve(&[]);
    let mut alice = Client::join(&server, "alice");
    let mut bob = Client::join(&server, "bob");
    alice.next_is("* bob joined #lobby");

    let mut late = Client::connect(&server);
    late.send("hello?");
    late.next_is(
        "! invalid nick hello?: a nick has only ASCII letters, digits and [ ] \\ ` _ ^ { | } -",
    );
    late.send("/join #dev");
    late.next_is("! choose a nick first: send it as a line (or /nick NAME)");
    late.send("ALICE");
    late.next_is("! nick ALICE is taken");
    late.send("/nick carol");
    late.next_is("* carol joined #lobby");

    alice.send("/msg Bob psst");
    alice.expect("-> *bob* psst");
    bob.expect("*alice* psst");
    alice.send("/msg nobody hi");
    alice.next_is("! no such nick: nobody");
    bob.send("/nick carol");
    bob.next_is("! nick carol is taken");
    bob.send("/nick robert");
    bob.next_is("* bob is now known as robert");
    alice.expect("* bob is now known as robert");
    // The old nick is free again.
    let mut bob2 = Client::join(&server, "Bob");
    bob2.send("/help");
    let help = bob2.expect("* any other line goes to your room");
    assert!(
        help.iter().any(|l| l.contains("/msg NICK TEXT")),
        "{help:?}"
    );
    bob2.send("/frob");
    bob2.next_is("! unknown command /frob (try /help)");
}

#[test]
fn the_last_messages_are_replayed_to_who_joins() {
    let server = serve(&["--history", "3"]);
    let mut alice = Client::join(&server, "alice");
    for i in 1..=5 {
        alice.send(&format!("message {i}"));
    }
    alice.send("/who");
    alice.next_is("* 1 in #lobby: alice");
    let mut bob = Client::connect(&server);
    bob.send("bob");
    for want in [
        "<alice> message 3",
        "<alice> message 4",
        "<alice> message 5",
    ] {
        bob.next_is(want);
    }
    bob.next_is("* bob joined #lobby");
    // Each room has its own history.
    bob.send("/join #quiet");
    bob.next_is("* bob joined #quiet");
}

#[test]
fn garbage_control_characters_and_over_long_lines_never_reach_other_terminals_raw() {
    let server = serve(&["--max-line", "100"]);
    let mut alice = Client::join(&server, "alice");
    let mut bob = Client::join(&server, "bob");
    alice.next_is("* bob joined #lobby");

    alice.send_bytes(b"\x1b[2J\x1b]0;pwned\x07 \xff\xfe\x00 tab\there \xc3\xa9t\xc3\xa9\r\n");
    bob.next_is(
        "<alice> \\x1b[2J\\x1b]0;pwned\\x07 \u{FFFD}\u{FFFD}\\x00 tab\\there \u{e9}t\u{e9}",
    );
    // An over-long line is dropped (however long it goes on) and its sender told.
    alice.send_bytes(&[b'x'; 1000]);
    alice.send_bytes(&[b'y'; 70_000]);
    alice.send_bytes(b"\nafter the long one\n");
    alice.next_is("! line too long (the limit is 100 bytes): dropped");
    bob.next_is("<alice> after the long one");
    // Binary noise: every byte value, in many lines. Whatever comes through is printable.
    let noise: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    alice.send_bytes(&noise);
    alice.send("\nend of noise");
    let got = bob.expect("<alice> end of noise");
    for line in got {
        assert!(
            !line.chars().any(|c| c.is_control()),
            "control character relayed: {line:?}"
        );
    }
    // The sender, the others and the server are fine.
    alice.send("still here");
    bob.expect("<alice> still here");
    let (status, _) = server.stop();
    assert!(status.success());
}

/// The kernel send buffer (`tb` in `ss -m`) of the server's socket for a client.
fn server_send_buffer(server: &Server, client: &Client) -> u64 {
    let client_port = client.writer.local_addr().unwrap().port();
    let filter = format!("( sport = :{} and dport = :{client_port} )", server.port());
    let out = Command::new("ss")
        .args(["-tmnH", "state", "established", &filter])
        .output()
        .expect("run ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text
        .find(",tb")
        .unwrap_or_else(|| panic!("no tb in ss output: {text:?}"));
    let digits: String = text[at + 3..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

/// What a slow reader may hold in the kernel is set by sockit, not by the machine's
/// `net.ipv4.tcp_wmem` (which lets an autotuned buffer grow to 4 MiB or more).
#[test]
fn chat_caps_each_clients_kernel_send_buffer() {
    let server = serve(&[]);
    let alice = Client::join(&server, "alice");
    // 64 KiB asked for, which Linux doubles.
    assert_eq!(server_send_buffer(&server, &alice), 128 * 1024);
    let server = serve(&["--send-buffer", "16K"]);
    let bob = Client::join(&server, "bob");
    assert_eq!(server_send_buffer(&server, &bob), 32 * 1024);
}

/// The slow reader never reads, so it holds at most `--max-queue` (256 KiB) in the server
/// plus the capped kernel buffers (128 KiB sent, a few KiB received): far less than the
/// 3 MB sent, whatever the machine's TCP autotuning allows. The fast readers read in
/// threads that a busy machine may put to sleep, and chat has no backpressure, so the
/// sender waits whenever one is more than `WINDOW` lines behind: a fast reader's lag then
/// stays well under its limit, and no scheduling delay can make it "too slow".
#[test]
fn a_slow_reader_is_disconnected_while_fast_readers_lose_nothing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = serve(&[]);
    let mut sender = Client::join(&server, "sender");
    // A reader that never reads, with a small receive buffer so the kernel holds little.
    let slow = {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let addr: std::net::SocketAddr = server.addr().parse().unwrap();
        socket.connect(&addr.into()).unwrap();
        let mut s: TcpStream = socket.into();
        s.write_all(b"slow\n").unwrap();
        s
    };
    sender.expect("* slow joined #lobby");
    const LINES: usize = 3000;
    const WINDOW: usize = 100;
    let body = "z".repeat(1000);
    let progress: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
    let fast: Vec<_> = (0..3)
        .map(|i| {
            let mut c = Client::join(&server, &format!("fast{i}"));
            let progress = progress.clone();
            std::thread::spawn(move || {
                let mut got = 0;
                let mut saw_slow_leave = false;
                while got < LINES {
                    let line = c.line().expect("fast reader disconnected");
                    if let Some(text) = line.strip_prefix("<sender> ") {
                        got += 1;
                        progress[i].store(got, Ordering::Relaxed);
                        let n: usize = text.split(' ').next().unwrap().parse().unwrap();
                        assert_eq!(n, got, "line lost or out of order");
                    } else if line == "* slow left #lobby (too slow)" {
                        saw_slow_leave = true;
                    }
                }
                (got, saw_slow_leave, c)
            })
        })
        .collect();
    for i in 0..3 {
        sender.expect(&format!("* fast{i} joined"));
    }
    for n in 1..=LINES {
        let deadline = Instant::now() + WAIT;
        while progress
            .iter()
            .any(|p| p.load(Ordering::Relaxed) + WINDOW < n)
        {
            assert!(Instant::now() < deadline, "a fast reader stopped reading");
            std::thread::sleep(Duration::from_micros(200));
        }
        sender.send(&format!("{n} {body}"));
    }
    sender.send("/who");
    let before = sender.expect("* ");
    assert!(before.iter().all(|l| !l.starts_with('!')), "{before:?}");
    let mut any_saw = false;
    for t in fast {
        let (got, mut saw, mut c) = t.join().expect("fast reader failed");
        assert_eq!(got, LINES);
        if !saw {
            c.send("/who");
            let lines = c.expect("* 4 in #lobby");
            saw = lines.iter().any(|l| l == "* slow left #lobby (too slow)");
        }
        any_saw |= saw;
    }
    assert!(any_saw, "nobody saw the slow reader leave");
    // The slow reader finds whole lines, then the notice, then EOF.
    let mut slow = BufReader::new(slow);
    let mut last = String::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut line = String::new();
        match slow.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {
                assert!(line.ends_with('\n'), "a line cut: {line:?}");
                last = line;
            }
            Err(e) => panic!("slow reader: {e}"),
        }
        assert!(Instant::now() < deadline);
    }
    assert!(
        last.starts_with("! too slow: ") && last.contains("disconnected"),
        "{last:?}"
    );
}

#[test]
fn shutdown_tells_everyone_and_exits_0() {
    let server = serve(&[]);
    let mut alice = Client::join(&server, "alice");
    let mut fresh = Client::connect(&server);
    let (status, _) = server.stop();
    assert!(status.success(), "{status}");
    assert_eq!(alice.rest(), vec!["* server shutting down"]);
    assert_eq!(fresh.rest(), vec!["* server shutting down"]);
}

#[test]
fn bench_chat_delivers_every_line_to_every_other_client_and_measures_it() {
    let server = serve(&["--history", "0"]);
    {
        let out = crate::util::sockit()
            .args(["bench", "chat"])
            .arg(server.addr())
            .args(["--clients", "30", "--senders", "3", "--rate", "20"])
            .args(["--secs", "0.5", "--json"])
            .stdin(Stdio::null())
            .output()
            .expect("run sockit bench chat");
        let json = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{json} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // 3 senders x 10 lines, each to the 29 other clients.
        assert_eq!(json_number(&json, "sent"), 30.0, "{json}");
        assert_eq!(json_number(&json, "expected"), 870.0, "{json}");
        assert_eq!(json_number(&json, "delivered"), 870.0, "{json}");
        assert_eq!(json_number(&json, "lost"), 0.0, "{json}");
        assert_eq!(json_number(&json, "gaps"), 0.0, "{json}");
        assert!(json_number(&json, "p99") > 0.0, "{json}");
    }
}

#[test]
fn max_conns_refuses_with_a_notice() {
    let server = serve(&["--max-conns", "1"]);
    let _alice = Client::join(&server, "alice");
    let mut refused = TcpStream::connect(server.addr()).unwrap();
    refused.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = String::new();
    let _ = refused.read_to_string(&mut got);
    assert_eq!(got, "! server full (1 connections); try again later\n");
}

#[test]
fn chat_join_is_a_line_client_that_leaves_cleanly_and_reports_a_lost_server() {
    let server = serve(&[]);
    let mut alice = Client::join(&server, "alice");
    let addr = server.addr();
    let mut join = Proc::sockit(&["chat", "join", &addr, "--nick", "carol"]);
    alice.next_is("* carol joined #lobby");
    join.write(b"hello from join\n");
    alice.next_is("<carol> hello from join");
    alice.send("hi carol");
    join.wait_stdout_contains("<alice> hi carol");
    join.close_stdin();
    alice.next_is("* carol left #lobby");
    let status = join.wait_exit(WAIT);
    assert!(
        status.success(),
        "exit {status}; stderr {:?}",
        join.stderr()
    );

    // Typed nick, then the server goes away under it.
    let mut join = Proc::sockit(&["chat", "join", &addr]);
    join.write(b"dave\n");
    alice.next_is("* dave joined #lobby");
    let (status, _) = server.stop();
    assert!(status.success());
    let status = join.wait_exit(WAIT);
    assert_eq!(status.code(), Some(1), "stderr {:?}", join.stderr());
    let err = join.stderr();
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("closed the connection"), "{err:?}");
    assert!(contains(&join.stdout(), b"* server shutting down"));

    // Nobody there at all.
    let mut join = Proc::sockit(&["chat", "join", &addr, "--nick", "x"]);
    let status = join.wait_exit(WAIT);
    assert_eq!(status.code(), Some(1));
    assert_eq!(join.stderr().lines().count(), 1, "{:?}", join.stderr());
}

/// A `redis-server` of our own on a free port, killed when dropped.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    /// Starts one. A missing `redis-server` fails the test (`./test.sh` installs it): a
    /// test that skips itself would pass with multi-node chat broken.
    fn start() -> Redis {
        assert!(
            Command::new("redis-server")
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok(),
            "redis-server is not installed (./test.sh installs it)"
        );
        let port = crate::util::free_port();
        let mut r = Redis { child: None, port };
        r.restart();
        r
    }

    /// (Re)starts the server on the same port, with no persistence: it comes back empty.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, 9);
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends numbered `text` lines from `from` until one reaches `to` (nodes connect to Redis
/// in the background); returns with `to` just past it.
fn until_delivered(from: &mut Client, to: &mut Client, text: &str) {
    let deadline = Instant::now() + WAIT;
    to.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut n = 0;
    'outer: loop {
        assert!(
            Instant::now() < deadline,
            "{text:?} never crossed; seen {:?}",
            to.seen
        );
        n += 1;
        from.send(&format!("{text} {n}"));
        loop {
            let mut buf = String::new();
            match to.reader.read_line(&mut buf) {
                Ok(0) => panic!("EOF; seen {:?}", to.seen),
                Ok(_) if buf.contains(text) => break 'outer,
                Ok(_) => to.seen.push(buf),
                Err(_) => break,
            }
        }
    }
    to.reader.get_ref().set_read_timeout(Some(WAIT)).unwrap();
    // Lines sent before the one that crossed may still be on their way: a marker ends them.
    from.send(&format!("{text} done"));
    to.expect(&format!("<{}> {text} done", nick_of(from)));
}

fn nick_of(c: &Client) -> String {
    c.seen
        .iter()
        .find_map(|l| {
            l.strip_prefix("* ")
                .and_then(|r| r.split_once(" joined "))
                .map(|(n, _)| n.to_owned())
        })
        .expect("the client joined")
}

#[test]
fn two_nodes_share_rooms_messages_who_and_nicks_through_redis() {
    let redis = Redis::start();
    let url = redis.url();
    let one = serve(&["--redis", &url]);
    let two = serve(&["--redis", &url]);
    let mut alice = Client::join(&one, "alice");
    let mut bob = Client::join(&two, "bob");
    until_delivered(&mut alice, &mut bob, "hello node two");
    until_delivered(&mut bob, &mut alice, "hello node one");
    let mut carol = Client::join(&one, "carol");
    bob.expect("* carol joined #lobby");
    alice.expect("* carol joined #lobby");

    carol.send("said on one");
    bob.expect("<carol> said on one");
    bob.send("/who");
    bob.next_is("* 3 in #lobby: alice, bob, carol");
    bob.send("/msg Alice psst");
    bob.next_is("-> *alice* psst");
    alice.expect("*bob* psst");

    // A nick held on one node is taken on the other, in any case.
    let mut other = Client::connect(&two);
    other.send("CAROL");
    other.next_is("! nick CAROL is taken");
    other.send("dave");
    other.expect("* dave joined #lobby");
    // Rooms across nodes.
    bob.send("/join #dev");
    bob.expect("* bob joined #dev");
    alice.expect("* bob left #lobby");
    // Bob's leaving and his joining #dev are two events of node two: node one may read
    // the second a moment after the first.
    let deadline = Instant::now() + WAIT;
    loop {
        alice.send("/rooms");
        let rooms = alice.line();
        if rooms.as_deref() == Some("* 2 rooms: #dev (1), #lobby (3)") {
            break;
        }
        assert!(Instant::now() < deadline, "/rooms: {rooms:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    alice.send("lobby only");
    other.expect("<alice> lobby only");
    bob.send("/who");
    bob.next_is("* 1 in #dev: bob");
    // A nick released on one node is free on the other.
    carol.send("/quit");
    alice.expect("* carol left #lobby");
    let mut carol2 = Client::connect(&two);
    carol2.send("carol");
    // (After the replay of #lobby's last messages.)
    carol2.expect("* carol joined #lobby");
    drop(redis);
}

/// Two chat servers on `redis`, alice on the first and bob on the second, once a line
/// from alice has reached bob (so both nodes are on the backplane).
fn two_nodes(redis: &Redis) -> (Server, Server, Client, Client) {
    let url = redis.url();
    let one = serve(&["--redis", &url]);
    let two = serve(&["--redis", &url]);
    let mut alice = Client::join(&one, "alice");
    let mut bob = Client::join(&two, "bob");
    until_delivered(&mut alice, &mut bob, "before");
    (one, two, alice, bob)
}

#[test]
fn nodes_keep_serving_when_redis_dies_and_join_up_again_when_it_returns() {
    let mut redis = Redis::start();
    let (one, two, mut alice, mut bob) = two_nodes(&redis);
    let mut carol = Client::join(&one, "carol");
    alice.expect("* carol joined #lobby");

    redis.kill();
    // Local members of a node go on chatting.
    alice.send("during the outage");
    carol.expect("<alice> during the outage");
    let mut dan = Client::join(&one, "dan");
    dan.send("new here");
    alice.expect("<dan> new here");

    redis.restart();
    // Cross-node delivery resumes, both ways, and /who sees every node again.
    until_delivered(&mut alice, &mut bob, "after");
    until_delivered(&mut bob, &mut carol, "back");
    let deadline = Instant::now() + WAIT;
    loop {
        bob.send("/who");
        let line = bob.expect("* ");
        let _ = line;
        let who = bob.seen.last().unwrap().clone();
        if who == "* 4 in #lobby: alice, bob, carol, dan" {
            break;
        }
        assert!(Instant::now() < deadline, "/who after the restart: {who}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Nicks are claimed again in the new Redis.
    let mut dup = Client::connect(&two);
    dup.send("dan");
    dup.next_is("! nick dan is taken");
}

/// A Redis outage splits the rooms, and the members are told; when it is whole again
/// (the notice), everything said from then on arrives, even lines said on a node that is
/// back before the other one is.
#[test]
fn chat_across_redis_tells_members_of_a_split_and_loses_nothing_once_whole_again() {
    let mut redis = Redis::start();
    let (_one, _two, mut alice, mut bob) = two_nodes(&redis);

    redis.kill();
    alice.expect("* #lobby is split: ");
    bob.expect("* #lobby is split: ");

    redis.restart();
    alice.expect("* #lobby is whole again");
    // At once: the other node may not be back yet.
    const LINES: usize = 300;
    for n in 1..=LINES {
        alice.send(&format!("line {n}"));
    }
    let mut got = 0;
    let mut whole = false;
    while got < LINES {
        let line = bob.line().expect("bob's connection ended");
        if let Some(n) = line.strip_prefix("<alice> line ") {
            got += 1;
            assert_eq!(n, got.to_string(), "a line lost or out of order");
        } else if line == "* #lobby is whole again" {
            whole = true;
        }
    }
    if !whole {
        // Bob's own node may come back after Alice's lines were read: its notice follows.
        bob.expect("* #lobby is whole again");
    }
}

#[test]
fn chat_join_on_a_terminal_keeps_the_typed_line_intact_under_incoming_lines() {
    // `script` (util-linux) runs the client on a pseudo-terminal of its own; missing, it
    // fails the test (`./test.sh` installs it) rather than skipping it.
    assert!(
        Command::new("script").arg("--version").output().is_ok(),
        "script(1) is not installed (./test.sh installs it)"
    );
    let server = serve(&[]);
    let mut alice = Client::join(&server, "alice");
    let command = format!(
        "{} chat join {} --nick tty",
        env!("CARGO_BIN_EXE_sockit"),
        server.addr()
    );
    let mut tty = Proc::spawn({
        let mut c = Command::new("script");
        c.args(["-q", "-e", "-c", &command, "/dev/null"]);
        c
    });
    alice.next_is("* tty joined #lobby");
    tty.wait_stdout_contains("* tty joined #lobby");
    // Raw mode: Enter is a carriage return, and the typed line goes out as one line.
    tty.write(b"hello from a terminal\r");
    alice.next_is("<tty> hello from a terminal");
    // Half a line typed, then a line arrives: it is printed above, the half line redrawn.
    tty.write(b"half a li");
    tty.wait_stdout_contains("half a li");
    alice.send("incoming \x1b[31mred");
    let out = tty.wait_stdout(|b| {
        let s = String::from_utf8_lossy(b);
        s.find("<alice> incoming")
            .is_some_and(|i| s[i..].contains("> half a li"))
    });
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(
        out.contains("<alice> incoming \\x1b[31mred"),
        "escape relayed raw: {out:?}"
    );
    tty.write(b"ne\r");
    alice.next_is("<tty> half a line");
    // Ctrl-C leaves cleanly.
    tty.write(b"\x03");
    alice.next_is("* tty left #lobby");
    let status = tty.wait_exit(WAIT);
    assert!(status.success(), "exit {status}; output {out:?}");
}

#[test]
fn chat_refuses_look_alike_nicks() {
    let server = serve(&[]);
    let mut alice = Client::join(&server, "alice");
    let mut other = Client::connect(&server);
    // Cyrillic а, full width, dotless ı, Cyrillic с: each looks like alice.
    for fake in [
        "\u{430}lice",
        "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}",
        "al\u{131}ce",
        "ali\u{441}e",
    ] {
        other.send(fake);
        other.next_is(&format!(
            "! invalid nick {fake}: a nick has only ASCII letters, digits and [ ] \\ ` _ ^ {{ | }} -"
        ));
    }
    // Case, and IRC's case mapping of [ ] \ to { } |, name the same nick.
    other.send("ALICE");
    other.next_is("! nick ALICE is taken");
    other.send("[x]");
    other.next_is("* [x] joined #lobby");
    alice.next_is("* [x] joined #lobby");
    let mut third = Client::connect(&server);
    third.send("{X}");
    third.next_is("! nick {X} is taken");
}

#[test]
fn chat_join_escapes_a_servers_lines_even_into_a_pipe() {
    // Not a sockit server: it sends escapes raw, then closes.
    let mut fake = Proc::python(
        r#"
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
s.settimeout(20)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
c.sendall(b"\x1b]0;pwned\x07<eve> hi\x1b[2J\n")
c.recv(100)
c.close()
"#,
        &[],
    );
    let addr = format!("127.0.0.1:{}", fake.first_line().trim());
    let mut join = Proc::sockit(&["chat", "join", &addr, "--nick", "x"]);
    let _ = join.wait_exit(WAIT);
    let _ = fake.wait_exit(WAIT);
    let out = join.stdout();
    assert!(
        contains(&out, b"\\x1b]0;pwned\\x07<eve> hi\\x1b[2J\n"),
        "{out:?}"
    );
    assert!(!out.contains(&0x1b), "ESC on stdout: {out:?}");
    assert!(!join.stderr().contains('\x1b'), "ESC on stderr");
}

/// A zero-setup `chat serve tls://` with its log lines on; its fingerprint.
fn serve_tls() -> (Server, String) {
    let server = Server::start_env(
        &["chat", "serve", "tls://127.0.0.1:0"],
        &[("SOCKIT_LOG", "sockit::chat=info")],
    );
    assert!(server.endpoint.starts_with("tls://"), "{}", server.endpoint);
    let pin = server.tls_pin();
    (server, pin)
}

/// The server's next `TLS connection refused` log line (other log lines skipped).
fn tls_refusal(server: &Server) -> String {
    loop {
        let line = server.next_line().expect("a TLS refusal in the log");
        if line.contains("TLS connection refused") {
            return line;
        }
    }
}

/// `openssl s_client` and `sockit chat join tls:// --pin` in one room of a zero-setup
/// `chat serve tls://`: lines, notices and a nick change cross both ways, and a
/// plain-text client refused meanwhile is seen by neither (one log line).
#[test]
fn chat_tls_between_openssl_s_client_and_a_pinned_chat_join() {
    let (server, pin) = serve_tls();
    // -quiet implies -ign_eof: s_client runs until the server closes (after /quit).
    let mut s_client = Proc::spawn({
        let mut c = Command::new("openssl");
        c.args(["s_client", "-quiet", "-connect", &server.addr()]);
        c
    });
    s_client.write(b"carol\n");
    s_client.wait_stdout_contains("* carol joined #lobby\n");
    let mut join = Proc::sockit(&[
        "chat",
        "join",
        &server.endpoint,
        "--pin",
        &pin,
        "--nick",
        "bob",
    ]);
    s_client.wait_stdout_contains("* bob joined #lobby\n");
    join.write(b"hello from join\n");
    s_client.wait_stdout_contains("<bob> hello from join\n");
    s_client.write(b"hi from s_client\n");
    join.wait_stdout_contains("<carol> hi from s_client\n");
    s_client.write(b"/nick carl\n");
    join.wait_stdout_contains("* carol is now known as carl\n");

    let mut plain = Proc::python(crate::util::PY_PLAIN_TO_TLS, &[&server.port().to_string()]);
    assert_eq!(plain.wait_exit(WAIT).code(), Some(0), "{}", plain.stderr());
    assert_eq!(String::from_utf8_lossy(&plain.stdout()).trim(), "closed");
    let line = tls_refusal(&server);
    assert!(line.contains("does not speak TLS"), "{line}");

    join.write(b"after the plain one\n");
    s_client.wait_stdout_contains("<bob> after the plain one\n");
    join.close_stdin();
    s_client.wait_stdout_contains("* bob left #lobby\n");
    let status = join.wait_exit(WAIT);
    assert!(
        status.success(),
        "exit {status}; stderr {:?}",
        join.stderr()
    );
    s_client.write(b"/quit\n");
    let status = s_client.wait_exit(WAIT);
    assert!(
        status.success(),
        "exit {status}; stderr {:?}",
        s_client.stderr()
    );
    assert_eq!(
        String::from_utf8_lossy(&s_client.stdout()),
        "* welcome to sockit chat: send your nick to start (/help for commands)\n\
         * carol joined #lobby\n\
         * bob joined #lobby\n\
         <bob> hello from join\n\
         * carol is now known as carl\n\
         <bob> after the plain one\n\
         * bob left #lobby\n\
         * bye\n"
    );
    let joined = String::from_utf8_lossy(&join.stdout()).into_owned();
    assert!(joined.contains("* bob joined #lobby\n"), "{joined}");
    assert!(!joined.contains("GET"), "{joined}");
}

/// A client that stalls half-way through its handshake is cut by the 5 s deadline, one
/// log line; `chat join` with a wrong pin fails in one line with exit 1; a pinned one
/// served at the same time is unharmed.
#[test]
fn chat_tls_cuts_a_stalled_handshake_and_refuses_a_wrong_pin() {
    let (server, pin) = serve_tls();
    let mut bob = Proc::sockit(&[
        "chat",
        "join",
        &server.endpoint,
        "--pin",
        &pin,
        "--nick",
        "bob",
    ]);
    bob.wait_stdout_contains("* bob joined #lobby\n");

    let started = Instant::now();
    let mut stalled = Proc::python(
        crate::util::PY_STALLED_HANDSHAKE,
        &[&server.port().to_string()],
    );
    assert_eq!(
        stalled.wait_exit(WAIT).code(),
        Some(0),
        "{}",
        stalled.stderr()
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(12),
        "{waited:?}"
    );
    let line = tls_refusal(&server);
    assert!(line.contains("timed out after 5s"), "{line}");

    let wrong = format!("sha256:{}", "cd".repeat(32));
    let mut eve = Proc::sockit(&[
        "chat",
        "join",
        &server.endpoint,
        "--pin",
        &wrong,
        "--nick",
        "eve",
    ]);
    crate::util::assert_fails_with(&mut eve, "pin mismatch");
    let line = tls_refusal(&server);
    assert!(line.contains("broke off the handshake"), "{line}");

    bob.write(b"/who\n");
    bob.wait_stdout_contains("bob");
    bob.write(b"/quit\n");
    let status = bob.wait_exit(WAIT);
    assert!(status.success(), "exit {status}; stderr {:?}", bob.stderr());
    assert!(!contains(&bob.stdout(), b"eve"));
}

/// Python: a TLS client of port argv[1] (trusting anything: the server is the subject
/// here) that takes the nick `slow` and then never reads, until its stdin closes.
const PY_TLS_NEVER_READS: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
raw = socket.socket()
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
raw.connect(("127.0.0.1", int(sys.argv[1])))
s = ctx.wrap_socket(raw, server_hostname="localhost")
s.sendall(b"slow\n")
print("joined", flush=True)
sys.stdin.read()
"#;

/// The slow-reader rule holds over TLS: a TLS client that stops reading is dropped as
/// too slow once its queue passes `--max-queue` (TLS's own backlog is bounded, so the
/// hub sees the socket refuse bytes), and the sender, also over TLS, goes on.
#[test]
fn chat_tls_drops_a_slow_reader_as_too_slow() {
    let server = Server::start(&["chat", "serve", "tls://127.0.0.1:0", "--max-queue", "64K"]);
    let pin = server.tls_pin();
    let mut sender = Proc::sockit(&[
        "chat",
        "join",
        &server.endpoint,
        "--pin",
        &pin,
        "--nick",
        "sender",
    ]);
    sender.wait_stdout_contains("* sender joined #lobby\n");
    let mut slow = Proc::python(PY_TLS_NEVER_READS, &[&server.port().to_string()]);
    sender.wait_stdout_contains("* slow joined #lobby\n");
    let line = format!("{}\n", "z".repeat(1000));
    // About 1 MB: far more than the slow reader's queue, TLS backlog and socket buffers.
    sender.feed(line.repeat(1000).into_bytes());
    sender.wait_stdout_contains("* slow left #lobby (too slow)\n");
    sender.write(b"/quit\n");
    let status = sender.wait_exit(WAIT);
    assert!(
        status.success(),
        "exit {status}; stderr {:?}",
        sender.stderr()
    );
    slow.close_stdin();
    let _ = slow.wait_exit(WAIT);
}
