//! Sans-IO protocol cores: bytes in, bytes and actions out, no sockets, no files and no
//! clock, so each is tested in memory. Each core has a driver that brings the I/O:
//!
//! | core | what it decides | driven by |
//! |---|---|---|
//! | [`echo`] | the reply to each read or datagram | itself: it is a [`crate::server::Handler`], so every model of [`crate::server`] serves it |
//! | [`http`] | `server/`: what to answer a request (status, headers, range, redirect); `client/`: URLs, response heads, chunked bodies | [`crate::http::serve`] (a `Handler` under every model, with the files) and [`crate::http::client`] |
//! | [`transfer`] | the messages, path rules and the receiver's state machine | [`crate::transfer`] (`send` over a [`crate::socket::Stream`], `recv` as a [`crate::server::StreamService`] with the files) |
//! | [`exec`] | the messages, the token check, permits and the session | [`crate::exec`] (one tokio task per connection, with the child process) |
//! | [`chat`] | nicks, rooms, history and the cluster view | [`crate::chat`] (one tokio thread, per-client queues, the Redis backplane) |
//! | [`proxy`] | SOCKS5 and HTTP CONNECT steps of a client and of a proxy; HAProxy's PROXY header (v1, v2) | the `proxy` driver (`--proxy`: the client steps; `sockit proxy`: the server steps and the policy) and `forward` (the PROXY header) |

pub mod chat;
pub mod echo;
pub mod exec;
pub mod http;
pub mod proxy;
pub mod transfer;
