//! `sockit proxy`: a SOCKS5 and HTTP CONNECT proxy on one port, on the library's proxy
//! server (`sockit::proxy::server`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use sockit::proto::proxy::Credentials;
use sockit::proto::proxy::policy::{Policy, Rule};
use sockit::proxy::server::ProxyServer;
use sockit::{Endpoint, Transport};

use crate::args::{RelayServerArgs, parse_nonzero_duration};

/// Proxy server: SOCKS5 and HTTP CONNECT on one port, with destination rules.
///
/// A client is told apart by its first byte: SOCKS5 (CONNECT; no authentication, or a
/// user and password with --auth/--auth-file) or an HTTP CONNECT request (Basic
/// Proxy-Authorization with --auth). After the tunnel opens, bytes are relayed as by
/// `sockit forward` (splice, half-close, reset carried).
///
/// Destinations: loopback, private, link-local and other special addresses are refused
/// unless --allow-dest names them, so an open proxy into the network it stands in is never
/// the default. --allow-dest rules, when given, are the only destinations allowed;
/// --deny-dest wins over everything. A rule is CIDR[:PORTS] (10.0.0.0/8,
/// 192.168.1.5:22,80-90, [2001:db8::/32]:443); names are judged by the addresses they
/// resolve to, here.
///
/// A client has --header-timeout for its whole request (greeting, credentials, CONNECT)
/// and 8 KiB for it; one that says nothing, too much or garbage loses its connection only.
/// Credentials cross the network in clear: put the proxy on a trusted network or reach it
/// through `sockit forward tls://...`.
///
/// Examples:
///   sockit proxy 127.0.0.1:1080
///   sockit proxy 0.0.0.0:1080 --auth-file users.txt --allow 10.0.0.0/8
///   sockit proxy 127.0.0.1:3128 --allow-dest 10.0.0.0/8:22,443 --deny-dest 10.0.0.1
///   curl --socks5-hostname 127.0.0.1:1080 https://example.com/
///   curl -x http://127.0.0.1:1080 https://example.com/
// Clap's help text: `CIDR[:PORTS]`, `[2001:db8::/32]` and the URLs are text, not rustdoc links.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Address to listen on (HOST:PORT).
    #[arg(default_value = "127.0.0.1:1080")]
    addr: Endpoint,
    #[command(flatten)]
    server: RelayServerArgs,
    /// A user and password clients must give (USER:PASS; repeatable).
    #[arg(long, value_name = "USER:PASS", value_parser = parse_user)]
    auth: Vec<Credentials>,
    /// Users and passwords from FILE, one USER:PASS per line (# comments).
    #[arg(long, value_name = "FILE")]
    auth_file: Option<PathBuf>,
    /// Allow only these destinations (CIDR[:PORTS]; repeatable); needed for private and
    /// loopback ones, which are refused by default.
    #[arg(long, value_name = "RULE", value_parser = parse_rule)]
    allow_dest: Vec<Rule>,
    /// Refuse these destinations (CIDR[:PORTS]; repeatable); wins over --allow-dest.
    #[arg(long, value_name = "RULE", value_parser = parse_rule)]
    deny_dest: Vec<Rule>,
    /// How long connecting to a destination may take.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_nonzero_duration)]
    connect_timeout: Duration,
}

fn parse_user(s: &str) -> Result<Credentials, String> {
    match s.split_once(':') {
        Some((user, password))
            if !user.is_empty() && user.len() <= 255 && password.len() <= 255 =>
        {
            Ok(Credentials {
                user: user.to_owned(),
                password: password.to_owned(),
            })
        }
        _ => Err("expected USER:PASS (a user of 1 to 255 bytes, a password of at most 255)".into()),
    }
}

fn parse_rule(s: &str) -> Result<Rule, String> {
    s.parse()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.addr.transport() != Transport::Stream || matches!(args.addr, Endpoint::Tls(_)) {
        return Err(crate::usage(format!(
            "a proxy listens on tcp:// or unix: (put TLS in front with `sockit forward`), not {}",
            args.addr
        )));
    }
    let mut users = args.auth;
    if let Some(path) = &args.auth_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let user = parse_user(line)
                .map_err(|e| crate::usage(format!("{}:{}: {e}", path.display(), i + 1)))?;
            users.push(user);
        }
        if users.is_empty() {
            return Err(crate::usage(format!(
                "{} holds no USER:PASS line",
                path.display()
            )));
        }
    }
    let server = args.server.bind(&args.addr)?;
    let proxy = ProxyServer {
        users,
        policy: Policy {
            allow: args.allow_dest,
            deny: args.deny_dest,
        },
        connect_timeout: args.connect_timeout,
        head_timeout: args.server.header_timeout,
    };
    sockit::proxy::server::serve(server, proxy)?;
    Ok(ExitCode::SUCCESS)
}
