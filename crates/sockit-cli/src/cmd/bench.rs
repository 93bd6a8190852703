//! `sockit bench`: load generators against a running server, a report for people or JSON.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use sockit::Endpoint;
use sockit::bench::{ConnsConfig, EchoConfig, HttpConfig, Progress, conns, echo, http};
use sockit::proto::http::client::url::Url;

use crate::args::{TlsClientArgs, parse_bytes, parse_duration, parse_positive_seconds};

pub mod chat;

/// Load generators: closed-loop echo load, HTTP load, many idle connections, chat fan-out.
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
    Http(HttpArgs),
    Conns(ConnsArgs),
    Chat(chat::Args),
}

/// Echo load: every connection keeps --pipeline messages in flight.
///
/// Each connection sends the next message when one has come back (closed loop), or, with
/// --rate, when it is due (open loop: latency from each message's scheduled time, as
/// wrk2); every echoed byte is checked. Reports messages/s, MB/s (payload, one
/// direction), latency p50/p90/p99/p99.9 (from queuing a message to its last echoed byte)
/// and errors by kind.
///
/// Over tls:// every connection makes its handshake while opening, before the clock
/// starts; the server is trusted as `sockit connect` trusts it (--pin, --cacert, -k).
///
/// Examples:
///   sockit bench echo 127.0.0.1:7000 --conns 50 --size 64 --secs 3 --pipeline 16
///   sockit bench echo 127.0.0.1:7000 --conns 50 --rate 20000
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
    /// Open loop: messages per second in all, latency from each message's scheduled time.
    #[arg(long, short = 'R', value_parser = parse_rate)]
    rate: Option<f64>,
    /// Print the report as one JSON object (latencies in nanoseconds).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: TlsClientArgs,
}

/// HTTP/1.1 load over keep-alive connections, closed or open loop.
///
/// Closed loop (as wrk) or, with --rate, open loop (as wrk2: latency from each request's
/// scheduled time, so a stalled server's queue shows in the percentiles). Every response
/// is parsed and its body framed (Content-Length or chunked): a short or overlong body is
/// an error. Reports requests/s, status counts, bytes, latency
/// p50/p90/p99/p99.9/max and errors; a progress line on a terminal only. Exit 1 when any
/// error was counted.
///
/// Examples:
///   sockit bench http http://127.0.0.1:8080/ -c 50 --secs 10
///   sockit bench http http://127.0.0.1:8080/api -c 20 --rate 5000 --json
///   sockit bench http http://127.0.0.1:8080/post -m POST --body data.json -H 'Content-Type: application/json'
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
struct HttpArgs {
    /// The URL (http://HOST:PORT/PATH).
    url: String,
    /// Connections.
    #[arg(long, short = 'c', default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    conns: u32,
    /// How long to send load (3 = 3 seconds, or 500ms, 2m).
    #[arg(long, default_value = "5", value_parser = parse_positive_seconds)]
    secs: Duration,
    /// Open loop: requests per second in all (latency from each request's scheduled time).
    #[arg(long, short = 'R', value_parser = parse_rate)]
    rate: Option<f64>,
    /// Load threads (each an epoll loop with its share of the connections).
    #[arg(long, short = 't', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
    /// Request method.
    #[arg(long, short = 'm', default_value = "GET")]
    method: String,
    /// A request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "HEADER", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Send this file's bytes as the request body (with a Content-Length).
    #[arg(long, value_name = "FILE")]
    body: Option<std::path::PathBuf>,
    /// Print the report as one JSON object (latencies in nanoseconds).
    #[arg(long)]
    json: bool,
}

/// `Name: value`, the name a token, the value without CR, LF or NUL (the same rules as
/// `http serve --header`, without its list of headers the server owns: a load test may
/// send any).
fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not `Name: value`"))?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(sockit::proto::http::server::cors::is_token_byte)
    {
        return Err(format!("{s:?} is not a valid header"));
    }
    Ok((name.to_owned(), crate::args::parse_header_value(value)?))
}

/// Requests per second: a positive number.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive number of requests per second"
        )),
    }
}

/// Many idle connections: opens --conns, holds them for --hold, then pings each.
///
/// Each ping is 8 bytes that must come back; the report says how many connections opened,
/// stayed open and answered. Raises the open-file limit as far as the hard limit allows.
/// Over tls:// each connection makes a full handshake while opening (the open time is then
/// the handshakes' time), trusting the server as `sockit connect` does (--pin, --cacert,
/// -k).
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
    let mut line = ProgressLine::new(args.quiet);
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
                rate: a.rate,
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
        Bench::Http(a) => {
            let url = Url::parse(&a.url).map_err(crate::usage)?;
            let body = match &a.body {
                Some(path) => std::fs::read(path)
                    .with_context(|| format!("read body file {}", path.display()))?,
                None => Vec::new(),
            };
            let config = HttpConfig {
                conns: a.conns as usize,
                duration: a.secs,
                threads: a.threads as usize,
                rate: a.rate,
                method: a.method,
                headers: a.headers,
                body,
                ..HttpConfig::new(url)
            };
            let report = http::run(&config, |p| line.show(p));
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
