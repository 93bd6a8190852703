//! Who is on the other side of a connection, or sent a datagram: an IP address and port,
//! or a Unix path (or none, for an unnamed Unix socket).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The other side of a connection or the sender of a datagram.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// An IP peer.
    Inet(SocketAddr),
    /// A Unix peer; `None` when its socket is unnamed (it cannot receive replies then).
    Unix(Option<PathBuf>),
}

impl Peer {
    /// The peer's IP address, for allow/deny checks; Unix peers have none.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Inet(a) => Some(a.ip()),
            Peer::Unix(_) => None,
        }
    }

    pub(crate) fn from_unix(addr: &std::os::unix::net::SocketAddr) -> Peer {
        Peer::Unix(addr.as_pathname().map(Path::to_path_buf))
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Inet(a) => write!(f, "{a}"),
            Peer::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Peer::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}
