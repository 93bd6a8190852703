//! The token file: the secret both sides key their HMAC with, used byte for byte as stored
//! (no trimming: a trailing newline is part of the secret, on both sides alike).

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::proto::exec::Token;

/// Bytes of a generated token.
pub const TOKEN_LEN: usize = 32;

/// Reads a token file. An empty file is an error; one that others may read is used, with a
/// warning in the log.
pub fn read_token_file(path: &Path) -> Result<Token> {
    let what = || format!("read token file {}", path.display());
    let bytes = fs::read(path).map_err(|e| Error::io(what(), e))?;
    if let Ok(meta) = fs::metadata(path)
        && meta.mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.mode() & 0o777),
            "token file is accessible to other users; chmod 600 it"
        );
    }
    Token::new(&bytes).ok_or_else(|| {
        Error::io(
            what(),
            io::Error::new(io::ErrorKind::InvalidData, "the file is empty"),
        )
    })
}

/// A token file this process created in a private directory of its own; both are removed
/// when this is dropped (the token only ever served that one server).
#[derive(Debug)]
pub struct TokenFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TokenFile {
    /// Creates `$TMPDIR/sockit-exec-<random>/token` (directory 0700, file 0600) holding
    /// [`TOKEN_LEN`] random bytes.
    pub fn create() -> Result<(TokenFile, Token)> {
        let mut secret = [0u8; TOKEN_LEN];
        random(&mut secret)?;
        let mut tag = [0u8; 8];
        random(&mut tag)?;
        let dir =
            std::env::temp_dir().join(format!("sockit-exec-{:016x}", u64::from_ne_bytes(tag)));
        DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let path = dir.join("token");
        let file = TokenFile { dir, path };
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file.path)
            .map_err(|e| Error::io(format!("create {}", file.path.display()), e))?;
        f.write_all(&secret)
            .map_err(|e| Error::io(format!("write {}", file.path.display()), e))?;
        let token = Token::new(&secret).expect("a generated token is not empty");
        Ok((file, token))
    }

    /// Where the token is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_dir(&self.dir);
    }
}

/// Fills `buf` from the OS's random source.
pub(crate) fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf)
        .map_err(|e| Error::io("read random bytes", io::Error::other(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_token_files_are_private_readable_and_removed() {
        let (file, token) = TokenFile::create().unwrap();
        let meta = fs::metadata(file.path()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.len(), TOKEN_LEN as u64);
        let dir_mode = fs::metadata(file.path().parent().unwrap()).unwrap().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let read = read_token_file(file.path()).unwrap();
        let challenge = [5; 32];
        assert!(read.verify(&challenge, &token.respond(&challenge)));
        let path = file.path().to_path_buf();
        drop(file);
        assert!(!path.exists());
        assert!(!path.parent().unwrap().exists());
    }

    #[test]
    fn empty_or_missing_token_files_are_errors() {
        let (file, _) = TokenFile::create().unwrap();
        fs::write(file.path(), b"").unwrap();
        assert!(read_token_file(file.path()).is_err());
        assert!(read_token_file(Path::new("/nonexistent/token")).is_err());
    }
}
