//! `sockit chat serve`: the chat server, alone or sharing rooms with others through Redis.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use sockit::Endpoint;
use sockit::chat::{ChatServer, Config};
use sockit::proto::chat::RoomName;
use sockit::socket::{AccessList, Network};

use crate::args::{
    TlsServerArgs, announce_fingerprint, parse_bytes, parse_duration, parse_positive,
    parse_positive_bytes, stop_on_signals,
};

/// Chat server: nicks, rooms, history; plain nc/ncat/telnet clients can take part.
///
/// A client's first line is its nick; it then is in #lobby. Nicks are IRC nicks: 1 to 24
/// ASCII letters, digits and [ ] \ ` _ ^ { | } -, not starting with a digit or -, unique
/// without regard to case ([ ] \ count as { } |). ASCII only, so a look-alike of a nick
/// (a Cyrillic or full-width letter) is refused rather than compared: no confusables, and
/// IRC clients can address everyone.
/// Every other line goes to the sender's room as "<nick> text". Commands:
///   /nick NAME   /join ROOM   /rooms   /who [ROOM]   /msg NICK TEXT   /quit   /help
/// Notices start with "* " (* alice joined #lobby), errors with "! ".
///
/// Slow readers: each client has a bounded outgoing queue (--max-queue). A client that
/// reads so slowly that its queue would pass the limit gets "! too slow: ...; disconnected"
/// in place of what was waiting, and is closed; its room sees "* nick left #room (too
/// slow)". Clients that keep up lose nothing and are never slowed down by it. The kernel's
/// buffer for each client is capped too (--send-buffer), so what a slow reader costs is
/// set here, not by the machine's TCP autotuning.
///
/// Input: lines over --max-line bytes are dropped with "! line too long"; invalid UTF-8
/// becomes U+FFFD, and control characters never reach other terminals raw (they are shown
/// escaped: \x1b).
///
/// Scale-out: with --redis, servers using the same Redis share rooms, nicks, /who and
/// /msg. A server that loses Redis goes on serving its own clients and reconnects.
///
/// TLS: on tls://HOST:PORT the server presents --cert/--key, or makes a self-signed
/// certificate and prints "tls fingerprint sha256:..." after "listening on", for
/// clients to --pin (openssl s_client and sockit chat join tls:// are clients). A
/// handshake must finish within 5 s; a client that sends plain text, stalls or fails
/// it loses its own connection, logged in one line (SOCKIT_LOG=info).
///
/// SIGINT/SIGTERM: everyone gets "* server shutting down", then sockit exits 0.
///
/// Examples:
///   sockit chat serve 127.0.0.1:7001 --history 50
///   sockit chat serve 0.0.0.0:7001 --redis redis://127.0.0.1:6379 --allow 10.0.0.0/8
///   sockit chat serve tls://0.0.0.0:7443 --cert cert.pem --key key.pem
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Address to listen on (tcp, tls or unix).
    #[arg(default_value = "127.0.0.1:7001")]
    addr: Endpoint,
    /// Longest line accepted from a client, in bytes (e.g. 4096, 16K).
    #[arg(long, value_name = "B", default_value = "4096", value_parser = parse_positive_bytes)]
    max_line: usize,
    /// Messages of a room replayed to who joins it (0: none).
    #[arg(long, value_name = "N", default_value_t = sockit::proto::chat::DEFAULT_HISTORY)]
    history: usize,
    /// Connections at once (at least 1); more are refused with "! server full".
    #[arg(long, value_name = "N", default_value = "10000", value_parser = parse_positive)]
    max_conns: usize,
    /// Bytes queued for a slow reader before it is disconnected (e.g. 65536, 256K, 1M).
    #[arg(long, value_name = "B", default_value = "256K", value_parser = parse_bytes)]
    max_queue: usize,
    /// Kernel send buffer of each client socket (SO_SNDBUF; Linux doubles it). A slow
    /// reader holds at most --max-queue + 2 x this of the server's memory.
    #[arg(long, value_name = "B", default_value = "64K", value_parser = parse_bytes)]
    send_buffer: usize,
    /// Coalescing window: under load, lines for a client go out together at most this
    /// often (e.g. 0ms, 2ms, 5ms).
    #[arg(long, value_name = "D", default_value = "2ms", value_parser = parse_duration)]
    batch: Duration,
    /// The room clients start in.
    #[arg(long, value_name = "ROOM", default_value = "#lobby", value_parser = parse_room)]
    room: RoomName,
    /// Share rooms with every server using this Redis (redis://HOST:PORT[/DB]).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Only clients in these networks (CIDR or address; repeatable).
    #[arg(long, value_name = "CIDR")]
    allow: Vec<Network>,
    /// Refuse clients in these networks (CIDR or address; repeatable). Deny wins.
    #[arg(long, value_name = "CIDR")]
    deny: Vec<Network>,
    #[command(flatten)]
    tls: TlsServerArgs,
}

fn parse_room(s: &str) -> Result<RoomName, String> {
    RoomName::parse(s)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Before binding: a bad certificate or key is reported with nothing bound.
    let tls = args.tls.server_tls(&args.addr)?;
    if args.max_queue < args.max_line {
        return Err(crate::usage("--max-queue must be at least --max-line"));
    }
    let config = Config {
        max_line: args.max_line,
        history: args.history,
        max_conns: args.max_conns,
        max_queue: args.max_queue,
        send_buffer: args.send_buffer,
        batch: args.batch,
        access: AccessList::new(args.allow, args.deny),
        default_room: args.room,
        redis: args.redis,
        tls: tls.as_ref().map(|(tls, _)| tls.clone()),
    };
    let server = ChatServer::bind(&args.addr, config).map_err(|e| match e {
        sockit::Error::Redis { .. } => crate::usage(e),
        e => anyhow::Error::new(e).context(format!("cannot listen on {}", args.addr)),
    })?;
    // Before the line, as every server does: a script may send SIGTERM the moment it reads
    // it, and the default action would kill the server without its clean shutdown.
    stop_on_signals(server.shutdown_handle())?;
    eprintln!("listening on {}", server.local_endpoint());
    if let Some((tls, true)) = &tls {
        announce_fingerprint(tls);
    }
    server.serve().context("chat server failed")?;
    Ok(ExitCode::SUCCESS)
}
