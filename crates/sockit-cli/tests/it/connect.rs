//! `sockit connect` against peers nobody here wrote: Python's `socket`
//! module, `nc` (OpenBSD) and `ncat`; one test per rule of `connect --help`.

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{Proc, TempDir, WAIT, contains, signal};

/// Helpers every Python peer starts with. Every blocking call has a timeout.
const PRELUDE: &str = r#"
import socket, sys, time
def server(family=socket.AF_INET, addr=('127.0.0.1', 0)):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind(addr)
    s.listen(1)
    s.settimeout(20)
    print(s.getsockname()[1] if family == socket.AF_INET else 'ready', flush=True)
    c, _ = s.accept()
    c.settimeout(20)
    return c
def read_all(c):
    got = b''
    while True:
        b = c.recv(65536)
        if not b:
            return got
        got += b
"#;

/// Runs a Python peer: the prelude, then `body` (indented freely), with `args`.
fn python(body: &str, args: &[&str]) -> Proc {
    Proc::python(&format!("{PRELUDE}\n{}", dedent(body)), args)
}

fn dedent(s: &str) -> String {
    let indent = s
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    s.lines()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Deterministic bytes of every value, so a lost or misplaced chunk shows.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `sockit connect ARGS... 127.0.0.1:PORT`.
fn connect(port: &str, flags: &[&str]) -> Proc {
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["connect"];
    args.extend_from_slice(flags);
    args.push(&addr);
    Proc::sockit(&args)
}

fn assert_exit_0(p: &mut Proc) {
    let status = p.wait_exit(WAIT);
    assert!(status.success(), "exit {status}; stderr {:?}", p.stderr());
}

/// Exit code 1 and exactly one stderr line, which contains `needle` (any case).
fn assert_fails_with(p: &mut Proc, needle: &str) {
    let status = p.wait_exit(WAIT);
    assert_eq!(status.code(), Some(1), "stderr {:?}", p.stderr());
    let err = p.stderr();
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    assert!(err.starts_with("sockit: "), "{err:?}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "{err:?} lacks {needle:?}"
    );
}

// ---------------------------------------------------------------------------------------
// connect, stream rules

#[test]
fn bytes_go_both_ways_byte_exact_including_1_mib_binary() {
    let dir = TempDir::new("connect-exact");
    let received = dir.path("received");
    // An echo that writes back while it reads: only a full-duplex client gets it all.
    let mut py = python(
        r#"
        c = server()
        got = bytearray()
        while True:
            b = c.recv(65536)
            if not b:
                break
            got += b
            c.sendall(b)
        open(sys.argv[1], 'wb').write(got)
        c.close()
        "#,
        &[received.to_str().unwrap()],
    );
    let port = py.first_line();
    let data = payload(1 << 20, 1);
    let mut sockit = connect(&port, &[]);
    sockit.feed_and_close(data.clone());
    assert_exit_0(&mut sockit);
    assert_exit_0(&mut py);
    let out = sockit.stdout();
    assert_eq!(out.len(), data.len(), "bytes printed");
    assert!(out == data, "printed bytes differ from the peer's");
    assert!(
        std::fs::read(&received).unwrap() == data,
        "peer got other bytes"
    );
}

#[test]
fn stdin_eof_half_closes_and_output_keeps_arriving_then_exit_0() {
    let mut py = python(
        r#"
        c = server()
        got = read_all(c)
        time.sleep(0.2)
        c.sendall(b'got %d bytes: ' % len(got))
        time.sleep(0.2)
        c.sendall(got.upper())
        c.close()
        "#,
        &[],
    );
    let mut sockit = connect(&py.first_line(), &[]);
    sockit.feed_and_close(b"hello\nworld\n".to_vec());
    assert_exit_0(&mut sockit);
    assert_eq!(sockit.stdout(), b"got 12 bytes: HELLO\nWORLD\n");
    assert_exit_0(&mut py);
}

#[test]
fn a_peer_that_only_half_closed_still_gets_all_of_stdin() {
    let dir = TempDir::new("connect-linger");
    let received = dir.path("received");
    // EOF first, then it reads: sockit must not take the EOF for the end of the talk.
    let mut py = python(
        r#"
        c = server()
        c.sendall(b'send me everything\n')
        c.shutdown(socket.SHUT_WR)
        open(sys.argv[1], 'wb').write(read_all(c))
        c.close()
        "#,
        &[received.to_str().unwrap()],
    );
    let mut sockit = connect(&py.first_line(), &[]);
    let data = payload(1 << 20, 6);
    sockit.feed_and_close(data.clone());
    assert_exit_0(&mut sockit);
    assert_exit_0(&mut py);
    assert_eq!(sockit.stdout(), b"send me everything\n");
    assert!(
        std::fs::read(&received).unwrap() == data,
        "peer got other bytes"
    );
}

/// Reads one line, then says whether EOF follows within a second, and closes.
const EOF_PROBE: &str = r#"
    c = server()
    got = b''
    while not got.endswith(b'\n'):
        b = c.recv(100)
        if not b:
            break
        got += b
    c.settimeout(1.0)
    try:
        more = c.recv(100)
        verdict = b'EOF seen' if more == b'' else b'more: ' + more
    except socket.timeout:
        verdict = b'no EOF'
    c.sendall(got + verdict + b'\n')
    c.close()
"#;

#[test]
fn no_shutdown_keeps_the_write_side_open() {
    let mut py = python(EOF_PROBE, &[]);
    let mut sockit = connect(&py.first_line(), &["--no-shutdown"]);
    sockit.feed_and_close(b"ping\n".to_vec());
    assert_exit_0(&mut sockit);
    assert_eq!(sockit.stdout(), b"ping\nno EOF\n");
    assert_exit_0(&mut py);

    // The control: without the flag the same peer sees EOF at once.
    let mut py = python(EOF_PROBE, &[]);
    let mut sockit = connect(&py.first_line(), &[]);
    sockit.feed_and_close(b"ping\n".to_vec());
    assert_exit_0(&mut sockit);
    assert_eq!(sockit.stdout(), b"ping\nEOF seen\n");
    assert_exit_0(&mut py);
}

#[test]
fn the_peer_closing_ends_sockit_while_stdin_stays_open() {
    for (greeting, flags) in [
        ("bye\n", &[][..]),
        ("", &[][..]),
        ("bye\n", &["--no-shutdown"][..]),
    ] {
        let mut py = python(
            r#"
            c = server()
            c.sendall(sys.argv[1].encode())
            c.close()
            "#,
            &[greeting],
        );
        let mut sockit = connect(&py.first_line(), flags);
        // stdin stays an open, silent pipe: sockit must not sit in a read on it.
        let started = Instant::now();
        let status = sockit.wait_exit(Duration::from_secs(5));
        assert!(
            status.success(),
            "{flags:?}: {status} {:?}",
            sockit.stderr()
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(sockit.stdout(), greeting.as_bytes(), "{flags:?}");
        assert_exit_0(&mut py);
    }
}

#[test]
fn typing_never_waits_for_the_peer_and_replies_print_as_they_arrive() {
    let mut py = python(
        r#"
        c = server()
        c.sendall(b'hello\n')
        for line in c.makefile('rb'):
            c.sendall(b'echo: ' + line)
        c.close()
        "#,
        &[],
    );
    let mut sockit = connect(&py.first_line(), &[]);
    // The greeting shows up while stdin is open and has said nothing.
    sockit.wait_stdout_contains("hello\n");
    sockit.write(b"first\n");
    sockit.wait_stdout_contains("echo: first\n");
    sockit.write(b"second\n");
    sockit.wait_stdout_contains("echo: second\n");
    sockit.close_stdin();
    assert_exit_0(&mut sockit);
    assert_eq!(sockit.stdout(), b"hello\necho: first\necho: second\n");
    assert_exit_0(&mut py);
}

#[test]
fn recv_only_never_reads_stdin_nor_half_closes() {
    let mut py = python(
        r#"
        c = server()
        c.sendall(b'data\n')
        c.settimeout(1.0)
        try:
            d = c.recv(100)
            print('EOF' if d == b'' else 'got %r' % d, flush=True)
        except socket.timeout:
            print('nothing', flush=True)
        c.close()
        "#,
        &[],
    );
    let mut sockit = connect(&py.first_line(), &["--recv-only"]);
    sockit.feed_and_close(b"must not be sent\n".to_vec());
    assert_exit_0(&mut sockit);
    assert_eq!(sockit.stdout(), b"data\n");
    py.wait_exit(WAIT);
    let lines = String::from_utf8(py.stdout()).unwrap();
    assert_eq!(lines.lines().nth(1), Some("nothing"), "{lines}");
}

#[test]
fn send_only_never_reads_the_socket_and_exits_at_stdin_eof() {
    let py = python(
        r#"
        c = server()
        c.sendall(b'noise\n' * 1000)
        got = read_all(c)
        print('got %r' % got, flush=True)
        time.sleep(20)
        "#,
        &[],
    );
    let mut sockit = connect(&py.first_line(), &["--send-only"]);
    sockit.feed_and_close(b"payload\n".to_vec());
    // The peer keeps the connection open for 20 s: sockit must not wait for it.
    let status = sockit.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status} {:?}", sockit.stderr());
    assert_eq!(sockit.stdout(), b"", "send-only printed what it received");
    let out = py.wait_stdout(|b| b.split(|&c| c == b'\n').count() > 2);
    assert!(
        contains(&out, br"got b'payload\n'"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn crlf_sends_every_lf_as_crlf() {
    let dir = TempDir::new("connect-crlf");
    let received = dir.path("received");
    let mut py = python(
        r#"
        c = server()
        open(sys.argv[1], 'wb').write(read_all(c))
        c.close()
        "#,
        &[received.to_str().unwrap()],
    );
    let mut sockit = connect(&py.first_line(), &["--crlf"]);
    sockit.feed_and_close(b"a\nb\r\nc\n\n".to_vec());
    assert_exit_0(&mut sockit);
    assert_exit_0(&mut py);
    assert_eq!(std::fs::read(&received).unwrap(), b"a\r\nb\r\nc\r\n\r\n");
}

#[test]
fn connect_against_nc_listening_on_a_unix_socket_half_close_included() {
    let dir = TempDir::new("connect-nc");
    let path = dir.path("nc.sock");
    let mut nc = Proc::spawn({
        let mut c = Command::new("nc");
        c.arg("-lU").arg(&path);
        c
    });
    let deadline = Instant::now() + WAIT;
    while !path.exists() {
        assert!(Instant::now() < deadline, "nc -lU never bound");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut sockit = Proc::sockit(&["connect", &format!("unix:{}", path.display())]);
    sockit.feed_and_close(b"to nc\n".to_vec());
    // nc exits once our half-close reaches it; its close then ends sockit.
    assert_exit_0(&mut nc);
    assert_eq!(nc.stdout(), b"to nc\n");
    assert_exit_0(&mut sockit);
}

// ---------------------------------------------------------------------------------------
// connect, errors

#[test]
fn refused_is_one_line_and_exit_1() {
    // Bound but not listening: the port is ours, and connecting to it is refused.
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    let mut sockit = connect(&port.to_string(), &[]);
    assert_fails_with(&mut sockit, "refused");
    drop(s);
}

#[test]
fn unknown_host_is_exit_1() {
    let mut sockit = Proc::sockit(&["connect", "no-such-host.invalid:80"]);
    assert_fails_with(&mut sockit, "no-such-host.invalid");
}

#[test]
fn connect_timeout_is_exit_1() {
    // A listener whose accept queue is full drops new SYNs, so a connect just hangs.
    let py = python(
        r#"
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        s.listen(0)
        port = s.getsockname()[1]
        fill = []
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(('127.0.0.1', port))
            except BlockingIOError:
                pass
            fill.append(c)
        time.sleep(0.2)
        print(port, flush=True)
        time.sleep(20)
        "#,
        &[],
    );
    let started = Instant::now();
    let mut sockit = connect(&py.first_line(), &["--timeout", "300ms"]);
    assert_fails_with(&mut sockit, "timed out");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn bad_usage_is_one_line_and_exit_2() {
    for args in [
        &["connect", "tcp://host:99999"][..],
        &["connect", "unix:"],
        &["connect", "sctp://h:1"],
        &["connect", "--timeout", "5 parsecs", "127.0.0.1:1"],
        &["connect", "--send-only", "--recv-only", "127.0.0.1:1"],
        &["connect"],
    ] {
        let out = crate::util::sockit().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

// ---------------------------------------------------------------------------------------
// connect, other transports

#[test]
fn udp_each_line_is_a_datagram_and_each_reply_is_printed() {
    let mut py = Proc::python(
        &dedent(
            r#"
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(('127.0.0.1', 0))
            s.settimeout(20)
            print(s.getsockname()[1], flush=True)
            seen = []
            for _ in range(4):
                d, a = s.recvfrom(65536)
                seen.append(d)
                s.sendto(d.upper(), a)
            print(repr(seen), flush=True)
            "#,
        ),
        &[],
    );
    let port = py.first_line();
    let mut sockit = Proc::sockit(&["connect", &format!("udp://127.0.0.1:{port}")]);
    sockit.feed_and_close(b"one\ntwo\r\n\nthree".to_vec());
    // At stdin EOF it waits --reply-wait (1s) past the last reply, then exits 0.
    assert_exit_0(&mut sockit);
    assert_eq!(sockit.stdout(), b"ONE\nTWO\n\nTHREE\n");
    assert_exit_0(&mut py);
    let seen = String::from_utf8(py.stdout()).unwrap();
    assert_eq!(
        seen.lines().nth(1),
        Some("[b'one', b'two', b'', b'three']"),
        "{seen}"
    );
}

#[test]
fn udp_to_a_closed_port_is_refused_exit_1() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sockit = Proc::sockit(&["connect", &format!("udp://127.0.0.1:{port}")]);
    sockit.write(b"anyone?\n");
    assert_fails_with(&mut sockit, "refused");
}

#[test]
fn unix_stream_against_a_python_unix_server() {
    let dir = TempDir::new("connect-unix");
    let path = dir.path("py.sock");
    let mut py = python(
        r#"
        c = server(socket.AF_UNIX, sys.argv[1])
        c.sendall(read_all(c).upper())
        c.close()
        "#,
        &[path.to_str().unwrap()],
    );
    assert_eq!(py.first_line(), "ready");
    let mut sockit = Proc::sockit(&["connect", &format!("unix:{}", path.display())]);
    sockit.feed_and_close(b"over a unix socket\n".to_vec());
    assert_exit_0(&mut sockit);
    assert_eq!(sockit.stdout(), b"OVER A UNIX SOCKET\n");
    assert_exit_0(&mut py);
}

#[test]
fn unix_dgram_binds_a_reply_socket_and_removes_it_on_exit() {
    let dir = TempDir::new("connect-udgram");
    let path = dir.path("py.dgram");
    let py = Proc::python(
        &dedent(
            r#"
            import socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.bind(sys.argv[1])
            s.settimeout(20)
            print('ready', flush=True)
            d, a = s.recvfrom(65536)
            print(a, flush=True)
            s.sendto(d.upper() + b'\n', a)
            "#,
        ),
        &[path.to_str().unwrap()],
    );
    assert_eq!(py.first_line(), "ready");
    let mut sockit = Proc::sockit(&["connect", &format!("unix-dgram:{}", path.display())]);
    sockit.write(b"ping\n");
    // A reply that ends in a newline gets no second one.
    assert_eq!(sockit.wait_stdout_contains("PING\n"), b"PING\n");
    let out = py.wait_stdout(|b| b.iter().filter(|&&c| c == b'\n').count() >= 2);
    let reply_path = String::from_utf8(out)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(
        std::path::Path::new(&reply_path).exists(),
        "no reply socket at {reply_path:?}"
    );
    // stdin stays open: sockit runs until told to stop, then cleans up and exits 0.
    signal(&sockit.child, 15);
    assert_exit_0(&mut sockit);
    assert!(
        !std::path::Path::new(&reply_path).exists(),
        "{reply_path} left behind"
    );
}
