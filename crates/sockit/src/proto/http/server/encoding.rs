//! Content codings for the file server (RFC 9110 §8.4, §12.5.3): which of brotli, zstd
//! and gzip a request's `Accept-Encoding` allows and prefers (q-values, `q=0` refusing,
//! `identity`, `*`), which types are worth compressing, and whether a response may be
//! encoded at all (never a range: a `Range` is answered from the identity bytes).
//!
//! The driver finds what is on disk (a precompressed sibling `app.js.br`) and compresses
//! the rest on the fly; each encoding has its own entity tag ([`Coding::etag_suffix`]) so
//! `If-None-Match` compares against the bytes the client holds.

use super::request::Request;

/// Files smaller than this are sent as they are: the coding's own header and the
/// `Content-Encoding` line would eat most of the gain.
pub const MIN_SIZE: u64 = 1024;

/// A content coding the server can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `br`: the smallest text, what browsers ask for first over HTTPS.
    Br,
    /// `zstd`: close to brotli, much faster to make.
    Zstd,
    /// `gzip`: what every client takes.
    Gzip,
}

impl Coding {
    /// The server's preference among codings a client accepts equally.
    pub const ALL: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

    /// The token in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// The file name suffix of a precompressed sibling (`app.js.br`).
    pub fn file_suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Zstd => ".zst",
            Coding::Gzip => ".gz",
        }
    }

    /// What the identity entity tag gets inside its quotes: another representation, so
    /// another tag (`"5f-a-br"`).
    pub fn etag_suffix(self) -> &'static str {
        match self {
            Coding::Br => "-br",
            Coding::Zstd => "-zstd",
            Coding::Gzip => "-gzip",
        }
    }
}

/// Whether a content type is worth compressing: text, scripts, JSON, XML, SVG, wasm.
/// Images, audio, video, fonts (woff2 is compressed already) and archives are not.
pub fn compressible(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence,
            "application/json"
                | "application/javascript"
                | "application/xml"
                | "application/wasm"
                | "image/vnd.microsoft.icon"
        )
}

/// The coding to send `req` a file of `content_type` and `size` in, or `None` for the
/// identity. `Some` only when the type is [`compressible`], the request names no `Range`
/// (ranges are served from the identity bytes) and `usable(coding)` says the server can
/// make or find it (the driver: a fresh precompressed sibling, or `size` ≥ [`MIN_SIZE`]).
pub fn choose(
    req: &Request,
    content_type: &str,
    usable: impl Fn(Coding) -> bool,
) -> Option<Coding> {
    if req.header("range").is_some() || !compressible(content_type) {
        return None;
    }
    negotiate(req.header("accept-encoding")?, usable)
}

/// The coding an `Accept-Encoding` value prefers among the `usable` ones: the highest
/// q-value (a coding not named takes `*`'s, or is refused), ties broken by
/// [`Coding::ALL`]'s order; `None` when the identity is as good as any (or better).
pub fn negotiate(accept: &[u8], usable: impl Fn(Coding) -> bool) -> Option<Coding> {
    let mut star: Option<u16> = None;
    let mut identity: Option<u16> = None;
    let mut named: [Option<u16>; 3] = [None; 3];
    for item in accept.split(|&b| b == b',') {
        let mut parts = item.split(|&b| b == b';');
        let token = parts.next().unwrap_or_default().trim_ascii();
        let mut q = 1000;
        for p in parts {
            let p = p.trim_ascii();
            if let Some(v) = p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q=")) {
                q = qvalue(v).unwrap_or(0);
            }
        }
        let slot = if token == b"*" {
            &mut star
        } else if token.eq_ignore_ascii_case(b"identity") {
            &mut identity
        } else if let Some(i) = Coding::ALL
            .iter()
            .position(|c| token.eq_ignore_ascii_case(c.token().as_bytes()))
        {
            &mut named[i]
        } else if token.eq_ignore_ascii_case(b"x-gzip") {
            &mut named[2]
        } else {
            continue;
        };
        // A coding listed twice: the better weight (a peer cannot hurt itself otherwise).
        *slot = Some(slot.map_or(q, |old| old.max(q)));
    }
    let mut best: Option<(Coding, u16)> = None;
    for (i, c) in Coding::ALL.into_iter().enumerate() {
        let q = named[i].or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) && usable(c) {
            best = Some((c, q));
        }
    }
    // The identity is implicitly acceptable; a coding wins unless the identity is named
    // with a higher weight (browsers never name it: they mean "any of these").
    match (best, identity) {
        (Some((_, q)), Some(iq)) if iq > q => None,
        (best, _) => best.map(|(c, _)| c),
    }
}

/// A qvalue (`0`, `0.5`, `1.000`) in thousandths; `None` when malformed.
fn qvalue(v: &[u8]) -> Option<u16> {
    let v = std::str::from_utf8(v).ok()?.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: u16 = match int {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    let mut thousandths = 0u16;
    for (i, b) in frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .enumerate()
    {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    let q = int * 1000 + thousandths;
    (q <= 1000).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::server::request::parse_request;
    use Coding::*;

    fn all(_: Coding) -> bool {
        true
    }

    fn neg(accept: &str) -> Option<Coding> {
        negotiate(accept.as_bytes(), all)
    }

    #[test]
    fn q_values_and_preferences() {
        assert_eq!(neg("gzip, deflate, br, zstd"), Some(Br));
        assert_eq!(neg("gzip"), Some(Gzip));
        assert_eq!(neg("x-gzip"), Some(Gzip));
        assert_eq!(neg("gzip;q=0, br"), Some(Br));
        assert_eq!(neg("br;q=0.5, gzip;q=0.8"), Some(Gzip));
        assert_eq!(neg("br;q=0, zstd;q=0, gzip;q=0"), None);
        assert_eq!(neg("*"), Some(Br));
        assert_eq!(neg("*;q=0.1, br;q=0"), Some(Zstd));
        assert_eq!(neg("identity"), None);
        assert_eq!(neg("deflate"), None);
        assert_eq!(neg(""), None);
        assert_eq!(neg("gzip;q=bogus"), None);
        assert_eq!(neg("gzip;q=1.5"), None);
        // The identity preferred to what is offered: identity.
        assert_eq!(neg("gzip;q=0.5, identity;q=1"), None);
        assert_eq!(neg("gzip;q=0.5, identity;q=0.2"), Some(Gzip));
        assert_eq!(neg("gzip;q=0.5, identity;q=0"), Some(Gzip));
        // What the server cannot make is skipped.
        assert_eq!(negotiate(b"br, gzip", |c| c != Br), Some(Gzip));
        assert_eq!(negotiate(b"br", |c| c != Br), None);
        assert_eq!(qvalue(b"0.123"), Some(123));
        assert_eq!(qvalue(b"1.0"), Some(1000));
        assert_eq!(qvalue(b"0.1234"), None);
    }

    #[test]
    fn only_compressible_whole_files() {
        let req = |h: &str| {
            let head = format!("GET /a HTTP/1.1\r\n{h}\r\n");
            parse_request(head.as_bytes()).unwrap().unwrap().0
        };
        let js = "text/javascript; charset=utf-8";
        assert_eq!(choose(&req("Accept-Encoding: br\r\n"), js, all), Some(Br));
        assert_eq!(choose(&req(""), js, all), None);
        assert_eq!(
            choose(&req("Accept-Encoding: br\r\nRange: bytes=0-1\r\n"), js, all),
            None
        );
        assert_eq!(
            choose(&req("Accept-Encoding: br\r\n"), "image/png", all),
            None
        );
        for t in [
            "application/json",
            "image/svg+xml",
            "application/wasm",
            "application/manifest+json",
            "text/css; charset=utf-8",
        ] {
            assert!(compressible(t), "{t}");
        }
        for t in ["image/webp", "font/woff2", "application/gzip", "video/mp4"] {
            assert!(!compressible(t), "{t}");
        }
    }
}
