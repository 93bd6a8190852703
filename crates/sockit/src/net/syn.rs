//! Half-open SYN scan (`nmap -sS`) over a raw socket: send a TCP SYN to each port and
//! classify the answer without ever completing a handshake.
//!
//! - **open**: SYN-ACK; answered at once with a RST so nothing stays half-open (the kernel
//!   would send one too, as no socket of ours owns the source port, but we do not rely on it);
//! - **closed**: RST;
//! - **filtered**: nothing after the retries.
//!
//! IPv4 builds the IP header itself (`IP_HDRINCL`); IPv6 raw sockets cannot, so the kernel
//! writes it and we write the TCP header with the pseudo-header checksum. The source port
//! is reserved by binding an ordinary TCP socket to it (never listening), so two scans
//! never share one and no local connection is confused with the scan. Each SYN's sequence
//! number is a keyed hash of its port: an answer counts only if it acknowledges it.
//! Needs root (`CAP_NET_RAW`).

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::check::{PortList, PortResult, PortState};
use super::packet::{Ipv4Header, PROTO_TCP, TcpHeader, tcp_flags};
use crate::error::{Error, Result};

/// How to scan.
#[derive(Debug, Clone, Copy)]
pub struct SynOptions {
    /// How long to wait for answers after the last SYN of a round.
    pub timeout: Duration,
    /// Most SYNs sent per second.
    pub rate: u32,
    /// Rounds of SYNs re-sent to ports that have not answered.
    pub retries: u32,
}

impl Default for SynOptions {
    fn default() -> Self {
        SynOptions {
            timeout: Duration::from_secs(1),
            rate: 500_000,
            retries: 1,
        }
    }
}

const UNANSWERED: u8 = 0;
const OPEN: u8 = 1;
const CLOSED: u8 = 2;

/// The state shared between the sender and the receiver thread.
struct Shared {
    socket: Socket,
    host: IpAddr,
    local: IpAddr,
    local_port: u16,
    key: u32,
    /// Per port: UNANSWERED, OPEN or CLOSED.
    states: Vec<AtomicU8>,
    /// Which ports are scanned (answers from others are ignored).
    wanted: Vec<bool>,
    answered: AtomicUsize,
    done: AtomicBool,
}

/// SYN-scans `ports` of `host`; results come back in port order.
pub fn scan(host: IpAddr, ports: &PortList, options: SynOptions) -> Result<Vec<PortResult>> {
    if options.rate == 0 {
        return Err(Error::Setting(
            "rate must be at least 1 SYN per second".into(),
        ));
    }
    let socket = open_raw(host)?;
    let local = source_address(host)?;
    // Reserve the source port: bound, never listening, so the kernel owns no connection on
    // it and no other scan picks it.
    let reserve = Socket::new(
        Domain::for_address(SocketAddr::new(local, 0)),
        Type::STREAM,
        None,
    )
    .map_err(|e| Error::io("reserve a source port", e))?;
    reserve
        .bind(&SocketAddr::new(local, 0).into())
        .map_err(|e| Error::io(format!("reserve a source port on {local}"), e))?;
    let local_port = reserve
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .ok_or_else(|| Error::io("source port", io::Error::other("no port bound")))?;
    attach_port_filter(&socket, host, local_port);
    let mut key = [0u8; 4];
    getrandom::fill(&mut key).map_err(|e| Error::io("random key", io::Error::other(e)))?;
    let mut wanted = vec![false; 65_536];
    for &p in ports.ports() {
        wanted[usize::from(p)] = true;
    }
    let shared = Arc::new(Shared {
        socket,
        host,
        local,
        local_port,
        key: u32::from_ne_bytes(key),
        states: (0..65_536).map(|_| AtomicU8::new(UNANSWERED)).collect(),
        wanted,
        answered: AtomicUsize::new(0),
        done: AtomicBool::new(false),
    });
    let receiver = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("syn-recv".into())
            .spawn(move || receive(&shared))
            .map_err(|e| Error::io("start the receiver thread", e))?
    };
    let sent = send_rounds(&shared, ports.ports(), options);
    shared.done.store(true, Ordering::Relaxed);
    let received = receiver
        .join()
        .unwrap_or_else(|_| Err(Error::io("receiver", io::Error::other("panicked"))));
    drop(reserve);
    sent?;
    received?;
    Ok(ports
        .ports()
        .iter()
        .map(|&port| PortResult {
            port,
            state: match shared.states[usize::from(port)].load(Ordering::Relaxed) {
                OPEN => PortState::Open,
                CLOSED => PortState::Closed,
                _ => PortState::Filtered,
            },
        })
        .collect())
}

fn open_raw(host: IpAddr) -> Result<Socket> {
    let domain = match host {
        IpAddr::V4(_) => Domain::IPV4,
        IpAddr::V6(_) => Domain::IPV6,
    };
    let socket = match Socket::new(domain, Type::RAW, Some(Protocol::TCP)) {
        Ok(s) => s,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) => {
            return Err(Error::NotPermitted(format!(
                "a SYN scan needs a raw socket, which needs root or CAP_NET_RAW ({e}); \
                 run as root, or use the connect scan (without --syn)"
            )));
        }
        Err(e) => return Err(Error::io("open raw TCP socket", e)),
    };
    if host.is_ipv4() {
        socket
            .set_header_included_v4(true)
            .map_err(|e| Error::io("set IP_HDRINCL", e))?;
    }
    // Answers arrive in a burst as fast as SYNs leave: give them room. SO_RCVBUFFORCE
    // passes the rmem_max cap (we are root); fall back to what the cap allows.
    let size: libc::c_int = 64 << 20;
    // SAFETY: `size` is a live c_int and the length is its size; the fd is open.
    let forced = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        let _ = socket.set_recv_buffer_size(size as usize);
    }
    Ok(socket)
}

/// The address the kernel would send from to reach `host` (a UDP connect sends nothing).
fn source_address(host: IpAddr) -> Result<IpAddr> {
    let any: SocketAddr = match host {
        IpAddr::V4(_) => "0.0.0.0:0".parse().expect("valid"),
        IpAddr::V6(_) => "[::]:0".parse().expect("valid"),
    };
    let udp = UdpSocket::bind(any).map_err(|e| Error::io("bind UDP probe", e))?;
    udp.connect(SocketAddr::new(host, 9))
        .map_err(|e| Error::io(format!("route to {host}"), e))?;
    Ok(udp
        .local_addr()
        .map_err(|e| Error::io("UDP probe address", e))?
        .ip())
}

/// Lets only TCP segments to our source port reach the socket, so the receiver does not
/// wade through our own SYNs (loopback delivers them to raw sockets too) and other traffic.
/// Best effort: without it the receiver filters the same way, only slower.
fn attach_port_filter(socket: &Socket, host: IpAddr, port: u16) {
    const LD_H_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
    const LD_H_IND: u16 = 0x48; // BPF_LD | BPF_H | BPF_IND
    const LDX_B_MSH: u16 = 0xb1; // BPF_LDX | BPF_B | BPF_MSH
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let port = u32::from(port);
    let program: Vec<libc::sock_filter> = match host {
        // The IPv4 socket sees the IP header: X = its length, then the port at X + 2.
        IpAddr::V4(_) => vec![
            op(LDX_B_MSH, 0, 0, 0),
            op(LD_H_IND, 0, 0, 2),
            op(JEQ_K, 0, 1, port),
            op(RET_K, 0, 0, 0xffff),
            op(RET_K, 0, 0, 0),
        ],
        // The IPv6 socket sees the TCP header first.
        IpAddr::V6(_) => vec![
            op(LD_H_ABS, 0, 0, 2),
            op(JEQ_K, 0, 1, port),
            op(RET_K, 0, 0, 0xffff),
            op(RET_K, 0, 0, 0),
        ],
    };
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `program`, alive for the call; the kernel copies it.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
}

impl Shared {
    /// The sequence number of the SYN to `port`: keyed, so forged or stale answers that do
    /// not acknowledge it are ignored.
    fn cookie(&self, port: u16) -> u32 {
        let x = (u32::from(port) ^ self.key).wrapping_mul(0x9e37_79b1);
        x ^ (x >> 15) ^ self.key.rotate_left(7)
    }

    /// One segment from us to `port`: IPv4 with its header, IPv6 TCP only.
    fn segment(&self, port: u16, seq: u32, flags: u8, out: &mut Vec<u8>) {
        out.clear();
        let tcp = TcpHeader {
            src_port: self.local_port,
            dst_port: port,
            seq,
            ack: 0,
            flags,
            window: if flags == tcp_flags::SYN { 1024 } else { 0 },
            urgent: 0,
            options: if flags == tcp_flags::SYN {
                TcpHeader::mss_option(1460)
            } else {
                Vec::new()
            },
        };
        if let (IpAddr::V4(src), IpAddr::V4(dst)) = (self.local, self.host) {
            let tcp_len = 20 + tcp.options.len();
            Ipv4Header {
                tos: 0,
                total_len: (20 + tcp_len) as u16,
                ident: (seq >> 16) as u16,
                flags_fragment: 0,
                ttl: 64,
                protocol: PROTO_TCP,
                src,
                dst,
            }
            .write(out);
        }
        tcp.write(self.local, self.host, &[], out)
            .expect("a few bytes of options fit");
    }

    fn send(&self, packet: &[u8], to: &SockAddr) -> io::Result<()> {
        loop {
            match self.socket.send_to(packet, to) {
                Ok(_) => return Ok(()),
                // The device queue is full: let it drain.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sends the SYNs at most `rate` a second, then waits for answers; repeats for the ports
/// still silent, `retries` times.
fn send_rounds(shared: &Shared, ports: &[u16], options: SynOptions) -> Result<()> {
    let to = SockAddr::from(SocketAddr::new(shared.host, 0));
    let mut packet = Vec::with_capacity(64);
    for round in 0..=options.retries {
        let started = Instant::now();
        let mut sent: u64 = 0;
        for &port in ports {
            if shared.states[usize::from(port)].load(Ordering::Relaxed) != UNANSWERED {
                continue;
            }
            // Token bucket checked every 32 packets: ahead of schedule means sleep.
            if sent.is_multiple_of(32) {
                let due = Duration::from_secs_f64(sent as f64 / f64::from(options.rate));
                if let Some(ahead) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(ahead);
                }
            }
            shared.segment(port, shared.cookie(port), tcp_flags::SYN, &mut packet);
            shared
                .send(&packet, &to)
                .map_err(|e| Error::io(format!("send SYN to {}:{port}", shared.host), e))?;
            sent += 1;
        }
        let last_round = round == options.retries;
        if wait_for_answers(shared, ports.len(), options.timeout, last_round) {
            break;
        }
    }
    Ok(())
}

/// Waits until every port answered (true), or up to `timeout`. Before the last round the
/// wait also ends once answers stop coming for a little while: the ports still silent are
/// probed again at once rather than after the full timeout (answers lost to a full receive
/// buffer cost a retry, not a second).
fn wait_for_answers(shared: &Shared, total: usize, timeout: Duration, last_round: bool) -> bool {
    let quiet = timeout.min(QUIET);
    let deadline = Instant::now() + timeout;
    let mut seen = shared.answered.load(Ordering::Relaxed);
    let mut progress = Instant::now();
    loop {
        let now = Instant::now();
        let answered = shared.answered.load(Ordering::Relaxed);
        if answered >= total {
            return true;
        }
        if answered != seen {
            (seen, progress) = (answered, now);
        }
        if now >= deadline || (!last_round && now.duration_since(progress) >= quiet) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How long a round waits without a new answer before re-probing the silent ports.
const QUIET: Duration = Duration::from_millis(100);

/// Reads answers until the sender is done: SYN-ACK → open (and a RST back), RST → closed.
fn receive(shared: &Shared) -> Result<()> {
    shared
        .socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(|e| Error::io("set raw socket timeout", e))?;
    let to = SockAddr::from(SocketAddr::new(shared.host, 0));
    let mut buf = [MaybeUninit::new(0u8); 1600];
    let mut rst = Vec::with_capacity(64);
    while !shared.done.load(Ordering::Relaxed) {
        let (len, from) = match shared.socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return Err(Error::io("receive from raw socket", e)),
        };
        // SAFETY: every byte of `buf` was initialised to 0 (and the first `len` rewritten
        // by the kernel), and `len` is at most its length.
        let data = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), len) };
        let Some((src, segment)) = (match shared.host {
            IpAddr::V4(_) => match Ipv4Header::parse(data) {
                Ok((ip, seg)) if ip.protocol == PROTO_TCP => Some((IpAddr::V4(ip.src), seg)),
                _ => None,
            },
            IpAddr::V6(_) => from.as_socket().map(|a| (a.ip(), data)),
        }) else {
            continue;
        };
        // Loopback leaves checksums to "offload", so they are not verified here; the
        // cookie check below is what keeps stray segments out.
        let Ok((tcp, _)) = TcpHeader::parse(None, segment) else {
            continue;
        };
        let port = tcp.src_port;
        if src != shared.host
            || tcp.dst_port != shared.local_port
            || !shared.wanted[usize::from(port)]
            || !tcp.has(tcp_flags::ACK)
            || tcp.ack != shared.cookie(port).wrapping_add(1)
        {
            continue;
        }
        let state = if tcp.has(tcp_flags::SYN) {
            // Tear the half-open connection down: a RST with the sequence it expects next.
            shared.segment(port, tcp.ack, tcp_flags::RST, &mut rst);
            let _ = shared.send(&rst, &to);
            OPEN
        } else if tcp.has(tcp_flags::RST) {
            CLOSED
        } else {
            continue;
        };
        if shared.states[usize::from(port)]
            .compare_exchange(UNANSWERED, state, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            shared.answered.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_differ_per_port_and_key() {
        let make = |key| Shared {
            socket: Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap(),
            host: "127.0.0.1".parse().unwrap(),
            local: "127.0.0.1".parse().unwrap(),
            local_port: 40_000,
            key,
            states: Vec::new(),
            wanted: Vec::new(),
            answered: AtomicUsize::new(0),
            done: AtomicBool::new(false),
        };
        let (a, b) = (make(1), make(2));
        assert_ne!(a.cookie(80), a.cookie(81));
        assert_ne!(a.cookie(80), b.cookie(80));
        let mut out = Vec::new();
        a.segment(80, a.cookie(80), tcp_flags::SYN, &mut out);
        let (ip, seg) = Ipv4Header::parse(&out).unwrap();
        assert_eq!(ip.protocol, PROTO_TCP);
        let addrs = Some((a.local, a.host));
        let (tcp, _) = TcpHeader::parse(addrs, seg).unwrap();
        assert_eq!(
            (tcp.src_port, tcp.dst_port, tcp.seq),
            (40_000, 80, a.cookie(80))
        );
        assert_eq!(tcp.flags, tcp_flags::SYN);
    }
}
