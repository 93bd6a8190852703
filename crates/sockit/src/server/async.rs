//! The `async` model: a task per connection on a multi-threaded tokio runtime
//! (`workers` threads, one per CPU by default). The accept loop, admission and shutdown are
//! [`Server::serve_tasks`]'s; this file only drives a [`Handler`] over a tokio stream.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Config, Flow, Handler, Output, Server, Service, Stopping, TaskStream};
use crate::error::Result;

const READ_BUF: usize = 16 * 1024;

pub(crate) fn serve<S: Service>(server: Server, service: S) -> Result<()> {
    let config = Arc::new(server.config.clone());
    let service = Arc::new(service);
    let busy: Vec<u8> = service.busy_message().to_vec();
    server.serve_tasks(&busy, move |stream, peer, stopping| {
        let handler = service.handler(&peer);
        let config = config.clone();
        async move {
            if let Err(e) = drive(stream, handler, &config, stopping).await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        }
    })
}

async fn drive<H: Handler>(
    mut stream: TaskStream,
    mut handler: H,
    config: &Config,
    mut stopping: Stopping,
) -> io::Result<()> {
    let mut buf = vec![0u8; READ_BUF];
    let mut out = Output::new();
    let mut flow = handler.on_connect(&mut out);
    // End of stream seen: what is queued (and what `on_drained` adds) is written, then done.
    let mut ending = false;
    loop {
        // Write what the handler queued, and let it go on once that is out.
        while !out.is_empty() {
            stream.write_output(&mut out, config.idle_timeout).await?;
            if flow == Flow::Continue {
                flow = handler.on_drained(&mut out);
            }
        }
        if flow != Flow::Continue || ending {
            break;
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
        // Shutdown reads as end of stream: the handler says its last words, they are sent.
        let n = tokio::select! {
            r = read => r?,
            _ = stopping.wait() => 0,
        };
        if n == 0 {
            handler.on_eof(&mut out);
            ending = true;
        } else {
            flow = handler.on_data(&buf[..n], &mut out);
        }
    }
    stream.shutdown().await
}
