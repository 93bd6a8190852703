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

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use super::token::random;
use crate::error::Result;
use crate::frame::{FrameError, LengthCodec};
use crate::proto::exec::{
    Action, Budget, CHALLENGE_LEN, ExitStatus, Kind, MAX_CHUNK, Message, PREFIX_LEN, Policy,
    Refusal, Session, prefix,
};
use crate::server::{Server, Stopping};
use crate::socket::{Peer, TokioStream};

/// How long a client has, after connecting, to authenticate and name its command.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// Serves exec clients on `server` until its shutdown handle fires.
pub fn serve(server: Server, options: ServeOptions) -> Result<()> {
    let busy = Message::Refuse("server busy: too many connections, try again later".into())
        .to_frame()
        .expect("a short refusal fits in a frame");
    let options = Arc::new(options);
    server.serve_tasks(&busy, move |stream, peer, stopping| {
        let options = options.clone();
        async move {
            match serve_one(stream, &peer, stopping, &options).await {
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
) -> io::Result<()> {
    let (reader, mut writer) = tokio::io::split(stream);
    let mut frames = Frames {
        reader,
        codec: LengthCodec::default(),
        buf: BytesMut::new(),
    };
    let mut challenge = [0u8; CHALLENGE_LEN];
    random(&mut challenge).map_err(io::Error::other)?;
    let mut session = Session::new(options.policy.clone(), challenge);
    writer.write_all(&frame(session.greeting())).await?;

    let handshake = async {
        loop {
            match next_action(&mut frames, &mut session).await {
                Next::Action(Action::None) => continue,
                Next::Action(Action::Spawn { program, argv }) => return Ok((program, argv)),
                // The session yields no stdin before the command; should that ever change,
                // the peer loses its connection, not the server its task.
                Next::Action(other) => return Err(Some(internal(&other))),
                Next::Refuse(r) => return Err(Some(r)),
                Next::Gone => return Err(None),
            }
        }
    };
    let started = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake) => r.unwrap_or_else(|_| {
            Err(Some(Refusal("timed out waiting for authentication and command".into())))
        }),
        _ = stopping.wait() => Err(Some(Refusal("server is shutting down".into()))),
    };
    let (program, argv) = match started {
        Ok(spawn) => spawn,
        Err(refusal) => {
            if let Some(refusal) = refusal {
                tracing::info!(%peer, reason = %refusal, "refused");
                last_words(&mut writer, VecDeque::from([frame(refusal.into())])).await;
                drain(&mut frames).await;
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
            last_words(&mut writer, VecDeque::from([frame(refusal.into())])).await;
            drain(&mut frames).await;
            return Ok(());
        }
    };
    tracing::info!(%peer, ?argv, pid = child.id(), "running");
    let mut run = Run::new(child, session);
    let end = run
        .drive(&mut frames, &mut writer, &mut stopping, options.timeout)
        .await;
    run.finish(end, peer, &mut frames, &mut writer).await;
    Ok(())
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
}

impl Run {
    fn new(mut child: Child, session: Session) -> Run {
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
        limit: Option<Duration>,
    ) -> End {
        let deadline = limit.map(|t| Instant::now() + t);
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
                _ = sleep_until(deadline) => {
                    let limit = limit.unwrap_or_default();
                    return End::Refuse(Refusal(format!(
                        "time limit of {limit:?} exceeded; program killed"
                    )));
                }
                r = write_some(writer, &self.queue), if !self.queue.is_empty() => match r {
                    Ok(n) => self.sent(n),
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
        last_words(writer, self.queue).await;
        drain(frames).await;
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

/// One vectored write of the queued frames. Cancel-safe: nothing is consumed until it
/// completes.
async fn write_some(
    writer: &mut WriteHalf<TokioStream>,
    queue: &VecDeque<Bytes>,
) -> io::Result<usize> {
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
/// rest of a bad frame) until it closes, at most [`LAST_WORDS`] and [`DRAIN_LIMIT`]: closing
/// with unread bytes would reset the connection, and the client could lose the last
/// message before reading it.
async fn drain(frames: &mut Frames) {
    let mut left = DRAIN_LIMIT;
    let mut scratch = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(LAST_WORDS, async {
        while left > 0 {
            match frames.reader.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// Writes the queued frames and closes the sending side, giving up after [`LAST_WORDS`].
async fn last_words(writer: &mut WriteHalf<TokioStream>, queue: VecDeque<Bytes>) {
    let flush = async {
        for chunk in &queue {
            writer.write_all(chunk).await?;
        }
        writer.shutdown().await
    };
    let _ = tokio::time::timeout(LAST_WORDS, flush).await;
}
