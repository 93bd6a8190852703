//! The `blocking` model: one connection at a time, in the caller's thread, like
//! `socketserver.TCPServer`. Others wait in the backlog until the current one ends.

use std::sync::Arc;

use super::conn::{Registry, accept_each, drive};
use super::{Ctx, Service};
use crate::error::Result;
use crate::socket::Listener;

pub(crate) fn serve<S: Service>(listener: &Listener, service: Arc<S>, ctx: Ctx<'_>) -> Result<()> {
    let registry = Arc::new(Registry::default());
    registry.watch(ctx.shutdown);
    let result = accept_each(
        listener,
        &ctx,
        None,
        || {},
        |stream, peer, _slot| {
            let _registered = registry.register(&stream);
            drive(&stream, &peer, service.handler(&peer), ctx.config);
        },
    );
    ctx.shutdown.trigger();
    result
}
