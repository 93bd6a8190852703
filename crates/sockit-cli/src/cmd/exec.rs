//! `sockit exec serve` and `sockit exec`: authenticated remote command execution.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sockit::Endpoint;
use sockit::exec::{self, Client, Outcome, ServeOptions, TokenFile, read_token_file};
use sockit::proto::exec::Policy;
use sockit::server::{Config, Model, Server};
use sockit::socket::{AccessList, Network};
use sockit::text::Escaped;

use crate::args::{
    TlsClientArgs, TlsServerArgs, announce, announce_fingerprint, parse_duration, parse_positive,
    parse_size,
};

/// Remote command execution, authenticated with a shared token (HMAC-SHA256).
///
/// `sockit exec serve` runs programs from its --permit list, without a shell, for clients
/// that prove they hold the token; `sockit exec ADDR -- PROG ARGS...` runs one and exits
/// with its status.
///
/// Security: the challenge-response proves who asks, but on tcp:// nothing is encrypted:
/// commands and their output can be read by anyone on the path. Over an untrusted
/// network use tls:// (the server's certificate checked with --pin or --cacert), or a
/// tunnel (ssh, WireGuard).
///
/// Examples:
///   sockit exec serve 127.0.0.1:7070 --permit uptime --permit /usr/bin/df
///   sockit exec 127.0.0.1:7070 --token-file /tmp/sockit-exec-XXXX/token -- df -h
///   sockit exec serve tls://0.0.0.0:7443 --permit uptime
///   sockit exec tls://host:7443 --pin sha256:... --token-file tok -- uptime
///   sort data.txt | sockit exec 127.0.0.1:7070 --token-file tok --stdin -- cat
///
/// Exit status: the remote program's (128+N when signal N killed it); 255 when it did not
/// run to the end (refused, timed out, connection failed); 2 for bad usage.
#[derive(Debug, clap::Args)]
#[command(
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Args {
    #[command(subcommand)]
    serve: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    Serve(Box<ServeArgs>),
}

/// Serve remote command execution to clients that hold the token.
///
/// Prints `listening on ADDR`, then (when it made the token) `token file: PATH`, on stderr.
/// Each command runs without a shell, in its own process group, with the client's address
/// in SOCKIT_REMOTE_ADDR and SOCKIT_REMOTE_PORT; the whole group is killed when the time
/// or output limit is hit or the client disconnects.
///
/// Security: HMAC proves who asks but does not hide the output: on tcp://, commands and
/// output travel in the clear. On tls:// they are encrypted: give --cert/--key, or
/// nothing, and a self-signed certificate is made at start and `tls fingerprint
/// sha256:...` printed after `listening on`, for clients to --pin. The TLS handshake
/// counts as part of authentication: it has the same 3 s and the same strangers' pool.
/// Keep the token file private (mode 0600).
///
/// Examples:
///   sockit exec serve 127.0.0.1:7070 --permit uptime --permit cat --timeout 30s
///   sockit exec serve tls://0.0.0.0:7443 --cert cert.pem --key key.pem --permit uptime
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(default_value = "127.0.0.1:7070")]
    addr: Endpoint,
    /// A program clients may run: a name, looked up on PATH once at start, or an absolute
    /// path. Repeatable; nothing else runs.
    #[arg(long, value_name = "PROG", required = true)]
    permit: Vec<String>,
    /// The shared secret: the file's bytes, as they are. Default: a new random 32-byte
    /// token in a private temporary directory (removed on exit), its path printed.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Kill a command (its whole process group) that runs longer than this; 0 for no limit.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    /// Stop a command whose stdout and stderr together exceed this: bytes, or with K, M, G
    /// (KiB, MiB, GiB).
    #[arg(long, value_name = "BYTES", default_value = "1G", value_parser = parse_size)]
    max_output: u64,
    /// Connections (so commands) served at once (at least 1); more are refused with a
    /// busy message.
    #[arg(long, default_value = "64", value_parser = parse_positive)]
    max_conns: usize,
    /// Connections still to authenticate at once; each has 3 s and may send only the
    /// 33-byte authentication frame. Beyond this, a newcomer replaces the one that has
    /// waited longest, so idle strangers cannot keep token holders out.
    #[arg(long, value_name = "N", default_value = "16", value_parser = parse_positive)]
    max_strangers: usize,
    /// Only clients in these networks (CIDR or address; repeatable). Deny wins when both match.
    #[arg(long, value_name = "CIDR")]
    allow: Vec<Network>,
    /// Refuse clients in these networks (CIDR or address; repeatable).
    #[arg(long, value_name = "CIDR")]
    deny: Vec<Network>,
    /// Runtime threads (default: one per CPU).
    #[arg(long, short = 'w')]
    workers: Option<usize>,
    #[command(flatten)]
    tls: TlsServerArgs,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The exec server's address.
    #[arg(required = true)]
    addr: Option<Endpoint>,
    /// The server's token file.
    #[arg(long, value_name = "FILE", required = true)]
    token_file: Option<PathBuf>,
    /// Give up (and have the server kill the program) after this long.
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Send this process's stdin to the program (otherwise its stdin is empty).
    #[arg(long)]
    stdin: bool,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "PROG ARGS")]
    argv: Vec<String>,
    #[command(flatten)]
    tls: TlsClientArgs,
}

/// The client's status when the remote program did not run to its end.
const NOT_RUN: u8 = 255;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.serve {
        Some(Sub::Serve(serve)) => run_server(*serve),
        None => run_client(args.run),
    }
}

fn run_server(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Before binding: a bad certificate or key is reported with nothing bound.
    let tls = args.tls.server_tls(&args.addr)?;
    let path = std::env::var_os("PATH");
    let permits = exec::resolve_permits(&args.permit, path.as_deref()).map_err(crate::usage)?;
    let (token, made) = match &args.token_file {
        Some(path) => (read_token_file(path)?, None),
        None => {
            let (file, token) = TokenFile::create().context("cannot create a token file")?;
            (token, Some(file))
        }
    };
    tracing::info!(permits = ?permits.describe(), "serving exec");
    let options = ServeOptions {
        policy: Arc::new(Policy {
            token,
            permits,
            max_output: args.max_output,
        }),
        timeout: (!args.timeout.is_zero()).then_some(args.timeout),
        max_commands: args.max_conns,
        max_strangers: args.max_strangers,
        tls: tls.as_ref().map(|(tls, _)| tls.clone()),
    };
    let config = Config {
        model: Model::Async,
        workers: args.workers,
        max_conns: Some(options.max_connections()),
        idle_timeout: None,
        header_timeout: None,
        access: AccessList::new(args.allow, args.deny),
    };
    let server = Server::bind(&args.addr, config)
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    announce(&server)?;
    if let Some((tls, true)) = &tls {
        announce_fingerprint(tls);
    }
    if let Some(file) = &made {
        eprintln!("token file: {}", file.path().display());
    }
    exec::serve(server, options)?;
    Ok(ExitCode::SUCCESS)
}

fn run_client(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (Some(addr), Some(token_file)) = (args.addr, args.token_file) else {
        unreachable!("clap requires ADDR and --token-file without a subcommand");
    };
    // Before connecting: a bad --cacert is reported with nothing sent.
    let tls = args.tls.client_tls(&addr)?;
    let token = read_token_file(&token_file)?;
    let client = Client::new(addr, token).timeout(args.timeout).tls(tls);
    // Unbuffered writers on duplicates of fds 1 and 2: output appears as it arrives, and
    // binary output is not scanned for newlines as `Stdout`'s line buffer would.
    let mut stdout = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let mut stderr = std::fs::File::from(std::io::stderr().as_fd().try_clone_to_owned()?);
    let stdin = args.stdin.then(std::io::stdin);
    let outcome = client.run(&args.argv, stdin, &mut stdout, &mut stderr);
    match outcome {
        Ok(Outcome::Exited(status)) => {
            let code = status.shell_code();
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(NOT_RUN)))
        }
        Ok(Outcome::Refused(reason)) => {
            let _ = writeln!(stderr, "sockit: server refused: {}", Escaped(reason));
            Ok(ExitCode::from(NOT_RUN))
        }
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            let _ = writeln!(stderr, "sockit: {}", Escaped(e));
            Ok(ExitCode::from(NOT_RUN))
        }
    }
}

fn is_broken_pipe(e: &sockit::Error) -> bool {
    matches!(e, sockit::Error::Io { source, what } if source.kind() == std::io::ErrorKind::BrokenPipe && what.starts_with("write"))
}
