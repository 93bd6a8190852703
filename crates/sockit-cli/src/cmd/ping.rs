//! `sockit ping`: ICMP echo over IPv4 and IPv6 with iputils-like output, or TCP handshake
//! pings (`--tcp PORT`), of one host or a sweep.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sockit::net::ping::{self, Event, MAX_SIZE, PingOptions, SocketKind, Stats};
use sockit::net::targets::{self, Target};
use sockit::net::tcping::{self, Outcome, TcpPingOptions};

use crate::args::parse_seconds;

/// Ping over ICMP echo (IPv4, IPv6) or a TCP handshake (--tcp PORT); one host or a sweep.
///
/// ICMP uses the unprivileged ICMP datagram socket where net.ipv4.ping_group_range allows
/// it, else a raw socket (root). Prints a line per reply (duplicates marked DUP!, late
/// replies and ICMP errors reported, not counted) and a summary; Ctrl-C stops and prints the
/// summary. With --tcp PORT, each probe is a TCP connect instead (no privileges needed): its
/// line says open, refused or timeout and the time to the SYN-ACK (or RST).
/// Targets: hosts, addresses, CIDR blocks (10.0.0.0/29), ranges (192.168.1.10-20) and `-`
/// (hosts from stdin); several hosts are pinged concurrently (--concurrency at once), each
/// with its own summary (with --json, one object per host, one per line).
/// Exit 0 when any reply (any open handshake) came, 1 when none did, 2 on bad usage.
///
/// Examples:
///   sockit ping 127.0.0.1 -c 3
///   sockit ping ::1 -c 5 -i 200ms -s 1000
///   sockit ping localhost -6 -c 1 --json
///   sockit ping --tcp 443 example.com -c 4
///   sockit ping --tcp 22 10.0.0.0/29 -c 1 -W 300ms
///   sockit ping -c 1 - < hosts.txt
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Hosts: names, addresses, CIDR blocks, ranges (a.b.c.10-20), or - for stdin.
    #[arg(required = true, num_args = 1..)]
    targets: Vec<String>,
    /// Ping with TCP handshakes to this port instead of ICMP echoes.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    tcp: Option<u16>,
    /// Stop after sending this many requests (default: until Ctrl-C).
    #[arg(short = 'c', long, value_parser = clap::value_parser!(u32).range(1..))]
    count: Option<u32>,
    /// Time between requests: 1s, 200ms, or seconds as a number (0.2).
    #[arg(short = 'i', long, default_value = "1s", value_parser = parse_seconds)]
    interval: Duration,
    /// How long to wait for each reply: 2s, 500ms, or seconds (2).
    #[arg(short = 'W', long, default_value = "2s", value_parser = parse_seconds)]
    timeout: Duration,
    /// Bytes of data in each request (after the 8-byte ICMP header); ICMP only.
    #[arg(short = 's', long, default_value_t = 56, value_parser = clap::value_parser!(u32).range(0..=MAX_SIZE as i64))]
    size: u32,
    /// Use IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,
    /// Use IPv6 only.
    #[arg(short = '6')]
    ipv6: bool,
    /// Hosts pinged at once in a sweep.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Print one JSON object per host with the counts, round-trip times and replies at the end.
    #[arg(long)]
    json: bool,
}

/// One host of the run: how it was named and where it is.
struct Host {
    name: String,
    ip: IpAddr,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let targets = crate::args::read_targets(&args.targets)?;
    let sweep = crate::args::is_sweep(&args.targets, &targets);
    let hosts = targets
        .iter()
        .map(|t| {
            resolve(&args, t).map(|ip| Host {
                name: t.label(),
                ip,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("install signal handler")?;
    }
    let results = targets::sweep(&hosts, args.concurrency as usize, |host| match args.tcp {
        Some(port) => ping_tcp(&args, host, port, &stop),
        None => ping_icmp(&args, host, &stop),
    });
    let mut up = 0;
    for (host, result) in hosts.iter().zip(results) {
        let (stats, doc) = result?;
        up += usize::from(stats.received > 0);
        if args.json {
            println!("{doc}");
        } else {
            print_summary(&host.name, &stats, args.tcp.is_some());
        }
    }
    if sweep {
        eprintln!("{up} of {} hosts answered", hosts.len());
    }
    Ok(if up > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// ICMP echoes to one host; the stats and the host's JSON object.
fn ping_icmp(
    args: &Args,
    host: &Host,
    stop: &AtomicBool,
) -> anyhow::Result<(Stats, serde_json::Value)> {
    let target = host.ip;
    let options = PingOptions {
        count: args.count,
        interval: args.interval,
        timeout: args.timeout,
        size: args.size as usize,
    };
    let ip_header = if target.is_ipv4() { 20 } else { 40 };
    if !args.json {
        println!(
            "PING {} ({target}) {}({}) bytes of data.",
            host.name,
            options.size,
            options.size + 8 + ip_header
        );
    }
    let mut replies = Vec::new();
    let json = args.json;
    let (kind, stats) = ping::run(target, options, stop, |event| {
        if json {
            if let Event::Reply { seq, ttl, rtt, .. } = event {
                replies.push(json!({ "seq": seq, "ttl": ttl, "time_ms": ms(*rtt) }));
            }
            return;
        }
        print_event(event);
    })?;
    let rtt = stats
        .rtt_summary()
        .map(|[min, avg, max, mdev]| json!({ "min": min, "avg": avg, "max": max, "mdev": mdev }));
    let doc = json!({
        "host": host.name,
        "address": target.to_string(),
        "socket": match kind { SocketKind::Raw => "raw", SocketKind::Datagram => "datagram" },
        "transmitted": stats.transmitted,
        "received": stats.received,
        "duplicates": stats.duplicates,
        "late": stats.late,
        "errors": stats.errors,
        "loss_percent": stats.loss_percent(),
        "time_ms": stats.elapsed.as_millis() as u64,
        "rtt_ms": rtt,
        "replies": replies,
    });
    Ok((stats, doc))
}

/// TCP handshakes to one host's `port`; the stats and the host's JSON object.
fn ping_tcp(
    args: &Args,
    host: &Host,
    port: u16,
    stop: &AtomicBool,
) -> anyhow::Result<(Stats, serde_json::Value)> {
    let addr = SocketAddr::new(host.ip, port);
    let options = TcpPingOptions {
        count: args.count,
        interval: args.interval,
        timeout: args.timeout,
    };
    if !args.json {
        println!("PING {} ({}) TCP port {port}.", host.name, host.ip);
    }
    let mut replies = Vec::new();
    let json = args.json;
    let stats = tcping::run(addr, options, stop, |probe| {
        if json {
            replies.push(json!({
                "seq": probe.seq,
                "state": probe.outcome.name(),
                "time_ms": ms(probe.time),
            }));
            return;
        }
        let at = format_addr(addr);
        match &probe.outcome {
            Outcome::Timeout => println!(
                "{at}: tcp_seq={} timeout ({} ms)",
                probe.seq,
                probe.time.as_millis()
            ),
            Outcome::Failed(why) => println!("{at}: tcp_seq={} error: {why}", probe.seq),
            o => println!(
                "{at}: tcp_seq={} {} time={} ms",
                probe.seq,
                o.name(),
                time(probe.time)
            ),
        }
    })?;
    let rtt = stats
        .rtt_summary()
        .map(|[min, avg, max, mdev]| json!({ "min": min, "avg": avg, "max": max, "mdev": mdev }));
    let doc = json!({
        "host": host.name,
        "address": host.ip.to_string(),
        "port": port,
        "socket": "tcp",
        "transmitted": stats.transmitted,
        "received": stats.received,
        "refused": stats.refused,
        "duplicates": stats.duplicates,
        "late": stats.late,
        "errors": stats.errors,
        "loss_percent": stats.loss_percent(),
        "time_ms": stats.elapsed.as_millis() as u64,
        "rtt_ms": rtt,
        "replies": replies,
    });
    Ok((stats, doc))
}

/// `1.2.3.4:80` or `[::1]:80`.
fn format_addr(addr: SocketAddr) -> String {
    addr.to_string()
}

fn print_event(event: &Event) {
    match event {
        Event::Reply {
            from,
            seq,
            bytes,
            ttl,
            rtt,
        } => {
            let ttl = ttl.map(|t| format!(" ttl={t}")).unwrap_or_default();
            println!(
                "{bytes} bytes from {from}: icmp_seq={seq}{ttl} time={} ms",
                time(*rtt)
            );
        }
        Event::Duplicate { from, seq, rtt } => {
            println!("from {from}: icmp_seq={seq} time={} ms (DUP!)", time(*rtt));
        }
        Event::Late { from, seq, rtt } => {
            println!(
                "from {from}: icmp_seq={seq} time={} ms (late, not counted)",
                time(*rtt)
            );
        }
        Event::Error { from, seq, message } => println!("From {from} icmp_seq={seq} {message}"),
        Event::SendFailed { seq, error } => eprintln!("sockit: send icmp_seq={seq}: {error}"),
    }
}

fn print_summary(host: &str, s: &Stats, tcp: bool) {
    println!();
    println!("--- {host} ping statistics ---");
    let mut line = format!(
        "{} {} transmitted, {} received",
        s.transmitted,
        if tcp { "probes" } else { "packets" },
        s.received
    );
    if s.refused > 0 {
        line += &format!(", +{} refused", s.refused);
    }
    if s.duplicates > 0 {
        line += &format!(", +{} duplicates", s.duplicates);
    }
    if s.late > 0 {
        line += &format!(", +{} late", s.late);
    }
    if s.errors > 0 {
        line += &format!(", +{} errors", s.errors);
    }
    let loss = (s.loss_percent() * 10_000.0).round() / 10_000.0;
    println!(
        "{line}, {loss}% packet loss, time {}ms",
        s.elapsed.as_millis()
    );
    if let Some([min, avg, max, mdev]) = s.rtt_summary() {
        println!("rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms");
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// iputils' precision: three decimals below 1 ms, fewer above.
fn time(d: Duration) -> String {
    let ms = ms(d);
    match ms {
        x if x < 1.0 => format!("{x:.3}"),
        x if x < 10.0 => format!("{x:.2}"),
        x if x < 100.0 => format!("{x:.1}"),
        x => format!("{x:.0}"),
    }
}

fn resolve(args: &Args, target: &Target) -> anyhow::Result<IpAddr> {
    let wanted = |ip: &IpAddr| !(args.ipv4 && ip.is_ipv6() || args.ipv6 && ip.is_ipv4());
    match target {
        Target::Addr(ip) if !wanted(ip) => Err(crate::usage(format!(
            "{ip} is not an IPv{} address",
            if args.ipv4 { 4 } else { 6 }
        ))),
        Target::Addr(ip) => Ok(*ip),
        Target::Name(name) => target
            .resolve(wanted)
            .with_context(|| format!("cannot resolve {name:?}")),
    }
}
