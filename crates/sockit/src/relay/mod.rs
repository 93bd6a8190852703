//! The relay behind `sockit connect` and `sockit listen`: stdin → socket and socket →
//! stdout at the same time, like ncat, with its rules written down (and each one tested).
//!
//! One thread polls stdin, the socket(s) and a stop handle together, so nothing ever
//! blocks on the wrong one: typing never waits for the peer, and a peer that closes ends
//! the relay even while stdin stays open and silent (ncat's most reported bug).
//!
//! # Rules for streams (TCP, TLS, Unix stream)
//! Over TLS (`tls://`) the rules are the same, TLS's close_notify standing for the
//! socket's half-close: stdin EOF sends close_notify (then shuts the socket's write side),
//! and the peer's close_notify is its EOF (a peer that closes the socket without one is
//! taken at its word too, with a warning, as ncat does). The handshake is made before
//! anything is relayed: `connect` reports a certificate it does not trust as an error;
//! `listen` refuses (with a warning) a client that fails it and waits for the next; under
//! `-k` the handshake runs in the poll loop, so nobody waits for a slow one.
//! 1. **Full duplex.** Bytes read from stdin go to the peer as soon as it accepts them;
//!    the peer's bytes are written to the output as they arrive, flushed per read (the
//!    output may be a pipe). Up to [`HIGH_WATER`] bytes are queued for a slow peer before
//!    stdin waits for it.
//! 2. **stdin EOF half-closes** the write side (`shutdown(SHUT_WR)`) once everything read
//!    was sent; the relay keeps printing until the peer closes, then ends (exit 0).
//! 3. **[`InputEof::KeepOpen`]** (`--no-shutdown`): stdin EOF does not half-close; the
//!    relay still ends when the peer closes.
//! 4. **The peer closing ends the relay**, whatever stdin is doing. After the peer's EOF
//!    nothing more is read from it, and the relay ends as soon as stdin ends (after the
//!    half-close of rule 2), the peer refuses bytes (EPIPE or a reset: it really closed;
//!    a warning says that the rest of stdin was not delivered), or stdin has had nothing
//!    to send for [`LINGER`]. Bytes still waiting for the peer to take them are not
//!    idleness: while stdin has data, the relay keeps sending, however long the peer's
//!    window stays full. So a peer that only half-closed and still reads
//!    (a client that sends its request, shuts down writing, pauses, then reads the reply
//!    piped into `sockit listen`) gets all of it, and an interactive terminal with nothing
//!    typed still ends [`LINGER`] after the peer's EOF.
//! 5. **[`Direction::SendOnly`]** (`--send-only`, as ncat): the socket is never read
//!    (what arrived is discarded unseen before the close, so that it ends with a FIN, not
//!    a reset that would cost the peer the bytes it has not read yet; over TLS the
//!    server's session tickets always arrive);
//!    at stdin EOF the relay sends what is queued, half-closes and ends (with
//!    `--no-shutdown`: waits for the peer to close instead). A peer that closes first
//!    still ends it.
//! 6. **[`Direction::RecvOnly`]** (`--recv-only`): stdin is never read and the write side
//!    stays open; the relay ends when the peer closes.
//! 7. **[`LineEndings::Crlf`]** (`--crlf`): every `\n` from stdin goes out as `\r\n`
//!    (a `\r\n` already there is left alone).
//! 8. A reset, or any other socket error, ends the relay with [`Error::Io`].
//! 9. **[`Framing::Frames`]** (`--frame`): each stdin line, without its `\n` (or `\r\n`),
//!    goes out as one frame (`docs/frame.md`: 4-byte big-endian length, then the bytes;
//!    a last line without a newline too, at stdin EOF); each frame received is printed as its
//!    bytes and one `\n`. A received length over `max_frame` ends that connection at once
//!    (before the frame arrives), and so does a stream that ends inside a frame: both are
//!    [`Error::Io`] of kind `InvalidData` naming the peer (under [`Accept::Many`], a
//!    warning, and the others carry on). A stdin line over `max_frame` ends the relay
//!    with the same kind of error. Not with [`LineEndings::Crlf`], nor on datagrams
//!    ([`Error::Setting`]).
//! 10. **[`Dump::Hex`]** (`--hex`): received bytes are printed as an `xxd` hex dump
//!     ([`text::hex_lines`]): a stream's reads as they arrive, offsets counted from the
//!     start of the connection; with frames, each frame dumped on its own from offset 0.
//!     stdin is never read as hex.
//!
//! # Rules for datagrams (UDP, Unix datagram)
//! - Each stdin line is one datagram, without its `\n` or `\r\n` (with `--crlf` it ends
//!   in `\r\n` instead); an empty line is an empty datagram; a line longer than
//!   [`MAX_DATAGRAM`] goes out in pieces of that size.
//! - Each datagram received is written out followed by a `\n` when it does not already
//!   end in one (with [`Dump::Hex`]: dumped on its own, from offset 0); a (Unix) datagram
//!   longer than 64 KiB is cut there.
//! - Connected (`connect`): stdin EOF has nothing to close, so the relay waits for replies
//!   until none has come for [`Options::reply_wait`], then ends. `--no-shutdown` keeps it
//!   waiting until stopped; `--send-only` ends it at stdin EOF. A peer that refuses
//!   (ICMP port unreachable, or no Unix socket there) is an error.
//! - Listening (`listen`): peers are told apart by their address. stdin is read only once
//!   some peer has spoken; each line goes to the peer heard from last ([`Accept::One`]) or
//!   to every peer heard from ([`Accept::Many`], the last [`MAX_PEERS`]). A datagram a
//!   peer's full queue cannot take is dropped for that peer, with a warning. The relay
//!   runs until stopped.
//!
//! # Listening on a stream address
//! [`Accept::One`] waits for one connection, stops listening, and relays it by the
//! stream rules. [`Accept::Many`] (`-k`) keeps accepting: every connection's bytes go to
//! the output whole per read (never interleaved inside one read), every stdin read is
//! sent to all connections, stdin EOF half-closes them all (and every later one at once),
//! a connection that closes (or half-closes) just leaves, and the relay runs until stopped. stdin is read
//! only while someone is connected, so nothing typed before is lost. A connection that
//! leaves [`HIGH_WATER`] bytes unread for [`STALL_LIMIT`] is dropped so that it cannot
//! stall the others.
//!
//! A stop handle ([`Shutdown`]) ends every relay at once; a listening Unix socket file is
//! removed when the relay ends (or, for [`Accept::One`], as soon as it stops listening).

mod datagram;
mod stream;
pub mod text;

use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::addr::Endpoint;
use crate::error::{Error, Result};
use crate::proxy::Proxy;
use crate::socket::listener::{self, Bound};
use crate::socket::tls::{ClientOptions, ClientTls, HANDSHAKE_TIMEOUT, ServerTls, TlsStream};
use crate::socket::unix_path::UnixPathGuard;
use crate::socket::{AccessList, DatagramSocket, Listener, Shutdown, Stream, Wire};

/// Bytes queued for one peer before stdin waits (or, under [`Accept::Many`], before the
/// peer starts counting towards [`STALL_LIMIT`]).
pub const HIGH_WATER: usize = 256 * 1024;

/// How long a connection under [`Accept::Many`] may keep [`HIGH_WATER`] bytes unread
/// before it is dropped.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);

/// The largest datagram sent or received (the UDP payload limit over IPv4).
pub const MAX_DATAGRAM: usize = 65_507;

/// Datagram peers remembered by a listening relay; the oldest is forgotten first.
pub const MAX_PEERS: usize = 1024;

/// How long a relay whose peer sent EOF goes on while stdin has nothing to send (rule 4),
/// like socat's `-t`; never counted while bytes wait for the peer.
pub const LINGER: Duration = Duration::from_millis(500);

/// Bytes read from stdin or a socket at a time.
const CHUNK: usize = 64 * 1024;

/// Which ways bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// stdin → socket and socket → output.
    #[default]
    Both,
    /// stdin → socket only; the socket is never read.
    SendOnly,
    /// socket → output only; stdin is never read.
    RecvOnly,
}

/// What stdin EOF does to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputEof {
    /// Half-close the write side, so the peer sees EOF.
    #[default]
    HalfClose,
    /// Keep the write side open; the peer sees nothing.
    KeepOpen,
}

/// How stdin's line endings go on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEndings {
    /// Byte for byte.
    #[default]
    AsIs,
    /// `\n` becomes `\r\n` (network protocols like SMTP and HTTP want it).
    Crlf,
}

/// How the bytes of a stream are cut into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// A byte stream, relayed as it comes.
    #[default]
    Raw,
    /// Length-prefixed frames (`docs/frame.md`, `--frame`): each stdin line goes out as
    /// one frame, each frame received is printed as one line (rule 9). Streams only.
    Frames {
        /// The largest frame sent or accepted ([`crate::frame::DEFAULT_MAX_FRAME`] by
        /// default).
        max_frame: usize,
    },
}

/// How received bytes are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dump {
    /// Byte for byte.
    #[default]
    AsIs,
    /// As a hex dump in `xxd`'s format (`--hex`, rule 10); stdin is still sent as is.
    Hex,
}

/// How many peers a listening relay takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// One connection, then stop listening (`ncat -l`); datagrams: answer the last peer.
    One,
    /// Connections until stopped, stdin to all of them (`ncat -l -k`).
    Many,
}

/// The relay's rules; `Options::default()` is ncat's default behaviour.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which ways bytes flow.
    pub direction: Direction,
    /// What stdin EOF does to a stream.
    pub input_eof: InputEof,
    /// Line endings on the wire.
    pub line_endings: LineEndings,
    /// Streams: raw bytes or frames.
    pub framing: Framing,
    /// How received bytes are printed.
    pub dump: Dump,
    /// Datagrams, connected: how long to keep waiting for replies after stdin EOF (each
    /// reply starts the wait again).
    pub reply_wait: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            direction: Direction::Both,
            input_eof: InputEof::HalfClose,
            line_endings: LineEndings::AsIs,
            framing: Framing::Raw,
            dump: Dump::AsIs,
            reply_wait: Duration::from_secs(1),
        }
    }
}

/// Why a relay ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The peer closed the connection.
    PeerClosed,
    /// stdin ended and there was nothing more to wait for (send-only, or datagram replies).
    InputDone,
    /// The stop handle was triggered.
    Stopped,
}

/// A connected socket, ready to relay.
#[derive(Debug)]
pub struct Link {
    kind: LinkKind,
    remote: Endpoint,
}

#[derive(Debug)]
enum LinkKind {
    Stream(Wire),
    Datagram {
        socket: DatagramSocket,
        // The client's own Unix datagram path, removed with the link.
        _guard: Option<UnixPathGuard>,
    },
}

/// Connects to any endpoint: TCP (`timeout` bounds the connect), Unix stream, UDP, or
/// Unix datagram (bound to a temporary path of its own, so replies can reach it, and
/// removed when the link is dropped). A `tls://` endpoint trusts the system's roots; see
/// [`connect_with`] for other ways.
pub fn connect(endpoint: &Endpoint, timeout: Option<Duration>) -> Result<Link> {
    match endpoint {
        Endpoint::Tls(_) => connect_with(
            endpoint,
            timeout,
            Some(&ClientTls::new(&ClientOptions::default())?),
            None,
        ),
        _ => connect_with(endpoint, timeout, None, None),
    }
}

/// Connects to any endpoint as [`connect`] does, with `tls`'s trust and options for a
/// `tls://` endpoint (the handshake is done, within `timeout` or [`HANDSHAKE_TIMEOUT`],
/// before this returns, so an untrusted server is an error here, in one sentence), and
/// through `proxy` for a `tcp://` or `tls://` one (TLS then runs end to end, through the
/// tunnel).
pub fn connect_with(
    endpoint: &Endpoint,
    timeout: Option<Duration>,
    tls: Option<&ClientTls>,
    proxy: Option<&Proxy>,
) -> Result<Link> {
    if proxy.is_some() && !matches!(endpoint, Endpoint::Tcp(_) | Endpoint::Tls(_)) {
        return Err(Error::Setting(
            "a proxy carries tcp:// and tls:// connections only".into(),
        ));
    }
    let dial = |hp: &crate::addr::HostPort| match proxy {
        Some(p) => p.dial(hp, timeout),
        None => Stream::connect(endpoint, timeout),
    };
    let what = || format!("connect {endpoint}");
    let kind = match endpoint {
        Endpoint::Tcp(hp) => LinkKind::Stream(Wire::Plain(dial(hp)?)),
        Endpoint::Unix(_) => LinkKind::Stream(Wire::Plain(Stream::connect(endpoint, timeout)?)),
        Endpoint::Tls(hp) => {
            let Some(tls) = tls else {
                return Err(Error::Setting(
                    "a tls:// endpoint needs TLS settings".into(),
                ));
            };
            let sock = dial(hp)?;
            let s = TlsStream::connect(sock, tls, &hp.host, timeout.unwrap_or(HANDSHAKE_TIMEOUT))?;
            LinkKind::Stream(Wire::Tls(Box::new(s)))
        }
        Endpoint::Udp(hp) => {
            let addr = hp.resolve()?[0];
            let any: SocketAddr = if addr.is_ipv6() {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            };
            let socket = UdpSocket::bind(any)
                .and_then(|s| s.connect(addr).map(|()| s))
                .map_err(|e| Error::io(what(), e))?;
            LinkKind::Datagram {
                socket: DatagramSocket::Udp(socket),
                _guard: None,
            }
        }
        Endpoint::UnixDgram(path) => {
            let (socket, guard) = bind_temporary_unix_dgram().map_err(|e| {
                Error::io(
                    format!("bind a reply socket in {}", std::env::temp_dir().display()),
                    e,
                )
            })?;
            socket.connect(path).map_err(|e| Error::io(what(), e))?;
            LinkKind::Datagram {
                socket: DatagramSocket::Unix(socket),
                _guard: Some(guard),
            }
        }
    };
    Ok(Link {
        kind,
        remote: endpoint.clone(),
    })
}

impl Link {
    /// Where this link goes, as given.
    pub fn remote(&self) -> &Endpoint {
        &self.remote
    }

    /// Relays `input` ↔ the peer ↔ `output` by the rules of this module until the peer
    /// closes, stdin's end says so, or `stop` is triggered.
    pub fn relay<I: AsFd, O: Write>(
        self,
        input: I,
        output: O,
        options: &Options,
        stop: &Shutdown,
    ) -> Result<End> {
        match self.kind {
            LinkKind::Stream(stream) => {
                let peer = stream::Conn::new(stream, self.remote.to_string())
                    .map_err(|e| Error::io(format!("{}", self.remote), e))?;
                stream::relay(vec![peer], None, input.as_fd(), output, options, stop)
            }
            LinkKind::Datagram { socket, _guard } => datagram::relay(
                &socket,
                datagram::Mode::Connected(&self.remote),
                input.as_fd(),
                output,
                options,
                stop,
            ),
        }
    }
}

/// A bound listening socket (stream or datagram), ready to relay whoever comes.
#[derive(Debug)]
pub struct Listening {
    kind: ListeningKind,
    local: Endpoint,
    access: AccessList,
    guard: Option<UnixPathGuard>,
    /// The identity a `tls://` listener presents ([`Listening::with_tls`]).
    tls: Option<ServerTls>,
}

#[derive(Debug)]
enum ListeningKind {
    Stream(Listener),
    Datagram(DatagramSocket),
}

impl Listening {
    /// Binds `endpoint` as every sockit server does (SO_REUSEADDR, stale Unix socket files
    /// cleared); peers outside `access` are refused (connections) or ignored (datagrams).
    pub fn bind(endpoint: &Endpoint, access: AccessList) -> Result<Listening> {
        let (kind, local, guard) = match endpoint.transport() {
            crate::Transport::Stream => {
                let Bound {
                    mut sockets,
                    local,
                    guard,
                } = listener::bind_stream(endpoint, 1)?;
                (ListeningKind::Stream(sockets.remove(0)), local, guard)
            }
            crate::Transport::Datagram => {
                let Bound {
                    mut sockets,
                    local,
                    guard,
                } = listener::bind_datagram(endpoint, 1)?;
                (ListeningKind::Datagram(sockets.remove(0)), local, guard)
            }
        };
        Ok(Listening {
            kind,
            local,
            access,
            guard,
            tls: None,
        })
    }

    /// The certificate and key a `tls://` listener speaks TLS with; without them it
    /// refuses to relay, rather than fall back to plain text.
    pub fn with_tls(mut self, tls: ServerTls) -> Listening {
        self.tls = Some(tls);
        self
    }

    /// The address really bound (the port the OS chose for port 0).
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    /// Relays `input` ↔ peers ↔ `output` (see the module docs for [`Accept`]).
    pub fn relay<I: AsFd, O: Write>(
        self,
        input: I,
        output: O,
        accept: Accept,
        options: &Options,
        stop: &Shutdown,
    ) -> Result<End> {
        let what = format!("{}", self.local);
        let tls = match (&self.local, &self.tls) {
            (Endpoint::Tls(_), None) => {
                return Err(Error::Setting(format!(
                    "listening on {what} needs a certificate (Listening::with_tls)"
                )));
            }
            (Endpoint::Tls(_), Some(tls)) => Some(tls),
            _ => None,
        };
        match self.kind {
            ListeningKind::Stream(listener) => match accept {
                Accept::One => {
                    let Some(conn) = stream::accept_one(&listener, &self.access, stop, tls)
                        .map_err(|e| Error::io(format!("accept on {what}"), e))?
                    else {
                        return Ok(End::Stopped);
                    };
                    // One connection is all `listen` without -k takes: stop listening now,
                    // so later clients are refused rather than left hanging in the backlog.
                    drop(listener);
                    drop(self.guard);
                    stream::relay(vec![conn], None, input.as_fd(), output, options, stop)
                }
                Accept::Many => {
                    listener
                        .set_nonblocking(true)
                        .map_err(|e| Error::io(format!("listen on {what}"), e))?;
                    let result = stream::relay(
                        Vec::new(),
                        Some((&listener, &self.access, tls)),
                        input.as_fd(),
                        output,
                        options,
                        stop,
                    );
                    drop(self.guard);
                    result
                }
            },
            ListeningKind::Datagram(socket) => {
                let result = datagram::relay(
                    &socket,
                    datagram::Mode::Listening {
                        accept,
                        access: &self.access,
                        local: &self.local,
                    },
                    input.as_fd(),
                    output,
                    options,
                    stop,
                );
                drop(self.guard);
                result
            }
        }
    }
}

/// Binds an unused path in the temporary directory for a Unix datagram client.
fn bind_temporary_unix_dgram() -> io::Result<(UnixDatagram, UnixPathGuard)> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut last = None;
    for _ in 0..16 {
        let path: PathBuf = std::env::temp_dir().join(format!(
            "sockit-{}-{nanos:x}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        match UnixDatagram::bind(&path) {
            Ok(s) => return UnixPathGuard::new(path).map(|guard| (s, guard)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::ErrorKind::AddrInUse.into()))
}

/// `poll(2)` until something is ready or `deadline` passes; EINTR is retried.
fn wait(fds: &mut [rustix::event::PollFd<'_>], deadline: Option<Instant>) -> io::Result<usize> {
    loop {
        let ts = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            rustix::event::Timespec {
                tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: left.subsec_nanos().into(),
            }
        });
        match rustix::event::poll(fds, ts.as_ref()) {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other.map_err(Into::into),
        }
    }
}

/// Reads stdin once. `Ok(None)`: not ready after all (a non-blocking stdin).
fn read_input(input: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> Result<Option<usize>> {
    loop {
        match rustix::io::read(input, &mut *buf) {
            Ok(n) => return Ok(Some(n)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            // A closed stdin reads as empty.
            Err(rustix::io::Errno::BADF) => return Ok(Some(0)),
            Err(e) => return Err(Error::io("read stdin", e.into())),
        }
    }
}

/// Writes one whole read to the output and flushes it, so a pipe sees it at once.
fn emit(output: &mut impl Write, parts: &[&[u8]]) -> Result<()> {
    let write = |output: &mut dyn Write| -> io::Result<()> {
        for part in parts {
            output.write_all(part)?;
        }
        output.flush()
    };
    write(output).map_err(|e| Error::io("write stdout", e))
}
