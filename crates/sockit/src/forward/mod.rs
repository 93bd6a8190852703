//! `sockit forward`: accept on one address and relay each connection to a target, any
//! stream kind on either side (TCP, Unix, TLS terminated on the listening side,
//! originated towards the target, or both), or datagrams (UDP, Unix datagram) by
//! per-client sessions (`datagram.rs`).
//!
//! # The model, and why
//! Tokio tasks, one per relayed connection, on the server's one accept loop (admission
//! gate, `--max-conns`, access lists: [`Server::serve_tasks`]'s). A relay spends its
//! life waiting, so what matters is what a waiting connection costs: here a parked task
//! (its state is the relay's, about 250 bytes; the setup's larger futures are boxed and
//! freed once both legs stand) and two reactor registrations, with no buffer and no pipe
//! (see `stream.rs`): bytes in flight get a pipe or a buffer only while they are in
//! flight. Measured on a release build, 9,000 idle plain relays cost the process about
//! 1.8 KiB of userspace memory each, allocator overhead included. Threads would cost a
//! stack per connection; an event loop of our own would be this same state machine with
//! more code to keep.
//!
//! A client's PROXY header (`accept_proxy`) is read before its TLS handshake, and the
//! one for the target (`send_proxy`) written before the target's, as HAProxy does.
//!
//! Plain to plain, bytes move with `splice(2)` socket → pipe → socket and never enter
//! userspace; a TLS leg must (rustls encrypts and decrypts in userspace), through a
//! 16 KiB buffer held while bytes flow.
//!
//! # Rules
//! The target is connected (and its TLS handshake made) within the connect timeout once a
//! client is admitted (and, on a `tls://` listener, its handshake made within the
//! handshake timeout); a target that refuses, is down or fails its handshake costs that
//! client its connection (closed, one warning), never the forwarder. Then the relay's
//! rules (half-close passed on, reset passed on, idle timeout): `stream.rs`.

mod datagram;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::addr::{Endpoint, Transport};
use crate::error::{Error, Result};
use crate::proto::proxy::header::{self, Header, Version};
use crate::server::Server;
use crate::socket::gate::Gate;
use crate::socket::{ClientTls, Peer, ServerTls, Stream, TlsStream, TokioStream, Wire};

use self::stream::Ended;

/// Descriptors the forwarder asks for at start: each relayed connection holds two (and a
/// pipe pair while bytes are in flight), so the usual soft limit of 1024 would cap it
/// near 500 connections.
const NOFILE_WANTED: u64 = 1 << 20;

/// How long a datagram session lives without a datagram either way, when no idle
/// timeout is given: datagrams have no close, so a session must end by itself.
pub const DATAGRAM_IDLE: Duration = Duration::from_secs(60);

/// What a forwarder does with each connection it accepts.
#[derive(Debug, Clone)]
pub struct Forward {
    /// Where every accepted connection is relayed (a stream endpoint).
    pub target: Endpoint,
    /// Terminates TLS on the listening side (`tls://` listener): the identity presented.
    pub server_tls: Option<ServerTls>,
    /// Originates TLS towards a `tls://` target: how the target is trusted.
    pub client_tls: Option<ClientTls>,
    /// How long connecting to the target (and its TLS handshake) may take.
    pub connect_timeout: Duration,
    /// How long a client has for its head: the PROXY header it must send first (with
    /// `accept_proxy`) and its TLS handshake on a `tls://` listener. A deadline, so a
    /// client that stalls in them cannot hold a slot.
    pub handshake_timeout: Duration,
    /// Sends HAProxy's PROXY header (this version) to the target before anything else,
    /// in clear before any TLS, so the server behind learns the real client's address.
    pub send_proxy: Option<Version>,
    /// Reads one PROXY header from each client before anything else (sockit behind a
    /// load balancer): a client without a valid one is refused. The addresses it gives
    /// are the client's for the logs and for `send_proxy`.
    pub accept_proxy: bool,
    /// Reaches a `tcp://` or `tls://` target through this SOCKS5 or HTTP proxy
    /// (`--proxy`): for a target only the proxy can see.
    pub proxy: Option<crate::proxy::Proxy>,
}

/// Serves `server` by relaying every connection (or, on a datagram endpoint, every
/// client's datagrams) to `forward.target`, until the server's shutdown handle is
/// triggered. The server's connection limit (datagrams: sessions), access lists, idle
/// timeout and worker threads apply; its model does not.
pub fn serve(server: Server, forward: Forward) -> Result<()> {
    let tls_listener = matches!(server.local_endpoint(), Endpoint::Tls(_));
    if tls_listener != forward.server_tls.is_some() {
        return Err(Error::Unsupported {
            model: "forward",
            what: "a tls:// listener without a server identity (or one on a plain listener)",
        });
    }
    if matches!(forward.target, Endpoint::Tls(_)) != forward.client_tls.is_some() {
        return Err(Error::Unsupported {
            model: "forward",
            what: "a tls:// target without client TLS settings (or them on a plain target)",
        });
    }
    let datagrams = server.local_endpoint().transport() == Transport::Datagram;
    if (forward.target.transport() == Transport::Datagram) != datagrams {
        return Err(Error::Unsupported {
            model: "forward",
            what: "a datagram target for a stream listener, or the other way round",
        });
    }
    crate::socket::raise_nofile_limit(NOFILE_WANTED);
    if datagrams {
        return serve_datagrams(&server, &forward);
    }
    let idle = server.config().idle_timeout;
    let forward = Arc::new(forward);
    server.serve_tasks_plain(b"", move |stream, peer, _stopping| {
        // The async fn itself, not an `async move` block awaiting it: a block would keep
        // its captures and the awaited future side by side for the connection's life.
        connection(stream, peer, forward.clone(), idle)
    })
}

/// Datagram forwarding, by client address sessions (see `datagram.rs`).
fn serve_datagrams(server: &Server, forward: &Forward) -> Result<()> {
    let Some(sock) = server.datagram_socket() else {
        return Err(Error::Unsupported {
            model: "forward",
            what: "a datagram server without a socket",
        });
    };
    let sock = sock
        .try_clone()
        .map_err(|e| Error::io("prepare socket", e))?;
    let config = server.config();
    let gate = Gate::new(config.access.clone(), usize::MAX, b"");
    datagram::serve(
        sock,
        &forward.target,
        gate,
        config.max_conns.unwrap_or(datagram::DEFAULT_SESSIONS),
        config.idle_timeout.unwrap_or(DATAGRAM_IDLE),
        &server.shutdown_handle(),
    )
}

/// One accepted connection, from its TLS handshake to the end of its relay.
async fn connection(
    stream: TokioStream,
    peer: Peer,
    forward: Arc<Forward>,
    idle: Option<Duration>,
) {
    // Boxed, and so freed once both legs stand: the futures of the handshakes, the lookup
    // and the connect are several times the size of the relay's state, and an unboxed
    // task would keep room for them for the whole life of the connection.
    let Some((mut client, mut target)) = Box::pin(open(stream, &peer, &forward)).await else {
        return;
    };
    match stream::relay(&mut client, &mut target, idle).await {
        Ended::Closed => tracing::debug!(%peer, "relay ended"),
        Ended::Idle => tracing::info!(%peer, "relay closed: idle"),
        Ended::Reset(e) => tracing::debug!(%peer, "relay reset: {e}"),
    }
}

/// Relays a plain client connection (as accepted) and a plain target connection with
/// forward's relay (splice, half-close, reset, idle timeout): the relay of `forward` and of
/// the proxy server after a CONNECT, one relay for both.
pub(crate) async fn relay_plain(
    client: TokioStream,
    target: TokioStream,
    peer: &Peer,
    idle: Option<Duration>,
) {
    let legs = into_std(client)
        .and_then(|c| Ok((c, into_std(target)?)))
        .map_err(|e| Error::io("prepare connection", e))
        .and_then(|(c, t)| Ok((register(Wire::Plain(c))?, register(Wire::Plain(t))?)));
    let (mut client, mut target) = match legs {
        Ok(legs) => legs,
        Err(e) => {
            tracing::warn!(%peer, "cannot relay: {e}");
            return;
        }
    };
    match stream::relay(&mut client, &mut target, idle).await {
        Ended::Closed => tracing::debug!(%peer, "relay ended"),
        Ended::Idle => tracing::info!(%peer, "relay closed: idle"),
        Ended::Reset(e) => tracing::debug!(%peer, "relay reset: {e}"),
    }
}

/// Both legs of a connection: the client's (TLS terminated on it if need be) and the
/// target's (connected within the connect timeout); `None`, with one warning, when either
/// fails.
async fn open(
    mut stream: TokioStream,
    peer: &Peer,
    forward: &Forward,
) -> Option<(AsyncFd<Wire>, AsyncFd<Wire>)> {
    let mut addrs = match (peer, local_addr(&stream)) {
        (Peer::Inet(source), Some(destination)) => Some((*source, destination)),
        _ => None,
    };
    if forward.accept_proxy {
        let head = tokio::time::timeout(forward.handshake_timeout, read_proxy_header(&mut stream));
        match head.await {
            Ok(Ok(Header::Proxied {
                source,
                destination,
            })) => {
                tracing::debug!(%peer, %source, "PROXY header read");
                addrs = Some((source, destination));
            }
            Ok(Ok(Header::Local)) => {}
            Ok(Err(e)) => {
                tracing::warn!(%peer, "client refused: {e}");
                return None;
            }
            Err(_) => {
                tracing::warn!(
                    %peer,
                    "client refused: no PROXY header within {:?}",
                    forward.handshake_timeout
                );
                return None;
            }
        }
    }
    let client = match accept_leg(stream, forward).await {
        Ok(leg) => leg,
        Err(e) => {
            tracing::warn!(%peer, "client refused: {e}");
            return None;
        }
    };
    let header = forward.send_proxy.map(|version| match addrs {
        Some((source, destination)) => header::encode(version, source, destination),
        None => header::encode_local(version),
    });
    let target = connect_leg(forward, header.as_deref());
    match tokio::time::timeout(forward.connect_timeout, target).await {
        Ok(Ok(target)) => Some((client, target)),
        Ok(Err(e)) => {
            tracing::warn!(%peer, "cannot reach {}: {e}; client closed", forward.target);
            None
        }
        Err(_) => {
            tracing::warn!(
                %peer,
                "cannot reach {}: no connection within {:?}; client closed",
                forward.target,
                forward.connect_timeout
            );
            None
        }
    }
}

/// The address a client reached (for the PROXY header's destination); none for Unix.
fn local_addr(stream: &TokioStream) -> Option<std::net::SocketAddr> {
    match stream {
        TokioStream::Tcp(s) => s.local_addr().ok(),
        TokioStream::Unix(_) => None,
        TokioStream::Tls(t) => local_addr(t.get_ref()),
    }
}

/// Reads exactly one PROXY header off `stream`, not a byte more: what follows is the
/// client's, to be relayed (or its TLS handshake). Version 1 is read a byte at a time up
/// to its CRLF (at most 107), version 2 by its length; both are judged by the sans-IO
/// parser as they come, so a client that sends anything else is refused at its first
/// wrong byte.
async fn read_proxy_header(stream: &mut TokioStream) -> Result<Header> {
    let mut buf: Vec<u8> = Vec::with_capacity(header::V1_MAX);
    loop {
        if let Some((head, _)) = header::parse(&buf)? {
            return Ok(head);
        }
        let want = if buf.first() == Some(&header::V2_SIGNATURE[0]) {
            if buf.len() < 16 {
                16
            } else {
                16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]))
            }
        } else {
            buf.len() + 1
        };
        let start = buf.len();
        buf.resize(want, 0);
        let n = stream
            .read(&mut buf[start..])
            .await
            .map_err(|e| Error::io("read the PROXY header", e))?;
        if n == 0 {
            return Err(Error::io(
                "read the PROXY header",
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        buf.truncate(start + n);
    }
}

/// The client's leg: the accepted socket, with TLS terminated on it when the listener is
/// `tls://`.
async fn accept_leg(stream: TokioStream, forward: &Forward) -> Result<AsyncFd<Wire>> {
    let sock = into_std(stream).map_err(|e| Error::io("prepare connection", e))?;
    let Some(tls) = &forward.server_tls else {
        return register(Wire::Plain(sock));
    };
    let tls = TlsStream::server(sock, tls)?;
    let leg = register(Wire::from(tls))?;
    match tokio::time::timeout(forward.handshake_timeout, handshake(leg)).await {
        Ok(r) => r,
        Err(_) => Err(Error::Tls(format!(
            "TLS handshake not done within {:?}",
            forward.handshake_timeout
        ))),
    }
}

/// The target's leg: connected, `header` (a PROXY header) sent first, then TLS
/// originated on it for a `tls://` target.
async fn connect_leg(forward: &Forward, header: Option<&[u8]>) -> Result<AsyncFd<Wire>> {
    let target = &forward.target;
    let what = || format!("connect {target}");
    let mut sock = match target {
        Endpoint::Tcp(hp) | Endpoint::Tls(hp) if forward.proxy.is_some() => {
            // The proxy client is blocking (a few bytes each way, once per connection):
            // it runs on tokio's blocking pool, bounded by the connect timeout.
            let proxy = forward.proxy.clone().expect("checked");
            let (hp, timeout) = (hp.clone(), forward.connect_timeout);
            let stream = tokio::task::spawn_blocking(move || proxy.dial(&hp, Some(timeout)))
                .await
                .map_err(|e| Error::io(what(), std::io::Error::other(e)))??;
            stream
                .set_nonblocking(true)
                .and_then(|()| TokioStream::from_std(stream))
                .map_err(|e| Error::io(what(), e))?
        }
        Endpoint::Tcp(hp) | Endpoint::Tls(hp) => {
            let addrs = tokio::net::lookup_host((hp.host.as_str(), hp.port))
                .await
                .map_err(|e| Error::io(format!("resolve {}", hp.host), e))?;
            let mut last = None;
            let mut connected = None;
            for addr in addrs {
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(s) => {
                        connected = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let Some(s) = connected else {
                let e = last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into());
                return Err(Error::io(what(), e));
            };
            let _ = s.set_nodelay(true);
            TokioStream::Tcp(s)
        }
        Endpoint::Unix(path) => tokio::net::UnixStream::connect(path)
            .await
            .map(TokioStream::Unix)
            .map_err(|e| Error::io(what(), e))?,
        Endpoint::Udp(_) | Endpoint::UnixDgram(_) => {
            return Err(Error::Unsupported {
                model: "forward",
                what: "a datagram target for a stream listener",
            });
        }
    };
    if let Some(header) = header {
        sock.write_all(header)
            .await
            .map_err(|e| Error::io(format!("send the PROXY header to {target}"), e))?;
    }
    let sock = into_std(sock).map_err(|e| Error::io(what(), e))?;
    match (target, &forward.client_tls) {
        (Endpoint::Tls(hp), Some(tls)) => {
            let tls = TlsStream::client(sock, tls, &hp.host)?;
            handshake(register(Wire::from(tls))?).await
        }
        _ => register(Wire::Plain(sock)),
    }
}

/// Makes a TLS leg's handshake on its non-blocking socket, waiting on readiness.
async fn handshake(mut leg: AsyncFd<Wire>) -> Result<AsyncFd<Wire>> {
    loop {
        let mut guard = if leg.get_ref().wants_write() {
            leg.writable_mut().await
        } else {
            leg.readable_mut().await
        }
        .map_err(|e| Error::io("wait for the TLS handshake", e))?;
        let Wire::Tls(tls) = guard.get_inner_mut() else {
            drop(guard);
            return Ok(leg);
        };
        if tls.handshake_step()? {
            drop(guard);
            return Ok(leg);
        }
        guard.clear_ready();
    }
}

/// Registers a leg with the reactor of the current runtime.
fn register(wire: Wire) -> Result<AsyncFd<Wire>> {
    // SAFETY: the `Wire` owns its socket, so the descriptor stays open and the same for
    // as long as the `AsyncFd` holds it; nothing here replaces a leg's socket through
    // `get_mut` (only its methods are called), so `as_raw_fd` never changes.
    unsafe { AsyncFd::register(wire) }
        .map_err(|e| Error::io("register connection", std::io::Error::from(e)))
}

/// The std socket under a tokio one (still non-blocking), so that [`Wire`] and its TLS
/// can own it.
fn into_std(stream: TokioStream) -> std::io::Result<Stream> {
    Ok(match stream {
        TokioStream::Tcp(s) => Stream::Tcp(s.into_std()?),
        TokioStream::Unix(s) => Stream::Unix(s.into_std()?),
        // The forwarder takes connections as accepted, before any TLS: its own TLS legs
        // are made on the std socket.
        TokioStream::Tls(_) => {
            return Err(std::io::Error::other(
                "a connection already under TLS cannot be relayed",
            ));
        }
    })
}
