//! Network utilities: subnet arithmetic (ipcalc's job).

pub mod subnet;
