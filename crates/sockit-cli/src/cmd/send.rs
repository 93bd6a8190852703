//! `sockit send`: send files and folders to `sockit recv`, resuming what a broken
//! transfer left, and succeed only when the receiver has verified every file.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use sockit::Endpoint;
use sockit::proto::transfer::{Algo, Kind, Origin, RelPath};
use sockit::socket::Stream;
use sockit::text::Escaped;
use sockit::transfer::{SendEvent, plan, send};

use crate::args::parse_duration;
use crate::usage;

/// Send files and folders to `sockit recv`, verified.
///
/// Folders go whole (layout, permissions, empty files and empty folders kept). Each file
/// is followed by its digest; the receiver checks it, puts the file in place and says
/// so. If an earlier transfer broke, the receiver's partial data is resumed and still
/// verified whole. Exits 0 only when every file was verified (or skipped by
/// --skip-existing on the receiver). Prints each verified file's digest on stdout.
///
/// Example: sockit send 127.0.0.1:7001 photos/ notes.txt --checksum sha256
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where `sockit recv` listens.
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
    /// Give up connecting after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
}

fn parse_algo(s: &str) -> Result<Algo, String> {
    s.parse()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rename = match &args.rename {
        Some(name) => Some(
            RelPath::new(name.as_bytes())
                .map_err(|e| usage(format!("--as {name:?}: not a safe relative name: {e}")))?,
        ),
        None => None,
    };
    let entries = plan(&args.paths, rename.as_ref(), &mut |w| {
        eprintln!("sockit: {w}")
    })?;
    let total: u64 = entries
        .iter()
        .filter(|e| e.kind == Kind::File)
        .filter_map(|e| std::fs::metadata(&e.source).ok())
        .map(|m| m.len())
        .sum();
    let stream = Stream::connect(&args.addr, Some(args.connect_timeout))
        .with_context(|| format!("cannot reach the receiver at {}", args.addr))?;
    let bar = progress_bar(total);
    let started = Instant::now();
    let report = send(stream, &entries, args.checksum, &mut |event| match event {
        SendEvent::Start {
            path,
            size,
            offset,
            origin,
        } => {
            match origin {
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
            bar.suspend(|| eprintln!("{}: skipped: {}", Escaped(path), Escaped(reason)));
        }
    });
    bar.finish_and_clear();
    let report = report?;
    let secs = started.elapsed().as_secs_f64();
    let mut summary = format!(
        "sent {} file(s), {} in {:.2}s ({}/s)",
        report.files,
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
    if report.skipped > 0 {
        summary += &format!("; {} skipped", report.skipped);
    }
    eprintln!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// A bar with rate and ETA on a terminal; hidden (and free) otherwise.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
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
