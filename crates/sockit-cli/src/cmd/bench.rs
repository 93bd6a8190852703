//! `sockit bench`: load generators against a running server, a report for people or JSON.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sockit::Endpoint;
use sockit::bench::{ConnsConfig, EchoConfig, Progress, conns, echo};

use crate::args::{parse_bytes, parse_duration, parse_positive_seconds};

pub mod chat;

/// Load generators: closed-loop echo load, many idle connections, chat fan-out.
///
/// They verify what comes back, are bounded in time, and print a report (or one JSON
/// object with --json). The exit code of echo and conns is 1 when any error was counted;
/// the report is printed all the same. Aim them at servers of your own, on loopback.
///
/// Examples:
///   sockit bench echo 127.0.0.1:7000 --conns 50 --secs 3
///   sockit bench conns 127.0.0.1:7000 --conns 10000 --hold 10s
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    command: Bench,
    /// No progress on stderr (the status line on a terminal, the phases of bench chat);
    /// the report and errors still print.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Bench {
    Echo(EchoArgs),
    Conns(ConnsArgs),
    Chat(chat::Args),
}

/// Closed-loop echo load: every connection keeps --pipeline messages in flight.
///
/// Each connection sends the next message when one has come back; every echoed byte is
/// checked. Reports messages/s, MB/s (payload, one direction), latency p50/p99/p99.9 (from queuing
/// a message to its last echoed byte) and errors by kind.
///
/// Examples:
///   sockit bench echo 127.0.0.1:7000 --conns 50 --size 64 --secs 3 --pipeline 16
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
struct EchoArgs {
    /// The echo server (HOST:PORT, tcp://..., unix:PATH).
    addr: Endpoint,
    /// Connections.
    #[arg(long, short = 'c', default_value_t = 1)]
    conns: usize,
    /// Bytes per message (64, 16K = 16 KiB, 1M = 1 MiB).
    #[arg(long, short = 's', default_value = "64", value_parser = parse_bytes)]
    size: usize,
    /// How long to send load (3 = 3 seconds, or 500ms, 2m).
    #[arg(long, default_value = "5", value_parser = parse_positive_seconds)]
    secs: Duration,
    /// Messages in flight per connection.
    #[arg(long, short = 'p', default_value_t = 1)]
    pipeline: usize,
    /// Load threads (each an epoll loop with its share of the connections).
    #[arg(long, short = 't', default_value_t = 1)]
    threads: usize,
    /// How long one connect may take.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// After --secs, how long to wait for the messages still in flight.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    grace: Duration,
    /// Print the report as one JSON object (latencies in nanoseconds).
    #[arg(long)]
    json: bool,
}

/// Many idle connections: opens --conns, holds them for --hold, then pings each.
///
/// Each ping is 8 bytes that must come back; the report says how many connections opened,
/// stayed open and answered. Raises the open-file limit as far as the hard limit allows.
///
/// Examples:
///   sockit bench conns 127.0.0.1:7000 --conns 10000 --hold 10s
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
struct ConnsArgs {
    /// The echo server (HOST:PORT, tcp://..., unix:PATH).
    addr: Endpoint,
    /// Connections to open.
    #[arg(long, short = 'c', default_value_t = 1000)]
    conns: usize,
    /// How long to hold them before pinging (e.g. 500ms, 10s).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    hold: Duration,
    /// Connect attempts in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// How long one connect may take.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// How long all the pings together may take.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    ping_timeout: Duration,
    /// Print the report as one JSON object (latencies in nanoseconds).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut line = ProgressLine::new(args.quiet);
    let (text, errors) = match args.command {
        Bench::Echo(a) => {
            crate::args::refuse_tls("bench echo", &a.addr)?;
            let config = EchoConfig {
                conns: a.conns,
                size: a.size,
                duration: a.secs,
                pipeline: a.pipeline,
                threads: a.threads,
                connect_timeout: a.connect_timeout,
                grace: a.grace,
                ..EchoConfig::new(a.addr)
            };
            let report = echo::run(&config, |p| line.show(p));
            line.clear();
            let report = report?;
            let text = if a.json {
                report.to_json()
            } else {
                report.to_string()
            };
            (text, report.errors())
        }
        Bench::Conns(a) => {
            crate::args::refuse_tls("bench conns", &a.addr)?;
            let config = ConnsConfig {
                conns: a.conns,
                hold: a.hold,
                connect_concurrency: a.concurrency,
                connect_timeout: a.connect_timeout,
                ping_timeout: a.ping_timeout,
                ..ConnsConfig::new(a.addr)
            };
            let report = conns::run(&config, |p| line.show(p));
            line.clear();
            let report = report?;
            let text = if a.json {
                report.to_json()
            } else {
                report.to_string()
            };
            (text, report.failures.total())
        }
        Bench::Chat(a) => return chat::run(a, args.quiet),
    };
    writeln!(std::io::stdout(), "{text}")?;
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A `\r`-rewritten status line on stderr, only when stderr is a terminal and not --quiet.
struct ProgressLine {
    on: bool,
    last: Option<Instant>,
}

impl ProgressLine {
    fn new(quiet: bool) -> ProgressLine {
        ProgressLine {
            on: !quiet && std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn show(&mut self, p: &Progress) {
        let due = self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(200));
        if self.on && due {
            self.last = Some(Instant::now());
            eprint!("\r{p}\x1b[K");
        }
    }

    fn clear(&mut self) {
        if self.on && self.last.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}
