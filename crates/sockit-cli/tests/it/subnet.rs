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

/// Reads `kind \t input \t sockit's JSON` lines and checks each against Python's
/// `ipaddress.collapse_addresses` (per family, IPv4 first) or `summarize_address_range`;
/// prints mismatches. Blocks are compared as values: RFC 5952 lets Rust and Python spell
/// some IPv6 addresses differently.
const SET_CHECKER: &str = r#"
import ipaddress, json, sys
bad = cases = 0
for line in sys.stdin:
    kind, given, got = line.rstrip("\n").split("\t")
    given, got = json.loads(given), json.loads(got)
    if kind == "aggregate":
        nets = [ipaddress.ip_network(n, strict=False) for n in given]
        want = []
        for version in (4, 6):
            want += ipaddress.collapse_addresses(n for n in nets if n.version == version)
    else:
        first, last = given.split("-")
        want = list(ipaddress.summarize_address_range(
            ipaddress.ip_address(first), ipaddress.ip_address(last)))
    got = [ipaddress.ip_network(n) for n in got]
    cases += 1
    if got != want:
        bad += 1
        print(f"{kind} {given}: sockit {[str(n) for n in got]} python {[str(n) for n in want]}")
print(f"{cases} cases, {bad} mismatches")
sys.exit(1 if bad or cases == 0 else 0)
"#;

/// A fixed xorshift sequence: reproducible, and no test-only dependency.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[test]
fn aggregate_and_deaggregate_agree_with_pythons_ipaddress_for_random_sets() {
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
    let mut lines = String::new();
    for i in 0..200 {
        let v6 = i % 4 >= 2;
        let base: u128 = if v6 {
            (u128::from(next()) << 64) | u128::from(next())
        } else {
            u128::from(next() as u32)
        };
        let width = if v6 { 128 } else { 32 };
        let ip = |v: u128| -> String {
            if v6 {
                std::net::Ipv6Addr::from(v).to_string()
            } else {
                std::net::Ipv4Addr::from(v as u32).to_string()
            }
        };
        if i % 2 == 0 {
            // Blocks near one another inside a /20's worth of addresses (so that they
            // overlap, touch and merge), host bits often set, sometimes a whole /0.
            let mut nets = Vec::new();
            for _ in 0..1 + next() % 12 {
                let offset = u128::from(next() % 4096);
                let prefix = width - (next() % 13) as u32;
                nets.push(format!("{}/{prefix}", ip((base & !4095) | offset)));
            }
            if i % 50 == 0 {
                nets.push(format!("{}/0", ip(base)));
            }
            if i % 10 == 4 {
                // The other family too: IPv4 blocks come first, then IPv6.
                nets.push(if v6 {
                    "10.0.0.0/9".into()
                } else {
                    "2001:db8::/33".into()
                });
            }
            let mut args = vec!["--aggregate"];
            args.extend(nets.iter().map(String::as_str));
            args.push("--json");
            let (code, out, err) = subnet(&args);
            assert_eq!(code, Some(0), "{nets:?}: {err}");
            lines += &format!(
                "aggregate\t{}\t{}\n",
                serde_json::to_string(&nets).unwrap(),
                out.trim()
            );
        } else {
            // Ranges from one address to millions, and now and then the whole family.
            let len = match next() % 4 {
                0 => u128::from(next() % 16),
                1 => u128::from(next() % 100_000),
                2 => u128::from(next()),
                _ => u128::MAX,
            };
            let max = if v6 { u128::MAX } else { u128::from(u32::MAX) };
            let first = if len == u128::MAX { 0 } else { base };
            let last = first.saturating_add(len).min(max);
            let range = format!("{}-{}", ip(first), ip(last));
            let (code, out, err) = subnet(&["--deaggregate", &range, "--json"]);
            assert_eq!(code, Some(0), "{range}: {err}");
            lines += &format!(
                "deaggregate\t{}\t{}\n",
                serde_json::to_string(&range).unwrap(),
                out.trim()
            );
        }
    }
    let mut py = Command::new("python3")
        .args(["-c", SET_CHECKER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = py.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "mismatches:\n{report}");
    assert!(report.contains("200 cases, 0 mismatches"), "{report}");
}

#[test]
fn aggregate_reads_stdin_with_comments_and_prints_text() {
    let mut child = crate::util::sockit()
        .args(["subnet", "--aggregate", "-", "192.168.0.0/24"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"# office\n192.168.1.0/24, 192.168.2.0/23\n\n2001:db8::/49 2001:db8:0:8000::/49 # lab\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "192.168.0.0/22\n2001:db8::/48\n"
    );
    // A bad word on stdin, or bytes that are not text: one line, exit 2.
    for input in [
        &b"10.0.0.0/24\n10.0.0.0/40\n"[..],
        b"10.0.0.0/24\n\xff\xfe\n",
    ] {
        let mut child = crate::util::sockit()
            .args(["subnet", "--aggregate", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(out.stdout.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn split_hosts_plans_largest_first_and_refuses_what_does_not_fit() {
    let (code, out, err) = subnet(&["192.168.1.0/24", "--split-hosts", "20,100,2,50"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "NETWORK           WANTED  USABLE\n\
         192.168.1.0/25       100     126\n\
         192.168.1.128/26      50      62\n\
         192.168.1.192/27      20      30\n\
         192.168.1.224/31       2       2\n\
         192.168.1.226/31    free\n\
         192.168.1.228/30    free\n\
         192.168.1.232/29    free\n\
         192.168.1.240/28    free\n"
    );
    let (code, out, _) = subnet(&["2001:db8::/64", "--split-hosts", "1000,3", "--json"]);
    assert_eq!(code, Some(0));
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["subnets"][0]["network"], "2001:db8::/118");
    assert_eq!(plan["subnets"][0]["hosts"], 1023);
    assert_eq!(plan["subnets"][1]["network"], "2001:db8::400/126");
    assert_eq!(plan["subnets"][1]["wanted"], 3);
    assert_eq!(plan["free"][0], "2001:db8::404/126");
    // Exactly full: two /25s; one host more does not fit.
    let (code, out, _) = subnet(&["10.0.0.0/24", "--split-hosts", "126,126", "--json"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(r#""free":[]"#), "{out}");
    for bad in ["126,126,1", "0", "255", "x", "5,,6"] {
        let (code, out, err) = subnet(&["10.0.0.0/24", "--split-hosts", bad]);
        assert_eq!(code, Some(2), "{bad}: {out}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{bad}: {err}");
    }
}

#[test]
fn contains_exits_0_inside_and_1_outside() {
    for (net, other, code, line) in [
        (
            "10.0.0.0/8",
            "10.20.30.40",
            0,
            "10.20.30.40 is in 10.0.0.0/8",
        ),
        ("10.0.0.0/8", "11.0.0.1", 1, "11.0.0.1 is not in 10.0.0.0/8"),
        (
            "10.0.0.0/8",
            "10.1.0.0/16",
            0,
            "10.1.0.0/16 is in 10.0.0.0/8",
        ),
        (
            "10.0.0.0/8",
            "0.0.0.0/0",
            1,
            "0.0.0.0/0 is not in 10.0.0.0/8",
        ),
        ("10.9.9.9/8", "10.0.0.1", 0, "10.0.0.1 is in 10.0.0.0/8"),
        (
            "2001:db8::/32",
            "2001:db8:ffff::1",
            0,
            "2001:db8:ffff::1 is in 2001:db8::/32",
        ),
        (
            "2001:db8::/32",
            "10.0.0.1",
            1,
            "10.0.0.1 is not in 2001:db8::/32",
        ),
    ] {
        let (got, out, err) = subnet(&[net, "--contains", other]);
        assert_eq!((got, out.trim()), (Some(code), line), "{err}");
    }
    let (code, out, _) = subnet(&["10.0.0.0", "255.0.0.0", "--contains", "10.1.1.1", "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["contains"], true);
    assert_eq!(v["network"], "10.0.0.0/8");
}

#[test]
fn bad_set_input_is_one_line_and_exit_2() {
    for args in [
        &["--aggregate", "10.0.0.0/33"][..],
        &["--aggregate", "10.0.0.1", "bogus"],
        &["--deaggregate", "10.0.0.9-10.0.0.1"],
        &["--deaggregate", "10.0.0.1-::1"],
        &["--deaggregate", "10.0.0.1"],
        &["--contains", "10.0.0.1"],
        &["10.0.0.0/8", "--contains", "10.0.0.300"],
        &["10.0.0.0/8", "--aggregate", "10.0.0.0/9"],
        &["10.0.0.0/8", "--split", "9", "--contains", "10.0.0.1"],
        &[],
    ] {
        let (code, out, err) = subnet(args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(out.is_empty(), "{args:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}
