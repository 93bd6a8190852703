//! Endpoints: the one address syntax every command takes (`docs/addresses.md`).
//!
//! ```text
//! HOST:PORT | tcp://HOST:PORT   TCP        ([::1]:PORT for IPv6, port 0 = any free port)
//! tls://HOST:PORT               TLS over TCP
//! udp://HOST:PORT               UDP
//! unix:PATH                     Unix stream socket
//! unix-dgram:PATH               Unix datagram socket
//! ```
//!
//! Parsing never touches the network: a bad address is reported before anything is bound.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// Where to listen or connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A TCP host and port.
    Tcp(HostPort),
    /// TLS over TCP: the socket is TCP (a listener binds TCP), the bytes on it are TLS
    /// records, so every command that relays bytes gets encryption from the address alone.
    Tls(HostPort),
    /// A UDP host and port.
    Udp(HostPort),
    /// A Unix stream socket path.
    Unix(PathBuf),
    /// A Unix datagram socket path.
    UnixDgram(PathBuf),
}

/// Whether an endpoint carries a byte stream or datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP, TLS or Unix stream: connections carrying bytes.
    Stream,
    /// UDP or Unix datagram: messages with a sender address each.
    Datagram,
}

/// A host (name or IP literal) and a port, as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// A DNS name or an IP literal (IPv6 without brackets).
    pub host: String,
    /// The port; 0 asks the OS for a free one.
    pub port: u16,
}

impl Endpoint {
    /// The endpoint for an address a socket is actually bound to.
    pub fn tcp(addr: SocketAddr) -> Self {
        Endpoint::Tcp(HostPort::from(addr))
    }

    /// The UDP endpoint for a bound address.
    pub fn udp(addr: SocketAddr) -> Self {
        Endpoint::Udp(HostPort::from(addr))
    }

    /// Stream or datagram.
    pub fn transport(&self) -> Transport {
        match self {
            Endpoint::Tcp(_) | Endpoint::Tls(_) | Endpoint::Unix(_) => Transport::Stream,
            Endpoint::Udp(_) | Endpoint::UnixDgram(_) => Transport::Datagram,
        }
    }

    /// The URL-like scheme used when printing this endpoint.
    pub fn scheme(&self) -> &'static str {
        match self {
            Endpoint::Tcp(_) => "tcp",
            Endpoint::Tls(_) => "tls",
            Endpoint::Udp(_) => "udp",
            Endpoint::Unix(_) => "unix",
            Endpoint::UnixDgram(_) => "unix-dgram",
        }
    }

    /// The host and port of an internet endpoint.
    pub fn host_port(&self) -> Option<&HostPort> {
        match self {
            Endpoint::Tcp(hp) | Endpoint::Tls(hp) | Endpoint::Udp(hp) => Some(hp),
            Endpoint::Unix(_) | Endpoint::UnixDgram(_) => None,
        }
    }

    /// The filesystem path of a Unix endpoint.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Endpoint::Unix(p) | Endpoint::UnixDgram(p) => Some(p),
            Endpoint::Tcp(_) | Endpoint::Tls(_) | Endpoint::Udp(_) => None,
        }
    }

    /// Resolves an internet endpoint to socket addresses (DNS for names).
    ///
    /// Unix endpoints resolve to nothing; callers use [`Endpoint::path`] for them.
    pub fn resolve(&self) -> Result<Vec<SocketAddr>> {
        match self.host_port() {
            Some(hp) => hp.resolve(),
            None => Ok(Vec::new()),
        }
    }
}

impl HostPort {
    /// Resolves to socket addresses; an IP literal resolves without DNS.
    pub fn resolve(&self) -> Result<Vec<SocketAddr>> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|source| Error::Resolve {
                host: self.host.clone(),
                source,
            })?
            .collect();
        if addrs.is_empty() {
            return Err(Error::Resolve {
                host: self.host.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"),
            });
        }
        Ok(addrs)
    }
}

impl From<SocketAddr> for HostPort {
    fn from(addr: SocketAddr) -> Self {
        HostPort {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(hp) | Endpoint::Tls(hp) | Endpoint::Udp(hp) => {
                write!(f, "{}://{hp}", self.scheme())
            }
            Endpoint::Unix(p) | Endpoint::UnixDgram(p) => {
                write!(f, "{}:{}", self.scheme(), p.display())
            }
        }
    }
}

impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Address {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        // `unix-dgram:` must be tried before `unix:`, which is its prefix.
        if let Some(path) = input.strip_prefix("unix-dgram:") {
            return unix_path(path)
                .map(Endpoint::UnixDgram)
                .map_err(|reason| bad(&reason));
        }
        if let Some(path) = input.strip_prefix("unix:") {
            return unix_path(path)
                .map(Endpoint::Unix)
                .map_err(|reason| bad(&reason));
        }
        let (scheme, rest) = match input.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("tcp", input),
        };
        let make: fn(HostPort) -> Endpoint = match scheme {
            "tcp" => Endpoint::Tcp,
            "udp" => Endpoint::Udp,
            "tls" => Endpoint::Tls,
            other => {
                return Err(bad(&format!(
                    "unknown scheme `{other}://` (expected tcp://, tls://, udp://, unix: or unix-dgram:)"
                )));
            }
        };
        parse_host_port(rest)
            .map(make)
            .map_err(|reason| bad(&reason))
    }
}

/// The longest Unix socket path the kernel takes: `sun_path` is 108 bytes, NUL included.
pub const MAX_UNIX_PATH: usize = 107;

/// `unix:///tmp/s` and `unix:/tmp/s` both mean `/tmp/s`. A path the kernel cannot hold is
/// refused here, as a bad address, rather than when the socket is made.
fn unix_path(path: &str) -> std::result::Result<PathBuf, String> {
    let path = path
        .strip_prefix("//")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(path);
    if path.is_empty() {
        return Err("missing socket path".into());
    }
    if path.len() > MAX_UNIX_PATH {
        return Err(format!(
            "the socket path is {} bytes; Unix sockets take at most {MAX_UNIX_PATH}",
            path.len()
        ));
    }
    Ok(PathBuf::from(path))
}

/// Checks a host as written (IPv6 without brackets): an IP literal, or a name made of
/// DNS labels. Catches at parse time what would otherwise fail later as a failed lookup:
/// `256.1.1.1` (all digits and dots, but no IPv4 address), IPv6 zone ids, stray brackets.
pub fn check_host(host: &str) -> std::result::Result<(), String> {
    if host.is_empty() {
        return Err("missing host".into());
    }
    if host.contains(':') {
        if host.contains('%') {
            return Err(format!(
                "`{host}`: IPv6 zone ids (`%eth0`) are not supported; give the address alone"
            ));
        }
        return match host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("`{host}` is not an IPv6 address")),
        };
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<std::net::Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("`{host}` is not an IPv4 address")),
        };
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "`{host}` is not a host name (letters, digits, `-` and `_` between dots)"
        ));
    }
    Ok(())
}

/// Parses `HOST:PORT`, `[V6]:PORT`, `:PORT` or a bare `PORT` (the last two mean 127.0.0.1).
fn parse_host_port(s: &str) -> Result<HostPort, String> {
    if s.is_empty() {
        return Err("missing HOST:PORT".into());
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed `[` in IPv6 address")?;
        let port = after
            .strip_prefix(':')
            .ok_or("expected `:PORT` after `]`")?;
        check_host(host)?;
        if !host.contains(':') {
            return Err(format!("`{host}` in brackets is not an IPv6 address"));
        }
        (host, port)
    } else if let Some((host, port)) = s.rsplit_once(':') {
        if host.contains(':') {
            return Err("IPv6 addresses must be written in brackets, like [::1]:8000".into());
        }
        if host.is_empty() {
            ("127.0.0.1", port)
        } else {
            check_host(host)?;
            (host, port)
        }
    } else if s.bytes().all(|b| b.is_ascii_digit()) {
        ("127.0.0.1", s)
    } else {
        return Err("expected HOST:PORT".into());
    };
    if port.is_empty() {
        return Err("missing port".into());
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("port `{port}` is not a number from 0 to 65535"))?;
    Ok(HostPort {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Endpoint {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        s.parse::<Endpoint>().unwrap_err().to_string()
    }

    #[test]
    fn parses_every_kind() {
        assert_eq!(ok("127.0.0.1:80").to_string(), "tcp://127.0.0.1:80");
        assert_eq!(ok("tcp://localhost:0").to_string(), "tcp://localhost:0");
        assert_eq!(ok("udp://[::1]:53").to_string(), "udp://[::1]:53");
        assert_eq!(ok("[::1]:8080").host_port().unwrap().host, "::1");
        assert_eq!(ok("unix:/tmp/s").to_string(), "unix:/tmp/s");
        assert_eq!(ok("unix:///tmp/s").path().unwrap(), Path::new("/tmp/s"));
        assert_eq!(ok("unix-dgram:rel/s").to_string(), "unix-dgram:rel/s");
        assert_eq!(ok(":9000").to_string(), "tcp://127.0.0.1:9000");
        assert_eq!(ok("9000").to_string(), "tcp://127.0.0.1:9000");
        assert_eq!(ok("udp://:7").transport(), Transport::Datagram);
        assert_eq!(
            ok("tls://example.com:443").to_string(),
            "tls://example.com:443"
        );
        assert_eq!(ok("tls://[::1]:8443").to_string(), "tls://[::1]:8443");
        assert_eq!(ok("tls://:8443").to_string(), "tls://127.0.0.1:8443");
        assert_eq!(ok("tls://[::1]:8443").host_port().unwrap().host, "::1");
        assert_eq!(ok("tls://h:1").transport(), Transport::Stream);
    }

    #[test]
    fn rejects_bad_addresses_with_a_reason() {
        assert!(err("tcp://host:99999").contains("0 to 65535"));
        assert!(err("udp://").contains("missing HOST:PORT"));
        assert!(err("unix:").contains("missing socket path"));
        assert!(err("unix-dgram:").contains("missing socket path"));
        assert!(err("sctp://h:1").contains("unknown scheme"));
        assert!(err("tls://").contains("missing HOST:PORT"));
        assert!(err("tls://::1:443").contains("brackets"));
        assert!(err("tls://h:70000").contains("0 to 65535"));
        assert!(err("::1:80").contains("brackets"));
        assert!(err("[::1]80").contains("expected `:PORT`"));
        assert!(err("[zz]:80").contains("not an IPv6"));
        assert!(err("host:").contains("missing port"));
        assert!(err("host").contains("expected HOST:PORT"));
        assert!(err("256.1.1.1:80").contains("not an IPv4"));
        assert!(err("1.2.3:80").contains("not an IPv4"));
        assert!(err("[fe80::1%eth0]:80").contains("zone ids"));
        assert!(err("[::1:80").contains("unclosed"));
        assert!(err("[127.0.0.1]:80").contains("not an IPv6"));
        assert!(err("exa mple:80").contains("not a host name"));
        assert!(err("a]:80").contains("not a host name"));
        let long = format!("unix:/{}", "a".repeat(120));
        assert!(err(&long).contains("at most 107"));
        assert_eq!(
            ok("my-host_1.example.:80").to_string(),
            "tcp://my-host_1.example.:80"
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "tcp://1.2.3.4:5",
            "udp://[fe80::1]:9",
            "tls://[::1]:443",
            "tls://example.com:0",
            "unix:/a b",
            "unix-dgram:/x",
        ] {
            assert_eq!(ok(&ok(s).to_string()), ok(s));
        }
    }
}
