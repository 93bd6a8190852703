//! `sockit bench chat`: fan-out load on chat servers.

use std::process::ExitCode;
use std::time::Duration;

use sockit::Endpoint;
use sockit::bench::chat::{self, Options, Phase, Report};
use sockit::proto::chat::RoomName;

/// Chat fan-out load: delivered lines/s, delivery latency, lost lines.
///
/// CLIENTS connections join one room (spread round-robin over the ADDRs, e.g. two nodes
/// sharing Redis); the first SENDERS send RATE lines/s each for SECS seconds. Each line
/// carries its send time, so every receiver measures every delivery. A line is lost when
/// a client that should have received it did not; clients the server disconnected as too
/// slow are counted apart. Runs on one thread: pin it (taskset) away from the server.
///
/// Examples:
///   sockit bench chat 127.0.0.1:7001 --clients 1000 --senders 10 --rate 100 --secs 10
///   sockit bench chat 127.0.0.1:7001 127.0.0.1:7002 --clients 1000 --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Chat servers (tcp or unix); clients are spread over them.
    #[arg(required = true)]
    addr: Vec<Endpoint>,
    /// Connections, senders included.
    #[arg(long, value_name = "N", default_value_t = 100)]
    clients: usize,
    /// How many clients send.
    #[arg(long, value_name = "M", default_value_t = 10)]
    senders: usize,
    /// Lines per second per sender.
    #[arg(long, value_name = "R", default_value_t = 100.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    secs: f64,
    /// Bytes per line sent.
    #[arg(long, value_name = "B", default_value_t = 64)]
    size: usize,
    /// Room to run in (default: the server's starting room).
    #[arg(long, value_parser = parse_room)]
    room: Option<RoomName>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_room(s: &str) -> Result<RoomName, String> {
    RoomName::parse(s)
}

/// `quiet`: no phase lines on stderr (`bench -q`).
pub fn run(args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    for addr in &args.addr {
        crate::args::refuse_tls("bench chat", addr)?;
    }
    if !(args.secs > 0.0 && args.secs < 86_400.0) {
        return Err(crate::usage("--secs must be between 0 and 86400"));
    }
    if !(args.rate > 0.0 && args.rate <= 1_000_000.0) {
        return Err(crate::usage("--rate must be between 0 and 1000000"));
    }
    let options = Options {
        targets: args.addr,
        clients: args.clients,
        senders: args.senders,
        rate: args.rate,
        duration: Duration::from_secs_f64(args.secs),
        size: args.size.clamp(32, 60_000),
        room: args.room,
        progress: (!quiet).then_some(|phase| match phase {
            Phase::Sending => eprintln!("bench chat: all clients joined; sending"),
            Phase::Drained => eprintln!("bench chat: done"),
        }),
        ..Options::default()
    };
    let report = chat::run(&options)?;
    if args.json {
        println!("{}", json(&report));
    } else {
        print_text(&report, &options);
    }
    Ok(ExitCode::SUCCESS)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn json(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "clients": r.clients,
        "senders": r.senders,
        "secs": r.duration.as_secs_f64(),
        "sent": r.sent,
        "expected": r.expected,
        "delivered": r.delivered,
        "delivered_per_sec": r.delivered_per_sec.round(),
        "lost": r.lost,
        "lost_kept_up": r.lost_kept_up,
        "slow_disconnected": r.slow_disconnected,
        "dropped": r.dropped,
        "gaps": r.gaps,
        "latency_ms": {
            "p50": ms(r.p50),
            "p99": ms(r.p99),
            "p999": ms(r.p999),
            "max": ms(r.max),
        },
        "setup_secs": r.setup.as_secs_f64(),
    })
}

fn print_text(r: &Report, o: &Options) {
    let targets: Vec<String> = o.targets.iter().map(ToString::to_string).collect();
    println!(
        "bench chat: {} clients, {} senders x {} lines/s for {:.1}s on {}",
        r.clients,
        r.senders,
        o.rate,
        r.duration.as_secs_f64(),
        targets.join(", ")
    );
    println!("sent       {} lines", r.sent);
    println!(
        "delivered  {} of {} ({:.0} lines/s)",
        r.delivered, r.expected, r.delivered_per_sec
    );
    println!(
        "lost       {} ({} to clients that kept up; {} clients disconnected as too slow, {} dropped)",
        r.lost, r.lost_kept_up, r.slow_disconnected, r.dropped
    );
    println!(
        "latency    p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
        ms(r.p50),
        ms(r.p99),
        ms(r.p999),
        ms(r.max)
    );
}
