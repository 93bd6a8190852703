//! The open-files limit: every connection is a descriptor (a relayed one is two), so
//! servers and load generators that hold many raise the soft limit at start.

/// Raises the soft limit on open files towards `want` (never above the hard limit) and
/// returns the limit now in force: N connections need N descriptors.
pub fn raise_nofile_limit(want: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    if current >= want {
        return current;
    }
    let target = limit.maximum.map_or(want, |max| want.min(max));
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => target,
        Err(_) => current,
    }
}
