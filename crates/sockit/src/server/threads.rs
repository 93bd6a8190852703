//! The `threads` model: a thread per connection, like `ThreadingTCPServer`, bounded by the
//! connection limit. On shutdown it stops accepting, ends every connection's read side and
//! waits for the threads to finish their last replies.
//!
//! The thread runs a [`StreamService`], which owns its connection; a [`Service`]'s
//! handlers are served through [`Driven`], which runs the blocking driver of `conn.rs`.

use std::sync::Arc;

use super::conn::{Registry, accept_each, drive};
use super::{Config, Ctx, HeadClock, Service, StreamService};
use crate::error::Result;
use crate::socket::{Listener, Peer, Stream};

/// Stack of a connection thread. Buffers live on the heap, but a service may hash and call
/// into the file system; 10,000 threads still reserve only 5 GiB of address space, of
/// which a few pages each are touched.
const STACK: usize = 512 * 1024;

/// A [`Service`] served as a [`StreamService`]: the blocking read/handle/write driver.
pub(crate) struct Driven<S> {
    /// Makes a handler for each connection.
    pub(crate) service: Arc<S>,
    /// The idle timeout the driver applies to reads and writes.
    pub(crate) config: Config,
}

impl<S: Service> StreamService for Driven<S> {
    fn handle(&self, stream: Stream, peer: &Peer, _heads: HeadClock) {
        // The driver keeps its own clock, from the same configuration.
        drive(&stream, peer, self.service.handler(peer), &self.config);
    }
}

/// Serves each admitted connection on a thread of its own until shutdown.
pub(crate) fn serve<S: StreamService>(
    listener: &Listener,
    service: Arc<S>,
    ctx: Ctx<'_>,
) -> Result<()> {
    let registry = Arc::new(Registry::default());
    registry.watch(ctx.shutdown);
    let idle = ctx.config.idle_timeout;
    let header = ctx.config.header_timeout;
    let result = accept_each(
        listener,
        &ctx,
        None,
        || {},
        |stream, peer, slot| {
            let (service, registry) = (service.clone(), registry.clone());
            let spawned = std::thread::Builder::new()
                .name("sockit-conn".into())
                .stack_size(STACK)
                .spawn(move || {
                    let _slot = slot;
                    let _registered = registry.register(&stream);
                    if let Err(e) = stream.set_read_timeout(idle) {
                        tracing::debug!(%peer, error = %e, "cannot set the idle timeout");
                        return;
                    }
                    service.handle(stream, &peer, HeadClock::new(idle, header));
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a connection thread; connection dropped");
            }
        },
    );
    ctx.shutdown.trigger();
    // Every live connection holds a slot; wait (bounded) for them to finish.
    let deadline = std::time::Instant::now() + super::GRACE;
    while ctx.gate.live() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    result
}
