//! What commands share on their command line: the server options, and the parsers of
//! durations, sizes, counts and models, so that `64K` or `500ms` means the same to every
//! command. Also the glue that runs a bound server until SIGINT/SIGTERM after printing the
//! `listening on ...` line.

use std::time::Duration;

use anyhow::Context;
use sockit::Endpoint;
pub use sockit::proto::proxy::header::Version as ProxyVersion;
use sockit::server::{Config, Model, Server};
use sockit::socket::tls::{ClientAuth, ClientOptions, ClientTls, Fingerprint, Identity, ServerTls};
use sockit::socket::{AccessList, Network, Shutdown};

/// Server options: model, workers, limits, access lists.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Concurrency model: blocking, threads, fork, select, poll, epoll, epoll-et, async.
    #[arg(long, short = 'm', default_value = "epoll", value_parser = parse_model)]
    pub model: Model,
    /// Event loops (select/poll/epoll/epoll-et, one SO_REUSEPORT listener each), runtime
    /// threads (async) or datagram receivers (threads/fork). Default: 1 loop; one per CPU.
    #[arg(long, short = 'w')]
    pub workers: Option<usize>,
    /// Connections served at once (at least 1); more are refused (closed at once).
    /// Default per model.
    #[arg(long, value_parser = parse_positive)]
    pub max_conns: Option<usize>,
    /// Close a connection that sends nothing for this long (e.g. 30s, 5m; not 0).
    #[arg(long, value_parser = parse_nonzero_duration)]
    pub idle_timeout: Option<Duration>,
    /// Only clients in these networks (CIDR or address; repeatable). Deny wins when both match.
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<Network>,
    /// Refuse clients in these networks (CIDR or address; repeatable). Deny wins over --allow.
    #[arg(long, value_name = "CIDR")]
    pub deny: Vec<Network>,
}

/// What a relaying server (`forward`, `proxy`) takes on its command line: no --model (it
/// runs as tokio tasks: a waiting relay must cost no thread), the rest as every server.
#[derive(Debug, clap::Args)]
pub struct RelayServerArgs {
    /// How long a client has for its head (its TLS handshake, PROXY header or proxy
    /// request), e.g. 5s.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_nonzero_duration)]
    pub header_timeout: Duration,
    /// Runtime threads. Default: one per CPU.
    #[arg(long, short = 'w', value_parser = parse_positive)]
    pub workers: Option<usize>,
    /// Connections relayed at once (at least 1); more are refused (closed at once).
    /// Datagrams: sessions at once (default 10000); a new client's datagrams are dropped.
    #[arg(long, value_parser = parse_positive)]
    pub max_conns: Option<usize>,
    /// Close a relayed connection when nothing moved either way for this long (e.g. 5m).
    /// Datagrams: end a session after this long (default 60s).
    #[arg(long, value_parser = parse_nonzero_duration)]
    pub idle_timeout: Option<Duration>,
    /// Only clients in these networks (CIDR or address; repeatable). Deny wins when both match.
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<Network>,
    /// Refuse clients in these networks (CIDR or address; repeatable). Deny wins over --allow.
    #[arg(long, value_name = "CIDR")]
    pub deny: Vec<Network>,
}

impl RelayServerArgs {
    /// Binds `endpoint` with these options (the async model) and prints `listening on ...`.
    pub fn bind(&self, endpoint: &Endpoint) -> anyhow::Result<Server> {
        let config = Config {
            model: Model::Async,
            workers: self.workers,
            max_conns: self.max_conns,
            idle_timeout: self.idle_timeout,
            header_timeout: Some(self.header_timeout),
            access: AccessList::new(self.allow.clone(), self.deny.clone()),
        };
        let server = Server::bind(endpoint, config)
            .with_context(|| format!("cannot listen on {endpoint}"))?;
        announce(&server)?;
        Ok(server)
    }
}

impl ServerArgs {
    /// The library configuration these options describe.
    pub fn config(&self) -> Config {
        Config {
            model: self.model,
            workers: self.workers,
            max_conns: self.max_conns,
            idle_timeout: self.idle_timeout,
            header_timeout: None,
            access: AccessList::new(self.allow.clone(), self.deny.clone()),
        }
    }

    /// Binds with `config` (these options, completed by the command with what only it
    /// has, such as a header timeout), prints `listening on ...`, and arranges for
    /// SIGINT/SIGTERM to stop the server.
    pub fn bind_with(&self, endpoint: &Endpoint, config: Config) -> anyhow::Result<Server> {
        let server = Server::bind(endpoint, config)
            .with_context(|| format!("cannot listen on {endpoint}"))?;
        announce(&server)?;
        Ok(server)
    }
}

/// How a client trusts a `tls://` server, and what it asks of it; flattened into every
/// command that connects over TLS.
#[derive(Debug, clap::Args)]
pub struct TlsClientArgs {
    /// tls://: trust the certificates in this PEM file instead of the system's: CAs, or
    /// the server's own self-signed certificate.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,
    /// tls://: trust exactly the server certificate with this fingerprint
    /// (sha256:HEX, as `sockit listen tls://` prints it), nothing else.
    #[arg(long, value_name = "sha256:HEX", value_parser = parse_pin, conflicts_with = "cacert")]
    pub pin: Option<Fingerprint>,
    /// tls://: do not check the server's certificate at all (encrypted, but to whoever
    /// answers; a warning says so).
    #[arg(short = 'k', long, conflicts_with_all = ["cacert", "pin"])]
    pub insecure: bool,
    /// tls://: the name sent to the server (SNI) and checked in its certificate, instead
    /// of the host connected to.
    #[arg(long, value_name = "NAME")]
    pub servername: Option<String>,
    /// tls://: offer this protocol by ALPN (repeatable), e.g. h2, http/1.1.
    #[arg(long, value_name = "PROTO")]
    pub alpn: Vec<String>,
    /// tls://: the certificate to show a server that requires one (mutual TLS; PEM,
    /// leaf first).
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<std::path::PathBuf>,
    /// tls://: the private key of --client-cert (PEM: PKCS#8, RSA or EC).
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<std::path::PathBuf>,
}

impl TlsClientArgs {
    /// The TLS settings for `endpoint`: `Some` for `tls://` (the CA file read now, before
    /// connecting), `None` otherwise; TLS flags on another address are a usage error,
    /// since they would silently do nothing.
    pub fn client_tls(&self, endpoint: &Endpoint) -> anyhow::Result<Option<ClientTls>> {
        let given = self.cacert.is_some()
            || self.pin.is_some()
            || self.insecure
            || self.servername.is_some()
            || !self.alpn.is_empty()
            || self.client_cert.is_some();
        if !matches!(endpoint, Endpoint::Tls(_)) {
            if given {
                return Err(crate::usage(
                    "--cacert, --pin, --insecure, --servername, --alpn and --client-cert need a tls:// address",
                ));
            }
            return Ok(None);
        }
        let tls = ClientTls::new(&ClientOptions {
            cacert: self.cacert.clone(),
            pin: self.pin,
            insecure: self.insecure,
            servername: self.servername.clone(),
            alpn: self.alpn.clone(),
            identity: match (&self.client_cert, &self.client_key) {
                (Some(cert), Some(key)) => Some(Identity {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
        })?;
        if self.insecure {
            eprintln!(
                "sockit: warning: --insecure: the server's certificate is not checked; \
                 anyone on the way can read and change this connection"
            );
        }
        Ok(Some(tls))
    }
}

/// A `tls://` server's identity; flattened into every command that listens over TLS.
#[derive(Debug, clap::Args)]
pub struct TlsServerArgs {
    /// tls://: the certificate chain to present (PEM, leaf first). Without --cert and
    /// --key, a self-signed certificate is made at start and its fingerprint printed.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<std::path::PathBuf>,
    /// tls://: the private key of --cert (PEM: PKCS#8, RSA or EC).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<std::path::PathBuf>,
    /// tls://: require a client certificate signed by a CA in this PEM file (a
    /// self-signed client certificate listed there is trusted as itself); clients
    /// without one are refused at the handshake (mutual TLS).
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<std::path::PathBuf>,
    /// tls://: require a client certificate, accepting the one with this fingerprint
    /// (sha256:HEX; repeatable, one per client; with --client-ca, either passes).
    #[arg(long, value_name = "sha256:HEX", value_parser = parse_pin)]
    pub client_pin: Vec<Fingerprint>,
}

impl TlsServerArgs {
    /// The identity for `endpoint`: `Some` for `tls://`, loaded (and the key checked
    /// against the certificate) before anything is bound; with `true` when it was made
    /// here and its fingerprint must be printed for clients to trust it.
    pub fn server_tls(&self, endpoint: &Endpoint) -> anyhow::Result<Option<(ServerTls, bool)>> {
        let Endpoint::Tls(hp) = endpoint else {
            if self.cert.is_some() || self.client_ca.is_some() || !self.client_pin.is_empty() {
                return Err(crate::usage(
                    "--cert, --key, --client-ca and --client-pin need a tls:// address",
                ));
            }
            return Ok(None);
        };
        let (tls, made) = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => (ServerTls::from_files(cert, key)?, false),
            _ => (ServerTls::self_signed(&self_signed_names(&hp.host))?, true),
        };
        if self.client_ca.is_none() && self.client_pin.is_empty() {
            return Ok(Some((tls, made)));
        }
        let auth = ClientAuth {
            ca: self.client_ca.clone(),
            pins: self.client_pin.clone(),
        };
        Ok(Some((tls.with_client_auth(&auth)?, made)))
    }
}

/// The names a self-made certificate is valid for: loopback, and the host listened on
/// unless it is the unspecified address.
fn self_signed_names(host: &str) -> Vec<String> {
    let unspecified = host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !unspecified && !names.iter().any(|n| n == host) {
        names.insert(0, host.to_owned());
    }
    names
}

/// Prints the fingerprint line of a self-made certificate, right after `listening on`.
pub fn announce_fingerprint(tls: &ServerTls) {
    eprintln!("tls fingerprint {}", tls.fingerprint());
}

fn parse_pin(s: &str) -> Result<Fingerprint, String> {
    s.parse().map_err(|e: sockit::Error| e.to_string())
}

/// Refuses a `tls://` address in a command that cannot speak TLS yet: a usage error
/// (exit 2), found before anything is bound, so it never talks plain text to a peer
/// that expects TLS, nor accepts plain text from clients told to expect TLS.
pub fn refuse_tls(command: &str, endpoint: &Endpoint) -> anyhow::Result<()> {
    match endpoint {
        Endpoint::Tls(_) => Err(crate::usage(format!(
            "tls:// is not supported by `sockit {command}` yet"
        ))),
        _ => Ok(()),
    }
}

/// Prints the `listening on` line and stops `server` on SIGINT/SIGTERM.
pub fn announce(server: &Server) -> anyhow::Result<()> {
    // Handlers first: a script may send SIGTERM the moment it reads the line, and the
    // default action would kill the server without its clean shutdown.
    stop_on_signals(server.shutdown_handle())?;
    eprintln!("listening on {}", server.local_endpoint());
    Ok(())
}

/// Triggers `shutdown` on SIGINT or SIGTERM (from a thread of its own).
pub fn stop_on_signals(shutdown: Shutdown) -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("cannot install signal handlers")?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            shutdown.trigger();
        }
    });
    Ok(())
}

/// `--model` values, with the list of models in the error.
pub fn parse_model(s: &str) -> Result<Model, String> {
    s.parse().map_err(|e: sockit::Error| e.to_string())
}

/// Durations as `500ms`, `5s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (expected e.g. 500ms, 5s, 2m)"))
}

/// A duration that must not be zero (a zero timeout would end everything at once).
pub fn parse_nonzero_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be more than 0 (e.g. 500ms, 30s)".into()),
        d => Ok(d),
    }
}

/// Whole or fractional seconds (`3`, `0.5`, as ping and wrk take them), or a duration
/// (`500ms`, `2m`).
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if (0.0..1e9).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        Ok(_) => Err(format!(
            "{s} is not a duration (expected e.g. 0.5, 3, 500ms)"
        )),
        Err(_) => parse_duration(s),
    }
}

/// [`parse_seconds`], but more than zero.
pub fn parse_positive_seconds(s: &str) -> Result<Duration, String> {
    match parse_seconds(s)? {
        d if d.is_zero() => Err("must be more than 0 (e.g. 0.5, 3, 500ms)".into()),
        d => Ok(d),
    }
}

/// Byte counts: `65536`, `64K`, `16M`, `1G` (binary units; `KiB`, `MiB`, `GiB`, `B` too),
/// the same for every size argument of every command.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "unknown unit in {s:?} (expected e.g. 65536, 64K, 16M, 1G)"
            ));
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{s:?} is not a byte count (expected e.g. 65536, 64K, 16M, 1G)"))
}

/// [`parse_size`] for sizes held in memory.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    usize::try_from(parse_size(s)?).map_err(|_| format!("{s:?} is too large"))
}

/// [`parse_bytes`], but at least one byte.
pub fn parse_positive_bytes(s: &str) -> Result<usize, String> {
    match parse_bytes(s)? {
        0 => Err("must be at least 1 byte".into()),
        n => Ok(n),
    }
}

/// `--proxy-protocol` values: `v1` (the text line) or `v2` (the binary block).
pub fn parse_proxy_version(s: &str) -> Result<ProxyVersion, String> {
    match s {
        "v1" | "1" => Ok(ProxyVersion::V1),
        "v2" | "2" => Ok(ProxyVersion::V2),
        _ => Err(format!("{s:?} is not a PROXY protocol version (v1 or v2)")),
    }
}

/// A count that must be at least 1 (`--max-conns 0` would refuse everyone).
pub fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

/// Sweep targets as `check` and `ping` take them: addresses, names, CIDR blocks, ranges,
/// and `-` for whitespace-separated hosts read from stdin (`#` starts a comment). A word
/// that does not parse is a usage error (exit 2); names are resolved later.
pub fn read_targets(words: &[String]) -> anyhow::Result<Vec<sockit::net::targets::Target>> {
    use std::io::Read;
    let mut all: Vec<String> = Vec::new();
    for word in words {
        if word == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("read hosts from stdin")?;
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("");
                all.extend(line.split_whitespace().map(str::to_owned));
            }
        } else {
            all.push(word.clone());
        }
    }
    let targets =
        sockit::net::targets::parse(all.iter().map(String::as_str)).map_err(crate::usage)?;
    if targets.is_empty() {
        return Err(crate::usage("no hosts given (stdin was empty)"));
    }
    Ok(targets)
}

/// Whether the targets given make a sweep (per-host output: several words, a block, a
/// range or stdin) rather than one plain host (the classic output of one host).
pub fn is_sweep(words: &[String], targets: &[sockit::net::targets::Target]) -> bool {
    match (words, targets) {
        ([word], [target]) => {
            let bare = word
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(word);
            target.label() != bare
        }
        _ => true,
    }
}

/// A response header to add, `Name: value`: the name a token (RFC 9110), the value free
/// of CR, LF and NUL (no header can smuggle another), neither one the server owns
/// (framing, encoding, ranges: setting those would break the responses).
pub fn parse_response_header(s: &str) -> Result<(String, String), String> {
    use sockit::proto::http::server::cors::is_token_byte;
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not 'Name: value'"))?;
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(format!("{name:?} is not a header name"));
    }
    let value = parse_header_value(value)?;
    const OWNED: [&str; 7] = [
        "content-length",
        "transfer-encoding",
        "connection",
        "content-encoding",
        "content-range",
        "content-type",
        "vary",
    ];
    if OWNED.iter().any(|o| name.eq_ignore_ascii_case(o)) {
        return Err(format!(
            "{name} is set by the server and cannot be replaced"
        ));
    }
    Ok((name.to_owned(), value))
}

/// A header value given on the command line: trimmed, and free of CR, LF and NUL.
pub fn parse_header_value(s: &str) -> Result<String, String> {
    if s.contains(['\r', '\n', '\0']) {
        return Err("a header value may not hold CR, LF or NUL".into());
    }
    Ok(s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_headers_are_validated() {
        assert_eq!(
            parse_response_header("X-Frame-Options:  DENY "),
            Ok(("X-Frame-Options".into(), "DENY".into()))
        );
        assert!(parse_response_header("X-A: b\r\nSet-Cookie: c").is_err());
        assert!(parse_response_header("X A: b").is_err());
        assert!(parse_response_header(": b").is_err());
        assert!(parse_response_header("nocolon").is_err());
        assert!(parse_response_header("content-length: 1").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("16KiB"), Ok(16 << 10));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(parse_bytes("16M"), Ok(16 << 20));
        assert!(parse_positive_bytes("0").is_err());
    }

    #[test]
    fn seconds_and_durations() {
        assert_eq!(parse_seconds("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert!(parse_positive_seconds("0").is_err());
        assert!(parse_seconds("soon").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_nonzero_duration("0s").is_err());
        assert_eq!(parse_nonzero_duration("2m"), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn counts() {
        assert!(parse_positive("0").is_err());
        assert_eq!(parse_positive("7"), Ok(7));
        assert!(parse_positive("-1").is_err());
    }
}
