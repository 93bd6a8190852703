//! Typed errors of the library: one enum, one doc line per variant.

use std::io;

/// Everything the library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An address string that does not follow the `[scheme://]HOST:PORT` / `unix:PATH` syntax.
    #[error("invalid address {input:?}: {reason}")]
    Address {
        /// The text as the user gave it.
        input: String,
        /// What is wrong with it, in words.
        reason: String,
    },
    /// A host name that did not resolve to any address.
    #[error("cannot resolve {host:?}: {source}")]
    Resolve {
        /// The host name looked up.
        host: String,
        /// What the resolver said.
        #[source]
        source: io::Error,
    },
    /// A CIDR network in an allow/deny list that does not parse.
    #[error("invalid network {input:?}: expected CIDR like 10.0.0.0/8 or an address")]
    Network {
        /// The text as the user gave it.
        input: String,
    },
    /// A concurrency model name that is not one of the known models.
    #[error("unknown model {name:?} (expected one of: {})", known.join(", "))]
    UnknownModel {
        /// The name as the user gave it.
        name: String,
        /// Every known model's name, for the message (the server passes its list, so
        /// this module need not know the models).
        known: &'static [&'static str],
    },
    /// A model asked to serve a socket kind it cannot serve.
    #[error("model {model} cannot serve {what}")]
    Unsupported {
        /// The model's name.
        model: &'static str,
        /// What was asked of it.
        what: &'static str,
    },
    /// A peer broke the framing rules (over-long frame or line, truncated frame).
    #[error(transparent)]
    Frame(#[from] crate::frame::FrameError),
    /// A peer broke the exec protocol (see `docs/exec.md`): a malformed or out-of-turn
    /// message.
    #[error("exec protocol: {0}")]
    Exec(#[from] crate::proto::exec::ProtocolError),
    /// A peer broke HTTP/1.1, or a URL cannot be fetched.
    #[error(transparent)]
    Http(#[from] crate::proto::http::HttpError),
    /// A TLS handshake or record failed (an untrusted certificate, say), or a CA file is bad.
    #[error("{0}")]
    Tls(String),
    /// A PROXY header (or a proxy exchange) that breaks its protocol.
    #[error(transparent)]
    Proxy(#[from] crate::proto::proxy::ProxyError),
    /// A Redis URL that does not parse (`--redis`).
    #[error("invalid redis URL {url:?}: {reason}")]
    Redis {
        /// The URL as given.
        url: String,
        /// What the Redis client said.
        reason: String,
    },
    /// A load run that could not be carried out (bad options, clients refused).
    #[error("bench: {0}")]
    Bench(String),
    /// An operating-system call failed; `what` says which and on what.
    #[error("{what}: {source}")]
    Io {
        /// The operation and its object, e.g. `bind tcp://127.0.0.1:80`.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The OS refused a socket the operation needs (raw or ICMP sockets); the text says
    /// why and what to do.
    #[error("{0}")]
    NotPermitted(String),
    /// A setting out of its range (zero connections, an empty message, ...).
    #[error("invalid setting: {0}")]
    Setting(String),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
