//! Server limits under every stream model: `--max-conns`, `--idle-timeout`, `--allow` /
//! `--deny`, graceful shutdown with a client connected, and `select`'s FD_SETSIZE.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::echo::STREAM_MODELS;
use crate::util::Server;

/// Models that serve connections at the same time (`blocking` serves one after another,
/// so "two clients at once" means nothing to it).
fn concurrent_models() -> impl Iterator<Item = &'static str> {
    STREAM_MODELS.iter().copied().filter(|m| *m != "blocking")
}

/// How a probe of a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// The bytes came back.
    Echoed,
    /// The server closed the connection (EOF or reset) without echoing.
    Closed,
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends a few bytes and says whether they came back or the connection was closed; a
/// server that does neither within the read timeout fails the test.
fn probe(mut s: &TcpStream) -> Probe {
    if s.write_all(b"ping").is_err() {
        return Probe::Closed;
    }
    let mut buf = [0u8; 4];
    match s.read_exact(&mut buf) {
        Ok(()) => {
            assert_eq!(&buf, b"ping", "echo garbled");
            Probe::Echoed
        }
        Err(e) if closed(&e) => Probe::Closed,
        Err(e) => panic!("neither echoed nor closed: {e}"),
    }
}

fn closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
    )
}

/// Waits (bounded) until the server closes `s`: EOF or reset, not a timeout. (A signal
/// handled in this process, such as tokio's SIGCHLD, interrupts a read that has a
/// timeout: that is no answer, so it reads again.)
fn assert_closed_by_server(mut s: &TcpStream, what: &str) {
    let mut buf = [0u8; 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => panic!("{what}: got {n} unexpected bytes"),
            Err(e) if closed(&e) => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("{what}: not closed by the server: {e}"),
        }
    }
}

/// Probes fresh connections until one is echoed (the server may take a moment to notice
/// that a slot was freed); panics after a few seconds.
fn eventually_admitted(server: &Server, what: &str) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = connect(server);
        if probe(&s) == Probe::Echoed {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: never admitted again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn max_conns_refuses_the_third_client_and_admits_after_a_close() {
    for model in concurrent_models() {
        let server = Server::start(&["echo", "127.0.0.1:0", "--model", model, "--max-conns", "2"]);
        let a = connect(&server);
        let b = connect(&server);
        assert_eq!(probe(&a), Probe::Echoed, "{model}: first client");
        assert_eq!(probe(&b), Probe::Echoed, "{model}: second client");
        let c = connect(&server);
        assert_eq!(probe(&c), Probe::Closed, "{model}: third client admitted");
        assert_eq!(
            probe(&a),
            Probe::Echoed,
            "{model}: first client after refusal"
        );
        assert_eq!(
            probe(&b),
            Probe::Echoed,
            "{model}: second client after refusal"
        );
        drop(a);
        let d = eventually_admitted(&server, model);
        assert_eq!(probe(&b), Probe::Echoed, "{model}");
        drop((b, c, d));
        assert!(server.stop().0.success(), "{model}");
    }
}

#[test]
fn idle_timeout_closes_idle_clients_and_spares_active_ones() {
    for model in STREAM_MODELS {
        let server = Server::start(&[
            "echo",
            "127.0.0.1:0",
            "--model",
            model,
            "--idle-timeout",
            // Long against the active client's 50 ms gaps, so a loaded machine's stalls
            // cannot make the active client look idle.
            "1s",
        ]);
        let idle = connect(&server);
        assert_eq!(probe(&idle), Probe::Echoed, "{model}");
        let since = Instant::now();
        if *model != "blocking" {
            let active = connect(&server);
            // Well inside the timeout: the machine may be busy with other tests.
            for _ in 0..40 {
                assert_eq!(probe(&active), Probe::Echoed, "{model}: active client");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        assert_closed_by_server(&idle, model);
        let took = since.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{model}: idle client closed after {took:?}"
        );
        assert!(server.stop().0.success(), "{model}");
    }
}

#[test]
fn allow_and_deny_lists_refuse_and_deny_wins() {
    let cases: [(&[&str], Probe); 4] = [
        (&["--deny", "127.0.0.1"], Probe::Closed),
        (
            &["--allow", "127.0.0.0/8", "--deny", "127.0.0.1"],
            Probe::Closed,
        ),
        (&["--allow", "10.0.0.0/8"], Probe::Closed),
        // The refusals above are not a server that refuses everyone.
        (&["--allow", "127.0.0.0/8"], Probe::Echoed),
    ];
    for model in STREAM_MODELS {
        for (flags, expected) in cases {
            let mut args = vec!["echo", "127.0.0.1:0", "--model", model];
            args.extend_from_slice(flags);
            let server = Server::start(&args);
            let s = connect(&server);
            assert_eq!(probe(&s), expected, "{model} {flags:?}");
            drop(s);
            assert!(server.stop().0.success(), "{model} {flags:?}");
        }
    }
}

#[test]
fn sigterm_with_a_client_connected_exits_0_promptly() {
    for model in STREAM_MODELS {
        let server = Server::start(&["echo", "127.0.0.1:0", "--model", model]);
        let s = connect(&server);
        assert_eq!(probe(&s), Probe::Echoed, "{model}");
        let start = Instant::now();
        let (status, _) = server.stop();
        let took = start.elapsed();
        assert!(status.success(), "{model}: exit {status}");
        assert!(
            took < Duration::from_secs(4),
            "{model}: took {took:?} to stop"
        );
        assert_closed_by_server(&s, model);
    }
}

/// Clients for the FD_SETSIZE test: more than `select` can watch (1024 descriptors,
/// some of which the server already uses).
const MANY: usize = 1_100;

/// Lets this process, and the servers it spawns afterwards (they inherit it), open more
/// than 1024 descriptors, so the server really gets descriptors beyond FD_SETSIZE.
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let want = 4096;
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|c| c >= want) {
        return;
    }
    let current = limit.maximum.map_or(want, |max| max.min(want));
    assert!(
        current >= 2 * MANY as u64,
        "RLIMIT_NOFILE hard limit {:?} is too low for this test",
        limit.maximum
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(current),
            maximum: limit.maximum,
        },
    )
    .expect("raise RLIMIT_NOFILE");
}

/// Opens `MANY` clients at once and probes each: which were echoed, in connection order.
fn probe_many(server: &Server) -> Vec<Probe> {
    let clients: Vec<TcpStream> = (0..MANY).map(|_| connect(server)).collect();
    clients.iter().map(probe).collect()
}

#[test]
fn select_refuses_descriptors_beyond_fd_setsize_and_keeps_serving() {
    raise_fd_limit();
    let mut server = Server::start(&["echo", "127.0.0.1:0", "--model", "select"]);
    let outcomes = probe_many(&server);
    let served = outcomes.iter().filter(|p| **p == Probe::Echoed).count();
    // The listener, the shutdown pipe, stdio and the like take a few descriptors below
    // 1024; every connection that got one of the rest was served, the others refused.
    assert!(
        (900..1024).contains(&served),
        "{served} of {MANY} clients served"
    );
    // Accepted in connection order: the served ones are exactly the first ones.
    assert!(
        outcomes[..served].iter().all(|p| *p == Probe::Echoed),
        "a client was refused before the server ran out of low descriptors"
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died"
    );
    let fresh = eventually_admitted(&server, "select after the flood");
    drop(fresh);
    let (status, stderr) = server.stop();
    assert!(status.success(), "exit {status}");
    assert!(stderr.contains("FD_SETSIZE"), "no warning logged: {stderr}");
    assert!(
        stderr.lines().count() < 20,
        "one warning per refused client floods the log:\n{stderr}"
    );
}

#[test]
fn poll_serves_beyond_fd_setsize() {
    raise_fd_limit();
    let server = Server::start(&["echo", "127.0.0.1:0", "--model", "poll"]);
    let outcomes = probe_many(&server);
    assert!(outcomes.iter().all(|p| *p == Probe::Echoed));
    assert!(server.stop().0.success());
}

/// Runs `sockit ARGS` to its end with no stdin; its exit code and stderr.
fn run_to_end(args: &[&str]) -> (Option<i32>, String) {
    let out = crate::util::sockit()
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run sockit");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Limits that would refuse everything, malformed hosts and paths the kernel cannot hold
/// are usage errors (exit 2, one line naming the problem), found before anything is bound
/// or looked up; a huge argument is not echoed whole.
#[test]
fn cli_rejects_zero_limits_malformed_hosts_and_long_paths_as_usage_errors() {
    let long_path = format!("unix:/tmp/{}", "a".repeat(120));
    let cases: &[(&[&str], &str)] = &[
        (&["echo", "127.0.0.1:0", "--max-conns", "0"], "at least 1"),
        (
            &["echo", "127.0.0.1:0", "--idle-timeout", "0s"],
            "more than 0",
        ),
        (
            &["http", "serve", ".", "127.0.0.1:0", "--max-conns", "0"],
            "at least 1",
        ),
        (
            &["recv", "127.0.0.1:0", "--dir", ".", "--max-conns", "0"],
            "at least 1",
        ),
        (
            &["recv", "127.0.0.1:0", "--dir", ".", "--idle-timeout", "0s"],
            "more than 0",
        ),
        (
            &["exec", "serve", "127.0.0.1:0", "--max-conns", "0"],
            "at least 1",
        ),
        (
            &["chat", "serve", "127.0.0.1:0", "--max-conns", "0"],
            "at least 1",
        ),
        (&["connect", "256.1.1.1:80"], "not an IPv4 address"),
        (&["connect", "[fe80::1%eth0]:80"], "zone ids"),
        (&["connect", "[::1:80"], "unclosed"),
        (&["connect", "udp://[127.0.0.1]:80"], "not an IPv6 address"),
        (&["check", "256.1.1.1", "80"], "not an IPv4 address"),
        (&["echo", &long_path], "at most 107"),
    ];
    for (args, why) in cases {
        let (code, stderr) = run_to_end(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    }
    let huge = "a".repeat(100_000);
    let (code, stderr) = run_to_end(&["connect", &huge]);
    assert_eq!(code, Some(2), "{stderr:.300}");
    assert!(stderr.len() < 500, "{} bytes of error", stderr.len());
    assert!(stderr.contains("(100000 bytes)"), "{stderr}");
}

/// Every size argument takes the same suffixes.
#[test]
fn size_arguments_take_the_same_suffixes_everywhere() {
    let server = Server::start(&[
        "chat",
        "serve",
        "127.0.0.1:0",
        "--max-queue",
        "16M",
        "--max-line",
        "8K",
        "--send-buffer",
        "32KiB",
    ]);
    drop(server);
    let (code, stderr) = run_to_end(&["exec", "serve", "127.0.0.1:0", "--max-output", "1.5G"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unknown unit"), "{stderr}");
}
