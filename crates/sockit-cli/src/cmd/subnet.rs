//! `sockit subnet`: ipcalc's job on the library's subnet arithmetic.

use std::process::ExitCode;

use serde_json::json;
use sockit::net::subnet::Subnet;

use crate::usage;

/// Subnet calculator: network, broadcast, host range and count, class, scope.
///
/// Examples:
///   sockit subnet 192.168.11.251/24
///   sockit subnet 192.168.11.251 255.255.0.0 --same 192.168.12.35   (exit 0: same network)
///   sockit subnet 2001:db8::/48 --split 50
///   sockit subnet 10.0.0.7 255.255.255.0 --binary
///
/// Usable hosts: IPv4 /31 has 2 (RFC 3021), /32 one; IPv6 skips the Subnet-Router anycast
/// address except on /127 (RFC 6164) and /128.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// ADDR/PREFIX, or an address followed by MASK.
    cidr: String,
    /// Netmask as dotted quad (255.255.255.0) or prefix length (24).
    mask: Option<String>,
    /// Show address AND netmask = network, in bits.
    #[arg(long)]
    binary: bool,
    /// Is OTHER in the same network? Exit 0 if yes, 1 if not.
    #[arg(long, value_name = "OTHER")]
    same: Option<String>,
    /// List the subnets of this prefix length (at most 65,536).
    #[arg(long, value_name = "PREFIX")]
    split: Option<u8>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

const SPLIT_LIMIT: u128 = 1 << 16;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let subnet = match &args.mask {
        Some(mask) => Subnet::with_mask(&args.cidr, mask),
        None => Subnet::parse(&args.cidr),
    }
    .map_err(usage)?;

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
