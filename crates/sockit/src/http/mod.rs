//! HTTP over sockit's own sockets: the blocking client behind `sockit http get`
//! ([`client`], TLS by rustls) and the static file service behind `sockit http serve`
//! ([`serve`], a framework [`Service`](crate::server::Service)). The parsing lives sans-IO
//! in [`proto::http`](crate::proto::http).

pub mod client;
pub mod serve;
