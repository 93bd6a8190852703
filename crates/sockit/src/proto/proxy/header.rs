//! HAProxy's PROXY protocol (versions 1 and 2): the header a relay sends before the
//! relayed bytes so the server behind it sees the real client's address, and that a server
//! behind a load balancer reads before anything else.
//!
//! Version 1 is one text line, `PROXY TCP4 SRC DST SPORT DPORT\r\n` (at most 107 bytes);
//! version 2 a binary block: a 12-byte signature, a version/command byte, a family byte,
//! a length, the addresses, then optional TLVs (skipped here). A reader takes exactly one
//! header, whichever version it is, and refuses a connection that does not start with one:
//! a server that trusts these headers must never take a client's first bytes for one, nor
//! one for a client's bytes.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::ProxyError;

/// The first 12 bytes of every version-2 header: chosen by HAProxy so that no text
/// protocol's first line can start with them.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest version-1 line, CRLF included (the specification's bound): a reader that
/// has this many bytes and no CRLF has no header.
pub const V1_MAX: usize = 107;

/// The most address-and-TLV bytes a version-2 header may carry here. The format allows
/// 65,535; a peer that has not proven anything yet gets to make the server hold no more
/// than this (addresses are at most 216 bytes; the rest is room for TLVs).
pub const V2_MAX_BODY: usize = 1024;

/// Which version of the header to write (`--proxy-protocol v1|v2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text line.
    V1,
    /// The binary block.
    V2,
}

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A relayed connection: the client's address and the address it connected to.
    Proxied {
        /// The real client.
        source: SocketAddr,
        /// The address the client reached on the relay.
        destination: SocketAddr,
    },
    /// The relay's own connection (a health check, v2 `LOCAL`) or one whose addresses it
    /// does not know (v1 `UNKNOWN`, v2 `UNSPEC`, Unix sockets): the server uses the
    /// connection's own addresses.
    Local,
}

/// The header for a connection from `source` to `destination`, in `version`. Mixed
/// families (an IPv4 client on an IPv6 socket) are written as IPv6, IPv4 mapped.
pub fn encode(version: Version, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (source, destination) = same_family(source, destination);
    match version {
        Version::V1 => {
            let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            )
            .into_bytes()
        }
        Version::V2 => {
            let mut out = Vec::with_capacity(16 + 36);
            out.extend_from_slice(&V2_SIGNATURE);
            // Version 2, command PROXY.
            out.push(0x21);
            let (family, ips): (u8, Vec<u8>) = match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => (0x11, [s.octets(), d.octets()].concat()),
                (s, d) => (0x21, [v6(s).octets(), v6(d).octets()].concat()),
            };
            out.push(family);
            let len = (ips.len() + 4) as u16;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&ips);
            out.extend_from_slice(&source.port().to_be_bytes());
            out.extend_from_slice(&destination.port().to_be_bytes());
            out
        }
    }
}

/// A version-2 `LOCAL` header: what a relay sends for a connection that is not relayed
/// for a client (or whose client address is not IP, e.g. a Unix socket).
pub fn encode_local(version: Version) -> Vec<u8> {
    match version {
        Version::V1 => b"PROXY UNKNOWN\r\n".to_vec(),
        Version::V2 => {
            let mut out = V2_SIGNATURE.to_vec();
            out.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
            out
        }
    }
}

/// Reads one header from the start of `input`: `Ok(None)` when more bytes are needed,
/// `Ok(Some((header, len)))` with the bytes it took (the relayed bytes follow), and an
/// error as soon as the bytes cannot be the start of a header.
pub fn parse(input: &[u8]) -> Result<Option<(Header, usize)>, ProxyError> {
    if input.is_empty() {
        return Ok(None);
    }
    if input[0] == V2_SIGNATURE[0] {
        return parse_v2(input);
    }
    parse_v1(input)
}

fn parse_v1(input: &[u8]) -> Result<Option<(Header, usize)>, ProxyError> {
    let prefix = b"PROXY ";
    let n = input.len().min(prefix.len());
    if input[..n] != prefix[..n] {
        return Err(bad("no PROXY header (the connection must start with one)"));
    }
    let Some(end) = input.windows(2).take(V1_MAX - 1).position(|w| w == b"\r\n") else {
        return if input.len() >= V1_MAX {
            Err(bad("PROXY v1 line longer than 107 bytes"))
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&input[prefix.len()..end])
        .map_err(|_| bad("PROXY v1 line is not text"))?;
    let len = end + 2;
    let mut fields = line.split(' ');
    let family = fields.next().unwrap_or_default();
    if family == "UNKNOWN" {
        // The rest of an UNKNOWN line is whatever the sender put there; it is ignored.
        return Ok(Some((Header::Local, len)));
    }
    let v4 = match family {
        "TCP4" => true,
        "TCP6" => false,
        _ => return Err(bad("PROXY v1 family is not TCP4, TCP6 or UNKNOWN")),
    };
    let fields: Vec<&str> = fields.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Err(bad("PROXY v1 line needs 4 fields after the family"));
    };
    let ip = |s: &str| -> Result<IpAddr, ProxyError> {
        let ip: IpAddr = s.parse().map_err(|_| bad("PROXY v1 address"))?;
        if ip.is_ipv4() != v4 {
            return Err(bad("PROXY v1 address of the wrong family"));
        }
        Ok(ip)
    };
    let port = |s: &str| -> Result<u16, ProxyError> {
        // No sign, no leading zeros beyond "0" itself: one spelling per port.
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("PROXY v1 port"));
        }
        if s.len() > 1 && s.starts_with('0') {
            return Err(bad("PROXY v1 port with a leading zero"));
        }
        s.parse().map_err(|_| bad("PROXY v1 port"))
    };
    Ok(Some((
        Header::Proxied {
            source: SocketAddr::new(ip(src)?, port(sport)?),
            destination: SocketAddr::new(ip(dst)?, port(dport)?),
        },
        len,
    )))
}

fn parse_v2(input: &[u8]) -> Result<Option<(Header, usize)>, ProxyError> {
    let n = input.len().min(V2_SIGNATURE.len());
    if input[..n] != V2_SIGNATURE[..n] {
        return Err(bad("no PROXY header (the connection must start with one)"));
    }
    if input.len() < 16 {
        return Ok(None);
    }
    let ver_cmd = input[12];
    if ver_cmd >> 4 != 2 {
        return Err(bad("PROXY v2 header of another version"));
    }
    let family = input[13];
    let body = u16::from_be_bytes([input[14], input[15]]) as usize;
    if body > V2_MAX_BODY {
        return Err(bad("PROXY v2 header longer than 1024 bytes"));
    }
    if input.len() < 16 + body {
        return Ok(None);
    }
    let len = 16 + body;
    let b = &input[16..len];
    match ver_cmd & 0x0f {
        // LOCAL: the relay's own connection; the addresses (if any) are to be ignored.
        0 => return Ok(Some((Header::Local, len))),
        1 => {}
        _ => return Err(bad("PROXY v2 command is not LOCAL or PROXY")),
    }
    let short = || bad("PROXY v2 addresses shorter than their family");
    let header = match family {
        // TCP or UDP over IPv4.
        0x11 | 0x12 => {
            let a: &[u8; 12] = b
                .get(..12)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(short)?;
            Header::Proxied {
                source: SocketAddr::new(
                    IpAddr::from([a[0], a[1], a[2], a[3]]),
                    u16::from_be_bytes([a[8], a[9]]),
                ),
                destination: SocketAddr::new(
                    IpAddr::from([a[4], a[5], a[6], a[7]]),
                    u16::from_be_bytes([a[10], a[11]]),
                ),
            }
        }
        // TCP or UDP over IPv6.
        0x21 | 0x22 => {
            let a: &[u8; 36] = b
                .get(..36)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(short)?;
            let ip = |s: &[u8]| IpAddr::from(<[u8; 16]>::try_from(s).expect("16 bytes"));
            Header::Proxied {
                source: SocketAddr::new(ip(&a[..16]), u16::from_be_bytes([a[32], a[33]])),
                destination: SocketAddr::new(ip(&a[16..32]), u16::from_be_bytes([a[34], a[35]])),
            }
        }
        // UNSPEC and Unix sockets: no IP address to pass on.
        0x00 | 0x31 | 0x32 => Header::Local,
        _ => return Err(bad("PROXY v2 address family is unknown")),
    };
    Ok(Some((header, len)))
}

fn bad(reason: &'static str) -> ProxyError {
    ProxyError::Header(reason)
}

/// Both addresses in one family: IPv6 (IPv4 mapped) unless both are IPv4.
fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a.is_ipv4() == b.is_ipv4() {
        return (a, b);
    }
    (
        SocketAddr::new(IpAddr::V6(v6(a.ip())), a.port()),
        SocketAddr::new(IpAddr::V6(v6(b.ip())), b.port()),
    )
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_is_the_line_of_the_specification() {
        let h = encode(Version::V1, sa("192.168.0.1:56324"), sa("192.168.0.11:443"));
        assert_eq!(h, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
        let h = encode(Version::V1, sa("[::1]:1"), sa("[2001:db8::1]:2"));
        assert_eq!(h, b"PROXY TCP6 ::1 2001:db8::1 1 2\r\n");
    }

    #[test]
    fn v2_is_the_block_of_the_specification() {
        let h = encode(Version::V2, sa("10.0.0.1:1000"), sa("10.0.0.2:80"));
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(&[
            0x21, 0x11, 0, 12, 10, 0, 0, 1, 10, 0, 0, 2, 0x03, 0xe8, 0, 80,
        ]);
        assert_eq!(h, want);
    }

    #[test]
    fn every_header_reads_back_as_written_whole_or_byte_by_byte() {
        let pairs = [
            (sa("127.0.0.1:5"), sa("127.0.0.2:65535")),
            (sa("[::1]:0"), sa("[fe80::1]:443")),
            (sa("1.2.3.4:9"), sa("[::1]:10")),
        ];
        for (s, d) in pairs {
            for v in [Version::V1, Version::V2] {
                let mut bytes = encode(v, s, d);
                let len = bytes.len();
                for cut in 0..len {
                    assert_eq!(parse(&bytes[..cut]).unwrap(), None, "{v:?} cut {cut}");
                }
                bytes.extend_from_slice(b"relayed bytes");
                let (h, n) = parse(&bytes).unwrap().unwrap();
                assert_eq!(n, len);
                let (ws, wd) = same_family(s, d);
                assert_eq!(
                    h,
                    Header::Proxied {
                        source: ws,
                        destination: wd
                    }
                );
            }
            for v in [Version::V1, Version::V2] {
                let local = encode_local(v);
                assert_eq!(parse(&local).unwrap(), Some((Header::Local, local.len())));
            }
        }
    }

    #[test]
    fn a_connection_without_a_header_is_refused_at_its_first_byte() {
        for input in [&b"GET / HTTP/1.1\r\n"[..], b"\x16\x03\x01", b"P", b"PROXZ"] {
            if input == b"P" {
                assert_eq!(parse(input).unwrap(), None);
                continue;
            }
            assert!(parse(input).is_err(), "{input:?}");
        }
        assert!(parse(b"\r\n\r\n\0\r\nQUIX").is_err());
    }

    #[test]
    fn malformed_v1_lines_are_refused() {
        for line in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"[..],
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert!(parse(line).is_err(), "{}", String::from_utf8_lossy(line));
        }
        let long = [b"PROXY ".as_slice(), &[b'x'; 120]].concat();
        assert!(parse(&long).is_err());
        assert!(parse(b"PROXY UNKNOWN ffff::1 whatever\r\n").is_ok());
    }

    #[test]
    fn malformed_v2_blocks_are_refused() {
        let good = encode(Version::V2, sa("10.0.0.1:1"), sa("10.0.0.2:2"));
        let mut v3 = good.clone();
        v3[12] = 0x31;
        assert!(parse(&v3).is_err());
        let mut cmd = good.clone();
        cmd[12] = 0x22;
        assert!(parse(&cmd).is_err());
        let mut short = good.clone();
        short[15] = 4;
        short.truncate(20);
        assert!(parse(&short).is_err());
        let mut huge = good.clone();
        huge[14..16].copy_from_slice(&2000u16.to_be_bytes());
        assert!(parse(&huge).is_err());
        let mut family = good;
        family[13] = 0x41;
        assert!(parse(&family).is_err());
    }

    #[test]
    fn v2_tlvs_after_the_addresses_are_skipped() {
        let mut h = encode(Version::V2, sa("10.0.0.1:1"), sa("10.0.0.2:2"));
        h[15] += 5;
        h.extend_from_slice(&[0x04, 0, 2, 0xab, 0xcd]);
        let len = h.len();
        h.extend_from_slice(b"data");
        assert_eq!(parse(&h).unwrap().unwrap().1, len);
    }
}
