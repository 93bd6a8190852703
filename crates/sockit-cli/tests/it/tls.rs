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
    let cases: [(&[&str], &str); 3] = [
        (&["chat", "serve", "tls://127.0.0.1:0"], "chat serve"),
        (
            &["chat", "join", "--nick", "a", "tls://127.0.0.1:1"],
            "chat join",
        ),
        (
            &["exec", "serve", "--permit", "cat", "tls://127.0.0.1:0"],
            "exec serve",
        ),
    ];
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
/// Python's `ssl` clients at once byte-exact, sockit's own `connect tls:// --pin`, and a
/// plain-text client refused without harming them.
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
        let conns = if *model == "blocking" { "1" } else { "10" };
        let mut py = Proc::python(PY_PINNED_ECHO, &[&server.port().to_string(), &pin, conns]);
        assert_exit_0(&mut py);
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
