//! Content types by file name, for the file server's `Content-Type`: a fixed table of the
//! extensions a directory of web files and sources holds, `application/octet-stream`
//! otherwise (the browser then offers a download instead of guessing).

/// The MIME type for a file name's extension.
pub fn content_type(name: &str) -> &'static str {
    let Some((_, ext)) = name.rsplit_once('.') else {
        return "application/octet-stream";
    };
    // Lower-cased on the stack: this runs for every file served.
    let mut lower = [0u8; 11];
    if ext.len() > lower.len() {
        return "application/octet-stream";
    }
    for (l, b) in lower.iter_mut().zip(ext.bytes()) {
        *l = b.to_ascii_lowercase();
    }
    match &lower[..ext.len()] {
        b"html" | b"htm" => "text/html; charset=utf-8",
        b"txt" | b"text" | b"log" | b"rs" | b"py" | b"sh" | b"toml" | b"c" | b"h" => {
            "text/plain; charset=utf-8"
        }
        b"css" => "text/css; charset=utf-8",
        b"js" | b"mjs" => "text/javascript; charset=utf-8",
        b"json" | b"map" => "application/json",
        b"webmanifest" => "application/manifest+json",
        b"xml" => "application/xml",
        b"csv" => "text/csv; charset=utf-8",
        b"svg" => "image/svg+xml",
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"webp" => "image/webp",
        b"avif" => "image/avif",
        b"ico" => "image/vnd.microsoft.icon",
        b"pdf" => "application/pdf",
        b"zip" => "application/zip",
        b"gz" | b"tgz" => "application/gzip",
        b"tar" => "application/x-tar",
        b"wasm" => "application/wasm",
        b"mp3" => "audio/mpeg",
        b"mp4" => "video/mp4",
        b"webm" => "video/webm",
        b"woff" => "font/woff",
        b"woff2" => "font/woff2",
        b"ttf" => "font/ttf",
        b"otf" => "font/otf",
        b"ogg" => "audio/ogg",
        b"wav" => "audio/wav",
        b"md" => "text/markdown; charset=utf-8",
        b"zst" => "application/zstd",
        b"br" => "application/x-brotli",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_extension() {
        assert_eq!(content_type("A.HTML"), "text/html; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(content_type("x.tar.gz"), "application/gzip");
        assert_eq!(content_type("x.woff2"), "font/woff2");
        // The types browsers insist on: a module script or wasm with another type is
        // refused (strict MIME checking), an image decoded only if recognised.
        assert_eq!(content_type("m.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.wasm"), "application/wasm");
        assert_eq!(content_type("p.webp"), "image/webp");
        assert_eq!(content_type("p.AVIF"), "image/avif");
        assert_eq!(content_type("d.json"), "application/json");
        assert_eq!(content_type("i.svg"), "image/svg+xml");
        assert_eq!(
            content_type("site.webmanifest"),
            "application/manifest+json"
        );
        assert_eq!(content_type("x.averylongext"), "application/octet-stream");
        assert_eq!(content_type("x."), "application/octet-stream");
    }
}
