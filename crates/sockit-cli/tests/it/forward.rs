//! `sockit forward`: the relay checked end to end against targets nobody here wrote
//! (Python's socket, ssl and http.server, redis-server, openssl s_server) and clients
//! likewise (Python, curl, redis-cli): bytes exact both ways at once, half-close and reset
//! carried, TLS terminated and originated, a target down, the connection limit and the
//! idle timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{Proc, Server, TempDir, WAIT, openssl_cert, payload, s_server_www};

/// A Python asyncio echo server on loopback port 0 (or the Unix socket given as its
/// argument) that prints its port (or `ready`) on stdout: the target of most tests.
const ECHO_TARGET: &str = r#"
import asyncio, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
async def echo(r, w):
    try:
        while True:
            b = await r.read(65536)
            if not b:
                break
            w.write(b)
            await w.drain()
        w.write_eof()
    except ConnectionError:
        pass
    w.close()
async def main():
    if len(sys.argv) > 1:
        srv = await asyncio.start_unix_server(echo, sys.argv[1], backlog=2048)
        print("ready", flush=True)
    else:
        srv = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=2048)
        print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()
asyncio.run(main())
"#;

/// A Python target that accepts one connection and runs `body` on it (`c`), after
/// printing its port.
fn one_shot_target(body: &str) -> (Proc, u16) {
    let script = format!(
        "import socket, struct, sys\n\
         l = socket.socket()\n\
         l.bind(('127.0.0.1', 0))\n\
         l.listen(8)\n\
         print(l.getsockname()[1], flush=True)\n\
         c, _ = l.accept()\n\
         {body}\n"
    );
    let p = Proc::python(&script, &[]);
    let port = p.first_line().trim().parse().expect("target port");
    (p, port)
}

fn echo_target() -> (Proc, u16) {
    let p = Proc::python(ECHO_TARGET, &[]);
    let port = p.first_line().trim().parse().expect("target port");
    (p, port)
}

fn forward(args: &[&str]) -> Server {
    let mut all = vec!["forward"];
    all.extend_from_slice(args);
    Server::start(&all)
}

fn client(fw: &Server) -> TcpStream {
    let s = TcpStream::connect(fw.addr()).expect("connect to forward");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn read_to_end(mut s: &TcpStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// 100 MiB each way at the same time, through splice, byte for byte: the client writes
/// while it reads, and the target (Python's asyncio) sends every byte back as it comes, so
/// both directions of the relay carry the stream at once (no file on disk either side).
#[test]
fn forward_100mib_each_way_at_once() {
    const LEN: usize = 100 << 20;
    let (_target, port) = echo_target();
    let fw = forward(&["127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let s = client(&fw);
    let sent = payload(LEN, 8);
    let writer = {
        let s = s.try_clone().unwrap();
        let bytes = sent.clone();
        std::thread::spawn(move || {
            (&s).write_all(&bytes).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
        })
    };
    let got = read_to_end(&s).expect("read the bytes back");
    writer.join().unwrap();
    assert!(got == sent, "{} bytes back, not the {LEN} sent", got.len());
}

/// The client's half-close reaches the target as EOF, and the target's answer after it
/// still comes back, then its close.
#[test]
fn forward_half_close_client_to_target() {
    let (_target, port) = one_shot_target(
        "n = 0\n\
         while True:\n    \
             b = c.recv(65536)\n    \
             if not b: break\n    \
             n += len(b)\n\
         c.sendall(b'got %d bytes' % n)\n\
         c.close()",
    );
    let fw = forward(&["127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let s = client(&fw);
    (&s).write_all(&payload(300_000, 1)).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&s).unwrap(), b"got 300000 bytes");
}

/// The target's half-close reaches the client as EOF while the client can still send,
/// and what it sends then reaches the target.
#[test]
fn forward_half_close_target_to_client() {
    let (target, port) = one_shot_target(
        "c.sendall(b'hello')\n\
         c.shutdown(socket.SHUT_WR)\n\
         got = b''\n\
         while True:\n    \
             b = c.recv(65536)\n    \
             if not b: break\n    \
             got += b\n\
         print(got.decode(), flush=True)\n\
         c.close()",
    );
    let dir = TempDir::new("fwd-hc");
    let listen = format!("unix:{}", dir.path("f.sock").to_str().unwrap());
    let fw = forward(&[&listen, &format!("127.0.0.1:{port}")]);
    let path = fw.endpoint.strip_prefix("unix:").unwrap().to_owned();
    let s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    (&s).read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hello");
    (&s).write_all(b"after your EOF").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    // Its port, then what it read after its own half-close.
    let out = target.wait_stdout(|b| b.iter().filter(|&&c| c == b'\n').count() == 2);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.lines().nth(1), Some("after your EOF"), "{text}");
}

/// A target that resets (SO_LINGER 0 close) resets the client too.
#[test]
fn forward_reset_carried() {
    let (_target, port) = one_shot_target(
        "c.recv(5)\n\
         c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n\
         c.close()",
    );
    let fw = forward(&["127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let s = client(&fw);
    (&s).write_all(b"hello").unwrap();
    let err = read_to_end(&s).expect_err("the client must see the reset, not an EOF");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}

/// redis-cli through forward to redis-server on a Unix socket.
#[test]
fn forward_tcp_to_redis_on_unix_socket() {
    let dir = TempDir::new("fwd-redis");
    let sock = dir.path("redis.sock");
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", "0", "--save", "", "--appendonly", "no"])
        .arg("--unixsocket")
        .arg(&sock)
        .arg("--dir")
        .arg(&dir.0);
    let _redis = Proc::spawn(cmd);
    let deadline = Instant::now() + WAIT;
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "redis-server never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let target = format!("unix:{}", sock.to_str().unwrap());
    let fw = forward(&["127.0.0.1:0", &target]);
    let port = fw.port().to_string();
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(cli(&["PING"]), "PONG\n");
    assert_eq!(cli(&["SET", "forwarded", "through sockit"]), "OK\n");
    assert_eq!(cli(&["GET", "forwarded"]), "through sockit\n");
}

/// TLS terminated by forward (openssl's certificate) in front of Python's http.server:
/// curl --cacert gets the file.
#[test]
fn forward_tls_termination_to_http_server() {
    let dir = TempDir::new("fwd-tls-term");
    let (cert, key) = openssl_cert(&dir, "localhost");
    let www = TempDir::new("fwd-www");
    let body = payload(200_000, 3);
    std::fs::write(www.path("file.bin"), &body).unwrap();
    let script = "import http.server, functools, sys\n\
                  h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n\
                  s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), h)\n\
                  print(s.server_address[1], flush=True)\n\
                  s.serve_forever()";
    let http = Proc::python(script, &[www.0.to_str().unwrap()]);
    let port: u16 = http.first_line().trim().parse().unwrap();
    let fw = forward(&[
        "tls://127.0.0.1:0",
        &format!("127.0.0.1:{port}"),
        "--cert",
        &cert,
        "--key",
        &key,
    ]);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert", &cert])
        .arg(format!("https://localhost:{}/file.bin", fw.port()))
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == body, "curl got {} bytes", out.stdout.len());
}

/// TLS terminated with the zero-setup certificate: its fingerprint line follows
/// `listening on`, and Python's ssl (trusting nothing but that certificate, fetched and
/// checked against the fingerprint) talks through it to an echo target.
#[test]
fn forward_tls_zero_setup_certificate() {
    let (_target, port) = echo_target();
    let fw = forward(&["tls://127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let pin = fw.tls_pin();
    let script = "import hashlib, socket, ssl, sys\n\
                  host, port, pin = '127.0.0.1', int(sys.argv[1]), sys.argv[2]\n\
                  pem = ssl.get_server_certificate((host, port))\n\
                  der = ssl.PEM_cert_to_DER_cert(pem)\n\
                  assert 'sha256:' + hashlib.sha256(der).hexdigest() == pin, 'fingerprint'\n\
                  ctx = ssl.create_default_context(cadata=pem)\n\
                  s = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname='localhost')\n\
                  s.sendall(b'through tls')\n\
                  print(s.recv(100).decode(), flush=True)";
    let mut py = Proc::python(script, &[&fw.port().to_string(), &pin]);
    let status = py.wait_exit(WAIT);
    assert!(status.success(), "{}", py.stderr());
    assert_eq!(py.stdout(), b"through tls\n");
}

/// TLS originated by forward towards openssl s_server, trusted by --cacert: a plain
/// HTTP request through it gets s_server's status page.
#[test]
fn forward_tls_origination_to_s_server() {
    let dir = TempDir::new("fwd-tls-orig");
    let (cert, key) = openssl_cert(&dir, "localhost");
    let (_s_server, port) = s_server_www(&cert, &key, &[]);
    let fw = forward(&[
        "127.0.0.1:0",
        &format!("tls://localhost:{port}"),
        "--cacert",
        &cert,
    ]);
    let s = client(&fw);
    (&s).write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let reply = String::from_utf8_lossy(&read_to_end(&s).unwrap()).into_owned();
    assert!(reply.starts_with("HTTP/1.0 200 ok"), "{reply}");
    assert!(reply.contains("s_server"), "{reply}");
}

/// An untrusted target certificate costs the client its connection, with one warning.
#[test]
fn forward_tls_origination_refuses_untrusted_target() {
    let dir = TempDir::new("fwd-tls-untrusted");
    let (cert, key) = openssl_cert(&dir, "localhost");
    let (_s_server, port) = s_server_www(&cert, &key, &[]);
    let fw = forward(&["127.0.0.1:0", &format!("tls://localhost:{port}")]);
    let s = client(&fw);
    let _ = (&s).write_all(b"GET / HTTP/1.0\r\n\r\n");
    assert!(read_to_end(&s).map(|b| b.is_empty()).unwrap_or(true));
    let line = fw.next_line().expect("a warning");
    assert!(line.contains("cannot reach"), "{line}");
}

/// 1,000 connections relayed at once, each byte-exact.
#[test]
fn forward_1000_concurrent_connections() {
    const CONNS: usize = 1000;
    sockit::socket::raise_nofile_limit(4 * CONNS as u64);
    let (_target, port) = echo_target();
    let fw = forward(&["127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let conns: Vec<TcpStream> = (0..CONNS).map(|_| client(&fw)).collect();
    for (i, s) in conns.iter().enumerate() {
        let mut s = s;
        s.write_all(&payload(4096, i as u64)).unwrap();
    }
    for (i, s) in conns.iter().enumerate() {
        let mut got = vec![0; 4096];
        let mut s = s;
        s.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert!(
            got == payload(4096, i as u64),
            "connection {i} got other bytes"
        );
    }
}

/// A target that is down closes that client with one warning; the forwarder serves the
/// next client once the target is up.
#[test]
fn forward_target_down_then_up() {
    let dir = TempDir::new("fwd-down");
    let sock = dir.path("target.sock");
    let fw = forward(&["127.0.0.1:0", &format!("unix:{}", sock.to_str().unwrap())]);
    let s = client(&fw);
    assert_eq!(read_to_end(&s).unwrap(), b"", "the client is closed");
    let line = fw.next_line().expect("a warning");
    assert!(
        line.contains("cannot reach") && line.contains("target.sock"),
        "{line}"
    );
    let target = Proc::python(ECHO_TARGET, &[sock.to_str().unwrap()]);
    target.wait_stdout_contains("ready");
    let s = client(&fw);
    (&s).write_all(b"now it is up").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&s).unwrap(), b"now it is up");
}

/// Sends a few bytes and says whether they came back through the relay.
fn relays(s: &TcpStream) -> bool {
    let mut s = s;
    if s.write_all(b"ping").is_err() {
        return false;
    }
    let mut buf = [0u8; 4];
    matches!(s.read_exact(&mut buf), Ok(()) if &buf == b"ping")
}

/// --max-conns 2: a third client is closed at once; once one leaves, a new one gets in.
#[test]
fn forward_max_conns() {
    let (_target, port) = echo_target();
    let fw = forward(&[
        "127.0.0.1:0",
        &format!("127.0.0.1:{port}"),
        "--max-conns",
        "2",
    ]);
    let a = client(&fw);
    let b = client(&fw);
    assert!(relays(&a) && relays(&b));
    let c = client(&fw);
    assert!(!relays(&c), "a third connection must be refused");
    drop(a);
    // The slot comes back when the relay of `a` has ended; a bounded retry waits for it.
    let deadline = Instant::now() + WAIT;
    loop {
        if relays(&client(&fw)) {
            break;
        }
        assert!(Instant::now() < deadline, "no slot after a client left");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(relays(&b));
}

/// --idle-timeout: a relayed connection where nothing moves is closed; one that keeps
/// talking is not.
#[test]
fn forward_idle_timeout() {
    let (_target, port) = echo_target();
    let fw = forward(&[
        "127.0.0.1:0",
        &format!("127.0.0.1:{port}"),
        "--idle-timeout",
        "1s",
    ]);
    let idle = client(&fw);
    let busy = client(&fw);
    assert!(relays(&idle));
    let start = Instant::now();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(300));
        assert!(relays(&busy), "a busy connection was closed");
    }
    let rest = read_to_end(&idle);
    assert!(matches!(rest.as_deref(), Ok(b"")), "{rest:?}");
    assert!(start.elapsed() >= Duration::from_millis(900));
}

/// Bad input is a usage error before anything is bound.
#[test]
fn forward_usage_errors() {
    let run = |args: &[&str]| {
        let mut all = vec!["forward"];
        all.extend_from_slice(args);
        let mut p = Proc::sockit(&all);
        let status = p.wait_exit(WAIT);
        (status.code(), p.stderr())
    };
    let (code, err) = run(&["127.0.0.1:0", "127.0.0.1:1", "--cacert", "/nonexistent"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tls://"), "{err}");
    let (code, err) = run(&["127.0.0.1:0", "127.0.0.1:1", "--max-conns", "0"]);
    assert_eq!(code, Some(2), "{err}");
}

/// A Python UDP echo target that prints its port.
const UDP_ECHO_TARGET: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    b, a = s.recvfrom(65536)
    s.sendto(b, a)
"#;

/// 50 clients × 1,000 datagrams each through `forward udp://` to a Python UDP echo: every
/// reply reaches the client that sent it. Loopback may drop a datagram under load, so a
/// client keeps a window of 16 outstanding and resends what is not answered within
/// 300 ms: the test is about where replies go, and every one must come back somewhere
/// right, never to another client.
#[test]
fn forward_udp_50_clients_replies_to_the_right_one() {
    const CLIENTS: usize = 50;
    const EACH: usize = 1000;
    const WINDOW: usize = 16;
    let target = Proc::python(UDP_ECHO_TARGET, &[]);
    let port: u16 = target.first_line().trim().parse().unwrap();
    let fw = forward(&["udp://127.0.0.1:0", &format!("udp://127.0.0.1:{port}")]);
    let addr = fw.addr();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                s.connect(&addr).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                let msg = |i: usize| format!("client {c} datagram {i}");
                let mut acked = vec![false; EACH];
                let (mut next, mut done) = (0, 0);
                let mut outstanding: Vec<usize> = Vec::new();
                let deadline = Instant::now() + WAIT * 3;
                let mut buf = [0u8; 256];
                while done < EACH {
                    assert!(
                        Instant::now() < deadline,
                        "client {c}: {done} of {EACH} answered"
                    );
                    while outstanding.len() < WINDOW && next < EACH {
                        s.send(msg(next).as_bytes()).unwrap();
                        outstanding.push(next);
                        next += 1;
                    }
                    match s.recv(&mut buf) {
                        Ok(n) => {
                            let reply = std::str::from_utf8(&buf[..n]).unwrap();
                            let (who, i) = reply
                                .strip_prefix("client ")
                                .and_then(|r| r.split_once(" datagram "))
                                .unwrap_or_else(|| panic!("client {c} got {reply:?}"));
                            assert_eq!(who, c.to_string(), "client {c} got {reply:?}");
                            let i: usize = i.parse().unwrap();
                            if !acked[i] {
                                acked[i] = true;
                                done += 1;
                                outstanding.retain(|&o| o != i);
                            }
                        }
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                        {
                            for &i in &outstanding {
                                s.send(msg(i).as_bytes()).unwrap();
                            }
                        }
                        Err(e) => panic!("client {c}: {e}"),
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

/// Datagram sessions end after --idle-timeout, and a client that comes back gets a new
/// one (its datagrams still answered).
#[test]
fn forward_udp_session_idle_timeout() {
    let target = Proc::python(UDP_ECHO_TARGET, &[]);
    let port: u16 = target.first_line().trim().parse().unwrap();
    let fw = forward(&[
        "udp://127.0.0.1:0",
        &format!("udp://127.0.0.1:{port}"),
        "--idle-timeout",
        "1s",
        "--max-conns",
        "1",
    ]);
    let echo_ok = |s: &std::net::UdpSocket| {
        let mut buf = [0u8; 16];
        for _ in 0..20 {
            s.send(b"hi").unwrap();
            if let Ok(n) = s.recv(&mut buf) {
                return &buf[..n] == b"hi";
            }
        }
        false
    };
    let sock = |_| {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.connect(fw.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s
    };
    let (a, b) = (sock(0), sock(1));
    assert!(echo_ok(&a));
    // One session at most: b's datagrams are dropped while a's session lives.
    b.send(b"hi").unwrap();
    let mut buf = [0u8; 16];
    assert!(
        b.recv(&mut buf).is_err(),
        "a second session while the table is full"
    );
    // Once a's session has been idle for 1 s, b gets one.
    assert!(echo_ok(&b), "no session for b after a's ended");
}

/// unix-dgram: in front of a UDP target: a bound Python Unix datagram client gets its
/// replies.
#[test]
fn forward_unix_dgram_to_udp() {
    let target = Proc::python(UDP_ECHO_TARGET, &[]);
    let port: u16 = target.first_line().trim().parse().unwrap();
    let dir = TempDir::new("fwd-dgram");
    let listen = format!("unix-dgram:{}", dir.path("fw.sock").to_str().unwrap());
    let fw = forward(&[&listen, &format!("udp://127.0.0.1:{port}")]);
    let path = fw.endpoint.strip_prefix("unix-dgram:").unwrap().to_owned();
    let script = "import socket, sys\n\
                  s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                  s.bind(sys.argv[2])\n\
                  s.settimeout(20)\n\
                  for i in range(100):\n    \
                      s.sendto(b'dgram %d' % i, sys.argv[1])\n    \
                      assert s.recv(100) == b'dgram %d' % i\n\
                  print('100 answered', flush=True)";
    let client = dir.path("client.sock");
    let mut py = Proc::python(script, &[&path, client.to_str().unwrap()]);
    let status = py.wait_exit(WAIT);
    assert!(status.success(), "{}", py.stderr());
    assert_eq!(py.stdout(), b"100 answered\n");
}

/// A Python target that reads one PROXY header of either version (its own parser),
/// then the relayed bytes to EOF, and prints `SRC SPORT DST DPORT|payload`.
const PROXY_TARGET_BODY: &str = r#"
def exact(n):
    b = b''
    while len(b) < n:
        r = c.recv(n - len(b))
        if not r: raise SystemExit('short header')
        b += r
    return b
first = exact(1)
if first == b'\r':
    head = first + exact(15)
    assert head[:12] == b'\r\n\r\n\x00\r\nQUIT\n', head
    assert head[12] == 0x21, head
    assert head[13] == 0x11, head
    body = exact(struct.unpack('!H', head[14:16])[0])
    src = socket.inet_ntoa(body[0:4]); dst = socket.inet_ntoa(body[4:8])
    sport, dport = struct.unpack('!HH', body[8:12])
    who = 'v2 %s %d %s %d' % (src, sport, dst, dport)
else:
    line = first
    while not line.endswith(b'\r\n'):
        line += exact(1)
    _, fam, src, dst, sport, dport = line.decode().split()
    assert fam == 'TCP4', line
    who = 'v1 %s %s %s %s' % (src, sport, dst, dport)
rest = b''
while True:
    b = c.recv(65536)
    if not b: break
    rest += b
print(who + '|' + rest.decode(), flush=True)
c.close()
"#;

/// --proxy-protocol v1: the target reads the client's real address and port, and the
/// forwarder's, before the client's bytes.
#[test]
fn forward_sends_proxy_header_v1() {
    let (target, port) = one_shot_target(PROXY_TARGET_BODY);
    let fw = forward(&[
        "127.0.0.1:0",
        &format!("127.0.0.1:{port}"),
        "--proxy-protocol",
        "v1",
    ]);
    let s = client(&fw);
    let mine = s.local_addr().unwrap().port();
    (&s).write_all(b"payload").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let out = target.wait_stdout(|b| b.iter().filter(|&&c| c == b'\n').count() == 2);
    let text = String::from_utf8_lossy(&out);
    let expected = format!("v1 127.0.0.1 {mine} 127.0.0.1 {}|payload", fw.port());
    assert_eq!(text.lines().nth(1), Some(expected.as_str()), "{text}");
}

/// --accept-proxy-protocol with --proxy-protocol v2: the address a load balancer gave
/// (a v1 line) is the one passed on (a v2 block), and the bytes after the header are
/// relayed untouched.
#[test]
fn forward_accepts_v1_and_passes_it_on_as_v2() {
    let (target, port) = one_shot_target(PROXY_TARGET_BODY);
    let fw = forward(&[
        "127.0.0.1:0",
        &format!("127.0.0.1:{port}"),
        "--accept-proxy-protocol",
        "--proxy-protocol",
        "v2",
    ]);
    let s = client(&fw);
    (&s).write_all(b"PROXY TCP4 192.0.2.7 198.51.100.1 4242 80\r\nPROXY is just data now")
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let out = target.wait_stdout(|b| b.iter().filter(|&&c| c == b'\n').count() == 2);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(
        text.lines().nth(1),
        Some("v2 192.0.2.7 4242 198.51.100.1 80|PROXY is just data now"),
        "{text}"
    );
}

/// --accept-proxy-protocol refuses a client that starts with anything else, and one
/// that sends nothing within --header-timeout; the target never hears of either.
#[test]
fn forward_accept_proxy_refuses_missing_header() {
    let (_target, port) = echo_target();
    let fw = forward(&[
        "127.0.0.1:0",
        &format!("127.0.0.1:{port}"),
        "--accept-proxy-protocol",
        "--header-timeout",
        "1s",
    ]);
    let s = client(&fw);
    (&s).write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(read_to_end(&s).map(|b| b.is_empty()).unwrap_or(true));
    let line = fw.next_line().expect("a warning");
    assert!(line.contains("PROXY"), "{line}");
    let start = Instant::now();
    let silent = client(&fw);
    assert!(read_to_end(&silent).map(|b| b.is_empty()).unwrap_or(true));
    assert!(start.elapsed() >= Duration::from_millis(900));
    let line = fw.next_line().expect("a warning");
    assert!(line.contains("no PROXY header within"), "{line}");
    // A client with a header is relayed.
    let ok = client(&fw);
    (&ok).write_all(b"PROXY UNKNOWN\r\nstill served").unwrap();
    ok.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&ok).unwrap(), b"still served");
}

/// Two forwarders in a row: the first originates TLS (trusting the second by its pin),
/// the second terminates it in front of an echo target. 8 MiB through both TLS legs come
/// back byte for byte, and the client's half-close travels through TLS (close_notify)
/// and back as an EOF.
#[test]
fn forward_tls_both_ways_through_two_forwarders() {
    const LEN: usize = 8 << 20;
    let (_target, port) = echo_target();
    let terminator = forward(&["tls://127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let pin = terminator.tls_pin();
    let originator = forward(&[
        "127.0.0.1:0",
        &format!("tls://127.0.0.1:{}", terminator.port()),
        "--pin",
        &pin,
    ]);
    let s = client(&originator);
    let sent = payload(LEN, 11);
    let writer = {
        let s = s.try_clone().unwrap();
        let bytes = sent.clone();
        std::thread::spawn(move || {
            (&s).write_all(&bytes).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
        })
    };
    let got = read_to_end(&s).expect("read back");
    writer.join().unwrap();
    assert!(got == sent, "{} bytes back, not what was sent", got.len());
}

/// A client's reset reaches the target as a reset.
#[test]
fn forward_client_reset_reaches_target() {
    let (target, port) = one_shot_target(
        "c.settimeout(20)\n\
         assert c.recv(5) == b'hello'\n\
         print('got', flush=True)\n\
         try:\n    \
             while c.recv(65536): pass\n    \
             print('eof', flush=True)\n\
         except ConnectionResetError:\n    \
             print('reset', flush=True)",
    );
    let fw = forward(&["127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let s = client(&fw);
    (&s).write_all(b"hello").unwrap();
    // The relay stands (the target has the bytes) before the reset.
    target.wait_stdout_contains("got\n");
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
    let out = target.wait_stdout(|b| b.iter().filter(|&&c| c == b'\n').count() == 3);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.lines().nth(2), Some("reset"), "{text}");
}
