//! `sockit subnet`: ipcalc's job on the library's subnet arithmetic, and CIDR sets
//! (aggregate, deaggregate, variable-length subnetting) on `sockit::net::cidr`.

use std::io::BufRead;
use std::process::ExitCode;

use serde_json::{Number, json};
use sockit::net::cidr::{self, IpNet};
use sockit::net::subnet::Subnet;

use crate::usage;

/// Subnet calculator: network, broadcast, host range and count, class, scope; CIDR sets.
///
/// Sets of addresses: --aggregate prints the fewest CIDR blocks that cover exactly the
/// addresses and networks given (overlaps dropped, adjacent blocks merged; IPv4 first,
/// then IPv6); --deaggregate the fewest blocks for a range FIRST-LAST. A network written
/// with host bits set (10.0.0.7/24) stands for its network (10.0.0.0/24).
/// --split-hosts carves CIDR into one subnet per host count, largest first, each the
/// smallest that holds its hosts, and lists the space left; an error if they do not fit.
///
/// Examples:
///   sockit subnet 192.168.11.251/24
///   sockit subnet 192.168.11.251 255.255.0.0 --same 192.168.12.35   (exit 0: same network)
///   sockit subnet 2001:db8::/48 --split 50
///   sockit subnet 10.0.0.7 255.255.255.0 --binary
///   sockit subnet --aggregate 10.0.0.0/24 10.0.1.0/24 10.0.2.7    (10.0.0.0/23, 10.0.2.7/32)
///   sort -u prefixes.txt | sockit subnet --aggregate -
///   sockit subnet --deaggregate 10.0.0.5-10.0.0.20
///   sockit subnet 192.168.1.0/24 --split-hosts 100,50,20,2
///   sockit subnet 10.0.0.0/8 --contains 10.20.30.40                (exit 0: inside)
///
/// Usable hosts: IPv4 /31 has 2 (RFC 3021), /32 one; IPv6 skips the Subnet-Router anycast
/// address except on /127 (RFC 6164) and /128.
///
/// Exit status: 0; with --same or --contains, 0 when inside and 1 when not; 2 on bad
/// input (an invalid address, a range out of order, subnets that do not fit).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// ADDR/PREFIX, or an address followed by MASK.
    #[arg(required_unless_present_any = ["aggregate", "deaggregate"])]
    cidr: Option<String>,
    /// Netmask as dotted quad (255.255.255.0) or prefix length (24).
    mask: Option<String>,
    /// Show address AND netmask = network, in bits.
    #[arg(long, group = "mode")]
    binary: bool,
    /// Is OTHER in the same network? Exit 0 if yes, 1 if not.
    #[arg(long, value_name = "OTHER", group = "mode")]
    same: Option<String>,
    /// List the subnets of this prefix length (at most 65,536).
    #[arg(long, value_name = "PREFIX", group = "mode")]
    split: Option<u8>,
    /// Carve CIDR into subnets for these host counts, largest first (VLSM).
    #[arg(long, value_name = "N,M,...", value_delimiter = ',', num_args = 1.., group = "mode")]
    split_hosts: Vec<u128>,
    /// Is ADDR (or a whole network) inside CIDR? Exit 0 if yes, 1 if not.
    #[arg(long, value_name = "ADDR", group = "mode")]
    contains: Option<String>,
    /// The fewest CIDR blocks covering exactly these addresses and networks (- reads
    /// them from stdin: whitespace or commas apart, # starts a comment).
    #[arg(long, value_name = "NET", num_args = 1.., group = "mode", conflicts_with_all = ["cidr", "mask"])]
    aggregate: Vec<String>,
    /// The fewest CIDR blocks covering exactly the addresses FIRST to LAST.
    #[arg(long, value_name = "FIRST-LAST", group = "mode", conflicts_with_all = ["cidr", "mask"])]
    deaggregate: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

const SPLIT_LIMIT: u128 = 1 << 16;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.aggregate.is_empty() {
        let mut nets = Vec::new();
        for arg in &args.aggregate {
            if arg == "-" {
                for line in std::io::stdin().lock().lines() {
                    // Text that is not UTF-8 is bad input (exit 2); a failed read is not.
                    let line = line.map_err(|e| match e.kind() {
                        std::io::ErrorKind::InvalidData => usage(format!("stdin: {e}")),
                        _ => anyhow::Error::from(e).context("stdin"),
                    })?;
                    let text = line.split('#').next().unwrap_or_default();
                    for word in text.split(|c: char| c.is_whitespace() || c == ',') {
                        if !word.is_empty() {
                            nets.push(cidr::parse_net(word).map_err(usage)?);
                        }
                    }
                }
            } else {
                nets.push(cidr::parse_net(arg).map_err(usage)?);
            }
        }
        print_blocks(&cidr::aggregate(&nets), args.json);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(range) = &args.deaggregate {
        print_blocks(&cidr::deaggregate_range(range).map_err(usage)?, args.json);
        return Ok(ExitCode::SUCCESS);
    }

    // Present unless --aggregate or --deaggregate (clap's required_unless_present_any).
    let cidr = args.cidr.as_deref().unwrap_or_default();
    let subnet = match &args.mask {
        Some(mask) => Subnet::with_mask(cidr, mask),
        None => Subnet::parse(cidr),
    }
    .map_err(usage)?;
    let network = IpNet::new(subnet.network(), subnet.prefix()).map_err(usage)?;

    if let Some(other) = &args.contains {
        let inner = cidr::parse_net(other).map_err(usage)?;
        let inside = cidr::contains(network, inner);
        // An address shows as given, a network as its block.
        let shown = if other.contains('/') {
            inner.to_string()
        } else {
            inner.addr().to_string()
        };
        if args.json {
            println!(
                "{}",
                json!({ "network": network.to_string(), "address": shown, "contains": inside })
            );
        } else {
            println!(
                "{shown} is {}in {network}",
                if inside { "" } else { "not " }
            );
        }
        return Ok(if inside {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    if !args.split_hosts.is_empty() {
        let plan = cidr::split_hosts(network, &args.split_hosts).map_err(usage)?;
        print_plan(network, &plan, args.json);
        return Ok(ExitCode::SUCCESS);
    }

    if let Some(other) = &args.same {
        let addr = other.split_once('/').map_or(other.as_str(), |(a, _)| a);
        let ip = addr
            .parse()
            .map_err(|_| usage(format!("`{addr}` is not an IPv4 or IPv6 address")))?;
        let same = subnet.contains(ip);
        let network = format!("{}/{}", subnet.network(), subnet.prefix());
        if args.json {
            println!(
                "{}",
                json!({ "address": addr, "network": network, "same": same })
            );
        } else {
            println!("{addr} is {}in {network}", if same { "" } else { "not " });
        }
        return Ok(if same {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    if let Some(prefix) = args.split {
        let parts = subnet.split(prefix, SPLIT_LIMIT).map_err(usage)?;
        if args.json {
            let names: Vec<String> = parts.iter().map(ToString::to_string).collect();
            println!("{}", json!(names));
        } else {
            for part in parts {
                println!("{part}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }

    if args.json {
        println!(
            "{}",
            json!({
                "address": subnet.address().to_string(),
                "prefix": subnet.prefix(),
                "netmask": subnet.netmask().to_string(),
                "wildcard": subnet.wildcard().to_string(),
                "network": subnet.network().to_string(),
                "broadcast": subnet.broadcast().map(|b| b.to_string()),
                "host_min": subnet.host_min().to_string(),
                "host_max": subnet.host_max().to_string(),
                // Up to 2^128: exact with serde_json's arbitrary_precision (Python reads it exactly).
                "hosts": serde_json::Number::from_u128(subnet.hosts()),
                "class": subnet.class().map(String::from),
                "scope": subnet.scope().name(),
            })
        );
        return Ok(ExitCode::SUCCESS);
    }

    println!("Address:   {}", subnet.address());
    println!("Netmask:   {} = {}", subnet.netmask(), subnet.prefix());
    println!("Wildcard:  {}", subnet.wildcard());
    println!("Network:   {}/{}", subnet.network(), subnet.prefix());
    if let Some(b) = subnet.broadcast() {
        println!("Broadcast: {b}");
    }
    println!("HostMin:   {}", subnet.host_min());
    println!("HostMax:   {}", subnet.host_max());
    println!("Hosts:     {}", subnet.hosts());
    if let Some(class) = subnet.class() {
        println!("Class:     {class}");
    }
    println!("Scope:     {}", subnet.scope());
    if args.binary {
        println!();
        println!("  {}  address", Subnet::binary(subnet.address()));
        println!("& {}  netmask", Subnet::binary(subnet.netmask()));
        println!(
            "= {}  network {}",
            Subnet::binary(subnet.network()),
            subnet.network()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// CIDR blocks one per line, or as a JSON array of strings.
fn print_blocks(blocks: &[IpNet], json: bool) {
    if json {
        let names: Vec<String> = blocks.iter().map(ToString::to_string).collect();
        println!("{}", json!(names));
    } else {
        for block in blocks {
            println!("{block}");
        }
    }
}

/// A --split-hosts plan: a table of block, hosts wanted and usable hosts, then the free
/// blocks; or one JSON object.
fn print_plan(network: IpNet, plan: &cidr::Plan, json: bool) {
    if json {
        let subnets: Vec<serde_json::Value> = plan
            .allocations
            .iter()
            .map(|a| {
                json!({
                    "network": a.block.to_string(),
                    // Up to 2^128: exact with serde_json's arbitrary_precision.
                    "wanted": Number::from_u128(a.wanted),
                    "hosts": Number::from_u128(a.hosts),
                })
            })
            .collect();
        let free: Vec<String> = plan.free.iter().map(ToString::to_string).collect();
        println!(
            "{}",
            json!({ "network": network.to_string(), "subnets": subnets, "free": free })
        );
        return;
    }
    let rows: Vec<[String; 3]> = plan
        .allocations
        .iter()
        .map(|a| {
            [
                a.block.to_string(),
                a.wanted.to_string(),
                a.hosts.to_string(),
            ]
        })
        .chain(
            plan.free
                .iter()
                .map(|f| [f.to_string(), "free".to_owned(), String::new()]),
        )
        .collect();
    let header = ["NETWORK", "WANTED", "USABLE"].map(str::to_owned);
    let width = |i: usize| {
        rows.iter()
            .chain(std::iter::once(&header))
            .map(|r| r[i].len())
            .max()
            .unwrap_or_default()
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!("{:<w0$}  {:>w1$}  {:>w2$}", row[0], row[1], row[2]);
        println!("{}", line.trim_end());
    }
}
