//! Response heads as bytes, the reason phrases of the statuses the file server sends, and
//! the small HTML page that goes with an error status.

/// Appends an HTTP/1.1 response head to `out`: status line, `headers`, the blank line.
/// Plain byte appends: this runs once per response, and `fmt` costs more than the rest.
pub fn write_head(out: &mut Vec<u8>, status: u16, headers: &[(&str, &str)]) {
    let status = status.min(999);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (n, v) in headers {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The reason phrase of the statuses the file server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The body sent with `status` when it is not a success: a line of HTML naming it, or
/// nothing for a redirect or 304 (whose bodies no browser shows).
pub fn error_page(status: u16) -> Vec<u8> {
    if status == 301 || status == 304 {
        return Vec::new();
    }
    let reason = reason(status);
    format!(
        "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\n<body><h1>{status} {reason}</h1></body></html>\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_heads() {
        let mut out = b"x".to_vec();
        write_head(&mut out, 206, &[("A", "1"), ("Content-Length", "10")]);
        assert_eq!(
            out,
            b"xHTTP/1.1 206 Partial Content\r\nA: 1\r\nContent-Length: 10\r\n\r\n"
        );
        out.clear();
        write_head(&mut out, 404, &[]);
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\n\r\n");
    }

    #[test]
    fn error_pages_name_their_status() {
        assert!(
            String::from_utf8(error_page(416))
                .unwrap()
                .contains("<h1>416 Range Not Satisfiable</h1>")
        );
        assert!(error_page(301).is_empty());
        assert!(error_page(304).is_empty());
    }
}
