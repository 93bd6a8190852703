//! `sockit forward`: accept on one address and relay every connection to a target, on the
//! library's forwarder (`sockit::forward`).

use std::process::ExitCode;
use std::time::Duration;

use sockit::forward::Forward;
use sockit::{Endpoint, Transport};

use crate::args::{
    ProxyVersion, RelayServerArgs, TlsClientArgs, TlsServerArgs, announce_fingerprint,
    parse_nonzero_duration, parse_proxy_version,
};

/// Port forwarder: relays every connection accepted on LISTEN to TARGET, TLS on either.
///
/// Either side may be TCP (HOST:PORT), a Unix socket (unix:PATH) or TLS (tls://HOST:PORT):
/// a tls:// LISTEN terminates TLS (with --cert/--key, or a self-signed certificate made at
/// start whose fingerprint is printed after `listening on`), a tls:// TARGET is reached
/// over TLS (trusted by the system's CAs, --cacert, --pin or -k), both at once re-encrypt.
///
/// Both directions flow at once. One side's EOF is passed on as a half-close and the
/// connection ends when both directions are done; a reset on one side resets the other.
/// A TARGET that refuses or is down closes that client (one warning); the forwarder goes
/// on serving. Plain to plain, bytes move by splice(2) and never enter userspace; an idle
/// connection holds no buffer.
///
/// Datagrams (udp://, unix-dgram: on both sides): each client address gets a session with
/// its own socket towards TARGET, and TARGET's replies on it go back to that client.
/// Sessions end after --idle-timeout (default 60s) without a datagram either way, and
/// at most --max-conns exist (default 10000); datagrams that find a buffer full are
/// dropped, as a router would.
///
/// PROXY protocol (streams): --proxy-protocol v1|v2 sends HAProxy's header to TARGET
/// before the client's bytes (the client's address, or the one a load balancer gave with
/// --accept-proxy-protocol); --accept-proxy-protocol reads one from each client first.
///
/// Examples:
///   sockit forward 127.0.0.1:8080 unix:/run/app.sock
///   sockit forward tls://0.0.0.0:8443 127.0.0.1:8080
///   sockit forward 127.0.0.1:6380 tls://db.internal:6379 --cacert ca.pem
///   sockit forward 127.0.0.1:2222 10.0.0.5:22 --allow 127.0.0.1 --max-conns 100
///   sockit forward udp://127.0.0.1:5353 udp://127.0.0.1:53
///   sockit forward 0.0.0.0:80 127.0.0.1:8080 --proxy-protocol v2
///   sockit forward 127.0.0.1:2222 10.0.0.5:22 --proxy socks5h://bastion:1080
// Clap's help text: `[USER:PASS@]` is text, not a rustdoc link.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Address to accept on: HOST:PORT, tcp://, tls://, unix:PATH, udp://, unix-dgram:PATH.
    listen: Endpoint,
    #[command(flatten)]
    server: RelayServerArgs,
    /// Where to relay each connection: the same kinds (a datagram LISTEN, a datagram TARGET).
    target: Endpoint,
    /// How long connecting to TARGET (with its TLS handshake) may take.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_nonzero_duration)]
    connect_timeout: Duration,
    /// Send HAProxy's PROXY header (v1: text, v2: binary) to TARGET first, so it learns
    /// the real client's address (in clear, before any TLS to TARGET).
    #[arg(long, value_name = "v1|v2", value_parser = parse_proxy_version)]
    proxy_protocol: Option<ProxyVersion>,
    /// Read a PROXY header (v1 or v2) from each client first (sockit behind a load
    /// balancer); a client without a valid one within --header-timeout is refused.
    #[arg(long)]
    accept_proxy_protocol: bool,
    /// Reach TARGET (tcp:// or tls://) through this proxy: socks5://[USER:PASS@]HOST:PORT,
    /// socks5h://... (the proxy resolves TARGET's name) or http://[USER:PASS@]HOST:PORT.
    #[arg(long, value_name = "URL")]
    proxy: Option<sockit::proxy::Proxy>,
    #[command(flatten)]
    server_tls: TlsServerArgs,
    #[command(flatten)]
    client_tls: TlsClientArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.listen.transport() != args.target.transport() {
        return Err(crate::usage(
            "LISTEN and TARGET must both be streams (tcp, unix, tls) or both datagrams (udp, unix-dgram)",
        ));
    }
    if args.listen.transport() == Transport::Datagram
        && (args.proxy_protocol.is_some() || args.accept_proxy_protocol)
    {
        return Err(crate::usage(
            "--proxy-protocol and --accept-proxy-protocol are for streams, not datagrams",
        ));
    }
    if args.proxy.is_some() && !matches!(args.target, Endpoint::Tcp(_) | Endpoint::Tls(_)) {
        return Err(crate::usage(format!(
            "--proxy needs a tcp:// or tls:// TARGET, not {}",
            args.target
        )));
    }
    // Before binding: a bad certificate, key or CA file is reported with nothing bound.
    let server_tls = args.server_tls.server_tls(&args.listen)?;
    let client_tls = args.client_tls.client_tls(&args.target)?;
    let server = args.server.bind(&args.listen)?;
    if let Some((tls, true)) = &server_tls {
        announce_fingerprint(tls);
    }
    let forward = Forward {
        target: args.target,
        server_tls: server_tls.map(|(tls, _)| tls),
        client_tls,
        connect_timeout: args.connect_timeout,
        handshake_timeout: args.server.header_timeout,
        send_proxy: args.proxy_protocol,
        accept_proxy: args.accept_proxy_protocol,
        proxy: args.proxy,
    };
    sockit::forward::serve(server, forward)?;
    Ok(ExitCode::SUCCESS)
}
