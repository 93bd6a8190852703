//! Sans-IO protocol cores: bytes in, bytes and actions out, no sockets and no clock, so
//! each is tested in memory and served by any model of [`crate::server`].

pub mod chat;
pub mod echo;
pub mod exec;
pub mod http;
pub mod transfer;
