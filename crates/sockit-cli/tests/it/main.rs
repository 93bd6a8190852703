//! Integration tests: one binary, one module per capability, each spawning `sockit`.

mod bench;
mod echo;
mod util;
