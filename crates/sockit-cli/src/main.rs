//! The `sockit` binary: parse arguments, call the library, print. Exit codes: 0 success,
//! 1 failure, 2 bad usage; a closed stdout (`| head`) counts as success.

mod args;
mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sockit::text::Escaped;

/// A socket toolkit: servers under every concurrency model, full-duplex clients, load tests.
///
/// Addresses: HOST:PORT or tcp://HOST:PORT, tls://HOST:PORT, udp://HOST:PORT, unix:PATH,
/// unix-dgram:PATH; IPv6 as [::1]:PORT; port 0 picks a free port. Durations: 500ms, 5s, 2m.
///
/// Exit status: 0 success, 1 failure, 2 bad usage; some commands say more in their help.
///
/// Examples:
///   sockit echo 127.0.0.1:7000
///   sockit connect 127.0.0.1:7000
///   sockit subnet 10.0.0.0/8 --split 12
///   source <(sockit completions bash)
///   sockit man | man -l -
// The doc comment is clap's help text, where `[::1]` is an address, not a rustdoc link.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Debug, Parser)]
#[command(
    name = "sockit",
    version,
    propagate_version = true,
    verbatim_doc_comment
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Echo(cmd::echo::Args),
    Subnet(cmd::subnet::Args),
    Ports(cmd::ports::Args),
    Check(cmd::check::Args),
    Ping(cmd::ping::Args),
    Connect(cmd::connect::Args),
    Listen(cmd::listen::Args),
    Exec(cmd::exec::Args),
    Forward(cmd::forward::Args),
    Proxy(cmd::proxy::Args),
    Http(cmd::http::Args),
    Bench(cmd::bench::Args),
    Send(cmd::send::Args),
    Recv(cmd::recv::Args),
    Chat(cmd::chat::Args),
    Completions(cmd::completions::Args),
    Man(cmd::man::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    init_tracing();
    let result = match cli.command {
        Command::Echo(args) => cmd::echo::run(args),
        Command::Subnet(args) => cmd::subnet::run(args),
        Command::Ports(args) => cmd::ports::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Ping(args) => cmd::ping::run(args),
        Command::Connect(args) => cmd::connect::run(args),
        Command::Listen(args) => cmd::listen::run(args),
        Command::Exec(args) => cmd::exec::run(args),
        Command::Forward(args) => cmd::forward::run(args),
        Command::Proxy(args) => cmd::proxy::run(args),
        Command::Http(args) => cmd::http::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Send(args) => cmd::send::run(args),
        Command::Recv(args) => cmd::recv::run(args),
        Command::Chat(args) => cmd::chat::run(args),
        Command::Completions(args) => cmd::completions::run(args),
        Command::Man(args) => cmd::man::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.is::<Usage>() => {
            eprintln!("sockit: {}", Escaped(clip_arguments(&e.to_string())));
            ExitCode::from(2)
        }
        Err(e) => {
            // An error may quote a peer (a refusal, a file name, a reason phrase).
            eprintln!("sockit: {}", Escaped(clip_arguments(&one_line(&e))));
            ExitCode::FAILURE
        }
    }
}

/// The whole command line as clap sees it, for the completion scripts and manual pages.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command()
}

/// Help and version go to stdout with exit 0; any other parse error is one line, exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let rendered = e.render().to_string();
    // The message is the first paragraph: clap lists missing arguments on the lines after
    // "...were not provided:", which belong on the one line too.
    let line = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    let line = if line.is_empty() {
        "invalid arguments"
    } else {
        line
    };
    eprintln!("sockit: {} (see --help)", clip_arguments(line));
    ExitCode::from(2)
}

/// Bad input found after argument parsing (an invalid CIDR, say): exit code 2, like a
/// parse error, rather than 1.
#[derive(Debug)]
pub struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Wraps a message or error as a [`Usage`] error.
pub fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    Usage(e.to_string()).into()
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SOCKIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        // Colour codes only for a person at a terminal, not in logs or pipes.
        .with_ansi(colour(std::io::stderr().is_terminal()))
        .init();
}

/// Whether to colour output going to a stream: only on a terminal, and never when the
/// NO_COLOR environment variable is set and not empty (<https://no-color.org>). clap's
/// help follows the same rule on its own (anstream).
pub fn colour(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The error and its causes on one line, `a: b: c`. A cause whose text the previous message
/// already ends with (library errors print their source too) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// Arguments longer than this are shortened where an error message quotes them.
const CLIP: usize = 64;

/// An error message with every long command-line argument it quotes shortened to its
/// first [`CLIP`] characters and its length: a 100 KB argument makes a one-line error,
/// not 100 KB of terminal.
fn clip_arguments(message: &str) -> String {
    let mut out = message.to_owned();
    let mut long: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| a.chars().count() > CLIP)
        .collect();
    // Longest first, so an argument that contains another is clipped whole.
    long.sort_by_key(|a| std::cmp::Reverse(a.len()));
    for arg in long {
        let head: String = arg.chars().take(CLIP).collect();
        out = out.replace(&arg, &format!("{head}... ({} bytes)", arg.len()));
    }
    out
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
