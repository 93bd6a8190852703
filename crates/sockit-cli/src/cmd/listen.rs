//! `sockit listen`: the listening side of `connect` (`ncat -l [-k]`), on the library's relay.

use std::process::ExitCode;

use anyhow::Context;
use sockit::Endpoint;
use sockit::relay::{Accept, Listening};
use sockit::socket::{AccessList, Network, Shutdown};

use super::connect::RelayArgs;
use crate::args::{TlsServerArgs, announce_fingerprint, stop_on_signals};

/// Wait for a client and talk to it over stdin/stdout, like `ncat -l` (`-k`: many clients).
///
/// Prints `listening on <address>` to stderr once ready (port 0 picks a free port), binds
/// 127.0.0.1 unless told otherwise, and stops cleanly on SIGINT/SIGTERM (exit 0, Unix
/// socket file removed).
///
/// Without -k: accepts one connection, stops listening, and relays it by the rules of
/// `sockit connect` (full duplex; stdin EOF half-closes; the peer closing ends sockit,
/// but a client that only half-closed still gets a piped file in full, however long it
/// waits before reading; --send-only, --recv-only, --no-shutdown, --crlf, --frame, --hex),
/// exiting when it ends.
///
/// With -k: accepts connections until interrupted. Every client's bytes go to stdout, each
/// read whole (never interleaved inside one read); every stdin read goes to all clients;
/// stdin EOF half-closes them all (and each later client at once) unless --no-shutdown;
/// a client that closes or half-closes leaves. With --frame each client has its own framing:
/// one that sends an over-long or truncated frame is dropped with a warning, the others
/// carry on.
/// stdin is read only while a client is connected. A client that leaves 256 KiB unread
/// for 10s is dropped so that it cannot stall the others.
///
/// TLS (tls://HOST:PORT): the same rules over TLS, close_notify standing for the
/// half-close. With --cert and --key the server presents that certificate; without, it
/// makes a self-signed one and prints `tls fingerprint sha256:HEX` on the line after
/// `listening on`, for `sockit connect --pin sha256:HEX`. A client that fails the
/// handshake (plain text, say) is refused with a warning and the next one is waited for.
/// --client-ca FILE or --client-pin sha256:HEX require a client certificate (mutual TLS):
/// a client without an acceptable one is refused at the handshake, with a warning.
///
/// Datagrams (udp, unix-dgram): peers are told apart by their address. Every datagram is
/// printed (plus a newline when it has none); stdin is read once some peer has spoken, and
/// each line becomes one datagram sent to the peer heard from last (without -k) or to
/// every peer heard from (with -k). Runs until interrupted.
///
/// Examples:
///   sockit listen 127.0.0.1:9000 > received.bin
///   sockit listen -k unix:/tmp/hub.sock
///   sockit listen --frame --hex 127.0.0.1:9000
///   sockit listen tls://127.0.0.1:8443
///   sockit listen --cert cert.pem --key key.pem tls://0.0.0.0:8443
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Address to listen on: HOST:PORT, tcp://, tls://, udp://, unix:PATH, unix-dgram:PATH.
    addr: Endpoint,
    /// Keep listening: accept many clients at once, stdin to all of them.
    #[arg(short = 'k', long)]
    keep_open: bool,
    /// Only clients in these networks (CIDR or address; repeatable). Deny wins when both match.
    #[arg(long, value_name = "CIDR")]
    allow: Vec<Network>,
    /// Refuse clients in these networks (CIDR or address; repeatable). Deny wins over --allow.
    #[arg(long, value_name = "CIDR")]
    deny: Vec<Network>,
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    tls: TlsServerArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = args.relay.options(&args.addr)?;
    // Before binding: a bad certificate or key is reported with nothing bound.
    let tls = args.tls.server_tls(&args.addr)?;
    let access = AccessList::new(args.allow, args.deny);
    let mut listening = Listening::bind(&args.addr, access)
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    if let Some((tls, _)) = &tls {
        listening = listening.with_tls(tls.clone());
    }
    let stop = Shutdown::new().context("cannot create the stop handle")?;
    // Before the line: a script may signal as soon as it reads it.
    stop_on_signals(stop.clone())?;
    eprintln!("listening on {}", listening.local_endpoint());
    if let Some((tls, true)) = &tls {
        announce_fingerprint(tls);
    }
    let accept = if args.keep_open {
        Accept::Many
    } else {
        Accept::One
    };
    listening.relay(
        std::io::stdin(),
        std::io::stdout().lock(),
        accept,
        &options,
        &stop,
    )?;
    Ok(ExitCode::SUCCESS)
}
