//! Opening many connections quickly but politely: non-blocking connects, at most
//! `concurrency` attempts in flight, each with a timeout, the whole phase with a limit.
//!
//! A Unix stream listener whose backlog is full makes a non-blocking `connect` fail with
//! `EAGAIN` at once (TCP would retransmit its SYN instead); such attempts are retried a
//! millisecond later until their own timeout.
//!
//! For `tls://` a connection is open only once its TLS handshake is done: the handshake
//! runs non-blocking in the same loop, in the same slot, under the same timeout, so a
//! run of N connections to a TLS server makes N full handshakes, `concurrency` at a time.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::epoll;
use socket2::{Domain, SockAddr, Socket, Type};

use super::report::{FailureKind, Failures};
use crate::addr::Endpoint;
use crate::error::{Error, Result};
use crate::socket::{ClientTls, Stream, TlsStream, Wire};

/// Where the connections go, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    addr: SockAddr,
    kind: Kind,
    /// For `tls://`: the client's settings and the host name to send and check.
    tls: Option<(ClientTls, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Unix,
}

impl Target {
    /// Resolves a stream endpoint (the first address a TCP name resolves to). A `tls://`
    /// endpoint needs the client's TLS settings, and only it takes them.
    pub(crate) fn new(endpoint: &Endpoint, tls: Option<&ClientTls>) -> Result<Target> {
        let tcp = |hp: &crate::addr::HostPort, tls| -> Result<Target> {
            let addr: SocketAddr = hp.resolve()?[0];
            Ok(Target {
                addr: addr.into(),
                kind: Kind::Tcp,
                tls,
            })
        };
        if tls.is_some() && !matches!(endpoint, Endpoint::Tls(_)) {
            return Err(Error::Setting(format!(
                "TLS settings were given for {endpoint}, which is not a tls:// address"
            )));
        }
        match endpoint {
            Endpoint::Tcp(hp) => tcp(hp, None),
            Endpoint::Unix(path) => Ok(Target {
                addr: SockAddr::unix(path)
                    .map_err(|e| Error::io(format!("socket address {endpoint}"), e))?,
                kind: Kind::Unix,
                tls: None,
            }),
            Endpoint::Tls(hp) => match tls {
                Some(tls) => tcp(hp, Some((tls.clone(), hp.host.clone()))),
                None => Err(Error::Setting(format!(
                    "{endpoint} needs the client's TLS settings (whom to trust)"
                ))),
            },
            Endpoint::Udp(_) | Endpoint::UnixDgram(_) => Err(Error::Unsupported {
                model: "bench",
                what: "datagram endpoints (it measures stream servers)",
            }),
        }
    }

    fn begin(&self) -> io::Result<Begun> {
        let ty = Type::STREAM.nonblocking().cloexec();
        let socket = match self.kind {
            Kind::Tcp => Socket::new(Domain::for_address(self.tcp_addr()), ty, None)?,
            Kind::Unix => Socket::new(Domain::UNIX, ty, None)?,
        };
        match socket.connect(&self.addr) {
            Ok(()) => Ok(Begun::Done(self.established(socket)?)),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(Begun::Pending(socket)),
            Err(e) => Err(e),
        }
    }

    fn tcp_addr(&self) -> SocketAddr {
        self.addr
            .as_socket()
            .expect("a TCP target has an IP address")
    }

    fn established(&self, socket: Socket) -> io::Result<Stream> {
        Ok(match self.kind {
            Kind::Tcp => {
                // Latency is measured per message; Nagle would hold small writes back.
                socket.set_tcp_nodelay(true)?;
                Stream::Tcp(socket.into())
            }
            Kind::Unix => Stream::Unix(socket.into()),
        })
    }

    /// A connected socket made ready for use: as it is, or with its TLS handshake begun
    /// (and finished, if the server was quick).
    fn ready(&self, stream: Stream) -> std::result::Result<Step, Error> {
        let Some((tls, host)) = &self.tls else {
            return Ok(Step::Done(Wire::Plain(stream)));
        };
        let mut tls = TlsStream::client(stream, tls, host)?;
        Ok(if tls.handshake_step()? {
            Step::Done(Wire::from(tls))
        } else {
            Step::Handshaking(Box::new(tls))
        })
    }
}

enum Begun {
    Done(Stream),
    Pending(Socket),
}

/// Where a connection stands once its socket is connected.
enum Step {
    /// Ready for load.
    Done(Wire),
    /// Its TLS handshake waits for the server.
    Handshaking(Box<TlsStream>),
}

/// What a slot holds: a connect in progress, or a TLS handshake in progress.
enum Pending {
    Connecting(Socket),
    Handshaking(Box<TlsStream>),
}

impl AsFd for Pending {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Pending::Connecting(s) => s.as_fd(),
            Pending::Handshaking(t) => t.as_fd(),
        }
    }
}

/// How many connections to open, and how patiently.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) count: usize,
    pub(crate) concurrency: usize,
    pub(crate) timeout: Duration,
    pub(crate) limit: Duration,
}

/// What opening produced: non-blocking connections (TLS ones with their handshake done),
/// and what went wrong with the others.
#[derive(Debug, Default)]
pub(crate) struct Opened {
    pub(crate) streams: Vec<Wire>,
    pub(crate) failures: Failures,
    /// The first error, to explain a run where nothing connected.
    pub(crate) first_error: Option<io::Error>,
}

impl Opened {
    /// An error when not one connection opened (a run then has nothing to measure).
    pub(crate) fn none_opened(
        &mut self,
        endpoint: &crate::Endpoint,
        attempts: usize,
    ) -> Option<crate::Error> {
        if !self.streams.is_empty() {
            return None;
        }
        let e = self
            .first_error
            .take()
            .unwrap_or_else(|| io::ErrorKind::NotConnected.into());
        Some(crate::Error::io(
            format!("connect {endpoint} (all {attempts} attempts failed)"),
            e,
        ))
    }

    /// The connections of a target without TLS, as the sockets they are (a load
    /// generator that speaks no TLS makes its target with none, so every one is plain).
    pub(crate) fn into_plain(self) -> Vec<Stream> {
        self.streams
            .into_iter()
            .filter_map(|w| match w {
                Wire::Plain(s) => Some(s),
                Wire::Tls(_) => None,
            })
            .collect()
    }

    fn fail(&mut self, e: io::Error) {
        self.failures.add(FailureKind::of_io(&e));
        self.first_error.get_or_insert(e);
    }

    /// A connection that could not be made ready: an OS error counts by its kind, a TLS
    /// failure (untrusted certificate, a handshake the server broke off) as `tls`.
    fn fail_setup(&mut self, e: Error) {
        match e {
            Error::Io { source, .. } => self.fail(source),
            e => {
                self.failures.add(FailureKind::Tls);
                self.first_error.get_or_insert_with(|| {
                    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
                });
            }
        }
    }

    /// Takes a connected socket through [`Target::ready`]; `Some` when it needs its slot
    /// (and epoll registration) for a handshake still under way.
    fn settle(&mut self, target: &Target, stream: Stream) -> Option<Box<TlsStream>> {
        match target.ready(stream) {
            Ok(Step::Done(wire)) => self.streams.push(wire),
            Ok(Step::Handshaking(tls)) => return Some(tls),
            Err(e) => self.fail_setup(e),
        }
        None
    }
}

struct Attempt {
    pending: Pending,
    first: Instant,
}

/// The events a handshake waits for: the server's records, and room for ours.
fn handshake_events(tls: &TlsStream) -> epoll::EventFlags {
    if tls.wants_write() {
        epoll::EventFlags::IN | epoll::EventFlags::OUT
    } else {
        epoll::EventFlags::IN
    }
}

/// Opens `plan.count` connections to `target`; `progress(open, failed)` is called a few
/// times a second.
pub(crate) fn open(
    target: &Target,
    plan: Plan,
    progress: &mut dyn FnMut(usize, u64),
) -> Result<Opened> {
    let ep =
        epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| Error::io("epoll", e.into()))?;
    let concurrency = plan.concurrency.max(1);
    let mut slots: Vec<Option<Attempt>> = (0..concurrency).map(|_| None).collect();
    let mut free: Vec<usize> = (0..concurrency).rev().collect();
    let mut retries: VecDeque<(Instant, Instant)> = VecDeque::new();
    let mut events = Vec::with_capacity(256);
    let mut out = Opened::default();
    let start = Instant::now();
    let stop_starting = start + plan.limit;
    let mut started = 0usize;
    let mut last_report = start;
    loop {
        let now = Instant::now();
        while !free.is_empty() {
            let first = match retries.front() {
                Some(&(first, at)) if at <= now => {
                    retries.pop_front();
                    first
                }
                _ if started < plan.count && now < stop_starting => {
                    started += 1;
                    now
                }
                _ => break,
            };
            if now.duration_since(first) >= plan.timeout {
                out.failures.add(FailureKind::Timeout);
                continue;
            }
            let pending = match target.begin() {
                Ok(Begun::Done(stream)) => match out.settle(target, stream) {
                    Some(tls) => Pending::Handshaking(tls),
                    None => continue,
                },
                Ok(Begun::Pending(socket)) => Pending::Connecting(socket),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && target.kind == Kind::Unix => {
                    retries.push_back((first, now + Duration::from_millis(1)));
                    continue;
                }
                Err(e) => {
                    out.fail(e);
                    continue;
                }
            };
            let slot = free.pop().expect("a free slot");
            let flags = match &pending {
                Pending::Connecting(_) => epoll::EventFlags::OUT,
                Pending::Handshaking(tls) => handshake_events(tls),
            };
            if let Err(e) = epoll::add(&ep, &pending, epoll::EventData::new_u64(slot as u64), flags)
            {
                free.push(slot);
                out.fail(e.into());
                continue;
            }
            slots[slot] = Some(Attempt { pending, first });
        }
        let in_flight = concurrency - free.len();
        if in_flight == 0 && retries.is_empty() && (started == plan.count || now >= stop_starting) {
            break;
        }

        let wait = if retries.is_empty() {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(1)
        };
        let timeout = rustix::event::Timespec::try_from(wait).expect("small timeout");
        events.clear();
        match epoll::wait(&ep, spare_capacity(&mut events), Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io("epoll_wait", e.into())),
        }
        for ev in &events {
            let slot = ev.data.u64() as usize;
            let Some(attempt) = slots[slot].take() else {
                continue;
            };
            let first = attempt.first;
            let mut tls = match attempt.pending {
                Pending::Connecting(socket) => {
                    let _ = epoll::delete(&ep, &socket);
                    let connected = match socket.take_error() {
                        Ok(None) => target.established(socket),
                        Ok(Some(e)) | Err(e) => Err(e),
                    };
                    let handshaking = match connected {
                        Ok(stream) => out.settle(target, stream),
                        Err(e) => {
                            out.fail(e);
                            None
                        }
                    };
                    if let Some(tls) = handshaking {
                        // Same slot, now waiting for the server's records.
                        let data = epoll::EventData::new_u64(slot as u64);
                        match epoll::add(&ep, &tls, data, handshake_events(&tls)) {
                            Ok(()) => {
                                slots[slot] = Some(Attempt {
                                    pending: Pending::Handshaking(tls),
                                    first,
                                });
                                continue;
                            }
                            Err(e) => out.fail(e.into()),
                        }
                    }
                    free.push(slot);
                    continue;
                }
                Pending::Handshaking(tls) => tls,
            };
            match tls.handshake_step() {
                Ok(true) => {
                    let _ = epoll::delete(&ep, &tls);
                    out.streams.push(Wire::Tls(tls));
                    free.push(slot);
                }
                Ok(false) => {
                    let data = epoll::EventData::new_u64(slot as u64);
                    match epoll::modify(&ep, &tls, data, handshake_events(&tls)) {
                        Ok(()) => {
                            slots[slot] = Some(Attempt {
                                pending: Pending::Handshaking(tls),
                                first,
                            });
                        }
                        Err(e) => {
                            out.fail(e.into());
                            free.push(slot);
                        }
                    }
                }
                Err(e) => {
                    let _ = epoll::delete(&ep, &tls);
                    out.fail_setup(e);
                    free.push(slot);
                }
            }
        }

        let now = Instant::now();
        for (slot, entry) in slots.iter_mut().enumerate() {
            if entry
                .as_ref()
                .is_some_and(|a| now.duration_since(a.first) >= plan.timeout)
            {
                if let Some(attempt) = entry.take() {
                    let _ = epoll::delete(&ep, attempt.pending.as_fd());
                }
                free.push(slot);
                out.failures.add(FailureKind::Timeout);
                out.first_error.get_or_insert_with(|| {
                    io::Error::new(io::ErrorKind::TimedOut, "connect timed out")
                });
            }
        }
        if now.duration_since(last_report) >= Duration::from_millis(200) {
            last_report = now;
            progress(out.streams.len(), out.failures.total());
        }
    }
    out.failures
        .add_n(FailureKind::Skipped, (plan.count - started) as u64);
    progress(out.streams.len(), out.failures.total());
    Ok(out)
}
