//! `sockit connect` and `sockit listen` against peers nobody here wrote: Python's `socket`
//! module, `nc` (OpenBSD) and `ncat`; one test per rule of `connect --help`.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{
    Proc, TempDir, WAIT, assert_exit_0, assert_fails_with, connect, contains, payload, signal,
};

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
        &["listen", "udp://"],
        &["listen", "--allow", "10.0.0.0/33", "127.0.0.1:0"],
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

// ---------------------------------------------------------------------------------------
// listen

#[test]
fn listen_against_an_ncat_client() {
    let mut sockit = Proc::sockit(&["listen", "127.0.0.1:0"]);
    let endpoint = sockit.listening_on();
    let port = endpoint.rsplit_once(':').unwrap().1;
    let mut ncat = Proc::spawn({
        let mut c = Command::new("ncat");
        c.args(["127.0.0.1", port]);
        c
    });
    ncat.write(b"from ncat\n");
    sockit.wait_stdout_contains("from ncat\n");
    sockit.write(b"from sockit\n");
    ncat.wait_stdout_contains("from sockit\n");
    // ncat half-closes at its stdin EOF; that ends sockit, whose close ends ncat.
    ncat.close_stdin();
    assert_exit_0(&mut sockit);
    assert_eq!(sockit.stdout(), b"from ncat\n");
    ncat.wait_exit(WAIT);
    assert_eq!(ncat.stdout(), b"from sockit\n");
}

#[test]
fn listen_on_unix_against_nc_and_the_socket_file_goes_away() {
    let dir = TempDir::new("listen-nc");
    let path = dir.path("l.sock");
    let mut sockit = Proc::sockit(&["listen", &format!("unix:{}", path.display())]);
    assert_eq!(sockit.listening_on(), format!("unix:{}", path.display()));
    let mut nc = Proc::spawn({
        let mut c = Command::new("nc");
        c.arg("-NU").arg(&path);
        c
    });
    nc.write(b"from nc\n");
    sockit.wait_stdout_contains("from nc\n");
    sockit.write(b"to nc\n");
    nc.wait_stdout_contains("to nc\n");
    nc.close_stdin(); // -N: nc shuts down its write side, and sockit sees EOF.
    assert_exit_0(&mut sockit);
    assert!(!path.exists(), "socket file left behind");
    nc.wait_exit(WAIT);
}

#[test]
fn listen_against_a_python_client_1_mib_each_way() {
    let dir = TempDir::new("listen-py");
    let received = dir.path("received");
    let mut sockit = Proc::sockit(&["listen", "127.0.0.1:0"]);
    let port = sockit.listening_on().rsplit_once(':').unwrap().1.to_owned();
    let to_client = payload(1 << 20, 2);
    let from_client = payload(1 << 20, 3);
    // sockit reads stdin once the client is there, sends it all, then half-closes.
    sockit.feed_and_close(to_client.clone());
    let mut py = Proc::python(
        &dedent(
            r#"
            import socket, sys, threading
            c = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=20)
            data = open(sys.argv[2], 'rb').read()
            def send():
                c.sendall(data)
                c.shutdown(socket.SHUT_WR)
            t = threading.Thread(target=send)
            t.start()
            got = bytearray()
            while True:
                b = c.recv(65536)
                if not b:
                    break
                got += b
            t.join()
            open(sys.argv[3], 'wb').write(got)
            c.close()
            "#,
        ),
        &[
            &port,
            &write_file(&dir, "to-send", &from_client),
            received.to_str().unwrap(),
        ],
    );
    assert_exit_0(&mut py);
    assert_exit_0(&mut sockit);
    assert!(sockit.stdout() == from_client, "sockit printed other bytes");
    assert!(
        std::fs::read(&received).unwrap() == to_client,
        "client got other bytes"
    );
}

fn write_file(dir: &TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.path(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn listen_k_merges_three_clients_and_sends_stdin_to_all() {
    let mut sockit = Proc::sockit(&["listen", "-k", "127.0.0.1:0"]);
    let addr = sockit
        .listening_on()
        .split_once("://")
        .unwrap()
        .1
        .to_owned();
    let mut clients: Vec<TcpStream> = (0..3)
        .map(|i| {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.set_read_timeout(Some(WAIT)).unwrap();
            c.write_all(format!("line from client {i}\n").as_bytes())
                .unwrap();
            c
        })
        .collect();
    // Every client's line arrives whole.
    sockit.wait_stdout(|out| {
        (0..3).all(|i| contains(out, format!("line from client {i}\n").as_bytes()))
    });
    sockit.write(b"to everyone\n");
    for c in &mut clients {
        let mut got = [0u8; 12];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"to everyone\n");
    }
    // One leaving changes nothing for the others.
    drop(clients.remove(0));
    sockit.write(b"still here\n");
    for c in &mut clients {
        let mut got = [0u8; 11];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"still here\n");
    }
    assert!(sockit.running(), "-k must keep running");
    // A late client is welcome too.
    let mut late = TcpStream::connect(&addr).unwrap();
    late.write_all(b"late\n").unwrap();
    sockit.wait_stdout_contains("late\n");
    signal(&sockit.child, 15);
    assert_exit_0(&mut sockit);
}

#[test]
fn listen_k_half_closes_everyone_at_stdin_eof() {
    let mut sockit = Proc::sockit(&["listen", "-k", "127.0.0.1:0"]);
    let addr = sockit
        .listening_on()
        .split_once("://")
        .unwrap()
        .1
        .to_owned();
    let mut a = TcpStream::connect(&addr).unwrap();
    a.set_read_timeout(Some(WAIT)).unwrap();
    a.write_all(b"a\n").unwrap();
    sockit.wait_stdout_contains("a\n");
    sockit.feed_and_close(b"last words\n".to_vec());
    let mut got = Vec::new();
    a.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"last words\n");
    // Half-closed, not closed: what the client still says gets through.
    a.write_all(b"after eof\n").unwrap();
    sockit.wait_stdout_contains("after eof\n");
    assert!(sockit.running());
    signal(&sockit.child, 2); // SIGINT
    assert_exit_0(&mut sockit);
}

#[test]
fn listen_removes_its_unix_socket_on_sigterm_with_and_without_k() {
    let dir = TempDir::new("listen-rm");
    for k in [&[][..], &["-k"][..]] {
        let path = dir.path("s.sock");
        let addr = format!("unix:{}", path.display());
        let mut args = vec!["listen"];
        args.extend_from_slice(k);
        args.push(&addr);
        let mut sockit = Proc::sockit(&args);
        assert_eq!(sockit.listening_on(), addr);
        assert!(path.exists());
        signal(&sockit.child, 15);
        assert_exit_0(&mut sockit);
        assert!(!path.exists(), "{k:?}: socket file left behind");
    }
}

#[test]
fn listen_deny_refuses_and_keeps_listening() {
    let mut sockit = Proc::sockit(&["listen", "--deny", "127.0.0.0/8", "127.0.0.1:0"]);
    let addr = sockit
        .listening_on()
        .split_once("://")
        .unwrap()
        .1
        .to_owned();
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 16];
    // Closed at once: EOF (or a reset, if our bytes were still unread).
    let _ = c.write_all(b"let me in\n");
    assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)));
    assert!(sockit.running());
    signal(&sockit.child, 15);
    assert_exit_0(&mut sockit);
    assert_eq!(sockit.stdout(), b"");
}

#[test]
fn listen_udp_answers_the_last_peer_or_with_k_every_peer() {
    for k in [false, true] {
        let args: &[&str] = if k {
            &["listen", "-k", "udp://127.0.0.1:0"]
        } else {
            &["listen", "udp://127.0.0.1:0"]
        };
        let mut sockit = Proc::sockit(args);
        let addr = sockit
            .listening_on()
            .split_once("://")
            .unwrap()
            .1
            .to_owned();
        let peers: Vec<UdpSocket> = (0..2)
            .map(|_| {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                s
            })
            .collect();
        peers[0].send_to(b"first", &addr).unwrap();
        sockit.wait_stdout_contains("first\n");
        peers[1].send_to(b"second\n", &addr).unwrap();
        sockit.wait_stdout_contains("second\n");
        sockit.write(b"reply\n");
        let mut buf = [0u8; 64];
        let n = peers[1]
            .recv(&mut buf)
            .expect("the last peer gets the line");
        assert_eq!(&buf[..n], b"reply");
        let first = peers[0].recv(&mut buf).map(|n| buf[..n].to_vec());
        if k {
            assert_eq!(first.unwrap(), b"reply");
        } else {
            assert!(first.is_err(), "without -k only the last peer is answered");
        }
        // Each datagram printed on its own line, a newline added only where missing.
        assert_eq!(sockit.stdout(), b"first\nsecond\n");
        signal(&sockit.child, 15);
        assert_exit_0(&mut sockit);
    }
}

#[test]
fn connect_to_sockit_listen() {
    let mut listen = Proc::sockit(&["listen", "127.0.0.1:0"]);
    let endpoint = listen.listening_on();
    let to_connect = payload(300_000, 4);
    let to_listen = payload(300_000, 5);
    let mut connect = Proc::sockit(&["connect", &endpoint]);
    connect.feed(to_listen.clone());
    listen.feed(to_connect.clone());
    listen.wait_stdout(|b| b.len() >= to_listen.len());
    connect.wait_stdout(|b| b.len() >= to_connect.len());
    // connect's stdin EOF half-closes; listen's peer is then done, so listen ends, and
    // its close ends connect. Both exit 0.
    connect.close_stdin();
    assert_exit_0(&mut listen);
    assert_exit_0(&mut connect);
    assert!(listen.stdout() == to_listen);
    assert!(connect.stdout() == to_connect);
}

// ---------------------------------------------------------------------------------------
// a peer that half-closes first, then reads slowly

/// A big piped file: more than any socket buffers hold, so most of it waits for the peer.
const BIG: usize = 50 << 20;

/// The peer's half of both tests below: EOF first, then a second of not reading (the
/// window fills, so sockit's sends wait), then everything; prints `LEN SHA256`.
const HALF_CLOSE_THEN_READ: &str = r#"
    import hashlib
    c.shutdown(socket.SHUT_WR)
    time.sleep(1)
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
    print(n, h.hexdigest(), flush=True)
    c.close()
"#;

/// `LEN SHA256` of `bytes`, as the Python peer prints it (sha256sum computes it).
fn len_and_sha256(dir: &TempDir, bytes: &[u8]) -> String {
    let path = write_file(dir, "sent", bytes);
    let out = Command::new("sha256sum").arg(&path).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!(
        "{} {}",
        bytes.len(),
        text.split_whitespace().next().unwrap()
    )
}

#[test]
fn connect_delivers_a_piped_file_to_a_peer_that_half_closed_first() {
    let dir = TempDir::new("connect-half-closed-first");
    let data = payload(BIG, 21);
    let want = len_and_sha256(&dir, &data);
    let mut py = python(
        &format!("c = server()\n{}", dedent(HALF_CLOSE_THEN_READ)),
        &[],
    );
    let mut sockit = connect(&py.first_line(), &[]);
    sockit.feed_and_close(data);
    assert_exit_0(&mut sockit);
    assert_exit_0(&mut py);
    let lines = String::from_utf8(py.stdout()).unwrap();
    assert_eq!(
        lines.lines().last(),
        Some(want.as_str()),
        "the peer got other bytes"
    );
}

#[test]
fn listen_delivers_a_piped_file_to_a_peer_that_half_closed_first() {
    let dir = TempDir::new("listen-half-closed-first");
    let data = payload(BIG, 22);
    let want = len_and_sha256(&dir, &data);
    let mut sockit = Proc::sockit(&["listen", "127.0.0.1:0"]);
    let port = sockit.listening_on().rsplit_once(':').unwrap().1.to_owned();
    sockit.feed_and_close(data);
    let mut py = python(
        &format!(
            "c = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=20)\n{}",
            dedent(HALF_CLOSE_THEN_READ)
        ),
        &[&port],
    );
    assert_exit_0(&mut py);
    assert_exit_0(&mut sockit);
    let lines = String::from_utf8(py.stdout()).unwrap();
    assert_eq!(
        lines.lines().last(),
        Some(want.as_str()),
        "the peer got other bytes"
    );
}

#[test]
fn connect_says_when_a_peer_that_closed_refuses_the_rest_of_stdin() {
    // It closes for good without reading: the rest of stdin can only be refused.
    let mut py = python(
        r#"
        c = server()
        c.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
        c.close()
        "#,
        &[],
    );
    // Ready before sockit starts: stdin has data at once.
    let data = payload(BIG, 23);
    let mut sockit = connect(&py.first_line(), &[]);
    sockit.feed_and_close(data);
    assert_exit_0(&mut sockit);
    assert_exit_0(&mut py);
    let err = sockit.stderr();
    assert!(err.contains("closed before taking all of stdin"), "{err:?}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
}
