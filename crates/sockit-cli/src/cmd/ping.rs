//! `sockit ping`: ICMP echo over IPv4 and IPv6, with iputils-like output.

use std::net::{IpAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sockit::net::ping::{self, Event, MAX_SIZE, PingOptions, SocketKind, Stats};

use crate::args::parse_seconds;

/// ICMP echo (ping) over IPv4 or IPv6.
///
/// Uses the unprivileged ICMP datagram socket where net.ipv4.ping_group_range allows it,
/// else a raw socket (root). Prints a line per reply (duplicates marked DUP!, late replies
/// and ICMP errors reported, not counted) and a summary; Ctrl-C stops and prints the
/// summary. Exit 0 when any reply came, 1 when none did, 2 on bad usage.
///
/// Examples:
///   sockit ping 127.0.0.1 -c 3
///   sockit ping ::1 -c 5 -i 200ms -s 1000
///   sockit ping localhost -6 -c 1 --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Host name or address.
    #[arg(value_parser = crate::args::parse_host)]
    host: String,
    /// Stop after sending this many requests (default: until Ctrl-C).
    #[arg(short = 'c', long, value_parser = clap::value_parser!(u32).range(1..))]
    count: Option<u32>,
    /// Time between requests: 1s, 200ms, or seconds as a number (0.2).
    #[arg(short = 'i', long, default_value = "1s", value_parser = parse_seconds)]
    interval: Duration,
    /// How long to wait for each reply: 2s, 500ms, or seconds (2).
    #[arg(short = 'W', long, default_value = "2s", value_parser = parse_seconds)]
    timeout: Duration,
    /// Bytes of data in each request (after the 8-byte ICMP header).
    #[arg(short = 's', long, default_value_t = 56, value_parser = clap::value_parser!(u32).range(0..=MAX_SIZE as i64))]
    size: u32,
    /// Use IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,
    /// Use IPv6 only.
    #[arg(short = '6')]
    ipv6: bool,
    /// Print one JSON object with the counts, round-trip times and replies at the end.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let target = resolve(&args)?;
    let options = PingOptions {
        count: args.count,
        interval: args.interval,
        timeout: args.timeout,
        size: args.size as usize,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("install signal handler")?;
    }
    let ip_header = if target.is_ipv4() { 20 } else { 40 };
    if !args.json {
        println!(
            "PING {} ({target}) {}({}) bytes of data.",
            args.host,
            options.size,
            options.size + 8 + ip_header
        );
    }
    let mut replies = Vec::new();
    let json = args.json;
    let (kind, stats) = ping::run(target, options, &stop, |event| {
        if json {
            if let Event::Reply { seq, ttl, rtt, .. } = event {
                replies.push(json!({ "seq": seq, "ttl": ttl, "time_ms": ms(*rtt) }));
            }
            return;
        }
        print_event(event);
    })?;
    if json {
        let rtt = stats.rtt_summary().map(
            |[min, avg, max, mdev]| json!({ "min": min, "avg": avg, "max": max, "mdev": mdev }),
        );
        let doc = json!({
            "host": args.host,
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
        println!("{doc}");
    } else {
        print_summary(&args.host, &stats);
    }
    Ok(if stats.received > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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

fn print_summary(host: &str, s: &Stats) {
    println!();
    println!("--- {host} ping statistics ---");
    let mut line = format!(
        "{} packets transmitted, {} received",
        s.transmitted, s.received
    );
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

fn resolve(args: &Args) -> anyhow::Result<IpAddr> {
    let wanted = |ip: &IpAddr| !(args.ipv4 && ip.is_ipv6() || args.ipv6 && ip.is_ipv4());
    let bare = args
        .host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&args.host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        if !wanted(&ip) {
            return Err(crate::usage(format!(
                "{ip} is not an IPv{} address",
                if args.ipv4 { 4 } else { 6 }
            )));
        }
        return Ok(ip);
    }
    (bare, 0)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {bare:?}"))?
        .map(|a| a.ip())
        .find(wanted)
        .with_context(|| format!("cannot resolve {bare:?}: no suitable address"))
}
