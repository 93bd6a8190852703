//! The client side of HTTP/1.1 as `http get` speaks it, sans-IO: the URL to fetch, the
//! response head that comes back, and the chunked body decoder. The blocking client in
//! [`crate::http::client`] does the I/O.
//!
//! - [`url`]: `http://` / `https://` URLs (IPv6 literals in brackets) and relative
//!   `Location` resolution.
//! - [`response`]: response heads parsed with `httparse`, and how their body is framed.
//! - [`chunked`]: the chunked transfer-coding decoder, with limits on every line.

pub mod chunked;
pub mod response;
pub mod url;
