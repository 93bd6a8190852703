//! The event-loop models (`select`, `poll`, `epoll`, `epoll-et`): one readiness loop per
//! worker, each on its own SO_REUSEPORT listener. Not yet written.

use std::sync::Arc;

use super::{Ctx, Listener, Model, Service};
use crate::error::{Error, Result};

pub(crate) fn serve<S: Service>(
    listeners: &[Listener],
    model: Model,
    service: Arc<S>,
    ctx: Ctx<'_>,
) -> Result<()> {
    let _ = (listeners, service, ctx);
    Err(Error::Unsupported {
        model: model.name(),
        what: "streams yet",
    })
}
