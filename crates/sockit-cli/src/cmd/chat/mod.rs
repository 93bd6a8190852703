//! `sockit chat`: the multi-user chat — `serve` and `join` (its load generator is
//! `sockit bench chat`).

// The doc comments are clap's help text, written for a terminal, not for rustdoc.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod join;
mod serve;
mod tty;

use std::process::ExitCode;

/// Multi-user, multi-room line chat: server and terminal client.
///
/// The protocol is plain lines, so nc, ncat and telnet users take part as they are:
/// the first line is your nick, then every line goes to your room (#lobby at first).
/// Commands: /nick NAME, /join ROOM, /rooms, /who [ROOM], /msg NICK TEXT, /quit, /help.
///
/// Examples:
///   sockit chat serve 127.0.0.1:7001 --history 50
///   sockit chat join 127.0.0.1:7001 --nick alice
///   nc 127.0.0.1 7001
///   sockit bench chat 127.0.0.1:7001 --clients 1000 --senders 10 --rate 100 --secs 10
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    Serve(serve::Args),
    Join(join::Args),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Serve(args) => serve::run(args),
        Command::Join(args) => join::run(args),
    }
}
