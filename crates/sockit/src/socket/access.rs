//! Allow/deny lists of CIDR networks, checked on every accepted connection and datagram.
//!
//! Rule: a peer in a `deny` network is refused, even if an `allow` network also holds it;
//! with any `allow` entries, a peer in none of them is refused. Unix peers have no address
//! and are governed by file permissions instead, so they always pass.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::error::Error;

/// Which client networks may talk to a server.
#[derive(Debug, Clone, Default)]
pub struct AccessList {
    /// When not empty, only peers in these networks get in.
    allow: Vec<IpNet>,
    /// Peers in these networks never get in, even when an `allow` network holds them.
    deny: Vec<IpNet>,
}

/// A network as given on the command line: CIDR (`10.0.0.0/8`) or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network(
    /// The network, its host bits cleared (`10.1.2.3/8` is `10.0.0.0/8`).
    pub IpNet,
);

impl FromStr for Network {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Network {
            input: s.to_owned(),
        };
        if s.contains('/') {
            s.parse::<IpNet>()
                .map(|n| Network(n.trunc()))
                .map_err(|_| bad())
        } else {
            s.parse::<IpAddr>()
                .map(|ip| Network(IpNet::from(ip)))
                .map_err(|_| bad())
        }
    }
}

impl AccessList {
    /// Builds a list; empty `allow` means "everyone not denied".
    pub fn new(allow: Vec<Network>, deny: Vec<Network>) -> Self {
        AccessList {
            allow: allow.into_iter().map(|n| n.0).collect(),
            deny: deny.into_iter().map(|n| n.0).collect(),
        }
    }

    /// Whether a peer with this address (none for Unix peers) may connect.
    pub fn permits(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else { return true };
        // An IPv4 client reaching an IPv6 socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(allow: &[&str], deny: &[&str]) -> AccessList {
        let p = |v: &[&str]| v.iter().map(|s| s.parse().unwrap()).collect();
        AccessList::new(p(allow), p(deny))
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn deny_wins_over_allow() {
        let l = list(&["127.0.0.0/8"], &["127.0.0.2"]);
        assert!(l.permits(ip("127.0.0.1")));
        assert!(!l.permits(ip("127.0.0.2")));
        assert!(!l.permits(ip("10.0.0.1")));
    }

    #[test]
    fn empty_allow_admits_all_but_denied_and_unix_always_passes() {
        let l = list(&[], &["10.0.0.0/8", "::1"]);
        assert!(l.permits(ip("192.168.1.1")));
        assert!(!l.permits(ip("10.9.9.9")));
        assert!(!l.permits(ip("::1")));
        assert!(!l.permits(ip("::ffff:10.1.2.3")));
        assert!(l.permits(None));
    }

    #[test]
    fn bad_networks_are_errors() {
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("nope".parse::<Network>().is_err());
        assert_eq!(
            "10.1.2.3/8".parse::<Network>().unwrap().0.to_string(),
            "10.0.0.0/8"
        );
    }
}
