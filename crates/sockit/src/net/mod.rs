//! Network utilities: subnet arithmetic (ipcalc's job), the well-known ports table, and
//! port checks (`ncat -z`'s job).

pub mod check;
pub mod ports;
pub mod subnet;
