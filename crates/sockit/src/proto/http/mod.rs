//! Sans-IO HTTP/1.1, split by side: each parser takes bytes, each writer gives bytes, and
//! the drivers in [`crate::http`] own the sockets and the files.
//!
//! - [`client`]: what `http get` needs: URLs, response heads, the chunked decoder.
//! - [`server`]: what `http serve` needs: request heads and their body framing, the pure
//!   request → decision function (conditional requests, ranges, redirects), content
//!   types, the listing page and the response head writer.
//!
//! Every parser takes untrusted bytes: limits come first, arithmetic is checked, and "need
//! more bytes" is `Ok(None)`, never an error.

pub mod client;
pub mod server;

/// Most header lines accepted in one head (request or response).
pub const MAX_HEADERS: usize = 100;
/// Most bytes accepted in one head, request line or status line included.
pub const MAX_HEAD: usize = 64 * 1024;

/// A peer broke HTTP/1.1 (or a limit of ours).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The head is not valid HTTP (what `httparse` or our own checks said).
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// `response head`, `request head`, `chunk size line`, ...
        what: &'static str,
        /// What is wrong, in words.
        reason: String,
    },
    /// A head longer than [`MAX_HEAD`] or with more than [`MAX_HEADERS`] lines.
    #[error("{what} too large (limit {limit})")]
    TooLarge {
        /// What overflowed.
        what: &'static str,
        /// The limit it broke.
        limit: usize,
    },
    /// The connection ended before the body did.
    #[error("response body truncated: {0}")]
    Truncated(String),
    /// A URL we cannot fetch.
    #[error("invalid URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The user and password of a `Basic` credential (RFC 7617): `Basic base64(user:pass)`,
/// the scheme case-insensitive. `None` for another scheme, bad base64, text that is not
/// UTF-8 or has no `:`. Used by `http serve --auth` (`Authorization`) and the HTTP
/// CONNECT proxy core (`Proxy-Authorization`).
pub fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

impl HttpError {
    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Self {
        HttpError::Malformed {
            what,
            reason: reason.into(),
        }
    }
}
