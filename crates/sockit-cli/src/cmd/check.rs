//! `sockit check`: which ports of a host accept a TCP connection.

use std::net::{IpAddr, ToSocketAddrs};
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
/// With --syn (root only), a half-open SYN scan over a raw socket instead: SYN-ACK is open
/// (and answered with a RST), RST is closed, silence is filtered; same output.
/// Exit 0 when at least one port is open, 1 when none is.
///
/// Examples:
///   sockit check 127.0.0.1 22,80,443
///   sockit check ::1 8000-8100 --all --timeout 300ms
///   sockit check localhost 1-65535 --json
///   sudo sockit check 127.0.0.1 1-65535 --syn
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Host name or address (IPv6 with or without brackets).
    #[arg(value_parser = crate::args::parse_host)]
    host: String,
    /// Ports: 22, 8000-8100, 22,80,443, or a mix.
    #[arg(value_parser = clap::value_parser!(PortList))]
    ports: PortList,
    /// How long to wait for each port before calling it filtered.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    timeout: Duration,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=65_535))]
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
    /// Print a JSON array of {"port", "state", "service"} in port order.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let host = resolve(&args.host)?;
    let started = Instant::now();
    let results = if args.syn {
        let options = SynOptions {
            timeout: args.timeout,
            rate: args.rate,
            ..SynOptions::default()
        };
        syn::scan(host, &args.ports, options)
    } else {
        let options = ScanOptions {
            timeout: args.timeout,
            concurrency: args.concurrency as usize,
        };
        check::scan(host, &args.ports, options)
    }
    .with_context(|| format!("scan of {host} failed"))?;
    let shown = results
        .iter()
        .filter(|r| args.all || r.state == PortState::Open);
    if args.json {
        let rows: Vec<_> = shown
            .map(|r| json!({ "port": r.port, "state": r.state.name(), "service": ports::name_of(r.port, "tcp") }))
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for r in shown {
            let port = format!("{}/tcp", r.port);
            println!(
                "{port:<11} {:<8} {}",
                r.state.name(),
                ports::name_of(r.port, "tcp").unwrap_or("").trim_end()
            );
        }
    }
    let count = |s| results.iter().filter(|r| r.state == s).count();
    let open = count(PortState::Open);
    eprintln!(
        "{host}: {open} open, {} closed, {} filtered ({} ports in {:.2?})",
        count(PortState::Closed),
        count(PortState::Filtered),
        results.len(),
        started.elapsed()
    );
    Ok(if open > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) fn resolve(host: &str) -> anyhow::Result<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse() {
        return Ok(ip);
    }
    (bare, 0)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {bare:?}"))?
        .next()
        .map(|a| a.ip())
        .with_context(|| format!("cannot resolve {bare:?}: no addresses"))
}
