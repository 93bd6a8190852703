//! The file server's decisions, pure: from a request head and what the filesystem holds
//! at its path, which status, which part of which file, where to redirect. The driver
//! ([`crate::http::serve`]) does the looking (confined to the served directory) and turns
//! each [`Decision`] into a response; everything a client can steer is decided here, so
//! it is tested, and fuzzed, without files.
//!
//! Two steps, because the driver must know where to look before it can say what is
//! there: [`target_path`] (method and request target), then [`decide`].

use super::conditional::{Validators, not_modified, range_applies};
use super::mime::content_type;
use super::range::{Range, parse_range};
use super::request::Request;

/// What the filesystem holds at the request's path, as far as a decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<'a> {
    /// Nothing the server may serve: the status the failed open maps to (404, 403, 503).
    Missing(u16),
    /// A regular file.
    File(FileFacts<'a>),
    /// A directory.
    Dir,
    /// Something else (a FIFO, a device, a socket): never served.
    Other,
}

/// The facts about a regular file that a response depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts<'a> {
    /// Its name, for the content type (`index.html` for a directory's index).
    pub name: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// Its validators, for conditional requests.
    pub validators: Validators<'a>,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// This status with its error page.
    Error(u16),
    /// 501 with `Allow: GET, HEAD`: a method the file server does not serve.
    NotImplemented,
    /// 301 to this location: a directory asked for without its final slash.
    Redirect(String),
    /// A directory asked for with its final slash: its `index.html` if that is a regular
    /// file (the driver asks again with its facts), else its listing.
    Index,
    /// 304: the client's copy is current.
    NotModified,
    /// 416: the range lies outside a file of this size.
    Unsatisfiable {
        /// The file size, for `Content-Range: bytes */size`.
        size: u64,
    },
    /// 200 with the whole file, or 206 with `range`.
    File {
        /// `Content-Type`.
        content_type: &'static str,
        /// First and last byte (inclusive) for a 206; `None` for the whole file.
        range: Option<(u64, u64)>,
    },
}

impl Decision {
    /// The response status.
    pub fn status(&self) -> u16 {
        match self {
            Decision::Error(s) => *s,
            Decision::NotImplemented => 501,
            Decision::Redirect(_) => 301,
            Decision::Index => 200,
            Decision::NotModified => 304,
            Decision::Unsatisfiable { .. } => 416,
            Decision::File { range: None, .. } => 200,
            Decision::File { range: Some(_), .. } => 206,
        }
    }
}

/// The path part of the request target (still percent-encoded) for a GET or HEAD, or the
/// answer without looking: 501 for other methods, 400 for a target that is not a path.
pub fn target_path(req: &Request) -> Result<&str, Decision> {
    if req.method != "GET" && req.method != "HEAD" {
        return Err(Decision::NotImplemented);
    }
    let raw_path = req.target.split(['?', '#']).next().unwrap_or("");
    if !raw_path.starts_with('/') {
        return Err(Decision::Error(400));
    }
    Ok(raw_path)
}

/// The answer to `req` (whose path is `raw_path`, from [`target_path`]) given what is
/// there.
pub fn decide(req: &Request, raw_path: &str, found: &Found<'_>) -> Decision {
    match found {
        Found::Missing(status) => Decision::Error(*status),
        Found::Other => Decision::Error(403),
        Found::Dir if raw_path.ends_with('/') => Decision::Index,
        Found::Dir => Decision::Redirect(slash_form(
            raw_path,
            req.target.split_once('?').map(|(_, q)| q),
        )),
        Found::File(file) => decide_file(req, file),
    }
}

/// A regular file: 200, or 206/416 for a `Range`, or 304 for a conditional request.
fn decide_file(req: &Request, file: &FileFacts<'_>) -> Decision {
    if not_modified(req, &file.validators) {
        return Decision::NotModified;
    }
    let range = req
        .header("range")
        .filter(|_| range_applies(req, &file.validators))
        .map(|v| parse_range(v, file.size));
    let content_type = content_type(file.name);
    match range {
        Some(Range::Unsatisfiable) => Decision::Unsatisfiable { size: file.size },
        Some(Range::Bytes(from, to)) => Decision::File {
            content_type,
            range: Some((from, to)),
        },
        Some(Range::Ignore) | None => Decision::File {
            content_type,
            range: None,
        },
    }
}

/// The `Location` of a directory asked for without its final slash. Leading slashes
/// collapse to one and a backslash is percent-encoded, so the result never begins with
/// `//` or `/\`, which a browser reads as another host (`//evil/` is `http://evil/`); the
/// server decodes both forms to the same directory.
pub fn slash_form(raw_path: &str, query: Option<&str>) -> String {
    let rest = raw_path.trim_start_matches('/');
    let mut location = String::with_capacity(raw_path.len() + 2 + query.map_or(0, str::len));
    location.push('/');
    for (i, part) in rest.split('\\').enumerate() {
        if i > 0 {
            location.push_str("%5C");
        }
        location.push_str(part);
    }
    location.push('/');
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
    location
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::server::request::parse_request;

    fn req(line: &str, headers: &str) -> Request {
        let head = format!("{line} HTTP/1.1\r\n{headers}\r\n");
        parse_request(head.as_bytes()).unwrap().unwrap().0
    }

    const FILE: FileFacts<'static> = FileFacts {
        name: "a.txt",
        size: 100,
        validators: Validators {
            etag: "\"5f-64\"",
            last_modified: "Thu, 01 Jan 1970 00:01:35 GMT",
            mtime: 0x5f,
        },
    };

    fn answer(line: &str, headers: &str, found: Found<'_>) -> Decision {
        let r = req(line, headers);
        match target_path(&r) {
            Ok(path) => decide(&r, path, &found),
            Err(d) => d,
        }
    }

    #[test]
    fn methods_and_targets() {
        assert_eq!(answer("POST /", "", Found::Dir), Decision::NotImplemented);
        assert_eq!(answer("GET *", "", Found::Dir), Decision::Error(400));
        assert_eq!(
            answer("GET http://x/", "", Found::Dir),
            Decision::Error(400)
        );
        assert_eq!(
            answer("HEAD /x", "", Found::Missing(404)),
            Decision::Error(404)
        );
        assert_eq!(answer("GET /fifo", "", Found::Other), Decision::Error(403));
    }

    #[test]
    fn directories_redirect_or_index() {
        assert_eq!(answer("GET /d/", "", Found::Dir), Decision::Index);
        assert_eq!(answer("GET /d/?q", "", Found::Dir), Decision::Index);
        assert_eq!(
            answer("GET /d?q=1#f", "", Found::Dir),
            Decision::Redirect("/d/?q=1#f".into())
        );
        assert_eq!(
            answer("GET //evil", "", Found::Dir),
            Decision::Redirect("/evil/".into())
        );
    }

    #[test]
    fn files_whole_ranged_or_not_modified() {
        let text = "text/plain; charset=utf-8";
        assert_eq!(
            answer("GET /a.txt", "", Found::File(FILE)),
            Decision::File {
                content_type: text,
                range: None
            }
        );
        assert_eq!(
            answer("GET /a.txt", "Range: bytes=-10\r\n", Found::File(FILE)),
            Decision::File {
                content_type: text,
                range: Some((90, 99))
            }
        );
        assert_eq!(
            answer("GET /a.txt", "Range: bytes=100-\r\n", Found::File(FILE)),
            Decision::Unsatisfiable { size: 100 }
        );
        // A stale If-Range: the whole file.
        assert_eq!(
            answer(
                "GET /a.txt",
                "Range: bytes=0-1\r\nIf-Range: \"old\"\r\n",
                Found::File(FILE)
            ),
            Decision::File {
                content_type: text,
                range: None
            }
        );
        assert_eq!(
            answer(
                "GET /a.txt",
                "If-None-Match: \"5f-64\"\r\nRange: bytes=0-1\r\n",
                Found::File(FILE)
            ),
            Decision::NotModified
        );
    }

    #[test]
    fn redirects_never_name_an_authority() {
        assert_eq!(slash_form("/sub", None), "/sub/");
        assert_eq!(slash_form("//sub", Some("a=1")), "/sub/?a=1");
        assert_eq!(slash_form("///a//b", None), "/a//b/");
        assert_eq!(slash_form("/\\evil", None), "/%5Cevil/");
        assert_eq!(slash_form("//\\evil\\x", None), "/%5Cevil%5Cx/");
    }
}
