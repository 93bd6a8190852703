//! Target lists for sweeps (`check` and `ping` over many hosts): the one parser both use,
//! and the bounded fan-out that probes hosts concurrently.
//!
//! A target word is one of:
//!
//! - an address: `10.0.0.1`, `::1`, `[::1]`;
//! - a host name: `example.com` (resolved later, by [`Target::resolve`]);
//! - a CIDR block: `10.0.0.0/29` (its hosts: without the network and broadcast addresses
//!   when the block has them, as `ipnet`'s `hosts()` counts them);
//! - a range: `192.168.1.10-20` (the last IPv4 octet, or the last IPv6 group in hex) or
//!   `10.0.0.250-10.0.1.5` (two full addresses of one family).
//!
//! `-` (hosts from stdin) is the CLI's business: it reads the words and hands them here.
//! Expansion is bounded by [`MAX_HOSTS`] so that `10.0.0.0/8` is an error, not 16 million
//! addresses in memory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

use ipnet::IpNet;

/// The most hosts one sweep may name: a /16 of IPv4.
pub const MAX_HOSTS: usize = 65_536;

/// One host to probe, as the user wrote it or as a block expanded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An address, given or expanded from a block or range.
    Addr(IpAddr),
    /// A host name, resolved when probed.
    Name(String),
}

/// A target word that does not parse, or a list that is too long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target {input:?}: {reason}")]
pub struct TargetError {
    /// The word as given, so the error names it.
    input: String,
    /// What is wrong with it.
    reason: String,
}

impl Target {
    /// The target as printed: the address, or the name as given.
    pub fn label(&self) -> String {
        match self {
            Target::Addr(ip) => ip.to_string(),
            Target::Name(name) => name.clone(),
        }
    }

    /// The address to probe: the address itself, or the first of the name's addresses
    /// that `want` accepts (the `-4`/`-6` filters).
    pub fn resolve(&self, want: impl Fn(&IpAddr) -> bool) -> std::io::Result<IpAddr> {
        use std::io::{Error, ErrorKind};
        match self {
            Target::Addr(ip) if want(ip) => Ok(*ip),
            Target::Addr(ip) => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{ip} is not of the family asked for"),
            )),
            Target::Name(name) => (name.as_str(), 0)
                .to_socket_addrs()?
                .map(|a| a.ip())
                .find(|ip| want(ip))
                .ok_or_else(|| Error::new(ErrorKind::NotFound, "no suitable address")),
        }
    }
}

/// Parses target words (in order, repeats kept out) into hosts, at most [`MAX_HOSTS`].
pub fn parse<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Vec<Target>, TargetError> {
    let mut out: Vec<Target> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for word in words {
        let room = MAX_HOSTS.saturating_sub(out.len());
        for t in parse_one(word, room)? {
            if seen.insert(t.clone()) {
                out.push(t);
            }
        }
    }
    Ok(out)
}

/// One word, expanding to at most `room` hosts.
fn parse_one(word: &str, room: usize) -> Result<Vec<Target>, TargetError> {
    let bad = |reason: String| TargetError {
        input: word.to_owned(),
        reason,
    };
    let too_many = |n: u128| {
        bad(format!(
            "{n} hosts; a sweep may name at most {MAX_HOSTS} in all"
        ))
    };
    if word.contains('/') {
        let net: IpNet = word
            .parse()
            .map_err(|_| bad("not a CIDR block (e.g. 10.0.0.0/29, fd00::/120)".into()))?;
        let bits = u32::from(net.max_prefix_len() - net.prefix_len());
        let size = 1u128.checked_shl(bits).unwrap_or(u128::MAX);
        if size > room as u128 {
            return Err(too_many(size));
        }
        return Ok(net.hosts().map(Target::Addr).collect());
    }
    let bare = word
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(word);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return if room == 0 {
            Err(too_many(1))
        } else {
            Ok(vec![Target::Addr(ip)])
        };
    }
    // Names may hold dashes too: a range is only a dash after a valid address.
    if let Some((lo, hi)) = word.rsplit_once('-')
        && let Ok(lo) = lo.parse::<IpAddr>()
    {
        let (lo, hi) = match (lo, hi.parse::<IpAddr>()) {
            (IpAddr::V4(a), Ok(IpAddr::V4(b))) => {
                (u128::from(u32::from(a)), u128::from(u32::from(b)))
            }
            (IpAddr::V6(a), Ok(IpAddr::V6(b))) => (u128::from(a), u128::from(b)),
            (_, Ok(_)) => return Err(bad("both ends must be of one family".into())),
            (IpAddr::V4(a), Err(_)) => {
                let last = hi
                    .parse::<u8>()
                    .map_err(|_| bad(format!("`{hi}` is not an octet from 0 to 255")))?;
                let a = u32::from(a);
                (u128::from(a), u128::from(a & !0xff | u32::from(last)))
            }
            (IpAddr::V6(a), Err(_)) => {
                let last = u16::from_str_radix(hi, 16)
                    .map_err(|_| bad(format!("`{hi}` is not a hex group from 0 to ffff")))?;
                let a = u128::from(a);
                (a, a & !0xffff | u128::from(last))
            }
        };
        if lo > hi {
            return Err(bad("the range runs backwards".into()));
        }
        let size = hi - lo + 1;
        if size > room as u128 {
            return Err(too_many(size));
        }
        let v4 = word.contains('.') && !word.contains(':');
        return Ok((lo..=hi)
            .map(|n| {
                Target::Addr(if v4 {
                    IpAddr::V4(Ipv4Addr::from(n as u32))
                } else {
                    IpAddr::V6(Ipv6Addr::from(n))
                })
            })
            .collect());
    }
    if bare.starts_with('-') {
        return Err(bad("not a host name, address, block or range".into()));
    }
    crate::addr::check_host(bare).map_err(bad)?;
    if room == 0 {
        return Err(too_many(1));
    }
    Ok(vec![Target::Name(bare.to_owned())])
}

/// Runs `f` on every item with at most `bound` running at once (one thread each), and
/// returns the results in the items' order: hosts are probed concurrently, reported in
/// the order given.
pub fn sweep<T: Sync, R: Send>(items: &[T], bound: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    if items.len() <= 1 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..bound.clamp(1, items.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    // A worker that panicked poisoned the lock; the scope re-raises it.
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(words: &[&str]) -> Vec<String> {
        parse(words.iter().copied())
            .unwrap()
            .iter()
            .map(Target::label)
            .collect()
    }

    #[test]
    fn blocks_ranges_names_and_addresses() {
        assert_eq!(
            addrs(&["10.0.0.0/29"]),
            [
                "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"
            ]
        );
        assert_eq!(addrs(&["10.0.0.5/32"]), ["10.0.0.5"]);
        assert_eq!(
            addrs(&["192.168.1.10-12", "192.168.1.11"]),
            ["192.168.1.10", "192.168.1.11", "192.168.1.12"]
        );
        assert_eq!(
            addrs(&["10.0.0.255-10.0.1.1"]),
            ["10.0.0.255", "10.0.1.0", "10.0.1.1"]
        );
        assert_eq!(
            addrs(&["fd00::fe-101"]),
            ["fd00::fe", "fd00::ff", "fd00::100", "fd00::101"]
        );
        assert_eq!(
            addrs(&["[::1]", "localhost", "my-host"]),
            ["::1", "localhost", "my-host"]
        );
    }

    #[test]
    fn bad_words_and_huge_lists_are_errors() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/8",
            "::/64",
            "10.0.0.9-3",
            "10.0.0.1-300",
            "10.0.0.1-::1",
            "1.2.3.4.5",
            "bad host",
            "",
            "-",
        ] {
            assert!(parse([bad]).is_err(), "{bad}");
        }
        assert!(parse(["10.0.0.0/16"]).is_ok());
        assert!(parse(["10.0.0.0/16", "10.1.0.0/30"]).is_err());
    }

    #[test]
    fn sweep_keeps_order_and_bound() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u32> = (0..40).collect();
        let out = sweep(&items, 3, |&i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::yield_now();
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, (0..40).map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
    }
}
