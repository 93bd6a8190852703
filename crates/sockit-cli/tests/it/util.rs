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
        let mut child = sockit()
            .args(args)
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
