//! Integration tests: one binary, one module per capability, each spawning `sockit`.

mod bench;
mod check;
mod connect;
mod echo;
mod exec;
mod http;
mod ports;
mod subnet;
mod util;
