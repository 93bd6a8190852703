//! `sockit check`: which ports of a host accept a TCP connection.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use sockit::net::check::{self, PortList, PortState, ScanOptions};
use sockit::net::ports;
use sockit::net::syn::{self, SynOptions};

use crate::args::parse_duration;

/// Port check (connect scan): open (accepted), closed (refused), filtered (no answer).
///
/// Tries every port concurrently (bounded by --concurrency), prints the open ones (every
/// port with --all) with the service name from `sockit ports`, and a summary on stderr.
/// Several hosts (addresses, names, CIDR blocks like 10.0.0.0/29, ranges like
/// 192.168.1.10-20, or - for hosts from stdin) are scanned together, --concurrency
/// handshakes in flight over all of them, and reported host by host (with --json, one
/// object per host, one per line).
/// With --syn (root only), a half-open SYN scan over a raw socket instead: SYN-ACK is open
/// (and answered with a RST), RST is closed, silence is filtered; same output.
/// Exit 0 when at least one port is open, 1 when none is.
///
/// Examples:
///   sockit check 127.0.0.1 22,80,443
///   sockit check ::1 8000-8100 --all --timeout 300ms
///   sockit check localhost 1-65535 --json
///   sockit check 10.0.0.0/29 192.168.1.10-20 22,80
///   sockit check - 443 < hosts.txt
///   sudo sockit check 127.0.0.1 1-65535 --syn
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Hosts: names, addresses (IPv6 with or without brackets), CIDR blocks, ranges
    /// (a.b.c.10-20), or - for stdin.
    #[arg(required = true, num_args = 1..)]
    targets: Vec<String>,
    /// Ports: 22, 8000-8100, 22,80,443, or a mix.
    #[arg(value_parser = clap::value_parser!(PortList))]
    ports: PortList,
    /// How long to wait for each port before calling it filtered.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    timeout: Duration,
    /// Connection attempts in flight at once (over all hosts).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65_535))]
    concurrency: u32,
    /// Half-open SYN scan over a raw socket (root only), like `nmap -sS`.
    #[arg(long)]
    syn: bool,
    /// With --syn: most SYNs sent per second.
    #[arg(long, default_value_t = 500_000, value_parser = clap::value_parser!(u32).range(1..))]
    rate: u32,
    /// Print every port, not only the open ones.
    #[arg(long)]
    all: bool,
    /// Print a JSON array of {"port", "state", "service"} in port order (a sweep: one
    /// object per host, with such an array as "ports").
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let targets = crate::args::read_targets(&args.targets)?;
    let sweep = crate::args::is_sweep(&args.targets, &targets);
    let hosts = targets
        .iter()
        .map(|t| {
            t.resolve(|_| true)
                .with_context(|| format!("cannot resolve {:?}", t.label()))
        })
        .collect::<anyhow::Result<Vec<IpAddr>>>()?;
    let started = Instant::now();
    let scans = if args.syn {
        let options = SynOptions {
            timeout: args.timeout,
            rate: args.rate,
            ..SynOptions::default()
        };
        hosts
            .iter()
            .map(|&host| {
                syn::scan(host, &args.ports, options)
                    .with_context(|| format!("scan of {host} failed"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        let options = ScanOptions {
            timeout: args.timeout,
            concurrency: args.concurrency as usize,
        };
        check::scan_hosts(&hosts, &args.ports, options).context("scan failed")?
    };
    let elapsed = started.elapsed();
    let mut any_open = false;
    for ((target, host), results) in targets.iter().zip(&hosts).zip(&scans) {
        let rows: Vec<_> = results
            .iter()
            .filter(|r| args.all || r.state == PortState::Open)
            .collect();
        let count = |s| results.iter().filter(|r| r.state == s).count();
        let open = count(PortState::Open);
        any_open |= open > 0;
        if args.json {
            let rows: Vec<_> = rows
                .iter()
                .map(|r| json!({ "port": r.port, "state": r.state.name(), "service": ports::name_of(r.port, "tcp") }))
                .collect();
            if sweep {
                let doc = json!({
                    "host": target.label(),
                    "address": host.to_string(),
                    "open": open,
                    "closed": count(PortState::Closed),
                    "filtered": count(PortState::Filtered),
                    "ports": rows,
                });
                println!("{doc}");
            } else {
                println!("{}", serde_json::Value::Array(rows));
            }
        } else {
            if sweep && !rows.is_empty() {
                println!("{}:", target.label());
            }
            for r in rows {
                let port = format!("{}/tcp", r.port);
                println!(
                    "{port:<11} {:<8} {}",
                    r.state.name(),
                    ports::name_of(r.port, "tcp").unwrap_or("").trim_end()
                );
            }
        }
        eprintln!(
            "{host}: {open} open, {} closed, {} filtered ({} ports in {:.2?})",
            count(PortState::Closed),
            count(PortState::Filtered),
            results.len(),
            elapsed
        );
    }
    Ok(if any_open {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
