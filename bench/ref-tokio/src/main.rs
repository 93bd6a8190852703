//! Reference echo server for `bench/models.sh`: the idiomatic tokio echo, nothing tuned.
//! A multi-thread runtime (one worker per CPU it may run on), a task per connection,
//! a 16 KiB buffer per task, `read` then `write_all` until EOF.
//!
//! Run: `ref-tokio [PORT]` (0 or nothing: any free port). Prints
//! `listening on tcp://127.0.0.1:PORT` to stderr once ready, like every sockit server.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().expect("usage: ref-tokio [PORT]"),
        None => 0,
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("listening on tcp://{}", listener.local_addr()?);
    loop {
        let (mut socket, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if socket.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}
