//! The sending driver: walks the files and folders to send ([`plan`]: symbolic links
//! inside folders carried as links or followed, special files left out and named), then
//! runs the protocol over one connection ([`send`]). File bytes go with `sendfile` (page cache to
//! socket, never through user space), or over TLS read and encrypted in large chunks;
//! meanwhile a hashing thread reads the whole file for
//! the digest, so a resumed file is still verified end to end.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;

use super::hash::{CHUNK, HashPipe};
use super::{TransferError, WireReader};
use crate::frame::{FrameError, LengthCodec};
use crate::proto::transfer::{
    self as proto, Algo, Header, Kind, Link, Message, Origin, RelPath, VERSION,
};
use crate::socket::Stream;
use crate::socket::Wire;

/// Bytes handed to one `sendfile` call: progress is reported between calls.
const SENDFILE_CHUNK: usize = 8 << 20;

/// Bytes read from a file and handed to TLS at a time: large enough that system calls and
/// record overhead stay small, small enough that progress is reported often.
const TLS_CHUNK: usize = 256 << 10;

/// One directory, file or symbolic link to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where it is here.
    pub source: PathBuf,
    /// Where it goes, relative to the receiver's DIR.
    pub path: RelPath,
    /// What it is, and for a link what it points to.
    pub kind: EntryKind,
}

/// What an [`Entry`] is: it decides the message that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory: created on the receiver, contents follow as entries of their own.
    Dir,
    /// A regular file: bytes and digest.
    File,
    /// A symbolic link carried as a link: the receiver creates it if its target stays
    /// inside DIR.
    Link {
        /// The target as `readlink` gave it.
        target: Vec<u8>,
    },
}

/// What [`plan`] does with symbolic links inside folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Links {
    /// Send them as links (like `rsync -l` or `tar`).
    #[default]
    Carry,
    /// Send what they point to instead (like `rsync -L`); dangling links and loops are
    /// left out.
    Follow,
}

/// Something [`plan`] left out, and why: the caller names it to the user and counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    /// The local path left out, to find it here.
    pub source: PathBuf,
    /// Where it would have gone on the receiver, to name it in a summary.
    pub path: RelPath,
    /// Why, in a few words.
    pub reason: String,
}

/// Something the sender did, for the caller to show.
#[derive(Debug)]
pub enum SendEvent<'a> {
    /// A file starts: the receiver wants it from `offset` on.
    Start {
        /// The file.
        path: &'a RelPath,
        /// Its size.
        size: u64,
        /// The receiver has the bytes before this.
        offset: u64,
        /// Why it has them.
        origin: Origin,
    },
    /// More bytes of the current file are on their way.
    Progress(u64),
    /// The receiver verified the file.
    Verified {
        /// The file.
        path: &'a RelPath,
        /// The digest both sides computed.
        digest: &'a [u8],
        /// The algorithm.
        algo: Algo,
    },
    /// The receiver skipped the file or link.
    Skipped {
        /// The file or link.
        path: &'a RelPath,
        /// The receiver's words.
        reason: &'a str,
    },
}

/// What a finished transfer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Files verified by the receiver.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symbolic links the receiver created (or already had).
    pub links: u64,
    /// Files and links skipped by the receiver.
    pub skipped: u64,
    /// Files the receiver already had, identical.
    pub unchanged: u64,
    /// File bytes sent.
    pub sent: u64,
    /// File bytes the receiver had from an earlier, broken transfer.
    pub resumed: u64,
}

/// The entries for `sources`: a file goes by its name, a folder by its name with
/// everything under it (directories before their contents, names sorted). `rename`
/// replaces the name of a single source. Symbolic links given as sources are followed;
/// links inside folders are carried or followed as `links` says. What cannot be sent
/// (sockets, FIFOs, devices; with [`Links::Follow`], dangling links and loops) is left
/// out and handed to `left`.
pub fn plan(
    sources: &[PathBuf],
    rename: Option<&RelPath>,
    links: Links,
    left: &mut dyn FnMut(Left),
) -> Result<Vec<Entry>, TransferError> {
    if rename.is_some() && sources.len() != 1 {
        return Err(TransferError::Source(
            "--as renames one source; give exactly one PATH".into(),
        ));
    }
    let mut entries = Vec::new();
    for source in sources {
        let meta = std::fs::metadata(source).map_err(|e| TransferError::Io {
            what: source.display().to_string(),
            source: e,
        })?;
        let path = match rename {
            Some(name) => name.clone(),
            None => base_name(source)?,
        };
        if meta.is_dir() {
            entries.push(Entry {
                source: source.clone(),
                path: path.clone(),
                kind: EntryKind::Dir,
            });
            let mut walk = Walk {
                entries: &mut entries,
                links,
                left,
                ancestors: vec![(meta.dev(), meta.ino())],
            };
            walk.dir(source, &path)?;
        } else if meta.is_file() {
            entries.push(Entry {
                source: source.clone(),
                path,
                kind: EntryKind::File,
            });
        } else {
            return Err(TransferError::Source(format!(
                "{}: not a regular file or directory",
                source.display()
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for e in &entries {
        if !seen.insert(&e.path) {
            return Err(TransferError::Source(format!(
                "two sources would both arrive as {}",
                e.path
            )));
        }
    }
    Ok(entries)
}

fn base_name(source: &Path) -> Result<RelPath, TransferError> {
    // `.` or `dir/..` have no name of their own: use the directory's real name.
    let resolved;
    let name = match source.file_name() {
        Some(n) => n,
        None => {
            resolved = source.canonicalize().map_err(|e| TransferError::Io {
                what: source.display().to_string(),
                source: e,
            })?;
            resolved.file_name().ok_or_else(|| {
                TransferError::Source(format!("{}: has no name to send it by", source.display()))
            })?
        }
    };
    RelPath::new(name.as_bytes()).map_err(|e| {
        TransferError::Source(format!(
            "{}: cannot be sent by this name: {e}",
            source.display()
        ))
    })
}

/// One folder walk of [`plan`].
struct Walk<'a> {
    entries: &'a mut Vec<Entry>,
    links: Links,
    left: &'a mut dyn FnMut(Left),
    /// Device and inode of the directories from the source down to the current one: a
    /// followed link to one of them is a loop.
    ancestors: Vec<(u64, u64)>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, rel: &RelPath) -> Result<(), TransferError> {
        let io_err = |what: &Path, e| TransferError::Io {
            what: what.display().to_string(),
            source: e,
        };
        let mut children = Vec::new();
        for child in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            children.push(child.map_err(|e| io_err(dir, e))?);
        }
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let source = child.path();
            let path = rel.join(child.file_name().as_bytes()).map_err(|e| {
                TransferError::Source(format!(
                    "{}: cannot be sent by this name: {e}",
                    source.display()
                ))
            })?;
            let meta = std::fs::symlink_metadata(&source).map_err(|e| io_err(&source, e))?;
            if meta.file_type().is_symlink() {
                match self.links {
                    Links::Carry => {
                        let target = std::fs::read_link(&source).map_err(|e| io_err(&source, e))?;
                        self.entries.push(Entry {
                            source,
                            path,
                            kind: EntryKind::Link {
                                target: target.into_os_string().into_vec(),
                            },
                        });
                        continue;
                    }
                    Links::Follow => match std::fs::metadata(&source) {
                        Ok(meta) => self.add(source, path, &meta)?,
                        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                            self.leave(source, path, "symbolic link loop".into())
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            self.leave(source, path, "dangling symbolic link".into())
                        }
                        Err(e) => return Err(io_err(&source, e)),
                    },
                }
            } else {
                self.add(source, path, &meta)?;
            }
        }
        Ok(())
    }

    /// Adds what `meta` (not a link) describes, or leaves it out.
    fn add(
        &mut self,
        source: PathBuf,
        path: RelPath,
        meta: &std::fs::Metadata,
    ) -> Result<(), TransferError> {
        use std::os::unix::fs::FileTypeExt;
        let ty = meta.file_type();
        if ty.is_dir() {
            let id = (meta.dev(), meta.ino());
            if self.ancestors.contains(&id) {
                self.leave(
                    source,
                    path,
                    "symbolic link loop (leads back to a folder being sent)".into(),
                );
                return Ok(());
            }
            self.entries.push(Entry {
                source: source.clone(),
                path: path.clone(),
                kind: EntryKind::Dir,
            });
            self.ancestors.push(id);
            let result = self.dir(&source, &path);
            self.ancestors.pop();
            result
        } else if ty.is_file() {
            self.entries.push(Entry {
                source,
                path,
                kind: EntryKind::File,
            });
            Ok(())
        } else {
            let what = if ty.is_socket() {
                "socket"
            } else if ty.is_fifo() {
                "FIFO"
            } else if ty.is_block_device() || ty.is_char_device() {
                "device"
            } else {
                "special file"
            };
            self.leave(
                source,
                path,
                format!("{what}: not a regular file or folder"),
            );
            Ok(())
        }
    }

    fn leave(&mut self, source: PathBuf, path: RelPath, reason: String) {
        (self.left)(Left {
            source,
            path,
            reason,
        });
    }
}

/// Sends `entries` over `stream` (a [`Stream`], or a [`crate::socket::tls::TlsStream`]
/// with its handshake done) with digests of `algo`, file by file, waiting for the
/// receiver to verify each. Fails at the first refusal: the receiver closes then.
pub fn send(
    stream: impl Into<Wire>,
    entries: &[Entry],
    algo: Algo,
    events: &mut dyn FnMut(SendEvent<'_>),
) -> Result<SendReport, TransferError> {
    let mut conn = Conn {
        stream: stream.into(),
        buf: BytesMut::with_capacity(1024),
        codec: proto::codec(),
    };
    let mut report = SendReport::default();
    conn.send(&Message::Hello { version: VERSION })?;
    match conn.recv()? {
        Message::Hello { version: VERSION } => {}
        Message::Hello { version } => {
            return Err(TransferError::Refused(format!(
                "the receiver speaks protocol version {version}, this sender {VERSION}"
            )));
        }
        other => return Err(unexpected(other)),
    }
    let pipe = HashPipe::new().map_err(|e| TransferError::Io {
        what: "start hashing thread".into(),
        source: e,
    })?;
    for entry in entries {
        match &entry.kind {
            EntryKind::Dir => {
                let meta = std::fs::metadata(&entry.source).map_err(|e| TransferError::Io {
                    what: entry.source.display().to_string(),
                    source: e,
                })?;
                conn.send(&Message::Header(Header {
                    kind: Kind::Dir,
                    algo,
                    mode: meta.mode() & 0o7777,
                    size: 0,
                    path: entry.path.clone(),
                }))?;
                match conn.recv()? {
                    Message::Ack(_) => report.dirs += 1,
                    other => return Err(unexpected(other)),
                }
            }
            EntryKind::File => send_file(&mut conn, &pipe, entry, algo, &mut report, events)?,
            EntryKind::Link { target } => {
                conn.send(&Message::Link(Link {
                    path: entry.path.clone(),
                    target: target.clone(),
                }))?;
                match conn.recv()? {
                    Message::Ack(_) => report.links += 1,
                    Message::Skip { reason } => {
                        report.skipped += 1;
                        events(SendEvent::Skipped {
                            path: &entry.path,
                            reason: &reason,
                        });
                    }
                    other => return Err(unexpected(other)),
                }
            }
        }
    }
    conn.send(&Message::End)?;
    match conn.recv()? {
        Message::End => {
            conn.stream.close_notify();
            Ok(report)
        }
        other => Err(unexpected(other)),
    }
}

fn send_file(
    conn: &mut Conn,
    pipe: &HashPipe,
    entry: &Entry,
    algo: Algo,
    report: &mut SendReport,
    events: &mut dyn FnMut(SendEvent<'_>),
) -> Result<(), TransferError> {
    let source_err = |e| TransferError::Io {
        what: entry.source.display().to_string(),
        source: e,
    };
    let file = Arc::new(File::open(&entry.source).map_err(source_err)?);
    let meta = file.metadata().map_err(source_err)?;
    let size = meta.len();
    conn.send(&Message::Header(Header {
        kind: Kind::File,
        algo,
        mode: meta.mode() & 0o7777,
        size,
        path: entry.path.clone(),
    }))?;
    let (offset, origin) = match conn.recv()? {
        Message::Offer { offset, origin } if offset <= size => (offset, origin),
        Message::Offer { offset, .. } => {
            return Err(TransferError::Refused(format!(
                "the receiver asked for {} from byte {offset}, past its end",
                entry.path
            )));
        }
        Message::Skip { reason } => {
            report.skipped += 1;
            events(SendEvent::Skipped {
                path: &entry.path,
                reason: &reason,
            });
            return Ok(());
        }
        other => return Err(unexpected(other)),
    };
    events(SendEvent::Start {
        path: &entry.path,
        size,
        offset,
        origin,
    });
    // The digest covers the whole file, the part the receiver already has included.
    pipe.begin(algo);
    pipe.file(file.clone(), size);
    let copied = match &mut conn.stream {
        Wire::Plain(stream) => copy_to_socket(&file, stream, offset, size, events),
        // sendfile cannot encrypt: the bytes go through TLS in user space.
        wire @ Wire::Tls(_) => copy_by_reads(&file, wire, TLS_CHUNK, offset, size, events),
    };
    if let Err(e) = copied {
        return Err(conn.why_closed(TransferError::Io {
            what: format!("send {}", entry.source.display()),
            source: e,
        }));
    }
    let digest = pipe.finish().map_err(source_err)?;
    if let Err(e) = conn.send(&Message::Digest(digest.clone())) {
        return Err(conn.why_closed(e));
    }
    match conn.recv()? {
        Message::Ack(_) => {}
        other => return Err(unexpected(other)),
    }
    report.files += 1;
    report.sent += size - offset;
    match origin {
        Origin::Existing => report.unchanged += 1,
        Origin::Partial => report.resumed += offset,
        Origin::Fresh => {}
    }
    events(SendEvent::Verified {
        path: &entry.path,
        digest: &digest,
        algo,
    });
    Ok(())
}

/// Sends bytes `[offset, size)` of `file`: `sendfile`, or read/write where the kernel
/// cannot (some file systems).
fn copy_to_socket(
    file: &File,
    stream: &Stream,
    offset: u64,
    size: u64,
    events: &mut dyn FnMut(SendEvent<'_>),
) -> io::Result<()> {
    let mut pos = offset;
    while pos < size {
        let want = SENDFILE_CHUNK.min(usize::try_from(size - pos).unwrap_or(usize::MAX));
        let mut at = pos;
        match rustix::fs::sendfile(stream.as_fd(), file.as_fd(), Some(&mut at), want) {
            Ok(0) => return Err(shrank(pos)),
            Ok(n) => {
                pos += n as u64;
                events(SendEvent::Progress(n as u64));
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) if pos == offset => {
                return copy_by_reads(file, &mut &*stream, CHUNK, pos, size, events);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Sends bytes `[pos, size)` of `file` by reading `chunk` bytes at a time into user space.
fn copy_by_reads(
    file: &File,
    stream: &mut impl Write,
    chunk: usize,
    mut pos: u64,
    size: u64,
    events: &mut dyn FnMut(SendEvent<'_>),
) -> io::Result<()> {
    let mut buf = vec![0u8; chunk];
    while pos < size {
        let want = buf
            .len()
            .min(usize::try_from(size - pos).unwrap_or(usize::MAX));
        let n = match file.read_at(&mut buf[..want], pos) {
            Ok(0) => return Err(shrank(pos)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buf[..n])?;
        pos += n as u64;
        events(SendEvent::Progress(n as u64));
    }
    Ok(())
}

fn shrank(pos: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("file shrank to {pos} bytes while being sent"),
    )
}

fn unexpected(msg: Message) -> TransferError {
    match msg {
        Message::Error(reason) => TransferError::Refused(format!("receiver: {reason}")),
        other => TransferError::Refused(format!("unexpected reply from the receiver: {other:?}")),
    }
}

struct Conn {
    stream: Wire,
    buf: BytesMut,
    codec: LengthCodec,
}

impl Conn {
    fn send(&mut self, msg: &Message) -> Result<(), TransferError> {
        self.stream
            .write_all(&msg.to_frame())
            .map_err(|e| TransferError::Io {
                what: "send to the receiver".into(),
                source: e,
            })
    }

    /// After a failed send: the receiver may have refused the file (a full disk, say) and
    /// closed, and its `!` may still be waiting to be read. That reason beats `err`.
    fn why_closed(&mut self, err: TransferError) -> TransferError {
        if self
            .stream
            .socket()
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .is_err()
        {
            return err;
        }
        match self.recv() {
            Ok(Message::Error(reason)) => TransferError::Refused(format!("receiver: {reason}")),
            _ => err,
        }
    }

    fn recv(&mut self) -> Result<Message, TransferError> {
        match self
            .codec
            .read_frame(&mut WireReader(&mut self.stream), &mut self.buf)
        {
            Ok(Some(frame)) => Ok(Message::decode(&frame)?),
            Ok(None) | Err(FrameError::Truncated { .. }) => Err(TransferError::Refused(
                "the receiver closed the connection".into(),
            )),
            Err(FrameError::Io(e)) => Err(TransferError::Io {
                what: "receive from the receiver".into(),
                source: e,
            }),
            Err(FrameError::TooLong { len, .. }) if looks_like_tls(len) => {
                Err(TransferError::Refused(
                    "the receiver answered in TLS: send to its tls:// address".into(),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether a frame's 4-byte length is really the start of a TLS record (an alert or a
/// handshake message, version 3.x): what a plain sender reads from `recv tls://`, which
/// deserves a hint rather than "frame too long".
fn looks_like_tls(len: u64) -> bool {
    let [_, _, _, _, kind, major, _, _] = len.to_be_bytes();
    matches!(kind, 0x15 | 0x16) && major == 0x03
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_record_header_read_as_a_length_is_recognised() {
        // An alert record (TLS 1.2 framing), as rustls answers plain text.
        assert!(looks_like_tls(u64::from(u32::from_be_bytes([
            0x15, 3, 3, 0
        ]))));
        assert!(looks_like_tls(u64::from(u32::from_be_bytes([
            0x16, 3, 1, 2
        ]))));
        assert!(!looks_like_tls(1 << 20));
        assert!(!looks_like_tls(u64::from(u32::from_be_bytes([
            0x15, 4, 3, 0
        ]))));
    }
}
