//! The `async` model: a task per connection on a multi-threaded tokio runtime
//! (`workers` threads, one per CPU by default).

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::listener::Peer;
use super::{Ctx, Flow, GRACE, Handler, Listener, Service};
use crate::error::{Error, Result};

const READ_BUF: usize = 16 * 1024;

pub(crate) fn serve<S: Service>(listener: &Listener, service: Arc<S>, ctx: Ctx<'_>) -> Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = ctx.config.workers {
        builder.worker_threads(n.max(1));
    }
    let runtime = builder
        .enable_all()
        .build()
        .map_err(|e| Error::io("start tokio runtime", e))?;
    let listener = listener
        .try_clone()
        .and_then(|l| {
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .map_err(|e| Error::io("prepare listener", e))?;
    runtime.block_on(accept_loop(listener, service, ctx))
}

/// An accepted connection as tokio sees it.
enum AsyncStream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept_loop<S: Service>(listener: Listener, service: Arc<S>, ctx: Ctx<'_>) -> Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = ctx
        .shutdown
        .watch_async()
        .map_err(|e| Error::io("watch shutdown pipe", e))?;
    tokio::pin!(stopped);
    let (tcp, unix) = match listener {
        Listener::Tcp(l) => (Some(tokio::net::TcpListener::from_std(l)), None),
        Listener::Unix(l) => (None, Some(tokio::net::UnixListener::from_std(l))),
    };
    let (tcp, unix) = (
        tcp.transpose()
            .map_err(|e| Error::io("register listener", e))?,
        unix.transpose()
            .map_err(|e| Error::io("register listener", e))?,
    );
    let config = Arc::new(ctx.config.clone());
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => break,
            r = async {
                match (&tcp, &unix) {
                    (Some(l), _) => l.accept().await.map(|(s, a)| (AsyncStream::Tcp(s), Peer::Inet(a))),
                    (_, Some(l)) => l.accept().await.map(|(s, a)| {
                        (AsyncStream::Unix(s), Peer::Unix(a.as_pathname().map(Into::into)))
                    }),
                    _ => unreachable!("one listener is always set"),
                }
            } => r,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) if super::accept_error_is_transient(&e) => {
                tracing::warn!(error = %e, "accept failed; backing off");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
            Err(e) => return Err(Error::io("accept", e)),
        };
        let Some(slot) = admit(&ctx, &stream, &peer) else {
            continue;
        };
        let handler = service.handler(&peer);
        let (config, mut stop) = (config.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let result = match stream {
                AsyncStream::Tcp(s) => drive(s, handler, &config, &mut stop).await,
                AsyncStream::Unix(s) => drive(s, handler, &config, &mut stop).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + GRACE;
    while ctx.gate.live() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Ok(())
}

fn admit(ctx: &Ctx<'_>, stream: &AsyncStream, peer: &Peer) -> Option<super::gate::Slot> {
    let fd = match stream {
        AsyncStream::Tcp(s) => s.as_fd(),
        AsyncStream::Unix(s) => s.as_fd(),
    };
    ctx.gate.admit(fd, peer)
}

async fn drive<T, H>(
    mut stream: T,
    mut handler: H,
    config: &super::Config,
    stop: &mut watch::Receiver<bool>,
) -> io::Result<()>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    H: Handler,
{
    let mut buf = vec![0u8; READ_BUF];
    let mut out = Vec::new();
    let mut flow = handler.on_connect(&mut out);
    while flow == Flow::Continue {
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        let read = async {
            match config.idle_timeout {
                Some(t) => tokio::time::timeout(t, stream.read(&mut buf))
                    .await
                    .unwrap_or_else(|_| {
                        Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout"))
                    }),
                None => stream.read(&mut buf).await,
            }
        };
        let n = tokio::select! {
            r = read => r?,
            _ = stop.wait_for(|s| *s) => 0,
        };
        if n == 0 {
            handler.on_eof(&mut out);
            break;
        }
        flow = handler.on_data(&buf[..n], &mut out);
    }
    if !out.is_empty() {
        stream.write_all(&out).await?;
    }
    stream.shutdown().await
}
