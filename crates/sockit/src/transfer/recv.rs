//! The receiving driver: one session per connection (a thread each, through
//! [`crate::server::StreamService`]), driven by the sans-IO [`proto::Receiver`]. Each file
//! goes to a partial file beside its final name, is hashed as it arrives (the prefix of a
//! resumed file is re-read and hashed too, so the digest always covers the whole file),
//! and only a verified file is fsynced and renamed into place. With TLS
//! ([`Receiver::with_tls`]) each connection's handshake comes first, held to the header
//! timeout; the session is the same over it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use rustix::io::Errno;

use super::fs::{self, Found, FsError, Root};
use super::hash::HashPipe;
use super::{TransferError, read_wire};
use crate::frame::{FrameError, LengthCodec};
use crate::proto::transfer::{
    self as proto, Close, Event, Header, Link, Message, Origin, ProtocolError, RelPath, Want,
};
use crate::server::{HeadClock, StreamService};
use crate::socket::Wire;
use crate::socket::tls::{HANDSHAKE_TIMEOUT, ServerTls, TlsStream};
use crate::socket::{Peer, Stream};

/// How long a partial file locked by another session is waited for before the sender is
/// refused. A sender killed mid-file leaves a session that goes on for a moment (reading
/// what its socket still holds, until the end of the stream); a resend right after must
/// resume, not be told that someone else is sending. A sender that really is sending the
/// same file holds it longer and is still refused.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Received bytes handed to the disk at a time (see [`fs::start_writeback`]).
const WRITEBACK: u64 = 16 << 20;

/// What to do when a file's name is already taken in DIR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existing {
    /// Keep it. A file of the same size is hashed: if the digest matches, it counts as
    /// received (so a resent folder continues where it broke); otherwise the file is
    /// refused.
    #[default]
    Keep,
    /// Replace it (atomically, by rename).
    Overwrite,
    /// Tell the sender to skip it.
    Skip,
}

/// Something a session did, for the caller to print.
#[derive(Debug)]
pub enum RecvEvent<'a> {
    /// A file is verified and in place (or was already, unchanged).
    Verified {
        /// Who sent it.
        peer: &'a Peer,
        /// Where, relative to DIR.
        path: &'a RelPath,
        /// Its header.
        header: &'a Header,
        /// Its digest.
        digest: &'a [u8],
        /// Bytes that were already there from an earlier transfer.
        resumed: u64,
        /// Whether an identical file was already in place.
        unchanged: bool,
    },
    /// A file was skipped (`--skip-existing`).
    Skipped {
        /// Who offered it.
        peer: &'a Peer,
        /// Where it would have gone.
        path: &'a RelPath,
    },
    /// A symbolic link is in place (or the same link already was).
    Link {
        /// Who sent it.
        peer: &'a Peer,
        /// Where, relative to DIR.
        path: &'a RelPath,
        /// What it points to (sender-controlled bytes: escape before printing).
        target: &'a [u8],
        /// Whether the same link was already there.
        unchanged: bool,
    },
    /// A symbolic link was refused and not created: its target would lead out of DIR.
    LinkRefused {
        /// Who sent it.
        peer: &'a Peer,
        /// Where it would have gone.
        path: &'a RelPath,
        /// What it points to (sender-controlled bytes: escape before printing).
        target: &'a [u8],
        /// Why it was refused.
        reason: &'a str,
    },
    /// A connection failed the TLS handshake (plain text, garbage, an untrusting client,
    /// silence past the header timeout): it is closed, and no session began.
    Handshake {
        /// Who it was.
        peer: &'a Peer,
        /// Why, in one sentence.
        reason: &'a str,
    },
    /// A session ended.
    Ended {
        /// Who it was.
        peer: &'a Peer,
        /// What it brought, so the user sees what was left out as well as what arrived.
        tally: &'a Tally,
        /// `Ok` with how it closed, or the error that ended it.
        result: &'a Result<Close, TransferError>,
    },
}

/// What one session brought in, counted for its end-of-session line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Files verified and in place.
    pub files: u64,
    /// Symbolic links in place.
    pub links: u64,
    /// Files and links skipped: `--skip-existing`, or links refused for leading out of DIR.
    pub skipped: u64,
}

/// The receiver: serves senders into one directory.
pub struct Receiver {
    /// The directory everything goes into, and never out of.
    root: Root,
    /// What to do with names already taken.
    existing: Existing,
    /// Where files and sessions are reported, for the caller to print.
    events: Box<dyn Fn(RecvEvent<'_>) + Send + Sync>,
    /// The identity to accept TLS with, when senders must speak TLS (`tls://`).
    tls: Option<ServerTls>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("root", &self.root)
            .field("existing", &self.existing)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver writing under `root`; `events` hears about every file and session (from
    /// the sessions' threads).
    pub fn new(
        root: Root,
        existing: Existing,
        events: impl Fn(RecvEvent<'_>) + Send + Sync + 'static,
    ) -> Receiver {
        Receiver {
            root,
            existing,
            events: Box::new(events),
            tls: None,
        }
    }

    /// Senders must speak TLS: each connection is accepted with `tls` (handshake within
    /// the header timeout) before its session; one that does not is closed on its own.
    pub fn with_tls(mut self, tls: ServerTls) -> Receiver {
        self.tls = Some(tls);
        self
    }

    /// Runs one session on `stream` to its end, with what it brought in; every control
    /// frame (the hello, each file's header, digests) must complete within `heads`' header
    /// timeout of its first byte, while file contents keep to the idle timeout alone.
    pub fn session(
        &self,
        stream: impl Into<Wire>,
        peer: &Peer,
        heads: HeadClock,
    ) -> (Result<Close, TransferError>, Tally) {
        let mut s = Session {
            rx: self,
            peer,
            conn: Conn::new(stream.into(), heads),
            sm: proto::Receiver::new(),
            pipe: None,
            file: None,
            dirs: Vec::new(),
            tally: Tally::default(),
        };
        let result = s.run();
        if let Ok(Close::Complete) = result {
            s.conn.stream.close_notify();
        }
        if let Err(e) = &result {
            // Tell the sender why, if the connection still works; a failed step already did.
            if !matches!(e, TransferError::Refused(_)) {
                let _ = s.conn.send(&Message::Error(e.to_string()));
            }
        }
        (result, s.tally)
    }
}

impl StreamService for Receiver {
    fn handle(&self, stream: Stream, peer: &Peer, heads: HeadClock) {
        let wire = match &self.tls {
            None => Wire::Plain(stream),
            Some(tls) => match accept(stream, tls, &heads) {
                Ok(tls) => Wire::from(tls),
                Err(e) => {
                    (self.events)(RecvEvent::Handshake {
                        peer,
                        reason: &e.to_string(),
                    });
                    return;
                }
            },
        };
        let (result, tally) = self.session(wire, peer, heads);
        (self.events)(RecvEvent::Ended {
            peer,
            tally: &tally,
            result: &result,
        });
    }

    fn speaks_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// The TLS handshake of one sender, a head like the others: it must be done within the
/// header timeout. The socket then gets its idle timeout back (the handshake leaves none).
fn accept(stream: Stream, tls: &ServerTls, heads: &HeadClock) -> crate::error::Result<TlsStream> {
    let limit = heads.header().unwrap_or(HANDSHAKE_TIMEOUT);
    let tls = TlsStream::accept(stream, tls, limit)?;
    tls.get_ref()
        .set_read_timeout(heads.idle())
        .map_err(|e| crate::error::Error::io("set the idle timeout", e))?;
    Ok(tls)
}

/// A length-prefixed connection: frames and raw bytes, one read buffer for both.
struct Conn {
    stream: Wire,
    buf: BytesMut,
    codec: LengthCodec,
    /// Holds each control frame to the header timeout: a sender trickling a frame a byte
    /// at a time would otherwise never trip the idle timeout.
    heads: HeadClock,
}

impl Conn {
    fn new(stream: Wire, heads: HeadClock) -> Conn {
        Conn {
            stream,
            buf: BytesMut::with_capacity(8192),
            codec: proto::codec(),
            heads,
        }
    }

    /// Reads one frame, which must complete within the header timeout of its first byte.
    fn read_frame(&mut self) -> Result<Option<BytesMut>, FrameError> {
        if !self.buf.is_empty() {
            // Part of it came with the previous read: it has begun.
            self.heads.begin();
        }
        let mut reader = HeadReader {
            stream: &mut self.stream,
            heads: &mut self.heads,
        };
        let frame = self.codec.read_frame(&mut reader, &mut self.buf);
        // Done (or failed): the socket gets its idle timeout back for file contents.
        if let Err(e) = self.heads.end(self.stream.socket())
            && frame.is_ok()
        {
            return Err(FrameError::Io(e));
        }
        frame
    }

    fn send(&mut self, msg: &Message) -> io::Result<()> {
        self.stream.write_all(&msg.to_frame())
    }

    /// Reads up to `dst.len()` raw bytes: first what the frame buffer already holds.
    fn read_raw(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        if !self.buf.is_empty() {
            let n = dst.len().min(self.buf.len());
            dst[..n].copy_from_slice(&self.buf[..n]);
            self.buf.advance(n);
            return Ok(n);
        }
        loop {
            match read_wire(&mut self.stream, dst) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout"));
                }
                other => return other,
            }
        }
    }
}

/// The socket as the frame reader sees it: each read is bounded by what the frame in
/// progress has left of the header timeout, and the first byte starts the clock.
struct HeadReader<'a> {
    /// The connection (its socket blocking, with the idle timeout as its read timeout).
    stream: &'a mut Wire,
    /// The frame's deadline.
    heads: &'a mut HeadClock,
}

impl Read for HeadReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.heads.before_read(self.stream.socket())?;
        match read_wire(self.stream, buf) {
            Ok(n) => {
                if n > 0 {
                    self.heads.begin();
                }
                Ok(n)
            }
            // SO_RCVTIMEO expiring: the idle timeout, or the frame's deadline.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(self.heads.timed_out()),
            Err(e) => Err(e),
        }
    }
}

/// The file being received.
struct Incoming {
    header: Header,
    /// The directory it goes into.
    parent: OwnedFd,
    /// The final name in `parent`.
    name: Vec<u8>,
    /// The partial file's name in `parent` (`None`: an existing file is being checked).
    partial: Option<String>,
    file: Arc<File>,
    /// Where the next byte goes.
    pos: u64,
    /// Bytes before this are on their way to the disk.
    flushed: u64,
    /// Bytes that were there before this session.
    resumed: u64,
}

impl Incoming {
    fn new(
        header: Header,
        parent: OwnedFd,
        name: Vec<u8>,
        partial: Option<String>,
        file: Arc<File>,
        have: u64,
    ) -> Incoming {
        Incoming {
            header,
            parent,
            name,
            partial,
            file,
            pos: have,
            flushed: have,
            resumed: have,
        }
    }
}

struct Session<'a> {
    rx: &'a Receiver,
    peer: &'a Peer,
    conn: Conn,
    sm: proto::Receiver,
    pipe: Option<HashPipe>,
    file: Option<Incoming>,
    /// Directories this transfer made, with the sender's modes, applied at the end (those
    /// that were already there keep their own).
    dirs: Vec<(RelPath, u32)>,
    /// What arrived and what was skipped, for the end-of-session line.
    tally: Tally,
}

impl Session<'_> {
    fn run(&mut self) -> Result<Close, TransferError> {
        loop {
            match self.sm.want() {
                Want::Nothing => return Ok(Close::Complete),
                Want::Bytes(n) => self.receive(n)?,
                Want::Frame => {
                    let frame = match self.conn.read_frame() {
                        Ok(Some(frame)) => frame,
                        Ok(None) => return Ok(self.closed()),
                        Err(FrameError::Io(e)) => return Err(self.cut(e)),
                        Err(FrameError::Truncated { .. }) => return Ok(self.closed()),
                        Err(e) => {
                            self.discard();
                            return Err(TransferError::Frame(e));
                        }
                    };
                    let event = match self.sm.on_frame(&frame) {
                        Ok(event) => event,
                        Err(e) => {
                            // A sender that breaks the protocol after a file's bytes (sent
                            // more than it announced, say) loses that file.
                            self.discard();
                            return Err(e.into());
                        }
                    };
                    self.on_event(event)?;
                }
            }
        }
    }

    /// The connection ended without an error: keep any partial file for a resume.
    fn closed(&mut self) -> Close {
        self.file = None;
        self.sm.on_eof()
    }

    /// The connection broke: keep any partial file for a resume.
    fn cut(&mut self, e: io::Error) -> TransferError {
        self.file = None;
        TransferError::Io {
            what: "receive".into(),
            source: e,
        }
    }

    /// Throws the current file's partial data away.
    fn discard(&mut self) {
        if let Some(inc) = self.file.take()
            && let Some(name) = &inc.partial
        {
            fs::remove(inc.parent.as_fd(), name);
        }
    }

    /// Refuses the current step: tells the sender, ends the session.
    fn refuse(&mut self, reason: String) -> TransferError {
        let msg = self.sm.fail(reason.clone());
        let _ = self.conn.send(&msg);
        TransferError::Refused(reason)
    }

    fn on_event(&mut self, event: Event) -> Result<(), TransferError> {
        match event {
            Event::Hello => {
                let msg = self.sm.hello();
                self.send(&msg)
            }
            Event::Dir(h) => {
                let parts: Vec<&[u8]> = h.path.components().collect();
                // Writable for now, whatever its mode: files may still go in. The real
                // mode is set at the end.
                match self.rx.root.make_dir(&h.path, &parts, 0o700) {
                    Ok((_, true)) => self.dirs.push((h.path, h.mode)),
                    Ok((_, false)) => {}
                    Err(e) => return Err(self.refuse(e.to_string())),
                }
                let msg = self.sm.dir_done();
                self.send(&msg)
            }
            Event::File(h) => self.on_header(h),
            Event::Link(link) => self.on_link(link),
            Event::UnsafeLink { link, reason } => {
                let reason = reason.to_string();
                (self.rx.events)(RecvEvent::LinkRefused {
                    peer: self.peer,
                    path: &link.path,
                    target: &link.target,
                    reason: &reason,
                });
                self.tally.skipped += 1;
                let msg = self.sm.skip(format!("refused by the receiver: {reason}"));
                self.send(&msg)
            }
            Event::Digest(theirs) => self.on_digest(theirs),
            Event::End => {
                self.apply_dir_modes()?;
                let msg = self.sm.end();
                self.send(&msg)
            }
        }
    }

    fn send(&mut self, msg: &Message) -> Result<(), TransferError> {
        self.conn.send(msg).map_err(|e| TransferError::Io {
            what: "send".into(),
            source: e,
        })
    }

    fn on_header(&mut self, h: Header) -> Result<(), TransferError> {
        let (parents, name) = h.path.split_last();
        let parent = match self.rx.root.dir(&h.path, &parents, 0o755) {
            Ok(fd) => fd,
            Err(e) => return Err(self.refuse(e.to_string())),
        };
        let name = name.to_vec();
        let found = match fs::lookup(parent.as_fd(), &name) {
            Ok(found) => found,
            Err(e) => return Err(self.refuse(format!("{}: {e}", h.path))),
        };
        let existing = self.rx.existing;
        if found != Found::Nothing && existing == Existing::Skip {
            (self.rx.events)(RecvEvent::Skipped {
                peer: self.peer,
                path: &h.path,
            });
            self.tally.skipped += 1;
            let msg = self.sm.skip(format!("{} exists on the receiver", h.path));
            return self.send(&msg);
        }
        if found == Found::Symlink && existing != Existing::Overwrite {
            return Err(self.refuse(format!(
                "{} is a symbolic link on the receiver; refusing to follow or replace it",
                h.path
            )));
        }
        if found == Found::Dir || found == Found::Other {
            return Err(self.refuse(format!("{} exists and is not a regular file", h.path)));
        }
        if existing == Existing::Keep {
            match found {
                Found::File(size) if size == h.size => {
                    // Same size: the digest will tell whether it is the same file.
                    let file = match fs::open_existing(parent.as_fd(), &name) {
                        Ok(f) => Arc::new(f),
                        Err(Errno::LOOP) => {
                            return Err(self.refuse(format!("{} is a symbolic link", h.path)));
                        }
                        Err(e) => return Err(self.refuse(format!("{}: {e}", h.path))),
                    };
                    let inc = Incoming::new(h, parent, name, None, file, size);
                    return self.start(inc, Origin::Existing);
                }
                Found::Nothing => {}
                _ => {
                    return Err(self.refuse(format!(
                        "{} already exists and differs (the receiver may use --overwrite or --skip-existing)",
                        h.path
                    )));
                }
            }
        }
        // A fresh file or a resume: the partial file beside the final name.
        let partial = h.path.partial_name(h.size);
        let file = match fs::open_partial(parent.as_fd(), &partial) {
            Ok(f) => f,
            Err(e) => return Err(self.refuse(format!("{}: cannot create: {e}", h.path))),
        };
        match fs::lock_within(&file, LOCK_PATIENCE) {
            Ok(true) => {}
            Ok(false) => {
                return Err(self.refuse(format!(
                    "{} is being received from another sender right now (waited {}s)",
                    h.path,
                    LOCK_PATIENCE.as_secs()
                )));
            }
            Err(e) => return Err(self.refuse(format!("{}: lock: {e}", h.path))),
        }
        let have = match file.metadata() {
            Ok(m) => m.len(),
            Err(e) => return Err(self.refuse(format!("{}: {e}", h.path))),
        };
        let have = if have > h.size {
            // Cannot be ours (the name includes the size): start over.
            if let Err(e) = file.set_len(0) {
                return Err(self.refuse(format!("{}: {e}", h.path)));
            }
            0
        } else {
            have
        };
        let origin = if have > 0 {
            Origin::Partial
        } else {
            Origin::Fresh
        };
        let inc = Incoming::new(h, parent, name, Some(partial), Arc::new(file), have);
        self.start(inc, origin)
    }

    /// Creates a symbolic link whose target the core found safe, in its directory under
    /// DIR (reached without following any link), with `symlinkat`: the link itself is
    /// never followed.
    fn on_link(&mut self, link: Link) -> Result<(), TransferError> {
        let (parents, name) = link.path.split_last();
        let parent = match self.rx.root.dir(&link.path, &parents, 0o755) {
            Ok(fd) => fd,
            Err(e) => return Err(self.refuse(e.to_string())),
        };
        let found = match fs::lookup(parent.as_fd(), name) {
            Ok(found) => found,
            Err(e) => return Err(self.refuse(format!("{}: {e}", link.path))),
        };
        let existing = self.rx.existing;
        let same = found == Found::Symlink
            && fs::read_link(parent.as_fd(), name).is_ok_and(|t| t == link.target);
        if !same {
            if found != Found::Nothing && existing == Existing::Skip {
                (self.rx.events)(RecvEvent::Skipped {
                    peer: self.peer,
                    path: &link.path,
                });
                self.tally.skipped += 1;
                let msg = self
                    .sm
                    .skip(format!("{} exists on the receiver", link.path));
                return self.send(&msg);
            }
            match found {
                Found::Nothing => {}
                Found::Symlink | Found::File(_) if existing == Existing::Overwrite => {}
                Found::Dir | Found::Other => {
                    return Err(
                        self.refuse(format!("{} exists and is not a symbolic link", link.path))
                    );
                }
                _ => {
                    return Err(self.refuse(format!(
                        "{} already exists and differs (the receiver may use --overwrite or --skip-existing)",
                        link.path
                    )));
                }
            }
            let scratch = link.path.partial_name(u64::MAX);
            let replace = found != Found::Nothing;
            match fs::make_link(parent.as_fd(), name, &link.target, replace, &scratch) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    return Err(self.refuse(format!(
                        "{} appeared on the receiver meanwhile; not replaced",
                        link.path
                    )));
                }
                Err(e) => return Err(self.refuse(format!("{}: symlink: {e}", link.path))),
            }
            if let Err(e) = fs::sync(parent.as_fd()) {
                return Err(self.refuse(format!("{}: fsync directory: {e}", link.path)));
            }
        }
        (self.rx.events)(RecvEvent::Link {
            peer: self.peer,
            path: &link.path,
            target: &link.target,
            unchanged: same,
        });
        self.tally.links += 1;
        let msg = self.sm.link_done();
        self.send(&msg)
    }

    /// Offers `inc` to the sender from what the receiver already has of it, which the
    /// hashing thread reads back first.
    fn start(&mut self, inc: Incoming, origin: Origin) -> Result<(), TransferError> {
        if self.pipe.is_none() {
            self.pipe = Some(HashPipe::new().map_err(|e| TransferError::Io {
                what: "start hashing thread".into(),
                source: e,
            })?);
        }
        let pipe = self.pipe.as_ref().expect("pipe just set");
        pipe.begin(inc.header.algo);
        // The bytes already here are hashed again: the digest must cover the whole file,
        // whoever wrote its first part.
        pipe.file(inc.file.clone(), inc.resumed);
        let msg = self.sm.offer(inc.resumed, origin);
        self.file = Some(inc);
        self.send(&msg)
    }

    /// Receives up to `remaining` bytes of the current file into it.
    fn receive(&mut self, remaining: u64) -> Result<(), TransferError> {
        let (Some(inc), Some(pipe)) = (self.file.as_mut(), self.pipe.as_ref()) else {
            return Err(TransferError::Protocol(ProtocolError::Unexpected {
                got: "file bytes",
                state: "no file open",
            }));
        };
        let mut buf = pipe.buffer();
        let want = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        // Fill the buffer: fewer, bigger writes and hasher calls.
        let mut got = 0;
        let mut eof = false;
        while got < want {
            match self.conn.read_raw(&mut buf[got..want]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => got += n,
                Err(e) => {
                    // Keep what arrived: a resume starts after it.
                    let written = write_at(&inc.file, &buf[..got], inc.pos);
                    pipe.give_back(buf);
                    if written.is_ok() {
                        inc.pos += got as u64;
                    }
                    return Err(self.cut(e));
                }
            }
        }
        if let Err(e) = write_at(&inc.file, &buf[..got], inc.pos) {
            pipe.give_back(buf);
            let path = inc.header.path.to_string();
            self.discard();
            let reason = if e.raw_os_error() == Some(libc::ENOSPC) {
                format!("{path}: no space left on the receiver's disk; file discarded")
            } else {
                format!("{path}: write failed: {e}; file discarded")
            };
            return Err(self.refuse(reason));
        }
        inc.pos += got as u64;
        if inc.pos - inc.flushed >= WRITEBACK {
            fs::start_writeback(&inc.file, inc.flushed, inc.pos - inc.flushed);
            inc.flushed = inc.pos;
        }
        pipe.bytes(buf, got);
        self.sm.on_bytes(got as u64);
        if eof {
            // The sender stopped short: what arrived stays for a resume.
            return Err(TransferError::Truncated {
                path: inc.header.path.to_string(),
                have: inc.pos,
                size: inc.header.size,
            });
        }
        Ok(())
    }

    fn on_digest(&mut self, theirs: Vec<u8>) -> Result<(), TransferError> {
        let pipe = self.pipe.as_ref().expect("a file was started");
        let mine = match pipe.finish() {
            Ok(d) => d,
            Err(e) => {
                let reason = match &self.file {
                    Some(inc) => format!("{}: cannot hash: {e}", inc.header.path),
                    None => format!("cannot hash: {e}"),
                };
                self.discard();
                return Err(self.refuse(reason));
            }
        };
        let Some(inc) = self.file.take() else {
            return Err(self.refuse("digest without a file".into()));
        };
        if mine != theirs {
            let reason = match &inc.partial {
                Some(name) => {
                    fs::remove(inc.parent.as_fd(), name);
                    format!(
                        "{}: {} digest mismatch: the data was corrupted or the sender lied; file discarded",
                        inc.header.path, inc.header.algo
                    )
                }
                None => format!(
                    "{} already exists with different contents (the receiver may use --overwrite or --skip-existing)",
                    inc.header.path
                ),
            };
            return Err(self.refuse(reason));
        }
        if let Some(partial) = &inc.partial
            && let Err(reason) = self.commit(&inc, partial)
        {
            fs::remove(inc.parent.as_fd(), partial);
            return Err(self.refuse(reason));
        }
        (self.rx.events)(RecvEvent::Verified {
            peer: self.peer,
            path: &inc.header.path,
            header: &inc.header,
            digest: &mine,
            resumed: inc.resumed,
            unchanged: inc.partial.is_none(),
        });
        self.tally.files += 1;
        let msg = self.sm.verified(mine);
        self.send(&msg)
    }

    /// Puts a verified partial file in place: mode, fsync, rename, fsync the directory.
    fn commit(&self, inc: &Incoming, partial: &str) -> Result<(), String> {
        let path = &inc.header.path;
        fs::chmod(&*inc.file, inc.header.mode).map_err(|e| format!("{path}: chmod: {e}"))?;
        fs::sync(&*inc.file).map_err(|e| format!("{path}: fsync: {e}"))?;
        let replace = self.rx.existing == Existing::Overwrite;
        match fs::rename(inc.parent.as_fd(), partial, &inc.name, replace) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                return Err(format!(
                    "{path} appeared on the receiver meanwhile; not replaced"
                ));
            }
            Err(e) => return Err(format!("{path}: rename into place: {e}")),
        }
        // The rename is durable once the directory is.
        fs::sync(inc.parent.as_fd()).map_err(|e| format!("{path}: fsync directory: {e}"))
    }

    fn apply_dir_modes(&mut self) -> Result<(), TransferError> {
        // Deepest first, so a read-only parent does not stop its children.
        let dirs = std::mem::take(&mut self.dirs);
        for (path, mode) in dirs.iter().rev() {
            let parts: Vec<&[u8]> = path.components().collect();
            let result = self.rx.root.dir(path, &parts, 0o700).and_then(|fd| {
                fs::chmod(&fd, *mode).map_err(|e| FsError::Io {
                    what: format!("chmod {path}"),
                    source: e.into(),
                })
            });
            if let Err(e) = result {
                return Err(self.refuse(e.to_string()));
            }
        }
        Ok(())
    }
}

/// Writes all of `data` at `pos`.
fn write_at(file: &File, data: &[u8], pos: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(data, pos)
}
