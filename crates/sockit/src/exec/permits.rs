//! The `--permit` list checked against the real files: the core ([`Permits`]) decides the
//! resolution, this driver answers whether each candidate is an executable file.

use std::ffi::OsStr;
use std::path::Path;

use crate::proto::exec::{PermitError, Permits};

/// Resolves `specs` against `path_var` (the value of `PATH`), checking the real files:
/// a bare name is looked up on the absolute PATH entries, an absolute path is taken as
/// it is, and either must be an executable regular file.
pub fn resolve_permits(specs: &[String], path_var: Option<&OsStr>) -> Result<Permits, PermitError> {
    Permits::resolve_with(specs, path_var, is_executable_file)
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
