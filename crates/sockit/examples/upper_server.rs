//! The classic upper-case server on the library: receive, send back `data.upper()`.
//!
//! Run: `cargo run -p sockit --example upper_server -- 127.0.0.1:8080`
//! then `cargo run -p sockit --example upper_client -- 127.0.0.1:8080` in another terminal.
//!
//! Unlike the textbook version, which serves one client once, this serves every client,
//! each until it disconnects, and a reset by one client ends only that client's
//! connection.

use sockit::Endpoint;
use sockit::server::{Config, Flow, Handler, Model, Output, Server, Service};
use sockit::socket::Peer;

/// The per-connection handler: the textbook's `conn.send(data.upper())`.
struct Upper;

impl Handler for Upper {
    fn on_data(&mut self, data: &[u8], out: &mut Output) -> Flow {
        out.extend(data.iter().map(u8::to_ascii_uppercase));
        Flow::Continue
    }
}

struct UpperService;

impl Service for UpperService {
    type Handler = Upper;

    fn handler(&self, peer: &Peer) -> Upper {
        println!("new conn: {peer}");
        Upper
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: Endpoint = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:8080")
        .parse()?;
    let config = Config {
        model: Model::Blocking,
        ..Config::default()
    };
    let server = Server::bind(&addr, config)?;
    eprintln!("listening on {}", server.local_endpoint());
    server.serve(UpperService)?;
    Ok(())
}
