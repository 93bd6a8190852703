//! `ping --tcp` (open, refused, and a full accept queue that drops the SYN) and sweeps of
//! `check` and `ping` over several 127.0.0.x addresses with listeners on some of them:
//! blocks, ranges and stdin parse to the right hosts, and each host gets its own result.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Output, Stdio};

use crate::check::{free_port, full_backlog};
use crate::util::sockit;

fn run(args: &[&str]) -> Output {
    sockit().args(args).output().expect("spawn sockit")
}

fn with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = sockit()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sockit");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// One JSON object per line.
fn objects(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Listeners on `127.0.0.{last}` for each of `lasts`, all on one port.
fn listeners_on(lasts: &[u8]) -> (Vec<TcpListener>, u16) {
    for _ in 0..20 {
        let first = TcpListener::bind(format!("127.0.0.{}:0", lasts[0])).unwrap();
        let port = first.local_addr().unwrap().port();
        let rest: Result<Vec<_>, _> = lasts[1..]
            .iter()
            .map(|l| TcpListener::bind(format!("127.0.0.{l}:{port}")))
            .collect();
        if let Ok(mut rest) = rest {
            rest.insert(0, first);
            return (rest, port);
        }
    }
    panic!("no port free on every address");
}

#[test]
fn tcp_ping_open_port_counts_every_handshake() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let out = run(&["ping", "--tcp", &port, "127.0.0.1", "-c", "3", "-i", "0.2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("PING 127.0.0.1 (127.0.0.1) TCP port {port}.\n")),
        "{text}"
    );
    for seq in 1..=3 {
        let line = format!("127.0.0.1:{port}: tcp_seq={seq} open time=");
        assert!(text.contains(&line), "{line} missing in {text}");
    }
    assert!(text.contains("--- 127.0.0.1 ping statistics ---"), "{text}");
    assert!(
        text.contains("3 probes transmitted, 3 received, 0% packet loss"),
        "{text}"
    );
    assert!(text.contains("rtt min/avg/max/mdev = "), "{text}");
    // Three probes 200 ms apart: the run lasts at least 400 ms.
    let time: u64 = text
        .split("packet loss, time ")
        .nth(1)
        .and_then(|t| t.split("ms").next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no time in {text}"));
    assert!(time >= 400, "{time} ms for -c 3 -i 0.2");
}

#[test]
fn tcp_ping_json_open_refused_and_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = l.local_addr().unwrap().port().to_string();
    let out = run(&[
        "ping",
        "--tcp",
        &open,
        "127.0.0.1",
        "-c",
        "2",
        "-i",
        "0.05",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc = &objects(&out)[0];
    assert_eq!(doc["socket"], "tcp");
    assert_eq!(doc["port"].as_u64(), Some(open.parse().unwrap()));
    assert_eq!(
        (doc["transmitted"].as_u64(), doc["received"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(doc["replies"][1]["state"], "open");
    assert!(doc["rtt_ms"]["max"].as_f64().unwrap() > 0.0);

    let closed = free_port("127.0.0.1").to_string();
    let out = run(&[
        "ping",
        "--tcp",
        &closed,
        "127.0.0.1",
        "-c",
        "2",
        "-i",
        "0.05",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "nothing open: exit 1");
    let doc = &objects(&out)[0];
    assert_eq!(
        (doc["received"].as_u64(), doc["refused"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(doc["replies"][0]["state"], "refused");
    assert_eq!(doc["loss_percent"].as_f64(), Some(100.0));

    // A listener whose accept queue is full drops the SYN: no answer within -W.
    let (_l, _fillers, filtered) = full_backlog();
    let out = run(&[
        "ping",
        "--tcp",
        &filtered.to_string(),
        "127.0.0.1",
        "-c",
        "1",
        "-W",
        "300ms",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let doc = &objects(&out)[0];
    assert_eq!(doc["replies"][0]["state"], "timeout");
    assert!(doc["replies"][0]["time_ms"].as_f64().unwrap() >= 300.0);
    assert_eq!(doc["received"].as_u64(), Some(0));
}

#[test]
fn check_sweeps_a_range_a_block_and_stdin_host_by_host() {
    let (_ls, port) = listeners_on(&[2, 4]);
    let p = port.to_string();
    let expect_open = |docs: &[serde_json::Value], hosts: &[&str]| {
        let got: Vec<&str> = docs.iter().map(|d| d["host"].as_str().unwrap()).collect();
        assert_eq!(got, hosts);
        for d in docs {
            let open = matches!(d["host"].as_str().unwrap(), "127.0.0.2" | "127.0.0.4");
            assert_eq!(d["open"].as_u64(), Some(u64::from(open)), "{d}");
            assert_eq!(d["closed"].as_u64(), Some(u64::from(!open)), "{d}");
            if open {
                assert_eq!(d["ports"][0]["port"].as_u64(), Some(u64::from(port)));
                assert_eq!(d["ports"][0]["state"], "open");
            }
        }
    };
    let out = run(&["check", "127.0.0.1-5", &p, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    expect_open(
        &objects(&out),
        &[
            "127.0.0.1",
            "127.0.0.2",
            "127.0.0.3",
            "127.0.0.4",
            "127.0.0.5",
        ],
    );

    let out = run(&["check", "127.0.0.0/29", &p, "--json", "--all"]);
    expect_open(
        &objects(&out),
        &[
            "127.0.0.1",
            "127.0.0.2",
            "127.0.0.3",
            "127.0.0.4",
            "127.0.0.5",
            "127.0.0.6",
        ],
    );

    let out = with_stdin(
        &["check", "-", "127.0.0.9", &p, "--json"],
        "127.0.0.3 # a comment\n\n127.0.0.4 127.0.0.3\n",
    );
    expect_open(&objects(&out), &["127.0.0.3", "127.0.0.4", "127.0.0.9"]);

    // Text: a heading per host with open ports, a summary line per host on stderr.
    let out = run(&["check", "127.0.0.2", "127.0.0.3", &p]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], "127.0.0.2:");
    assert!(
        lines[1].starts_with(&format!("{port}/tcp ")) && lines[1].contains(" open "),
        "{text}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("127.0.0.2: 1 open, 0 closed") && err.contains("127.0.0.3: 0 open, 1 closed"),
        "{err}"
    );

    // Nothing open on any host: exit 1.
    let out = run(&["check", "127.0.0.3", "127.0.0.5", &p]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn ping_sweeps_report_each_host() {
    let (_ls, port) = listeners_on(&[2, 3]);
    let p = port.to_string();
    let out = run(&["ping", "--tcp", &p, "127.0.0.1-3", "-c", "1", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let docs = objects(&out);
    let got: Vec<(&str, u64, u64)> = docs
        .iter()
        .map(|d| {
            (
                d["host"].as_str().unwrap(),
                d["received"].as_u64().unwrap(),
                d["refused"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("127.0.0.1", 0, 1),
            ("127.0.0.2", 1, 0),
            ("127.0.0.3", 1, 0)
        ]
    );
    assert!(
        stderr(&out).contains("2 of 3 hosts answered"),
        "{}",
        stderr(&out)
    );

    let out = with_stdin(
        &["ping", "--tcp", &p, "-", "-c", "1"],
        "127.0.0.2\n127.0.0.5\n",
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("127.0.0.2:{p}: tcp_seq=1 open")),
        "{text}"
    );
    assert!(
        text.contains(&format!("127.0.0.5:{p}: tcp_seq=1 refused")),
        "{text}"
    );
    assert!(
        text.contains("--- 127.0.0.2 ping statistics ---")
            && text.contains("--- 127.0.0.5 ping statistics ---"),
        "{text}"
    );
}

#[test]
fn bad_targets_are_one_line_usage_errors() {
    for args in [
        &["check", "127.0.0.1-300", "80"][..],
        &["check", "10.0.0.0/8", "80"],
        &["check", "127.0.0.9-1", "80"],
        &["check", "127.0.0.0/33", "80"],
        &["ping", "--tcp", "80", "127.0.0.1", "1.2.3.4.5"],
        &["ping", "-c", "1", "10.0.0.0/7"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).trim_end().lines().count(),
            1,
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = with_stdin(&["check", "-", "80"], "# nothing\n");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
