//! A directory's listing, as HTML or JSON: names, sizes (human), modification times,
//! sorted by any of them (`?sort=name|size|mtime&order=asc|desc`, links in the column
//! heads), a parent link and breadcrumbs, readable on a phone (viewport, a little CSS, no
//! JavaScript). `?format=json` or `Accept: application/json` gives the JSON. Every name is
//! HTML-escaped in text and percent-encoded in links. Dotfiles are hidden unless the
//! server shows them ([`is_hidden`]). The driver reads the directory; this only writes.

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};

use super::request::Request;

/// What may stay unescaped in a listing's links.
const HREF: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name, as the file system holds it (not necessarily UTF-8).
    pub name: Vec<u8>,
    /// Whether it is a directory (its link ends in `/`).
    pub is_dir: bool,
    /// Its size in bytes (0 for a directory).
    pub size: u64,
    /// Its modification time, seconds since the epoch.
    pub mtime: u64,
}

/// The column a listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// By name (directories first), the default.
    Name,
    /// By size.
    Size,
    /// By modification time.
    Mtime,
}

/// How a listing is asked for: its order and its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// The sort column.
    pub key: Key,
    /// Descending instead of ascending.
    pub desc: bool,
    /// JSON instead of HTML.
    pub json: bool,
}

impl View {
    /// The view a request asks for: its query (`sort`, `order`, `format`; unknown values
    /// are ignored) and its `Accept` header (JSON when it names `application/json`).
    pub fn of(req: &Request) -> View {
        let mut v = View {
            key: Key::Name,
            desc: false,
            json: req
                .header("accept")
                .is_some_and(|a| memchr::memmem::find(a, b"application/json").is_some()),
        };
        let query = req.target.split_once('?').map_or("", |(_, q)| q);
        let query = query.split('#').next().unwrap_or("");
        for pair in query.split('&') {
            match pair.split_once('=').unwrap_or((pair, "")) {
                ("sort", "name") => v.key = Key::Name,
                ("sort", "size") => v.key = Key::Size,
                ("sort", "mtime") => v.key = Key::Mtime,
                ("order", "desc") => v.desc = true,
                ("order", "asc") => v.desc = false,
                ("format", "json") => v.json = true,
                ("format", "html") => v.json = false,
                _ => {}
            }
        }
        v
    }
}

/// Whether a name is a dotfile, hidden from listings and refused (404) unless the
/// server is told to show them: `.git`, `.env`, `.htpasswd` are rarely meant for the web.
pub fn is_hidden(name: &[u8]) -> bool {
    name.first() == Some(&b'.')
}

/// Sorts `entries` as `view` says: by name (directories first), size or time, then name.
pub fn sort(entries: &mut [Entry], view: View) {
    entries.sort_by(|a, b| {
        let by = match view.key {
            Key::Name => b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)),
            Key::Size => a.size.cmp(&b.size).then_with(|| a.name.cmp(&b.name)),
            Key::Mtime => a.mtime.cmp(&b.mtime).then_with(|| a.name.cmp(&b.name)),
        };
        if view.desc { by.reverse() } else { by }
    });
}

/// The HTML page for the directory at `raw_path` (the request path, still
/// percent-encoded) holding `entries`, sorted first as `view` says; `http_date` formats a
/// time for the Modified column.
pub fn listing_page(
    raw_path: &str,
    entries: &mut [Entry],
    view: View,
    http_date: impl Fn(u64) -> String,
) -> Vec<u8> {
    sort(entries, view);
    let decoded = decoded(raw_path);
    let title = html_escape(&decoded);
    let mut html = String::with_capacity(1024 + entries.len() * 160);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Directory listing for {title}</title>\n<style>\
         body{{font-family:system-ui,sans-serif;margin:1em;}}\
         table{{border-collapse:collapse;width:100%;}}\
         th,td{{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd;}}\
         td.n{{word-break:break-all;}}td.s,th.s{{text-align:right;white-space:nowrap;}}\
         td.m{{white-space:nowrap;}}a{{text-decoration:none;}}\
         @media (max-width:40em){{td.m,th.m{{display:none;}}}}\
         </style></head>\n<body>\n<h1>Directory listing for "
    );
    breadcrumbs(&mut html, raw_path);
    html.push_str("</h1>\n<table>\n<tr>");
    for (key, label, class) in [
        (Key::Name, "Name", "n"),
        (Key::Size, "Size", "s"),
        (Key::Mtime, "Modified", "m"),
    ] {
        // The column sorted now links to the other order; the others to ascending.
        let order = if view.key == key && !view.desc {
            "desc"
        } else {
            "asc"
        };
        let sort = match key {
            Key::Name => "name",
            Key::Size => "size",
            Key::Mtime => "mtime",
        };
        let mark = match (view.key == key, view.desc) {
            (true, false) => " &#x25B2;",
            (true, true) => " &#x25BC;",
            _ => "",
        };
        let _ = write!(
            html,
            "<th class=\"{class}\"><a href=\"?sort={sort}&amp;order={order}\">{label}</a>{mark}</th>"
        );
    }
    html.push_str("</tr>\n");
    if !raw_path.trim_matches('/').is_empty() {
        html.push_str("<tr><td class=\"n\"><a href=\"../\">../</a></td><td class=\"s\"></td><td class=\"m\"></td></tr>\n");
    }
    for e in entries.iter() {
        let slash = if e.is_dir { "/" } else { "" };
        let size = if e.is_dir {
            String::new()
        } else {
            human_size(e.size)
        };
        let _ = writeln!(
            html,
            "<tr><td class=\"n\"><a href=\"{}{slash}\">{}{slash}</a></td><td class=\"s\">{size}</td><td class=\"m\">{}</td></tr>",
            percent_encode(&e.name, HREF),
            html_escape(&String::from_utf8_lossy(&e.name)),
            http_date(e.mtime),
        );
    }
    html.push_str("</table>\n</body>\n</html>\n");
    html.into_bytes()
}

/// The listing as JSON: `{"path": ..., "entries": [{"name", "type", "size", "mtime"}]}`,
/// sorted as `view` says; `mtime` in seconds since the epoch; names not UTF-8 are shown
/// lossily (U+FFFD).
pub fn listing_json(raw_path: &str, entries: &mut [Entry], view: View) -> Vec<u8> {
    sort(entries, view);
    let list: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": String::from_utf8_lossy(&e.name),
                "type": if e.is_dir { "dir" } else { "file" },
                "size": e.size,
                "mtime": e.mtime,
            })
        })
        .collect();
    let doc = serde_json::json!({ "path": decoded(raw_path), "entries": list });
    let mut out = serde_json::to_vec(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

/// A size for people: `999 B`, `1.5 KiB`, `12 MiB`, `3.2 GiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// The request path decoded for display.
fn decoded(raw_path: &str) -> String {
    String::from_utf8_lossy(&percent_decode(raw_path.as_bytes()).collect::<Vec<u8>>()).into_owned()
}

/// `/` and each directory of `raw_path` as a link to itself, its name escaped.
fn breadcrumbs(html: &mut String, raw_path: &str) {
    html.push_str("<a href=\"/\">/</a>");
    let mut href = String::from("/");
    for seg in raw_path.split('/').filter(|s| !s.is_empty()) {
        let name = percent_decode(seg.as_bytes()).collect::<Vec<u8>>();
        href.push_str(&percent_encode(&name, HREF).to_string());
        href.push('/');
        let _ = write!(
            html,
            "<a href=\"{href}\">{}</a>/",
            html_escape(&String::from_utf8_lossy(&name))
        );
    }
}

/// Escapes `& < > " '` for HTML text and attributes.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#x27;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
        );
    }

    fn entry(name: &[u8], is_dir: bool, size: u64, mtime: u64) -> Entry {
        Entry {
            name: name.to_vec(),
            is_dir,
            size,
            mtime,
        }
    }

    const BY_NAME: View = View {
        key: Key::Name,
        desc: false,
        json: false,
    };

    #[test]
    fn pages_list_sorted_escaped_names() {
        let mut entries = vec![entry(b"z <b>", false, 2048, 5), entry(b"a dir", true, 0, 9)];
        let page = String::from_utf8(listing_page("/x%20y/", &mut entries, BY_NAME, |t| {
            format!("T{t}")
        }))
        .unwrap();
        assert!(page.contains("<title>Directory listing for /x y/</title>"));
        assert!(page.contains("name=\"viewport\""));
        assert!(page.contains("<a href=\"/\">/</a><a href=\"/x%20y/\">x y</a>/"));
        assert!(page.contains("<a href=\"../\">../</a>"));
        let a = page.find("<a href=\"a%20dir/\">a dir/</a>").unwrap();
        let z = page
            .find("<a href=\"z%20%3Cb%3E\">z &lt;b&gt;</a>")
            .unwrap();
        assert!(a < z);
        assert!(page.contains("2.0 KiB</td><td class=\"m\">T5</td>"));
        assert!(!page.contains("<script"));
        // The sorted column links to the other order.
        assert!(page.contains("href=\"?sort=name&amp;order=desc\""));
        let root =
            String::from_utf8(listing_page("/", &mut entries, BY_NAME, |_| String::new())).unwrap();
        assert!(!root.contains("../"));
    }

    #[test]
    fn views_sorting_and_json() {
        let req = |target: &str, headers: &str| {
            let head = format!("GET {target} HTTP/1.1\r\n{headers}\r\n");
            crate::proto::http::server::request::parse_request(head.as_bytes())
                .unwrap()
                .unwrap()
                .0
        };
        assert_eq!(View::of(&req("/", "")), BY_NAME);
        let v = View::of(&req("/d/?sort=size&order=desc&x=1", ""));
        assert_eq!((v.key, v.desc, v.json), (Key::Size, true, false));
        assert!(View::of(&req("/?format=json", "")).json);
        assert!(View::of(&req("/", "Accept: application/json\r\n")).json);
        assert_eq!(View::of(&req("/?sort=bogus", "")).key, Key::Name);
        let mut e = vec![
            entry(b"b", false, 10, 3),
            entry(b"a", false, 30, 1),
            entry(b"d", true, 0, 2),
        ];
        let names = |e: &[Entry]| e.iter().map(|e| e.name[0]).collect::<Vec<u8>>();
        sort(&mut e, BY_NAME);
        assert_eq!(names(&e), b"dab");
        sort(
            &mut e,
            View {
                key: Key::Size,
                desc: true,
                json: false,
            },
        );
        assert_eq!(names(&e), b"abd");
        sort(
            &mut e,
            View {
                key: Key::Mtime,
                desc: false,
                json: false,
            },
        );
        assert_eq!(names(&e), b"adb");
        let json: serde_json::Value =
            serde_json::from_slice(&listing_json("/q%22/", &mut e, BY_NAME)).unwrap();
        assert_eq!(json["path"], "/q\"/");
        assert_eq!(json["entries"][0]["name"], "d");
        assert_eq!(json["entries"][0]["type"], "dir");
        assert_eq!(json["entries"][1]["size"], 30);
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(12 << 20), "12 MiB");
        assert!(is_hidden(b".git") && !is_hidden(b"a.txt"));
    }
}
