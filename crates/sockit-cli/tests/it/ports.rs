//! `sockit ports`: queries by number, name and range; JSON; exit codes.

use crate::util::sockit;

fn ports(args: &[&str]) -> (Option<i32>, String) {
    let out = sockit().arg("ports").args(args).output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn the_tutorials_well_known_ports_by_number() {
    for (port, name) in [
        ("20", "ftp-data"),
        ("21", "ftp"),
        ("22", "ssh"),
        ("25", "smtp"),
        ("80", "http"),
        ("443", "https"),
        ("3306", "mysql"),
    ] {
        let (code, out) = ports(&[port]);
        assert_eq!(code, Some(0), "{port}");
        assert!(
            out.starts_with(&format!("{port}/tcp")) && out.contains(name),
            "{port}: {out}"
        );
    }
}

#[test]
fn by_name_and_range_and_json() {
    let (_, out) = ports(&["HTTP"]);
    assert!(out.starts_with("80/tcp      http"), "{out}");
    let (_, out) = ports(&["20-25"]);
    let names: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(names, ["ftp-data", "ftp", "fsp", "ssh", "telnet", "smtp"]);
    let (code, out) = ports(&["443", "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["port"], 443);
    assert_eq!(v[0]["protocol"], "tcp");
    assert_eq!(v[1]["protocol"], "udp");
}

#[test]
fn nothing_found_is_exit_1_and_bad_queries_exit_2() {
    assert_eq!(ports(&["no-such-service"]).0, Some(1));
    assert_eq!(ports(&["25-20"]).0, Some(2));
    assert_eq!(ports(&["99999"]).0, Some(2));
}
