//! `sockit exec serve` / `sockit exec` end to end: commands, stdin, exit codes and signals,
//! 50 MiB byte-exact, refusals, hostile raw peers, vanishing clients, limits, concurrency,
//! the environment, and a Python client written from `docs/exec.md` alone.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Proc, Server, TempDir, WAIT, payload, sockit, wait_timeout};

/// An exec server and the token file it created.
struct Exec {
    server: Server,
    token: PathBuf,
    /// A zero-setup `tls://` server's fingerprint, which its clients pin.
    pin: Option<String>,
}

impl Exec {
    /// `sockit exec serve 127.0.0.1:0 --permit echo --permit cat --permit sh --permit
    /// sleep EXTRA...`, reading `listening on` and then `token file: PATH`.
    fn start(extra: &[&str]) -> Exec {
        Exec::start_at("127.0.0.1:0", extra, &[])
    }

    /// The same on `tls://127.0.0.1:0`, zero setup: the clients pin the fingerprint it
    /// prints; with `SOCKIT_LOG` set to show the exec server's log lines.
    fn start_tls(extra: &[&str]) -> Exec {
        Exec::start_at(
            "tls://127.0.0.1:0",
            extra,
            &[("SOCKIT_LOG", "sockit::exec=info")],
        )
    }

    fn start_at(addr: &str, extra: &[&str], env: &[(&str, &str)]) -> Exec {
        let mut args = vec!["exec", "serve", addr];
        for prog in ["echo", "cat", "sh", "sleep", "true"] {
            args.extend(["--permit", prog]);
        }
        args.extend(extra);
        let server = Server::start_env(&args, env);
        let pin = addr.starts_with("tls://").then(|| server.tls_pin());
        let line = server.next_line().expect("a token file line");
        let token = PathBuf::from(
            line.strip_prefix("token file: ")
                .unwrap_or_else(|| panic!("token file line was {line:?}")),
        );
        Exec { server, token, pin }
    }

    /// `sockit exec ADDR --token-file TOKEN OPTS... -- ARGV...`, ready to run.
    fn client(&self, opts: &[&str], argv: &[&str]) -> Command {
        self.client_with_token(&self.token, opts, argv)
    }

    fn client_with_token(&self, token: &Path, opts: &[&str], argv: &[&str]) -> Command {
        let mut cmd = sockit();
        match &self.pin {
            Some(pin) => cmd.args(["exec", &self.server.endpoint, "--pin", pin]),
            None => cmd.args(["exec", &self.server.addr()]),
        };
        cmd.arg("--token-file")
            .arg(token)
            .args(opts)
            .arg("--")
            .args(argv)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a client to its end (bounded by `WAIT`).
    fn run(&self, opts: &[&str], argv: &[&str]) -> Output {
        output_within(self.client(opts, argv))
    }

    fn pid(&self) -> u32 {
        self.server.child.id()
    }
}

fn output_within(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(out) => out.expect("client output"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("client did not finish within {WAIT:?}");
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Live child processes of `pid` (every thread's children), as (pid, name).
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in list.split_whitespace().filter_map(|c| c.parse().ok()) {
            let name = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            out.push((child, name.trim().to_owned()));
        }
    }
    out
}

/// Waits (bounded) until `pid` has no child named `name`; false if one is still there.
fn no_child_named(pid: u32, name: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if !children(pid).iter().any(|(_, n)| n == name) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until `pid` has a child named `name` and returns its pid.
fn child_named(pid: u32, name: &str) -> u32 {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some((c, _)) = children(pid).into_iter().find(|(_, n)| n == name) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "no {name} child of {pid} appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(state.and_then(|s| s.chars().next()), Some('Z') | None)
        })
        .unwrap_or(false)
}

/// The server still runs commands for others.
fn still_serves(exec: &Exec) {
    let out = exec.run(&[], &["echo", "still", "here"]);
    assert_eq!(text(&out.stdout), "still here\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn runs_echo_and_prints_the_token_path_after_listening() {
    let exec = Exec::start(&[]);
    let meta = std::fs::metadata(&exec.token).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 32);
    let out = exec.run(&[], &["echo", "hi"]);
    assert_eq!(text(&out.stdout), "hi\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Absolute path of a permitted name works too.
    let echo = children_path("echo");
    let out = exec.run(&[], &[&echo, "by", "path"]);
    assert_eq!(text(&out.stdout), "by path\n", "{}", text(&out.stderr));
    let token = exec.token.clone();
    let (status, _) = exec.server.stop();
    assert!(status.success());
    assert!(
        !token.exists(),
        "the generated token file is removed on exit"
    );
}

/// Where `sh` finds a program (what the server's PATH lookup finds too).
fn children_path(prog: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .unwrap();
    text(&out.stdout).trim().to_owned()
}

#[test]
fn cat_with_stdin_is_byte_exact_and_stdout_stderr_are_apart() {
    let exec = Exec::start(&[]);
    let data = payload(3 << 20, 7);
    let mut child = exec
        .client(&["--stdin"], &["cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&sent));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        out.stdout == data,
        "cat returned {} bytes",
        out.stdout.len()
    );

    let out = exec.run(&[], &["sh", "-c", "echo out; echo err >&2; echo out2"]);
    assert_eq!(text(&out.stdout), "out\nout2\n");
    assert_eq!(text(&out.stderr), "err\n");

    // Without --stdin the program's input is empty, not the client's terminal.
    let out = exec.run(&[], &["cat"]);
    assert_eq!(out.stdout, b"");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn exit_codes_and_signals_propagate() {
    let exec = Exec::start(&[]);
    assert_eq!(
        exec.run(&[], &["sh", "-c", "exit 3"]).status.code(),
        Some(3)
    );
    assert_eq!(
        exec.run(&[], &["sh", "-c", "kill -9 $$"]).status.code(),
        Some(137)
    );
    assert_eq!(
        exec.run(&[], &["sh", "-c", "kill -15 $$"]).status.code(),
        Some(143)
    );
}

#[test]
fn fifty_mib_of_output_arrive_byte_exact() {
    let dir = TempDir::new("exec-big");
    let data = payload(50 << 20, 50);
    let file = dir.path("big");
    std::fs::write(&file, &data).unwrap();
    let exec = Exec::start(&[]);
    let out = exec.run(&[], &["cat", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "50 MiB differ");
}

#[test]
fn unlisted_programs_and_wrong_tokens_are_refused() {
    let exec = Exec::start(&[]);
    let out = exec.run(&[], &["ls", "/"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("program not allowed: ls"),
        "{}",
        text(&out.stderr)
    );
    // A relative path to a permitted program is not that program.
    let out = exec.run(&[], &["./echo", "x"]);
    assert_eq!(out.status.code(), Some(255));

    let dir = TempDir::new("exec-token");
    let wrong = dir.path("wrong");
    std::fs::write(&wrong, [7u8; 32]).unwrap();
    let out = output_within(exec.client_with_token(&wrong, &[], &["echo", "hi"]));
    assert_eq!(out.status.code(), Some(255));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("wrong token"),
        "{}",
        text(&out.stderr)
    );
    still_serves(&exec);
}

#[test]
fn bad_permits_are_usage_errors() {
    let out = sockit()
        .args([
            "exec",
            "serve",
            "127.0.0.1:0",
            "--permit",
            "no-such-program-xyz",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not found on PATH"));
    let out = sockit()
        .args(["exec", "serve", "127.0.0.1:0", "--permit", "./x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A raw client: reads the challenge frame and returns the socket.
fn raw(exec: &Exec) -> (TcpStream, [u8; 32]) {
    let mut s = TcpStream::connect(exec.server.addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut head = [0u8; 5];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head, [0, 0, 0, 33, b'C']);
    let mut challenge = [0u8; 32];
    s.read_exact(&mut challenge).unwrap();
    (s, challenge)
}

/// Everything the server sends until it closes.
fn read_rest(s: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    rest
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut f = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    f.push(kind);
    f.extend_from_slice(body);
    f
}

fn auth(exec: &Exec, challenge: &[u8; 32]) -> Vec<u8> {
    let token = sockit::exec::read_token_file(&exec.token).unwrap();
    frame(b'A', &token.respond(challenge))
}

#[test]
fn hostile_raw_peers_cost_only_their_own_connection() {
    let exec = Exec::start(&[]);

    // A 4 GiB length header: refused at once, nothing allocated, connection closed.
    let (mut s, _) = raw(&exec);
    s.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    let rest = read_rest(&mut s);
    assert_eq!(rest.get(4), Some(&b'!'), "{rest:?}");
    assert!(text(&rest[5..]).contains("4294967295"), "{}", text(&rest));
    still_serves(&exec);

    // A truncated frame: the peer announces 100 bytes, sends 10 and leaves.
    let (mut s, _) = raw(&exec);
    s.write_all(&[0, 0, 0, 100, b'A', 1, 2, 3, 4, 5, 6, 7, 8, 9])
        .unwrap();
    drop(s);
    still_serves(&exec);

    // Unknown kinds, an empty frame, a short MAC: each refused with a reason.
    for bad in [
        frame(b'Z', b""),
        0u32.to_be_bytes().to_vec(),
        frame(b'A', b"short"),
    ] {
        let (mut s, _) = raw(&exec);
        s.write_all(&bad).unwrap();
        let rest = read_rest(&mut s);
        assert_eq!(rest.get(4), Some(&b'!'), "{bad:?} → {rest:?}");
        assert!(text(&rest).contains("protocol error"), "{}", text(&rest));
    }

    // Bad JSON after a good authentication.
    let (mut s, challenge) = raw(&exec);
    s.write_all(&auth(&exec, &challenge)).unwrap();
    s.write_all(&frame(b'R', b"{\"argv\": [\"echo\"")).unwrap();
    let rest = read_rest(&mut s);
    assert!(text(&rest).contains("bad JSON"), "{}", text(&rest));

    // A command before authenticating.
    let (mut s, _) = raw(&exec);
    s.write_all(&frame(b'R', br#"{"argv":["echo"]}"#)).unwrap();
    let rest = read_rest(&mut s);
    assert!(
        text(&rest).contains("before authentication"),
        "{}",
        text(&rest)
    );

    // Garbage bytes without any framing sense.
    let (mut s, _) = raw(&exec);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let rest = read_rest(&mut s);
    assert!(rest.is_empty() || rest[4] == b'!', "{rest:?}");

    still_serves(&exec);
    assert!(
        children(exec.pid()).is_empty(),
        "{:?}",
        children(exec.pid())
    );
}

#[test]
fn a_client_that_vanishes_mid_run_has_its_program_killed_and_reaped() {
    let exec = Exec::start(&[]);
    let mut client = exec
        .client(&[], &["sh", "-c", "sleep 30 & sleep 30; echo never"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sh = child_named(exec.pid(), "sh");
    // Both sleeps (the background one too) are in the program's process group.
    let sleeps = sleeps_of(sh);
    client.kill().unwrap();
    client.wait().unwrap();
    assert!(
        no_child_named(exec.pid(), "sh", Duration::from_secs(10)),
        "server still has {:?}",
        children(exec.pid())
    );
    assert!(!alive(sh), "sh {sh} survived");
    all_die(&sleeps);
    assert!(children(exec.pid()).is_empty());
    still_serves(&exec);
}

#[test]
fn the_time_limit_kills_the_whole_process_group() {
    let exec = Exec::start(&["--timeout", "1s"]);
    let started = Instant::now();
    let client = exec
        .client(&[], &["sh", "-c", "sleep 30 & echo started; sleep 30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sh = child_named(exec.pid(), "sh");
    let group = sleeps_of(sh);
    let out = client.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(text(&out.stdout), "started\n");
    assert!(
        text(&out.stderr).contains("time limit of 1s exceeded"),
        "{}",
        text(&out.stderr)
    );
    assert!(no_child_named(exec.pid(), "sh", Duration::from_secs(5)));
    assert!(!alive(sh));
    all_die(&group);
    assert!(children(exec.pid()).is_empty());
}

/// Waits (bounded) for `sh` to have started its two sleeps and returns their pids.
fn sleeps_of(sh: u32) -> Vec<u32> {
    let deadline = Instant::now() + WAIT;
    loop {
        let sleeps: Vec<u32> = children(sh)
            .into_iter()
            .filter(|(_, n)| n == "sleep")
            .map(|(p, _)| p)
            .collect();
        if sleeps.len() == 2 {
            return sleeps;
        }
        assert!(
            Instant::now() < deadline,
            "sleeps did not start: {sleeps:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that every process in `pids` is gone within a few seconds.
fn all_die(pids: &[u32]) {
    for &pid in pids {
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid), "process {pid} survived");
    }
}

#[test]
fn client_timeout_gives_up_and_the_server_cleans_up() {
    let exec = Exec::start(&[]);
    let started = Instant::now();
    let out = exec.run(&["--timeout", "500ms"], &["sleep", "30"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("timed out"),
        "{}",
        text(&out.stderr)
    );
    assert!(no_child_named(exec.pid(), "sleep", Duration::from_secs(10)));
}

#[test]
fn the_output_limit_cuts_with_a_refusal() {
    let dir = TempDir::new("exec-limit");
    let data = payload(4 << 20, 4);
    let file = dir.path("four");
    std::fs::write(&file, &data).unwrap();
    let exec = Exec::start(&["--max-output", "1M"]);
    let out = exec.run(&[], &["cat", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(out.stdout.len(), 1 << 20, "exactly the limit arrives");
    assert!(out.stdout[..] == data[..1 << 20]);
    assert!(
        text(&out.stderr).contains("output limit of 1048576 bytes exceeded"),
        "{}",
        text(&out.stderr)
    );
    assert!(no_child_named(exec.pid(), "cat", Duration::from_secs(5)));
    // Exactly at the limit is fine.
    let out = exec.run(&[], &["sh", "-c", "head -c 1048576 /dev/zero"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), 1 << 20);
}

#[test]
fn several_clients_at_once() {
    let exec = Exec::start(&[]);
    let addr = exec.server.addr();
    let token = exec.token.clone();
    let clients: Vec<_> = (0..12)
        .map(|i| {
            let (addr, token) = (addr.clone(), token.clone());
            std::thread::spawn(move || {
                let mut cmd = sockit();
                cmd.args(["exec", &addr, "--token-file"])
                    .arg(&token)
                    .args(["--", "sh", "-c", "sleep 1; echo $0", &format!("n{i}")])
                    .stdin(Stdio::null());
                (i, output_within(cmd))
            })
        })
        .collect();
    let started = Instant::now();
    for c in clients {
        let (i, out) = c.join().unwrap();
        assert_eq!(
            text(&out.stdout),
            format!("n{i}\n"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0));
    }
    // Twelve 0.3 s commands one after another would take 3.6 s.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn over_max_conns_clients_are_told_the_server_is_busy() {
    let exec = Exec::start(&["--max-conns", "1"]);
    let mut first = exec
        .client(&[], &["sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child_named(exec.pid(), "sleep");
    let out = exec.run(&[], &["echo", "hi"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(text(&out.stderr).contains("busy"), "{}", text(&out.stderr));
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(no_child_named(exec.pid(), "sleep", Duration::from_secs(10)));
    // The slot is free again (the server notices the departure, then admits the next).
    let deadline = Instant::now() + WAIT;
    loop {
        let out = exec.run(&[], &["echo", "hi"]);
        if out.status.code() == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "{}", text(&out.stderr));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_program_sees_the_client_address() {
    let exec = Exec::start(&[]);
    let out = exec.run(
        &[],
        &[
            "sh",
            "-c",
            "echo $SOCKIT_REMOTE_ADDR; echo $SOCKIT_REMOTE_PORT",
        ],
    );
    let text = text(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("127.0.0.1"));
    let port: u16 = lines.next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
}

#[test]
fn sigterm_stops_the_server_and_its_running_commands() {
    let exec = Exec::start(&[]);
    let mut client = exec
        .client(&[], &["sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sleep = child_named(exec.pid(), "sleep");
    let (status, _) = exec.server.stop();
    assert!(status.success());
    let status = wait_timeout(&mut client, WAIT).expect("client ends with the server");
    assert_eq!(status.code(), Some(255));
    let mut err = String::new();
    client
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("shutting down"), "{err}");
    assert!(!alive(sleep), "sleep {sleep} outlived the server");
}

#[test]
fn serves_unix_sockets_too() {
    let dir = TempDir::new("exec-unix");
    let sock = dir.path("exec.sock");
    let endpoint = format!("unix:{}", sock.display());
    let server = Server::start(&["exec", "serve", &endpoint, "--permit", "sh"]);
    let token = server.next_line().unwrap();
    let token = token.strip_prefix("token file: ").unwrap();
    let mut cmd = sockit();
    cmd.args(["exec", &endpoint, "--token-file", token, "--"])
        .args(["sh", "-c", "echo $SOCKIT_REMOTE_ADDR; exit 4"])
        .stdin(Stdio::null());
    let out = output_within(cmd);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("unix:"),
        "{}",
        text(&out.stdout)
    );
}

/// A client written from `docs/exec.md` alone: struct, hmac, hashlib, json, socket.
const PYTHON_CLIENT: &str = r#"
import hashlib, hmac, json, socket, struct, sys
host, port, token_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port))
def recv_exact(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise EOFError
        b += c
    return b
def recv_msg():
    (n,) = struct.unpack(">I", recv_exact(4))
    p = recv_exact(n)
    return p[:1], p[1:]
def send_msg(kind, body):
    s.sendall(struct.pack(">I", len(body) + 1) + kind + body)
kind, challenge = recv_msg()
assert kind == b"C" and len(challenge) == 32
send_msg(b"A", hmac.new(open(token_file, "rb").read(), challenge, hashlib.sha256).digest())
send_msg(b"R", json.dumps({"argv": ["echo", "from", "python"]}).encode())
send_msg(b"I", b"")
out = b""
while True:
    kind, body = recv_msg()
    if kind == b"O": out += body
    elif kind == b"X": print(repr(out.decode()), json.loads(body)["code"]); break
    else: sys.exit("unexpected %r %r" % (kind, body))
"#;

#[test]
fn a_python_client_from_the_spec_runs_echo() {
    let exec = Exec::start(&[]);
    let out = Command::new("python3")
        .args(["-c", PYTHON_CLIENT, "127.0.0.1"])
        .arg(exec.server.port().to_string())
        .arg(&exec.token)
        .output()
        .expect("python3 is installed (see .ci/run)");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "'from python\\n' 0\n");
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Before authenticating, a client may send the 33-byte `A` frame and nothing bigger: a
/// header announcing a 16 MiB frame is refused as soon as it arrives, so forty strangers
/// each pushing 4 MiB cost the server next to no memory.
#[test]
fn exec_serve_allows_only_the_auth_frame_before_authentication() {
    let exec = Exec::start(&["--max-strangers", "64"]);
    let before = rss_kib(exec.pid());
    let strangers: Vec<_> = (0..40)
        .map(|_| {
            let (mut s, _) = raw(&exec);
            std::thread::spawn(move || {
                let _ = s.write_all(&(16u32 << 20).to_be_bytes());
                let _ = s.write_all(b"R");
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..64 {
                    if s.write_all(&chunk).is_err() {
                        break;
                    }
                }
                read_rest(&mut s)
            })
        })
        .collect();
    for t in strangers {
        let rest = t.join().unwrap();
        // The refusal may be lost to a reset when the server closes on unread bytes; what
        // arrives says why.
        if rest.len() > 5 {
            assert!(
                text(&rest).contains("exceeds the limit of 33"),
                "{}",
                text(&rest)
            );
        }
    }
    let grown = rss_kib(exec.pid()).saturating_sub(before);
    assert!(grown < 32 * 1024, "the server grew by {grown} KiB");
    still_serves(&exec);
}

/// Strangers that connect and say nothing have their own small pool: a token holder is
/// never told the server is busy because of them.
#[test]
fn exec_serve_strangers_cannot_make_a_token_holder_busy() {
    strangers_cannot_make_a_token_holder_busy(Exec::start(&["--max-conns", "4"]));
}

/// Over TLS the squatters hold connections that never start their handshake: the
/// handshake is a stranger's, in the same pool.
#[test]
fn exec_tls_strangers_cannot_make_a_token_holder_busy() {
    strangers_cannot_make_a_token_holder_busy(Exec::start_tls(&["--max-conns", "4"]));
}

fn strangers_cannot_make_a_token_holder_busy(exec: Exec) {
    let squatters: Vec<_> = (0..64)
        .map(|_| TcpStream::connect(exec.server.addr()).unwrap())
        .collect();
    for _ in 0..25 {
        let out = exec.run(&[], &["echo", "hi"]);
        assert_eq!(text(&out.stdout), "hi\n", "{}", text(&out.stderr));
        assert_eq!(out.status.code(), Some(0));
    }
    drop(squatters);
}

/// A stranger that sends nothing is dropped after a few seconds, not after the 10 s a
/// client has for its command.
#[test]
fn exec_serve_drops_a_silent_stranger_within_seconds() {
    let exec = Exec::start(&[]);
    let started = Instant::now();
    let (mut s, _) = raw(&exec);
    let rest = read_rest(&mut s);
    let waited = started.elapsed();
    assert!(
        text(&rest).contains("timed out waiting for authentication"),
        "{}",
        text(&rest)
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

/// A program that does not read its stdin while the client keeps sending: the client's
/// frames wait unread, and its leaving must still kill the program at once (not at
/// `--timeout`).
#[test]
fn exec_serve_kills_the_program_when_its_client_leaves_with_stdin_backed_up() {
    kills_the_program_when_its_client_leaves(Exec::start(&["--timeout", "5m"]));
}

/// The same over TLS: the hang-up is watched on the socket under it.
#[test]
fn exec_tls_kills_the_program_when_its_client_leaves_with_stdin_backed_up() {
    kills_the_program_when_its_client_leaves(Exec::start_tls(&["--timeout", "5m"]));
}

fn kills_the_program_when_its_client_leaves(exec: Exec) {
    let mut client = exec
        .client(&["--stdin"], &["sleep", "300"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let chunk = vec![b'z'; 64 * 1024];
        // Until the client dies (EPIPE), bounded anyway.
        for _ in 0..16_384 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    child_named(exec.pid(), "sleep");
    // Let stdin back up in the pipes and socket buffers.
    std::thread::sleep(Duration::from_millis(500));
    client.kill().unwrap();
    client.wait().unwrap();
    feeder.join().unwrap();
    assert!(
        no_child_named(exec.pid(), "sleep", Duration::from_secs(5)),
        "the program outlived its client: {:?}",
        children(exec.pid())
    );
    still_serves(&exec);
}

/// A fake server that takes the client's hello and answers `X` with `exit_body`, then
/// closes; returns the client's exit code and stderr.
fn client_against_a_fake_server(exit_body: &str) -> (Option<i32>, String) {
    let tmp = TempDir::new("exec-fake");
    let token = tmp.path("token");
    std::fs::write(&token, b"secret").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let exit = frame(b'X', exit_body.as_bytes());
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(&frame(b'C', &[7; 32])).unwrap();
        // The client's auth, run and empty stdin come in one write; their content does
        // not matter to this server.
        let mut hello = [0u8; 4096];
        let _ = s.read(&mut hello).unwrap();
        s.write_all(&exit).unwrap();
    });
    let mut cmd = sockit();
    cmd.args(["exec", &addr, "--token-file"])
        .arg(&token)
        .args(["--", "true"])
        .stdin(Stdio::null());
    let out = output_within(cmd);
    server.join().unwrap();
    (out.status.code(), text(&out.stderr))
}

#[test]
fn exec_client_rejects_an_impossible_signal() {
    // What a real server can say still comes through.
    assert_eq!(
        client_against_a_fake_server(r#"{"signal": 9}"#).0,
        Some(137)
    );
    assert_eq!(client_against_a_fake_server(r#"{"code": 3}"#).0, Some(3));
    for body in [
        r#"{"signal": -1}"#,
        r#"{"signal": 0}"#,
        r#"{"signal": 65}"#,
        r#"{"signal": -128}"#,
        r#"{"code": -1}"#,
        r#"{"code": 256}"#,
    ] {
        let (code, err) = client_against_a_fake_server(body);
        assert_eq!(code, Some(255), "{body}: {err}");
        assert!(err.contains("expected"), "{body}: {err}");
    }
}

/// A server that authenticates nobody: it sends a challenge, reads the client's first
/// frames, then refuses with a reason full of terminal escapes.
const HOSTILE_SERVER: &str = r#"
import os, socket, struct, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
s.settimeout(20)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
c.settimeout(20)
def frame(kind, body=b""):
    c.sendall(struct.pack(">I", 1 + len(body)) + kind + body)
def recv():
    n = struct.unpack(">I", c.recv(4, socket.MSG_WAITALL))[0]
    return c.recv(n, socket.MSG_WAITALL)
frame(b"C", os.urandom(32))
recv()  # A
recv()  # R
frame(b"!", b"denied\x1b]0;pwned\x07\x1b[2J here")
c.close()
"#;

#[test]
fn exec_escapes_the_servers_refusal() {
    let dir = TempDir::new("exec-escape");
    let token = dir.path("token");
    std::fs::write(&token, b"any token").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut server = crate::util::Proc::python(HOSTILE_SERVER, &[]);
    let port = server.first_line();
    let out = output_within({
        let mut cmd = sockit();
        cmd.args([
            "exec",
            &format!("127.0.0.1:{}", port.trim()),
            "--token-file",
        ])
        .arg(&token)
        .args(["--", "true"])
        .stdin(Stdio::null());
        cmd
    });
    let _ = server.wait_exit(WAIT);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("denied\\x1b]0;pwned\\x07"), "{err:?}");
    assert!(!err.contains('\x1b'), "ESC on stderr: {err:?}");
    assert!(!out.stdout.contains(&0x1b), "ESC on stdout");
}

/// `exec tls://` against a zero-setup `exec serve tls://`, trusted by `--pin`: 3 MiB of
/// stdin through `cat` and back byte-exact, stdout and stderr apart, the exit code
/// carried; a wrong pin is refused before anything is sent, in one line.
#[test]
fn exec_tls_is_byte_exact_carries_exit_codes_and_refuses_a_wrong_pin() {
    let exec = Exec::start_tls(&[]);
    assert!(
        exec.server.endpoint.starts_with("tls://"),
        "{}",
        exec.server.endpoint
    );
    let data = payload(3 << 20, 7);
    let mut cat = Proc::spawn(exec.client(&["--stdin"], &["cat"]));
    cat.feed_and_close(data.clone());
    assert_eq!(cat.wait_exit(WAIT).code(), Some(0), "{}", cat.stderr());
    assert!(cat.stdout() == data, "cat over TLS was not byte-exact");

    let out = exec.run(&[], &["sh", "-c", "printf out; printf err >&2; exit 7"]);
    assert_eq!(text(&out.stdout), "out");
    assert_eq!(text(&out.stderr), "err");
    assert_eq!(out.status.code(), Some(7));

    let wrong = format!("sha256:{}", "ab".repeat(32));
    let mut cmd = sockit();
    cmd.args([
        "exec",
        &exec.server.endpoint,
        "--pin",
        &wrong,
        "--token-file",
    ])
    .arg(&exec.token)
    .args(["--", "echo", "never"])
    .stdin(Stdio::null());
    let out = output_within(cmd);
    let err = text(&out.stderr);
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    // Exec's "did not run" status, as for any connection that failed.
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("sockit: ") && err.contains("pin mismatch"),
        "{err}"
    );
    // The server logged the refusal in one line, and serves on.
    let line = tls_refusal(&exec);
    assert!(
        line.contains("the client broke off the handshake"),
        "{line}"
    );
    still_serves(&exec);
}

/// A client speaking plain text to the TLS port and one that stalls half-way through
/// its handshake each lose their own connection (one log line each, the stalled one
/// within the 3 s a stranger has), while a TLS client's command runs on unharmed.
#[test]
fn exec_tls_refuses_plain_text_and_a_stalled_handshake_without_harming_a_tls_client() {
    let exec = Exec::start_tls(&[]);
    let mut cat = Proc::spawn(exec.client(&["--stdin"], &["cat"]));
    cat.write(b"before\n");
    cat.wait_stdout_contains("before\n");

    let port = exec.server.port().to_string();
    let mut plain = Proc::python(crate::util::PY_PLAIN_TO_TLS, &[&port]);
    assert_eq!(plain.wait_exit(WAIT).code(), Some(0), "{}", plain.stderr());
    assert_eq!(text(&plain.stdout()).trim(), "closed");
    let line = tls_refusal(&exec);
    assert!(line.contains("does not speak TLS"), "{line}");

    let started = Instant::now();
    let mut stalled = Proc::python(crate::util::PY_STALLED_HANDSHAKE, &[&port]);
    assert_eq!(
        stalled.wait_exit(WAIT).code(),
        Some(0),
        "{}",
        stalled.stderr()
    );
    assert_eq!(text(&stalled.stdout()).trim(), "closed");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(8), "{waited:?}");
    let line = tls_refusal(&exec);
    assert!(line.contains("timed out after 3s"), "{line}");

    cat.write(b"after\n");
    cat.wait_stdout_contains("after\n");
    cat.close_stdin();
    assert_eq!(cat.wait_exit(WAIT).code(), Some(0), "{}", cat.stderr());
    assert_eq!(cat.stdout(), b"before\nafter\n");
}

/// The server's next `TLS connection refused` log line (other log lines skipped).
fn tls_refusal(exec: &Exec) -> String {
    loop {
        let line = exec.server.next_line().expect("a TLS refusal in the log");
        if line.contains("TLS connection refused") {
            return line;
        }
    }
}

/// `exec serve tls://` with the user's own certificate and key (openssl's; no
/// fingerprint line then), trusted by `exec --cacert`; a client that trusts only the
/// system's roots is refused in one line saying what is wrong with the certificate.
#[test]
fn exec_tls_with_cert_and_key_is_trusted_by_cacert() {
    let dir = TempDir::new("exec-tls-cert");
    let (cert, key) = crate::util::openssl_cert(&dir, "localhost");
    let mut args = vec!["exec", "serve", "tls://127.0.0.1:0", "--permit", "echo"];
    args.extend(["--cert", &cert, "--key", &key]);
    let server = Server::start(&args);
    let line = server.next_line().expect("a token file line");
    let token = line
        .strip_prefix("token file: ")
        .unwrap_or_else(|| panic!("no fingerprint line expected, got {line:?}"))
        .to_owned();
    let client = |trust: &[&str]| {
        let mut cmd = sockit();
        cmd.args(["exec", &server.endpoint, "--token-file", &token])
            .args(trust)
            .args(["--", "echo", "trusted"])
            .stdin(Stdio::null());
        output_within(cmd)
    };
    let out = client(&["--cacert", &cert]);
    assert_eq!(text(&out.stdout), "trusted\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
    let out = client(&[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("sockit: TLS handshake: the server's certificate "),
        "{err}"
    );
}
