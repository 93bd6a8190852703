//! Sans-IO packet code for `ping` and the SYN scan: build and parse IPv4, IPv6, ICMP,
//! ICMPv6 and TCP headers, and the Internet checksum (RFC 1071) with the pseudo-headers of
//! RFC 793 / RFC 8200. Bytes in, typed headers out, and back; no sockets.
//!
//! Own code rather than `etherparse` or `pnet_packet`: the five headers needed here are a
//! few hundred lines, the checksum is ten, and owning them keeps the dependency tree small
//! and lets the parsers return exactly the errors the drivers need (truncated, foreign,
//! bad checksum) without a translation layer.
//!
//! Parsers never panic: every length is checked before it is used, and input that is short,
//! malformed or of another protocol is a [`PacketError`].
//!
//! One file for one idea, the wire form of the headers a raw socket sees: about 680 lines
//! of code, the rest its tests, which check every header against the others (an ICMP echo
//! inside IPv4, a TCP segment's checksum over either pseudo-header).
//!
//! ```text
//!  IPv4 header (20 bytes without options)      TCP header (20 bytes without options)
//!  0       8      16      24      32           0       8      16      24      32
//!  |ver|ihl| tos  |  total length |            |  source port  |   dest port   |
//!  | identification| flags|frag off|            |        sequence number        |
//!  |  ttl  | proto |   checksum    |            |     acknowledgment number     |
//!  |        source address         |            |off|rsv| flags |    window     |
//!  |      destination address      |            |   checksum    |  urgent ptr   |
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol (next header) number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;

/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;
/// Length of an ICMP / ICMPv6 header (type, code, checksum, 4 bytes of rest).
pub const ICMP_HEADER_LEN: usize = 8;
/// Length of a TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;

/// Why bytes are not the packet they were expected to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer bytes than the header (or its announced length) needs.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// Which header.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// A header field that no valid packet has (IP version, header length, data offset).
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which header.
        what: &'static str,
        /// Which field, and why.
        reason: &'static str,
    },
    /// A valid header of another protocol than the one asked for.
    #[error("foreign packet: {0}")]
    Foreign(&'static str),
    /// The checksum does not match the bytes.
    #[error("bad {0} checksum")]
    Checksum(&'static str),
}

type Result<T> = std::result::Result<T, PacketError>;

fn need(what: &'static str, buf: &[u8], need: usize) -> Result<()> {
    if buf.len() < need {
        return Err(PacketError::Truncated {
            what,
            need,
            have: buf.len(),
        });
    }
    Ok(())
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

// ---------------------------------------------------------------------------------------
// Checksum

/// A running Internet checksum (RFC 1071): the ones'-complement sum of 16-bit big-endian
/// words. Data may be added in pieces of any length; an odd piece is carried over so the
/// result equals summing the concatenation.
#[derive(Debug, Clone, Default)]
pub struct Checksum {
    sum: u64,
    odd: Option<u8>,
}

impl Checksum {
    /// An empty sum.
    pub fn new() -> Checksum {
        Checksum::default()
    }

    /// Adds bytes.
    pub fn add(&mut self, mut data: &[u8]) -> &mut Checksum {
        if let Some(hi) = self.odd.take() {
            match data.split_first() {
                Some((lo, rest)) => {
                    self.sum += u64::from(u16::from_be_bytes([hi, *lo]));
                    data = rest;
                }
                None => {
                    self.odd = Some(hi);
                    return self;
                }
            }
        }
        let mut words = data.chunks_exact(2);
        for w in &mut words {
            self.sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        self.odd = words.remainder().first().copied();
        self
    }

    /// The checksum to store: the complement of the folded sum. Over data that already holds
    /// a correct checksum it is 0.
    pub fn finish(&self) -> u16 {
        let mut sum = self.sum;
        if let Some(hi) = self.odd {
            sum += u64::from(u16::from_be_bytes([hi, 0]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }
}

/// The Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    Checksum::new().add(data).finish()
}

/// A checksum started with the pseudo-header TCP and ICMPv6 checksums cover: source,
/// destination, protocol and upper-layer length (IPv4 layout for IPv4 addresses, IPv6 for
/// IPv6). Mixed families are summed as IPv6 with the IPv4 address mapped.
pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, len: usize) -> Checksum {
    let mut c = Checksum::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            c.add(&s.octets()).add(&d.octets());
            c.add(&[0, protocol]).add(&(len as u16).to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            c.add(&v6(s).octets()).add(&v6(d).octets());
            c.add(&(len as u32).to_be_bytes()).add(&[0, 0, 0, protocol]);
        }
    }
    c
}

// ---------------------------------------------------------------------------------------
// IPv4

/// An IPv4 header. Options are skipped when parsing and never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    /// DSCP and ECN bits (the old type-of-service byte).
    pub tos: u8,
    /// Total length of the datagram, header included.
    pub total_len: u16,
    /// Identification, for reassembly.
    pub ident: u16,
    /// Flags (top 3 bits: reserved, DF, MF) and fragment offset (13 bits).
    pub flags_fragment: u16,
    /// Time to live.
    pub ttl: u8,
    /// Protocol of the payload ([`PROTO_ICMP`], [`PROTO_TCP`], ...).
    pub protocol: u8,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
}

impl Ipv4Header {
    /// The Don't Fragment flag in [`Ipv4Header::flags_fragment`].
    pub const DONT_FRAGMENT: u16 = 0x4000;

    /// Appends the 20-byte header with its checksum.
    pub fn write(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0x45, self.tos]);
        out.extend_from_slice(&self.total_len.to_be_bytes());
        out.extend_from_slice(&self.ident.to_be_bytes());
        out.extend_from_slice(&self.flags_fragment.to_be_bytes());
        out.extend_from_slice(&[self.ttl, self.protocol, 0, 0]);
        out.extend_from_slice(&self.src.octets());
        out.extend_from_slice(&self.dst.octets());
        let sum = checksum(&out[start..]);
        out[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
    }

    /// Parses a header and verifies its checksum; returns it with the payload (up to the
    /// total length; bytes after it are link padding and dropped).
    pub fn parse(buf: &[u8]) -> Result<(Ipv4Header, &[u8])> {
        const WHAT: &str = "IPv4 header";
        need(WHAT, buf, IPV4_HEADER_LEN)?;
        if buf[0] >> 4 != 4 {
            return Err(PacketError::Foreign("not IPv4"));
        }
        let header_len = usize::from(buf[0] & 0x0f) * 4;
        if header_len < IPV4_HEADER_LEN {
            return Err(PacketError::Malformed {
                what: WHAT,
                reason: "header length below 20",
            });
        }
        need(WHAT, buf, header_len)?;
        let total_len = be16(buf, 2);
        if usize::from(total_len) < header_len {
            return Err(PacketError::Malformed {
                what: WHAT,
                reason: "total length shorter than the header",
            });
        }
        need("IPv4 datagram", buf, usize::from(total_len))?;
        if checksum(&buf[..header_len]) != 0 {
            return Err(PacketError::Checksum("IPv4 header"));
        }
        let header = Ipv4Header {
            tos: buf[1],
            total_len,
            ident: be16(buf, 4),
            flags_fragment: be16(buf, 6),
            ttl: buf[8],
            protocol: buf[9],
            src: Ipv4Addr::from(be32(buf, 12)),
            dst: Ipv4Addr::from(be32(buf, 16)),
        };
        Ok((header, &buf[header_len..usize::from(total_len)]))
    }
}

// ---------------------------------------------------------------------------------------
// IPv6

/// The fixed IPv6 header. Extension headers are the payload's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Length of the payload after this header.
    pub payload_len: u16,
    /// Protocol of the next header ([`PROTO_ICMPV6`], [`PROTO_TCP`], ...).
    pub next_header: u8,
    /// Hop limit (IPv6's TTL).
    pub hop_limit: u8,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
}

impl Ipv6Header {
    /// Appends the 40-byte header. The flow label is cut to its 20 bits.
    pub fn write(&self, out: &mut Vec<u8>) {
        let first =
            (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0xfffff);
        out.extend_from_slice(&first.to_be_bytes());
        out.extend_from_slice(&self.payload_len.to_be_bytes());
        out.extend_from_slice(&[self.next_header, self.hop_limit]);
        out.extend_from_slice(&self.src.octets());
        out.extend_from_slice(&self.dst.octets());
    }

    /// Parses the header; returns it with the payload (up to the payload length).
    pub fn parse(buf: &[u8]) -> Result<(Ipv6Header, &[u8])> {
        need("IPv6 header", buf, IPV6_HEADER_LEN)?;
        if buf[0] >> 4 != 6 {
            return Err(PacketError::Foreign("not IPv6"));
        }
        let first = be32(buf, 0);
        let payload_len = be16(buf, 4);
        let end = IPV6_HEADER_LEN + usize::from(payload_len);
        need("IPv6 datagram", buf, end)?;
        let addr = |at: usize| {
            let mut o = [0u8; 16];
            o.copy_from_slice(&buf[at..at + 16]);
            Ipv6Addr::from(o)
        };
        let header = Ipv6Header {
            traffic_class: (first >> 20) as u8,
            flow_label: first & 0xfffff,
            payload_len,
            next_header: buf[6],
            hop_limit: buf[7],
            src: addr(8),
            dst: addr(24),
        };
        Ok((header, &buf[IPV6_HEADER_LEN..end]))
    }
}

// ---------------------------------------------------------------------------------------
// ICMP and ICMPv6

/// Which ICMP: the type numbers and the checksum rule differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcmpVersion {
    /// ICMP for IPv4 (RFC 792): checksum over the message alone.
    V4,
    /// ICMPv6 (RFC 4443): checksum over a pseudo-header and the message.
    V6,
}

impl IcmpVersion {
    /// The version that goes with an address.
    pub fn of(addr: IpAddr) -> IcmpVersion {
        match addr {
            IpAddr::V4(_) => IcmpVersion::V4,
            IpAddr::V6(_) => IcmpVersion::V6,
        }
    }

    fn echo_request(self) -> u8 {
        match self {
            IcmpVersion::V4 => 8,
            IcmpVersion::V6 => 128,
        }
    }

    fn echo_reply(self) -> u8 {
        match self {
            IcmpVersion::V4 => 0,
            IcmpVersion::V6 => 129,
        }
    }

    fn unreachable(self) -> u8 {
        match self {
            IcmpVersion::V4 => 3,
            IcmpVersion::V6 => 1,
        }
    }

    fn time_exceeded(self) -> u8 {
        match self {
            IcmpVersion::V4 => 11,
            IcmpVersion::V6 => 3,
        }
    }
}

/// The ICMP messages ping deals with. The payload and the quoted datagram borrow from the
/// parsed buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmp<'a> {
    /// Echo request (ping).
    EchoRequest {
        /// Identifier, to match replies to the sender.
        ident: u16,
        /// Sequence number.
        seq: u16,
        /// Data, echoed back by the peer.
        payload: &'a [u8],
    },
    /// Echo reply (pong).
    EchoReply {
        /// Identifier of the request.
        ident: u16,
        /// Sequence number of the request.
        seq: u16,
        /// The request's data.
        payload: &'a [u8],
    },
    /// Destination unreachable; `quoted` is the start of the datagram that could not go.
    Unreachable {
        /// Why (net, host, port, admin-prohibited, ...).
        code: u8,
        /// The offending datagram's IP header and first bytes.
        quoted: &'a [u8],
    },
    /// Time (hop limit) exceeded in transit or in reassembly.
    TimeExceeded {
        /// 0 in transit, 1 in reassembly.
        code: u8,
        /// The offending datagram's IP header and first bytes.
        quoted: &'a [u8],
    },
    /// Any other type (redirect, router advertisement, neighbour discovery, ...).
    Other {
        /// ICMP type.
        kind: u8,
        /// ICMP code.
        code: u8,
    },
}

impl<'a> Icmp<'a> {
    /// Appends the message. The checksum is computed over the message for ICMPv4; for
    /// ICMPv6 it needs the pseudo-header's addresses (`addrs = Some((src, dst))`) and is
    /// left 0 without them (the kernel fills it in on ICMPv6 sockets).
    /// [`Icmp::Other`] is written as its type and code with 4 zero bytes.
    pub fn write(&self, version: IcmpVersion, addrs: Option<(IpAddr, IpAddr)>, out: &mut Vec<u8>) {
        let start = out.len();
        let (kind, code, rest, body): (u8, u8, [u8; 4], &[u8]) = match *self {
            Icmp::EchoRequest {
                ident,
                seq,
                payload,
            } => (version.echo_request(), 0, echo_rest(ident, seq), payload),
            Icmp::EchoReply {
                ident,
                seq,
                payload,
            } => (version.echo_reply(), 0, echo_rest(ident, seq), payload),
            Icmp::Unreachable { code, quoted } => (version.unreachable(), code, [0; 4], quoted),
            Icmp::TimeExceeded { code, quoted } => (version.time_exceeded(), code, [0; 4], quoted),
            Icmp::Other { kind, code } => (kind, code, [0; 4], &[][..]),
        };
        out.extend_from_slice(&[kind, code, 0, 0]);
        out.extend_from_slice(&rest);
        out.extend_from_slice(body);
        let sum = match (version, addrs) {
            (IcmpVersion::V4, _) => checksum(&out[start..]),
            (IcmpVersion::V6, Some((src, dst))) => {
                let len = out.len() - start;
                pseudo_header(src, dst, PROTO_ICMPV6, len)
                    .add(&out[start..])
                    .finish()
            }
            (IcmpVersion::V6, None) => 0,
        };
        out[start + 2..start + 4].copy_from_slice(&sum.to_be_bytes());
    }

    /// Parses a message. The checksum is verified for ICMPv4, and for ICMPv6 when the
    /// pseudo-header's addresses are given.
    pub fn parse(
        version: IcmpVersion,
        addrs: Option<(IpAddr, IpAddr)>,
        buf: &'a [u8],
    ) -> Result<Icmp<'a>> {
        need("ICMP header", buf, ICMP_HEADER_LEN)?;
        let ok = match (version, addrs) {
            (IcmpVersion::V4, _) => checksum(buf) == 0,
            (IcmpVersion::V6, Some((src, dst))) => {
                pseudo_header(src, dst, PROTO_ICMPV6, buf.len())
                    .add(buf)
                    .finish()
                    == 0
            }
            (IcmpVersion::V6, None) => true,
        };
        if !ok {
            return Err(PacketError::Checksum(match version {
                IcmpVersion::V4 => "ICMP",
                IcmpVersion::V6 => "ICMPv6",
            }));
        }
        let (kind, code, body) = (buf[0], buf[1], &buf[ICMP_HEADER_LEN..]);
        let (ident, seq) = (be16(buf, 4), be16(buf, 6));
        Ok(match kind {
            k if k == version.echo_request() && code == 0 => Icmp::EchoRequest {
                ident,
                seq,
                payload: body,
            },
            k if k == version.echo_reply() && code == 0 => Icmp::EchoReply {
                ident,
                seq,
                payload: body,
            },
            k if k == version.unreachable() => Icmp::Unreachable { code, quoted: body },
            k if k == version.time_exceeded() => Icmp::TimeExceeded { code, quoted: body },
            kind => Icmp::Other { kind, code },
        })
    }

    /// For an error message that quotes one of our echo requests: its destination,
    /// identifier and sequence number. `None` for other messages or other quoted packets.
    pub fn quoted_echo(&self, version: IcmpVersion) -> Option<(IpAddr, u16, u16)> {
        let (Icmp::Unreachable { quoted, .. } | Icmp::TimeExceeded { quoted, .. }) = *self else {
            return None;
        };
        // The quote is cut short by design (RFC 792: header + 8 bytes), so the IP parsers'
        // length checks would refuse it; read the fields by hand.
        let (dst, icmp) = match version {
            IcmpVersion::V4 => {
                if quoted.len() < IPV4_HEADER_LEN || quoted[0] >> 4 != 4 || quoted[9] != PROTO_ICMP
                {
                    return None;
                }
                let ihl = usize::from(quoted[0] & 0x0f) * 4;
                (
                    IpAddr::V4(Ipv4Addr::from(be32(quoted, 16))),
                    quoted.get(ihl..)?,
                )
            }
            IcmpVersion::V6 => {
                if quoted.len() < IPV6_HEADER_LEN
                    || quoted[0] >> 4 != 6
                    || quoted[6] != PROTO_ICMPV6
                {
                    return None;
                }
                let mut o = [0u8; 16];
                o.copy_from_slice(&quoted[24..40]);
                (IpAddr::V6(Ipv6Addr::from(o)), &quoted[IPV6_HEADER_LEN..])
            }
        };
        if icmp.len() < ICMP_HEADER_LEN || icmp[0] != version.echo_request() {
            return None;
        }
        Some((dst, be16(icmp, 4), be16(icmp, 6)))
    }

    /// A short description of an error message, as iputils prints it.
    pub fn describe(&self, version: IcmpVersion) -> String {
        match (*self, version) {
            (Icmp::Unreachable { code, .. }, IcmpVersion::V4) => match code {
                0 => "Destination Net Unreachable".into(),
                1 => "Destination Host Unreachable".into(),
                2 => "Destination Protocol Unreachable".into(),
                3 => "Destination Port Unreachable".into(),
                4 => "Frag needed".into(),
                9 | 10 | 13 => "Packet filtered".into(),
                c => format!("Destination Unreachable, code {c}"),
            },
            (Icmp::Unreachable { code, .. }, IcmpVersion::V6) => match code {
                0 => "Destination unreachable: No route".into(),
                1 => "Destination unreachable: Administratively prohibited".into(),
                3 => "Destination unreachable: Address unreachable".into(),
                4 => "Destination unreachable: Port unreachable".into(),
                c => format!("Destination unreachable, code {c}"),
            },
            (Icmp::TimeExceeded { code: 0, .. }, _) => "Time to live exceeded".into(),
            (Icmp::TimeExceeded { code, .. }, _) => format!("Time exceeded, code {code}"),
            (Icmp::EchoRequest { .. }, _) => "Echo Request".into(),
            (Icmp::EchoReply { .. }, _) => "Echo Reply".into(),
            (Icmp::Other { kind, code }, _) => format!("ICMP type {kind}, code {code}"),
        }
    }
}

fn echo_rest(ident: u16, seq: u16) -> [u8; 4] {
    let (i, s) = (ident.to_be_bytes(), seq.to_be_bytes());
    [i[0], i[1], s[0], s[1]]
}

// ---------------------------------------------------------------------------------------
// TCP

/// TCP flag bits, as in byte 13 of the header.
pub mod tcp_flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// The acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// The urgent pointer is significant.
    pub const URG: u8 = 0x20;
}

/// A TCP header. Options are kept as raw bytes (a multiple of 4, at most 40).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpHeader {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags ([`tcp_flags`]); the two ECN bits (CWR, ECE) included.
    pub flags: u8,
    /// Receive window.
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Options, padded to a multiple of 4 bytes.
    pub options: Vec<u8>,
}

impl TcpHeader {
    /// The options of a SYN that announces a maximum segment size.
    pub fn mss_option(mss: u16) -> Vec<u8> {
        let m = mss.to_be_bytes();
        vec![2, 4, m[0], m[1]]
    }

    /// Appends the header and `payload` with the checksum over the pseudo-header of
    /// `src` → `dst`. Options not a multiple of 4 are padded with end-of-options bytes;
    /// more than 40 bytes is [`PacketError::Malformed`].
    pub fn write(&self, src: IpAddr, dst: IpAddr, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let options_len = self.options.len().div_ceil(4) * 4;
        if options_len > 40 {
            return Err(PacketError::Malformed {
                what: "TCP header",
                reason: "more than 40 bytes of options",
            });
        }
        let start = out.len();
        let header_len = TCP_HEADER_LEN + options_len;
        out.extend_from_slice(&self.src_port.to_be_bytes());
        out.extend_from_slice(&self.dst_port.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.ack.to_be_bytes());
        out.extend_from_slice(&[((header_len / 4) as u8) << 4, self.flags]);
        out.extend_from_slice(&self.window.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.urgent.to_be_bytes());
        out.extend_from_slice(&self.options);
        out.resize(start + header_len, 0);
        out.extend_from_slice(payload);
        let sum = pseudo_header(src, dst, PROTO_TCP, out.len() - start)
            .add(&out[start..])
            .finish();
        out[start + 16..start + 18].copy_from_slice(&sum.to_be_bytes());
        Ok(())
    }

    /// Parses a segment; verifies the checksum when the pseudo-header's addresses are
    /// given. Returns the header and the payload.
    pub fn parse(addrs: Option<(IpAddr, IpAddr)>, buf: &[u8]) -> Result<(TcpHeader, &[u8])> {
        const WHAT: &str = "TCP header";
        need(WHAT, buf, TCP_HEADER_LEN)?;
        let header_len = usize::from(buf[12] >> 4) * 4;
        if header_len < TCP_HEADER_LEN {
            return Err(PacketError::Malformed {
                what: WHAT,
                reason: "data offset below 5",
            });
        }
        need(WHAT, buf, header_len)?;
        if let Some((src, dst)) = addrs
            && pseudo_header(src, dst, PROTO_TCP, buf.len())
                .add(buf)
                .finish()
                != 0
        {
            return Err(PacketError::Checksum("TCP"));
        }
        let header = TcpHeader {
            src_port: be16(buf, 0),
            dst_port: be16(buf, 2),
            seq: be32(buf, 4),
            ack: be32(buf, 8),
            flags: buf[13],
            window: be16(buf, 14),
            urgent: be16(buf, 18),
            options: buf[TCP_HEADER_LEN..header_len].to_vec(),
        };
        Ok((header, &buf[header_len..]))
    }

    /// Whether every bit of `flags` is set.
    pub fn has(&self, flags: u8) -> bool {
        self.flags & flags == flags
    }
}

#[cfg(test)]
mod tests;
