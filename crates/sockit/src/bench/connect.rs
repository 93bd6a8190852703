//! Opening many connections quickly but politely: non-blocking connects, at most
//! `concurrency` attempts in flight, each with a timeout, the whole phase with a limit.
//!
//! A Unix stream listener whose backlog is full makes a non-blocking `connect` fail with
//! `EAGAIN` at once (TCP would retransmit its SYN instead); such attempts are retried a
//! millisecond later until their own timeout.

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
use crate::socket::Stream;

/// Where the connections go, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    addr: SockAddr,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Unix,
}

impl Target {
    /// Resolves a stream endpoint (the first address a TCP name resolves to).
    pub(crate) fn new(endpoint: &Endpoint) -> Result<Target> {
        match endpoint {
            Endpoint::Tcp(hp) => {
                let addr: SocketAddr = hp.resolve()?[0];
                Ok(Target {
                    addr: addr.into(),
                    kind: Kind::Tcp,
                })
            }
            Endpoint::Unix(path) => Ok(Target {
                addr: SockAddr::unix(path)
                    .map_err(|e| Error::io(format!("socket address {endpoint}"), e))?,
                kind: Kind::Unix,
            }),
            Endpoint::Tls(_) => Err(Error::Unsupported {
                model: "bench",
                what: "tls:// endpoints yet",
            }),
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
}

enum Begun {
    Done(Stream),
    Pending(Socket),
}

/// How many connections to open, and how patiently.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) count: usize,
    pub(crate) concurrency: usize,
    pub(crate) timeout: Duration,
    pub(crate) limit: Duration,
}

/// What opening produced: non-blocking streams, and what went wrong with the others.
#[derive(Debug, Default)]
pub(crate) struct Opened {
    pub(crate) streams: Vec<Stream>,
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

    fn fail(&mut self, e: io::Error) {
        self.failures.add(FailureKind::of_io(&e));
        self.first_error.get_or_insert(e);
    }
}

struct Attempt {
    socket: Socket,
    first: Instant,
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
            match target.begin() {
                Ok(Begun::Done(stream)) => out.streams.push(stream),
                Ok(Begun::Pending(socket)) => {
                    let slot = free.pop().expect("a free slot");
                    let flags = epoll::EventFlags::OUT;
                    if let Err(e) =
                        epoll::add(&ep, &socket, epoll::EventData::new_u64(slot as u64), flags)
                    {
                        free.push(slot);
                        out.fail(e.into());
                        continue;
                    }
                    slots[slot] = Some(Attempt { socket, first });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && target.kind == Kind::Unix => {
                    retries.push_back((first, now + Duration::from_millis(1)));
                }
                Err(e) => out.fail(e),
            }
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
            free.push(slot);
            let _ = epoll::delete(&ep, &attempt.socket);
            match attempt.socket.take_error() {
                Ok(None) => match target.established(attempt.socket) {
                    Ok(stream) => out.streams.push(stream),
                    Err(e) => out.fail(e),
                },
                Ok(Some(e)) | Err(e) => out.fail(e),
            }
        }

        let now = Instant::now();
        for (slot, entry) in slots.iter_mut().enumerate() {
            if entry
                .as_ref()
                .is_some_and(|a| now.duration_since(a.first) >= plan.timeout)
            {
                if let Some(attempt) = entry.take() {
                    let _ = epoll::delete(&ep, attempt.socket.as_fd());
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
