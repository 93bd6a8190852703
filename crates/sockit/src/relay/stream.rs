//! The stream relay: one poll loop over stdin, the stop handle, an optional listener and
//! every connection. One connection is `connect` (and `listen` without -k); a listener
//! and many connections is `listen -k`. A connection is plain or TLS ([`Wire`]); the rules
//! are the same, TLS's close_notify standing for the socket's half-close.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

use super::text::{Crlf, FrameDecoder, FrameEncoder, HexDump};
use super::{
    CHUNK, Direction, Dump, End, Framing, HIGH_WATER, InputEof, LINGER, LineEndings, Options,
    STALL_LIMIT, emit, read_input, wait,
};
use crate::error::{Error, Result};
use crate::socket::listener::accept_error_is_transient;
use crate::socket::tls::{HANDSHAKE_TIMEOUT, ServerTls, TlsStream};
use crate::socket::{AccessList, Listener, Peer, Shutdown, Stream, Wire};

/// How long accepting pauses when the process is out of descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connections accepted per wake-up, so a flood cannot starve stdin and the others.
const ACCEPTS_PER_WAKE: usize = 64;

/// The most unread bytes [`Conn::discard_unread`] takes off a socket before closing it.
const DISCARD_BUDGET: usize = 1 << 20;

/// One relayed connection.
#[derive(Debug)]
pub(super) struct Conn {
    /// The connection, plain or TLS.
    io: Wire,
    /// Who it is, for messages.
    name: String,
    /// stdin bytes not yet taken by the peer.
    outbox: Outbox,
    write: WriteSide,
    /// Since when [`HIGH_WATER`] bytes or more have waited for this peer.
    stalled_since: Option<Instant>,
    /// How its bytes are printed (set by the relay from its options).
    incoming: Incoming,
    /// The peer sent EOF; under one connection, it stays to take the rest of stdin.
    read_closed: bool,
    /// Set when the connection ended this round; the sweep removes it.
    gone: Option<Gone>,
}

/// What happens to a connection's bytes on their way to the output (rules 9 and 10).
#[derive(Debug)]
enum Incoming {
    AsIs,
    Hex(HexDump),
    Frames(FrameDecoder),
}

impl Incoming {
    fn new(options: &Options) -> Incoming {
        match (options.framing, options.dump) {
            (Framing::Raw, Dump::AsIs) => Incoming::AsIs,
            (Framing::Raw, Dump::Hex) => Incoming::Hex(HexDump::default()),
            (Framing::Frames { max_frame }, dump) => {
                Incoming::Frames(FrameDecoder::new(max_frame, dump))
            }
        }
    }
}

/// A framing error as the I/O error that ends one connection.
fn invalid_data(e: crate::frame::FrameError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteSide {
    Open,
    /// Half-close once the outbox is empty.
    CloseWhenFlushed,
    Closed,
}

#[derive(Debug)]
enum Gone {
    /// The peer closed: the normal end.
    Closed,
    /// A socket error (reset, ...).
    Failed(io::Error),
}

impl Conn {
    pub(super) fn new(io: Wire, name: String) -> io::Result<Conn> {
        io.set_nonblocking(true)?;
        Ok(Conn {
            io,
            name,
            outbox: Outbox::default(),
            write: WriteSide::Open,
            stalled_since: None,
            incoming: Incoming::AsIs,
            read_closed: false,
            gone: None,
        })
    }

    /// Empties the socket's receive queue unseen, before a `--send-only` relay closes it:
    /// a socket closed with unread bytes sends a reset, not a FIN, and a reset makes the
    /// peer's kernel drop whatever of ours it has not read yet. Over TLS there always are
    /// such bytes: the session tickets a server sends after the handshake. Bounded, so a
    /// peer that never stops sending gets the reset plain `--send-only` would give it.
    fn discard_unread(&self) {
        let sock = socket2::SockRef::from(&self.io);
        let mut scratch = [std::mem::MaybeUninit::<u8>::uninit(); 16 * 1024];
        let mut budget = DISCARD_BUDGET;
        while budget > 0 {
            match sock.recv_with_flags(&mut scratch, libc::MSG_DONTWAIT) {
                Ok(n) if n > 0 => budget = budget.saturating_sub(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                _ => break,
            }
        }
    }

    fn interest(&self, direction: Direction) -> PollFlags {
        let mut flags = match direction {
            // Read EOF stays readable: asking again would spin.
            _ if self.read_closed => PollFlags::empty(),
            // Never read: RDHUP alone says the peer closed, without touching its bytes.
            Direction::SendOnly => PollFlags::RDHUP,
            Direction::Both | Direction::RecvOnly => PollFlags::IN,
        };
        if !self.outbox.is_empty() || self.io.wants_write() {
            flags |= PollFlags::OUT;
        }
        flags
    }

    /// Queues stdin bytes for this peer and writes what it takes now.
    fn send(&mut self, bytes: &Rc<[u8]>) {
        if self.write == WriteSide::Open && self.gone.is_none() {
            self.outbox.push(bytes.clone());
            self.flush();
        }
    }

    /// Writes what the peer will take, then half-closes if that was asked and is due.
    fn flush(&mut self) {
        let result = self.outbox.flush(&mut self.io).and_then(|()| {
            if self.outbox.is_empty() && self.write == WriteSide::CloseWhenFlushed {
                self.write = WriteSide::Closed;
                match self.io.shutdown_write() {
                    // Already gone: its EOF or error shows up on the next poll.
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
                    other => other,
                }
            } else {
                Ok(())
            }
        });
        let result = result.and_then(|()| match self.io.write_pending() {
            // The socket takes nothing more now: the rest goes when it is writable.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        });
        if let Err(e) = result {
            self.gone = Some(Gone::Failed(e));
        }
    }

    fn half_close_when_flushed(&mut self) {
        if self.write == WriteSide::Open {
            self.write = WriteSide::CloseWhenFlushed;
            self.flush();
        }
    }

    /// The peer sent EOF: under `-k` it leaves; alone, it may still take the rest of stdin.
    fn peer_eof(&mut self, many: bool) {
        if many {
            self.gone = Some(Gone::Closed);
        } else {
            self.read_closed = true;
        }
    }

    /// Handles what poll reported. Only a failing output is an error of the relay.
    fn serve(
        &mut self,
        ready: PollFlags,
        direction: Direction,
        many: bool,
        buf: &mut [u8],
        output: &mut impl Write,
    ) -> Result<()> {
        let trouble = PollFlags::HUP | PollFlags::ERR;
        if self.read_closed {
            // Already at EOF, now hung up or failed: the peer is gone for good. A reset
            // says it dropped bytes of ours unread.
            if ready.intersects(trouble) {
                self.gone = Some(match socket2::SockRef::from(&self.io).take_error() {
                    Ok(Some(e)) | Err(e) => Gone::Failed(e),
                    Ok(None) => Gone::Closed,
                });
                return Ok(());
            }
        } else if direction == Direction::SendOnly {
            if ready.intersects(PollFlags::RDHUP | trouble) {
                match socket2::SockRef::from(&self.io).take_error() {
                    Ok(Some(e)) | Err(e) => self.gone = Some(Gone::Failed(e)),
                    Ok(None) => self.peer_eof(many),
                }
                return Ok(());
            }
        } else if ready.intersects(PollFlags::IN | trouble) {
            let read = match self.io.read(buf) {
                // A TLS peer that closed the socket without close_notify: its EOF all
                // the same (many do; ncat and socat read it so), but nothing proves the
                // stream was not cut short, which is worth a word.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    tracing::warn!(peer = %self.name, "closed without TLS close_notify");
                    Ok(0)
                }
                other => other,
            };
            match read {
                Ok(0) => {
                    let mut rest = Vec::new();
                    if let Incoming::Frames(frames) = &mut self.incoming
                        && let Err(e) = frames.finish(&mut rest)
                    {
                        self.gone = Some(Gone::Failed(invalid_data(e)));
                    } else {
                        self.peer_eof(many);
                    }
                    if !rest.is_empty() {
                        emit(output, &[&rest])?;
                    }
                    return Ok(());
                }
                Ok(n) => {
                    let mut printed = Vec::new();
                    let result = match &mut self.incoming {
                        Incoming::AsIs => {
                            emit(output, &[&buf[..n]])?;
                            Ok(())
                        }
                        Incoming::Hex(hex) => {
                            hex.push(&buf[..n], &mut printed);
                            Ok(())
                        }
                        Incoming::Frames(frames) => frames.push(&buf[..n], &mut printed),
                    };
                    // Frames decoded before a bad one are still printed.
                    if !printed.is_empty() {
                        emit(output, &[&printed])?;
                    }
                    if let Err(e) = result {
                        self.gone = Some(Gone::Failed(invalid_data(e)));
                        return Ok(());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    self.gone = Some(Gone::Failed(e));
                    return Ok(());
                }
            }
        }
        if ready.intersects(PollFlags::OUT | PollFlags::ERR | PollFlags::HUP)
            && (!self.outbox.is_empty() || self.io.wants_write())
        {
            self.flush();
        }
        Ok(())
    }
}

/// Bytes waiting for one peer: shared chunks (a `-k` broadcast queues the same chunk for
/// every peer) and how much of the first one is already sent.
#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<Rc<[u8]>>,
    sent: usize,
    len: usize,
}

impl Outbox {
    fn push(&mut self, bytes: Rc<[u8]>) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.queue.push_back(bytes);
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes until the queue is empty or the socket would block.
    fn flush(&mut self, to: &mut impl Write) -> io::Result<()> {
        while let Some(front) = self.queue.front() {
            match to.write(&front[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.sent += n;
                    self.len -= n;
                    if self.sent == front.len() {
                        self.queue.pop_front();
                        self.sent = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Waits for one admitted connection; `None` if stopped first. With `tls`, the handshake
/// is made here, within [`HANDSHAKE_TIMEOUT`] (the stop handle still heard), before the
/// connection counts: a client
/// that fails it (plain text, say) is refused with a warning and the next one is waited
/// for, so it cannot take the place of a real TLS client.
pub(super) fn accept_one(
    listener: &Listener,
    access: &AccessList,
    stop: &Shutdown,
    tls: Option<&ServerTls>,
) -> io::Result<Option<Conn>> {
    loop {
        let stop_fd = stop.fd();
        let mut fds = [
            PollFd::new(&stop_fd, PollFlags::IN),
            PollFd::new(listener, PollFlags::IN),
        ];
        wait(&mut fds, None)?;
        if stop.is_triggered() || !fds[0].revents().is_empty() {
            return Ok(None);
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                // The access list first: no handshake for a peer that is refused anyway.
                if !access.permits(peer.ip()) {
                    tracing::warn!(%peer, "refused: denied by the access list");
                    continue;
                }
                let io = match tls {
                    None => Wire::Plain(stream),
                    Some(tls) => match handshake(stream, tls, stop) {
                        Ok(Some(s)) => Wire::Tls(Box::new(s)),
                        Ok(None) => return Ok(None),
                        Err(e) => {
                            tracing::warn!(%peer, "refused: {e}");
                            continue;
                        }
                    },
                };
                if let Some(conn) = admit(io, &peer, access) {
                    return Ok(Some(conn));
                }
            }
            Err(e) if accept_error_is_transient(&e) => {
                std::thread::sleep(ACCEPT_BACKOFF);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Makes the TLS handshake of an accepted connection within [`HANDSHAKE_TIMEOUT`],
/// watching the stop handle all the while (a silent client must not hold up SIGTERM):
/// `None` if stopped first.
fn handshake(stream: Stream, tls: &ServerTls, stop: &Shutdown) -> Result<Option<TlsStream>> {
    let mut s = TlsStream::server(stream, tls)?;
    s.set_nonblocking(true)
        .map_err(|e| Error::io("TLS handshake", e))?;
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        if s.handshake_step()? {
            return Ok(Some(s));
        }
        if Instant::now() >= deadline {
            return Err(Error::Tls(format!(
                "TLS handshake: timed out after {}s",
                HANDSHAKE_TIMEOUT.as_secs()
            )));
        }
        let stop_fd = stop.fd();
        let mut flags = PollFlags::IN;
        if s.wants_write() {
            flags |= PollFlags::OUT;
        }
        let mut fds = [PollFd::new(&stop_fd, PollFlags::IN), PollFd::new(&s, flags)];
        wait(&mut fds, Some(deadline)).map_err(|e| Error::io("poll", e))?;
        if stop.is_triggered() || !fds[0].revents().is_empty() {
            return Ok(None);
        }
    }
}

/// Checks `--allow/--deny`; a refused peer is closed by dropping its stream.
fn admit(io: Wire, peer: &Peer, access: &AccessList) -> Option<Conn> {
    if !access.permits(peer.ip()) {
        tracing::warn!(%peer, "refused: denied by the access list");
        return None;
    }
    match Conn::new(io, peer.to_string()) {
        Ok(conn) => {
            tracing::info!(%peer, "connected");
            Some(conn)
        }
        Err(e) => {
            tracing::warn!(%peer, "dropped: {e}");
            None
        }
    }
}

/// Relays until the rules say stop. With `listener`, new connections keep coming and the
/// relay runs until `stop`; without, it ends with its connection.
pub(super) fn relay<O: Write>(
    mut conns: Vec<Conn>,
    listener: Option<(&Listener, &AccessList, Option<&ServerTls>)>,
    input: BorrowedFd<'_>,
    mut output: O,
    options: &Options,
    stop: &Shutdown,
) -> Result<End> {
    let many = listener.is_some();
    let mut input_open = options.direction != Direction::RecvOnly;
    let mut crlf = Crlf::default();
    let mut frames = match options.framing {
        Framing::Raw => None,
        Framing::Frames { .. } if options.line_endings == LineEndings::Crlf => {
            return Err(Error::Setting(
                "frames (--frame) carry lines without their line endings: no --crlf".into(),
            ));
        }
        Framing::Frames { max_frame } => Some(FrameEncoder::new(max_frame)),
    };
    let stdin_line = |e| Error::io("stdin line", invalid_data(e));
    for c in &mut conns {
        c.incoming = Incoming::new(options);
    }
    let mut buf = vec![0u8; CHUNK];
    let mut accept_paused_until: Option<Instant> = None;
    // Since when stdin and the peer have moved no bytes (one connection, after its EOF).
    let mut idle_since = Instant::now();
    loop {
        if stop.is_triggered() {
            return Ok(End::Stopped);
        }
        let mut linger_until = None;
        if !many {
            let Some(conn) = conns.first() else {
                return Ok(End::PeerClosed);
            };
            if conn.read_closed {
                let flushed = conn.outbox.is_empty() && conn.write != WriteSide::CloseWhenFlushed;
                if !input_open && flushed {
                    return Ok(End::PeerClosed);
                }
                // Bytes waiting for a full window are not idleness: the peer only
                // half-closed and may read them later. Only a stdin with nothing to send
                // lingers; a peer that really closed refuses the bytes (EPIPE, reset).
                if conn.outbox.is_empty() {
                    if idle_since.elapsed() >= LINGER {
                        return Ok(End::PeerClosed);
                    }
                    linger_until = Some(idle_since + LINGER);
                }
            }
            if options.direction == Direction::SendOnly
                && !input_open
                && conn.write == WriteSide::Closed
            {
                conn.discard_unread();
                return Ok(End::InputDone);
            }
        }
        let now = Instant::now();
        if accept_paused_until.is_some_and(|t| t <= now) {
            accept_paused_until = None;
        }
        // stdin waits while nobody is there to take it, or while a peer lags behind.
        let read_stdin =
            input_open && !conns.is_empty() && conns.iter().all(|c| c.outbox.len() < HIGH_WATER);
        let stall_ends = conns
            .iter()
            .filter_map(|c| c.stalled_since.map(|t| t + STALL_LIMIT));
        let deadline = accept_paused_until
            .into_iter()
            .chain(stall_ends)
            .chain(linger_until)
            .min();

        let stop_fd = stop.fd();
        let mut fds = Vec::with_capacity(conns.len() + 3);
        fds.push(PollFd::new(&stop_fd, PollFlags::IN));
        let input_at = read_stdin.then(|| {
            fds.push(PollFd::new(&input, PollFlags::IN));
            fds.len() - 1
        });
        let listener_at = match listener {
            Some((l, _, _)) if accept_paused_until.is_none() => {
                fds.push(PollFd::new(l, PollFlags::IN));
                Some(fds.len() - 1)
            }
            _ => None,
        };
        // Bytes TLS already decrypted are readable now, whatever the socket says.
        let buffered: Vec<bool> = conns
            .iter_mut()
            .map(|c| !c.read_closed && options.direction != Direction::SendOnly && c.io.buffered())
            .collect();
        let deadline = if buffered.contains(&true) {
            Some(now)
        } else {
            deadline
        };
        let conns_at = fds.len();
        for c in &conns {
            fds.push(PollFd::new(&c.io, c.interest(options.direction)));
        }
        wait(&mut fds, deadline).map_err(|e| Error::io("poll", e))?;
        let ready: Vec<PollFlags> = fds.iter().map(PollFd::revents).collect();
        drop(fds);
        if !ready[0].is_empty() {
            return Ok(End::Stopped);
        }

        let queued: usize = conns.iter().map(|c| c.outbox.len()).sum();
        let was_closed = conns.iter().filter(|c| c.read_closed).count();
        // Peers first: one found gone now is not handed this round's stdin.
        for ((conn, ready), buffered) in conns.iter_mut().zip(&ready[conns_at..]).zip(buffered) {
            let ready = if buffered {
                *ready | PollFlags::IN
            } else {
                *ready
            };
            if !ready.is_empty() {
                conn.serve(ready, options.direction, many, &mut buf, &mut output)?;
            }
        }
        if conns.iter().filter(|c| c.read_closed).count() != was_closed {
            idle_since = Instant::now();
        }
        sweep(&mut conns, many)?;

        if let Some(at) = input_at
            && !ready[at].is_empty()
            && !conns.is_empty()
        {
            match read_input(input, &mut buf)? {
                None => {}
                Some(0) => {
                    input_open = false;
                    if let Some(frames) = &mut frames {
                        let mut last = Vec::new();
                        frames.finish(&mut last).map_err(stdin_line)?;
                        if !last.is_empty() {
                            let bytes: Rc<[u8]> = last.into();
                            conns.iter_mut().for_each(|c| c.send(&bytes));
                        }
                    }
                    if options.input_eof == InputEof::HalfClose {
                        conns.iter_mut().for_each(Conn::half_close_when_flushed);
                    }
                }
                Some(n) => {
                    idle_since = Instant::now();
                    let bytes: Rc<[u8]> = match (&mut frames, options.line_endings) {
                        (Some(frames), _) => {
                            let mut out = Vec::with_capacity(n + 64);
                            frames.push(&buf[..n], &mut out).map_err(stdin_line)?;
                            out.into()
                        }
                        (None, LineEndings::AsIs) => buf[..n].into(),
                        (None, LineEndings::Crlf) => {
                            let mut out = Vec::with_capacity(n + n / 8);
                            crlf.encode(&buf[..n], &mut out);
                            out.into()
                        }
                    };
                    conns.iter_mut().for_each(|c| c.send(&bytes));
                }
            }
            sweep(&mut conns, many)?;
        }
        if conns.iter().map(|c| c.outbox.len()).sum::<usize>() < queued {
            idle_since = Instant::now();
        }

        if let (Some(at), Some((l, access, tls))) = (listener_at, listener)
            && !ready[at].is_empty()
        {
            for _ in 0..ACCEPTS_PER_WAKE {
                match l.accept() {
                    Ok((stream, peer)) => {
                        if !access.permits(peer.ip()) {
                            tracing::warn!(%peer, "refused: denied by the access list");
                            continue;
                        }
                        // Under -k the handshake is not waited for: it runs in the poll
                        // loop like the bytes that follow, so one slow client holds up
                        // nobody; one that fails it is dropped with a warning. Except
                        // with --send-only, which never reads the socket, so could never
                        // finish it there: then it is made here (the stop handle heard).
                        let io = match tls {
                            None => Wire::Plain(stream),
                            Some(tls) => match if options.direction == Direction::SendOnly {
                                handshake(stream, tls, stop)
                            } else {
                                TlsStream::server(stream, tls).map(Some)
                            } {
                                Ok(Some(s)) => Wire::Tls(Box::new(s)),
                                Ok(None) => return Ok(End::Stopped),
                                Err(e) => {
                                    tracing::warn!(%peer, "refused: {e}");
                                    continue;
                                }
                            },
                        };
                        let Some(mut conn) = admit(io, &peer, access) else {
                            continue;
                        };
                        conn.incoming = Incoming::new(options);
                        if !input_open
                            && options.direction != Direction::RecvOnly
                            && options.input_eof == InputEof::HalfClose
                        {
                            // stdin is over: this peer gets EOF at once, as the others did.
                            conn.half_close_when_flushed();
                        }
                        conns.push(conn);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if accept_error_is_transient(&e) => {
                        tracing::warn!("accept: {e}; pausing");
                        accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                        break;
                    }
                    Err(e) => return Err(Error::io("accept", e)),
                }
            }
            sweep(&mut conns, many)?;
        }

        if many {
            let now = Instant::now();
            for c in &mut conns {
                if c.outbox.len() < HIGH_WATER {
                    c.stalled_since = None;
                } else if now.duration_since(*c.stalled_since.get_or_insert(now)) >= STALL_LIMIT {
                    tracing::warn!(peer = %c.name, "dropped: {HIGH_WATER} bytes unread for {STALL_LIMIT:?}");
                    c.gone = Some(Gone::Closed);
                }
            }
            sweep(&mut conns, many)?;
        }
    }
}

/// Removes the connections that ended this round. A failed one is the relay's error when
/// it was the only one; under `-k` it is logged and the others carry on.
fn sweep(conns: &mut Vec<Conn>, many: bool) -> Result<()> {
    let mut failure = None;
    conns.retain_mut(|c| match c.gone.take() {
        None => true,
        Some(Gone::Closed) => {
            tracing::info!(peer = %c.name, "closed");
            false
        }
        Some(Gone::Failed(e)) if many => {
            tracing::warn!(peer = %c.name, "dropped: {e}");
            false
        }
        // It said EOF first: refusing the rest of stdin is its way of closing. Not an
        // error, but the bytes it refused are lost, which is worth a word.
        Some(Gone::Failed(e)) if c.read_closed => {
            tracing::warn!(peer = %c.name, "closed before taking all of stdin: {e}");
            false
        }
        Some(Gone::Failed(e)) => {
            failure = Some(Error::io(c.name.clone(), e));
            false
        }
    });
    failure.map_or(Ok(()), Err)
}
