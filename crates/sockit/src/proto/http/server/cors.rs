//! Cross-origin access for `http serve --cors`: every response says
//! `Access-Control-Allow-Origin: *`, and an `OPTIONS` request (a browser's preflight) is
//! answered 204 with the methods and headers a page may use. Credentials are never
//! allowed cross-origin (`*` forbids them), so `--cors` does not open `--auth`.

use super::request::Request;

/// Methods a cross-origin page may use: the file server's own.
pub const ALLOW_METHODS: &str = "GET, HEAD, OPTIONS";
/// Request headers allowed when the preflight names none we can echo.
pub const DEFAULT_ALLOW_HEADERS: &str =
    "Range, If-None-Match, If-Modified-Since, If-Range, Accept-Encoding";
/// Response headers a cross-origin script may read beyond the CORS-safelisted ones.
pub const EXPOSE_HEADERS: &str = "Content-Length, Content-Range, Content-Encoding, ETag";
/// How long (seconds) a browser may cache the preflight's answer.
pub const MAX_AGE: &str = "86400";

/// The `Access-Control-Allow-Headers` value for a preflight: the headers it asks for
/// (`Access-Control-Request-Headers`) when that is a plain comma-separated list of header
/// names (so echoing it puts nothing else in our head), else [`DEFAULT_ALLOW_HEADERS`].
pub fn allow_headers(req: &Request) -> &str {
    req.header("access-control-request-headers")
        .filter(|v| !v.is_empty() && v.len() <= 1024)
        .filter(|v| {
            v.iter()
                .all(|&b| is_token_byte(b) || b == b',' || b == b' ')
        })
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or(DEFAULT_ALLOW_HEADERS)
}

/// A `tchar` of RFC 9110 §5.6.2: what a header name is made of.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::server::request::parse_request;

    fn req(headers: &str) -> Request {
        let head = format!("OPTIONS /x HTTP/1.1\r\n{headers}\r\n");
        parse_request(head.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn preflight_headers_are_echoed_only_when_plain() {
        assert_eq!(allow_headers(&req("")), DEFAULT_ALLOW_HEADERS);
        assert_eq!(
            allow_headers(&req("Access-Control-Request-Headers: range, x-a\r\n")),
            "range, x-a"
        );
        assert_eq!(
            allow_headers(&req("Access-Control-Request-Headers: a\"b\r\n")),
            DEFAULT_ALLOW_HEADERS
        );
        assert!(is_token_byte(b'-') && !is_token_byte(b':') && !is_token_byte(b' '));
    }
}
