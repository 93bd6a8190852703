//! One module per subcommand: arguments in, library call, output.

pub mod echo;
pub mod ports;
pub mod subnet;
