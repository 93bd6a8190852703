//! A minimal tokio broadcast chat, the reference of `bench/chat.sh`.
//!
//! Everyone is in one room; the first line is the nick, every other line goes to all the
//! others as `<nick> text`; joins are announced as `* nick joined #lobby` (to the joiner
//! too, which is how the load generator knows it is in). One task per client, one
//! `tokio::sync::broadcast` channel, one `write_all` per line per client: what people
//! write first, and what the tokio example does.
//!
//! Run: `ref-chat [ADDR]` (default 127.0.0.1:0); prints `listening on tcp://ADDR`.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};

/// Lines a receiver may fall behind before it loses the oldest.
const CAPACITY: usize = 4096;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("listening on tcp://{}", listener.local_addr()?);
    let (tx, _) = broadcast::channel::<(u64, Arc<str>)>(CAPACITY);
    let mut next_id = 0;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        next_id += 1;
        let (tx, rx) = (tx.clone(), tx.subscribe());
        tokio::spawn(client(stream, next_id, tx, rx));
    }
}

async fn client(
    stream: TcpStream,
    id: u64,
    tx: broadcast::Sender<(u64, Arc<str>)>,
    mut rx: broadcast::Receiver<(u64, Arc<str>)>,
) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let Ok(Some(nick)) = lines.next_line().await else {
        return;
    };
    let _ = tx.send((0, format!("* {nick} joined #lobby\n").into()));
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(text)) => {
                    let _ = tx.send((id, format!("<{nick}> {text}\n").into()));
                }
                _ => break,
            },
            msg = rx.recv() => match msg {
                Ok((from, line)) => {
                    if from != id && w.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            },
        }
    }
    let _ = tx.send((0, format!("* {nick} left #lobby\n").into()));
}
