//! Datagram forwarding (`udp://`, `unix-dgram:` on either side): each client address gets
//! a session with its own upstream socket, connected to the target, so the target's
//! replies on that socket belong to that client and go back to it from the listening
//! socket. Sessions end after the idle timeout (nothing either way) and are bounded in
//! number; a datagram from a new client when the table is full is dropped.
//!
//! Datagrams are what they are: one that finds a socket's buffer full is dropped rather
//! than waited for, so one slow session cannot stall the others, as a router would drop
//! it. One task reads the listening socket; one task per session reads its upstream.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use crate::addr::Endpoint;
use crate::error::{Error, Result};
use crate::socket::gate::Gate;
use crate::socket::{DatagramSocket, Peer, Shutdown};

/// The largest datagram (a UDP payload can be 65,507 bytes; a Unix one as large).
const MAX_DATAGRAM: usize = 65_536;

/// Sessions that exist when `--max-conns` says nothing: each one is a socket.
pub(crate) const DEFAULT_SESSIONS: usize = 10_000;

/// A client's session: the socket its datagrams leave by, and when it was last used.
struct Session {
    /// Connected to the target: what arrives on it is the target's reply to this client.
    upstream: Arc<AsyncFd<DatagramSocket>>,
    /// Milliseconds since `epoch` of the last datagram either way, for the idle timeout.
    last: Arc<AtomicU64>,
}

/// The sessions by client address, shared by the listening task (which adds) and the
/// session tasks (which remove themselves when idle).
type Table = Arc<Mutex<HashMap<Peer, Session>>>;

/// What every session task needs besides its own socket.
struct Shared {
    /// Where replies leave from, so that clients see them come from the address they
    /// sent to.
    listener: Arc<AsyncFd<DatagramSocket>>,
    /// The sessions, for a session to remove itself when it ends.
    table: Table,
    /// Sessions end after this long without a datagram either way.
    idle: Duration,
    /// The zero of the `last` clocks (milliseconds fit in an atomic).
    epoch: Instant,
}

/// Serves datagrams from `listener` to `target` until `shutdown`.
pub(crate) fn serve(
    listener: DatagramSocket,
    target: &Endpoint,
    gate: Gate,
    max_sessions: usize,
    idle: Duration,
    shutdown: &Shutdown,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start tokio runtime", e))?;
    runtime.block_on(async {
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("prepare socket", e))?;
        let shared = Arc::new(Shared {
            listener: Arc::new(register(listener)?),
            table: Arc::default(),
            idle,
            epoch: Instant::now(),
        });
        let stopped = shutdown
            .watch_async()
            .map_err(|e| Error::io("watch shutdown pipe", e))?;
        tokio::pin!(stopped);
        let mut full_said = false;
        loop {
            let handled = tokio::select! {
                _ = &mut stopped => return Ok(()),
                r = recv_with(&shared.listener, |bytes, peer| {
                    from_client(&shared, &gate, target, max_sessions, &mut full_said, bytes, peer)
                }) => r,
            };
            if let Err(e) = handled {
                tracing::debug!(error = %e, "receive failed");
            }
        }
    })
}

/// One datagram from a client: to its session's upstream socket, the session opened
/// first if it is new (and admitted).
fn from_client(
    shared: &Arc<Shared>,
    gate: &Gate,
    target: &Endpoint,
    max_sessions: usize,
    full_said: &mut bool,
    bytes: &[u8],
    peer: Peer,
) {
    if !gate.permits(&peer) {
        tracing::debug!(%peer, "datagram refused: denied by the access list");
        return;
    }
    if matches!(peer, Peer::Unix(None)) {
        tracing::debug!("datagram from an unnamed Unix socket dropped: no reply could reach it");
        return;
    }
    let mut table = shared.table.lock().unwrap_or_else(|p| p.into_inner());
    let upstream = match table.get(&peer) {
        Some(s) => {
            s.last.store(shared.millis(), Ordering::Relaxed);
            s.upstream.clone()
        }
        None if table.len() >= max_sessions => {
            if !*full_said {
                tracing::warn!(%peer, max_sessions, "datagram dropped: session table full");
                *full_said = true;
            }
            return;
        }
        None => {
            *full_said = false;
            let up = match open_upstream(target) {
                Ok(up) => Arc::new(up),
                Err(e) => {
                    tracing::warn!(%peer, "cannot reach {target}: {e}; datagram dropped");
                    return;
                }
            };
            let last = Arc::new(AtomicU64::new(shared.millis()));
            let session_state = Session {
                upstream: up.clone(),
                last: last.clone(),
            };
            table.insert(peer.clone(), session_state);
            tokio::spawn(session(shared.clone(), peer.clone(), up.clone(), last));
            up
        }
    };
    drop(table);
    if let Err(e) = send(&upstream, bytes, None) {
        tracing::debug!(%peer, error = %e, "datagram to the target dropped");
    }
}

impl Shared {
    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// One session: the target's replies back to `client` until the session is idle.
async fn session(
    shared: Arc<Shared>,
    client: Peer,
    upstream: Arc<AsyncFd<DatagramSocket>>,
    last: Arc<AtomicU64>,
) {
    loop {
        let due = shared.epoch + Duration::from_millis(last.load(Ordering::Relaxed)) + shared.idle;
        tokio::select! {
            r = recv_with(&upstream, |bytes, _| {
                last.store(shared.millis(), Ordering::Relaxed);
                if let Err(e) = send(&shared.listener, bytes, Some(&client)) {
                    tracing::debug!(peer = %client, error = %e, "reply dropped");
                }
            }) => {
                // A refused send (ICMP port unreachable) comes back on the next receive:
                // the target is down for now; the session waits for it like the client.
                if let Err(e) = r {
                    tracing::debug!(peer = %client, error = %e, "target receive failed");
                }
            },
            _ = tokio::time::sleep_until(due) => {
                let now = shared.millis();
                if now.saturating_sub(last.load(Ordering::Relaxed)) >= millis(shared.idle) {
                    break;
                }
            }
        }
    }
    let mut table = shared.table.lock().unwrap_or_else(|p| p.into_inner());
    table.remove(&client);
    tracing::debug!(peer = %client, "session ended: idle");
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

thread_local! {
    /// The one receive buffer of the thread (the runtime has one): a datagram is handled
    /// (sent on) before the next is received, so sessions need no buffer of their own.
    static BUF: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; MAX_DATAGRAM].into_boxed_slice());
}

/// Waits for one datagram and hands it to `then` (which must not wait).
async fn recv_with<R>(
    sock: &AsyncFd<DatagramSocket>,
    mut then: impl FnMut(&[u8], Peer) -> R,
) -> io::Result<R> {
    loop {
        let mut guard = sock.readable().await?;
        let got = guard.try_io(|s| {
            BUF.with_borrow_mut(|buf| {
                let (n, peer) = s.get_ref().recv_from(buf)?;
                Ok(then(&buf[..n], peer))
            })
        });
        match got {
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

/// Sends one datagram now, to `to` or (upstream) to the connected target; a full buffer
/// drops it (`WouldBlock`).
fn send(sock: &AsyncFd<DatagramSocket>, bytes: &[u8], to: Option<&Peer>) -> io::Result<usize> {
    let fd = rustix::fd::AsFd::as_fd(sock.get_ref());
    match to {
        Some(peer) => sock.get_ref().send_to(bytes, peer),
        None => rustix::net::send(fd, bytes, rustix::net::SendFlags::DONTWAIT).map_err(Into::into),
    }
}

/// A socket connected to the target, for one session (UDP: an ephemeral port of the
/// target's family; Unix: an abstract address of its own, so the target can answer).
fn open_upstream(target: &Endpoint) -> Result<AsyncFd<DatagramSocket>> {
    let what = || format!("connect {target}");
    let sock = match target {
        Endpoint::Udp(hp) => {
            let addr = *hp
                .resolve()?
                .first()
                .ok_or_else(|| Error::io(what(), io::ErrorKind::NotFound.into()))?;
            let any: SocketAddr = if addr.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let s = std::net::UdpSocket::bind(any).map_err(|e| Error::io(what(), e))?;
            s.connect(addr).map_err(|e| Error::io(what(), e))?;
            DatagramSocket::Udp(s)
        }
        Endpoint::UnixDgram(path) => {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let name = format!(
                "sockit-forward-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .map_err(|e| Error::io(what(), e))?;
            let s = std::os::unix::net::UnixDatagram::bind_addr(&addr)
                .map_err(|e| Error::io(what(), e))?;
            s.connect(path).map_err(|e| Error::io(what(), e))?;
            DatagramSocket::Unix(s)
        }
        _ => {
            return Err(Error::Unsupported {
                model: "forward",
                what: "a stream target for a datagram listener",
            });
        }
    };
    sock.set_nonblocking(true)
        .map_err(|e| Error::io("prepare socket", e))?;
    register(sock)
}

fn register(sock: DatagramSocket) -> Result<AsyncFd<DatagramSocket>> {
    // SAFETY: the `DatagramSocket` owns its descriptor, which stays open and the same for
    // as long as the `AsyncFd` holds it (nothing replaces the socket inside).
    unsafe { AsyncFd::register(sock) }.map_err(|e| Error::io("register socket", io::Error::from(e)))
}
