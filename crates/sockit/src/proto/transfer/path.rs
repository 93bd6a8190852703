//! The relative paths a sender may name: checked here, before the driver resolves them
//! under DIR one component at a time (no absolute path, no `..`, no empty or `.`
//! component, no NUL, no reserved partial-file name, within Linux's length limits).

use std::fmt;

use super::digest::hex;

/// The longest relative path accepted, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH: usize = 4096;

/// The longest path component accepted, in bytes (Linux `NAME_MAX`).
pub const MAX_NAME: usize = 255;

/// The prefix of the receiver's partial files; reserved, so no sender may name one.
pub const PARTIAL_PREFIX: &str = ".sockit-partial-";

/// Why a relative path is refused. A sender that produces one is broken or hostile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The empty path names DIR itself.
    #[error("empty path")]
    Empty,
    /// A leading `/` would escape DIR.
    #[error("absolute path")]
    Absolute,
    /// NUL cannot be part of a Unix name; it would cut the name short in a system call.
    #[error("NUL byte in path")]
    Nul,
    /// `a//b` or a trailing `/`: not a normalized path.
    #[error("empty path component (\"//\" or trailing \"/\")")]
    EmptyComponent,
    /// `.`: not a normalized path.
    #[error("\".\" component")]
    CurrentDir,
    /// `..` would climb out of DIR.
    #[error("\"..\" component")]
    ParentDir,
    /// Longer than [`MAX_PATH`].
    #[error("path longer than {MAX_PATH} bytes")]
    TooLong,
    /// A component longer than [`MAX_NAME`].
    #[error("path component longer than {MAX_NAME} bytes")]
    NameTooLong,
    /// A component starting with [`PARTIAL_PREFIX`], which names the receiver's own files.
    #[error("names starting with {PARTIAL_PREFIX} are reserved")]
    Reserved,
}

/// A validated relative path: components separated by single `/`, none empty, `.` or
/// `..`, no NUL, not absolute. Safe to resolve under DIR one component at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(Vec<u8>);

impl RelPath {
    /// Validates `bytes` as a relative path.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<RelPath, PathError> {
        let bytes = bytes.into();
        validate(&bytes)?;
        Ok(RelPath(bytes))
    }

    /// The path as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The components, in order; never empty.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/')
    }

    /// The components before the last, and the last.
    pub fn split_last(&self) -> (Vec<&[u8]>, &[u8]) {
        let mut parts: Vec<&[u8]> = self.components().collect();
        let last = parts.pop().unwrap_or_default();
        (parts, last)
    }

    /// `self/name`.
    pub fn join(&self, name: &[u8]) -> Result<RelPath, PathError> {
        let mut bytes = self.0.clone();
        bytes.push(b'/');
        bytes.extend_from_slice(name);
        RelPath::new(bytes)
    }

    /// The deterministic name of this file's partial data for a file of `size` bytes:
    /// the same path and size find the same partial after a crash, a different size
    /// (another version of the file) does not.
    pub fn partial_name(&self, size: u64) -> String {
        let mut h = blake3::Hasher::new();
        h.update(&(self.0.len() as u64).to_be_bytes());
        h.update(&self.0);
        h.update(&size.to_be_bytes());
        format!("{PARTIAL_PREFIX}{}", hex(&h.finalize().as_bytes()[..16]))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

fn validate(bytes: &[u8]) -> Result<(), PathError> {
    if bytes.is_empty() {
        return Err(PathError::Empty);
    }
    if bytes.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    if bytes.contains(&0) {
        return Err(PathError::Nul);
    }
    if bytes[0] == b'/' {
        return Err(PathError::Absolute);
    }
    for part in bytes.split(|&b| b == b'/') {
        match part {
            b"" => return Err(PathError::EmptyComponent),
            b"." => return Err(PathError::CurrentDir),
            b".." => return Err(PathError::ParentDir),
            p if p.len() > MAX_NAME => return Err(PathError::NameTooLong),
            p if p.starts_with(PARTIAL_PREFIX.as_bytes()) => return Err(PathError::Reserved),
            _ => {}
        }
    }
    Ok(())
}

/// Why a symbolic link's target is refused. The receiver skips such a link (it tells the
/// sender why) and goes on: the link is not created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// An empty target names nothing; Linux refuses it too.
    #[error("empty link target")]
    Empty,
    /// Longer than [`MAX_PATH`].
    #[error("link target longer than {MAX_PATH} bytes")]
    TooLong,
    /// NUL cannot be part of a Unix name.
    #[error("NUL byte in link target")]
    Nul,
    /// An absolute target points wherever the receiver's file system says, not into DIR.
    #[error("absolute link target points outside the receiving directory")]
    Absolute,
    /// Resolved from the link's own directory, the target climbs above DIR.
    #[error("link target climbs out of the receiving directory with \"..\"")]
    Escapes,
    /// `..` after a name: the name may itself be a link, and `..` then climbs from wherever
    /// that link leads, which a check of the text alone cannot bound.
    #[error("\"..\" after a name in a link target (it could climb through another link)")]
    ParentAfterName,
}

/// Checks that the symbolic link `link` with target `target` stays inside DIR, resolved
/// from the link's own directory: not absolute, and its leading `..` components climb no
/// higher than DIR. A `..` after a name is refused too: the name could be another link,
/// and the climb would then start from wherever that one leads. Every link a receiver
/// creates passes this check, so following any chain of them from inside DIR goes down
/// (through real directories or more such links) and never out.
pub fn check_link(link: &RelPath, target: &[u8]) -> Result<(), LinkError> {
    if target.is_empty() {
        return Err(LinkError::Empty);
    }
    if target.len() > MAX_PATH {
        return Err(LinkError::TooLong);
    }
    if target.contains(&0) {
        return Err(LinkError::Nul);
    }
    if target[0] == b'/' {
        return Err(LinkError::Absolute);
    }
    // The link's directory is this many levels below DIR.
    let depth = link.components().count() - 1;
    let mut ups = 0usize;
    let mut named = false;
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if named => return Err(LinkError::ParentAfterName),
            b".." => {
                ups += 1;
                if ups > depth {
                    return Err(LinkError::Escapes);
                }
            }
            _ => named = true,
        }
    }
    Ok(())
}
