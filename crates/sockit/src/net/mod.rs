//! Network utilities: subnet arithmetic (ipcalc's job), CIDR sets (aggregate, deaggregate,
//! variable-length subnetting), the well-known ports table, port checks (`ncat -z`'s job),
//! and the raw-socket tools: packets, `ping`, the SYN scan.

pub mod check;
pub mod cidr;
pub mod packet;
pub mod ping;
pub mod ports;
pub mod subnet;
pub mod syn;
pub mod targets;
pub mod tcping;
