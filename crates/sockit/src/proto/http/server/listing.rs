//! The HTML page listing a directory (Python's `http.server` look): names sorted and
//! HTML-escaped, links percent-encoded, directories marked with a trailing slash. The
//! driver reads the directory; this only writes the page.

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};

/// What may stay unescaped in a listing's links.
const HREF: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The page for the directory at `raw_path` (the request path, still percent-encoded)
/// holding `entries`: each a name and whether it is a directory. Sorts `entries`.
pub fn listing_page(raw_path: &str, entries: &mut [(Vec<u8>, bool)]) -> Vec<u8> {
    entries.sort();
    let title = html_escape(&String::from_utf8_lossy(
        &percent_decode(raw_path.as_bytes()).collect::<Vec<u8>>(),
    ));
    let mut html = String::with_capacity(256 + entries.len() * 64);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>Directory listing for {title}</title></head>\n<body>\n<h1>Directory listing for {title}</h1>\n<hr>\n<ul>\n"
    );
    for (name, is_dir) in entries.iter() {
        let slash = if *is_dir { "/" } else { "" };
        let _ = writeln!(
            html,
            "<li><a href=\"{}{slash}\">{}{slash}</a></li>",
            percent_encode(name, HREF),
            html_escape(&String::from_utf8_lossy(name))
        );
    }
    html.push_str("</ul>\n<hr>\n</body>\n</html>\n");
    html.into_bytes()
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

    #[test]
    fn pages_list_sorted_escaped_names() {
        let mut entries = vec![(b"z <b>".to_vec(), false), (b"a dir".to_vec(), true)];
        let page = String::from_utf8(listing_page("/x%20y/", &mut entries)).unwrap();
        assert!(page.contains("<title>Directory listing for /x y/</title>"));
        let a = page
            .find("<li><a href=\"a%20dir/\">a dir/</a></li>")
            .unwrap();
        let z = page
            .find("<li><a href=\"z%20%3Cb%3E\">z &lt;b&gt;</a></li>")
            .unwrap();
        assert!(a < z);
    }
}
