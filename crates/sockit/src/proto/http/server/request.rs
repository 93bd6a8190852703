//! Request heads, parsed with `httparse` under our limits: the method, target and headers,
//! whether the connection stays open, and how long the body is (or why that cannot be
//! trusted, the shapes of request smuggling).

use crate::proto::http::{HttpError, MAX_HEAD, MAX_HEADERS};

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent (`GET`, `HEAD`, ...).
    pub method: String,
    /// The request target, as sent (`/a%20b?q`).
    pub target: String,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    /// Header names (lower-cased) and values.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    /// The first value of a header, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Whether the connection stays open after the response (HTTP/1.1 unless `close`,
    /// HTTP/1.0 only with `keep-alive`).
    pub fn keep_alive(&self) -> bool {
        let has = |token: &str| {
            self.headers
                .iter()
                .filter(|(n, _)| n == "connection")
                .flat_map(|(_, v)| v.split(|&b| b == b','))
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        };
        if self.minor_version >= 1 {
            !has("close")
        } else {
            has("keep-alive")
        }
    }

    /// The body length announced by the request, judged as RFC 9112 §6.3 says for a
    /// server that decodes no transfer coding: `Transfer-Encoding` whose final coding is
    /// not `chunked`, or with a `Content-Length` beside it, or in an HTTP/1.0 request
    /// (§6.1: faulty framing there, whatever it says), or a `Content-Length` sent twice or
    /// not a plain number, leaves the body's end in doubt (the shapes of request
    /// smuggling), so [`BodyLenError::Invalid`]; a well-formed chunked body is
    /// [`BodyLenError::Unsupported`]. Either way the connection must close.
    pub fn body_len(&self) -> Result<u64, BodyLenError> {
        let mut te = None;
        let mut cl = None;
        for (name, value) in &self.headers {
            match name.as_str() {
                // Several Transfer-Encoding lines are one list: the last coding counts.
                "transfer-encoding" => te = Some(value.as_slice()),
                "content-length" if cl.is_some() => return Err(BodyLenError::Invalid),
                "content-length" => cl = Some(value.as_slice()),
                _ => {}
            }
        }
        if let Some(te) = te {
            let last = te
                .rsplit(|&b| b == b',')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            let chunked = last.eq_ignore_ascii_case(b"chunked");
            return Err(if chunked && cl.is_none() && self.minor_version >= 1 {
                BodyLenError::Unsupported
            } else {
                BodyLenError::Invalid
            });
        }
        match cl {
            None => Ok(0),
            Some(v) => std::str::from_utf8(v)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .ok_or(BodyLenError::Invalid),
        }
    }
}

/// Why a request's body length is not known: either way the server answers and closes,
/// since it cannot tell where the next request starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyLenError {
    /// Framing that is broken or ambiguous (two `Content-Length`, a malformed one, or
    /// `Transfer-Encoding` not ending in `chunked` or beside `Content-Length`): 400.
    #[error("invalid request body framing")]
    Invalid,
    /// A chunked request body, which this server does not decode: 501.
    #[error("request bodies with Transfer-Encoding are not supported")]
    Unsupported,
}

impl BodyLenError {
    /// The status RFC 9112 §6.3 asks for.
    pub fn status(self) -> u16 {
        match self {
            BodyLenError::Invalid => 400,
            BodyLenError::Unsupported => 501,
        }
    }
}

/// Parses a request head at the start of `buf`: `Ok(None)` while incomplete (and under the
/// limits), else the request and the number of bytes it took.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(HttpError::TooLarge {
            what: "request head",
            limit: MAX_HEAD,
        }),
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => Err(HttpError::TooLarge {
            what: "request head",
            limit: MAX_HEAD,
        }),
        Ok(httparse::Status::Complete(n)) => Ok(Some((
            Request {
                method: req.method.unwrap_or("").to_owned(),
                target: req.path.unwrap_or("").to_owned(),
                minor_version: req.version.unwrap_or(1),
                headers: req
                    .headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                    .collect(),
            },
            n,
        ))),
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::TooLarge {
            what: "request header count",
            limit: MAX_HEADERS,
        }),
        Err(e) => Err(HttpError::malformed("request head", e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decides_keep_alive() {
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(),
            None
        );
        let (r, n) = parse_request(b"GET /a?b HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\nGET")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.method.as_str(), r.target.as_str(), n),
            ("GET", "/a?b", 49)
        );
        assert!(!r.keep_alive());
        let (r, _) = parse_request(b"HEAD / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(r.keep_alive());
        assert!(parse_request(b"GET / HTTP/1.1\r\nA B\r\n\r\n").is_err());
        let big = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
        assert!(parse_request(big.as_bytes()).is_err());
    }

    #[test]
    fn body_framing_in_doubt_is_refused() {
        let len = |headers: &str| {
            let head = format!("GET / HTTP/1.1\r\n{headers}\r\n");
            parse_request(head.as_bytes())
                .unwrap()
                .unwrap()
                .0
                .body_len()
        };
        assert_eq!(len(""), Ok(0));
        assert_eq!(len("Content-Length: 12\r\n"), Ok(12));
        for bad in [
            "Content-Length: 1\r\nContent-Length: 1\r\n",
            "Content-Length: 1x\r\n",
            "Content-Length: \r\n",
            "Content-Length: 99999999999999999999\r\n",
            "Transfer-Encoding: gzip\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
        ] {
            assert_eq!(len(bad), Err(BodyLenError::Invalid), "{bad:?}");
        }
        assert_eq!(
            len("Transfer-Encoding: gzip, Chunked\r\n"),
            Err(BodyLenError::Unsupported)
        );
        let (old, _) = parse_request(b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(old.body_len(), Err(BodyLenError::Invalid));
        assert_eq!(BodyLenError::Invalid.status(), 400);
        assert_eq!(BodyLenError::Unsupported.status(), 501);
    }
}
