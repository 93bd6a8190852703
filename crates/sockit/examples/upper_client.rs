//! The classic upper-case client on the library: send each line typed, print the
//! server's reply.
//!
//! Run: `cargo run -p sockit --example upper_client -- 127.0.0.1:8080` (start
//! `upper_server` first), type lines, end with Ctrl-D.
//!
//! The textbook version does one `recv(1024)` per message and so can print half a reply;
//! this reads until the whole reply (as long as the line sent) arrived.

use std::io::{BufRead, Read, Write};

use sockit::Endpoint;
use sockit::socket::Stream;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: Endpoint = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:8080")
        .parse()?;
    let mut conn = Stream::connect(&addr, None)?;
    for line in std::io::stdin().lock().lines() {
        let msg = line?;
        if msg.is_empty() {
            continue;
        }
        conn.write_all(msg.as_bytes())?;
        let mut reply = vec![0; msg.len()];
        conn.read_exact(&mut reply)?;
        println!("{}", String::from_utf8_lossy(&reply));
    }
    Ok(())
}
