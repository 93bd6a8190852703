//! HTTP CONNECT (RFC 9110 §9.3.6), both ends: the request a client sends to an HTTP proxy
//! to get a tunnel (`--proxy http://`), and the request a proxy reads and the status it
//! answers. After a 2xx the connection is a plain byte relay.
//!
//! ```text
//! CONNECT example.com:443 HTTP/1.1
//! Host: example.com:443
//! Proxy-Authorization: Basic dXNlcjpwYXNz     (only with credentials)
//!
//! HTTP/1.1 200 Connection established
//! ```
//!
//! Heads are parsed by the HTTP core's parsers, under its limits.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{Credentials, ProxyError};
use crate::addr::{HostPort, check_host};
use crate::proto::http::client::response::parse_head;
use crate::proto::http::server::request::parse_request;
use crate::text::terminal_safe;

/// The request for a tunnel to `target`, with Basic credentials if given.
pub fn request(target: &HostPort, auth: Option<&Credentials>) -> Vec<u8> {
    let mut out = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(c) = auth {
        let token = BASE64.encode(format!("{}:{}", c.user, c.password));
        out.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Reads the proxy's answer: `Ok(None)` until the head is complete, `Ok(Some(n))` when
/// the tunnel is open (the head took `n` bytes; the destination's bytes follow), an error
/// naming the refusal otherwise. `sent_auth` tells "needs credentials" from "refused
/// ours".
pub fn response(input: &[u8], sent_auth: bool) -> Result<Option<usize>, ProxyError> {
    let head = parse_head(input).map_err(|e| ProxyError::Connect(format!("bad answer: {e}")))?;
    let Some((head, n)) = head else {
        return Ok(None);
    };
    match head.status {
        200..=299 => Ok(Some(n)),
        407 if sent_auth => Err(ProxyError::Connect(
            "the proxy refused the user name or password".into(),
        )),
        407 => Err(ProxyError::Connect(
            "the proxy requires a user and password (http://USER:PASS@HOST:PORT)".into(),
        )),
        status => Err(ProxyError::Connect(format!(
            "the proxy answered {status} {}",
            terminal_safe(head.reason.as_bytes())
        ))),
    }
}

/// A client's request for a tunnel, as a proxy reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Where the client wants a tunnel to.
    pub target: HostPort,
    /// The Basic credentials it sent, if any.
    pub auth: Option<Credentials>,
}

/// Why a proxy refuses a request before connecting anywhere; each has its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not CONNECT (a proxy of tunnels only): 405.
    NotConnect,
    /// A target that is not `HOST:PORT`: 400.
    BadTarget,
}

/// What a request head asks for: a tunnel, or something the proxy refuses.
pub type Asked = Result<Connect, Refusal>;

/// Reads a request head: `Ok(None)` until it is complete, then the request (or why it is
/// refused) and the bytes the head took. A head that is not HTTP at all, or too large,
/// is an error: close the connection.
pub fn parse(input: &[u8]) -> Result<Option<(Asked, usize)>, ProxyError> {
    let parsed = parse_request(input).map_err(|e| ProxyError::Connect(e.to_string()))?;
    let Some((req, n)) = parsed else {
        return Ok(None);
    };
    if req.method != "CONNECT" {
        return Ok(Some((Err(Refusal::NotConnect), n)));
    }
    let Some(target) = authority(&req.target) else {
        return Ok(Some((Err(Refusal::BadTarget), n)));
    };
    let auth = req.header("proxy-authorization").and_then(basic);
    Ok(Some((Ok(Connect { target, auth }), n)))
}

/// The status line (and headers) a proxy answers with: `200` opens the tunnel; `407`
/// asks for Basic credentials; anything else refuses and closes.
pub fn answer(status: u16) -> Vec<u8> {
    let (reason, extra) = match status {
        200 => ("Connection established", ""),
        400 => ("Bad Request", ""),
        403 => ("Forbidden", ""),
        405 => ("Method Not Allowed", "Allow: CONNECT\r\n"),
        407 => (
            "Proxy Authentication Required",
            "Proxy-Authenticate: Basic realm=\"sockit\"\r\n",
        ),
        502 => ("Bad Gateway", ""),
        504 => ("Gateway Timeout", ""),
        _ => ("Error", ""),
    };
    let close = if status == 200 {
        ""
    } else {
        "Connection: close\r\nContent-Length: 0\r\n"
    };
    format!("HTTP/1.1 {status} {reason}\r\n{extra}{close}\r\n").into_bytes()
}

/// `HOST:PORT` or `[V6]:PORT`, strictly: the authority form CONNECT requires.
fn authority(target: &str) -> Option<HostPort> {
    let (host, port) = match target.strip_prefix('[') {
        Some(rest) => {
            let (host, port) = rest.split_once("]:")?;
            host.parse::<std::net::Ipv6Addr>().ok()?;
            (host, port)
        }
        None => {
            let (host, port) = target.rsplit_once(':')?;
            if host.is_empty() || host.contains(':') {
                return None;
            }
            check_host(host).ok()?;
            (host, port)
        }
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    Some(HostPort {
        host: host.to_owned(),
        port,
    })
}

/// The user and password of a `Basic` credential (the one decoder, shared with
/// `http serve --auth`).
fn basic(value: &[u8]) -> Option<Credentials> {
    let (user, password) = crate::proto::http::basic_credentials(value)?;
    Some(Credentials { user, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn a_request_reads_back_as_written_with_and_without_credentials() {
        let creds = Credentials {
            user: "alice".into(),
            password: "pa:ss word".into(),
        };
        for target in [hp("example.com", 443), hp("127.0.0.1", 1), hp("::1", 8080)] {
            for auth in [None, Some(&creds)] {
                let bytes = request(&target, auth);
                for cut in 0..bytes.len() {
                    assert_eq!(parse(&bytes[..cut]).unwrap(), None);
                }
                let (got, n) = parse(&bytes).unwrap().unwrap();
                assert_eq!(n, bytes.len());
                assert_eq!(
                    got,
                    Ok(Connect {
                        target: target.clone(),
                        auth: auth.cloned()
                    })
                );
            }
        }
    }

    #[test]
    fn a_proxy_refuses_other_methods_and_bad_targets() {
        let refused = |req: &str| parse(req.as_bytes()).unwrap().unwrap().0.unwrap_err();
        assert_eq!(
            refused("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
            Refusal::NotConnect
        );
        for target in [
            "a", "a:", ":80", "a:0", "a:65536", "a:+1", "::1:80", "[a]:1", "a%0a:1",
        ] {
            assert_eq!(
                refused(&format!("CONNECT {target} HTTP/1.1\r\n\r\n")),
                Refusal::BadTarget,
                "{target}"
            );
        }
        assert!(parse(b"\x05\x01\x00garbage\r\n\r\n").is_err());
        assert!(parse(b"CONNECT a b:1 HTTP/1.1\r\n\r\n").is_err());
    }

    #[test]
    fn answers_read_by_the_client() {
        let mut open = answer(200);
        let len = open.len();
        open.extend_from_slice(b"tunnelled");
        assert_eq!(response(&open, false).unwrap(), Some(len));
        assert_eq!(response(&open[..len - 1], false).unwrap(), None);
        let e = response(&answer(407), false).unwrap_err().to_string();
        assert!(e.contains("requires a user and password"), "{e}");
        let e = response(&answer(407), true).unwrap_err().to_string();
        assert!(e.contains("refused"), "{e}");
        let e = response(&answer(502), false).unwrap_err().to_string();
        assert!(e.contains("502 Bad Gateway"), "{e}");
        // A reason phrase with a terminal escape never reaches the terminal.
        let e = response(b"HTTP/1.1 502 Bad \x1b[31mGateway\r\n\r\n", false)
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\x1b'), "{e}");
    }

    #[test]
    fn only_basic_credentials_are_read() {
        assert_eq!(basic(b"Bearer abc"), None);
        assert_eq!(basic(b"Basic !!!"), None);
        assert_eq!(
            basic(b"basic dTpw").map(|c| (c.user, c.password)),
            Some(("u".into(), "p".into()))
        );
    }
}
