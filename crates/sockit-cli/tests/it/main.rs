//! Integration tests: one binary, one module per capability, each spawning `sockit`.

mod echo;
mod limits;
mod util;
