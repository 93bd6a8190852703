//! The HTTP/1.1 client: connect ([`Stream::connect`], then rustls for `https://`), send one
//! request with `Connection: close`, parse the head, stream the body to a writer, follow
//! redirects when asked.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use crate::addr::{Endpoint, HostPort};
use crate::error::{Error, Result};
use crate::proto::http::HttpError;
use crate::proto::http::client::chunked::ChunkedDecoder;
use crate::proto::http::client::response::{BodyFraming, Head, parse_head};
use crate::proto::http::client::url::{Scheme, Url};
use crate::proxy::Proxy;
use crate::socket::Stream;
use crate::socket::tls::{ClientOptions, ClientTls, Identity, Role, tls_sentence};

/// The request method: the client only fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Head and body.
    Get,
    /// Head only.
    Head,
}

/// Whether 3xx responses with a `Location` are followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Return the 3xx response itself.
    Stop,
    /// Follow at most this many redirects, then fail.
    Follow(usize),
}

/// What to fetch and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// GET or HEAD.
    pub method: Method,
    /// Extra headers; one named like a default (`Host`, `User-Agent`, `Accept`) replaces it.
    pub headers: Vec<(String, String)>,
    /// Redirect policy.
    pub redirects: Redirects,
    /// Limit for the whole exchange (connect, TLS, head and body), redirects included.
    pub timeout: Option<Duration>,
    /// A PEM file of CA certificates trusted instead of the system roots (a self-signed
    /// server certificate listed there is trusted as itself).
    pub cacert: Option<PathBuf>,
    /// A client certificate and key for HTTPS servers that require one (mutual TLS).
    pub identity: Option<Identity>,
    /// Send `Authorization` and `Cookie` after a redirect to another scheme, host or port
    /// too (curl's `--location-trusted`); by default they go only where they were given
    /// for, so a redirect cannot hand them to someone else.
    pub location_trusted: bool,
    /// Connect through this proxy (`--proxy`): every request, redirects included, goes
    /// through a tunnel it opens (HTTP CONNECT for http:// URLs too).
    pub proxy: Option<Proxy>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            method: Method::Get,
            headers: Vec::new(),
            redirects: Redirects::Stop,
            timeout: None,
            cacert: None,
            identity: None,
            location_trusted: false,
            proxy: None,
        }
    }
}

/// Fetches `url`: every head received (redirects included) goes to `on_head`, the final
/// body to `body`. Returns the final head.
pub fn fetch(
    url: &Url,
    options: &Options,
    mut on_head: impl FnMut(&Head) -> io::Result<()>,
    body: &mut dyn Write,
) -> Result<Head> {
    let deadline = options.timeout.map(|t| Instant::now() + t);
    let mut tls: Option<Arc<rustls::ClientConfig>> = None;
    let origin = url;
    let mut url = url.clone();
    let mut hops = 0;
    loop {
        let mut conn = connect(&url, options, deadline, &mut tls)?;
        let trusted = options.location_trusted
            || (url.scheme, &url.host, url.port) == (origin.scheme, &origin.host, origin.port);
        send_request(&mut conn, &url, options, trusted)?;
        let (head, rest) = read_head(&mut conn, &url)?;
        on_head(&head).map_err(|e| Error::io("write headers", e))?;
        let location = match (options.redirects, head.status) {
            (Redirects::Follow(max), 301 | 302 | 303 | 307 | 308) => head
                .header("location")
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .map(|l| (max, l)),
            _ => None,
        };
        if let Some((max, location)) = location {
            hops += 1;
            if hops > max {
                return Err(Error::Setting(format!(
                    "too many redirects (more than {max})"
                )));
            }
            url = url.join(&location)?;
            continue;
        }
        let framing = head.framing(options.method == Method::Head)?;
        copy_body(&mut conn, framing, rest, body, &url)?;
        return Ok(head);
    }
}

/// A connection: plain TCP or TLS over it, with the deadline applied before every read.
struct Conn {
    io: Io,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    tcp: TcpStream,
}

enum Io {
    Plain(Stream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, Stream>>),
}

impl Conn {
    /// Arms SO_RCVTIMEO/SO_SNDTIMEO with what is left of the deadline.
    fn arm(&self) -> io::Result<()> {
        let Some(deadline) = self.deadline else {
            return Ok(());
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.tcp.set_read_timeout(Some(left))?;
        self.tcp.set_write_timeout(Some(left))
    }

    /// Turns an I/O error into the library error, naming timeouts and TLS failures.
    fn error(&self, what: String, e: io::Error) -> Error {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            return Error::io(
                what,
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "timed out after {}",
                        humanize(self.timeout.unwrap_or_default())
                    ),
                ),
            );
        }
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return Error::Tls(format!("{what}: {}", tls_sentence(tls, Role::Server)));
        }
        Error::io(what, e)
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        match &mut self.io {
            Io::Plain(s) => s.read(buf),
            Io::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        match &mut self.io {
            Io::Plain(s) => s.write(buf),
            Io::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.io {
            Io::Plain(s) => s.flush(),
            Io::Tls(s) => s.flush(),
        }
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn connect(
    url: &Url,
    options: &Options,
    deadline: Option<Instant>,
    tls: &mut Option<Arc<rustls::ClientConfig>>,
) -> Result<Conn> {
    // The TLS configuration first: a bad CA file is reported before any connection.
    let tls_config = match url.scheme {
        Scheme::Http => None,
        Scheme::Https => Some(match tls {
            Some(c) => c.clone(),
            None => tls
                .insert(
                    ClientTls::new(&ClientOptions {
                        cacert: options.cacert.clone(),
                        identity: options.identity.clone(),
                        ..ClientOptions::default()
                    })?
                    .config(),
                )
                .clone(),
        }),
    };
    let endpoint = Endpoint::Tcp(HostPort {
        host: url.host.clone(),
        port: url.port,
    });
    let left = match deadline {
        Some(d) => Some(
            d.checked_duration_since(Instant::now())
                .filter(|l| !l.is_zero())
                .ok_or_else(|| timed_out(&endpoint, options))?,
        ),
        None => None,
    };
    let stream = match &options.proxy {
        Some(proxy) => proxy.dial(
            &HostPort {
                host: url.host.clone(),
                port: url.port,
            },
            left,
        ),
        None => Stream::connect(&endpoint, left),
    };
    let stream = stream.map_err(|e| match e {
        Error::Io { what, source } if source.kind() == io::ErrorKind::TimedOut => {
            let _ = source;
            Error::io(
                what,
                io::Error::new(io::ErrorKind::TimedOut, "connection timed out"),
            )
        }
        e => e,
    })?;
    let Stream::Tcp(tcp) = &stream else {
        return Err(Error::Setting("http needs a TCP connection".into()));
    };
    let tcp = tcp
        .try_clone()
        .map_err(|e| Error::io("duplicate socket", e))?;
    let _ = tcp.set_nodelay(true);
    let io = match tls_config {
        None => Io::Plain(stream),
        Some(config) => {
            let name = ServerName::try_from(url.host.clone())
                .map_err(|e| Error::Tls(format!("invalid server name {:?}: {e}", url.host)))?;
            let conn = rustls::ClientConnection::new(config, name)
                .map_err(|e| Error::Tls(format!("TLS setup: {e}")))?;
            Io::Tls(Box::new(rustls::StreamOwned::new(conn, stream)))
        }
    };
    let mut conn = Conn {
        io,
        deadline,
        timeout: options.timeout,
        tcp,
    };
    if let Io::Tls(_) = conn.io {
        // Complete the handshake here, so a bad certificate is reported as such.
        loop {
            conn.arm().map_err(|e| conn.error(tls_what(url), e))?;
            let Io::Tls(s) = &mut conn.io else {
                unreachable!()
            };
            if !s.conn.is_handshaking() {
                break;
            }
            let res = s.conn.complete_io(&mut s.sock);
            if let Err(e) = res {
                return Err(conn.error(tls_what(url), e));
            }
        }
    }
    Ok(conn)
}

fn tls_what(url: &Url) -> String {
    format!("TLS handshake with {}", url.host_header())
}

fn timed_out(endpoint: &Endpoint, options: &Options) -> Error {
    Error::io(
        format!("connect {endpoint}"),
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "timed out after {}",
                humanize(options.timeout.unwrap_or_default())
            ),
        ),
    )
}

/// Headers that carry credentials, sent only to a `trusted` destination (see
/// [`Options::location_trusted`]).
const CREDENTIALS: [&str; 2] = ["authorization", "cookie"];

fn send_request(conn: &mut Conn, url: &Url, options: &Options, trusted: bool) -> Result<()> {
    let method = match options.method {
        Method::Get => "GET",
        Method::Head => "HEAD",
    };
    let mut req = format!("{method} {} HTTP/1.1\r\n", url.target);
    let defaults = [
        ("Host", url.host_header()),
        (
            "User-Agent",
            format!("sockit/{}", env!("CARGO_PKG_VERSION")),
        ),
        ("Accept", "*/*".to_owned()),
    ];
    for (name, value) in &defaults {
        if !options
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    for (name, value) in &options.headers {
        if name.eq_ignore_ascii_case("connection")
            || (!trusted && CREDENTIALS.iter().any(|c| name.eq_ignore_ascii_case(c)))
        {
            continue;
        }
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    conn.write_all(req.as_bytes())
        .and_then(|()| conn.flush())
        .map_err(|e| conn.error(format!("send request to {}", url.host_header()), e))
}

/// Reads until a final (non-1xx) head is complete; returns it and the body bytes after it.
fn read_head(conn: &mut Conn, url: &Url) -> Result<(Head, Vec<u8>)> {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        if let Some((head, n)) = parse_head(&buf)? {
            buf.drain(..n);
            if (100..200).contains(&head.status) && head.status != 101 {
                continue; // 100 Continue and friends: the real head follows.
            }
            return Ok((head, buf));
        }
        let n = read(conn, &mut chunk, url)?;
        if n == 0 {
            return Err(HttpError::malformed(
                "response",
                if buf.is_empty() {
                    "connection closed before any response".to_owned()
                } else {
                    "connection closed inside the response head".to_owned()
                },
            )
            .into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn read(conn: &mut Conn, chunk: &mut [u8], url: &Url) -> Result<usize> {
    loop {
        match conn.read(chunk) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(conn.error(format!("read from {}", url.host_header()), e));
            }
        }
    }
}

fn copy_body(
    conn: &mut Conn,
    framing: BodyFraming,
    first: Vec<u8>,
    body: &mut dyn Write,
    url: &Url,
) -> Result<()> {
    let out_err = |e| Error::io("write body", e);
    let mut chunk = vec![0u8; 64 * 1024];
    match framing {
        BodyFraming::Empty => Ok(()),
        BodyFraming::Length(len) => {
            let mut left = len;
            let mut data = first;
            loop {
                let take = (data.len() as u64).min(left) as usize;
                body.write_all(&data[..take]).map_err(out_err)?;
                left -= take as u64;
                if left == 0 {
                    return Ok(());
                }
                let n = read(conn, &mut chunk, url)?;
                if n == 0 {
                    return Err(
                        HttpError::Truncated(format!("got {} of {len} bytes", len - left)).into(),
                    );
                }
                data = chunk[..n].to_vec();
            }
        }
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            let mut out = Vec::with_capacity(64 * 1024);
            decoder.decode(&first, &mut out)?;
            loop {
                body.write_all(&out).map_err(out_err)?;
                out.clear();
                if decoder.is_done() {
                    return Ok(());
                }
                let n = read(conn, &mut chunk, url)?;
                if n == 0 {
                    return Err(HttpError::Truncated("chunked body ended early".into()).into());
                }
                decoder.decode(&chunk[..n], &mut out)?;
            }
        }
        BodyFraming::UntilClose => {
            body.write_all(&first).map_err(out_err)?;
            loop {
                let n = read(conn, &mut chunk, url)?;
                if n == 0 {
                    return Ok(());
                }
                body.write_all(&chunk[..n]).map_err(out_err)?;
            }
        }
    }
}
