//! `http://` and `https://` URLs: what a client needs to connect and ask, and the
//! resolution of a (possibly relative) `Location` against the URL it came from.

use std::fmt;

use crate::proto::http::HttpError;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP, default port 80.
    Http,
    /// TLS, default port 443.
    Https,
}

impl Scheme {
    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// An absolute HTTP URL, split into what a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// A DNS name or an IP literal (IPv6 without brackets).
    pub host: String,
    /// The port, the scheme's default when none was given.
    pub port: u16,
    /// The request target: path and query, always starting with `/`; no fragment.
    pub target: String,
}

impl Url {
    /// Parses an absolute URL. A URL without a scheme is taken as `http://`, as curl does.
    pub fn parse(input: &str) -> Result<Url, HttpError> {
        let bad = |reason: &str| HttpError::Url {
            url: input.to_owned(),
            reason: reason.to_owned(),
        };
        if input.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("contains spaces or control characters"));
        }
        let (scheme, rest) = match input.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (Scheme::Http, rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (Scheme::Https, rest),
            Some(_) => return Err(bad("only http:// and https:// are supported")),
            None => (Scheme::Http, input),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err(bad("user information in URLs is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("invalid IPv6 literal"));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None | Some("") => scheme.default_port(),
            Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
        };
        let tail = tail.split('#').next().unwrap_or_default();
        let target = if tail.starts_with('/') {
            tail.to_owned()
        } else {
            format!("/{tail}")
        };
        Ok(Url {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            target,
        })
    }

    /// Resolves a `Location` value against this URL (RFC 3986 §5.2, for the forms servers
    /// send: absolute, scheme-relative, absolute-path, relative-path, query-only).
    pub fn join(&self, location: &str) -> Result<Url, HttpError> {
        let location = location.trim();
        // A scheme is never a path: `javascript:`, `data:`, `unix:`, ... are refused here,
        // not fetched as `./javascript:...` from the same server.
        if let Some(scheme) = scheme_of(location) {
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
                return Url::parse(location);
            }
            return Err(HttpError::Url {
                url: location.to_owned(),
                reason: format!(
                    "a redirect to a {scheme}: URL is not followed (only http and https)"
                ),
            });
        }
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", self.scheme.name()));
        }
        let location = location.split('#').next().unwrap_or_default();
        let target = if location.is_empty() {
            self.target.clone()
        } else if location.starts_with('/') {
            remove_dots(location)
        } else if location.starts_with('?') {
            let path = self.target.split('?').next().unwrap_or("/");
            format!("{path}{location}")
        } else {
            let path = self.target.split('?').next().unwrap_or("/");
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            remove_dots(&format!("{dir}{location}"))
        };
        Ok(Url {
            target,
            ..self.clone()
        })
    }

    /// The `Host` header: the port only when it is not the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.name(),
            self.host_header(),
            self.target
        )
    }
}

/// The scheme of an absolute URL (RFC 3986 §3.1: a letter, then letters, digits, `+`,
/// `-`, `.`, then `:` before any `/`, `?` or `#`); `None` for a relative reference.
fn scheme_of(reference: &str) -> Option<&str> {
    let end = reference.find([':', '/', '?', '#'])?;
    let scheme = &reference[..end];
    let valid = reference[end..].starts_with(':')
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then_some(scheme)
}

/// Removes `.` and `..` segments of a path (the query is left alone); `..` stops at `/`.
fn remove_dots(target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut s = format!("/{}", out.join("/"));
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_targets() {
        let u = Url::parse("http://[::1]:8080/a?b#c").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("::1", 8080, "/a?b")
        );
        assert_eq!(u.host_header(), "[::1]:8080");
        let u = Url::parse("https://Example.com").unwrap();
        assert_eq!((u.port, u.target.as_str()), (443, "/"));
        assert_eq!(u.host_header(), "example.com");
        let u = Url::parse("localhost:81?x").unwrap();
        assert_eq!(
            (u.scheme, u.port, u.target.as_str()),
            (Scheme::Http, 81, "/?x")
        );
        for bad in [
            "ftp://x/",
            "http://:80/",
            "http://[::1/",
            "http://h:99999/",
            "http://a b/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn joins_locations() {
        let base = Url::parse("http://h:1/a/b/c?q").unwrap();
        let j = |l: &str| base.join(l).unwrap().to_string();
        assert_eq!(j("d"), "http://h:1/a/b/d");
        assert_eq!(j("../d"), "http://h:1/a/d");
        assert_eq!(j("../../../../d"), "http://h:1/d");
        assert_eq!(j("/x/./y"), "http://h:1/x/y");
        assert_eq!(j("?z"), "http://h:1/a/b/c?z");
        assert_eq!(j("//other/p"), "http://other/p");
        assert_eq!(j("https://s/"), "https://s/");
        assert_eq!(j("./"), "http://h:1/a/b/");
        assert_eq!(j("HTTP://s/"), "http://s/");
        assert_eq!(j("a/b:c"), "http://h:1/a/b/a/b:c");
    }

    #[test]
    fn refuses_locations_of_other_schemes() {
        let base = Url::parse("http://h:1/a").unwrap();
        for l in [
            "javascript:alert(1)",
            "data:,x",
            "unix:/tmp/s",
            "ftp://h/",
            "file:///x",
        ] {
            let e = base.join(l).unwrap_err().to_string();
            assert!(e.contains("not followed"), "{l}: {e}");
        }
    }
}
