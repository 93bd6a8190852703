//! The `threads` model: a thread per connection, like `ThreadingTCPServer`, bounded by the
//! connection limit. On shutdown it stops accepting, ends every connection's read side and
//! waits for the threads to write their last replies.

use std::sync::Arc;

use super::conn::{Registry, accept_each, drive};
use super::{Ctx, Listener, Service, StreamService};
use crate::error::Result;

/// Small stacks: a connection thread only runs the read/handle/write loop, and 10,000 of
/// them must fit.
const STACK: usize = 128 * 1024;

pub(crate) fn serve<S: Service>(listener: &Listener, service: Arc<S>, ctx: Ctx<'_>) -> Result<()> {
    let registry = Arc::new(Registry::default());
    registry.watch(ctx.shutdown);
    let config = Arc::new(ctx.config.clone());
    let result = accept_each(
        listener,
        &ctx,
        None,
        || {},
        |stream, peer, slot| {
            let (service, registry, config) = (service.clone(), registry.clone(), config.clone());
            let spawned = std::thread::Builder::new()
                .name("sockit-conn".into())
                .stack_size(STACK)
                .spawn(move || {
                    let _slot = slot;
                    let _registered = registry.register(&stream);
                    drive(&stream, &peer, service.handler(&peer), &config);
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a connection thread; connection dropped");
            }
        },
    );
    finish(&ctx);
    result
}

/// Stack of a thread running a [`StreamService`]: it owns its I/O loop and buffers live
/// on the heap, but it may hash and call into the file system, so more than `STACK`.
const OWNED_STACK: usize = 512 * 1024;

/// Like [`serve`], for services that own the connection.
pub(crate) fn serve_owned<S: StreamService>(
    listener: &Listener,
    service: Arc<S>,
    ctx: Ctx<'_>,
) -> Result<()> {
    let registry = Arc::new(Registry::default());
    registry.watch(ctx.shutdown);
    let idle = ctx.config.idle_timeout;
    let result = accept_each(
        listener,
        &ctx,
        None,
        || {},
        |stream, peer, slot| {
            let (service, registry) = (service.clone(), registry.clone());
            let spawned = std::thread::Builder::new()
                .name("sockit-conn".into())
                .stack_size(OWNED_STACK)
                .spawn(move || {
                    let _slot = slot;
                    let _registered = registry.register(&stream);
                    if let Err(e) = stream.set_read_timeout(idle) {
                        tracing::debug!(%peer, error = %e, "cannot set the idle timeout");
                        return;
                    }
                    service.handle(stream, &peer);
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a connection thread; connection dropped");
            }
        },
    );
    finish(&ctx);
    result
}

/// Stops accepting and waits (at most [`super::GRACE`]) for the connections to finish.
fn finish(ctx: &Ctx<'_>) {
    ctx.shutdown.trigger();
    // Every live connection now holds a slot; wait for them to finish their last writes.
    let deadline = std::time::Instant::now() + super::GRACE;
    while ctx.gate.live() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
