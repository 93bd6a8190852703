//! `sockit echo`: the classic socket tutorials' echo server over any address kind, under any model.

use std::process::ExitCode;

use sockit::proto::echo::Echo;
use sockit::{Endpoint, Transport};

use crate::args::ServerArgs;

/// Echo server: sends back every byte (or datagram) it receives.
///
/// Serves TCP, Unix stream, UDP and Unix datagram under any model. Prints
/// `listening on <address>` to stderr once ready; stops cleanly on SIGINT/SIGTERM.
///
/// Example: sockit echo 127.0.0.1:7000 --model threads --upper
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(default_value = "127.0.0.1:7000")]
    addr: Endpoint,
    /// Send back ASCII letters upper-cased, as the classic tutorials' server does.
    #[arg(long)]
    upper: bool,
    #[command(flatten)]
    server: ServerArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::args::refuse_tls("echo", &args.addr)?;
    let server = args.server.bind(&args.addr)?;
    let echo = Echo { upper: args.upper };
    match args.addr.transport() {
        Transport::Stream => server.serve(echo)?,
        Transport::Datagram => server.serve_datagram(echo)?,
    }
    Ok(ExitCode::SUCCESS)
}
