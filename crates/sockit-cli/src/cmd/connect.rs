//! `sockit connect`: the full-duplex client (ncat's client side), on the library's relay.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use sockit::Endpoint;
use sockit::proxy::Proxy;
use sockit::relay::{self, Direction, Dump, Framing, InputEof, LineEndings, Options};
use sockit::socket::Shutdown;

use crate::args::{TlsClientArgs, parse_duration, stop_on_signals};

/// Full-duplex client: stdin goes to ADDR while ADDR's bytes go to stdout, like `ncat HOST PORT`.
///
/// Rules for streams (tcp, tls, unix):
///   - Full duplex: typing never waits for the peer; the peer's bytes are printed as they
///     arrive (flushed per read, also into a pipe).
///   - stdin EOF half-closes the write side (the peer sees EOF); sockit keeps printing
///     until the peer closes, then exits 0.
///   - --no-shutdown: stdin EOF does not half-close; sockit still exits when the peer closes.
///   - The peer closing ends sockit, even while stdin is open: after the peer's EOF sockit
///     ends as soon as stdin ends, or the peer refuses more (it really closed: EPIPE or a
///     reset; a warning says the rest of stdin was lost; exit 0), or stdin has had nothing
///     to send for 0.5s. Bytes waiting for the peer's window are not idleness: while stdin
///     has data sockit keeps sending, so a peer that only half-closed (even one that
///     pauses before reading) still gets a piped file in full.
///   - --send-only: the socket is never read; at stdin EOF sockit sends what is left,
///     half-closes and exits 0 (with --no-shutdown it waits for the peer to close instead).
///   - --recv-only: stdin is never read and the write side stays open; sockit exits when
///     the peer closes.
///   - --crlf: every LF from stdin goes out as CRLF (an existing CRLF stays as it is).
///   - --frame: length-prefixed frames (4-byte big-endian length, then the bytes; the
///     framing of `sockit exec`). Each stdin line, without its LF or CRLF, is sent as one
///     frame (an empty line: an empty frame; a last line without LF: at stdin EOF); each
///     frame received is printed followed by one LF. A received length over --max-frame
///     (default 16M), or a peer that closes in the middle of a frame, ends the connection
///     with one error line (exit 1); a stdin line over --max-frame too. Not with --crlf.
///   - --hex: print what is received as a hex dump (xxd's format: offset, 16 bytes in
///     hex, ASCII), each read as it arrives with offsets from the start of the
///     connection; with --frame, each frame dumped on its own from offset 0 (an empty
///     frame is `00000000:` alone). Output only: stdin is sent as it is (or framed).
///
/// TLS (tls://HOST:PORT): the same rules, close_notify standing for the half-close (stdin
/// EOF sends it; the server's is its EOF). The server's certificate must be trusted: by
/// the system's roots (default), by --cacert FILE (a CA, or the server's own self-signed
/// certificate), or by --pin sha256:HEX (exactly that certificate, as `sockit listen
/// tls://` prints it); -k/--insecure checks nothing (with a warning). An untrusted
/// certificate is one line saying why, exit 1. The handshake has --timeout (default 10s).
/// A server that requires a client certificate (mutual TLS) gets the one of
/// --client-cert FILE --client-key FILE; without it, or if refused, one line, exit 1.
///
/// Through a proxy (--proxy URL, tcp:// and tls:// only): SOCKS5 or HTTP CONNECT, with a
/// user and password if the URL has them; the proxy's refusal is one line naming it
/// (credentials refused, destination refused or unreachable), exit 1.
///
/// Rules for datagrams (udp, unix-dgram):
///   - Each stdin line is one datagram, without its newline (with --crlf: ending in CRLF).
///     Each datagram received is printed, plus a newline when it does not end in one.
///   - At stdin EOF sockit waits for replies until none has come for --reply-wait, then
///     exits 0; with --no-shutdown it waits until interrupted; --send-only exits at once.
///   - --hex dumps each datagram on its own from offset 0. --frame is for streams only
///     (a usage error here: exit 2).
///   - unix-dgram: sockit binds a temporary socket of its own in $TMPDIR to receive the
///     replies, and removes it on exit.
///
/// Exit status: 0 when the conversation ends as above or on SIGINT/SIGTERM; 1 when the
/// connection is refused, reset or times out, or the host is unknown; 2 on bad usage.
///
/// Examples:
///   printf 'GET / HTTP/1.0\r\n\r\n' | sockit connect --crlf 127.0.0.1:8000
///   echo hello | sockit connect udp://127.0.0.1:7000
///   printf 'ping\npong\n' | sockit connect --frame --hex 127.0.0.1:9000
///   printf 'GET / HTTP/1.0\r\nHost: example.com\r\n\r\n' | sockit connect --crlf tls://example.com:443
///   sockit connect --pin sha256:5f0c...e1 tls://127.0.0.1:8443
///   sockit connect --proxy socks5h://127.0.0.1:1080 tls://example.com:443
// Clap's help text: `[USER:PASS@]` is text, not a rustdoc link.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Address to connect to: HOST:PORT, tcp://, tls://, udp://, unix:PATH, unix-dgram:PATH.
    addr: Endpoint,
    /// Give up connecting after this long (e.g. 500ms, 5s); default: the OS's limit.
    /// With tls://, the handshake gets as long again (default 10s).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Datagrams: after stdin EOF, wait this long for more replies (each reply restarts it).
    #[arg(long, value_name = "D", default_value = "1s", value_parser = parse_duration)]
    reply_wait: Duration,
    /// Connect through this proxy (tcp:// and tls:// addresses): socks5://[USER:PASS@]HOST:PORT
    /// (the name resolved here), socks5h://... (resolved by the proxy) or
    /// http://[USER:PASS@]HOST:PORT (HTTP CONNECT). TLS runs end to end through it.
    #[arg(long, value_name = "URL")]
    proxy: Option<Proxy>,
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    tls: TlsClientArgs,
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
    /// Streams: send each stdin line as one length-prefixed frame; print each frame received
    /// as one line.
    #[arg(long, conflicts_with = "crlf")]
    frame: bool,
    /// With --frame: the largest frame sent or accepted: bytes, or with K, M, G (KiB, MiB,
    /// GiB); at most 4294967295. Default: 16M.
    #[arg(long, value_name = "BYTES", value_parser = parse_max_frame)]
    max_frame: Option<usize>,
    /// Print received bytes as a hex dump (xxd's format); stdin is still sent as it is.
    #[arg(long)]
    hex: bool,
}

fn parse_max_frame(s: &str) -> Result<usize, String> {
    let n = crate::args::parse_size(s)?;
    match usize::try_from(n) {
        Ok(n) if n <= u32::MAX as usize => Ok(n),
        _ => Err(format!(
            "{s:?} is over the largest frame a 4-byte length can announce (4294967295)"
        )),
    }
}

impl RelayArgs {
    /// The library's options for these flags; `--frame` on a datagram address is a usage
    /// error.
    pub fn options(&self, addr: &Endpoint) -> anyhow::Result<Options> {
        if self.frame && addr.transport() == sockit::Transport::Datagram {
            return Err(crate::usage(format!(
                "--frame needs a stream address (tcp or unix), not {addr}"
            )));
        }
        if self.max_frame.is_some() && !self.frame {
            return Err(crate::usage("--max-frame needs --frame"));
        }
        Ok(Options {
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
            framing: if self.frame {
                Framing::Frames {
                    max_frame: self.max_frame.unwrap_or(sockit::frame::DEFAULT_MAX_FRAME),
                }
            } else {
                Framing::Raw
            },
            dump: if self.hex { Dump::Hex } else { Dump::AsIs },
            ..Options::default()
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = Options {
        reply_wait: args.reply_wait,
        ..args.relay.options(&args.addr)?
    };
    if args.proxy.is_some() && !matches!(args.addr, Endpoint::Tcp(_) | Endpoint::Tls(_)) {
        return Err(crate::usage(format!(
            "--proxy needs a tcp:// or tls:// address, not {}",
            args.addr
        )));
    }
    let tls = args.tls.client_tls(&args.addr)?;
    let link = relay::connect_with(&args.addr, args.timeout, tls.as_ref(), args.proxy.as_ref())?;
    // Only now: until connected, SIGINT's default (exit at once) is what a user wants.
    let stop = Shutdown::new().context("cannot create the stop handle")?;
    stop_on_signals(stop.clone())?;
    link.relay(std::io::stdin(), std::io::stdout().lock(), &options, &stop)?;
    Ok(ExitCode::SUCCESS)
}
