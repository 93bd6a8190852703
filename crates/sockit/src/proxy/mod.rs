//! Proxies, the driver side of [`crate::proto::proxy`]: [`Proxy`] is a client's way
//! through a SOCKS5 or HTTP proxy (`--proxy URL`), used by `connect` and `http get` to
//! open their stream; [`server`] is `sockit proxy`, the proxy itself.
//!
//! [`Proxy::dial`] is the one place a stream goes through a proxy: it connects to the
//! proxy, speaks the core's steps with a deadline, and returns the [`Stream`] positioned
//! at the destination's first byte (so TLS to the destination, or HTTP, runs over it
//! unchanged). The handshake is read a byte at a time: a proxy may send the destination's
//! first bytes right behind its answer, and those must not be swallowed; the exchange is
//! a few dozen bytes, once per connection.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use percent_encoding::percent_decode_str;

use crate::addr::{Endpoint, HostPort, check_host};
use crate::error::{Error, Result};
use crate::proto::proxy::socks5::{self, ClientStep, Target};
use crate::proto::proxy::{Credentials, ProxyError, connect};
use crate::socket::Stream;

pub mod server;

/// How long a proxy has to answer, when the caller sets no timeout: a proxy that
/// accepted the connection and says nothing must not hang the client for ever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest answer head taken from an HTTP proxy: a status line and a few headers
/// fit many times over; a proxy that sends more is not answering CONNECT.
const MAX_ANSWER: usize = 8 * 1024;

/// What a proxy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SOCKS5; `remote_dns` (`socks5h://`) lets the proxy resolve the destination's
    /// name, otherwise the client resolves it and sends the address.
    Socks5 {
        /// Whether names go to the proxy unresolved.
        remote_dns: bool,
    },
    /// HTTP CONNECT (`http://`): the proxy always resolves the name.
    Http,
}

/// A proxy to connect through, from a URL: `socks5://[USER:PASS@]HOST:PORT`,
/// `socks5h://...` or `http://[USER:PASS@]HOST:PORT` (user and password
/// percent-decoded; the port defaults to 1080, as curl's does).
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// What the proxy speaks.
    pub kind: Kind,
    /// Where the proxy listens.
    pub addr: HostPort,
    /// The user and password it wants, if any.
    pub auth: Option<Credentials>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password stays out of logs (Credentials' own Debug hides it).
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("addr", &self.addr)
            .field("auth", &self.auth)
            .finish()
    }
}

impl fmt::Display for Proxy {
    /// The URL without the password, for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            Kind::Socks5 { remote_dns: false } => "socks5",
            Kind::Socks5 { remote_dns: true } => "socks5h",
            Kind::Http => "http",
        };
        match &self.auth {
            Some(c) => write!(f, "{scheme}://{}@{}", c.user, self.addr),
            None => write!(f, "{scheme}://{}", self.addr),
        }
    }
}

impl FromStr for Proxy {
    type Err = Error;

    fn from_str(url: &str) -> Result<Proxy> {
        let bad = |reason: &str| Error::Address {
            input: "(proxy URL)".into(),
            reason: reason.into(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected socks5://, socks5h:// or http://HOST:PORT"))?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "socks5" => Kind::Socks5 { remote_dns: false },
            "socks5h" => Kind::Socks5 { remote_dns: true },
            "http" => Kind::Http,
            _ => return Err(bad("the scheme must be socks5, socks5h or http")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((auth, hp)) => {
                let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
                let decode = |s: &str| {
                    percent_decode_str(s)
                        .decode_utf8()
                        .map(|s| s.into_owned())
                        .map_err(|_| bad("the user or password is not UTF-8 once decoded"))
                };
                let user = decode(user)?;
                if user.is_empty() {
                    return Err(bad("an empty user name before @"));
                }
                (
                    Some(Credentials {
                        user,
                        password: decode(password)?,
                    }),
                    hp,
                )
            }
            None => (None, rest),
        };
        if hostport.contains('/') {
            return Err(bad("a proxy URL has no path"));
        }
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
                (host, after.strip_prefix(':'))
            }
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        if host.is_empty() {
            return Err(bad("no proxy host"));
        }
        check_host(host).map_err(|e| bad(&e))?;
        let port = match port {
            None => 1080,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
        };
        Ok(Proxy {
            kind,
            addr: HostPort {
                host: host.to_owned(),
                port,
            },
            auth,
        })
    }
}

impl Proxy {
    /// Connects to `target` through the proxy: a TCP connection to the proxy (within
    /// `timeout`), then the proxy's handshake (within `timeout` again, or
    /// [`HANDSHAKE_TIMEOUT`]). The stream returned carries the destination's bytes.
    pub fn dial(&self, target: &HostPort, timeout: Option<Duration>) -> Result<Stream> {
        let proxy = Endpoint::Tcp(self.addr.clone());
        let mut stream = Stream::connect(&proxy, timeout).map_err(|e| match e {
            Error::Io { source, .. } => Error::io(format!("connect to proxy {self}"), source),
            e => e,
        })?;
        if let Stream::Tcp(s) = &stream {
            let _ = s.set_nodelay(true);
        }
        let deadline = Instant::now() + timeout.unwrap_or(HANDSHAKE_TIMEOUT);
        let mut wire = Handshake {
            stream: &mut stream,
            deadline,
            proxy: self,
        };
        match self.kind {
            Kind::Socks5 { remote_dns } => self.socks5(&mut wire, target, remote_dns)?,
            Kind::Http => self.http(&mut wire, target)?,
        }
        stream
            .set_read_timeout(None)
            .and_then(|()| stream.set_write_timeout(None))
            .map_err(|e| Error::io("socket timeouts", e))?;
        Ok(stream)
    }

    fn socks5(&self, wire: &mut Handshake<'_>, target: &HostPort, remote_dns: bool) -> Result<()> {
        let target = match target.host.parse::<IpAddr>() {
            Ok(ip) => Target::Ip((ip, target.port).into()),
            Err(_) if remote_dns => Target::Name(target.host.clone(), target.port),
            Err(_) => Target::Ip(target.resolve()?[0]),
        };
        let (mut client, greeting) = socks5::Client::new(target, self.auth.clone())?;
        wire.send(&greeting)?;
        let mut got = Vec::new();
        loop {
            got.push(wire.byte()?);
            let Some((step, used)) = client.receive(&got)? else {
                continue;
            };
            debug_assert_eq!(used, got.len());
            got.clear();
            match step {
                ClientStep::Send(bytes) => wire.send(&bytes)?,
                ClientStep::Connected(_) => return Ok(()),
            }
        }
    }

    fn http(&self, wire: &mut Handshake<'_>, target: &HostPort) -> Result<()> {
        wire.send(&connect::request(target, self.auth.as_ref()))?;
        let mut got = Vec::new();
        loop {
            got.push(wire.byte()?);
            // A head ends in CRLF CRLF: parse only then, not at every byte.
            if got.ends_with(b"\r\n\r\n") || got.ends_with(b"\n\n") {
                if connect::response(&got, self.auth.is_some())?.is_some() {
                    return Ok(());
                }
            } else if got.len() > MAX_ANSWER {
                return Err(ProxyError::Connect("the proxy's answer is too long".into()).into());
            }
        }
    }
}

/// The stream during a proxy handshake, every read and write bounded by one deadline.
struct Handshake<'a> {
    /// The connection to the proxy.
    stream: &'a mut Stream,
    /// When the whole handshake must be over.
    deadline: Instant,
    /// For messages.
    proxy: &'a Proxy,
}

impl Handshake<'_> {
    fn left(&self) -> Result<Duration> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| self.timed_out())
    }

    fn timed_out(&self) -> Error {
        Error::io(
            format!("proxy {}", self.proxy),
            io::Error::new(io::ErrorKind::TimedOut, "no answer in time"),
        )
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let left = self.left()?;
        self.stream
            .set_write_timeout(Some(left))
            .map_err(|e| Error::io("socket timeouts", e))?;
        self.stream.write_all(bytes).map_err(|e| self.failed(e))
    }

    fn byte(&mut self) -> Result<u8> {
        let left = self.left()?;
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| Error::io("socket timeouts", e))?;
        let mut b = [0u8; 1];
        loop {
            match self.stream.read(&mut b) {
                Ok(1) => return Ok(b[0]),
                Ok(_) => {
                    return Err(Error::io(
                        format!("proxy {}", self.proxy),
                        io::Error::new(io::ErrorKind::UnexpectedEof, "closed the connection"),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    fn failed(&self, e: io::Error) -> Error {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            return self.timed_out();
        }
        Error::io(format!("proxy {}", self.proxy), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_as_curl_reads_them() {
        let p: Proxy = "socks5h://al%40ce:p%3Ass@proxy.example:9050"
            .parse()
            .unwrap();
        assert_eq!(p.kind, Kind::Socks5 { remote_dns: true });
        assert_eq!(p.addr.to_string(), "proxy.example:9050");
        let c = p.auth.clone().unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("al@ce", "p:ss"));
        // The password never shows.
        assert_eq!(p.to_string(), "socks5h://al@ce@proxy.example:9050");
        assert!(!format!("{p:?}").contains("p:ss"));
        let p: Proxy = "http://[::1]".parse().unwrap();
        assert_eq!((p.kind, p.addr.port, p.auth), (Kind::Http, 1080, None));
        let p: Proxy = "SOCKS5://127.0.0.1:1/".parse().unwrap();
        assert_eq!(p.kind, Kind::Socks5 { remote_dns: false });
        for bad in [
            "127.0.0.1:1080",
            "https://p:1",
            "socks4://p:1",
            "socks5://:1",
            "socks5://p:0",
            "socks5://p:99999",
            "socks5://p:1/path",
            "socks5://:pw@p:1",
            "socks5://[::1:1",
            "http://bad\u{1b}host:1",
        ] {
            assert!(bad.parse::<Proxy>().is_err(), "{bad}");
        }
    }
}
