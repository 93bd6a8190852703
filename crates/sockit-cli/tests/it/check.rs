//! `sockit check` against listeners the test opens itself (open), ports nobody listens on
//! (closed) and a listener whose accept queue is full (filtered: the kernel drops the SYN).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use crate::util::sockit;

pub fn free_port(host: &str) -> u16 {
    TcpListener::bind((host, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A listener with a backlog of 0 that never accepts, and one connection already queued
/// (and another attempt dropped), so further SYNs go unanswered.
pub fn full_backlog() -> (socket2::Socket, Vec<socket2::Socket>, u16) {
    let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let fillers = (0..2)
        .map(|_| {
            let c =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            let _ = c.connect_timeout(&addr.into(), Duration::from_millis(200));
            c
        })
        .collect();
    (l, fillers, addr.port())
}

#[test]
fn open_closed_and_filtered_are_told_apart() {
    let open: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let open_ports: Vec<u16> = open
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    let closed = [free_port("127.0.0.1"), free_port("127.0.0.1")];
    let (_l, _fillers, filtered) = full_backlog();
    let list = [open_ports[0], open_ports[1], closed[0], closed[1], filtered]
        .map(|p| p.to_string())
        .join(",");
    let out = sockit()
        .args([
            "check",
            "127.0.0.1",
            &list,
            "--all",
            "--json",
            "--timeout",
            "400ms",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    let ports: Vec<u64> = rows.iter().map(|r| r["port"].as_u64().unwrap()).collect();
    let mut sorted = ports.clone();
    sorted.sort_unstable();
    assert_eq!(ports, sorted, "JSON is in port order");
    let state = |p: u16| {
        rows.iter().find(|r| r["port"] == p).unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(state(open_ports[0]), "open");
    assert_eq!(state(open_ports[1]), "open");
    assert_eq!(state(closed[0]), "closed");
    assert_eq!(state(closed[1]), "closed");
    assert_eq!(state(filtered), "filtered");
}

#[test]
fn default_output_lists_open_ports_with_service_names_and_exit_1_when_none() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let out = sockit()
        .args([
            "check",
            "127.0.0.1",
            &format!("{port},{}", free_port("127.0.0.1")),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!("{port}/tcp")) && stdout.contains("open"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 open, 1 closed, 0 filtered"));

    let out = sockit()
        .args(["check", "127.0.0.1", &free_port("127.0.0.1").to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

#[test]
fn ipv6_loopback() {
    let l = TcpListener::bind("[::1]:0").unwrap();
    let port = l.local_addr().unwrap().port();
    for host in ["::1", "[::1]"] {
        let out = sockit()
            .args(["check", host, &port.to_string(), "--json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{host}");
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rows[0]["state"], "open");
    }
}

#[test]
fn bad_port_lists_exit_2_and_unknown_hosts_exit_1() {
    for bad in ["0", "80-22", "70000", "x"] {
        let out = sockit().args(["check", "127.0.0.1", bad]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr)
                .trim_end()
                .lines()
                .count(),
            1
        );
    }
    let out = sockit()
        .args(["check", "no-such-host.invalid", "80"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );
}
