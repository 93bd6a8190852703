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
        framing_of(
            self.status,
            self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
            head_request,
        )
    }
}

/// What a load generator needs of a response head, taken without copying anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// The status code.
    pub status: u16,
    /// How the body that follows ends.
    pub framing: BodyFraming,
    /// Bytes of the head; the body starts there.
    pub head_len: usize,
    /// The server will close after this response (`Connection: close`, or HTTP/1.0
    /// without `Connection: keep-alive`): the connection cannot carry another request.
    pub closes: bool,
}

/// Parses a response head at the start of `buf` as [`parse_head`] does (same parser,
/// same limits, same framing rules) but keeps only a [`Summary`]: no allocation per
/// response. `Ok(None)`: not complete yet.
pub fn parse_summary(buf: &[u8], head_request: bool) -> Result<Option<Summary>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match parse_into(&mut res, buf)? {
        None => return Ok(None),
        Some(n) => n,
    };
    let status = res.code.unwrap_or(0);
    let pairs = res.headers.iter().map(|h| (h.name, h.value));
    let framing = framing_of(status, pairs.clone(), head_request)?;
    let has_token = |token: &[u8]| {
        pairs.clone().any(|(n, v)| {
            n.eq_ignore_ascii_case("connection")
                && v.split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
        })
    };
    let closes = if res.version == Some(0) {
        !has_token(b"keep-alive")
    } else {
        has_token(b"close")
    };
    Ok(Some(Summary {
        status,
        framing,
        head_len,
        closes,
    }))
}

/// RFC 9112 §6.3: how the body after a head with `status` and `headers` ends.
fn framing_of<'h>(
    status: u16,
    headers: impl Iterator<Item = (&'h str, &'h [u8])> + Clone,
    head_request: bool,
) -> Result<BodyFraming, HttpError> {
    if head_request || (100..200).contains(&status) || matches!(status, 204 | 304) {
        return Ok(BodyFraming::Empty);
    }
    let te = headers
        .clone()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .map(|(_, v)| v)
        .last();
    if let Some(last) = te {
        let last = last
            .split(|&b| b == b',')
            .next_back()
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
    for (_, v) in headers.filter(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
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
                .ok_or_else(|| HttpError::malformed("response head", "invalid Content-Length"))?;
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

/// Runs `httparse` under our limits: `Ok(None)` while incomplete, else the head's length.
fn parse_into<'b>(
    res: &mut httparse::Response<'_, 'b>,
    buf: &'b [u8],
) -> Result<Option<usize>, HttpError> {
    let status = httparse::ParserConfig::default()
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response(res, buf);
    match status {
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(HttpError::TooLarge {
            what: "response head",
            limit: MAX_HEAD,
        }),
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => Err(HttpError::TooLarge {
            what: "response head",
            limit: MAX_HEAD,
        }),
        Ok(httparse::Status::Complete(n)) => Ok(Some(n)),
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::TooLarge {
            what: "response header count",
            limit: MAX_HEADERS,
        }),
        Err(e) => Err(HttpError::malformed("response head", e.to_string())),
    }
}

/// Parses a response head at the start of `buf`. `Ok(None)`: not complete yet (and under
/// the limits). `Ok(Some((head, n)))`: the head took `n` bytes; the body starts there.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let Some(n) = parse_into(&mut res, buf)? else {
        return Ok(None);
    };
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

    #[test]
    fn summaries_agree_with_heads_and_see_connection_close() {
        let s = |t: &str| parse_summary(t.as_bytes(), false).unwrap().unwrap();
        let t = "HTTP/1.1 201 Created\r\nContent-Length: 7\r\n\r\nbody...";
        let sum = s(t);
        assert_eq!(
            (sum.status, sum.framing, sum.head_len, sum.closes),
            (201, BodyFraming::Length(7), 43, false)
        );
        assert_eq!(Ok(sum.framing), head(t).framing(false));
        assert!(s("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n").closes);
        assert!(s("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").closes);
        assert!(
            !s("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").closes
        );
        assert_eq!(parse_summary(b"HTTP/1.1 200 OK\r\n", false), Ok(None));
        assert!(parse_summary(b"XTTP/1.1 200 OK\r\n\r\n", false).is_err());
    }
}
