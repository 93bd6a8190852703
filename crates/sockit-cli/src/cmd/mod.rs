//! One module per subcommand: arguments in, library call, output.

pub mod echo;
pub mod subnet;
