//! One module per subcommand: arguments in, library call, output.

pub mod bench;
pub mod echo;
