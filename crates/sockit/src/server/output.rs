//! What a [`Handler`](super::Handler) sends back: bytes, and ranges of files that the
//! drivers hand to `sendfile(2)`, so a file goes from the page cache to the socket without
//! passing through the server's memory (what nginx's `sendfile on` does).
//!
//! The same type is the queue a driver keeps when the socket takes only part of a reply:
//! [`Output::write_to`] writes as much as the socket takes and remembers where it stopped,
//! so one function serves blocking sockets (it returns once everything is out) and
//! non-blocking ones (it returns [`Progress::Blocked`] at `EAGAIN`).

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;

use rustix::io::Errno;
use rustix::net::SendFlags;

/// Largest piece of a file sent by one `sendfile` call or, where the file system cannot
/// `sendfile`, read by one `pread`: it bounds how long one connection holds its thread or
/// event loop.
const FILE_CHUNK: usize = 1 << 20;

/// A handler's reply: bytes (this derefs to the `Vec<u8>` they are appended to) and file
/// ranges queued in between with [`Output::send_file`], all sent in the order they were
/// added.
///
/// Through the `Vec`, `len()` and indexing see the bytes added since the last file range;
/// [`Output::is_empty`] and [`Output::clear`] are this type's own and cover everything.
///
/// ```
/// use sockit::server::Output;
///
/// let mut out = Output::new();
/// out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
/// let file = std::fs::File::open(std::env::current_exe()?)?;
/// out.send_file(file, 0, 5); // the driver sends these 5 bytes by sendfile(2)
/// assert_eq!(out.queued_files(), 1);
/// assert!(out.len() == 0 && !out.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Output {
    /// Parts queued before `tail`, in order.
    parts: VecDeque<Part>,
    /// Where new bytes go; sent after every part.
    tail: Vec<u8>,
    /// How much of the first item (the first part, or `tail` when there is none) is
    /// already written; only a driver's queue ever has some.
    sent: usize,
}

#[derive(Debug)]
enum Part {
    Bytes(Vec<u8>),
    File(FileRange),
}

#[derive(Debug)]
struct FileRange {
    /// The open file; it stays valid even if the path is renamed or removed meanwhile.
    file: File,
    /// Where the next `sendfile` starts.
    offset: u64,
    /// Bytes still to send from `offset`.
    len: u64,
}

/// What [`Output::front`] shows: bytes, or a range of a file still to be read.
#[derive(Debug)]
pub(crate) enum Front<'a> {
    /// Bytes not yet sent.
    Bytes(&'a [u8]),
    /// A file range not yet sent.
    File {
        /// The file to read the range from.
        file: &'a File,
        /// Where the unsent part begins.
        offset: u64,
        /// How many bytes are left.
        len: u64,
    },
}

/// How far [`Output::write_to`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Everything is written; the output is empty.
    Done,
    /// The socket would block; the rest waits in the output.
    Blocked,
}

impl Output {
    /// An empty output.
    pub fn new() -> Output {
        Output::default()
    }

    /// Queues `len` bytes of `file` from `offset`, after the bytes added so far and before
    /// those added next. The file must hold them when they are sent: if it has shrunk, the
    /// connection is closed (a reply whose length was announced cannot be finished).
    pub fn send_file(&mut self, file: File, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        if !self.tail.is_empty() {
            let bytes = std::mem::take(&mut self.tail);
            self.parts.push_back(Part::Bytes(bytes));
        }
        self.parts
            .push_back(Part::File(FileRange { file, offset, len }));
    }

    /// Whether nothing is left to send.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty() && self.tail.len() == self.sent
    }

    /// File ranges queued and not yet completely sent: each holds an open file.
    pub fn queued_files(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| matches!(p, Part::File(_)))
            .count()
    }

    /// Drops everything queued.
    pub fn clear(&mut self) {
        self.parts.clear();
        self.tail.clear();
        self.sent = 0;
    }

    /// The capacity of the byte buffer new bytes go to.
    pub(crate) fn capacity(&self) -> usize {
        self.tail.capacity()
    }

    /// Shrinks the byte buffer's capacity to about `min`.
    pub(crate) fn shrink_to(&mut self, min: usize) {
        self.tail.shrink_to(min);
    }

    /// Moves what is left of `other` to the end of `self`, leaving `other` empty (its byte
    /// buffer keeps its capacity, so a driver's scratch output allocates once).
    pub(crate) fn append(&mut self, other: &mut Output) {
        if other.parts.is_empty() {
            self.tail.extend_from_slice(&other.tail[other.sent..]);
        } else {
            if !self.tail.is_empty() {
                let bytes = std::mem::take(&mut self.tail);
                self.parts.push_back(Part::Bytes(bytes));
            }
            let mut parts = std::mem::take(&mut other.parts);
            if let Some(Part::Bytes(b)) = parts.front_mut() {
                b.drain(..other.sent);
            }
            if self.parts.is_empty() && self.tail.is_empty() {
                self.sent = 0;
            }
            self.parts.append(&mut parts);
            self.tail.extend_from_slice(&other.tail);
        }
        other.clear();
    }

    /// The first thing still to send, without taking it: for a layer that turns what a
    /// handler queued into something else (TLS encrypts it) piece by piece, consuming
    /// with [`Output::consume`] as much as it used.
    pub(crate) fn front(&self) -> Option<Front<'_>> {
        match self.parts.front() {
            Some(Part::Bytes(b)) => Some(Front::Bytes(&b[self.sent..])),
            Some(Part::File(f)) => Some(Front::File {
                file: &f.file,
                offset: f.offset,
                len: f.len,
            }),
            None if self.tail.len() > self.sent => Some(Front::Bytes(&self.tail[self.sent..])),
            None => None,
        }
    }

    /// Marks `n` bytes of [`Output::front`] as sent (at most what it showed).
    pub(crate) fn consume(&mut self, n: usize) {
        match self.parts.front_mut() {
            Some(Part::Bytes(b)) => {
                self.sent = (self.sent + n).min(b.len());
                if self.sent == b.len() {
                    self.parts.pop_front();
                    self.sent = 0;
                }
            }
            Some(Part::File(f)) => {
                let n = (n as u64).min(f.len);
                f.offset += n;
                f.len -= n;
                if f.len == 0 {
                    self.parts.pop_front();
                }
            }
            None => {
                self.sent = (self.sent + n).min(self.tail.len());
                if self.sent == self.tail.len() {
                    self.tail.clear();
                    self.sent = 0;
                }
            }
        }
    }

    /// Everything queued as one byte string, file ranges read in (for the fuzz checks,
    /// which compare what two runs would send); the output is left empty.
    pub(crate) fn take_all(&mut self) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        let had_parts = !self.parts.is_empty();
        for (i, part) in std::mem::take(&mut self.parts).into_iter().enumerate() {
            let skip = if i == 0 { self.sent } else { 0 };
            match part {
                Part::Bytes(b) => all.extend_from_slice(&b[skip..]),
                Part::File(f) => {
                    let at = all.len();
                    all.resize(at + usize::try_from(f.len).unwrap_or(usize::MAX), 0);
                    f.file.read_exact_at(&mut all[at..], f.offset)?;
                }
            }
        }
        let skip = if had_parts { 0 } else { self.sent };
        all.extend_from_slice(&self.tail[skip..]);
        self.clear();
        Ok(all)
    }

    /// Writes to `fd` until everything is out or the socket would block. Loops to
    /// `EAGAIN`, which is what guarantees an edge-triggered poller a writable edge later.
    pub(crate) fn write_to(&mut self, fd: BorrowedFd<'_>) -> io::Result<Progress> {
        loop {
            let more = self.parts.len() > 1 || !self.tail.is_empty();
            match self.parts.front_mut() {
                None => {
                    let n = send_some(fd, &self.tail[self.sent..], false)?;
                    self.sent += n;
                    if self.sent < self.tail.len() {
                        return Ok(Progress::Blocked);
                    }
                    self.tail.clear();
                    self.sent = 0;
                    return Ok(Progress::Done);
                }
                Some(Part::Bytes(b)) => {
                    // MSG_MORE: a response head followed by its file leaves in full
                    // segments rather than a small one first.
                    let n = send_some(fd, &b[self.sent..], more)?;
                    self.sent += n;
                    if self.sent < b.len() {
                        return Ok(Progress::Blocked);
                    }
                }
                Some(Part::File(f)) => {
                    if send_file_some(fd, f)? == Progress::Blocked {
                        return Ok(Progress::Blocked);
                    }
                }
            }
            self.parts.pop_front();
            self.sent = 0;
        }
    }
}

impl Deref for Output {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.tail
    }
}

impl DerefMut for Output {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.tail
    }
}

impl From<Vec<u8>> for Output {
    fn from(tail: Vec<u8>) -> Output {
        Output {
            tail,
            ..Output::default()
        }
    }
}

/// Sends until `data` is out or the socket would block; returns how much went out.
fn send_some(fd: BorrowedFd<'_>, mut data: &[u8], more: bool) -> io::Result<usize> {
    let total = data.len();
    // NOSIGNAL: a peer that reset must cost an EPIPE for that connection, not a SIGPIPE for
    // the process. The `sockit` binary ignores SIGPIPE, but a library user's might not.
    let mut flags = SendFlags::NOSIGNAL;
    if more {
        flags |= SendFlags::MORE;
    }
    while !data.is_empty() {
        match rustix::net::send(fd, data, flags) {
            Ok(0) => break,
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => break,
            // Not a socket (a driver writing to a pipe in a test): plain write.
            Err(Errno::NOTSOCK) => match rustix::io::write(fd, data) {
                Ok(n) => data = &data[n..],
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => break,
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        }
    }
    Ok(total - data.len())
}

/// Sends the range until it is out (`Done`) or the socket would block.
fn send_file_some(fd: BorrowedFd<'_>, f: &mut FileRange) -> io::Result<Progress> {
    while f.len > 0 {
        let want = usize::try_from(f.len).unwrap_or(usize::MAX).min(FILE_CHUNK);
        let mut at = f.offset;
        let n = match rustix::fs::sendfile(fd, f.file.as_fd(), Some(&mut at), want) {
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Ok(Progress::Blocked),
            // File systems that cannot `sendfile`: read a piece and send it.
            Err(Errno::INVAL | Errno::NOSYS) => match read_and_send(fd, f, want)? {
                0 => return Ok(Progress::Blocked),
                n => n,
            },
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file shrank while being sent ({} bytes missing)", f.len),
            ));
        }
        f.offset += n as u64;
        f.len -= n as u64;
    }
    Ok(Progress::Done)
}

/// The fallback of [`send_file_some`]: reads up to `want` bytes at the range's offset and
/// sends what the socket takes of them (the rest is read again next time). Returns how
/// many were sent; a file that ended early reads as 0 bytes taken, reported by the caller.
fn read_and_send(fd: BorrowedFd<'_>, f: &FileRange, want: usize) -> io::Result<usize> {
    let mut buf = vec![0; want.min(64 * 1024)];
    let n = loop {
        match f.file.read_at(&mut buf, f.offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => break r?,
        }
    };
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("file shrank while being sent ({} bytes missing)", f.len),
        ));
    }
    send_some(fd, &buf[..n], false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn file_with(content: &[u8]) -> File {
        let mut f = tempfile_in_tmp();
        f.write_all(content).unwrap();
        f
    }

    fn tempfile_in_tmp() -> File {
        // An unnamed file: O_TMPFILE where the file system has it, else create + unlink.
        let dir = std::env::temp_dir();
        let path = dir.join(format!(
            "sockit-output-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    fn drain(mut s: &UnixStream) -> Vec<u8> {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    }

    #[test]
    fn bytes_and_files_leave_in_order() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut out = Output::new();
        out.extend_from_slice(b"head1 ");
        out.send_file(file_with(b"0123456789"), 2, 5);
        out.extend_from_slice(b" mid ");
        out.send_file(file_with(b"abc"), 0, 3);
        out.send_file(file_with(b"xyz"), 1, 0);
        out.extend_from_slice(b" end");
        assert_eq!(out.queued_files(), 2);
        assert_eq!(out.write_to(a.as_fd()).unwrap(), Progress::Done);
        assert!(out.is_empty());
        drop(a);
        assert_eq!(drain(&b), b"head1 23456 mid abc end");
    }

    #[test]
    fn a_blocked_write_resumes_where_it_stopped() {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Output::new();
        out.extend_from_slice(b"<");
        out.send_file(file_with(&big), 0, big.len() as u64);
        out.extend_from_slice(b">");
        // Move it into a queue as a driver does, then write in turns with a reader.
        let mut queue = Output::new();
        assert_eq!(out.write_to(a.as_fd()).unwrap(), Progress::Blocked);
        queue.append(&mut out);
        assert!(out.is_empty());
        let reader = std::thread::spawn(move || drain(&b));
        while queue.write_to(a.as_fd()).unwrap() == Progress::Blocked {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(a);
        let got = reader.join().unwrap();
        assert_eq!(got.len(), big.len() + 2);
        assert_eq!(got[0], b'<');
        assert_eq!(&got[1..=big.len()], &big[..]);
        assert_eq!(got[big.len() + 1], b'>');
    }

    #[test]
    fn append_keeps_order_across_partly_sent_queues() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut queue = Output::from(b"abc".to_vec());
        queue.sent = 1; // "a" already went out
        let mut more = Output::new();
        more.extend_from_slice(b"d");
        more.send_file(file_with(b"EF"), 0, 2);
        more.extend_from_slice(b"g");
        queue.append(&mut more);
        let mut last = Output::from(b"h".to_vec());
        queue.append(&mut last);
        assert_eq!(queue.write_to(a.as_fd()).unwrap(), Progress::Done);
        drop(a);
        assert_eq!(drain(&b), b"bcdEFgh");
    }

    #[test]
    fn take_all_reads_the_file_ranges_in() {
        let mut out = Output::from(b"a".to_vec());
        out.send_file(file_with(b"xBCx"), 1, 2);
        out.extend_from_slice(b"d");
        assert_eq!(out.take_all().unwrap(), b"aBCd");
        assert!(out.is_empty());
    }

    #[test]
    fn a_file_that_shrank_is_an_error_not_a_hang() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut out = Output::new();
        out.send_file(file_with(b"short"), 0, 100);
        let err = out.write_to(a.as_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
