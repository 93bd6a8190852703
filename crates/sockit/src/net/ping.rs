//! ICMP echo (`ping`) over IPv4 and IPv6, on [`packet`](super::packet)'s headers.
//!
//! Two sockets can send ICMP: the unprivileged ICMP datagram socket (`SOCK_DGRAM`,
//! `IPPROTO_ICMP`/`IPPROTO_ICMPV6`), which the kernel allows to the groups in
//! `net.ipv4.ping_group_range` and which owns the identifier itself; and the raw socket,
//! which needs root (`CAP_NET_RAW`) and sees every ICMP message of the host, so replies are
//! matched by identifier. [`open`] tries them in that order.
//!
//! [`Tracker`] is the sans-IO core: it is told what was sent and what arrived (time is an
//! argument), and says whether each packet is a reply, a duplicate, a late reply or an ICMP
//! error about one of ours; [`run`] is the blocking driver around a socket.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::packet::{Icmp, IcmpVersion, Ipv4Header, PROTO_ICMP};
use crate::error::{Error, Result};

/// How to ping.
#[derive(Debug, Clone, Copy)]
pub struct PingOptions {
    /// Echo requests to send; `None` until stopped.
    pub count: Option<u32>,
    /// Time between requests.
    pub interval: Duration,
    /// How long to wait for a reply; a reply later than this is reported as late, and
    /// after the last request the run waits at most this long.
    pub timeout: Duration,
    /// Bytes of data after the 8-byte ICMP header.
    pub size: usize,
}

impl Default for PingOptions {
    fn default() -> Self {
        PingOptions {
            count: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            size: 56,
        }
    }
}

/// The largest data size: an IPv4 datagram of 65535 bytes less the headers.
pub const MAX_SIZE: usize = 65_507;

/// Which kind of socket carries the echoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// Unprivileged ICMP datagram socket; the kernel sets the identifier.
    Datagram,
    /// Raw socket (root); replies are told apart by identifier.
    Raw,
}

/// What one received packet (or a failed send) meant.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A first, timely reply to one of our requests.
    Reply {
        /// Who answered.
        from: IpAddr,
        /// Sequence number answered.
        seq: u16,
        /// Bytes of ICMP (header and data) received.
        bytes: usize,
        /// TTL / hop limit of the reply, when the kernel told it.
        ttl: Option<u8>,
        /// Round-trip time.
        rtt: Duration,
    },
    /// Another reply to a request already answered.
    Duplicate {
        /// Who answered.
        from: IpAddr,
        /// Sequence number answered again.
        seq: u16,
        /// Round-trip time of this copy.
        rtt: Duration,
    },
    /// A reply that came after the timeout; not counted as received.
    Late {
        /// Who answered.
        from: IpAddr,
        /// Sequence number answered.
        seq: u16,
        /// Round-trip time.
        rtt: Duration,
    },
    /// An ICMP error (unreachable, time exceeded) about one of our requests.
    Error {
        /// The router or host that sent it.
        from: IpAddr,
        /// Sequence number of the request it quotes.
        seq: u16,
        /// What it says, as iputils prints it.
        message: String,
    },
    /// The request could not be sent (no route, blackhole, ...).
    SendFailed {
        /// Sequence number of the request.
        seq: u16,
        /// The OS error.
        error: String,
    },
}

/// Counts and round-trip times of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Requests sent (or tried).
    pub transmitted: u32,
    /// Requests answered in time, each counted once.
    pub received: u32,
    /// Extra replies to answered requests.
    pub duplicates: u32,
    /// Replies after the timeout.
    pub late: u32,
    /// ICMP errors about our requests, and failed sends.
    pub errors: u32,
    /// TCP ping only: probes the host answered with a reset (the port is closed, but the
    /// host is up); not counted as received, since nothing listens there.
    pub refused: u32,
    /// Round-trip times of the counted replies.
    pub rtts: Vec<Duration>,
    /// From the first request to the end of the run.
    pub elapsed: Duration,
}

impl Stats {
    /// Percentage of requests without a reply.
    pub fn loss_percent(&self) -> f64 {
        if self.transmitted == 0 {
            return 0.0;
        }
        100.0 * f64::from(self.transmitted - self.received.min(self.transmitted))
            / f64::from(self.transmitted)
    }

    /// Minimum, average, maximum and mean deviation (iputils' `mdev`: the standard
    /// deviation) of the round-trip times, in milliseconds; `None` without replies.
    pub fn rtt_summary(&self) -> Option<[f64; 4]> {
        if self.rtts.is_empty() {
            return None;
        }
        let ms: Vec<f64> = self.rtts.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        let n = ms.len() as f64;
        let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ms.iter().copied().fold(0.0, f64::max);
        let avg = ms.iter().sum::<f64>() / n;
        let var = (ms.iter().map(|x| x * x).sum::<f64>() / n - avg * avg).max(0.0);
        Some([min, avg, max, var.sqrt()])
    }
}

/// The sans-IO core: which requests are out, and what each arriving packet means.
#[derive(Debug)]
pub struct Tracker {
    target: IpAddr,
    version: IcmpVersion,
    ident: u16,
    timeout: Duration,
    /// Send time of each sequence number, and whether it was answered.
    sent: HashMap<u16, (Instant, bool)>,
    stats: Stats,
}

impl Tracker {
    /// Tracks echoes to `target` with identifier `ident`.
    pub fn new(target: IpAddr, ident: u16, timeout: Duration) -> Tracker {
        Tracker {
            target,
            version: IcmpVersion::of(target),
            ident,
            timeout,
            sent: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// Records that request `seq` left at `at` (or failed to).
    pub fn on_sent(&mut self, seq: u16, at: Instant) {
        self.stats.transmitted += 1;
        self.sent.insert(seq, (at, false));
    }

    /// Records a send that failed.
    pub fn on_send_failed(&mut self, seq: u16, error: &io::Error) -> Event {
        self.stats.transmitted += 1;
        self.stats.errors += 1;
        Event::SendFailed {
            seq,
            error: error.to_string(),
        }
    }

    /// Requests sent and not yet answered whose timeout has not passed at `now`.
    pub fn outstanding(&self, now: Instant) -> usize {
        self.sent
            .values()
            .filter(|(at, answered)| !answered && now.duration_since(*at) < self.timeout)
            .count()
    }

    /// Classifies a parsed ICMP message from `from`, received at `at` with `bytes` bytes of
    /// ICMP. `None` for anything not about our requests (other pings, our own requests seen
    /// on loopback, unrelated errors).
    pub fn on_packet(
        &mut self,
        from: IpAddr,
        icmp: &Icmp<'_>,
        bytes: usize,
        ttl: Option<u8>,
        at: Instant,
    ) -> Option<Event> {
        match *icmp {
            Icmp::EchoReply { ident, seq, .. } if ident == self.ident => {
                let (sent_at, answered) = self.sent.get_mut(&seq)?;
                let rtt = at.saturating_duration_since(*sent_at);
                if *answered {
                    self.stats.duplicates += 1;
                    return Some(Event::Duplicate { from, seq, rtt });
                }
                *answered = true;
                if rtt > self.timeout {
                    self.stats.late += 1;
                    return Some(Event::Late { from, seq, rtt });
                }
                self.stats.received += 1;
                self.stats.rtts.push(rtt);
                Some(Event::Reply {
                    from,
                    seq,
                    bytes,
                    ttl,
                    rtt,
                })
            }
            Icmp::Unreachable { .. } | Icmp::TimeExceeded { .. } => {
                let (dst, ident, seq) = icmp.quoted_echo(self.version)?;
                if dst != self.target || ident != self.ident || !self.sent.contains_key(&seq) {
                    return None;
                }
                self.stats.errors += 1;
                Some(Event::Error {
                    from,
                    seq,
                    message: icmp.describe(self.version),
                })
            }
            _ => None,
        }
    }

    /// The counts so far, with `elapsed` as the run's duration.
    pub fn stats(&self, elapsed: Duration) -> Stats {
        Stats {
            elapsed,
            ..self.stats.clone()
        }
    }
}

/// Opens an ICMP socket for `target`: the datagram socket where `ping_group_range` allows
/// it, else a raw one; [`Error::NotPermitted`] with the remedy when neither is allowed.
pub fn open(target: IpAddr) -> Result<(Socket, SocketKind)> {
    let (domain, protocol) = match target {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let denied = |e: &io::Error| {
        matches!(
            e.raw_os_error(),
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EPROTONOSUPPORT)
        )
    };
    let dgram_error = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(s) => return Ok((s, SocketKind::Datagram)),
        Err(e) if denied(&e) => e,
        Err(e) => return Err(Error::io("open ICMP datagram socket", e)),
    };
    match Socket::new(domain, Type::RAW, Some(protocol)) {
        Ok(s) => Ok((s, SocketKind::Raw)),
        Err(e) if denied(&e) => {
            let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
                .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|_| "unknown".into());
            let gid = rustix::process::getegid().as_raw();
            Err(Error::NotPermitted(format!(
                "cannot open an ICMP socket: the datagram socket is not allowed for group \
                 {gid} (net.ipv4.ping_group_range is \"{range}\": {dgram_error}) and a raw \
                 socket needs root or CAP_NET_RAW ({e}); run as root, \
                 `setcap cap_net_raw+ep` the binary, or \
                 `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`"
            )))
        }
        Err(e) => Err(Error::io("open raw ICMP socket", e)),
    }
}

/// Pings `target` until `options.count` requests are sent and answered (or timed out) or
/// `stop` is set; calls `on_event` for every reply, duplicate, late reply and error.
pub fn run(
    target: IpAddr,
    options: PingOptions,
    stop: &AtomicBool,
    mut on_event: impl FnMut(&Event),
) -> Result<(SocketKind, Stats)> {
    if options.size > MAX_SIZE {
        return Err(Error::Setting(format!(
            "size {} is over {MAX_SIZE}",
            options.size
        )));
    }
    let (socket, kind) = open(target)?;
    let version = IcmpVersion::of(target);
    let ident = prepare(&socket, kind, target)?;
    let mut tracker = Tracker::new(target, ident, options.timeout);
    let dest = SockAddr::from(SocketAddr::new(target, 0));
    let payload: Vec<u8> = (0..options.size).map(|i| (i % 256) as u8).collect();
    let mut buf = vec![0u8; MAX_SIZE + 1024];
    let mut packet = Vec::with_capacity(payload.len() + 8);

    let started = Instant::now();
    let mut next_send = started;
    let mut last_send = started;
    let mut sent: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let all_sent = options.count.is_some_and(|c| sent >= c);
        if !all_sent && now >= next_send {
            sent += 1;
            let seq = sent as u16; // wraps after 65535, as iputils' does
            packet.clear();
            Icmp::EchoRequest {
                ident,
                seq,
                payload: &payload,
            }
            .write(version, None, &mut packet);
            match socket.send_to(&packet, &dest) {
                Ok(_) => tracker.on_sent(seq, now),
                Err(e) => on_event(&tracker.on_send_failed(seq, &e)),
            }
            last_send = now;
            next_send += options.interval;
            continue;
        }
        let wake = if all_sent {
            if tracker.outstanding(now) == 0 || now >= last_send + options.timeout {
                break;
            }
            last_send + options.timeout
        } else {
            next_send
        };
        // Short waits so that Ctrl-C is noticed promptly.
        let wait = wake
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        socket
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .map_err(|e| Error::io("set ICMP socket timeout", e))?;
        let (len, from, ttl) = match recv_with_ttl(&socket, &mut buf) {
            Ok(got) => got,
            Err(e) if is_timeout(&e) => continue,
            // An ICMP error queued on a datagram socket surfaces as a receive error; the
            // run goes on and the request counts as lost.
            Err(e) if kind == SocketKind::Datagram && e.raw_os_error().is_some() => continue,
            Err(e) => return Err(Error::io("receive ICMP", e)),
        };
        let at = Instant::now();
        let (from, ttl, icmp_bytes) = match (kind, version) {
            (SocketKind::Raw, IcmpVersion::V4) => match Ipv4Header::parse(&buf[..len]) {
                Ok((ip, body)) if ip.protocol == PROTO_ICMP => {
                    (IpAddr::V4(ip.src), Some(ip.ttl), body)
                }
                _ => continue,
            },
            _ => (from, ttl, &buf[..len]),
        };
        let Ok(icmp) = Icmp::parse(version, None, icmp_bytes) else {
            continue;
        };
        // A datagram socket only sees its own echoes, whose identifier the kernel set.
        if let Some(event) = tracker.on_packet(from, &icmp, icmp_bytes.len(), ttl, at) {
            on_event(&event);
        }
    }
    Ok((kind, tracker.stats(started.elapsed())))
}

/// Sets the socket up to report TTLs and returns the identifier our echoes carry.
fn prepare(socket: &Socket, kind: SocketKind, target: IpAddr) -> Result<u16> {
    let set = |level, name| -> Result<()> {
        let one: libc::c_int = 1;
        // SAFETY: `one` is a live c_int and the length passed is its size; the fd is open.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(Error::io(
                "ask for the TTL of replies",
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    };
    match target {
        IpAddr::V4(_) => set(libc::IPPROTO_IP, libc::IP_RECVTTL)?,
        IpAddr::V6(_) => set(libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT)?,
    }
    match kind {
        SocketKind::Datagram => {
            // The kernel writes the socket's "port" into the identifier of every echo.
            let any = SocketAddr::new(
                match target {
                    IpAddr::V4(_) => IpAddr::from([0u8; 4]),
                    IpAddr::V6(_) => IpAddr::from([0u16; 8]),
                },
                0,
            );
            socket
                .bind(&any.into())
                .map_err(|e| Error::io("bind ICMP socket", e))?;
            let local = socket
                .local_addr()
                .map_err(|e| Error::io("ICMP socket address", e))?;
            Ok(local.as_socket().map_or(0, |a| a.port()))
        }
        SocketKind::Raw => {
            let mut id = [0u8; 2];
            getrandom::fill(&mut id)
                .map_err(|e| Error::io("random identifier", io::Error::other(e)))?;
            Ok(u16::from_ne_bytes(id))
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// `recvmsg` that also returns the sender and the TTL / hop limit from the control data.
fn recv_with_ttl(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, IpAddr, Option<u8>)> {
    let mut control = [0u64; 16]; // u64 for cmsghdr alignment
    let mut ttl = None;
    // SAFETY: socket2 hands us storage for a socket address and its length; recvmsg writes
    // at most that many bytes there and sets the length.
    let (n, addr) = unsafe {
        SockAddr::try_init(|name, name_len| {
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // An all-zero msghdr is valid (null pointers, zero lengths); fields set below.
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = name.cast();
            msg.msg_namelen = *name_len;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of_val(&control) as _;
            // Every pointer in `msg` points at a live buffer of the length given with it.
            let n = libc::recvmsg(socket.as_raw_fd(), &mut msg, 0);
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            *name_len = msg.msg_namelen;
            // The CMSG macros walk the control buffer the kernel just filled, within
            // `msg_controllen`; each read is of the int the cmsg type announces.
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let c = &*cmsg;
                let is_ttl = (c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_TTL)
                    || (c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_HOPLIMIT);
                if is_ttl {
                    let v = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                    ttl = u8::try_from(v).ok();
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
            Ok(n as usize)
        })?
    };
    let from = addr
        .as_socket()
        .map(|a| a.ip())
        .ok_or_else(|| io::Error::other("ICMP from a non-IP address"))?;
    Ok((n, from, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(ident: u16, seq: u16) -> Icmp<'static> {
        Icmp::EchoReply {
            ident,
            seq,
            payload: b"data",
        }
    }

    #[test]
    fn replies_are_matched_by_identifier_and_sequence() {
        let target: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = Tracker::new(target, 42, Duration::from_secs(1));
        t.on_sent(1, ms(0));
        t.on_sent(2, ms(100));
        assert_eq!(t.outstanding(ms(150)), 2);
        // Another process's echo, an unsent sequence number, our own request: ignored.
        assert_eq!(t.on_packet(target, &reply(43, 1), 12, None, ms(5)), None);
        assert_eq!(t.on_packet(target, &reply(42, 9), 12, None, ms(5)), None);
        let own = Icmp::EchoRequest {
            ident: 42,
            seq: 1,
            payload: b"",
        };
        assert_eq!(t.on_packet(target, &own, 8, None, ms(5)), None);
        assert!(matches!(
            t.on_packet(target, &reply(42, 1), 12, Some(64), ms(10)),
            Some(Event::Reply {
                seq: 1,
                ttl: Some(64),
                ..
            })
        ));
        assert!(matches!(
            t.on_packet(target, &reply(42, 1), 12, Some(64), ms(11)),
            Some(Event::Duplicate { seq: 1, .. })
        ));
        assert!(matches!(
            t.on_packet(target, &reply(42, 2), 12, Some(64), ms(1500)),
            Some(Event::Late { seq: 2, .. })
        ));
        let s = t.stats(Duration::from_secs(2));
        assert_eq!(
            (s.transmitted, s.received, s.duplicates, s.late),
            (2, 1, 1, 1)
        );
        assert_eq!(s.loss_percent(), 50.0);
        assert_eq!(s.rtt_summary().unwrap()[0], 10.0);
    }

    #[test]
    fn errors_quoting_our_echo_are_reported_not_counted() {
        use crate::net::packet::{Ipv4Header, PROTO_ICMP};
        let target: IpAddr = "192.0.2.7".parse().unwrap();
        let mut t = Tracker::new(target, 42, Duration::from_secs(1));
        t.on_sent(3, Instant::now());
        let mut quoted = Vec::new();
        Ipv4Header {
            tos: 0,
            total_len: 84,
            ident: 0,
            flags_fragment: 0,
            ttl: 1,
            protocol: PROTO_ICMP,
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.7".parse().unwrap(),
        }
        .write(&mut quoted);
        Icmp::EchoRequest {
            ident: 42,
            seq: 3,
            payload: b"",
        }
        .write(IcmpVersion::V4, None, &mut quoted);
        let router: IpAddr = "198.51.100.1".parse().unwrap();
        let err = Icmp::Unreachable {
            code: 1,
            quoted: &quoted,
        };
        assert_eq!(
            t.on_packet(router, &err, 36, None, Instant::now()),
            Some(Event::Error {
                from: router,
                seq: 3,
                message: "Destination Host Unreachable".into()
            })
        );
        let other = Tracker::new(target, 41, Duration::from_secs(1)).on_packet(
            router,
            &err,
            36,
            None,
            Instant::now(),
        );
        assert_eq!(other, None);
        let s = t.stats(Duration::ZERO);
        assert_eq!((s.received, s.errors), (0, 1));
        assert_eq!(s.loss_percent(), 100.0);
        assert_eq!(s.rtt_summary(), None);
    }
}
