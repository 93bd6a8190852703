//! Conditional requests (RFC 9110 §13) against a file's validators: `If-None-Match` and
//! `If-Modified-Since` decide a 304, `If-Range` whether a `Range` still applies. The
//! validators themselves (an nginx-style entity tag and the `Last-Modified` date) are
//! made by the caller, from the file's mtime and size.

use super::request::Request;

/// What the server knows of a file's version, as sent in its validators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validators<'a> {
    /// The strong entity tag, quotes included (`"5f-a"`).
    pub etag: &'a str,
    /// The `Last-Modified` value (an HTTP date).
    pub last_modified: &'a str,
    /// The modification time in seconds since the epoch, which `If-Modified-Since` is
    /// compared with (HTTP dates have no finer resolution).
    pub mtime: u64,
}

/// Whether the client's copy is current: `If-None-Match` when sent (it wins over
/// `If-Modified-Since`, as RFC 9110 §13.2.2 says), else `If-Modified-Since`.
pub fn not_modified(req: &Request, v: &Validators<'_>) -> bool {
    match req.header("if-none-match") {
        Some(tags) => etag_listed(tags, v.etag),
        None => req
            .header("if-modified-since")
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .is_some_and(|ims| {
                let ims = ims
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                v.mtime <= ims
            }),
    }
}

/// Whether a `Range` applies: always without `If-Range`, else only if the file is still
/// the one the client has part of (an entity tag compares strongly, a date exactly).
pub fn range_applies(req: &Request, v: &Validators<'_>) -> bool {
    match req.header("if-range") {
        None => true,
        Some(t) if t.starts_with(b"\"") || t.starts_with(b"W/") => t == v.etag.as_bytes(),
        Some(t) => t == v.last_modified.as_bytes(),
    }
}

/// Whether an `If-None-Match` list names `etag` (or is `*`); compared weakly, as that
/// header is, so `W/"x"` matches `"x"`.
pub fn etag_listed(list: &[u8], etag: &str) -> bool {
    list.split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        t == b"*" || t.strip_prefix(b"W/").unwrap_or(t) == etag.as_bytes()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::server::request::parse_request;

    fn req(headers: &str) -> Request {
        let head = format!("GET / HTTP/1.1\r\n{headers}\r\n");
        parse_request(head.as_bytes()).unwrap().unwrap().0
    }

    const V: Validators<'static> = Validators {
        etag: "\"5f-a\"",
        last_modified: "Thu, 01 Jan 1970 00:01:35 GMT",
        mtime: 0x5f,
    };

    #[test]
    fn entity_tags_match_weakly_in_lists() {
        let tag = "\"5f-a\"";
        assert!(etag_listed(b"\"5f-a\"", tag));
        assert!(etag_listed(b"\"x\", W/\"5f-a\"", tag));
        assert!(etag_listed(b" * ", tag));
        assert!(!etag_listed(b"\"5f-b\", \"5f\"", tag));
        assert!(!etag_listed(b"5f-a", tag));
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        assert!(!not_modified(&req(""), &V));
        assert!(not_modified(&req("If-None-Match: W/\"5f-a\"\r\n"), &V));
        let later = "If-Modified-Since: Thu, 01 Jan 1970 00:01:36 GMT\r\n";
        let earlier = "If-Modified-Since: Thu, 01 Jan 1970 00:01:34 GMT\r\n";
        assert!(not_modified(&req(later), &V));
        assert!(!not_modified(&req(earlier), &V));
        assert!(!not_modified(
            &req(&format!("If-None-Match: \"x\"\r\n{later}")),
            &V
        ));
    }

    #[test]
    fn if_range_compares_exactly() {
        assert!(range_applies(&req(""), &V));
        assert!(range_applies(&req("If-Range: \"5f-a\"\r\n"), &V));
        assert!(!range_applies(&req("If-Range: W/\"5f-a\"\r\n"), &V));
        assert!(range_applies(
            &req("If-Range: Thu, 01 Jan 1970 00:01:35 GMT\r\n"),
            &V
        ));
        assert!(!range_applies(
            &req("If-Range: Thu, 01 Jan 1970 00:01:36 GMT\r\n"),
            &V
        ));
    }
}
