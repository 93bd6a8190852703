//! The packet module against real packets: captured with `tcpdump -i lo -w` on loopback
//! (`tests/fixtures/*.pcap`: an ICMP echo and its reply over IPv4 and IPv6, and a TCP SYN
//! to a closed port with the RST that answered it). Each is parsed, its checksums verified,
//! and rebuilt byte for byte.

use std::net::IpAddr;
use std::path::PathBuf;

use sockit::net::packet::{
    Icmp, IcmpVersion, Ipv4Header, Ipv6Header, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, TcpHeader,
    tcp_flags,
};

/// The packets of a pcap file with Ethernet link type (what `tcpdump -i lo` writes), without
/// their 14-byte Ethernet header.
fn pcap(name: &str) -> Vec<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&data[..4], [0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    assert_eq!(
        u32::from_le_bytes(data[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut at = 24;
    let mut packets = Vec::new();
    while at < data.len() {
        let caplen = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &data[at + 16..at + 16 + caplen];
        packets.push(frame[14..].to_vec());
        at += 16 + caplen;
    }
    packets
}

#[test]
fn icmpv4_echo_and_reply_from_a_capture() {
    let packets = pcap("ping4.pcap");
    assert_eq!(packets.len(), 2);
    for (packet, request) in packets.iter().zip([true, false]) {
        let (ip, body) = Ipv4Header::parse(packet).expect("valid IPv4");
        assert_eq!(ip.protocol, PROTO_ICMP);
        assert_eq!(ip.ttl, 64);
        assert_eq!(usize::from(ip.total_len), packet.len());
        let icmp = Icmp::parse(IcmpVersion::V4, None, body).expect("valid ICMP");
        let payload: Vec<u8> = (0..16).collect();
        let expected = if request {
            Icmp::EchoRequest {
                ident: 0x1234,
                seq: 1,
                payload: &payload,
            }
        } else {
            Icmp::EchoReply {
                ident: 0x1234,
                seq: 1,
                payload: &payload,
            }
        };
        assert_eq!(icmp, expected);
        let mut rebuilt = Vec::new();
        ip.write(&mut rebuilt);
        icmp.write(IcmpVersion::V4, None, &mut rebuilt);
        assert_eq!(&rebuilt, packet, "rebuilt byte for byte");
    }
}

#[test]
fn icmpv6_echo_and_reply_from_a_capture() {
    let packets = pcap("ping6.pcap");
    assert_eq!(packets.len(), 2);
    for (packet, request) in packets.iter().zip([true, false]) {
        let (ip, body) = Ipv6Header::parse(packet).expect("valid IPv6");
        assert_eq!(ip.next_header, PROTO_ICMPV6);
        let addrs = Some((IpAddr::V6(ip.src), IpAddr::V6(ip.dst)));
        let icmp = Icmp::parse(IcmpVersion::V6, addrs, body).expect("checksum verified");
        assert!(matches!(
            (icmp, request),
            (
                Icmp::EchoRequest {
                    ident: 0x1234,
                    seq: 1,
                    ..
                },
                true
            ) | (
                Icmp::EchoReply {
                    ident: 0x1234,
                    seq: 1,
                    ..
                },
                false
            )
        ));
        let mut rebuilt = Vec::new();
        ip.write(&mut rebuilt);
        icmp.write(IcmpVersion::V6, addrs, &mut rebuilt);
        assert_eq!(&rebuilt, packet, "rebuilt byte for byte");
        // A wrong pseudo-header (another destination) fails the checksum.
        let other = Some((IpAddr::V6(ip.src), "::2".parse().unwrap()));
        assert!(Icmp::parse(IcmpVersion::V6, other, body).is_err());
    }
}

#[test]
fn tcp_syn_and_rst_from_a_capture() {
    let packets = pcap("tcp_rst.pcap");
    assert_eq!(packets.len(), 2);
    let (ip, seg) = Ipv4Header::parse(&packets[0]).unwrap();
    assert_eq!(ip.protocol, PROTO_TCP);
    let (src, dst) = (IpAddr::V4(ip.src), IpAddr::V4(ip.dst));
    let addrs = Some((src, dst));
    // Loopback offloads the checksum of outgoing segments: tcpdump sees a partial sum.
    let (syn, _) = TcpHeader::parse(None, seg).unwrap();
    assert!(syn.has(tcp_flags::SYN) && !syn.has(tcp_flags::ACK));
    assert_eq!(syn.dst_port, 9);
    assert_eq!(syn.options.len(), 20, "mss, sackOK, timestamps, wscale");
    let mut rebuilt = Vec::new();
    syn.write(src, dst, &[], &mut rebuilt).unwrap();
    assert_eq!(rebuilt[..16], seg[..16]);
    assert_eq!(rebuilt[18..], seg[18..]);
    assert_eq!(
        TcpHeader::parse(addrs, &rebuilt).unwrap().0,
        syn,
        "our checksum is right"
    );

    let (ip, seg) = Ipv4Header::parse(&packets[1]).unwrap();
    let (src, dst) = (IpAddr::V4(ip.src), IpAddr::V4(ip.dst));
    let addrs = Some((src, dst));
    let (rst, payload) = TcpHeader::parse(addrs, seg).expect("the kernel's RST checksum verifies");
    assert!(payload.is_empty());
    assert_eq!(rst.flags, tcp_flags::RST | tcp_flags::ACK);
    assert_eq!((rst.src_port, rst.dst_port), (9, syn.src_port));
    assert_eq!(rst.ack, syn.seq.wrapping_add(1));
    let mut rebuilt = Vec::new();
    ip.write(&mut rebuilt);
    rst.write(src, dst, &[], &mut rebuilt).unwrap();
    assert_eq!(rebuilt, packets[1], "rebuilt byte for byte");
}
