//! `sockit recv`: receive files and folders from `sockit send` into a directory, each
//! verified before it is put in place; digests printed as `sha256sum`/`b3sum` print them.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use sockit::Endpoint;
use sockit::proto::transfer::{Close, RelPath, sum_line};
use sockit::server::{Config, Model, Server};
use sockit::text::{Escaped, terminal_safe};
use sockit::transfer::{Existing, Receiver, RecvEvent, Root};

use crate::args::{
    TlsServerArgs, announce, announce_fingerprint, parse_nonzero_duration, parse_positive,
};

/// Receive files and folders sent with `sockit send`, verified, into DIR.
///
/// Each file is written to a partial file in DIR, checked against the sender's digest,
/// fsynced and renamed into place; then its digest is printed on stdout in the format of
/// sha256sum / md5sum / b3sum (so `cd DIR && sha256sum -c` can check it again). A broken
/// transfer leaves its partial file, and sending again resumes it. Nothing is ever written
/// outside DIR: unsafe names are refused, and no symbolic link is followed on the way.
///
/// Symbolic links sent as links are created only if their target, read from the link's
/// own folder, stays inside DIR: absolute targets and targets that climb out with `..`
/// (or use `..` after a name) are refused, named on stderr and counted in the line that
/// ends each sender's session; the sender goes on with the rest.
///
/// Prints `listening on <address>` to stderr once ready. Without -k it exits after the
/// first sender is done (0 if every file arrived verified); stops on SIGINT/SIGTERM.
///
/// TLS (tls://HOST:PORT): senders must speak TLS, the handshake held to --header-timeout;
/// everything else is the same. With --cert and --key that certificate is presented;
/// without, a self-signed one is made and `tls fingerprint sha256:HEX` printed after
/// `listening on`, for `sockit send --pin sha256:HEX`. A sender that fails the handshake
/// (plain text, say) is closed with a warning and the next one is waited for.
///
/// Examples:
///   sockit recv 0.0.0.0:7001 --dir incoming -k
///   sockit recv tls://0.0.0.0:7443 --dir incoming
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Address to listen on: HOST:PORT, tcp://, tls://, unix:PATH.
    #[arg(default_value = "127.0.0.1:7001")]
    addr: Endpoint,
    /// Directory to receive into (created if missing).
    #[arg(long, short = 'd', value_name = "DIR")]
    dir: PathBuf,
    /// Keep serving senders (several at once) instead of exiting after the first.
    #[arg(short = 'k', long)]
    keep_open: bool,
    /// Replace files that already exist (default: keep them; an identical one counts as
    /// received, a different one is refused).
    #[arg(long, conflicts_with = "skip_existing")]
    overwrite: bool,
    /// Skip files that already exist.
    #[arg(long)]
    skip_existing: bool,
    /// No notes on stderr (a file already here, a resume, a sender's tally); warnings,
    /// errors and the `listening on` line still print, and the digests on stdout.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Senders served at once, with -k (at least 1).
    #[arg(long, default_value = "64", value_parser = parse_positive)]
    max_conns: usize,
    /// Drop a sender that sends nothing for this long (e.g. 30s, 5m): a stuck or
    /// half-open sender must not hold its slot forever.
    #[arg(long, default_value = "2m", value_parser = parse_nonzero_duration)]
    idle_timeout: Duration,
    /// Time the sender's greeting and each file's header may take from first byte to last
    /// (e.g. 10s, 500ms; not 0), however steadily they arrive; file contents keep to
    /// --idle-timeout alone.
    #[arg(long, default_value = "10s", value_parser = parse_nonzero_duration)]
    header_timeout: Duration,
    #[command(flatten)]
    tls: TlsServerArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Before binding: a bad certificate or key is reported with nothing bound.
    let tls = args.tls.server_tls(&args.addr)?;
    let root = Root::open(&args.dir)
        .with_context(|| format!("cannot open directory {}", args.dir.display()))?;
    let existing = match (args.overwrite, args.skip_existing) {
        (true, _) => Existing::Overwrite,
        (_, true) => Existing::Skip,
        _ => Existing::Keep,
    };
    let config = Config {
        model: Model::Threads,
        // Without -k, one sender: a second one is turned away while the first is served.
        max_conns: Some(if args.keep_open { args.max_conns } else { 1 }),
        idle_timeout: Some(args.idle_timeout),
        header_timeout: Some(args.header_timeout),
        ..Config::default()
    };
    let server = Server::bind(&args.addr, config)
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    announce(&server)?;
    if let Some((tls, true)) = &tls {
        announce_fingerprint(tls);
    }
    let shutdown = server.shutdown_handle();
    let failures = Arc::new(AtomicU64::new(0));
    let (keep_open, failed, quiet) = (args.keep_open, failures.clone(), args.quiet);
    let receiver = Receiver::new(root, existing, move |event| match event {
        RecvEvent::Verified {
            peer,
            path,
            digest,
            resumed,
            unchanged,
            ..
        } => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&safe_sum_line(digest, path));
            let _ = out.flush();
            let path = Escaped(path);
            if unchanged && !quiet {
                eprintln!("{peer}: {path} was already here, identical");
            } else if resumed > 0 && !quiet {
                eprintln!("{peer}: {path}: resumed after {resumed} bytes");
            }
        }
        RecvEvent::Skipped { peer, path } => {
            eprintln!("{peer}: skipped {}: it exists", Escaped(path));
        }
        RecvEvent::Link { .. } => {}
        RecvEvent::Handshake { peer, reason } => {
            // Its own connection only: the next sender is waited for, even without -k.
            eprintln!("sockit: warning: {peer}: {}", Escaped(reason));
        }
        RecvEvent::LinkRefused {
            peer,
            path,
            target,
            reason,
        } => {
            eprintln!(
                "{peer}: skipped link {} -> {}: {reason}",
                Escaped(path),
                terminal_safe(target)
            );
        }
        RecvEvent::Ended {
            peer,
            tally,
            result,
        } => {
            match result {
                Ok(Close::Complete) => {
                    if !quiet && (tally.links > 0 || tally.skipped > 0) {
                        eprintln!(
                            "{peer}: received {} file(s), {} link(s); skipped {}",
                            tally.files, tally.links, tally.skipped
                        );
                    }
                }
                Ok(Close::BetweenFiles) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("sockit: {peer}: the sender left before saying it was done");
                }
                Ok(Close::MidFile) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "sockit: {peer}: the sender left in the middle of a file (kept for a resume)"
                    );
                }
                Err(e) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("sockit: {peer}: {}", Escaped(e));
                }
            }
            if !keep_open {
                shutdown.trigger();
            }
        }
    });
    let receiver = match tls {
        Some((tls, _)) => receiver.with_tls(tls),
        None => receiver,
    };
    server.serve_streams(receiver)?;
    if !args.keep_open && failures.load(Ordering::Relaxed) > 0 {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A `sha256sum`-style line for a name the sender chose, made terminal-safe: a name with
/// control characters is shown escaped (`\x1b`), so that one line is for eyes, not for
/// `sha256sum -c`.
pub(crate) fn safe_sum_line(digest: &[u8], path: &RelPath) -> Vec<u8> {
    let line = sum_line(digest, path);
    let body = line.strip_suffix(b"\n").unwrap_or(&line);
    let mut safe = terminal_safe(body).into_owned().into_bytes();
    safe.push(b'\n');
    safe
}
