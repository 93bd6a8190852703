//! `sockit bench` end to end: echo load against a real server (tcp and unix), against a
//! server that corrupts bytes, connections held and pinged, and a target nobody serves.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use crate::util::{Server, TempDir, json_number, sockit};

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
