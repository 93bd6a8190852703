//! `sockit bench` end to end: echo load against a real server (tcp, unix and tls: sockit's
//! own and Python's `ssl`), against a server that corrupts bytes, connections held and
//! pinged (with a handshake each over tls), and a target nobody serves.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use crate::util::{Proc, Server, TempDir, json_number, openssl_cert, sockit};

/// The whole number after `"key":` in a flat JSON report.
fn json_u64(json: &str, key: &str) -> u64 {
    json_number(json, key) as u64
}

fn bench(args: &[&str]) -> Output {
    sockit()
        .arg("bench")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sockit bench")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn echo_against_the_threads_model_counts_messages_and_no_errors() {
    let server = Server::start(&["echo", "127.0.0.1:0", "--model", "threads"]);
    let out = bench(&[
        "echo",
        &server.endpoint,
        "--conns",
        "4",
        "--size",
        "1000",
        "--pipeline",
        "4",
        "--threads",
        "2",
        "--secs",
        "1",
        // Room to drain on a loaded machine; a drained run ends as soon as it is done.
        "--grace",
        "10s",
        "--json",
    ]);
    let json = stdout(&out);
    assert!(out.status.success(), "{:?}: {json}", out.status);
    assert!(json_u64(&json, "msgs") > 0, "{json}");
    assert_eq!(json_u64(&json, "errors"), 0, "{json}");
    assert_eq!(json_u64(&json, "connected"), 4, "{json}");
    assert_eq!(json_u64(&json, "threads"), 2, "{json}");
    assert_eq!(json_u64(&json, "unfinished"), 0, "{json}");
    assert!(json_u64(&json, "p50") > 0, "{json}");
    assert!(server.stop().0.success());
}

#[test]
fn echo_over_unix_prints_a_report_for_people() {
    let dir = TempDir::new("bench-unix");
    let addr = format!("unix:{}", dir.path("echo.sock").display());
    let server = Server::start(&["echo", &addr, "--model", "async"]);
    let out = bench(&["echo", &addr, "--conns", "2", "--secs", "500ms"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("messages"), "{text}");
    assert!(text.contains("p99"), "{text}");
    assert!(text.contains("errors    0"), "{text}");
    assert!(server.stop().0.success());
}

/// A Python echo server that flips one bit of every chunk it sends back.
struct Corrupter(Child, String);

impl Corrupter {
    fn start() -> Corrupter {
        let script = "import socket, sys, threading\n\
             s = socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('127.0.0.1', 0))\n\
             s.listen(16)\n\
             print('listening on tcp://127.0.0.1:%d' % s.getsockname()[1], file=sys.stderr, flush=True)\n\
             def serve(c):\n\
             \x20   while True:\n\
             \x20       d = c.recv(65536)\n\
             \x20       if not d:\n\
             \x20           return\n\
             \x20       c.sendall(bytes([d[0] ^ 1]) + d[1:])\n\
             while True:\n\
             \x20   c, _ = s.accept()\n\
             \x20   threading.Thread(target=serve, args=(c,), daemon=True).start()\n";
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .expect("read python's first line");
        let endpoint = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("python said {line:?}"))
            .to_owned();
        Corrupter(child, endpoint)
    }
}

impl Drop for Corrupter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn echo_reports_corrupted_bytes_as_errors() {
    let bad = Corrupter::start();
    let out = bench(&["echo", &bad.1, "--conns", "2", "--secs", "500ms", "--json"]);
    let json = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "errors mean exit 1: {json}");
    assert!(json_u64(&json, "errors") > 0, "{json}");
    assert!(json_u64(&json, "corrupt") > 0, "{json}");
    // Every message came back corrupted, so none counts as echoed.
    assert_eq!(json_u64(&json, "msgs"), 0, "{json}");
}

#[test]
fn conns_holds_and_pings_200_connections() {
    let server = Server::start(&["echo", "127.0.0.1:0", "--model", "threads"]);
    let out = bench(&[
        "conns",
        &server.endpoint,
        "--conns",
        "200",
        "--hold",
        "300ms",
        "--json",
    ]);
    let json = stdout(&out);
    assert!(out.status.success(), "{json}");
    assert_eq!(json_u64(&json, "opened"), 200, "{json}");
    assert_eq!(json_u64(&json, "held"), 200, "{json}");
    assert_eq!(json_u64(&json, "healthy"), 200, "{json}");
    assert_eq!(json_u64(&json, "errors"), 0, "{json}");
    assert!(server.stop().0.success());
}

#[test]
fn conns_counts_connections_the_server_closes() {
    // The server admits 50 and closes the rest at once: they opened, but are not healthy.
    let server = Server::start(&["echo", "127.0.0.1:0", "--max-conns", "50"]);
    let out = bench(&[
        "conns",
        &server.endpoint,
        "--conns",
        "80",
        "--hold",
        "300ms",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("opened    80"), "{text}");
    assert!(text.contains("healthy   50"), "{text}");
    assert!(text.contains("closed 30"), "{text}");
}

#[test]
fn nobody_listening_is_one_line_and_exit_1() {
    let port = crate::util::free_port();
    let out = bench(&["echo", &format!("127.0.0.1:{port}"), "--secs", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn bad_settings_are_usage_errors() {
    let out = bench(&["echo", "127.0.0.1:1", "--size", "12X"]);
    assert_eq!(out.status.code(), Some(2));
    let out = bench(&["echo", "udp://127.0.0.1:1", "--secs", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("datagram"));
}

#[test]
fn echo_open_loop_sends_at_the_rate_asked() {
    let server = Server::start(&["echo", "127.0.0.1:0"]);
    let out = bench(&[
        "echo",
        &server.endpoint,
        "--conns",
        "2",
        "--pipeline",
        "2",
        "--secs",
        "1",
        "--rate",
        "300",
        "--grace",
        "10s",
        "--json",
    ]);
    let json = stdout(&out);
    assert!(out.status.success(), "{:?}: {json}", out.status);
    assert_eq!(json_u64(&json, "errors"), 0, "{json}");
    assert_eq!(json_number(&json, "rate"), 300.0, "{json}");
    // 300 scheduled in the window: never more, and a loaded machine loses few.
    let msgs = json_u64(&json, "msgs") + json_u64(&json, "drained");
    assert!((150..=300).contains(&msgs), "{json}");
    assert!(server.stop().0.success());
}

/// The load over `tls://` against sockit's own echo, trusted by its pin: every model's
/// TLS layer echoes every byte, several messages in flight (they share records), and
/// messages larger than a record (16 KiB) come back whole.
#[test]
fn echo_over_tls_against_a_pinned_sockit_echo_counts_messages_and_no_errors() {
    for (model, size) in [("epoll", "1000"), ("async", "40000"), ("threads", "64")] {
        let server = Server::start(&["echo", "tls://127.0.0.1:0", "--model", model]);
        let pin = server.tls_pin();
        let out = bench(&[
            "echo",
            &server.endpoint,
            "--pin",
            &pin,
            "--conns",
            "4",
            "--size",
            size,
            "--pipeline",
            "4",
            "--secs",
            "1",
            "--grace",
            "10s",
            "--json",
        ]);
        let json = stdout(&out);
        assert!(out.status.success(), "{model}: {:?}: {json}", out.status);
        assert!(json_u64(&json, "msgs") > 0, "{model}: {json}");
        assert_eq!(json_u64(&json, "errors"), 0, "{model}: {json}");
        assert_eq!(json_u64(&json, "connected"), 4, "{model}: {json}");
        assert_eq!(json_u64(&json, "unfinished"), 0, "{model}: {json}");
        assert!(json.contains(r#""endpoint":"tls://127.0.0.1:"#), "{json}");
        assert!(server.stop().0.success(), "{model}");
    }
}

/// A TLS echo server nobody here wrote: Python's `ssl`, a thread per connection.
const PY_TLS_ECHO: &str = r#"
import socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(64)
print("listening on tls://127.0.0.1:%d" % ls.getsockname()[1], file=sys.stderr, flush=True)
def serve(c):
    try:
        s = ctx.wrap_socket(c, server_side=True)
        while True:
            d = s.recv(65536)
            if not d:
                break
            s.sendall(d)
    except (OSError, ssl.SSLError):
        pass
    finally:
        c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// The load over `tls://` against Python's `ssl` echo with openssl's certificate, trusted
/// by `--cacert`: the bytes Python decrypts and encrypts back are checked one by one.
#[test]
fn echo_over_tls_against_python_ssl_trusted_by_cacert() {
    let dir = TempDir::new("bench-tls-python");
    let (cert, key) = openssl_cert(&dir, "localhost");
    let py = Proc::python(PY_TLS_ECHO, &[&cert, &key]);
    let endpoint = py.listening_on();
    let out = bench(&[
        "echo",
        &endpoint,
        "--cacert",
        &cert,
        "--conns",
        "3",
        "--size",
        "300",
        "--pipeline",
        "8",
        "--secs",
        "1",
        "--grace",
        "10s",
        "--json",
    ]);
    let json = stdout(&out);
    assert!(out.status.success(), "{:?}: {json}", out.status);
    assert!(json_u64(&json, "msgs") > 0, "{json}");
    assert_eq!(json_u64(&json, "errors"), 0, "{json}");
    assert_eq!(json_u64(&json, "connected"), 3, "{json}");
    assert_eq!(json_u64(&json, "unfinished"), 0, "{json}");
}

/// A server that is not the pinned one is refused at the handshake: nothing connects, so
/// the run is one line saying why, exit 1; the same load with the right pin would pass
/// (the test above).
#[test]
fn echo_over_tls_with_a_wrong_pin_is_one_line_and_exit_1() {
    let server = Server::start(&["echo", "tls://127.0.0.1:0"]);
    let _ = server.tls_pin();
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let out = bench(&["echo", &server.endpoint, "--pin", &wrong, "--secs", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("pin mismatch"), "{err}");
    // TLS flags on a plain address would do nothing: a usage error.
    let out = bench(&["echo", "127.0.0.1:1", "--pin", &wrong, "--secs", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(server.stop().0.success());
}

/// `bench conns tls://`: every connection opens with a full handshake (the server logs
/// nothing wrong), is held while the server's session tickets arrive (read, not counted
/// as unexpected bytes), and answers its ping through TLS.
#[test]
fn conns_over_tls_handshakes_holds_and_pings_every_connection() {
    let server = Server::start(&["echo", "tls://127.0.0.1:0", "--model", "epoll"]);
    let pin = server.tls_pin();
    let out = bench(&[
        "conns",
        &server.endpoint,
        "--pin",
        &pin,
        "--conns",
        "60",
        "--hold",
        "300ms",
        "--json",
    ]);
    let json = stdout(&out);
    assert!(out.status.success(), "{json}");
    assert_eq!(json_u64(&json, "opened"), 60, "{json}");
    assert_eq!(json_u64(&json, "held"), 60, "{json}");
    assert_eq!(json_u64(&json, "healthy"), 60, "{json}");
    assert_eq!(json_u64(&json, "errors"), 0, "{json}");
    assert!(server.stop().0.success());
}
