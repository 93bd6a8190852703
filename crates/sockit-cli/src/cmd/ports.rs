//! `sockit ports`: the well-known ports table (`/etc/services`), shipped with the binary.

use std::process::ExitCode;

use serde_json::json;
use sockit::net::ports::{self, Query};

use crate::usage;

/// Well-known ports: look up a port, a range or a service name.
///
/// Examples:
///   sockit ports 22          ssh
///   sockit ports http        80/tcp (names and aliases, any case)
///   sockit ports 20-25       everything from ftp-data to smtp
///   sockit ports             the whole table
///
/// Exit 0 when something matched, 1 when nothing did. The table is Debian netbase's
/// /etc/services (from the IANA registry), built into the binary.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A port (22), a range (20-25) or a service name (http); none lists everything.
    query: Option<String>,
    /// Print a JSON array of {"port", "protocol", "name", "aliases", "description"}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let found: Vec<&ports::Service> = match &args.query {
        Some(q) => ports::lookup(&q.parse::<Query>().map_err(usage)?),
        None => ports::table().iter().collect(),
    };
    if args.json {
        let rows: Vec<_> = found
            .iter()
            .map(|s| {
                json!({
                    "port": s.port,
                    "protocol": s.protocol,
                    "name": s.name,
                    "aliases": s.aliases,
                    "description": s.description,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for s in &found {
            let port = format!("{}/{}", s.port, s.protocol);
            let mut line = format!("{port:<11} {:<16}", s.name);
            if !s.aliases.is_empty() {
                line.push_str(&format!(" ({})", s.aliases.join(", ")));
            }
            if let Some(d) = s.description {
                line.push_str(&format!("  {d}"));
            }
            println!("{}", line.trim_end());
        }
    }
    if found.is_empty() {
        if let Some(q) = &args.query {
            eprintln!("sockit: no service matches {q:?}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
