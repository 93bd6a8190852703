//! Fuzzes the packet parsers (IPv4, IPv6, ICMP, ICMPv6, TCP): no panic on any bytes, what
//! parses rebuilds to the same bytes, and parse(build(x)) == x with checksums verified.
//! See `sockit::fuzzing::check_packets`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockit::fuzzing::check_packets(data));
