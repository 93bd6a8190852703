//! The exec server's I/O: one tokio task per connection drives a [`Session`] with the
//! socket, the clock, and a child process.
//!
//! The program runs without a shell, in a process group of its own, so that a time limit,
//! an output limit, a client that leaves, or a server that stops can kill everything it
//! started (SIGKILL to the group) — and the server reaps it: no zombie is left behind.
//! When the program exits by itself, whatever it left running in its group is killed too:
//! a command lives as long as its request.
//!
//! Output is read from the pipes straight into frames (at most [`MAX_CHUNK`] bytes each)
//! and queued for the socket; while the queue is full the pipes are not read, so a client
//! that reads slowly slows the program down instead of growing the server's memory.
//!
//! # Strangers
//! Before a client has authenticated it costs the server a few bytes and a few seconds:
//! the only frame it may send is the 33-byte `A` (a longer length header is refused as
//! soon as its 4 bytes arrive), it has [`AUTH_TIMEOUT`] to send it, and it waits in a
//! pool of its own ([`ServeOptions::max_strangers`]) apart from the commands'
//! ([`ServeOptions::max_commands`]). When the pool is full, a newcomer takes the place of
//! the stranger that has waited longest, so connections that never authenticate cannot
//! keep a token holder out: it authenticates within a round trip, long before it is the
//! oldest. Only an authenticated client can find the server busy.
//!
//! # TLS
//! With [`ServeOptions::tls`] (a `tls://` address), each connection's TLS handshake runs
//! before the greeting, through the socket layer's one async TLS type
//! ([`crate::socket::tokio_tls`]); the frames then travel inside it unchanged. The
//! handshake is part of being a stranger: it runs holding a place in the strangers' pool
//! (a newcomer can take it) and within the same [`AUTH_TIMEOUT`], counted from the
//! connection, as authentication. A peer that sends plain text, stalls or breaks off the
//! handshake loses its connection, logged in one line with the reason.
//!
//! # A client that leaves
//! The client keeps its sending side open until the exit status; its end of stream (or a
//! reset) before that means it left, and the program's group is killed at once. While the
//! program does not take its stdin, the client's frames are not read (that is the
//! backpressure), so the socket is watched for the hang-up itself (`EPOLLRDHUP`). A hang-up
//! can hide behind the unread stdin, though: the client's kernel sends its FIN only after
//! the data before it, into a window the server keeps shut. So while stdin is backed up
//! the server also sends an empty `O` frame every [`PROBE_INTERVAL`]: a client that is
//! there ignores it, and the kernel of one that left answers with a reset, which the
//! watch sees.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, Interest, ReadHalf, WriteHalf};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use super::strangers::{Limits, Strangers, Ticket};
use super::token::random;
use crate::error::Result;
use crate::frame::{FrameError, LengthCodec};
use crate::proto::exec::{
    Action, Budget, CHALLENGE_LEN, ExitStatus, Kind, MAX_CHUNK, Message, PREFIX_LEN, Policy,
    Refusal, Session, prefix,
};
use crate::server::{Server, Stopping};
use crate::socket::{Peer, ServerTls, TokioStream};

/// How long a client has, after connecting, to authenticate and name its command.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client has, after connecting, to authenticate: one round trip for a client
/// that holds the token, so a stranger's connection is short-lived.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(3);

/// Replaced strangers the connection limit leaves room for while they close (see
/// [`ServeOptions::max_connections`]).
pub const REPLACED_SLACK: usize = 1024;

/// How often a client whose stdin is backed up is probed with an empty `O` frame.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Connections waiting to authenticate, by default.
pub const DEFAULT_MAX_STRANGERS: usize = 16;

/// Most bytes read and dropped from a stranger that is refused.
const STRANGER_DRAIN: usize = 64 * 1024;

/// How long a refused stranger's last words and drain may take.
const STRANGER_TIME: Duration = Duration::from_secs(1);

/// Output bytes queued for the socket beyond which the program's pipes are left unread.
const HIGH_WATER: usize = 4 * MAX_CHUNK;

/// How long last words (a refusal, the exit status) may take to reach a client.
const LAST_WORDS: Duration = Duration::from_secs(5);

/// Capacity asked for the program's stdout and stderr pipes (the default is 64 KiB).
const PIPE_SIZE: usize = 1 << 20;

/// Most bytes read and dropped after the last message, waiting for the client to close.
const DRAIN_LIMIT: usize = 16 << 20;

/// What an exec server enforces.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Token, permitted programs, output limit.
    pub policy: Arc<Policy>,
    /// Wall-clock limit of each command; `None` for none.
    pub timeout: Option<Duration>,
    /// Authenticated connections (so commands) at once; more are told the server is busy.
    pub max_commands: usize,
    /// Connections waiting to authenticate at once; a newcomer beyond them replaces the
    /// one that has waited longest (see "Strangers" above).
    pub max_strangers: usize,
    /// Speak TLS with this identity (for a `tls://` address; see "TLS" above).
    pub tls: Option<ServerTls>,
}

impl ServeOptions {
    /// The connection limit to bind the server with: every command and every stranger,
    /// and [`REPLACED_SLACK`] strangers that were replaced and are still closing. The
    /// accept loop counts a connection until its task ends, and a burst of newcomers is
    /// accepted faster than the strangers they replace finish writing their one-line
    /// refusal: without this room, the burst itself would make a token holder who arrives
    /// behind it find the server full.
    pub fn max_connections(&self) -> usize {
        self.max_commands
            .saturating_add(self.max_strangers)
            .saturating_add(REPLACED_SLACK)
    }
}

/// Serves exec clients on `server` until its shutdown handle fires.
pub fn serve(server: Server, options: ServeOptions) -> Result<()> {
    let tls = options.tls.is_some();
    if tls != matches!(server.local_endpoint(), crate::addr::Endpoint::Tls(_)) {
        return Err(crate::error::Error::Unsupported {
            model: "exec",
            what: "TLS on an address that is not tls://, or a tls:// address without TLS",
        });
    }
    // A TLS client expects a handshake, not a plain-text frame: it is just closed.
    let busy = match tls {
        true => Bytes::new(),
        false => Message::Refuse("server busy: too many connections, try again later".into())
            .to_frame()
            .expect("a short refusal fits in a frame"),
    };
    let limits = Arc::new(Limits {
        commands: Arc::new(Semaphore::new(options.max_commands)),
        strangers: Strangers::new(options.max_strangers),
    });
    let options = Arc::new(options);
    // The tasks get plain streams; with TLS, each puts its own on (see "TLS" above).
    server.serve_tasks_plain(&busy, move |stream, peer, stopping| {
        let options = options.clone();
        let limits = limits.clone();
        async move {
            match serve_one(stream, &peer, stopping, &options, &limits).await {
                Ok(()) => {}
                Err(e) => tracing::debug!(%peer, error = %e, "exec connection ended"),
            }
        }
    })
}

/// The client's frames, read as they come. [`Frames::next`] is cancel-safe: bytes read
/// stay in the buffer until a whole frame is there.
struct Frames {
    reader: ReadHalf<TokioStream>,
    codec: LengthCodec,
    buf: BytesMut,
}

impl Frames {
    /// The next frame's payload; `None` at a clean end of stream.
    async fn next(&mut self) -> Option<Result<BytesMut, FrameError>> {
        loop {
            match self.codec.decode_frame(&mut self.buf) {
                Ok(Some(frame)) => return Some(Ok(frame)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            self.buf.reserve(8 * 1024);
            match self.reader.read_buf(&mut self.buf).await {
                Ok(0) => return self.codec.decode_eof(&mut self.buf).transpose(),
                Ok(_) => {}
                Err(e) => return Some(Err(e.into())),
            }
        }
    }
}

/// One connection, start to end. Errors are this peer's and end only it.
async fn serve_one(
    stream: TokioStream,
    peer: &Peer,
    mut stopping: Stopping,
    options: &ServeOptions,
    limits: &Limits,
) -> io::Result<()> {
    let mut ticket = Some(limits.strangers.enter());
    let start = Instant::now();
    let stream = match &options.tls {
        Some(tls) => {
            let Some(stream) = tls_handshake(stream, tls, peer, &mut stopping, &ticket).await
            else {
                return Ok(());
            };
            stream
        }
        None => stream,
    };
    let tls = stream.is_tls();
    let watch = stream.as_fd().try_clone_to_owned()?;
    // SAFETY: `watch` is an OwnedFd, open and unchanged for as long as the AsyncFd owns it;
    // it is a second descriptor of the socket, only ever polled, never read.
    let hangup = unsafe { AsyncFd::register_with_interest(watch, Interest::READABLE) }
        .map_err(io::Error::from)?;
    let (reader, mut writer) = tokio::io::split(stream);
    let mut challenge = [0u8; CHALLENGE_LEN];
    random(&mut challenge).map_err(io::Error::other)?;
    let mut session = Session::new(options.policy.clone(), challenge);
    let mut frames = Frames {
        reader,
        codec: LengthCodec::new(session.max_frame()),
        buf: BytesMut::new(),
    };
    writer.write_all(&frame(session.greeting())).await?;
    writer.flush().await?;

    let start = tokio::select! {
        start = handshake(&mut frames, &mut session, &limits.commands, &mut ticket, start) => start,
        _ = stopping.wait() => Start::Refuse(Refusal("server is shutting down".into())),
    };
    let (program, argv, _permit) = match start {
        Start::Run {
            program,
            argv,
            permit,
        } => (program, argv, permit),
        Start::Gone => return Ok(()),
        Start::Evicted => {
            tracing::info!(%peer, "stranger replaced by a newcomer");
            let refusal = Refusal("too many connections waiting to authenticate".into());
            let note = frame(refusal.into());
            let words = async {
                writer.write_all(&note).await?;
                writer.flush().await
            };
            let _ = tokio::time::timeout(STRANGER_TIME, words).await;
            return Ok(());
        }
        Start::Refuse(refusal) => {
            tracing::info!(%peer, reason = %refusal, "refused");
            let last = VecDeque::from([frame(refusal.into())]);
            match &ticket {
                // A stranger's last words and drain are short, and end at once when a
                // newcomer needs its place.
                Some(t) => {
                    let words = async {
                        last_words(&mut writer, last, STRANGER_TIME).await;
                        drain(&mut frames, STRANGER_DRAIN, STRANGER_TIME).await;
                    };
                    tokio::select! {
                        _ = words => {}
                        _ = t.evicted.notified() => {}
                    }
                }
                None => {
                    last_words(&mut writer, last, LAST_WORDS).await;
                    drain(&mut frames, DRAIN_LIMIT, LAST_WORDS).await;
                }
            }
            return Ok(());
        }
    };

    let mut command = Command::new(&program);
    command
        .arg0(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        // A Unix peer has no port: none may leak in from the server's own environment.
        .env_remove("SOCKIT_REMOTE_PORT");
    match peer {
        Peer::Inet(a) => command
            .env("SOCKIT_REMOTE_ADDR", a.ip().to_canonical().to_string())
            .env("SOCKIT_REMOTE_PORT", a.port().to_string()),
        Peer::Unix(_) => command.env("SOCKIT_REMOTE_ADDR", peer.to_string()),
    };
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let refusal = Refusal(format!("cannot run {}: {e}", argv[0]));
            last_words(
                &mut writer,
                VecDeque::from([frame(refusal.into())]),
                LAST_WORDS,
            )
            .await;
            drain(&mut frames, DRAIN_LIMIT, LAST_WORDS).await;
            return Ok(());
        }
    };
    tracing::info!(%peer, ?argv, pid = child.id(), "running");
    let mut run = Run::new(child, session, tls);
    let end = run
        .drive(
            &mut frames,
            &mut writer,
            &mut stopping,
            &hangup,
            options.timeout,
        )
        .await;
    run.finish(end, peer, &mut frames, &mut writer).await;
    Ok(())
}

/// TLS on a stranger's connection: the handshake within [`AUTH_TIMEOUT`] of `start`,
/// given up when a newcomer takes the stranger's place or the server stops. `None` when
/// the connection is over (its failure logged in one line).
async fn tls_handshake(
    stream: TokioStream,
    tls: &ServerTls,
    peer: &Peer,
    stopping: &mut Stopping,
    ticket: &Option<Ticket>,
) -> Option<TokioStream> {
    let stream = match stream.tls_server(tls) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot start TLS connection");
            return None;
        }
    };
    let evicted = async {
        match ticket.as_ref() {
            Some(t) => t.evicted.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = stream.handshake(AUTH_TIMEOUT) => match r {
            Ok(()) => Some(stream),
            Err(e) => {
                tracing::info!(%peer, reason = %e, "TLS connection refused");
                None
            }
        },
        _ = evicted => {
            tracing::info!(%peer, "stranger replaced by a newcomer during its TLS handshake");
            None
        }
        _ = stopping.wait() => None,
    }
}

/// How the handshake ended.
enum Start {
    /// Authenticated and permitted: run `program`, holding a command's `permit`.
    Run {
        /// The permitted file to execute.
        program: std::path::PathBuf,
        /// The whole command line.
        argv: Vec<String>,
        /// The command's place among [`ServeOptions::max_commands`].
        permit: OwnedSemaphorePermit,
    },
    /// Refused, with the reason to send.
    Refuse(Refusal),
    /// A stranger whose place a newcomer took.
    Evicted,
    /// The client left.
    Gone,
}

/// Authentication (within [`AUTH_TIMEOUT`] of `start`, the connection's arrival, as a
/// stranger holding `ticket`, which it gives up once authenticated), then the command
/// (within [`HANDSHAKE_TIMEOUT`] of `start`, holding a command's permit). Cancel-safe, as
/// [`Frames::next`] is.
async fn handshake(
    frames: &mut Frames,
    session: &mut Session,
    commands: &Arc<Semaphore>,
    ticket: &mut Option<Ticket>,
    start: Instant,
) -> Start {
    let mut permit = None;
    loop {
        let stranger = ticket.is_some();
        let deadline = start
            + if stranger {
                AUTH_TIMEOUT
            } else {
                HANDSHAKE_TIMEOUT
            };
        let evicted = async {
            match ticket.as_ref() {
                Some(t) => t.evicted.notified().await,
                None => std::future::pending().await,
            }
        };
        let next = tokio::select! {
            next = tokio::time::timeout_at(deadline, next_action(frames, session)) => next,
            _ = evicted => return Start::Evicted,
        };
        match next {
            Err(_) if stranger => {
                return Start::Refuse(Refusal("timed out waiting for authentication".into()));
            }
            Err(_) => return Start::Refuse(Refusal("timed out waiting for the command".into())),
            Ok(Next::Action(Action::None)) if session.authenticated() && stranger => {
                *ticket = None;
                frames.codec = LengthCodec::new(session.max_frame());
                match commands.clone().try_acquire_owned() {
                    Ok(p) => permit = Some(p),
                    Err(_) => {
                        return Start::Refuse(Refusal(
                            "server busy: too many connections, try again later".into(),
                        ));
                    }
                }
            }
            Ok(Next::Action(Action::None)) => {}
            Ok(Next::Action(Action::Spawn { program, argv })) => match permit.take() {
                Some(permit) => {
                    return Start::Run {
                        program,
                        argv,
                        permit,
                    };
                }
                None => return Start::Refuse(internal(&Action::Spawn { program, argv })),
            },
            // The session yields no stdin before the command; should that ever change,
            // the peer loses its connection, not the server its task.
            Ok(Next::Action(other)) => return Start::Refuse(internal(&other)),
            Ok(Next::Refuse(r)) => return Start::Refuse(r),
            Ok(Next::Gone) => return Start::Gone,
        }
    }
}

/// Resolves once the client has shut down its sending side or reset the connection,
/// without reading what it sent: `EPOLLRDHUP` on a second registration of the socket.
async fn hung_up(socket: &AsyncFd<OwnedFd>) {
    loop {
        let Ok(mut guard) = socket.readable().await else {
            return;
        };
        let ready = guard.ready();
        if ready.is_read_closed() || ready.is_error() {
            return;
        }
        // Bytes arrived (the client's stdin): not a hang-up. Wait for the next change.
        guard.clear_ready();
    }
}

/// What the client's next frame means.
enum Next {
    Action(Action),
    Refuse(Refusal),
    /// The client closed, reset, or cut a frame short: it is gone.
    Gone,
}

async fn next_action(frames: &mut Frames, session: &mut Session) -> Next {
    match frames.next().await {
        None => Next::Gone,
        Some(Err(FrameError::Io(_) | FrameError::Truncated { .. })) => Next::Gone,
        Some(Err(e)) => Next::Refuse(Refusal(format!("protocol error: {e}"))),
        Some(Ok(payload)) => match Message::decode(payload.freeze()) {
            Ok(msg) => match session.on_message(msg) {
                Ok(action) => Next::Action(action),
                Err(refusal) => Next::Refuse(refusal),
            },
            Err(e) => Next::Refuse(e.into()),
        },
    }
}

/// Why the running phase ended.
enum End {
    /// The program exited and all its output was read.
    Exited(ExitStatus),
    /// The server gives up on it (limit, shutdown, bad client message).
    Refuse(Refusal),
    /// The client left, or its socket failed.
    Gone,
}

/// A running program and everything in flight around it.
struct Run {
    child: Child,
    group: Group,
    session: Session,
    stdin: Option<ChildStdin>,
    /// Client bytes the program has not taken yet; while some wait, no frame is read.
    pending: Bytes,
    stdout: Pipe,
    stderr: Pipe,
    /// Whole frames for the client, in order.
    queue: VecDeque<Bytes>,
    queued: usize,
    exit: Option<ExitStatus>,
    /// The connection is in TLS: what was written may wait in its record backlog.
    tls: bool,
    /// Bytes were written over TLS since the last flush: flush once the queue is empty,
    /// or the last frames could wait in TLS's backlog while the program waits too.
    unflushed: bool,
}

impl Run {
    fn new(mut child: Child, session: Session, tls: bool) -> Run {
        let group = Group(child.id().and_then(|id| i32::try_from(id).ok()));
        for fd in [
            child.stdout.as_ref().map(AsFd::as_fd),
            child.stderr.as_ref().map(AsFd::as_fd),
        ]
        .into_iter()
        .flatten()
        {
            // A bigger pipe lets the program run ahead while the server writes the socket:
            // fewer switches between the two per byte. Best effort (capped by
            // /proc/sys/fs/pipe-max-size for unprivileged servers).
            let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE);
        }
        Run {
            stdin: child.stdin.take(),
            pending: Bytes::new(),
            stdout: Pipe::new(child.stdout.take().map(|p| Box::new(p) as _), Kind::Stdout),
            stderr: Pipe::new(child.stderr.take().map(|p| Box::new(p) as _), Kind::Stderr),
            queue: VecDeque::new(),
            queued: 0,
            exit: None,
            tls,
            unflushed: false,
            child,
            group,
            session,
        }
    }

    async fn drive(
        &mut self,
        frames: &mut Frames,
        writer: &mut WriteHalf<TokioStream>,
        stopping: &mut Stopping,
        hangup: &AsyncFd<OwnedFd>,
        limit: Option<Duration>,
    ) -> End {
        let deadline = limit.map(|t| Instant::now() + t);
        let mut probe = tokio::time::interval(PROBE_INTERVAL);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Some(status) = self.exit
                && self.stdout.src.is_none()
                && self.stderr.src.is_none()
            {
                return End::Exited(status);
            }
            let room = self.queued < HIGH_WATER;
            tokio::select! {
                _ = stopping.wait() => {
                    return End::Refuse(Refusal("server is shutting down; program killed".into()));
                }
                // Frames are not read while stdin waits for the program: watch for the
                // client leaving all the same.
                _ = hung_up(hangup), if !self.pending.is_empty() => return End::Gone,
                _ = probe.tick(), if !self.pending.is_empty() && self.queue.is_empty() => {
                    let empty = frame(Message::Stdout(Bytes::new()));
                    self.queued += empty.len();
                    self.queue.push_back(empty);
                }
                _ = sleep_until(deadline) => {
                    let limit = limit.unwrap_or_default();
                    return End::Refuse(Refusal(format!(
                        "time limit of {limit:?} exceeded; program killed"
                    )));
                }
                r = write_some(writer, &self.queue), if !self.queue.is_empty() || self.unflushed => match r {
                    // The queue was empty: that was the flush.
                    Ok(0) => self.unflushed = false,
                    Ok(n) => {
                        self.sent(n);
                        self.unflushed = self.tls;
                    }
                    Err(_) => return End::Gone,
                },
                r = self.stdout.fill(), if room => {
                    if let Some(refusal) = self.output(r, Kind::Stdout) {
                        return End::Refuse(refusal);
                    }
                }
                r = self.stderr.fill(), if room => {
                    if let Some(refusal) = self.output(r, Kind::Stderr) {
                        return End::Refuse(refusal);
                    }
                }
                next = next_action(frames, &mut self.session), if self.pending.is_empty() => {
                    match next {
                        Next::Action(Action::Stdin(data)) => {
                            // Input for a program that closed its stdin (or exited) is dropped.
                            if self.stdin.is_some() {
                                self.pending = data;
                            }
                        }
                        Next::Action(Action::CloseStdin) => self.stdin = None,
                        Next::Action(other) => return End::Refuse(internal(&other)),
                        Next::Refuse(refusal) => return End::Refuse(refusal),
                        Next::Gone => return End::Gone,
                    }
                }
                r = write_stdin(&mut self.stdin, &self.pending), if !self.pending.is_empty() => {
                    match r {
                        Ok(n) => self.pending.advance(n),
                        // The program closed its stdin: what it did not take is dropped.
                        Err(_) => {
                            self.stdin = None;
                            self.pending.clear();
                        }
                    }
                }
                status = self.child.wait(), if self.exit.is_none() => {
                    let status = match status {
                        Ok(status) => status,
                        Err(e) => {
                            tracing::warn!(error = %e, "wait for child failed");
                            return End::Refuse(Refusal(format!("lost the program: {e}")));
                        }
                    };
                    self.exit = Some(exit_status(status));
                    // The leader is reaped; what it left in its group goes with it, and
                    // its pipes close so the reads above reach their end.
                    self.group.kill();
                    self.group.disarm();
                    self.stdin = None;
                    self.pending.clear();
                }
            }
        }
    }

    /// Accounts for `n` bytes read from a pipe; a refusal when the output limit is hit.
    fn output(&mut self, read: io::Result<usize>, kind: Kind) -> Option<Refusal> {
        let pipe = match kind {
            Kind::Stdout => &mut self.stdout,
            _ => &mut self.stderr,
        };
        let n = match read {
            Ok(0) | Err(_) => {
                pipe.src = None;
                return None;
            }
            Ok(n) => n,
        };
        let (keep, refusal) = match self.session.on_output(n) {
            Budget::Within => (n, None),
            Budget::Exceeded { keep } => (keep, Some(self.session.over_limit())),
        };
        if keep > 0 {
            let frame = pipe.take(keep);
            self.queued += frame.len();
            self.queue.push_back(frame);
        }
        refusal
    }

    fn sent(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let front = self
                .queue
                .front_mut()
                .expect("wrote no more than was queued");
            let k = n.min(front.len());
            front.advance(k);
            n -= k;
            if front.is_empty() {
                self.queue.pop_front();
            }
        }
    }

    /// Ends the connection: kills and reaps the program if it still runs, sends the last
    /// message (exit status or refusal), and closes.
    async fn finish(
        mut self,
        end: End,
        peer: &Peer,
        frames: &mut Frames,
        writer: &mut WriteHalf<TokioStream>,
    ) {
        let last = match end {
            End::Exited(status) => Some(self.session.on_exit(status)),
            End::Refuse(refusal) => {
                tracing::info!(%peer, reason = %refusal, "stopped");
                Some(refusal.into())
            }
            End::Gone => {
                tracing::info!(%peer, "client left; killing its program");
                None
            }
        };
        self.group.kill();
        if self.exit.is_none() {
            match self.child.wait().await {
                Ok(status) => tracing::debug!(%peer, ?status, "reaped"),
                Err(e) => tracing::warn!(%peer, error = %e, "wait for killed child failed"),
            }
        }
        self.group.disarm();
        let Some(last) = last else { return };
        self.queue.push_back(frame(last));
        last_words(writer, self.queue, LAST_WORDS).await;
        drain(frames, DRAIN_LIMIT, LAST_WORDS).await;
    }
}

/// A child's output pipe (stdout or stderr) and the frame being read into.
struct Pipe {
    /// `None` once the pipe reached its end.
    src: Option<Box<dyn AsyncRead + Send + Unpin>>,
    kind: Kind,
    /// Always starts with [`PREFIX_LEN`] bytes reserved for the frame header and kind.
    buf: BytesMut,
}

impl Pipe {
    fn new(src: Option<Box<dyn AsyncRead + Send + Unpin>>, kind: Kind) -> Pipe {
        let mut pipe = Pipe {
            src,
            kind,
            buf: BytesMut::new(),
        };
        pipe.reset();
        pipe
    }

    fn reset(&mut self) {
        self.buf.reserve(PREFIX_LEN + MAX_CHUNK);
        self.buf.put_bytes(0, PREFIX_LEN);
    }

    /// Reads once into the frame; pending forever at the end of the pipe. Cancel-safe.
    async fn fill(&mut self) -> io::Result<usize> {
        let Some(src) = self.src.as_mut() else {
            return std::future::pending().await;
        };
        let room = PREFIX_LEN + MAX_CHUNK - self.buf.len();
        src.read_buf(&mut (&mut self.buf).limit(room)).await
    }

    /// The first `keep` bytes read as a whole frame; the buffer starts a new one.
    fn take(&mut self, keep: usize) -> Bytes {
        self.buf.truncate(PREFIX_LEN + keep);
        let head = prefix(self.kind, keep).expect("a chunk fits in a frame");
        self.buf[..PREFIX_LEN].copy_from_slice(&head);
        let frame = self.buf.split().freeze();
        self.reset();
        frame
    }
}

/// The program's process group; killed (SIGKILL to the whole group) when dropped, so a
/// session cancelled mid-await still leaves nothing running.
struct Group(Option<i32>);

impl Group {
    fn kill(&self) {
        if let Some(pgid) = self.0 {
            // ESRCH (nothing left in the group) is the usual, happy answer.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }

    /// Forgets the group once it is known empty, so that a later kill cannot hit a new
    /// group that reused the number.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A session action the driver does not expect in its current phase.
fn internal(action: &Action) -> Refusal {
    tracing::error!(?action, "exec session produced an action out of phase");
    Refusal("internal error".into())
}

fn exit_status(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus::Code(code),
        (None, Some(sig)) => ExitStatus::Signal(sig),
        // Stopped or continued statuses are not reported by `wait`.
        (None, None) => ExitStatus::Code(-1),
    }
}

fn frame(msg: Message) -> Bytes {
    msg.to_frame()
        .expect("server messages other than output are small")
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// One vectored write of the queued frames; with none queued, a flush (of what TLS
/// holds), which is `Ok(0)`. Cancel-safe: nothing is consumed until it completes.
async fn write_some(
    writer: &mut WriteHalf<TokioStream>,
    queue: &VecDeque<Bytes>,
) -> io::Result<usize> {
    if queue.is_empty() {
        return writer.flush().await.map(|()| 0);
    }
    let mut slices = [IoSlice::new(&[]); 16];
    let mut count = 0;
    for (slot, chunk) in slices.iter_mut().zip(queue) {
        *slot = IoSlice::new(chunk);
        count += 1;
    }
    match writer.write_vectored(&slices[..count]).await? {
        0 => Err(io::ErrorKind::WriteZero.into()),
        n => Ok(n),
    }
}

async fn write_stdin(stdin: &mut Option<ChildStdin>, data: &[u8]) -> io::Result<usize> {
    match stdin {
        Some(s) => s.write(data).await,
        None => Err(io::ErrorKind::BrokenPipe.into()),
    }
}

/// Reads and drops what the client may still send (stdin the program never took, the
/// rest of a bad frame) until it closes, at most `limit` bytes for `time`: closing with
/// unread bytes would reset the connection, and the client could lose the last message
/// before reading it.
async fn drain(frames: &mut Frames, limit: usize, time: Duration) {
    let mut left = limit;
    let mut scratch = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(time, async {
        while left > 0 {
            match frames.reader.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// Writes the queued frames and closes the sending side, giving up after `time`.
async fn last_words(writer: &mut WriteHalf<TokioStream>, queue: VecDeque<Bytes>, time: Duration) {
    let flush = async {
        for chunk in &queue {
            writer.write_all(chunk).await?;
        }
        writer.shutdown().await
    };
    let _ = tokio::time::timeout(time, flush).await;
}
