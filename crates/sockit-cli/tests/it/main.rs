//! Integration tests: one binary, one module per capability, each spawning `sockit`.

mod connect;
mod echo;
mod util;
