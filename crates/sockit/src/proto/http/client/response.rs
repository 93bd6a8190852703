//! Response heads, parsed with `httparse` under our limits, and how the body that follows
//! is framed (RFC 9112 §6.3).

use crate::proto::http::{HttpError, MAX_HEAD, MAX_HEADERS};

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    /// The status code.
    pub status: u16,
    /// The reason phrase (may be empty).
    pub reason: String,
    /// Header names as sent, and values as raw bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The head exactly as received, status line to the blank line (for `-i`).
    pub raw: Vec<u8>,
}

/// How the body after a head ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

impl Head {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// How the body is framed, given whether the request was a HEAD.
    pub fn framing(&self, head_request: bool) -> Result<BodyFraming, HttpError> {
        if head_request || (100..200).contains(&self.status) || matches!(self.status, 204 | 304) {
            return Ok(BodyFraming::Empty);
        }
        let te: Vec<&[u8]> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
            .map(|(_, v)| v.as_slice())
            .collect();
        if !te.is_empty() {
            let last = te
                .last()
                .and_then(|v| v.split(|&b| b == b',').next_back())
                .map(|c| c.trim_ascii())
                .unwrap_or_default();
            // Chunked must be the final coding; any other final coding ends at close.
            return Ok(if last.eq_ignore_ascii_case(b"chunked") {
                BodyFraming::Chunked
            } else {
                BodyFraming::UntilClose
            });
        }
        let mut length: Option<u64> = None;
        for (_, v) in self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        {
            // `Content-Length: 5, 5` is allowed; differing values are not.
            for part in v.split(|&b| b == b',') {
                let part = part.trim_ascii();
                if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                    return Err(HttpError::malformed(
                        "response head",
                        "invalid Content-Length",
                    ));
                }
                let n: u64 = std::str::from_utf8(part)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        HttpError::malformed("response head", "invalid Content-Length")
                    })?;
                if length.is_some_and(|l| l != n) {
                    return Err(HttpError::malformed(
                        "response head",
                        "conflicting Content-Length values",
                    ));
                }
                length = Some(n);
            }
        }
        Ok(match length {
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::UntilClose,
        })
    }
}

/// Parses a response head at the start of `buf`. `Ok(None)`: not complete yet (and under
/// the limits). `Ok(Some((head, n)))`: the head took `n` bytes; the body starts there.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let status = httparse::ParserConfig::default()
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response(&mut res, buf);
    match status {
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                Err(HttpError::TooLarge {
                    what: "response head",
                    limit: MAX_HEAD,
                })
            } else {
                Ok(None)
            }
        }
        Ok(httparse::Status::Complete(n)) => {
            if n > MAX_HEAD {
                return Err(HttpError::TooLarge {
                    what: "response head",
                    limit: MAX_HEAD,
                });
            }
            let head = Head {
                minor_version: res.version.unwrap_or(1),
                status: res.code.unwrap_or(0),
                reason: res.reason.unwrap_or("").to_owned(),
                headers: res
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), h.value.to_vec()))
                    .collect(),
                raw: buf[..n].to_vec(),
            };
            Ok(Some((head, n)))
        }
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::TooLarge {
            what: "response header count",
            limit: MAX_HEADERS,
        }),
        Err(e) => Err(HttpError::malformed("response head", e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        parse_head(text.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn partial_complete_and_limits() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nA: b\r\n").unwrap(), None);
        let (h, n) = parse_head(b"HTTP/1.1 404 Not Found\r\nA: b\r\n\r\nbody")
            .unwrap()
            .unwrap();
        assert_eq!((h.status, h.reason.as_str(), n), (404, "Not Found", 32));
        assert!(parse_head(b"HTTX/1.1 200 OK\r\n\r\n").is_err());
        let many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert!(matches!(
            parse_head(many.as_bytes()),
            Err(HttpError::TooLarge { .. })
        ));
        let long = format!("HTTP/1.1 200 OK\r\nA: {}", "b".repeat(MAX_HEAD));
        assert!(parse_head(long.as_bytes()).is_err());
    }

    #[test]
    fn framing_rules() {
        use BodyFraming::*;
        let f = |t: &str| head(t).framing(false);
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
            Ok(Length(5))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Ok(Chunked)
        );
        assert_eq!(f("HTTP/1.0 200 OK\r\n\r\n"), Ok(UntilClose));
        assert_eq!(f("HTTP/1.1 304 NM\r\nContent-Length: 5\r\n\r\n"), Ok(Empty));
        assert!(f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n").is_err());
        assert!(f("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").framing(true),
            Ok(Empty)
        );
    }
}
