//! `sockit send`: send files and folders to `sockit recv`, resuming what a broken
//! transfer left, and succeed only when the receiver has verified every file.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use sockit::Endpoint;
use sockit::proto::transfer::{Algo, Origin, RelPath};
use sockit::socket::Stream;
use sockit::socket::Wire;
use sockit::socket::tls::{HANDSHAKE_TIMEOUT, TlsStream};
use sockit::text::Escaped;
use sockit::transfer::{EntryKind, Links, SendEvent, plan, send};

use crate::args::{TlsClientArgs, parse_duration};
use crate::usage;

/// Send files and folders to `sockit recv`, verified.
///
/// Folders go whole (layout, permissions, empty files and empty folders kept). Symbolic
/// links inside folders go as links (the receiver creates one only if its target, read
/// from the link's own folder, stays inside its DIR); with --follow-links, what they
/// point to goes instead. Sockets, FIFOs and devices are left out. Everything left out
/// or refused is named on stderr, one line each, and counted in the summary. Each file
/// is followed by its digest; the receiver checks it, puts the file in place and says
/// so. If an earlier transfer broke, the receiver's partial data is resumed and still
/// verified whole. Exits 0 only when every file sent was verified; what was left out or
/// skipped (special files, refused links, --skip-existing on the receiver) is named and
/// counted, and does not fail the transfer. Prints each verified file's digest on stdout.
///
/// TLS (tls://HOST:PORT, to `sockit recv tls://`): the same transfer, encrypted; the
/// receiver is trusted by the system's roots, --cacert, or --pin with the fingerprint it
/// printed (-k checks nothing). An untrusted receiver is refused before anything is sent.
///
/// Examples:
///   sockit send 127.0.0.1:7001 photos/ notes.txt --checksum sha256
///   sockit send --pin sha256:5f0c...e1 tls://10.0.0.2:7443 photos/
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Where `sockit recv` listens: HOST:PORT, tcp://, tls://, unix:PATH.
    addr: Endpoint,
    /// Files and folders to send.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Digest to verify with: blake3 (fastest), sha256 or md5.
    #[arg(long, short = 'c', default_value = "blake3", value_parser = parse_algo)]
    checksum: Algo,
    /// Send the one PATH under this relative name instead (e.g. backups/today.tar).
    #[arg(long = "as", value_name = "NAME")]
    rename: Option<String>,
    /// Send what symbolic links inside folders point to, not the links (dangling links
    /// and loops are left out, and named).
    #[arg(long, short = 'L')]
    follow_links: bool,
    /// Give up connecting after this long (with tls://, the handshake gets as long again).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// No progress bar, notes or summary on stderr; what is skipped and errors still print,
    /// and the digests on stdout.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    tls: TlsClientArgs,
}

fn parse_algo(s: &str) -> Result<Algo, String> {
    s.parse()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Before anything else: a bad --cacert is reported with nothing planned or sent.
    let tls = args.tls.client_tls(&args.addr)?;
    let rename = match &args.rename {
        Some(name) => Some(
            RelPath::new(name.as_bytes())
                .map_err(|e| usage(format!("--as {name:?}: not a safe relative name: {e}")))?,
        ),
        None => None,
    };
    let links = if args.follow_links {
        Links::Follow
    } else {
        Links::Carry
    };
    // Everything not sent, by name (local paths here, receiver paths below).
    let mut skipped: Vec<String> = Vec::new();
    let entries = plan(&args.paths, rename.as_ref(), links, &mut |left| {
        eprintln!(
            "sockit: skipped {}: {}",
            Escaped(left.source.display()),
            left.reason
        );
        skipped.push(Escaped(&left.path).to_string());
    })?;
    let total: u64 = entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .filter_map(|e| std::fs::metadata(&e.source).ok())
        .map(|m| m.len())
        .sum();
    let stream = Stream::connect(&args.addr, Some(args.connect_timeout))
        .with_context(|| format!("cannot reach the receiver at {}", args.addr))?;
    let wire: Wire = match (&tls, &args.addr) {
        (Some(tls), Endpoint::Tls(hp)) => {
            let timeout = if args.connect_timeout.is_zero() {
                HANDSHAKE_TIMEOUT
            } else {
                args.connect_timeout
            };
            TlsStream::connect(stream, tls, &hp.host, timeout)
                .with_context(|| format!("cannot reach the receiver at {}", args.addr))?
                .into()
        }
        _ => stream.into(),
    };
    let bar = progress_bar(total, args.quiet);
    let started = Instant::now();
    let report = send(wire, &entries, args.checksum, &mut |event| match event {
        SendEvent::Start {
            path,
            size,
            offset,
            origin,
        } => {
            match origin {
                _ if args.quiet => {}
                Origin::Partial => bar.suspend(|| {
                    eprintln!(
                        "{path}: resuming: the receiver has {} of {} ({offset} bytes)",
                        HumanBytes(offset),
                        HumanBytes(size)
                    )
                }),
                Origin::Existing => bar.suspend(|| {
                    eprintln!("{path}: already on the receiver; verifying it is the same")
                }),
                Origin::Fresh => {}
            }
            bar.inc(offset);
        }
        SendEvent::Progress(n) => bar.inc(n),
        SendEvent::Verified { path, digest, .. } => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&super::recv::safe_sum_line(digest, path));
            let _ = out.flush();
        }
        SendEvent::Skipped { path, reason } => {
            // The reason is the receiver's words.
            bar.suspend(|| eprintln!("sockit: skipped {}: {}", Escaped(path), Escaped(reason)));
            skipped.push(Escaped(path).to_string());
        }
    });
    bar.finish_and_clear();
    let report = report?;
    let secs = started.elapsed().as_secs_f64();
    let mut summary = format!(
        "sent {} file(s), {} link(s), {} in {:.2}s ({}/s)",
        report.files,
        report.links,
        HumanBytes(report.sent),
        secs,
        HumanBytes((report.sent as f64 / secs.max(1e-9)) as u64)
    );
    if report.resumed > 0 {
        summary += &format!(
            "; resumed {} ({} bytes) already on the receiver",
            HumanBytes(report.resumed),
            report.resumed
        );
    }
    if report.unchanged > 0 {
        summary += &format!("; {} identical file(s) already there", report.unchanged);
    }
    if !skipped.is_empty() {
        const SHOWN: usize = 5;
        summary += &format!("; skipped {}: ", skipped.len());
        summary += &skipped[..skipped.len().min(SHOWN)].join(", ");
        if skipped.len() > SHOWN {
            summary += &format!(" and {} more", skipped.len() - SHOWN);
        }
    }
    if !args.quiet {
        eprintln!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A bar with rate and ETA on a terminal; hidden (and free) otherwise, or with --quiet.
fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
