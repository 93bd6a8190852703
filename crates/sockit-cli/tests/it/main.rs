//! Integration tests: one binary, one module per capability, each spawning `sockit`.

mod bench;
mod bench_http;
mod chat;
mod check;
mod cli;
mod connect;
mod echo;
mod exec;
mod forward;
mod frame;
mod http;
mod limits;
mod ports;
mod proxy;
mod raw;
mod subnet;
mod sweep;
mod tls;
mod transfer;
mod util;
