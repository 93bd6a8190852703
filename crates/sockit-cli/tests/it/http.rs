//! `sockit http get` and `sockit http serve` end to end: get against Python's
//! `http.server` (plain, chunked, redirects, HTTP/1.0, TLS with a self-signed CA) and
//! against `http serve` (10 MiB byte-exact, HEAD, -f); curl against `http serve` under
//! several models for listings, ranges, 304, 404, keep-alive and every traversal attempt.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};

use crate::util::{Proc, Server, TempDir, WAIT, contains, openssl, s_server_www, sockit};

/// `http serve` is a framework `Service`, so it is checked under every model.
const MODELS: &[&str] = &[
    "epoll", "epoll-et", "poll", "select", "threads", "async", "fork", "blocking",
];

/// A Python server that prints `PORT` on its first stdout line.
struct Py {
    /// Kept so the server lives as long as the test needs it.
    _proc: Proc,
    port: u16,
}

impl Py {
    fn start(script: &str, args: &[&str]) -> Py {
        let mut cmd = Command::new("python3");
        cmd.arg("-u").arg("-c").arg(script).args(args);
        let p = Proc::spawn(cmd);
        let port = p
            .first_line()
            .trim()
            .parse()
            .expect("python printed its port");
        Py { _proc: p, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Chunked bodies, redirect chains, an HTTP/1.0 read-until-close body and junk.
const TEST_SERVER: &str = r#"
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, code, body=b"", **hdrs):
        self.send_response(code)
        for k, v in hdrs.items(): self.send_header(k.replace("_", "-"), v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        port = self.server.server_address[1]
        p = self.path
        if p == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in [b"hello ", b"chunked ", b"x" * 70000, b" world"]:
                self.wfile.write(b"%x;ext=1\r\n" % len(part) + part + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif p == "/r1": self.send(302, Location="r2")
        elif p == "/r2": self.send(301, Location="/dir/r3?q=1")
        elif p == "/dir/r3?q=1": self.send(307, Location="http://127.0.0.1:%d/final" % port)
        elif p == "/final": self.send(200, b"final body\n", X_Hdr="v")
        elif p == "/loop": self.send(302, Location="/loop")
        elif p == "/headers": self.send(200, ("%s|%s" % (self.headers["X-Test"], self.headers["User-Agent"])).encode())
        elif p == "/close":
            self.wfile.write(b"HTTP/1.0 200 OK\r\n\r\nuntil close\n")
            self.close_connection = True
        elif p == "/junk":
            self.wfile.write(b"SSH-2.0-not-http\r\n\r\n")
            self.close_connection = True
        elif p == "/short":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
            self.close_connection = True
        else: self.send(404, b"nope\n")
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
if len(sys.argv) > 1:
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1])
s.serve_forever()
"#;

/// `sockit http get ARGS...` (always with a timeout, so nothing hangs).
fn get(args: &[&str]) -> Output {
    sockit()
        .args(["http", "get", "--timeout", "20s"])
        .args(args)
        .output()
        .expect("run sockit http get")
}

fn ok_body(args: &[&str]) -> Vec<u8> {
    let out = get(args);
    assert!(
        out.status.success(),
        "http get {args:?}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn failure(args: &[&str]) -> (i32, String) {
    let out = get(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "one error line: {err:?}");
    (out.status.code().unwrap_or(-1), err)
}

/// Deterministic bytes, every value present, no repeating period that could hide a shift.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn get_against_python_http_server() {
    let dir = TempDir::new("http-py");
    let data = payload(300_000);
    std::fs::write(dir.path("blob.bin"), &data).unwrap();
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
    let p = Proc::spawn(cmd);
    let line = String::from_utf8_lossy(&p.wait_stdout_contains(") ...")).into_owned();
    let port: u16 = line
        .split("port ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let url = format!("http://127.0.0.1:{port}/blob.bin");
    assert!(ok_body(&[&url]) == data, "body differs");
    // The listing, and -i: the head first.
    let listing = ok_body(&["-i", &format!("http://127.0.0.1:{port}/")]);
    assert!(listing.starts_with(b"HTTP/1.0 200 OK\r\n"));
    assert!(contains(&listing, b"blob.bin"));
    let head = ok_body(&["-I", &url]);
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(head.contains("Content-Length: 300000"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "head only: {head:?}");
    let (code, err) = failure(&["-f", &format!("http://127.0.0.1:{port}/missing")]);
    assert_eq!(code, 22, "{err}");
    // Without -f a 404 is a successful transfer, as in curl.
    assert!(
        get(&[&format!("http://127.0.0.1:{port}/missing")])
            .status
            .success()
    );
}

#[test]
fn get_chunked_redirects_and_odd_responses() {
    let py = Py::start(TEST_SERVER, &[]);
    let mut want = b"hello chunked ".to_vec();
    want.extend(std::iter::repeat_n(b'x', 70000));
    want.extend(b" world");
    assert!(ok_body(&[&py.url("/chunked")]) == want, "chunked body");

    // Without -L the 302 itself; with it the whole chain, relative and absolute.
    let out = ok_body(&["-i", &py.url("/r1")]);
    assert!(
        out.starts_with(b"HTTP/1.1 302"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(ok_body(&["-L", &py.url("/r1")]), b"final body\n");
    let all = String::from_utf8(ok_body(&["-L", "-i", &py.url("/r1")])).unwrap();
    let statuses: Vec<&str> = all.lines().filter(|l| l.starts_with("HTTP/1.1 ")).collect();
    assert_eq!(statuses.len(), 4, "{all}");
    assert!(all.ends_with("\r\n\r\nfinal body\n"), "{all}");
    let (code, err) = failure(&["-L", &py.url("/loop")]);
    assert_eq!(code, 1);
    assert!(err.contains("too many redirects"), "{err}");

    assert_eq!(
        ok_body(&[
            "-H",
            "X-Test: abc",
            "-H",
            "User-Agent: me/1",
            &py.url("/headers")
        ]),
        b"abc|me/1"
    );
    assert_eq!(ok_body(&[&py.url("/close")]), b"until close\n");

    let (code, err) = failure(&[&py.url("/junk")]);
    assert_eq!(code, 1);
    assert!(err.contains("malformed"), "{err}");
    let (code, err) = failure(&[&py.url("/short")]);
    assert_eq!(code, 1);
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn get_errors_are_one_line() {
    let (code, err) = failure(&["http://no-such-host.invalid/"]);
    assert_eq!(code, 1);
    assert!(err.contains("resolve"), "{err}");
    // A port nothing listens on: bind one, note it, close it.
    let port = crate::util::free_port();
    let (code, err) = failure(&[&format!("http://127.0.0.1:{port}/")]);
    assert_eq!(code, 1);
    assert!(err.contains("refused"), "{err}");
    // A server that accepts and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let out = sockit()
        .args(["http", "get", "--timeout", "300ms", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out"));
    let (code, _) = failure(&["ftp://x/"]);
    assert_eq!(code, 2);
}

#[test]
fn get_https_with_a_private_ca() {
    let dir = TempDir::new("http-tls");
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A self-signed leaf, not a CA: webpki refuses a CA certificate as the server's.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let py = Py::start(
        TEST_SERVER,
        &[cert.to_str().unwrap(), key.to_str().unwrap()],
    );
    let url = format!("https://127.0.0.1:{}/final", py.port);
    let (code, err) = failure(&[&url]);
    assert_eq!(code, 1);
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");
    assert_eq!(
        ok_body(&["--cacert", cert.to_str().unwrap(), &url]),
        b"final body\n"
    );
    let chunked = ok_body(&[
        "--cacert",
        cert.to_str().unwrap(),
        &py.url("/chunked").replace("http:", "https:"),
    ]);
    assert_eq!(chunked.len(), 70020);
    // A CA file that is not PEM.
    let (code, err) = failure(&[
        "--cacert",
        key.with_extension("nope").to_str().unwrap(),
        &url,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("CA file"), "{err}");
    // A PEM file without certificates (the key) is refused before connecting.
    let (code, err) = failure(&["--cacert", key.to_str().unwrap(), &url]);
    assert_eq!(code, 1);
    assert!(err.contains("no certificates"), "{err}");
}

/// A served tree: files, a big one, names to escape, and symlinks, one pointing out.
struct Tree {
    tmp: TempDir,
    big: Vec<u8>,
}

impl Tree {
    fn new() -> Tree {
        let tmp = TempDir::new("http-serve");
        let root = tmp.path("root");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(tmp.path("outside")).unwrap();
        std::fs::write(tmp.path("outside/secret.txt"), "TOPSECRET\n").unwrap();
        std::fs::write(root.join("hello.txt"), "hello, world\n").unwrap();
        std::fs::write(root.join("a <b>&\"c\".html"), "<p>x</p>").unwrap();
        std::fs::write(root.join("sub/index.html"), "<h1>index</h1>\n").unwrap();
        std::fs::write(root.join("sub/deeper/style.css"), "p{}").unwrap();
        let big = payload(10 << 20);
        std::fs::write(root.join("big.bin"), &big).unwrap();
        std::os::unix::fs::symlink("../outside/secret.txt", root.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("leakdir")).unwrap();
        std::os::unix::fs::symlink(tmp.path("outside"), root.join("absleak")).unwrap();
        std::os::unix::fs::symlink("hello.txt", root.join("inside.txt")).unwrap();
        Tree { tmp, big }
    }

    fn root(&self) -> String {
        self.tmp.path("root").to_str().unwrap().to_owned()
    }

    fn serve(&self, model: &str) -> Server {
        Server::start(&[
            "http",
            "serve",
            &self.root(),
            "127.0.0.1:0",
            "--model",
            model,
        ])
    }
}

fn base(server: &Server) -> String {
    format!("http://{}", server.addr())
}

/// `curl -s -m 20 ARGS...`: (status code, body).
fn curl(args: &[&str]) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-m", "20", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl (apt-get install curl)");
    let mut body = out.stdout;
    let nl = body.iter().rposition(|&b| b == b'\n').expect("status line");
    let code = String::from_utf8_lossy(&body[nl + 1..])
        .parse()
        .unwrap_or(0);
    body.truncate(nl);
    (code, body)
}

#[test]
fn get_against_http_serve_big_file_head_and_fail() {
    let tree = Tree::new();
    let server = tree.serve("threads");
    let url = format!("{}/big.bin", base(&server));
    let out = tree.tmp.path("big.out");
    ok_body(&["-o", out.to_str().unwrap(), &url]);
    assert!(
        std::fs::read(&out).unwrap() == tree.big,
        "10 MiB -o differs"
    );
    assert!(ok_body(&[&url]) == tree.big, "10 MiB stdout differs");
    let head = String::from_utf8(ok_body(&["-I", &url])).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 10485760\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"));
    let (code, _) = failure(&["-f", &format!("{}/nope", base(&server))]);
    assert_eq!(code, 22);
    // IPv6 literal: a server on [::1] (when the machine has IPv6 loopback).
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let v6 = Server::start(&["http", "serve", &tree.root(), "[::1]:0"]);
        let url = format!("http://[::1]:{}/hello.txt", v6.port());
        assert_eq!(ok_body(&[&url]), b"hello, world\n");
    }
    // One log line per request, after `listening on`.
    let line = server.next_line().expect("a log line");
    assert!(
        line.contains("\"GET /big.bin HTTP/1.1\" 200 10485760"),
        "{line}"
    );
}

#[test]
fn curl_against_http_serve_under_models() {
    let tree = Tree::new();
    for model in MODELS {
        let server = tree.serve(model);
        let b = base(&server);
        let (code, body) = curl(&[&format!("{b}/hello.txt")]);
        assert_eq!((code, &body[..]), (200, &b"hello, world\n"[..]), "{model}");

        // Listing: every name, escaped; a directory with index.html serves it.
        let (code, body) = curl(&[&format!("{b}/")]);
        let html = String::from_utf8_lossy(&body);
        assert_eq!(code, 200, "{model}");
        assert!(
            html.contains("a &lt;b&gt;&amp;&quot;c&quot;.html"),
            "{html}"
        );
        assert!(
            html.contains("href=\"a%20%3Cb%3E%26%22c%22.html\""),
            "{html}"
        );
        assert!(html.contains("href=\"sub/\""), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert_eq!(curl(&[&format!("{b}/sub/")]).1, b"<h1>index</h1>\n");
        assert_eq!(curl(&[&format!("{b}/sub")]).0, 301);
        assert_eq!(curl(&["-L", &format!("{b}/sub")]).1, b"<h1>index</h1>\n");
        assert_eq!(
            curl(&[&format!("{b}/a%20%3Cb%3E%26%22c%22.html")]).1,
            b"<p>x</p>"
        );

        // Range: a slice, the tail, a suffix; out of range is 416.
        assert_eq!(
            curl(&["-r", "0-4", &format!("{b}/hello.txt")]),
            (206, b"hello".to_vec())
        );
        assert_eq!(
            curl(&["-r", "7-", &format!("{b}/hello.txt")]),
            (206, b"world\n".to_vec())
        );
        assert_eq!(
            curl(&["-r", "-6", &format!("{b}/hello.txt")]),
            (206, b"world\n".to_vec())
        );
        let (code, _) = curl(&["-r", "100-200", &format!("{b}/hello.txt")]);
        assert_eq!(code, 416);
        let (code, body) = curl(&["-r", "1000000-1000009", &format!("{b}/big.bin")]);
        assert_eq!((code, &body[..]), (206, &tree.big[1_000_000..1_000_010]));

        // If-Modified-Since: 304 when not newer, 200 when the file changed since.
        let future = httpdate(std::time::SystemTime::now() + std::time::Duration::from_secs(3600));
        let past = httpdate(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000));
        let ims = |d: &str| format!("If-Modified-Since: {d}");
        assert_eq!(
            curl(&["-H", &ims(&future), &format!("{b}/hello.txt")]),
            (304, vec![])
        );
        assert_eq!(curl(&["-H", &ims(&past), &format!("{b}/hello.txt")]).0, 200);

        // ETag: curl keeps it and asks again with If-None-Match (304); If-Range with it
        // gives the range, with another tag the whole file.
        let tags = tree.tmp.path(&format!("etag-{model}"));
        let tags = tags.to_str().unwrap();
        let url = format!("{b}/hello.txt");
        assert_eq!(curl(&["--etag-save", tags, &url]).0, 200, "{model}");
        let etag = std::fs::read_to_string(tags).unwrap().trim().to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "{model}: {etag:?}"
        );
        assert_eq!(
            curl(&["--etag-compare", tags, &url]),
            (304, vec![]),
            "{model}"
        );
        let if_range = |tag: &str| curl(&["-r", "0-4", "-H", &format!("If-Range: {tag}"), &url]);
        assert_eq!(if_range(&etag), (206, b"hello".to_vec()), "{model}");
        assert_eq!(if_range("\"other\"").1, b"hello, world\n", "{model}");
        // A listed tag among others, and If-None-Match winning over If-Modified-Since.
        let inm = format!("If-None-Match: \"x\", W/{etag}");
        assert_eq!(curl(&["-H", &inm, &url]).0, 304, "{model}");
        let stale = ["-H", "If-None-Match: \"x\"", "-H", &ims(&future), &url];
        assert_eq!(curl(&stale).0, 200, "{model}");

        assert_eq!(curl(&[&format!("{b}/missing")]).0, 404);
        assert_eq!(curl(&["-X", "POST", &format!("{b}/hello.txt")]).0, 501);
        assert_eq!(curl(&["-I", &format!("{b}/hello.txt")]).0, 200);
        assert_eq!(curl(&[&format!("{b}/inside.txt")]).1, b"hello, world\n");
        assert_eq!(curl(&[&format!("{b}/sub/deeper/style.css")]).1, b"p{}");

        // 10 MiB: more than a socket buffer, so the file goes out over many writable events.
        let (code, body) = curl(&[&format!("{b}/big.bin")]);
        assert_eq!(code, 200, "{model}");
        assert!(body == tree.big, "{model}: 10 MiB body differs");

        traversals_refused(&b, model);
        keep_alive_and_pipelining(&server, model);
        pipelined_file_ranges(&server, &tree.big, model);
    }
}

/// Many pipelined requests for file ranges big enough to go by `sendfile`, more than the
/// server queues at once (the rest are answered as the output drains), with and without a
/// half-close after them: every response arrives, in order, exact.
fn pipelined_file_ranges(server: &Server, big: &[u8], model: &str) {
    for half_close in [false, true] {
        pipelined_file_ranges_once(
            server,
            big,
            half_close,
            &format!("{model}, half-close {half_close}"),
        );
    }
}

fn pipelined_file_ranges_once(server: &Server, big: &[u8], half_close: bool, model: &str) {
    const N: usize = 24;
    const LEN: usize = 100_000;
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut requests = String::new();
    for i in 0..N {
        let from = i * 400_000 + i;
        let close = if i == N - 1 {
            "Connection: close\r\n"
        } else {
            ""
        };
        requests.push_str(&format!(
            "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes={from}-{}\r\n{close}\r\n",
            from + LEN - 1
        ));
    }
    s.write_all(requests.as_bytes()).unwrap();
    if half_close {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .expect("the server closes after the last");
    let mut rest = &all[..];
    for i in 0..N {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("{model}: response {i} has no head"));
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 206 "), "{model}: {head}");
        assert!(
            head.contains(&format!("Content-Length: {LEN}\r\n")),
            "{head}"
        );
        let body = &rest[end + 4..];
        assert!(body.len() >= LEN, "{model}: response {i} cut short");
        let from = i * 400_000 + i;
        assert!(
            body[..LEN] == big[from..from + LEN],
            "{model}: response {i} differs"
        );
        rest = &body[LEN..];
    }
    assert!(rest.is_empty(), "{model}: {} bytes too many", rest.len());
}

fn traversals_refused(b: &str, model: &str) {
    for path in [
        "/../outside/secret.txt",
        "/../../../../../../etc/passwd",
        "/%2e%2e/outside/secret.txt",
        "/%2E%2E/outside/secret.txt",
        "/.%2e/outside/secret.txt",
        "/%2e%2e%2foutside%2fsecret.txt",
        "/sub/..%2f..%2foutside/secret.txt",
        "/sub/%2e%2e/%2e%2e/outside/secret.txt",
        "/sub/../../outside/secret.txt",
        "/leak.txt",
        "/leakdir/secret.txt",
        "/absleak/secret.txt",
        "/leakdir/",
        "/%2fetc%2fpasswd",
        "/..%5c..%5coutside%5csecret.txt",
        "/hello.txt%00.html",
    ] {
        let (code, body) = curl(&["--path-as-is", &format!("{b}{path}")]);
        assert!(
            matches!(code, 400 | 403 | 404),
            "{model}: {path} gave {code}"
        );
        assert!(!contains(&body, b"TOPSECRET"), "{model}: {path} leaked");
        assert!(!contains(&body, b"root:"), "{model}: {path} leaked");
    }
}

/// Three requests in one write (HEAD between two GETs, the last asking to close): three
/// responses in order, then the server closes.
fn keep_alive_and_pipelining(server: &Server, model: &str) {
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nHEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /sub/deeper/style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .expect("the server closes after the last");
    let text = String::from_utf8_lossy(&all);
    assert_eq!(
        text.matches("HTTP/1.1 200 OK\r\n").count(),
        3,
        "{model}: {text}"
    );
    assert_eq!(text.matches("hello, world\n").count(), 1, "{model}: {text}");
    assert!(text.ends_with("\r\n\r\np{}"), "{model}: {text}");
    // Nothing after a closing response is answered, half-close or not.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(
        b"GET /hello.txt HTTP/1.1\r\nConnection: close\r\n\r\nGET /hello.txt HTTP/1.1\r\n\r\n",
    )
    .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{model}: {text}");
    // A request cut in pieces is still answered.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    for piece in [
        &b"GET /hel"[..],
        b"lo.txt HTTP/1.1\r\nHo",
        b"st: x\r\nConnection: close\r\n",
        b"\r\n",
    ] {
        s.write_all(piece).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert!(all.ends_with(b"\r\n\r\nhello, world\n"), "{model}");
    // Garbage costs the peer its connection only.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    assert!(all.starts_with(b"HTTP/1.1 400"), "{model}");
}

fn httpdate(t: std::time::SystemTime) -> String {
    // `date -u -R` style via curl's own parser would do; format it by hand with Python's rules.
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sys,email.utils;print(email.utils.formatdate(float(sys.argv[1]),usegmt=True))")
        .arg(
            t.duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                .to_string(),
        )
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A peer that asks for a huge file and never reads it holds its connection only until
/// the idle timeout: with room for one connection, the next client is served after it.
#[test]
fn a_peer_that_stops_reading_is_cut_at_the_idle_timeout() {
    let tmp = TempDir::new("http-stuck");
    let root = tmp.path("root");
    std::fs::create_dir_all(&root).unwrap();
    // Sparse: 1 GiB of zeros costs no disk, far more than socket buffers hold.
    std::fs::File::create(root.join("huge.bin"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    std::fs::write(root.join("small.txt"), "small\n").unwrap();
    for model in MODELS {
        let server = Server::start(&[
            "http",
            "serve",
            root.to_str().unwrap(),
            "127.0.0.1:0",
            "--model",
            model,
            "--max-conns",
            "1",
            "--idle-timeout",
            "1s",
        ]);
        let mut stuck = TcpStream::connect(server.addr()).unwrap();
        stuck
            .write_all(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let started = std::time::Instant::now();
        let served = loop {
            assert!(started.elapsed() < WAIT, "{model}: never served again");
            let mut s = TcpStream::connect(server.addr()).unwrap();
            s.set_read_timeout(Some(WAIT)).unwrap();
            let _ = s.write_all(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            if got.ends_with(b"\r\n\r\nsmall\n") {
                break started.elapsed();
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        assert!(
            served >= std::time::Duration::from_millis(500),
            "{model}: served after {served:?}, while the stuck peer should hold the only slot"
        );
        // The stuck peer's connection was ended long before its 1 GiB.
        stuck.set_read_timeout(Some(WAIT)).unwrap();
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(n @ 1..) = stuck.read(&mut buf) {
            total += n;
        }
        assert!(total < 1 << 30, "{model}: the stuck peer got everything");
    }
}

/// Writes `request` on a fresh connection and reads until the server closes (or `WAIT`).
fn exchange(server: &Server, request: &[u8]) -> String {
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(request).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    String::from_utf8_lossy(&all).into_owned()
}

/// Sends `head` (a request head whose body framing is in doubt) with a second request
/// behind it, as a smuggler would: the answer must be `status` alone, then the close.
fn refused_and_closed(server: &Server, head: &str, status: u16, model: &str) {
    let text = exchange(
        server,
        format!("{head}\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    assert!(
        text.starts_with(&format!("HTTP/1.1 {status} ")),
        "{model}: {head:?} gave {text}"
    );
    assert!(
        text.contains("\r\nConnection: close\r\n"),
        "{model}: {head:?} gave {text}"
    );
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "{model}: {head:?}: the request behind was answered: {text}"
    );
}

#[test]
fn http_serve_rejects_two_content_lengths() {
    let tree = Tree::new();
    for model in MODELS {
        let server = tree.serve(model);
        for cls in [
            "0\r\nContent-Length: 5",
            "5\r\nContent-Length: 0",
            "0\r\nContent-Length: 0",
        ] {
            let head = format!("GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: {cls}");
            refused_and_closed(&server, &head, 400, model);
        }
    }
}

#[test]
fn http_serve_rejects_a_malformed_content_length() {
    let tree = Tree::new();
    for model in MODELS {
        let server = tree.serve(model);
        for cl in ["5x", "+5", "-1", "5, 5", "0x10", "99999999999999999999999"] {
            let head = format!("GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}");
            refused_and_closed(&server, &head, 400, model);
        }
    }
}

#[test]
fn http_serve_rejects_transfer_encoding_on_get() {
    let tree = Tree::new();
    for model in MODELS {
        let server = tree.serve(model);
        let get = "GET /hello.txt HTTP/1.1\r\nHost: x\r\n";
        // Chunked is understood but not decoded here: 501 (RFC 9112 §6.1).
        refused_and_closed(
            &server,
            &format!("{get}Transfer-Encoding: chunked"),
            501,
            model,
        );
        // No final chunked, or Content-Length beside it: the body's end is unknown, 400.
        // In HTTP/1.0, which has no transfer codings, the framing is faulty: 400 too.
        refused_and_closed(
            &server,
            "GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked",
            400,
            model,
        );
        for te in [
            "Transfer-Encoding: gzip",
            "Transfer-Encoding: chunked, gzip",
            "Transfer-Encoding: chunked\r\nContent-Length: 5",
            "Content-Length: 0\r\nTransfer-Encoding: chunked",
        ] {
            refused_and_closed(&server, &format!("{get}{te}"), 400, model);
        }
    }
}

#[test]
fn http_serve_never_redirects_to_an_authority() {
    let tmp = TempDir::new("http-redirect");
    let root = tmp.path("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    // A backslash is an ordinary name byte on Linux (clippy thinks it a separator).
    std::fs::create_dir_all(root.join(std::ffi::OsStr::new("\\evil"))).unwrap();
    for model in MODELS {
        let server = Server::start(&[
            "http",
            "serve",
            root.to_str().unwrap(),
            "127.0.0.1:0",
            "--model",
            model,
        ]);
        for (target, want) in [
            ("/sub", "/sub/"),
            ("//sub", "/sub/"),
            ("///sub?a=1", "/sub/?a=1"),
            ("/\\evil", "/%5Cevil/"),
            ("//\\evil", "/%5Cevil/"),
        ] {
            let text = exchange(
                &server,
                format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            );
            assert!(
                text.starts_with("HTTP/1.1 301 "),
                "{model}: {target}: {text}"
            );
            let location = text
                .lines()
                .find_map(|l| l.strip_prefix("Location: "))
                .unwrap_or_else(|| panic!("{model}: {target}: no Location in {text}"));
            assert_eq!(location, want, "{model}: {target}");
            // The redirect leads back to the directory.
            let text = exchange(
                &server,
                format!("GET {location} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            assert!(
                text.starts_with("HTTP/1.1 200 "),
                "{model}: {location}: {text}"
            );
        }
    }
}

/// Redirects to another host (`localhost`, `[::1]` on port `argv[1]`, which another copy
/// of this server holds), to the same host, and to other schemes; `/record` answers with
/// the credentials it was sent.
const REDIRECTOR: &str = r#"
import http.server, socket, socketserver, sys
other = int(sys.argv[1]) if len(sys.argv) > 1 else 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, code, body=b"", **hdrs):
        self.send_response(code)
        for k, v in hdrs.items(): self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        port = self.server.server_address[1]
        p = self.path
        if p == "/record":
            seen = "auth=%s cookie=%s\n" % (self.headers["Authorization"], self.headers["Cookie"])
            self.send(200, seen.encode())
        elif p == "/same": self.send(302, Location="/record")
        elif p == "/to-localhost": self.send(302, Location="http://localhost:%d/record" % port)
        elif p == "/to-v6": self.send(307, Location="http://[::1]:%d/record" % other)
        elif p.startswith("/to-scheme/"): self.send(302, Location=p[len("/to-scheme/"):])
        else: self.send(404, b"nope\n")
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET6 if other == 0 else socket.AF_INET
s = S(("::1" if other == 0 else "127.0.0.1", 0), H)
print(s.server_address[1])
s.serve_forever()
"#;

/// The 127.0.0.1 redirector (whose `/to-v6` goes to the `[::1]` one, also returned).
fn redirectors() -> (Py, Py) {
    let v6 = Py::start(REDIRECTOR, &[]);
    let v4 = Py::start(REDIRECTOR, &[&v6.port.to_string()]);
    (v4, v6)
}

const CREDENTIALS: [&str; 4] = ["-H", "Authorization: Bearer s3cret", "-H", "Cookie: id=42"];

#[test]
fn http_get_drops_credentials_on_a_cross_host_redirect() {
    let (v4, _v6) = redirectors();
    for path in ["/to-localhost", "/to-v6"] {
        let url = v4.url(path);
        let mut args = vec!["-L"];
        args.extend(CREDENTIALS);
        args.push(&url);
        assert_eq!(
            String::from_utf8_lossy(&ok_body(&args)),
            "auth=None cookie=None\n",
            "{path}"
        );
    }
    // The same scheme, host and port: they stay.
    let url = v4.url("/same");
    let mut args = vec!["-L"];
    args.extend(CREDENTIALS);
    args.push(&url);
    assert_eq!(
        String::from_utf8_lossy(&ok_body(&args)),
        "auth=Bearer s3cret cookie=id=42\n"
    );
}

#[test]
fn http_get_keeps_credentials_with_location_trusted() {
    let (v4, _v6) = redirectors();
    for path in ["/to-localhost", "/to-v6"] {
        let url = v4.url(path);
        let mut args = vec!["-L", "--location-trusted"];
        args.extend(CREDENTIALS);
        args.push(&url);
        assert_eq!(
            String::from_utf8_lossy(&ok_body(&args)),
            "auth=Bearer s3cret cookie=id=42\n",
            "{path}"
        );
    }
}

#[test]
fn http_get_refuses_a_redirect_to_another_scheme() {
    let (v4, _v6) = redirectors();
    for (target, scheme) in [
        ("javascript:alert(1)", "javascript"),
        ("data:text/html,hi", "data"),
        ("unix:/tmp/x.sock", "unix"),
        ("ftp://127.0.0.1/x", "ftp"),
        ("file:///etc/passwd", "file"),
    ] {
        let (code, err) = failure(&["-L", &v4.url(&format!("/to-scheme/{target}"))]);
        assert_eq!(code, 1, "{target}: {err}");
        assert!(
            err.contains("redirect") && err.contains(scheme),
            "{target}: {err}"
        );
    }
}

#[test]
fn http_get_tls_errors_are_one_sentence() {
    let dir = TempDir::new("http-tls-errors");
    let key = dir.path("key.pem");
    let key_s = key.to_str().unwrap();
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        key_s,
    ]);
    let leaf = "basicConstraints=critical,CA:FALSE";
    // name -> (extensions, expired)
    let certs: [(&str, &[&str], bool); 4] = [
        (
            "leaf",
            &["subjectAltName=DNS:localhost,IP:127.0.0.1", leaf],
            false,
        ),
        // openssl's default for a self-signed certificate: a CA.
        ("ca", &["subjectAltName=DNS:localhost,IP:127.0.0.1"], false),
        (
            "elsewhere",
            &["subjectAltName=DNS:example.com", leaf],
            false,
        ),
        (
            "expired",
            &["subjectAltName=DNS:localhost,IP:127.0.0.1", leaf],
            true,
        ),
    ];
    for (name, exts, expired) in certs {
        let out = dir.path(&format!("{name}.pem"));
        let out = out.to_str().unwrap();
        if expired {
            let csr = dir.path("expired.csr");
            let csr = csr.to_str().unwrap();
            let ext = dir.path("expired.ext");
            std::fs::write(&ext, exts.join("\n")).unwrap();
            openssl(&[
                "req",
                "-new",
                "-key",
                key_s,
                "-subj",
                "/CN=localhost",
                "-out",
                csr,
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                csr,
                "-signkey",
                key_s,
                "-days",
                "-1",
                "-extfile",
                ext.to_str().unwrap(),
                "-out",
                out,
            ]);
        } else {
            let mut args = vec![
                "req",
                "-x509",
                "-key",
                key_s,
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
            ];
            for e in exts {
                args.extend(["-addext", e]);
            }
            args.extend(["-out", out]);
            openssl(&args);
        }
    }
    let cert = |name: &str| dir.path(&format!("{name}.pem"));
    // (server certificate, trusted CA file, extra s_server flags, what the sentence says)
    let cases: [(&str, Option<&str>, &[&str], &str); 5] = [
        ("leaf", None, &[], "unknown issuer"),
        // Trusted through the leaf (same name, same key) rather than as itself: webpki
        // then finds a CA certificate where a server's should be.
        ("ca", Some("leaf"), &[], "not a server's"),
        ("elsewhere", Some("elsewhere"), &[], "name mismatch"),
        ("expired", Some("expired"), &[], "expired"),
        // No cipher suite in common: the server says handshake failure.
        (
            "leaf",
            Some("leaf"),
            &["-no_tls1_3", "-cipher", "AES128-SHA"],
            "handshake failure",
        ),
    ];
    for (served, trusted, extra, want) in cases {
        let (_server, port) = s_server_www(cert(served).to_str().unwrap(), key_s, extra);
        let url = format!("https://127.0.0.1:{port}/");
        let ca = trusted.map(|t| cert(t).to_str().unwrap().to_owned());
        let mut args = Vec::new();
        if let Some(ca) = &ca {
            args.extend(["--cacert", ca.as_str()]);
        }
        args.push(&url);
        let (code, err) = failure(&args);
        assert_eq!(code, 1, "{served}: {err}");
        assert!(err.contains(want), "{served}: {err:?} should say {want:?}");
        for raw in ["Other(", "OtherError", "{", "Context", "::"] {
            assert!(!err.contains(raw), "{served}: {err:?} has {raw:?}");
        }
    }
    // openssl's one-liner certificate (self-signed, CA:TRUE) listed in --cacert is trusted
    // as itself, as curl and Python trust it, though webpki alone refuses a CA as a server.
    let (_server, port) = s_server_www(cert("ca").to_str().unwrap(), key_s, &[]);
    let url = format!("https://127.0.0.1:{port}/");
    let page = ok_body(&["--cacert", cert("ca").to_str().unwrap(), &url]);
    assert!(
        String::from_utf8_lossy(&page).contains("s_server"),
        "{}",
        String::from_utf8_lossy(&page)
    );
}

/// How a trickling client's connection ended.
#[derive(Debug)]
struct Trickled {
    /// From the first byte of the head to the server's close.
    took: std::time::Duration,
    /// What the server sent before closing (a 408, or nothing).
    got: Vec<u8>,
}

/// Sends a request line, then one header byte every 200 ms, never finishing the head,
/// until the server closes the connection; `None` if it has not within `limit`. Every
/// byte resets an idle timer, so only a deadline on the head as a whole ends this.
fn trickle(addr: &str, limit: std::time::Duration) -> Option<Trickled> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let started = std::time::Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut header = b"X-Slow: ".iter().chain(std::iter::repeat(&b'a'));
    while started.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => {
                return Some(Trickled {
                    took: started.elapsed(),
                    got,
                });
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            // Reset: closed with the rest of the head unread.
            Err(_) => {
                return Some(Trickled {
                    took: started.elapsed(),
                    got,
                });
            }
        }
        if got.is_empty() && s.write_all(&[*header.next().unwrap()]).is_err() {
            return Some(Trickled {
                took: started.elapsed(),
                got,
            });
        }
    }
    None
}

/// Asks for `/hello.txt` once; whether it was answered.
fn served(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    s.set_read_timeout(Some(WAIT)).unwrap();
    let _ = s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got.starts_with(b"HTTP/1.1 200 ") && got.ends_with(b"hello\n")
}

#[test]
fn http_serve_cuts_a_request_head_that_trickles_past_the_header_timeout() {
    let tmp = TempDir::new("http-trickle");
    std::fs::write(tmp.path("hello.txt"), "hello\n").unwrap();
    let root = tmp.0.to_str().unwrap().to_owned();
    for model in MODELS {
        let server = Server::start(&[
            "http",
            "serve",
            &root,
            "127.0.0.1:0",
            "-q",
            "--model",
            model,
            "--header-timeout",
            "1s",
            "--idle-timeout",
            "5s",
        ]);
        let addr = server.addr();
        let slow = {
            let addr = addr.clone();
            std::thread::spawn(move || trickle(&addr, std::time::Duration::from_secs(4)))
        };
        if *model != "blocking" {
            // Served meanwhile: the slow head holds its own connection only.
            std::thread::sleep(std::time::Duration::from_millis(400));
            assert!(served(&addr), "{model}: a normal client was not served");
        }
        let cut = slow.join().unwrap();
        let Some(Trickled { took, got }) = cut else {
            panic!("{model}: a head trickling for 4s was never cut");
        };
        assert!(
            took >= std::time::Duration::from_millis(900)
                && took <= std::time::Duration::from_millis(2500),
            "{model}: cut after {took:?}"
        );
        let text = String::from_utf8_lossy(&got);
        assert!(
            got.is_empty()
                || (text.starts_with("HTTP/1.1 408 ")
                    && text.contains("\r\nConnection: close\r\n")),
            "{model}: answered {text}"
        );
        if *model == "blocking" {
            assert!(served(&addr), "{model}: not served after the cut");
        }
        assert!(server.stop().0.success(), "{model}");
    }
}

#[test]
fn slow_heads_cannot_fill_max_conns() {
    let tmp = TempDir::new("http-slow-full");
    std::fs::write(tmp.path("hello.txt"), "hello\n").unwrap();
    let root = tmp.0.to_str().unwrap().to_owned();
    for model in MODELS.iter().filter(|m| **m != "blocking") {
        let server = Server::start(&[
            "http",
            "serve",
            &root,
            "127.0.0.1:0",
            "-q",
            "--model",
            model,
            "--max-conns",
            "4",
            "--header-timeout",
            "1s",
            "--idle-timeout",
            "30s",
        ]);
        let addr = server.addr();
        let slow: Vec<_> = (0..4)
            .map(|_| {
                let addr = addr.clone();
                std::thread::spawn(move || trickle(&addr, std::time::Duration::from_secs(5)))
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(
            !served(&addr),
            "{model}: a fifth client was served while four were slow"
        );
        let started = std::time::Instant::now();
        while !served(&addr) {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(4),
                "{model}: four slow heads held the server full"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        for t in slow {
            assert!(
                t.join().unwrap().is_some(),
                "{model}: a slow head was never cut"
            );
        }
        assert!(server.stop().0.success(), "{model}");
    }
}

/// `curl -s -i`: the status, the response head (lines, CRLF stripped) and the body.
fn curl_i(args: &[&str]) -> (u16, String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-i", "-m", "20"])
        .args(args)
        .output()
        .expect("run curl (apt-get install curl)");
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head from curl {args:?}: {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.replace('\r', ""), raw[split + 4..].to_vec())
}

/// The value of header `name` (case-insensitive) in a head from [`curl_i`].
fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Serves `root` with `extra` arguments under `model`.
fn serve_with(root: &str, model: &str, extra: &[&str]) -> Server {
    let mut args = vec!["http", "serve", root, "127.0.0.1:0", "--model", model];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Reads log lines until one contains `needle` (bounded by `WAIT` per line).
fn log_line_with(server: &Server, needle: &str) -> String {
    loop {
        let line = server
            .next_line()
            .unwrap_or_else(|| panic!("no log line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

/// `--auth user:password`: curl -u right gets the file, wrong and missing credentials get
/// 401 with `WWW-Authenticate: Basic realm="sockit"`, the failure is logged with the user
/// name escaped; under several models.
#[test]
fn http_serve_auth_with_curl_user() {
    let tree = Tree::new();
    for model in ["epoll", "threads", "async"] {
        let server = serve_with(
            &tree.root(),
            model,
            &["--auth", "alice:open sesame", "--auth", "bob:b:c"],
        );
        let url = format!("{}/hello.txt", base(&server));
        let (code, body) = curl(&["-u", "alice:open sesame", &url]);
        assert_eq!((code, &body[..]), (200, &b"hello, world\n"[..]), "{model}");
        assert_eq!(curl(&["-u", "bob:b:c", &url]).0, 200, "{model}");
        for creds in [
            &["-u", "alice:open sesamE"][..],
            &["-u", "bob:alice"],
            &["-u", "nobody:open sesame"],
            &[],
            &["-H", "Authorization: Basic !!!"],
        ] {
            let mut args = creds.to_vec();
            args.push(&url);
            let (code, head, body) = curl_i(&args);
            assert_eq!(code, 401, "{model} {creds:?}");
            assert_eq!(
                header_of(&head, "WWW-Authenticate"),
                Some("Basic realm=\"sockit\", charset=\"UTF-8\""),
                "{model} {creds:?}"
            );
            assert!(!contains(&body, b"hello"), "{model}");
        }
        // A HEAD is refused too, and the directory listing as well.
        assert_eq!(curl(&["-I", &url]).0, 401, "{model}");
        assert_eq!(curl(&[&format!("{}/", base(&server))]).0, 401, "{model}");
        // The user who failed is named in the log, escaped for the terminal.
        let (code, _) = curl(&["-u", "ev\x1b[2Jil:x", &url]);
        assert_eq!(code, 401);
        let line = log_line_with(&server, "auth failed for user \"ev");
        assert!(
            line.contains("401") && line.contains("\"ev\\x1b[2Jil\""),
            "{model}: {line}"
        );
        assert!(server.stop().0.success(), "{model}");
    }
}

/// `--auth-file` with an argon2id hash made by Python's argon2-cffi and a bcrypt hash made
/// by Python's bcrypt, over tls:// with curl --cacert as well as plain.
#[test]
fn http_serve_auth_file_with_argon2_and_bcrypt_over_tls() {
    let tree = Tree::new();
    let hashes = Command::new("python3")
        .args([
            "-c",
            "import argon2, bcrypt\n\
             print('ar:' + argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash('pw-argon'))\n\
             print('bc:' + bcrypt.hashpw(b'pw-bcrypt', bcrypt.gensalt(6)).decode())",
        ])
        .output()
        .expect("python3 with argon2-cffi and bcrypt (test.sh installs them)");
    assert!(
        hashes.status.success(),
        "{}",
        String::from_utf8_lossy(&hashes.stderr)
    );
    let file = tree.tmp.path("users.txt");
    let mut text = b"# made by argon2-cffi and bcrypt\n".to_vec();
    text.extend_from_slice(&hashes.stdout);
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap();
    let certs = TempDir::new("http-auth-tls");
    let (cert, key) = crate::util::openssl_cert(&certs, "localhost");
    for tls in [false, true] {
        let server = if tls {
            Server::start(&[
                "http",
                "serve",
                &tree.root(),
                "tls://127.0.0.1:0",
                "--model",
                "epoll",
                "--cert",
                &cert,
                "--key",
                &key,
                "--auth-file",
                file,
            ])
        } else {
            serve_with(&tree.root(), "threads", &["--auth-file", file])
        };
        let url = if tls {
            format!("https://127.0.0.1:{}/hello.txt", server.port())
        } else {
            format!("{}/hello.txt", base(&server))
        };
        let with = |creds: &str| curl(&["--cacert", &cert, "-u", creds, &url]);
        assert_eq!(with("ar:pw-argon"), (200, b"hello, world\n".to_vec()));
        assert_eq!(with("bc:pw-bcrypt").0, 200, "tls {tls}");
        assert_eq!(with("ar:pw-bcrypt").0, 401, "tls {tls}");
        assert_eq!(with("bc:pw-argon").0, 401, "tls {tls}");
        assert_eq!(with("zz:pw-argon").0, 401, "tls {tls}");
        assert_eq!(curl(&["--cacert", &cert, &url]).0, 401, "tls {tls}");
        // Keep-alive: the second request on the connection rides on the first one's check.
        let (code, body) = curl(&["--cacert", &cert, "-u", "ar:pw-argon", &url, &url]);
        assert_eq!(code, 200);
        // curl writes the first status after the first body (-w runs per URL).
        assert_eq!(body, b"hello, world\n\n200hello, world\n");
    }
    // A file with a hash of another kind is a usage error, before anything is bound.
    std::fs::write(tree.tmp.path("bad.txt"), "u:$1$abc$def\n").unwrap();
    let out = crate::util::sockit()
        .args(["http", "serve", &tree.root(), "127.0.0.1:0", "--auth-file"])
        .arg(tree.tmp.path("bad.txt"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 1") && err.contains("neither argon2"),
        "{err}"
    );
}

/// `--header`, `--cache-control` and `--cors`: added where they belong (responses below
/// 400), the OPTIONS preflight answered 204, bad headers refused before binding.
#[test]
fn http_serve_headers_cache_control_and_cors() {
    let tree = Tree::new();
    for model in ["epoll", "blocking"] {
        let server = serve_with(
            &tree.root(),
            model,
            &[
                "--header",
                "X-Content-Type-Options: nosniff",
                "--header",
                "X-Frame-Options:DENY",
                "--cache-control",
                "public, max-age=60",
                "--cors",
            ],
        );
        let b = base(&server);
        let (code, head, body) = curl_i(&[&format!("{b}/hello.txt")]);
        assert_eq!((code, &body[..]), (200, &b"hello, world\n"[..]), "{model}");
        for (n, v) in [
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Cache-Control", "public, max-age=60"),
            ("Access-Control-Allow-Origin", "*"),
        ] {
            assert_eq!(header_of(&head, n), Some(v), "{model}: {head}");
        }
        // 404: CORS still, the cache headers not.
        let (code, head, _) = curl_i(&[&format!("{b}/nope")]);
        assert_eq!(code, 404);
        assert_eq!(header_of(&head, "Cache-Control"), None, "{head}");
        assert_eq!(header_of(&head, "Access-Control-Allow-Origin"), Some("*"));
        // The preflight a browser sends before a cross-origin GET with a Range header.
        let (code, head, body) = curl_i(&[
            "-X",
            "OPTIONS",
            "-H",
            "Origin: http://example.test",
            "-H",
            "Access-Control-Request-Method: GET",
            "-H",
            "Access-Control-Request-Headers: range",
            &format!("{b}/hello.txt"),
        ]);
        assert_eq!(code, 204, "{model}: {head}");
        assert!(body.is_empty());
        assert_eq!(header_of(&head, "Content-Length"), None, "{head}");
        assert_eq!(
            header_of(&head, "Access-Control-Allow-Methods"),
            Some("GET, HEAD, OPTIONS")
        );
        assert_eq!(
            header_of(&head, "Access-Control-Allow-Headers"),
            Some("range")
        );
        assert_eq!(header_of(&head, "Access-Control-Allow-Origin"), Some("*"));
        // The connection goes on after the 204: a second request on it is answered.
        let (code, body) = curl(&[
            "-X",
            "OPTIONS",
            &format!("{b}/hello.txt"),
            "-X",
            "GET",
            &format!("{b}/hello.txt"),
        ]);
        assert_eq!(code, 200, "{model}");
        assert!(body.ends_with(b"hello, world\n"), "{model}");
        assert!(server.stop().0.success(), "{model}");
    }
    // Without --cors, OPTIONS is still 501.
    let server = serve_with(&tree.root(), "epoll", &[]);
    let (code, head, _) = curl_i(&["-X", "OPTIONS", &format!("{}/", base(&server))]);
    assert_eq!(code, 501);
    assert_eq!(header_of(&head, "Access-Control-Allow-Origin"), None);
    for bad in [
        &["--header", "X-A: b\r\nSet-Cookie: x"][..],
        &["--header", "Bad Name: x"],
        &["--header", "Content-Length: 5"],
        &["--cache-control", "a\nb"],
        &["--auth", "nopassword"],
    ] {
        let out = crate::util::sockit()
            .args(["http", "serve", &tree.root(), "127.0.0.1:0"])
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// Runs `cmd args` with `input` on stdin and returns its stdout, which must succeed: the
/// decompressors (`brotli -d`, `zstd -d`, `gzip -d`) nobody here wrote.
fn filter(cmd: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::process::Stdio;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {cmd} (test.sh installs it): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The identity bytes of a body in `coding`, decoded by that coding's own tool.
fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    match coding {
        "br" => filter("brotli", &["-d", "-c"], body),
        "zstd" => filter("zstd", &["-d", "-c", "-q"], body),
        "gzip" => filter("gzip", &["-d", "-c"], body),
        other => panic!("no decoder for {other}"),
    }
}

/// Text that compresses, `len` bytes of numbered lines.
fn text(len: usize) -> Vec<u8> {
    let mut t = Vec::with_capacity(len + 64);
    let mut i = 0;
    while t.len() < len {
        t.extend_from_slice(format!("line {i}: the quick brown fox jumps over it\n").as_bytes());
        i += 1;
    }
    t.truncate(len);
    t
}

/// A tree of compressible and incompressible files, and precompressed siblings made by
/// the `brotli` and `gzip` tools.
struct Web {
    tmp: TempDir,
    app: Vec<u8>,
    big: Vec<u8>,
}

impl Web {
    fn new() -> Web {
        let tmp = TempDir::new("http-compress");
        let root = tmp.path("root");
        std::fs::create_dir_all(&root).unwrap();
        let app = text(100 << 10);
        let big = text(3 << 20);
        std::fs::write(root.join("app.js"), &app).unwrap();
        std::fs::write(root.join("big.txt"), &big).unwrap();
        std::fs::write(root.join("small.css"), "p { color: red }\n").unwrap();
        std::fs::write(root.join("pic.png"), crate::util::payload(20 << 10, 3)).unwrap();
        std::fs::write(root.join("pre.js"), &app).unwrap();
        std::fs::write(
            root.join("pre.js.br"),
            filter("brotli", &["-c", "-q", "11"], &app),
        )
        .unwrap();
        std::fs::write(root.join("pre.js.gz"), filter("gzip", &["-c", "-9"], &app)).unwrap();
        Web { tmp, app, big }
    }

    fn root(&self) -> String {
        self.tmp.path("root").to_str().unwrap().to_owned()
    }
}

/// Compression end to end: each of br, zstd and gzip asked for with curl and decoded by
/// its own tool byte for byte, q-values, Vary, ETags per encoding and If-None-Match,
/// precompressed siblings sent byte-exact, no compression for ranges, images or small
/// files, HEAD, and a 3 MiB file streamed in chunks (and close-delimited on HTTP/1.0);
/// under several models.
#[test]
fn http_serve_compresses_as_accept_encoding_asks() {
    let web = Web::new();
    for model in ["epoll", "threads", "async"] {
        let server = serve_with(&web.root(), model, &[]);
        let b = base(&server);
        let ae = |v: &str| format!("Accept-Encoding: {v}");
        let app = format!("{b}/app.js");
        let mut etags = Vec::new();
        for coding in ["br", "zstd", "gzip"] {
            let (code, head, body) = curl_i(&["-H", &ae(coding), &app]);
            assert_eq!(code, 200, "{model} {coding}");
            assert_eq!(header_of(&head, "Content-Encoding"), Some(coding), "{head}");
            assert_eq!(header_of(&head, "Vary"), Some("Accept-Encoding"), "{head}");
            assert_eq!(
                header_of(&head, "Content-Length"),
                Some(body.len().to_string().as_str())
            );
            assert!(body.len() < web.app.len() / 4, "{model} {coding}");
            assert!(decode(coding, &body) == web.app, "{model} {coding} differs");
            let etag = header_of(&head, "ETag").unwrap().to_owned();
            assert!(etag.ends_with(&format!("-{coding}\"")), "{etag}");
            // If-None-Match is per encoding: this tag is current for this coding only.
            let inm = format!("If-None-Match: {etag}");
            let (code, head, _) = curl_i(&["-H", &ae(coding), "-H", &inm, &app]);
            assert_eq!(code, 304, "{model} {coding}");
            assert_eq!(header_of(&head, "Vary"), Some("Accept-Encoding"));
            assert_eq!(curl(&["-H", &inm, &app]).0, 200, "{model} {coding}");
            etags.push(etag);
        }
        // The identity has its own tag too.
        let (code, head, body) = curl_i(&[&app]);
        assert_eq!(code, 200);
        assert_eq!(header_of(&head, "Content-Encoding"), None);
        assert_eq!(header_of(&head, "Vary"), Some("Accept-Encoding"));
        assert!(body == web.app);
        etags.push(header_of(&head, "ETag").unwrap().to_owned());
        etags.sort();
        etags.dedup();
        assert_eq!(etags.len(), 4, "{etags:?}");
        // q-values: refused codings are never sent, the best weight wins.
        for (accept, expect) in [
            ("gzip;q=0, br", Some("br")),
            ("br;q=0.2, zstd;q=0.9, gzip;q=0.5", Some("zstd")),
            ("br;q=0, zstd;q=0, *;q=0.1", Some("gzip")),
            ("gzip;q=0.5, identity", None),
            ("identity", None),
            ("*;q=0", None),
        ] {
            let (code, head, body) = curl_i(&["-H", &ae(accept), &app]);
            assert_eq!(code, 200, "{accept}");
            assert_eq!(header_of(&head, "Content-Encoding"), expect, "{accept}");
            match expect {
                Some(c) => assert!(decode(c, &body) == web.app, "{accept}"),
                None => assert!(body == web.app, "{accept}"),
            }
        }
        // curl's own negotiation and decoding.
        let (code, body) = curl(&["--compressed", &app]);
        assert_eq!(code, 200);
        assert!(body == web.app, "{model}: curl --compressed");
        // Precompressed siblings: sent as they are on disk.
        let pre = format!("{b}/pre.js");
        for (coding, file) in [("br", "pre.js.br"), ("gzip", "pre.js.gz")] {
            let (code, head, body) = curl_i(&["-H", &ae(coding), &pre]);
            assert_eq!(code, 200);
            assert_eq!(header_of(&head, "Content-Encoding"), Some(coding));
            assert_eq!(
                header_of(&head, "Content-Type"),
                header_of(&curl_i(&[&app]).1, "Content-Type")
            );
            let on_disk = std::fs::read(web.tmp.path("root").join(file)).unwrap();
            assert!(body == on_disk, "{model}: {file} not byte-exact");
        }
        // No coding for a range, an image or a file under 1 KiB.
        let (code, head, body) = curl_i(&["-H", &ae("br, gzip"), "-r", "0-9", &app]);
        assert_eq!((code, &body[..]), (206, &web.app[..10]), "{model}");
        assert_eq!(header_of(&head, "Content-Encoding"), None);
        for path in ["/pic.png", "/small.css"] {
            let (code, head, _) = curl_i(&["-H", &ae("br, gzip, zstd"), &format!("{b}{path}")]);
            assert_eq!(code, 200);
            assert_eq!(header_of(&head, "Content-Encoding"), None, "{path}");
        }
        assert_eq!(
            header_of(&curl_i(&[&format!("{b}/pic.png")]).1, "Vary"),
            None,
            "an image never varies"
        );
        // HEAD: the GET's head, no body.
        let (_, head, body) = curl_i(&["-I", "-H", &ae("gzip"), &app]);
        let (_, _, got) = curl_i(&["-H", &ae("gzip"), &app]);
        assert!(body.is_empty());
        assert_eq!(
            header_of(&head, "Content-Length"),
            Some(got.len().to_string().as_str())
        );
        // 3 MiB: streamed in chunks, then the connection goes on (the next URL rides it).
        let big = format!("{b}/big.txt");
        for coding in ["br", "zstd", "gzip"] {
            let (code, head, body) = curl_i(&["--raw", "-H", &ae(coding), &big]);
            assert_eq!(code, 200, "{model} {coding}");
            assert_eq!(header_of(&head, "Transfer-Encoding"), Some("chunked"));
            assert_eq!(header_of(&head, "Content-Length"), None);
            let body = dechunk(&body);
            assert!(
                decode(coding, &body) == web.big,
                "{model} {coding}: big differs"
            );
        }
        let (code, body) = curl(&["--compressed", &big, &format!("{b}/small.css")]);
        assert_eq!(code, 200);
        let mut want = web.big.clone();
        want.extend_from_slice(b"\n200p { color: red }\n");
        assert!(body == want, "{model}: keep-alive after a stream");
        // HTTP/1.0: no chunks, the body ends with the connection.
        let (code, head, body) = curl_i(&["-0", "-H", &ae("gzip"), &big]);
        assert_eq!(code, 200);
        assert_eq!(header_of(&head, "Transfer-Encoding"), None);
        assert_eq!(header_of(&head, "Connection"), Some("close"));
        assert!(decode("gzip", &body) == web.big, "{model}: HTTP/1.0 stream");
        let (_, head, body) = curl_i(&["-I", "-H", &ae("br"), &big]);
        assert!(body.is_empty());
        assert_eq!(header_of(&head, "Transfer-Encoding"), Some("chunked"));
        assert!(server.stop().0.success(), "{model}");
    }
    // --no-compress: never.
    let server = serve_with(&web.root(), "epoll", &["--no-compress"]);
    let (_, head, body) = curl_i(&[
        "-H",
        "Accept-Encoding: br",
        &format!("{}/app.js", base(&server)),
    ]);
    assert_eq!(header_of(&head, "Content-Encoding"), None);
    assert!(body == web.app);
}

/// Over tls://: compressed bodies (at once and streamed) go through the TLS layer; curl
/// trusts the server by --cacert.
#[test]
fn http_serve_compresses_over_tls() {
    let web = Web::new();
    let certs = TempDir::new("http-compress-tls");
    let (cert, key) = crate::util::openssl_cert(&certs, "localhost");
    for model in ["epoll", "threads"] {
        let server = Server::start(&[
            "http",
            "serve",
            &web.root(),
            "tls://127.0.0.1:0",
            "--model",
            model,
            "--cert",
            &cert,
            "--key",
            &key,
        ]);
        let b = format!("https://127.0.0.1:{}", server.port());
        for (path, want) in [("/app.js", &web.app), ("/big.txt", &web.big)] {
            for coding in ["br", "zstd", "gzip"] {
                let (code, head, body) = curl_i(&[
                    "--cacert",
                    &cert,
                    "--raw",
                    "-H",
                    &format!("Accept-Encoding: {coding}"),
                    &format!("{b}{path}"),
                ]);
                assert_eq!(code, 200, "{model} {path} {coding}");
                assert_eq!(header_of(&head, "Content-Encoding"), Some(coding));
                let body = if header_of(&head, "Transfer-Encoding").is_some() {
                    dechunk(&body)
                } else {
                    body
                };
                assert!(decode(coding, &body) == *want, "{model} {path} {coding}");
            }
        }
        assert!(server.stop().0.success(), "{model}");
    }
}

/// A chunked body (from `curl --raw`) decoded, checking its framing on the way.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..nl]).unwrap(), 16)
            .expect("hex chunk size");
        raw = &raw[nl + 2..];
        if size == 0 {
            assert_eq!(raw, b"\r\n", "the body ends after the last chunk");
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        assert_eq!(&raw[size..size + 2], b"\r\n");
        raw = &raw[size + 2..];
    }
}

/// The listing people use: sizes and times, sorted by each column both ways, breadcrumbs
/// and a parent link, a viewport and no script, JSON by `?format=json` or `Accept`, and
/// dotfiles neither listed nor served unless `--hidden`; under two models.
#[test]
fn http_serve_listing_sorts_answers_json_and_hides_dotfiles() {
    let tmp = TempDir::new("http-listing");
    let root = tmp.path("root");
    std::fs::create_dir_all(root.join("d <1>/.git")).unwrap();
    std::fs::write(root.join("d <1>/small"), "x").unwrap();
    std::fs::write(root.join("d <1>/big"), vec![b'a'; 3 << 20]).unwrap();
    std::fs::write(root.join("d <1>/mid&"), vec![b'a'; 1536]).unwrap();
    std::fs::write(root.join("d <1>/.env"), "SECRET=1\n").unwrap();
    std::fs::write(root.join("d <1>/.git/config"), "[core]\n").unwrap();
    // Times apart, so that sorting by time has one answer: small oldest, big newest.
    for (name, secs) in [
        ("small", 1_000_000),
        ("mid&", 2_000_000),
        ("big", 3_000_000),
    ] {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        std::fs::File::options()
            .write(true)
            .open(root.join("d <1>").join(name))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    let root = root.to_str().unwrap().to_owned();
    for model in ["epoll", "threads"] {
        let server = serve_with(&root, model, &[]);
        let dir = format!("{}/d%20%3C1%3E/", base(&server));
        let order = |query: &str| {
            let (code, body) = curl(&[&format!("{dir}{query}")]);
            assert_eq!(code, 200, "{model} {query}");
            let html = String::from_utf8(body).unwrap();
            let pos = |n: &str| html.find(&format!("href=\"{n}\"")).unwrap_or(usize::MAX);
            let mut names = ["small", "big", "mid%26"];
            names.sort_by_key(|n| pos(n));
            (names.join(","), html)
        };
        let (names, html) = order("");
        assert_eq!(names, "big,mid%26,small", "{model}");
        assert!(html.contains("name=\"viewport\""), "{html}");
        assert!(!html.contains("<script"));
        assert!(html.contains("<a href=\"../\">../</a>"));
        assert!(
            html.contains("<a href=\"/d%20%3C1%3E/\">d &lt;1&gt;</a>/"),
            "{html}"
        );
        assert!(
            html.contains(">mid&amp;</a>") && html.contains("1.5 KiB"),
            "{html}"
        );
        assert!(html.contains("3.0 MiB") && html.contains("1 B"), "{html}");
        assert!(html.contains("Mon, 12 Jan 1970 13:46:40 GMT"), "{html}");
        assert!(!html.contains(".env") && !html.contains(".git"), "{html}");
        assert_eq!(order("?sort=name&order=desc").0, "small,mid%26,big");
        assert_eq!(order("?sort=size").0, "small,mid%26,big");
        assert_eq!(order("?sort=size&order=desc").0, "big,mid%26,small");
        assert_eq!(order("?sort=mtime").0, "small,mid%26,big");
        assert_eq!(order("?sort=mtime&order=desc").0, "big,mid%26,small");
        // JSON, by query or by Accept, parsed by Python's json.
        for args in [
            vec![format!("{dir}?format=json&sort=size")],
            vec![
                "-H".into(),
                "Accept: application/json".into(),
                format!("{dir}?sort=size"),
            ],
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, head, body) = curl_i(&args);
            assert_eq!(code, 200);
            assert_eq!(header_of(&head, "Content-Type"), Some("application/json"));
            let summary = filter(
                "python3",
                &[
                    "-c",
                    "import json,sys; d=json.load(sys.stdin); print(d['path'], \
                     [(e['name'], e['type'], e['size'], e['mtime']) for e in d['entries']])",
                ],
                &body,
            );
            assert_eq!(
                String::from_utf8(summary).unwrap(),
                "/d <1>/ [('small', 'file', 1, 1000000), ('mid&', 'file', 1536, 2000000), \
                 ('big', 'file', 3145728, 3000000)]\n",
                "{model}"
            );
        }
        // Dotfiles are not served either, at any depth, however the name is encoded.
        for path in [".env", "%2eenv", ".git/config", ".git/"] {
            assert_eq!(curl(&[&format!("{dir}{path}")]).0, 404, "{model} {path}");
        }
        assert!(server.stop().0.success(), "{model}");
    }
    let server = serve_with(&root, "epoll", &["--hidden"]);
    let dir = format!("{}/d%20%3C1%3E/", base(&server));
    let (_, body) = curl(&[&dir]);
    let html = String::from_utf8(body).unwrap();
    assert!(
        html.contains("href=\".env\"") && html.contains("href=\".git/\""),
        "{html}"
    );
    assert_eq!(
        curl(&[&format!("{dir}.env")]),
        (200, b"SECRET=1\n".to_vec())
    );
    assert_eq!(curl(&[&format!("{dir}.git/config")]).0, 200);
}
