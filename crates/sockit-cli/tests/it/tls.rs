//! `tls://` addresses: `connect` and `listen` over TLS against peers nobody here wrote
//! (`openssl s_server`, `openssl s_client`, Python's `ssl`), and the commands that cannot
//! speak TLS yet refusing it (never plain text in its place).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{
    Proc, TempDir, WAIT, assert_exit_0, assert_fails_with, contains, payload, sockit,
};

#[test]
fn tls_addresses_are_refused_by_commands_that_cannot_speak_tls_yet() {
    let cases: [(&[&str], &str); 1] = [(&["bench", "chat", "tls://127.0.0.1:1"], "bench chat")];
    for (args, name) in cases {
        let out = sockit().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(
            err.trim_end(),
            format!("sockit: tls:// is not supported by `sockit {name}` yet"),
            "{args:?}"
        );
    }
}

/// openssl's one-liner self-signed certificate for localhost, and its key, in `dir`.
fn openssl_cert(dir: &TempDir) -> (String, String) {
    crate::util::openssl_cert(dir, "localhost")
}

/// `sha256:<hex>` of a PEM certificate, computed by openssl.
fn openssl_fingerprint(cert: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in", cert])
        .output()
        .expect("run openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.trim().rsplit('=').next().unwrap().replace(':', "");
    format!("sha256:{}", hex.to_lowercase())
}

/// `sockit connect FLAGS... ADDR` sending an HTTP/1.0 request, as s_server -www wants.
fn get(addr: &str, flags: &[&str]) -> Proc {
    let mut args = vec!["connect"];
    args.extend_from_slice(flags);
    args.push(addr);
    let mut p = Proc::sockit(&args);
    p.feed(b"GET / HTTP/1.0\r\n\r\n".to_vec());
    p
}

#[test]
fn connect_tls_trusts_openssl_s_server_by_cacert_pin_or_insecure() {
    let dir = TempDir::new("tls-s-server");
    let (cert, key) = openssl_cert(&dir);
    let (_server, port) = crate::util::s_server_www(&cert, &key, &[]);
    let ip = format!("tls://127.0.0.1:{port}");
    let name = format!("tls://localhost:{port}");
    let pin = openssl_fingerprint(&cert);

    // --cacert with the self-signed certificate itself, by IP and by name.
    for addr in [&ip, &name] {
        let mut p = get(addr, &["--cacert", &cert]);
        p.wait_stdout_contains("s_server");
        p.close_stdin();
        assert_exit_0(&mut p);
        assert!(String::from_utf8_lossy(&p.stdout()).starts_with("HTTP/1.0 200 ok"));
    }
    // --pin: exactly that certificate.
    let mut p = get(&ip, &["--pin", &pin]);
    p.wait_stdout_contains("s_server");
    p.close_stdin();
    assert_exit_0(&mut p);
    // -k: no check, and a warning says so.
    let mut p = get(&ip, &["-k"]);
    p.wait_stdout_contains("s_server");
    p.close_stdin();
    assert_exit_0(&mut p);
    assert!(p.stderr().contains("warning: --insecure"), "{}", p.stderr());

    // Refusals: one line, exit 1, saying why; nothing of the server printed.
    let wrong_pin = format!("sha256:{}", "00".repeat(32));
    let mut p = get(&ip, &["--pin", &wrong_pin]);
    assert_fails_with(&mut p, &format!("pin mismatch: it is {pin}"));
    assert!(p.stdout().is_empty());
    let mut p = get(&ip, &["--cacert", &cert, "--servername", "example.com"]);
    assert_fails_with(&mut p, "name mismatch");
    // Trusting another self-signed certificate is not trusting this one, and that is
    // what is said, not webpki's first objection (that it is a CA's certificate).
    let other_dir = TempDir::new("tls-s-server-other");
    let (other, _) = crate::util::openssl_cert(&other_dir, "someone-else");
    let mut p = get(&ip, &["--cacert", &other]);
    assert_fails_with(&mut p, "unknown issuer");
    // The system's roots do not know it either (what they say depends on the machine's
    // store: one may hold another root named CN=localhost).
    let mut p = get(&ip, &[]);
    assert_fails_with(&mut p, "the server's certificate");
}

#[test]
fn connect_tls_handshake_has_a_deadline() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("tls://{}", silent.local_addr().unwrap());
    let started = Instant::now();
    let mut p = Proc::sockit(&["connect", "-k", "--timeout", "300ms", &addr]);
    let status = p.wait_exit(WAIT);
    assert_eq!(status.code(), Some(1), "{}", p.stderr());
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = p.stderr();
    let last = err.trim_end().lines().last().unwrap();
    assert!(
        last.contains("TLS handshake") && last.contains("timed out after 300ms"),
        "{err}"
    );
}

#[test]
fn connect_tls_bad_usage_is_exit_2() {
    for args in [
        &["connect", "--pin", "sha256:abc", "tls://127.0.0.1:1"][..],
        &["connect", "--cacert", "x.pem", "127.0.0.1:1"],
        &[
            "connect",
            "-k",
            "--pin",
            &format!("sha256:{}", "00".repeat(32)),
            "tls://127.0.0.1:1",
        ],
        &["listen", "--cert", "c.pem", "tls://127.0.0.1:0"],
        &["listen", "--cert", "c.pem", "--key", "k.pem", "127.0.0.1:0"],
    ] {
        let out = sockit().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn listen_tls_refuses_a_key_that_does_not_match_the_certificate_before_binding() {
    let dir = TempDir::new("tls-mismatch");
    let (cert, _) = openssl_cert(&dir);
    let other = TempDir::new("tls-mismatch-other");
    let (_, key) = openssl_cert(&other);
    let out = sockit()
        .args([
            "listen",
            "--cert",
            &cert,
            "--key",
            &key,
            "tls://127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("does not go with the certificate"), "{err}");
    assert!(!err.contains("listening on"), "{err}");
}

#[test]
fn listen_tls_against_openssl_s_client_with_cert_and_key() {
    let dir = TempDir::new("tls-s-client");
    let (cert, key) = openssl_cert(&dir);
    let mut listen = Proc::sockit(&[
        "listen",
        "--cert",
        &cert,
        "--key",
        &key,
        "tls://127.0.0.1:0",
    ]);
    let addr = listen.listening_on();
    let port = addr.rsplit(':').next().unwrap();
    // No fingerprint line: the certificate is the user's own.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(listen.stderr().lines().count(), 1, "{}", listen.stderr());
    // -quiet keeps s_client's stdin EOF from ending it: it runs until sockit's close_notify.
    let mut client = Proc::spawn({
        let mut c = Command::new("openssl");
        c.args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-CAfile", &cert, "-verify_return_error"]);
        c
    });
    client.write(b"from s_client\n");
    listen.wait_stdout_contains("from s_client\n");
    listen.feed_and_close(b"from sockit\n".to_vec());
    client.wait_stdout_contains("from sockit\n");
    assert_exit_0(&mut client);
    assert_exit_0(&mut listen);
    assert_eq!(listen.stdout(), b"from s_client\n");
    assert_eq!(client.stdout(), b"from sockit\n");
}

/// A Python `ssl` client: checks the server certificate's fingerprint against argv[2],
/// reads everything until sockit's close_notify (recv gives b'' only for one: a socket
/// closed without it raises), then sends argv[3] bytes of its own over the half-closed
/// connection and closes with its own close_notify (unwrap).
const PY_TLS_CLIENT: &str = r#"
import hashlib, socket, ssl, sys
port, pin, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
raw = socket.create_connection(('127.0.0.1', port), timeout=20)
s = ctx.wrap_socket(raw, server_hostname='localhost')
got = 'sha256:' + hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()
assert got == pin, (got, pin)
data = b''
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
sys.stdout.write('%d %s\n' % (len(data), hashlib.sha256(data).hexdigest()))
sys.stdout.flush()
x = 7
out = bytearray(size)
for i in range(size):
    x = (x * 1103515245 + 12345) & 0x7fffffff
    out[i] = x >> 16 & 0xff
s.sendall(bytes(out))
s.unwrap()
sys.stdout.write('%d %s\n' % (len(out), hashlib.sha256(out).hexdigest()))
sys.stdout.flush()
"#;

#[test]
fn listen_tls_zero_setup_against_python_ssl_3_mib_each_way_with_half_close() {
    let mut listen = Proc::sockit(&["listen", "tls://127.0.0.1:0"]);
    let addr = listen.listening_on();
    assert!(addr.starts_with("tls://127.0.0.1:"), "{addr}");
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let pin = listen.tls_pin();

    let sent = payload(3 << 20, 41);
    let size = (3 << 20) + 17;
    let mut py = Proc::python(PY_TLS_CLIENT, &[&port, &pin, &size.to_string()]);
    // stdin EOF sends close_notify: Python reads it as the end of sockit's bytes...
    listen.feed_and_close(sent.clone());
    let lines = py.wait_stdout(|b| b.iter().filter(|&&c| c == b'\n').count() == 2);
    let lines = String::from_utf8(lines).unwrap();
    let mut lines = lines.lines();
    assert_eq!(lines.next().unwrap(), len_and_sha256(&sent));
    // ...and sockit goes on reading after it: Python's bytes arrive in full, then its
    // close_notify ends sockit with exit 0.
    let theirs = lines.next().unwrap().to_owned();
    assert_exit_0(&mut py);
    assert_exit_0(&mut listen);
    assert_eq!(len_and_sha256(&listen.stdout()), theirs);
}

/// `LEN SHA256HEX` of `bytes`, by sha256sum (a checksum nobody here wrote either).
fn len_and_sha256(bytes: &[u8]) -> String {
    let dir = TempDir::new("tls-sum");
    let path = dir.path("bytes");
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("sha256sum").arg(&path).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!(
        "{} {}",
        bytes.len(),
        text.split_whitespace().next().unwrap()
    )
}

#[test]
fn listen_tls_refuses_a_plain_text_client_and_then_serves_a_tls_one() {
    let mut listen = Proc::sockit(&["listen", "tls://127.0.0.1:0"]);
    let addr = listen.listening_on();
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let pin = listen.tls_pin();

    let mut plain = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    plain.set_read_timeout(Some(WAIT)).unwrap();
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    // Refused: closed (after a TLS alert at most), nothing relayed.
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!contains(&got, b"HTTP"), "{got:?}");
    let mut client = Proc::sockit(&["connect", "--pin", &pin, &addr]);
    client.write(b"over tls\n");
    listen.wait_stdout_contains("over tls\n");
    listen.feed_and_close(b"back\n".to_vec());
    client.wait_stdout_contains("back\n");
    client.close_stdin();
    assert_exit_0(&mut client);
    assert_exit_0(&mut listen);
    assert_eq!(listen.stdout(), b"over tls\n");
    let err = listen.stderr();
    assert!(
        err.contains("refused") && err.contains("does not speak TLS"),
        "{err}"
    );
}

#[test]
fn listen_k_tls_serves_two_clients_and_drops_a_plain_text_one() {
    let mut listen = Proc::sockit(&["listen", "-k", "tls://127.0.0.1:0"]);
    let addr = listen.listening_on();
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let pin = listen.tls_pin();
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.write_all(b"plain text\n").unwrap();
    let mut a = Proc::sockit(&["connect", "--pin", &pin, &addr]);
    let mut b = Proc::sockit(&["connect", "--pin", &pin, &addr]);
    a.write(b"from a\n");
    b.write(b"from b\n");
    listen.wait_stdout(|o| contains(o, b"from a\n") && contains(o, b"from b\n"));
    listen.write(b"to all\n");
    a.wait_stdout_contains("to all\n");
    b.wait_stdout_contains("to all\n");
    a.close_stdin();
    b.close_stdin();
    listen.close_stdin();
    assert_exit_0(&mut a);
    assert_exit_0(&mut b);
    assert!(!contains(&listen.stdout(), b"plain text"));
}

#[test]
fn listen_k_tls_send_only_completes_the_handshake_it_never_reads() {
    let mut listen = Proc::sockit(&["listen", "-k", "--send-only", "tls://127.0.0.1:0"]);
    let addr = listen.listening_on();
    let pin = listen.tls_pin();
    let mut client = Proc::sockit(&["connect", "--recv-only", "--pin", &pin, &addr]);
    // stdin is read only once a client is there: this waits for it.
    listen.write(b"pushed\n");
    client.wait_stdout_contains("pushed\n");
    listen.close_stdin();
    // stdin EOF half-closes every client with close_notify: the client's EOF.
    assert_exit_0(&mut client);
    assert_eq!(client.stdout(), b"pushed\n");
}

/// A Python `ssl` server (argv: cert, key): prints its port, accepts one client, prints
/// the ALPN protocol chosen, reads until the client's close_notify (recv gives b'' only
/// for one), prints what it got, then answers over the half-closed connection and closes
/// with its own close_notify.
const PY_TLS_SERVER: &str = r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ctx.set_alpn_protocols(['sockit-test', 'h2'])
l = socket.socket()
l.bind(('127.0.0.1', 0))
l.listen(1)
l.settimeout(20)
print(l.getsockname()[1], flush=True)
raw, _ = l.accept()
raw.settimeout(20)
s = ctx.wrap_socket(raw, server_side=True)
print('alpn', s.selected_alpn_protocol(), flush=True)
data = b''
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print('got', data.decode(), flush=True)
s.sendall(b'reply after your close_notify\n')
s.unwrap()
"#;

#[test]
fn connect_tls_half_closes_with_close_notify_against_python_ssl_and_offers_alpn() {
    let dir = TempDir::new("tls-py-server");
    let (cert, key) = openssl_cert(&dir);
    let mut server = Proc::python(PY_TLS_SERVER, &[&cert, &key]);
    let port = server.first_line();
    let addr = format!("tls://localhost:{port}");
    let mut client = Proc::sockit(&["connect", "--cacert", &cert, "--alpn", "sockit-test", &addr]);
    // stdin EOF: close_notify, and Python's recv returns b''...
    client.feed_and_close(b"request".to_vec());
    // ...yet the answer sent after it still arrives, then Python's close_notify ends sockit.
    client.wait_stdout_contains("reply after your close_notify\n");
    assert_exit_0(&mut client);
    assert_exit_0(&mut server);
    assert_eq!(client.stdout(), b"reply after your close_notify\n");
    let out = String::from_utf8(server.stdout()).unwrap();
    assert!(out.contains("\nalpn sockit-test\n"), "{out}");
    assert!(out.contains("\ngot request\n"), "{out}");
    assert!(client.stderr().is_empty(), "{}", client.stderr());
}

#[test]
fn listen_tls_deny_refuses_before_any_handshake() {
    for k in [&[][..], &["-k"]] {
        let mut args = vec!["listen", "--deny", "127.0.0.0/8"];
        args.extend_from_slice(k);
        args.push("tls://127.0.0.1:0");
        let mut listen = Proc::sockit(&args);
        let addr = listen.listening_on();
        let pin = listen.tls_pin();
        let mut client = Proc::sockit(&["connect", "--pin", &pin, &addr]);
        // Closed before a word of TLS: the client's handshake fails (a reset when its
        // ClientHello was already there, unread).
        assert_fails_with(&mut client, "the connection during the handshake");
        assert!(listen.running());
        crate::util::signal(&listen.child, 15);
        assert_exit_0(&mut listen);
        assert!(
            listen.stderr().contains("denied by the access list"),
            "{}",
            listen.stderr()
        );
    }
}

#[test]
fn listen_tls_stops_on_sigterm_while_a_client_says_nothing_in_its_handshake() {
    let mut listen = Proc::sockit(&["listen", "tls://127.0.0.1:0"]);
    let addr = listen.listening_on();
    listen.wait_for_stderr_lines(2);
    let silent = TcpStream::connect(addr.strip_prefix("tls://").unwrap()).unwrap();
    // Let it be accepted: sockit now waits for its ClientHello.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    crate::util::signal(&listen.child, 15);
    let status = listen.wait_exit(WAIT);
    assert!(status.success(), "{status}: {}", listen.stderr());
    // Well before the 10s handshake deadline.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

/// Python's `ssl`: `CONNS` clients at once, each pinned to the fingerprint the server
/// printed (checked by hand: `ssl` has no pinning), each sending distinct bytes and
/// reading the echo back; prints "ok N" once all are byte-exact.
const PY_PINNED_ECHO: &str = r#"
import hashlib, socket, ssl, sys, threading
port, pin, conns = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
good = []
def one(i):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20))
    fp = "sha256:" + hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()
    assert fp == pin, (fp, pin)
    data = bytes((i * 7 + k) % 251 for k in range(50000))
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(65536)
        assert chunk, "closed early"
        got += chunk
    assert got == data
    s.close()
    good.append(i)
ts = [threading.Thread(target=one, args=(i,)) for i in range(conns)]
[t.start() for t in ts]
[t.join() for t in ts]
print("ok", len(good))
"#;

/// `echo tls://` under every model: the fingerprint line right after `listening on`,
/// 100 Python `ssl` clients at once byte-exact, sockit's own `connect tls:// --pin`, a
/// plain-text client refused and a silent one held open without harming them.
#[test]
fn echo_tls_serves_every_model_to_python_ssl_and_a_pinned_connect() {
    for model in crate::echo::STREAM_MODELS {
        let server = crate::util::Server::start(&["echo", "tls://127.0.0.1:0", "--model", model]);
        assert!(server.endpoint.starts_with("tls://"), "{}", server.endpoint);
        let pin = server.tls_pin();
        // A plain-text client first: it loses its own connection, nothing more.
        let mut plain = TcpStream::connect(server.addr()).unwrap();
        plain.set_read_timeout(Some(WAIT)).unwrap();
        let _ = plain.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut junk = Vec::new();
        let _ = plain.read_to_end(&mut junk);
        assert!(!contains(&junk, b"GET /"), "{model}: plain text echoed");
        // A client that stalls before its handshake stays connected while the others are
        // served (except under `blocking`, which serves one connection at a time and so
        // waits for the handshake deadline: that is what the model is).
        let stalled = (*model != "blocking").then(|| TcpStream::connect(server.addr()).unwrap());
        // 100 at once under every model; `blocking` serves them one after another.
        let conns = "100";
        let mut py = Proc::python(PY_PINNED_ECHO, &[&server.port().to_string(), &pin, conns]);
        assert_exit_0(&mut py);
        drop(stalled);
        assert_eq!(
            String::from_utf8_lossy(&py.stdout()).trim(),
            format!("ok {conns}"),
            "{model}"
        );
        let mut c = Proc::sockit(&["connect", &server.endpoint, "--pin", &pin]);
        c.write(b"hello over tls\n");
        c.wait_stdout_contains("hello over tls\n");
        c.close_stdin();
        assert_exit_0(&mut c);
        let (status, _) = server.stop();
        assert!(status.success(), "{model}: {status}");
    }
}

/// `openssl s_client`, verifying the certificate it was given, against `echo tls://`
/// with `--cert`/`--key`.
#[test]
fn echo_tls_with_cert_and_key_answers_openssl_s_client() {
    let dir = TempDir::new("echo-tls-s-client");
    let (cert, key) = openssl_cert(&dir);
    for model in ["epoll", "threads", "async"] {
        let server = crate::util::Server::start(&[
            "echo",
            "tls://127.0.0.1:0",
            "--model",
            model,
            "--cert",
            &cert,
            "--key",
            &key,
        ]);
        let mut client = Proc::spawn({
            let mut c = Command::new("openssl");
            c.args(["s_client", "-quiet", "-verify_return_error"])
                .args(["-CAfile", &cert, "-connect", &server.addr()]);
            c
        });
        client.write(b"ping from openssl\n");
        client.wait_stdout_contains("ping from openssl\n");
        drop(client);
        assert!(server.stop().0.success(), "{model}");
    }
}

/// `curl` over `http serve tls://` (HTTPS): it trusts openssl's one-liner certificate by
/// `--cacert`, and gets the listing, a range, a 304 and a 1 MiB file (sent through the
/// TLS layer in chunks, not sendfile) byte-exact, under several models; ALPN says
/// http/1.1.
#[test]
fn http_serve_tls_answers_curl_with_cacert_listing_range_304_and_a_large_file() {
    let dir = TempDir::new("https");
    let (cert, key) = openssl_cert(&dir);
    let root = dir.path("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello, tls\n").unwrap();
    let big = payload(1 << 20, 7);
    std::fs::write(root.join("big.bin"), &big).unwrap();
    let root = root.to_str().unwrap().to_owned();
    for model in ["epoll", "threads", "fork", "async"] {
        let server = crate::util::Server::start(&[
            "http",
            "serve",
            &root,
            "tls://127.0.0.1:0",
            "--model",
            model,
            "--cert",
            &cert,
            "--key",
            &key,
        ]);
        let base = format!("https://localhost:{}", server.port());
        let curl = |extra: &[&str], path: &str| {
            let out = Command::new("curl")
                .args(["-sS", "--cacert", &cert, "--max-time", "20"])
                .args([
                    "--resolve",
                    &format!("localhost:{}:127.0.0.1", server.port()),
                ])
                .args(extra)
                .arg(format!("{base}{path}"))
                .output()
                .expect("run curl");
            assert!(
                out.status.success(),
                "{model}: curl {extra:?} {path}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        let listing = String::from_utf8_lossy(&curl(&[], "/")).into_owned();
        assert!(listing.contains("hello.txt"), "{model}: {listing}");
        assert_eq!(curl(&["-r", "0-4"], "/hello.txt"), b"hello", "{model}");
        let head = String::from_utf8_lossy(&curl(&["-I"], "/hello.txt")).into_owned();
        let etag = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("ETag: ")
                    .or_else(|| l.strip_prefix("etag: "))
            })
            .unwrap_or_else(|| panic!("{model}: no ETag in {head}"))
            .trim()
            .to_owned();
        let status = curl(
            &[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                &format!("If-None-Match: {etag}"),
            ],
            "/hello.txt",
        );
        assert_eq!(status, b"304", "{model}");
        let got = curl(&[], "/big.bin");
        assert!(
            got == big,
            "{model}: 1 MiB over TLS differs ({} bytes)",
            got.len()
        );
        let verbose = Command::new("curl")
            .args(["-sv", "--cacert", &cert, "-o", "/dev/null"])
            .args([
                "--resolve",
                &format!("localhost:{}:127.0.0.1", server.port()),
            ])
            .arg(format!("{base}/"))
            .output()
            .unwrap();
        let verbose = String::from_utf8_lossy(&verbose.stderr);
        assert!(
            verbose.contains("ALPN: server accepted http/1.1")
                || verbose.contains("ALPN, server accepted to use http/1.1"),
            "{model}: {verbose}"
        );
        assert!(server.stop().0.success(), "{model}");
    }
}

/// `ncat --ssl ARGS... > OUT`, verbose so that it says when it listens. Its output goes to
/// a file, not a pipe: under load ncat was seen to end 64 KiB (a pipe's worth) short
/// when its stdout pipe was full as the connection closed, which is ncat's business, not
/// the bytes sockit sent.
fn ncat_ssl(args: &[&str], out: &std::path::Path) -> Proc {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(r#"out="$1"; shift; exec ncat -v --ssl "$@" > "$out""#)
        .arg("ncat")
        .arg(out)
        .args(args);
    Proc::spawn(c)
}

/// Both ends' output, byte-exact, without printing 100 MiB when they differ.
fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    assert!(
        got == want,
        "{what}: got {} bytes, sent {} (first difference at {:?})",
        got.len(),
        want.len(),
        got.iter().zip(want).position(|(a, b)| a != b)
    );
}

/// `connect tls://` and `listen tls://` against `ncat --ssl` in both roles: 100 MiB of
/// binary one way and 1 MiB the other, byte-exact. Each side's input ends long before the
/// other's: half-closing its sending side, neither stops reading. (ncat closes without a
/// close_notify: sockit warns, it does not fail.)
#[test]
fn connect_and_listen_tls_carry_100_mib_each_way_with_ncat_ssl() {
    let dir = TempDir::new("tls-ncat");
    let (cert, key) = openssl_cert(&dir);
    let big = payload(100 << 20, 61);
    let small = payload(1 << 20, 62);

    // ncat listens, sockit connects and verifies it by --cacert.
    let port = crate::util::free_port().to_string();
    let ncat_out = dir.path("ncat-1.out");
    let mut ncat = ncat_ssl(
        &[
            "--ssl-cert",
            &cert,
            "--ssl-key",
            &key,
            "-l",
            "127.0.0.1",
            &port,
        ],
        &ncat_out,
    );
    ncat.wait_stderr_contains("Listening on");
    ncat.feed_and_close(small.clone());
    let mut connect = Proc::sockit(&[
        "connect",
        &format!("tls://localhost:{port}"),
        "--cacert",
        &cert,
    ]);
    connect.feed_and_close(big.clone());
    assert_exit_0(&mut connect);
    let status = ncat.wait_exit(WAIT);
    assert!(status.success(), "ncat: {status}: {}", ncat.stderr());
    assert_same(
        "ncat got from connect",
        &std::fs::read(&ncat_out).unwrap(),
        &big,
    );
    assert_same("connect got from ncat", &connect.stdout(), &small);

    // sockit listens with the same certificate, ncat connects and verifies it.
    let mut listen = Proc::sockit(&[
        "listen",
        "tls://127.0.0.1:0",
        "--cert",
        &cert,
        "--key",
        &key,
    ]);
    let port = listen.listening_on().rsplit(':').next().unwrap().to_owned();
    listen.feed_and_close(small.clone());
    let ncat_out = dir.path("ncat-2.out");
    let mut ncat = ncat_ssl(
        &["--ssl-verify", "--ssl-trustfile", &cert, "localhost", &port],
        &ncat_out,
    );
    ncat.feed_and_close(big.clone());
    let status = ncat.wait_exit(WAIT);
    assert!(status.success(), "ncat: {status}: {}", ncat.stderr());
    assert_exit_0(&mut listen);
    assert_same("listen got from ncat", &listen.stdout(), &big);
    assert_same(
        "ncat got from listen",
        &std::fs::read(&ncat_out).unwrap(),
        &small,
    );
}

/// A Python `ssl` client for mutual TLS: shows the certificate argv[3] with key argv[4]
/// (none without them), sends the first half of argv[2] deterministic bytes, reads their
/// echo, prints `half N`, waits for a line on stdin (so other clients can be refused
/// while it is connected), sends the rest and prints `ok N` once all came back
/// byte-exact. A refusal at any point prints `refused <reason>`.
const PY_MTLS_CLIENT: &str = r#"
import socket, ssl, sys
port, size = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if len(sys.argv) > 4:
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
data = bytes((i * 7 + i // 251) % 256 for i in range(size))
got = b''
def read_to(n):
    global got
    while len(got) < n:
        b = s.recv(65536)
        if not b:
            break
        got += b
try:
    raw = socket.create_connection(('127.0.0.1', port), timeout=20)
    s = ctx.wrap_socket(raw, server_hostname='localhost')
    half = size // 2
    s.sendall(data[:half])
    read_to(half)
    print('half', len(got), flush=True)
    sys.stdin.readline()
    s.sendall(data[half:])
    read_to(size)
    print('ok' if got == data else 'differ', len(got), flush=True)
except (ssl.SSLError, OSError) as e:
    print('refused', e, flush=True)
"#;

/// `PY_MTLS_CLIENT` against `port` with `size` bytes and this certificate, if any.
fn mtls_client(port: u16, size: usize, cert: Option<&(String, String)>) -> Proc {
    let port = port.to_string();
    let size = size.to_string();
    let mut args = vec![port.as_str(), size.as_str()];
    if let Some((c, k)) = cert {
        args.extend([c.as_str(), k.as_str()]);
    }
    Proc::python(PY_MTLS_CLIENT, &args)
}

/// Lets a `PY_MTLS_CLIENT` past its first half and waits for all `size` bytes to come
/// back byte-exact.
fn finish(p: &mut Proc, size: usize) {
    p.write(b"go on\n");
    p.wait_stdout_contains(&format!("ok {size}\n"));
    p.close_stdin();
    assert_exit_0(p);
}

/// A mutual-TLS client that must be refused: prints `refused ...` and ends.
fn assert_refused(mut p: Proc, what: &str) -> String {
    p.close_stdin();
    assert_exit_0(&mut p);
    let out = String::from_utf8_lossy(&p.stdout()).into_owned();
    assert!(out.starts_with("refused "), "{what}: {out} {}", p.stderr());
    out
}

/// `echo tls:// --client-ca`: Python clients with a certificate signed by that CA, or a
/// self-signed one listed in the file, are echoed byte-exact; one with no certificate and
/// one signed by another CA are refused at the handshake, each logged in one line with
/// its reason, while a good client stays connected through it, under every model.
#[test]
fn echo_tls_client_ca_serves_certified_clients_and_refuses_the_rest() {
    let ca_dir = TempDir::new("mtls-ca");
    let ca = crate::util::openssl_cert(&ca_dir, "sockit test CA");
    let alice = crate::util::openssl_signed(&ca_dir, &ca, "alice");
    let other_dir = TempDir::new("mtls-other-ca");
    let other_ca = crate::util::openssl_cert(&other_dir, "another CA");
    let mallory = crate::util::openssl_signed(&other_dir, &other_ca, "mallory");
    let self_dir = TempDir::new("mtls-self");
    let bob = crate::util::openssl_cert(&self_dir, "bob");
    // The trust file: the CA, and bob's self-signed certificate trusted as itself.
    let trust = ca_dir.path("trust.pem");
    let pem = [
        std::fs::read(&ca.0).unwrap(),
        std::fs::read(&bob.0).unwrap(),
    ]
    .concat();
    std::fs::write(&trust, pem).unwrap();
    let trust = trust.to_str().unwrap();
    for model in crate::echo::STREAM_MODELS {
        let server = crate::util::Server::start(&[
            "echo",
            "tls://127.0.0.1:0",
            "--model",
            model,
            "--client-ca",
            trust,
        ]);
        let _pin = server.tls_pin();
        let port = server.port();
        let mut good = mtls_client(port, 256 * 1024, Some(&alice));
        good.wait_stdout_contains("half 131072\n");
        // The blocking model serves one connection at a time: the others would wait.
        let concurrent = *model != "blocking";
        if !concurrent {
            finish(&mut good, 262_144);
        }

        let none = assert_refused(mtls_client(port, 1000, None), model);
        assert!(none.contains("CERTIFICATE_REQUIRED"), "{model}: {none}");
        let line = server.next_line().expect("a log line for the refusal");
        assert!(
            line.contains("refused") && line.contains("the client presented no certificate"),
            "{model}: {line}"
        );
        let other = assert_refused(mtls_client(port, 1000, Some(&mallory)), model);
        assert!(other.contains("UNKNOWN_CA"), "{model}: {other}");
        let line = server.next_line().expect("a log line for the refusal");
        assert!(
            line.contains("refused")
                && line.contains(
                    "the client's certificate is not signed by a trusted certificate authority"
                ),
            "{model}: {line}"
        );

        if concurrent {
            finish(&mut good, 262_144);
        }
        let mut self_signed = mtls_client(port, 10_000, Some(&bob));
        self_signed.wait_stdout_contains("half 5000\n");
        finish(&mut self_signed, 10_000);
        let (status, rest) = server.stop();
        assert!(status.success(), "{model}: {rest}");
    }
}

/// `echo tls:// --client-pin`: the pinned client certificates (two pins) are served, any
/// other (even one signed by a CA) and none at all are refused.
#[test]
fn echo_tls_client_pin_accepts_exactly_the_pinned_certificates() {
    let a_dir = TempDir::new("mtls-pin-a");
    let a = crate::util::openssl_cert(&a_dir, "pinned-a");
    let b_dir = TempDir::new("mtls-pin-b");
    let b = crate::util::openssl_cert(&b_dir, "pinned-b");
    let c_dir = TempDir::new("mtls-pin-c");
    let c = crate::util::openssl_cert(&c_dir, "not-pinned");
    let server = crate::util::Server::start(&[
        "echo",
        "tls://127.0.0.1:0",
        "--client-pin",
        &openssl_fingerprint(&a.0),
        "--client-pin",
        &openssl_fingerprint(&b.0),
    ]);
    let _pin = server.tls_pin();
    let port = server.port();
    for cert in [&a, &b] {
        let mut p = mtls_client(port, 4000, Some(cert));
        p.wait_stdout_contains("half 2000\n");
        finish(&mut p, 4000);
    }
    assert_refused(mtls_client(port, 1000, Some(&c)), "not pinned");
    let line = server.next_line().expect("a log line for the refusal");
    let want = format!("pin mismatch: it is {}", openssl_fingerprint(&c.0));
    assert!(line.contains(&want), "{line}");
    assert_refused(mtls_client(port, 1000, None), "no certificate");
    let line = server.next_line().expect("a log line for the refusal");
    assert!(line.contains("no certificate"), "{line}");
    assert!(server.stop().0.success());
}

/// A Python `ssl` server requiring a client certificate from the CA argv[3]
/// (CERT_REQUIRED), with its own certificate argv[1] and key argv[2]: prints its port,
/// then for each of argv[4] connections prints the client's common name and echoes
/// everything upper-cased after the client's close_notify, or prints `refused <reason>`.
const PY_MTLS_SERVER: &str = r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ctx.load_verify_locations(sys.argv[3])
ctx.verify_mode = ssl.CERT_REQUIRED
l = socket.socket()
l.bind(('127.0.0.1', 0))
l.listen(4)
print(l.getsockname()[1], flush=True)
for _ in range(int(sys.argv[4])):
    c, _ = l.accept()
    c.settimeout(20)
    try:
        s = ctx.wrap_socket(c, server_side=True)
        cn = dict(x[0] for x in s.getpeercert()['subject'])['commonName']
        print('client', cn, flush=True)
        data = b''
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.sendall(data.upper())
        s.unwrap()
    except (ssl.SSLError, OSError) as e:
        print('refused', e, flush=True)
"#;

/// `connect tls:// --client-cert --client-key` to a Python server that requires a
/// client certificate: the bytes round-trip; without --client-cert the connection fails
/// in one line saying the server wants a certificate, exit 1; a certificate from another
/// CA is refused by the server, in one line too.
#[test]
fn connect_tls_client_cert_against_python_ssl_requiring_one() {
    let ca_dir = TempDir::new("mtls-connect-ca");
    let ca = crate::util::openssl_cert(&ca_dir, "sockit test CA");
    let alice = crate::util::openssl_signed(&ca_dir, &ca, "alice");
    let srv_dir = TempDir::new("mtls-connect-server");
    let (srv_cert, srv_key) = openssl_cert(&srv_dir);
    let other_dir = TempDir::new("mtls-connect-other");
    let mallory = crate::util::openssl_cert(&other_dir, "mallory");
    let server = Proc::python(PY_MTLS_SERVER, &[&srv_cert, &srv_key, &ca.0, "3"]);
    let port = String::from_utf8_lossy(&server.wait_stdout_contains("\n"))
        .trim()
        .to_owned();
    let addr = format!("tls://127.0.0.1:{port}");
    let trust = ["--cacert", srv_cert.as_str()];

    let mut args = vec!["connect"];
    args.extend(trust);
    args.extend(["--client-cert", &alice.0, "--client-key", &alice.1, &addr]);
    let mut p = Proc::sockit(&args);
    p.feed_and_close(b"mutual tls\n".to_vec());
    assert_exit_0(&mut p);
    assert_eq!(p.stdout(), b"MUTUAL TLS\n");
    server.wait_stdout_contains("client alice\n");

    // No certificate: stdin stays open, so it is the server's refusal that ends it.
    let mut args = vec!["connect"];
    args.extend(trust);
    args.push(&addr);
    let mut p = Proc::sockit(&args);
    assert_fails_with(&mut p, "the server requires a client certificate");
    assert!(p.stdout().is_empty());
    server.wait_stdout_contains("refused");

    let mut args = vec!["connect"];
    args.extend(trust);
    args.extend([
        "--client-cert",
        &mallory.0,
        "--client-key",
        &mallory.1,
        &addr,
    ]);
    let mut p = Proc::sockit(&args);
    assert_fails_with(&mut p, "the server refused our certificate");
    let mut server = server;
    assert_exit_0(&mut server);
}

#[test]
fn mutual_tls_bad_usage_is_exit_2_and_a_bad_key_is_one_line_before_connecting() {
    let pin = format!("sha256:{}", "00".repeat(32));
    for args in [
        &[
            "connect",
            "--client-cert",
            "c.pem",
            "--client-key",
            "k.pem",
            "127.0.0.1:1",
        ][..],
        &["connect", "--client-cert", "c.pem", "tls://127.0.0.1:1"],
        &["echo", "--client-ca", "ca.pem", "127.0.0.1:0"],
        &["echo", "--client-pin", &pin, "127.0.0.1:0"],
        &["listen", "--client-pin", "sha256:00", "tls://127.0.0.1:0"],
    ] {
        let out = sockit().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    // A missing partner flag is named, not only said to be missing.
    let out = sockit()
        .args(["connect", "--client-cert", "c.pem", "tls://127.0.0.1:1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not provided: --client-key <FILE>"), "{err}");
    // The key of another certificate: refused before any connection (nobody listens).
    let a_dir = TempDir::new("mtls-key-a");
    let (cert, _) = openssl_cert(&a_dir);
    let b_dir = TempDir::new("mtls-key-b");
    let (_, key) = openssl_cert(&b_dir);
    let port = crate::util::free_port().to_string();
    let addr = format!("tls://127.0.0.1:{port}");
    let mut p = Proc::sockit(&[
        "connect",
        "-k",
        "--client-cert",
        &cert,
        "--client-key",
        &key,
        &addr,
    ]);
    assert_fails_with(&mut p, "does not go with the certificate");
    // A server's --client-ca that is not a certificate file: before binding.
    let mut p = Proc::sockit(&["echo", "--client-ca", &key, "tls://127.0.0.1:0"]);
    assert_fails_with(&mut p, "no certificates in client CA file");
}

/// `http serve tls:// --client-ca` with curl: `--cert/--key` from that CA gets the file,
/// without them curl fails and gets nothing; the server logs why.
#[test]
fn http_serve_tls_client_ca_answers_curl_with_a_client_certificate_only() {
    let dir = TempDir::new("https-mtls");
    let ca = crate::util::openssl_cert(&dir, "sockit test CA");
    let alice = crate::util::openssl_signed(&dir, &ca, "alice");
    let root = dir.path("root");
    std::fs::create_dir_all(&root).unwrap();
    let body = payload(100_000, 3);
    std::fs::write(root.join("data.bin"), &body).unwrap();
    let server = crate::util::Server::start(&[
        "http",
        "serve",
        root.to_str().unwrap(),
        "tls://127.0.0.1:0",
        "--client-ca",
        &ca.0,
    ]);
    let _pin = server.tls_pin();
    let url = format!("https://127.0.0.1:{}/data.bin", server.port());
    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args(["-sS", "-k", "--max-time", "20"])
            .args(extra)
            .arg(&url)
            .output()
            .expect("run curl")
    };
    let out = curl(&["--cert", &alice.0, "--key", &alice.1]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == body, "{} bytes differ", out.stdout.len());
    let request = server.next_line().expect("the request's log line");
    assert!(request.contains("/data.bin"), "{request}");

    let out = curl(&[]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{:?}", out.stdout.len());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate required"), "{err}");
    let line = server.next_line().expect("the refusal's log line");
    assert!(
        line.contains("the client presented no certificate"),
        "{line}"
    );
    assert!(server.stop().0.success());
}

/// sockit on both ends: `listen -k tls:// --client-ca` relays for a `connect` with
/// `--client-cert`, refuses one without and one with a certificate from another CA (each
/// in one line on both sides), and the first client stays connected through it.
#[test]
fn listen_tls_client_ca_admits_connect_with_a_client_cert_only() {
    let ca_dir = TempDir::new("mtls-listen-ca");
    let ca = crate::util::openssl_cert(&ca_dir, "sockit test CA");
    let alice = crate::util::openssl_signed(&ca_dir, &ca, "alice");
    let other_dir = TempDir::new("mtls-listen-other");
    let other_ca = crate::util::openssl_cert(&other_dir, "another CA");
    let mallory = crate::util::openssl_signed(&other_dir, &other_ca, "mallory");
    let mut listen = Proc::sockit(&["listen", "-k", "tls://127.0.0.1:0", "--client-ca", &ca.0]);
    let addr = listen.listening_on();
    let pin = listen.tls_pin();
    let connect = |cert: Option<&(String, String)>| {
        let mut args = vec!["connect", "--pin", &pin];
        if let Some((c, k)) = cert {
            args.extend(["--client-cert", c.as_str(), "--client-key", k.as_str()]);
        }
        args.push(&addr);
        Proc::sockit(&args)
    };
    let mut a = connect(Some(&alice));
    a.write(b"from alice\n");
    listen.wait_stdout_contains("from alice\n");

    let mut refused = connect(None);
    assert_fails_with(&mut refused, "the server requires a client certificate");
    let mut refused = connect(Some(&mallory));
    assert_fails_with(&mut refused, "the server refused our certificate");
    let err = listen.wait_for_stderr_lines(4);
    assert!(err.contains("the client presented no certificate"), "{err}");
    assert!(err.contains("unknown issuer"), "{err}");

    a.write(b"still here\n");
    listen.wait_stdout_contains("still here\n");
    listen.write(b"to alice\n");
    a.wait_stdout_contains("to alice\n");
    a.close_stdin();
    listen.close_stdin();
    assert_exit_0(&mut a);
    assert_eq!(listen.stdout(), b"from alice\nstill here\n");
}

/// `http get --client-cert --client-key` against `openssl s_server -www -Verify 1`, which
/// requires a client certificate from its CA and describes the one it got in its page;
/// without one, `http get` fails in one line saying the server wants one.
#[test]
fn http_get_shows_a_client_certificate_to_openssl_s_server() {
    let dir = TempDir::new("https-get-mtls");
    let ca = crate::util::openssl_cert(&dir, "sockit test CA");
    let alice = crate::util::openssl_signed(&dir, &ca, "alice");
    let srv_dir = TempDir::new("https-get-mtls-server");
    let (cert, key) = openssl_cert(&srv_dir);
    let (_server, port) =
        crate::util::s_server_www(&cert, &key, &["-Verify", "1", "-CAfile", &ca.0]);
    let url = format!("https://localhost:{port}/");
    let out = sockit()
        .args(["http", "get", "--cacert", &cert, "--client-cert", &alice.0])
        .args(["--client-key", &alice.1, &url])
        .output()
        .unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        page.contains("Client certificate") && page.contains("Subject: CN=alice"),
        "{page}"
    );

    let out = sockit()
        .args(["http", "get", "--cacert", &cert, &url])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("the server requires a client certificate"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

/// `connect tls:// --send-only` never reads the socket, yet its peer's session tickets
/// arrive there after every TLS 1.3 handshake: closed unread, they would turn its FIN into
/// a reset that makes the receiver drop the tail of the stream. 100 MiB arrive whole.
#[test]
fn connect_tls_send_only_delivers_everything_to_listen_recv_only() {
    let mut listen = Proc::sockit(&["listen", "tls://127.0.0.1:0", "--recv-only"]);
    let addr = listen.listening_on();
    let pin = listen.tls_pin();
    let sent = payload(100 << 20, 71);
    let mut connect = Proc::sockit(&["connect", &addr, "--pin", &pin, "--send-only"]);
    connect.feed_and_close(sent.clone());
    assert_exit_0(&mut connect);
    assert_exit_0(&mut listen);
    assert_same("listen --recv-only got", &listen.stdout(), &sent);
}
