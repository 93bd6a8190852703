//! `sockit http get` (a curl-like client) and `sockit http serve` (a static file server).

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use sockit::Endpoint;
use sockit::http::client::{self, Method, Options, Redirects};
use sockit::http::serve::{FileServer, Log, Options as ServeOptions};
use sockit::proto::http::client::url::Url;
use sockit::proto::http::server::auth::Users;
use sockit::server::{Config, TlsService};
use sockit::socket::tls::Identity;
use sockit::text::terminal_safe;

use crate::args::{
    ServerArgs, TlsServerArgs, announce_fingerprint, parse_duration, parse_header_value,
    parse_nonzero_duration, parse_response_header,
};
use crate::usage;

/// HTTP/1.1 on sockit's own sockets: a client and a static file server.
///
/// Examples:
///   sockit http get -L https://example.com/
///   sockit http serve ./public 127.0.0.1:8000
// Clap's help text: the URL is text, not a rustdoc link.
#[allow(rustdoc::bare_urls)]
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    Get(GetArgs),
    Serve(ServeArgs),
}

/// Fetch a URL (http:// or https://) and write the body to stdout or a file.
///
/// -L follows redirects to http:// and https:// only (a redirect to any other scheme,
/// such as javascript: or data:, is an error). Authorization and Cookie given with -H go
/// only to the scheme, host and port of the URL given, as curl does: they are dropped
/// after a redirect elsewhere unless --location-trusted.
///
/// Exit codes: 0 success, 1 failure (DNS, refused, TLS, timeout, malformed response),
/// 2 bad usage, 22 with --fail when the status is 400 or more.
///
/// Examples:
///   sockit http get -L -o page.html https://example.com/
///   sockit http get --proxy socks5h://127.0.0.1:1080 https://example.com/
// Clap's help text: `[::1]` and the URLs are text, not rustdoc links.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
struct GetArgs {
    /// The URL; IPv6 literals as http://[::1]:8000/.
    url: String,
    /// Write the body to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Print the response head before the body.
    #[arg(short = 'i', long = "include")]
    include: bool,
    /// Send HEAD and print the response head only.
    #[arg(short = 'I', long = "head")]
    head: bool,
    /// Follow redirects (at most --max-redirs).
    #[arg(short = 'L', long = "location")]
    location: bool,
    /// With -L, send -H Authorization and Cookie after a redirect to another scheme,
    /// host or port too (by default they go only to the URL given).
    #[arg(long)]
    location_trusted: bool,
    /// Most redirects followed with -L.
    #[arg(long, default_value_t = 10)]
    max_redirs: usize,
    /// Extra request header (repeatable), e.g. -H 'Accept: text/html'.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Give up when the whole exchange takes longer (e.g. 5s, 500ms).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Trust the CA certificates in this PEM file instead of the system's.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Fetch through this proxy: socks5://[USER:PASS@]HOST:PORT, socks5h://... (names
    /// resolved by the proxy) or http://[USER:PASS@]HOST:PORT (a CONNECT tunnel, for
    /// http:// URLs too). Every request, redirects included, goes through it.
    #[arg(long, value_name = "URL")]
    proxy: Option<sockit::proxy::Proxy>,
    /// The client certificate (PEM, leaf first) for HTTPS servers that require one
    /// (mutual TLS); curl's --cert.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The private key of --client-cert (PEM: PKCS#8, RSA or EC); curl's --key.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Exit 22 without printing the body when the status is 400 or more.
    #[arg(short = 'f', long = "fail")]
    fail: bool,
}

/// Serve the files of DIR over HTTP, like `python3 -m http.server`.
///
/// Directory listings (sortable: ?sort=name|size|mtime&order=asc|desc; ?format=json or
/// Accept: application/json for JSON; dotfiles hidden and refused unless --hidden),
/// index.html, Content-Type by extension, HEAD, keep-alive, Range,
/// If-Modified-Since; nothing outside DIR is ever served. One log line per request on
/// stderr after the `listening on` line. Keep-alive connections idle for 60s are closed
/// unless --idle-timeout says otherwise. A request head (request line and headers) must
/// arrive in full within --header-timeout of its first byte, however steadily it trickles
/// in; a client that misses it gets 408 Request Timeout (if its socket takes the answer
/// at once) and is disconnected.
///
/// HTTPS: give a tls:// address. Without --cert/--key a self-signed certificate is made
/// and its fingerprint printed after the `listening on` line; ALPN offers http/1.1. The
/// TLS handshake is held to --header-timeout too.
///
/// Auth: --auth user:password (repeatable) or --auth-file (one user:hash per line, argon2
/// or bcrypt) asks every request for HTTP Basic credentials (401 with
/// WWW-Authenticate: Basic realm="sockit" otherwise; failures are logged with the user
/// name). Basic sends the password in clear text: use it over tls:// only. --header
/// and --cache-control are added to every response below 400; --cors lets any origin read
/// the files and answers OPTIONS preflights with 204.
///
/// Compression: text, scripts, JSON, SVG, wasm (1 KiB or more) go brotli, zstd or gzip as
/// Accept-Encoding prefers (q-values honoured; never for a Range, never for images or
/// archives), with Vary: Accept-Encoding and an ETag per encoding. A precompressed
/// sibling at least as new (app.js.br, app.js.zst, app.js.gz) is sent as it is;
/// otherwise the file is compressed on the fly (in a stream of chunks above 256 KiB).
///
/// Examples:
///   sockit http serve ./public 127.0.0.1:8000 --model epoll
///   sockit http serve ./public tls://0.0.0.0:8443 --cert cert.pem --key key.pem
///   sockit http serve ./private tls://0.0.0.0:8443 --auth-file users.txt
///   sockit http serve ./dist --cache-control 'max-age=3600' --cors
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
struct ServeArgs {
    /// The directory to serve.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Address to listen on.
    #[arg(default_value = "127.0.0.1:8000")]
    addr: Endpoint,
    /// Do not log requests.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Time a request head may take from its first byte to its last (e.g. 10s, 500ms;
    /// not 0), however steadily it arrives: slow clients cannot hold connections with it.
    #[arg(long, default_value = "10s", value_parser = parse_nonzero_duration)]
    header_timeout: Duration,
    /// Let in this user with this password (repeatable), by HTTP Basic: use tls://, or
    /// the password crosses the network in clear text.
    #[arg(long = "auth", value_name = "USER:PASSWORD")]
    auth: Vec<String>,
    /// Let in the users of FILE: one user:hash per line, the hash argon2 ($argon2id$...,
    /// as argon2-cffi writes it) or bcrypt ($2b$..., as htpasswd -B writes it); lines
    /// starting with # are skipped.
    #[arg(long, value_name = "FILE")]
    auth_file: Option<PathBuf>,
    /// Add this header to every response below 400 (repeatable), e.g.
    /// --header 'X-Content-Type-Options: nosniff'.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_response_header)]
    headers: Vec<(String, String)>,
    /// Cache-Control of every response below 400, e.g. 'no-cache' or 'max-age=3600'.
    #[arg(long, value_name = "VALUE", value_parser = parse_header_value)]
    cache_control: Option<String>,
    /// Let pages of any origin read the files: Access-Control-Allow-Origin: * on every
    /// response, and OPTIONS (a preflight) answered 204 with the methods and headers.
    #[arg(long)]
    cors: bool,
    /// Never compress: by default text, scripts, JSON, SVG, wasm and the like of 1 KiB
    /// or more go br, zstd or gzip when the client's Accept-Encoding asks for one.
    #[arg(long)]
    no_compress: bool,
    /// List and serve dotfiles (.git, .env, ...): by default they are left out of
    /// listings and a path naming one gets 404.
    #[arg(long)]
    hidden: bool,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    tls: TlsServerArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Sub::Get(a) => get(a),
        Sub::Serve(a) => serve(a),
    }
}

fn get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let url = Url::parse(&args.url).map_err(usage)?;
    let mut headers = Vec::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .filter(|(n, v)| {
                !n.trim().is_empty()
                    && n.bytes().all(|b| b.is_ascii_graphic() && b != b':')
                    && !v.contains(['\r', '\n'])
            })
            .ok_or_else(|| usage(format!("invalid header {h:?} (expected 'Name: value')")))?;
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let options = Options {
        method: if args.head { Method::Head } else { Method::Get },
        headers,
        redirects: if args.location {
            Redirects::Follow(args.max_redirs)
        } else {
            Redirects::Stop
        },
        timeout: args.timeout,
        cacert: args.cacert.clone(),
        identity: match (&args.client_cert, &args.client_key) {
            (Some(cert), Some(key)) => Some(Identity {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        location_trusted: args.location_trusted,
        proxy: args.proxy.clone(),
    };
    let sink: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(64 * 1024, sink);
    let failed = Cell::new(None);
    let show_head = args.include || args.head;
    let result = {
        let out_cell = std::cell::RefCell::new(&mut out);
        let on_head = |head: &sockit::proto::http::client::response::Head| -> io::Result<()> {
            if args.fail && head.status >= 400 {
                failed.set(Some(head.status));
                return Err(io::Error::other("failed status"));
            }
            if show_head {
                out_cell.borrow_mut().write_all(&safe_head(&head.raw))?;
            }
            Ok(())
        };
        let mut body = BodyWriter(&out_cell);
        client::fetch(&url, &options, on_head, &mut body)
    };
    if let Some(status) = failed.get() {
        out.flush().ok();
        eprintln!("sockit: http get {url}: the server returned {status}");
        return Ok(ExitCode::from(22));
    }
    result.with_context(|| format!("http get {url}"))?;
    out.flush().context("write output")?;
    Ok(ExitCode::SUCCESS)
}

/// The response head as received, each line made terminal-safe (a reason phrase or a
/// header value may carry C1 controls as UTF-8); lines still end in CRLF, as curl -i
/// prints them.
fn safe_head(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let body = raw.strip_suffix(b"\n").unwrap_or(raw);
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(terminal_safe(line).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Writes the body through the same buffer the heads go to, keeping their order.
struct BodyWriter<'a, 'b>(&'a std::cell::RefCell<&'b mut BufWriter<Box<dyn Write>>>);

impl Write for BodyWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// Without --idle-timeout, an idle keep-alive connection would hold its thread (or
/// process) forever; browsers keep connections open.
const DEFAULT_IDLE: Duration = Duration::from_secs(60);

fn serve(mut args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Before binding: a bad certificate or key is reported with nothing bound.
    let tls = args.tls.server_tls(&args.addr)?;
    args.server.idle_timeout.get_or_insert(DEFAULT_IDLE);
    let log = if args.quiet { Log::Quiet } else { Log::Stderr };
    let mut users = Users::default();
    for spec in &args.auth {
        users.add(spec).map_err(|e| usage(format!("--auth: {e}")))?;
    }
    if let Some(path) = &args.auth_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("--auth-file {}: {e}", path.display())))?;
        users
            .add_file(&text)
            .map_err(|e| usage(format!("--auth-file {}: {e}", path.display())))?;
    }
    let mut headers = args.headers.clone();
    if let Some(cc) = &args.cache_control {
        headers.push(("Cache-Control".into(), cc.clone()));
    }
    let options = ServeOptions {
        users,
        headers,
        cors: args.cors,
        compress: !args.no_compress,
        hidden: args.hidden,
    };
    let files = FileServer::with_options(&args.dir, log, options).map_err(usage)?;
    let config = Config {
        header_timeout: Some(args.header_timeout),
        ..args.server.config()
    };
    let server = args.server.bind_with(&args.addr, config)?;
    match tls {
        Some((tls, made)) => {
            if made {
                announce_fingerprint(&tls);
            }
            let tls = tls.with_alpn(&[b"http/1.1"]);
            server.serve(TlsService::new(files, tls.config()))?
        }
        None => server.serve(files)?,
    }
    Ok(ExitCode::SUCCESS)
}
