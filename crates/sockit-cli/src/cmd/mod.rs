//! One module per subcommand: arguments in, library call, output.

pub mod chat;
pub mod check;
pub mod connect;
pub mod echo;
pub mod listen;
pub mod ports;
pub mod subnet;
