//! The classic tutorials' select-based server: one thread watches every connection with `select(2)`
//! and answers each message upper-cased.
//!
//! Run: `cargo run -p sockit --example select_server -- 127.0.0.1:9999`
//! then e.g. `sockit connect 127.0.0.1:9999` from several terminals.
//!
//! The tutorials' version keeps `inputs`/`outputs` lists and a message queue per socket; the library's
//! `select` model does that bookkeeping (and refuses descriptors above FD_SETSIZE, which
//! the tutorials' `select.select` would choke on), so the program is just its handler.

use sockit::Endpoint;
use sockit::proto::echo::Echo;
use sockit::server::{Config, Model, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: Endpoint = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:9999")
        .parse()?;
    let config = Config {
        model: Model::Select,
        ..Config::default()
    };
    let server = Server::bind(&addr, config)?;
    eprintln!("listening on {}", server.local_endpoint());
    server.serve(Echo { upper: true })?;
    Ok(())
}
