//! A UDP server on the library (`recvfrom`, `sendto`): answers each datagram with it
//! upper-cased, tagged with the sender's address.
//!
//! Run: `cargo run -p sockit --example udp_server -- udp://127.0.0.1:9998`
//! then `cargo run -p sockit --example udp_client -- udp://127.0.0.1:9998`.

use sockit::Endpoint;
use sockit::server::{Config, DatagramService, Model, Reply, Server};
use sockit::socket::Peer;

struct Shout;

impl DatagramService for Shout {
    fn on_datagram(&self, data: &[u8], peer: &Peer, out: &mut Vec<u8>) -> Reply {
        out.extend(data.iter().map(u8::to_ascii_uppercase));
        out.extend_from_slice(format!(" (from {peer})").as_bytes());
        Reply::Send
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: Endpoint = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("udp://127.0.0.1:9998")
        .parse()?;
    let config = Config {
        model: Model::Blocking,
        ..Config::default()
    };
    let server = Server::bind(&addr, config)?;
    eprintln!("listening on {}", server.local_endpoint());
    server.serve_datagram(Shout)?;
    Ok(())
}
