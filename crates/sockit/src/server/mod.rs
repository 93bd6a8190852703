//! The socketserver: Python's `socketserver` done right.
//!
//! A user writes one [`Service`] (a factory of per-connection [`Handler`]s, the
//! `BaseRequestHandler.handle()` idea) or one [`DatagramService`], binds a [`Server`] and
//! picks a [`Model`]. Handlers never touch the socket: they get the bytes that arrived and
//! append their reply to an [`Output`] they are given (bytes, and file ranges the drivers
//! `sendfile`), so one handler runs under every model.
//!
//! ```no_run
//! use sockit::server::{Config, Flow, Handler, Model, Output, Server, Service};
//! use sockit::socket::Peer;
//!
//! struct Upper;
//! impl Handler for Upper {
//!     fn on_data(&mut self, data: &[u8], out: &mut Output) -> Flow {
//!         out.extend(data.iter().map(u8::to_ascii_uppercase));
//!         Flow::Continue
//!     }
//! }
//! struct UpperService;
//! impl Service for UpperService {
//!     type Handler = Upper;
//!     fn handler(&self, _peer: &Peer) -> Upper { Upper }
//! }
//!
//! let config = Config { model: Model::Threads, ..Config::default() };
//! let server = Server::bind(&"127.0.0.1:0".parse()?, config)?;
//! eprintln!("listening on {}", server.local_endpoint());
//! server.serve(UpperService)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Models
//! One file each: [`blocking`](self) (one connection at a time), `threads`, `fork`,
//! `select`, `poll`, `epoll`, `epoll-et` (the last four share `eventloop`, differing only
//! in their readiness backend) and `async` (tokio).
//!
//! # TLS
//! [`TlsService`] serves any [`Service`] over TLS under every model, as a layer between the
//! socket and the handler: rustls is sans-IO too, so the wrapper's [`TlsHandler`] takes the
//! ciphertext the model read, gives the inner handler the plaintext, and encrypts what it
//! queues (file ranges included: they are read and encrypted in bounded pieces, continued
//! from [`Handler::on_drained`], since encrypted bytes cannot be `sendfile`d). The
//! handshake is a head ([`Handler::in_head`]), so [`Config::header_timeout`] bounds it; a
//! peer that fails it gets rustls's alert and loses its own connection only. `Flow::Close`
//! and the end of stream map to close_notify both ways.
//!
//! ```no_run
//! use std::sync::Arc;
//! use sockit::proto::echo::Echo;
//! use sockit::server::{Config, Model, Server, TlsService};
//!
//! # fn load() -> rustls::ServerConfig { unimplemented!() }
//! let tls: Arc<rustls::ServerConfig> = Arc::new(load()); // certificate chain and key
//! let config = Config { model: Model::EpollEt, ..Config::default() };
//! let server = Server::bind(&"127.0.0.1:8443".parse()?, config)?;
//! server.serve(TlsService::new(Echo::default(), tls))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod r#async;
mod blocking;
mod conn;
mod datagram;
mod eventloop;
mod fork;
mod head;
mod output;
mod poller;
mod slab;
mod threads;
mod tls;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use r#async::Stopping;
pub use head::{HEAD_TIMEOUT, HeadClock};
pub use output::Output;
pub use tls::{TlsHandler, TlsService};

use crate::addr::{Endpoint, Transport};
use crate::error::{Error, Result};
use crate::socket::gate::Gate;
use crate::socket::listener::{self, Bound};
use crate::socket::unix_path::UnixPathGuard;
use crate::socket::{AccessList, DatagramSocket, Listener, Peer, Shutdown, Stream};

/// How connections are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    /// One connection at a time, like `socketserver.TCPServer`.
    Blocking,
    /// A thread per connection, bounded, like `ThreadingTCPServer`.
    Threads,
    /// A process per connection, bounded, like `ForkingTCPServer`.
    Fork,
    /// An event loop on `select(2)`; refuses descriptors at or above `FD_SETSIZE`.
    Select,
    /// An event loop on `poll(2)`.
    Poll,
    /// An event loop on level-triggered `epoll(7)`.
    Epoll,
    /// An event loop on edge-triggered `epoll(7)`.
    EpollEt,
    /// Tasks on a multi-threaded tokio runtime.
    Async,
}

impl Model {
    /// Every model, in the order of the documentation.
    pub const ALL: [Model; 8] = [
        Model::Blocking,
        Model::Threads,
        Model::Fork,
        Model::Select,
        Model::Poll,
        Model::Epoll,
        Model::EpollEt,
        Model::Async,
    ];

    /// The names accepted by [`Model::from_str`], in the order of [`Model::ALL`]; built
    /// from [`Model::name`], so the names are spelled in one place.
    pub const NAMES: [&'static str; 8] = {
        let mut names = [""; 8];
        let mut i = 0;
        while i < names.len() {
            names[i] = Self::ALL[i].name();
            i += 1;
        }
        names
    };

    /// The model's name as the CLI spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Model::Blocking => "blocking",
            Model::Threads => "threads",
            Model::Fork => "fork",
            Model::Select => "select",
            Model::Poll => "poll",
            Model::Epoll => "epoll",
            Model::EpollEt => "epoll-et",
            Model::Async => "async",
        }
    }

    /// Whether `workers` means "event loops" (each with its own SO_REUSEPORT listener).
    pub fn is_event_loop(self) -> bool {
        matches!(
            self,
            Model::Select | Model::Poll | Model::Epoll | Model::EpollEt
        )
    }

    /// The connection limit used when none is configured: what the model can bear.
    pub fn default_max_conns(self) -> usize {
        match self {
            Model::Blocking => usize::MAX,
            // Threads and processes are the scarce resource of these two models.
            Model::Threads => 16_384,
            Model::Fork => 256,
            _ => 1_000_000,
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Model {
    type Err = Error;

    fn from_str(s: &str) -> Result<Model> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| Error::UnknownModel {
                name: s.to_owned(),
                known: &Self::NAMES,
            })
    }
}

/// How a server runs; `Config::default()` is a sensible start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The concurrency model.
    pub model: Model,
    /// Event loops (event-loop models), runtime threads (`async`), or datagram workers;
    /// `None` means one per CPU for `async` and datagram workers, and 1 for event loops.
    pub workers: Option<usize>,
    /// Connections served at once; more are refused. `None`: [`Model::default_max_conns`].
    pub max_conns: Option<usize>,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// A head (see [`Handler::in_head`]) must complete within this long of its first
    /// byte, however steadily its bytes trickle in: the idle timeout measures silence, so
    /// without this a peer sending a byte a second holds its connection for ever.
    pub header_timeout: Option<Duration>,
    /// Which client networks may connect.
    pub access: AccessList,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            model: Model::Epoll,
            workers: None,
            max_conns: None,
            idle_timeout: None,
            header_timeout: None,
            access: AccessList::default(),
        }
    }
}

impl Config {
    fn max_conns(&self) -> usize {
        self.max_conns.unwrap_or(self.model.default_max_conns())
    }
}

/// What a handler wants after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep the connection open.
    Continue,
    /// Send what is in `out`, then close.
    Close,
}

/// The per-connection protocol logic: bytes in, bytes and a [`Flow`] out. No I/O.
///
/// The driver calls `on_connect` once, `on_data` for every chunk read (chunks are cut
/// wherever the network cut them: a handler that needs whole messages buffers them), and
/// `on_eof` when the peer stops sending. Whatever a handler appends to `out` is written to
/// the peer, in order, before the next call reads more (the driver stops reading while
/// replies are still queued, so a peer that does not read cannot make the server buffer
/// without bound).
pub trait Handler: Send + 'static {
    /// The connection was accepted; a greeting may go into `out`.
    fn on_connect(&mut self, out: &mut Output) -> Flow {
        let _ = out;
        Flow::Continue
    }

    /// Bytes arrived.
    fn on_data(&mut self, data: &[u8], out: &mut Output) -> Flow;

    /// Everything the handler queued has been written to the peer. A handler that holds
    /// work back to bound what it queues (pipelined requests for large files, a stream it
    /// produces piece by piece) continues here; whatever it adds is written, and this is
    /// called again once that is out, until it adds nothing. Also called after `on_eof`,
    /// so last words can be bounded the same way; not called after a `Flow::Close`.
    fn on_drained(&mut self, out: &mut Output) -> Flow {
        let _ = out;
        Flow::Continue
    }

    /// The peer closed its sending side (or the server is stopping); last words may go
    /// into `out`. The connection is closed once they, and whatever `on_drained` adds
    /// after them, are written.
    fn on_eof(&mut self, out: &mut Output) {
        let _ = out;
    }

    /// Whether the peer is in the middle of a head: part of a request's head has arrived,
    /// not all of it. Asked after every `on_data`; while it answers `true` the driver
    /// holds the head to [`Config::header_timeout`], counted from the read that began it
    /// (time the server spends writing a reply does not count). The default, `false`,
    /// leaves the connection to the idle timeout alone.
    fn in_head(&self) -> bool {
        false
    }

    /// The head in progress missed [`Config::header_timeout`]; last words (an HTTP 408)
    /// may go into `out`. Every model then makes one attempt to write them that never
    /// waits (what the socket does not take at once is dropped) and closes the connection.
    fn on_head_timeout(&mut self, out: &mut Output) {
        let _ = out;
    }
}

/// Makes a [`Handler`] for each connection; shared by every thread, loop or process.
pub trait Service: Send + Sync + 'static {
    /// The per-connection state.
    type Handler: Handler;

    /// A handler for a newly admitted peer.
    fn handler(&self, peer: &Peer) -> Self::Handler;

    /// Sent to a peer refused because the server is full, before closing (empty: just close).
    fn busy_message(&self) -> &[u8] {
        b""
    }

    /// Whether the service speaks TLS itself ([`TlsService`]). A server bound to a
    /// `tls://` address refuses to serve one that does not: its clients were told to
    /// expect TLS, and plain text must never be the silent fallback.
    fn speaks_tls(&self) -> bool {
        false
    }
}

/// The datagram counterpart of [`Service`]: one datagram in, at most one reply out.
pub trait DatagramService: Send + Sync + 'static {
    /// A datagram arrived from `peer`; with [`Reply::Send`], `out` goes back to it as one
    /// datagram, even when empty (an empty datagram is a datagram, and a peer may wait
    /// for its answer).
    fn on_datagram(&self, data: &[u8], peer: &Peer, out: &mut Vec<u8>) -> Reply;
}

/// Whether a [`DatagramService`] answers the datagram it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Send `out` back to the peer, whatever its length.
    Send,
    /// Send nothing: the datagram needs no answer.
    Silent,
}

/// A service that owns each connection's socket, as `socketserver.BaseRequestHandler`
/// owns `self.request`: for protocols that run their own conversation on the socket
/// (large reads straight into files, progress between system calls, blocking waits on
/// other things) rather than a [`Handler`]'s bytes in, bytes and file ranges out. Served a thread per connection ([`Server::serve_streams`]), with the
/// same limits, access lists and shutdown as the `threads` model: on shutdown the read side
/// of every connection is shut, so `handle` sees end of stream and can finish cleanly.
pub trait StreamService: Send + Sync + 'static {
    /// Serves one connection to its end. The read timeout is already set to the idle
    /// timeout, so a silent peer makes a read fail with `WouldBlock`; `heads` holds the
    /// service's heads (whatever it calls them) to [`Config::header_timeout`], if the
    /// service brackets its reads with it.
    fn handle(&self, stream: Stream, peer: &Peer, heads: HeadClock);

    /// Whether the service does the TLS handshake itself on each connection. As with
    /// [`Service::speaks_tls`], a server bound to `tls://` refuses one that does not:
    /// plain text must never be the silent fallback.
    fn speaks_tls(&self) -> bool {
        false
    }
}

/// A bound server, ready to serve under its model.
#[derive(Debug)]
pub struct Server {
    /// The bound sockets, one per event loop (or one), stream or datagram.
    sockets: Sockets,
    /// The address really bound, to print and to connect to (port 0 resolved).
    local: Endpoint,
    /// How to serve: model, workers, limits, access lists.
    config: Config,
    /// Stops every loop, thread or task of this server; handed out by `shutdown_handle`.
    shutdown: Shutdown,
    /// For a Unix endpoint, removes the socket file; declared last so it is dropped
    /// last, once no loop can use the socket.
    _guard: Option<UnixPathGuard>,
}

#[derive(Debug)]
enum Sockets {
    Stream(Vec<Listener>),
    Datagram(Vec<DatagramSocket>),
}

impl Server {
    /// Binds `endpoint` (stream or datagram) for the configured model.
    pub fn bind(endpoint: &Endpoint, config: Config) -> Result<Server> {
        let count = if config.model.is_event_loop() {
            config.workers.unwrap_or(1).max(1)
        } else {
            1
        };
        let shutdown = Shutdown::new().map_err(|e| Error::io("create shutdown pipe", e))?;
        let (sockets, local, guard) = match endpoint.transport() {
            Transport::Stream => {
                let Bound {
                    sockets,
                    local,
                    guard,
                } = listener::bind_stream(endpoint, count)?;
                (Sockets::Stream(sockets), local, guard)
            }
            Transport::Datagram => {
                let Bound {
                    sockets,
                    local,
                    guard,
                } = listener::bind_datagram(endpoint, count)?;
                (Sockets::Datagram(sockets), local, guard)
            }
        };
        Ok(Server {
            sockets,
            local,
            config,
            shutdown,
            _guard: guard,
        })
    }

    /// The address really bound (the port the OS chose for port 0).
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    /// The (first) bound datagram socket, for drivers that serve it their own way; `None`
    /// for a stream server.
    pub(crate) fn datagram_socket(&self) -> Option<&DatagramSocket> {
        match &self.sockets {
            Sockets::Datagram(s) => s.first(),
            Sockets::Stream(_) => None,
        }
    }

    /// How this server was configured, for drivers that serve it their own way.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// A handle that stops this server from any thread.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves connections until shutdown. The endpoint must be a stream endpoint.
    pub fn serve<S: Service>(self, service: S) -> Result<()> {
        if matches!(self.local, Endpoint::Tls(_)) && !service.speaks_tls() {
            return Err(Error::Unsupported {
                model: self.config.model.name(),
                what: "a tls:// endpoint with a service that does not speak TLS (wrap it in TlsService)",
            });
        }
        if self.config.model == Model::Async {
            return r#async::serve(self, service);
        }
        let Sockets::Stream(listeners) = &self.sockets else {
            return Err(Error::Unsupported {
                model: self.config.model.name(),
                what: "a datagram endpoint with a stream service",
            });
        };
        let gate = Gate::new(
            self.config.access.clone(),
            self.config.max_conns(),
            service.busy_message(),
        );
        let service = Arc::new(service);
        let ctx = Ctx {
            config: &self.config,
            shutdown: &self.shutdown,
            gate,
        };
        match self.config.model {
            Model::Blocking => blocking::serve(&listeners[0], service, ctx),
            Model::Threads => {
                let driven = threads::Driven {
                    service,
                    config: self.config.clone(),
                };
                threads::serve(&listeners[0], Arc::new(driven), ctx)
            }
            Model::Fork => fork::serve(&listeners[0], service, ctx),
            backend => eventloop::serve(listeners, backend, service, ctx),
        }
    }

    /// Serves connections to a [`StreamService`], a thread each, until shutdown. Only the
    /// `threads` model serves these.
    pub fn serve_streams<S: StreamService>(self, service: S) -> Result<()> {
        let Sockets::Stream(listeners) = &self.sockets else {
            return Err(Error::Unsupported {
                model: self.config.model.name(),
                what: "a datagram endpoint with a stream service",
            });
        };
        if self.config.model != Model::Threads {
            return Err(Error::Unsupported {
                model: self.config.model.name(),
                what: "services that own their connections (use threads)",
            });
        }
        if matches!(self.local, Endpoint::Tls(_)) && !service.speaks_tls() {
            return Err(Error::Unsupported {
                model: self.config.model.name(),
                what: "a tls:// endpoint with a service that does not speak TLS",
            });
        }
        let gate = Gate::new(self.config.access.clone(), self.config.max_conns(), b"");
        let ctx = Ctx {
            config: &self.config,
            shutdown: &self.shutdown,
            gate,
        };
        threads::serve(&listeners[0], Arc::new(service), ctx)
    }

    /// Serves datagrams until shutdown. The endpoint must be a datagram endpoint.
    pub fn serve_datagram<S: DatagramService>(self, service: S) -> Result<()> {
        let Sockets::Datagram(sockets) = &self.sockets else {
            return Err(Error::Unsupported {
                model: self.config.model.name(),
                what: "a stream endpoint with a datagram service",
            });
        };
        let gate = Gate::new(self.config.access.clone(), usize::MAX, b"");
        let ctx = Ctx {
            config: &self.config,
            shutdown: &self.shutdown,
            gate,
        };
        datagram::serve(sockets, Arc::new(service), ctx)
    }
}

/// How long a stopping server waits for its connections to write their last replies
/// (a peer that does not read could otherwise hold shutdown forever).
pub(crate) const GRACE: Duration = Duration::from_secs(5);

/// What every model driver gets besides its sockets and the service.
#[derive(Debug, Clone)]
pub(crate) struct Ctx<'a> {
    /// The server's configuration (timeouts, limits, workers).
    pub(crate) config: &'a Config,
    /// Observed by every driver to stop accepting and wind up.
    pub(crate) shutdown: &'a Shutdown,
    /// Admission, shared by every loop and thread, so the limit is per server.
    pub(crate) gate: Gate,
}
