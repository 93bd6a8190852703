//! The `Range` request header (RFC 9110 §14.2), judged against the size of the file: one
//! byte range or none; several ranges are ignored (the whole file is sent, which RFC 9110
//! allows) rather than answered as `multipart/byteranges`.

/// A `Range` header, judged against the file size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// First and last byte, inclusive, both inside the file.
    Bytes(u64, u64),
    /// Nothing of the file is in the range: 416.
    Unsatisfiable,
    /// Not understood, or several ranges: the whole file (RFC 9110 allows ignoring it).
    Ignore,
}

/// Judges a `Range` value against a file of `size` bytes.
pub fn parse_range(value: &[u8], size: u64) -> Range {
    let Some(spec) = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Range::Ignore;
    };
    if spec.contains(',') {
        return Range::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Ignore;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix) {
            Some(0) => Range::Unsatisfiable,
            Some(n) if size > 0 => Range::Bytes(size.saturating_sub(n), size - 1),
            Some(_) => Range::Unsatisfiable,
            None => Range::Ignore,
        },
        (from, to) => {
            let Some(from) = num(from) else {
                return Range::Ignore;
            };
            let to = if to.is_empty() {
                Some(u64::MAX)
            } else {
                num(to)
            };
            match to {
                None => Range::Ignore,
                Some(to) if to < from => Range::Ignore,
                Some(_) if from >= size => Range::Unsatisfiable,
                Some(to) => Range::Bytes(from, to.min(size - 1)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use Range::*;
        assert_eq!(parse_range(b"bytes=0-9", 100), Bytes(0, 9));
        assert_eq!(parse_range(b"bytes=90-", 100), Bytes(90, 99));
        assert_eq!(parse_range(b"bytes=-10", 100), Bytes(90, 99));
        assert_eq!(parse_range(b"bytes=-500", 100), Bytes(0, 99));
        assert_eq!(parse_range(b"bytes=50-500", 100), Bytes(50, 99));
        assert_eq!(parse_range(b"bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-1,5-6", 100), Ignore);
        assert_eq!(parse_range(b"items=0-1", 100), Ignore);
        assert_eq!(parse_range(b"bytes=5-1", 100), Ignore);
        assert_eq!(parse_range(b"bytes=0-0", 0), Unsatisfiable);
    }
}
