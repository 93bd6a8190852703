//! One module per subcommand: arguments in, library call, output.

pub mod check;
pub mod echo;
pub mod ports;
pub mod recv;
pub mod send;
pub mod subnet;
