//! CIDR sets: the jobs of route aggregation and address planning, on [`ipnet`]'s blocks.
//!
//! - [`aggregate`]: the fewest blocks that cover exactly the addresses of a list of
//!   addresses and networks (overlaps removed, adjacent blocks merged), as Python's
//!   `ipaddress.collapse_addresses` does for each family.
//! - [`deaggregate`]: the fewest blocks that cover exactly an address range `A-B`, as
//!   Python's `ipaddress.summarize_address_range` does.
//! - [`split_hosts`]: variable-length subnetting: carve a network into blocks that hold
//!   given numbers of hosts, largest first, each the smallest block that holds its hosts
//!   (usable hosts counted as [`Subnet::hosts`] counts them).
//!
//! Networks given with host bits set (`10.0.0.7/24`) stand for their network
//! (`10.0.0.0/24`): a set of addresses is about the block, not the address it was written with.

use std::net::IpAddr;

pub use ipnet::IpNet;
use ipnet::{IpSubnets, Ipv4Subnets, Ipv6Subnets};

use super::subnet::{Subnet, SubnetError};

/// One block of a [`split_hosts`] plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// The host count asked for: the caller's words, shown next to what it got.
    pub wanted: u128,
    /// The block given to it.
    pub block: IpNet,
    /// The block's usable hosts (at least `wanted`), counted as [`Subnet::hosts`] does.
    pub hosts: u128,
}

/// A [`split_hosts`] plan: the blocks, largest first, and what is left of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One block per host count, largest first (equal sizes in the order asked).
    pub allocations: Vec<Allocation>,
    /// The rest of the network, as the fewest blocks: room for later subnets.
    pub free: Vec<IpNet>,
}

/// Parses an address (`10.0.0.1`, a /32 or /128) or a network (`10.0.0.0/24`,
/// `10.0.0.0/255.255.255.0`), host bits cleared.
pub fn parse_net(s: &str) -> Result<IpNet, SubnetError> {
    let subnet = Subnet::parse(s)?;
    IpNet::new(subnet.network(), subnet.prefix()).map_err(|_| SubnetError::Prefix {
        prefix: subnet.prefix().to_string(),
        family: if subnet.is_ipv4() { "IPv4" } else { "IPv6" },
        max: if subnet.is_ipv4() { 32 } else { 128 },
    })
}

/// The fewest blocks covering exactly the addresses of `nets`: IPv4 blocks first, then
/// IPv6, each family in address order.
pub fn aggregate(nets: &[IpNet]) -> Vec<IpNet> {
    IpNet::aggregate(&nets.iter().map(IpNet::trunc).collect())
}

/// Parses `FIRST-LAST` (both addresses of one family, FIRST not after LAST) and returns the
/// fewest blocks covering exactly that range, in address order.
pub fn deaggregate_range(range: &str) -> Result<Vec<IpNet>, SubnetError> {
    // An IPv6 address has no '-', so the first one splits the range.
    let (first, last) = range.split_once('-').ok_or_else(|| {
        SubnetError::Range(format!(
            "`{}` is not a range: FIRST-LAST, e.g. 10.0.0.5-10.0.0.20",
            range.trim()
        ))
    })?;
    deaggregate(parse_addr(first)?, parse_addr(last)?)
}

/// The fewest blocks covering exactly the addresses from `first` to `last`, inclusive.
pub fn deaggregate(first: IpAddr, last: IpAddr) -> Result<Vec<IpNet>, SubnetError> {
    let subnets: IpSubnets = match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => Ipv4Subnets::new(a, b, 0).into(),
        (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => Ipv6Subnets::new(a, b, 0).into(),
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
            return Err(SubnetError::Range(format!(
                "range {first}-{last} ends before it starts"
            )));
        }
        _ => {
            return Err(SubnetError::Range(format!(
                "range {first}-{last} mixes IPv4 and IPv6"
            )));
        }
    };
    Ok(subnets.collect())
}

/// Variable-length subnetting: for each host count the smallest block whose usable hosts
/// hold it, placed largest first from the start of `net` (so every block is aligned), and
/// the space left over. An error when a count is 0 or the blocks do not fit in `net`.
pub fn split_hosts(net: IpNet, wanted: &[u128]) -> Result<Plan, SubnetError> {
    let net = net.trunc();
    let width = net.max_prefix_len();
    // Host bits per block, computed first so that a count too big for the family is
    // reported as that, not as "does not fit".
    let mut blocks = Vec::with_capacity(wanted.len());
    for (i, &n) in wanted.iter().enumerate() {
        if n == 0 {
            return Err(SubnetError::Fit(
                "a subnet needs at least 1 host".to_owned(),
            ));
        }
        let bits = (0..=width)
            .find(|&h| usable(width, h) >= n)
            .ok_or_else(|| {
                SubnetError::Fit(format!(
                    "{n} hosts do not fit in any {} block",
                    if width == 32 { "IPv4" } else { "IPv6" }
                ))
            })?;
        blocks.push((bits, i, n));
    }
    // Largest first; equal sizes keep the order asked (the sort is stable).
    blocks.sort_by_key(|&(bits, _, _)| std::cmp::Reverse(bits));

    let room = net_bits(&net);
    let base = to_u128(net.network());
    // Addresses used so far from the start of `net`; None once the whole of an IPv6 /0
    // (2^128 addresses, one more than a u128 holds) is used.
    let mut used: Option<u128> = Some(0);
    let mut allocations = Vec::with_capacity(blocks.len());
    for (bits, _, n) in blocks {
        // Fits when used + 2^bits <= 2^room, written as spans (2^k - 1) to stay in a u128.
        let fits = bits <= room && used.is_some_and(|u| u <= span(room) - span(bits));
        if !fits {
            let asked = wanted
                .iter()
                .map(u128::to_string)
                .collect::<Vec<_>>()
                .join(",");
            return Err(SubnetError::Fit(format!(
                "subnets for {asked} hosts do not fit in {net}: the /{} for {n} hosts is past its end",
                width - bits
            )));
        }
        let start = used.unwrap_or_default();
        let block = IpNet::new(from_u128(net.network(), base + start), width - bits)
            .map_err(|_| SubnetError::Fit(format!("no /{} block", width - bits)))?;
        allocations.push(Allocation {
            wanted: n,
            block,
            hosts: usable(width, bits),
        });
        used = (start + span(bits)).checked_add(1);
    }
    let free = match used {
        Some(u) if u <= span(room) => deaggregate(
            from_u128(net.network(), base + u),
            from_u128(net.network(), base + span(room)),
        )?,
        _ => Vec::new(),
    };
    Ok(Plan { allocations, free })
}

/// Whether `net` holds `other`: an address, or a whole network. A value of the other
/// family is not held.
pub fn contains(net: IpNet, other: IpNet) -> bool {
    net.contains(&other.trunc())
}

fn parse_addr(s: &str) -> Result<IpAddr, SubnetError> {
    s.trim()
        .parse()
        .map_err(|_| SubnetError::Address(s.trim().to_owned()))
}

/// Usable hosts of a block with `bits` host bits in a `width`-bit family: the rule of
/// [`Subnet::hosts`] (RFC 3021 /31, RFC 6164 /127, no IPv4 network or broadcast address,
/// no IPv6 Subnet-Router anycast address).
fn usable(width: u8, bits: u8) -> u128 {
    match bits {
        0 => 1,
        1 => 2,
        _ if width == 32 => span(bits) - 1,
        _ => span(bits),
    }
}

/// 2^bits - 1: a block's last offset; 2^128 - 1 still fits in a u128.
fn span(bits: u8) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

fn net_bits(net: &IpNet) -> u8 {
    net.max_prefix_len() - net.prefix_len()
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address `v` of the family of `like` (`v` is in range: an offset inside a network
/// of that family).
fn from_u128(like: IpAddr, v: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4((v as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(v.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| parse_net(s).unwrap()).collect()
    }

    fn strings(nets: &[IpNet]) -> Vec<String> {
        nets.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn aggregate_merges_adjacent_and_drops_covered() {
        let out = aggregate(&nets(&[
            "10.0.1.0/24",
            "10.0.0.0/24",
            "10.0.0.77",
            "10.0.2.9/23",
            "2001:db8::1",
            "2001:db8::/127",
        ]));
        assert_eq!(strings(&out), ["10.0.0.0/22", "2001:db8::/127"]);
        assert!(aggregate(&[]).is_empty());
    }

    #[test]
    fn deaggregate_splits_a_range() {
        assert_eq!(
            strings(&deaggregate_range("10.0.0.5-10.0.0.20").unwrap()),
            [
                "10.0.0.5/32",
                "10.0.0.6/31",
                "10.0.0.8/29",
                "10.0.0.16/30",
                "10.0.0.20/32"
            ]
        );
        assert_eq!(
            strings(&deaggregate_range("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").unwrap()),
            ["::/0"]
        );
        assert_eq!(
            strings(&deaggregate_range("0.0.0.0-255.255.255.255").unwrap()),
            ["0.0.0.0/0"]
        );
        for bad in [
            "10.0.0.9-10.0.0.1",
            "10.0.0.1-::1",
            "10.0.0.1",
            "10.0.0.1-x",
        ] {
            assert!(deaggregate_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn split_hosts_the_textbook_example() {
        let plan = split_hosts(parse_net("192.168.1.0/24").unwrap(), &[20, 100, 2, 50]).unwrap();
        let got: Vec<(u128, String, u128)> = plan
            .allocations
            .iter()
            .map(|a| (a.wanted, a.block.to_string(), a.hosts))
            .collect();
        assert_eq!(
            got,
            [
                (100, "192.168.1.0/25".to_owned(), 126),
                (50, "192.168.1.128/26".to_owned(), 62),
                (20, "192.168.1.192/27".to_owned(), 30),
                (2, "192.168.1.224/31".to_owned(), 2),
            ]
        );
        assert_eq!(
            strings(&plan.free),
            [
                "192.168.1.226/31",
                "192.168.1.228/30",
                "192.168.1.232/29",
                "192.168.1.240/28"
            ]
        );
    }

    #[test]
    fn split_hosts_edges() {
        let net = parse_net("10.0.0.0/24").unwrap();
        // Exactly full: no free space left.
        let plan = split_hosts(net, &[126, 126]).unwrap();
        assert!(plan.free.is_empty());
        assert!(split_hosts(net, &[126, 126, 1]).is_err());
        assert!(split_hosts(net, &[0]).is_err());
        assert!(split_hosts(net, &[255]).is_err());
        // A single host is a /32; the whole IPv6 space holds 2^128 - 1 usable hosts.
        let plan = split_hosts(net, &[1]).unwrap();
        assert_eq!(plan.allocations[0].block.to_string(), "10.0.0.0/32");
        let all = parse_net("::/0").unwrap();
        let plan = split_hosts(all, &[u128::MAX]).unwrap();
        assert_eq!(plan.allocations[0].block.to_string(), "::/0");
        assert!(plan.free.is_empty());
        assert!(split_hosts(all, &[u128::MAX, 1]).is_err());
        let plan = split_hosts(all, &[1 << 126, 1]).unwrap();
        assert_eq!(
            strings(&plan.allocations.iter().map(|a| a.block).collect::<Vec<_>>()),
            ["::/1", "8000::/128"]
        );
    }

    #[test]
    fn contains_addresses_and_networks() {
        let net = parse_net("10.0.0.0/8").unwrap();
        assert!(contains(net, parse_net("10.1.2.3").unwrap()));
        assert!(contains(net, parse_net("10.1.0.0/16").unwrap()));
        assert!(!contains(net, parse_net("11.0.0.0").unwrap()));
        assert!(!contains(net, parse_net("0.0.0.0/0").unwrap()));
        assert!(!contains(net, parse_net("::a00:1").unwrap()));
    }

    /// Networks inside 10.0.0.0/24: small enough to check every address.
    fn small_nets() -> impl Strategy<Value = Vec<IpNet>> {
        prop::collection::vec((any::<u8>(), 24u8..=32), 0..12).prop_map(|v| {
            v.into_iter()
                .map(|(host, prefix)| parse_net(&format!("10.0.0.{host}/{prefix}")).unwrap())
                .collect()
        })
    }

    fn covers(nets: &[IpNet], host: u8) -> bool {
        let ip = IpNet::from(IpAddr::from([10, 0, 0, host]));
        nets.iter().any(|n| n.contains(&ip))
    }

    /// No two blocks that could be one: siblings of the same size.
    fn minimal(blocks: &[IpNet]) -> bool {
        blocks.windows(2).all(|w| {
            !(w[0].prefix_len() == w[1].prefix_len()
                && w[0].supernet().is_some()
                && w[0].supernet() == w[1].supernet())
        })
    }

    /// The fewest blocks for a set of addresses of 10.0.0.0/24, by brute force: each run
    /// of addresses, cut greedily into the largest aligned block that starts it.
    fn fewest_blocks(set: &[bool; 256]) -> Vec<IpNet> {
        let mut out = Vec::new();
        let mut s = 0usize;
        while s < 256 {
            if !set[s] {
                s += 1;
                continue;
            }
            let mut e = s;
            while e + 1 < 256 && set[e + 1] {
                e += 1;
            }
            while s <= e {
                let mut size = 256;
                while !s.is_multiple_of(size) || s + size - 1 > e {
                    size /= 2;
                }
                let prefix = 32 - size.trailing_zeros() as u8;
                out.push(parse_net(&format!("10.0.0.{s}/{prefix}")).unwrap());
                s += size;
            }
        }
        out
    }

    proptest! {
        #[test]
        fn aggregate_covers_exactly_with_fewest_blocks(input in small_nets()) {
            let mut set = [false; 256];
            for (host, slot) in set.iter_mut().enumerate() {
                *slot = covers(&input, host as u8);
            }
            let out = aggregate(&input);
            prop_assert_eq!(&out, &fewest_blocks(&set));
            prop_assert!(minimal(&out));
            prop_assert_eq!(aggregate(&out), out.clone(), "aggregating twice changes nothing");
        }

        #[test]
        fn deaggregate_is_the_range_exactly(a in any::<u32>(), len in 0u32..5000) {
            let b = a.saturating_add(len);
            let out = deaggregate(IpAddr::from(a.to_be_bytes()), IpAddr::from(b.to_be_bytes())).unwrap();
            let mut next = u64::from(a);
            for net in &out {
                let (IpAddr::V4(start), IpAddr::V4(end)) = (net.network(), net.broadcast()) else {
                    unreachable!()
                };
                prop_assert_eq!(u64::from(u32::from(start)), next, "contiguous and aligned");
                next = u64::from(u32::from(end)) + 1;
            }
            prop_assert_eq!(next, u64::from(b) + 1);
            prop_assert!(minimal(&out));
            // A range that is one block gives that block back; aggregating the blocks gives
            // the same blocks (they are already the fewest).
            prop_assert_eq!(aggregate(&out), out.clone());
        }

        #[test]
        fn split_hosts_gives_the_smallest_blocks_that_fit(
            prefix in 16u8..=30,
            wanted in prop::collection::vec(1u128..3000, 1..8),
        ) {
            let net = parse_net(&format!("172.16.0.0/{prefix}")).unwrap();
            let need: u128 = wanted.iter().map(|&n| {
                let bits = (0..=32u8).find(|&h| usable(32, h) >= n).unwrap();
                1u128 << bits
            }).sum();
            match split_hosts(net, &wanted) {
                Err(_) => prop_assert!(need > 1u128 << (32 - prefix)),
                Ok(plan) => {
                    prop_assert!(need <= 1u128 << (32 - prefix));
                    let mut asked = wanted.clone();
                    let mut got: Vec<u128> = plan.allocations.iter().map(|a| a.wanted).collect();
                    asked.sort_unstable();
                    got.sort_unstable();
                    prop_assert_eq!(asked, got);
                    let mut all: Vec<IpNet> = plan.allocations.iter().map(|a| a.block).collect();
                    for w in plan.allocations.windows(2) {
                        prop_assert!(w[0].block.prefix_len() <= w[1].block.prefix_len(), "largest first");
                    }
                    for a in &plan.allocations {
                        prop_assert!(net.contains(&a.block));
                        let subnet = Subnet::parse(&a.block.to_string()).unwrap();
                        prop_assert_eq!(subnet.hosts(), a.hosts);
                        prop_assert!(a.hosts >= a.wanted);
                        // One prefix longer would be too small (or there is none).
                        if a.block.prefix_len() < 32 {
                            let smaller = Subnet::new(subnet.network(), a.block.prefix_len() + 1).unwrap();
                            prop_assert!(smaller.hosts() < a.wanted);
                        }
                    }
                    all.extend(plan.free.iter().copied());
                    // Blocks and free space together tile the network exactly, without overlap.
                    all.sort();
                    let mut next = u64::from(u32::from(match net.network() { IpAddr::V4(n) => n, _ => unreachable!() }));
                    for b in &all {
                        let (IpAddr::V4(s), IpAddr::V4(e)) = (b.network(), b.broadcast()) else { unreachable!() };
                        prop_assert_eq!(u64::from(u32::from(s)), next);
                        next = u64::from(u32::from(e)) + 1;
                    }
                    prop_assert_eq!(next, u64::from(u32::from(match net.broadcast() { IpAddr::V4(b) => b, _ => unreachable!() })) + 1);
                }
            }
        }
    }
}
