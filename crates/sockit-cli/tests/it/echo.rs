//! `sockit echo` end to end: every model × {tcp, unix} with 1 and 100 concurrent clients
//! and messages from 1 byte to 4 MiB echoed byte-exact; udp and unix-dgram; a Python peer.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::process::Command;

use sockit::Endpoint;
use sockit::socket::Stream;

use crate::util::{self, Proc, Server, TempDir, WAIT, payload};

/// Every model; all of them serve streams.
pub const STREAM_MODELS: &[&str] = &[
    "blocking", "threads", "fork", "select", "poll", "epoll", "epoll-et", "async",
];

/// Sends `data` while reading the echo (a writer thread, so big messages cannot deadlock
/// on full socket buffers), then half-closes and checks the echo is exact and complete.
fn roundtrip(endpoint: &Endpoint, data: Vec<u8>) {
    let stream = Stream::connect(endpoint, None).expect("connect");
    stream.set_read_timeout(Some(crate::util::WAIT)).unwrap();
    let writer = stream.try_clone().unwrap();
    let len = data.len();
    let sender = std::thread::spawn(move || {
        (&writer).write_all(&data).expect("send");
        writer.shutdown(Shutdown::Write).expect("half-close");
        data
    });
    let mut echoed = Vec::with_capacity(len);
    (&stream).read_to_end(&mut echoed).expect("read echo");
    let data = sender.join().unwrap();
    assert_eq!(echoed.len(), len, "echo length");
    assert!(
        echoed == data,
        "echo differs from what was sent ({len} bytes)"
    );
}

fn exercise(endpoint: &Endpoint, model: &str) {
    for (i, len) in [1, 1000, 65_536, 4 << 20].into_iter().enumerate() {
        roundtrip(endpoint, payload(len, i as u64));
    }
    // The blocking model serves one connection at a time; 100 clients queue up and still
    // all get served, in turn.
    let clients: Vec<_> = (0..100)
        .map(|i| {
            let endpoint = endpoint.clone();
            std::thread::spawn(move || {
                roundtrip(&endpoint, payload(1 + (i * 997) % 20_000, i as u64))
            })
        })
        .collect();
    for c in clients {
        c.join()
            .unwrap_or_else(|_| panic!("a client of model {model} failed"));
    }
}

#[test]
fn every_model_echoes_tcp_byte_exact() {
    for model in STREAM_MODELS {
        let server = Server::start(&["echo", "127.0.0.1:0", "--model", model]);
        let endpoint: Endpoint = server.endpoint.parse().unwrap();
        exercise(&endpoint, model);
        let (status, _) = server.stop();
        assert!(status.success(), "{model}: exit {status}");
    }
}

#[test]
fn several_event_loops_share_the_port() {
    for model in ["epoll", "epoll-et", "poll"] {
        let server = Server::start(&["echo", "127.0.0.1:0", "--model", model, "--workers", "2"]);
        let endpoint: Endpoint = server.endpoint.parse().unwrap();
        exercise(&endpoint, model);
        let (status, _) = server.stop();
        assert!(status.success(), "{model} --workers 2: exit {status}");
    }
    let dir = TempDir::new("echo-workers");
    let addr = format!("unix:{}", dir.path("w.sock").display());
    let server = Server::start(&["echo", &addr, "--model", "epoll", "--workers", "2"]);
    exercise(
        &server.endpoint.parse().unwrap(),
        "epoll --workers 2 (unix)",
    );
    assert!(server.stop().0.success());
}

#[test]
fn every_model_echoes_unix_byte_exact_and_removes_the_socket() {
    let dir = TempDir::new("echo-unix");
    for model in STREAM_MODELS {
        let path = dir.path(&format!("{model}.sock"));
        let addr = format!("unix:{}", path.display());
        let server = Server::start(&["echo", &addr, "--model", model]);
        assert_eq!(server.endpoint, addr);
        exercise(&server.endpoint.parse().unwrap(), model);
        let (status, _) = server.stop();
        assert!(status.success(), "{model}: exit {status}");
        assert!(!path.exists(), "{model} left its socket file behind");
    }
}

#[test]
fn udp_and_unix_dgram_echo_under_every_model() {
    let dir = TempDir::new("echo-dgram");
    for model in STREAM_MODELS {
        let server = Server::start(&["echo", "udp://127.0.0.1:0", "--model", model, "--upper"]);
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(crate::util::WAIT)).unwrap();
        for i in 0..20 {
            let msg = format!("datagram {i} from {model}");
            sock.send_to(msg.as_bytes(), server.addr()).unwrap();
            let mut buf = [0u8; 100];
            let (n, from) = sock.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], msg.to_uppercase().as_bytes());
            assert_eq!(from.port(), server.port());
        }
        assert!(server.stop().0.success());

        let path = dir.path(&format!("{model}.dgram"));
        let server = Server::start(&[
            "echo",
            &format!("unix-dgram:{}", path.display()),
            "--model",
            model,
        ]);
        let me = dir.path(&format!("{model}.client"));
        let sock = std::os::unix::net::UnixDatagram::bind(&me).unwrap();
        sock.set_read_timeout(Some(crate::util::WAIT)).unwrap();
        sock.send_to(b"over unix-dgram", &path).unwrap();
        let mut buf = [0u8; 100];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"over unix-dgram");
        assert!(server.stop().0.success());
        assert!(!path.exists());
    }
}

/// A server removes its socket file on exit only while that file is still its socket: a
/// regular file that took the path after it started is someone else's and stays.
#[test]
fn unix_server_leaves_a_file_that_replaced_its_socket() {
    let dir = TempDir::new("unix-replaced");
    // (name, arguments before the address, arguments after it)
    let mut servers: Vec<(String, Vec<&str>, Vec<&str>)> = STREAM_MODELS
        .iter()
        .map(|m| (format!("echo-{m}"), vec!["echo"], vec!["--model", m]))
        .collect();
    servers.push(("chat".to_owned(), vec!["chat", "serve"], vec![]));
    for (name, before, after) in servers {
        let path = dir.path(&format!("{name}.sock"));
        let addr = format!("unix:{}", path.display());
        let args: Vec<&str> = before
            .iter()
            .copied()
            .chain([addr.as_str()])
            .chain(after.iter().copied())
            .collect();
        let server = Server::start(&args);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"not a socket").unwrap();
        let (status, _) = server.stop();
        assert!(status.success(), "{name}: exit {status}");
        assert_eq!(
            std::fs::read(&path).ok().as_deref(),
            Some(&b"not a socket"[..]),
            "{name} removed the file that replaced its socket"
        );
    }
}

/// A datagram with no bytes is still a datagram, and its echo is one too.
#[test]
fn udp_echo_answers_an_empty_datagram() {
    for model in STREAM_MODELS {
        let server = Server::start(&["echo", "udp://127.0.0.1:0", "--model", model]);
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        sock.send_to(b"", server.addr()).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("{model}: no reply to an empty datagram: {e}"));
        assert_eq!(n, 0, "{model}");
        assert_eq!(from.port(), server.port(), "{model}");
        // The server goes on answering after it.
        sock.send_to(b"after", server.addr()).unwrap();
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"after", "{model}");
        assert!(server.stop().0.success(), "{model}");
    }
}

#[test]
fn python_socket_client_gets_the_upper_cased_reply() {
    let server = Server::start(&["echo", "127.0.0.1:0", "--upper"]);
    // The textbook Python client, verbatim in spirit: connect, send, recv, print.
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n\
         s.connect(('127.0.0.1', {}))\n\
         s.sendall(b'hello sockit')\n\
         print(s.recv(1024).decode())\n\
         s.close()\n",
        server.port()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "HELLO SOCKIT");
}

#[test]
fn a_client_that_resets_mid_message_leaves_the_others_served() {
    for model in STREAM_MODELS {
        let server = Server::start(&["echo", "127.0.0.1:0", "--model", model]);
        let endpoint: Endpoint = server.endpoint.parse().unwrap();
        for _ in 0..5 {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.connect(
                &server
                    .addr()
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
            s.send(&payload(300_000, 7)[..]).ok();
            // Linger 0: close sends RST, the abrupt reset of a crashed peer.
            s.set_linger(Some(std::time::Duration::ZERO)).unwrap();
            drop(s);
        }
        roundtrip(&endpoint, payload(100_000, 9));
        assert!(server.stop().0.success(), "{model}");
    }
}

#[test]
fn bad_addresses_are_one_line_and_exit_2() {
    for bad in ["tcp://host:99999", "udp://", "unix:", "sctp://h:1", "[::1"] {
        let out = crate::util::sockit().args(["echo", bad]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{bad}: {err}");
        assert!(err.contains(bad), "{bad}: {err}");
    }
}

#[test]
fn ipv6_loopback_is_served_and_printed_in_brackets() {
    let server = Server::start(&["echo", "[::1]:0", "--model", "threads"]);
    assert!(
        server.endpoint.starts_with("tcp://[::1]:"),
        "{}",
        server.endpoint
    );
    roundtrip(&server.endpoint.parse().unwrap(), payload(10_000, 3));
    let server = Server::start(&["echo", "udp://[::1]:0", "--model", "async"]);
    let sock = std::net::UdpSocket::bind("[::1]:0").unwrap();
    sock.set_read_timeout(Some(crate::util::WAIT)).unwrap();
    sock.send_to(b"six", server.addr()).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(sock.recv(&mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], b"six");
}

#[test]
fn log_lines_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let mut cmd = util::sockit();
    cmd.env("SOCKIT_LOG", "debug").args(["echo", "127.0.0.1:0"]);
    let mut server = Proc::spawn(cmd);
    let addr = server.listening_on();
    let port = addr.rsplit(':').next().unwrap();
    // A connection reset by its peer makes a debug line.
    let mut reset = Proc::python(
        "import socket,struct,sys\n\
         s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n\
         s.sendall(b'x'); s.recv(1)\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_LINGER,struct.pack('ii',1,0)); s.close()",
        &[port],
    );
    assert!(reset.wait_exit(WAIT).success(), "{}", reset.stderr());
    let deadline = std::time::Instant::now() + WAIT;
    while !server.stderr().contains("DEBUG") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let err = server.stderr();
    assert!(err.contains("DEBUG"), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
    util::signal(&server.child, 15);
    assert!(server.wait_exit(WAIT).success());
}
