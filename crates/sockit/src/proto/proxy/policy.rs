//! Where a proxy may connect on a client's behalf (`--allow-dest`, `--deny-dest`): a rule
//! is a network and, optionally, ports (`10.0.0.0/8`, `192.168.1.5:22,80-90`,
//! `[2001:db8::/32]:443`).
//!
//! The decision, in order:
//! 1. a destination a `--deny-dest` rule matches is refused;
//! 2. with `--allow-dest` rules, only what they match is allowed;
//! 3. without them, every public address is allowed, and loopback, private, link-local,
//!    shared (CGNAT), unspecified, multicast and other special ranges are refused: a
//!    proxy is never an open door into the network it stands in unless told so
//!    (`--allow-dest 0.0.0.0/0 --allow-dest ::/0` opens everything).
//!
//! The decision is made on the address the proxy is about to connect to, after name
//! resolution (a name that resolves to 127.0.0.1 is loopback), and IPv4-mapped IPv6
//! addresses are judged as the IPv4 address they carry.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// One `--allow-dest`/`--deny-dest` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The addresses it covers (a single address is a /32 or /128).
    pub net: IpNet,
    /// The ports it covers, as inclusive ranges; empty means every port.
    pub ports: Vec<(u16, u16)>,
}

impl Rule {
    fn matches(&self, dest: SocketAddr) -> bool {
        self.net.contains(&dest.ip())
            && (self.ports.is_empty()
                || self
                    .ports
                    .iter()
                    .any(|&(lo, hi)| (lo..=hi).contains(&dest.port())))
    }
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Rule, String> {
        let (net, ports) = match s.strip_prefix('[') {
            Some(rest) => {
                let (net, after) = rest.split_once(']').ok_or("unclosed `[`")?;
                match after {
                    "" => (net, None),
                    _ => (
                        net,
                        Some(
                            after
                                .strip_prefix(':')
                                .ok_or("expected `:PORTS` after `]`")?,
                        ),
                    ),
                }
            }
            // An IPv6 network without brackets has no port part.
            None if s.matches(':').count() > 1 => (s, None),
            None => match s.split_once(':') {
                Some((net, ports)) => (net, Some(ports)),
                None => (s, None),
            },
        };
        let net = match net.parse::<IpNet>() {
            Ok(n) => n.trunc(),
            Err(_) => IpNet::from(
                net.parse::<IpAddr>()
                    .map_err(|_| format!("`{net}` is not an address or a CIDR network"))?,
            ),
        };
        let ports = match ports {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|p| {
                    let (lo, hi) = p.split_once('-').unwrap_or((p, p));
                    let port = |t: &str| {
                        t.parse::<u16>()
                            .ok()
                            .filter(|&n| n != 0)
                            .ok_or_else(|| format!("`{p}` is not a port or a port range"))
                    };
                    let (lo, hi) = (port(lo)?, port(hi)?);
                    if lo > hi {
                        return Err(format!("`{p}` is an empty port range"));
                    }
                    Ok((lo, hi))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Rule {
            net: normalize_net(net),
            ports,
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ports.is_empty() {
            return write!(f, "{}", self.net);
        }
        let ports: Vec<String> = self
            .ports
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        match self.net {
            IpNet::V6(_) => write!(f, "[{}]:{}", self.net, ports.join(",")),
            IpNet::V4(_) => write!(f, "{}:{}", self.net, ports.join(",")),
        }
    }
}

/// The destinations a proxy connects to.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `--allow-dest`: when any is given, only these are allowed.
    pub allow: Vec<Rule>,
    /// `--deny-dest`: refused whatever else says.
    pub deny: Vec<Rule>,
}

/// Why a destination is refused, for the log line and the client's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A `--deny-dest` rule matched.
    Denied(String),
    /// `--allow-dest` rules were given and none matched.
    NotAllowed,
    /// A special range, refused unless allowed (the range's name).
    Special(&'static str),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Denied(rule) => write!(f, "denied by --deny-dest {rule}"),
            Refused::NotAllowed => write!(f, "not in any --allow-dest"),
            Refused::Special(range) => {
                write!(f, "a {range} address (allow it with --allow-dest)")
            }
        }
    }
}

impl Policy {
    /// Whether the proxy may connect to `dest`.
    pub fn check(&self, dest: SocketAddr) -> Result<(), Refused> {
        let dest = SocketAddr::new(normalize(dest.ip()), dest.port());
        if let Some(rule) = self.deny.iter().find(|r| r.matches(dest)) {
            return Err(Refused::Denied(rule.to_string()));
        }
        if !self.allow.is_empty() {
            return if self.allow.iter().any(|r| r.matches(dest)) {
                Ok(())
            } else {
                Err(Refused::NotAllowed)
            };
        }
        match special(dest.ip()) {
            Some(range) => Err(Refused::Special(range)),
            None => Ok(()),
        }
    }
}

/// The IPv4 address inside an IPv4-mapped IPv6 one; any other address as it is.
fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn normalize_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) => match n.addr().to_ipv4_mapped() {
            Some(v4) if n.prefix_len() >= 96 => {
                IpNet::new(IpAddr::V4(v4), n.prefix_len() - 96).expect("prefix within 32")
            }
            _ => net,
        },
        v4 => v4,
    }
}

/// The special range `ip` is in, if any: what a proxy refuses by default.
fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        _ if ip.is_unspecified() || o[0] == 0 => "this-network (0.0.0.0/8)",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_private() => "private",
        _ if ip.is_link_local() => "link-local",
        [100, b, ..] if (64..128).contains(&b) => "shared (CGNAT)",
        [192, 0, 0, _] => "IETF protocol assignment",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation",
        [198, b, ..] if b == 18 || b == 19 => "benchmarking",
        _ if ip.is_multicast() => "multicast",
        _ if o[0] >= 240 => "reserved",
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_multicast() => "multicast",
        [a, ..] if a & 0xfe00 == 0xfc00 => "unique local (private)",
        [a, ..] if a & 0xffc0 == 0xfe80 => "link-local",
        [a, ..] if a & 0xffc0 == 0xfec0 => "site-local",
        [0x2001, 0xdb8, ..] => "documentation",
        // NAT64 and 6to4 carry IPv4 addresses a proxy must not be steered to unseen.
        [0x64, 0xff9b, ..] => "NAT64",
        [0x2002, ..] => "6to4",
        // IPv4-compatible (deprecated) addresses.
        [0, 0, 0, 0, 0, 0, _, _] => "IPv4-compatible",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn policy(allow: &[&str], deny: &[&str]) -> Policy {
        Policy {
            allow: allow.iter().map(|r| r.parse().unwrap()).collect(),
            deny: deny.iter().map(|r| r.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn by_default_public_addresses_pass_and_special_ones_do_not() {
        let p = Policy::default();
        for ok in ["93.184.216.34:443", "[2606:2800:220:1::1]:80", "8.8.8.8:53"] {
            assert_eq!(p.check(sa(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "127.0.0.1:80",
            "127.255.0.9:1",
            "0.0.0.0:80",
            "10.1.2.3:22",
            "172.16.0.1:22",
            "192.168.1.1:80",
            "169.254.169.254:80",
            "100.64.0.1:80",
            "224.0.0.1:80",
            "255.255.255.255:80",
            "[::1]:80",
            "[::]:80",
            "[::ffff:127.0.0.1]:80",
            "[::ffff:10.0.0.1]:80",
            "[fd00::1]:80",
            "[fe80::1]:80",
            "[64:ff9b::7f00:1]:80",
            "[2002:7f00:1::]:80",
        ] {
            assert!(p.check(sa(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn deny_beats_allow_and_allow_is_exclusive() {
        let p = policy(&["127.0.0.1:8000-8999", "[::1]"], &["127.0.0.1:8080"]);
        assert_eq!(p.check(sa("127.0.0.1:8000")), Ok(()));
        assert_eq!(p.check(sa("[::ffff:127.0.0.1]:8001")), Ok(()));
        assert_eq!(p.check(sa("[::1]:22")), Ok(()));
        assert_eq!(
            p.check(sa("127.0.0.1:8080")),
            Err(Refused::Denied("127.0.0.1/32:8080".into()))
        );
        assert_eq!(p.check(sa("127.0.0.1:22")), Err(Refused::NotAllowed));
        assert_eq!(p.check(sa("8.8.8.8:53")), Err(Refused::NotAllowed));
        let open = policy(&["0.0.0.0/0", "::/0"], &[]);
        assert_eq!(open.check(sa("10.0.0.1:1")), Ok(()));
        let public_but = policy(&[], &["8.8.8.0/24:53"]);
        assert!(public_but.check(sa("8.8.8.8:53")).is_err());
        assert_eq!(public_but.check(sa("8.8.8.8:443")), Ok(()));
    }

    #[test]
    fn rules_parse_and_print() {
        for (text, shown) in [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("192.168.1.5:22,80-90", "192.168.1.5/32:22,80-90"),
            ("[2001:db8::/32]:443", "[2001:db8::/32]:443"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("::1", "::1/128"),
            ("[::ffff:10.0.0.0/104]", "10.0.0.0/8"),
        ] {
            let rule: Rule = text.parse().unwrap();
            assert_eq!(rule.to_string(), shown, "{text}");
        }
        for bad in [
            "",
            "10.0.0.0/33",
            "host.example",
            "10.0.0.1:0",
            "10.0.0.1:9-8",
            "10.0.0.1:x",
            "[::1",
            "[::1]x",
        ] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
    }
}
