//! A UDP client: each line typed is one datagram; each reply is printed.
//!
//! Run: `cargo run -p sockit --example udp_client -- udp://127.0.0.1:9998` (start
//! `udp_server` first), type lines, end with Ctrl-D.
//!
//! UDP may lose a datagram: a reply that does not come within 2 s is reported and the
//! client goes on, where the tutorials' `recvfrom` would wait forever.

use std::io::BufRead;
use std::net::UdpSocket;
use std::time::Duration;

use sockit::Endpoint;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: Endpoint = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("udp://127.0.0.1:9998")
        .parse()?;
    let server = *addr.resolve()?.first().ok_or("no address")?;
    let local = if server.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let sock = UdpSocket::bind(local)?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 65_536];
    for line in std::io::stdin().lock().lines() {
        sock.send_to(line?.as_bytes(), server)?;
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => println!("{}", String::from_utf8_lossy(&buf[..n])),
            Err(e) => eprintln!("no reply: {e}"),
        }
    }
    Ok(())
}
