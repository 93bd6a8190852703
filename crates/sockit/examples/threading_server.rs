//! Python's `ThreadingTCPServer` example with its `MYTCPHandler` on the library: print
//! what each client sends and answer `got your msg`, a thread per client.
//!
//! Run: `cargo run -p sockit --example threading_server -- 127.0.0.1:9999`
//! then e.g. `sockit connect 127.0.0.1:9999` from several terminals.
//!
//! The Python handler loops on `recv(1024)` inside `handle()`; here the framework owns the
//! loop and calls `on_data` for each chunk, so the same handler also runs under `select`,
//! `epoll` or `fork` by changing one line.

use sockit::Endpoint;
use sockit::server::{Config, Flow, Handler, Model, Output, Server, Service};
use sockit::socket::Peer;

struct MyTcpHandler {
    client_address: Peer,
}

impl Handler for MyTcpHandler {
    fn on_data(&mut self, data: &[u8], out: &mut Output) -> Flow {
        println!(
            "{}: {}",
            self.client_address,
            String::from_utf8_lossy(data).trim()
        );
        out.extend_from_slice(b"got your msg\n");
        Flow::Continue
    }

    fn on_eof(&mut self, _out: &mut Output) {
        println!("{} disconnected", self.client_address);
    }
}

struct MyTcpServer;

impl Service for MyTcpServer {
    type Handler = MyTcpHandler;

    fn handler(&self, peer: &Peer) -> MyTcpHandler {
        MyTcpHandler {
            client_address: peer.clone(),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: Endpoint = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:9999")
        .parse()?;
    let config = Config {
        model: Model::Threads,
        ..Config::default()
    };
    let server = Server::bind(&addr, config)?;
    eprintln!("listening on {}", server.local_endpoint());
    server.serve(MyTcpServer)?;
    Ok(())
}
