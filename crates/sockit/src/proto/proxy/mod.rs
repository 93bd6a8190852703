//! What is said on a connection before it becomes a relay: the proxy protocols a client
//! speaks to get through a proxy and a proxy speaks to its clients ([`socks5`], HTTP
//! [`connect`]); the header a relay puts in front of the relayed bytes so the server
//! behind it knows who the client is ([`header`], HAProxy's PROXY protocol); and where a
//! proxy may connect for its clients ([`policy`]).
//!
//! All of them are sans-IO: bytes in, bytes and decisions out. Connecting, checking a
//! password against a file and relaying belong to the drivers.

use std::fmt;

pub mod connect;
pub mod header;
pub mod policy;
pub mod socks5;

/// A user name and password, as `socks5://USER:PASS@` or `--auth` give them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password; never printed (see the `Debug` impl).
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"…")
            .finish()
    }
}

/// A proxy exchange or a PROXY header that went wrong, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// A SOCKS5 peer broke the protocol, or a proxy refused (the reason says which).
    #[error("socks5: {0}")]
    Socks(String),
    /// An HTTP proxy refused a tunnel, or a CONNECT exchange broke HTTP.
    #[error("http proxy: {0}")]
    Connect(String),
    /// A connection that should start with a PROXY protocol header does not.
    #[error("proxy protocol: {0}")]
    Header(&'static str),
}
