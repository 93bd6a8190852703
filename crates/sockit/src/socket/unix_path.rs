//! The file a Unix socket lives at: a stale one (its server died) is cleared before
//! binding, and the one bound is removed when its owner goes away, if it is still there.

use std::io;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Removes a Unix socket file when the server that bound it goes away, but only while
/// the path still names that socket: whatever replaced it since (a regular file, another
/// server's socket) belongs to someone else and stays.
#[derive(Debug)]
pub(crate) struct UnixPathGuard {
    /// The path bound, removed on drop.
    path: PathBuf,
    /// The socket file as bound: how drop tells "still ours" from "replaced" (a path
    /// alone cannot).
    id: FileId,
}

impl UnixPathGuard {
    /// Guards the socket file just bound at `path`, recording which file it is.
    pub(crate) fn new(path: PathBuf) -> io::Result<UnixPathGuard> {
        let id = file_id(&path)?;
        Ok(UnixPathGuard { path, id })
    }
}

/// Which file a path names: device and inode, and the inode's change time. The inode
/// number alone is not enough: a file made right after the socket file was removed often
/// gets the freed number back, and would pass for the socket. (Its type would tell a
/// regular file apart too; the change time also tells another socket apart.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    /// Device and inode number.
    inode: (u64, u64),
    /// When the inode last changed (seconds, nanoseconds): set when the file is made.
    changed: (i64, i64),
    /// Whether it is a socket at all.
    socket: bool,
}

/// What `path` names (not following a symlink).
fn file_id(path: &Path) -> io::Result<FileId> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::symlink_metadata(path)?;
    Ok(FileId {
        inode: (meta.dev(), meta.ino()),
        changed: (meta.ctime(), meta.ctime_nsec()),
        socket: meta.file_type().is_socket(),
    })
}

impl Drop for UnixPathGuard {
    fn drop(&mut self) {
        // A check then a removal: a replacement in between would still be removed, a
        // window no path-based API closes; it is microseconds wide instead of a lifetime.
        if file_id(&self.path).is_ok_and(|id| id == self.id && id.socket) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A socket file left by a server that died is removed; one still in use is an error.
pub(crate) fn clear_stale_socket(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let in_use = || {
        Error::io(
            format!("bind unix:{}", path.display()),
            io::ErrorKind::AddrInUse.into(),
        )
    };
    if !meta.file_type().is_socket() {
        return Err(in_use());
    }
    let alive = UnixStream::connect(path).is_ok()
        || UnixDatagram::unbound()
            .and_then(|s| s.connect(path))
            .is_ok();
    if alive {
        return Err(in_use());
    }
    std::fs::remove_file(path).map_err(|e| Error::io(format!("remove stale {}", path.display()), e))
}
