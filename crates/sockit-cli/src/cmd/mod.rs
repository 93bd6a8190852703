//! One module per subcommand: arguments in, library call, output.

pub mod connect;
pub mod echo;
pub mod listen;
