//! The static file service of `sockit http serve`, Python's `http.server` as a framework
//! [`Service`]: each connection's [`FileHandler`] buffers partial requests, answers the
//! complete ones (pipelining, keep-alive) into the driver's [`Output`], and so runs under
//! every model. File bodies above [`READ_BELOW`] are queued as file ranges, which the
//! drivers `sendfile`; smaller ones are read into the reply, one `send` with the head.
//!
//! What to answer is decided without files by
//! [`proto::http::server::decide`](crate::proto::http::server::decide); this module looks
//! at the filesystem for it and writes the response.
//!
//! Pipelined requests are answered a few at a time ([`MAX_FILES_QUEUED`],
//! [`MAX_BYTES_QUEUED`]): the rest wait in the handler's buffer until the output is
//! drained, so a peer cannot make the server hold many open files or much memory.
//!
//! Confinement: every path is opened with `openat2(2)` relative to the served directory
//! with `RESOLVE_BENEATH`, so neither `..` nor a symlink can leave it (the kernel checks
//! every component, with no window between check and open). Before that, the decoded
//! path is refused if any segment is `..` or holds an encoded `/` or NUL.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::percent_decode;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::proto::http::HttpError;
use crate::proto::http::server::auth::{CHALLENGE, Users, Verdict};
use crate::proto::http::server::conditional::Validators;
use crate::proto::http::server::cors;
use crate::proto::http::server::decide::{Decision, FileFacts, Found, decide, target_path};
use crate::proto::http::server::encoding::{self, Coding};
use crate::proto::http::server::head::{error_page, write_head};
use crate::proto::http::server::listing::{Entry, View, is_hidden, listing_json, listing_page};
use crate::proto::http::server::mime::content_type;
use crate::proto::http::server::request::{Request, parse_request};
use crate::server::{Flow, Handler, Output, Service};
use crate::socket::Peer;

/// Largest request body accepted (and discarded): GET and HEAD carry none in practice.
pub const MAX_REQUEST_BODY: u64 = 1 << 20;
/// Files smaller than this are read into the reply; larger ones go by `sendfile`, which
/// costs a second system call but no copy through user space.
pub const READ_BELOW: u64 = 16 << 10;
/// Responses with a file body queued at once; more pipelined requests wait until these
/// are written.
pub const MAX_FILES_QUEUED: usize = 8;
/// Response bytes queued at once, likewise.
pub const MAX_BYTES_QUEUED: usize = 1 << 20;

/// Compressible files up to this size are compressed at once and sent with a
/// `Content-Length`; larger ones are compressed as they are sent, [`STREAM_CHUNK`] at a
/// time, in chunked transfer coding (close-delimited on HTTP/1.0): memory per connection
/// stays bounded whatever the file's size.
pub const COMPRESS_AT_ONCE_BELOW: u64 = 256 << 10;
/// File bytes read and compressed per step of a streamed compression.
pub const STREAM_CHUNK: usize = 64 << 10;
/// Compressed bytes queued before a streamed compression waits for the socket to drain.
pub const STREAM_QUEUED: usize = 128 << 10;

/// Whether each request is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// One line per request on stderr.
    Stderr,
    /// Nothing (benchmarks).
    Quiet,
}

/// What `http serve` adds to plain file serving; the default adds nothing, and costs
/// nothing per request.
#[derive(Debug, Default)]
pub struct Options {
    /// The users let in by HTTP Basic (`--auth`, `--auth-file`); empty: no auth.
    pub users: Users,
    /// Headers added to every response below 400, as nginx's `add_header` does
    /// (`--header`, `--cache-control`): already validated (a token name, no CR or LF).
    pub headers: Vec<(String, String)>,
    /// Whether cross-origin pages may read the files (`--cors`): see
    /// [`cors`].
    pub cors: bool,
    /// Whether compressible files are sent brotli-, zstd- or gzip-encoded when the client
    /// asks for it (`Accept-Encoding`): a fresh precompressed sibling (`app.js.br`) by
    /// `sendfile`, else compressed on the fly; see
    /// [`encoding`].
    pub compress: bool,
    /// Whether dotfiles are listed and served (`--hidden`); otherwise they are left out
    /// of listings and a request naming one, at any depth, gets 404.
    pub hidden: bool,
}

/// Serves the files under one directory.
#[derive(Debug, Clone)]
pub struct FileServer {
    root: Arc<Root>,
}

#[derive(Debug)]
struct Root {
    /// The directory, opened once (`O_PATH`): every lookup is relative to it.
    dir: OwnedFd,
    log: Log,
    /// Auth, extra headers, CORS.
    options: Options,
}

impl FileServer {
    /// Serves `dir`, which must be a directory.
    pub fn new(dir: &Path, log: Log) -> Result<FileServer> {
        FileServer::with_options(dir, log, Options::default())
    }

    /// Serves `dir`, which must be a directory, with `options`.
    pub fn with_options(dir: &Path, log: Log, options: Options) -> Result<FileServer> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(format!("open directory {}", dir.display()), e.into()))?;
        Ok(FileServer {
            root: Arc::new(Root {
                dir: fd,
                log,
                options,
            }),
        })
    }
}

impl Service for FileServer {
    type Handler = FileHandler;

    fn handler(&self, peer: &Peer) -> FileHandler {
        FileHandler {
            root: self.root.clone(),
            peer: peer.to_string(),
            buf: Vec::new(),
            skip: 0,
            partial: false,
            authorized: None,
            stream: None,
        }
    }
}

/// One connection: a buffer of not-yet-complete request bytes.
#[derive(Debug)]
pub struct FileHandler {
    root: Arc<Root>,
    peer: String,
    buf: Vec<u8>,
    /// Request body bytes still to discard.
    skip: u64,
    /// Whether `buf` ends in part of a request head: what [`Handler::in_head`] answers, so
    /// the driver holds a head that trickles in to the header timeout.
    partial: bool,
    /// SHA-256 of the last `Authorization` value that passed: browsers send it with every
    /// request, and a password hash per request would cost more than the file.
    authorized: Option<[u8; 32]>,
    /// A response body being compressed as it is sent: requests after it wait until it
    /// is finished.
    stream: Option<Box<Streaming>>,
}

/// A file compressed on the fly into the output, a step per drain.
struct Streaming {
    file: File,
    /// Where the next read starts.
    offset: u64,
    /// File bytes not yet read.
    remaining: u64,
    encoder: Encoder,
    /// Chunked transfer coding (HTTP/1.1), or the body ends with the connection (1.0).
    chunked: bool,
    /// Whether the connection stays open after the body.
    keep: bool,
}

impl std::fmt::Debug for Streaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("offset", &self.offset)
            .field("remaining", &self.remaining)
            .finish()
    }
}

/// What a step of a streamed compression came to.
enum Pump {
    /// The body is finished: go on with the next request.
    Done,
    /// More to send once the output drains.
    More,
    /// Finished (or failed) and the connection must close.
    Close,
}

impl Handler for FileHandler {
    fn on_data(&mut self, data: &[u8], out: &mut Output) -> Flow {
        self.buf.extend_from_slice(data);
        self.answer(out)
    }

    fn on_drained(&mut self, out: &mut Output) -> Flow {
        if self.buf.is_empty() && self.stream.is_none() {
            return Flow::Continue;
        }
        self.answer(out)
    }

    fn on_eof(&mut self, out: &mut Output) {
        // Requests pipelined before the peer half-closed still get their answers, a few at
        // a time as before (`on_drained` goes on after end of stream).
        self.answer(out);
    }

    fn in_head(&self) -> bool {
        self.partial
    }

    fn on_head_timeout(&mut self, out: &mut Output) {
        self.buf.clear();
        self.partial = false;
        let req = Request {
            method: "-".into(),
            target: "-".into(),
            minor_version: 1,
            headers: Vec::new(),
        };
        self.error(out, &req, 408);
    }
}

impl FileHandler {
    /// Answers the complete requests in the buffer, until [`MAX_FILES_QUEUED`] or
    /// [`MAX_BYTES_QUEUED`] is reached (the rest waits for [`Handler::on_drained`]).
    fn answer(&mut self, out: &mut Output) -> Flow {
        let mut start = 0;
        // Only an incomplete head counts: complete requests held back for the output to
        // drain are the server's delay, not the peer's.
        let mut partial = false;
        let flow = loop {
            if self.skip > 0 {
                let n =
                    (self.buf.len() - start).min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                start += n;
                self.skip -= n as u64;
                if self.skip > 0 {
                    break Flow::Continue;
                }
            }
            if self.stream.is_some() {
                match self.pump(out) {
                    Pump::Done => {}
                    Pump::More => break Flow::Continue,
                    Pump::Close => break Flow::Close,
                }
            }
            if out.queued_files() >= MAX_FILES_QUEUED || out.len() >= MAX_BYTES_QUEUED {
                break Flow::Continue;
            }
            match parse_request(&self.buf[start..]) {
                Ok(None) => {
                    // Stray line ends between requests are no head yet.
                    partial = self.buf[start..]
                        .iter()
                        .any(|b| !matches!(b, b'\r' | b'\n'));
                    break Flow::Continue;
                }
                Ok(Some((req, n))) => {
                    start += n;
                    match req.body_len() {
                        Ok(len) if len <= MAX_REQUEST_BODY => self.skip = len,
                        Ok(_) => {
                            self.error(out, &req, 413);
                            break Flow::Close;
                        }
                        Err(e) => {
                            self.error(out, &req, e.status());
                            break Flow::Close;
                        }
                    }
                    if self.respond(&req, out) == Flow::Close {
                        break Flow::Close;
                    }
                }
                Err(e) => {
                    let status = if matches!(e, HttpError::TooLarge { .. }) {
                        431
                    } else {
                        400
                    };
                    let req = Request {
                        method: "-".into(),
                        target: "-".into(),
                        minor_version: 1,
                        headers: Vec::new(),
                    };
                    self.error(out, &req, status);
                    break Flow::Close;
                }
            }
        };
        self.partial = partial && flow == Flow::Continue;
        if flow == Flow::Close {
            // Nothing after a closing response is answered, even when called again after
            // end of stream (`on_eof` has no `Flow` to say so).
            self.buf.clear();
            self.skip = 0;
        } else {
            self.buf.drain(..start.min(self.buf.len()));
        }
        flow
    }

    /// Compresses the next steps of the body being streamed, until [`STREAM_QUEUED`]
    /// bytes wait in the output or the file is done.
    fn pump(&mut self, out: &mut Output) -> Pump {
        let Some(s) = self.stream.as_mut() else {
            return Pump::Done;
        };
        let mut input = vec![0u8; STREAM_CHUNK];
        while out.len() < STREAM_QUEUED {
            if s.remaining == 0 {
                let Some(s) = self.stream.take() else {
                    return Pump::Done;
                };
                let Ok(rest) = s.encoder.finish() else {
                    return Pump::Close;
                };
                write_chunk(out, &rest, s.chunked);
                if s.chunked {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                return if s.keep { Pump::Done } else { Pump::Close };
            }
            // Below STREAM_CHUNK, so it fits in usize.
            let n = s.remaining.min(STREAM_CHUNK as u64) as usize;
            let compressed = match s.file.read_exact_at(&mut input[..n], s.offset) {
                Ok(()) => s.encoder.write(&input[..n]),
                Err(e) => Err(e),
            };
            match compressed {
                Ok(bytes) => {
                    write_chunk(out, bytes, s.chunked);
                    bytes.clear();
                }
                Err(e) => {
                    // The head is out: all that is left is to cut the body short.
                    tracing::warn!("compressing failed mid-response: {e}");
                    self.stream = None;
                    return Pump::Close;
                }
            }
            s.offset += n as u64;
            s.remaining -= n as u64;
        }
        Pump::More
    }
}

/// Appends `bytes` as one chunk (or as they are, for a close-delimited body); nothing
/// for no bytes, since an empty chunk would end the body.
fn write_chunk(out: &mut Output, bytes: &[u8], chunked: bool) {
    if bytes.is_empty() {
        return;
    }
    if chunked {
        let _ = std::io::Write::write_fmt(&mut **out, format_args!("{:x}\r\n", bytes.len()));
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(bytes);
    }
}

/// A compressor writing into a `Vec` that is emptied after every step.
enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    /// Levels for on-the-fly work, as servers pick them: most of the gain for a small
    /// part of the time of the highest levels; brotli's window is 1 MiB, bounding its
    /// memory.
    fn new(coding: Coding) -> std::io::Result<Encoder> {
        Ok(match coding {
            Coding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(6),
            )),
            Coding::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 << 10,
                5,
                20,
            ))),
            Coding::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3)?),
        })
    }

    /// Compresses `input`; the compressed bytes so far are in the returned buffer, which
    /// the caller empties.
    fn write(&mut self, input: &[u8]) -> std::io::Result<&mut Vec<u8>> {
        use std::io::Write as _;
        Ok(match self {
            Encoder::Gzip(e) => {
                e.write_all(input)?;
                e.get_mut()
            }
            Encoder::Br(e) => {
                e.write_all(input)?;
                e.get_mut()
            }
            Encoder::Zstd(e) => {
                e.write_all(input)?;
                e.get_mut()
            }
        })
    }

    /// Ends the stream: the bytes not yet returned by [`Encoder::write`].
    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Br(e) => Ok(e.into_inner()),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

/// `data` compressed with `coding`, in one go.
fn compress_all(coding: Coding, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = Encoder::new(coding)?;
    let mut out = std::mem::take(e.write(data)?);
    out.extend_from_slice(&e.finish()?);
    Ok(out)
}

/// A response being built: status and headers, then the body bytes.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, Cow<'static, str>)>,
    body: Body,
    /// Said at the end of the log line (who failed to authenticate).
    note: Option<String>,
}

enum Body {
    Bytes(Vec<u8>),
    /// A file compressed as it is sent: its length is not known beforehand.
    Stream(Box<Streaming>),
    /// `len` bytes of `file` from `offset`.
    File {
        file: File,
        offset: u64,
        len: u64,
    },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
            Body::Stream(s) => s.remaining,
        }
    }
}

impl FileHandler {
    /// Answers one request; [`Flow::Close`] when the connection ends after it.
    fn respond(&mut self, req: &Request, out: &mut Output) -> Flow {
        let keep = req.keep_alive();
        let head_only = req.method == "HEAD";
        if self.root.options.cors && req.method == "OPTIONS" {
            // Before auth: a preflight never carries credentials.
            return self.send(req, preflight(req), keep, false, out);
        }
        if !self.root.options.users.is_empty()
            && let Some(refusal) = self.authorize(req)
        {
            return self.send(req, refusal, keep, head_only, out);
        }
        let reply = match target_path(req) {
            Ok(raw_path) => self.lookup(req, raw_path),
            Err(decision) => reply_of(decision),
        };
        self.send(req, reply, keep, head_only, out)
    }

    /// `None` when the request may go on, else the 401 to send.
    fn authorize(&mut self, req: &Request) -> Option<Reply> {
        let header = req.header("authorization");
        if let (Some(h), Some(ok)) = (header, &self.authorized) {
            let digest: [u8; 32] = Sha256::digest(h).into();
            if bool::from(digest.ct_eq(ok)) {
                return None;
            }
        }
        let note = match self.root.options.users.check(header) {
            Verdict::Allowed(_) => {
                self.authorized = header.map(|h| Sha256::digest(h).into());
                return None;
            }
            Verdict::Missing => None,
            Verdict::Refused(user) => Some(format!(
                "auth failed for user \"{}\"",
                crate::text::terminal_safe(user.as_bytes())
            )),
        };
        let mut r = error_reply(401);
        r.headers.push(("WWW-Authenticate", CHALLENGE.into()));
        r.note = note;
        Some(r)
    }

    fn error(&mut self, out: &mut Output, req: &Request, status: u16) {
        self.send(req, error_reply(status), false, false, out);
    }

    fn send(
        &mut self,
        req: &Request,
        reply: Reply,
        keep: bool,
        head_only: bool,
        out: &mut Output,
    ) -> Flow {
        let len = reply.body.len();
        let streaming = matches!(reply.body, Body::Stream(_));
        // HTTP/1.0 has no chunks: a body of unknown length ends with the connection.
        let keep = keep && !(streaming && req.minor_version == 0);
        let date = http_date_now();
        let len_text = len.to_string();
        let mut headers: Vec<(&str, &str)> = vec![
            ("Server", concat!("sockit/", env!("CARGO_PKG_VERSION"))),
            ("Date", &date),
            ("Connection", if keep { "keep-alive" } else { "close" }),
        ];
        if streaming {
            if req.minor_version >= 1 {
                headers.push(("Transfer-Encoding", "chunked"));
            }
        } else if reply.status != 304 && reply.status != 204 {
            headers.push(("Content-Length", &len_text));
        }
        for (n, v) in &reply.headers {
            headers.push((n, v));
        }
        let options = &self.root.options;
        if reply.status < 400 {
            for (n, v) in &options.headers {
                headers.push((n, v));
            }
        }
        if options.cors {
            headers.push(("Access-Control-Allow-Origin", "*"));
            headers.push(("Access-Control-Expose-Headers", cors::EXPOSE_HEADERS));
        }
        write_head(out, reply.status, &headers);
        let mut status = reply.status;
        let mut keep = keep;
        if !head_only && reply.status != 304 && reply.status != 204 {
            match reply.body {
                Body::Bytes(b) => out.extend_from_slice(&b),
                Body::Stream(mut s) => {
                    s.chunked = req.minor_version >= 1;
                    s.keep = keep;
                    self.stream = Some(s);
                }
                Body::File { file, offset, len } if len >= READ_BELOW => {
                    out.send_file(file, offset, len);
                }
                Body::File { file, offset, len } => {
                    let at = out.len();
                    // Below READ_BELOW, so it fits in usize.
                    out.resize(at + len as usize, 0);
                    if let Err(e) = file.read_exact_at(&mut out[at..], offset) {
                        // The head is already out: the only honest thing left is to close.
                        out.truncate(at);
                        tracing::warn!("read failed mid-response: {e}");
                        status = 500;
                        keep = false;
                    }
                }
            }
        }
        if self.root.log == Log::Stderr {
            eprintln!(
                "{} \"{} {} HTTP/1.{}\" {} {}{}{}",
                self.peer,
                req.method,
                req.target.escape_debug(),
                req.minor_version,
                status,
                if head_only { 0 } else { len },
                if reply.note.is_some() { " " } else { "" },
                reply.note.as_deref().unwrap_or("")
            );
        }
        // A stream being compressed closes the connection itself when it ends.
        if keep || self.stream.is_some() {
            Flow::Continue
        } else {
            Flow::Close
        }
    }

    /// Looks at what is at `raw_path` (confined to the root) and answers as
    /// [`decide`] says: a file (whole, a range, or 304), a directory's index or listing, a
    /// redirect to the directory's slash form, or an error.
    fn lookup(&self, req: &Request, raw_path: &str) -> Reply {
        let Some(rel) = decode_path(raw_path) else {
            return error_reply(400);
        };
        if !self.root.options.hidden
            && rel
                .components()
                .any(|c| is_hidden(c.as_os_str().as_bytes()))
        {
            return error_reply(404);
        }
        let file = match self.open(&rel) {
            Ok(f) => f,
            Err(status) => return reply_of(decide(req, raw_path, &Found::Missing(status))),
        };
        let Ok(meta) = file.metadata() else {
            return error_reply(500);
        };
        if meta.is_file() {
            let name = rel
                .file_name()
                .map(OsStr::to_string_lossy)
                .unwrap_or_default();
            return self.file_reply(req, raw_path, &rel, file, &meta, &name);
        }
        let found = if meta.is_dir() {
            Found::Dir
        } else {
            Found::Other
        };
        match decide(req, raw_path, &found) {
            Decision::Index => {
                if let Ok(f) = self.open(&rel.join("index.html"))
                    && let Ok(m) = f.metadata()
                    && m.is_file()
                {
                    return self.file_reply(
                        req,
                        raw_path,
                        &rel.join("index.html"),
                        f,
                        &m,
                        "index.html",
                    );
                }
                listing(req, &file, raw_path, self.root.options.hidden)
            }
            decision => reply_of(decision),
        }
    }

    /// Opens `rel` beneath the root: no `..`, no symlink, no mount crossing can escape.
    fn open(&self, rel: &Path) -> std::result::Result<File, u16> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let res = rustix::fs::openat2(
            &self.root.dir,
            rel,
            OPEN_FLAGS,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        );
        let res = match res {
            // Kernels before 5.6, or a seccomp filter that hides openat2.
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
                open_no_symlinks(&self.root.dir, rel)
            }
            res => res,
        };
        res.map(File::from).map_err(status_of)
    }
}

/// How files are opened. NONBLOCK: opening a FIFO must not hang the server.
const OPEN_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY)
    .union(OFlags::NONBLOCK);

/// The status for a failed open: 404 for what is not there, 503 when the server is out
/// of descriptors or memory (the file is fine: try again), 403 for the rest (EXDEV or
/// ELOOP: the path tried to leave the directory).
fn status_of(e: rustix::io::Errno) -> u16 {
    use rustix::io::Errno;
    match e {
        Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG => 404,
        Errno::MFILE | Errno::NFILE | Errno::NOMEM => 503,
        _ => 403,
    }
}

/// The fallback without `openat2`: walks `rel` one component at a time from `dir`, each
/// opened with `O_NOFOLLOW`, so no symlink is followed at all (stricter than `openat2`,
/// which allows symlinks that stay inside). `rel` holds no `..` (see [`decode_path`]).
fn open_no_symlinks(dir: &OwnedFd, rel: &Path) -> rustix::io::Result<OwnedFd> {
    use std::path::Component;
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => names.push(n),
            Component::CurDir => {}
            _ => return Err(rustix::io::Errno::XDEV),
        }
    }
    let Some((last, parents)) = names.split_last() else {
        return rustix::fs::openat(dir, ".", OPEN_FLAGS | OFlags::DIRECTORY, Mode::empty());
    };
    let mut at: Option<OwnedFd> = None;
    for name in parents {
        let base = at.as_ref().unwrap_or(dir);
        let next = rustix::fs::openat(
            base,
            *name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        at = Some(next);
    }
    let base = at.as_ref().unwrap_or(dir);
    rustix::fs::openat(base, *last, OPEN_FLAGS | OFlags::NOFOLLOW, Mode::empty())
}

fn error_reply(status: u16) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
        body: Body::Bytes(error_page(status)),
        note: None,
    }
}

/// 204 to an `OPTIONS` request under `--cors`: what a cross-origin page may do.
fn preflight(req: &Request) -> Reply {
    Reply {
        status: 204,
        headers: vec![
            ("Allow", cors::ALLOW_METHODS.into()),
            ("Access-Control-Allow-Methods", cors::ALLOW_METHODS.into()),
            (
                "Access-Control-Allow-Headers",
                cors::allow_headers(req).to_owned().into(),
            ),
            ("Access-Control-Max-Age", cors::MAX_AGE.into()),
        ],
        body: Body::Bytes(Vec::new()),
        note: None,
    }
}

/// The response for a decision that names no file (those are [`file_reply`]'s).
fn reply_of(decision: Decision) -> Reply {
    match decision {
        Decision::Error(status) => error_reply(status),
        Decision::NotImplemented => {
            let mut r = error_reply(501);
            r.headers.push(("Allow", "GET, HEAD".into()));
            r
        }
        Decision::Redirect(location) => {
            let mut r = error_reply(301);
            r.headers.push(("Location", location.into()));
            r
        }
        Decision::Unsatisfiable { size } => {
            let mut r = error_reply(416);
            r.headers
                .push(("Content-Range", format!("bytes */{size}").into()));
            r
        }
        // Only ever decided for a file or a directory, which the caller answers.
        Decision::Index | Decision::NotModified | Decision::File { .. } => error_reply(500),
    }
}

/// Percent-decodes the path segment by segment. `None` (a 400) for `..`, or a segment
/// that decodes to something holding `/` or NUL (an encoded slash smuggling a separator).
fn decode_path(raw: &str) -> Option<PathBuf> {
    let mut rel = PathBuf::new();
    for seg in raw.split('/') {
        let bytes: Vec<u8> = percent_decode(seg.as_bytes()).collect();
        match &bytes[..] {
            b"" | b"." => continue,
            b".." => return None,
            b if b.contains(&b'/') || b.contains(&0) => return None,
            b => rel.push(OsStr::from_bytes(b)),
        }
    }
    Some(rel)
}

impl FileHandler {
    /// A regular file, as [`decide`] says: 200, or 206/416 for a `Range`, or 304; in the
    /// coding [`encoding::choose`] picks when compression is on (a fresh precompressed
    /// sibling at `rel` + `.br`/`.zst`/`.gz`, else compressed here).
    fn file_reply(
        &self,
        req: &Request,
        raw_path: &str,
        rel: &Path,
        file: File,
        meta: &std::fs::Metadata,
        name: &str,
    ) -> Reply {
        let size = meta.len();
        let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
        let (last_modified, mut etag) = VALIDATORS.with(|c| c.of(mtime, size));
        // Only a compressible type pays for negotiation; the plain path stays as it was.
        let compress = self.root.options.compress && encoding::compressible(content_type(name));
        let coding = if compress {
            encoding::choose(req, content_type(name), |c| {
                size >= encoding::MIN_SIZE || self.sibling(rel, c, mtime).is_some()
            })
        } else {
            None
        };
        if let Some(c) = coding {
            // Another representation, another tag: `"5f-a"` becomes `"5f-a-br"`.
            etag.pop();
            etag.push_str(c.etag_suffix());
            etag.push('"');
        }
        let facts = FileFacts {
            name,
            size,
            validators: Validators {
                etag: &etag,
                last_modified: &last_modified,
                mtime: mtime
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            },
        };
        let vary = ("Vary", Cow::Borrowed("Accept-Encoding"));
        let (content_type, range) = match decide(req, raw_path, &Found::File(facts)) {
            Decision::File {
                content_type,
                range,
            } => (content_type, range),
            Decision::NotModified => {
                let mut headers = vec![
                    ("ETag", etag.into()),
                    ("Last-Modified", last_modified.into()),
                ];
                if compress {
                    headers.push(vary);
                }
                return Reply {
                    status: 304,
                    headers,
                    body: Body::Bytes(Vec::new()),
                    note: None,
                };
            }
            other => return reply_of(other),
        };
        // Room for every header a file response can get: no reallocation per request.
        let mut headers: Vec<(&'static str, Cow<'static, str>)> = Vec::with_capacity(6);
        headers.extend([
            ("Content-Type", content_type.into()),
            ("Last-Modified", last_modified.into()),
            ("ETag", etag.into()),
        ]);
        if compress {
            headers.push(vary);
        }
        if let Some(c) = coding {
            headers.push(("Content-Encoding", c.token().into()));
            let note = Some(c.token().to_owned());
            if let Some((sibling, len)) = self.sibling(rel, c, mtime) {
                return Reply {
                    status: 200,
                    headers,
                    body: Body::File {
                        file: sibling,
                        offset: 0,
                        len,
                    },
                    note,
                };
            }
            if size >= COMPRESS_AT_ONCE_BELOW {
                return match Encoder::new(c) {
                    Ok(encoder) => Reply {
                        status: 200,
                        headers,
                        body: Body::Stream(Box::new(Streaming {
                            file,
                            offset: 0,
                            remaining: size,
                            encoder,
                            chunked: true,
                            keep: true,
                        })),
                        note,
                    },
                    Err(_) => error_reply(500),
                };
            }
            // Below COMPRESS_AT_ONCE_BELOW, so it fits in usize.
            let mut data = vec![0u8; size as usize];
            return match file
                .read_exact_at(&mut data, 0)
                .and_then(|()| compress_all(c, &data))
            {
                Ok(body) => Reply {
                    status: 200,
                    headers,
                    body: Body::Bytes(body),
                    note,
                },
                Err(_) => error_reply(500),
            };
        }
        headers.push(("Accept-Ranges", "bytes".into()));
        match range {
            Some((from, to)) => {
                headers.push(("Content-Range", format!("bytes {from}-{to}/{size}").into()));
                Reply {
                    status: 206,
                    headers,
                    body: Body::File {
                        file,
                        offset: from,
                        len: to - from + 1,
                    },
                    note: None,
                }
            }
            None => Reply {
                status: 200,
                headers,
                body: Body::File {
                    file,
                    offset: 0,
                    len: size,
                },
                note: None,
            },
        }
    }

    /// The precompressed sibling of `rel` for `coding` (`app.js.br`) and its length, if
    /// it is a regular file at least as new as the original (an older one is stale).
    fn sibling(&self, rel: &Path, coding: Coding, mtime: SystemTime) -> Option<(File, u64)> {
        let mut name = rel.as_os_str().to_owned();
        name.push(coding.file_suffix());
        let file = self.open(Path::new(&name)).ok()?;
        let meta = file.metadata().ok()?;
        let fresh = meta.is_file() && meta.modified().is_ok_and(|m| m >= mtime);
        fresh.then_some((file, meta.len()))
    }
}

/// A directory's listing: its entries read here (dotfiles left out unless `hidden`), the
/// page or JSON written by [`listing_page`] / [`listing_json`] as the request's
/// [`View`] asks.
fn listing(req: &Request, dir: &File, raw_path: &str, hidden: bool) -> Reply {
    use rustix::fs::{AtFlags, FileType};
    let Ok(entries) = rustix::fs::Dir::read_from(dir) else {
        return error_reply(403);
    };
    let mut list: Vec<Entry> = entries
        .filter_map(|e| e.ok())
        .filter(|e| !matches!(e.file_name().to_bytes(), b"." | b".."))
        .filter(|e| hidden || !is_hidden(e.file_name().to_bytes()))
        .map(|e| {
            // Not following symlinks: a link's own size and time say nothing of what
            // lies outside the directory.
            let stat = rustix::fs::statat(dir, e.file_name(), AtFlags::SYMLINK_NOFOLLOW).ok();
            let is_dir = match e.file_type() {
                FileType::Directory => true,
                FileType::Unknown => {
                    stat.is_some_and(|s| FileType::from_raw_mode(s.st_mode).is_dir())
                }
                _ => false,
            };
            Entry {
                name: e.file_name().to_bytes().to_vec(),
                is_dir,
                size: if is_dir {
                    0
                } else {
                    stat.map_or(0, |s| u64::try_from(s.st_size).unwrap_or(0))
                },
                mtime: stat.map_or(0, |s| u64::try_from(s.st_mtime).unwrap_or(0)),
            }
        })
        .collect();
    let view = View::of(req);
    let (content_type, body) = if view.json {
        ("application/json", listing_json(raw_path, &mut list, view))
    } else {
        let date = |t: u64| httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(t));
        (
            "text/html; charset=utf-8",
            listing_page(raw_path, &mut list, view, date),
        )
    };
    Reply {
        status: 200,
        headers: vec![
            ("Content-Type", content_type.into()),
            // The same URL answers HTML or JSON by Accept.
            ("Vary", "Accept".into()),
        ],
        body: Body::Bytes(body),
        note: None,
    }
}

/// The `Date` header, formatted at most once a second per thread.
fn http_date_now() -> String {
    NOW.with(|c| c.format(SystemTime::now()))
}

thread_local! {
    static NOW: DateCache = const { DateCache::new() };
    static VALIDATORS: ValidatorCache = const { ValidatorCache::new() };
}

/// `Last-Modified` and `ETag` of the last file answered, kept per thread: most requests
/// ask for the same few files, and formatting both is most of a small response's user time.
struct ValidatorCache(std::cell::RefCell<Option<(u64, u64, String, String)>>);

impl ValidatorCache {
    const fn new() -> ValidatorCache {
        ValidatorCache(std::cell::RefCell::new(None))
    }

    /// The two validators of a file modified at `mtime` with `size` bytes.
    fn of(&self, mtime: SystemTime, size: u64) -> (String, String) {
        let secs = mtime
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut c = self.0.borrow_mut();
        let (_, _, last_modified, etag) = match &mut *c {
            Some(v) if v.0 == secs && v.1 == size => v,
            slot => slot.insert((
                secs,
                size,
                httpdate::fmt_http_date(mtime),
                // nginx's form: changes when the file is rewritten (mtime) or resized.
                format!("\"{secs:x}-{size:x}\""),
            )),
        };
        (last_modified.clone(), etag.clone())
    }
}

/// An HTTP date of one second, formatted once and reused while it is asked for again.
struct DateCache(std::cell::RefCell<(u64, String)>);

impl DateCache {
    const fn new() -> DateCache {
        DateCache(std::cell::RefCell::new((0, String::new())))
    }

    fn format(&self, t: SystemTime) -> String {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut c = self.0.borrow_mut();
        if c.0 != secs || c.1.is_empty() {
            *c = (secs, httpdate::fmt_http_date(t));
        }
        c.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_or_refuse() {
        assert_eq!(decode_path("/a%20b/c"), Some(PathBuf::from("a b/c")));
        assert_eq!(decode_path("//./x/"), Some(PathBuf::from("x")));
        for bad in [
            "/..",
            "/a/../../b",
            "/%2e%2e/x",
            "/%2E%2E",
            "/a%2f..%2fb",
            "/a%00b",
            "/..%2f",
        ] {
            assert_eq!(decode_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_fallback_walk_follows_no_symlink() {
        let tmp = std::env::temp_dir().join(format!("sockit-serve-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("root/sub")).unwrap();
        std::fs::write(tmp.join("secret"), "x").unwrap();
        std::fs::write(tmp.join("root/sub/f"), "ok").unwrap();
        std::os::unix::fs::symlink("../secret", tmp.join("root/leak")).unwrap();
        std::os::unix::fs::symlink("..", tmp.join("root/up")).unwrap();
        let dir = rustix::fs::open(
            tmp.join("root"),
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let read = |p: &str| {
            open_no_symlinks(&dir, Path::new(p)).map(|fd| {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut File::from(fd), &mut s).map(|_| s)
            })
        };
        assert_eq!(read("sub/f").unwrap().unwrap(), "ok");
        assert!(read("leak").is_err());
        assert!(read("up/secret").is_err());
        assert!(read("../secret").is_err());
        assert!(open_no_symlinks(&dir, Path::new("")).is_ok());
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn validators_follow_the_file() {
        let v = ValidatorCache::new();
        let t = UNIX_EPOCH + std::time::Duration::from_secs(0x5f);
        assert_eq!(
            v.of(t, 10),
            ("Thu, 01 Jan 1970 00:01:35 GMT".into(), "\"5f-a\"".into())
        );
        assert_eq!(v.of(t, 11).1, "\"5f-b\"");
        assert_eq!(
            v.of(t + std::time::Duration::from_secs(1), 11).1,
            "\"60-b\""
        );
        assert_eq!(v.of(t, 10).1, "\"5f-a\"");
    }

    #[test]
    fn failed_opens_map_to_statuses() {
        use rustix::io::Errno;
        assert_eq!(status_of(Errno::NOENT), 404);
        assert_eq!(status_of(Errno::XDEV), 403);
        assert_eq!(status_of(Errno::LOOP), 403);
        assert_eq!(status_of(Errno::MFILE), 503);
    }
}
