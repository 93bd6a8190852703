//! Raw sockets: `ping` over loopback and inside network namespaces the tests make (silent
//! addresses, the datagram socket, the "not permitted" message), and `check --syn` against
//! listeners the test opens, with no half-open connection left behind.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::{Command, Output};

use crate::check::{free_port, full_backlog};
use crate::util::sockit;

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A network namespace of this test alone, deleted on drop (also when the test fails).
struct Netns(String);

impl Netns {
    /// A fresh namespace with `lo` up, or `None` (and a note) where namespaces cannot be made.
    fn new(tag: &str) -> Option<Netns> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "sockit-it-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let made = Command::new("ip").args(["netns", "add", &name]).output();
        if !made.is_ok_and(|o| o.status.success()) {
            eprintln!("skipped: cannot create network namespace {name}");
            return None;
        }
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        Some(ns)
    }

    /// `ip -n NS ARGS`, which must succeed.
    fn ip(&self, args: &[&str]) {
        let out = run(Command::new("ip").args(["-n", &self.0]).args(args));
        assert!(out.status.success(), "ip {args:?}: {}", text(&out).1);
    }

    fn sysctl(&self, setting: &str) {
        let out = run(self.exec("sysctl").args(["-w", setting]));
        assert!(out.status.success(), "sysctl {setting}: {}", text(&out).1);
    }

    /// A command run inside the namespace.
    fn exec(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .output();
    }
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).stdout.trim_ascii() == b"0"
}

#[test]
fn ping_loopback_v4_and_v6() {
    if !is_root() {
        eprintln!("skipped: raw ICMP needs root here");
        return;
    }
    for host in ["127.0.0.1", "::1"] {
        let out = run(sockit().args(["ping", "-c", "3", "-i", "0.2", host]));
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{host}: {stdout}{stderr}");
        assert_eq!(
            stdout
                .matches(&format!("bytes from {host}: icmp_seq="))
                .count(),
            3,
            "{stdout}"
        );
        for seq in 1..=3 {
            assert!(
                stdout.contains(&format!("icmp_seq={seq} ttl=64 time=")),
                "{stdout}"
            );
        }
        assert!(
            stdout.contains(&format!("--- {host} ping statistics ---")),
            "{stdout}"
        );
        assert!(
            stdout.contains("3 packets transmitted, 3 received, 0% packet loss"),
            "{stdout}"
        );
        assert!(stdout.contains("rtt min/avg/max/mdev = "), "{stdout}");
    }
}

#[test]
fn ping_json_counts_replies() {
    if !is_root() {
        return;
    }
    let out = run(sockit().args(["ping", "-c", "2", "-i", "0.1", "--json", "127.0.0.1"]));
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["transmitted"], 2);
    assert_eq!(doc["received"], 2);
    assert_eq!(doc["replies"].as_array().unwrap().len(), 2);
    assert!(doc["rtt_ms"]["min"].as_f64().unwrap() > 0.0);
}

#[test]
fn ping_without_an_answer_loses_everything_and_exits_1() {
    let Some(ns) = Netns::new("silent") else {
        return;
    };
    // A veth pair whose far end has no address: ARP for 192.0.2.2 goes unanswered, so the
    // echoes vanish. A blackhole route refuses them at send.
    ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "v0"]);
    ns.ip(&["link", "set", "v0", "up"]);
    ns.ip(&["link", "set", "v1", "up"]);
    ns.ip(&["route", "add", "blackhole", "198.51.100.0/24"]);
    let bin = env!("CARGO_BIN_EXE_sockit");
    for target in ["192.0.2.2", "198.51.100.1"] {
        let out = run(ns
            .exec(bin)
            .args(["ping", "-c", "2", "-i", "0.2", "-W", "500ms", target]));
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{target}: {stdout}{stderr}");
        assert!(
            stdout.contains("2 packets transmitted, 0 received")
                && stdout.contains("100% packet loss"),
            "{target}: {stdout}"
        );
        assert!(!stdout.contains("bytes from"), "{stdout}");
        assert!(!stdout.contains("rtt min"), "{stdout}");
    }
}

#[test]
fn ping_uses_the_datagram_socket_where_ping_group_range_allows() {
    let Some(ns) = Netns::new("dgram") else {
        return;
    };
    ns.sysctl("net.ipv4.ping_group_range=0 2147483647");
    let bin = env!("CARGO_BIN_EXE_sockit");
    for host in ["127.0.0.1", "::1"] {
        let out = run(ns
            .exec(bin)
            .args(["ping", "-c", "2", "-i", "0.1", "--json", host]));
        assert_eq!(out.status.code(), Some(0), "{host}: {:?}", text(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["socket"], "datagram", "{doc}");
        assert_eq!(doc["received"], 2, "{doc}");
        assert_eq!(doc["replies"][0]["ttl"], 64, "{doc}");
    }
    // Even as an unprivileged user: that is what the datagram socket is for.
    let out = run(ns.exec("setpriv").args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        bin,
        "ping",
        "-c",
        "1",
        "127.0.0.1",
    ]));
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
}

#[test]
fn ping_says_why_when_no_icmp_socket_is_permitted() {
    let Some(ns) = Netns::new("denied") else {
        return;
    };
    ns.sysctl("net.ipv4.ping_group_range=1 0");
    let bin = env!("CARGO_BIN_EXE_sockit");
    let out = run(ns.exec("setpriv").args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        bin,
        "ping",
        "-c",
        "1",
        "127.0.0.1",
    ]));
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot open an ICMP socket")
            && stderr.contains("ping_group_range is \"1 0\"")
            && stderr.contains("root"),
        "{stderr}"
    );

    // The SYN scan is root only, and says so.
    let out = run(ns.exec("setpriv").args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        bin,
        "check",
        "127.0.0.1",
        "80",
        "--syn",
    ]));
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("needs root or CAP_NET_RAW"), "{stderr}");
}

#[test]
fn ping_usage_errors_exit_2() {
    for args in [
        &["ping"][..],
        &["ping", "-c", "0", "127.0.0.1"],
        &["ping", "-4", "-6", "127.0.0.1"],
        &["ping", "-6", "127.0.0.1"],
        &["ping", "-s", "70000", "127.0.0.1"],
        &["ping", "-i", "soon", "127.0.0.1"],
    ] {
        let out = run(sockit().args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {:?}", text(&out));
    }
}

/// Ports with a SYN-RECV (half-open) entry, from `ss`.
fn half_open_ports() -> BTreeSet<u16> {
    let out = run(Command::new("ss").args(["-Htan", "state", "syn-recv"]));
    text(&out)
        .0
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter_map(|local| local.rsplit_once(':')?.1.parse().ok())
        .collect()
}

#[test]
fn syn_scan_finds_exactly_the_listeners_and_leaves_nothing_half_open() {
    if !is_root() {
        eprintln!("skipped: a SYN scan needs root");
        return;
    }
    for host in ["127.0.0.1", "::1"] {
        let listeners: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind((host, 0)).unwrap())
            .collect();
        let open: BTreeSet<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let closed: BTreeSet<u16> = (0..30).map(|_| free_port(host)).collect();
        let list: Vec<String> = open.iter().chain(&closed).map(|p| p.to_string()).collect();
        let list = list.join(",");
        let args = [
            "check",
            host,
            &list,
            "--all",
            "--json",
            "--timeout",
            "500ms",
        ];
        let out = run(sockit().args(args).arg("--syn"));
        assert_eq!(out.status.code(), Some(0), "{host}: {:?}", text(&out));
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let with = |state: &str| -> BTreeSet<u16> {
            rows.as_array()
                .unwrap()
                .iter()
                .filter(|r| r["state"] == state)
                .map(|r| r["port"].as_u64().unwrap() as u16)
                .collect()
        };
        assert_eq!(with("open"), open, "{host}");
        assert_eq!(with("closed"), closed, "{host}");
        assert!(with("filtered").is_empty(), "{host}");

        let half_open = half_open_ports();
        assert!(
            half_open.is_disjoint(&open),
            "{host}: half-open connections left on {:?}",
            half_open.intersection(&open).collect::<Vec<_>>()
        );
        // Nothing was completed either: no listener has a connection to accept.
        for l in &listeners {
            l.set_nonblocking(true).unwrap();
            assert!(
                l.accept().is_err(),
                "{host}: a SYN scan completed a handshake"
            );
        }
        // The connect scan prints the same thing.
        let connect = run(sockit().args(args));
        assert_eq!(
            text(&connect).0,
            text(&out).0,
            "{host}: --syn output differs"
        );
    }
}

#[test]
fn syn_scan_calls_silence_filtered_and_prints_like_the_connect_scan() {
    if !is_root() {
        return;
    }
    let (_listener, _fillers, filtered) = full_backlog();
    let closed = free_port("127.0.0.1");
    let list = format!("{filtered},{closed}");
    let out = run(sockit().args([
        "check",
        "127.0.0.1",
        &list,
        "--syn",
        "--all",
        "--timeout",
        "300ms",
    ]));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "no port open: {stdout}{stderr}");
    let line = |p: u16| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{p}/tcp")))
            .unwrap()
    };
    assert!(line(filtered).contains("filtered"), "{stdout}");
    assert!(line(closed).contains("closed"), "{stdout}");
    assert!(stderr.contains("0 open, 1 closed, 1 filtered"), "{stderr}");
}
