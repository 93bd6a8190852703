//! `sockit echo`: the classic socket tutorials' echo server over any address kind, under any model.

use std::process::ExitCode;
use std::time::Duration;

use sockit::proto::echo::Echo;
use sockit::server::TlsService;
use sockit::{Endpoint, Transport};

use crate::args::{ServerArgs, TlsServerArgs, announce_fingerprint, parse_nonzero_duration};

/// Echo server: sends back every byte (or datagram) it receives.
///
/// Serves TCP, TLS, Unix stream, UDP and Unix datagram under any model. Prints
/// `listening on <address>` to stderr once ready (for tls:// with no --cert/--key, then
/// `tls fingerprint sha256:...`, which clients can --pin); stops cleanly on SIGINT/SIGTERM.
///
/// TLS runs under every model: the handshake must finish within --header-timeout, and a
/// client that sends plain text or garbage, or fails the handshake, loses only its own
/// connection.
///
/// Examples:
///   sockit echo 127.0.0.1:7000 --model threads --upper
///   sockit echo tls://127.0.0.1:7443 --model epoll
///   sockit echo tls://0.0.0.0:7443 --cert cert.pem --key key.pem
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Address to listen on.
    #[arg(default_value = "127.0.0.1:7000")]
    addr: Endpoint,
    /// Send back ASCII letters upper-cased, as the classic tutorials' server does.
    #[arg(long)]
    upper: bool,
    /// tls://: how long a client has to finish its handshake (e.g. 5s).
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_nonzero_duration)]
    header_timeout: Duration,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    tls: TlsServerArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Before binding: a bad certificate or key is reported with nothing bound.
    let tls = args.tls.server_tls(&args.addr)?;
    let mut config = args.server.config();
    if tls.is_some() {
        // The handshake is a head: this is what bounds a client that stalls in it.
        config.header_timeout = Some(args.header_timeout);
    }
    let server = args.server.bind_with(&args.addr, config)?;
    let echo = Echo { upper: args.upper };
    match (args.addr.transport(), tls) {
        (Transport::Stream, Some((tls, made))) => {
            if made {
                announce_fingerprint(&tls);
            }
            server.serve(TlsService::new(echo, tls.config()))?
        }
        (Transport::Stream, None) => server.serve(echo)?,
        (Transport::Datagram, _) => server.serve_datagram(echo)?,
    }
    Ok(ExitCode::SUCCESS)
}
