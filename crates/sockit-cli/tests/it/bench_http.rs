//! `sockit bench http` against servers nobody here wrote (python's `http.server`, which
//! closes after every response; nginx, keep-alive) and `sockit http serve`, plus raw
//! python servers that send chunked bodies, lie about Content-Length or send a bad chunk:
//! requests are counted only when their body is framed right, and lies are errors.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Proc, Server, TempDir, WAIT, free_port, sockit};

fn bench(args: &[&str]) -> Output {
    sockit()
        .args(["bench", "http"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sockit bench http")
}

/// The report's JSON, which must parse.
fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn n(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// Failures of one kind (the report lists only the kinds that happened).
fn failed(r: &serde_json::Value, kind: &str) -> u64 {
    r["failures"][kind].as_u64().unwrap_or(0)
}

/// A directory with a 1000-byte file `f`.
fn www() -> TempDir {
    let dir = TempDir::new("bench-http");
    std::fs::write(dir.path("f"), crate::util::payload(1000, 7)).unwrap();
    dir
}

/// A python server on a raw socket answering every request with `RESPONSE` (keep-alive:
/// it reads one request head, writes the response, and goes on; `close` closes after).
const RAW_SERVER: &str = r#"
import socket, sys, threading
response = sys.argv[1].encode().decode("unicode_escape").encode("latin-1")
close = sys.argv[2] == "close"
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(64)
print(l.getsockname()[1], flush=True)
def serve(c):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            buf = buf.split(b"\r\n\r\n", 1)[1]
            c.sendall(response)
            if close:
                c.close()
                return
    except OSError:
        pass
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

fn raw_server(response: &str, close: bool) -> (Proc, String) {
    let p = Proc::python(
        RAW_SERVER,
        &[response, if close { "close" } else { "keep" }],
    );
    let port = p.first_line();
    (p, format!("http://127.0.0.1:{port}/"))
}

#[test]
fn sockit_http_serve_counts_statuses_and_bytes() {
    let dir = www();
    let server = Server::start(&["http", "serve", dir.0.to_str().unwrap(), "127.0.0.1:0"]);
    let url = format!("http://{}/f", server.addr());
    let out = bench(&[&url, "-c", "4", "--secs", "1", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&out);
    let requests = n(&r, "requests");
    assert!(requests > 0, "{r}");
    assert_eq!(n(&r, "errors"), 0, "{r}");
    assert_eq!(r["status"]["200"].as_u64(), Some(requests), "{r}");
    assert_eq!(
        n(&r, "connects"),
        4,
        "keep-alive: one connect per connection: {r}"
    );
    assert!(n(&r, "bytes") >= requests * 1000, "{r}");
    assert!(n(&r["latency_ns"], "p90") > 0, "{r}");
    assert_eq!(r["mode"], "closed");
    // Not a terminal: no progress line.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = bench(&[
        &format!("http://{}/missing", server.addr()),
        "-c",
        "2",
        "--secs",
        "0.5",
        "--json",
    ]);
    let r = report(&out);
    assert!(n(&r, "requests") > 0);
    assert_eq!(r["status"]["404"].as_u64(), Some(n(&r, "requests")), "{r}");
    assert_eq!(r["status"]["200"], serde_json::Value::Null, "{r}");
}

#[test]
fn open_loop_sends_at_the_rate_asked() {
    let dir = www();
    let server = Server::start(&["http", "serve", dir.0.to_str().unwrap(), "127.0.0.1:0"]);
    let url = format!("http://{}/f", server.addr());
    let out = bench(&[&url, "-c", "2", "--secs", "1", "--rate", "200", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&out);
    assert_eq!(r["mode"], "open");
    assert_eq!(r["rate"].as_f64(), Some(200.0));
    // 200 scheduled in the second: never more, and a loaded machine loses few.
    let requests = n(&r, "requests");
    assert!((100..=200).contains(&requests), "{r}");
    assert_eq!(n(&r, "errors"), 0, "{r}");
}

#[test]
fn python_http_server_closes_after_each_response_and_is_reconnected_to() {
    let dir = www();
    let mut cmd = Command::new("python3");
    cmd.args([
        "-u",
        "-m",
        "http.server",
        "0",
        "--bind",
        "127.0.0.1",
        "--directory",
    ])
    .arg(&dir.0);
    let py = Proc::spawn(cmd);
    let line = String::from_utf8_lossy(&py.wait_stdout_contains(")")).into_owned();
    let port = line
        .split("port ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let out = bench(&[
        &format!("http://127.0.0.1:{port}/f"),
        "-c",
        "2",
        "--secs",
        "1",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r = report(&out);
    let requests = n(&r, "requests");
    assert!(requests > 0, "{r}");
    assert_eq!(n(&r, "errors"), 0, "{r}");
    assert_eq!(r["status"]["200"].as_u64(), Some(requests));
    assert!(
        n(&r, "connects") >= requests,
        "HTTP/1.0: a connection per request: {r}"
    );
}

#[test]
fn nginx_keep_alive() {
    let dir = www();
    let port = free_port();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {pid};\n\
         error_log {err} warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp};\n\
           fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n\
           keepalive_requests 200;\n\
           server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n",
        pid = dir.path("nginx.pid").display(),
        err = dir.path("error.log").display(),
        tmp = dir.0.display(),
        root = dir.0.display(),
    );
    std::fs::write(dir.path("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.arg("-c")
        .arg(dir.path("nginx.conf"))
        .arg("-p")
        .arg(&dir.0);
    let mut nginx = Proc::spawn(cmd);
    // nginx prints nothing when it is ready: wait until it accepts.
    let began = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(nginx.running(), "nginx exited: {}", nginx.stderr());
        assert!(began.elapsed() < WAIT, "nginx never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = bench(&[
        &format!("http://127.0.0.1:{port}/f"),
        "-c",
        "4",
        "--secs",
        "1",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r = report(&out);
    let requests = n(&r, "requests");
    assert!(requests > 0, "{r}");
    assert_eq!(n(&r, "errors"), 0, "{r}");
    assert_eq!(r["status"]["200"].as_u64(), Some(requests));
    // keepalive_requests 200: nginx closes (Connection: close) after 200 on a connection.
    if requests > 4 * 200 {
        assert!(n(&r, "connects") > 4, "{r}");
    }
}

#[test]
fn chunked_bodies_are_decoded_and_counted() {
    let (_server, url) = raw_server(
        "HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n5\\r\\nhello\\r\\n6\\r\\n world\\r\\n0\\r\\n\\r\\n",
        false,
    );
    let out = bench(&[&url, "-c", "2", "--secs", "0.5", "--json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r}");
    assert!(n(&r, "requests") > 0, "{r}");
    assert_eq!(n(&r, "errors"), 0, "{r}");
    assert_eq!(n(&r, "connects"), 2, "{r}");
}

#[test]
fn bodies_that_lie_about_their_length_are_errors() {
    // Announces 100 bytes, sends 10, closes: cut short.
    let (_short, url) = raw_server(
        "HTTP/1.1 200 OK\\r\\nContent-Length: 100\\r\\n\\r\\n0123456789",
        true,
    );
    let out = bench(&[&url, "-c", "2", "--secs", "0.5", "--json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r}");
    assert_eq!(n(&r, "requests"), 0, "{r}");
    assert!(failed(&r, "closed") > 0, "{r}");

    // Announces 5, sends 10: the extra bytes are no response head.
    let (_long, url) = raw_server(
        "HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\n\\r\\n0123456789",
        false,
    );
    let out = bench(&[&url, "-c", "1", "--secs", "0.5", "--json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r}");
    assert!(
        failed(&r, "malformed") + failed(&r, "unexpected") > 0,
        "{r}"
    );

    // A chunk size that is not hex.
    let (_bad, url) = raw_server(
        "HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\nzz\\r\\nhello\\r\\n0\\r\\n\\r\\n",
        false,
    );
    let out = bench(&[&url, "-c", "1", "--secs", "0.5", "--json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r}");
    assert_eq!(n(&r, "requests"), 0, "{r}");
    assert!(failed(&r, "malformed") > 0, "{r}");
}

#[test]
fn method_headers_and_body_are_sent_as_asked() {
    // A server that echoes the request it got as the body, to see what was sent.
    let script = r#"
import socket
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(8)
print(l.getsockname()[1], flush=True)
c, _ = l.accept()
buf = b""
while b"\r\n\r\n" not in buf or len(buf.split(b"\r\n\r\n", 1)[1]) < 5:
    buf += c.recv(65536)
print(repr(buf), flush=True)
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
c.close()
"#;
    let server = Proc::python(script, &[]);
    let port = server.first_line();
    let dir = TempDir::new("bench-http-body");
    std::fs::write(dir.path("body"), b"hello").unwrap();
    let out = bench(&[
        &format!("http://127.0.0.1:{port}/p?q=1"),
        "-c",
        "1",
        "--secs",
        "0.5",
        "-m",
        "PUT",
        "-H",
        "X-Test: yes",
        "--body",
        dir.path("body").to_str().unwrap(),
        "--json",
    ]);
    let seen = String::from_utf8_lossy(
        &server.wait_stdout(|b| b.iter().filter(|&&c| c == b'\n').count() >= 2),
    )
    .into_owned();
    assert!(seen.contains("PUT /p?q=1 HTTP/1.1\\r\\n"), "{seen}");
    assert!(
        seen.contains(&format!("Host: 127.0.0.1:{port}\\r\\n")),
        "{seen}"
    );
    assert!(
        seen.contains("X-Test: yes\\r\\n") && seen.contains("Content-Length: 5\\r\\n"),
        "{seen}"
    );
    assert!(seen.contains("\\r\\n\\r\\nhello"), "{seen}");
    let r = report(&out);
    assert!(n(&r, "requests") >= 1, "{r}");
}

#[test]
fn bad_usage_exits_2_with_one_line() {
    for args in [
        &["ftp://127.0.0.1/"][..],
        &["http://127.0.0.1:1/", "-H", "no colon"],
        &["http://127.0.0.1:1/", "--rate", "0"],
        &["http://127.0.0.1:1/", "-c", "0"],
    ] {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr)
                .trim_end()
                .lines()
                .count(),
            1,
            "{args:?}"
        );
    }
    // Nobody listening: a failure (exit 1), said in one line.
    let out = bench(&[
        &format!("http://127.0.0.1:{}/", free_port()),
        "--secs",
        "0.3",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("refused"), "{err}");
}
