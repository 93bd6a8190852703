//! The receiver's view of DIR: every path is resolved one component at a time from a
//! descriptor of DIR with `openat`/`mkdirat` and `O_NOFOLLOW`, so no symbolic link, not
//! even one already inside DIR, is ever followed, and nothing is created outside DIR.
//! Names come from a validated [`RelPath`] (no `..`, no `/` tricks); the descriptors make
//! the walk immune to links swapped in while it runs.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use crate::proto::transfer::RelPath;

/// Why a path cannot be used under DIR.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// A component is a symbolic link: refused, never followed.
    #[error("{path}: {component:?} is a symbolic link; refusing to follow it")]
    Symlink {
        /// The relative path asked for.
        path: String,
        /// The offending component.
        component: String,
    },
    /// A component that must be a directory is something else.
    #[error("{path}: {component:?} exists and is not a directory")]
    NotDir {
        /// The relative path asked for.
        path: String,
        /// The offending component.
        component: String,
    },
    /// Any other system-call failure.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, on what.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl FsError {
    /// The OS error, if this is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            FsError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

fn io_err(what: impl Into<String>, e: Errno) -> FsError {
    FsError::Io {
        what: what.into(),
        source: e.into(),
    }
}

/// DIR, held open.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
}

/// What sits at a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Nothing.
    Nothing,
    /// A regular file of this size.
    File(u64),
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A socket, device, FIFO.
    Other,
}

impl Root {
    /// Opens DIR (creating it, and its parents, if missing). DIR itself is the user's
    /// choice, so a link there is followed; everything below it is not.
    pub fn open(dir: &Path) -> io::Result<Root> {
        std::fs::create_dir_all(dir)?;
        let fd = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd })
    }

    /// The directory made of `components` (all of them), creating missing ones with
    /// `mode` (the umask applies).
    pub(crate) fn dir(
        &self,
        path: &RelPath,
        components: &[&[u8]],
        mode: u32,
    ) -> Result<OwnedFd, FsError> {
        self.make_dir(path, components, mode).map(|(fd, _)| fd)
    }

    /// Like [`Root::dir`], and says whether the last component was made by this call: only
    /// a directory the transfer made may take the sender's mode, never one that was there.
    pub(crate) fn make_dir(
        &self,
        path: &RelPath,
        components: &[&[u8]],
        mode: u32,
    ) -> Result<(OwnedFd, bool), FsError> {
        let mut cur = self.fd.try_clone().map_err(|e| FsError::Io {
            what: "dup DIR".into(),
            source: e,
        })?;
        let mut made = false;
        for comp in components {
            (cur, made) = step(cur.as_fd(), path, comp, mode)?;
        }
        Ok((cur, made))
    }
}

/// Opens (creating if needed) the directory `name` in `parent`, without following links;
/// `true` if this call made it.
fn step(
    parent: BorrowedFd<'_>,
    path: &RelPath,
    name: &[u8],
    mode: u32,
) -> Result<(OwnedFd, bool), FsError> {
    let component = || String::from_utf8_lossy(name).into_owned();
    let mut made = false;
    for _ in 0..3 {
        match open_dir_at(parent, name) {
            Ok(fd) => return Ok((fd, made)),
            Err(Errno::NOENT) => match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(mode))
            {
                Ok(()) => made = true,
                // Lost a race with another sender making the same directory: open it.
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(io_err(format!("mkdir {path}"), e)),
            },
            Err(Errno::LOOP) => {
                return Err(FsError::Symlink {
                    path: path.to_string(),
                    component: component(),
                });
            }
            Err(Errno::NOTDIR) => {
                // O_DIRECTORY|O_NOFOLLOW on a link may say ENOTDIR: tell which it was.
                return Err(match lookup(parent, name) {
                    Ok(Found::Symlink) => FsError::Symlink {
                        path: path.to_string(),
                        component: component(),
                    },
                    _ => FsError::NotDir {
                        path: path.to_string(),
                        component: component(),
                    },
                });
            }
            Err(e) => return Err(io_err(format!("open directory {path}"), e)),
        }
    }
    Err(io_err(format!("open directory {path}"), Errno::NOENT))
}

fn open_dir_at(parent: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// What is at `name` in `dir`, without following a link.
pub(crate) fn lookup(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Found, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Found::File(st.st_size as u64),
            FileType::Directory => Found::Dir,
            FileType::Symlink => Found::Symlink,
            _ => Found::Other,
        }),
        Err(Errno::NOENT) => Ok(Found::Nothing),
        Err(e) => Err(e),
    }
}

/// Opens (creating) the partial file `name` in `dir` for reading and writing; never
/// through a link.
pub(crate) fn open_partial(dir: BorrowedFd<'_>, name: &str) -> Result<File, Errno> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// Opens an existing regular file `name` in `dir` for reading; never through a link.
pub(crate) fn open_existing(dir: BorrowedFd<'_>, name: &[u8]) -> Result<File, Errno> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// The target of the symbolic link `name` in `dir`.
pub(crate) fn read_link(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Vec<u8>, Errno> {
    Ok(rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes())
}

/// Creates the symbolic link `name` → `target` in `dir` (the link is made, never
/// followed). `replace`: whatever is at `name` (a link or file, not a directory) is
/// replaced atomically, through a link made at `scratch` and renamed over it; otherwise
/// an existing `name` fails with `EEXIST`.
pub(crate) fn make_link(
    dir: BorrowedFd<'_>,
    name: &[u8],
    target: &[u8],
    replace: bool,
    scratch: &str,
) -> Result<(), Errno> {
    if !replace {
        return rustix::fs::symlinkat(target, dir, name);
    }
    remove(dir, scratch);
    rustix::fs::symlinkat(target, dir, scratch)?;
    let renamed = rustix::fs::renameat(dir, scratch, dir, name);
    if renamed.is_err() {
        remove(dir, scratch);
    }
    renamed
}

/// Takes an exclusive lock on a partial file, so two senders of the same file cannot
/// write it at once. The lock goes with the descriptor (and with a killed process).
pub(crate) fn try_lock(file: &File) -> Result<bool, Errno> {
    match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes the lock like [`try_lock`], but waits up to `patience` for its holder to let go
/// (checking every few milliseconds). `Ok(false)`: still held after that.
pub(crate) fn lock_within(file: &File, patience: std::time::Duration) -> Result<bool, Errno> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        if try_lock(file)? {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Moves `from` to `to` within `dir`. `replace` false: fails with `EEXIST` if `to`
/// exists (atomically where the file system has `RENAME_NOREPLACE`).
pub(crate) fn rename(
    dir: BorrowedFd<'_>,
    from: &str,
    to: &[u8],
    replace: bool,
) -> Result<(), Errno> {
    if replace {
        return rustix::fs::renameat(dir, from, dir, to);
    }
    match rustix::fs::renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL | Errno::NOSYS) => {
            // No RENAME_NOREPLACE here: check, then rename (a small race, no worse).
            if lookup(dir, to)? != Found::Nothing {
                return Err(Errno::EXIST);
            }
            rustix::fs::renameat(dir, from, dir, to)
        }
        other => other,
    }
}

/// Removes the file `name` in `dir`, ignoring a missing one.
pub(crate) fn remove(dir: BorrowedFd<'_>, name: &str) {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => tracing::warn!(name, error = %e, "cannot remove partial file"),
    }
}

/// Sets permission bits (`mode & 0o777`: set-id and sticky bits are not taken from a peer).
pub(crate) fn chmod(fd: impl AsFd, mode: u32) -> Result<(), Errno> {
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode & 0o777))
}

/// Starts writing bytes `[offset, offset + len)` of `file` to the disk without waiting
/// for them: the final `fsync` then finds little left to do, so the disk works while the
/// network does instead of after it. Advisory: errors surface at the `fsync`.
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range takes no pointers; any descriptor and range is memory-safe
    // (a bad one is an error code, which is ignored: the fsync that follows reports).
    let _ = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
}

/// Flushes a file or directory to stable storage.
pub(crate) fn sync(fd: impl AsFd) -> Result<(), Errno> {
    rustix::fs::fsync(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("sockit-fs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn links_inside_dir_are_never_followed() {
        let base = tmp("links");
        let outside = base.join("outside");
        let dir = base.join("dir");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("evil")).unwrap();
        std::fs::write(dir.join("file"), b"x").unwrap();
        let root = Root::open(&dir).unwrap();

        let p = RelPath::new("evil/x").unwrap();
        let (parents, _) = p.split_last();
        assert!(matches!(
            root.dir(&p, &parents, 0o755),
            Err(FsError::Symlink { .. })
        ));
        let p = RelPath::new("file/x").unwrap();
        let (parents, _) = p.split_last();
        assert!(matches!(
            root.dir(&p, &parents, 0o755),
            Err(FsError::NotDir { .. })
        ));
        let p = RelPath::new("a/b/c").unwrap();
        let (parents, _) = p.split_last();
        let fd = root.dir(&p, &parents, 0o755).unwrap();
        assert!(dir.join("a/b").is_dir());
        assert_eq!(lookup(fd.as_fd(), b"c"), Ok(Found::Nothing));
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());

        // A link as the last component is not opened either.
        let rootfd = root.dir(&p, &[], 0o755).unwrap();
        assert_eq!(lookup(rootfd.as_fd(), b"evil"), Ok(Found::Symlink));
        assert_eq!(
            open_existing(rootfd.as_fd(), b"evil").unwrap_err(),
            Errno::LOOP
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn no_replace_rename_refuses_an_existing_name() {
        let base = tmp("rename");
        let root = Root::open(&base).unwrap();
        let d = root.dir(&RelPath::new("x").unwrap(), &[], 0o755).unwrap();
        std::fs::write(base.join("from"), b"new").unwrap();
        std::fs::write(base.join("to"), b"old").unwrap();
        assert_eq!(rename(d.as_fd(), "from", b"to", false), Err(Errno::EXIST));
        rename(d.as_fd(), "from", b"to", true).unwrap();
        assert_eq!(std::fs::read(base.join("to")).unwrap(), b"new");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
