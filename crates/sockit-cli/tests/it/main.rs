//! Integration tests: one binary, one module per capability, each spawning `sockit`.

mod chat;
mod check;
mod connect;
mod echo;
mod ports;
mod subnet;
mod util;
