//! The HTTP/1.1 client: connect ([`Stream::connect`], then rustls for `https://`), send one
//! request with `Connection: close`, parse the head, stream the body to a writer, follow
//! redirects when asked.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

use crate::addr::{Endpoint, HostPort};
use crate::error::{Error, Result};
use crate::proto::http::HttpError;
use crate::proto::http::client::chunked::ChunkedDecoder;
use crate::proto::http::client::response::{BodyFraming, Head, parse_head};
use crate::proto::http::client::url::{Scheme, Url};
use crate::socket::Stream;

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
    /// A PEM file of CA certificates trusted instead of the system roots.
    pub cacert: Option<PathBuf>,
    /// Send `Authorization` and `Cookie` after a redirect to another scheme, host or port
    /// too (curl's `--location-trusted`); by default they go only where they were given
    /// for, so a redirect cannot hand them to someone else.
    pub location_trusted: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            method: Method::Get,
            headers: Vec::new(),
            redirects: Redirects::Stop,
            timeout: None,
            cacert: None,
            location_trusted: false,
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
            return Error::Tls(format!("{what}: {}", tls_sentence(tls)));
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

/// A TLS failure in words for the user. rustls's own `Display` shows its enums' insides
/// (`invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`); this says what it
/// means, about the server, in one sentence.
fn tls_sentence(e: &rustls::Error) -> String {
    use rustls::{CertificateError as Cert, Error as E};
    let cert = |why: &str| format!("the server's certificate {why}");
    match e {
        E::InvalidCertificate(c) => match c {
            Cert::UnknownIssuer => {
                cert("is not signed by a trusted certificate authority (unknown issuer)")
            }
            Cert::NotValidForName => cert("is not valid for this host name (name mismatch)"),
            Cert::NotValidForNameContext { presented, .. } if presented.is_empty() => {
                cert("names no host (name mismatch)")
            }
            Cert::NotValidForNameContext { presented, .. } => cert(&format!(
                "is not valid for this host name, only for {} (name mismatch)",
                presented.join(", ")
            )),
            Cert::Expired | Cert::ExpiredContext { .. } => cert("has expired"),
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => cert("is not valid yet"),
            Cert::Revoked => cert("has been revoked"),
            Cert::BadSignature => cert("has a signature that does not verify"),
            Cert::BadEncoding => cert("is malformed"),
            Cert::InvalidPurpose | Cert::InvalidPurposeContext { .. } => {
                cert("is not meant for a TLS server")
            }
            Cert::UnhandledCriticalExtension => {
                cert("has a critical extension sockit cannot check")
            }
            // A trusted authority of the same name but another kind of key: not the signer.
            Cert::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => cert(
                "is not signed by a trusted certificate authority (unknown issuer: no trusted key matches its signature)",
            ),
            Cert::UnsupportedSignatureAlgorithmContext { .. } => {
                cert("is signed with an algorithm sockit does not support")
            }
            Cert::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
                Some(webpki::Error::CaUsedAsEndEntity) => cert(
                    "is a certificate authority's, not a server's (a CA certificate cannot be a server certificate)",
                ),
                Some(webpki::Error::EndEntityUsedAsCa) => cert(
                    "is signed by another server's certificate, not by a certificate authority",
                ),
                Some(
                    webpki::Error::PathLenConstraintViolated
                    | webpki::Error::NameConstraintViolation,
                ) => cert("chain breaks its certificate authority's constraints"),
                _ => cert("was refused"),
            },
            _ => cert("was refused"),
        },
        E::NoCertificatesPresented => "the server presented no certificate".into(),
        E::AlertReceived(alert) => format!(
            "the server broke off the handshake ({} alert)",
            words(&format!("{alert:?}"))
        ),
        E::PeerIncompatible(_) => {
            "handshake failure: the server offers no TLS version or cipher suite sockit supports"
                .into()
        }
        E::InvalidMessage(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. }
        | E::PeerMisbehaved(_)
        | E::PeerSentOversizedRecord => {
            "handshake failure: the server does not speak TLS as expected (is it plain http?)"
                .into()
        }
        E::DecryptError => "handshake failure: the server's data could not be decrypted".into(),
        _ => "handshake failure".into(),
    }
}

/// `HandshakeFailure` as `handshake failure`: an enum name as words.
fn words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
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
            None => tls.insert(tls_config(options.cacert.as_deref())?).clone(),
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
    let stream = Stream::connect(&endpoint, left).map_err(|e| match e {
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

/// The client TLS configuration: the system roots, or only the CAs of `cacert`.
fn tls_config(cacert: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match cacert {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| Error::Tls(format!("cannot read CA file {}: {e}", path.display())))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::Tls(format!("bad CA file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(Error::Tls(format!(
                    "no certificates in CA file {}",
                    path.display()
                )));
            }
            for c in certs {
                roots.add(c).map_err(|e| {
                    Error::Tls(format!("bad certificate in {}: {e}", path.display()))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // Stores carry odd certificates; one that does not parse is skipped.
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{CertificateError as Cert, Error as E, OtherError};

    #[test]
    fn tls_errors_are_sentences_without_rusts_debug_output() {
        let other = |e: webpki::Error| E::InvalidCertificate(Cert::Other(OtherError(Arc::new(e))));
        let cases = [
            (E::InvalidCertificate(Cert::UnknownIssuer), "unknown issuer"),
            (
                E::InvalidCertificate(Cert::NotValidForName),
                "name mismatch",
            ),
            (E::InvalidCertificate(Cert::Expired), "expired"),
            (E::InvalidCertificate(Cert::NotValidYet), "not valid yet"),
            (E::InvalidCertificate(Cert::Revoked), "revoked"),
            (
                other(webpki::Error::CaUsedAsEndEntity),
                "certificate authority's, not a server's",
            ),
            (
                other(webpki::Error::EndEntityUsedAsCa),
                "another server's certificate",
            ),
            (
                other(webpki::Error::MaximumPathDepthExceeded),
                "was refused",
            ),
            (
                E::AlertReceived(rustls::AlertDescription::HandshakeFailure),
                "(handshake failure alert)",
            ),
            (E::NoCertificatesPresented, "no certificate"),
            (E::General("x".into()), "handshake failure"),
        ];
        for (e, want) in cases {
            let s = tls_sentence(&e);
            assert!(s.contains(want), "{e:?}: {s}");
            assert!(
                !s.contains(['(', '{', '_']) || s.contains(" ("),
                "{e:?}: {s}"
            );
            assert!(!s.contains("Other") && !s.contains('{'), "{e:?}: {s}");
        }
    }
}
