//! The classic tutorials' programs in `examples/` run for real: each server started on port 0, its
//! client (or a Python one) talking to it.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `cargo test` builds the examples next to the test binaries' `deps/` directory.
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().expect("test path");
    let dir: PathBuf = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("examples");
    Command::new(dir.join(name))
}

/// A started example server and the endpoint from its `listening on` line.
struct Running(Child, String);

impl Running {
    fn start(name: &str, addr: &str) -> Running {
        let mut child = example(name)
            .arg(addr)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start example {name}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{name} printed {line:?}"))
            .to_owned();
        Running(child, endpoint)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a client with `input` on stdin and returns its stdout, bounded in time.
fn run_client(mut cmd: Command, input: &str) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "client hung");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "client failed: {}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn upper_server_and_client() {
    let server = Running::start("upper_server", "127.0.0.1:0");
    let mut client = example("upper_client");
    client.arg(&server.1);
    assert_eq!(
        run_client(client, "abc\nhello world\n"),
        "ABC\nHELLO WORLD\n"
    );
}

#[test]
fn threading_server_answers_a_python_client() {
    let server = Running::start("threading_server", "127.0.0.1:0");
    let port = server.1.rsplit(':').next().unwrap();
    let script = format!(
        "import socket\nc=socket.socket()\nc.connect(('127.0.0.1',{port}))\n\
         c.send(b'hi')\nprint(c.recv(1024).decode(), end='')\nc.close()\n"
    );
    let mut py = Command::new("python3");
    py.arg("-c").arg(script);
    assert_eq!(run_client(py, ""), "got your msg\n");
}

#[test]
fn udp_server_and_client() {
    let server = Running::start("udp_server", "udp://127.0.0.1:0");
    let mut client = example("udp_client");
    client.arg(&server.1);
    let out = run_client(client, "ping\n");
    assert!(out.starts_with("PING (from 127.0.0.1:"), "{out}");
}

#[test]
fn select_server_answers_upper_cased() {
    let server = Running::start("select_server", "127.0.0.1:0");
    let mut client = example("upper_client");
    client.arg(&server.1);
    assert_eq!(run_client(client, "select me\n"), "SELECT ME\n");
}
