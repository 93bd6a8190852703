//! Network utilities: subnet arithmetic (ipcalc's job) and the well-known ports table.

pub mod ports;
pub mod subnet;
