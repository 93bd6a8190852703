//! The allow-list of programs a server may run, resolved once at start, and the lookup of
//! a client's `argv[0]` in it. Whether a candidate file is executable is asked of the
//! caller: the driver checks real files ([`crate::exec::resolve_permits`]), tests do not.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The programs a server may run, resolved once, when it starts: by name on the server's
/// PATH, or by absolute path. A client names one the way it was permitted (or by the
/// absolute path a name resolved to); the server then runs that file, with no shell and no
/// PATH search of its own per request.
#[derive(Debug, Clone, Default)]
pub struct Permits {
    programs: Vec<Permit>,
}

#[derive(Debug, Clone)]
struct Permit {
    /// The bare name it was permitted by, if any.
    name: Option<String>,
    /// The file that runs.
    path: PathBuf,
}

/// A `--permit` entry that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermitError {
    /// A name found in no absolute PATH directory as an executable file.
    #[error("program {0:?} not found on PATH")]
    NotFound(String),
    /// An absolute path that is not an executable file.
    #[error("{0:?} is not an executable file")]
    NotExecutable(String),
    /// A relative path (`./x`, `bin/x`): it would depend on the server's directory.
    #[error("{0:?} must be a bare program name or an absolute path")]
    Relative(String),
}

impl Permits {
    /// Resolves `specs` against `path_var` (the value of `PATH`), asking `is_executable`
    /// whether a candidate file may run (the driver checks the real files).
    /// Relative PATH entries (`.`, empty) are skipped: they would make the server's working
    /// directory decide what runs.
    pub fn resolve_with(
        specs: &[String],
        path_var: Option<&OsStr>,
        is_executable: impl Fn(&Path) -> bool,
    ) -> Result<Permits, PermitError> {
        let mut programs = Vec::with_capacity(specs.len());
        for spec in specs {
            let permit = if spec.starts_with('/') {
                if !is_executable(Path::new(spec)) {
                    return Err(PermitError::NotExecutable(spec.clone()));
                }
                Permit {
                    name: None,
                    path: PathBuf::from(spec),
                }
            } else if spec.is_empty() || spec.contains('/') {
                return Err(PermitError::Relative(spec.clone()));
            } else {
                let path = path_var
                    .into_iter()
                    .flat_map(std::env::split_paths)
                    .filter(|dir| dir.is_absolute())
                    .map(|dir| dir.join(spec))
                    .find(|candidate| is_executable(candidate))
                    .ok_or_else(|| PermitError::NotFound(spec.clone()))?;
                Permit {
                    name: Some(spec.clone()),
                    path,
                }
            };
            programs.push(permit);
        }
        Ok(Permits { programs })
    }

    /// The file to run for a requested `argv[0]`, if it is permitted.
    pub fn lookup(&self, requested: &str) -> Option<&Path> {
        let found = if requested.starts_with('/') {
            let requested = Path::new(requested);
            self.programs.iter().find(|p| p.path == requested)
        } else {
            self.programs
                .iter()
                .find(|p| p.name.as_deref() == Some(requested))
        };
        found.map(|p| p.path.as_path())
    }

    /// The permitted programs as `name -> path` lines, for logs.
    pub fn describe(&self) -> Vec<String> {
        self.programs
            .iter()
            .map(|p| match &p.name {
                Some(name) => format!("{name} ({})", p.path.display()),
                None => p.path.display().to_string(),
            })
            .collect()
    }
}
