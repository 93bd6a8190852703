//! The packet code against worked examples (RFC 1071's checksum, an IPv4 header and its
//! checksum), byte-exact builds, round trips through the parsers, and malformed input.

use super::*;

/// The worked example of the IPv4 header checksum (a UDP datagram 192.168.0.1 →
/// 192.168.0.199), checksum 0xb861.
const IPV4_EXAMPLE: [u8; 20] = [
    0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01,
    0xc0, 0xa8, 0x00, 0xc7,
];

#[test]
fn checksum_matches_rfc1071_example() {
    // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2, complement 220d.
    assert_eq!(
        checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
        0x220d
    );
    // Pieces of odd length sum like the whole.
    let data = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
    let whole = checksum(&data);
    let pieces = Checksum::new()
        .add(&data[..3])
        .add(&data[3..4])
        .add(&[])
        .add(&data[4..])
        .finish();
    assert_eq!(whole, pieces);
    assert_eq!(checksum(&[0xff]), !0xff00);
}

#[test]
fn ipv4_header_is_byte_exact() {
    let mut datagram = IPV4_EXAMPLE.to_vec();
    datagram.resize(0x73, 0);
    let (h, payload) = Ipv4Header::parse(&datagram).unwrap();
    assert_eq!(
        h,
        Ipv4Header {
            tos: 0,
            total_len: 0x73,
            ident: 0,
            flags_fragment: Ipv4Header::DONT_FRAGMENT,
            ttl: 64,
            protocol: 17,
            src: Ipv4Addr::new(192, 168, 0, 1),
            dst: Ipv4Addr::new(192, 168, 0, 199),
        }
    );
    assert_eq!(payload.len(), 0x73 - 20);
    let mut out = Vec::new();
    h.write(&mut out);
    assert_eq!(out, IPV4_EXAMPLE);
}

#[test]
fn ipv4_rejects_bad_input() {
    let mut d = IPV4_EXAMPLE.to_vec();
    d.resize(0x73, 0);
    assert!(matches!(
        Ipv4Header::parse(&d[..19]),
        Err(PacketError::Truncated { .. })
    ));
    assert!(matches!(
        Ipv4Header::parse(&d[..50]),
        Err(PacketError::Truncated { .. })
    ));
    let mut bad = d.clone();
    bad[11] ^= 1;
    assert_eq!(
        Ipv4Header::parse(&bad),
        Err(PacketError::Checksum("IPv4 header"))
    );
    let mut v6 = d.clone();
    v6[0] = 0x65;
    assert!(matches!(
        Ipv4Header::parse(&v6),
        Err(PacketError::Foreign(_))
    ));
    let mut short = d.clone();
    short[0] = 0x44;
    assert!(matches!(
        Ipv4Header::parse(&short),
        Err(PacketError::Malformed { .. })
    ));
    let mut long = d;
    long[0] = 0x4f;
    long[2..4].copy_from_slice(&[0, 20]);
    assert!(matches!(
        Ipv4Header::parse(&long),
        Err(PacketError::Malformed { .. })
    ));
}

#[test]
fn icmpv4_echo_request_is_byte_exact() {
    // `ping -c1 -p ab -s 4 127.0.0.1` style request: id 0x1234, seq 1, 4 bytes of 0xab.
    let mut out = Vec::new();
    let echo = Icmp::EchoRequest {
        ident: 0x1234,
        seq: 1,
        payload: &[0xab; 4],
    };
    echo.write(IcmpVersion::V4, None, &mut out);
    // 0800 0000 1234 0001 abab abab: the sum 0x1718b folds to 0x718c, complement 0x8e73.
    assert_eq!(
        out,
        [8, 0, 0x8e, 0x73, 0x12, 0x34, 0, 1, 0xab, 0xab, 0xab, 0xab]
    );
    assert_eq!(Icmp::parse(IcmpVersion::V4, None, &out).unwrap(), echo);
    out[9] = 0;
    assert_eq!(
        Icmp::parse(IcmpVersion::V4, None, &out),
        Err(PacketError::Checksum("ICMP"))
    );
    assert!(matches!(
        Icmp::parse(IcmpVersion::V4, None, &out[..7]),
        Err(PacketError::Truncated { .. })
    ));
}

#[test]
fn icmp_errors_quote_the_echo_they_answer() {
    for (version, dst) in [
        (IcmpVersion::V4, IpAddr::from([10, 0, 0, 1])),
        (IcmpVersion::V6, "2001:db8::1".parse().unwrap()),
    ] {
        let src = match dst {
            IpAddr::V4(_) => IpAddr::from([10, 0, 0, 2]),
            IpAddr::V6(_) => "2001:db8::2".parse().unwrap(),
        };
        let mut echo = Vec::new();
        Icmp::EchoRequest {
            ident: 7,
            seq: 9,
            payload: b"12345678",
        }
        .write(version, Some((src, dst)), &mut echo);
        let mut quoted = Vec::new();
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Ipv4Header {
                tos: 0,
                total_len: (20 + echo.len()) as u16,
                ident: 1,
                flags_fragment: 0,
                ttl: 1,
                protocol: PROTO_ICMP,
                src: s,
                dst: d,
            }
            .write(&mut quoted),
            (IpAddr::V6(s), IpAddr::V6(d)) => Ipv6Header {
                traffic_class: 0,
                flow_label: 0,
                payload_len: echo.len() as u16,
                next_header: PROTO_ICMPV6,
                hop_limit: 1,
                src: s,
                dst: d,
            }
            .write(&mut quoted),
            _ => unreachable!(),
        }
        quoted.extend_from_slice(&echo[..8]);
        let err = Icmp::TimeExceeded {
            code: 0,
            quoted: &quoted,
        };
        let mut wire = Vec::new();
        let router = src;
        err.write(version, Some((router, src)), &mut wire);
        let parsed = Icmp::parse(version, Some((router, src)), &wire).unwrap();
        assert_eq!(parsed, err);
        assert_eq!(parsed.quoted_echo(version), Some((dst, 7, 9)));
        assert_eq!(parsed.describe(version), "Time to live exceeded");
        // The same message with a corrupted quote is not ours.
        let short = Icmp::Unreachable {
            code: 1,
            quoted: &quoted[..10],
        };
        assert_eq!(short.quoted_echo(version), None);
    }
}

#[test]
fn ipv6_header_round_trips() {
    let h = Ipv6Header {
        traffic_class: 0xb8,
        flow_label: 0x12345,
        payload_len: 4,
        next_header: PROTO_ICMPV6,
        hop_limit: 64,
        src: Ipv6Addr::LOCALHOST,
        dst: "fe80::1".parse().unwrap(),
    };
    let mut out = Vec::new();
    h.write(&mut out);
    assert_eq!(&out[..8], [0x6b, 0x81, 0x23, 0x45, 0, 4, 58, 64]);
    out.extend_from_slice(&[1, 2, 3, 4, 5]);
    let (back, payload) = Ipv6Header::parse(&out).unwrap();
    assert_eq!((back, payload), (h, &[1u8, 2, 3, 4][..]));
    assert!(matches!(
        Ipv6Header::parse(&out[..42]),
        Err(PacketError::Truncated { .. })
    ));
    assert!(matches!(
        Ipv6Header::parse(&IPV4_EXAMPLE),
        Err(PacketError::Truncated { .. })
    ));
}

#[test]
fn tcp_syn_round_trips_with_checksum() {
    let (src, dst) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 1]));
    let syn = TcpHeader {
        src_port: 40000,
        dst_port: 80,
        seq: 0x01020304,
        ack: 0,
        flags: tcp_flags::SYN,
        window: 1024,
        urgent: 0,
        options: TcpHeader::mss_option(1460),
    };
    let mut out = Vec::new();
    syn.write(src, dst, &[], &mut out).unwrap();
    assert_eq!(out.len(), 24);
    assert_eq!(out[12], 0x60);
    let (back, payload) = TcpHeader::parse(Some((src, dst)), &out).unwrap();
    assert_eq!((back, payload), (syn.clone(), &[][..]));
    out[4] ^= 0x80;
    assert_eq!(
        TcpHeader::parse(Some((src, dst)), &out).unwrap_err(),
        PacketError::Checksum("TCP")
    );
    out[12] = 0x40;
    assert!(matches!(
        TcpHeader::parse(None, &out),
        Err(PacketError::Malformed { .. })
    ));
    let too_many = TcpHeader {
        options: vec![1; 41],
        ..syn
    };
    assert!(too_many.write(src, dst, &[], &mut Vec::new()).is_err());
}
