//! `sockit subnet` against Python's `ipaddress` (an implementation nobody here wrote), the
//! classic tutorials' own examples, and invalid input.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::sockit;

fn subnet(args: &[&str]) -> (Option<i32>, String, String) {
    let out = sockit().arg("subnet").args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_tutorials_examples() {
    // 192.168.11.251 and 192.168.12.35 with 255.255.255.0: different networks.
    let (code, out, _) = subnet(&["192.168.11.251", "255.255.255.0", "--same", "192.168.12.35"]);
    assert_eq!(
        (code, out.trim()),
        (Some(1), "192.168.12.35 is not in 192.168.11.0/24")
    );
    // With 255.255.0.0: the same network 192.168.0.0.
    let (code, out, _) = subnet(&["192.168.11.251", "255.255.0.0", "--same", "192.168.12.35"]);
    assert_eq!(
        (code, out.trim()),
        (Some(0), "192.168.12.35 is in 192.168.0.0/16")
    );
    let (_, out, _) = subnet(&["192.168.11.251", "255.255.255.0", "--binary"]);
    assert!(
        out.contains("  11000000.10101000.00001011.11111011  address"),
        "{out}"
    );
    assert!(
        out.contains("= 11000000.10101000.00001011.00000000  network 192.168.11.0"),
        "{out}"
    );
}

#[test]
fn invalid_input_is_one_line_and_exit_2() {
    for args in [
        &["300.1.1.1/24"][..],
        &["10.0.0.0/33"],
        &["10.0.0.1", "255.0.255.0"],
        &["10.0.0.0/8", "--split", "4"],
    ] {
        let (code, out, err) = subnet(args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(out.is_empty());
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn split_lists_the_subnets() {
    let (code, out, _) = subnet(&["192.168.0.0/24", "--split", "26"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "192.168.0.0/26\n192.168.0.64/26\n192.168.0.128/26\n192.168.0.192/26\n"
    );
}

/// Checks each `cidr\tjson` line against Python's ipaddress; prints mismatches.
const CHECKER: &str = r#"
import ipaddress, json, sys
bad = 0
for line in sys.stdin:
    cidr, js = line.rstrip("\n").split("\t", 1)
    got = json.loads(js)
    iface = ipaddress.ip_interface(cidr)
    net = iface.network
    v4 = net.version == 4
    width = 32 if v4 else 128
    p = net.prefixlen
    want = {
        "address": str(iface.ip), "prefix": p, "netmask": str(net.netmask),
        "wildcard": str(net.hostmask), "network": str(net.network_address),
        "broadcast": str(net.broadcast_address) if v4 else None,
    }
    if width - p <= 12:
        hosts = list(net.hosts()) or [net.network_address]
        want["host_min"] = str(hosts[0]); want["host_max"] = str(hosts[-1]); want["hosts"] = len(hosts)
    else:
        want["host_min"] = str(next(net.hosts()))
        want["hosts"] = net.num_addresses - (2 if v4 else 1)
    for k, v in want.items():
        g = got.get(k)
        # Compare addresses as values: Rust writes ::ffff:a.b.c.d where Python writes hex,
        # and RFC 5952 allows both.
        if isinstance(v, str) and isinstance(g, str) and ":" in v + g:
            g, v = ipaddress.ip_address(g), ipaddress.ip_address(v)
        if g != v:
            bad += 1
            print(f"{cidr}: {k}: sockit {g!r} python {v!r}")
    if v4:
        scope = got["scope"]
        ip = iface.ip
        if ip.is_loopback and scope != "loopback" or ip.is_multicast and scope != "multicast":
            bad += 1
            print(f"{cidr}: scope {scope}")
sys.exit(1 if bad else 0)
"#;

#[test]
fn fields_agree_with_pythons_ipaddress_for_random_networks() {
    // A fixed xorshift sequence: reproducible, and no test-only dependency.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut cases = Vec::new();
    for i in 0..120 {
        if i % 2 == 0 {
            let a = std::net::Ipv4Addr::from(next() as u32);
            cases.push(format!("{a}/{}", next() % 33));
        } else {
            let a = std::net::Ipv6Addr::from((u128::from(next()) << 64) | u128::from(next()));
            cases.push(format!("{a}/{}", next() % 129));
        }
    }
    cases.extend(
        [
            "10.0.0.1/31",
            "10.0.0.1/32",
            "2001:db8::1/127",
            "::1/128",
            "0.0.0.0/0",
        ]
        .map(String::from),
    );
    let mut input = String::new();
    for cidr in &cases {
        let (code, out, err) = subnet(&[cidr, "--json"]);
        assert_eq!(code, Some(0), "{cidr}: {err}");
        input.push_str(&format!("{cidr}\t{}\n", out.trim()));
    }
    let mut py = Command::new("python3")
        .args(["-c", CHECKER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "mismatches:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
