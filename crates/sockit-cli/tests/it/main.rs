//! Integration tests: one binary, one module per capability, each spawning `sockit`.

mod check;
mod echo;
mod ports;
mod subnet;
mod transfer;
mod util;
