//! `sockit bench`: load generators against a running server, a report for people or JSON.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sockit::Endpoint;
use sockit::bench::{ConnsConfig, EchoConfig, Progress, conns, echo};

use crate::args::{TlsClientArgs, parse_bytes, parse_duration, parse_positive_seconds};

pub mod chat;

/// Load generators: closed-loop echo load, many idle connections, chat fan-out.
///
/// They verify what comes back, are bounded in time, and print a report (or one JSON
/// object with --json). The exit code of echo and conns is 1 when any error was counted;
/// the report is printed all the same. Aim them at servers of your own, on loopback.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Debug, clap::Subcommand)]
enum Bench {
    Echo(EchoArgs),
    Conns(ConnsArgs),
    Chat(chat::Args),
}

/// Closed-loop echo load: every connection keeps --pipeline messages in flight, sending
/// the next when one has come back; every echoed byte is checked.
///
/// Reports messages/s, MB/s (payload, one direction), latency p50/p99/p99.9 (from queuing
/// a message to its last echoed byte) and errors by kind.
///
/// Over tls:// every connection makes its handshake while opening, before the clock
/// starts; the server is trusted as `sockit connect` trusts it (--pin, --cacert, -k).
///
/// Examples:
///   sockit bench echo 127.0.0.1:7000 --conns 50 --size 64 --secs 3 --pipeline 16
///   sockit bench echo tls://127.0.0.1:7443 --pin sha256:5f0c...e1 --conns 50
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
struct EchoArgs {
    /// The echo server (HOST:PORT, tcp://..., tls://..., unix:PATH).
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
    #[command(flatten)]
    tls: TlsClientArgs,
}

/// Opens --conns connections, holds them idle for --hold, then pings each (8 bytes that
/// must come back) and reports how many opened, stayed open and answered.
///
/// Raises the open-file limit as far as the hard limit allows. Over tls:// each
/// connection makes a full handshake while opening (the open time is then the
/// handshakes' time), trusting the server as `sockit connect` does (--pin, --cacert, -k).
///
/// Examples:
///   sockit bench conns 127.0.0.1:7000 --conns 10000 --hold 10s
///   sockit bench conns tls://127.0.0.1:7443 -k --conns 2000 --hold 1s
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
struct ConnsArgs {
    /// The echo server (HOST:PORT, tcp://..., tls://..., unix:PATH).
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
    #[command(flatten)]
    tls: TlsClientArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut line = ProgressLine::new();
    let (text, errors) = match args.command {
        Bench::Echo(a) => {
            let config = EchoConfig {
                tls: a.tls.client_tls(&a.addr)?,
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
            let config = ConnsConfig {
                tls: a.tls.client_tls(&a.addr)?,
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
        Bench::Chat(a) => return chat::run(a),
    };
    writeln!(std::io::stdout(), "{text}")?;
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A `\r`-rewritten status line on stderr, only when stderr is a terminal.
struct ProgressLine {
    on: bool,
    last: Option<Instant>,
}

impl ProgressLine {
    fn new() -> ProgressLine {
        ProgressLine {
            on: std::io::stderr().is_terminal(),
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
