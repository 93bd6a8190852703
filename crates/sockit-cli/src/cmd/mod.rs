//! One module per subcommand: arguments in, library call, output.

pub mod bench;
pub mod chat;
pub mod check;
pub mod completions;
pub mod connect;
pub mod echo;
pub mod exec;
pub mod forward;
pub mod http;
pub mod listen;
pub mod man;
pub mod ping;
pub mod ports;
pub mod proxy;
pub mod recv;
pub mod send;
pub mod subnet;
