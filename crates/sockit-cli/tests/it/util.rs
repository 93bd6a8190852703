//! Shared helpers: spawn the `sockit` binary, read its `listening on ...` line, stop it.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Upper bound for any single wait in a test; a hang fails instead of stalling CI.
pub const WAIT: Duration = Duration::from_secs(20);

/// The binary under test.
pub fn sockit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sockit"))
}

/// A running `sockit` server, stopped with SIGTERM when dropped.
pub struct Server {
    pub child: Child,
    /// What follows `listening on ` (e.g. `tcp://127.0.0.1:40123`).
    pub endpoint: String,
    stderr_rest: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `sockit ARGS...` and waits for its `listening on` line.
    pub fn start(args: &[&str]) -> Server {
        Server::start_env(args, &[])
    }

    /// [`Server::start`] with environment variables set (`SOCKIT_LOG`, to read the log
    /// lines after `listening on` with [`Server::next_line`]).
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = sockit()
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sockit");
        let stderr = child.stderr.take().expect("stderr piped");
        let (first_tx, first_rx) = mpsc::channel();
        let (rest_tx, rest_rx) = mpsc::channel();
        std::thread::spawn(move || pump_stderr(stderr, first_tx, rest_tx));
        let line: String = match first_rx.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("sockit {args:?} printed no first line");
            }
        };
        let endpoint = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first stderr line of {args:?} was {line:?}"))
            .to_owned();
        Server {
            child,
            endpoint,
            stderr_rest: rest_rx,
        }
    }

    /// `HOST:PORT` of a tcp/udp endpoint (what std's connect takes).
    pub fn addr(&self) -> String {
        self.endpoint
            .split_once("://")
            .map(|(_, a)| a.to_owned())
            .unwrap_or_else(|| panic!("not an inet endpoint: {}", self.endpoint))
    }

    /// The port of a tcp/udp endpoint.
    pub fn port(&self) -> u16 {
        self.addr().rsplit_once(':').unwrap().1.parse().unwrap()
    }

    /// The fingerprint a zero-setup `tls://` server prints right after `listening on`.
    pub fn tls_pin(&self) -> String {
        tls_pin_of(&self.next_line().expect("the tls fingerprint line"))
    }

    /// The next line the server writes to stderr after `listening on`, waiting at most `WAIT`.
    pub fn next_line(&self) -> Option<String> {
        self.stderr_rest.recv_timeout(WAIT).ok()
    }

    /// Sends SIGTERM and returns the exit status and the rest of stderr.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        signal(&self.child, 15); // SIGTERM
        let status = wait_timeout(&mut self.child, WAIT).expect("server did not stop on SIGTERM");
        let rest: Vec<String> = self.stderr_rest.try_iter().collect();
        (status, rest.join("\n"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failing test shows what the server said and whether it was still alive.
            let status = self.child.try_wait().ok().flatten();
            let rest: Vec<String> = self.stderr_rest.try_iter().collect();
            eprintln!(
                "server {} ({}): {}",
                self.endpoint,
                status.map_or("still running".to_owned(), |s| format!("exited: {s}")),
                rest.join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump_stderr(stderr: ChildStderr, first: mpsc::Sender<String>, rest: mpsc::Sender<String>) {
    let mut lines = BufReader::new(stderr).lines();
    if let Some(Ok(line)) = lines.next() {
        let _ = first.send(line);
    }
    for line in lines.map_while(Result::ok) {
        let _ = rest.send(line);
    }
}

/// Sends a signal with `kill(1)`, to keep the tests free of unsafe FFI.
pub fn signal(child: &Child, sig: i32) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(ok.success(), "kill -{sig} failed");
}

/// Waits for a child at most `limit`.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// A temporary directory for Unix socket paths, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sockit-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process with all three standard streams piped: stdin written (and closed) by
/// the test, stdout and stderr collected in the background as they arrive.
pub struct Proc {
    pub child: Child,
    /// Shared with background writers; `None` once closed.
    stdin: std::sync::Arc<std::sync::Mutex<Option<std::process::ChildStdin>>>,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    collectors: Vec<std::thread::JoinHandle<()>>,
    what: String,
}

impl Proc {
    /// Spawns `cmd` with piped stdio.
    pub fn spawn(mut cmd: Command) -> Proc {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let (stdout, out_thread) = collect(child.stdout.take().expect("stdout piped"));
        let (stderr, err_thread) = collect(child.stderr.take().expect("stderr piped"));
        Proc {
            stdin: std::sync::Arc::new(std::sync::Mutex::new(child.stdin.take())),
            child,
            stdout,
            stderr,
            collectors: vec![out_thread, err_thread],
            what,
        }
    }

    /// `sockit ARGS...` with piped stdio.
    pub fn sockit(args: &[&str]) -> Proc {
        let mut cmd = sockit();
        cmd.args(args);
        Proc::spawn(cmd)
    }

    /// `python3 -c SCRIPT ARGS...` with piped stdio.
    pub fn python(script: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(script).args(args);
        Proc::spawn(cmd)
    }

    /// Writes to the child's stdin (which stays open).
    pub fn write(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stdin
            .lock()
            .unwrap()
            .as_mut()
            .expect("stdin already closed")
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write to {}: {e}", self.what));
    }

    /// Writes `bytes` from a thread (big inputs must not deadlock on a child that is not
    /// reading yet); stdin stays open. A later [`Proc::close_stdin`] waits for it.
    pub fn feed(&mut self, bytes: Vec<u8>) {
        self.feed_then(bytes, false);
    }

    /// Writes `bytes` from a thread, then closes stdin.
    pub fn feed_and_close(&mut self, bytes: Vec<u8>) {
        self.feed_then(bytes, true);
    }

    fn feed_then(&mut self, bytes: Vec<u8>, close: bool) {
        use std::io::Write;
        let stdin = self.stdin.clone();
        let (started_tx, started_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut stdin = stdin.lock().unwrap();
            let _ = started_tx.send(());
            if let Some(pipe) = stdin.as_mut() {
                // The child may rightly stop reading (it ended); a broken pipe is its business.
                let _ = pipe.write_all(&bytes);
            }
            if close {
                *stdin = None;
            }
        });
        // The writer holds the pipe before anything else can write or close it.
        let _ = started_rx.recv();
    }

    /// Closes the child's stdin (after any background write finished).
    pub fn close_stdin(&mut self) {
        *self.stdin.lock().unwrap() = None;
    }

    /// Everything the child wrote to stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits (at most [`WAIT`]) until stdout satisfies `done`; returns it.
    pub fn wait_stdout(&self, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        self.wait_for(&self.stdout, "stdout", |b| done(b))
    }

    /// Waits (at most [`WAIT`]) until stdout contains `needle`.
    pub fn wait_stdout_contains(&self, needle: &str) -> Vec<u8> {
        self.wait_stdout(|b| contains(b, needle.as_bytes()))
    }

    /// Waits (at most [`WAIT`]) for a complete first stdout line; returns it.
    pub fn first_line(&self) -> String {
        let out = self.wait_stdout(|b| b.contains(&b'\n'));
        let line = out.split(|&b| b == b'\n').next().unwrap();
        String::from_utf8_lossy(line).into_owned()
    }

    /// Waits for `listening on ENDPOINT` on stderr; returns ENDPOINT.
    pub fn listening_on(&self) -> String {
        let err = self.wait_for(&self.stderr, "stderr", |b| b.contains(&b'\n'));
        let line = String::from_utf8_lossy(err.split(|&b| b == b'\n').next().unwrap()).into_owned();
        line.strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first stderr line of {} was {line:?}", self.what))
            .to_owned()
    }

    /// Waits at most `limit` for the child to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        match wait_timeout(&mut self.child, limit) {
            Some(status) => {
                // The pipes are closed now: the collectors take the last bytes and end.
                for t in self.collectors.drain(..) {
                    let _ = t.join();
                }
                status
            }
            None => panic!(
                "{} still running after {limit:?}; stdout {:?}, stderr {:?}",
                self.what,
                String::from_utf8_lossy(&self.stdout()),
                self.stderr()
            ),
        }
    }

    /// Whether the child is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// The fingerprint a zero-setup `tls://` listener prints on its second stderr line
    /// (`tls fingerprint sha256:HEX`), as `--pin` takes it.
    pub fn tls_pin(&self) -> String {
        let err = self.wait_for_stderr_lines(2);
        tls_pin_of(err.lines().nth(1).unwrap_or_default())
    }

    /// Waits (at most [`WAIT`]) until stderr contains `needle`: a peer nobody here wrote
    /// saying it is ready (ncat's "Listening on").
    pub fn wait_stderr_contains(&self, needle: &str) -> String {
        let err = self.wait_for(&self.stderr, "stderr", |b| contains(b, needle.as_bytes()));
        String::from_utf8_lossy(&err).into_owned()
    }

    /// Waits (at most [`WAIT`]) until stderr holds `n` complete lines; returns it.
    pub fn wait_for_stderr_lines(&self, n: usize) -> String {
        let err = self.wait_for(&self.stderr, "stderr", |b| {
            b.iter().filter(|&&c| c == b'\n').count() >= n
        });
        String::from_utf8_lossy(&err).into_owned()
    }

    fn wait_for(
        &self,
        buf: &std::sync::Mutex<Vec<u8>>,
        name: &str,
        done: impl Fn(&[u8]) -> bool,
    ) -> Vec<u8> {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            {
                let b = buf.lock().unwrap();
                if done(&b) {
                    return b.clone();
                }
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "{}: {name} never got what was expected; stdout {:?}, stderr {:?}",
                    self.what,
                    String::from_utf8_lossy(&self.stdout()),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

type Collected = (
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    std::thread::JoinHandle<()>,
);

fn collect(mut from: impl std::io::Read + Send + 'static) -> Collected {
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = buf.clone();
    let thread = std::thread::spawn(move || {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    (buf, thread)
}

/// Deterministic, non-repeating-looking bytes (xorshift), so a lost or misplaced chunk
/// cannot go unnoticed; `seed` tells payloads apart.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
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
pub fn connect(port: &str, flags: &[&str]) -> Proc {
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["connect"];
    args.extend_from_slice(flags);
    args.push(&addr);
    Proc::sockit(&args)
}

pub fn assert_exit_0(p: &mut Proc) {
    let status = p.wait_exit(WAIT);
    assert!(status.success(), "exit {status}; stderr {:?}", p.stderr());
}

/// Exit code 1 and exactly one stderr line, which contains `needle` (any case).
pub fn assert_fails_with(p: &mut Proc, needle: &str) {
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

/// The number after `"key":` in a JSON report.
pub fn json_number(json: &str, key: &str) -> f64 {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pat.len();
    let digits: String = json[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

/// A loopback port nobody listens on right now (for peers that cannot bind port 0 and say
/// which port they got).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `openssl ARGS...`, which must succeed.
pub fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// openssl's one-liner self-signed certificate (RSA, CA:TRUE, alternative names
/// localhost and 127.0.0.1) with common name `cn`, and its key, in `dir`.
pub fn openssl_cert(dir: &TempDir, cn: &str) -> (String, String) {
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let subject = format!("/CN={cn}");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &subject,
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout",
        key,
        "-out",
        cert,
    ]);
    (cert.to_owned(), key.to_owned())
}

/// A certificate for common name `cn` signed by the CA `ca` (an [`openssl_cert`] pair:
/// its certificate and key), and its key, in `dir` as `<cn>.pem` and `<cn>.key`: an end
/// entity (CA:FALSE) for TLS clients and servers, naming localhost and 127.0.0.1.
pub fn openssl_signed(dir: &TempDir, ca: &(String, String), cn: &str) -> (String, String) {
    let path = |ext: &str| {
        dir.path(&format!("{cn}.{ext}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let (cert, key, csr, ext) = (path("pem"), path("key"), path("csr"), path("ext"));
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\n\
         extendedKeyUsage=clientAuth,serverAuth\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    let subject = format!("/CN={cn}");
    openssl(&[
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", &subject, "-keyout", &key, "-out",
        &csr,
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca.0,
        "-CAkey",
        &ca.1,
        "-set_serial",
        "2",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
    (cert, key)
}

/// `openssl s_server -www` with `cert` and `key` (and `extra`) on a free loopback port,
/// once it accepts connections.
pub fn s_server_www(cert: &str, key: &str, extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-www", "-accept", &format!("127.0.0.1:{port}")])
        .args(["-cert", cert, "-key", key])
        .args(extra);
    (spawn_listening(cmd, port), port)
}

/// Spawns a peer nobody here wrote that says nothing when it is ready (openssl
/// s_server, microsocks, tinyproxy) and waits until it accepts on 127.0.0.1:`port`. The
/// probe connects and closes: only for peers that take more than one connection.
pub fn spawn_listening(cmd: Command, port: u16) -> Proc {
    let mut peer = Proc::spawn(cmd);
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            peer.running() && std::time::Instant::now() < deadline,
            "{} never listened on port {port}: {}",
            peer.what,
            peer.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    peer
}

/// `sha256:HEX` from a `tls fingerprint sha256:HEX` line (a 64-digit hex digest).
pub fn tls_pin_of(line: &str) -> String {
    let pin = line
        .strip_prefix("tls fingerprint ")
        .unwrap_or_else(|| panic!("not a fingerprint line: {line:?}"));
    assert!(pin.starts_with("sha256:") && pin.len() == 7 + 64, "{pin}");
    pin.to_owned()
}

/// Python: plain text to the TLS port argv[1]; prints `closed` once the server has
/// closed the connection (a reset counts) without answering in plain text.
pub const PY_PLAIN_TO_TLS: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
got = b""
while True:
    try:
        b = s.recv(4096)
    except ConnectionResetError:
        break
    if not b:
        break
    got += b
assert b"HTTP" not in got and b"GET" not in got, got
print("closed")
"#;

/// Python: a TLS record header announcing a ClientHello to port argv[1], then nothing;
/// prints `closed` once the server gives up on it (a reset counts).
pub const PY_STALLED_HANDSHAKE: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(b"\x16\x03\x01\x00\xc8\x01\x00")
try:
    while s.recv(4096):
        pass
except ConnectionResetError:
    pass
print("closed")
"#;
