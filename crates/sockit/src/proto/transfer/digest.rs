//! The checksum algorithms a sender may pick per file (BLAKE3, SHA-256, MD5), their
//! incremental hashers, and digests printed the way `b3sum` / `sha256sum` / `md5sum` do,
//! so a user can check a received tree with the usual tools.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

use super::path::RelPath;

/// A checksum algorithm; the sender picks one per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algo {
    /// BLAKE3, 32-byte digest (`b3sum`): the default, the fastest by far.
    #[default]
    Blake3,
    /// SHA-256, 32-byte digest (`sha256sum`).
    Sha256,
    /// MD5, 16-byte digest (`md5sum`), for checking against tools that have only that;
    /// not collision resistant.
    Md5,
}

impl Algo {
    /// Every algorithm, in wire-code order.
    pub const ALL: [Algo; 3] = [Algo::Blake3, Algo::Sha256, Algo::Md5];

    /// The name the CLI takes.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Blake3 => "blake3",
            Algo::Sha256 => "sha256",
            Algo::Md5 => "md5",
        }
    }

    /// The digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algo::Blake3 | Algo::Sha256 => 32,
            Algo::Md5 => 16,
        }
    }

    /// The byte that names the algorithm on the wire.
    pub fn code(self) -> u8 {
        match self {
            Algo::Blake3 => 1,
            Algo::Sha256 => 2,
            Algo::Md5 => 3,
        }
    }

    /// The algorithm a wire byte names.
    pub fn from_code(code: u8) -> Option<Algo> {
        Algo::ALL.into_iter().find(|a| a.code() == code)
    }

    /// A fresh incremental hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            Algo::Blake3 => Hasher::Blake3(Box::default()),
            Algo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algo::Md5 => Hasher::Md5(md5::Md5::new()),
        }
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algo {
    type Err = String;

    fn from_str(s: &str) -> Result<Algo, String> {
        Algo::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| format!("unknown checksum {s:?} (expected blake3, sha256 or md5)"))
    }
}

/// An incremental hasher for one [`Algo`] (`hashlib.md5().update()`, for all three).
#[derive(Clone)]
pub enum Hasher {
    /// BLAKE3 (boxed: its state is 1.9 KiB).
    Blake3(Box<blake3::Hasher>),
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// MD5.
    Md5(md5::Md5),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hasher::Blake3(_) => "Hasher(blake3)",
            Hasher::Sha256(_) => "Hasher(sha256)",
            Hasher::Md5(_) => "Hasher(md5)",
        })
    }
}

impl Hasher {
    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Blake3(h) => {
                h.update(data);
            }
            Hasher::Sha256(h) => h.update(data),
            Hasher::Md5(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finalize(self) -> Vec<u8> {
        match self {
            Hasher::Blake3(h) => h.finalize().as_bytes().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Md5(h) => h.finalize().to_vec(),
        }
    }
}

/// Lower-case hex, as the `*sum` tools print digests.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// One line of `sha256sum` / `md5sum` / `b3sum` output for `path` (text mode, two spaces).
/// Like those tools, a name holding `\` or a newline is escaped and the line starts with
/// `\`, so `sha256sum -c` reads it back. Bytes, not text: Unix names need not be UTF-8.
pub fn sum_line(digest: &[u8], path: &RelPath) -> Vec<u8> {
    let name = path.as_bytes();
    let escape = name.iter().any(|&b| b == b'\\' || b == b'\n' || b == b'\r');
    let mut line = Vec::with_capacity(digest.len() * 2 + name.len() + 4);
    if escape {
        line.push(b'\\');
    }
    line.extend_from_slice(hex(digest).as_bytes());
    line.extend_from_slice(b"  ");
    for &b in name {
        match b {
            b'\\' if escape => line.extend_from_slice(b"\\\\"),
            b'\n' if escape => line.extend_from_slice(b"\\n"),
            b'\r' if escape => line.extend_from_slice(b"\\r"),
            _ => line.push(b),
        }
    }
    line.push(b'\n');
    line
}
