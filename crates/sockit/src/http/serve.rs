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
use crate::proto::http::server::head::{error_page, write_head};
use crate::proto::http::server::listing::listing_page;
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
    /// [`cors`](crate::proto::http::server::cors).
    pub cors: bool,
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
}

impl Handler for FileHandler {
    fn on_data(&mut self, data: &[u8], out: &mut Output) -> Flow {
        self.buf.extend_from_slice(data);
        self.answer(out)
    }

    fn on_drained(&mut self, out: &mut Output) -> Flow {
        if self.buf.is_empty() {
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

    fn error(&self, out: &mut Output, req: &Request, status: u16) {
        self.send(req, error_reply(status), false, false, out);
    }

    fn send(
        &self,
        req: &Request,
        reply: Reply,
        keep: bool,
        head_only: bool,
        out: &mut Output,
    ) -> Flow {
        let len = reply.body.len();
        let date = http_date_now();
        let len_text = len.to_string();
        let mut headers: Vec<(&str, &str)> = vec![
            ("Server", concat!("sockit/", env!("CARGO_PKG_VERSION"))),
            ("Date", &date),
            ("Connection", if keep { "keep-alive" } else { "close" }),
        ];
        if reply.status != 304 && reply.status != 204 {
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
        if keep { Flow::Continue } else { Flow::Close }
    }

    /// Looks at what is at `raw_path` (confined to the root) and answers as
    /// [`decide`] says: a file (whole, a range, or 304), a directory's index or listing, a
    /// redirect to the directory's slash form, or an error.
    fn lookup(&self, req: &Request, raw_path: &str) -> Reply {
        let Some(rel) = decode_path(raw_path) else {
            return error_reply(400);
        };
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
            return file_reply(req, raw_path, file, &meta, &name);
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
                    return file_reply(req, raw_path, f, &m, "index.html");
                }
                listing(&file, raw_path)
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

/// A regular file, as [`decide`] says: 200, or 206/416 for a `Range`, or 304.
fn file_reply(
    req: &Request,
    raw_path: &str,
    file: File,
    meta: &std::fs::Metadata,
    name: &str,
) -> Reply {
    let size = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let (last_modified, etag) = VALIDATORS.with(|c| c.of(mtime, size));
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
    let (content_type, range) = match decide(req, raw_path, &Found::File(facts)) {
        Decision::File {
            content_type,
            range,
        } => (content_type, range),
        Decision::NotModified => {
            return Reply {
                status: 304,
                headers: vec![
                    ("ETag", etag.into()),
                    ("Last-Modified", last_modified.into()),
                ],
                body: Body::Bytes(Vec::new()),
                note: None,
            };
        }
        other => return reply_of(other),
    };
    let mut headers: Vec<(&'static str, Cow<'static, str>)> = vec![
        ("Content-Type", content_type.into()),
        ("Last-Modified", last_modified.into()),
        ("ETag", etag.into()),
        ("Accept-Ranges", "bytes".into()),
    ];
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

/// A directory's listing: its entries read here, the page written by [`listing_page`].
fn listing(dir: &File, raw_path: &str) -> Reply {
    let Ok(entries) = rustix::fs::Dir::read_from(dir) else {
        return error_reply(403);
    };
    let mut names: Vec<(Vec<u8>, bool)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| !matches!(e.file_name().to_bytes(), b"." | b".."))
        .map(|e| {
            let is_dir = match e.file_type() {
                rustix::fs::FileType::Directory => true,
                rustix::fs::FileType::Unknown => {
                    rustix::fs::statat(dir, e.file_name(), rustix::fs::AtFlags::empty())
                        .map(|s| rustix::fs::FileType::from_raw_mode(s.st_mode).is_dir())
                        .unwrap_or(false)
                }
                _ => false,
            };
            (e.file_name().to_bytes().to_vec(), is_dir)
        })
        .collect();
    Reply {
        status: 200,
        headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
        body: Body::Bytes(listing_page(raw_path, &mut names)),
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
