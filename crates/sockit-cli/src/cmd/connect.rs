//! `sockit connect`: the full-duplex client (ncat's client side), on the library's relay.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use sockit::Endpoint;
use sockit::relay::{self, Direction, InputEof, LineEndings, Options};
use sockit::server::Shutdown;

use crate::server_args::{parse_duration, stop_on_signals};

/// Full-duplex client: stdin goes to ADDR while ADDR's bytes go to stdout, like `ncat HOST PORT`.
///
/// Rules for streams (tcp, unix):
///   - Full duplex: typing never waits for the peer; the peer's bytes are printed as they
///     arrive (flushed per read, also into a pipe).
///   - stdin EOF half-closes the write side (the peer sees EOF); sockit keeps printing
///     until the peer closes, then exits 0.
///   - --no-shutdown: stdin EOF does not half-close; sockit still exits when the peer closes.
///   - The peer closing ends sockit, even while stdin is open: after the peer's EOF sockit
///     ends as soon as stdin ends, or stdin and the peer move no bytes for 0.5s, or the
///     peer refuses more (a peer that only half-closed still gets a piped file in full).
///   - --send-only: the socket is never read; at stdin EOF sockit sends what is left,
///     half-closes and exits 0 (with --no-shutdown it waits for the peer to close instead).
///   - --recv-only: stdin is never read and the write side stays open; sockit exits when
///     the peer closes.
///   - --crlf: every LF from stdin goes out as CRLF (an existing CRLF stays as it is).
///
/// Rules for datagrams (udp, unix-dgram):
///   - Each stdin line is one datagram, without its newline (with --crlf: ending in CRLF).
///     Each datagram received is printed, plus a newline when it does not end in one.
///   - At stdin EOF sockit waits for replies until none has come for --reply-wait, then
///     exits 0; with --no-shutdown it waits until interrupted; --send-only exits at once.
///   - unix-dgram: sockit binds a temporary socket of its own in $TMPDIR to receive the
///     replies, and removes it on exit.
///
/// Exit status: 0 when the conversation ends as above or on SIGINT/SIGTERM; 1 when the
/// connection is refused, reset or times out, or the host is unknown; 2 on bad usage.
///
/// Examples:
///   printf 'GET / HTTP/1.0\r\n\r\n' | sockit connect --crlf 127.0.0.1:8000
///   echo hello | sockit connect udp://127.0.0.1:7000
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Address to connect to: HOST:PORT, tcp://, udp://, unix:PATH, unix-dgram:PATH.
    addr: Endpoint,
    /// Give up connecting after this long (e.g. 500ms, 5s); default: the OS's limit.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Datagrams: after stdin EOF, wait this long for more replies (each reply restarts it).
    #[arg(long, value_name = "D", default_value = "1s", value_parser = parse_duration)]
    reply_wait: Duration,
    #[command(flatten)]
    relay: RelayArgs,
}

/// The relay's rules, shared with `listen`.
#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    /// Only send: never read the socket; exit at stdin EOF (after half-closing).
    #[arg(long, conflicts_with = "recv_only")]
    send_only: bool,
    /// Only receive: never read stdin, keep the write side open.
    #[arg(long)]
    recv_only: bool,
    /// At stdin EOF keep the write side open (no half-close); end when the peer closes.
    #[arg(long)]
    no_shutdown: bool,
    /// Send every LF from stdin as CRLF.
    #[arg(long)]
    crlf: bool,
}

impl RelayArgs {
    /// The library's options for these flags.
    pub fn options(&self) -> Options {
        Options {
            direction: match (self.send_only, self.recv_only) {
                (true, _) => Direction::SendOnly,
                (_, true) => Direction::RecvOnly,
                _ => Direction::Both,
            },
            input_eof: if self.no_shutdown {
                InputEof::KeepOpen
            } else {
                InputEof::HalfClose
            },
            line_endings: if self.crlf {
                LineEndings::Crlf
            } else {
                LineEndings::AsIs
            },
            ..Options::default()
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = Options {
        reply_wait: args.reply_wait,
        ..args.relay.options()
    };
    let link = relay::connect(&args.addr, args.timeout)?;
    // Only now: until connected, SIGINT's default (exit at once) is what a user wants.
    let stop = Shutdown::new().context("cannot create the stop handle")?;
    stop_on_signals(stop.clone())?;
    link.relay(std::io::stdin(), std::io::stdout().lock(), &options, &stop)?;
    Ok(ExitCode::SUCCESS)
}
