//! The server side of HTTP/1.1 as `http serve` speaks it, sans-IO: requests in, decisions
//! and response bytes out. The file server in [`crate::http::serve`] owns the filesystem
//! (confinement, opening, reading directories) and asks this module everything else.
//!
//! - [`request`]: request heads parsed with `httparse`, keep-alive, and how the body is
//!   framed (or why it cannot be trusted).
//! - [`auth`]: HTTP Basic users (plain, argon2, bcrypt) and the verdict on a request.
//! - [`cors`]: `--cors`: the preflight answer and the headers every response gets.
//! - [`decide`]: the pure request → decision function: given the request head and what
//!   the filesystem holds at its path, which status, which range, where to redirect.
//! - [`encoding`]: `Accept-Encoding` negotiation (br, zstd, gzip) and what is worth
//!   compressing.
//! - [`conditional`]: `If-None-Match`, `If-Modified-Since`, `If-Range`.
//! - [`range`]: the `Range` header, judged against a file size.
//! - [`mime`]: content types by file name.
//! - [`listing`]: the HTML page listing a directory, and HTML escaping.
//! - [`head`]: the response head writer, reason phrases and error pages.

pub mod auth;
pub mod conditional;
pub mod cors;
pub mod decide;
pub mod encoding;
pub mod head;
pub mod listing;
pub mod mime;
pub mod range;
pub mod request;
