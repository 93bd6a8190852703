//! Subnet arithmetic, as the classic tutorials teach it: network = address AND mask, in binary.
//!
//! One [`Subnet`] holds an address and a prefix length; every field (netmask, wildcard,
//! network, broadcast, usable host range and count, class, scope) is derived from those two
//! with integer masks over a `u128`, so IPv4 and IPv6 share one implementation.
//!
//! Usable hosts follow RFC 3021 for IPv4 /31 (both addresses usable) and RFC 6164 for IPv6
//! /127; a /32 or /128 is the one host. IPv4 otherwise excludes the network and broadcast
//! addresses; IPv6 has no broadcast and excludes only the Subnet-Router anycast address
//! (the network address), as Python's `ipaddress` does.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A bad subnet specification, with the reason in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    /// The address part does not parse.
    #[error("`{0}` is not an IPv4 or IPv6 address")]
    Address(String),
    /// The prefix length is out of range for the family.
    #[error("prefix /{prefix} is out of range for {family} (0 to {max})")]
    Prefix {
        /// The prefix as given.
        prefix: String,
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// 32 or 128.
        max: u8,
    },
    /// A dotted mask whose one bits are not contiguous from the left.
    #[error("netmask {0} is not contiguous (ones must come first, then zeros)")]
    NonContiguous(String),
    /// A mask of the other family than the address.
    #[error("netmask {mask} does not match the address family of {addr}")]
    FamilyMismatch {
        /// The address.
        addr: String,
        /// The mask.
        mask: String,
    },
    /// A split prefix shorter than the network's, or one that lists too many subnets.
    #[error("{0}")]
    Split(String),
    /// An address range that is not FIRST-LAST of one family in order.
    #[error("{0}")]
    Range(String),
    /// Host counts whose subnets do not fit in the network (or a count of 0).
    #[error("{0}")]
    Fit(String),
}

/// An address within a network of a given prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    address: IpAddr,
    prefix: u8,
}

/// The address family's scope of an address (what the address ranges registry says it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) and IPv6 unique-local `fc00::/7`.
    Private,
    /// RFC 6598 carrier-grade NAT space `100.64.0.0/10`.
    Shared,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// RFC 5737 / RFC 3849 documentation ranges.
    Documentation,
    /// RFC 2544 benchmarking `198.18.0.0/15`.
    Benchmarking,
    /// `240.0.0.0/4` (future use).
    Reserved,
    /// `::ffff:0:0/96`.
    Ipv4Mapped,
    /// Anything else: globally routable.
    Global,
}

impl Scope {
    /// The scope's name as printed.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Unspecified => "unspecified",
            Scope::Loopback => "loopback",
            Scope::Private => "private",
            Scope::Shared => "shared",
            Scope::LinkLocal => "link-local",
            Scope::Multicast => "multicast",
            Scope::Broadcast => "broadcast",
            Scope::Documentation => "documentation",
            Scope::Benchmarking => "benchmarking",
            Scope::Reserved => "reserved",
            Scope::Ipv4Mapped => "ipv4-mapped",
            Scope::Global => "global",
        }
    }

    /// The scope of one address.
    pub fn of(ip: IpAddr) -> Scope {
        let within = |net: &str| Subnet::parse(net).map(|n| n.contains(ip)).unwrap_or(false);
        let table: &[(&str, Scope)] = match ip {
            IpAddr::V4(_) => &[
                ("255.255.255.255/32", Scope::Broadcast),
                ("0.0.0.0/8", Scope::Unspecified),
                ("127.0.0.0/8", Scope::Loopback),
                ("10.0.0.0/8", Scope::Private),
                ("172.16.0.0/12", Scope::Private),
                ("192.168.0.0/16", Scope::Private),
                ("100.64.0.0/10", Scope::Shared),
                ("169.254.0.0/16", Scope::LinkLocal),
                ("224.0.0.0/4", Scope::Multicast),
                ("192.0.2.0/24", Scope::Documentation),
                ("198.51.100.0/24", Scope::Documentation),
                ("203.0.113.0/24", Scope::Documentation),
                ("198.18.0.0/15", Scope::Benchmarking),
                ("240.0.0.0/4", Scope::Reserved),
            ],
            IpAddr::V6(_) => &[
                ("::/128", Scope::Unspecified),
                ("::1/128", Scope::Loopback),
                ("::ffff:0:0/96", Scope::Ipv4Mapped),
                ("fe80::/10", Scope::LinkLocal),
                ("fc00::/7", Scope::Private),
                ("ff00::/8", Scope::Multicast),
                ("2001:db8::/32", Scope::Documentation),
            ],
        };
        table
            .iter()
            .find(|(net, _)| within(net))
            .map_or(Scope::Global, |(_, scope)| *scope)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Subnet {
    /// An address and a prefix length (checked against the family).
    pub fn new(address: IpAddr, prefix: u8) -> Result<Subnet, SubnetError> {
        let max = bits(address);
        if prefix > max {
            return Err(SubnetError::Prefix {
                prefix: prefix.to_string(),
                family: family(address),
                max,
            });
        }
        Ok(Subnet { address, prefix })
    }

    /// Parses `ADDR/PREFIX`, or a bare address (a /32 or /128).
    pub fn parse(cidr: &str) -> Result<Subnet, SubnetError> {
        match cidr.split_once('/') {
            Some((addr, mask)) => Subnet::with_mask(addr, mask),
            None => {
                let ip = parse_ip(cidr)?;
                Subnet::new(ip, bits(ip))
            }
        }
    }

    /// An address with a mask given as a prefix (`24`, `/24`) or dotted (`255.255.255.0`).
    pub fn with_mask(addr: &str, mask: &str) -> Result<Subnet, SubnetError> {
        let ip = parse_ip(addr)?;
        let mask = mask.trim();
        let digits = mask.strip_prefix('/').unwrap_or(mask);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let prefix = digits
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits(ip))
                .ok_or_else(|| SubnetError::Prefix {
                    prefix: digits.to_owned(),
                    family: family(ip),
                    max: bits(ip),
                })?;
            return Subnet::new(ip, prefix);
        }
        let mask_ip = parse_ip(mask)?;
        if bits(mask_ip) != bits(ip) {
            return Err(SubnetError::FamilyMismatch {
                addr: addr.to_owned(),
                mask: mask.to_owned(),
            });
        }
        let width = bits(ip);
        let m = to_u128(mask_ip);
        // An IPv4 mask sits in the low 32 bits; shift it to the top to count its ones.
        let ones = (m << (128 - u32::from(width))).leading_ones() as u8;
        // Contiguous: the mask equals the mask made from its own count of leading ones.
        if m != mask_bits(width, ones) {
            return Err(SubnetError::NonContiguous(mask.to_owned()));
        }
        Subnet::new(ip, ones)
    }

    /// The address as given (not truncated to the network).
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether this is an IPv4 subnet.
    pub fn is_ipv4(&self) -> bool {
        self.address.is_ipv4()
    }

    /// The netmask: `prefix` one bits, then zeros.
    pub fn netmask(&self) -> IpAddr {
        self.ip_of(self.mask())
    }

    /// The wildcard (host mask): the netmask inverted.
    pub fn wildcard(&self) -> IpAddr {
        self.ip_of(!self.mask() & full(self.width()))
    }

    /// The network address: address AND netmask.
    pub fn network(&self) -> IpAddr {
        self.ip_of(self.addr_bits() & self.mask())
    }

    /// The broadcast address (IPv4 only): network OR wildcard.
    pub fn broadcast(&self) -> Option<IpAddr> {
        self.is_ipv4().then(|| self.ip_of(self.last_bits()))
    }

    /// The first usable host.
    pub fn host_min(&self) -> IpAddr {
        // The network address (IPv4) or Subnet-Router anycast address (IPv6) is skipped,
        // except on point-to-point links and single hosts.
        let skip = u128::from(self.host_bits() >= 2);
        self.ip_of((self.addr_bits() & self.mask()) + skip)
    }

    /// The last usable host.
    pub fn host_max(&self) -> IpAddr {
        let last = self.last_bits();
        // Only IPv4 has a broadcast address to skip.
        let skip = u128::from(self.is_ipv4() && self.host_bits() >= 2);
        self.ip_of(last - skip)
    }

    /// How many usable hosts the network has.
    pub fn hosts(&self) -> u128 {
        // The address count minus one, so that IPv6 /0 still fits in a u128.
        let span = full(self.host_bits());
        match self.host_bits() {
            0 => 1,
            1 => 2,
            _ if self.is_ipv4() => span - 1,
            _ => span,
        }
    }

    /// The historical class of an IPv4 address (A–E).
    pub fn class(&self) -> Option<char> {
        let IpAddr::V4(v4) = self.address else {
            return None;
        };
        Some(match v4.octets()[0] {
            0..=127 => 'A',
            128..=191 => 'B',
            192..=223 => 'C',
            224..=239 => 'D',
            _ => 'E',
        })
    }

    /// The scope of the address.
    pub fn scope(&self) -> Scope {
        Scope::of(self.address)
    }

    /// Whether `ip` lies in this network (same family, same bits under the mask).
    pub fn contains(&self, ip: IpAddr) -> bool {
        bits(ip) == self.width() && to_u128(ip) & self.mask() == self.addr_bits() & self.mask()
    }

    /// The subnets of length `prefix` that make up this network, at most `limit` of them.
    pub fn split(&self, prefix: u8, limit: u128) -> Result<Vec<Subnet>, SubnetError> {
        if prefix < self.prefix || prefix > self.width() {
            return Err(SubnetError::Split(format!(
                "cannot split /{} into /{prefix}: the new prefix must be from {} to {}",
                self.prefix,
                self.prefix,
                self.width()
            )));
        }
        let extra = u32::from(prefix - self.prefix);
        let count = if extra >= 128 {
            u128::MAX
        } else {
            1u128 << extra
        };
        if count > limit {
            return Err(SubnetError::Split(format!(
                "splitting /{} into /{prefix} gives {} subnets; at most {limit} are listed",
                self.prefix,
                if extra >= 128 {
                    "2^128".to_owned()
                } else {
                    count.to_string()
                }
            )));
        }
        let step = if self.width() - prefix >= 128 {
            0
        } else {
            1u128 << (self.width() - prefix)
        };
        let base = self.addr_bits() & self.mask();
        Ok((0..count)
            .map(|i| Subnet {
                address: self.ip_of(base + i * step),
                prefix,
            })
            .collect())
    }

    /// The address in binary, bytes (IPv4) or 16-bit groups (IPv6) apart, as the tutorials show it.
    pub fn binary(ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => v4
                .octets()
                .iter()
                .map(|o| format!("{o:08b}"))
                .collect::<Vec<_>>()
                .join("."),
            IpAddr::V6(v6) => v6
                .segments()
                .iter()
                .map(|s| format!("{s:016b}"))
                .collect::<Vec<_>>()
                .join(":"),
        }
    }

    fn width(&self) -> u8 {
        bits(self.address)
    }

    fn host_bits(&self) -> u8 {
        self.width() - self.prefix
    }

    fn mask(&self) -> u128 {
        mask_bits(self.width(), self.prefix)
    }

    fn addr_bits(&self) -> u128 {
        to_u128(self.address)
    }

    fn last_bits(&self) -> u128 {
        (self.addr_bits() & self.mask()) | (!self.mask() & full(self.width()))
    }

    fn ip_of(&self, v: u128) -> IpAddr {
        if self.is_ipv4() {
            IpAddr::V4(Ipv4Addr::from(v as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(v))
        }
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

fn parse_ip(s: &str) -> Result<IpAddr, SubnetError> {
    s.trim()
        .parse()
        .map_err(|_| SubnetError::Address(s.trim().to_owned()))
}

fn bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// All ones across the family's width.
fn full(width: u8) -> u128 {
    if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    }
}

/// `prefix` one bits from the top of a `width`-bit number.
fn mask_bits(width: u8, prefix: u8) -> u128 {
    let host = u32::from(width - prefix);
    if host >= 128 {
        0
    } else {
        full(width) & !((1u128 << host) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;
    use proptest::prelude::*;

    fn s(cidr: &str) -> Subnet {
        Subnet::parse(cidr).unwrap()
    }

    fn ip(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    #[test]
    fn the_tutorials_examples() {
        let a = Subnet::with_mask("192.168.11.251", "255.255.255.0").unwrap();
        let b = Subnet::with_mask("192.168.12.35", "255.255.255.0").unwrap();
        assert_ne!(a.network(), b.network());
        assert!(!a.contains(ip("192.168.12.35")));
        let a = Subnet::with_mask("192.168.11.251", "255.255.0.0").unwrap();
        let b = Subnet::with_mask("192.168.12.35", "255.255.0.0").unwrap();
        assert_eq!(a.network(), ip("192.168.0.0"));
        assert_eq!(a.network(), b.network());
        assert!(a.contains(ip("192.168.12.35")));
        assert_eq!(
            Subnet::binary(ip("192.168.11.251")),
            "11000000.10101000.00001011.11111011"
        );
    }

    #[test]
    fn point_to_point_and_single_hosts() {
        let p2p = s("10.0.0.1/31");
        assert_eq!(
            (p2p.host_min(), p2p.host_max(), p2p.hosts()),
            (ip("10.0.0.0"), ip("10.0.0.1"), 2)
        );
        let one = s("10.0.0.7/32");
        assert_eq!(
            (one.host_min(), one.host_max(), one.hosts()),
            (ip("10.0.0.7"), ip("10.0.0.7"), 1)
        );
        let v6 = s("2001:db8::1/127");
        assert_eq!(
            (v6.host_min(), v6.host_max(), v6.hosts()),
            (ip("2001:db8::"), ip("2001:db8::1"), 2)
        );
        assert_eq!(s("::1/128").hosts(), 1);
        assert_eq!(s("2001:db8::/64").hosts(), (1u128 << 64) - 1);
        assert_eq!(s("2001:db8::/64").host_min(), ip("2001:db8::1"));
        assert_eq!(s("::/0").hosts(), u128::MAX);
        assert_eq!(s("0.0.0.0/0").hosts(), (1u128 << 32) - 2);
    }

    #[test]
    fn invalid_input_is_an_error() {
        assert!(matches!(
            Subnet::parse("300.1.1.1/24"),
            Err(SubnetError::Address(_))
        ));
        assert!(matches!(
            Subnet::parse("10.0.0.0/33"),
            Err(SubnetError::Prefix { .. })
        ));
        assert!(matches!(
            Subnet::parse("::/129"),
            Err(SubnetError::Prefix { .. })
        ));
        assert!(matches!(
            Subnet::with_mask("10.0.0.1", "255.0.255.0"),
            Err(SubnetError::NonContiguous(_))
        ));
        assert!(matches!(
            Subnet::with_mask("10.0.0.1", "ffff::"),
            Err(SubnetError::FamilyMismatch { .. })
        ));
        assert_eq!(Subnet::with_mask("10.0.0.1", "/8").unwrap().prefix(), 8);
        assert_eq!(
            Subnet::with_mask("10.0.0.1", "0.0.0.0").unwrap().prefix(),
            0
        );
    }

    #[test]
    fn classes_and_scopes() {
        assert_eq!(s("10.1.2.3/8").class(), Some('A'));
        assert_eq!(s("172.16.0.1/12").class(), Some('B'));
        assert_eq!(s("224.0.0.1/4").class(), Some('D'));
        assert_eq!(s("::1/128").class(), None);
        for (a, scope) in [
            ("10.1.1.1", Scope::Private),
            ("172.31.255.255", Scope::Private),
            ("172.32.0.0", Scope::Global),
            ("127.0.0.1", Scope::Loopback),
            ("169.254.1.1", Scope::LinkLocal),
            ("239.1.1.1", Scope::Multicast),
            ("192.0.2.5", Scope::Documentation),
            ("100.100.0.1", Scope::Shared),
            ("8.8.8.8", Scope::Global),
            ("::1", Scope::Loopback),
            ("fe80::1", Scope::LinkLocal),
            ("fd00::1", Scope::Private),
            ("ff02::1", Scope::Multicast),
            ("2001:db8::1", Scope::Documentation),
            ("2606:4700::1111", Scope::Global),
        ] {
            assert_eq!(Scope::of(ip(a)), scope, "{a}");
        }
    }

    #[test]
    fn splits_and_refuses_bad_splits() {
        let parts = s("192.168.0.0/24").split(26, 1 << 16).unwrap();
        let names: Vec<String> = parts.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "192.168.0.0/26",
                "192.168.0.64/26",
                "192.168.0.128/26",
                "192.168.0.192/26"
            ]
        );
        assert!(s("10.0.0.0/24").split(16, 10).is_err());
        assert!(s("::/0").split(128, 1 << 16).is_err());
    }

    proptest! {
        #[test]
        fn ipv4_fields_agree_with_ipnet(a in any::<u32>(), prefix in 0u8..=32) {
            let sub = Subnet::new(IpAddr::V4(a.into()), prefix).unwrap();
            let net = IpNet::new(IpAddr::V4(a.into()), prefix).unwrap();
            prop_assert_eq!(sub.netmask(), net.netmask());
            prop_assert_eq!(sub.wildcard(), net.hostmask());
            prop_assert_eq!(sub.network(), net.network());
            prop_assert_eq!(sub.broadcast(), Some(net.broadcast()));
            let hosts = net.hosts();
            let (first, last) = (hosts.clone().next().unwrap(), hosts.clone().next_back().unwrap());
            prop_assert_eq!(sub.host_min(), first);
            prop_assert_eq!(sub.host_max(), last);
            if prefix >= 16 {
                prop_assert_eq!(sub.hosts(), hosts.count() as u128);
            }
            let b: IpAddr = IpAddr::V4(Ipv4Addr::from(a ^ 1));
            prop_assert_eq!(sub.contains(b), net.contains(&b));
        }

        #[test]
        fn ipv6_fields_agree_with_ipnet(a in any::<u128>(), prefix in 0u8..=128, other in any::<u128>()) {
            let sub = Subnet::new(IpAddr::V6(a.into()), prefix).unwrap();
            let net = IpNet::new(IpAddr::V6(a.into()), prefix).unwrap();
            prop_assert_eq!(sub.netmask(), net.netmask());
            prop_assert_eq!(sub.wildcard(), net.hostmask());
            prop_assert_eq!(sub.network(), net.network());
            prop_assert_eq!(sub.broadcast(), None);
            // ipnet's IPv6 hosts() includes the network address; ours skips the
            // Subnet-Router anycast address except on /127 and /128.
            let skip = u128::from(prefix < 127);
            prop_assert_eq!(sub.host_min(), IpAddr::V6(Ipv6Addr::from(u128::from(match net.network() { IpAddr::V6(n) => n, _ => unreachable!() }) + skip)));
            prop_assert_eq!(sub.host_max(), net.broadcast());
            let b = IpAddr::V6(other.into());
            prop_assert_eq!(sub.contains(b), net.contains(&b));
            prop_assert_eq!(Subnet::with_mask(&Ipv6Addr::from(a).to_string(), &net.netmask().to_string()).map(|n| n.prefix()), Ok(prefix));
        }
    }
}
