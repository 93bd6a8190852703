//! The chat server's driver (`sockit chat serve`): the sans-IO core of
//! [`crate::proto::chat`] on a single-threaded tokio runtime, with an optional Redis
//! backplane that lets several servers share rooms. (Its load generator is
//! [`crate::bench::chat`].)
//!
//! Chat is push-style fan-out — one line in, a line out to every member of a room — which
//! the request/response [`crate::server::Handler`] does not fit, so this driver uses tokio
//! directly. It binds like every sockit server (SO_REUSEADDR, stale Unix socket files
//! cleared) and accepts through the socket layer's one tokio accept loop, with the same
//! allow/deny lists and connection limit.
//!
//! # Shape
//! - One task per client reads its socket, splits lines ([`crate::frame::LineCodec`],
//!   `--max-line`) and hands them to the hub.
//! - The hub (one per server, no locks: one thread) runs the core and appends the lines
//!   it produces to each recipient's outgoing queue.
//! - A flusher task writes the queues in rounds, at most one per coalescing window
//!   (`batch`, 2 ms by default): an idle chat's lines go out at once, a busy one's go
//!   several to a `write`. A long round reads input between its chunks of clients, so a
//!   line waits about one round at most (see `flusher`).
//! - With `--redis`, a backplane task publishes this node's events and applies the
//!   others' (see [`crate::proto::chat::event`]).
//!
//! # Slow readers
//! Each client has a bounded outgoing queue (`max_queue`, 256 KiB by default). Below it,
//! the kernel's send buffer of each client socket is capped too (`send_buffer`, 64 KiB
//! by default, which Linux doubles for its bookkeeping): left to autotune, it would grow
//! to `net.ipv4.tcp_wmem`'s maximum (4 MiB and more), and what a slow reader may cost
//! would depend on the machine's sysctls instead of on sockit. A slow reader therefore
//! holds at most `max_queue + 2 × send_buffer` bytes of the server's memory. A client that reads more slowly than the chat
//! talks sees its queue grow; once a line would take it past the limit, the lines
//! waiting for it are dropped, it gets `! too slow: N bytes of chat were waiting for you
//! (the limit is M); disconnected`, and the connection is closed; its room sees
//! `* nick left #room (too slow)`. Everyone else is unaffected: no line is ever dropped
//! for a client that keeps up, and one slow reader never delays the others.
//!
//! # Input
//! A line longer than `max_line` bytes is dropped (up to its newline), and its sender gets
//! `! line too long ...`; the connection goes on. Invalid UTF-8 and control characters
//! never reach another terminal raw (see [`crate::text`]).
//!
//! # TLS
//! With [`Config::tls`] (a `tls://` address), each connection makes its TLS handshake
//! (within [`HANDSHAKE_TIMEOUT`]) in its own task before it joins the hub; a peer that
//! speaks plain text, stalls or breaks off loses its connection, logged in one line, and
//! nobody in the chat sees it. Then the hub and the client task use the connection as
//! they use a plain one (the socket layer's `tokio_tls`: plaintext in through the same
//! non-blocking writes, ciphertext out as the socket takes it). What TLS holds for a
//! slow reader is bounded too (`tokio_tls::BACKLOG`, 64 KiB, on top of `max_queue`),
//! and a connection that closes says close_notify first.
//!
//! # Shutdown
//! On [`Shutdown::trigger`] (SIGINT/SIGTERM in the CLI) the server stops accepting, tells
//! everyone `* server shutting down`, writes what is queued (for at most
//! `CLOSE_GRACE`), closes every connection, tells the other nodes it is
//! gone and releases its nicks there.

mod backplane;
mod hub;
mod lines;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};

use crate::addr::Endpoint;
use crate::error::{Error, Result};
use crate::proto::chat::{self, Chat, ClientId, Leave, NodeId, RoomName, Scope};
use crate::socket::gate::{Gate, Slot as GateSlot};
use crate::socket::listener::{self, Bound};
use crate::socket::tokio::{TokioListener, accept_loop};
use crate::socket::unix_path::UnixPathGuard;
use crate::socket::{AccessList, Listener, Peer, ServerTls, Shutdown, TokioStream};
use hub::{Hub, Shared};
use lines::{Input, LineReader};

/// Bytes queued for one client before it counts as too slow, by default.
pub const DEFAULT_MAX_QUEUE: usize = 256 * 1024;

/// The kernel send buffer asked for each client socket, by default (Linux doubles it).
/// Large enough for a coalesced round of lines to go out in one `write`, small enough
/// that a thousand slow readers cost the kernel no more than 128 MiB.
pub const DEFAULT_SEND_BUFFER: usize = 64 * 1024;

/// The coalescing window of the flusher, by default.
pub const DEFAULT_BATCH: Duration = Duration::from_millis(2);

/// How long a closing connection may take to write what is queued for it.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How long a closed connection's late input is read and discarded (so that closing does
/// not reset the connection and destroy the last lines before the client read them).
const LINGER: Duration = Duration::from_millis(500);

/// Clients written between two looks at the clients' input during a flush round.
const FLUSH_CHUNK: usize = 32;

/// Bytes read from a client at a time.
const READ_CHUNK: usize = 16 * 1024;

/// How long a `tls://` client has to finish its handshake (chat has no header timeout
/// of its own): a peer that connects and stalls must not hold a connection for long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a chat server runs; `Config::default()` is `sockit chat serve` without options.
#[derive(Debug, Clone)]
pub struct Config {
    /// Longest line accepted from a client, in bytes.
    pub max_line: usize,
    /// Messages per room replayed to who joins it.
    pub history: usize,
    /// Connections at once; more are refused with a `! server full` line.
    pub max_conns: usize,
    /// Bytes queued for a client before it is disconnected as too slow.
    pub max_queue: usize,
    /// `SO_SNDBUF` of each client socket: bounds what the kernel holds for a slow reader
    /// on top of `max_queue`, whatever the machine's autotuning limits are.
    pub send_buffer: usize,
    /// The flusher's coalescing window (zero: write after every batch of input).
    pub batch: Duration,
    /// Which client networks may connect.
    pub access: AccessList,
    /// Where clients start.
    pub default_room: RoomName,
    /// `redis://...`: share rooms with every server using the same Redis.
    pub redis: Option<String>,
    /// Speak TLS with this identity (for a `tls://` address; see "TLS" above).
    pub tls: Option<ServerTls>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_line: 4096,
            history: chat::DEFAULT_HISTORY,
            max_conns: 10_000,
            max_queue: DEFAULT_MAX_QUEUE,
            send_buffer: DEFAULT_SEND_BUFFER,
            batch: DEFAULT_BATCH,
            access: AccessList::default(),
            default_room: RoomName::default(),
            redis: None,
            tls: None,
        }
    }
}

/// A bound chat server, ready to serve.
#[derive(Debug)]
pub struct ChatServer {
    /// Bound at `bind`, so the address is known (and printed) before serving.
    listener: Listener,
    /// The address really bound (port 0 resolved).
    local: Endpoint,
    /// Limits, history, batching and the backplane URL.
    config: Config,
    /// The backplane's Redis client, checked at `bind` so a bad URL fails early.
    redis: Option<redis::Client>,
    /// Stops the server; handed out by `shutdown_handle`.
    shutdown: Shutdown,
    /// For a Unix endpoint, removes the socket file when the server goes.
    _guard: Option<UnixPathGuard>,
}

impl ChatServer {
    /// Binds a stream endpoint (TCP or Unix) and checks the Redis URL, if any (Redis
    /// itself need not be up yet: the server serves its own clients meanwhile).
    pub fn bind(endpoint: &Endpoint, config: Config) -> Result<ChatServer> {
        let redis = match &config.redis {
            Some(url) => Some(redis::Client::open(url.as_str()).map_err(|e| Error::Redis {
                url: url.clone(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        if config.tls.is_some() != matches!(endpoint, Endpoint::Tls(_)) {
            return Err(Error::Unsupported {
                model: "chat",
                what: "TLS on an address that is not tls://, or a tls:// address without TLS",
            });
        }
        let Bound {
            mut sockets,
            local,
            guard,
        } = listener::bind_stream(endpoint, 1)?;
        let shutdown = Shutdown::new().map_err(|e| Error::io("create shutdown pipe", e))?;
        Ok(ChatServer {
            listener: sockets.remove(0),
            local,
            config,
            redis,
            shutdown,
            _guard: guard,
        })
    }

    /// The address really bound.
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    /// A handle that stops the server from any thread.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until shutdown, on the calling thread.
    pub fn serve(self) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("start tokio runtime", e))?;
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, self.run())
    }

    async fn run(self) -> Result<()> {
        let ChatServer {
            listener,
            config,
            redis,
            shutdown,
            ..
        } = self;
        let listener = TokioListener::new(listener)?;

        let node = NodeId::random();
        let core = Chat::new(
            chat::Config {
                history: config.history,
                max_line: config.max_line,
                default_room: config.default_room.clone(),
                scope: if redis.is_some() {
                    Scope::Cluster
                } else {
                    Scope::Local
                },
            },
            node,
        );
        let flush = Rc::new(Notify::new());
        let (bp_tx, bp_rx) = mpsc::unbounded_channel();
        let hub: Shared = Rc::new(RefCell::new(Hub::new(
            core,
            config.max_queue,
            flush.clone(),
            redis.is_some().then_some(bp_tx),
        )));
        let backplane = redis.map(|client| {
            tokio::task::spawn_local(backplane::run(client, hub.clone(), bp_rx, node))
        });
        let flusher = tokio::task::spawn_local(flusher(hub.clone(), flush, config.batch));
        // A TLS client expects a handshake, not a plain-text line: it is just closed.
        let busy = match config.tls {
            Some(_) => String::new(),
            None => format!(
                "! server full ({} connections); try again later\n",
                config.max_conns
            ),
        };
        let gate = Gate::new(config.access.clone(), config.max_conns, busy.as_bytes());

        // Each client's kernel send buffer is capped (see "Slow readers" above).
        let max_line = config.max_line;
        let spawn = |conn: TokioStream, peer: Peer, slot: GateSlot| match &config.tls {
            None => {
                tokio::task::spawn_local(join(&hub, conn, &peer, max_line, slot));
            }
            Some(tls) => {
                let (hub, tls) = (hub.clone(), tls.clone());
                tokio::task::spawn_local(async move {
                    let Some(conn) = tls_handshake(conn, &tls, &peer).await else {
                        return;
                    };
                    join(&hub, conn, &peer, max_line, slot).await;
                });
            }
        };
        accept_loop(&listener, &gate, &shutdown, Some(config.send_buffer), spawn).await?;

        drop(listener);
        hub.borrow_mut().shutdown();
        let deadline = Instant::now() + CLOSE_GRACE + LINGER;
        while hub.borrow().open_connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        flusher.abort();
        if let Some(backplane) = backplane {
            hub.borrow().stop_backplane();
            let _ = tokio::time::timeout(Duration::from_secs(2), backplane).await;
        }
        Ok(())
    }
}

/// Writes the dirty queues in rounds, at most one round per `batch`.
///
/// A round over many clients takes a while (on loopback a `send` costs several µs, so
/// ≈ 10 ms for 1,000 clients), so it yields every [`FLUSH_CHUNK`] clients: the clients'
/// input is read meanwhile, and a line that arrives mid-round reaches every client still
/// to come in this round, not one round later. A line then waits at most about one
/// round for any client, instead of up to two.
async fn flusher(hub: Shared, flush: Rc<Notify>, batch: Duration) {
    let mut last = tokio::time::Instant::now() - batch;
    let mut round = Vec::new();
    loop {
        flush.notified().await;
        let due = last + batch;
        if tokio::time::Instant::now() < due {
            tokio::time::sleep_until(due).await;
        }
        last = tokio::time::Instant::now();
        round = hub.borrow_mut().take_round(round);
        let mut chunks = round.chunks(FLUSH_CHUNK).peekable();
        while let Some(chunk) = chunks.next() {
            hub.borrow_mut().flush(chunk);
            if chunks.peek().is_some() {
                // Lets the runtime poll its sockets and run the client tasks whose
                // input arrived (`yield_now` defers this task until it has).
                tokio::task::yield_now().await;
            }
        }
    }
}

/// A connection joins the chat: the hub greets it; what is returned is its task.
fn join(
    hub: &Shared,
    conn: TokioStream,
    peer: &Peer,
    max_line: usize,
    slot: GateSlot,
) -> impl std::future::Future<Output = ()> + 'static {
    let conn = Rc::new(conn);
    let wake = Rc::new(Notify::new());
    let id = hub.borrow_mut().connect(conn.clone(), wake.clone());
    tracing::debug!(%peer, client = id.0, "connected");
    client(hub.clone(), id, conn, wake, max_line, slot)
}

/// TLS on an accepted connection, the handshake within [`HANDSHAKE_TIMEOUT`]; `None`
/// when it failed (logged in one line: this peer's problem, nobody else's).
async fn tls_handshake(conn: TokioStream, tls: &ServerTls, peer: &Peer) -> Option<TokioStream> {
    let conn = match conn.tls_server(tls) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot start TLS connection");
            return None;
        }
    };
    match conn.handshake(HANDSHAKE_TIMEOUT).await {
        Ok(()) => Some(conn),
        Err(e) => {
            tracing::info!(%peer, reason = %e, "TLS connection refused");
            None
        }
    }
}

/// One client's task: reads its lines into the hub, writes its queue while the socket is
/// slow, and closes the connection when the hub says so.
async fn client(
    hub: Shared,
    id: ClientId,
    conn: Rc<TokioStream>,
    wake: Rc<Notify>,
    max_line: usize,
    _slot: GateSlot,
) {
    let mut reader = LineReader::new(max_line);
    let mut close_by = None;
    loop {
        let Some(state) = hub.borrow().state(id) else {
            // Forgotten by the hub (the connection ended): nothing more to do.
            return;
        };
        if state.failed {
            hub.borrow_mut().disconnect(id, Leave::Failed);
            return;
        }
        if state.closing {
            if state.drained {
                break;
            }
            close_by.get_or_insert_with(|| tokio::time::Instant::now() + CLOSE_GRACE);
        }
        let grace = async {
            match close_by {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = wake.notified() => {}
            r = conn.writable(), if state.blocked => match r {
                Ok(()) => hub.borrow_mut().flush_one(id),
                Err(_) => {
                    hub.borrow_mut().disconnect(id, Leave::Failed);
                    return;
                }
            },
            r = conn.readable(), if !state.closing => {
                if r.is_err() {
                    hub.borrow_mut().disconnect(id, Leave::Failed);
                    return;
                }
                if reader.buf.capacity() - reader.buf.len() < READ_CHUNK {
                    reader.buf.reserve(READ_CHUNK);
                }
                let read = match conn.try_read_buf(&mut reader.buf) {
                    // A TLS client that closes its socket without close_notify leaves as
                    // one that said it: a chat line has no length a cut could falsify.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                    other => other,
                };
                match read {
                    Ok(0) => {
                        let mut hub = hub.borrow_mut();
                        if let Some(Input::Line(line)) = reader.finish() {
                            hub.line(id, &line);
                        }
                        hub.disconnect(id, Leave::Closed);
                        return;
                    }
                    Ok(_) => {
                        let mut hub = hub.borrow_mut();
                        while let Some(input) = reader.next() {
                            match input {
                                Input::Line(line) => hub.line(id, &line),
                                Input::TooLong => hub.line_too_long(id),
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        hub.borrow_mut().disconnect(id, Leave::Failed);
                        return;
                    }
                }
            }
            _ = grace => break,
        }
    }
    // Closing: what could be written was; the peer reads EOF after it.
    hub.borrow_mut().remove(id);
    let _ = conn.shutdown_write();
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = bytes::BytesMut::with_capacity(4096);
        loop {
            if conn.readable().await.is_err() {
                return;
            }
            sink.clear();
            match conn.try_read_buf(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}
